/* dkim_format: the text of a DKIM-Signature field. Tags go in a fixed order
 * (v a c d s t h bh b), separated by "; " and folded with CRLF SP before a tag
 * that would pass DKIM_LINE_MAX; h= may break after a colon and b= anywhere
 * (RFC 6376 3.5 allows FWS there). b= comes last, so the text signed (b=
 * empty) is a prefix of the field sent and the two cannot disagree. */
#include "templates/dkim.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/coding.h>

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

/* An unbreakable piece: after a SP on this line if it fits, else on a new
 * line (where it may still be too long, if it is longer than a line). */
static void token(struct fold *f, const char *s, size_t n)
{
	if (f->col + 1 + n <= DKIM_LINE_MAX)
		put(f, " ", 1);
	else
		new_line(f);
	put(f, s, n);
}

/* A piece that continues the previous one with no space between: a later
 * name of h=, which may only follow a colon. */
static void piece(struct fold *f, const char *s, size_t n)
{
	if (f->col + n > DKIM_LINE_MAX)
		new_line(f);
	put(f, s, n);
}

ssize_t dkim_format_head(const struct dkim_sig_tags *tags, char *out, size_t cap, size_t *col)
{
	struct fold f = { out, cap, 0, 0, 0 };
	char tok[DKIM_DNS_NAME_MAX + DKIM_NAME_MAX + 8];
	const char *alg = dkim_alg_name(tags->alg);
	int n;

	if (!alg || tags->nnames == 0)
		return -1;
	put(&f, "DKIM-Signature:", 15);
	token(&f, "v=1;", 4);
	n = snprintf(tok, sizeof tok, "a=%s;", alg);
	token(&f, tok, (size_t)n);
	token(&f, "c=relaxed/relaxed;", 18);
	n = snprintf(tok, sizeof tok, "d=%s;", tags->domain);
	if (n < 0 || (size_t)n >= sizeof tok)
		return -1;
	token(&f, tok, (size_t)n);
	n = snprintf(tok, sizeof tok, "s=%s;", tags->selector);
	if (n < 0 || (size_t)n >= sizeof tok)
		return -1;
	token(&f, tok, (size_t)n);
	n = snprintf(tok, sizeof tok, "t=%" PRIu64 ";", tags->t);
	token(&f, tok, (size_t)n);
	for (size_t i = 0; i < tags->nnames; i++) {
		n = snprintf(tok, sizeof tok, "%s%s%c", i == 0 ? "h=" : "", tags->names[i],
			     i + 1 < tags->nnames ? ':' : ';');
		if (n < 0 || (size_t)n >= sizeof tok)
			return -1;
		if (i == 0)
			token(&f, tok, (size_t)n);
		else
			piece(&f, tok, (size_t)n);
	}
	n = snprintf(tok, sizeof tok, "bh=%s;", tags->bh);
	if (n < 0 || (size_t)n >= sizeof tok)
		return -1;
	token(&f, tok, (size_t)n);
	if (f.col + 1 + 2 + B_MIN_ON_LINE <= DKIM_LINE_MAX)
		put(&f, " ", 1);
	else
		new_line(&f);
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

ssize_t dkim_b64(const void *in, size_t len, char *out, size_t cap)
{
	if (len > UINT32_MAX / 2)
		return -1;
	size_t need = (len + 2) / 3 * 4;
	if (need > cap)
		return -1;
	if (len == 0) {
		if (cap > 0)
			out[0] = 0;
		return 0;
	}
	/* The encoder adds a NUL when there is room; cap bounds that too. */
	word32 olen = cap > UINT32_MAX ? UINT32_MAX : (word32)cap;
	if (Base64_Encode_NoNl(in, (word32)len, (byte *)out, &olen) != 0 || olen != need)
		return -1;
	return (ssize_t)need;
}

const char *dkim_alg_name(enum dkim_alg alg)
{
	switch (alg) {
	case DKIM_RSA_SHA256:     return "rsa-sha256";
	case DKIM_ED25519_SHA256: return "ed25519-sha256";
	}
	return NULL;
}
