/* smtp_session: the SMTP/LMTP client state machine. See smtp_session.h.
 *
 * Two cursors, as in Postfix's smtp_loop: what has been queued for sending
 * and what has been answered. Sending is lazy: reply handlers only decide
 * (set an emit state, stage a line); bytes are produced in fill(), which runs
 * inside smtp_session_output() when none of the session's memory is lent to
 * the kernel, so a buffer never moves under a send in flight.
 *
 * Each command queued pushes an entry on the pending ring; consecutive RCPTs
 * of one transaction share an entry (a range), so a transaction takes at most
 * five entries whatever its recipient count. */
#include "pool/smtp_session.h"
#include "pool/bufmem.h"
#include "pool/smtp_cmd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SESSION_IN_START   4096
#define SESSION_IN_IDLE    1024          /* what a trimmed session keeps */
#define SESSION_IN_MAX     (256 * 1024)  /* a reply of 128 lines of 2 KiB */
#define SESSION_RAW_MAX    16
#define SESSION_TXN_MAX    128
#define SESSION_RCPT_MAX   1000          /* recipients in one transaction */
/* The rings of the hello phase, which is in lock step: one line at a time,
 * the longest an AUTH line (see stage()). */
#define HELLO_CMD_CAP      (SASL_LINE_MAX + 64)
#define HELLO_SEGS         4
#define HELLO_PENDING      4
#define STAGED_CAP         (SASL_LINE_MAX + 64)
#define SESSION_DEFAULT_INFLIGHT 8

enum pend_kind {
	PEND_GREETING, PEND_EHLO, PEND_HELO, PEND_STARTTLS, PEND_AUTH,
	PEND_RSET, PEND_MAIL, PEND_RCPT, PEND_DATA, PEND_BODY, PEND_RAW, PEND_QUIT,
};

/* The phase each pending reply belongs to. */
static const enum smtp_phase pend_phase[] = {
	[PEND_GREETING] = SMTP_PHASE_GREETING, [PEND_EHLO] = SMTP_PHASE_EHLO,
	[PEND_HELO] = SMTP_PHASE_EHLO, [PEND_STARTTLS] = SMTP_PHASE_STARTTLS,
	[PEND_AUTH] = SMTP_PHASE_AUTH, [PEND_RSET] = SMTP_PHASE_RSET,
	[PEND_MAIL] = SMTP_PHASE_MAIL, [PEND_RCPT] = SMTP_PHASE_RCPT,
	[PEND_DATA] = SMTP_PHASE_DATA, [PEND_BODY] = SMTP_PHASE_BODY,
	[PEND_RAW] = SMTP_PHASE_CMD, [PEND_QUIT] = SMTP_PHASE_QUIT,
};

struct pending {
	unsigned char kind;
	unsigned char txn;       /* slot index, for transaction commands */
	unsigned short count;    /* RCPT: recipients in the range; BODY (LMTP): replies left */
	unsigned first;          /* RCPT: first recipient of the range */
};

enum seg_kind { SEG_CMD, SEG_RAW, SEG_DOT };

struct segment {
	unsigned char kind;
	unsigned char secret;    /* AUTH bytes: wiped once sent */
	unsigned char dot_sent;  /* DOT: the extra "." before ptr[off] is sent */
	size_t len;              /* CMD: bytes in cmdbuf; RAW/DOT: body length */
	size_t off;              /* RAW/DOT: body bytes sent */
	size_t next_dot;         /* DOT: first line-start '.' at or after off (or len) */
	const char *ptr;
};

/* How far a transaction's commands have been queued. */
enum emit {
	EMIT_RSET, EMIT_MAIL, EMIT_RCPT, EMIT_DATA, EMIT_WAIT_354, EMIT_BODY,
	EMIT_EMPTY_BODY,   /* 354 with no recipient accepted: end the data at once */
	EMIT_BDAT, EMIT_DONE,
};

struct txn {
	struct smtp_msg *msg;
	enum emit emit;
	unsigned next_rcpt;       /* next recipient to queue */
	unsigned accepted;        /* RCPTs answered 2xx */
	unsigned answered;        /* RCPTs answered */
	unsigned pend;            /* pending entries of this transaction */
	int mail_ok;
	int doomed;               /* every recipient already has its outcome */
	int body_answered;
	int needs_rset_first;
	unsigned char acc[(SESSION_RCPT_MAX + 7) / 8];   /* accepted, by recipient */
	unsigned char done[(SESSION_RCPT_MAX + 7) / 8];  /* outcome reported */
	enum smtp_phase final_phase;
	enum smtp_status final_status;
	/* The reply that decided the message, or NULL when none has: the
	 * session's current reply while that is being handled, else final_own,
	 * a copy made only for outcomes decided before they are reported (so
	 * a delivered message copies nothing, and a slot stays small). */
	const struct smtp_reply *final;
	struct smtp_reply *final_own;
};

struct raw_cmd {
	char line[SMTP_CMD_LINE_MAX + 3];
	size_t len;
	void *cookie;
};

struct smtp_session {
	struct smtp_session_config cfg;
	enum smtp_session_state state;
	int secure;
	int authed;
	unsigned auth_mech;       /* the mechanism AUTH started with */
	int esmtp;                /* EHLO (or LHLO) answered 2xx */
	int pipelining, chunking;
	unsigned max_txn;
	struct smtp_caps caps;
	struct smtp_reply *greeting;  /* a copy, once received */
	struct smtp_reply *reply; /* the reply being handled; NULL when parked */
	int handling;             /* inside input_commit: reply is in use */

	/* input */
	char *in;                  /* see bufmem.h: a mapping from a page up */
	size_t in_len, in_cap;
	int in_mapped;
	size_t in_after_reply;    /* bytes received after the reply being handled */

	/* output: segments in wire order; CMD bytes live in cmdbuf, in order.
	 * This ring, the pending ring and the transaction slots are sized for
	 * the hello phase, then for the window of transactions while messages
	 * flow (rings_for_window), and shrink back when the session idles
	 * (smtp_session_trim), so a parked session holds little. */
	char *cmdbuf;
	size_t cmd_cap, cmd_r, cmd_w;
	struct segment *seg;
	unsigned seg_cap, seg_head, seg_n;
	int lent;                 /* output() handed out memory not yet consumed */

	/* the hello phase: one staged line at a time, in STAGED_CAP bytes
	 * allocated while it waits */
	char *staged;
	size_t staged_len;
	enum pend_kind staged_kind;
	int staged_secret;
	struct sasl_client sasl;
	int auth_steps;

	/* answered cursor */
	struct pending *pend;
	unsigned pend_cap, pend_head, pend_n;

	/* transactions, in submission order */
	struct txn *txn;          /* max_txn slots while the window is open */
	unsigned txn_head, txn_n;
	int need_rset;            /* a transaction was left open on the server */

	struct raw_cmd *raw;      /* SESSION_RAW_MAX slots, allocated on first use */
	unsigned raw_head, raw_n, raw_sent;

	int quit_wanted, quit_sent;

	enum smtp_phase fail_phase;
	struct smtp_reply *fail;  /* a copy; NULL when out of memory */
	int failed_reported;
};

static const char *const phase_names[SMTP_PHASE_COUNT] = {
	"connect", "greeting", "ehlo", "starttls", "auth", "mail", "rcpt",
	"data", "body", "rset", "cmd", "quit", "tls",
};

const char *smtp_phase_name(enum smtp_phase p)
{
	return (unsigned)p < SMTP_PHASE_COUNT ? phase_names[p] : "?";
}

const char *smtp_status_name(enum smtp_status s)
{
	switch (s) {
	case SMTP_STATUS_OK:       return "ok";
	case SMTP_STATUS_TEMPFAIL: return "tempfail";
	case SMTP_STATUS_PERMFAIL: return "permfail";
	case SMTP_STATUS_LOCAL:    return "local";
	}
	return "?";
}

