/* smtp_reply: see smtp_reply.h. The parser rescans from the start of the
 * buffer on every call, which keeps it stateless; replies are short enough
 * that this costs less than the bookkeeping a resumable parser would need. */
#include "pool/smtp_reply.h"

#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Reads up to three digits at t[*i..n) into *val; returns how many (a
 * fourth digit makes the part invalid, reported as 0). */
static unsigned read_part(const char *t, size_t n, size_t *i, int *val)
{
	unsigned digits = 0;
	int v = 0;
	while (*i < n && is_digit(t[*i])) {
		if (++digits > 3)
			return 0;
		v = v * 10 + (t[(*i)++] - '0');
	}
	*val = v;
	return digits;
}

/* Reads an RFC 3463 code "c.s.d" at t[0..n) that must be followed by a space
 * or the end of the text. Returns its length, or 0 when there is none. */
static size_t parse_enhanced(const char *t, size_t n, int want_class, int *cls, int *sub, int *det)
{
	if (n < 5 || t[1] != '.' || t[0] - '0' != want_class || (want_class != 2 &&
	    want_class != 4 && want_class != 5))
		return 0;
	/* The common shape, "2.0.0", in one step. */
	if (is_digit(t[2]) && t[3] == '.' && is_digit(t[4]) && (n == 5 || t[5] == ' ')) {
		*cls = want_class;
		*sub = t[2] - '0';
		*det = t[4] - '0';
		return 5;
	}
	size_t i = 2;
	int s, d;
	if (!read_part(t, n, &i, &s) || i >= n || t[i++] != '.' || !read_part(t, n, &i, &d))
		return 0;
	if (i < n && t[i] != ' ')
		return 0;
	*cls = want_class;
	*sub = s;
	*det = d;
	return i;
}

static void append_text(struct smtp_reply *r, const char *s, size_t n)
{
	size_t room = SMTP_REPLY_TEXT_MAX - r->text_len;

	if (n > room) {
		n = room;
		r->truncated = 1;
	}
	memcpy(r->text + r->text_len, s, n);
	r->text_len += n;
	r->text[r->text_len] = '\0';
}

/* Checks the first n bytes of a line (its content so far, line end excluded)
 * against the shape "ddd", "ddd text" or "ddd-text" and against the first
 * line's code. Works on partial lines so that garbage fails early. */
static int check_prefix(const char *p, size_t n, const char *first)
{
	if (n >= 1 && (p[0] < '2' || p[0] > '5'))
		return -1;
	if (n >= 2 && !is_digit(p[1]))
		return -1;
	if (n >= 3 && !is_digit(p[2]))
		return -1;
	if (first) {
		for (size_t i = 0; i < 3 && i < n; i++)
			if (p[i] != first[i])
				return -1;
	}
	if (n >= 4 && p[3] != ' ' && p[3] != '-')
		return -1;
	return 0;
}

/* Whether p[0..n) holds a NUL or a CR: eight bytes at a time, since every
 * reply line is scanned. */
static int has_nul_or_cr(const char *p, size_t n)
{
	const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
	const uint64_t crs = ones * '\r';
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t w, x;
		memcpy(&w, p + i, 8);
		x = w ^ crs;
		if (((w - ones) & ~w & highs) | ((x - ones) & ~x & highs))
			return 1;
	}
	for (; i < n; i++)
		if (p[i] == '\0' || p[i] == '\r')
			return 1;
	return 0;
}

int smtp_reply_parse(const char *buf, size_t len, struct smtp_reply *out)
{
	size_t pos = 0, elen = 0;   /* elen: strlen(out->enhanced) */
	const char *first = NULL;

	memset(out, 0, offsetof(struct smtp_reply, text));
	out->text[0] = '\0';

	for (;;) {
		const char *p = buf + pos;
		size_t avail = len - pos;
		/* A line may hold SMTP_REPLY_LINE_MAX bytes plus CR LF; looking
		 * no further than that bounds the scan and lets an overlong
		 * partial line fail before its end arrives. */
		size_t lim = avail < SMTP_REPLY_LINE_MAX + 2 ? avail : SMTP_REPLY_LINE_MAX + 2;
		const char *lf = memchr(p, '\n', lim);
		size_t n = lf ? (size_t)(lf - p) : lim;
		const char *text;
		size_t tlen;

		if (out->nlines >= SMTP_REPLY_LINES_MAX)
			return -1;
		/* CR only as part of the line end: a bare CR in the text could
		 * rewrite what a terminal or log shows. NUL nowhere. */
		size_t clen = n && p[n - 1] == '\r' ? n - 1 : n;
		if (has_nul_or_cr(p, clen))
			return -1;
		if (clen > SMTP_REPLY_LINE_MAX)
			return -1;
		if (check_prefix(p, clen, first) < 0)
			return -1;
		if (!lf)
			return -2;
		if (clen < 3)
			return -1;

		int last = clen == 3 || p[3] == ' ';
		text = clen > 4 ? p + 4 : p + clen;
		tlen = clen > 4 ? clen - 4 : 0;

		/* Every line that repeats the enhanced code loses it (the
		 * first line by construction). */
		size_t strip = elen;
		if (!first) {
			first = p;
			out->code = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
			elen = strip = parse_enhanced(text, tlen, p[0] - '0',
						      &out->ecls, &out->esub, &out->edet);
			memcpy(out->enhanced, text, elen);
			out->enhanced[elen] = '\0';
		} else if (elen && !(tlen >= elen && memcmp(text, out->enhanced, elen) == 0 &&
				     (tlen == elen || text[elen] == ' '))) {
			strip = 0;
		}
		if (strip) {
			text += strip;
			tlen -= strip;
			if (tlen) {
				text++;
				tlen--;
			}
		}
		if (out->nlines > 0)
			append_text(out, "\n", 1);
		append_text(out, text, tlen);
		out->nlines++;
		pos += n + 1;
		if (last)
			return (int)pos;
	}
}

const char *smtp_reply_line(const struct smtp_reply *r, unsigned i, size_t *len)
{
	const char *p = r->text;
	const char *end = r->text + r->text_len;

	if (i >= r->nlines)
		return NULL;
	for (unsigned k = 0; k < i; k++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		/* the line was lost to truncation */
		if (!nl)
			return NULL;
		p = nl + 1;
	}
	{
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		*len = nl ? (size_t)(nl - p) : (size_t)(end - p);
	}
	return p;
}

void smtp_reply_synth(struct smtp_reply *r, int code, const char *enhanced, const char *text)
{
	memset(r, 0, offsetof(struct smtp_reply, text));
	r->text[0] = '\0';
	r->code = code;
	if (enhanced) {
		size_t el = strlen(enhanced);
		if (el < sizeof(r->enhanced) &&
		    parse_enhanced(enhanced, el, code / 100, &r->ecls, &r->esub, &r->edet) == el)
			memcpy(r->enhanced, enhanced, el + 1);
	}
	if (!text)
		text = "";
	append_text(r, text, strlen(text));
	r->nlines = 1;
	for (size_t i = 0; i < r->text_len; i++)
		if (r->text[i] == '\n')
			r->nlines++;
}

void smtp_reply_copy(struct smtp_reply *dst, const struct smtp_reply *src)
{
	memcpy(dst, src, offsetof(struct smtp_reply, text) + src->text_len + 1);
}
