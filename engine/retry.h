/* retry: when a deferred job is tried again. Pure: the clock is the
 * caller's (wall-clock milliseconds, so that a job's age survives a
 * restart).
 *
 * The delay doubles from base_ms with every attempt, up to max_delay_ms,
 * and a job whose first attempt is older than max_age_ms, or that has had
 * max_attempts, expires instead. A greylisting server wants the same
 * message again after its delay, so the first retry is never sooner than
 * base_ms. */
#ifndef VOLLEY_RETRY_H
#define VOLLEY_RETRY_H

#include <stdint.h>

struct retry_policy {
	unsigned max_attempts;    /* attempts in all, the first one counted (>= 1) */
	int64_t base_ms;          /* the first retry's delay */
	int64_t max_delay_ms;     /* no delay longer than this */
	int64_t max_age_ms;       /* from the first attempt; 0: no limit */
};

/* The defaults: 8 attempts, 1 minute doubling to 1 hour, 1 day in all. */
void retry_policy_default(struct retry_policy *p);

/* After attempt number `attempt` (1 for the first) of a job first tried at
 * first_ms was deferred at now_ms: 1 with *at_ms set to when to try again,
 * or 0 when the job expires. */
int retry_next(const struct retry_policy *p, unsigned attempt, int64_t first_ms, int64_t now_ms,
	       int64_t *at_ms);

#endif
