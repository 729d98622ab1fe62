/* smtp_reply: see smtp_reply.h. The parser rescans from the start of the
 * buffer on every call, which keeps it stateless; replies are short enough
 * that this costs less than the bookkeeping a resumable parser would need. */
#include "pool/smtp_reply.h"

#include <stdio.h>
#include <stddef.h>
#include <string.h>

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Reads an RFC 3463 code "c.s.d" at t[0..n) that must be followed by a space
 * or the end of the text. Returns its length, or 0 when there is none. */
static size_t parse_enhanced(const char *t, size_t n, int want_class, int *cls, int *sub, int *det)
{
	size_t i = 0;
	int part[3] = { 0, 0, 0 };

	if (n < 5 || (t[0] != '2' && t[0] != '4' && t[0] != '5') || t[0] - '0' != want_class)
		return 0;
	part[0] = t[0] - '0';
	i = 1;
	for (int k = 1; k < 3; k++) {
		size_t digits = 0;
		if (i >= n || t[i] != '.')
			return 0;
		i++;
		while (i < n && is_digit(t[i]) && digits < 4) {
			part[k] = part[k] * 10 + (t[i] - '0');
			i++;
			digits++;
		}
		if (digits < 1 || digits > 3)
			return 0;
	}
	if (i < n && t[i] != ' ')
		return 0;
	*cls = part[0];
	*sub = part[1];
	*det = part[2];
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

int smtp_reply_parse(const char *buf, size_t len, struct smtp_reply *out)
{
	size_t pos = 0;
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
		const char *cr;
		size_t clen;
		const char *text;
		size_t tlen;
		int last;

		if (out->nlines >= SMTP_REPLY_LINES_MAX)
			return -1;
		if (memchr(p, '\0', n))
			return -1;
		/* CR only as part of the line end: a bare CR in the text could
		 * rewrite what a terminal or log shows. */
		cr = memchr(p, '\r', n);
		if (cr && cr != p + n - 1)
			return -1;
		clen = cr ? n - 1 : n;
		if (clen > SMTP_REPLY_LINE_MAX)
			return -1;
		if (check_prefix(p, clen, first) < 0)
			return -1;
		if (!lf)
			return -2;
		if (clen < 3)
			return -1;

		last = clen == 3 || p[3] == ' ';
		text = clen > 4 ? p + 4 : p + clen;
		tlen = clen > 4 ? clen - 4 : 0;

		if (!first) {
			size_t el;
			first = p;
			out->code = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
			el = parse_enhanced(text, tlen, p[0] - '0', &out->ecls, &out->esub, &out->edet);
			if (el) {
				memcpy(out->enhanced, text, el);
				out->enhanced[el] = '\0';
			}
		}
		if (out->enhanced[0]) {
			size_t el = strlen(out->enhanced);
			if (tlen >= el && memcmp(text, out->enhanced, el) == 0 &&
			    (tlen == el || text[el] == ' ')) {
				text += el;
				tlen -= el;
				if (tlen) {
					text++;
					tlen--;
				}
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
