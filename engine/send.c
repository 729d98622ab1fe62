/* volley send: a CSV batch, sent. Every data row of a CSV file is one
 * recipient: its address from one column, its message the template
 * rendered with the row. The messages go over a pool of persistent,
 * pipelined sessions to one relay; every recipient's outcome (with the full
 * reply, its class and what was done about it) is appended to the delivery
 * log, which is also the journal a send resumes from.
 *
 * A row's life: read, checked against the suppression list, rendered,
 * submitted. Its reply is classified (ratelimit/reply_class): delivered,
 * bounced (suppressed at once), failed, or deferred and retried on a
 * backoff until its attempts or age run out (expired). A deferred row is
 * kept as its place in the file, not as its message: it is read and
 * rendered again when its retry is due. What is in flight is bounded by a
 * window of job slots, each with a reusable message buffer.
 *
 * SIGINT or SIGTERM stops reading rows; what is in flight finishes and is
 * logged, and the send can be started again with the same log. A second
 * signal leaves at once (the log still says what was finished). */
#include "engine/campaign_setup.h"
#include "engine/cli.h"
#include "engine/commands.h"
#include "engine/csv_source.h"
#include "engine/delivery_log.h"
#include "engine/outcome_class.h"
#include "engine/retry.h"
#include "engine/suppress.h"
#include "pool/pool.h"
#include "pool/sasl.h"
#include "ratelimit/limits.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

enum send_exit {
	SEND_OK = 0,          /* every row delivered (or suppressed) */
	SEND_USAGE = 1,
	SEND_SETUP = 2,       /* a file, the template, a key or the relay is unusable */
	SEND_UNDELIVERED = 3, /* every row is final, some not delivered */
	SEND_STOPPED = 4,     /* stopped (a signal, or the log failed): resume with the same log */
};

#define SEND_BATCH_US 200        /* completion batching (loop_set_batching) */
#define SEND_DEFAULT_CONNS 4
#define SEND_DEFAULT_INFLIGHT 32
#define SEND_SYNC_MS 1000        /* the log reaches the disk at least this often */
#define SEND_ROWS_MAX (1ul << 32) /* rows a send can resume */

/* One message in flight. The pool hands back &m, so it comes first. */
struct send_job {
	struct smtp_msg m;
	const char *rcpt_list[1];
	unsigned long row, line;
	off_t offset;
	unsigned attempt;            /* this one's number, from 1 */
	int64_t first_ms;            /* wall clock of the row's first attempt */
	uint64_t submit_ns;          /* monotonic, for the latency */
	int reported;                /* its recipient's outcome is logged */
	char rcpt[SUPPRESS_ADDR_MAX + 1];
	char from[1 + MIME_LOCAL_MAX + 1 + MIME_DOMAIN_MAX + 1];
	char message_id[MIME_MSGID_MAX];
	char *body;
	size_t body_cap;
};

/* A deferred row, due again at due_ms (wall clock). */
struct retry_item {
	int64_t due_ms;
	int64_t first_ms;
	unsigned long row, line;
	off_t offset;
	unsigned attempts;           /* made so far */
};

/* What an earlier run's log says of a row. */
struct row_state {
	int64_t offset;              /* where the row started when it was logged */
	unsigned attempts;
	uint8_t final;
	uint8_t outcome;             /* enum delivery_outcome, the last one */
	int64_t first_ms;
	int64_t retry_at_ms;
};

struct send {
	/* configuration */
	const char *csv_path, *template_path, *log_path, *from, *relay_text;
	int to_col;
	int lmtp;
	struct retry_policy policy;
	const struct reply_rules *rules;
	/* the parts */
	struct csv_source *src;
	struct campaign_template *tmpl;
	struct campaign_renderer *renderer;
	struct campaign_csv cc;
	struct suppress *suppress;
	struct delivery_log *log;
	struct loop *loop;
	struct pool *pool;
	struct pool_dest *dest;
	struct limit_entry *limit;   /* --rate; NULL: none */
	/* jobs: a window of slots and a stack of the free ones */
	struct send_job *jobs;
	unsigned njobs, *free_slots, nfree;
	/* deferred rows: a binary heap on due_ms */
	struct retry_item *heap;
	size_t nheap, heap_cap;
	/* an earlier run's log, by row */
	struct row_state *seen;
	size_t nseen;
	/* progress */
	int csv_done, stopping, log_failed;
	int unfinished;              /* a row was left neither final nor queued: exit 4 */
	int caps_changed;            /* the backoff moved the caps: give them to the pool */
	uint64_t rate_wait_ns;       /* --rate: nothing goes before this (monotonic) */
	uint64_t session_note_ms;    /* the last relay failure printed (loop clock) */
	uint64_t last_sync_ms;
	unsigned long rows, skipped, attempts, log_skipped;
	unsigned long skipped_undelivered;   /* of the skipped: not delivered nor suppressed */
	unsigned long counts[OUTCOME_COUNT];
};

static volatile sig_atomic_t signals_seen;

static void on_signal(int sig)
{
	if (++signals_seen >= 2) {
		signal(sig, SIG_DFL);
		raise(sig);
	}
}

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- the retry heap ---- */

static void heap_swap(struct retry_item *a, struct retry_item *b)
{
	struct retry_item t = *a;
	*a = *b;
	*b = t;
}

