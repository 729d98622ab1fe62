/* pool: persistent SMTP sessions per destination. See pool.h. */
#include "pool/pool.h"
#include "pool/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#define POOL_QUEUE_DEFAULT 65536
#define POOL_BACKOFF_FIRST_MS 250
#define POOL_BACKOFF_MAX_MS 30000

struct pool_conn {
	struct conn *c;
	struct pool_dest *d;
	unsigned sent;            /* messages handed to this session */
	int ready;                /* reached READY at least once */
	int quitting;
	struct pool_conn *prev, *next;            /* all of the destination's conns */
	struct pool_conn *hungry_prev, *hungry_next;
	int hungry;                               /* on the destination's hungry list */
};

struct pool_dest {
	struct pool *p;
	struct pool_dest_config cfg;
	struct conn_config conn_cfg;      /* the template for each session */
	struct tls_saved *resume;

	struct smtp_msg **q;              /* ring of waiting messages */
	size_t q_head, q_len, q_cap;

	struct pool_conn *conns;
	unsigned nconns, nconnecting;
	/* The ready sessions that can take another message now, so that
	 * handing out a message costs the same with 10 sessions or 10,000. */
	struct pool_conn *hungry;

	unsigned fails;                   /* connections in a row that never got ready */
	uint64_t retry_at, down_until;
	struct loop_timer retry_timer;
	enum smtp_phase last_phase;
	struct smtp_reply last_reply;     /* why the last connection failed */
	struct pool_dest_stats stats;
	struct pool_dest *next;
};

struct pool {
	struct loop *loop;
	struct pool_callbacks cb;
	void *user;
	struct pool_dest *dests;
	int shutting_down;
	unsigned long outstanding;   /* messages submitted and not finished */
	uint64_t heap_released_ms;   /* see message_finished */
};

/* Heap trims when traffic stops: at most this often. */
#define POOL_HEAP_RELEASE_MS 1000

static void dispatch(struct pool_dest *d);

/* ---- outcomes ----------------------------------------------------------- */

static void on_rcpt_done(void *user, const struct smtp_outcome *o)
{
	struct pool_conn *pc = user;
	struct pool *p = pc->d->p;
	if (p->cb.rcpt_done) {
		struct pool_outcome po = { o, pc->d, conn_tls_version(pc->c) };
		p->cb.rcpt_done(p->user, &po);
	}
}

/* Counts a message out. When the last one in flight is done, traffic has
 * stopped and the sessions park, giving back their windows
 * (smtp_session_trim); but glibc keeps freed chunks between live ones
 * resident until asked. Ask, at most once a POOL_HEAP_RELEASE_MS, so that a
 * pool between bursts holds what its sessions hold, not what the burst
 * needed. */
static void message_finished(struct pool *p)
{
	if (p->outstanding && --p->outstanding == 0) {
		uint64_t now = loop_now_ms(p->loop);
		if (now - p->heap_released_ms >= POOL_HEAP_RELEASE_MS) {
			p->heap_released_ms = now;
			malloc_trim(0);
		}
	}
}

static void on_msg_done(void *user, const struct smtp_outcome *o)
{
	struct pool_conn *pc = user;
	struct pool *p = pc->d->p;
	if (p->cb.msg_done) {
		struct pool_outcome po = { o, pc->d, conn_tls_version(pc->c) };
		p->cb.msg_done(p->user, &po);
	}
	message_finished(p);
}

static void on_trace(void *user, char dir, const char *line, size_t len)
{
	struct pool_conn *pc = user;
	if (pc->d->p->cb.trace)
		pc->d->p->cb.trace(pc->d->p->user, dir, line, len);
}

/* Fails a message that never reached a session: every recipient, then the
 * message, with the destination's last failure. */
static void fail_unsent(struct pool_dest *d, struct smtp_msg *m)
{
	struct pool *p = d->p;
	for (unsigned i = 0; i < m->nrcpt; i++) {
		struct smtp_outcome o = { m, (int)i, d->last_phase, SMTP_STATUS_TEMPFAIL, &d->last_reply };
		struct pool_outcome po = { &o, d, NULL };
		if (p->cb.rcpt_done)
			p->cb.rcpt_done(p->user, &po);
	}
	struct smtp_outcome o = { m, -1, d->last_phase, SMTP_STATUS_TEMPFAIL, &d->last_reply };
	struct pool_outcome po = { &o, d, NULL };
	if (p->cb.msg_done)
		p->cb.msg_done(p->user, &po);
	message_finished(p);
}

/* ---- the queue ---------------------------------------------------------- */

static struct smtp_msg *q_pop(struct pool_dest *d)
{
	if (!d->q_len)
		return NULL;
	struct smtp_msg *m = d->q[d->q_head];
	d->q_head = (d->q_head + 1) % d->q_cap;
	d->q_len--;
	return m;
}

