/* reply_rules: see reply_rules.h. The file is INI (read by inih): a
 * section per rule, its keys the rule's tests. A rule is checked in full
 * once its section ends, then the rules are put in the order they are
 * tried: provider's, generic text, enhanced codes, reply codes, each in file
 * order. */
#include "ratelimit/reply_rules.h"

#include <ini.h>
#include <regex.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define TEXT_MAX     4096   /* bytes of one rule's text alternatives */
#define PATTERNS_MAX 32     /* enhanced or reply codes in one rule */
#define RULES_MAX    4096

enum tier { TIER_PROVIDER, TIER_TEXT, TIER_ENHANCED, TIER_CODE };

/* An enhanced code pattern: class 0 for either (X), subject -1 for any,
 * details lo..hi (0..999 for any). */
struct ec_pattern {
	int cls, subject, lo, hi;
};

/* A reply code pattern: each digit, or -1 for x. */
struct code_pattern {
	int digit[3];
};

struct rule {
	char *name;
	int cls;                 /* -1 until given */
	char *provider;
	char *text;              /* the alternatives, "(a)|(b)", until compiled */
	size_t text_len;
	regex_t re;
	int has_re;
	struct ec_pattern ec[PATTERNS_MAX];
	size_t nec;
	struct code_pattern code[PATTERNS_MAX];
	size_t ncode;
	unsigned phases;         /* bit per enum reply_phase; 0: any */
	int permanent;
	int seen_class, seen_provider, seen_enhanced, seen_code, seen_phase, seen_permanent;
	enum tier tier;
};

struct reply_rules {
	struct rule *rules;
	size_t n;
};

/* The parse in progress. */
struct parse {
	struct reply_rules *r;
	size_t cap;
	struct rule *cur;        /* the rule whose section is being read */
	const char *name;        /* of the text, for errors */
	char err[REPLY_RULES_ERR_MAX];
	int failed;              /* err holds the first error */
	int err_has_line;        /* inih's line number goes in front of it */
};

