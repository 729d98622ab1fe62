/* delivery_log: see delivery_log.h. jansson builds and reads the lines. */
#include "engine/delivery_log.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 65536   /* a reply's text is at most 4 KB: room to spare */

static const char *const outcome_names[OUTCOME_COUNT] = {
	[OUTCOME_DELIVERED] = "delivered",
	[OUTCOME_BOUNCED] = "bounced",
	[OUTCOME_FAILED] = "failed",
	[OUTCOME_DEFERRED] = "deferred",
	[OUTCOME_EXPIRED] = "expired",
	[OUTCOME_SUPPRESSED] = "suppressed",
	[OUTCOME_INVALID] = "invalid",
};

const char *delivery_outcome_name(enum delivery_outcome o)
{
	return (unsigned)o < OUTCOME_COUNT ? outcome_names[o] : "unknown";
}

int delivery_outcome_by_name(const char *name)
{
	for (int i = 0; i < OUTCOME_COUNT; i++)
		if (strcmp(name, outcome_names[i]) == 0)
			return i;
	return -1;
}

struct delivery_log {
	int fd;
	char *line;   /* LOG_LINE_MAX */
};

/* A file whose last byte is not LF gets one. Returns 0 or -1 (errno). */
static int end_last_line(int fd)
{
	char last;
	off_t end = lseek(fd, 0, SEEK_END);

	if (end <= 0)
		return end < 0 ? -1 : 0;
	if (pread(fd, &last, 1, end - 1) != 1)
		return -1;
	return last == '\n' || write(fd, "\n", 1) == 1 ? 0 : -1;
}

struct delivery_log *delivery_log_open(const char *path, char *err, size_t errlen)
{
	struct delivery_log *l = calloc(1, sizeof *l);

	if (!l || !(l->line = malloc(LOG_LINE_MAX))) {
		snprintf(err, errlen, "%s: out of memory", path);
		free(l);
		return NULL;
	}
	l->fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (l->fd < 0 || end_last_line(l->fd) != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		if (l->fd >= 0)
			close(l->fd);
		free(l->line);
		free(l);
		return NULL;
	}
	return l;
}

void delivery_log_close(struct delivery_log *l)
{
	if (!l)
		return;
	close(l->fd);
	free(l->line);
	free(l);
}

int delivery_log_sync(struct delivery_log *l)
{
	return fdatasync(l->fd);
}

/* Text as a JSON string: bytes that are not UTF-8 (a server's reply may
 * hold any) become '?'. */
static json_t *text_value(const char *s, size_t n)
{
	json_t *v = json_stringn(s, n);
	if (v)
		return v;
	char *copy = malloc(n ? n : 1);
	if (!copy)
		return NULL;
	for (size_t i = 0; i < n; i++)
		copy[i] = (unsigned char)s[i] >= 0x80 || s[i] == '\0' ? '?' : s[i];
	v = json_stringn(copy, n);
	free(copy);
	return v;
}

static void set_text(json_t *o, const char *key, const char *s)
{
	if (s)
		json_object_set_new_nocheck(o, key, text_value(s, strlen(s)));
}

/* "2026-12-07T23:40:01.123Z" */
static json_t *time_value(int64_t ms)
{
	char buf[40];
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (!gmtime_r(&t, &tm))
		return json_null();
	size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, sizeof buf - n, ".%03dZ", (int)(ms % 1000));
	return json_string(buf);
}

