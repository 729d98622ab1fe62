/* sink_server: worker threads, listeners and connections of volley sink.
 * See sink_server.h.
 *
 * A connection is driven by one function, drive(), run after every event
 * (a receive, a send, a timer): it moves ciphertext through TLS, hands the
 * plaintext to the session (which may stop early when its reply buffer is
 * full), arms the reply delay, sends what the session queued, starts TLS
 * after a STARTTLS reply has left, closes after QUIT or a 421, and posts the
 * next receive only when everything received has been consumed. So there is
 * at most one receive and one send in flight per connection, and the
 * buffers they use never move under them.
 *
 * A closed connection waits for its operations to complete, then goes on
 * the worker's dead list; the worker frees it after the loop iteration, so
 * a callback never frees the object it runs in. */
#include "bench/sink_server.h"
#include "bench/measure.h"
#include "bench/sink_maildir.h"
#include "engine/loop.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SINK_RING_ENTRIES 4096
/* How long a busy worker waits to gather completions (loop_set_batching):
 * with many sessions in lock step (smtp-source), one wakeup then serves
 * several of them; an idle or single session waits no longer than its own
 * round trip. About one round of a lock-step client over 50 sessions here:
 * 200 us woke the sink about 9 times a round (some 9 completions a wakeup),
 * 1 ms once or twice (some 60), which cut its CPU per message by a third to
 * a half (more on a loaded machine), and the client's time with it. */
#define SINK_BATCH_US 1000
#define SINK_ACCEPTS      8          /* accepts in flight per listener */
#define SINK_RBUF_START   1024
#define SINK_RBUF_MAX     (64 * 1024)
#define SINK_CBUF         (16 * 1024 + 512)   /* one TLS record of ciphertext */
#define SINK_TLS_TIMEOUT_MS 30000    /* a handshake that stalls */
#define SINK_ACCEPT_RETRY_MS 100     /* out of descriptors: try again later */
#define SINK_DRAIN_MS     3000       /* at shutdown: time for the 421s to leave */
#define SINK_TICK_MS      200        /* how often a worker looks at its stop flag */

struct sink_worker;

struct sink_conn {
	struct sink_worker *w;
	struct sink_conn *prev, *next;   /* the worker's live list, or its dead list */
	int fd;
	struct sink_session *s;
	struct sink_hooks hooks;
	struct loop_op op_recv, op_send;
	struct loop_timer t_idle, t_delay;
	uint64_t last_active_ms;

	char *rbuf;                      /* plaintext received, unconsumed in [roff, rlen) */
	size_t rcap, roff, rlen;
	int rbuf_filled;                 /* the last read filled rbuf: grow it */

	struct tls_conn *tls;
	int tls_up;
	char *cbuf;                      /* ciphertext received, not yet fed in [coff, clen) */
	size_t coff, clen;

	int send_plain;                  /* the send in flight is session memory */
	int delaying;
	int closing;
	int dead;
	struct sink_mail *mail;
	char client[INET6_ADDRSTRLEN];
};

struct sink_acceptor {
	struct loop_op op;
	struct loop_timer retry;
	struct sink_worker *w;
};

struct sink_worker {
	struct sink_server *srv;
	unsigned id;
	pthread_t thread;
	int started;
	int listen_fd;
	struct loop *loop;
	struct sink_stats stats;
	struct sink_acceptor acc[SINK_ACCEPTS];
	struct sink_conn *live, *dead;
	unsigned nlive;
	uint64_t rng;
	uint64_t seq;
	int ready;                       /* 1 up, -1 failed (atomic) */
	char err[128];
};

struct sink_server {
	struct sink_server_opts o;
	int port;
	int need_client;
	int stop;                        /* atomic */
	uint64_t rate_next_us;           /* --max-rate: the next free slot (atomic) */
	uint64_t mail_seq;               /* unique numbers for maildir files (atomic) */
	struct sink_worker *w;
};

#define CONN_OF(ptr, member) ((struct sink_conn *)((char *)(ptr) - offsetof(struct sink_conn, member)))