const char *smtp_session_state_name(enum smtp_session_state s)
{
	static const char *const names[] = {
		"greeting", "hello", "tls", "ready", "quitting", "closed", "failed",
	};
	return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "?";
}

void smtp_session_timeouts_default(struct smtp_timeouts *t)
{
	/* RFC 5321 4.5.3.2: 5 minutes for the greeting, MAIL and RCPT, 2 for
	 * DATA, 10 for the end of data; the others are ours. */
	for (int i = 0; i < SMTP_PHASE_COUNT; i++)
		t->ms[i] = 300000;
	t->ms[SMTP_PHASE_CONNECT] = 30000;
	t->ms[SMTP_PHASE_DATA] = 120000;
	t->ms[SMTP_PHASE_BODY] = 600000;
	t->ms[SMTP_PHASE_STARTTLS] = 120000;
	t->ms[SMTP_PHASE_TLS] = 120000;
	t->ms[SMTP_PHASE_QUIT] = 30000;
}

static enum smtp_status status_of(int code)
{
	if (code >= 200 && code < 400)
		return SMTP_STATUS_OK;
	if (code >= 400 && code < 500)
		return SMTP_STATUS_TEMPFAIL;
	return SMTP_STATUS_PERMFAIL;
}

static void trace(struct smtp_session *s, char dir, const char *line, size_t len)
{
	if (s->cfg.cb.trace)
		s->cfg.cb.trace(s->cfg.cb_user, dir, line, len);
}

/* "[N bytes of message data]" in place of a body: formatted only when
 * someone reads the transcript, since every message passes here. */
static void trace_body_note(struct smtp_session *s, size_t body_len)
{
	if (!s->cfg.cb.trace)
		return;
	char note[64];
	int k = snprintf(note, sizeof note, "[%zu bytes of message data]", body_len);
	trace(s, '*', note, (size_t)k);
}

static void trace_reply(struct smtp_session *s, const struct smtp_reply *r)
{
	char buf[SMTP_REPLY_LINE_MAX + 32];
	if (!s->cfg.cb.trace)
		return;
	for (unsigned i = 0; i < r->nlines; i++) {
		size_t len;
		const char *l = smtp_reply_line(r, i, &len);
		if (!l)
			break;
		int n = snprintf(buf, sizeof buf, "%d%c%s%s%.*s", r->code,
				 i + 1 < r->nlines ? '-' : ' ', r->enhanced,
				 r->enhanced[0] ? " " : "", (int)len, l);
		if (n > (int)sizeof buf - 1)
			n = (int)sizeof buf - 1;
		trace(s, '<', buf, (size_t)n);
	}
}

static void bit_set(unsigned char *bits, unsigned i) { bits[i / 8] |= (unsigned char)(1u << (i % 8)); }
static int bit_get(const unsigned char *bits, unsigned i) { return bits[i / 8] >> (i % 8) & 1; }

/* Index i places after head in a ring of cap slots (head, i < cap). */
static unsigned ring_at(unsigned head, unsigned i, unsigned cap)
{
	unsigned k = head + i;
	return k >= cap ? k - cap : k;
}

/* ---- failure ---------------------------------------------------------- */

static void session_fail(struct smtp_session *s, enum smtp_phase phase, const struct smtp_reply *r)
{
	if (s->state == SMTP_SESSION_FAILED)
		return;
	s->state = SMTP_SESSION_FAILED;
	s->fail_phase = phase;
	if (s->fail || (s->fail = malloc(sizeof *s->fail)))
		smtp_reply_copy(s->fail, r);
}

static void session_fail_local(struct smtp_session *s, enum smtp_phase phase,
			       int code, const char *enhanced, const char *why)
{
	struct smtp_reply r;
	smtp_reply_synth(&r, code, enhanced, why);
	trace(s, '*', why, strlen(why));
	session_fail(s, phase, &r);
}

/* ---- output ----------------------------------------------------------- */

static struct segment *seg_push(struct smtp_session *s)
{
	if (s->seg_n == s->seg_cap)
		return NULL;
	struct segment *g = &s->seg[ring_at(s->seg_head, s->seg_n++, s->seg_cap)];
	memset(g, 0, sizeof *g);
	return g;
}

static int seg_room(const struct smtp_session *s, unsigned n)
{
	return s->seg_cap - s->seg_n >= n;
}

static int pend_room(const struct smtp_session *s, unsigned n)
{
	return s->pend_cap - s->pend_n >= n;
}

static struct pending *pend_tail(struct smtp_session *s)
{
	return s->pend_n ? &s->pend[ring_at(s->pend_head, s->pend_n - 1, s->pend_cap)] : NULL;
}

static void pend_push(struct smtp_session *s, enum pend_kind kind, unsigned txn, unsigned first)
{
	struct pending *p = &s->pend[ring_at(s->pend_head, s->pend_n++, s->pend_cap)];
	p->kind = (unsigned char)kind;
	p->txn = (unsigned char)txn;
	p->first = first;
	p->count = 1;
	switch (kind) {
	case PEND_RSET: case PEND_MAIL: case PEND_RCPT: case PEND_DATA: case PEND_BODY:
		s->txn[txn].pend++;
		break;
	default:
		break;
	}
}

/* Appends one command line to cmdbuf as its own segment (merged with a
 * CMD segment before it). The caller has checked the room. */
static void emit_bytes(struct smtp_session *s, const char *p, size_t n, int secret)
{
	if (s->cmd_w + n > s->cmd_cap) {
		memmove(s->cmdbuf, s->cmdbuf + s->cmd_r, s->cmd_w - s->cmd_r);
		s->cmd_w -= s->cmd_r;
		s->cmd_r = 0;
	}
	memcpy(s->cmdbuf + s->cmd_w, p, n);
	s->cmd_w += n;
	struct segment *last = s->seg_n ? &s->seg[ring_at(s->seg_head, s->seg_n - 1, s->seg_cap)] : NULL;
	if (last && last->kind == SEG_CMD && last->secret == secret) {
		last->len += n;
		return;
	}
	struct segment *g = seg_push(s);
	g->kind = SEG_CMD;
	g->len = n;
	g->secret = (unsigned char)secret;
}

static size_t cmd_free(const struct smtp_session *s)
{
	return s->cmd_cap - (s->cmd_w - s->cmd_r);
}

/* Drops the output and pending rings (wiping the command bytes: AUTH lines
 * pass there), leaving none. */
static void rings_free(struct smtp_session *s)
{
	if (s->cmdbuf)
		explicit_bzero(s->cmdbuf, s->cmd_cap);
	free(s->cmdbuf);
	free(s->seg);
	free(s->pend);
	s->cmdbuf = NULL;
	s->seg = NULL;
	s->pend = NULL;
	s->cmd_cap = s->cmd_r = s->cmd_w = 0;
	s->seg_cap = s->seg_head = 0;
	s->pend_cap = s->pend_head = 0;
}

/* Moves the output and pending rings to new ones of the given sizes, which
 * must hold what is queued; never while output memory is lent. Returns 0,
 * or -1 with the old rings kept. */
static int rings_resize(struct smtp_session *s, size_t cmd_cap, unsigned seg_cap, unsigned pend_cap)
{
	size_t cmd_n = s->cmd_w - s->cmd_r;
	if (s->lent || cmd_cap < cmd_n || seg_cap < s->seg_n || pend_cap < s->pend_n)
		return -1;
	char *cmd = malloc(cmd_cap);
	struct segment *seg = malloc(seg_cap * sizeof *seg);
	struct pending *pend = malloc(pend_cap * sizeof *pend);
	if (!cmd || !seg || !pend) {
		free(cmd);
		free(seg);
		free(pend);
		return -1;
	}
	if (s->cmdbuf)
		memcpy(cmd, s->cmdbuf + s->cmd_r, cmd_n);
	for (unsigned i = 0; i < s->seg_n; i++)
		seg[i] = s->seg[ring_at(s->seg_head, i, s->seg_cap)];
	for (unsigned i = 0; i < s->pend_n; i++)
		pend[i] = s->pend[ring_at(s->pend_head, i, s->pend_cap)];
	rings_free(s);
	s->cmdbuf = cmd;
	s->cmd_cap = cmd_cap;
	s->cmd_w = cmd_n;
	s->seg = seg;
	s->seg_cap = seg_cap;
	s->pend = pend;
	s->pend_cap = pend_cap;
	return 0;
}