static int write_object(struct delivery_log *l, json_t *o)
{
	size_t n = json_dumpb(o, l->line, LOG_LINE_MAX - 1, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (n == 0 || n >= LOG_LINE_MAX - 1) {
		errno = n ? EMSGSIZE : ENOMEM;
		return -1;
	}
	l->line[n++] = '\n';
	for (size_t done = 0; done < n;) {
		ssize_t w = write(l->fd, l->line + done, n - done);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		done += (size_t)w;
	}
	return 0;
}

int delivery_log_start(struct delivery_log *l, const char *csv, const char *template_path,
		       int64_t time_ms)
{
	char abs_csv[PATH_MAX], abs_tmpl[PATH_MAX];
	json_t *o = json_object();

	if (!o)
		return -1;
	json_object_set_new_nocheck(o, "event", json_string("start"));
	set_text(o, "csv", realpath(csv, abs_csv) ? abs_csv : csv);
	set_text(o, "template", realpath(template_path, abs_tmpl) ? abs_tmpl : template_path);
	json_object_set_new_nocheck(o, "time", time_value(time_ms));
	return write_object(l, o);
}

int delivery_log_write(struct delivery_log *l, const struct delivery_event *e)
{
	json_t *o = json_object();

	if (!o)
		return -1;
	json_object_set_new_nocheck(o, "row", json_integer((json_int_t)e->row));
	json_object_set_new_nocheck(o, "line", json_integer((json_int_t)e->line));
	json_object_set_new_nocheck(o, "offset", json_integer((json_int_t)e->offset));
	set_text(o, "rcpt", e->rcpt);
	json_object_set_new_nocheck(o, "attempt", json_integer(e->attempt));
	json_object_set_new_nocheck(o, "outcome", json_string(delivery_outcome_name(e->outcome)));
	if (e->code > 0)
		json_object_set_new_nocheck(o, "code", json_integer(e->code));
	if (e->enhanced && e->enhanced[0])
		set_text(o, "enhanced", e->enhanced);
	if (e->text)
		json_object_set_new_nocheck(o, "text", text_value(e->text, e->text_len));
	set_text(o, "phase", e->phase);
	set_text(o, "class", e->cls);
	set_text(o, "action", e->action);
	set_text(o, "rule", e->rule);
	set_text(o, "relay", e->relay);
	set_text(o, "tls", e->tls);
	if (e->latency_ms >= 0)
		json_object_set_new_nocheck(o, "latency_ms", json_real((double)(int64_t)(e->latency_ms * 10) / 10));
	set_text(o, "message_id", e->message_id);
	json_object_set_new_nocheck(o, "time", time_value(e->time_ms));
	if (e->retry_at_ms > 0)
		json_object_set_new_nocheck(o, "retry_at", time_value(e->retry_at_ms));
	return write_object(l, o);
}

/* "2026-12-07T23:40:01.123Z" back to ms since 1970, or -1. */
static int64_t parse_time(const char *s)
{
	struct tm tm = { 0 };
	int ms = 0;
	const char *rest = s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;

	if (!rest || sscanf(rest, ".%3dZ", &ms) != 1)
		return -1;
	return (int64_t)timegm(&tm) * 1000 + ms;
}

int delivery_log_replay(const char *path, const char *csv,
			void (*seen)(void *ud, const struct delivery_seen *s), void *ud,
			unsigned long *skipped, char *err, size_t errlen)
{
	char abs_csv[PATH_MAX];
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	unsigned long lineno = 0;
	int rc = 0;

	*skipped = 0;
	if (!f) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (!realpath(csv, abs_csv))
		snprintf(abs_csv, sizeof abs_csv, "%s", csv);
	while ((n = getline(&line, &cap, f)) > 0) {
		lineno++;
		json_t *o = json_loadb(line, (size_t)n, 0, NULL);
		if (!json_is_object(o)) {
			(*skipped)++;
			json_decref(o);
			continue;
		}
		const char *ev = json_string_value(json_object_get(o, "event"));
		if (ev && strcmp(ev, "start") == 0) {
			const char *was = json_string_value(json_object_get(o, "csv"));
			if (was && strcmp(was, abs_csv) != 0) {
				snprintf(err, errlen, "%s:%lu: this log belongs to a send of %s, not %s",
					 path, lineno, was, abs_csv);
				json_decref(o);
				rc = -1;
				break;
			}
			json_decref(o);
			continue;
		}
		json_t *row = json_object_get(o, "row");
		const char *outcome = json_string_value(json_object_get(o, "outcome"));
		int oc = outcome ? delivery_outcome_by_name(outcome) : -1;
		if (!json_is_integer(row) || json_integer_value(row) < 1 || oc < 0) {
			(*skipped)++;
			json_decref(o);
			continue;
		}
		struct delivery_seen s = {
			.row = (unsigned long)json_integer_value(row),
			.offset = json_is_integer(json_object_get(o, "offset"))
				  ? (int64_t)json_integer_value(json_object_get(o, "offset")) : -1,
			.attempt = (unsigned)json_integer_value(json_object_get(o, "attempt")),
			.outcome = (enum delivery_outcome)oc,
			.time_ms = parse_time(json_string_value(json_object_get(o, "time"))),
			.retry_at_ms = parse_time(json_string_value(json_object_get(o, "retry_at"))),
		};
		seen(ud, &s);
		json_decref(o);
	}
	if (rc == 0 && ferror(f)) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		rc = -1;
	}
	free(line);
	fclose(f);
	return rc;
}
