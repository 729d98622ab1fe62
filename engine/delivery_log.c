/* delivery_log: see delivery_log.h. Lines are written by hand into a buffer
 * (no allocation per line) and read back with jansson. */
#include "engine/delivery_log.h"
#include "engine/line_append.h"
#include "templates/utf8.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_BUF_SIZE (256u << 10)   /* lines waiting for delivery_log_flush */
#define LOG_LINE_ROOM (64u << 10)   /* room a line may take: a reply's 4 KB escaped, and more */

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
	char *buf;               /* LOG_BUF_SIZE: whole lines, not yet written */
	size_t used;
	int overflow;            /* the line being written did not fit */
	int64_t stamp_s;         /* the second stamp[] spells, or -1 */
	char stamp[24];          /* "2026-12-07T23:40:01" */
};

struct delivery_log *delivery_log_open(const char *path, char *err, size_t errlen)
{
	struct delivery_log *l = calloc(1, sizeof *l);

	if (!l || !(l->buf = malloc(LOG_BUF_SIZE))) {
		snprintf(err, errlen, "%s: out of memory", path);
		free(l);
		return NULL;
	}
	l->stamp_s = -1;
	l->fd = line_append_open(path);
	if (l->fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		free(l->buf);
		free(l);
		return NULL;
	}
	return l;
}

int delivery_log_flush(struct delivery_log *l)
{
	for (size_t done = 0; done < l->used;) {
		ssize_t w = write(l->fd, l->buf + done, l->used - done);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			/* keep what was not written, for a later try */
			memmove(l->buf, l->buf + done, l->used - done);
			l->used -= done;
			return -1;
		}
		done += (size_t)w;
	}
	l->used = 0;
	return 0;
}

void delivery_log_close(struct delivery_log *l)
{
	if (!l)
		return;
	delivery_log_flush(l);
	close(l->fd);
	free(l->buf);
	free(l);
}

int delivery_log_sync(struct delivery_log *l)
{
	if (delivery_log_flush(l) != 0)
		return -1;
	return fdatasync(l->fd);
}

/* ---- a line of JSON, written by hand: no allocation per line ---- */

static void put(struct delivery_log *l, const char *s, size_t n)
{
	if (l->used + n > LOG_BUF_SIZE) {
		l->overflow = 1;
		return;
	}
	memcpy(l->buf + l->used, s, n);
	l->used += n;
}

/* s[0..n) as a JSON string's inside: quotes, backslashes and control bytes
 * escaped; bytes of text that is not UTF-8 (a server's reply may hold
 * any) become '?'. */
static void put_escaped(struct delivery_log *l, const char *s, size_t n)
{
	int utf8 = utf8_check(s, n) == n;
	size_t run = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c != '"' && c != '\\' && (c < 0x80 || utf8))
			continue;
		put(l, s + run, i - run);
		run = i + 1;
		char esc[8];
		if (c >= 0x80)
			put(l, "?", 1);
		else if (c == '"' || c == '\\')
			put(l, (const char[]){ '\\', (char)c }, 2);
		else if (c == '\n')
			put(l, "\\n", 2);
		else if (c == '\r')
			put(l, "\\r", 2);
		else if (c == '\t')
			put(l, "\\t", 2);
		else
			put(l, esc, (size_t)snprintf(esc, sizeof esc, "\\u%04x", c));
	}
	put(l, s + run, n - run);
}

/* ,"key": (the first key of a line passes first = 1) */
static void put_key(struct delivery_log *l, const char *key, int first)
{
	put(l, first ? "{\"" : ",\"", 2);
	put(l, key, strlen(key));
	put(l, "\":", 2);
}

static void put_text(struct delivery_log *l, const char *key, const char *s, size_t n)
{
	put_key(l, key, 0);
	put(l, "\"", 1);
	put_escaped(l, s, n);
	put(l, "\"", 1);
}

