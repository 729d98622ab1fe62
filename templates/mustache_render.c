/* mustache_render: see mustache.h. Walks op ranges recursively (bounded by
 * TPL_DEPTH_MAX); the context stack, the indentation and the overrides in
 * force are frames linked on the C stack, so nothing is allocated but
 * output. Literal text is copied with memcpy in whole runs; it is scanned
 * for line ends only inside an indented partial or block.
 *
 * tpl_render_lines is the same walk with template text taken from a
 * struct tpl_lines (CRLF, measured once): the line length is kept from the
 * texts' shapes, and only values (short) and indentation are looked at
 * byte by byte.
 *
 * Names found in the root object are memoised for the render by symbol
 * number: a recipient's {{first_name}} costs the adapter one lookup (one
 * hash, for JSON) however often the template uses it. An adapter with
 * find() hands over a value's kind and text with the lookup, so that a
 * value costs it one call. */
#include "templates/mustache_prog.h"
#include "templates/utf8.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The context stack: the data a name is looked up in, innermost first. */
struct ctx {
	struct tpl_val v;
	const struct ctx *up;
};

/* Indentation of the partials and blocks being rendered, innermost first;
 * a line gets the outermost first. */
struct indent {
	const char *s;
	size_t len;
	const struct indent *up;
};

/* A parent being rendered: the overrides its tag pair holds. */
struct ovr {
	uint32_t op;
	const struct ovr *up;
};

/* Symbols below this have their root lookup memoised (numbers are given in
 * order of first use, so these are a template's first names). */
#define ROOT_MEMO 64

enum { MEMO_UNKNOWN, MEMO_FOUND, MEMO_MISSING };

/* How the walk writes: tpl_render's text, or tpl_render_lines' lines with
 * or without loose whitespace tracked. The walk is compiled once for each,
 * so that none of them tests which it is at every op. */
enum walk { WALK_TEXT, WALK_LINES, WALK_LINES_LOOSE };

struct render {
	const struct tpl *t;
	const struct tpl_data_ops *ops;
	void *ud;
	enum tpl_escape esc;
	unsigned flags;
	struct tpl_buf *out;
	struct tpl_error *err;
	const struct indent *indent;
	int pending;           /* at the start of a line of template text: the
				* indentation goes out before anything else */
	unsigned depth;
	const struct tpl_lines *lines;   /* tpl_render_lines; NULL for tpl_render */
	struct tpl_lines_out *lo;
	const char *pool;      /* lines: lines->pool */
	size_t max_line;       /* lines: lo->max_line */
	size_t col;            /* lines: octets on the line being written */
	int last_space;        /* lines: the last byte written is a SP */
	unsigned seen;         /* lines: TPL_HAS_* of what was written */
	unsigned bail;         /* lines: TPL_HAS_* that text may not have */
	int not_lines;         /* lines: the output cannot be written as lines */
	enum walk mode;        /* the walk: text, or lines with or without loose whitespace */
	uint8_t memo_state[ROOT_MEMO];
	struct tpl_found memo[ROOT_MEMO];   /* valid where memo_state says found */
};

/* ---- output ---- */

void tpl_buf_init(struct tpl_buf *b, size_t max)
{
	memset(b, 0, sizeof *b);
	b->max = max ? max : TPL_DEFAULT_MAX_OUTPUT;
}

void tpl_buf_free(struct tpl_buf *b)
{
	if (!b)
		return;
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

static const char *main_file(const struct tpl *t)
{
	return t->units[0].file;
}

/* Makes room for n more bytes, within the cap. Returns 0 or -1. */
__attribute__((noinline, cold))
static int grow(struct render *r, size_t n)
{
	struct tpl_buf *b = r->out;

	if (b->len > b->max || n > b->max - b->len) {
		tpl_set_error(r->err, main_file(r->t), 0, 0, "output larger than %zu bytes", b->max);
		return -1;
	}
	size_t need = b->len + n;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < need)
		cap = cap > b->max / 2 ? b->max : cap * 2;
	if (cap > b->max)
		cap = b->max;
	char *p = realloc(b->data, cap);
	if (!p) {
		tpl_set_error(r->err, main_file(r->t), 0, 0, "out of memory");
		return -1;
	}
	b->data = p;
	b->cap = cap;
	return 0;
}

/* Copies s[0..n) to d: a value or the text between two tags is mostly
 * short, and copied here with two overlapping moves rather than a call. */
static inline void copy(char *d, const char *s, size_t n)
{
	uint64_t a, b;
	uint32_t x, y;

	if (n > 16) {
		memcpy(d, s, n);
	} else if (n >= 8) {
		memcpy(&a, s, 8);
		memcpy(&b, s + n - 8, 8);
		memcpy(d, &a, 8);
		memcpy(d + n - 8, &b, 8);
	} else if (n >= 4) {
		memcpy(&x, s, 4);
		memcpy(&y, s + n - 4, 4);
		memcpy(d, &x, 4);
		memcpy(d + n - 4, &y, 4);
	} else if (n > 0) {
		d[0] = s[0];
		d[n / 2] = s[n / 2];
		d[n - 1] = s[n - 1];
	}
}