/* The rings of the hello phase, also what a parked session takes back. */
static int rings_for_hello(struct smtp_session *s)
{
	return rings_resize(s, HELLO_CMD_CAP, HELLO_SEGS, HELLO_PENDING);
}

/* Rings for a window of max_txn transactions: their MAIL, RCPT and BDAT
 * lines; a segment for the commands and one for the body of each; three
 * replies awaited each (the RCPTs of one transaction counted once); and
 * room for raw commands and QUIT. Smaller rings would hold back the last
 * transactions of a window and send them in dribs as replies come in. */
static void rings_for_window(struct smtp_session *s)
{
	unsigned seg_cap = 2 * s->max_txn + 8;
	if (s->seg_cap >= seg_cap)
		return;
	size_t cmd_cap = 128 * (size_t)s->max_txn;
	if (cmd_cap < 8192)
		cmd_cap = 8192;
	/* Out of memory, the hello rings still work, a few lines at a time. */
	(void)rings_resize(s, cmd_cap, seg_cap, 3 * s->max_txn + 16);
}

/* Traces a command line we send (without its CRLF). */
static void trace_cmd(struct smtp_session *s, const char *line, size_t n)
{
	if (n >= 2 && line[n - 2] == '\r')
		n -= 2;
	trace(s, '>', line, n);
}

static void trace_secret(struct smtp_session *s, const char *line, size_t n)
{
	/* "AUTH PLAIN <secret>" shows the verb and mechanism only. */
	char buf[64];
	const char *sp = memchr(line, ' ', n);
	const char *sp2 = sp ? memchr(sp + 1, ' ', (size_t)(line + n - sp - 1)) : NULL;
	if (n >= 5 && strncasecmp(line, "AUTH ", 5) == 0) {
		size_t keep = sp2 ? (size_t)(sp2 - line) : n - 2;
		int k = snprintf(buf, sizeof buf, "%.*s%s", (int)(keep < 40 ? keep : 40), line,
				 sp2 ? " ****" : "");
		trace(s, '>', buf, (size_t)k);
	} else {
		trace(s, '>', "****", 4);
	}
}

/* ---- transactions: queuing commands ------------------------------------ */

static struct txn *txn_at(struct smtp_session *s, unsigned i)
{
	return &s->txn[ring_at(s->txn_head, i, s->max_txn)];
}

static unsigned txn_slot(struct smtp_session *s, const struct txn *t)
{
	return (unsigned)(t - s->txn);
}

/* Whether a command may be queued now: in lock step, only when nothing is
 * sent and unanswered. */
static int lockstep_clear(const struct smtp_session *s)
{
	return s->pend_n == 0 && s->seg_n == 0;
}

static void report_rcpt(struct smtp_session *s, struct txn *t, unsigned i, enum smtp_phase phase,
			enum smtp_status st, const struct smtp_reply *r)
{
	/* Past SESSION_RCPT_MAX there are no bits: such a message fails whole
	 * in txn_precheck, each recipient reported once. */
	if (i < SESSION_RCPT_MAX) {
		if (bit_get(t->done, i))
			return;
		bit_set(t->done, i);
	}
	if (s->cfg.cb.rcpt_done) {
		struct smtp_outcome o = { t->msg, (int)i, phase, st, r };
		s->cfg.cb.rcpt_done(s->cfg.cb_user, &o);
	}
}

static void report_all_rcpts(struct smtp_session *s, struct txn *t, enum smtp_phase phase,
			     enum smtp_status st, const struct smtp_reply *r)
{
	for (unsigned i = 0; i < t->msg->nrcpt; i++)
		report_rcpt(s, t, i, phase, st, r);
}

static void set_final(struct txn *t, enum smtp_phase phase, enum smtp_status st, const struct smtp_reply *r)
{
	t->final_phase = phase;
	t->final_status = st;
	t->final = r;
}

/* set_final with a copy of r, for an r that does not outlive the caller.
 * Out of memory, the outcome keeps its status and says "no reply". */
static void set_final_copy(struct txn *t, enum smtp_phase phase, enum smtp_status st,
			   const struct smtp_reply *r)
{
	t->final_phase = phase;
	t->final_status = st;
	t->final = NULL;
	if (!t->final_own && !(t->final_own = malloc(sizeof *t->final_own)))
		return;
	smtp_reply_copy(t->final_own, r);
	t->final = t->final_own;
}

/* Makes t's final reply its own, before the memory it points at is reused. */
static void keep_final(struct txn *t)
{
	if (t->final && t->final != t->final_own)
		set_final_copy(t, t->final_phase, t->final_status, t->final);
}

static __attribute__((noinline)) void report_msg_no_reply(struct smtp_session *s, struct txn *t)
{
	struct smtp_reply none;
	smtp_reply_synth(&none, 451, "4.3.0", "no reply");
	struct smtp_outcome o = { t->msg, -1, t->final_phase, t->final_status, &none };
	s->cfg.cb.msg_done(s->cfg.cb_user, &o);
}

/* Reports t's outcome and frees its slot. */
static void txn_release(struct smtp_session *s, struct txn *t)
{
	if (s->cfg.cb.msg_done) {
		if (t->final) {
			struct smtp_outcome o = { t->msg, -1, t->final_phase, t->final_status, t->final };
			s->cfg.cb.msg_done(s->cfg.cb_user, &o);
		} else {
			report_msg_no_reply(s, t);
		}
	}
	free(t->final_own);
	t->final_own = NULL;
	t->final = NULL;
	t->msg = NULL;
}

/* Checks what can be decided before sending: size, 8BITMIME, SMTPUTF8,
 * addresses. Returns 0 to go on, -1 when the whole message failed locally. */
static int txn_precheck(struct smtp_session *s, struct txn *t)
{
	struct smtp_msg *m = t->msg;
	struct smtp_reply r;
	char why[160];

	if (m->nrcpt == 0 || m->nrcpt > SESSION_RCPT_MAX) {
		snprintf(why, sizeof why, "%u recipients: a transaction takes 1 to %u",
			 m->nrcpt, SESSION_RCPT_MAX);
		smtp_reply_synth(&r, 452, "4.5.3", why);
		goto fail;
	}
	if ((m->need & SMTP_NEED_SMTPUTF8) && !(s->caps.ext & SMTP_EXT_SMTPUTF8)) {
		smtp_reply_synth(&r, 553, "5.6.7",
				 "the message needs SMTPUTF8 and the server does not offer it");
		goto fail;
	}
	if ((m->need & SMTP_NEED_8BITMIME) &&
	    !(s->caps.ext & (SMTP_EXT_8BITMIME | SMTP_EXT_SMTPUTF8))) {
		smtp_reply_synth(&r, 554, "5.6.3",
				 "the message has 8-bit data and the server does not offer 8BITMIME");
		goto fail;
	}
	if ((s->caps.ext & SMTP_EXT_SIZE) && s->caps.size_max && m->body_len > s->caps.size_max) {
		snprintf(why, sizeof why, "message size %zu exceeds the server's SIZE limit %llu",
			 m->body_len, (unsigned long long)s->caps.size_max);
		smtp_reply_synth(&r, 552, "5.3.4", why);
		goto fail;
	}
	struct smtp_addr_check chk;
	if (!smtp_addr_check(m->from, strlen(m->from), 1, &chk)) {
		snprintf(why, sizeof why, "invalid sender address at offset %zu: %s",
			 chk.bad_offset, chk.why ? chk.why : "invalid");
		smtp_reply_synth(&r, 501, "5.1.7", why);
		goto fail;
	}
	unsigned valid = 0;
	for (unsigned i = 0; i < m->nrcpt; i++) {
		if (smtp_addr_check(m->rcpts[i], strlen(m->rcpts[i]), 0, &chk)) {
			valid++;
			continue;
		}
		snprintf(why, sizeof why, "invalid recipient address at offset %zu: %s",
			 chk.bad_offset, chk.why ? chk.why : "invalid");
		smtp_reply_synth(&r, 501, "5.1.3", why);
		report_rcpt(s, t, i, SMTP_PHASE_RCPT, SMTP_STATUS_LOCAL, &r);
	}
	if (valid == 0) {
		smtp_reply_synth(&r, 554, "5.5.1", "no valid recipients");
		goto fail;
	}
	return 0;
fail:
	trace(s, '*', r.text, r.text_len);
	report_all_rcpts(s, t, SMTP_PHASE_MAIL, SMTP_STATUS_LOCAL, &r);
	set_final_copy(t, SMTP_PHASE_MAIL, SMTP_STATUS_LOCAL, &r);
	return -1;
}

