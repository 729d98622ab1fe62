/* sink_session: the server side of an SMTP session. See sink_session.h.
 *
 * Input is consumed in steps; a step takes one command line, one piece of a
 * body, or one piece of a BDAT chunk, and queues at most one reply. Before a
 * step the output must have room for the largest reply (SINK_REPLY_ROOM);
 * when it cannot get it (the buffer is lent to a send in flight and full, or
 * SINK_OUT_SOFT bytes are waiting) the session stops and says how much it
 * consumed, so a client that pipelines faster than it reads cannot make the
 * session grow.
 *
 * Command lines whole in the caller's buffer are parsed where they are; only
 * a line split across reads is copied, into a line buffer allocated the first
 * time one is (SINK_LINE_MAX). Bodies are streamed, never kept. */
#include "bench/sink_session.h"
#include "bench/sink_auth.h"
#include "pool/sasl.h"
#include "pool/smtp_cmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SINK_REPLY_ROOM 1024        /* the largest reply one step can queue */
#define SINK_OUT_START  1024
#define SINK_HELO_MAX   255
#define SINK_RCPTS_START 256

enum reader {
	RD_CMD,       /* command lines */
	RD_SASL,      /* SASL responses to a 334 */
	RD_DISCARD,   /* the rest of an over-long line */
	RD_DATA,      /* a DATA body, up to CRLF.CRLF */
	RD_BDAT,      /* a BDAT chunk of known length */
};

/* Where the DATA body reader is, for dot-unstuffing and the end. */
enum dot_state {
	DOT_LINE_START,   /* after CRLF (or at the start) */
	DOT_MID,          /* inside a line */
	DOT_DOT,          /* a '.' at the start of a line, held back */
	DOT_DOT_CR,       /* ".\r" at the start of a line, held back */
};

enum sasl_step {
	SASL_NONE, SASL_PLAIN, SASL_LOGIN_USER, SASL_LOGIN_PASS, SASL_CRAM,
	SASL_XOAUTH2, SASL_XOAUTH2_FAILED,
};

struct sink_session {
	const struct sink_config *cfg;
	const struct sink_hooks *hooks;
	struct sink_stats *st;
	enum sink_session_state state;
	enum reader rd;
	uint64_t nonce;
	int secure, authed, greeted, esmtp;
	int refused;              /* greeted with 554: only QUIT is served */
	unsigned errors;
	unsigned messages;
	uint32_t delay_ms;

	/* the transaction */
	int in_txn, smtputf8;
	int body_started;         /* DATA or the first BDAT accepted */
	unsigned rcpt_attempts, nrcpt;
	char helo[SINK_HELO_MAX + 1];
	char from[SMTP_PATH_MAX + 1];
	char *rcpts;              /* accepted recipients, NUL-terminated each */
	size_t rcpts_len, rcpts_cap;

	/* the body */
	enum dot_state dot;
	int prev_cr;              /* the last body byte seen was CR */
	uint64_t body_len;
	int too_big;
	struct sink_verdict body_verdict;   /* asked at the start, applied at the end */
	uint64_t bdat_left;
	int bdat_last;
	int bdat_error;           /* the code to answer once the chunk is read */
	int bdat_refuse;          /* answer body_verdict (a DATA refusal) then */

	/* a command line split across reads */
	char *line;
	size_t line_len;

	/* SASL */
	enum sasl_step sasl;
	char sasl_user[SINK_AUTH_FIELD_MAX];
	size_t sasl_user_len;
	char challenge[96];
	size_t challenge_len;

	/* replies waiting to be sent: out[out_off, out_len) */
	char *out;
	size_t out_off, out_len, out_cap;
	int lent;
};

static const char *const stage_names[SINK_STAGE_COUNT] = {
	"connect", "helo", "mail", "rcpt", "data", "body",
};

const char *sink_stage_name(enum sink_stage st)
{
	return (unsigned)st < SINK_STAGE_COUNT ? stage_names[st] : NULL;
}

/* ---- the EHLO replies ---------------------------------------------------- */

static int ehlo_add(char *buf, size_t cap, size_t *len, const char *a, const char *b)
{
	int n = snprintf(buf + *len, cap - *len, "250-%s%s\r\n", a, b ? b : "");
	if (n < 0 || (size_t)n >= cap - *len)
		return -1;
	*len += (size_t)n;
	return 0;
}

static int ehlo_build(const struct sink_config *cfg, int secure, char *buf, size_t cap, size_t *len)
{
	char tmp[64];
	*len = 0;
	if (ehlo_add(buf, cap, len, cfg->hostname, NULL))
		return -1;
	if ((cfg->ext & SMTP_EXT_PIPELINING) && ehlo_add(buf, cap, len, "PIPELINING", NULL))
		return -1;
	if (cfg->ext & SMTP_EXT_SIZE) {
		if (cfg->size_max)
			snprintf(tmp, sizeof tmp, " %llu", (unsigned long long)cfg->size_max);
		else
			tmp[0] = 0;
		if (ehlo_add(buf, cap, len, "SIZE", tmp))
			return -1;
	}
	static const struct { unsigned bit; const char *name; } plain_exts[] = {
		{ SMTP_EXT_8BITMIME, "8BITMIME" },
		{ SMTP_EXT_SMTPUTF8, "SMTPUTF8" },
		{ SMTP_EXT_ENHANCEDSTATUSCODES, "ENHANCEDSTATUSCODES" },
		{ SMTP_EXT_DSN, "DSN" },
		{ SMTP_EXT_CHUNKING, "CHUNKING" },
	};
	for (size_t i = 0; i < sizeof plain_exts / sizeof plain_exts[0]; i++)
		if ((cfg->ext & plain_exts[i].bit) && ehlo_add(buf, cap, len, plain_exts[i].name, NULL))
			return -1;
	if ((cfg->ext & SMTP_EXT_STARTTLS) && !secure && ehlo_add(buf, cap, len, "STARTTLS", NULL))
		return -1;
	int auth_now = cfg->auth && (cfg->ext & SMTP_EXT_AUTH) && cfg->auth_mechs &&
		       (secure || !(cfg->ext & SMTP_EXT_STARTTLS));
	if (auth_now) {
		size_t k = 0;
		static const unsigned order[] = { SMTP_AUTH_PLAIN, SMTP_AUTH_LOGIN, SMTP_AUTH_CRAM_MD5,
						  SMTP_AUTH_XOAUTH2 };
		for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
			if (!(cfg->auth_mechs & order[i]))
				continue;
			int n = snprintf(tmp + k, sizeof tmp - k, " %s", sasl_mech_name(order[i]));
			if (n < 0 || (size_t)n >= sizeof tmp - k)
				return -1;
			k += (size_t)n;
		}
		if (ehlo_add(buf, cap, len, "AUTH", tmp))
			return -1;
	}
	/* The last line says "250 " instead of "250-". Find where it starts. */
	size_t i = *len - 2;
	while (i > 0 && buf[i - 1] != '\n')
		i--;
	buf[i + 3] = ' ';
	return 0;
}