static int heap_push(struct send *s, const struct retry_item *it)
{
	if (s->nheap == s->heap_cap) {
		size_t cap = s->heap_cap ? s->heap_cap * 2 : 256;
		struct retry_item *h = realloc(s->heap, cap * sizeof *h);
		if (!h)
			return -1;
		s->heap = h;
		s->heap_cap = cap;
	}
	size_t i = s->nheap++;
	s->heap[i] = *it;
	while (i > 0 && s->heap[(i - 1) / 2].due_ms > s->heap[i].due_ms) {
		heap_swap(&s->heap[(i - 1) / 2], &s->heap[i]);
		i = (i - 1) / 2;
	}
	return 0;
}

static void heap_pop(struct send *s, struct retry_item *out)
{
	*out = s->heap[0];
	s->heap[0] = s->heap[--s->nheap];
	for (size_t i = 0;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < s->nheap && s->heap[l].due_ms < s->heap[m].due_ms)
			m = l;
		if (r < s->nheap && s->heap[r].due_ms < s->heap[m].due_ms)
			m = r;
		if (m == i)
			break;
		heap_swap(&s->heap[i], &s->heap[m]);
		i = m;
	}
}

/* ---- the log ---- */

static void log_event(struct send *s, struct delivery_event *e)
{
	e->time_ms = wall_ms();
	s->counts[e->outcome]++;
	if (delivery_log_write(s->log, e) != 0 && !s->log_failed) {
		/* Without its journal the send cannot account for what it
		 * does: stop taking rows; what is in flight still finishes. */
		fprintf(stderr, "volley send: %s: %s: stopping\n", s->log_path, strerror(errno));
		s->log_failed = 1;
		s->stopping = 1;
	}
}

/* A row that gets no attempt: suppressed, or invalid (why says it). */
static void log_unsent(struct send *s, const struct csv_record *rec, const char *rcpt,
		       unsigned attempts, enum delivery_outcome oc, const char *why)
{
	struct delivery_event e = {
		.row = rec->row, .line = rec->line, .offset = rec->offset, .rcpt = rcpt,
		.attempt = attempts, .outcome = oc,
		.text = why, .text_len = why ? strlen(why) : 0, .latency_ms = -1,
	};
	log_event(s, &e);
}

/* ---- the rate limit and its backoff ---- */

/* Applied from the main loop, not from inside the pool's callbacks (a
 * new cap makes the pool dispatch). */
static void apply_limits(struct send *s)
{
	struct backoff_limits bl;
	s->caps_changed = 0;
	limit_caps(s->limit, &bl);
	pool_dest_set_caps(s->dest, bl.conns, bl.msgs_per_conn);
}

/* ---- outcomes ---- */

/* The phases of a session before any transaction: a failure there is the
 * relay's (or our setup's), never the message's. */
static int session_phase(enum smtp_phase p)
{
	return p == SMTP_PHASE_CONNECT || p == SMTP_PHASE_GREETING || p == SMTP_PHASE_EHLO ||
	       p == SMTP_PHASE_STARTTLS || p == SMTP_PHASE_AUTH || p == SMTP_PHASE_TLS;
}

/* A message that never reached a transaction: the connection, the
 * greeting, EHLO, TLS or AUTH failed, or the relay is marked down. It is
 * no attempt of the row's: it waits and goes again, with no log line (the
 * relay's trouble is printed, at most every few seconds). A 5xx there (a
 * refused AUTH, a 554 greeting) will not mend by waiting: the send stops,
 * resumable once the setup is fixed. */
static void relay_failed(struct send *s, struct send_job *j, const struct smtp_outcome *o,
			 struct delivery_event *e)
{
	const struct smtp_reply *r = o->reply;
	uint64_t now_ms = loop_now_ms(s->loop);
	/* a certificate that does not verify is our setup's too (--ca) */
	int fatal = r && (r->code >= 500 || ((o->phase == SMTP_PHASE_STARTTLS || o->phase == SMTP_PHASE_TLS) &&
					     strstr(r->text, "certificate verify failed")));

	if (fatal || !s->session_note_ms || now_ms - s->session_note_ms >= 5000) {
		fprintf(stderr, "volley send: %s: %s: %d %s%s%.*s%s\n", s->relay_text,
			smtp_phase_name(o->phase), r ? r->code : 0, r && r->enhanced[0] ? r->enhanced : "",
			r && r->enhanced[0] ? " " : "", r ? (int)r->text_len : 0, r ? r->text : "",
			fatal ? " (the send stops)" : " (rows wait and go again)");
		s->session_note_ms = now_ms ? now_ms : 1;
	}
	if (fatal)
		s->stopping = 1;
	s->attempts--;   /* it never was one */
	int64_t now = wall_ms(), at = now;
	/* not counted: the schedule of the attempts made so far */
	if (!retry_next(&s->policy, j->attempt - 1, j->first_ms, now, &at)) {
		e->attempt = j->attempt - 1;
		e->outcome = OUTCOME_EXPIRED;
		e->latency_ms = -1;
		log_event(s, e);
		return;
	}
	struct retry_item it = { at, j->first_ms, j->row, j->line, j->offset, j->attempt - 1 };
	if (heap_push(s, &it) != 0) {
		s->stopping = 1;
		s->unfinished = 1;
	}
}

