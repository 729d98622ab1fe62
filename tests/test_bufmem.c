/* Tests for pool/bufmem: buffers move between heap blocks and mappings as
 * they cross a page, keep their bytes when they do, and a mapping's pages
 * are resident only once touched. */
#include "pool/bufmem.h"
#include "tests/testutil.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

static int has_pattern(const unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != (unsigned char)(i * 31 + seed))
			return 0;
	return 1;
}

static void fill(unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(i * 31 + seed);
}

static size_t resident_pages(void *p, size_t n)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE), count = (n + page - 1) / page, r = 0;
	unsigned char *vec = malloc(count);
	if (vec && mincore(p, n, vec) == 0)
		for (size_t i = 0; i < count; i++)
			r += vec[i] & 1;
	free(vec);
	return r;
}

/* Where the kernel maps nothing more (here: the address space limit set to
 * what the process has), a buffer of a page or more is a heap block, taken
 * from room the heap already has. AddressSanitizer reserves terabytes of
 * address space, so the limit cannot be set under it. */
static void test_no_mappings(void)
{
#ifdef __SANITIZE_ADDRESS__
	printf("bufmem: the no-mapping case is not run under AddressSanitizer\n");
#else
	long pages = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	T_TRUE(f && fscanf(f, "%ld", &pages) == 1);
	if (f)
		fclose(f);
	void *room = malloc(64 * 1024);   /* left free at the heap's top */
	free(room);
	struct rlimit old, lim;
	T_EQ_INT(getrlimit(RLIMIT_AS, &old), 0);
	lim = old;
	lim.rlim_cur = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE);
	T_EQ_INT(setrlimit(RLIMIT_AS, &lim), 0);
	size_t cap = 0;
	int mapped = 1;
	void *probe = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned char *b = bufmem_resize(NULL, &cap, &mapped, 8192);
	T_EQ_INT(setrlimit(RLIMIT_AS, &old), 0);
	T_TRUE(probe == MAP_FAILED);   /* the limit did hold */
	if (probe != MAP_FAILED)
		munmap(probe, 1 << 20);
	T_TRUE(b != NULL);
	T_EQ_INT(mapped, 0);
	T_EQ_INT(cap, 8192);
	if (b) {
		fill(b, cap, 5);
		/* and it becomes a mapping again once one can be had */
		b = bufmem_resize(b, &cap, &mapped, 16384);
		T_TRUE(b != NULL);
		T_EQ_INT(mapped, 1);
		T_TRUE(has_pattern(b, 8192, 5));
		bufmem_free(b, cap, mapped);
	}
#endif
}

int main(void)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t cap = 0;
	int mapped = 1;   /* must be set by the first resize */

	/* Small: a heap block of exactly the size asked. */
	unsigned char *b = bufmem_resize(NULL, &cap, &mapped, 100);
	T_TRUE(b != NULL);
	T_EQ_INT(cap, 100);
	T_EQ_INT(mapped, 0);
	fill(b, 100, 1);

	/* Across a page: a mapping, rounded to whole pages, bytes kept. */
	b = bufmem_resize(b, &cap, &mapped, 5000);
	T_TRUE(b != NULL);
	T_EQ_INT(mapped, 1);
	T_EQ_INT(cap % page, 0);
	T_TRUE(cap >= 5000);
	T_TRUE(has_pattern(b, 100, 1));
	fill(b, cap, 2);

	/* A larger mapping keeps all the bytes; its untouched pages are not
	 * resident. */
	size_t before = cap;
	b = bufmem_resize(b, &cap, &mapped, 64 * 1024);
	T_TRUE(b != NULL);
	T_EQ_INT(mapped, 1);
	T_EQ_INT(cap, 64 * 1024);
	T_TRUE(has_pattern(b, before, 2));
	T_TRUE(resident_pages(b, cap) <= before / page + 1);

	/* Asking for what it has, rounded, changes nothing. */
	unsigned char *same = bufmem_resize(b, &cap, &mapped, 64 * 1024 - 10);
	T_TRUE(same == b);
	T_EQ_INT(cap, 64 * 1024);

	/* Back below a page: a heap block again, with what fits. */
	fill(b, cap, 3);
	b = bufmem_resize(b, &cap, &mapped, 1024);
	T_TRUE(b != NULL);
	T_EQ_INT(mapped, 0);
	T_EQ_INT(cap, 1024);
	T_TRUE(has_pattern(b, 1024, 3));

	/* Growing a heap block stays a heap block below a page. */
	b = bufmem_resize(b, &cap, &mapped, 2048);
	T_TRUE(b != NULL);
	T_EQ_INT(mapped, 0);
	T_EQ_INT(cap, 2048);
	T_TRUE(has_pattern(b, 1024, 3));

	/* 0 frees it. */
	T_TRUE(bufmem_resize(b, &cap, &mapped, 0) == NULL);
	T_EQ_INT(cap, 0);
	T_EQ_INT(mapped, 0);

	/* Straight to a mapping, and freed as one. */
	b = bufmem_resize(NULL, &cap, &mapped, 3 * page);
	T_TRUE(b != NULL);
	T_EQ_INT(mapped, 1);
	T_EQ_INT(cap, 3 * page);
	fill(b, cap, 4);
	bufmem_free(b, cap, mapped);
	bufmem_free(NULL, 0, 0);
	test_no_mappings();
	return t_done("bufmem");
}