static inline int put(struct render *r, const char *s, size_t n)
{
	struct tpl_buf *b = r->out;

	if (n > b->cap - b->len && grow(r, n) < 0)
		return -1;
	copy(b->data + b->len, s, n);
	b->len += n;
	return 0;
}

/* The walk's end of the output, a local of the walk that only inlined
 * helpers see, so that it stays in registers: bytes are written through a
 * char pointer, which may alias anything in memory, so a length or line
 * column kept in the render would be stored and read back at every op. The
 * render's own fields are brought up to date (cursor_give) before anything
 * that is not inlined into the walk, and read back (cursor_take) after. */
struct cursor {
	char *base;       /* r->out->data */
	size_t len, cap;  /* r->out->len and ->cap */
	size_t col;       /* lines: r->col */
	unsigned seen;    /* lines: TPL_HAS_* written since taken, for r->seen */
	int pending;      /* r->pending */
};

static inline __attribute__((always_inline)) void cursor_take(const struct render *r,
							      struct cursor *c)
{
	c->base = r->out->data;
	c->len = r->out->len;
	c->cap = r->out->cap;
	c->col = r->col;
	c->seen = 0;
	c->pending = r->pending;
}

static inline __attribute__((always_inline)) void cursor_give(struct render *r,
							      const struct cursor *c)
{
	r->out->len = c->len;
	r->col = c->col;
	r->seen |= c->seen;
	r->pending = c->pending;
}

/* Room for n more bytes at the cursor. Returns 0 or -1. */
static inline __attribute__((always_inline)) int cursor_room(struct render *r, struct cursor *c,
							     size_t n)
{
	if (n <= c->cap - c->len)
		return 0;
	cursor_give(r, c);
	if (grow(r, n) < 0)
		return -1;
	cursor_take(r, c);
	return 0;
}

static inline __attribute__((always_inline)) int cursor_put(struct render *r, struct cursor *c,
							    const char *s, size_t n)
{
	if (cursor_room(r, c, n) < 0)
		return -1;
	copy(c->base + c->len, s, n);
	c->len += n;
	return 0;
}

static int put_indent(struct render *r, const struct indent *in)
{
	if (!in)
		return 0;
	if (put_indent(r, in->up) < 0)
		return -1;
	r->col += in->len;
	if (in->len)
		r->seen |= TPL_HAS_LOOSE;   /* a line starting with WSP: not worth a closer look */
	return put(r, in->s, in->len);
}

/* Lines: the next bytes written start with first and end with last (each
 * 0 when there are none). Loose whitespace across the seam with what came
 * before sets TPL_HAS_LOOSE (within them, their own TPL_HAS_* say it). */
static void track_space(struct render *r, unsigned char first, unsigned char last)
{
	if (!first)
		return;
	if (r->last_space && (first == ' ' || first == '\t' || first == '\r'))
		r->seen |= TPL_HAS_LOOSE;
	r->last_space = last == ' ';
}

/* Stops a tpl_render_lines walk: the caller renders the plain way. */
static int not_lines(struct render *r)
{
	r->not_lines = 1;
	return -1;
}

/* Lines: k octets were written on the current line, ending it when ended
 * (their last two are its CRLF). Returns 0, or -1 when the line is too
 * long. */
static int count_line(struct render *r, size_t k, int ended)
{
	size_t len = r->col + k - (ended ? 2 : 0);

	if (len > r->max_line)
		return not_lines(r);
	r->col = ended ? 0 : len;
	return 0;
}

/* Writes the indentation owed at a line start, if any. */
static int flush_indent(struct render *r)
{
	if (!r->pending)
		return 0;
	r->pending = 0;
	return put_indent(r, r->indent);
}

/* Template text: each line starts with the indentation in force. */
static int put_text(struct render *r, const char *s, size_t n)
{
	if (!r->indent) {
		if (n)
			r->pending = s[n - 1] == '\n';
		return put(r, s, n);
	}
	while (n) {
		if (flush_indent(r) < 0)
			return -1;
		const char *nl = memchr(s, '\n', n);
		size_t k = nl ? (size_t)(nl - s) + 1 : n;
		if (put(r, s, k) < 0 || (r->lines && count_line(r, k, nl != NULL) < 0))
			return -1;
		s += k;
		n -= k;
		r->pending = nl != NULL;
	}
	return 0;
}

/* Template text at the cursor: with indentation in force, line by line
 * (put_text). Whether it ends a line is kept without one too: a block
 * indented in the middle of a line reads it. */
static inline __attribute__((always_inline)) int
cursor_text(struct render *r, struct cursor *c, const char *s, size_t n, int indented)
{
	if (!indented) {
		if (n)
			c->pending = s[n - 1] == '\n';
		return cursor_put(r, c, s, n);
	}
	cursor_give(r, c);
	int rc = put_text(r, s, n);
	cursor_take(r, c);
	return rc;
}