static void drive(struct sink_conn *c);

/* ---- lists and the end of a connection -------------------------------------- */

static void list_remove(struct sink_conn **head, struct sink_conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		*head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
}

static void list_push(struct sink_conn **head, struct sink_conn *c)
{
	c->prev = NULL;
	c->next = *head;
	if (*head)
		(*head)->prev = c;
	*head = c;
}

/* Once closed and with nothing in flight: on to the dead list. */
static void maybe_finish(struct sink_conn *c)
{
	if (!c->closing || c->dead || c->op_recv.inflight || c->op_send.inflight)
		return;
	c->dead = 1;
	list_remove(&c->w->live, c);
	c->w->nlive--;
	list_push(&c->w->dead, c);
}

static void conn_free(struct sink_conn *c)
{
	/* The session first: it may end a body, which ends a maildir file. */
	sink_session_free(c->s);
	if (c->mail)
		sink_mail_end(c->mail, 0);
	if (c->fd >= 0)
		close(c->fd);
	tls_conn_free(c->tls);
	free(c->cbuf);
	free(c->rbuf);
	free(c);
}

static void close_now(struct sink_conn *c)
{
	if (c->closing)
		return;
	c->closing = 1;
	sink_stat_add(&c->w->stats.sessions_closed, 1);
	loop_timer_stop(c->w->loop, &c->t_idle);
	loop_timer_stop(c->w->loop, &c->t_delay);
	shutdown(c->fd, SHUT_RDWR);
	if (c->op_recv.inflight)
		loop_cancel(c->w->loop, &c->op_recv);
	maybe_finish(c);
}

/* ---- hooks: rules, maildir, --max-rate ----------------------------------------- */

static void hook_decide(void *user, const struct sink_view *view, struct sink_verdict *v)
{
	struct sink_conn *c = user;
	struct sink_server *srv = c->w->srv;
	if (!srv->o.rules)
		return;
	struct sink_match m = { c->client, loop_now_ms(c->w->loop), &c->w->rng };
	sink_rules_decide(srv->o.rules, &m, view, v);
}

static void hook_body_begin(void *user, const struct sink_view *view)
{
	struct sink_conn *c = user;
	struct sink_server *srv = c->w->srv;
	if (!srv->o.maildir)
		return;
	uint64_t n = __atomic_add_fetch(&srv->mail_seq, 1, __ATOMIC_RELAXED);
	c->mail = sink_mail_begin(srv->o.maildir, n, view, c->client);
	if (!c->mail)
		fprintf(stderr, "volley sink: %s/tmp: %s\n", srv->o.maildir, strerror(errno));
}

static void hook_body_data(void *user, const char *p, size_t n)
{
	struct sink_conn *c = user;
	if (c->mail)
		sink_mail_write(c->mail, p, n);
}

/* The next slot of a sink-wide --max-rate schedule; returns the wait in ms. */
static uint32_t rate_delay(struct sink_server *srv)
{
	uint64_t now = measure_mono_us();
	uint64_t step = 1000000u / srv->o.max_rate;
	uint64_t next = __atomic_load_n(&srv->rate_next_us, __ATOMIC_RELAXED), t;
	do {
		t = next > now ? next : now;
	} while (!__atomic_compare_exchange_n(&srv->rate_next_us, &next, t + step, 0,
					      __ATOMIC_RELAXED, __ATOMIC_RELAXED));
	uint64_t ms = (t - now + 999) / 1000;
	return ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms;
}

static int hook_body_end(void *user, int accepted, uint32_t *delay_ms)
{
	struct sink_conn *c = user;
	struct sink_server *srv = c->w->srv;
	int ret = 0;
	if (c->mail) {
		ret = sink_mail_end(c->mail, accepted);
		c->mail = NULL;
	} else if (srv->o.maildir && accepted) {
		ret = -1;   /* the file could not be made at the start */
	}
	if (ret < 0 && accepted)
		fprintf(stderr, "volley sink: could not keep a message in %s\n", srv->o.maildir);
	if (accepted && ret == 0 && srv->o.max_rate)
		*delay_ms = rate_delay(srv);
	return ret;
}

