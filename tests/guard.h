/* guard: test inputs placed right before a PROT_NONE page, so that reading
 * one byte past them faults (picohttpparser's technique), and a small
 * deterministic generator for garbage inputs. */
#ifndef VOLLEY_TEST_GUARD_H
#define VOLLEY_TEST_GUARD_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* The first byte that faults; inputs go at guard_mem - n. */
static char *guard_mem;

/* Maps a writable region of at least bytes with a PROT_NONE page after it. */
static void guard_init_size(size_t bytes)
{
	long pg = sysconf(_SC_PAGESIZE);
	size_t region = (bytes + (size_t)pg - 1) / (size_t)pg * (size_t)pg;

	guard_mem = mmap(NULL, region + (size_t)pg, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (guard_mem == MAP_FAILED || mprotect(guard_mem + region, (size_t)pg, PROT_NONE) != 0) {
		perror("guard page");
		exit(1);
	}
	guard_mem += region;
}

/* xorshift32: the next value of *state (which must not be 0). */
static inline uint32_t xorshift32(uint32_t *state)
{
	uint32_t x = *state;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *state = x;
}

#endif
