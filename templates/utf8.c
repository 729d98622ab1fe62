/* utf8: see utf8.h. */
#include "templates/utf8.h"

#include <stdint.h>
#include <string.h>

#define HIGH_BITS 0x8080808080808080ull

size_t utf8_char_len(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	uint32_t cp, least;
	size_t len;

	if (p[0] < 0x80)
		return 1;
	if ((p[0] & 0xe0) == 0xc0) {
		len = 2, cp = p[0] & 0x1f, least = 0x80;
	} else if ((p[0] & 0xf0) == 0xe0) {
		len = 3, cp = p[0] & 0x0f, least = 0x800;
	} else if ((p[0] & 0xf8) == 0xf0) {
		len = 4, cp = p[0] & 0x07, least = 0x10000;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if (cp < least || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

size_t utf8_check(const char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint64_t w;
		size_t len;

		if (n - i >= 8) {
			memcpy(&w, s + i, 8);
			if (!(w & HIGH_BITS)) {
				i += 8;
				continue;
			}
		} else if (n >= 8 && (memcpy(&w, s + n - 8, 8), !(w & HIGH_BITS))) {
			return n;   /* an ASCII tail: the last eight bytes, read at once */
		} else if ((unsigned char)s[i] < 0x80) {
			i++;   /* the ASCII tail of a short value, without a call per byte */
			continue;
		}
		len = utf8_char_len(s + i, n - i);
		if (len == 0)
			return i;
		i += len;
	}
	return n;
}

int utf8_has_non_ascii(const char *s, size_t n)
{
	size_t i = 0;
	uint64_t w, any = 0;

	for (; i + 8 <= n; i += 8) {
		memcpy(&w, s + i, 8);
		any |= w;
	}
	if (any & HIGH_BITS)
		return 1;
	for (; i < n; i++)
		if ((unsigned char)s[i] >= 0x80)
			return 1;
	return 0;
}
