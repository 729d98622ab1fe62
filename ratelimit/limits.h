/* limits: the limiter table the worker threads share. Per destination (a
 * recipient domain, or the MX group its mail goes through: the caller
 * chooses the key), a gcra bucket of messages a second, the connection and
 * messages-per-connection caps, and the backoff that moves them on the
 * replies (backoff.h).
 *
 * An entry is made on first use, from the limits configured for its key or
 * else the defaults. Entries are found without a lock: open addressing,
 * each slot published once by compare-and-swap and never emptied. The
 * table holds at most max_entries; past that every new key shares one
 * overflow entry (with the default limits), so that a send to millions of
 * domains keeps its memory bounded and its limits conservative. */
#ifndef VOLLEY_LIMITS_H
#define VOLLEY_LIMITS_H

#include <stddef.h>
#include <stdint.h>

#include "ratelimit/backoff.h"
#include "ratelimit/gcra.h"

#define LIMITS_KEY_MAX 255   /* a domain name */

/* A destination's configured limits: the ceilings its backoff moves under. */
struct limit_spec {
	double rate;                 /* messages/s */
	unsigned burst;              /* messages at once from idle; 0: 1 */
	unsigned max_conns;
	unsigned max_msgs_per_conn;  /* 0: no cap */
};

struct limit_configured {
	const char *key;             /* compared without case */
	struct limit_spec spec;
};

struct limit_entry {
	char key[LIMITS_KEY_MAX + 1];   /* lower case; "" for the overflow entry */
	struct gcra bucket;
	struct backoff backoff;
	unsigned burst;
};

struct limits;

/* The table; configured (n of them) and dflt are copied. Returns NULL with
 * the reason in err (a spec that cannot be a limit names its key). */
struct limits *limits_new(size_t max_entries, const struct limit_spec *dflt,
			  const struct limit_configured *configured, size_t n, char *err,
			  size_t errlen);
void limits_free(struct limits *l);

/* The entry for key[0..len) (made now when it is new), or NULL when key is
 * empty or longer than LIMITS_KEY_MAX. Entries live as long as the table. */
struct limit_entry *limits_get(struct limits *l, const char *key, size_t len);

/* Entries made (the overflow entry not counted). */
size_t limits_count(const struct limits *l);

/* n messages for e's destination at now_ns: 0 when they may go now, else
 * the nanoseconds to wait (GCRA_NEVER: n is more than the burst). */
uint64_t limit_take(struct limit_entry *e, uint64_t now_ns, unsigned n);

/* A reply's verdict, or a delivery (v NULL), fed to e's backoff; a change
 * is applied to e's bucket at once. Returns 1 when the limits changed (the
 * caller then gives limit_caps to the pool). */
int limit_feedback(struct limit_entry *e, const struct reply_verdict *v, uint64_t now_ns);

/* The limits in force for e. */
void limit_caps(struct limit_entry *e, struct backoff_limits *out);

#endif