static void fail_queue(struct pool_dest *d)
{
	struct smtp_msg *m;
	while ((m = q_pop(d)))
		fail_unsent(d, m);
}

/* ---- sessions ----------------------------------------------------------- */

/* The sessions the destination may have (its cap, which may change). */
static unsigned max_sessions(const struct pool_dest *d)
{
	return d->cfg.max_conns ? d->cfg.max_conns : 1;
}

static void hungry_add(struct pool_conn *pc)
{
	struct pool_dest *d = pc->d;
	if (pc->hungry)
		return;
	pc->hungry = 1;
	pc->hungry_prev = NULL;
	pc->hungry_next = d->hungry;
	if (d->hungry)
		d->hungry->hungry_prev = pc;
	d->hungry = pc;
}

static void hungry_remove(struct pool_conn *pc)
{
	struct pool_dest *d = pc->d;
	if (!pc->hungry)
		return;
	pc->hungry = 0;
	if (pc->hungry_prev)
		pc->hungry_prev->hungry_next = pc->hungry_next;
	else
		d->hungry = pc->hungry_next;
	if (pc->hungry_next)
		pc->hungry_next->hungry_prev = pc->hungry_prev;
}

/* Hands pc's session queued messages while it takes them, then files it
 * as hungry (it could take more) or not.
 *
 * Once the destination has all the sessions it may have, one that was
 * filled up is refilled only when half of what it had in flight is
 * answered: each refill is then a batch that goes out in one write, where
 * topping it up after every reply would cost the server a read and a write
 * for each message or two. (With sessions still to open, messages go to the
 * open ones at once, so that none is opened for nothing.) */
static void feed(struct pool_conn *pc)
{
	struct pool_dest *d = pc->d;
	struct smtp_session *s = conn_session(pc->c);
	unsigned cap = d->cfg.max_msgs_per_conn;
	if (!pc->hungry && !pc->quitting && d->nconns >= max_sessions(d) && smtp_session_can_send(s) &&
	    smtp_session_inflight(s) > smtp_session_capacity(s) / 2)
		return;
	while (!pc->quitting && d->q_len && smtp_session_can_send(s) && (!cap || pc->sent < cap)) {
		struct smtp_msg *m = q_pop(d);
		pc->sent++;
		if (conn_send(pc->c, m) < 0) {
			/* can_send said yes; only a closing conn refuses */
			fail_unsent(d, m);
			break;
		}
	}
	if (!pc->quitting && ((cap && pc->sent >= cap) || d->p->shutting_down)) {
		pc->quitting = 1;
		conn_quit(pc->c);
	}
	if (!pc->quitting && smtp_session_can_send(s))
		hungry_add(pc);
	else
		hungry_remove(pc);
}

static void unlink_conn(struct pool_conn *pc)
{
	struct pool_dest *d = pc->d;
	if (pc->prev)
		pc->prev->next = pc->next;
	else
		d->conns = pc->next;
	if (pc->next)
		pc->next->prev = pc->prev;
	d->nconns--;
	if (!pc->ready)
		d->nconnecting--;
	hungry_remove(pc);
}

/* A connection failed before its session was ready (d->last_reply says
 * why): back off, or after down_after failures in a row mark the destination
 * down and fail its queue. Returns 1 when it went down. */
static int note_connect_failure(struct pool_dest *d)
{
	uint64_t now = loop_now_ms(d->p->loop);
	unsigned down_after = d->cfg.down_after ? d->cfg.down_after : 3;
	d->stats.connect_failures++;
	if (++d->fails >= down_after) {
		d->down_until = now + (d->cfg.down_ms ? d->cfg.down_ms : 60000);
		d->fails = 0;
		fail_queue(d);
		return 1;
	}
	uint64_t backoff = (uint64_t)POOL_BACKOFF_FIRST_MS << (d->fails - 1 < 7 ? d->fails - 1 : 7);
	d->retry_at = now + (backoff > POOL_BACKOFF_MAX_MS ? POOL_BACKOFF_MAX_MS : backoff);
	return 0;
}

