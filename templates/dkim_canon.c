/* dkim_canon: the "relaxed" canonicalisation of RFC 6376, section 3.4.2 for
 * header fields and 3.4.4 for the body. Pure: bytes in, canonical bytes out
 * through a sink. The body side is a small state machine, so that the body can
 * arrive in pieces split anywhere and still give the same bytes out. */
#include "templates/dkim.h"

#include <stdint.h>
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

static void chunk_flush(struct chunk *c);

static void chunk_append(struct chunk *c, const char *p, size_t n)
{
	while (n > 0) {
		size_t k = sizeof c->buf - c->n;
		if (k == 0) {
			chunk_flush(c);
			continue;
		}
		if (k > n)
			k = n;
		memcpy(c->buf + c->n, p, k);
		c->n += k;
		p += k;
		n -= k;
	}
}

static void chunk_flush(struct chunk *c)
{
	if (c->n)
		c->out->write(c->out->arg, c->buf, c->n);
	c->n = 0;
}

/* Whether a stretch of a value (from a byte that is not WSP) is its own
 * canonical form: no CR, no TAB, no SP next to SP, no SP at its end. Most
 * fields, and the stretches between the folds of the others, are; they are
 * copied whole. */
static int value_is_canonical(const char *v, size_t n)
{
	if (n == 0 || memchr(v, '\r', n) || memchr(v, '\t', n) || v[n - 1] == ' ')
		return 0;
	for (size_t i = 0; i < n;) {
		const char *sp = memchr(v + i, ' ', n - i);
		if (!sp)
			break;
		i = (size_t)(sp - v) + 1;
		if (i < n && v[i] == ' ')
			return 0;
	}
	return 1;
}

/* A field's value, from after the colon to end, canonical: unfolding
 * removes the CRLFs; the WSP after each stays and joins the run it is part
 * of. A run becomes one SP, except at the value's start and end where it
 * goes. */
static void canon_value(struct chunk *c, const char *p, const char *end)
{
	int wsp = 0, started = 0;

	while (p < end) {
		if (*p == '\r' && p + 1 < end && p[1] == '\n') {
			p += 2;
			continue;
		}
		if (IS_WSP(*p)) {
			wsp = 1;
			p++;
			continue;
		}
		/* the stretch up to the next fold (or CR) or the end, when it
		 * needs no change; else a word: up to WSP or CR (a CR alone is
		 * part of it) */
		const char *cr = memchr(p, '\r', (size_t)(end - p));
		const char *q = cr ? cr : end;
		if (q == p || !value_is_canonical(p, (size_t)(q - p))) {
			q = p + 1;
			while (q < end && !IS_WSP(*q) && *q != '\r')
				q++;
		}
		if (wsp && started)
			chunk_put(c, ' ');
		chunk_append(c, p, (size_t)(q - p));
		wsp = 0;
		started = 1;
		p = q;
	}
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
		canon_value(&c, colon + 1, field + len);
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

/* ---- where the body's canonical form differs from the body ---- */

/* Thirty-two bytes at once (GCC vector extensions). On x86-64 the scan is
 * built twice (target_clones): with AVX2 where the CPU has it, chosen once
 * at load, and with SSE2 (two halves) elsewhere. */
#define VEC 32
typedef signed char vec __attribute__((vector_size(VEC)));

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define SCAN_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define SCAN_CLONES
#endif

/* Helpers as macros: functions taking or returning 32-byte vectors would
 * have an ABI that differs between the two builds of the scan. */
#define SPLAT(c) ((vec){ 0 } + (signed char)(c))
/* A byte the state machine must see after one that breaks a run: WSP or
 * CR. */
#define BREAKS(v) (((v) == SPLAT(' ')) | ((v) == SPLAT('\t')) | ((v) == SPLAT('\r')))

/* Whether any lane of the comparison result m is set. */
static inline int any_set(const void *m)
{
	uint64_t w[VEC / 8], acc = 0;

	memcpy(w, m, sizeof w);
	for (size_t k = 0; k < VEC / 8; k++)
		acc |= w[k];
	return acc != 0;
}

static inline int breaks(unsigned char c)
{
	return IS_WSP(c) || c == '\r';
}

/* Whether the byte at s[0] (of s[0..n)) ends a run of bytes whose canonical
 * form is themselves: a TAB (it becomes SP), a SP that WSP or CR follows (a
 * run to reduce, or WSP that may end its line), or a CR unless LF and then a
 * byte that starts a non-empty line follow (other line ends may turn out to
 * be the body's trailing empty lines). What follows s[n) is not known, so
 * near the end the answer leans to yes. */
static int ends_run(const unsigned char *s, size_t n)
{
	switch (s[0]) {
	case '\t':
		return 1;
	case ' ':
		return n < 2 || breaks(s[1]);
	case '\r':
		return n < 3 || s[1] != '\n' || breaks(s[2]);
	default:
		return 0;
	}
}

/* The length of the run at s[0..n) whose canonical form is itself (see
 * ends_run); s[0] is taken to be in it. VEC positions are tested at once;
 * most bodies break only at blank lines, so runs are long and the hash gets
 * few, large updates. */
/* The positions in the VEC bytes at p (p[VEC + 1] readable) that may end
 * a run (see ends_run: TAB; SP before WSP or CR; CR unless LF and a byte
 * that starts a non-empty line follow), as a comparison result. */
#define HITS(p) ({								\
	vec v_, v1_, v2_;							\
	memcpy(&v_, (p), VEC);							\
	memcpy(&v1_, (p) + 1, VEC);						\
	memcpy(&v2_, (p) + 2, VEC);						\
	(v_ == SPLAT('\t')) | ((v_ == SPLAT(' ')) & BREAKS(v1_)) |		\
		((v_ == SPLAT('\r')) & ((v1_ != SPLAT('\n')) | BREAKS(v2_)));	\
})

/* The length of the run at s[0..n) whose canonical form is itself (see
 * ends_run); s[0] is taken to be in it. Four blocks of VEC bytes are
 * tested before their results are looked at (looking costs as much as
 * testing); most bodies break only at blank lines, so runs are long and
 * the hash gets few, large updates. */
SCAN_CLONES
static size_t plain_run(const unsigned char *s, size_t n)
{
	size_t i = 1;

	while (n - i >= 4 * VEC + 2) {
		vec hit = HITS(s + i) | HITS(s + i + VEC) | HITS(s + i + 2 * VEC) |
			  HITS(s + i + 3 * VEC);
		if (any_set(&hit))
			break;   /* the blocks one at a time, below, find where */
		i += 4 * VEC;
	}
	while (n - i >= VEC + 2) {
		vec hit = HITS(s + i);
		if (any_set(&hit)) {
			for (size_t k = 0; k < VEC; k++)
				if (ends_run(s + i + k, n - i - k))
					return i + k;
		}
		i += VEC;
	}
	while (i < n && !ends_run(s + i, n - i))
		i++;
	return i;
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
			/* A run of bytes that stay as they are: ordinary bytes,
			 * single SPs between them, and line ends that more text
			 * follows. One write per run, which is most of a body. */
			size_t k = plain_run(p, (size_t)(end - p));
			write_content(b, p, k);
			p += k;
		}
	}
}

void dkim_body_feed_canonical(struct dkim_body *b, const void *data, size_t n)
{
	const char *p = data;

	/* the empty lines at the end, and the last line's CRLF, which
	 * dkim_body_end writes back when there is content */
	while (n >= 2 && p[n - 2] == '\r' && p[n - 1] == '\n')
		n -= 2;
	if (n > 0)
		write_content(b, p, n);
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
