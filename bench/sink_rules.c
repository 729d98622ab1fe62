/* sink_rules: the rules file's parser and the matcher. See sink_rules.h.
 *
 * A parsed rule keeps its strings in one copy of the file text, split in
 * place. The only state that changes after parsing is the token bucket of
 * each rate> rule (an atomic theoretical arrival time, GCRA style) and the
 * greylist (a fixed table of pair hashes under a mutex). */
#include "bench/sink_rules.h"
#include "bench/sink_file.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SINK_RULES_FILE_MAX (1024 * 1024)

enum rule_action { ACT_REPLY, ACT_DELAY, ACT_DISCONNECT, ACT_GREYLIST };

struct rule {
	unsigned line;
	enum sink_stage at;
	enum rule_action action;
	const char *rcpt, *from, *client, *helo;   /* globs, or NULL */
	int has_after;
	unsigned after;
	double prob;               /* 1 when not given */
	uint64_t rate;             /* per second; 0 when not given */
	uint64_t rate_tat_us;      /* the bucket: theoretical arrival time (atomic) */
	int code;
	const char *enhanced;      /* NULL when not given */
	const char *text;
	uint32_t ms;               /* delay */
	uint32_t grey_secs;
};

struct grey_slot {
	uint64_t key;              /* 0: empty */
	uint64_t first_ms;
};

struct sink_rules {
	char *text;
	struct rule *rules;
	unsigned n;
	int need_client;
	int has_grey;
	pthread_mutex_t grey_lock;
	struct grey_slot *grey;    /* SINK_GREY_SLOTS, allocated when a rule greylists */
	unsigned grey_used;
};

/* ---- parsing ---------------------------------------------------------------- */

struct parser {
	const char *name;
	unsigned line;
	const char *line_start;
	char *err;
	size_t errlen;
};