/* Lines: a text op's CRLF text, its line lengths taken from its shape. */
static inline __attribute__((always_inline)) int
put_text_lines(struct render *r, struct cursor *c, const struct tpl_text_shape *sh, int loose,
	       int indented)
{
	const char *s = r->pool + sh->off;
	size_t n = sh->len, max = r->max_line;

	if (sh->has & r->bail)
		return not_lines(r);
	c->seen |= sh->has;
	if (loose)
		track_space(r, sh->first, sh->last);
	if (indented || n == 0)
		return cursor_text(r, c, s, n, indented);
	if (!sh->eol) {
		c->col += n;
	} else {
		if (c->col + sh->head > max || sh->longest > max)
			return not_lines(r);
		c->col = sh->tail;
	}
	if (c->col > max)
		return not_lines(r);
	c->pending = sh->last == '\n';
	return cursor_put(r, c, s, n);
}

typedef signed char vec16 __attribute__((vector_size(16)));
typedef uint64_t u64x2 __attribute__((vector_size(16)));

static inline vec16 splat16(char c)
{
	return (vec16){ c, c, c, c, c, c, c, c, c, c, c, c, c, c, c, c };
}

/* The bytes of s[0..n), 0 < n < 16, in sixteen lanes (some twice; for
 * n < 4 the others are 'a'), built in registers: a short memcpy into a
 * vector on the stack read back whole would stall on store forwarding. */
static inline vec16 load_short(const char *s, size_t n)
{
	uint64_t a, b;

	if (n >= 8) {
		memcpy(&a, s, 8);
		memcpy(&b, s + n - 8, 8);
	} else if (n >= 4) {
		uint32_t x, y;
		memcpy(&x, s, 4);
		memcpy(&y, s + n - 4, 4);
		a = b = x | (uint64_t)y << 32;
	} else {
		a = b = 0x6161616161000000ull | (uint64_t)(unsigned char)s[n - 1] << 16 |
			(uint64_t)(unsigned char)s[n / 2] << 8 | (unsigned char)s[0];
	}
	return (vec16)(u64x2){ a, b };
}

#define ENTITY(s) { s, sizeof s - 1 }
/* eight bytes an entry, the text in place: one load finds both */
static const struct {
	char s[7];
	uint8_t len;      /* 0: the byte stands for itself */
} html_entity[256] = {
	['&'] = ENTITY("&amp;"), ['<'] = ENTITY("&lt;"), ['>'] = ENTITY("&gt;"),
	['"'] = ENTITY("&quot;"), ['\''] = ENTITY("&#39;"),
};
#undef ENTITY

/* HTML's five characters: -1 in each lane of v that holds one, in three
 * compares (x | 2 is '>' for '<' and '>' alone, x | 1 is '\'' for '&' and
 * '\'' alone). */
static inline vec16 html_lanes(vec16 v)
{
	return ((v | splat16(2)) == splat16('>')) | ((v | splat16(1)) == splat16('\'')) |
	       (v == splat16('"'));
}

/* Escaping in place: d the next byte out, s[0..done) written already. */
struct escape {
	char *d;
	size_t done;
};

/* copy for the runs between escaped bytes: the long ones out of line,
 * where GCC 12 does not take a run it cannot bound (it cannot see that
 * they never go back) for a memcpy of SIZE_MAX bytes and warn. */
static __attribute__((noinline)) void copy_long(char *d, const char *s, size_t n)
{
	memcpy(d, s, n);
}

static inline void copy_run(char *d, const char *s, size_t n)
{
	if (n > 16)
		copy_long(d, s, n);
	else
		copy(d, s, n);
}

/* Writes s up to each byte that w marks and that byte's entity: w has bit
 * 8k set when s[base + k] is one of HTML's five, k from skip (lanes below
 * it were written from another load). */
static inline void escape_lanes(struct escape *e, const char *s, size_t base, uint64_t w,
				size_t skip)
{
	if (skip >= 8)
		return;
	w &= ~0ull << (8 * skip);
	while (w) {
		size_t p = base + (size_t)__builtin_ctzll(w) / 8;
		unsigned char c = (unsigned char)s[p];
		copy_run(e->d, s + e->done, p - e->done);   /* p only grows */
		e->d += p - e->done;
		copy(e->d, html_entity[c].s, html_entity[c].len);
		e->d += html_entity[c].len;
		e->done = p + 1;
		w &= w - 1;
	}
}

/* The marks of v's two halves (one bit a lane, at bit 8k of a half). */
static inline void html_marks(vec16 v, uint64_t w[2])
{
	u64x2 m = (u64x2)html_lanes(v) & (u64x2){ 0x0101010101010101ull, 0x0101010101010101ull };

	w[0] = m[0];
	w[1] = m[1];
}

/* HTML-escapes s[0..n), 4 <= n, into d (room for 6n bytes): sixteen bytes
 * looked at a time, and the text between the characters replaced copied in
 * runs. Returns the end of what was written. */
