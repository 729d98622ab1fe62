/* test_limits: the rate limiter's parts with a clock the test moves: gcra's
 * burst, steady rate and waits; many threads on one bucket letting through
 * exactly what one thread would; the backoff's decreases (one a window),
 * raises and floors; the limiter table (configured and default limits,
 * case, the overflow entry, threads making the same keys at once). */
#include "ratelimit/limits.h"
#include "tests/testutil.h"

#include <pthread.h>
#include <stdlib.h>

#define MS UINT64_C(1000000)
#define SEC UINT64_C(1000000000)

static void test_gcra(void)
{
	struct gcra g;
	uint64_t t0 = 5 * SEC;

	gcra_init(&g, 10, 3);   /* 10/s: an interval of 100 ms; 3 at once */
	T_EQ_INT(gcra_take(&g, t0, 1), 0);
	T_EQ_INT(gcra_take(&g, t0, 1), 0);
	T_EQ_INT(gcra_take(&g, t0, 1), 0);
	T_EQ_INT(gcra_take(&g, t0, 1), 100 * MS);          /* the burst is spent */
	T_EQ_INT(gcra_take(&g, t0 + 99 * MS, 1), 1 * MS);
	T_EQ_INT(gcra_take(&g, t0 + 100 * MS, 1), 0);     /* one interval later, one more */
	T_EQ_INT(gcra_take(&g, t0 + 100 * MS, 1), 100 * MS);
	T_EQ_INT(gcra_take(&g, t0 + 100 * MS, 4), GCRA_NEVER);   /* more than the burst */
	/* idle long enough, the whole burst again, and no more */
	T_EQ_INT(gcra_take(&g, t0 + 10 * SEC, 3), 0);
	T_EQ_INT(gcra_take(&g, t0 + 10 * SEC, 1), 100 * MS);
	/* a refusal counts nothing */
	T_EQ_INT(gcra_take(&g, t0 + 10 * SEC + 100 * MS, 2), 100 * MS);
	T_EQ_INT(gcra_take(&g, t0 + 10 * SEC + 100 * MS, 1), 0);

	/* over a long run the steady rate holds: 10/s for 60 s, taking
	 * whenever allowed, every millisecond */
	gcra_init(&g, 10, 1);
	unsigned taken = 0;
	for (uint64_t t = 0; t < 60 * SEC; t += MS)
		taken += gcra_take(&g, 100 * SEC + t, 1) == 0;
	T_EQ_INT(taken, 600);

	/* a new rate applies from the next take */
	gcra_init(&g, 1000, 1);
	T_EQ_INT(gcra_take(&g, SEC, 1), 0);
	gcra_set(&g, 1, 1);
	T_TRUE(gcra_rate(&g) > 0.99 && gcra_rate(&g) < 1.01);
	T_EQ_INT(gcra_take(&g, SEC + 1 * MS, 1), 0);       /* the old interval had passed */
	T_EQ_INT(gcra_take(&g, SEC + 2 * MS, 1), SEC - 1 * MS);

	/* no rate at all: one event, then a wait of about forever */
	gcra_init(&g, 0, 1);
	T_EQ_INT(gcra_take(&g, SEC, 1), 0);
	T_TRUE(gcra_take(&g, SEC, 1) > 1000000 * SEC);
}

struct hammer {
	struct gcra *g;
	uint64_t now;
	unsigned tries;
	int moving;         /* the clock moves a millisecond every thousand tries */
	unsigned allowed;
};

static void *hammer_bucket(void *arg)
{
	struct hammer *h = arg;

	for (unsigned i = 0; i < h->tries; i++)
		h->allowed += gcra_take(h->g, h->now + (h->moving ? i / 1000 * MS : 0), 1) == 0;
	return NULL;
}

