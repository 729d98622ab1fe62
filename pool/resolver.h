/* resolver: the pool's DNS, c-ares on the worker's io_uring loop. The
 * sockets c-ares opens are watched with loop_poll and its timeouts with a
 * loop timer, so a lookup never blocks the thread; one resolver per loop.
 *
 * resolver_mx finds where a domain's mail goes (mx.h): the MX records, then
 * the addresses (A and AAAA) of each host, or of the domain itself when it
 * has no MX. A domain in Unicode is looked up as its A-labels (libidn2).
 * The servers may be given ("127.0.0.1:5353"); the tests always do, and
 * then nothing but DNS is asked (no hosts file). */
#ifndef VOLLEY_RESOLVER_H
#define VOLLEY_RESOLVER_H

#include "engine/loop.h"
#include "pool/mx.h"

struct resolver_config {
	const char *servers;     /* "host:port,host:port"; NULL: the system's */
	unsigned timeout_ms;     /* per try; 0: 2000 */
	unsigned tries;          /* 0: 3 */
};

struct resolver;

/* Returns a resolver on l, or NULL with the reason in err. */
struct resolver *resolver_new(struct loop *l, const struct resolver_config *cfg, char *err,
			      size_t errlen);

/* Ends the lookups in progress without their callbacks (not to be called
 * from inside one: c-ares is running it). The resolver's
 * memory goes once the loop has given back its operations in flight: keep
 * running the loop until loop_inflight() is 0. */
void resolver_free(struct resolver *r);

/* res is valid during the callback only; the callback may start lookups. */
typedef void (*resolver_mx_cb)(void *user, const struct mx_result *res);

/* Looks up where domain's mail goes; cb runs from the loop, never from
 * inside this call. Returns 0, or -1 when out of memory. */
int resolver_mx(struct resolver *r, const char *domain, resolver_mx_cb cb, void *user);

/* Lookups in progress. */
unsigned resolver_pending(const struct resolver *r);

#endif
