/* suppress: the suppression list, addresses never to be sent to again. A
 * file of one address a line (blank lines and lines starting with '#' are
 * skipped), read at start; a hard bounce adds its address to the set and
 * appends it to the file at once, so the next send skips it too.
 *
 * Addresses compare without case (the domain is case-blind by RFC 5321;
 * local parts are in practice, and a list must not miss "Bob@" for
 * "bob@"). A hash set with open addressing; the addresses live in one
 * growing arena. */
#ifndef VOLLEY_SUPPRESS_H
#define VOLLEY_SUPPRESS_H

#include <stddef.h>

#define SUPPRESS_ADDR_MAX 320   /* RFC 5321's 64 + 1 + 255, with room */

struct suppress;

/* Reads path (a missing file is an empty list, created at the first add).
 * path NULL: a list in memory only. Returns NULL with the reason in err
 * (naming the line of an address too long to be one). */
struct suppress *suppress_open(const char *path, char *err, size_t errlen);
void suppress_close(struct suppress *s);

/* 1 when addr[0..len) is on the list. */
int suppress_has(const struct suppress *s, const char *addr, size_t len);

/* Puts addr on the list (and on its file). Returns 1 when added, 0 when it
 * was there, -1 with errno when the file could not take it (it is on the
 * list in memory all the same). */
int suppress_add(struct suppress *s, const char *addr, size_t len);

size_t suppress_count(const struct suppress *s);

#endif
