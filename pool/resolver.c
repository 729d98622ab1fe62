/* resolver: see resolver.h. c-ares tells which of its sockets it wants to
 * read or write (the socket state callback); each such socket has a watch,
 * a loop_poll that is started again after every readiness until c-ares no
 * longer wants it. Its timeouts come from one loop timer set after every
 * call into it (ares_timeout). A lookup is the MX query, then one address
 * lookup per host (ares_getaddrinfo, A and AAAA), settled when the last
 * one answers. */
#include "pool/resolver.h"

#include <ares.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <idn2.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

struct watch {
	struct loop_op op;
	struct resolver *r;
	int fd;
	unsigned want;          /* POLLIN and/or POLLOUT, as c-ares asked */
	int polling;            /* a loop_poll is in flight */
	int in_callback;        /* the poll's callback is running: it re-arms */
	struct watch *next;
};

struct lookup {
	struct resolver *r;
	resolver_mx_cb cb;
	void *user;
	unsigned pending;       /* address lookups not answered yet */
	struct loop_deferred done;   /* reports a result made without the DNS */
	struct lookup *prev, *next;
	struct mx_result res;
};

struct resolver {
	struct loop *loop;
	ares_channel ch;
	int ares_ok;            /* ch is live */
	struct watch *watches;
	struct lookup *lookups;
	unsigned nlookups;
	struct loop_timer timer;
	int closing;            /* resolver_free was called */
	int submitting;         /* inside resolver_mx: results wait for the loop */
	uint64_t rng;
};

static void schedule_timeout(struct resolver *r);

/* ---- the lookups ---- */

static void lookup_unlink(struct lookup *lk)
{
	struct resolver *r = lk->r;

	if (lk->prev)
		lk->prev->next = lk->next;
	else
		r->lookups = lk->next;
	if (lk->next)
		lk->next->prev = lk->prev;
	r->nlookups--;
}

/* Reports lk's result (unless the resolver is closing) and frees it; from
 * the loop when c-ares answered inside resolver_mx. */
static void lookup_finish(struct lookup *lk)
{
	struct resolver *r = lk->r;

	if (r->submitting && !r->closing) {
		loop_defer(r->loop, &lk->done);
		return;
	}
	lookup_unlink(lk);
	loop_defer_cancel(r->loop, &lk->done);
	if (!r->closing)
		lk->cb(lk->user, &lk->res);
	free(lk);
}

static void on_done_deferred(struct loop_deferred *d)
{
	struct lookup *lk = (struct lookup *)((char *)d - offsetof(struct lookup, done));
	lookup_finish(lk);
}

static unsigned random_below(void *ud, unsigned bound)
{
	struct resolver *r = ud;

	/* xorshift64: the order of equal MX hosts need not be secret */
	r->rng ^= r->rng << 13;
	r->rng ^= r->rng >> 7;
	r->rng ^= r->rng << 17;
	return bound ? (unsigned)(r->rng % bound) : 0;
}

/* A temporary DNS failure, as opposed to an answer that there is nothing. */
static int ares_temporary(int status)
{
	return status != ARES_ENOTFOUND && status != ARES_ENODATA && status != ARES_ENONAME &&
	       status != ARES_EBADNAME;
}

struct host_query {
	struct lookup *lk;
	unsigned index;
};

static void on_addrinfo(void *arg, int status, int timeouts, struct ares_addrinfo *ai)
{
	struct host_query *hq = arg;
	struct lookup *lk = hq->lk;
	struct mx_host *h = &lk->res.hosts[hq->index];

	free(hq);
	if (status == ARES_SUCCESS && ai) {
		for (struct ares_addrinfo_node *n = ai->nodes; n && h->naddrs < MX_ADDRS_MAX;
		     n = n->ai_next) {
			if ((n->ai_family != AF_INET && n->ai_family != AF_INET6) ||
			    n->ai_addrlen > sizeof h->addrs[0])
				continue;
			memset(&h->addrs[h->naddrs], 0, sizeof h->addrs[0]);
			memcpy(&h->addrs[h->naddrs], n->ai_addr, n->ai_addrlen);
			h->naddrs++;
		}
	} else if (status != ARES_EDESTRUCTION && status != ARES_ECANCELLED) {
		h->temporary = ares_temporary(status);
	}
	if (ai)
		ares_freeaddrinfo(ai);
	if (--lk->pending == 0) {
		mx_settle(&lk->res);
		lookup_finish(lk);
	}
}

/* Starts the address lookups of lk's hosts. */
static void lookup_addresses(struct lookup *lk)
{
	struct ares_addrinfo_hints hints = { .ai_flags = ARES_AI_NOSORT, .ai_family = AF_UNSPEC };
	unsigned n = lk->res.nhosts;

	/* pending counts them all before the first starts: one may answer at
	 * once (a cached or malformed name) */
	lk->pending = n + 1;
	for (unsigned i = 0; i < n; i++) {
		struct host_query *hq = malloc(sizeof *hq);
		if (!hq) {
			lk->res.hosts[i].temporary = 1;
			lk->pending--;
			continue;
		}
		*hq = (struct host_query){ lk, i };
		ares_getaddrinfo(lk->r->ch, lk->res.hosts[i].name, NULL, &hints, on_addrinfo, hq);
	}
	if (--lk->pending == 0) {
		mx_settle(&lk->res);
		lookup_finish(lk);
	}
}

