/* test_latency_hist: bench/latency_hist's percentiles against the exact
 * ones of a sorted array, for spreads from microseconds to minutes. */
#include "bench/latency_hist.h"
#include "tests/testutil.h"

#include <stdlib.h>

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* The nearest-rank percentile of a sorted array, as bench reported it
 * before the histogram. */
static double exact(const uint32_t *sorted, size_t n, double pct)
{
	return sorted[(size_t)(pct / 100.0 * (double)(n - 1) + 0.5)];
}

static uint32_t next_rand(uint64_t *state)
{
	*state = *state * 6364136223846793005ull + 1442695040888963407ull;
	return (uint32_t)(*state >> 33);
}

/* Within 1/64 of the exact value (the histogram's promise), or exact below
 * 64 µs. */
static int close_enough(double got, double want)
{
	if (want < 64)
		return got == want;
	double err = got > want ? got - want : want - got;
	return err <= want / 64.0;
}

static void check_spread(uint32_t max_us, size_t n, uint64_t seed)
{
	uint32_t *v = malloc(n * sizeof *v);
	struct latency_hist *h = calloc(1, sizeof *h);
	T_TRUE(v && h);
	if (!v || !h)
		goto out;
	for (size_t i = 0; i < n; i++) {
		/* Log-uniform values: every bucket range gets some. */
		uint32_t bits = 1 + next_rand(&seed) % 32;
		uint64_t x = next_rand(&seed) & ((1ull << bits) - 1);
		v[i] = (uint32_t)(x % ((uint64_t)max_us + 1));
		latency_hist_add(h, v[i]);
	}
	qsort(v, n, sizeof *v, cmp_u32);
	T_EQ_INT((long long)h->n, (long long)n);
	T_EQ_INT(h->max, v[n - 1]);
	static const double pcts[] = { 0, 1, 10, 50, 90, 99, 99.9, 100 };
	for (size_t i = 0; i < sizeof pcts / sizeof pcts[0]; i++) {
		double got = latency_hist_percentile(h, pcts[i]);
		double want = exact(v, n, pcts[i]);
		if (!close_enough(got, want))
			T_FAIL("max %u, p%g: got %.1f, want %.1f", max_us, pcts[i], got, want);
	}
out:
	free(v);
	free(h);
}

static void test_empty_and_single(void)
{
	struct latency_hist h = { 0 };
	T_TRUE(latency_hist_percentile(&h, 50) == 0);
	latency_hist_add(&h, 12345);
	T_TRUE(latency_hist_percentile(&h, 0) == 12345);
	T_TRUE(latency_hist_percentile(&h, 100) == 12345);
	latency_hist_add(&h, 0xffffffffu);   /* the largest value has a bucket */
	T_TRUE(latency_hist_percentile(&h, 100) == 0xffffffffu);
}

static void test_merge(void)
{
	struct latency_hist a = { 0 }, b = { 0 };
	for (uint32_t i = 0; i < 100; i++)
		latency_hist_add(i < 50 ? &a : &b, i);
	latency_hist_merge(&a, &b);
	T_EQ_INT((long long)a.n, 100);
	T_EQ_INT(a.max, 99);
	T_TRUE(latency_hist_percentile(&a, 50) == 50);   /* rank 50 of 0..99 */
}

int main(void)
{
	test_empty_and_single();
	test_merge();
	check_spread(100, 10000, 1);
	check_spread(100000, 100000, 2);
	check_spread(600000000u, 100000, 3);
	return t_done("latency_hist");
}
