/* gcra: one rate limit as the generic cell rate algorithm keeps it (ITU-T
 * I.371; the same arithmetic as redis-cell and the Redis scripts the shared
 * limits will use): on average `rate` events a second, and from an idle
 * start up to `burst` at once.
 *
 * The whole state is one theoretical arrival time (TAT), moved forward by
 * compare-and-swap, so any number of threads take from one bucket without a
 * lock; the rate may be changed while they do (the adaptive backoff does).
 * The clock is the caller's: monotonic nanoseconds, passed in. */
#ifndef VOLLEY_GCRA_H
#define VOLLEY_GCRA_H

#include <stdatomic.h>
#include <stdint.h>

#define GCRA_NEVER UINT64_MAX   /* gcra_take: more at once than the burst */

struct gcra {
	_Atomic uint64_t tat;          /* ns: when the bucket is empty again */
	_Atomic uint64_t interval_ns;  /* between two events at the steady rate */
	_Atomic uint64_t burst;        /* events an idle bucket lets through at once */
};

/* per_second > 0 (a rate below one in 10^9 seconds is taken as that);
 * burst >= 1 (0 is taken as 1). The bucket starts idle. */
void gcra_init(struct gcra *g, double per_second, uint64_t burst);

/* Changes the rate and burst; what was taken stays taken. */
void gcra_set(struct gcra *g, double per_second, uint64_t burst);

/* The rate in force, events a second. */
double gcra_rate(const struct gcra *g);

/* Takes n events (n >= 1) at now_ns. Returns 0 when they are allowed (and
 * counted), else the nanoseconds to wait before they would be (nothing is
 * counted), or GCRA_NEVER when n is more than the burst. */
uint64_t gcra_take(struct gcra *g, uint64_t now_ns, uint64_t n);

#endif