static void parse_error(struct parse *p, int with_line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void parse_error(struct parse *p, int with_line, const char *fmt, ...)
{
	va_list ap;

	if (p->failed)
		return;
	p->failed = 1;
	p->err_has_line = with_line;
	va_start(ap, fmt);
	vsnprintf(p->err, sizeof p->err, fmt, ap);
	va_end(ap);
}

static void rule_free(struct rule *ru)
{
	free(ru->name);
	free(ru->provider);
	free(ru->text);
	if (ru->has_re)
		regfree(&ru->re);
}

void reply_rules_free(struct reply_rules *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		rule_free(&r->rules[i]);
	free(r->rules);
	free(r);
}

size_t reply_rules_count(const struct reply_rules *r)
{
	return r ? r->n : 0;
}

/* ---- values ---- */

/* The next comma-separated item of *s (spaces around it dropped) into
 * item; returns 0 at the end, -1 when it does not fit. */
static int next_item(const char **s, char *item, size_t size)
{
	const char *p = *s;

	while (*p == ' ' || *p == '\t' || *p == ',')
		p++;
	if (!*p)
		return 0;
	const char *end = p;
	while (*end && *end != ',')
		end++;
	const char *last = end;
	while (last > p && (last[-1] == ' ' || last[-1] == '\t'))
		last--;
	*s = end;
	if ((size_t)(last - p) >= size)
		return -1;
	memcpy(item, p, (size_t)(last - p));
	item[last - p] = '\0';
	return 1;
}

/* A number of 1 to 3 digits at *s; returns it and moves *s past it, or -1. */
static int small_number(const char **s)
{
	int v = 0, digits = 0;

	while (**s >= '0' && **s <= '9' && digits < 4) {
		v = v * 10 + (**s - '0');
		(*s)++;
		digits++;
	}
	return digits >= 1 && digits <= 3 ? v : -1;
}

/* "5.7.1", "X.1.1", "X.3.*", "X.7.20-26". Returns 0 or -1. */
static int parse_ec(const char *s, struct ec_pattern *pat)
{
	if (*s == 'X' || *s == 'x')
		pat->cls = 0;
	else if (*s == '4' || *s == '5' || *s == '2')
		pat->cls = *s - '0';
	else
		return -1;
	if (*++s != '.')
		return -1;
	s++;
	if (*s == '*') {
		pat->subject = -1;
		s++;
	} else if ((pat->subject = small_number(&s)) < 0) {
		return -1;
	}
	if (*s++ != '.')
		return -1;
	if (*s == '*') {
		pat->lo = 0;
		pat->hi = 999;
		s++;
	} else {
		if ((pat->lo = small_number(&s)) < 0)
			return -1;
		pat->hi = pat->lo;
		if (*s == '-') {
			s++;
			if ((pat->hi = small_number(&s)) < pat->lo)
				return -1;
		}
	}
	return *s ? -1 : 0;
}

/* "550", "55x", "5xx", "000". Returns 0 or -1. */
static int parse_code(const char *s, struct code_pattern *pat)
{
	if (strlen(s) != 3)
		return -1;
	for (int i = 0; i < 3; i++) {
		if (s[i] >= '0' && s[i] <= '9')
			pat->digit[i] = s[i] - '0';
		else if (s[i] == 'x' || s[i] == 'X')
			pat->digit[i] = -1;
		else
			return -1;
	}
	/* 000 is no reply at all; else a failure reply, 4yz or 5yz */
	int none = pat->digit[0] == 0 && pat->digit[1] == 0 && pat->digit[2] == 0;
	return none || pat->digit[0] == 4 || pat->digit[0] == 5 ? 0 : -1;
}

static const char *const phase_names[REPLY_PHASE_COUNT] = {
	"connect", "ehlo", "auth", "mail", "rcpt", "data",
};

static int parse_bool(const char *s)
{
	if (!strcasecmp(s, "yes") || !strcasecmp(s, "true") || !strcmp(s, "1"))
		return 1;
	if (!strcasecmp(s, "no") || !strcasecmp(s, "false") || !strcmp(s, "0"))
		return 0;
	return -1;
}

/* ---- the INI handler ---- */

/* Adds one alternative to the rule's text. Returns 0 or -1. */
static int add_text(struct parse *p, struct rule *ru, const char *value)
{
	size_t n = strlen(value);
	size_t need = ru->text_len + (ru->text_len ? 1 : 0) + n + 2;

	if (n == 0) {
		parse_error(p, 1, "rule [%s]: text is empty", ru->name);
		return -1;
	}
	if (need >= TEXT_MAX) {
		parse_error(p, 1, "rule [%s]: text longer than %d bytes in all", ru->name, TEXT_MAX);
		return -1;
	}
	char *t = realloc(ru->text, need + 1);
	if (!t) {
		parse_error(p, 1, "out of memory");
		return -1;
	}
	ru->text = t;
	if (ru->text_len)
		t[ru->text_len++] = '|';
	t[ru->text_len++] = '(';
	memcpy(t + ru->text_len, value, n);
	ru->text_len += n;
	t[ru->text_len++] = ')';
	t[ru->text_len] = '\0';
	return 0;
}

/* A key given twice: an error but for text. */
static int once(struct parse *p, struct rule *ru, int *seen, const char *key)
{
	if (*seen) {
		parse_error(p, 1, "rule [%s]: %s given twice", ru->name, key);
		return -1;
	}
	*seen = 1;
	return 0;
}

/* Adds one item of a list key to the rule: 0, -1 when it is not one, -2
 * when the rule has as many as it can hold. */
typedef int (*add_item_fn)(struct rule *ru, const char *item);

static int add_ec(struct rule *ru, const char *item)
{
	if (ru->nec == PATTERNS_MAX)
		return -2;
	if (parse_ec(item, &ru->ec[ru->nec]) < 0)
		return -1;
	ru->nec++;
	return 0;
}

static int add_code(struct rule *ru, const char *item)
{
	if (ru->ncode == PATTERNS_MAX)
		return -2;
	if (parse_code(item, &ru->code[ru->ncode]) < 0)
		return -1;
	ru->ncode++;
	return 0;
}

static int add_phase(struct rule *ru, const char *item)
{
	for (int i = 0; i < REPLY_PHASE_COUNT; i++) {
		if (!strcasecmp(item, phase_names[i])) {
			ru->phases |= 1u << i;
			return 0;
		}
	}
	return -1;
}

/* A comma-separated list key, each item added with add; bad and hint make
 * the error for an item that is not one. Returns 0 or -1. */
static int read_list(struct parse *p, struct rule *ru, const char *key, const char *value,
		     add_item_fn add, const char *bad, const char *hint)
{
	char item[64];
	const char *s = value;
	int rc, added = 0;

	while ((rc = next_item(&s, item, sizeof item)) > 0) {
		int why = add(ru, item);
		if (why == -2) {
			parse_error(p, 1, "rule [%s]: %s: more than %d", ru->name, key, PATTERNS_MAX);
			return -1;
		}
		if (why < 0) {
			parse_error(p, 1, "rule [%s]: %s: %s '%s'%s", ru->name, key, bad, item, hint);
			return -1;
		}
		added++;
	}
	if (rc < 0 || !added) {
		parse_error(p, 1, "rule [%s]: %s: %s", ru->name, key,
			    rc < 0 ? "an item longer than 63 characters" : "empty");
		return -1;
	}
	return 0;
}

static int set_key(struct parse *p, struct rule *ru, const char *key, const char *value)
{
	if (!strcmp(key, "text"))
		return add_text(p, ru, value);
	if (!strcmp(key, "class")) {
		if (once(p, ru, &ru->seen_class, key) < 0)
			return -1;
		if ((ru->cls = reply_class_by_name(value, strlen(value))) < 0) {
			parse_error(p, 1, "rule [%s]: no class '%s'", ru->name, value);
			return -1;
		}
		return 0;
	}
	if (!strcmp(key, "provider")) {
		if (once(p, ru, &ru->seen_provider, key) < 0)
			return -1;
		if (!*value || !(ru->provider = strdup(value))) {
			parse_error(p, 1, "rule [%s]: %s", ru->name, *value ? "out of memory" : "provider is empty");
			return -1;
		}
		return 0;
	}
	if (!strcmp(key, "enhanced"))
		return once(p, ru, &ru->seen_enhanced, key) < 0 ? -1
		       : read_list(p, ru, key, value, add_ec, "not a code:", "");
	if (!strcmp(key, "code"))
		return once(p, ru, &ru->seen_code, key) < 0 ? -1
		       : read_list(p, ru, key, value, add_code, "not a 4xx or 5xx code:", "");
	if (!strcmp(key, "phase"))
		return once(p, ru, &ru->seen_phase, key) < 0 ? -1
		       : read_list(p, ru, key, value, add_phase, "no phase",
				   " (connect, ehlo, auth, mail, rcpt, data)");
	if (!strcmp(key, "permanent")) {
		if (once(p, ru, &ru->seen_permanent, key) < 0)
			return -1;
		if ((ru->permanent = parse_bool(value)) < 0) {
			parse_error(p, 1, "rule [%s]: permanent: '%s' is not yes or no", ru->name, value);
			return -1;
		}
		return 0;
	}
	parse_error(p, 1, "rule [%s]: no key '%s' (class, text, provider, enhanced, code, phase, "
		    "permanent)", ru->name, key);
	return -1;
}

/* The current rule, complete: checked and put in its tier (its text is
 * compiled once the rules stop moving: compile_texts). Returns 0 or -1. */
static int finish_rule(struct parse *p)
{
	struct rule *ru = p->cur;

	p->cur = NULL;
	if (!ru)
		return 0;
	if (!ru->seen_class) {
		parse_error(p, 0, "rule [%s]: no class", ru->name);
		return -1;
	}
	if (!ru->text && !ru->nec && !ru->ncode) {
		parse_error(p, 0, "rule [%s] matches every reply: give text, enhanced or code", ru->name);
		return -1;
	}
	ru->tier = ru->provider ? TIER_PROVIDER : ru->text ? TIER_TEXT
		   : ru->nec ? TIER_ENHANCED : TIER_CODE;
	return 0;
}

/* A new rule for section name. Returns 0 or -1. */
static int start_rule(struct parse *p, const char *name)
{
	struct reply_rules *r = p->r;

	if (!*name) {
		parse_error(p, 1, "a key before the first [rule]");
		return -1;
	}
	for (size_t i = 0; i < r->n; i++) {
		if (!strcmp(r->rules[i].name, name)) {
			parse_error(p, 1, "rule [%s] given twice", name);
			return -1;
		}
	}
	if (r->n == RULES_MAX) {
		parse_error(p, 1, "more than %d rules", RULES_MAX);
		return -1;
	}
	if (r->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 64;
		struct rule *grown = realloc(r->rules, cap * sizeof *grown);
		if (!grown) {
			parse_error(p, 1, "out of memory");
			return -1;
		}
		r->rules = grown;
		p->cap = cap;
	}
	struct rule *ru = &r->rules[r->n];
	memset(ru, 0, sizeof *ru);
	ru->cls = -1;
	if (!(ru->name = strdup(name))) {
		parse_error(p, 1, "out of memory");
		return -1;
	}
	r->n++;
	p->cur = ru;
	return 0;
}

/* inih's handler: returns 1, or 0 on an error (inih then reports the line). */
static int on_key(void *user, const char *section, const char *key, const char *value)
{
	struct parse *p = user;

	if (p->failed)
		return 1;   /* only the first error is reported; inih counts lines on */
	if (!p->cur || strcmp(p->cur->name, section) != 0) {
		if (finish_rule(p) < 0 || start_rule(p, section) < 0)
			return 0;
	}
	return set_key(p, p->cur, key, value) < 0 ? 0 : 1;
}

/* Stable by tier: insertion sort (a few hundred rules, parsed once). */
static void order_rules(struct reply_rules *r)
{
	for (size_t i = 1; i < r->n; i++) {
		struct rule tmp = r->rules[i];
		size_t j = i;
		for (; j > 0 && r->rules[j - 1].tier > tmp.tier; j--)
			r->rules[j] = r->rules[j - 1];
		r->rules[j] = tmp;
	}
}

/* Compiles every rule's text, in place for good (a regex_t is not moved
 * once compiled). Returns 0 or -1. */
static int compile_texts(struct parse *p)
{
	for (size_t i = 0; i < p->r->n; i++) {
		struct rule *ru = &p->r->rules[i];
		if (!ru->text)
			continue;
		int rc = regcomp(&ru->re, ru->text, REG_EXTENDED | REG_ICASE | REG_NOSUB);
		if (rc != 0) {
			char why[128];
			regerror(rc, &ru->re, why, sizeof why);
			parse_error(p, 0, "rule [%s]: text: %s", ru->name, why);
			return -1;
		}
		ru->has_re = 1;
	}
	return 0;
}

struct reply_rules *reply_rules_parse(const char *text, size_t len, const char *name, char *err,
				      size_t errlen)
{
	struct parse p = { .name = name ? name : "rules" };
	char *copy = malloc(len + 1);   /* inih reads a NUL-terminated string */

	p.r = calloc(1, sizeof *p.r);
	if (!copy || !p.r) {
		snprintf(err, errlen, "%s: out of memory", p.name);
		free(copy);
		free(p.r);
		return NULL;
	}
	memcpy(copy, text, len);
	copy[len] = '\0';
	if (memchr(text, '\0', len)) {
		snprintf(err, errlen, "%s: a NUL byte in the rules", p.name);
		free(copy);
		free(p.r);
		return NULL;
	}
	int line = ini_parse_string(copy, on_key, &p);
	free(copy);
	if (!p.failed && line == 0)
		finish_rule(&p);
	if (!p.failed && line < 0)
		parse_error(&p, 0, "out of memory");
	if (!p.failed && line > 0)
		parse_error(&p, 1, "not a [rule] or key = value line (at most %d characters a line)",
			    INI_MAX_LINE - 1);
	if (!p.failed && p.r->n == 0)
		parse_error(&p, 0, "no rules");
	if (!p.failed) {
		order_rules(p.r);
		compile_texts(&p);
	}
	if (p.failed) {
		if (p.err_has_line && line > 0)
			snprintf(err, errlen, "%s:%d: %s", p.name, line, p.err);
		else
			snprintf(err, errlen, "%s: %s", p.name, p.err);
		reply_rules_free(p.r);
		return NULL;
	}
	return p.r;
}

struct reply_rules *reply_rules_load(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t len = 0, cap = 0;

	if (!f) {
		snprintf(err, errlen, "%s: %m", path);
		return NULL;
	}
	for (;;) {
		if (len == cap) {
			if (cap >= (size_t)1 << 24) {
				snprintf(err, errlen, "%s: larger than 16 MB", path);
				goto fail;
			}
			cap = cap ? cap * 2 : 8192;
			char *grown = realloc(buf, cap);
			if (!grown) {
				snprintf(err, errlen, "%s: out of memory", path);
				goto fail;
			}
			buf = grown;
		}
		size_t got = fread(buf + len, 1, cap - len, f);
		len += got;
		if (got == 0)
			break;
	}
	if (ferror(f)) {
		snprintf(err, errlen, "%s: read error", path);
		goto fail;
	}
	fclose(f);
	struct reply_rules *r = reply_rules_parse(buf, len, path, err, errlen);
	free(buf);
	return r;
fail:
	fclose(f);
	free(buf);
	return NULL;
}

struct reply_rules *reply_rules_default(char *err, size_t errlen)
{
	return reply_rules_parse(reply_rules_default_text, reply_rules_default_text_len,
				 "bounce_rules.ini (built in)", err, errlen);
}

/* ---- matching ---- */

static int code_matches(const struct rule *ru, int code)
{
	int d[3] = { code / 100, code / 10 % 10, code % 10 };

	for (size_t i = 0; i < ru->ncode; i++) {
		const struct code_pattern *c = &ru->code[i];
		if ((c->digit[0] < 0 || c->digit[0] == d[0]) && (c->digit[1] < 0 || c->digit[1] == d[1]) &&
		    (c->digit[2] < 0 || c->digit[2] == d[2]))
			return 1;
	}
	return 0;
}

static int ec_matches(const struct rule *ru, const struct reply_facts *f)
{
	if (f->ec_class == 0)
		return 0;
	for (size_t i = 0; i < ru->nec; i++) {
		const struct ec_pattern *e = &ru->ec[i];
		if ((e->cls == 0 || e->cls == f->ec_class) &&
		    (e->subject < 0 || e->subject == f->ec_subject) && f->ec_detail >= e->lo &&
		    f->ec_detail <= e->hi)
			return 1;
	}
	return 0;
}

static int text_matches(const struct rule *ru, const struct reply_facts *f)
{
	regmatch_t span = { 0, (regoff_t)f->text_len };

	if (!f->text_len)
		return 0;
	/* REG_STARTEND: the text is taken by length, NUL or not */
	return regexec(&ru->re, f->text, 1, &span, REG_STARTEND) == 0;
}

static int rule_matches(const struct rule *ru, const struct reply_facts *f)
{
	if (ru->provider && f->provider && strcasecmp(ru->provider, f->provider) != 0)
		return 0;
	if (ru->phases && !(ru->phases & 1u << f->phase))
		return 0;
	if (ru->ncode && !code_matches(ru, f->code))
		return 0;
	if (ru->nec && !ec_matches(ru, f))
		return 0;
	return !ru->has_re || text_matches(ru, f);
}

int reply_rules_match(const struct reply_rules *r, const struct reply_facts *f,
		      struct reply_rule_hit *hit)
{
	if (f->phase >= REPLY_PHASE_COUNT || f->text_len > (size_t)INT32_MAX)
		return 0;
	for (size_t i = 0; i < r->n; i++) {
		const struct rule *ru = &r->rules[i];
		if (rule_matches(ru, f)) {
			hit->cls = (enum reply_class)ru->cls;
			hit->permanent = ru->permanent;
			hit->name = ru->name;
			return 1;
		}
	}
	return 0;
}