static int perr(struct parser *p, const char *at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int perr(struct parser *p, const char *at, const char *fmt, ...)
{
	char msg[200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	snprintf(p->err, p->errlen, "%s:%u:%zu: %s", p->name, p->line,
		 (size_t)(at - p->line_start) + 1, msg);
	return -1;
}

static int stage_from(const char *s, enum sink_stage *out)
{
	for (int i = 0; i < SINK_STAGE_COUNT; i++) {
		if (strcasecmp(s, sink_stage_name((enum sink_stage)i)) == 0) {
			*out = (enum sink_stage)i;
			return 0;
		}
	}
	return -1;
}

static int parse_uint(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return -1;
	*out = v;
	return 0;
}

/* Returns the next token (NUL-terminated in place) or NULL; *pp moves on. */
static char *next_token(char **pp)
{
	char *p = *pp;
	while (*p == ' ' || *p == '\t')
		p++;
	if (!*p)
		return NULL;
	char *t = p;
	while (*p && *p != ' ' && *p != '\t')
		p++;
	if (*p)
		*p++ = 0;
	*pp = p;
	return t;
}

static int enhanced_ok(const char *s, int code)
{
	/* class.subject.detail: 2, 4 or 5; 1-3 digits; 1-3 digits (RFC 3463). */
	if (s[0] != '0' + code / 100 || s[1] != '.')
		return 0;
	const char *p = s + 2;
	for (int part = 0; part < 2; part++) {
		int d = 0;
		while (*p >= '0' && *p <= '9' && d < 4)
			p++, d++;
		if (d < 1 || d > 3)
			return 0;
		if (part == 0 && *p++ != '.')
			return 0;
	}
	return *p == 0;
}

static int parse_action(struct parser *ps, struct rule *r, char *word, char **rest)
{
	uint64_t v;
	if (strcasecmp(word, "reply") == 0) {
		r->action = ACT_REPLY;
		char *code = next_token(rest);
		if (!code)
			return perr(ps, word, "reply needs a code and a text");
		if (parse_uint(code, 599, &v) || v < 200 || (v >= 300 && v < 400))
			return perr(ps, code, "reply code must be 2xx, 4xx or 5xx");
		r->code = (int)v;
		char *p = *rest;
		while (*p == ' ' || *p == '\t')
			p++;
		/* An enhanced code is a token of digits and dots. */
		if (*p >= '2' && *p <= '5' && p[1] == '.') {
			char *enh = next_token(rest);
			if (!enhanced_ok(enh, r->code))
				return perr(ps, enh, "bad enhanced status code '%s' for %d", enh, r->code);
			r->enhanced = enh;
			p = *rest;
			while (*p == ' ' || *p == '\t')
				p++;
		}
		char *end = p + strlen(p);
		while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
			*--end = 0;
		if (!*p)
			return perr(ps, p, "reply needs a text");
		if (strlen(p) > SINK_TEXT_MAX)
			return perr(ps, p, "reply text longer than %d bytes", SINK_TEXT_MAX);
		for (char *q = p; *q; q++)
			if ((unsigned char)*q < 0x20 && *q != '\t')
				return perr(ps, q, "control character in the reply text");
		r->text = p;
		*rest = end;
		return 0;
	}
	if (strcasecmp(word, "delay") == 0) {
		r->action = ACT_DELAY;
		char *ms = next_token(rest);
		if (!ms || parse_uint(ms, 3600000, &v))
			return perr(ps, ms ? ms : word, "delay needs milliseconds (0 to 3600000)");
		r->ms = (uint32_t)v;
		return 0;
	}
	if (strcasecmp(word, "disconnect") == 0) {
		r->action = ACT_DISCONNECT;
		return 0;
	}
	if (strcasecmp(word, "greylist") == 0) {
		r->action = ACT_GREYLIST;
		char *secs = next_token(rest);
		if (secs) {
			if (parse_uint(secs, 86400, &v))
				return perr(ps, secs, "greylist takes seconds (0 to 86400)");
			r->grey_secs = (uint32_t)v;
		}
		return 0;
	}
	return perr(ps, word, "unknown action '%s' (reply, delay, disconnect, greylist)", word);
}

/* Parses one line (NUL-terminated, comments already cut). Returns 1 when it
 * made a rule, 0 for a blank line, -1 on an error. */
static int parse_line(struct parser *ps, char *line, struct rule *r)
{
	memset(r, 0, sizeof *r);
	r->line = ps->line;
	r->prob = 1;
	r->at = SINK_STAGE_COUNT;
	char *rest = line;
	char *line_end = line + strlen(line);   /* tokens are cut in place */
	char *tok;
	const char *at_tok = NULL;
	int acted = 0;
	while (*rest == ' ' || *rest == '\t')
		rest++;
	if (!*rest)
		return 0;
	while ((tok = next_token(&rest))) {
		char *eq = strchr(tok, '=');
		char *gt = strchr(tok, '>');
		if (strncasecmp(tok, "rate>", 5) == 0) {
			uint64_t v;
			if (parse_uint(tok + 5, 1000000, &v) || v == 0)
				return perr(ps, tok + 5, "rate> needs a number from 1 to 1000000");
			r->rate = v;
			continue;
		}
		if (!eq || (gt && gt < eq)) {
			if (parse_action(ps, r, tok, &rest) < 0)
				return -1;
			acted = 1;
			tok = next_token(&rest);
			if (tok)
				return perr(ps, tok, "unexpected '%s' after the action", tok);
			break;
		}
		*eq = 0;
		char *val = eq + 1;
		uint64_t v;
		if (strcasecmp(tok, "at") == 0) {
			if (stage_from(val, &r->at) < 0)
				return perr(ps, val, "unknown stage '%s' (connect, helo, mail, rcpt, data, body)", val);
			at_tok = tok;
		} else if (strcasecmp(tok, "rcpt") == 0) {
			r->rcpt = val;
		} else if (strcasecmp(tok, "from") == 0) {
			r->from = val;
		} else if (strcasecmp(tok, "client") == 0) {
			if (!*val)
				return perr(ps, val, "client= needs an address pattern");
			r->client = val;
		} else if (strcasecmp(tok, "helo") == 0) {
			r->helo = val;
		} else if (strcasecmp(tok, "after") == 0) {
			if (parse_uint(val, 1000000000, &v))
				return perr(ps, val, "after= needs a number of messages");
			r->has_after = 1;
			r->after = (unsigned)v;
		} else if (strcasecmp(tok, "prob") == 0) {
			char *end;
			errno = 0;
			double p = strtod(val, &end);
			if (!*val || *end || errno || !(p >= 0 && p <= 1))
				return perr(ps, val, "prob= needs a number from 0 to 1");
			r->prob = p;
		} else {
			return perr(ps, tok, "unknown condition '%s'", tok);
		}
	}
	if (!acted)
		return perr(ps, line_end, "no action (reply, delay, disconnect, greylist)");
	if (r->at == SINK_STAGE_COUNT)
		return perr(ps, line, "no stage: add at=connect|helo|mail|rcpt|data|body");
	if (r->rcpt && r->at < SINK_STAGE_RCPT)
		return perr(ps, r->rcpt - 5, "rcpt= cannot match at=%s (no recipient yet)", sink_stage_name(r->at));
	if (r->from && r->at < SINK_STAGE_MAIL)
		return perr(ps, r->from - 5, "from= cannot match at=%s (no sender yet)", sink_stage_name(r->at));
	if (r->helo && r->at < SINK_STAGE_HELO)
		return perr(ps, r->helo - 5, "helo= cannot match at=connect");
	if (r->action == ACT_GREYLIST && r->at != SINK_STAGE_RCPT)
		return perr(ps, at_tok, "greylist works at=rcpt only");
	return 1;
}

struct sink_rules *sink_rules_parse(const char *name, const char *text, size_t len,
				    char *err, size_t errlen)
{
	struct sink_rules *rs = calloc(1, sizeof *rs);
	if (!rs || !(rs->text = malloc(len + 1)) || !(rs->rules = calloc(SINK_RULES_MAX, sizeof *rs->rules))) {
		if (rs) {
			free(rs->text);
			free(rs);
		}
		snprintf(err, errlen, "%s: out of memory", name);
		return NULL;
	}
	pthread_mutex_init(&rs->grey_lock, NULL);
	memcpy(rs->text, text, len);
	rs->text[len] = 0;
	struct parser ps = { name, 0, NULL, err, errlen };
	char *p = rs->text, *end = rs->text + len;
	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		char *eol = nl ? nl : end;
		ps.line++;
		ps.line_start = p;
		*eol = 0;
		size_t ll = (size_t)(eol - p);
		if (ll && p[ll - 1] == '\r')
			p[--ll] = 0;
		if (strlen(p) != ll) {
			perr(&ps, p + strlen(p), "NUL byte");
			goto fail;
		}
		/* '#' starts a comment, except inside a reply text ("#5" is
		 * rare there; a comment must follow a space or start the line). */
		for (char *q = p; *q; q++) {
			if (*q == '#' && (q == p || q[-1] == ' ' || q[-1] == '\t')) {
				*q = 0;
				break;
			}
		}
		for (char *q = p; *q; q++) {
			if ((unsigned char)*q < 0x20 && *q != '\t') {
				perr(&ps, q, "control character");
				goto fail;
			}
		}
		struct rule r;
		int k = parse_line(&ps, p, &r);
		if (k < 0)
			goto fail;
		if (k > 0) {
			if (rs->n == SINK_RULES_MAX) {
				perr(&ps, p, "more than %d rules", SINK_RULES_MAX);
				goto fail;
			}
			if (r.client)
				rs->need_client = 1;
			if (r.action == ACT_GREYLIST)
				rs->has_grey = 1;
			rs->rules[rs->n++] = r;
		}
		p = nl ? nl + 1 : end;
	}
	if (rs->has_grey && !(rs->grey = calloc(SINK_GREY_SLOTS, sizeof *rs->grey))) {
		snprintf(err, errlen, "%s: out of memory", name);
		goto fail;
	}
	return rs;
fail:
	sink_rules_free(rs);
	return NULL;
}

struct sink_rules *sink_rules_load(const char *path, char *err, size_t errlen)
{
	size_t n;
	char *buf = sink_file_read(path, SINK_RULES_FILE_MAX, &n, err, errlen);
	if (!buf)
		return NULL;
	struct sink_rules *r = sink_rules_parse(path, buf, n, err, errlen);
	free(buf);
	return r;
}

void sink_rules_free(struct sink_rules *r)
{
	if (!r)
		return;
	pthread_mutex_destroy(&r->grey_lock);
	free(r->grey);
	free(r->rules);
	free(r->text);
	free(r);
}

unsigned sink_rules_count(const struct sink_rules *r)
{
	return r ? r->n : 0;
}

int sink_rules_need_client(const struct sink_rules *r)
{
	return r && r->need_client;
}

/* ---- matching ----------------------------------------------------------------- */

static int lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/* '*' matches any run, '?' one byte; case-insensitive for ASCII. Iterative,
 * with one backtrack point, so it is linear-ish and never recursive. */
static int glob_match(const char *pat, const char *s)
{
	const char *star = NULL, *retry = NULL;
	while (*s) {
		if (*pat == '*') {
			star = pat++;
			retry = s;
		} else if (*pat == '?' || (*pat && lower((unsigned char)*pat) == lower((unsigned char)*s))) {
			pat++;
			s++;
		} else if (star) {
			pat = star + 1;
			s = ++retry;
		} else {
			return 0;
		}
	}
	while (*pat == '*')
		pat++;
	return *pat == 0;
}

static int any_rcpt_matches(const char *pat, const struct sink_view *v)
{
	const char *p = v->rcpts;
	for (unsigned i = 0; i < v->nrcpt; i++) {
		if (glob_match(pat, p))
			return 1;
		p += strlen(p) + 1;
	}
	return 0;
}

double sink_rules_random(uint64_t *state)
{
	uint64_t x = *state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*state = x;
	return (double)(x >> 11) / (double)(1ull << 53);
}

/* GCRA: a bucket of `rate` a second with a burst of `rate`. Returns 1 when
 * this arrival is over the rate (and then leaves the bucket as it was). */
static int over_rate(struct rule *r, uint64_t now_ms)
{
	uint64_t now = now_ms * 1000;
	uint64_t step = 1000000 / r->rate;
	uint64_t limit = 1000000;   /* one second's worth of burst */
	uint64_t tat = __atomic_load_n(&r->rate_tat_us, __ATOMIC_RELAXED);
	for (;;) {
		uint64_t base = tat > now ? tat : now;
		if (base + step - now > limit)
			return 1;
		if (__atomic_compare_exchange_n(&r->rate_tat_us, &tat, base + step, 0,
						__ATOMIC_RELAXED, __ATOMIC_RELAXED))
			return 0;
	}
}

/* FNV-1a over sender NUL recipient, case-folded; never 0. */
static uint64_t pair_key(const char *from, const char *rcpt)
{
	uint64_t h = 1469598103934665603ull;
	for (const char *p = from; *p; p++)
		h = (h ^ (unsigned char)lower((unsigned char)*p)) * 1099511628211ull;
	h = (h ^ 0) * 1099511628211ull;
	for (const char *p = rcpt; *p; p++)
		h = (h ^ (unsigned char)lower((unsigned char)*p)) * 1099511628211ull;
	return h ? h : 1;
}

/* Returns 1 when the pair must wait (first attempt, or too early). */
static int greylisted(struct sink_rules *rs, const struct rule *r, const char *from, const char *rcpt,
		      uint64_t now_ms)
{
	uint64_t key = pair_key(from, rcpt);
	int wait = 1;
	pthread_mutex_lock(&rs->grey_lock);
	/* A full table forgets everything: the sink never grows for it. */
	if (rs->grey_used >= SINK_GREY_SLOTS / 2) {
		memset(rs->grey, 0, SINK_GREY_SLOTS * sizeof *rs->grey);
		rs->grey_used = 0;
	}
	size_t i = (size_t)(key & (SINK_GREY_SLOTS - 1));
	while (rs->grey[i].key && rs->grey[i].key != key)
		i = (i + 1) & (SINK_GREY_SLOTS - 1);
	if (!rs->grey[i].key) {
		rs->grey[i].key = key;
		rs->grey[i].first_ms = now_ms;
		rs->grey_used++;
	} else if (now_ms - rs->grey[i].first_ms >= (uint64_t)r->grey_secs * 1000) {
		wait = 0;
	}
	pthread_mutex_unlock(&rs->grey_lock);
	return wait;
}

static int conditions_hold(struct rule *r, const struct sink_match *m, const struct sink_view *v)
{
	if (r->at != v->stage)
		return 0;
	if (r->rcpt) {
		if (v->stage == SINK_STAGE_RCPT ? !v->rcpt || !glob_match(r->rcpt, v->rcpt)
						 : !any_rcpt_matches(r->rcpt, v))
			return 0;
	}
	if (r->from && !glob_match(r->from, v->from))
		return 0;
	if (r->helo && !glob_match(r->helo, v->helo))
		return 0;
	if (r->client && !(m->client && glob_match(r->client, m->client)))
		return 0;
	if (r->has_after && v->messages < r->after)
		return 0;
	if (r->prob < 1 && !(m->rng && sink_rules_random(m->rng) < r->prob))
		return 0;
	/* Last, so that only arrivals that match everything else fill it. */
	if (r->rate && !over_rate(r, m->now_ms))
		return 0;
	return 1;
}

void sink_rules_decide(struct sink_rules *rs, const struct sink_match *m,
		       const struct sink_view *view, struct sink_verdict *v)
{
	if (!rs)
		return;
	for (unsigned i = 0; i < rs->n; i++) {
		struct rule *r = &rs->rules[i];
		if (!conditions_hold(r, m, view))
			continue;
		switch (r->action) {
		case ACT_DELAY:
			v->delay_ms = r->ms > UINT32_MAX - v->delay_ms ? UINT32_MAX : v->delay_ms + r->ms;
			continue;
		case ACT_REPLY:
			v->action = SINK_REPLY;
			v->code = r->code;
			v->enhanced = r->enhanced;
			v->text = r->text;
			return;
		case ACT_DISCONNECT:
			v->action = SINK_DROP;
			return;
		case ACT_GREYLIST:
			if (greylisted(rs, r, view->from, view->rcpt ? view->rcpt : "", m->now_ms)) {
				v->action = SINK_REPLY;
				v->code = 451;
				v->enhanced = "4.7.1";
				v->text = "Greylisted, please try again later";
			}
			return;
		}
	}
}