static char *escape_into(char *d, const char *s, size_t n)
{
	struct escape e = { d, 0 };
	uint64_t w[2];
	vec16 v;

	if (n < 8) {   /* lanes 0-3: s[0..4), lanes 4-7: s[n-4..n) */
		html_marks(load_short(s, n), w);
		escape_lanes(&e, s, 0, w[0] & 0xffffffffull, 0);
		escape_lanes(&e, s, n - 4, w[0] >> 32, 8 - n);
	} else if (n < 16) {   /* lanes 0-7: s[0..8), lanes 8-15: s[n-8..n) */
		html_marks(load_short(s, n), w);
		escape_lanes(&e, s, 0, w[0], 0);
		escape_lanes(&e, s, n - 8, w[1], 16 - n);
	} else {   /* whole blocks, then the last sixteen bytes (overlapping) */
		size_t i = 0;
		for (; n - i > 16; i += 16) {
			memcpy(&v, s + i, 16);
			html_marks(v, w);
			escape_lanes(&e, s, i, w[0], 0);
			escape_lanes(&e, s, i + 8, w[1], 0);
		}
		size_t last = n - 16, skip = i - last;
		memcpy(&v, s + last, 16);
		html_marks(v, w);
		escape_lanes(&e, s, last, w[0], skip);
		escape_lanes(&e, s, last + 8, w[1], skip > 8 ? skip - 8 : 0);
	}
	copy_run(e.d, s + e.done, n - e.done);
	return e.d + (n - e.done);
}

/* HTML-escapes s[0..n) into the output: written in place in one pass
 * when the room there is holds the worst case (every byte a six-byte
 * entity), else run by run through put. */
static int put_html(struct render *r, const char *s, size_t n)
{
	struct tpl_buf *b = r->out;
	size_t run = 0;

	if (n == 0)
		return 0;
	if (n <= (b->cap - b->len) / 6) {
		char *d = b->data + b->len;
		if (n >= 4) {
			d = escape_into(d, s, n);
		} else {
			for (size_t i = 0; i < n; i++) {
				unsigned char c = (unsigned char)s[i];
				size_t k = html_entity[c].len;
				*d = (char)c;
				if (k)
					copy(d, html_entity[c].s, k);
				d += k ? k : 1;
			}
		}
		b->len = (size_t)(d - b->data);
		return 0;
	}

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!html_entity[c].len)
			continue;
		if (put(r, s + run, i - run) < 0 || put(r, html_entity[c].s, html_entity[c].len) < 0)
			return -1;
		run = i + 1;
	}
	return put(r, s + run, n - run);
}

/* put_html at the cursor: in place when the worst case fits. */
static inline __attribute__((always_inline)) int
cursor_put_html(struct render *r, struct cursor *c, const char *s, size_t n)
{
	if (n >= 4 && n <= (c->cap - c->len) / 6) {
		char *end = escape_into(c->base + c->len, s, n);
		c->len = (size_t)(end - c->base);
		return 0;
	}
	cursor_give(r, c);
	int rc = put_html(r, s, n);
	cursor_take(r, c);
	return rc;
}

/* ---- data ---- */

/* Member k of obj with its kind (and text when the adapter has it): one
 * call to an adapter with find, else get and kind. Returns 1, or 0 when
 * obj has no such member. */
static int find(const struct render *r, struct tpl_val obj, const struct tpl_key *k,
		struct tpl_found *f)
{
	if (r->ops->find)
		return r->ops->find(r->ud, obj, k, f);
	if (!r->ops->get(r->ud, obj, k, &f->v))
		return 0;
	f->kind = r->ops->kind(r->ud, f->v);
	f->s = NULL;
	f->len = 0;
	return 1;
}

/* The text of a TPL_STRING found: the adapter's own, else asked of it
 * (into scratch, for a number). Sets *n; NULL with *n 0 when there is
 * none. */
static const char *found_text(const struct render *r, const struct tpl_found *f,
			      char scratch[TPL_SCRATCH], size_t *n)
{
	if (f->s) {
		*n = f->len;
		return f->s;
	}
	*n = 0;
	const char *s = r->ops->text(r->ud, f->v, scratch, n);
	if (!s)
		*n = 0;
	return s;
}

/* Member k of the root (the last context), through the memo: the memo's
 * entry, or buf filled, or NULL when the root has no such member. */
static inline __attribute__((always_inline)) const struct tpl_found *
find_root(struct render *r, struct tpl_val root, const struct tpl_key *k, struct tpl_found *buf)
{
	if (k->sym >= ROOT_MEMO)
		return find(r, root, k, buf) ? buf : NULL;
	uint8_t *state = &r->memo_state[k->sym];
	if (*state == MEMO_UNKNOWN)
		*state = find(r, root, k, &r->memo[k->sym]) ? MEMO_FOUND : MEMO_MISSING;
	return *state == MEMO_FOUND ? &r->memo[k->sym] : NULL;
}

/* Resolves a name in the context stack: the first part in the innermost
 * context that has it, the other parts each in the value before. Returns
 * what it found (buf, or a memo entry, which the caller must not keep past
 * the render), or NULL when it is missing. */
static inline __attribute__((always_inline)) const struct tpl_found *
lookup(struct render *r, const struct tpl_name *nm, const struct ctx *cx, struct tpl_found *buf)
{
	const struct tpl_key *k = &r->t->keys[nm->first];
	const struct tpl_found *f = buf;

	if (nm->nparts == 0) {
		buf->v = cx->v;
		buf->kind = r->ops->kind(r->ud, cx->v);
		buf->s = NULL;
		buf->len = 0;
		return buf;
	}
	for (; cx->up; cx = cx->up)
		if (find(r, cx->v, k, buf))
			break;
	if (!cx->up && !(f = find_root(r, cx->v, k, buf)))
		return NULL;
	for (uint32_t i = 1; i < nm->nparts; i++) {
		if (!find(r, f->v, &k[i], buf))
			return NULL;
		f = buf;
	}
	return f;
}