int sink_config_prepare(struct sink_config *cfg)
{
	if (!cfg->hostname || !*cfg->hostname || strlen(cfg->hostname) > SINK_HELO_MAX ||
	    strpbrk(cfg->hostname, " \r\n"))
		return -1;
	if (ehlo_build(cfg, 0, cfg->ehlo_plain, sizeof cfg->ehlo_plain, &cfg->ehlo_plain_len) ||
	    ehlo_build(cfg, 1, cfg->ehlo_secure, sizeof cfg->ehlo_secure, &cfg->ehlo_secure_len))
		return -1;
	return 0;
}

/* ---- output ------------------------------------------------------------- */

/* Makes room for one step's reply. Returns 1, or 0 when the session must
 * wait for the output to be sent. */
static int room_for_step(struct sink_session *s)
{
	size_t pending = s->out_len - s->out_off;
	if (pending > SINK_OUT_SOFT)
		return 0;
	if (s->out_cap - s->out_len >= SINK_REPLY_ROOM)
		return 1;
	if (s->lent)
		return 0;   /* the kernel may be reading out: it cannot move */
	if (s->out_off) {
		memmove(s->out, s->out + s->out_off, pending);
		s->out_len = pending;
		s->out_off = 0;
		if (s->out_cap - s->out_len >= SINK_REPLY_ROOM)
			return 1;
	}
	size_t cap = s->out_cap ? s->out_cap * 2 : SINK_OUT_START;
	while (cap - s->out_len < SINK_REPLY_ROOM)
		cap *= 2;
	if (cap > SINK_OUT_MAX)
		return 0;
	char *p = realloc(s->out, cap);
	if (!p)
		return 0;
	s->out = p;
	s->out_cap = cap;
	return 1;
}

static void put(struct sink_session *s, const char *p, size_t n)
{
	/* room_for_step reserved SINK_REPLY_ROOM; a reply never needs more. */
	if (n > s->out_cap - s->out_len)
		n = s->out_cap - s->out_len;
	memcpy(s->out + s->out_len, p, n);
	s->out_len += n;
}

static void put_str(struct sink_session *s, const char *p)
{
	put(s, p, strlen(p));
}

static void add_delay(struct sink_session *s, uint32_t ms)
{
	s->delay_ms = ms > UINT32_MAX - s->delay_ms ? UINT32_MAX : s->delay_ms + ms;
}

static int is_client_error(int code)
{
	return code == 500 || code == 501 || code == 502 || code == 503 || code == 504 ||
	       code == 555;
}

/* Queues "code enhanced text1text2\r\n". The enhanced code is left out when
 * ENHANCEDSTATUSCODES is off or enh is NULL. */
static void reply2(struct sink_session *s, int code, const char *enh, const char *t1, const char *t2)
{
	char c[4] = { (char)('0' + code / 100), (char)('0' + code / 10 % 10), (char)('0' + code % 10), ' ' };
	put(s, c, 4);
	if (enh && *enh && (s->cfg->ext & SMTP_EXT_ENHANCEDSTATUSCODES)) {
		put_str(s, enh);
		put(s, " ", 1);
	}
	put_str(s, t1);
	if (t2)
		put_str(s, t2);
	put(s, "\r\n", 2);
	sink_stat_reply(s->st, code);
	add_delay(s, s->cfg->reply_delay_ms);
	if (is_client_error(code) && ++s->errors >= SINK_ERROR_MAX && s->state == SINK_SESSION_OPEN) {
		put_str(s, (s->cfg->ext & SMTP_EXT_ENHANCEDSTATUSCODES) ?
			   "421 4.7.0 Too many errors, closing the connection\r\n" :
			   "421 Too many errors, closing the connection\r\n");
		sink_stat_reply(s->st, 421);
		s->state = SINK_SESSION_CLOSING;
	}
}

static void reply(struct sink_session *s, int code, const char *enh, const char *text)
{
	reply2(s, code, enh, text, NULL);
}

/* ---- the transaction and decisions --------------------------------------- */

static void txn_reset(struct sink_session *s)
{
	s->in_txn = 0;
	s->smtputf8 = 0;
	s->body_started = 0;
	s->rcpt_attempts = 0;
	s->nrcpt = 0;
	s->rcpts_len = 0;
	s->from[0] = 0;
	s->body_len = 0;
	s->too_big = 0;
	s->bdat_refuse = 0;
	memset(&s->body_verdict, 0, sizeof s->body_verdict);
}

static void decide(struct sink_session *s, enum sink_stage stage, const char *rcpt, struct sink_verdict *v)
{
	memset(v, 0, sizeof *v);
	v->action = SINK_ACCEPT;
	if (!s->hooks || !s->hooks->decide)
		return;
	struct sink_view view = {
		.stage = stage, .helo = s->helo, .from = s->from, .rcpt = rcpt,
		.rcpts = s->rcpts ? s->rcpts : "", .nrcpt = s->nrcpt, .messages = s->messages,
		.secure = s->secure, .authed = s->authed, .body_len = s->body_len,
	};
	s->hooks->decide(s->hooks->user, &view, v);
	if (v->action == SINK_REPLY && (v->code < 200 || v->code > 599 || !v->text))
		v->action = SINK_ACCEPT;   /* a hook's mistake is not the client's */
	add_delay(s, v->delay_ms);
}

/* Applies a refusal: returns 1 when the verdict answered (a reply of 4xx or
 * 5xx, or a drop), 0 when the command goes on (accept, or a 2xx text). */
static int refused(struct sink_session *s, const struct sink_verdict *v)
{
	if (v->action == SINK_DROP) {
		s->state = SINK_SESSION_DROPPED;
		return 1;
	}
	if (v->action != SINK_REPLY || v->code < 300)
		return 0;
	reply(s, v->code, v->enhanced, v->text);
	if (v->code == 421)
		s->state = SINK_SESSION_CLOSING;
	return 1;
}

/* The positive reply: the verdict's own 2xx text when it has one. */
static void accept_reply(struct sink_session *s, const struct sink_verdict *v, int code,
			 const char *enh, const char *text)
{
	if (v->action == SINK_REPLY && v->code < 300)
		reply(s, v->code, v->enhanced, v->text);
	else
		reply(s, code, enh, text);
}

/* ---- the body ------------------------------------------------------------ */

