/* testutil: the smallest table-test harness. Failures print "got X, want Y"
 * with the place, and the program's exit status is the failure count (capped),
 * so meson counts a program with any failure as failed. */
#ifndef VOLLEY_TESTUTIL_H
#define VOLLEY_TESTUTIL_H

#include <stdio.h>
#include <string.h>

static int t_failures;
static int t_checks;

#define T_FAIL(...) do { \
	t_failures++; \
	fprintf(stderr, "%s:%d: ", __FILE__, __LINE__); \
	fprintf(stderr, __VA_ARGS__); \
	fputc('\n', stderr); \
} while (0)

#define T_EQ_INT(got, want) do { \
	long long g_ = (long long)(got), w_ = (long long)(want); \
	t_checks++; \
	if (g_ != w_) T_FAIL("%s: got %lld, want %lld", #got, g_, w_); \
} while (0)

#define T_EQ_STR(got, want) do { \
	const char *g_ = (got), *w_ = (want); \
	t_checks++; \
	if (!g_ || !w_ || strcmp(g_, w_) != 0) \
		T_FAIL("%s: got \"%s\", want \"%s\"", #got, g_ ? g_ : "(null)", w_ ? w_ : "(null)"); \
} while (0)

#define T_EQ_MEM(got, glen, want, wlen) do { \
	const void *g_ = (got), *w_ = (want); size_t gl_ = (glen), wl_ = (wlen); \
	t_checks++; \
	if (gl_ != wl_ || memcmp(g_, w_, gl_) != 0) \
		T_FAIL("%s: got \"%.*s\" (%zu bytes), want \"%.*s\" (%zu bytes)", #got, \
		       (int)gl_, (const char *)g_, gl_, (int)wl_, (const char *)w_, wl_); \
} while (0)

#define T_TRUE(cond) do { \
	t_checks++; \
	if (!(cond)) T_FAIL("expected %s", #cond); \
} while (0)

/* Prints the totals; returns the exit status for main. */
static inline int t_done(const char *name)
{
	printf("%s: %d checks, %d failed\n", name, t_checks, t_failures);
	return t_failures > 100 ? 100 : t_failures;
}

#endif