static int truthy(const struct render *r, const struct tpl_found *f)
{
	char scratch[TPL_SCRATCH];
	size_t n;

	switch (f->kind) {
	case TPL_TRUE:
	case TPL_OBJECT:
		return 1;
	case TPL_STRING:
		found_text(r, f, scratch, &n);
		return n > 0;
	case TPL_LIST:
		return r->ops->list_len(r->ud, f->v) > 0;
	default:
		return 0;
	}
}

/* What a value holds, as tpl_render_lines cares: looked at sixteen bytes
 * at a time (GCC vector extensions: SSE2 on x86-64, NEON on ARM). */
#define VALUE_HIGH  TPL_HAS_NON_ASCII
#define VALUE_WATCH TPL_HAS_WATCH
#define VALUE_LOOSE TPL_HAS_LOOSE   /* a TAB, or two SPs in a row */
#define VALUE_BREAK 0x10u           /* CR, LF or NUL */
#define VALUE_HTML  0x20u           /* a character HTML escaping replaces */

/* The VALUE_* bits of s[0..n)'s control characters and non-ASCII bytes,
 * byte by byte: they are rare in a value, so the vector pass below only
 * notes that there is one. */
static unsigned odd_bytes_class(const char *s, size_t n)
{
	unsigned cls = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\0' || c == '\r' || c == '\n')
			cls |= VALUE_BREAK;
		else if (c == '\t')
			cls |= VALUE_LOOSE;
		else if (c >= 0x80)
			cls |= VALUE_HIGH;
	}
	return cls;
}

/* The VALUE_* bits s[0..n) has (two SPs in a row only looked for when
 * loose: without DKIM nobody asks). Each lane gathers the bits of its
 * bytes, and the lanes are folded into one byte at the end. */
static inline __attribute__((always_inline)) unsigned
value_class(const char *s, size_t n, unsigned char watch, int html, int loose)
{
	vec16 cls = splat16(0), odd = splat16(0), v;
	uint64_t pairs = 0;
	/* a watch byte of 0 would match NUL, which the odd bytes cover anyway */
	const vec16 w = splat16(watch ? (char)watch : '\r');
	size_t i = 0;

	if (n == 0)
		return 0;
	for (;;) {
		/* whole blocks, then the last sixteen bytes (overlapping);
		 * adjacent: the lane pairs within each half (byte k: lanes k and
		 * k + 1) that hold bytes next to each other in s; cross: lanes
		 * 7 and 8 do */
		uint64_t adjacent = ~0ull;
		int cross = 1;
		if (n - i > 16) {
			memcpy(&v, s + i, 16);
		} else if (n >= 16) {
			memcpy(&v, s + n - 16, 16);
		} else {
			static const uint64_t short_adjacent[8] = {
				0, 0, 0xff, 0xffff, ~(0xffull << 24), ~(0xffull << 24),
				~(0xffull << 24), ~(0xffull << 24),
			};
			v = load_short(s, n);
			adjacent = n >= 8 ? ~0ull : short_adjacent[n];
			cross = 0;
		}
		/* below SP as signed bytes: a control character or non-ASCII */
		odd |= v < splat16(' ');
		cls |= (v == w) & splat16(VALUE_WATCH);
		if (html)
			cls |= html_lanes(v) & splat16(VALUE_HTML);
		/* SP lanes next to each other in s (the halves taken out as
		 * integers in registers, not through memory) */
		if (loose) {
			u64x2 sp = (u64x2)(v == splat16(' '));
			u64x2 next = sp & sp >> 8;
			pairs |= (next[0] | next[1]) & adjacent;
			if (cross)
				pairs |= sp[0] >> 56 & sp[1];
		}
		if (n - i <= 16)
			break;
		/* the seam with the next block, which no block's lanes hold
		 * both sides of when the last block starts right there */
		pairs |= loose && s[i + 15] == ' ' && s[i + 16] == ' ';
		i += 16;
	}
	uint64_t a = ((u64x2)cls)[0] | ((u64x2)cls)[1];
	uint64_t odd_any = ((u64x2)odd)[0] | ((u64x2)odd)[1];
	if (!(a | odd_any))   /* the common case: nothing to fold */
		return pairs ? VALUE_LOOSE : 0;
	a |= a >> 32;
	a |= a >> 16;
	a |= a >> 8;
	unsigned found = (unsigned)(a & 0xff) | (pairs ? VALUE_LOOSE : 0);
	if (odd_any)
		found |= odd_bytes_class(s, n);
	return found;
}

/* value_class with html and loose constant in each copy: the loop is
 * left with no test of them. */
static unsigned value_class_plain(const char *s, size_t n, unsigned char watch)
{
	return value_class(s, n, watch, 0, 0);
}

static unsigned value_class_html(const char *s, size_t n, unsigned char watch)
{
	return value_class(s, n, watch, 1, 0);
}