static void view_for_body(struct sink_session *s, struct sink_view *view)
{
	memset(view, 0, sizeof *view);
	view->stage = SINK_STAGE_BODY;
	view->helo = s->helo;
	view->from = s->from;
	view->rcpts = s->rcpts ? s->rcpts : "";
	view->nrcpt = s->nrcpt;
	view->messages = s->messages;
	view->secure = s->secure;
	view->authed = s->authed;
}

/* The body is accepted to start: ask the BODY decision, tell the hooks. */
static void body_start(struct sink_session *s)
{
	s->body_started = 1;
	s->body_len = 0;
	s->too_big = 0;
	decide(s, SINK_STAGE_BODY, NULL, &s->body_verdict);
	if (s->hooks && s->hooks->body_begin) {
		struct sink_view view;
		view_for_body(s, &view);
		s->hooks->body_begin(s->hooks->user, &view);
	}
}

static void emit(struct sink_session *s, const char *p, size_t n)
{
	if (!n)
		return;
	s->body_len += n;
	if (s->cfg->size_max && s->body_len > s->cfg->size_max)
		s->too_big = 1;
	if (!s->too_big && s->hooks && s->hooks->body_data)
		s->hooks->body_data(s->hooks->user, p, n);
}

/* Returns 0, or -1 when an accepted message could not be kept. */
static int body_end_hook(struct sink_session *s, int accepted, uint32_t *delay_ms)
{
	uint32_t unused = 0;
	if (s->hooks && s->hooks->body_end)
		return s->hooks->body_end(s->hooks->user, accepted, delay_ms ? delay_ms : &unused);
	return 0;
}

/* The whole body is in: the final reply of the transaction. */
static void body_finish(struct sink_session *s)
{
	const struct sink_verdict *v = &s->body_verdict;
	s->rd = RD_CMD;
	if (s->too_big) {
		body_end_hook(s, 0, NULL);
		sink_stat_add(&s->st->rejected, 1);
		reply(s, 552, "5.3.4", "Message size exceeds fixed maximum message size");
	} else if (v->action == SINK_REPLY && v->code >= 300) {
		body_end_hook(s, 0, NULL);
		sink_stat_add(&s->st->rejected, 1);
		reply(s, v->code, v->enhanced, v->text);
		if (v->code == 421)
			s->state = SINK_SESSION_CLOSING;
	} else {
		uint32_t delay = 0;
		if (body_end_hook(s, 1, &delay) < 0) {
			sink_stat_add(&s->st->rejected, 1);
			reply(s, 451, "4.3.0", "Error: cannot store the message");
			txn_reset(s);
			return;
		}
		add_delay(s, delay);
		s->messages++;
		sink_stat_add(&s->st->messages, 1);
		sink_stat_add(&s->st->recipients, s->nrcpt);
		sink_stat_add(&s->st->bytes, s->body_len);
		accept_reply(s, v, 250, "2.0.0", "Ok: queued");
	}
	txn_reset(s);
}

/* Reads DATA body bytes: unstuffs leading dots, stops after CRLF.CRLF (a
 * bare LF never ends a line here, so "\n.\n" cannot end the data early). */
static size_t take_data(struct sink_session *s, const char *p, size_t n)
{
	if (s->body_verdict.action == SINK_DROP) {
		s->state = SINK_SESSION_DROPPED;   /* mid-DATA: the body has begun */
		return n;
	}
	size_t i = 0, span = 0;
	while (i < n) {
		switch (s->dot) {
		case DOT_LINE_START:
			if (p[i] == '.') {
				emit(s, p + span, i - span);
				s->dot = DOT_DOT;
				span = ++i;
			} else {
				s->dot = DOT_MID;
				s->prev_cr = 0;
			}
			break;
		case DOT_MID: {
			const char *nl = memchr(p + i, '\n', n - i);
			if (!nl) {
				s->prev_cr = p[n - 1] == '\r';
				i = n;
				break;
			}
			size_t k = (size_t)(nl - p);
			int cr = k > i ? p[k - 1] == '\r' : s->prev_cr;
			i = k + 1;
			if (cr)
				s->dot = DOT_LINE_START;
			s->prev_cr = 0;
			break;
		}
		case DOT_DOT:
			if (p[i] == '\r') {
				s->dot = DOT_DOT_CR;
				span = ++i;   /* the CR is held until the next byte */
			} else {
				s->dot = DOT_MID;   /* the dot is dropped (unstuffed) */
				s->prev_cr = 0;
			}
			break;
		case DOT_DOT_CR:
			if (p[i] == '\n') {
				body_finish(s);
				return i + 1;
			}
			emit(s, "\r", 1);   /* ".\rX": the dot goes, the CR stays */
			s->dot = DOT_MID;
			s->prev_cr = 1;
			break;
		}
	}
	emit(s, p + span, n - span);
	return n;
}

/* The end of one BDAT chunk. */
static void bdat_chunk_done(struct sink_session *s)
{
	s->rd = RD_CMD;
	if (s->bdat_error) {
		int code = s->bdat_error;
		s->bdat_error = 0;
		if (s->body_started)
			body_end_hook(s, 0, NULL);
		txn_reset(s);
		if (code == 554)
			reply(s, 554, "5.5.1", "Error: no valid recipients");
		else
			reply(s, 503, "5.5.1", "Error: need MAIL and RCPT commands first");
		return;
	}
	if (s->bdat_refuse) {
		struct sink_verdict v = s->body_verdict;
		txn_reset(s);
		reply(s, v.code, v.enhanced, v.text);
		if (v.code == 421)
			s->state = SINK_SESSION_CLOSING;
		return;
	}
	if (s->too_big) {
		body_end_hook(s, 0, NULL);
		sink_stat_add(&s->st->rejected, 1);
		txn_reset(s);
		reply(s, 552, "5.3.4", "Message size exceeds fixed maximum message size");
		return;
	}
	if (s->bdat_last) {
		body_finish(s);
		return;
	}
	reply(s, 250, "2.0.0", "Ok: chunk received");
}

static size_t take_bdat(struct sink_session *s, const char *p, size_t n)
{
	int discard = s->bdat_error || s->bdat_refuse;
	if (!discard && s->body_verdict.action == SINK_DROP) {
		s->state = SINK_SESSION_DROPPED;
		return n;
	}
	size_t k = n < s->bdat_left ? n : (size_t)s->bdat_left;
	if (!discard)
		emit(s, p, k);
	s->bdat_left -= k;
	if (s->bdat_left == 0)
		bdat_chunk_done(s);
	return k;
}

/* ---- parsing helpers ------------------------------------------------------ */

static int ieq(const char *a, size_t alen, const char *b)
{
	size_t bl = strlen(b);
	return alen == bl && strncasecmp(a, b, bl) == 0;
}

static const char *skip_sp(const char *p, const char *end)
{
	while (p < end && *p == ' ')
		p++;
	return p;
}

