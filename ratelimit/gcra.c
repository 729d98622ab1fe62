/* gcra: see gcra.h. n events at now are allowed when, counted, the bucket
 * would not be more than `burst` intervals ahead of now:
 *     tat' = max(tat, now) + n * T,   allowed iff tat' - now <= burst * T
 * From idle that is n <= burst; after a burst the next event waits T. */
#include "ratelimit/gcra.h"

static uint64_t interval_of(double per_second)
{
	if (!(per_second > 1e-9))   /* also NaN */
		return UINT64_C(1000000000) * 1000000000u;
	double ns = 1e9 / per_second;
	return ns < 1.0 ? 1 : (uint64_t)ns;
}

void gcra_init(struct gcra *g, double per_second, uint64_t burst)
{
	atomic_init(&g->tat, 0);
	atomic_init(&g->interval_ns, interval_of(per_second));
	atomic_init(&g->burst, burst ? burst : 1);
}

void gcra_set(struct gcra *g, double per_second, uint64_t burst)
{
	atomic_store_explicit(&g->interval_ns, interval_of(per_second), memory_order_relaxed);
	atomic_store_explicit(&g->burst, burst ? burst : 1, memory_order_relaxed);
}

double gcra_rate(const struct gcra *g)
{
	return 1e9 / (double)atomic_load_explicit(&g->interval_ns, memory_order_relaxed);
}

/* a * b, or UINT64_MAX when it does not fit */
static uint64_t mul_sat(uint64_t a, uint64_t b)
{
	uint64_t p;
	return __builtin_mul_overflow(a, b, &p) ? UINT64_MAX : p;
}

static uint64_t add_sat(uint64_t a, uint64_t b)
{
	uint64_t s;
	return __builtin_add_overflow(a, b, &s) ? UINT64_MAX : s;
}

uint64_t gcra_take(struct gcra *g, uint64_t now_ns, uint64_t n)
{
	uint64_t t = atomic_load_explicit(&g->interval_ns, memory_order_relaxed);
	uint64_t burst = atomic_load_explicit(&g->burst, memory_order_relaxed);
	uint64_t tat = atomic_load_explicit(&g->tat, memory_order_relaxed);

	if (n == 0)
		n = 1;
	if (n > burst)
		return GCRA_NEVER;
	uint64_t ahead_max = mul_sat(burst, t), cost = mul_sat(n, t);
	for (;;) {
		uint64_t start = tat > now_ns ? tat : now_ns;
		uint64_t next = add_sat(start, cost);
		uint64_t ahead = next - now_ns;
		if (ahead > ahead_max)
			return ahead - ahead_max;
		/* on failure tat holds what another thread wrote: try again */
		if (atomic_compare_exchange_weak_explicit(&g->tat, &tat, next, memory_order_relaxed,
							  memory_order_relaxed))
			return 0;
	}
}
