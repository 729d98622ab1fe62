/* mime_encode: see mime_encode.h. */
#include "templates/mime_encode.h"

#include <stdint.h>
#include <string.h>

#include "templates/utf8.h"

static const char HEX[] = "0123456789ABCDEF";
static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";


/* "=?UTF-8?Q?" and "?=" around the encoded text of a word. */
#define EWORD_OVERHEAD 12
/* A first encoded word shorter than this is not worth starting on a line
 * that is almost full: fold first. */
#define EWORD_MIN 24

const char *mime_strerror(int code, const struct bytebuf *out)
{
	switch (code) {
	case 0:
		return "no error";
	case MIME_EBUF:
		return out && out->errstr ? out->errstr : "output larger than its cap";
	case MIME_EUTF8:
		return "invalid UTF-8";
	case MIME_ELONG:
		return "a header line would be longer than 998 octets";
	case MIME_EADDR:
		return "an address that cannot be written";
	case MIME_ESOURCE:
		return "its source failed";
	default:
		return "unknown error";
	}
}

const char *mime_cte_name(enum mime_cte cte)
{
	switch (cte) {
	case MIME_CTE_7BIT:
		return "7bit";
	case MIME_CTE_8BIT:
		return "8bit";
	case MIME_CTE_QP:
		return "quoted-printable";
	case MIME_CTE_BASE64:
		return "base64";
	}
	return "7bit";
}

static inline int is_wsp(unsigned char c)
{
	return c == ' ' || c == '\t';
}

/* ---- text parts as they are: 7bit and 8bit ---- */

/* Sixteen bytes looked at at once (GCC vector extensions: SSE2 on x86-64,
 * NEON on ARM, plain code elsewhere). As signed chars, the bytes that need
 * a look in a text part (a line end, NUL or another control, non-ASCII)
 * are exactly those below 0x20. */
typedef signed char vec16 __attribute__((vector_size(16)));

static inline vec16 vec_load(const unsigned char *s)
{
	vec16 v;
	memcpy(&v, s, sizeof v);
	return v;
}

static inline vec16 vec_splat(signed char c)
{
	return (vec16){ c, c, c, c, c, c, c, c, c, c, c, c, c, c, c, c };
}

/* The index of the first set lane of the comparison result m, or 16. */
static inline size_t vec_first(vec16 m)
{
	uint64_t a, b;

	memcpy(&a, &m, 8);
	memcpy(&b, (const char *)&m + 8, 8);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	if (a)
		return (size_t)__builtin_ctzll(a) / 8;
	if (b)
		return 8 + (size_t)__builtin_ctzll(b) / 8;
	return 16;
#else
	for (size_t k = 0; k < 16; k++)
		if (m[k])
			return k;
	return 16;
#endif
}

/* The length of the run of bytes 0x20..0x7f at s[0..n). */
static size_t plain_run(const unsigned char *s, size_t n)
{
	const vec16 low = vec_splat(0x20);
	size_t i = 0;

	while (n - i >= 16) {
		size_t k = vec_first(vec_load(s + i) < low);
		if (k < 16)
			return i + k;
		i += 16;
	}
	while (i < n && s[i] >= 0x20 && s[i] < 0x80)
		i++;
	return i;
}

/* One pass deciding 7bit or 8bit, and writing through c unless it is NULL.
 * Returns 0 with *cte set, MIME_NEED_QP, MIME_EUTF8 or MIME_EBUF. */
static int text_pass(struct bytebuf_cursor *c, const unsigned char *s, size_t n, int allow_8bit,
		     enum mime_cte *cte)
{
	size_t i = 0, line = 0;
	int eight = 0;

	while (i < n) {
		size_t len = plain_run(s + i, n - i);
		unsigned char ch;

		if (len == 0) {
			ch = s[i];
			if (ch == '\r' || ch == '\n') {
				if (c) {
					if (bytebuf_cursor_need(c, 2) != 0)
						return MIME_EBUF;
					*c->o++ = '\r';
					*c->o++ = '\n';
				}
				i += (ch == '\r' && i + 1 < n && s[i + 1] == '\n') ? 2 : 1;
				line = 0;
				continue;
			}
			if (ch == 0)
				return MIME_NEED_QP;
			len = 1;
			if (ch >= 0x80) {
				if (!allow_8bit)
					return MIME_NEED_QP;
				len = utf8_char_len((const char *)s + i, n - i);
				if (len == 0)
					return MIME_EUTF8;
				eight = 1;
			}
		}
		line += len;
		if (line > MIME_LINE_MAX)
			return MIME_NEED_QP;
		if (c) {
			if (bytebuf_cursor_need(c, len) != 0)
				return MIME_EBUF;
			memcpy(c->o, s + i, len);
			c->o += len;
		}
		i += len;
	}
	*cte = eight ? MIME_CTE_8BIT : MIME_CTE_7BIT;
	return 0;
}