static void on_mx(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct lookup *lk = arg;
	struct mx_result *res = &lk->res;

	if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED) {
		lookup_finish(lk);
		return;
	}
	if (status == ARES_ENODATA) {   /* the name exists, with no MX */
		mx_choose(res, NULL, 0, random_below, lk->r);
		lookup_addresses(lk);
		return;
	}
	if (status != ARES_SUCCESS) {
		res->status = status == ARES_ENOTFOUND ? MX_NXDOMAIN
			      : status == ARES_EBADNAME ? MX_BAD_NAME : MX_TEMPFAIL;
		snprintf(res->why, sizeof res->why, "%s: MX lookup: %s", res->domain,
			 ares_strerror(status));
		lookup_finish(lk);
		return;
	}
	struct ares_mx_reply *mx = NULL;
	int rc = ares_parse_mx_reply(abuf, alen, &mx);
	if (rc == ARES_ENODATA) {   /* an answer, but no MX record in it */
		mx_choose(res, NULL, 0, random_below, lk->r);
		lookup_addresses(lk);
		return;
	}
	if (rc != ARES_SUCCESS) {
		res->status = MX_TEMPFAIL;
		snprintf(res->why, sizeof res->why, "%s: MX reply: %s", res->domain, ares_strerror(rc));
		lookup_finish(lk);
		return;
	}
	struct mx_record recs[64];
	size_t n = 0;
	for (struct ares_mx_reply *m = mx; m && n < sizeof recs / sizeof recs[0]; m = m->next)
		recs[n++] = (struct mx_record){ m->priority, m->host };
	mx_choose(res, recs, n, random_below, lk->r);
	ares_free_data(mx);
	if (res->status != MX_OK)
		lookup_finish(lk);
	else
		lookup_addresses(lk);
}