/* The next recipient to queue that has no outcome yet, from t->next_rcpt. */
static int next_rcpt(struct txn *t)
{
	while (t->next_rcpt < t->msg->nrcpt && bit_get(t->done, t->next_rcpt))
		t->next_rcpt++;
	return t->next_rcpt < t->msg->nrcpt;
}

/* Queues as much of transaction t as the rules allow. Returns 1 when t is
 * fully queued (the next transaction may follow on the wire), 0 otherwise. */
static int txn_fill(struct smtp_session *s, struct txn *t)
{
	char line[SMTP_CMD_LINE_MAX];
	ssize_t n;
	unsigned slot = txn_slot(s, t);
	int lockstep = !s->pipelining;

	for (;;) {
		/* A doomed transaction sends nothing more, except the dot that
		 * ends a DATA the server accepted. */
		if (t->doomed && t->emit != EMIT_DONE && t->emit != EMIT_EMPTY_BODY)
			return 0;
		if (lockstep && !lockstep_clear(s) && t->emit != EMIT_DONE && t->emit != EMIT_WAIT_354)
			return 0;
		if (!pend_room(s, 2) || !seg_room(s, 3))
			return 0;
		switch (t->emit) {
		case EMIT_RSET:
			if (!s->need_rset) {
				t->emit = EMIT_MAIL;
				continue;
			}
			if (cmd_free(s) < 8)
				return 0;
			emit_bytes(s, "RSET\r\n", 6, 0);
			trace(s, '>', "RSET", 4);
			pend_push(s, PEND_RSET, slot, 0);
			s->need_rset = 0;
			t->emit = EMIT_MAIL;
			continue;
		case EMIT_MAIL: {
			struct smtp_mail_params p = { 0 };
			if (s->caps.ext & SMTP_EXT_SIZE)
				p.size = t->msg->body_len;
			if ((t->msg->need & SMTP_NEED_8BITMIME) && (s->caps.ext & SMTP_EXT_8BITMIME))
				p.body_8bitmime = 1;
			if ((t->msg->need & SMTP_NEED_SMTPUTF8) && (s->caps.ext & SMTP_EXT_SMTPUTF8))
				p.smtputf8 = 1;
			n = smtp_fmt_mail_checked(line, sizeof line, t->msg->from, &p);
			if (n < 0 || cmd_free(s) < (size_t)n)
				return 0; /* the address was checked; only room can fail */
			emit_bytes(s, line, (size_t)n, 0);
			trace_cmd(s, line, (size_t)n);
			pend_push(s, PEND_MAIL, slot, 0);
			t->emit = EMIT_RCPT;
			continue;
		}
		case EMIT_RCPT: {
			if (!next_rcpt(t)) {
				t->emit = s->chunking ? EMIT_BDAT : EMIT_DATA;
				continue;
			}
			n = smtp_fmt_rcpt_checked(line, sizeof line, t->msg->rcpts[t->next_rcpt], NULL);
			if (n < 0 || cmd_free(s) < (size_t)n)
				return 0;
			emit_bytes(s, line, (size_t)n, 0);
			trace_cmd(s, line, (size_t)n);
			struct pending *tail = pend_tail(s);
			if (tail && tail->kind == PEND_RCPT && tail->txn == slot &&
			    tail->first + tail->count == t->next_rcpt && tail->count < 0xffff)
				tail->count++;
			else
				pend_push(s, PEND_RCPT, slot, t->next_rcpt);
			t->next_rcpt++;
			continue;
		}
		case EMIT_DATA:
			if (lockstep && t->accepted == 0) {
				/* Every recipient was refused: no DATA, and the
				 * server still holds our MAIL. */
				t->doomed = 1;
				return 0;
			}
			if (cmd_free(s) < 8)
				return 0;
			emit_bytes(s, "DATA\r\n", 6, 0);
			trace(s, '>', "DATA", 4);
			pend_push(s, PEND_DATA, slot, 0);
			t->emit = EMIT_WAIT_354;
			return 0;
		case EMIT_WAIT_354:
			return 0;   /* the reply to DATA moves it on */
		case EMIT_EMPTY_BODY:
			if (cmd_free(s) < 3)
				return 0;
			emit_bytes(s, ".\r\n", 3, 0);
			trace(s, '>', ".", 1);
			pend_push(s, PEND_BODY, slot, 0);
			t->emit = EMIT_DONE;
			return 1;
		case EMIT_BODY: {
			if (cmd_free(s) < 8)
				return 0;
			struct segment *g = seg_push(s);
			g->kind = SEG_DOT;
			g->ptr = t->msg->body;
			g->len = t->msg->body_len;
			g->next_dot = smtp_dot_next(g->ptr, g->len, 0);
			size_t endlen;
			const char *end = smtp_dot_terminator(g->ptr, g->len, &endlen);
			emit_bytes(s, end, endlen, 0);
			trace_body_note(s, t->msg->body_len);
			trace(s, '>', ".", 1);
			pend_push(s, PEND_BODY, slot, 0);
			t->emit = EMIT_DONE;
			return 1;
		}
		case EMIT_BDAT: {
			if (lockstep && t->accepted == 0) {
				t->doomed = 1;
				return 0;
			}
			n = smtp_fmt_bdat(line, sizeof line, t->msg->body_len, 1);
			if (n < 0 || cmd_free(s) < (size_t)n)
				return 0;
			emit_bytes(s, line, (size_t)n, 0);
			trace_cmd(s, line, (size_t)n);
			if (t->msg->body_len) {
				struct segment *g = seg_push(s);
				g->kind = SEG_RAW;
				g->ptr = t->msg->body;
				g->len = t->msg->body_len;
				trace_body_note(s, t->msg->body_len);
			}
			pend_push(s, PEND_BODY, slot, 0);
			t->emit = EMIT_DONE;
			return 1;
		}
		case EMIT_DONE:
			return 1;
		}
	}
}

/* Queues the hello-phase line, raw commands, transactions and QUIT, in that
 * order of precedence, as far as the rules allow. */
