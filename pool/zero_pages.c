/* zero_pages: see zero_pages.h. */
#include "pool/zero_pages.h"

#include <malloc.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int page_is_zero(const unsigned char *p, size_t n)
{
	uint64_t acc = 0;
	for (size_t i = 0; i < n; i += 64) {
		uint64_t w[8];
		memcpy(w, p + i, sizeof w);
		for (int k = 0; k < 8; k++)
			acc |= w[k];
		if (acc)
			return 0;
	}
	return 1;
}

size_t zero_pages_release(void *p)
{
	if (!p)
		return 0;
	static size_t page;
	if (!page) {
		long ps = sysconf(_SC_PAGESIZE);
		page = ps > 0 ? (size_t)ps : 4096;
	}
	/* Only pages wholly inside the block: its edges share pages with
	 * malloc's headers and with neighbouring blocks. */
	uintptr_t start = ((uintptr_t)p + page - 1) & ~(uintptr_t)(page - 1);
	uintptr_t end = ((uintptr_t)p + malloc_usable_size(p)) & ~(uintptr_t)(page - 1);
	size_t given = 0;
	for (uintptr_t a = start; a + page <= end; a += page) {
		if (!page_is_zero((const unsigned char *)a, page))
			continue;
		if (madvise((void *)a, page, MADV_DONTNEED) == 0)
			given += page;
	}
	return given;
}
