/* bytebuf: see bytebuf.h. */
#include "templates/bytebuf.h"

#include <stdlib.h>
#include <string.h>

/* The first allocation; small buffers (a header field) stay in one. */
#define BYTEBUF_FIRST 256

void bytebuf_init(struct bytebuf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
	b->errstr = NULL;
}

void bytebuf_free(struct bytebuf *b)
{
	if (!b)
		return;
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

int bytebuf_grow(struct bytebuf *b, size_t n)
{
	size_t want, cap;
	char *p;

	if (n <= b->cap - b->len)
		return 0;
	if (n > b->max - b->len) {
		b->errstr = "output larger than its cap";
		return -1;
	}
	want = b->len + n;
	cap = b->cap ? b->cap : BYTEBUF_FIRST;
	while (cap < want)
		cap = cap > b->max / 2 ? b->max : cap * 2;
	if (cap > b->max)
		cap = b->max;
	p = realloc(b->data, cap);
	if (!p) {
		b->errstr = "out of memory";
		return -1;
	}
	b->data = p;
	b->cap = cap;
	return 0;
}

int bytebuf_append_byte(struct bytebuf *b, char c)
{
	/* len < cap implies len < max, since cap never passes max */
	if (b->len == b->cap && bytebuf_reserve(b, 1) != 0)
		return -1;
	b->data[b->len++] = c;
	return 0;
}

/* Room asked for at once by a cursor, so that an encoder reserves once per
 * few KiB of output rather than per token. */
#define BYTEBUF_CURSOR_STEP 4096

int bytebuf_cursor_grow(struct bytebuf_cursor *c, size_t k)
{
	struct bytebuf *b = c->b;
	size_t want = k < BYTEBUF_CURSOR_STEP ? BYTEBUF_CURSOR_STEP : k;

	bytebuf_cursor_end(c);
	if (want > bytebuf_room(b))
		want = bytebuf_room(b);
	if (want < k) {
		b->errstr = "output larger than its cap";
		return -1;
	}
	if (bytebuf_reserve(b, want) != 0)
		return -1;
	c->o = b->data + b->len;
	c->end = b->data + b->cap;
	return 0;
}
