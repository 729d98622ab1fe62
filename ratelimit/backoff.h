/* backoff: the adaptive part of a destination's limits (BOUNCES.md,
 * "Adaptive backoff"). A reply classed `throttle` lowers the rate
 * multiplicatively and, when it is about connections (connection_limit),
 * the connection cap and the messages per connection too; a run of clean
 * deliveries raises them again additively, up to the configured ceilings
 * (AIMD, as TCP's congestion control).
 *
 * One decrease per window: the replies to what was already in flight when
 * the first throttle came say the same thing again, and must not take the
 * rate to its floor at once. A throttle also ends the run of clean
 * deliveries.
 *
 * Thread-safe: a delivery costs one atomic add; the rare changes take a
 * mutex. The clock is the caller's (monotonic nanoseconds). The caller
 * applies what backoff_get says to the destination's gcra and pool caps
 * whenever a call returns 1. */
#ifndef VOLLEY_BACKOFF_H
#define VOLLEY_BACKOFF_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "ratelimit/reply_class.h"

struct backoff_config {
	double max_rate;            /* messages/s, the ceiling (> 0) */
	double min_rate;            /* the floor; 0: max_rate / 100 */
	unsigned max_conns;         /* the connection cap's ceiling (>= 1) */
	unsigned max_msgs_per_conn; /* the ceiling of messages per connection; 0: no cap */
	double decrease;            /* factor on a throttle; 0: 0.5 */
	double increase;            /* messages/s added by a clean run; 0: max_rate / 20 */
	unsigned clean_run;         /* deliveries that make a clean run; 0: 100 */
	uint64_t window_ns;         /* at most one decrease in this long; 0: 1 s */
};

/* The limits in force. */
struct backoff_limits {
	double rate;
	unsigned conns;
	unsigned msgs_per_conn;     /* 0: no cap */
};

struct backoff {
	pthread_mutex_t lock;
	struct backoff_config cfg;          /* defaults filled in */
	struct backoff_limits now;          /* under lock */
	uint64_t last_decrease_ns;          /* under lock */
	int decreased;                      /* under lock: last_decrease_ns is set */
	_Atomic unsigned clean;             /* deliveries since the last throttle or raise */
	unsigned decreases, increases;      /* under lock: counters for reports */
};

/* Starts at the ceilings. Returns 0, or -1 when cfg is not usable. */
int backoff_init(struct backoff *b, const struct backoff_config *cfg);
void backoff_destroy(struct backoff *b);

/* A refusal's verdict. Returns 1 when the limits changed. */
int backoff_on_verdict(struct backoff *b, const struct reply_verdict *v, uint64_t now_ns);

/* A recipient delivered (its 250). Returns 1 when the limits changed. */
int backoff_on_delivered(struct backoff *b);

void backoff_get(struct backoff *b, struct backoff_limits *out);

#endif
