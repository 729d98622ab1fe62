/* dkim_format: the text of a DKIM-Signature field. Tags go in a fixed order
 * (v a c d s t h bh b), separated by "; " and folded with CRLF SP before a tag
 * that would pass DKIM_LINE_MAX; h= may break after a colon and b= anywhere
 * (RFC 6376 3.5 allows FWS there). b= comes last, so the text signed (b=
 * empty) is a prefix of the field sent and the two cannot disagree. */
#include "templates/dkim.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* b= starts on a line only if this many characters of its value fit there
 * too, so the value never begins with a fold. */
#define B_MIN_ON_LINE 8

struct fold {
	char *out;
	size_t cap, len;
	size_t col;          /* octets on the current line */
	int overflow;
};

static void put(struct fold *f, const char *s, size_t n)
{
	if (f->overflow || n > f->cap - f->len) {
		f->overflow = 1;
		return;
	}
	memcpy(f->out + f->len, s, n);
	f->len += n;
	f->col += n;
}

static void new_line(struct fold *f)
{
	put(f, "\r\n ", 3);
	f->col = 1;
}

/* Before a piece of n octets that may not start a line's text with a fold:
 * a SP when it fits on this line, else a new line (where it may still be too
 * long, if it is longer than a line). */
static void space_for(struct fold *f, size_t n)
{
	if (f->col + 1 + n <= DKIM_LINE_MAX)
		put(f, " ", 1);
	else
		new_line(f);
}

/* Places one tag, or one name of h=, made of the pieces a, b and c: after a
 * SP (separate), or right after the previous piece unless that passes the
 * line (a later name of h=, which may only follow a colon). Returns 0, or
 * -1 when it is longer than any tag can be. Pieces are copied rather than
 * printed: a signature has twenty of them. */
static int place(struct fold *f, int separate, const char *a, const char *b, const char *c)
{
	char tok[DKIM_DNS_NAME_MAX + DKIM_NAME_MAX + 8];
	const char *parts[3] = { a, b, c };
	size_t n = 0;

	for (size_t i = 0; i < 3; i++) {
		size_t k = strlen(parts[i]);
		if (k >= sizeof tok - n)
			return -1;
		memcpy(tok + n, parts[i], k);
		n += k;
	}
	if (separate)
		space_for(f, n);
	else if (f->col + n > DKIM_LINE_MAX)
		new_line(f);
	put(f, tok, n);
	return 0;
}

/* v in decimal into out (room for 21). Returns out. */
static const char *decimal(uint64_t v, char out[21])
{
	char *p = out + 20;

	*p = '\0';
	do {
		*--p = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	return p;
}

ssize_t dkim_format_head(const struct dkim_sig_tags *tags, char *out, size_t cap, size_t *col)
{
	struct fold f = { out, cap, 0, 0, 0 };
	const char *alg = dkim_alg_name(tags->alg);
	char t[21];

	if (!alg || tags->nnames == 0)
		return -1;
	put(&f, "DKIM-Signature:", 15);
	if (place(&f, 1, "v=1;", "", "") < 0 || place(&f, 1, "a=", alg, ";") < 0 ||
	    place(&f, 1, "c=relaxed/relaxed;", "", "") < 0 || place(&f, 1, "d=", tags->domain, ";") < 0 ||
	    place(&f, 1, "s=", tags->selector, ";") < 0 || place(&f, 1, "t=", decimal(tags->t, t), ";") < 0)
		return -1;
	for (size_t i = 0; i < tags->nnames; i++)
		if (place(&f, i == 0, i == 0 ? "h=" : "", tags->names[i],
			  i + 1 < tags->nnames ? ":" : ";") < 0)
			return -1;
	if (place(&f, 1, "bh=", tags->bh, ";") < 0)
		return -1;
	space_for(&f, 2 + B_MIN_ON_LINE);
	put(&f, "b=", 2);
	if (f.overflow)
		return -1;
	*col = f.col;
	return (ssize_t)f.len;
}

ssize_t dkim_format_b(const char *b64, size_t len, size_t col, char *out, size_t cap)
{
	struct fold f = { out, cap, 0, col, 0 };

	for (size_t i = 0; i < len && !f.overflow;) {
		if (f.col >= DKIM_LINE_MAX) {
			new_line(&f);
			continue;
		}
		size_t k = DKIM_LINE_MAX - f.col;
		if (k > len - i)
			k = len - i;
		put(&f, b64 + i, k);
		i += k;
	}
	put(&f, "\r\n", 2);
	return f.overflow ? -1 : (ssize_t)f.len;
}

const char *dkim_dns_name_problem(const char *name)
{
	size_t n = strlen(name), label = 0;

	if (n == 0)
		return "empty";
	if (n > DKIM_DNS_NAME_MAX)
		return "longer than 253 octets";
	for (size_t i = 0; i <= n; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c == '.' || c == 0) {
			if (label == 0)
				return "an empty label";
			if (name[i - 1] == '-')
				return "a label ends with a hyphen";
			label = 0;
			continue;
		}
		if (c >= 0x80)
			return "not ASCII (give the A-label, xn--...)";
		int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
		if (!alnum && c != '-')
			return "a character other than a letter, digit, hyphen or dot";
		if (c == '-' && label == 0)
			return "a label starts with a hyphen";
		if (++label > 63)
			return "a label longer than 63 octets";
	}
	return NULL;
}

const char *dkim_alg_name(enum dkim_alg alg)
{
	switch (alg) {
	case DKIM_RSA_SHA256:     return "rsa-sha256";
	case DKIM_ED25519_SHA256: return "ed25519-sha256";
	}
	return NULL;
}