static void on_rcpt_done(void *user, const struct pool_outcome *po)
{
	struct send *s = user;
	const struct smtp_outcome *o = po->o;
	struct send_job *j = (struct send_job *)o->msg;
	const struct smtp_reply *r = o->reply;
	struct reply_verdict v = { 0 };
	struct delivery_event e = {
		.row = j->row, .line = j->line, .offset = j->offset, .rcpt = j->rcpt,
		.attempt = j->attempt, .code = r ? r->code : 0, .enhanced = r ? r->enhanced : NULL,
		.text = r ? r->text : NULL, .text_len = r ? r->text_len : 0,
		.phase = smtp_phase_name(o->phase), .relay = s->relay_text, .tls = po->tls_version,
		.latency_ms = (double)(mono_ns() - j->submit_ns) / 1e6,
		.message_id = j->message_id,
	};

	j->reported = 1;
	if (o->status != SMTP_STATUS_OK && session_phase(o->phase)) {
		relay_failed(s, j, o, &e);
		return;
	}
	if (o->status == SMTP_STATUS_OK) {
		e.outcome = OUTCOME_DELIVERED;
		if (s->limit && limit_feedback(s->limit, NULL, mono_ns()))
			s->caps_changed = 1;
		log_event(s, &e);
		return;
	}
	if (o->status == SMTP_STATUS_LOCAL) {
		/* volley refused it before sending: an address that cannot be
		 * one is the row's fault; the rest (size, 8-bit data) the
		 * message's */
		e.outcome = o->phase == SMTP_PHASE_RCPT ? OUTCOME_INVALID : OUTCOME_FAILED;
		log_event(s, &e);
		return;
	}
	outcome_classify(s->rules, o, s->lmtp, NULL, &v);
	e.cls = reply_class_info(v.cls)->name;
	e.action = reply_action_name(v.action);
	e.rule = v.rule;
	if (s->limit && limit_feedback(s->limit, &v, mono_ns()))
		s->caps_changed = 1;
	if (v.fail) {
		e.outcome = v.suppress ? OUTCOME_BOUNCED : OUTCOME_FAILED;
		if (v.suppress && suppress_add(s->suppress, j->rcpt, strlen(j->rcpt)) < 0)
			fprintf(stderr, "volley send: the suppression list cannot take %s: %s\n", j->rcpt,
				strerror(errno));
		log_event(s, &e);
		return;
	}
	int64_t now = wall_ms(), at = now;
	if (retry_next(&s->policy, j->attempt, j->first_ms, now, &at)) {
		if (v.retry_now)   /* too many recipients: this one alone, now */
			at = now;
		struct retry_item it = { at, j->first_ms, j->row, j->line, j->offset, j->attempt };
		if (heap_push(s, &it) == 0) {
			e.outcome = OUTCOME_DEFERRED;
			e.retry_at_ms = at;
			log_event(s, &e);
			return;
		}
		/* no room to remember it: the log says deferred with no time, so
		 * the next run takes it up */
		fprintf(stderr, "volley send: row %lu: out of memory for its retry\n", j->row);
		e.outcome = OUTCOME_DEFERRED;
		log_event(s, &e);
		s->stopping = 1;
		s->unfinished = 1;
		return;
	}
	e.outcome = OUTCOME_EXPIRED;
	log_event(s, &e);
}

static void on_msg_done(void *user, const struct pool_outcome *po)
{
	struct send *s = user;
	struct send_job *j = (struct send_job *)po->o->msg;

	if (!j->reported)   /* the pool reports every recipient first; this is a guard */
		on_rcpt_done(user, po);
	s->free_slots[s->nfree++] = (unsigned)(j - s->jobs);
}

static void on_trace(void *user, char dir, const char *line, size_t len)
{
	char ts[32];
	cli_timestamp(ts, sizeof ts);
	fprintf(stderr, "%s %c %.*s\n", ts, dir, (int)len, line);
}

/* ---- rows ---- */

/* What an earlier run said of row (NULL: nothing). */
static const struct row_state *row_seen(const struct send *s, unsigned long row)
{
	return row < s->nseen && (s->seen[row].attempts || s->seen[row].final) ? &s->seen[row] : NULL;
}

static void on_seen(void *ud, const struct delivery_seen *d)
{
	struct send *s = ud;

	if (d->row > SEND_ROWS_MAX) {
		s->log_skipped++;
		return;
	}
	if (d->row >= s->nseen) {
		size_t n = s->nseen ? s->nseen : 1024;
		while (n <= d->row)
			n *= 2;
		struct row_state *g = realloc(s->seen, n * sizeof *g);
		if (!g)
			return;   /* the row is sent again: at-least-once holds */
		memset(g + s->nseen, 0, (n - s->nseen) * sizeof *g);
		s->seen = g;
		s->nseen = n;
	}
	struct row_state *st = &s->seen[d->row];
	st->offset = d->offset;
	if (d->attempt > st->attempts)
		st->attempts = d->attempt;
	if (delivery_outcome_final(d->outcome))
		st->final = 1;
	st->outcome = (uint8_t)d->outcome;
	if (d->attempt == 1 && d->time_ms > 0)
		st->first_ms = d->time_ms;
	st->retry_at_ms = d->outcome == OUTCOME_DEFERRED ? d->retry_at_ms : 0;
}

/* Renders row rec for attempt number attempt and submits it, or logs why
 * not. The caller has checked that a slot is free. */