static unsigned hammer(struct gcra *g, int moving)
{
	struct hammer h[4];
	pthread_t th[4];
	unsigned total = 0;

	for (int i = 0; i < 4; i++) {
		h[i] = (struct hammer){ g, SEC, 20000, moving, 0 };
		pthread_create(&th[i], NULL, hammer_bucket, &h[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		total += h[i].allowed;
	}
	return total;
}

/* Four threads on one bucket take exactly what it allows, never more: with
 * the clock standing still, the burst and not one more of 80,000 tries;
 * with each thread's clock moving to 19 ms, at most the burst and one a
 * millisecond. */
static void test_gcra_threads(void)
{
	struct gcra g;

	gcra_init(&g, 1000, 5000);   /* one a millisecond; 5,000 at once */
	T_EQ_INT(hammer(&g, 0), 5000);
	gcra_init(&g, 1000, 50);
	unsigned total = hammer(&g, 1);
	T_TRUE(total >= 50 && total <= 50 + 19);
}

static struct reply_verdict throttle(enum reply_class cls)
{
	return (struct reply_verdict){ .cls = cls, .action = REPLY_THROTTLE };
}

static void test_backoff(void)
{
	struct backoff b;
	struct backoff_limits l;
	struct backoff_config c = { .max_rate = 100, .max_conns = 8, .max_msgs_per_conn = 40,
				    .clean_run = 10 };
	struct reply_verdict rate = throttle(RC_RATE_LIMITED), conns = throttle(RC_CONNECTION_LIMIT);
	struct reply_verdict soft = { .cls = RC_MAILBOX_FULL, .action = REPLY_SOFT };

	T_EQ_INT(backoff_init(&b, &c), 0);
	backoff_get(&b, &l);
	T_TRUE(l.rate == 100 && l.conns == 8 && l.msgs_per_conn == 40);

	/* a throttle halves the rate; the replies to what was in flight in the
	 * same window do not halve it again */
	T_EQ_INT(backoff_on_verdict(&b, &rate, 10 * SEC), 1);
	T_EQ_INT(backoff_on_verdict(&b, &rate, 10 * SEC + 500 * MS), 0);
	backoff_get(&b, &l);
	T_TRUE(l.rate == 50 && l.conns == 8 && l.msgs_per_conn == 40);
	/* a reply that is not a throttle changes nothing */
	T_EQ_INT(backoff_on_verdict(&b, &soft, 20 * SEC), 0);
	/* about connections: the caps come down too */
	T_EQ_INT(backoff_on_verdict(&b, &conns, 11 * SEC), 1);
	backoff_get(&b, &l);
	T_TRUE(l.rate == 25 && l.conns == 4 && l.msgs_per_conn == 20);

	/* a clean run raises each additively: the rate by max/20 */
	for (int i = 0; i < 9; i++)
		T_EQ_INT(backoff_on_delivered(&b), 0);
	T_EQ_INT(backoff_on_delivered(&b), 1);
	backoff_get(&b, &l);
	T_TRUE(l.rate == 30 && l.conns == 5 && l.msgs_per_conn == 21);
	/* a throttle ends the run */
	for (int i = 0; i < 9; i++)
		backoff_on_delivered(&b);
	T_EQ_INT(backoff_on_verdict(&b, &rate, 30 * SEC), 1);
	backoff_get(&b, &l);
	T_TRUE(l.rate == 15);
	T_EQ_INT(backoff_on_delivered(&b), 0);

	/* floors: the rate at max/100, the caps at 1 */
	for (int i = 0; i < 20; i++)
		backoff_on_verdict(&b, &conns, (uint64_t)(40 + i * 2) * SEC);
	backoff_get(&b, &l);
	T_TRUE(l.rate == 1 && l.conns == 1 && l.msgs_per_conn == 1);
	/* ceilings: never above what is configured */
	for (int i = 0; i < 10000; i++)
		backoff_on_delivered(&b);
	backoff_get(&b, &l);
	T_TRUE(l.rate == 100 && l.conns == 8 && l.msgs_per_conn == 40);
	backoff_destroy(&b);

	struct backoff_config bad[] = {
		{ .max_rate = 0, .max_conns = 1 },
		{ .max_rate = 10, .max_conns = 0 },
		{ .max_rate = 10, .max_conns = 1, .decrease = 1.5 },
		{ .max_rate = 10, .max_conns = 1, .min_rate = 20 },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		T_EQ_INT(backoff_init(&b, &bad[i]), -1);
}

static void test_table(void)
{
	char err[256];
	struct limit_spec dflt = { .rate = 10, .burst = 2, .max_conns = 2 };
	struct limit_configured conf[] = {
		{ "Gmail.test", { .rate = 100, .burst = 10, .max_conns = 20, .max_msgs_per_conn = 100 } },
	};
	struct limits *l = limits_new(3, &dflt, conf, 1, err, sizeof err);
	struct backoff_limits caps;

	T_TRUE(l != NULL);
	if (!l)
		return;
	struct limit_entry *g = limits_get(l, "gmail.TEST", 10);
	T_TRUE(g != NULL && limits_get(l, "GMAIL.test", 10) == g);
	T_EQ_STR(g->key, "gmail.test");
	limit_caps(g, &caps);
	T_TRUE(caps.rate == 100 && caps.conns == 20 && caps.msgs_per_conn == 100);
	struct limit_entry *o = limits_get(l, "other.test", 10);
	limit_caps(o, &caps);
	T_TRUE(caps.rate == 10 && caps.conns == 2 && caps.msgs_per_conn == 0);
	T_TRUE(o != g);
	T_EQ_INT(limits_count(l), 2);

	/* the bucket takes its burst, then feedback moves its rate */
	T_EQ_INT(limit_take(o, SEC, 2), 0);
	T_EQ_INT(limit_take(o, SEC, 1), 100 * MS);
	struct reply_verdict v = throttle(RC_RATE_LIMITED);
	T_EQ_INT(limit_feedback(o, &v, SEC), 1);
	/* 5/s now: the burst's two intervals are 400 ms ahead of now */
	T_EQ_INT(limit_take(o, SEC + 100 * MS, 1), 0);
	T_EQ_INT(limit_take(o, SEC + 100 * MS, 1), 100 * MS);
	T_EQ_INT(limit_take(o, SEC + 200 * MS, 1), 0);
	T_EQ_INT(limit_take(o, SEC + 200 * MS, 1), 200 * MS);
	T_EQ_INT(limit_feedback(o, NULL, SEC), 0);        /* one delivery: no run yet */

	/* full: new keys share the overflow entry, with the default limits */
	struct limit_entry *third = limits_get(l, "third.test", 10);
	struct limit_entry *x = limits_get(l, "x.test", 6), *y = limits_get(l, "y.test", 6);
	T_TRUE(third != NULL && third != x);
	T_TRUE(x == y && x != NULL);
	T_EQ_STR(x->key, "");
	limit_caps(x, &caps);
	T_TRUE(caps.rate == 10 && caps.conns == 2);
	T_EQ_INT(limits_count(l), 3);
	/* not a key */
	T_TRUE(limits_get(l, "", 0) == NULL);
	char longkey[LIMITS_KEY_MAX + 2];
	memset(longkey, 'a', sizeof longkey);
	T_TRUE(limits_get(l, longkey, sizeof longkey) == NULL);
	limits_free(l);

	struct limit_spec zero = { 0 };
	T_TRUE(limits_new(3, &zero, NULL, 0, err, sizeof err) == NULL);
	T_EQ_STR(err, "the default limits: want a rate above 0 and at least 1 connection");
	struct limit_configured badconf[] = { { "slow.test", { .rate = 1, .max_conns = 0 } } };
	T_TRUE(limits_new(3, &dflt, badconf, 1, err, sizeof err) == NULL);
	T_EQ_STR(err, "limits for 'slow.test': want a rate above 0 and at least 1 connection");
}

struct maker {
	struct limits *l;
	struct limit_entry *got[500];
};

static void *make_keys(void *arg)
{
	struct maker *m = arg;
	char key[32];

	for (int i = 0; i < 500; i++) {
		int n = snprintf(key, sizeof key, "d%d.test", i);
		m->got[i] = limits_get(m->l, key, (size_t)n);
	}
	return NULL;
}

/* Four threads making the same 500 keys at once: one entry for each key,
 * the same for every thread. */
static void test_table_threads(void)
{
	char err[256];
	struct limit_spec dflt = { .rate = 10, .max_conns = 2 };
	struct limits *l = limits_new(1000, &dflt, NULL, 0, err, sizeof err);
	static struct maker m[4];
	pthread_t th[4];

	T_TRUE(l != NULL);
	if (!l)
		return;
	for (int i = 0; i < 4; i++) {
		m[i].l = l;
		pthread_create(&th[i], NULL, make_keys, &m[i]);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	int same = 1;
	for (int k = 0; k < 500; k++)
		for (int i = 1; i < 4; i++)
			same &= m[i].got[k] == m[0].got[k] && m[0].got[k] != NULL && m[0].got[k]->key[0];
	T_TRUE(same);
	T_EQ_INT(limits_count(l), 500);
	limits_free(l);
}

int main(void)
{
	test_gcra();
	test_gcra_threads();
	test_backoff();
	test_table();
	test_table_threads();
	return t_done("test_limits");
}
