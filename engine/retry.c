/* retry: see retry.h. */
#include "engine/retry.h"

void retry_policy_default(struct retry_policy *p)
{
	p->max_attempts = 8;
	p->base_ms = 60 * 1000;
	p->max_delay_ms = 60 * 60 * 1000;
	p->max_age_ms = 24 * 60 * 60 * 1000;
}

int retry_next(const struct retry_policy *p, unsigned attempt, int64_t first_ms, int64_t now_ms,
	       int64_t *at_ms)
{
	if (attempt >= p->max_attempts)
		return 0;
	int64_t delay = p->base_ms > 0 ? p->base_ms : 0;
	for (unsigned i = 1; i < attempt && delay < p->max_delay_ms; i++)
		delay *= 2;
	if (delay > p->max_delay_ms)
		delay = p->max_delay_ms;
	int64_t at = now_ms + delay;
	if (p->max_age_ms > 0 && at - first_ms > p->max_age_ms)
		return 0;
	*at_ms = at;
	return 1;
}
