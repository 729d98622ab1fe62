/* Tests for pool/zero_pages: all-zero pages inside a heap block go back to
 * the kernel (they leave the resident set, per mincore), the block keeps its
 * contents, and its released pages can be written again. */
#include "pool/zero_pages.h"
#include "tests/testutil.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* Pages wholly inside [p, p + n) that are resident. */
static size_t resident_pages(const void *p, size_t n, size_t page)
{
	uintptr_t a = ((uintptr_t)p + page - 1) & ~(uintptr_t)(page - 1);
	uintptr_t e = ((uintptr_t)p + n) & ~(uintptr_t)(page - 1);
	if (e <= a)
		return 0;
	size_t count = (e - a) / page, resident = 0;
	unsigned char *vec = malloc(count);
	if (mincore((void *)a, e - a, vec) == 0)
		for (size_t i = 0; i < count; i++)
			resident += vec[i] & 1;
	free(vec);
	return resident;
}

int main(void)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t n = 16 * page;
	unsigned char *b = malloc(n);
	memset(b, 0, n);
	size_t inner = resident_pages(b, n, page);
	T_EQ_INT(inner >= 15, 1);   /* memset made them all resident */

	/* Two pages hold data: one byte at the block's middle, and the last
	 * byte of the block (which shares its page with what follows). */
	b[n / 2] = 0x5a;
	b[n - 1] = 0xa5;
	size_t given = zero_pages_release(b);
	/* Every inner page but the one holding b[n / 2] (b[n - 1] is in the
	 * partial page at the end, or in the last inner one if aligned). */
	T_EQ_INT(given >= (inner - 2) * page, 1);
	T_EQ_INT(given <= (inner - 1) * page, 1);
	T_EQ_INT(resident_pages(b, n, page) <= 2, 1);

	/* The contents are unchanged, and a released page takes writes. */
	size_t nonzero = 0;
	for (size_t i = 0; i < n; i++)
		nonzero += b[i] != 0;
	T_EQ_INT(nonzero, 2);
	T_EQ_INT(b[n / 2], 0x5a);
	T_EQ_INT(b[n - 1], 0xa5);
	b[page + 7] = 1;
	T_EQ_INT(b[page + 7], 1);
	T_EQ_INT(b[page + 8], 0);

	/* A second pass finds nothing more to give than the zero pages left. */
	T_EQ_INT(zero_pages_release(b) <= given, 1);
	T_EQ_INT(zero_pages_release(NULL), 0);
	free(b);
	return t_done("zero_pages");
}