/* ---- sending ----------------------------------------------------------------- */

static void on_send(struct loop_op *op, int res);

static void flush(struct sink_conn *c)
{
	if (c->closing || c->op_send.inflight)
		return;
	int r;
	if (!c->tls) {
		size_t len;
		const char *p = sink_session_output(c->s, &len);
		if (!len)
			return;
		c->send_plain = 1;
		r = loop_send(c->w->loop, &c->op_send, c->fd, p, len);
		if (r < 0) {
			sink_session_output_consumed(c->s, 0);
			c->send_plain = 0;
			close_now(c);
		}
		return;
	}
	if (c->tls_up) {
		size_t len, taken = 0;
		const char *p = sink_session_output(c->s, &len);
		while (taken < len) {
			ssize_t k = tls_conn_write(c->tls, p + taken, len - taken);
			if (k == TLS_AGAIN)
				break;
			if (k < 0) {
				sink_session_output_consumed(c->s, taken);
				close_now(c);
				return;
			}
			taken += (size_t)k;
		}
		sink_session_output_consumed(c->s, taken);
	}
	size_t clen;
	const void *cp = tls_conn_cipher_out(c->tls, &clen);
	if (!clen)
		return;
	c->send_plain = 0;
	r = loop_send(c->w->loop, &c->op_send, c->fd, cp, clen);
	if (r < 0)
		close_now(c);
}

static void on_send(struct loop_op *op, int res)
{
	struct sink_conn *c = CONN_OF(op, op_send);
	if (c->send_plain)
		sink_session_output_consumed(c->s, res > 0 ? (size_t)res : 0);
	else if (res > 0 && c->tls)
		tls_conn_cipher_consume(c->tls, (size_t)res);
	c->send_plain = 0;
	if (res < 0)
		close_now(c);
	else
		drive(c);
	maybe_finish(c);
}

/* Whether every byte queued has left (session replies and ciphertext). */
static int all_sent(struct sink_conn *c)
{
	if (c->op_send.inflight || sink_session_output_pending(c->s))
		return 0;
	if (c->tls)
		return tls_conn_cipher_pending(c->tls) == 0;
	return 1;
}

/* ---- receiving ----------------------------------------------------------------- */

static void on_recv(struct loop_op *op, int res);

static void post_recv(struct sink_conn *c)
{
	if (c->closing || c->op_recv.inflight || c->delaying)
		return;
	enum sink_session_state st = sink_session_state(c->s);
	if (st == SINK_SESSION_CLOSING || st == SINK_SESSION_DROPPED)
		return;
	if (st == SINK_SESSION_TLS && !c->tls)
		return;   /* the 220 has not left yet; the ClientHello follows it */
	void *buf;
	size_t cap;
	if (c->tls) {
		if (c->clen)
			return;
		buf = c->cbuf;
		cap = SINK_CBUF;
	} else {
		if (c->rlen)
			return;
		if (c->rbuf_filled && c->rcap < SINK_RBUF_MAX) {
			/* Reads fill the buffer (a body streams in): grow it.
			 * It is empty, so nothing moves. */
			char *p = realloc(c->rbuf, c->rcap * 2);
			if (p) {
				c->rbuf = p;
				c->rcap *= 2;
			}
		}
		c->rbuf_filled = 0;
		buf = c->rbuf;
		cap = c->rcap;
	}
	if (loop_recv(c->w->loop, &c->op_recv, c->fd, buf, cap) < 0)
		close_now(c);
}

static void on_recv(struct loop_op *op, int res)
{
	struct sink_conn *c = CONN_OF(op, op_recv);
	if (c->closing) {
		maybe_finish(c);
		return;
	}
	if (res <= 0) {
		/* The client closed or reset: nothing to say to it. */
		close_now(c);
		return;
	}
	sink_stat_add(&c->w->stats.bytes_in, (uint64_t)res);
	c->last_active_ms = loop_now_ms(c->w->loop);
	if (c->tls) {
		c->coff = 0;
		c->clen = (size_t)res;
	} else {
		c->rlen = (size_t)res;
		c->rbuf_filled = (size_t)res == c->rcap;
	}
	drive(c);
	maybe_finish(c);
}

