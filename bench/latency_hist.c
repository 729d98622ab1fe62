/* latency_hist: see latency_hist.h. */
#include "bench/latency_hist.h"

/* Bucket of v: exact below LATENCY_HIST_SUB, else (power of two, the next
 * LATENCY_HIST_SUB_BITS bits below the top one). */
static unsigned bucket_of(uint32_t v)
{
	if (v < LATENCY_HIST_SUB)
		return v;
	unsigned top = 31u - (unsigned)__builtin_clz(v);            /* >= SUB_BITS */
	unsigned shift = top - LATENCY_HIST_SUB_BITS;
	unsigned sub = (v >> shift) & (LATENCY_HIST_SUB - 1);
	return LATENCY_HIST_SUB * (shift + 1) + sub;
}

/* The smallest value of bucket b and the bucket's width. */
static void bucket_range(unsigned b, double *low, double *width)
{
	if (b < LATENCY_HIST_SUB) {
		*low = b;
		*width = 1;
		return;
	}
	unsigned shift = b / LATENCY_HIST_SUB - 1;
	unsigned sub = b % LATENCY_HIST_SUB;
	*width = (double)(1ull << shift);
	*low = (double)((uint64_t)(LATENCY_HIST_SUB + sub) << shift);
}

void latency_hist_add(struct latency_hist *h, uint32_t us)
{
	h->count[bucket_of(us)]++;
	h->n++;
	if (us > h->max)
		h->max = us;
}

void latency_hist_merge(struct latency_hist *dst, const struct latency_hist *src)
{
	for (unsigned b = 0; b < LATENCY_HIST_BUCKETS; b++)
		dst->count[b] += src->count[b];
	dst->n += src->n;
	if (src->max > dst->max)
		dst->max = src->max;
}

double latency_hist_percentile(const struct latency_hist *h, double pct)
{
	if (!h->n)
		return 0;
	/* The same rank as the nearest-rank percentile of a sorted array. */
	uint64_t rank = (uint64_t)(pct / 100.0 * (double)(h->n - 1) + 0.5);
	uint64_t seen = 0;
	unsigned last = bucket_of(h->max);
	for (unsigned b = 0; b < LATENCY_HIST_BUCKETS; b++) {
		seen += h->count[b];
		if (seen > rank) {
			if (b == last)
				return h->max;
			double low, width;
			bucket_range(b, &low, &width);
			return low + (width - 1) / 2;
		}
	}
	return h->max;
}