static void fill(struct smtp_session *s)
{
	if (s->state == SMTP_SESSION_FAILED || s->state == SMTP_SESSION_CLOSED ||
	    s->state == SMTP_SESSION_TLS)
		return;

	/* A parked session has no rings (smtp_session_trim) until it has
	 * something to say. */
	if (!s->seg && (!(s->staged_len || s->txn_n || s->raw_sent < s->raw_n || s->quit_wanted) ||
			rings_for_hello(s) < 0))
		return;
	if (s->staged_len) {
		if (!lockstep_clear(s) || cmd_free(s) < s->staged_len)
			return;
		emit_bytes(s, s->staged, s->staged_len, s->staged_secret);
		if (s->staged_secret)
			trace_secret(s, s->staged, s->staged_len);
		else
			trace_cmd(s, s->staged, s->staged_len);
		pend_push(s, s->staged_kind, 0, 0);
		explicit_bzero(s->staged, s->staged_len);
		free(s->staged);
		s->staged = NULL;
		s->staged_len = 0;
		return;
	}
	if (s->state != SMTP_SESSION_READY && s->state != SMTP_SESSION_QUITTING)
		return;

	if (s->txn_n)
		rings_for_window(s);
	/* Transactions first, in order; a transaction may start only when the
	 * one before it is fully queued. */
	for (unsigned i = 0; i < s->txn_n; i++) {
		struct txn *t = txn_at(s, i);
		if (!txn_fill(s, t))
			return;
	}
	if (s->txn_n)
		return;   /* raw commands and QUIT wait for the transactions */

	while (s->raw_sent < s->raw_n) {
		if (!lockstep_clear(s))
			return;
		struct raw_cmd *c = &s->raw[(s->raw_head + s->raw_sent) % SESSION_RAW_MAX];
		if (cmd_free(s) < c->len)
			return;
		emit_bytes(s, c->line, c->len, 0);
		trace_cmd(s, c->line, c->len);
		pend_push(s, PEND_RAW, 0, 0);
		s->raw_sent++;
	}
	if (s->quit_wanted && !s->quit_sent && s->raw_n == 0 && lockstep_clear(s)) {
		emit_bytes(s, "QUIT\r\n", 6, 0);
		trace(s, '>', "QUIT", 4);
		pend_push(s, PEND_QUIT, 0, 0);
		s->quit_sent = 1;
		s->state = SMTP_SESSION_QUITTING;
	}
}

/* A DOT segment goes out as runs of body bytes with one extra "." before
 * each line-start dot. dot_run() gives the run that starts at off: where it
 * stops (the next line-start dot after off, or the end). */
static size_t dot_run_end(const struct segment *g, size_t off)
{
	return off == g->next_dot ? smtp_dot_next(g->ptr, g->len, off + 1) : g->next_dot;
}

static const char stuffing_dot = '.';

int smtp_session_output(struct smtp_session *s, struct iovec *iov, int max)
{
	if (s->lent || max <= 0)
		return 0;
	fill(s);
	int n = 0, prev_cmd = 0;
	size_t cmd_off = s->cmd_r;
	for (unsigned i = 0; i < s->seg_n && n < max; i++) {
		struct segment *g = &s->seg[ring_at(s->seg_head, i, s->seg_cap)];
		int is_cmd = g->kind == SEG_CMD;
		if (is_cmd) {
			if (prev_cmd) {
				iov[n - 1].iov_len += g->len;   /* adjacent in cmdbuf */
			} else {
				iov[n].iov_base = s->cmdbuf + cmd_off;
				iov[n].iov_len = g->len;
				n++;
			}
			cmd_off += g->len;
		} else if (g->kind == SEG_RAW) {
			iov[n].iov_base = (void *)(g->ptr + g->off);
			iov[n].iov_len = g->len - g->off;
			n++;
		} else {
			/* Walk a copy of the cursor; output_consumed moves the real one. */
			struct segment c = *g;
			while (c.off < c.len && n < max) {
				if (c.off == c.next_dot && !c.dot_sent) {
					iov[n].iov_base = (void *)&stuffing_dot;
					iov[n].iov_len = 1;
					n++;
					c.dot_sent = 1;
					continue;
				}
				size_t stop = dot_run_end(&c, c.off);
				iov[n].iov_base = (void *)(c.ptr + c.off);
				iov[n].iov_len = stop - c.off;
				n++;
				c.off = c.next_dot = stop;
				c.dot_sent = 0;
			}
			if (c.off < c.len)
				break;   /* out of iovecs: what follows waits */
		}
		prev_cmd = is_cmd;
	}
	if (n)
		s->lent = 1;
	return n;
}

/* Moves a DOT segment's cursor over n sent bytes; returns those left. */
static size_t dot_consume(struct segment *g, size_t n)
{
	while (g->off < g->len) {
		if (g->off == g->next_dot && !g->dot_sent) {
			if (!n)
				break;
			n--;
			g->dot_sent = 1;
		}
		size_t stop = dot_run_end(g, g->off);
		size_t k = n < stop - g->off ? n : stop - g->off;
		if (!k)
			break;
		if (g->off == g->next_dot) {   /* moving past the stuffed dot */
			g->next_dot = stop;
			g->dot_sent = 0;
		}
		g->off += k;
		n -= k;
	}
	return n;
}

void smtp_session_output_consumed(struct smtp_session *s, size_t n)
{
	s->lent = 0;
	while (s->seg_n && (n > 0 || s->seg[s->seg_head].len == s->seg[s->seg_head].off)) {
		struct segment *g = &s->seg[s->seg_head];
		if (g->kind == SEG_CMD) {
			size_t k = n < g->len ? n : g->len;
			if (g->secret)
				explicit_bzero(s->cmdbuf + s->cmd_r, k);
			s->cmd_r += k;
			g->len -= k;
			n -= k;
			if (g->len)
				break;
		} else if (g->kind == SEG_RAW) {
			size_t k = n < g->len - g->off ? n : g->len - g->off;
			g->off += k;
			n -= k;
			if (g->off < g->len)
				break;
		} else {
			n = dot_consume(g, n);
			if (g->off < g->len)
				break;
		}
		s->seg_head = ring_at(s->seg_head, 1, s->seg_cap);
		s->seg_n--;
	}
	if (s->cmd_r == s->cmd_w)
		s->cmd_r = s->cmd_w = 0;
}

size_t smtp_session_output_pending(const struct smtp_session *s)
{
	size_t total = 0;
	for (unsigned i = 0; i < s->seg_n; i++) {
		const struct segment *g = &s->seg[ring_at(s->seg_head, i, s->seg_cap)];
		total += g->kind == SEG_CMD ? g->len : g->len - g->off;
	}
	return total + s->staged_len;
}

/* ---- replies ---------------------------------------------------------- */

static void stage(struct smtp_session *s, enum pend_kind kind, const char *line, size_t n, int secret)
{
	if (!s->staged && !(s->staged = malloc(STAGED_CAP))) {
		session_fail_local(s, pend_phase[kind], 421, "4.3.0", "out of memory");
		return;
	}
	memcpy(s->staged, line, n);
	s->staged_len = n;
	s->staged_kind = kind;
	s->staged_secret = secret;
}

static void stage_cmd(struct smtp_session *s, enum pend_kind kind, const char *verb, const char *arg)
{
	char line[SMTP_CMD_LINE_MAX];
	ssize_t n = smtp_fmt_cmd(line, sizeof line, verb, arg);
	if (n < 0) {
		session_fail_local(s, SMTP_PHASE_EHLO, 501, "5.5.4", "the EHLO name is not valid in a command");
		return;
	}
	stage(s, kind, line, (size_t)n, 0);
}

static void send_hello(struct smtp_session *s)
{
	const char *name = s->cfg.ehlo_name && *s->cfg.ehlo_name ? s->cfg.ehlo_name : "localhost";
	stage_cmd(s, PEND_EHLO, s->cfg.lmtp ? "LHLO" : "EHLO", name);
}

static void become_ready(struct smtp_session *s)
{
	int offered_pipe = (s->caps.ext & SMTP_EXT_PIPELINING) != 0;
	s->pipelining = s->esmtp && offered_pipe && !s->cfg.no_pipelining;
	s->chunking = s->esmtp && (s->caps.ext & SMTP_EXT_CHUNKING) && !s->cfg.no_chunking;
	unsigned cap = s->cfg.max_inflight ? s->cfg.max_inflight : SESSION_DEFAULT_INFLIGHT;
	if (cap > SESSION_TXN_MAX)
		cap = SESSION_TXN_MAX;
	if (!s->pipelining)
		s->max_txn = 1;
	else if (!s->chunking)
		s->max_txn = 2;   /* one sending its body, the next one's commands after it */
	else
		s->max_txn = cap;
	s->state = SMTP_SESSION_READY;
	char note[96];
	int k = snprintf(note, sizeof note, "ready: tls=%s pipelining=%s chunking=%s",
			 s->secure ? "yes" : "no", s->pipelining ? "yes" : "no",
			 s->chunking ? "yes" : "no");
	trace(s, '*', note, (size_t)k);
}