/* ---- TLS ------------------------------------------------------------------------ */

static int tls_begin(struct sink_conn *c)
{
	c->tls = tls_conn_new(c->w->srv->o.tls, NULL, NULL);
	c->cbuf = malloc(SINK_CBUF);
	if (!c->tls || !c->cbuf)
		return -1;
	c->coff = c->clen = 0;
	return 0;
}

/* Moves ciphertext into TLS and plaintext out of it into rbuf. Returns 1
 * when something moved, 0 when nothing did, -1 when the connection closed. */
static int tls_pull(struct sink_conn *c)
{
	int moved = 0;
	while (c->coff < c->clen) {
		size_t k = tls_conn_feed(c->tls, c->cbuf + c->coff, c->clen - c->coff);
		if (!k)
			break;
		c->coff += k;
		moved = 1;
	}
	if (c->coff == c->clen)
		c->coff = c->clen = 0;
	if (!c->tls_up) {
		int r = tls_conn_handshake(c->tls);
		if (r == TLS_AGAIN)
			return moved;
		if (r != 1) {
			sink_stat_add(&c->w->stats.tls_failed, 1);
			close_now(c);
			return -1;
		}
		c->tls_up = 1;
		moved = 1;
		sink_stat_add(&c->w->stats.tls, 1);
		if (sink_session_state(c->s) == SINK_SESSION_TLS)
			sink_session_tls_done(c->s);
	}
	if (c->roff && c->roff < c->rlen) {
		memmove(c->rbuf, c->rbuf + c->roff, c->rlen - c->roff);
		c->rlen -= c->roff;
		c->roff = 0;
	}
	while (c->rlen < c->rcap) {
		ssize_t n = tls_conn_read(c->tls, c->rbuf + c->rlen, c->rcap - c->rlen);
		if (n > 0) {
			c->rlen += (size_t)n;
			moved = 1;
			continue;
		}
		if (n == TLS_AGAIN)
			break;
		close_now(c);   /* close_notify or a TLS error */
		return -1;
	}
	return moved;
}

/* The limit on silence now: shorter while a TLS handshake is under way. */
static uint32_t idle_limit(const struct sink_conn *c)
{
	uint32_t limit = c->w->srv->o.idle_timeout_ms;
	if (c->tls && !c->tls_up && limit > SINK_TLS_TIMEOUT_MS)
		limit = SINK_TLS_TIMEOUT_MS;
	return limit;
}

/* ---- the driver ----------------------------------------------------------------- */

static void drive(struct sink_conn *c)
{
	if (c->closing)
		return;
	for (int round = 0; round < 64; round++) {
		int moved = 0;
		if (c->tls) {
			int r = tls_pull(c);
			if (r < 0)
				return;
			moved = r;
		}
		if (!c->delaying && c->roff < c->rlen && sink_session_state(c->s) == SINK_SESSION_OPEN) {
			size_t k = sink_session_input(c->s, c->rbuf + c->roff, c->rlen - c->roff);
			c->roff += k;
			if (k)
				moved = 1;
			if (sink_session_state(c->s) != SINK_SESSION_OPEN)
				c->roff = c->rlen;   /* after STARTTLS, QUIT, a drop: not read */
		}
		if (c->roff == c->rlen)
			c->roff = c->rlen = 0;
		if (!moved)
			break;
	}
	enum sink_session_state st = sink_session_state(c->s);
	if (!c->delaying) {
		uint32_t d = sink_session_take_delay(c->s);
		if (d && sink_session_output_pending(c->s)) {
			c->delaying = 1;
			loop_timer_start(c->w->loop, &c->t_delay, d);
		}
	}
	if (!c->delaying)
		flush(c);
	if (c->closing)
		return;
	if (st == SINK_SESSION_TLS && !c->tls && all_sent(c)) {
		if (tls_begin(c) < 0) {
			close_now(c);
			return;
		}
		loop_timer_start(c->w->loop, &c->t_idle, idle_limit(c));
	}
	/* A drop is silent about the command that caused it; replies queued
	 * before it (to earlier pipelined commands) still leave. */
	if ((st == SINK_SESSION_CLOSING || st == SINK_SESSION_DROPPED) && !c->delaying && all_sent(c)) {
		close_now(c);
		return;
	}
	post_recv(c);
}

