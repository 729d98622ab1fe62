/* bytebuf: a growable byte buffer with a hard cap, shared by templates/.
 *
 * Everything templates/ writes (an encoded part, a header field, a whole
 * message) goes into one of these. It grows by doubling up to max and never
 * past it: an append that would pass max, or find no memory, fails without
 * writing anything and leaves the reason in errstr. Reuse one buffer across
 * messages (bytebuf_clear) so that, once it is large enough, building a
 * message allocates nothing.
 *
 * Writers that produce many small pieces (an encoder) call bytebuf_reserve
 * once for a run of output, write through bytebuf_tail, then advance len
 * themselves, instead of paying a check and a call per byte. */
#ifndef VOLLEY_BYTEBUF_H
#define VOLLEY_BYTEBUF_H

#include <stddef.h>
#include <string.h>

struct bytebuf {
	char *data;
	size_t len;          /* bytes in use */
	size_t cap;          /* bytes allocated */
	size_t max;          /* len never passes this */
	const char *errstr;  /* why the last failing call failed (static text) */
};

/* An empty buffer that will hold at most max bytes; allocates nothing yet. */
void bytebuf_init(struct bytebuf *b, size_t max);

/* Frees the memory; the buffer is empty and usable again. b may be NULL. */
void bytebuf_free(struct bytebuf *b);

/* Forgets the content, keeps the memory. */
static inline void bytebuf_clear(struct bytebuf *b) { b->len = 0; }

/* Drops everything past len (len must not exceed b->len). */
static inline void bytebuf_truncate(struct bytebuf *b, size_t len) { b->len = len; }

/* Where the next byte goes. */
static inline char *bytebuf_tail(struct bytebuf *b) { return b->data + b->len; }

/* Bytes that may still be appended before the cap. */
static inline size_t bytebuf_room(const struct bytebuf *b) { return b->max - b->len; }

/* bytebuf_reserve when the room is not there yet: grows the buffer. */
int bytebuf_grow(struct bytebuf *b, size_t n);

/* Makes room for n more bytes (allocated, within the cap). Returns 0, or -1
 * with errstr set ("larger than the cap", "out of memory"). Inline: a
 * message is written in many short appends, and the room is nearly always
 * there already. */
static inline int bytebuf_reserve(struct bytebuf *b, size_t n)
{
	return n <= b->cap - b->len ? 0 : bytebuf_grow(b, n);
}

/* Appends p[0..n). Returns 0, or -1 (nothing appended; see errstr). */
static inline int bytebuf_append(struct bytebuf *b, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	if (bytebuf_reserve(b, n) != 0)
		return -1;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

/* Appends the NUL-terminated s (without its NUL). Returns 0 or -1. Inline,
 * so that a literal's length is known when compiling. */
static inline int bytebuf_append_str(struct bytebuf *b, const char *s)
{
	return bytebuf_append(b, s, strlen(s));
}

/* Appends one byte. Returns 0 or -1. */
int bytebuf_append_byte(struct bytebuf *b, char c);

/* A write cursor for encoders: bytebuf_cursor_need(c, k) makes sure k bytes
 * may be written at c->o (one comparison when there is room already), the
 * encoder writes and advances c->o, and bytebuf_cursor_end sets b->len. */
struct bytebuf_cursor {
	struct bytebuf *b;
	char *o;             /* the next byte */
	char *end;           /* the end of the allocated room */
};

static inline void bytebuf_cursor_begin(struct bytebuf_cursor *c, struct bytebuf *b)
{
	c->b = b;
	c->o = b->data ? b->data + b->len : NULL;
	c->end = b->data ? b->data + b->cap : NULL;
}

/* Grows the room behind c to at least k bytes (at least a few KiB at once,
 * within the cap). Returns 0, or -1 with b->errstr set. */
int bytebuf_cursor_grow(struct bytebuf_cursor *c, size_t k);

static inline int bytebuf_cursor_need(struct bytebuf_cursor *c, size_t k)
{
	return (size_t)(c->end - c->o) >= k ? 0 : bytebuf_cursor_grow(c, k);
}

static inline void bytebuf_cursor_end(struct bytebuf_cursor *c)
{
	if (c->o)
		c->b->len = (size_t)(c->o - c->b->data);
}

#endif