/* RFC 3461 4: xtext is printable ASCII but '+' and '=', and "+XX" with two
 * upper-case hex digits. */
static int xtext_ok(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c == '+') {
			if (i + 2 >= n)
				return 0;
			for (int k = 1; k <= 2; k++) {
				char h = p[i + (size_t)k];
				if (!((h >= '0' && h <= '9') || (h >= 'A' && h <= 'F')))
					return 0;
			}
			i += 2;
		} else if (c < 33 || c > 126 || c == '=') {
			return 0;
		}
	}
	return 1;
}

/* Takes "<path>" at p: copies the mailbox (source route dropped) into out
 * and returns a pointer past '>', or NULL when there is no such path. */
static const char *take_path(const char *p, const char *end, char *out, size_t cap)
{
	if (p >= end || *p != '<')
		return NULL;
	p++;
	/* RFC 5321 4.1.2 source route "@a,@b:": obsolete, ignored. */
	if (p < end && *p == '@') {
		const char *colon = memchr(p, ':', (size_t)(end - p));
		if (!colon)
			return NULL;
		p = colon + 1;
	}
	const char *q = p;
	int quoted = 0;
	while (q < end) {
		if (quoted && *q == '\\' && q + 1 < end) {
			q += 2;
			continue;
		}
		if (*q == '"')
			quoted = !quoted;
		else if (*q == '>' && !quoted)
			break;
		q++;
	}
	if (q >= end || (size_t)(q - p) >= cap)
		return NULL;
	memcpy(out, p, (size_t)(q - p));
	out[q - p] = 0;
	return q + 1;
}

/* Parses decimal digits; returns 0 or -1 (empty, not digits, overflow). */
static int parse_u64(const char *p, size_t n, uint64_t *out)
{
	uint64_t v = 0;
	if (n == 0 || n > 19)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(p[i] - '0');
	}
	*out = v;
	return 0;
}

/* The parameters after a MAIL or RCPT path: calls one_param for each
 * "KEY[=VALUE]". Returns 0, or the reply already queued (-1). */
struct param {
	const char *key, *val;
	size_t klen, vlen;
};

static int next_param(const char **pp, const char *end, struct param *prm)
{
	const char *p = skip_sp(*pp, end);
	if (p >= end)
		return 0;
	const char *tok = p;
	while (p < end && *p != ' ')
		p++;
	const char *eq = memchr(tok, '=', (size_t)(p - tok));
	prm->key = tok;
	prm->klen = (size_t)((eq ? eq : p) - tok);
	prm->val = eq ? eq + 1 : NULL;
	prm->vlen = eq ? (size_t)(p - eq - 1) : 0;
	*pp = p;
	return 1;
}

/* ---- commands -------------------------------------------------------------- */

static void cmd_helo(struct sink_session *s, const char *arg, const char *end, int ehlo)
{
	arg = skip_sp(arg, end);
	while (end > arg && end[-1] == ' ')
		end--;
	if (arg == end) {
		reply(s, 501, "5.5.4", ehlo ? "Syntax: EHLO hostname" : "Syntax: HELO hostname");
		return;
	}
	size_t n = (size_t)(end - arg);
	if (n > SINK_HELO_MAX)
		n = SINK_HELO_MAX;
	memcpy(s->helo, arg, n);
	s->helo[n] = 0;
	txn_reset(s);
	struct sink_verdict v;
	decide(s, SINK_STAGE_HELO, NULL, &v);
	if (refused(s, &v))
		return;
	s->greeted = 1;
	s->esmtp = ehlo;
	if (!ehlo) {
		accept_reply(s, &v, 250, NULL, s->cfg->hostname);
		return;
	}
	if (s->secure)
		put(s, s->cfg->ehlo_secure, s->cfg->ehlo_secure_len);
	else
		put(s, s->cfg->ehlo_plain, s->cfg->ehlo_plain_len);
	sink_stat_reply(s->st, 250);
	add_delay(s, s->cfg->reply_delay_ms);
}

static int auth_offered(const struct sink_session *s)
{
	return s->cfg->auth && (s->cfg->ext & SMTP_EXT_AUTH) && s->cfg->auth_mechs;
}

static void cmd_mail(struct sink_session *s, const char *p, const char *end)
{
	const struct sink_config *cfg = s->cfg;
	if (!s->greeted) {
		reply(s, 503, "5.5.1", "Error: send HELO/EHLO first");
		return;
	}
	if (s->in_txn) {
		reply(s, 503, "5.5.1", "Error: nested MAIL command");
		return;
	}
	if (auth_offered(s) && !s->authed) {
		reply(s, 530, "5.7.0", "Authentication required");
		return;
	}
	if ((size_t)(end - p) < 5 || strncasecmp(p, "FROM:", 5) != 0) {
		reply(s, 501, "5.5.4", "Syntax: MAIL FROM:<address>");
		return;
	}
	p = skip_sp(p + 5, end);
	const char *q = take_path(p, end, s->from, sizeof s->from);
	struct smtp_addr_check chk;
	if (!q || !smtp_addr_check(s->from, strlen(s->from), 1, &chk)) {
		s->from[0] = 0;
		reply(s, 501, "5.1.7", "Bad sender address syntax");
		return;
	}
	if (q < end && *q != ' ') {
		s->from[0] = 0;
		reply(s, 501, "5.5.4", "Syntax: MAIL FROM:<address> [parameters]");
		return;
	}
	unsigned seen = 0;
	enum { P_SIZE = 1, P_BODY = 2, P_UTF8 = 4, P_RET = 8, P_ENVID = 16, P_AUTH = 32 };
	struct param prm;
	int utf8 = 0;
	uint64_t size = 0;
	while (next_param(&q, end, &prm)) {
		unsigned bit = 0;
		int ok = 1;
		if (ieq(prm.key, prm.klen, "SIZE") && (cfg->ext & SMTP_EXT_SIZE)) {
			bit = P_SIZE;
			ok = prm.val && parse_u64(prm.val, prm.vlen, &size) == 0;
		} else if (ieq(prm.key, prm.klen, "BODY") && (cfg->ext & SMTP_EXT_8BITMIME)) {
			bit = P_BODY;
			ok = prm.val && (ieq(prm.val, prm.vlen, "7BIT") || ieq(prm.val, prm.vlen, "8BITMIME"));
		} else if (ieq(prm.key, prm.klen, "SMTPUTF8") && (cfg->ext & SMTP_EXT_SMTPUTF8)) {
			bit = P_UTF8;
			ok = !prm.val;
			utf8 = 1;
		} else if (ieq(prm.key, prm.klen, "RET") && (cfg->ext & SMTP_EXT_DSN)) {
			bit = P_RET;
			ok = prm.val && (ieq(prm.val, prm.vlen, "FULL") || ieq(prm.val, prm.vlen, "HDRS"));
		} else if (ieq(prm.key, prm.klen, "ENVID") && (cfg->ext & SMTP_EXT_DSN)) {
			bit = P_ENVID;
			ok = prm.val && prm.vlen > 0 && prm.vlen <= 100 && xtext_ok(prm.val, prm.vlen);
		} else if (ieq(prm.key, prm.klen, "AUTH") && auth_offered(s)) {
			bit = P_AUTH;   /* RFC 4954 5: accepted, and trusted no further */
			ok = prm.val && prm.vlen > 0 && (ieq(prm.val, prm.vlen, "<>") || xtext_ok(prm.val, prm.vlen));
		} else {
			s->from[0] = 0;
			reply(s, 555, "5.5.4", "Unsupported MAIL parameter");
			return;
		}
		if (!ok || (seen & bit)) {
			s->from[0] = 0;
			reply(s, 501, "5.5.4", ok ? "Duplicate MAIL parameter" : "Bad MAIL parameter value");
			return;
		}
		seen |= bit;
	}
	if (chk.utf8 && !utf8) {
		s->from[0] = 0;
		reply(s, 553, "5.6.7", "Non-ASCII address needs SMTPUTF8");
		return;
	}
	if (size && cfg->size_max && size > cfg->size_max) {
		s->from[0] = 0;
		reply(s, 552, "5.3.4", "Message size exceeds fixed maximum message size");
		return;
	}
	struct sink_verdict v;
	decide(s, SINK_STAGE_MAIL, NULL, &v);
	if (refused(s, &v)) {
		s->from[0] = 0;
		return;
	}
	s->in_txn = 1;
	s->smtputf8 = utf8;
	accept_reply(s, &v, 250, "2.1.0", "Ok");
}

