/* cli: helpers shared by the volley commands. See cli.h. */
#include "engine/cli.h"
#include "pool/smtp_cmd.h"
#include "pool/smtp_session.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

int cli_read_secret(const char *path, const char *env, char *out, size_t cap, char *err, size_t errlen)
{
	if (!path) {
		const char *v = env ? getenv(env) : NULL;
		if (!v || !*v) {
			snprintf(err, errlen, "no secret: give a file, or set %s", env ? env : "it");
			return -1;
		}
		if (strlen(v) >= cap) {
			snprintf(err, errlen, "%s is too long", env);
			return -1;
		}
		memcpy(out, v, strlen(v) + 1);
		return 0;
	}
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (!fgets(out, (int)cap, f)) {
		fclose(f);
		snprintf(err, errlen, "%s: empty", path);
		return -1;
	}
	fclose(f);
	out[strcspn(out, "\r\n")] = 0;
	if (!*out) {
		snprintf(err, errlen, "%s:1: empty secret", path);
		return -1;
	}
	return 0;
}

struct tls_ctx *cli_tls_client(const char *ca, int insecure, char *err, size_t errlen)
{
	struct tls_ctx_opts o = { 0 };
	o.ca_file = ca;
	o.insecure = insecure;
	return tls_ctx_new(&o, err, errlen);
}

char *cli_load_message(const char *path, size_t *len, unsigned *need, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	size_t cap = 65536, n = 0;
	char *raw = malloc(cap);
	size_t k;
	while (raw && (k = fread(raw + n, 1, cap - n, f)) > 0) {
		n += k;
		if (n == cap) {
			char *g = realloc(raw, cap * 2);
			if (!g) {
				free(raw);
				raw = NULL;
				break;
			}
			raw = g;
			cap *= 2;
		}
	}
	fclose(f);
	if (!raw) {
		snprintf(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	struct smtp_msg_info info;
	smtp_msg_inspect(raw, n, &info);
	if (info.has_nul) {
		snprintf(err, errlen, "%s: the message holds a NUL byte", path);
		free(raw);
		return NULL;
	}
	/* RFC 5322 2.1.1: 998 octets a line at most; say which line. */
	size_t line = 1, start = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i == n || raw[i] == '\n') {
			size_t l = i - start;
			if (l && raw[i - 1] == '\r')
				l--;
			if (l > 998) {
				snprintf(err, errlen, "%s:%zu: line of %zu octets (the limit is 998)", path, line, l);
				free(raw);
				return NULL;
			}
			line++;
			start = i + 1;
		}
	}
	char *msg = malloc(info.crlf_len ? info.crlf_len : 1);
	ssize_t m = msg ? smtp_msg_to_crlf(raw, n, msg, info.crlf_len) : -1;
	free(raw);
	if (m < 0) {
		free(msg);
		snprintf(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	*len = (size_t)m;
	*need = info.has_8bit ? SMTP_NEED_8BITMIME : 0;
	return msg;
}

int cli_parse_count(const char *s, unsigned long long *out, int is_size)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		return -1;
	unsigned long long mul = 1;
	if (*end == 'k' || *end == 'K')
		mul = is_size ? 1024 : 1000, end++;
	else if (*end == 'm' || *end == 'M')
		mul = is_size ? 1048576 : 1000000, end++;
	if (*end)
		return -1;
	*out = v * mul;
	return 0;
}

void cli_timestamp(char *buf, size_t cap)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	struct tm tm;
	gmtime_r(&tv.tv_sec, &tm);
	snprintf(buf, cap, "%02d:%02d:%02d.%03ld", tm.tm_hour, tm.tm_min, tm.tm_sec, (long)tv.tv_usec / 1000);
}