/* After a successful EHLO (or HELO): STARTTLS, AUTH or ready. */
static void after_hello(struct smtp_session *s)
{
	if (!s->secure && s->cfg.tls != SMTP_TLS_NONE && s->cfg.tls != SMTP_TLS_IMPLICIT) {
		if (s->caps.ext & SMTP_EXT_STARTTLS) {
			stage_cmd(s, PEND_STARTTLS, "STARTTLS", NULL);
			return;
		}
		if (s->cfg.tls == SMTP_TLS_REQUIRED) {
			session_fail_local(s, SMTP_PHASE_STARTTLS, 530, "5.7.10",
					   "STARTTLS is required and the server does not offer it");
			return;
		}
	}
	if (s->cfg.creds && !s->authed) {
		if (!s->secure && !s->cfg.auth_plaintext_ok) {
			session_fail_local(s, SMTP_PHASE_AUTH, 530, "5.7.11",
					   "AUTH refused: the connection is not encrypted "
					   "(allow it explicitly to send credentials in plaintext)");
			return;
		}
		if (!(s->caps.ext & SMTP_EXT_AUTH)) {
			session_fail_local(s, SMTP_PHASE_AUTH, 502, "5.5.1",
					   "AUTH requested and the server does not offer AUTH");
			return;
		}
		unsigned mech = sasl_choose(s->caps.auth, s->cfg.auth_mechs);
		if (!mech) {
			session_fail_local(s, SMTP_PHASE_AUTH, 504, "5.5.4",
					   "no AUTH mechanism both allowed and offered by the server");
			return;
		}
		char line[SASL_LINE_MAX];
		ssize_t n = sasl_start(&s->sasl, mech, s->cfg.creds, line, sizeof line);
		if (n < 0) {
			explicit_bzero(line, sizeof line);
			session_fail_local(s, SMTP_PHASE_AUTH, 501, "5.5.2",
					   "the credentials cannot be sent with this AUTH mechanism");
			return;
		}
		stage(s, PEND_AUTH, line, (size_t)n, 1);
		explicit_bzero(line, sizeof line);
		s->auth_steps = 0;
		s->auth_mech = mech;
		return;
	}
	become_ready(s);
}

static void on_hello_reply(struct smtp_session *s, enum pend_kind kind, const struct smtp_reply *r)
{
	switch (kind) {
	case PEND_GREETING:
		if (s->cfg.keep_greeting && (s->greeting || (s->greeting = malloc(sizeof *s->greeting))))
			smtp_reply_copy(s->greeting, r);
		if (r->code != 220) {
			session_fail(s, SMTP_PHASE_GREETING, r);
			return;
		}
		s->state = SMTP_SESSION_HELLO;
		send_hello(s);
		return;
	case PEND_EHLO:
		if (smtp_reply_class(r) == 2) {
			smtp_ehlo_parse(r, &s->caps);
			s->esmtp = 1;
			after_hello(s);
		} else if (!s->cfg.lmtp && smtp_reply_class(r) == 5 && !s->secure) {
			/* RFC 5321 3.2: an old server; fall back to HELO. */
			const char *name = s->cfg.ehlo_name && *s->cfg.ehlo_name ? s->cfg.ehlo_name : "localhost";
			stage_cmd(s, PEND_HELO, "HELO", name);
		} else {
			session_fail(s, SMTP_PHASE_EHLO, r);
		}
		return;
	case PEND_HELO:
		if (smtp_reply_class(r) != 2) {
			session_fail(s, SMTP_PHASE_EHLO, r);
			return;
		}
		memset(&s->caps, 0, sizeof s->caps);
		s->esmtp = 0;
		after_hello(s);
		return;
	case PEND_STARTTLS:
		if (r->code == 220) {
			if (s->in_after_reply) {
				/* Bytes after the 220 were sent before the handshake:
				 * a STARTTLS command injection (CVE-2011-0411). */
				session_fail_local(s, SMTP_PHASE_STARTTLS, 554, "5.7.0",
						   "the server sent data after its STARTTLS reply");
				return;
			}
			s->state = SMTP_SESSION_TLS;
			return;
		}
		if (s->cfg.tls == SMTP_TLS_REQUIRED) {
			session_fail(s, SMTP_PHASE_STARTTLS, r);
			return;
		}
		/* Opportunistic: go on in plaintext, as the server asks. */
		s->cfg.tls = SMTP_TLS_NONE;
		after_hello(s);
		return;
	case PEND_AUTH:
		if (r->code == 334) {
			char line[SASL_LINE_MAX];
			ssize_t n = -1;
			if (++s->auth_steps <= 4)
				n = sasl_step(&s->sasl, r->text, r->text_len, line, sizeof line);
			if (n < 0) {
				/* "*" cancels the exchange (RFC 4954 4). */
				stage(s, PEND_AUTH, "*\r\n", 3, 0);
				return;
			}
			stage(s, PEND_AUTH, line, (size_t)n, 1);
			explicit_bzero(line, sizeof line);
			return;
		}
		sasl_client_wipe(&s->sasl);
		if (smtp_reply_class(r) == 2) {
			s->authed = 1;
			become_ready(s);
		} else {
			session_fail(s, SMTP_PHASE_AUTH, r);
		}
		return;
	default:
		return;
	}
}

static void txn_finish_if_done(struct smtp_session *s, struct txn *t)
{
	/* Every recipient has an outcome once nothing is pending; msg_done
	 * releases the message. Transactions finish in order. */
	if (t->pend || !(t->emit == EMIT_DONE || t->doomed) || t != txn_at(s, 0))
		return;
	for (;;) {
		struct txn *h = txn_at(s, 0);
		if (!s->txn_n || h->pend || !(h->emit == EMIT_DONE || h->doomed))
			break;
		if (h->mail_ok && !h->body_answered)
			s->need_rset = 1;
		txn_release(s, h);
		s->txn_head = ring_at(s->txn_head, 1, s->max_txn);
		s->txn_n--;
	}
}