/* NOTIFY=NEVER, or a comma list of SUCCESS, FAILURE, DELAY (RFC 3461 4.1). */
static int notify_ok(const char *p, size_t n)
{
	if (ieq(p, n, "NEVER"))
		return 1;
	unsigned seen = 0;
	const char *end = p + n;
	while (p <= end) {
		const char *c = memchr(p, ',', (size_t)(end - p));
		const char *e = c ? c : end;
		unsigned bit = ieq(p, (size_t)(e - p), "SUCCESS") ? 1 : ieq(p, (size_t)(e - p), "FAILURE") ? 2 :
			       ieq(p, (size_t)(e - p), "DELAY") ? 4 : 0;
		if (!bit || (seen & bit))
			return 0;
		seen |= bit;
		if (!c)
			return 1;
		p = c + 1;
	}
	return 0;
}

/* ORCPT=addr-type;xtext (RFC 3461 4.2). */
static int orcpt_ok(const char *p, size_t n)
{
	const char *semi = memchr(p, ';', n);
	if (!semi || semi == p || n > 500)
		return 0;
	for (const char *q = p; q < semi; q++)
		if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') || *q == '-'))
			return 0;
	size_t rest = n - (size_t)(semi + 1 - p);
	return rest > 0 && xtext_ok(semi + 1, rest);
}

static int rcpts_append(struct sink_session *s, const char *addr, size_t n)
{
	if (s->rcpts_cap - s->rcpts_len < n + 1) {
		size_t cap = s->rcpts_cap ? s->rcpts_cap : SINK_RCPTS_START;
		while (cap - s->rcpts_len < n + 1)
			cap *= 2;
		char *r = realloc(s->rcpts, cap);
		if (!r)
			return -1;
		s->rcpts = r;
		s->rcpts_cap = cap;
	}
	memcpy(s->rcpts + s->rcpts_len, addr, n + 1);
	s->rcpts_len += n + 1;
	return 0;
}

static void cmd_rcpt(struct sink_session *s, const char *p, const char *end)
{
	if (!s->in_txn) {
		reply(s, 503, "5.5.1", "Error: need MAIL command");
		return;
	}
	if ((size_t)(end - p) < 3 || strncasecmp(p, "TO:", 3) != 0) {
		reply(s, 501, "5.5.4", "Syntax: RCPT TO:<address>");
		return;
	}
	char addr[SMTP_PATH_MAX + 1];
	p = skip_sp(p + 3, end);
	const char *q = take_path(p, end, addr, sizeof addr);
	size_t alen = q ? strlen(addr) : 0;
	struct smtp_addr_check chk = { 0 };
	/* RFC 5321 4.1.1.3: <Postmaster> without a domain is a valid recipient. */
	int postmaster = q && ieq(addr, alen, "postmaster");
	if (!q || (!postmaster && !smtp_addr_check(addr, alen, 0, &chk))) {
		reply(s, 501, "5.1.3", "Bad recipient address syntax");
		return;
	}
	if (q < end && *q != ' ') {
		reply(s, 501, "5.5.4", "Syntax: RCPT TO:<address> [parameters]");
		return;
	}
	struct param prm;
	unsigned seen = 0;
	while (next_param(&q, end, &prm)) {
		unsigned bit;
		int ok;
		if (ieq(prm.key, prm.klen, "NOTIFY") && (s->cfg->ext & SMTP_EXT_DSN)) {
			bit = 1;
			ok = prm.val && notify_ok(prm.val, prm.vlen);
		} else if (ieq(prm.key, prm.klen, "ORCPT") && (s->cfg->ext & SMTP_EXT_DSN)) {
			bit = 2;
			ok = prm.val && orcpt_ok(prm.val, prm.vlen);
		} else {
			reply(s, 555, "5.5.4", "Unsupported RCPT parameter");
			return;
		}
		if (!ok || (seen & bit)) {
			reply(s, 501, "5.5.4", ok ? "Duplicate RCPT parameter" : "Bad RCPT parameter value");
			return;
		}
		seen |= bit;
	}
	if (chk.utf8 && !s->smtputf8) {
		reply(s, 553, "5.6.7", "Non-ASCII address needs SMTPUTF8");
		return;
	}
	s->rcpt_attempts++;
	if (s->nrcpt >= SINK_RCPT_MAX) {
		reply(s, 452, "4.5.3", "Error: too many recipients");
		return;
	}
	struct sink_verdict v;
	decide(s, SINK_STAGE_RCPT, addr, &v);
	if (refused(s, &v))
		return;
	if (rcpts_append(s, addr, alen) < 0) {
		reply(s, 452, "4.3.1", "Insufficient system storage");
		return;
	}
	s->nrcpt++;
	accept_reply(s, &v, 250, "2.1.5", "Ok");
}

/* MAIL and RCPT done? Returns 1, or 0 with the error reply queued (or, for
 * BDAT, the code to answer once the chunk has been read). */
