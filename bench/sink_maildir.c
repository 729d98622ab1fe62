/* sink_maildir: one file per accepted message. See sink_maildir.h. */
#include "bench/sink_maildir.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAILDIR_PATH_MAX 4096
#define MAILDIR_BUF (64 * 1024)

struct sink_mail {
	FILE *f;
	int failed;
	char tmp[MAILDIR_PATH_MAX];
	char dst[MAILDIR_PATH_MAX];
};

int sink_maildir_init(const char *dir, char *err, size_t errlen)
{
	static const char *const subs[] = { "", "/tmp", "/new", "/cur" };
	char path[MAILDIR_PATH_MAX];
	for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
		if (snprintf(path, sizeof path, "%s%s", dir, subs[i]) >= (int)sizeof path) {
			snprintf(err, errlen, "%s: path too long", dir);
			return -1;
		}
		if (mkdir(path, 0755) != 0 && errno != EEXIST) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			return -1;
		}
	}
	return 0;
}

struct sink_mail *sink_mail_begin(const char *dir, uint64_t unique, const struct sink_view *v,
				  const char *client)
{
	struct sink_mail *m = calloc(1, sizeof *m);
	if (!m)
		return NULL;
	char host[256];
	if (gethostname(host, sizeof host) != 0)
		strcpy(host, "localhost");
	host[sizeof host - 1] = 0;
	/* Maildir names may not hold '/' or ':'. */
	for (char *p = host; *p; p++)
		if (*p == '/' || *p == ':')
			*p = '_';
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	char name[512];
	snprintf(name, sizeof name, "%lld.M%ldP%dQ%llu.%s", (long long)ts.tv_sec, ts.tv_nsec / 1000,
		 (int)getpid(), (unsigned long long)unique, host);
	if (snprintf(m->tmp, sizeof m->tmp, "%s/tmp/%s", dir, name) >= (int)sizeof m->tmp ||
	    snprintf(m->dst, sizeof m->dst, "%s/new/%s", dir, name) >= (int)sizeof m->dst) {
		free(m);
		errno = ENAMETOOLONG;
		return NULL;
	}
	m->f = fopen(m->tmp, "wbx");
	if (!m->f) {
		int e = errno;
		free(m);
		errno = e;
		return NULL;
	}
	setvbuf(m->f, NULL, _IOFBF, MAILDIR_BUF);
	fprintf(m->f, "X-Volley-Mail-From: <%s>\r\n", v->from);
	const char *r = v->rcpts;
	for (unsigned i = 0; i < v->nrcpt; i++) {
		fprintf(m->f, "X-Volley-Rcpt-To: <%s>\r\n", r);
		r += strlen(r) + 1;
	}
	fprintf(m->f, "X-Volley-Helo: %s\r\nX-Volley-Client: %s\r\nX-Volley-TLS: %s\r\n", v->helo,
		client && *client ? client : "unknown", v->secure ? "yes" : "no");
	return m;
}

void sink_mail_write(struct sink_mail *m, const char *p, size_t n)
{
	if (!m->failed && fwrite(p, 1, n, m->f) != n)
		m->failed = 1;
}

int sink_mail_end(struct sink_mail *m, int keep)
{
	int bad = fclose(m->f) != 0 || m->failed;
	int ret = 0;
	if (keep && !bad && rename(m->tmp, m->dst) == 0) {
		ret = 0;
	} else {
		unlink(m->tmp);
		ret = keep ? -1 : 0;
	}
	free(m);
	return ret;
}
