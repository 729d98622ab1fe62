/* dkim_canon: the "relaxed" canonicalisation of RFC 6376, section 3.4.2 for
 * header fields and 3.4.4 for the body. Pure: bytes in, canonical bytes out
 * through a sink. The body side is a small state machine, so that the body can
 * arrive in pieces split anywhere and still give the same bytes out. */
#include "templates/dkim.h"

#include <string.h>

#define IS_WSP(c) ((c) == ' ' || (c) == '\t')

/* Header fields are short; their canonical bytes are gathered here and
 * handed to the sink in a few calls. */
struct chunk {
	const struct dkim_sink *out;
	size_t n;
	char buf[256];
};

static void chunk_put(struct chunk *c, char ch)
{
	if (c->n == sizeof c->buf) {
		c->out->write(c->out->arg, c->buf, c->n);
		c->n = 0;
	}
	c->buf[c->n++] = ch;
}

static void chunk_flush(struct chunk *c)
{
	if (c->n)
		c->out->write(c->out->arg, c->buf, c->n);
	c->n = 0;
}

void dkim_canon_header(const char *field, size_t len, int crlf, const struct dkim_sink *out)
{
	struct chunk c = { .out = out };
	const char *colon = memchr(field, ':', len);
	size_t name_len = colon ? (size_t)(colon - field) : len;

	while (name_len > 0 && IS_WSP(field[name_len - 1]))
		name_len--;
	for (size_t i = 0; i < name_len; i++) {
		char ch = field[i];
		chunk_put(&c, ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch);
	}
	if (colon) {
		chunk_put(&c, ':');
		/* Unfolding removes the CRLFs; the WSP after each stays and joins
		 * the run it is part of. A run becomes one SP, except at the
		 * value's start and end where it goes. */
		int wsp = 0, started = 0;
		for (const char *p = colon + 1, *end = field + len; p < end; p++) {
			if (*p == '\r' && p + 1 < end && p[1] == '\n') {
				p++;
				continue;
			}
			if (IS_WSP(*p)) {
				wsp = 1;
				continue;
			}
			if (wsp && started)
				chunk_put(&c, ' ');
			chunk_put(&c, *p);
			wsp = 0;
			started = 1;
		}
	}
	if (crlf) {
		chunk_put(&c, '\r');
		chunk_put(&c, '\n');
	}
	chunk_flush(&c);
}

/* ---- body ---------------------------------------------------------------- */

void dkim_body_init(struct dkim_body *b, const struct dkim_sink *out)
{
	*b = (struct dkim_body){ .out = *out };
}

static void write_held_crlfs(struct dkim_body *b)
{
	static const char crlfs[] = "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n";
	const uint64_t per_write = (sizeof crlfs - 1) / 2;

	while (b->held_crlf) {
		uint64_t k = b->held_crlf < per_write ? b->held_crlf : per_write;
		b->out.write(b->out.arg, crlfs, (size_t)k * 2);
		b->held_crlf -= k;
	}
}

/* Writes a run of ordinary bytes, after what was held back in front of it:
 * the line ends above it (they end non-empty lines after all) and one SP for
 * a WSP run inside its line. */
static void write_content(struct dkim_body *b, const void *p, size_t n)
{
	write_held_crlfs(b);
	if (b->wsp) {
		b->out.write(b->out.arg, " ", 1);
		b->wsp = 0;
	}
	b->out.write(b->out.arg, p, n);
	b->any = 1;
}

void dkim_body_feed(struct dkim_body *b, const void *data, size_t n)
{
	const unsigned char *p = data, *end = p + n;

	while (p < end) {
		if (b->cr) {
			b->cr = 0;
			if (*p == '\n') {
				/* A line end: WSP before it goes, the CRLF waits. */
				b->wsp = 0;
				b->held_crlf++;
				p++;
				continue;
			}
			write_content(b, "\r", 1);
			continue;   /* *p is looked at again, without the CR */
		}
		if (*p == '\r') {
			b->cr = 1;
			p++;
		} else if (IS_WSP(*p)) {
			b->wsp = 1;
			p++;
		} else {
			/* A run of ordinary bytes, and of single SPs between
			 * them (their canonical form is themselves): one write
			 * per line of ordinary text rather than one per word. */
			const unsigned char *q = p + 1;
			while (q < end && *q != '\r' && (!IS_WSP(*q) ||
			       (*q == ' ' && q + 1 < end && q[1] != '\r' && !IS_WSP(q[1]))))
				q++;
			write_content(b, p, (size_t)(q - p));
			p = q;
		}
	}
}

void dkim_body_end(struct dkim_body *b)
{
	if (b->cr) {   /* a CR that nothing followed is content */
		b->cr = 0;
		write_content(b, "\r", 1);
	}
	b->wsp = 0;
	/* The held line ends are the last line's and empty lines after it: one
	 * CRLF stays. A last line without one gets one. An empty body stays
	 * empty. */
	if (b->any)
		b->out.write(b->out.arg, "\r\n", 2);
	b->held_crlf = 0;
	b->any = 0;
}