static int ready_for_body(struct sink_session *s, int *code)
{
	*code = 0;
	if (!s->in_txn)
		*code = 503;
	else if (s->nrcpt == 0)
		*code = s->rcpt_attempts ? 554 : 503;
	return *code == 0;
}

static void cmd_data(struct sink_session *s, const char *arg, const char *end)
{
	int code;
	if (skip_sp(arg, end) != end) {
		reply(s, 501, "5.5.4", "Syntax: DATA");
		return;
	}
	if (!ready_for_body(s, &code)) {
		if (code == 554)
			reply(s, 554, "5.5.1", "Error: no valid recipients");
		else
			reply(s, 503, "5.5.1", s->in_txn ? "Error: need RCPT command" : "Error: need MAIL command");
		return;
	}
	if (s->body_started) {
		reply(s, 503, "5.5.1", "Error: DATA after BDAT");
		return;
	}
	struct sink_verdict v;
	decide(s, SINK_STAGE_DATA, NULL, &v);
	if (refused(s, &v)) {
		if (s->state == SINK_SESSION_OPEN)
			txn_reset(s);
		return;
	}
	body_start(s);
	s->rd = RD_DATA;
	s->dot = DOT_LINE_START;
	s->prev_cr = 0;
	reply(s, 354, NULL, "End data with <CR><LF>.<CR><LF>");
}

static void cmd_bdat(struct sink_session *s, const char *arg, const char *end)
{
	if (!(s->cfg->ext & SMTP_EXT_CHUNKING)) {
		reply(s, 502, "5.5.1", "Error: command not implemented");
		return;
	}
	arg = skip_sp(arg, end);
	const char *num = arg;
	while (arg < end && *arg != ' ')
		arg++;
	uint64_t n;
	if (parse_u64(num, (size_t)(arg - num), &n) < 0) {
		reply(s, 501, "5.5.4", "Syntax: BDAT size [LAST]");
		return;
	}
	arg = skip_sp(arg, end);
	const char *kw = arg;
	while (end > kw && end[-1] == ' ')
		end--;
	int last = 0;
	if (kw < end) {
		if (!ieq(kw, (size_t)(end - kw), "LAST")) {
			reply(s, 501, "5.5.4", "Syntax: BDAT size [LAST]");
			return;
		}
		last = 1;
	}
	s->bdat_left = n;
	s->bdat_last = last;
	s->bdat_error = 0;
	int code;
	if (!ready_for_body(s, &code)) {
		s->bdat_error = code;   /* the chunk is read all the same (RFC 3030 2) */
	} else if (!s->body_started) {
		struct sink_verdict v;
		decide(s, SINK_STAGE_DATA, NULL, &v);
		if (v.action == SINK_DROP) {
			s->state = SINK_SESSION_DROPPED;
			return;
		}
		if (v.action == SINK_REPLY && v.code >= 300) {
			/* Refused at the start: the reply comes once the chunk
			 * is read, like any BDAT reply. */
			s->body_verdict = v;
			s->bdat_refuse = 1;
		} else {
			body_start(s);
		}
	}
	s->rd = RD_BDAT;
	if (n == 0)
		bdat_chunk_done(s);
}

static void cmd_starttls(struct sink_session *s, const char *arg, const char *end)
{
	if (!(s->cfg->ext & SMTP_EXT_STARTTLS)) {
		reply(s, 502, "5.5.1", "Error: command not implemented");
		return;
	}
	if (s->secure) {
		reply(s, 503, "5.5.1", "Error: TLS already active");
		return;
	}
	if (skip_sp(arg, end) != end) {
		reply(s, 501, "5.5.4", "Syntax: STARTTLS");
		return;
	}
	reply(s, 220, "2.0.0", "Ready to start TLS");
	s->state = SINK_SESSION_TLS;
}

/* ---- AUTH ------------------------------------------------------------------ */

static void auth_done(struct sink_session *s, int ok)
{
	s->rd = RD_CMD;
	s->sasl = SASL_NONE;
	explicit_bzero(s->sasl_user, sizeof s->sasl_user);
	s->sasl_user_len = 0;
	if (ok) {
		s->authed = 1;
		sink_stat_add(&s->st->auth_ok, 1);
		reply(s, 235, "2.7.0", "Authentication successful");
	} else {
		sink_stat_add(&s->st->auth_failed, 1);
		reply(s, 535, "5.7.8", "Authentication credentials invalid");
	}
}

static void challenge(struct sink_session *s, const char *raw, size_t n)
{
	char b64[256];
	ssize_t k = sasl_b64_encode(raw, n, b64, sizeof b64 - 1);
	b64[k > 0 ? k : 0] = 0;
	/* 334 carries no enhanced code (RFC 2034: only on final replies). */
	reply(s, 334, NULL, b64);
	s->rd = RD_SASL;
}

/* One SASL message, decoded. */
static void sasl_message(struct sink_session *s, const char *m, size_t n)
{
	const struct sink_auth *a = s->cfg->auth;
	switch (s->sasl) {
	case SASL_PLAIN:
		auth_done(s, sink_auth_plain(a, m, n));
		break;
	case SASL_LOGIN_USER:
		if (n > sizeof s->sasl_user) {
			auth_done(s, 0);
			break;
		}
		memcpy(s->sasl_user, m, n);
		s->sasl_user_len = n;
		s->sasl = SASL_LOGIN_PASS;
		challenge(s, "Password:", 9);
		break;
	case SASL_LOGIN_PASS:
		auth_done(s, sink_auth_login(a, s->sasl_user, s->sasl_user_len, m, n));
		break;
	case SASL_CRAM:
		auth_done(s, sink_auth_cram(a, s->challenge, s->challenge_len, m, n));
		break;
	case SASL_XOAUTH2:
		if (sink_auth_xoauth2(a, m, n)) {
			auth_done(s, 1);
		} else {
			/* Google's form: a JSON error in a 334, then 535 once
			 * the client answers it (with an empty line). */
			static const char err[] =
				"{\"status\":\"401\",\"schemes\":\"bearer\",\"scope\":\"https://mail.google.com/\"}";
			s->sasl = SASL_XOAUTH2_FAILED;
			challenge(s, err, sizeof err - 1);
		}
		break;
	case SASL_XOAUTH2_FAILED:
	case SASL_NONE:
		auth_done(s, 0);
		break;
	}
}