static void on_conn_event(void *user, struct conn *c, enum conn_event ev)
{
	struct pool_conn *pc = user;
	struct pool_dest *d = pc->d;
	if (ev == CONN_EVENT_READY) {
		if (!pc->ready) {
			pc->ready = 1;
			d->nconnecting--;
			d->fails = 0;
			d->stats.sessions_ready++;
			if (conn_tls_version(c)) {
				d->stats.sessions_tls++;
				d->stats.sessions_resumed += conn_tls_resumed(c) != 0;
			}
		}
		feed(pc);
		return;
	}
	/* CONN_EVENT_DONE: the conn frees itself after this returns. */
	int never_ready = !pc->ready;
	if (never_ready) {
		const struct smtp_reply *r = NULL;
		struct smtp_session *s = conn_session(c);
		if (conn_tls_failed(c)) {
			d->last_phase = conn_tls_phase(c);
			smtp_reply_synth(&d->last_reply, 421, "4.7.0",
					 conn_error(c) ? conn_error(c) : "TLS failed");
		} else if (smtp_session_state(s) == SMTP_SESSION_FAILED) {
			d->last_phase = smtp_session_failure(s, &r);
			smtp_reply_copy(&d->last_reply, r);
		} else {
			d->last_phase = conn_connected(c) ? SMTP_PHASE_GREETING : SMTP_PHASE_CONNECT;
			smtp_reply_synth(&d->last_reply, 421, "4.4.1",
					 conn_error(c) ? conn_error(c) : "connection failed");
		}
	}
	unlink_conn(pc);
	free(pc);
	if (never_ready && !d->p->shutting_down && note_connect_failure(d))
		return;
	dispatch(d);
}

static int open_conn(struct pool_dest *d)
{
	struct pool_conn *pc = calloc(1, sizeof *pc);
	if (!pc)
		return -1;
	pc->d = d;
	struct conn_config cc = d->conn_cfg;
	cc.session.cb_user = pc;
	cc.user = pc;
	pc->c = conn_open(d->p->loop, &cc);
	if (!pc->c) {
		int e = errno;
		free(pc);
		d->last_phase = SMTP_PHASE_CONNECT;
		char why[128];
		snprintf(why, sizeof why, "cannot open a connection: %s", strerror(e));
		smtp_reply_synth(&d->last_reply, 421, "4.4.1", why);
		return -1;
	}
	pc->next = d->conns;
	if (d->conns)
		d->conns->prev = pc;
	d->conns = pc;
	d->nconns++;
	d->nconnecting++;
	d->stats.sessions_opened++;
	return 0;
}

static void on_retry_timer(struct loop_timer *t)
{
	struct pool_dest *d = (struct pool_dest *)((char *)t - offsetof(struct pool_dest, retry_timer));
	dispatch(d);
}

/* Hands queued messages to ready sessions and opens sessions as needed. */
static void dispatch(struct pool_dest *d)
{
	struct pool *p = d->p;
	uint64_t now = loop_now_ms(p->loop);
	if (d->down_until > now) {
		fail_queue(d);
		return;
	}
	for (struct pool_conn *pc = d->hungry, *next; pc && d->q_len; pc = next) {
		next = pc->hungry_next;
		feed(pc);
	}
	if (!d->q_len || p->shutting_down)
		return;
	if (now < d->retry_at) {
		loop_timer_start(p->loop, &d->retry_timer, d->retry_at - now);
		return;
	}
	unsigned max = max_sessions(d);
	/* Open as many as the queue can use, one round of failures at a time. */
	while (d->nconns < max && d->nconnecting < d->q_len) {
		if (open_conn(d) < 0) {
			if (!note_connect_failure(d))
				loop_timer_start(p->loop, &d->retry_timer, d->retry_at - now);
			return;
		}
		if (d->fails)
			break;   /* after a failure, probe with one connection */
	}
}

/* ---- the public side ---------------------------------------------------- */

struct pool *pool_new(struct loop *l, const struct pool_callbacks *cb, void *user)
{
	struct pool *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	p->loop = l;
	p->cb = *cb;
	p->user = user;
	return p;
}

void pool_free(struct pool *p)
{
	if (!p)
		return;
	while (p->dests) {
		struct pool_dest *d = p->dests;
		p->dests = d->next;
		loop_timer_stop(p->loop, &d->retry_timer);
		tls_saved_free(d->resume);
		free(d->q);
		free(d);
	}
	free(p);
}

