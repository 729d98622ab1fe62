/* delivery_log: what happened to every job, one JSON object a line (JSON
 * Lines), appended as it happens. It is the send's report and its
 * journal: a send started again with the same log skips every row whose
 * outcome is final and retries the rest (at-least-once: a row delivered
 * whose line was never written is sent again).
 *
 * A send writes a "start" line first (the CSV and template it reads), then
 * one line per recipient attempt:
 *
 *   {"row":12,"line":13,"offset":517,"rcpt":"a@b.test","attempt":1,"outcome":"deferred",
 *    "code":451,"enhanced":"4.3.0","text":"...","phase":"rcpt",
 *    "class":"transient_failure","action":"soft","rule":"...",
 *    "relay":"smtp://127.0.0.1:2525","tls":"TLSv1.3","latency_ms":12.5,
 *    "message_id":"<...>","time":"2026-12-07T23:40:01.123Z",
 *    "retry_at":"2026-12-07T23:41:01.123Z"}
 *
 * Keys without a value for an outcome are left out (a suppressed row has no
 * code). Lines wait in a buffer until delivery_log_flush (a send flushes
 * once per loop iteration, so at most the lines of one iteration are lost
 * to a kill, and their rows go again), then go in whole-line writes to a
 * file opened with O_APPEND; delivery_log_sync makes them durable. */
#ifndef VOLLEY_DELIVERY_LOG_H
#define VOLLEY_DELIVERY_LOG_H

#include <stddef.h>
#include <stdint.h>

enum delivery_outcome {
	OUTCOME_DELIVERED,    /* 250 */
	OUTCOME_BOUNCED,      /* a hard refusal of the recipient: suppressed */
	OUTCOME_FAILED,       /* refused for good, not the recipient's fault */
	OUTCOME_DEFERRED,     /* a temporary failure: retried */
	OUTCOME_EXPIRED,      /* deferred until its attempts or age ran out */
	OUTCOME_SUPPRESSED,   /* on the suppression list: never attempted */
	OUTCOME_INVALID,      /* the job itself is bad (row, address, render) */
	OUTCOME_COUNT
};

const char *delivery_outcome_name(enum delivery_outcome o);
/* The outcome named name, or -1. */
int delivery_outcome_by_name(const char *name);
/* Every outcome but deferred is final. */
static inline int delivery_outcome_final(enum delivery_outcome o)
{
	return o != OUTCOME_DEFERRED;
}

/* One attempt (or a job that never got one). Strings may be NULL (left
 * out); numbers below zero are left out. */
struct delivery_event {
	unsigned long row, line;
	int64_t offset;                 /* the byte the row starts at in the CSV */
	const char *rcpt;
	unsigned attempt;               /* 0: no attempt (suppressed, invalid) */
	enum delivery_outcome outcome;
	int code;                       /* 0: no reply */
	const char *enhanced;
	const char *text;               /* the reply's, or why the job is invalid */
	size_t text_len;
	const char *phase;
	const char *cls, *action, *rule;
	const char *relay;
	const char *tls;
	double latency_ms;              /* < 0: none */
	const char *message_id;
	int64_t time_ms;                /* wall clock, ms since 1970 */
	int64_t retry_at_ms;            /* deferred: when; 0 none */
};

struct delivery_log;

/* Opens (creating) path for appending; a last line left without its LF
 * (a crash in the middle of a write) is ended first, so the next line
 * stands alone. Returns NULL with the reason in err. */
struct delivery_log *delivery_log_open(const char *path, char *err, size_t errlen);
/* Writes the "start" line (the files a send reads) and flushes. */
int delivery_log_start(struct delivery_log *l, const char *csv, const char *template_path,
		       int64_t time_ms);
/* Appends e to the buffer (flushing first when it is nearly full).
 * Returns 0, or -1 with errno (a line too long, or the flush failed). */
int delivery_log_write(struct delivery_log *l, const struct delivery_event *e);
/* Writes the waiting lines. Returns 0, or -1 with errno (what was not
 * written waits for the next try). */
int delivery_log_flush(struct delivery_log *l);
/* Flushes, then fdatasync. Returns 0 or -1 with errno. */
int delivery_log_sync(struct delivery_log *l);
void delivery_log_close(struct delivery_log *l);

/* What a log says of one attempt, for a send that starts again. */
struct delivery_seen {
	unsigned long row;
	int64_t offset;                 /* -1: not in the line */
	unsigned attempt;
	enum delivery_outcome outcome;
	int64_t time_ms;
	int64_t retry_at_ms;
};

/* Reads the log at path (a missing file is an empty log) and calls seen
 * for every attempt line, in order. A log started for another CSV file
 * than csv (compared as absolute paths) is refused. Lines that do not
 * parse (the last one, cut by a crash) are skipped and counted in
 * *skipped. Returns 0, or -1 with the reason in err. */
int delivery_log_replay(const char *path, const char *csv,
			void (*seen)(void *ud, const struct delivery_seen *s), void *ud,
			unsigned long *skipped, char *err, size_t errlen);

#endif