static void put_str(struct delivery_log *l, const char *key, const char *s)
{
	if (s)
		put_text(l, key, s, strlen(s));
}

static void put_num(struct delivery_log *l, const char *key, long long v, int first)
{
	char num[24];
	put_key(l, key, first);
	put(l, num, (size_t)snprintf(num, sizeof num, "%lld", v));
}

/* "2026-12-07T23:40:01.123Z", the second's part made once a second */
static void put_time(struct delivery_log *l, const char *key, int64_t ms)
{
	char frac[8];
	int64_t sec = ms / 1000;

	if (sec != l->stamp_s) {
		time_t t = (time_t)sec;
		struct tm tm;
		if (!gmtime_r(&t, &tm) || !strftime(l->stamp, sizeof l->stamp, "%Y-%m-%dT%H:%M:%S", &tm))
			snprintf(l->stamp, sizeof l->stamp, "1970-01-01T00:00:00");
		l->stamp_s = sec;
	}
	put_key(l, key, 0);
	put(l, "\"", 1);
	put(l, l->stamp, strlen(l->stamp));
	put(l, frac, (size_t)snprintf(frac, sizeof frac, ".%03dZ\"", (int)(ms % 1000)));
}

/* Ends the line begun at start: kept whole, or taken back whole. */
static int end_line(struct delivery_log *l, size_t start)
{
	put(l, "}\n", 2);
	if (!l->overflow && l->used - start <= LOG_LINE_ROOM)
		return 0;
	l->used = start;
	l->overflow = 0;
	errno = EMSGSIZE;
	return -1;
}

/* Room for a line: what waits goes to the file first when it is short. */
static int make_room(struct delivery_log *l)
{
	return LOG_BUF_SIZE - l->used >= LOG_LINE_ROOM ? 0 : delivery_log_flush(l);
}

int delivery_log_start(struct delivery_log *l, const char *csv, const char *template_path,
		       int64_t time_ms)
{
	char abs_csv[PATH_MAX], abs_tmpl[PATH_MAX];

	if (make_room(l) != 0)
		return -1;
	size_t start = l->used;
	put_key(l, "event", 1);
	put(l, "\"start\"", 7);
	put_str(l, "csv", realpath(csv, abs_csv) ? abs_csv : csv);
	put_str(l, "template", realpath(template_path, abs_tmpl) ? abs_tmpl : template_path);
	put_time(l, "time", time_ms);
	if (end_line(l, start) != 0)
		return -1;
	return delivery_log_flush(l);
}

int delivery_log_write(struct delivery_log *l, const struct delivery_event *e)
{
	if (make_room(l) != 0)
		return -1;
	size_t start = l->used;
	put_num(l, "row", (long long)e->row, 1);
	put_num(l, "line", (long long)e->line, 0);
	put_num(l, "offset", (long long)e->offset, 0);
	put_str(l, "rcpt", e->rcpt);
	put_num(l, "attempt", e->attempt, 0);
	put_str(l, "outcome", delivery_outcome_name(e->outcome));
	if (e->code > 0)
		put_num(l, "code", e->code, 0);
	if (e->enhanced && e->enhanced[0])
		put_str(l, "enhanced", e->enhanced);
	if (e->text)
		put_text(l, "text", e->text, e->text_len);
	put_str(l, "phase", e->phase);
	put_str(l, "class", e->cls);
	put_str(l, "action", e->action);
	put_str(l, "rule", e->rule);
	put_str(l, "relay", e->relay);
	put_str(l, "tls", e->tls);
	if (e->latency_ms >= 0) {
		char num[32];
		put_key(l, "latency_ms", 0);
		put(l, num, (size_t)snprintf(num, sizeof num, "%.1f", e->latency_ms));
	}
	put_str(l, "message_id", e->message_id);
	put_time(l, "time", e->time_ms);
	if (e->retry_at_ms > 0)
		put_time(l, "retry_at", e->retry_at_ms);
	return end_line(l, start);
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
