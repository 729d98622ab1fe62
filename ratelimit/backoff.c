/* backoff: see backoff.h. */
#include "ratelimit/backoff.h"

#include <math.h>

int backoff_init(struct backoff *b, const struct backoff_config *cfg)
{
	struct backoff_config c = *cfg;

	if (!(c.max_rate > 0) || c.max_conns == 0 || c.min_rate < 0 || c.min_rate > c.max_rate ||
	    c.decrease < 0 || c.decrease >= 1 || c.increase < 0)
		return -1;
	if (c.min_rate == 0)
		c.min_rate = c.max_rate / 100;
	if (c.decrease == 0)
		c.decrease = 0.5;
	if (c.increase == 0)
		c.increase = c.max_rate / 20;
	if (c.clean_run == 0)
		c.clean_run = 100;
	if (c.window_ns == 0)
		c.window_ns = UINT64_C(1000000000);
	if (pthread_mutex_init(&b->lock, NULL) != 0)
		return -1;
	b->cfg = c;
	b->now = (struct backoff_limits){ c.max_rate, c.max_conns, c.max_msgs_per_conn };
	b->last_decrease_ns = 0;
	b->decreased = 0;
	atomic_init(&b->clean, 0);
	b->decreases = b->increases = 0;
	return 0;
}

void backoff_destroy(struct backoff *b)
{
	pthread_mutex_destroy(&b->lock);
}

/* n times factor, rounded down, at least 1 */
static unsigned scaled_down(unsigned n, double factor)
{
	double v = floor((double)n * factor);
	return v < 1 ? 1 : (unsigned)v;
}

int backoff_on_verdict(struct backoff *b, const struct reply_verdict *v, uint64_t now_ns)
{
	if (v->action != REPLY_THROTTLE)
		return 0;
	pthread_mutex_lock(&b->lock);
	atomic_store_explicit(&b->clean, 0, memory_order_relaxed);
	int changed = 0;
	if (!b->decreased || now_ns - b->last_decrease_ns >= b->cfg.window_ns) {
		struct backoff_limits was = b->now;
		b->now.rate = fmax(b->cfg.min_rate, b->now.rate * b->cfg.decrease);
		if (v->cls == RC_CONNECTION_LIMIT) {
			b->now.conns = scaled_down(b->now.conns, b->cfg.decrease);
			if (b->now.msgs_per_conn)
				b->now.msgs_per_conn = scaled_down(b->now.msgs_per_conn, b->cfg.decrease);
		}
		b->decreased = 1;
		b->last_decrease_ns = now_ns;
		changed = was.rate != b->now.rate || was.conns != b->now.conns ||
			  was.msgs_per_conn != b->now.msgs_per_conn;
		b->decreases += changed;
	}
	pthread_mutex_unlock(&b->lock);
	return changed;
}

int backoff_on_delivered(struct backoff *b)
{
	unsigned run = atomic_fetch_add_explicit(&b->clean, 1, memory_order_relaxed) + 1;

	if (run < b->cfg.clean_run)
		return 0;
	pthread_mutex_lock(&b->lock);
	int changed = 0;
	/* the run may have been ended (a throttle) or counted (another
	 * thread's raise) since: look again under the lock */
	if (atomic_load_explicit(&b->clean, memory_order_relaxed) >= b->cfg.clean_run) {
		atomic_store_explicit(&b->clean, 0, memory_order_relaxed);
		struct backoff_limits was = b->now;
		b->now.rate = fmin(b->cfg.max_rate, b->now.rate + b->cfg.increase);
		if (b->now.conns < b->cfg.max_conns)
			b->now.conns++;
		if (b->now.msgs_per_conn && b->now.msgs_per_conn < b->cfg.max_msgs_per_conn)
			b->now.msgs_per_conn++;
		changed = was.rate != b->now.rate || was.conns != b->now.conns ||
			  was.msgs_per_conn != b->now.msgs_per_conn;
		b->increases += changed;
	}
	pthread_mutex_unlock(&b->lock);
	return changed;
}

void backoff_get(struct backoff *b, struct backoff_limits *out)
{
	pthread_mutex_lock(&b->lock);
	*out = b->now;
	pthread_mutex_unlock(&b->lock);
}