static void send_row(struct send *s, const struct csv_record *rec, unsigned attempt,
		     int64_t first_ms)
{
	const char *rcpt = rec->fields[s->to_col];
	size_t rlen = rec->lens[s->to_col];
	char why[CAMPAIGN_ERR_MAX + 64];

	if (rlen == 0 || rlen > SUPPRESS_ADDR_MAX || memchr(rcpt, '\0', rlen)) {
		snprintf(why, sizeof why, "%s:%lu: row %lu: the address column is %s", s->csv_path,
			 rec->line, rec->row, rlen == 0 ? "empty" : rlen > SUPPRESS_ADDR_MAX ? "too long"
			 : "holding a NUL byte");
		log_unsent(s, rec, NULL, attempt - 1, OUTCOME_INVALID, why);
		return;
	}
	if (suppress_has(s->suppress, rcpt, rlen)) {
		log_unsent(s, rec, rcpt, attempt - 1, OUTCOME_SUPPRESSED, NULL);
		return;
	}
	if (s->limit) {   /* --rate: a row that must wait goes back as due then */
		uint64_t now = mono_ns(), ns = limit_take(s->limit, now, 1);
		if (ns) {
			struct retry_item it = { wall_ms() + (int64_t)(ns / 1000000u), first_ms, rec->row,
						 rec->line, rec->offset, attempt - 1 };
			s->rate_wait_ns = now + ns;
			if (heap_push(s, &it) != 0) {
				s->stopping = 1;
				s->unfinished = 1;
			}
			return;
		}
	}
	struct campaign_data d = campaign_csv_data(&s->cc, rec->fields, rec->lens, rec->n);
	struct campaign_message msg;
	if (campaign_render(s->renderer, &d, wall_ms() / 1000, &msg) != 0) {
		snprintf(why, sizeof why, "%s:%lu: row %lu: %s", s->csv_path, rec->line, rec->row,
			 campaign_renderer_errstr(s->renderer));
		log_unsent(s, rec, rcpt, attempt - 1, OUTCOME_INVALID, why);
		return;
	}
	struct send_job *j = &s->jobs[s->free_slots[s->nfree - 1]];
	size_t len = msg.dkim_len + msg.msg_len;
	if (len > j->body_cap) {
		char *b = realloc(j->body, len);
		if (!b) {
			/* not the row's fault: it stays deferred for the next run */
			fprintf(stderr, "volley send: row %lu: out of memory\n", rec->row);
			s->stopping = 1;
			s->unfinished = 1;
			return;
		}
		j->body = b;
		j->body_cap = len;
	}
	s->nfree--;
	memcpy(j->body, msg.dkim, msg.dkim_len);
	memcpy(j->body + msg.dkim_len, msg.msg, msg.msg_len);
	memcpy(j->rcpt, rcpt, rlen);
	j->rcpt[rlen] = '\0';
	snprintf(j->from, sizeof j->from, "%s", s->from ? s->from : msg.info.envelope_from);
	snprintf(j->message_id, sizeof j->message_id, "%s", msg.info.message_id);
	j->rcpt_list[0] = j->rcpt;
	j->row = rec->row;
	j->line = rec->line;
	j->offset = rec->offset;
	j->attempt = attempt;
	j->first_ms = first_ms ? first_ms : wall_ms();
	j->submit_ns = mono_ns();
	j->reported = 0;
	j->m = (struct smtp_msg){
		.from = j->from, .rcpts = j->rcpt_list, .nrcpt = 1, .body = j->body, .body_len = len,
		.need = (msg.info.needs_8bitmime ? SMTP_NEED_8BITMIME : 0u) |
			(msg.info.needs_smtputf8 ? SMTP_NEED_SMTPUTF8 : 0u),
	};
	s->attempts++;
	if (pool_submit(s->dest, &j->m) != 0) {
		/* the queue is never fuller than the window: not expected */
		s->free_slots[s->nfree++] = (unsigned)(j - s->jobs);
		log_unsent(s, rec, j->rcpt, attempt, OUTCOME_DEFERRED,
			   "the relay's queue is full");
		s->stopping = 1;
		s->unfinished = 1;
	}
}

/* A row just read (or read again): skipped when an earlier run finished
 * it, put off when its retry is not due, sent otherwise. */
static void take_row(struct send *s, const struct csv_record *rec)
{
	const struct row_state *st = row_seen(s, rec->row);

	s->rows++;
	if (st && st->offset >= 0 && st->offset != (int64_t)rec->offset) {
		fprintf(stderr, "volley send: %s:%lu: row %lu starts at byte %lld, but the log has it "
			"at %lld: the file changed since the log was written\n", s->csv_path, rec->line,
			rec->row, (long long)rec->offset, (long long)st->offset);
		s->stopping = 1;
		s->unfinished = 1;
		return;
	}
	if (st && st->final) {
		s->skipped++;
		s->skipped_undelivered += st->outcome != OUTCOME_DELIVERED &&
					  st->outcome != OUTCOME_SUPPRESSED;
		return;
	}
	if (st && st->retry_at_ms > wall_ms()) {
		struct retry_item it = { st->retry_at_ms, st->first_ms, rec->row, rec->line,
					 rec->offset, st->attempts };
		if (heap_push(s, &it) == 0)
			return;
	}
	send_row(s, rec, st ? st->attempts + 1 : 1, st ? st->first_ms : 0);
}

/* Puts rows in flight while there is room: due retries first, then the
 * file. Returns how long the loop may wait (ms) before it is worth
 * calling again for a retry or the rate limit. */