enum mime_cte mime_text_cte(const char *text, size_t n, int allow_8bit)
{
	enum mime_cte cte;

	if (text_pass(NULL, (const unsigned char *)text, n, allow_8bit, &cte) != 0)
		return MIME_CTE_QP;
	return cte;
}

int mime_text_copy(struct bytebuf *out, const char *text, size_t n, int allow_8bit,
		   enum mime_cte *cte)
{
	struct bytebuf_cursor c;
	size_t entry = out->len;
	int r;

	bytebuf_cursor_begin(&c, out);
	r = text_pass(&c, (const unsigned char *)text, n, allow_8bit, cte);
	if (r != 0) {
		bytebuf_truncate(out, entry);
		return r;
	}
	bytebuf_cursor_end(&c);
	return 0;
}

/* ---- quoted-printable ---- */

/* Octets that stand for themselves anywhere on a line (RFC 2045 6.7 (2)). */
static inline int qp_literal(unsigned char b)
{
	return b >= 33 && b <= 126 && b != '=';
}

/* A run of bytes that stand for themselves whatever their place, spaces
 * included, at s[0..n); spaces ending the run are left out when the line
 * ends right after them (they must be encoded). */
static size_t qp_run(const unsigned char *s, size_t n)
{
	const vec16 low = vec_splat(0x20), del = vec_splat(0x7f), eq = vec_splat('=');
	size_t r = 0;

	while (n - r >= 16) {
		vec16 v = vec_load(s + r);
		size_t k = vec_first((v < low) | (v == del) | (v == eq));
		r += k;
		if (k < 16)
			goto end;
	}
	while (r < n && s[r] >= 0x20 && s[r] < 0x7f && s[r] != '=')
		r++;
end:
	if (r == n || s[r] == '\r' || s[r] == '\n')
		while (r > 0 && s[r - 1] == ' ')
			r--;
	return r;
}

int mime_qp_encode(struct bytebuf *out, const char *text, size_t n)
{
	const unsigned char *s = (const unsigned char *)text;
	struct bytebuf_cursor c;
	size_t entry = out->len, col = 0, i = 0;

	bytebuf_cursor_begin(&c, out);
	while (i < n) {
		unsigned char ch = s[i];
		size_t seq = 1, run = qp_run(s + i, n - i);
		int last;

		if (run > 0) {
			/* the common case, copied a line's room at a time; the same
			 * soft breaks as one character at a time below */
			last = i + run == n || s[i + run] == '\r' || s[i + run] == '\n';
			while (run > 0) {
				size_t k;
				if (bytebuf_cursor_need(&c, MIME_QP_LINE + 3) != 0)
					goto full;
				if (col >= MIME_QP_LINE - 1) {
					if (run == 1 && last && col == MIME_QP_LINE - 1) {
						*c.o++ = (char)s[i++];
						col++;
						break;
					}
					*c.o++ = '=';
					*c.o++ = '\r';
					*c.o++ = '\n';
					col = 0;
				}
				k = MIME_QP_LINE - 1 - col;
				if (k > run)
					k = run;
				memcpy(c.o, s + i, k);
				c.o += k;
				col += k;
				i += k;
				run -= k;
			}
			continue;
		}
		if (ch == '\r' || ch == '\n') {
			if (bytebuf_cursor_need(&c, 2) != 0)
				goto full;
			*c.o++ = '\r';
			*c.o++ = '\n';
			col = 0;
			i += (ch == '\r' && i + 1 < n && s[i + 1] == '\n') ? 2 : 1;
			continue;
		}
		if (ch >= 0x80) {
			seq = utf8_char_len(text + i, n - i);
			if (seq == 0) {
				bytebuf_truncate(out, entry);
				return MIME_EUTF8;
			}
		}
		/* the character is the last of its line: whitespace there must be
		 * encoded, and it may take the 76th column (no '=' follows it) */
		last = i + seq == n || s[i + seq] == '\r' || s[i + seq] == '\n';
		for (size_t k = 0; k < seq; k++) {
			unsigned char b = s[i + k];
			int lit = qp_literal(b) || (is_wsp(b) && !last);
			size_t width = lit ? 1 : 3;
			size_t limit = last && k + 1 == seq ? MIME_QP_LINE : MIME_QP_LINE - 1;

			if (bytebuf_cursor_need(&c, 6) != 0)
				goto full;
			if (col + width > limit) {
				*c.o++ = '=';
				*c.o++ = '\r';
				*c.o++ = '\n';
				col = 0;
			}
			if (lit) {
				*c.o++ = (char)b;
			} else {
				*c.o++ = '=';
				*c.o++ = HEX[b >> 4];
				*c.o++ = HEX[b & 15];
			}
			col += width;
		}
		i += seq;
	}
	bytebuf_cursor_end(&c);
	return 0;
full:
	bytebuf_truncate(out, entry);
	return MIME_EBUF;
}