/* ---- timers ------------------------------------------------------------------------ */

static void on_delay(struct loop_timer *t)
{
	struct sink_conn *c = CONN_OF(t, t_delay);
	c->delaying = 0;
	drive(c);
	maybe_finish(c);
}

static void on_idle(struct loop_timer *t)
{
	struct sink_conn *c = CONN_OF(t, t_idle);
	if (c->closing)
		return;
	uint64_t now = loop_now_ms(c->w->loop);
	uint32_t limit = idle_limit(c);
	uint64_t idle = now - c->last_active_ms;
	if (idle < limit) {
		/* Re-armed lazily here rather than on every read. */
		loop_timer_start(c->w->loop, &c->t_idle, limit - idle);
		return;
	}
	if (c->tls && !c->tls_up) {
		close_now(c);
		return;
	}
	if (c->delaying) {
		loop_timer_stop(c->w->loop, &c->t_delay);
		c->delaying = 0;
	}
	sink_session_timeout(c->s);
	drive(c);
	maybe_finish(c);
}

/* ---- accepting -------------------------------------------------------------------------- */

static void conn_open(struct sink_worker *w, int fd)
{
	struct sink_server *srv = w->srv;
	struct sink_conn *c = calloc(1, sizeof *c);
	if (!c || !(c->rbuf = malloc(SINK_RBUF_START))) {
		free(c);
		close(fd);
		return;
	}
	c->w = w;
	c->fd = fd;
	c->rcap = SINK_RBUF_START;
	c->op_recv.cb = on_recv;
	c->op_send.cb = on_send;
	c->t_idle.cb = on_idle;
	c->t_delay.cb = on_delay;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (srv->need_client) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;
		if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
			if (ss.ss_family == AF_INET)
				inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, c->client, sizeof c->client);
			else if (ss.ss_family == AF_INET6)
				inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, c->client, sizeof c->client);
		}
	}
	c->hooks.decide = srv->o.rules ? hook_decide : NULL;
	if (srv->o.maildir) {
		c->hooks.body_begin = hook_body_begin;
		c->hooks.body_data = hook_body_data;
	}
	if (srv->o.maildir || srv->o.max_rate)
		c->hooks.body_end = hook_body_end;
	c->hooks.user = c;
	uint64_t nonce = ((uint64_t)w->id << 48) ^ (++w->seq) ^ (w->rng << 20);
	c->s = sink_session_new(srv->o.cfg, &c->hooks, &w->stats, srv->o.implicit_tls, nonce);
	if (!c->s || (srv->o.implicit_tls && tls_begin(c) < 0)) {
		conn_free(c);
		return;
	}
	list_push(&w->live, c);
	w->nlive++;
	sink_stat_add(&w->stats.sessions, 1);
	c->last_active_ms = loop_now_ms(w->loop);
	loop_timer_start(w->loop, &c->t_idle, idle_limit(c));
	sink_session_start(c->s);
	drive(c);
	maybe_finish(c);
}

static void post_accept(struct sink_acceptor *a)
{
	if (__atomic_load_n(&a->w->srv->stop, __ATOMIC_RELAXED))
		return;
	if (loop_accept(a->w->loop, &a->op, a->w->listen_fd) < 0)
		loop_timer_start(a->w->loop, &a->retry, SINK_ACCEPT_RETRY_MS);
}