static int fill(struct send *s)
{
	char err[768];
	int wait_ms = 1000, down = 0;

	while (s->nfree && !s->stopping && !signals_seen) {
		uint64_t now_ns = mono_ns();
		if (s->rate_wait_ns > now_ns) {   /* --rate */
			uint64_t ms = (s->rate_wait_ns - now_ns) / 1000000u + 1;
			if (ms < (uint64_t)wait_ms)
				wait_ms = (int)ms;
			break;
		}
		if (pool_dest_is_down(s->dest)) {   /* what goes now would fail at once */
			down = 1;
			break;
		}
		struct csv_record rec;
		enum csv_next got;
		if (s->nheap && s->heap[0].due_ms <= wall_ms()) {
			struct retry_item it;
			heap_pop(s, &it);
			got = csv_source_read_at(s->src, it.offset, it.row, it.line, &rec, err, sizeof err);
			if (got == CSV_ROW) {
				send_row(s, &rec, it.attempts + 1, it.first_ms);
				continue;
			}
			if (got == CSV_FAILED) {   /* the row stays deferred in the log */
				fprintf(stderr, "volley send: %s: stopping\n", err);
				s->stopping = 1;
				s->unfinished = 1;
				break;
			}
		} else if (!s->csv_done) {
			got = csv_source_next(s->src, &rec, err, sizeof err);
			if (got == CSV_ROW) {
				take_row(s, &rec);
				continue;
			}
			if (got == CSV_END) {
				s->csv_done = 1;
				continue;
			}
			s->rows++;
			if (got == CSV_BAD_ROW && row_seen(s, rec.row) && row_seen(s, rec.row)->final) {
				s->skipped++;
				s->skipped_undelivered++;
				continue;
			}
		} else {
			break;
		}
		if (got == CSV_BAD_ROW) {
			log_unsent(s, &rec, NULL, 0, OUTCOME_INVALID, err);
			continue;
		}
		fprintf(stderr, "volley send: %s: stopping\n", err);   /* CSV_FAILED */
		s->stopping = 1;
		s->unfinished = 1;
	}
	if (down) {
		wait_ms = 100;   /* the pool says when it is up again only by trying */
	} else if (s->nheap && s->nfree && !s->stopping && s->rate_wait_ns <= mono_ns()) {
		/* a retry's time (with no free slot, a completion wakes the loop) */
		int64_t due = s->heap[0].due_ms - wall_ms();
		if (due < wait_ms)
			wait_ms = due > 0 ? (int)due : 0;
	}
	return wait_ms;
}

/* ---- the command ---- */

static const char send_usage[] =
"usage: volley send --template FILE --csv FILE --relay URL --log FILE [options]\n"
"\n"
"Sends one message per data row of a CSV file (the first row names the\n"
"columns): the template rendered with the row, to the address in the row's\n"
"--to-column, through the relay. Every outcome goes to the delivery log (JSON\n"
"lines); started again with the same log, a send skips the rows it finished\n"
"and retries the rest.\n"
"\n"
"URL: smtp://host[:port], smtp+starttls://host[:port], smtps://host[:port],\n"
"     lmtp://host:port, lmtp:///path/to/socket (as volley probe)\n"
"\n"
"options:\n"
"  --to-column NAME         the column with the recipient's address (default: email)\n"
"  --from ADDR              the envelope sender (default: the template's From)\n"
"  --suppress FILE          addresses never to send to, one a line; hard bounces\n"
"                           are added to it\n"
"  --connections N          sessions to the relay (default 4)\n"
"  --max-inflight N         transactions in flight per session (default 32)\n"
"  --per-connection N       messages per session before it is closed (default: no cap)\n"
"  --rate R                 at most R messages a second; a throttling reply\n"
"                           (421 rate limit, too many connections) lowers it and\n"
"                           clean deliveries raise it again\n"
"  --max-attempts N         attempts per recipient before it expires (default 8)\n"
"  --retry-delay SECONDS    the first retry's delay, doubled every retry (default 60)\n"
"  --max-retry-delay SECONDS  the longest delay (default 3600)\n"
"  --max-age SECONDS        a recipient deferred for longer expires (default 86400)\n"
"  --bounce-rules FILE      classify replies with FILE instead of volley's rules\n"
"  --strict                 a variable the row lacks makes the row invalid\n"
"  --dkim-key KEYFILE --dkim-domain D --dkim-selector S   sign (up to twice)\n"
"  --unsubscribe-url URL    List-Unsubscribe (https) and List-Unsubscribe-Post\n"
"  --unsubscribe-mailto A   List-Unsubscribe with mailto:A\n"
"  --message-id-domain D    the Message-ID's domain (default: From's)\n"
"  --8bitmime               the relay offers 8BITMIME (text parts may go 8bit)\n"
"  --smtputf8               messages go with SMTPUTF8 (raw UTF-8 headers)\n"
"  --ehlo NAME              the EHLO name (default: send.volley.test)\n"
"  --auth-user USER         authenticate as USER; the password comes from\n"
"  --auth-password-file F   the first line of F, or $VOLLEY_AUTH_PASSWORD\n"
"  --auth-mech MECH         PLAIN, LOGIN, CRAM-MD5 or XOAUTH2 (default: the best offered)\n"
"  --auth-plaintext         allow AUTH on a connection without TLS\n"
"  --ca FILE                trust the CAs in FILE (default: the system store)\n"
"  --insecure               do not verify the relay's certificate\n"
"  --no-pipelining, --no-chunking   as volley probe\n"
"  --timeout SECONDS        the timeout for every reply (default: RFC 5321's)\n"
"  --debug                  print the SMTP transcript on stderr\n"
"\n"
"It prints a summary: rows, and how many were delivered, bounced, failed,\n"
"expired, suppressed, invalid, skipped (finished in an earlier run) and\n"
"still deferred.\n"
"\n"
"exit status (over the whole send, earlier runs with the same log too): 0 every\n"
"row delivered or suppressed; 1 usage; 2 a file, the template, a key or the\n"
"relay is unusable; 3 every row is final but some were not delivered; 4\n"
"stopped before the end (a signal): run it again with the same --log to go on.\n";