static void txn_reply(struct smtp_session *s, struct pending *p, struct txn *t,
		      const struct smtp_reply *r)
{
	enum smtp_status st = status_of(r->code);

	switch ((enum pend_kind)p->kind) {
	case PEND_RSET:
		break;   /* a refused RSET shows up in the MAIL reply after it */
	case PEND_MAIL:
		if (smtp_reply_class(r) == 2) {
			t->mail_ok = 1;
			break;
		}
		report_all_rcpts(s, t, SMTP_PHASE_MAIL, st, r);
		set_final(t, SMTP_PHASE_MAIL, st, r);
		t->doomed = 1;
		break;
	case PEND_RCPT: {
		unsigned i = p->first;
		t->answered++;
		if (!t->doomed) {
			if (smtp_reply_class(r) == 2) {
				t->accepted++;
				bit_set(t->acc, i);
			} else {
				report_rcpt(s, t, i, SMTP_PHASE_RCPT, st, r);
				/* Until a better reply decides it, the message's
				 * outcome is its last refusal. */
				set_final(t, SMTP_PHASE_RCPT, st, r);
			}
		}
		/* Consume one recipient of the range. */
		p->first++;
		if (--p->count)
			return;   /* the entry stays at the head */
		break;
	}
	case PEND_DATA:
		if (r->code == 354) {
			/* RFC 2920 3.1: DATA accepted with no valid recipient is
			 * ended with an empty message, whose reply is ignored. */
			if (t->doomed || t->accepted == 0) {
				t->doomed = 1;
				t->emit = EMIT_EMPTY_BODY;
			} else {
				t->emit = EMIT_BODY;
			}
			break;
		}
		/* With no recipient accepted, the refusals already say why the
		 * message failed; the DATA reply ("no valid recipients") adds
		 * nothing. */
		if (!t->doomed && t->accepted > 0) {
			for (unsigned i = 0; i < t->msg->nrcpt; i++)
				if (bit_get(t->acc, i))
					report_rcpt(s, t, i, SMTP_PHASE_DATA, st, r);
			set_final(t, SMTP_PHASE_DATA, st, r);
		}
		t->doomed = 1;
		break;
	case PEND_BODY:
		t->body_answered = 1;
		if (t->doomed) {
			break;
		}
		if (s->cfg.lmtp && t->accepted > 0) {
			/* RFC 2033 4.2: one reply per accepted recipient, in
			 * order; p->first counts those answered so far. The
			 * message's outcome is the first failure, if any. */
			unsigned want = p->first++, seen = 0, i;
			for (i = 0; i < t->msg->nrcpt; i++)
				if (bit_get(t->acc, i) && seen++ == want)
					break;
			if (i < t->msg->nrcpt)
				report_rcpt(s, t, i, SMTP_PHASE_BODY, st, r);
			if (want == 0 || (st != SMTP_STATUS_OK && t->final_status == SMTP_STATUS_OK))
				set_final(t, SMTP_PHASE_BODY, st, r);
			if (p->first < t->accepted)
				return;   /* more replies for this entry */
			break;
		}
		for (unsigned i = 0; i < t->msg->nrcpt; i++)
			if (bit_get(t->acc, i))
				report_rcpt(s, t, i, SMTP_PHASE_BODY, st, r);
		set_final(t, SMTP_PHASE_BODY, st, r);
		break;
	default:
		break;
	}

	/* The entry is answered. */
	s->pend_head = ring_at(s->pend_head, 1, s->pend_cap);
	s->pend_n--;
	t->pend--;

	/* Lock step: after the last RCPT reply, with nothing accepted, the
	 * transaction is over; txn_fill will not send DATA. */
	if (!s->pipelining && t->emit == EMIT_RCPT && !next_rcpt(t) && t->accepted == 0 && t->mail_ok)
		t->doomed = 1;
	txn_finish_if_done(s, t);
}

static void on_txn_reply(struct smtp_session *s, struct pending *p, const struct smtp_reply *r)
{
	struct txn *t = &s->txn[p->txn];
	txn_reply(s, p, t, r);
	/* r is overwritten by the next reply: an outcome it decided that is
	 * still to be reported keeps a copy. */
	if (t->msg && t->final == r)
		keep_final(t);
}

static void on_reply(struct smtp_session *s, const struct smtp_reply *r)
{
	trace_reply(s, r);
	if (s->pend_n == 0) {
		/* A reply to nothing: only a 421 (server shutting down) is legal. */
		if (r->code == 421)
			session_fail(s, smtp_session_waiting_phase(s), r);
		else
			session_fail_local(s, SMTP_PHASE_EHLO, 500, "5.5.0", "unexpected reply from the server");
		return;
	}
	struct pending *p = &s->pend[s->pend_head];
	enum pend_kind kind = (enum pend_kind)p->kind;

	if (r->code == 421 && kind != PEND_QUIT) {
		/* The server is closing the session: whatever is in flight fails
		 * with this reply (smtp_session_abort reports it). */
		session_fail(s, pend_phase[kind], r);
		return;
	}

	switch (kind) {
	case PEND_GREETING: case PEND_EHLO: case PEND_HELO: case PEND_STARTTLS: case PEND_AUTH:
		s->pend_head = ring_at(s->pend_head, 1, s->pend_cap);
		s->pend_n--;
		on_hello_reply(s, kind, r);
		return;
	case PEND_RAW: {
		struct raw_cmd *c = &s->raw[s->raw_head];
		void *cookie = c->cookie;
		s->pend_head = ring_at(s->pend_head, 1, s->pend_cap);
		s->pend_n--;
		s->raw_head = (s->raw_head + 1) % SESSION_RAW_MAX;
		s->raw_n--;
		s->raw_sent--;
		if (s->cfg.cb.cmd_done)
			s->cfg.cb.cmd_done(s->cfg.cb_user, cookie, r);
		return;
	}
	case PEND_QUIT:
		s->pend_head = ring_at(s->pend_head, 1, s->pend_cap);
		s->pend_n--;
		s->state = SMTP_SESSION_CLOSED;
		return;
	default:
		on_txn_reply(s, p, r);
		return;
	}
}

/* ---- input ------------------------------------------------------------ */

char *smtp_session_input_space(struct smtp_session *s, size_t *cap)
{
	if (s->in_cap - s->in_len < 1024 && s->in_cap < SESSION_IN_MAX) {
		size_t ncap = s->in_cap * 2 > SESSION_IN_MAX ? SESSION_IN_MAX : s->in_cap * 2;
		char *n = bufmem_resize(s->in, &s->in_cap, &s->in_mapped, ncap);
		if (n)
			s->in = n;
	}
	*cap = s->in_cap - s->in_len;
	return s->in + s->in_len;
}

int smtp_session_input_commit(struct smtp_session *s, size_t n)
{
	s->in_len += n;
	size_t off = 0;
	while (s->state != SMTP_SESSION_FAILED && s->state != SMTP_SESSION_CLOSED && off < s->in_len) {
		if (!s->reply && !(s->reply = malloc(sizeof *s->reply))) {
			session_fail_local(s, smtp_session_waiting_phase(s), 421, "4.3.0", "out of memory");
			break;
		}
		int k = smtp_reply_parse(s->in + off, s->in_len - off, s->reply);
		if (k == -2)
			break;
		if (k < 0) {
			session_fail_local(s, smtp_session_waiting_phase(s), 500, "5.5.0",
					   "malformed reply from the server");
			break;
		}
		off += (size_t)k;
		/* The STARTTLS check needs to see whether bytes follow the 220. */
		s->in_after_reply = s->in_len - off;
		s->handling = 1;   /* callbacks may call smtp_session_trim */
		on_reply(s, s->reply);
		s->handling = 0;
		if (s->state == SMTP_SESSION_TLS)
			break;
	}
	if (off) {
		memmove(s->in, s->in + off, s->in_len - off);
		s->in_len -= off;
	}
	if (s->state != SMTP_SESSION_FAILED && s->in_len == s->in_cap && s->in_cap >= SESSION_IN_MAX)
		session_fail_local(s, smtp_session_waiting_phase(s), 500, "5.5.0", "reply too long");
	return s->state == SMTP_SESSION_FAILED ? -1 : 0;
}

int smtp_session_input(struct smtp_session *s, const char *buf, size_t len)
{
	while (len) {
		size_t cap;
		char *p = smtp_session_input_space(s, &cap);
		if (cap == 0)
			return smtp_session_input_commit(s, 0);
		size_t k = len < cap ? len : cap;
		memcpy(p, buf, k);
		if (smtp_session_input_commit(s, k) < 0)
			return -1;
		buf += k;
		len -= k;
	}
	return s->state == SMTP_SESSION_FAILED ? -1 : 0;
}

/* ---- the public controls ---------------------------------------------- */

struct smtp_session *smtp_session_new(const struct smtp_session_config *cfg)
{
	struct smtp_session *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->cfg = *cfg;
	s->in = bufmem_resize(NULL, &s->in_cap, &s->in_mapped, SESSION_IN_START);
	if (!s->in || rings_for_hello(s) < 0) {
		bufmem_free(s->in, s->in_cap, s->in_mapped);
		free(s);
		return NULL;
	}
	s->state = SMTP_SESSION_GREETING;
	s->secure = cfg->tls == SMTP_TLS_IMPLICIT;
	s->pend[0].kind = PEND_GREETING;
	s->pend_n = 1;
	return s;
}

void smtp_session_free(struct smtp_session *s)
{
	if (!s)
		return;
	smtp_session_abort(s, 421, "4.4.2", "session closed");
	rings_free(s);
	if (s->staged)
		explicit_bzero(s->staged, s->staged_len);
	free(s->staged);
	free(s->reply);
	sasl_client_wipe(&s->sasl);
	bufmem_free(s->in, s->in_cap, s->in_mapped);
	free(s->txn);
	free(s->raw);
	free(s->greeting);
	free(s->fail);
	free(s);
}