int pool_resolve(const struct relay_url *u, struct sockaddr_storage *ss, socklen_t *len, char *err, size_t errlen)
{
	memset(ss, 0, sizeof *ss);
	if (u->unix_path[0]) {
		struct sockaddr_un *sun = (struct sockaddr_un *)ss;
		sun->sun_family = AF_UNIX;
		snprintf(sun->sun_path, sizeof sun->sun_path, "%s", u->unix_path);
		*len = sizeof *sun;
		return 0;
	}
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res;
	char port[8];
	snprintf(port, sizeof port, "%u", u->port);
	int r = getaddrinfo(u->host, port, &hints, &res);
	if (r != 0) {
		snprintf(err, errlen, "cannot resolve %s: %s", u->host, gai_strerror(r));
		return -1;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

struct pool_dest *pool_dest_new(struct pool *p, const struct pool_dest_config *cfg, char *err, size_t errlen)
{
	struct pool_dest *d = calloc(1, sizeof *d);
	if (!d) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	d->p = p;
	d->cfg = *cfg;
	d->q_cap = cfg->queue_max ? cfg->queue_max : POOL_QUEUE_DEFAULT;
	d->q = calloc(d->q_cap, sizeof *d->q);
	if (!d->q) {
		free(d);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	d->retry_timer.cb = on_retry_timer;

	struct conn_config *cc = &d->conn_cfg;
	if (pool_resolve(&cfg->url, &cc->addr, &cc->addrlen, err, errlen) < 0)
		goto fail;
	if (cfg->source_addr && *cfg->source_addr) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&cc->source;
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&cc->source;
		if (inet_pton(AF_INET, cfg->source_addr, &s4->sin_addr) == 1) {
			s4->sin_family = AF_INET;
			cc->sourcelen = sizeof *s4;
		} else if (inet_pton(AF_INET6, cfg->source_addr, &s6->sin6_addr) == 1) {
			s6->sin6_family = AF_INET6;
			cc->sourcelen = sizeof *s6;
		} else {
			snprintf(err, errlen, "source address %s is not an IP address", cfg->source_addr);
			goto fail;
		}
	}
	cc->tls = cfg->tls;
	cc->tls_name = d->cfg.url.host;
	cc->tls_resume = &d->resume;
	cc->connect_timeout_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms : 30000;
	cc->idle_timeout_ms = cfg->idle_timeout_ms ? cfg->idle_timeout_ms : 5000;
	cc->on_event = on_conn_event;

	struct smtp_session_config *sc = &cc->session;
	sc->ehlo_name = cfg->ehlo_name;
	sc->lmtp = cfg->url.lmtp;
	switch (cfg->url.tls) {
	case RELAY_TLS_NONE:          sc->tls = SMTP_TLS_NONE; break;
	case RELAY_TLS_OPPORTUNISTIC: sc->tls = cfg->tls ? SMTP_TLS_OPPORTUNISTIC : SMTP_TLS_NONE; break;
	case RELAY_TLS_STARTTLS:      sc->tls = SMTP_TLS_REQUIRED; break;
	case RELAY_TLS_IMPLICIT:      sc->tls = SMTP_TLS_IMPLICIT; break;
	}
	if ((sc->tls == SMTP_TLS_REQUIRED || sc->tls == SMTP_TLS_IMPLICIT) && !cfg->tls) {
		snprintf(err, errlen, "this URL needs TLS and no TLS context was given");
		goto fail;
	}
	sc->creds = cfg->creds;
	sc->auth_mechs = cfg->auth_mechs;
	sc->auth_plaintext_ok = cfg->auth_plaintext_ok;
	sc->no_pipelining = cfg->no_pipelining;
	sc->no_chunking = cfg->no_chunking;
	sc->max_inflight = cfg->max_inflight;
	sc->timeouts = cfg->timeouts;
	if (!sc->timeouts.ms[SMTP_PHASE_GREETING])
		smtp_session_timeouts_default(&sc->timeouts);
	sc->cb.rcpt_done = on_rcpt_done;
	sc->cb.msg_done = on_msg_done;
	sc->cb.trace = p->cb.trace ? on_trace : NULL;

	d->next = p->dests;
	p->dests = d;
	return d;
fail:
	free(d->q);
	free(d);
	return NULL;
}

void pool_dest_set_caps(struct pool_dest *d, unsigned max_conns, unsigned max_msgs_per_conn)
{
	d->cfg.max_conns = max_conns;
	d->cfg.max_msgs_per_conn = max_msgs_per_conn;
	dispatch(d);
}

int pool_submit(struct pool_dest *d, struct smtp_msg *m)
{
	if (d->q_len == d->q_cap)
		return -EAGAIN;
	d->q[(d->q_head + d->q_len) % d->q_cap] = m;
	d->q_len++;
	d->p->outstanding++;
	dispatch(d);
	return 0;
}

size_t pool_dest_queued(const struct pool_dest *d) { return d->q_len; }
unsigned pool_dest_sessions(const struct pool_dest *d) { return d->nconns; }

void pool_dest_get_stats(const struct pool_dest *d, struct pool_dest_stats *out)
{
	*out = d->stats;
}

int pool_dest_is_down(const struct pool_dest *d)
{
	return d->down_until > loop_now_ms(d->p->loop);
}

void pool_shutdown(struct pool *p)
{
	p->shutting_down = 1;
	for (struct pool_dest *d = p->dests; d; d = d->next) {
		for (struct pool_conn *pc = d->conns, *next; pc; pc = next) {
			next = pc->next;
			hungry_remove(pc);
			if (!pc->quitting) {
				pc->quitting = 1;
				conn_quit(pc->c);
			}
		}
	}
}

int pool_idle(const struct pool *p)
{
	for (const struct pool_dest *d = p->dests; d; d = d->next)
		if (d->nconns || d->q_len)
			return 0;
	return 1;
}
