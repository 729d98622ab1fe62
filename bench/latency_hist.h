/* latency_hist: a log-linear histogram of latencies in microseconds, so a
 * benchmark of millions of messages keeps 14 KB per worker instead of one
 * entry per message, and needs no sort at the end.
 *
 * Values below 64 µs have a bucket each; above, every power of two is split
 * into 64 buckets, so a percentile read back is within 1/64 (1.6%) of the
 * true value. The maximum is kept exactly. */
#ifndef VOLLEY_LATENCY_HIST_H
#define VOLLEY_LATENCY_HIST_H

#include <stdint.h>

#define LATENCY_HIST_SUB_BITS 6
#define LATENCY_HIST_SUB      (1u << LATENCY_HIST_SUB_BITS)
#define LATENCY_HIST_BUCKETS  (LATENCY_HIST_SUB * (33 - LATENCY_HIST_SUB_BITS))

struct latency_hist {
	uint64_t count[LATENCY_HIST_BUCKETS];
	uint64_t n;
	uint32_t max;
};

void latency_hist_add(struct latency_hist *h, uint32_t us);

/* Adds every count of src into dst. */
void latency_hist_merge(struct latency_hist *dst, const struct latency_hist *src);

/* The value at percentile pct (0 to 100) in microseconds: the middle of the
 * bucket it falls in, or the exact maximum for the last one. 0 when empty. */
double latency_hist_percentile(const struct latency_hist *h, double pct);

#endif