/* SECONDS, with a fraction ("0.25"), as milliseconds. */
static int parse_seconds(const char *arg, int64_t *ms)
{
	char *end;
	errno = 0;
	double v = strtod(arg, &end);
	if (errno || end == arg || *end || !(v >= 0) || v > 1e7)
		return -1;
	*ms = (int64_t)llround(v * 1000);
	return 0;
}

struct send_options {
	const char *user, *pwfile, *ca, *ehlo, *rules_path, *suppress_path;
	unsigned auth_mechs;
	int plaintext, insecure, no_pipe, no_chunk, debug;
	unsigned long long conns, inflight, per_conn, rate;
	int64_t timeout_ms;
};

static void print_summary(const struct send *s, double elapsed_s)
{
	printf("rows %lu\n", s->rows);
	printf("skipped %lu\n", s->skipped);
	printf("skipped_undelivered %lu\n", s->skipped_undelivered);
	for (int i = 0; i < OUTCOME_COUNT; i++)
		if (i != OUTCOME_DEFERRED)
			printf("%s %lu\n", delivery_outcome_name((enum delivery_outcome)i), s->counts[i]);
	printf("deferred_attempts %lu\n", s->counts[OUTCOME_DEFERRED]);
	printf("still_deferred %zu\n", s->nheap);
	printf("attempts %lu\n", s->attempts);
	printf("elapsed_s %.3f\n", elapsed_s);
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) == 0)
		printf("cpu_s %.3f\n", (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
		       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
	if (elapsed_s > 0)
		printf("attempts_per_s %.0f\n", (double)s->attempts / elapsed_s);
	if (s->log_skipped)
		printf("log_lines_unread %lu\n", s->log_skipped);
}

/* Builds the pool and its destination. Returns 0, or -1 with err. */
static int setup_pool(struct send *s, const struct send_options *so, struct pool_dest_config *dc,
		      char *err, size_t errlen)
{
	struct pool_callbacks cb = { on_rcpt_done, on_msg_done, so->debug ? on_trace : NULL };

	s->loop = loop_new(4096);
	if (!s->loop) {
		snprintf(err, errlen, "io_uring: %s", strerror(errno));
		return -1;
	}
	loop_set_batching(s->loop, SEND_BATCH_US);
	s->pool = pool_new(s->loop, &cb, s);
	if (!s->pool) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	s->dest = pool_dest_new(s->pool, dc, err, errlen);
	return s->dest ? 0 : -1;
}

int volley_send(int argc, char **argv)
{
	enum { O_TEMPLATE = 256, O_CSV, O_RELAY, O_LOG, O_TO_COL, O_FROM, O_SUPPRESS, O_CONNS,
	       O_INFLIGHT, O_PER_CONN, O_RATE, O_ATTEMPTS, O_RETRY, O_MAX_RETRY, O_AGE, O_RULES,
	       O_EHLO, O_USER, O_PWFILE, O_MECH, O_PLAIN, O_CA, O_INSECURE, O_NOPIPE,
	       O_NOCHUNK, O_TIMEOUT, O_DEBUG };
	static const struct option opts[] = {
		{ "template", required_argument, 0, O_TEMPLATE },
		{ "csv", required_argument, 0, O_CSV },
		{ "relay", required_argument, 0, O_RELAY },
		{ "log", required_argument, 0, O_LOG },
		{ "to-column", required_argument, 0, O_TO_COL },
		{ "from", required_argument, 0, O_FROM },
		{ "suppress", required_argument, 0, O_SUPPRESS },
		{ "connections", required_argument, 0, O_CONNS },
		{ "max-inflight", required_argument, 0, O_INFLIGHT },
		{ "per-connection", required_argument, 0, O_PER_CONN },
		{ "rate", required_argument, 0, O_RATE },
		{ "max-attempts", required_argument, 0, O_ATTEMPTS },
		{ "retry-delay", required_argument, 0, O_RETRY },
		{ "max-retry-delay", required_argument, 0, O_MAX_RETRY },
		{ "max-age", required_argument, 0, O_AGE },
		{ "bounce-rules", required_argument, 0, O_RULES },
		CAMPAIGN_LONG_OPTIONS,
		{ "ehlo", required_argument, 0, O_EHLO },
		{ "auth-user", required_argument, 0, O_USER },
		{ "auth-password-file", required_argument, 0, O_PWFILE },
		{ "auth-mech", required_argument, 0, O_MECH },
		{ "auth-plaintext", no_argument, 0, O_PLAIN },
		{ "ca", required_argument, 0, O_CA },
		{ "insecure", no_argument, 0, O_INSECURE },
		{ "no-pipelining", no_argument, 0, O_NOPIPE },
		{ "no-chunking", no_argument, 0, O_NOCHUNK },
		{ "timeout", required_argument, 0, O_TIMEOUT },
		{ "debug", no_argument, 0, O_DEBUG },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	struct send s = { .to_col = -1 };
	struct send_options so = { .conns = SEND_DEFAULT_CONNS, .inflight = SEND_DEFAULT_INFLIGHT };
	struct campaign_opts co = { 0 };
	struct dkim_setup ds = { 0 };
	const char *to_column = "email";
	unsigned long long v;
	int64_t ms;
	int c;

	retry_policy_default(&s.policy);
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case O_TEMPLATE: s.template_path = optarg; break;
		case O_CSV: s.csv_path = optarg; break;
		case O_RELAY: s.relay_text = optarg; break;
		case O_LOG: s.log_path = optarg; break;
		case O_TO_COL: to_column = optarg; break;
		case O_FROM: s.from = optarg; break;
		case O_SUPPRESS: so.suppress_path = optarg; break;
		case O_CONNS:
		case O_INFLIGHT:
		case O_PER_CONN:
		case O_RATE:
		case O_ATTEMPTS:
			if (cli_parse_count(optarg, &v, 0) < 0 || v == 0 || v > 1000000) {
				fprintf(stderr, "volley send: %s: want a number from 1 to 1m\n", optarg);
				return SEND_USAGE;
			}
			if (c == O_CONNS) so.conns = v;
			else if (c == O_INFLIGHT) so.inflight = v;
			else if (c == O_PER_CONN) so.per_conn = v;
			else if (c == O_RATE) so.rate = v;
			else s.policy.max_attempts = (unsigned)v;
			break;
		case O_RETRY:
		case O_MAX_RETRY:
		case O_AGE:
		case O_TIMEOUT:
			if (parse_seconds(optarg, &ms) != 0) {
				fprintf(stderr, "volley send: %s: want seconds (a fraction is fine)\n", optarg);
				return SEND_USAGE;
			}
			if (c == O_RETRY) s.policy.base_ms = ms;
			else if (c == O_MAX_RETRY) s.policy.max_delay_ms = ms;
			else if (c == O_AGE) s.policy.max_age_ms = ms;
			else so.timeout_ms = ms ? (ms < 86400000 ? ms : 86400000) : 1;
			break;
		case O_RULES: so.rules_path = optarg; break;
		case O_EHLO: so.ehlo = optarg; break;
		case O_USER: so.user = optarg; break;
		case O_PWFILE: so.pwfile = optarg; break;
		case O_MECH:
			so.auth_mechs = sasl_mech_from_name(optarg);
			if (!so.auth_mechs) {
				fprintf(stderr, "volley send: --auth-mech %s: not one of PLAIN, LOGIN, "
					"CRAM-MD5, XOAUTH2\n", optarg);
				return SEND_USAGE;
			}
			break;
		case O_PLAIN: so.plaintext = 1; break;
		case O_CA: so.ca = optarg; break;
		case O_INSECURE: so.insecure = 1; break;
		case O_NOPIPE: so.no_pipe = 1; break;
		case O_NOCHUNK: so.no_chunk = 1; break;
		case O_DEBUG: so.debug = 1; break;
		case 'h': fputs(send_usage, stdout); return SEND_OK;
		default:
			if (campaign_option(c, optarg, &co, &ds, "send", send_usage) != 0)
				return SEND_USAGE;
			break;
		}
	}
	if (optind != argc || !s.template_path || !s.csv_path || !s.relay_text || !s.log_path) {
		fprintf(stderr, "volley send: --template, --csv, --relay and --log are needed\n%s",
			send_usage);
		return SEND_USAGE;
	}

	char err[CAMPAIGN_ERR_MAX + 256];
	static char secret[4096];
	struct sasl_creds creds;
	struct pool_dest_config dc = { 0 };
	struct tls_ctx *tls = NULL;
	struct reply_rules *rules = NULL;
	struct limits *limits = NULL;
	int rc = SEND_SETUP;

	if (relay_url_parse(s.relay_text, &dc.url, err, sizeof err) < 0) {
		fprintf(stderr, "volley send: --relay %s: %s\n", s.relay_text, err);
		return SEND_USAGE;
	}
	s.lmtp = dc.url.lmtp;
	if (dkim_setup_load(&ds, &co, err, sizeof err) != 0)
		goto fail;
	s.tmpl = campaign_template_load(s.template_path, &co, err, sizeof err);
	if (!s.tmpl)
		goto fail;
	s.renderer = campaign_renderer_new(s.tmpl, err, sizeof err);
	if (!s.renderer)
		goto fail;
	s.src = csv_source_open(s.csv_path, err, sizeof err);
	if (!s.src)
		goto fail;
	s.to_col = csv_source_column(s.src, to_column);
	if (s.to_col < 0) {
		snprintf(err, sizeof err, "%s:1: no column named '%s' (--to-column)", s.csv_path, to_column);
		goto fail;
	}
	const struct csv_record *hdr = csv_source_header(s.src);
	if (campaign_csv_bind(&s.cc, s.tmpl, hdr->fields, hdr->lens, hdr->n) != 0) {
		snprintf(err, sizeof err, "out of memory");
		goto fail;
	}
	rules = so.rules_path ? reply_rules_load(so.rules_path, err, sizeof err)
			      : reply_rules_default(err, sizeof err);
	if (!rules)
		goto fail;
	s.rules = rules;
	s.suppress = suppress_open(so.suppress_path, err, sizeof err);
	if (!s.suppress)
		goto fail;
	if (delivery_log_replay(s.log_path, s.csv_path, on_seen, &s, &s.log_skipped, err,
				sizeof err) != 0)
		goto fail;
	s.log = delivery_log_open(s.log_path, err, sizeof err);
	if (!s.log)
		goto fail;

	if (so.user) {
		if (cli_read_secret(so.pwfile, "VOLLEY_AUTH_PASSWORD", secret, sizeof secret, err,
				    sizeof err) < 0)
			goto fail;
		creds.user = so.user;
		creds.secret = secret;
		dc.creds = &creds;
	}
	if (!dc.url.lmtp && !dc.url.unix_path[0]) {
		tls = cli_tls_client(so.ca, so.insecure, err, sizeof err);
		if (!tls && dc.url.tls != RELAY_TLS_OPPORTUNISTIC)
			goto fail;
	}
	dc.ehlo_name = so.ehlo ? so.ehlo : "send.volley.test";
	dc.tls = tls;
	dc.auth_mechs = so.auth_mechs;
	dc.auth_plaintext_ok = so.plaintext;
	dc.no_pipelining = so.no_pipe;
	dc.no_chunking = so.no_chunk;
	dc.max_conns = (unsigned)so.conns;
	dc.max_inflight = (unsigned)so.inflight;
	dc.max_msgs_per_conn = (unsigned)so.per_conn;
	smtp_session_timeouts_default(&dc.timeouts);
	if (so.timeout_ms) {
		for (int i = 0; i < SMTP_PHASE_COUNT; i++)
			dc.timeouts.ms[i] = (uint32_t)so.timeout_ms;
		dc.connect_timeout_ms = (uint32_t)so.timeout_ms;
	}
	/* the window: what every session may have in flight, and as much
	 * again queued so that a session never waits for the renderer */
	unsigned long long window = so.conns * (so.no_pipe ? 1 : so.inflight) * 2;
	s.njobs = window > 65536 ? 65536 : (unsigned)window;
	dc.queue_max = s.njobs;
	s.jobs = calloc(s.njobs, sizeof *s.jobs);
	s.free_slots = calloc(s.njobs, sizeof *s.free_slots);
	if (!s.jobs || !s.free_slots) {
		snprintf(err, sizeof err, "out of memory");
		goto fail;
	}
	for (unsigned i = 0; i < s.njobs; i++)
		s.free_slots[s.nfree++] = s.njobs - 1 - i;
	if (setup_pool(&s, &so, &dc, err, sizeof err) != 0)
		goto fail;
	if (so.rate) {
		/* bursts of 2 ms worth: the loop wakes at least every
		 * millisecond while it waits for the limiter */
		struct limit_spec spec = { .rate = (double)so.rate,
					   .burst = so.rate / 500 ? (unsigned)(so.rate / 500) : 1,
					   .max_conns = (unsigned)so.conns,
					   .max_msgs_per_conn = (unsigned)so.per_conn };
		limits = limits_new(1, &spec, NULL, 0, err, sizeof err);
		s.limit = limits ? limits_get(limits, dc.url.host, strlen(dc.url.host)) : NULL;
		if (!s.limit) {
			if (limits)
				snprintf(err, sizeof err, "--rate: the limiter has no entry");
			goto fail;
		}
	}
	if (delivery_log_start(s.log, s.csv_path, s.template_path, wall_ms()) != 0) {
		snprintf(err, sizeof err, "%s: %s", s.log_path, strerror(errno));
		goto fail;
	}

	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	uint64_t t0 = mono_ns();
	s.last_sync_ms = loop_now_ms(s.loop);
	for (;;) {
		int wait_ms = fill(&s);
		unsigned inflight = s.njobs - s.nfree;
		if (signals_seen)
			s.stopping = 1;
		if (inflight == 0 && (s.stopping || (s.csv_done && s.nheap == 0)))
			break;
		if (s.caps_changed)
			apply_limits(&s);
		int r = loop_run_once(s.loop, wait_ms);
		/* the outcomes of this iteration reach the file before their
		 * slots take new rows: a kill then loses at most a window */
		if (delivery_log_flush(s.log) != 0 && !s.log_failed) {
			fprintf(stderr, "volley send: %s: %s: stopping\n", s.log_path, strerror(errno));
			s.log_failed = 1;
			s.stopping = 1;
		}
		if (r < 0) {
			fprintf(stderr, "volley send: io_uring: %s\n", strerror(-r));
			s.stopping = 1;
			break;
		}
		if (loop_now_ms(s.loop) - s.last_sync_ms >= SEND_SYNC_MS) {
			delivery_log_sync(s.log);
			s.last_sync_ms = loop_now_ms(s.loop);
		}
	}
	pool_shutdown(s.pool);
	while (!pool_idle(s.pool) && !(signals_seen >= 2))
		if (loop_run_once(s.loop, 1000) < 0)
			break;
	delivery_log_sync(s.log);
	print_summary(&s, (double)(mono_ns() - t0) / 1e9);

	if (s.log_failed || s.unfinished || s.nheap || !s.csv_done)
		rc = SEND_STOPPED;
	else if (s.counts[OUTCOME_BOUNCED] || s.counts[OUTCOME_FAILED] || s.counts[OUTCOME_EXPIRED] ||
		 s.counts[OUTCOME_INVALID] || s.skipped_undelivered)
		rc = SEND_UNDELIVERED;
	else
		rc = SEND_OK;
	if (rc == SEND_STOPPED)
		fprintf(stderr, "volley send: stopped with work left: run it again with --log %s\n",
			s.log_path);
	goto out;
fail:
	fprintf(stderr, "volley send: %s\n", err);
out:
	if (s.pool && pool_idle(s.pool))
		pool_free(s.pool);
	loop_free(s.loop);
	limits_free(limits);
	if (s.jobs)
		for (unsigned i = 0; i < s.njobs; i++)
			free(s.jobs[i].body);
	free(s.jobs);
	free(s.free_slots);
	free(s.heap);
	free(s.seen);
	delivery_log_close(s.log);
	suppress_close(s.suppress);
	reply_rules_free(rules);
	campaign_csv_free(&s.cc);
	csv_source_close(s.src);
	campaign_renderer_free(s.renderer);
	campaign_template_free(s.tmpl);
	dkim_setup_free(&ds);
	tls_ctx_free(tls);
	explicit_bzero(secret, sizeof secret);
	tls_thread_done();
	return rc;
}