/* domain as it is queried: A-labels, lower case, no final dot. 0 or -1. */
static int query_name(const char *domain, char *out, size_t outlen, char *why, size_t whylen)
{
	char *ascii = NULL;
	int rc = idn2_to_ascii_8z(domain, &ascii, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);

	if (rc != IDN2_OK) {
		snprintf(why, whylen, "%.80s: not a domain name (%s)", domain, idn2_strerror(rc));
		return -1;
	}
	size_t n = strlen(ascii);
	if (n && ascii[n - 1] == '.')
		n--;
	if (n == 0 || n >= outlen || n > MX_NAME_MAX) {
		snprintf(why, whylen, "%.80s: not a domain name", domain);
		idn2_free(ascii);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		out[i] = (char)(ascii[i] >= 'A' && ascii[i] <= 'Z' ? ascii[i] + 32 : ascii[i]);
	out[n] = '\0';
	idn2_free(ascii);
	return 0;
}

int resolver_mx(struct resolver *r, const char *domain, resolver_mx_cb cb, void *user)
{
	struct lookup *lk = calloc(1, sizeof *lk);

	if (!lk || r->closing) {
		free(lk);
		return -1;
	}
	lk->r = r;
	lk->cb = cb;
	lk->user = user;
	lk->done.cb = on_done_deferred;
	lk->next = r->lookups;
	if (r->lookups)
		r->lookups->prev = lk;
	r->lookups = lk;
	r->nlookups++;
	if (query_name(domain, lk->res.domain, sizeof lk->res.domain, lk->res.why,
		       sizeof lk->res.why) < 0) {
		snprintf(lk->res.domain, sizeof lk->res.domain, "%.*s", MX_NAME_MAX, domain);
		lk->res.status = MX_BAD_NAME;
		loop_defer(r->loop, &lk->done);   /* never from inside this call */
		return 0;
	}
	r->submitting = 1;
	ares_query(r->ch, lk->res.domain, ns_c_in, ns_t_mx, on_mx, lk);
	r->submitting = 0;
	schedule_timeout(r);
	return 0;
}

unsigned resolver_pending(const struct resolver *r)
{
	return r->nlookups;
}

/* ---- c-ares on the loop ---- */

static void maybe_free(struct resolver *r)
{
	if (r->closing && !r->watches) {
		loop_timer_stop(r->loop, &r->timer);
		free(r);
	}
}

static void watch_unlink(struct watch *w)
{
	struct watch **p = &w->r->watches;

	while (*p && *p != w)
		p = &(*p)->next;
	if (*p)
		*p = w->next;
}

static void watch_arm(struct watch *w)
{
	if (w->polling || w->in_callback || !w->want)
		return;
	if (loop_poll(w->r->loop, &w->op, w->fd, w->want) == 0)
		w->polling = 1;
}

/* Sets the timer for c-ares' next timeout (or stops it). */
static void schedule_timeout(struct resolver *r)
{
	struct timeval tv;

	if (!r->ares_ok || r->closing || !ares_timeout(r->ch, NULL, &tv)) {
		loop_timer_stop(r->loop, &r->timer);
		return;
	}
	uint64_t ms = (uint64_t)tv.tv_sec * 1000u + ((uint64_t)tv.tv_usec + 999u) / 1000u;
	loop_timer_start(r->loop, &r->timer, ms ? ms : 1);
}

static void on_timer(struct loop_timer *t)
{
	struct resolver *r = (struct resolver *)((char *)t - offsetof(struct resolver, timer));

	ares_process_fd(r->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	schedule_timeout(r);
}

static void on_poll(struct loop_op *op, int res)
{
	struct watch *w = (struct watch *)op;
	struct resolver *r = w->r;

	w->polling = 0;
	if (res < 0 && res != -ECANCELED)
		res = POLLERR;   /* c-ares reads the socket, finds the error, ends it */
	if (res > 0 && r->ares_ok && w->want) {
		int rfd = res & (POLLIN | POLLERR | POLLHUP) ? w->fd : ARES_SOCKET_BAD;
		int wfd = res & (POLLOUT | POLLERR | POLLHUP) ? w->fd : ARES_SOCKET_BAD;
		w->in_callback = 1;
		ares_process_fd(r->ch, rfd, wfd);   /* may end this socket: want 0 */
		w->in_callback = 0;
		schedule_timeout(r);
	}
	if (w->want && r->ares_ok && !r->closing) {
		watch_arm(w);
		if (w->polling)
			return;
	}
	watch_unlink(w);
	free(w);
	maybe_free(r);
}

static void on_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct resolver *r = data;
	struct watch *w = r->watches;

	while (w && (w->fd != fd || (!w->want && !w->in_callback)))
		w = w->next;
	unsigned want = (readable ? POLLIN : 0) | (writable ? POLLOUT : 0);
	if (!w) {
		if (!want)
			return;
		w = calloc(1, sizeof *w);
		if (!w)
			return;   /* the query times out instead */
		w->op.cb = on_poll;
		w->r = r;
		w->fd = fd;
		w->next = r->watches;
		r->watches = w;
	}
	w->want = want;
	if (want) {
		watch_arm(w);
	} else if (w->polling) {
		loop_cancel(r->loop, &w->op);   /* on_poll frees it */
	} else if (!w->in_callback) {
		watch_unlink(w);
		free(w);
	}
}

struct resolver *resolver_new(struct loop *l, const struct resolver_config *cfg, char *err,
			      size_t errlen)
{
	static int library_ready;
	struct resolver *r = calloc(1, sizeof *r);
	struct ares_options o;
	/* no search list: every name asked is a whole domain */
	int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_DOMAINS;
	int rc;

	if (!r) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (!library_ready) {   /* a no-op on Linux beyond the first call */
		if ((rc = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS) {
			snprintf(err, errlen, "c-ares: %s", ares_strerror(rc));
			free(r);
			return NULL;
		}
		library_ready = 1;
	}
	memset(&o, 0, sizeof o);
	o.sock_state_cb = on_sock_state;
	o.sock_state_cb_data = r;
	o.timeout = cfg && cfg->timeout_ms ? (int)cfg->timeout_ms : 2000;
	o.tries = cfg && cfg->tries ? (int)cfg->tries : 3;
	if (cfg && cfg->servers) {
		o.lookups = (char *)"b";   /* servers given: DNS only, no hosts file */
		mask |= ARES_OPT_LOOKUPS;
	}
	if ((rc = ares_init_options(&r->ch, &o, mask)) != ARES_SUCCESS) {
		snprintf(err, errlen, "c-ares: %s", ares_strerror(rc));
		free(r);
		return NULL;
	}
	r->ares_ok = 1;
	if (cfg && cfg->servers && (rc = ares_set_servers_ports_csv(r->ch, cfg->servers)) != ARES_SUCCESS) {
		snprintf(err, errlen, "DNS servers '%s': %s", cfg->servers, ares_strerror(rc));
		ares_destroy(r->ch);
		free(r);
		return NULL;
	}
	r->loop = l;
	r->timer.cb = on_timer;
	if (getrandom(&r->rng, sizeof r->rng, GRND_NONBLOCK) != sizeof r->rng || !r->rng)
		r->rng = (uintptr_t)r | 1;
	return r;
}

void resolver_free(struct resolver *r)
{
	if (!r)
		return;
	r->closing = 1;
	loop_timer_stop(r->loop, &r->timer);
	/* the lookups end without callbacks (closing), their sockets with
	 * on_sock_state(fd, 0, 0): polls in flight are cancelled */
	ares_destroy(r->ch);
	r->ares_ok = 0;
	while (r->lookups)
		lookup_finish(r->lookups);
	for (struct watch *w = r->watches, *next; w; w = next) {
		next = w->next;
		w->want = 0;
		if (w->polling) {
			loop_cancel(r->loop, &w->op);
		} else {
			watch_unlink(w);
			free(w);
		}
	}
	maybe_free(r);
}