static void on_accept(struct loop_op *op, int res)
{
	struct sink_acceptor *a = (struct sink_acceptor *)op;
	struct sink_worker *w = a->w;
	if (res >= 0) {
		if (__atomic_load_n(&w->srv->stop, __ATOMIC_RELAXED))
			close(res);
		else
			conn_open(w, res);
		post_accept(a);
		return;
	}
	if (res == -ECANCELED || res == -EINVAL || res == -EBADF)
		return;   /* the listener is going away */
	/* Out of descriptors or memory: wait rather than spin. */
	loop_timer_start(w->loop, &a->retry, SINK_ACCEPT_RETRY_MS);
}

static void on_accept_retry(struct loop_timer *t)
{
	struct sink_acceptor *a = (struct sink_acceptor *)((char *)t - offsetof(struct sink_acceptor, retry));
	post_accept(a);
}

/* ---- the worker thread ---------------------------------------------------------------------- */

static void free_dead(struct sink_worker *w)
{
	while (w->dead) {
		struct sink_conn *c = w->dead;
		list_remove(&w->dead, c);
		conn_free(c);
	}
}

static void worker_shutdown(struct sink_worker *w)
{
	for (int i = 0; i < SINK_ACCEPTS; i++) {
		loop_timer_stop(w->loop, &w->acc[i].retry);
		if (w->acc[i].op.inflight)
			loop_cancel(w->loop, &w->acc[i].op);
	}
	shutdown(w->listen_fd, SHUT_RDWR);
	/* Every session says 421, then closes once it is sent. */
	for (struct sink_conn *c = w->live, *next; c; c = next) {
		next = c->next;
		if (c->closing)
			continue;
		if (c->delaying) {
			loop_timer_stop(w->loop, &c->t_delay);
			c->delaying = 0;
			sink_session_take_delay(c->s);
		}
		if (c->tls && !c->tls_up) {
			close_now(c);
			continue;
		}
		sink_session_shutdown(c->s);
		drive(c);
		maybe_finish(c);
	}
	uint64_t start = loop_now_ms(w->loop);
	while (w->live && loop_now_ms(w->loop) - start < SINK_DRAIN_MS) {
		loop_run_once(w->loop, 50);
		free_dead(w);
	}
	for (struct sink_conn *c = w->live, *next; c; c = next) {
		next = c->next;
		close_now(c);
	}
	start = loop_now_ms(w->loop);
	while (loop_inflight(w->loop) && loop_now_ms(w->loop) - start < 1000) {
		loop_run_once(w->loop, 50);
		free_dead(w);
	}
	free_dead(w);
}

static void *worker_main(void *arg)
{
	struct sink_worker *w = arg;
	/* SINGLE_ISSUER: the ring belongs to the thread that makes it. */
	w->loop = loop_new(SINK_RING_ENTRIES);
	if (!w->loop) {
		snprintf(w->err, sizeof w->err, "io_uring: %s", strerror(errno));
		__atomic_store_n(&w->ready, -1, __ATOMIC_RELEASE);
		return NULL;
	}
	loop_set_batching(w->loop, SINK_BATCH_US);
	for (int i = 0; i < SINK_ACCEPTS; i++) {
		w->acc[i].w = w;
		w->acc[i].op.cb = on_accept;
		w->acc[i].retry.cb = on_accept_retry;
		post_accept(&w->acc[i]);
	}
	__atomic_store_n(&w->ready, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&w->srv->stop, __ATOMIC_RELAXED)) {
		int r = loop_run_once(w->loop, SINK_TICK_MS);
		free_dead(w);
		if (r < 0) {
			fprintf(stderr, "volley sink: thread %u: io_uring: %s\n", w->id, strerror(-r));
			break;
		}
	}
	worker_shutdown(w);
	loop_free(w->loop);
	w->loop = NULL;
	/* wolfSSL's ECC cache is per thread: only this thread can free it. */
	tls_thread_done();
	return NULL;
}

/* ---- the server ---------------------------------------------------------------------------- */