void smtp_session_trim(struct smtp_session *s)
{
	if (s->txn_n || s->seg_n || s->pend_n || s->raw_n || s->lent || s->staged || s->handling)
		return;
	rings_free(s);
	free(s->txn);
	s->txn = NULL;
	free(s->reply);
	s->reply = NULL;
}

void smtp_session_input_trim(struct smtp_session *s)
{
	if (s->in_len == 0 && s->in_cap > SESSION_IN_IDLE) {
		char *in = bufmem_resize(s->in, &s->in_cap, &s->in_mapped, SESSION_IN_IDLE);
		if (in)
			s->in = in;
	}
}

enum smtp_session_state smtp_session_state(const struct smtp_session *s)
{
	return s->state;
}

void smtp_session_tls_done(struct smtp_session *s, int ok, const char *why)
{
	if (s->state != SMTP_SESSION_TLS)
		return;
	if (!ok) {
		char msg[256];
		snprintf(msg, sizeof msg, "TLS handshake failed: %s", why ? why : "unknown error");
		s->state = SMTP_SESSION_HELLO;
		session_fail_local(s, SMTP_PHASE_STARTTLS, 454, "4.7.0", msg);
		return;
	}
	s->secure = 1;
	s->state = SMTP_SESSION_HELLO;
	/* RFC 3207 4.2: forget everything learnt before TLS. */
	memset(&s->caps, 0, sizeof s->caps);
	s->esmtp = 0;
	trace(s, '*', "TLS started", 11);
	send_hello(s);
}

int smtp_session_can_send(const struct smtp_session *s)
{
	return s->state == SMTP_SESSION_READY && !s->quit_wanted && s->txn_n < s->max_txn;
}

int smtp_session_send(struct smtp_session *s, struct smtp_msg *m)
{
	if (!smtp_session_can_send(s))
		return -1;
	if (!s->txn) {
		/* As many slots as may be in flight: max_txn is settled once
		 * the session is ready, before any message. */
		s->txn = malloc(s->max_txn * sizeof *s->txn);
		if (!s->txn)
			return -1;
		s->txn_head = 0;
	}
	struct txn *t = txn_at(s, s->txn_n);
	memset(t, 0, offsetof(struct txn, acc));
	t->msg = m;
	t->emit = EMIT_RSET;
	size_t bits = ((m->nrcpt < SESSION_RCPT_MAX ? m->nrcpt : SESSION_RCPT_MAX) + 7) / 8;
	memset(t->acc, 0, bits);
	memset(t->done, 0, bits);
	t->final_phase = SMTP_PHASE_MAIL;
	t->final_status = SMTP_STATUS_TEMPFAIL;
	t->final = NULL;   /* "no reply", until one decides */
	t->final_own = NULL;
	s->txn_n++;
	if (txn_precheck(s, t) < 0) {
		t->doomed = 1;
		t->emit = EMIT_DONE;
		txn_finish_if_done(s, t);
	}
	return 0;
}

unsigned smtp_session_inflight(const struct smtp_session *s)
{
	return s->txn_n;
}

unsigned smtp_session_capacity(const struct smtp_session *s)
{
	return s->max_txn;
}

int smtp_session_command(struct smtp_session *s, const char *line, void *cookie)
{
	if (s->state != SMTP_SESSION_READY || s->quit_wanted || s->raw_n == SESSION_RAW_MAX)
		return -1;
	if (!s->raw && !(s->raw = calloc(SESSION_RAW_MAX, sizeof *s->raw)))
		return -1;
	struct raw_cmd *c = &s->raw[(s->raw_head + s->raw_n) % SESSION_RAW_MAX];
	ssize_t n = smtp_fmt_raw(c->line, sizeof c->line, line);
	if (n < 0)
		return -1;
	c->len = (size_t)n;
	c->cookie = cookie;
	s->raw_n++;
	return 0;
}

void smtp_session_quit(struct smtp_session *s)
{
	if (s->state == SMTP_SESSION_READY)
		s->quit_wanted = 1;
	else if (s->state == SMTP_SESSION_GREETING || s->state == SMTP_SESSION_HELLO)
		s->state = SMTP_SESSION_CLOSED;   /* nothing to say goodbye to yet */
}

void smtp_session_abort(struct smtp_session *s, int code, const char *enhanced, const char *why)
{
	struct smtp_reply local;
	const struct smtp_reply *r;
	enum smtp_phase phase = smtp_session_waiting_phase(s);
	if (s->state == SMTP_SESSION_FAILED && s->fail) {
		r = s->fail;
		phase = s->fail_phase;
	} else if (s->state == SMTP_SESSION_FAILED) {
		smtp_reply_synth(&local, 421, "4.3.0", "session failed (out of memory)");
		r = &local;
		phase = s->fail_phase;
	} else {
		smtp_reply_synth(&local, code, enhanced, why);
		r = &local;
		if (s->state != SMTP_SESSION_CLOSED) {
			session_fail(s, phase, r);
		}
	}
	/* A 5xx that ended the session (554 at greeting, 530 AUTH) does not
	 * make the messages caught in it permanent failures: they were never
	 * judged. Only replies to their own commands do that. */
	enum smtp_status st = SMTP_STATUS_TEMPFAIL;
	while (s->txn_n) {
		struct txn *t = txn_at(s, 0);
		for (unsigned i = 0; i < t->msg->nrcpt; i++)
			report_rcpt(s, t, i, phase, st, r);
		if (!t->doomed || t->final_status == SMTP_STATUS_OK)
			set_final(t, phase, st, r);
		txn_release(s, t);
		s->txn_head = ring_at(s->txn_head, 1, s->max_txn);
		s->txn_n--;
	}
	while (s->raw_n) {
		struct raw_cmd *c = &s->raw[s->raw_head];
		s->raw_head = (s->raw_head + 1) % SESSION_RAW_MAX;
		s->raw_n--;
		if (s->cfg.cb.cmd_done)
			s->cfg.cb.cmd_done(s->cfg.cb_user, c->cookie, r);
	}
	s->raw_sent = 0;
	s->pend_n = 0;
}

uint32_t smtp_session_timeout(const struct smtp_session *s)
{
	if (s->state == SMTP_SESSION_FAILED || s->state == SMTP_SESSION_CLOSED)
		return 0;
	if (s->state == SMTP_SESSION_TLS)
		return s->cfg.timeouts.ms[SMTP_PHASE_STARTTLS];
	if (s->pend_n == 0)
		return 0;
	return s->cfg.timeouts.ms[smtp_session_waiting_phase(s)];
}

enum smtp_phase smtp_session_waiting_phase(const struct smtp_session *s)
{
	if (s->state == SMTP_SESSION_TLS)
		return SMTP_PHASE_STARTTLS;
	if (s->pend_n == 0)
		return s->state == SMTP_SESSION_GREETING ? SMTP_PHASE_GREETING : SMTP_PHASE_CMD;
	return pend_phase[s->pend[s->pend_head].kind];
}

const struct smtp_caps *smtp_session_caps(const struct smtp_session *s) { return &s->caps; }
int smtp_session_secure(const struct smtp_session *s) { return s->secure; }
int smtp_session_authenticated(const struct smtp_session *s) { return s->authed; }
unsigned smtp_session_auth_mech(const struct smtp_session *s) { return s->auth_mech; }
/* What the accessors give before there is a reply: code 0, no text. */
static const struct smtp_reply no_reply;

const struct smtp_reply *smtp_session_greeting(const struct smtp_session *s)
{
	return s->greeting ? s->greeting : &no_reply;
}

enum smtp_phase smtp_session_failure(const struct smtp_session *s, const struct smtp_reply **r)
{
	if (r)
		*r = s->fail ? s->fail : &no_reply;
	return s->fail_phase;
}