static unsigned value_class_loose(const char *s, size_t n, unsigned char watch, int html)
{
	return html ? value_class(s, n, watch, 1, 1) : value_class(s, n, watch, 0, 1);
}

/* Lines: a value, which must hold no line end (a CR or LF would need a
 * look at what is around it) and no NUL, and non-ASCII only when allowed. */
static inline __attribute__((always_inline)) int
put_value_lines(struct render *r, struct cursor *c, const char *s, size_t n, int html, int loose)
{
	size_t start = c->len;
	unsigned char watch = r->lines->watch;
	unsigned cls = loose ? value_class_loose(s, n, watch, html)
			     : html ? value_class_html(s, n, watch) : value_class_plain(s, n, watch);

	if (cls & (VALUE_BREAK | r->bail) || (cls & VALUE_HIGH && utf8_check(s, n) != n))
		return not_lines(r);
	c->seen |= cls & (VALUE_HIGH | VALUE_WATCH | VALUE_LOOSE);
	if (n && loose)
		track_space(r, (unsigned char)s[0], (unsigned char)s[n - 1]);
	if ((html && (cls & VALUE_HTML) ? cursor_put_html(r, c, s, n) : cursor_put(r, c, s, n)) < 0)
		return -1;
	c->col += c->len - start;
	return c->col > r->max_line ? not_lines(r) : 0;
}

static inline __attribute__((always_inline)) int
put_value(struct render *r, struct cursor *c, const struct tpl_found *f, int raw, enum walk mode)
{
	char scratch[TPL_SCRATCH];
	const char *s;
	size_t n = 0;

	switch (f->kind) {
	case TPL_TRUE:
		s = "true";
		n = 4;
		break;
	case TPL_FALSE:
		s = "false";
		n = 5;
		break;
	case TPL_STRING:
		s = found_text(r, f, scratch, &n);
		break;
	default:
		return 0;
	}
	if (mode != WALK_TEXT)
		return put_value_lines(r, c, s, n, !raw && r->esc == TPL_ESCAPE_HTML,
				       mode == WALK_LINES_LOOSE);
	return raw || r->esc == TPL_ESCAPE_NONE ? cursor_put(r, c, s, n) : cursor_put_html(r, c, s, n);
}

/* ---- ops ---- */

static int render_range(struct render *r, uint32_t i, uint32_t end, const struct ctx *cx,
			const struct ovr *ov);

/* Renders ops [begin, end) one level deeper than now, for op. */
static int render_body(struct render *r, const struct tpl_op *op, uint32_t begin, uint32_t end,
		       const struct ctx *cx, const struct ovr *ov)
{
	if (r->depth == TPL_DEPTH_MAX) {
		tpl_set_error(r->err, r->t->units[op->unit].file, op->line, op->col,
			      "nesting deeper than %d (a partial that includes itself without end?)",
			      TPL_DEPTH_MAX);
		return -1;
	}
	r->depth++;
	int rc = render_range(r, begin, end, cx, ov);
	r->depth--;
	return rc;
}

/* The strict-mode error for a name that is not there. Returns -1. */
static int no_value(struct render *r, const struct tpl_op *op)
{
	const struct tpl_name *nm = &r->t->names[op->a];

	tpl_set_error(r->err, r->t->units[op->unit].file, op->line, op->col,
		      "no value for '%.*s'", (int)nm->len, r->t->pool + nm->off);
	return -1;
}

/* The partial a dynamic name's value names, among the program's: sets *u,
 * NULL when there is none (an error when strict). Returns 0 or -1. */
static int dynamic_unit(struct render *r, const struct tpl_op *op, const struct ctx *cx,
			const struct tpl_unit **u)
{
	const struct tpl *t = r->t;
	char scratch[TPL_SCRATCH];
	const char *s = NULL;
	size_t len = 0;
	struct tpl_found buf;
	const struct tpl_found *f = lookup(r, &t->names[op->a], cx, &buf);

	*u = NULL;
	if (f && f->kind == TPL_STRING)
		s = found_text(r, f, scratch, &len);
	if (!s)
		return r->flags & TPL_RENDER_STRICT ? no_value(r, op) : 0;
	for (size_t i = 1; i < t->nunits; i++) {
		if (t->units[i].name_len == len && memcmp(t->pool + t->units[i].name_off, s, len) == 0) {
			*u = &t->units[i];
			return 0;
		}
	}
	if (!(r->flags & TPL_RENDER_STRICT))
		return 0;
	const struct tpl_name *nm = &t->names[op->a];
	tpl_set_error(r->err, t->units[op->unit].file, op->line, op->col,
		      "no partial '%.*s' (the value of '%.*s')", (int)(len < 200 ? len : 200), s,
		      (int)nm->len, t->pool + nm->off);
	return -1;
}

/* A partial or parent: standing alone on its line it is indented by the
 * whitespace its tag had; in the middle of a line it is not indented at all
 * (the spec indents the lines of a partial's own text). */