/* ---- base64 ---- */

/* Writes the base64 of s[0..n) at o without line breaks; returns the end. */
static char *b64_run(char *o, const unsigned char *s, size_t n)
{
	size_t i = 0;

	for (; n - i >= 3; i += 3) {
		uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
		*o++ = B64[v >> 18];
		*o++ = B64[(v >> 12) & 63];
		*o++ = B64[(v >> 6) & 63];
		*o++ = B64[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)s[i] << 16;
		*o++ = B64[v >> 18];
		*o++ = B64[(v >> 12) & 63];
		*o++ = '=';
		*o++ = '=';
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8;
		*o++ = B64[v >> 18];
		*o++ = B64[(v >> 12) & 63];
		*o++ = B64[(v >> 6) & 63];
		*o++ = '=';
	}
	return o;
}

size_t mime_base64_len(size_t n)
{
	size_t chars;

	if (n == 0)
		return 0;
	chars = (n + 2) / 3 * 4;
	return chars + 2 * ((chars + MIME_B64_LINE - 1) / MIME_B64_LINE);
}

int mime_base64_encode(struct bytebuf *out, const void *p, size_t n)
{
	/* a line of 76 characters holds 57 input bytes */
	const size_t per_line = MIME_B64_LINE / 4 * 3;
	const unsigned char *s = p;
	size_t total = mime_base64_len(n);
	char *o;

	if (total == 0)
		return 0;
	if (bytebuf_reserve(out, total) != 0)
		return MIME_EBUF;
	o = bytebuf_tail(out);
	for (size_t i = 0; i < n; i += per_line) {
		o = b64_run(o, s + i, n - i < per_line ? n - i : per_line);
		*o++ = '\r';
		*o++ = '\n';
	}
	out->len += total;
	return 0;
}

/* ---- header fields ---- */

int mime_field_begin(struct mime_field *f, struct bytebuf *out, const char *name, size_t len)
{
	f->out = out;
	f->start = out->len;
	f->tokens = 0;
	f->col = 0;
	if (bytebuf_reserve(out, len + 1) != 0)
		return MIME_EBUF;
	memcpy(bytebuf_tail(out), name, len);
	out->data[out->len + len] = ':';
	out->len += len + 1;
	f->col = len + 1;
	return 0;
}

int mime_field_token(struct mime_field *f, const char *ws, size_t wsn, const char *tok, size_t n)
{
	size_t col = f->col;
	int fold = 0;
	char *o;

	/* fold when the line would pass 78 and folding helps: something is on
	 * it after the name, or the token fits the next line */
	if (wsn > 0 && ((col + wsn + n > MIME_LINE_SHOULD &&
			 (f->tokens > 0 || wsn + n <= MIME_LINE_SHOULD)) ||
			col + wsn + n > MIME_LINE_MAX)) {
		fold = 1;
		col = 0;
	}
	if (col + wsn + n > MIME_LINE_MAX)
		return MIME_ELONG;
	if (bytebuf_reserve(f->out, 2 + wsn + n) != 0)
		return MIME_EBUF;
	o = bytebuf_tail(f->out);
	if (fold) {
		*o++ = '\r';
		*o++ = '\n';
	}
	memcpy(o, ws, wsn);
	memcpy(o + wsn, tok, n);
	f->out->len += (fold ? 2 : 0) + wsn + n;
	f->col = col + wsn + n;
	f->tokens++;
	return 0;
}

/* What a byte costs in a Q-encoded word in a phrase (RFC 2047 5 (3)): letters,
 * digits and "!*+-/" stand for themselves, a space is "_", the rest =XX. */