static int listen_on(const struct sockaddr_storage *addr, socklen_t len, int port, char *err, size_t errlen)
{
	struct sockaddr_storage a = *addr;
	if (a.ss_family == AF_INET)
		((struct sockaddr_in *)&a)->sin_port = htons((uint16_t)port);
	else
		((struct sockaddr_in6 *)&a)->sin6_port = htons((uint16_t)port);
	int fd = socket(a.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
	    bind(fd, (struct sockaddr *)&a, len) != 0 || listen(fd, 4096) != 0) {
		snprintf(err, errlen, "cannot listen on port %d: %s", port, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

struct sink_server *sink_server_new(const struct sink_server_opts *o, char *err, size_t errlen)
{
	if (o->threads == 0 || o->threads > 256) {
		snprintf(err, errlen, "--threads must be 1 to 256");
		return NULL;
	}
	struct sink_server *srv = calloc(1, sizeof *srv);
	if (!srv || !(srv->w = calloc(o->threads, sizeof *srv->w))) {
		free(srv);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	srv->o = *o;
	srv->need_client = sink_rules_need_client(o->rules) || o->maildir;
	int port = o->addr.ss_family == AF_INET ? ntohs(((const struct sockaddr_in *)&o->addr)->sin_port)
						: ntohs(((const struct sockaddr_in6 *)&o->addr)->sin6_port);
	for (unsigned i = 0; i < o->threads; i++) {
		struct sink_worker *w = &srv->w[i];
		w->srv = srv;
		w->id = i;
		w->rng = (o->seed ? o->seed : 0x9e3779b97f4a7c15ull) + 0x9e3779b97f4a7c15ull * (i + 1);
		if (!w->rng)
			w->rng = 1;
		w->listen_fd = listen_on(&o->addr, o->addrlen, port, err, errlen);
		if (w->listen_fd < 0) {
			sink_server_free(srv);
			return NULL;
		}
		if (port == 0) {
			/* The kernel picked one; the other threads join it. */
			struct sockaddr_storage got;
			socklen_t gl = sizeof got;
			getsockname(w->listen_fd, (struct sockaddr *)&got, &gl);
			port = got.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&got)->sin_port)
							: ntohs(((struct sockaddr_in6 *)&got)->sin6_port);
		}
	}
	srv->port = port;
	return srv;
}

int sink_server_port(const struct sink_server *srv)
{
	return srv->port;
}

int sink_server_start(struct sink_server *srv, char *err, size_t errlen)
{
	for (unsigned i = 0; i < srv->o.threads; i++) {
		struct sink_worker *w = &srv->w[i];
		int r = pthread_create(&w->thread, NULL, worker_main, w);
		if (r != 0) {
			snprintf(err, errlen, "cannot start a thread: %s", strerror(r));
			return -1;
		}
		w->started = 1;
	}
	for (unsigned i = 0; i < srv->o.threads; i++) {
		struct sink_worker *w = &srv->w[i];
		int ready;
		while ((ready = __atomic_load_n(&w->ready, __ATOMIC_ACQUIRE)) == 0) {
			struct timespec ts = { 0, 1000000 };
			nanosleep(&ts, NULL);
		}
		if (ready < 0) {
			snprintf(err, errlen, "thread %u: %s", i, w->err);
			return -1;
		}
	}
	return 0;
}

void sink_server_stats(const struct sink_server *srv, struct sink_stats *sum)
{
	for (unsigned i = 0; i < srv->o.threads; i++)
		sink_stats_sum(sum, &srv->w[i].stats);
}

void sink_server_stop(struct sink_server *srv)
{
	__atomic_store_n(&srv->stop, 1, __ATOMIC_RELAXED);
	for (unsigned i = 0; i < srv->o.threads; i++) {
		if (srv->w[i].started) {
			pthread_join(srv->w[i].thread, NULL);
			srv->w[i].started = 0;
		}
	}
}

void sink_server_free(struct sink_server *srv)
{
	if (!srv)
		return;
	sink_server_stop(srv);
	for (unsigned i = 0; i < srv->o.threads; i++)
		if (srv->w[i].listen_fd > 0)
			close(srv->w[i].listen_fd);
	free(srv->w);
	free(srv);
}
