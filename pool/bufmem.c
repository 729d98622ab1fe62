/* bufmem: see bufmem.h. */
#include "pool/bufmem.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static size_t page_size(void)
{
	static size_t page;
	if (!page) {
		long ps = sysconf(_SC_PAGESIZE);
		page = ps > 0 ? (size_t)ps : 4096;
	}
	return page;
}

static size_t page_round(size_t n)
{
	size_t page = page_size();
	return (n + page - 1) & ~(page - 1);
}

void bufmem_free(void *buf, size_t cap, int mapped)
{
	if (!buf)
		return;
	if (mapped)
		munmap(buf, cap);
	else
		free(buf);
}

/* A new buffer of want bytes: *cap and *mapped say what it became. */
static void *take(size_t want, size_t *cap, int *mapped)
{
	if (want >= BUFMEM_MAP_MIN) {
		size_t len = page_round(want);
		void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p != MAP_FAILED) {
			*cap = len;
			*mapped = 1;
			return p;
		}
	}
	void *p = malloc(want);
	if (p) {
		*cap = want;
		*mapped = 0;
	}
	return p;
}

void *bufmem_resize(void *buf, size_t *cap, int *mapped, size_t want)
{
	if (want == 0) {
		bufmem_free(buf, *cap, *mapped);
		*cap = 0;
		*mapped = 0;
		return NULL;
	}
	if (buf && *mapped && want >= BUFMEM_MAP_MIN) {
		size_t len = page_round(want);
		if (len == *cap)
			return buf;
		void *p = mremap(buf, *cap, len, MREMAP_MAYMOVE);
		if (p != MAP_FAILED) {
			*cap = len;
			return p;
		}
		/* fall through: a heap block will do */
	} else if (buf && !*mapped && want < BUFMEM_MAP_MIN) {
		void *p = realloc(buf, want);
		if (p)
			*cap = want;
		return p;
	}
	size_t ncap;
	int nmapped;
	void *p = take(want, &ncap, &nmapped);
	if (!p)
		return NULL;
	if (buf) {
		memcpy(p, buf, *cap < ncap ? *cap : ncap);
		bufmem_free(buf, *cap, *mapped);
	}
	*cap = ncap;
	*mapped = nmapped;
	return p;
}