/* A base64 line: an initial response or a response to a 334. */
static void sasl_line(struct sink_session *s, const char *p, size_t n)
{
	char raw[SINK_LINE_MAX];
	if (n == 1 && p[0] == '*') {
		s->rd = RD_CMD;
		s->sasl = SASL_NONE;
		explicit_bzero(s->sasl_user, sizeof s->sasl_user);
		reply(s, 501, "5.0.0", "Authentication aborted");
		return;
	}
	if (s->sasl == SASL_XOAUTH2_FAILED) {
		auth_done(s, 0);
		return;
	}
	/* "=" is an empty initial response (RFC 4954 4). */
	ssize_t k = (n == 1 && p[0] == '=') ? 0 : sasl_b64_decode(p, n, raw, sizeof raw);
	if (k < 0) {
		s->rd = RD_CMD;
		s->sasl = SASL_NONE;
		explicit_bzero(s->sasl_user, sizeof s->sasl_user);
		reply(s, 501, "5.5.2", "Cannot decode response");
		return;
	}
	sasl_message(s, raw, (size_t)k);
	explicit_bzero(raw, (size_t)k);
}

static void cmd_auth(struct sink_session *s, const char *arg, const char *end)
{
	if (!auth_offered(s)) {
		reply(s, 503, "5.5.1", "Error: authentication not enabled");
		return;
	}
	if (!s->esmtp) {
		reply(s, 503, "5.5.1", "Error: send EHLO first");
		return;
	}
	if ((s->cfg->ext & SMTP_EXT_STARTTLS) && !s->secure) {
		reply(s, 538, "5.7.11", "Encryption required for requested authentication mechanism");
		return;
	}
	if (s->authed) {
		reply(s, 503, "5.5.1", "Error: already authenticated");
		return;
	}
	if (s->in_txn) {
		reply(s, 503, "5.5.1", "Error: MAIL transaction in progress");
		return;
	}
	arg = skip_sp(arg, end);
	const char *mech = arg;
	while (arg < end && *arg != ' ')
		arg++;
	size_t mlen = (size_t)(arg - mech);
	const char *ir = skip_sp(arg, end);
	int has_ir = ir < end;
	char name[16];
	unsigned m = 0;
	if (mlen > 0 && mlen < sizeof name) {
		memcpy(name, mech, mlen);
		name[mlen] = 0;
		m = sasl_mech_from_name(name);
	}
	if (!m || !(s->cfg->auth_mechs & m)) {
		reply(s, 504, "5.5.4", "Unrecognized authentication type");
		return;
	}
	switch (m) {
	case SMTP_AUTH_PLAIN:
		s->sasl = SASL_PLAIN;
		break;
	case SMTP_AUTH_LOGIN:
		s->sasl = SASL_LOGIN_USER;
		break;
	case SMTP_AUTH_XOAUTH2:
		s->sasl = SASL_XOAUTH2;
		break;
	default: {
		if (has_ir) {
			reply(s, 501, "5.5.2", "CRAM-MD5 takes no initial response");
			return;
		}
		int k = snprintf(s->challenge, sizeof s->challenge, "<%llu.%llu@%s>",
				 (unsigned long long)(s->nonce >> 20), (unsigned long long)(s->nonce & 0xfffff),
				 s->cfg->hostname);
		s->challenge_len = k > 0 && (size_t)k < sizeof s->challenge ? (size_t)k : sizeof s->challenge - 1;
		s->sasl = SASL_CRAM;
		challenge(s, s->challenge, s->challenge_len);
		return;
	}
	}
	if (has_ir) {
		sasl_line(s, ir, (size_t)(end - ir));
		return;
	}
	if (m == SMTP_AUTH_LOGIN)
		challenge(s, "Username:", 9);
	else
		challenge(s, "", 0);
}

/* ---- the command dispatcher -------------------------------------------------- */

enum verb {
	V_UNKNOWN, V_EHLO, V_HELO, V_MAIL, V_RCPT, V_DATA, V_BDAT, V_RSET, V_NOOP,
	V_VRFY, V_EXPN, V_HELP, V_QUIT, V_STARTTLS, V_AUTH,
};

static enum verb verb_of(const char *p, size_t n)
{
	static const struct { const char *name; enum verb v; } verbs[] = {
		{ "MAIL", V_MAIL }, { "RCPT", V_RCPT }, { "DATA", V_DATA }, { "BDAT", V_BDAT },
		{ "EHLO", V_EHLO }, { "HELO", V_HELO }, { "RSET", V_RSET }, { "NOOP", V_NOOP },
		{ "QUIT", V_QUIT }, { "VRFY", V_VRFY }, { "EXPN", V_EXPN }, { "HELP", V_HELP },
		{ "AUTH", V_AUTH }, { "STARTTLS", V_STARTTLS },
	};
	for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
		if (ieq(p, n, verbs[i].name))
			return verbs[i].v;
	return V_UNKNOWN;
}

/* One command line, without its line end. */
static void command(struct sink_session *s, const char *line, size_t len)
{
	const char *end = line + len;
	if (memchr(line, 0, len)) {
		reply(s, 500, "5.5.2", "Error: NUL byte in command");
		return;
	}
	const char *sp = memchr(line, ' ', len);
	const char *vend = sp ? sp : end;
	enum verb v = verb_of(line, (size_t)(vend - line));
	const char *arg = sp ? sp + 1 : end;
	if (len + 2 > SINK_CMD_MAX && v != V_MAIL && v != V_RCPT && v != V_AUTH) {
		reply(s, 500, "5.5.2", "Error: line too long");
		return;
	}
	if (s->refused && v != V_QUIT) {
		reply(s, 503, "5.5.1", "Error: no SMTP service here");
		return;
	}
	switch (v) {
	case V_EHLO:     cmd_helo(s, arg, end, 1); break;
	case V_HELO:     cmd_helo(s, arg, end, 0); break;
	case V_MAIL:     cmd_mail(s, arg, end); break;
	case V_RCPT:     cmd_rcpt(s, arg, end); break;
	case V_DATA:     cmd_data(s, arg, end); break;
	case V_BDAT:     cmd_bdat(s, arg, end); break;
	case V_STARTTLS: cmd_starttls(s, arg, end); break;
	case V_AUTH:     cmd_auth(s, arg, end); break;
	case V_RSET:
		if (skip_sp(arg, end) != end) {
			reply(s, 501, "5.5.4", "Syntax: RSET");
			break;
		}
		txn_reset(s);
		reply(s, 250, "2.0.0", "Ok");
		break;
	case V_NOOP:
		reply(s, 250, "2.0.0", "Ok");
		break;
	case V_VRFY:
		if (skip_sp(arg, end) == end)
			reply(s, 501, "5.5.4", "Syntax: VRFY address");
		else
			reply(s, 252, "2.0.0", "Cannot VRFY user, but will accept message and attempt delivery");
		break;
	case V_EXPN:
		reply(s, 502, "5.5.1", "Error: EXPN not implemented");
		break;
	case V_HELP:
		reply(s, 214, "2.0.0", "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP VRFY HELP QUIT STARTTLS AUTH");
		break;
	case V_QUIT:
		reply(s, 221, "2.0.0", "Bye");
		s->state = SINK_SESSION_CLOSING;
		break;
	case V_UNKNOWN:
		reply(s, 500, "5.5.2", "Error: command not recognized");
		break;
	}
}

