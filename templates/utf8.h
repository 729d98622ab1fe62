/* utf8: validity of UTF-8 text (RFC 3629), for templates/. Pure. */
#ifndef VOLLEY_UTF8_H
#define VOLLEY_UTF8_H

#include <stddef.h>

/* Returns the length (1 to 4) of the character at s[0..n) (n > 0), or 0 when
 * the bytes there are not valid UTF-8: a stray continuation byte, a
 * truncated sequence, an overlong form, a surrogate, a value past U+10FFFF. */
size_t utf8_char_len(const char *s, size_t n);

/* Returns the offset of the first byte of s[0..n) that does not belong to
 * valid UTF-8, or n when all of it is valid. ASCII runs are checked eight
 * bytes at a time. */
size_t utf8_check(const char *s, size_t n);

/* Returns 1 when s[0..n) holds a byte >= 0x80. */
int utf8_has_non_ascii(const char *s, size_t n);

#endif