static int include(struct render *r, const struct tpl_op *op, const struct ctx *cx,
		   const struct ovr *ov)
{
	const struct tpl_unit *u = &r->t->units[op->a];
	const struct indent *saved = r->indent;
	struct indent in;
	int rc;

	if ((op->flags & TPL_F_DYNAMIC) && dynamic_unit(r, op, cx, &u) < 0)
		return -1;
	uint32_t begin = u ? u->begin : 0, end = u ? u->end : 0;

	if (op->flags & TPL_F_STANDALONE) {
		if (op->d) {
			in = (struct indent){ r->t->pool + op->c, op->d, saved };
			r->indent = &in;
		}
		r->pending = 1;
		rc = render_body(r, op, begin, end, cx, ov);
		r->pending = 1;   /* its line end was taken with it */
	} else {
		if (flush_indent(r) < 0)
			return -1;
		r->indent = NULL;
		rc = render_body(r, op, begin, end, cx, ov);
		r->pending = 0;
	}
	r->indent = saved;
	return rc;
}

/* The override of block id in force, or -1. When parents nest, the
 * outermost one wins (the template rendered first has the last word); the
 * override's own frame is returned in *owner. */
static long find_override(const struct tpl *t, uint32_t id, const struct ovr *ov,
			  const struct ovr **owner)
{
	long found = -1;

	for (; ov; ov = ov->up) {
		for (uint32_t j = ov->op + 1; j < t->ops[ov->op].b; j = t->ops[j].b) {
			if (t->ops[j].a == id) {
				found = (long)j;
				*owner = ov;
				break;
			}
		}
	}
	return found;
}

/* A block: its override, indented for this place and rendered with the
 * overrides in force where it was written, or else its default content. */
static int block(struct render *r, uint32_t i, const struct ctx *cx, const struct ovr *ov)
{
	const struct tpl_op *op = &r->t->ops[i];
	const struct ovr *owner = NULL;
	long def = find_override(r->t, op->a, ov, &owner);

	if (def < 0)
		return render_body(r, op, i + 1, op->b, cx, ov);

	const struct indent *saved = r->indent;
	struct indent in;
	if (op->d) {
		in = (struct indent){ r->t->pool + op->c, op->d, saved };
		r->indent = &in;
	}
	if (op->flags & TPL_F_STANDALONE)
		r->pending = 1;
	int rc = render_body(r, op, (uint32_t)def + 1, r->t->ops[def].b, cx, owner->up);
	r->indent = saved;
	r->pending = (op->flags & TPL_F_CLOSE_STANDALONE) != 0;
	return rc;
}

static int section(struct render *r, uint32_t i, const struct ctx *cx, const struct ovr *ov)
{
	const struct tpl_op *op = &r->t->ops[i];
	struct tpl_found buf;
	const struct tpl_found *f = lookup(r, &r->t->names[op->a], cx, &buf);

	if (!f)
		return op->code == TPL_OP_INVERTED ? render_body(r, op, i + 1, op->b, cx, ov) : 0;

	if (op->code == TPL_OP_INVERTED)
		return truthy(r, f) ? 0 : render_body(r, op, i + 1, op->b, cx, ov);
	if (f->kind == TPL_LIST) {
		struct tpl_val list = f->v;   /* f may be a memo entry the body's lookups use */
		size_t n = r->ops->list_len(r->ud, list);
		for (size_t j = 0; j < n; j++) {
			struct ctx item = { r->ops->list_at(r->ud, list, j), cx };
			if (render_body(r, op, i + 1, op->b, &item, ov) < 0)
				return -1;
		}
		return 0;
	}
	if (!truthy(r, f))
		return 0;
	struct ctx sub = { f->v, cx };
	return render_body(r, op, i + 1, op->b, &sub, ov);
}

/* A variable at the cursor: the indentation owed first, if any. */
static inline __attribute__((always_inline)) int
variable(struct render *r, struct cursor *c, const struct tpl_op *op, const struct ctx *cx,
	 enum walk mode, int indented)
{
	struct tpl_found buf;
	const struct tpl_found *f;

	if (indented) {
		cursor_give(r, c);
		int rc = flush_indent(r);
		cursor_take(r, c);
		if (rc < 0)
			return -1;
	} else {
		c->pending = 0;   /* what flush_indent does with no indentation */
	}
	if ((f = lookup(r, &r->t->names[op->a], cx, &buf)))
		return put_value(r, c, f, op->flags & TPL_F_RAW, mode);
	return r->flags & TPL_RENDER_STRICT ? no_value(r, op) : 0;
}

/* Renders ops [i, end) the way mode says (always r->mode). Text and
 * variables are written at the walk's cursor; the render is brought up to
 * date around everything else. The indentation in force does not change
 * within a walk (what brings one in puts the old one back). */
static inline __attribute__((always_inline)) int
walk(struct render *r, uint32_t i, uint32_t end, const struct ctx *cx, const struct ovr *ov,
     enum walk mode)
{
	const struct tpl *t = r->t;
	const int indented = r->indent != NULL;
	struct cursor c;