static inline int q_plain(unsigned char b)
{
	return (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9') ||
	       b == '!' || b == '*' || b == '+' || b == '-' || b == '/';
}

static inline size_t q_cost(unsigned char b)
{
	return q_plain(b) || b == ' ' ? 1 : 3;
}

/* How many bytes of s[0..n) (whole characters) fit in budget characters of
 * encoded text. */
static size_t eword_take(const char *s, size_t n, int use_b, size_t budget)
{
	size_t i = 0, q = 0;

	while (i < n) {
		size_t len = utf8_char_len(s + i, n - i);
		if (use_b) {
			if ((i + len + 2) / 3 * 4 > budget)
				break;
		} else {
			size_t cost = 0;
			for (size_t k = 0; k < len; k++)
				cost += q_cost((unsigned char)s[i + k]);
			if (q + cost > budget)
				break;
			q += cost;
		}
		i += len;
	}
	return i;
}

/* Writes one encoded word of s[0..n) at o; returns the end. */
static char *eword_write(char *o, const unsigned char *s, size_t n, int use_b)
{
	memcpy(o, use_b ? "=?UTF-8?B?" : "=?UTF-8?Q?", 10);
	o += 10;
	if (use_b) {
		o = b64_run(o, s, n);
	} else {
		for (size_t k = 0; k < n; k++) {
			unsigned char b = s[k];
			if (q_plain(b)) {
				*o++ = (char)b;
			} else if (b == ' ') {
				*o++ = '_';
			} else {
				*o++ = '=';
				*o++ = HEX[b >> 4];
				*o++ = HEX[b & 15];
			}
		}
	}
	*o++ = '?';
	*o++ = '=';
	return o;
}

/* The room for an encoded word on a line holding used octets: what keeps
 * the line within 78, at most 75. */
static size_t eword_room(size_t used)
{
	size_t room = used < MIME_LINE_SHOULD ? MIME_LINE_SHOULD - used : 0;
	return room > MIME_EWORD_MAX ? MIME_EWORD_MAX : room;
}

int mime_field_encoded(struct mime_field *f, const char *ws, size_t wsn, const char *text, size_t n)
{
	struct mime_field saved = *f;
	size_t entry = f->out->len, qlen = 0, i = 0;
	int use_b, r;

	if (utf8_check(text, n) != n)
		return MIME_EUTF8;
	for (size_t k = 0; k < n; k++)
		qlen += q_cost((unsigned char)text[k]);
	use_b = (n + 2) / 3 * 4 < qlen;

	while (i < n) {
		const char *sep = i == 0 ? ws : " ";
		size_t sepn = i == 0 ? wsn : 1;
		size_t used = f->col + sepn, room = eword_room(used), take;
		int fold = 0;
		char *o, *word;

		take = room > EWORD_OVERHEAD ? eword_take(text + i, n - i, use_b, room - EWORD_OVERHEAD) : 0;
		if (sepn > 0 && room < EWORD_MIN && take < n - i) {
			/* the rest does not fit what is left of the line: fold */
			fold = 1;
			used = sepn;
			room = eword_room(used);
			if (room < EWORD_MIN) {
				/* whitespace too long for 78 octets: settle for 998 */
				room = used < MIME_LINE_MAX ? MIME_LINE_MAX - used : 0;
				if (room > MIME_EWORD_MAX)
					room = MIME_EWORD_MAX;
			}
			take = room > EWORD_OVERHEAD
				       ? eword_take(text + i, n - i, use_b, room - EWORD_OVERHEAD) : 0;
		}
		if (take == 0) {
			r = MIME_ELONG;
			goto fail;
		}
		if (bytebuf_reserve(f->out, 2 + sepn + MIME_EWORD_MAX) != 0) {
			r = MIME_EBUF;
			goto fail;
		}
		o = bytebuf_tail(f->out);
		if (fold) {
			*o++ = '\r';
			*o++ = '\n';
		}
		memcpy(o, sep, sepn);
		word = o + sepn;
		o = eword_write(word, (const unsigned char *)text + i, take, use_b);
		f->col = used + (size_t)(o - word);
		f->out->len = (size_t)(o - f->out->data);
		f->tokens++;
		i += take;
	}
	return 0;
fail:
	bytebuf_truncate(f->out, entry);
	*f = saved;
	return r;
}

/* A word that cannot go as it is in an unstructured value. */
static int word_needs_encoding(const unsigned char *w, size_t n, int utf8, size_t wsn)
{
	if (wsn + n > MIME_LINE_MAX)
		return 1;
	for (size_t i = 0; i < n; i++) {
		unsigned char b = w[i];
		if (b < 0x20 || b == 0x7f || (b >= 0x80 && !utf8))
			return 1;
		if (b == '=' && i + 1 < n && w[i + 1] == '?')
			return 1;
	}
	return 0;
}

/* Whether s[0..n) holds "=?", which would read as an encoded word: each
 * '=' found by memchr (a two-byte memmem costs more on a short value). */
static int has_encoded_start(const unsigned char *s, size_t n)
{
	const unsigned char *p = s, *end = s + n;

	while ((p = memchr(p, '=', (size_t)(end - p))) != NULL && p + 1 < end) {
		if (p[1] == '?')
			return 1;
		p++;
	}
	return 0;
}

/* Whether the value s[0..n) (trimmed) goes as it is after one space: it
 * is not empty, its words need no encoding (printable ASCII, no "=?") and
 * the line needs no fold. The common Subject, written without looking at
 * each word. */
static int unstructured_as_is(const struct mime_field *f, const unsigned char *s, size_t n)
{
	return n > 0 && f->col + 1 + n <= MIME_LINE_SHOULD && plain_run(s, n) == n &&
	       !memchr(s, 0x7f, n) && !has_encoded_start(s, n);
}

int mime_field_unstructured(struct mime_field *f, const char *v, size_t n, int utf8)
{
	const unsigned char *s = (const unsigned char *)v;
	struct mime_field saved = *f;
	size_t entry = f->out->len, i = 0, wsn = 1;
	const char *ws = " ";   /* before the first word, after the colon */
	int r = 0;

	if (utf8_check(v, n) != n)
		return MIME_EUTF8;
	while (i < n && is_wsp(s[i]))
		i++;
	while (n > i && is_wsp(s[n - 1]))
		n--;
	if (unstructured_as_is(f, s + i, n - i)) {
		/* what the word by word loop below would write, in one go */
		if (bytebuf_reserve(f->out, 1 + n - i) != 0)
			return MIME_EBUF;
		char *o = bytebuf_tail(f->out);
		o[0] = ' ';
		memcpy(o + 1, v + i, n - i);
		f->out->len += 1 + n - i;
		f->col += 1 + n - i;
		f->tokens++;
		return 0;
	}
	while (i < n) {
		size_t end = i;

		while (end < n && !is_wsp(s[end]))
			end++;
		if (!word_needs_encoding(s + i, end - i, utf8, wsn)) {
			r = mime_field_token(f, ws, wsn, v + i, end - i);
		} else {
			/* take in the words that follow while they need encoding too,
			 * with the whitespace between them: whitespace between two
			 * encoded words would be dropped by the reader */
			for (;;) {
				size_t j = end, k;
				while (j < n && is_wsp(s[j]))
					j++;
				if (j == n)
					break;
				k = j;
				while (k < n && !is_wsp(s[k]))
					k++;
				if (!word_needs_encoding(s + j, k - j, utf8, j - end))
					break;
				end = k;
			}
			r = mime_field_encoded(f, ws, wsn, v + i, end - i);
		}
		if (r != 0)
			break;
		i = end;
		ws = v + i;
		wsn = 0;
		while (i < n && is_wsp(s[i]))
			i++, wsn++;
	}
	if (r != 0) {
		bytebuf_truncate(f->out, entry);
		*f = saved;
	}
	return r;
}

int mime_field_end(struct mime_field *f)
{
	if (bytebuf_append(f->out, "\r\n", 2) != 0)
		return MIME_EBUF;
	f->col = 0;
	return 0;
}

void mime_field_cancel(struct mime_field *f)
{
	bytebuf_truncate(f->out, f->start);
}

size_t mime_header_clean(char *dst, const char *v, size_t n)
{
	size_t o = 0, i = 0;

	while (i < n) {
		/* printable ASCII, most of a value, in whole runs */
		size_t k = plain_run((const unsigned char *)v + i, n - i);
		memcpy(dst + o, v + i, k);
		o += k;
		i += k;
		if (i == n)
			break;
		if (v[i] == '\r' || v[i] == '\n') {
			while (i < n && (v[i] == '\r' || v[i] == '\n'))
				i++;
			if (!(i < n && is_wsp((unsigned char)v[i])))
				dst[o++] = ' ';
			continue;
		}
		dst[o++] = v[i++];
	}
	return o;
}