static void line_done(struct sink_session *s, const char *line, size_t len)
{
	if (len && line[len - 1] == '\r')
		len--;
	if (s->rd == RD_SASL)
		sasl_line(s, line, len);
	else
		command(s, line, len);
}

static void too_long(struct sink_session *s)
{
	s->line_len = 0;
	if (s->rd == RD_SASL) {
		s->sasl = SASL_NONE;
		explicit_bzero(s->sasl_user, sizeof s->sasl_user);
	}
	s->rd = RD_DISCARD;
	reply(s, 500, "5.5.2", "Error: line too long");
}

/* Takes one line (or the part of it there is). */
static size_t take_line(struct sink_session *s, const char *p, size_t n)
{
	const char *nl = memchr(p, '\n', n);
	size_t k = nl ? (size_t)(nl - p) : n;
	if (s->line_len == 0 && nl) {
		if (k + 1 > SINK_LINE_MAX) {
			too_long(s);
			s->rd = RD_CMD;   /* its end is here */
			return k + 1;
		}
		line_done(s, p, k);
		return k + 1;
	}
	if (s->line_len + k + 1 > SINK_LINE_MAX) {
		too_long(s);
		if (nl)
			s->rd = RD_CMD;
		return nl ? k + 1 : n;
	}
	if (!s->line && !(s->line = malloc(SINK_LINE_MAX))) {
		s->state = SINK_SESSION_DROPPED;   /* out of memory: nothing sane to say */
		return n;
	}
	memcpy(s->line + s->line_len, p, k);
	s->line_len += k;
	if (!nl)
		return n;
	size_t len = s->line_len;
	s->line_len = 0;
	line_done(s, s->line, len);
	return k + 1;
}

static size_t discard_line(struct sink_session *s, const char *p, size_t n)
{
	const char *nl = memchr(p, '\n', n);
	if (!nl)
		return n;
	s->rd = RD_CMD;
	return (size_t)(nl - p) + 1;
}

/* ---- the public side ------------------------------------------------------ */

struct sink_session *sink_session_new(const struct sink_config *cfg, const struct sink_hooks *hooks,
				      struct sink_stats *stats, int secure, uint64_t nonce)
{
	struct sink_session *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->cfg = cfg;
	s->hooks = hooks;
	s->st = stats;
	s->secure = secure;
	s->nonce = nonce;
	s->state = SINK_SESSION_OPEN;
	s->rd = RD_CMD;
	return s;
}

void sink_session_free(struct sink_session *s)
{
	if (!s)
		return;
	if (s->body_started)
		body_end_hook(s, 0, NULL);
	explicit_bzero(s->sasl_user, sizeof s->sasl_user);
	if (s->line) {
		explicit_bzero(s->line, SINK_LINE_MAX);   /* it may have held an AUTH line */
		free(s->line);
	}
	free(s->rcpts);
	free(s->out);
	free(s);
}

void sink_session_start(struct sink_session *s)
{
	struct sink_verdict v;
	if (!room_for_step(s)) {
		s->state = SINK_SESSION_DROPPED;
		return;
	}
	decide(s, SINK_STAGE_CONNECT, NULL, &v);
	if (v.action == SINK_DROP) {
		s->state = SINK_SESSION_DROPPED;
		return;
	}
	if (v.action == SINK_REPLY && v.code >= 300) {
		reply(s, v.code, v.enhanced, v.text);
		if (v.code == 421 || v.code / 100 == 4)
			s->state = SINK_SESSION_CLOSING;
		else
			s->refused = 1;   /* 554: only QUIT from now on (RFC 5321 3.1) */
		return;
	}
	if (v.action == SINK_REPLY)
		reply(s, 220, NULL, v.text);
	else
		reply2(s, 220, NULL, s->cfg->hostname, " ESMTP volley sink");
}

size_t sink_session_input(struct sink_session *s, const char *buf, size_t len)
{
	size_t off = 0;
	while (off < len && s->state == SINK_SESSION_OPEN) {
		if (!room_for_step(s))
			return off;
		const char *p = buf + off;
		size_t n = len - off;
		switch (s->rd) {
		case RD_CMD:
		case RD_SASL:    off += take_line(s, p, n); break;
		case RD_DISCARD: off += discard_line(s, p, n); break;
		case RD_DATA:    off += take_data(s, p, n); break;
		case RD_BDAT:    off += take_bdat(s, p, n); break;
		}
	}
	/* Past a state change the bytes are not this session's to read. */
	return s->state == SINK_SESSION_OPEN ? off : len;
}

const char *sink_session_output(struct sink_session *s, size_t *len)
{
	*len = s->out_len - s->out_off;
	if (*len)
		s->lent = 1;
	return s->out + s->out_off;
}

void sink_session_output_consumed(struct sink_session *s, size_t n)
{
	size_t pending = s->out_len - s->out_off;
	s->lent = 0;
	s->out_off += n < pending ? n : pending;
	if (s->out_off == s->out_len)
		s->out_off = s->out_len = 0;
}

size_t sink_session_output_pending(const struct sink_session *s)
{
	return s->out_len - s->out_off;
}

uint32_t sink_session_take_delay(struct sink_session *s)
{
	uint32_t d = s->delay_ms;
	s->delay_ms = 0;
	return d;
}

enum sink_session_state sink_session_state(const struct sink_session *s)
{
	return s->state;
}

int sink_session_in_body(const struct sink_session *s)
{
	return s->rd == RD_DATA || s->rd == RD_BDAT;
}

void sink_session_tls_done(struct sink_session *s)
{
	if (s->state != SINK_SESSION_TLS)
		return;
	s->state = SINK_SESSION_OPEN;
	s->secure = 1;
	s->greeted = s->esmtp = s->authed = 0;
	s->helo[0] = 0;
	s->rd = RD_CMD;
	s->line_len = 0;
	s->sasl = SASL_NONE;
	txn_reset(s);
}

static void close_with_421(struct sink_session *s, const char *enh, const char *text)
{
	if (s->state == SINK_SESSION_CLOSING || s->state == SINK_SESSION_DROPPED)
		return;
	if (room_for_step(s))
		reply(s, 421, enh, text);
	s->state = SINK_SESSION_CLOSING;
}

void sink_session_shutdown(struct sink_session *s)
{
	close_with_421(s, "4.3.2", "Service shutting down, closing the connection");
}

void sink_session_timeout(struct sink_session *s)
{
	close_with_421(s, "4.4.2", "Error: timeout exceeded");
}