	cursor_take(r, &c);
	while (i < end) {
		const struct tpl_op *op = &t->ops[i];
		int rc = 0;

		/* text and variables, most ops, by plain branches: a jump table's
		 * one indirect jump for every op is mispredicted as they alternate */
		if (op->code == TPL_OP_TEXT) {
			rc = mode != WALK_TEXT
				     ? put_text_lines(r, &c, &r->lines->shape[i], mode == WALK_LINES_LOOSE,
						      indented)
				     : cursor_text(r, &c, t->pool + op->a, op->b, indented);
			i++;
			if (rc < 0)
				return -1;
			continue;
		}
		if (op->code == TPL_OP_VAR) {
			rc = variable(r, &c, op, cx, mode, indented);
			i++;
			if (rc < 0)
				return -1;
			continue;
		}
		cursor_give(r, &c);
		switch (op->code) {
		case TPL_OP_SECTION:
		case TPL_OP_INVERTED:
			rc = section(r, i, cx, ov);
			i = op->b;
			break;
		case TPL_OP_PARTIAL:
			rc = include(r, op, cx, ov);
			i++;
			break;
		case TPL_OP_PARENT: {
			struct ovr frame = { i, ov };
			rc = include(r, op, cx, &frame);
			i = op->b;
			break;
		}
		case TPL_OP_BLOCK:
			rc = block(r, i, cx, ov);
			i = op->b;
			break;
		default:   /* an override is only reached through its parent */
			i = op->b;
			break;
		}
		if (rc < 0)
			return -1;
		cursor_take(r, &c);
	}
	cursor_give(r, &c);
	return 0;
}

static int walk_text(struct render *r, uint32_t i, uint32_t end, const struct ctx *cx,
		     const struct ovr *ov)
{
	return walk(r, i, end, cx, ov, WALK_TEXT);
}

static int walk_lines(struct render *r, uint32_t i, uint32_t end, const struct ctx *cx,
		      const struct ovr *ov)
{
	return walk(r, i, end, cx, ov, WALK_LINES);
}

static int walk_lines_loose(struct render *r, uint32_t i, uint32_t end, const struct ctx *cx,
			    const struct ovr *ov)
{
	return walk(r, i, end, cx, ov, WALK_LINES_LOOSE);
}

static int render_range(struct render *r, uint32_t i, uint32_t end, const struct ctx *cx,
			const struct ovr *ov)
{
	switch (r->mode) {
	case WALK_LINES:
		return walk_lines(r, i, end, cx, ov);
	case WALK_LINES_LOOSE:
		return walk_lines_loose(r, i, end, cx, ov);
	default:
		return walk_text(r, i, end, cx, ov);
	}
}

/* The walk both entry points make; lines and lo are NULL for tpl_render. */
static int render_main(const struct tpl *t, const struct tpl_data *d, enum tpl_escape esc,
		       unsigned flags, struct tpl_buf *out, struct tpl_error *err,
		       const struct tpl_lines *lines, struct tpl_lines_out *lo)
{
	struct render r;   /* not zeroed whole: the memo's values need no init */
	struct ctx root = { d->root, NULL };
	size_t start = out->len;

	r.t = t;
	r.ops = d->ops;
	r.ud = d->ud;
	r.esc = esc;
	r.flags = flags;
	r.out = out;
	r.err = err;
	r.indent = NULL;
	r.pending = 0;
	r.depth = 0;
	r.lines = lines;
	r.lo = lo;
	r.pool = lines ? lines->pool : NULL;
	r.max_line = lo ? lo->max_line : 0;
	r.col = 0;
	r.last_space = 0;
	r.seen = 0;
	r.bail = lo && lo->allow_8bit ? TPL_HAS_UNFIT : TPL_HAS_UNFIT | TPL_HAS_NON_ASCII;
	r.not_lines = 0;
	/* loose whitespace is tracked unless lo says nobody asks (no DKIM) */
	int loose = !(lo && lo->skip_loose);
	r.mode = !lines ? WALK_TEXT : loose ? WALK_LINES_LOOSE : WALK_LINES;
	memset(r.memo_state, MEMO_UNKNOWN, sizeof r.memo_state);
	if (!out->max)
		out->max = TPL_DEFAULT_MAX_OUTPUT;
	int rc = render_range(&r, t->units[0].begin, t->units[0].end, &root, NULL);
	if (r.last_space)
		r.seen |= TPL_HAS_LOOSE;   /* a line end or the end follows it */
	if (lo) {
		lo->non_ascii = (r.seen & TPL_HAS_NON_ASCII) != 0;
		lo->watched = (r.seen & TPL_HAS_WATCH) != 0;
		lo->loose_space = !loose || (r.seen & TPL_HAS_LOOSE) != 0;
	}
	if (rc < 0) {
		out->len = start;
		return r.not_lines ? TPL_NOT_LINES : -1;
	}
	return 0;
}

int tpl_render(const struct tpl *t, const struct tpl_data *d, enum tpl_escape esc,
	       unsigned flags, struct tpl_buf *out, struct tpl_error *err)
{
	return render_main(t, d, esc, flags, out, err, NULL, NULL);
}

int tpl_render_lines(const struct tpl *t, const struct tpl_lines *l, const struct tpl_data *d,
		     enum tpl_escape esc, unsigned flags, struct tpl_buf *out,
		     struct tpl_lines_out *lo, struct tpl_error *err)
{
	return render_main(t, d, esc, flags, out, err, l, lo);
}
