/* conn: one SMTP session on one socket over io_uring. See conn.h.
 *
 * Entry points (loop callbacks and the public functions) bracket their work
 * with enter/leave; the conn is freed only when the outermost one leaves and
 * no operation is in flight, so neither the kernel nor a caller up the stack
 * is ever left holding freed memory. */
#include "pool/conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CONN_TLS_RECV 17408       /* room asked for while busy: a full record */
#define CONN_IOV 16
#define CONN_TLS_GATHER 16384     /* one full TLS record of plaintext */

enum timer_kind { TIMER_NONE, TIMER_CONNECT, TIMER_REPLY, TIMER_TLS, TIMER_IDLE };

struct conn {
	struct loop *loop;
	struct conn_config cfg;
	struct smtp_session *s;
	int fd;
	struct loop_op op_connect, op_recv, op_send;
	struct loop_timer timer;
	enum timer_kind timer_kind;
	struct loop_deferred pump_later;   /* new messages: pumped once per loop iteration */

	struct tls_conn *tls;
	int tls_up;               /* handshake complete */
	struct msghdr mh;
	struct iovec iov[CONN_IOV];
	int send_plain;           /* the send in flight holds session memory */

	int connected;
	int closing;              /* shut down; waiting for ops to finish */
	int done;                 /* CONN_EVENT_DONE reported */
	int depth;
	int notifying;            /* inside on_event(READY) */
	int receiving;            /* inside on_recv: its buffer is still being read */
	int tls_failed;
	char err[256];
};

static void pump(struct conn *c);
static void on_pump_later(struct loop_deferred *d);

static void enter(struct conn *c) { c->depth++; }

static void conn_free(struct conn *c)
{
	loop_timer_stop(c->loop, &c->timer);
	loop_defer_cancel(c->loop, &c->pump_later);
	if (c->fd >= 0)
		close(c->fd);
	smtp_session_free(c->s);
	tls_conn_free(c->tls);
	free(c);
}

static int ops_idle(const struct conn *c)
{
	return !c->op_connect.inflight && !c->op_recv.inflight && !c->op_send.inflight;
}

/* Once closed and quiet: report what is left, then tell the owner. */
static void finish_if_quiet(struct conn *c)
{
	if (!c->closing || c->done || !ops_idle(c))
		return;
	c->done = 1;
	if (c->tls && c->tls_up && c->cfg.tls_resume) {
		struct tls_saved *saved = tls_conn_save(c->tls);
		if (saved) {
			tls_saved_free(*c->cfg.tls_resume);
			*c->cfg.tls_resume = saved;
		}
	}
	smtp_session_abort(c->s, 421, "4.4.2", c->err[0] ? c->err : "connection closed");
	if (c->cfg.on_event)
		c->cfg.on_event(c->cfg.user, c, CONN_EVENT_DONE);
}

static void leave(struct conn *c)
{
	finish_if_quiet(c);
	if (--c->depth == 0 && c->done)
		conn_free(c);
}

static void close_now(struct conn *c)
{
	if (c->closing)
		return;
	c->closing = 1;
	loop_timer_stop(c->loop, &c->timer);
	if (c->fd >= 0)
		shutdown(c->fd, SHUT_RDWR);
	if (c->op_connect.inflight)
		loop_cancel(c->loop, &c->op_connect);
	if (c->op_recv.inflight)
		loop_cancel(c->loop, &c->op_recv);
}

static void fail(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct conn *c, const char *fmt, ...)
{
	if (!c->err[0]) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(c->err, sizeof c->err, fmt, ap);
		va_end(ap);
	}
	close_now(c);
}

/* ---- timers ------------------------------------------------------------ */

static void on_timer(struct loop_timer *t)
{
	struct conn *c = (struct conn *)((char *)t - offsetof(struct conn, timer));
	enter(c);
	switch (c->timer_kind) {
	case TIMER_CONNECT:
		fail(c, "connect timed out");
		break;
	case TIMER_TLS:
		c->tls_failed = 1;
		fail(c, "TLS handshake timed out");
		break;
	case TIMER_REPLY:
		fail(c, "timed out waiting for the reply to %s",
		     smtp_phase_name(smtp_session_waiting_phase(c->s)));
		break;
	case TIMER_IDLE:
		smtp_session_quit(c->s);
		pump(c);
		break;
	case TIMER_NONE:
		break;
	}
	leave(c);
}

static void arm(struct conn *c, enum timer_kind kind, uint32_t ms)
{
	if (kind == TIMER_NONE || ms == 0) {
		loop_timer_stop(c->loop, &c->timer);
		c->timer_kind = TIMER_NONE;
		return;
	}
	c->timer_kind = kind;
	loop_timer_start(c->loop, &c->timer, ms);
}

static void rearm(struct conn *c)
{
	if (c->closing)
		return;
	if (!c->connected) {
		arm(c, TIMER_CONNECT, c->cfg.connect_timeout_ms);
		return;
	}
	if (c->tls && !c->tls_up) {
		arm(c, TIMER_TLS, c->cfg.session.timeouts.ms[conn_tls_phase(c)]);
		return;
	}
	uint32_t ms = smtp_session_timeout(c->s);
	if (ms) {
		arm(c, TIMER_REPLY, ms);
		return;
	}
	if (smtp_session_state(c->s) == SMTP_SESSION_READY && smtp_session_inflight(c->s) == 0 &&
	    smtp_session_output_pending(c->s) == 0) {
		arm(c, TIMER_IDLE, c->cfg.idle_timeout_ms);
		/* Parked: give back what only traffic needs. */
		if (!c->op_send.inflight) {
			smtp_session_trim(c->s);
			if (c->tls) {
				/* Receives land in the TLS buffer, not the session's. */
				smtp_session_input_trim(c->s);
				tls_conn_trim(c->tls);
			}
		}
		return;
	}
	arm(c, TIMER_NONE, 0);
}

/* ---- sending ----------------------------------------------------------- */

static void on_send(struct loop_op *op, int res);

static void flush(struct conn *c)
{
	if (c->closing || c->op_send.inflight || !c->connected)
		return;
	if (!c->tls) {
		int n = smtp_session_output(c->s, c->iov, CONN_IOV);
		if (n <= 0)
			return;
		memset(&c->mh, 0, sizeof c->mh);
		c->mh.msg_iov = c->iov;
		c->mh.msg_iovlen = (size_t)n;
		c->send_plain = 1;
		int r = loop_sendmsg(c->loop, &c->op_send, c->fd, &c->mh);
		if (r < 0) {
			smtp_session_output_consumed(c->s, 0);
			c->send_plain = 0;
			fail(c, "send: %s", strerror(-r));
		}
		return;
	}
	if (c->tls_up) {
		/* Encrypt as much plaintext as the TLS output buffer takes,
		 * gathered first so that commands, body runs and stuffing dots
		 * share records instead of costing one record each. The gather
		 * buffer is the thread's: it is empty again when flush returns. */
		static __thread char gather[CONN_TLS_GATHER];
		for (;;) {
			int n = smtp_session_output(c->s, c->iov, CONN_IOV);
			if (n <= 0)
				break;
			const char *plain = gather;
			size_t used = 0;
			if (c->iov[0].iov_len >= sizeof gather) {
				/* A body run that fills a record by itself is
				 * encrypted where it lies. */
				plain = c->iov[0].iov_base;
				used = sizeof gather;
			} else {
				for (int i = 0; i < n && used < sizeof gather; i++) {
					size_t k = c->iov[i].iov_len;
					if (k > sizeof gather - used)
						k = sizeof gather - used;
					memcpy(gather + used, c->iov[i].iov_base, k);
					used += k;
				}
			}
			ssize_t w = tls_conn_write(c->tls, plain, used);
			if (w == TLS_AGAIN) {
				smtp_session_output_consumed(c->s, 0);
				break;
			}
			if (w < 0) {
				smtp_session_output_consumed(c->s, 0);
				fail(c, "TLS: %s", tls_conn_errstr(c->tls));
				return;
			}
			smtp_session_output_consumed(c->s, (size_t)w);
			if ((size_t)w < used)
				break;
		}
	}
	size_t len;
	const void *p = tls_conn_cipher_out(c->tls, &len);
	if (!len)
		return;
	c->send_plain = 0;
	int r = loop_send(c->loop, &c->op_send, c->fd, p, len);
	if (r < 0)
		fail(c, "send: %s", strerror(-r));
}

static void on_send(struct loop_op *op, int res)
{
	struct conn *c = (struct conn *)((char *)op - offsetof(struct conn, op_send));
	enter(c);
	if (c->send_plain)
		smtp_session_output_consumed(c->s, res > 0 ? (size_t)res : 0);
	else if (res > 0)
		tls_conn_cipher_consume(c->tls, (size_t)res);
	c->send_plain = 0;
	if (res < 0)
		fail(c, "send: %s", strerror(-res));
	else
		pump(c);
	leave(c);
}

/* ---- TLS --------------------------------------------------------------- */

static void handshake_step(struct conn *c);

static void start_tls(struct conn *c)
{
	if (!c->cfg.tls) {
		c->tls_failed = 1;
		fail(c, "TLS wanted and no TLS context configured");
		return;
	}
	const struct tls_saved *resume = c->cfg.tls_resume ? *c->cfg.tls_resume : NULL;
	c->tls = tls_conn_new(c->cfg.tls, c->cfg.tls_name, resume);
	if (!c->tls) {
		c->tls_failed = 1;
		fail(c, "TLS: out of memory");
		return;
	}
	handshake_step(c);
}

/* Moves decrypted bytes into the session. Returns -1 when the conn failed. */
static int read_plain(struct conn *c)
{
	for (;;) {
		size_t cap;
		char *p = smtp_session_input_space(c->s, &cap);
		if (cap == 0)
			return smtp_session_input_commit(c->s, 0);
		ssize_t n = tls_conn_read(c->tls, p, cap);
		if (n > 0) {
			smtp_session_input_commit(c->s, (size_t)n);
			continue;
		}
		if (n == TLS_AGAIN)
			return 0;
		if (n == TLS_CLOSED) {
			if (smtp_session_state(c->s) != SMTP_SESSION_CLOSED)
				fail(c, "connection closed by the server (TLS close_notify)");
			else
				close_now(c);
			return -1;
		}
		fail(c, "TLS: %s", tls_conn_errstr(c->tls));
		return -1;
	}
}

static void handshake_step(struct conn *c)
{
	int r = tls_conn_handshake(c->tls);
	if (r == 1) {
		c->tls_up = 1;
		if (smtp_session_state(c->s) == SMTP_SESSION_TLS)
			smtp_session_tls_done(c->s, 1, NULL);
		read_plain(c);   /* the server may have sent its greeting already */
		return;
	}
	if (r == TLS_AGAIN)
		return;
	c->tls_failed = 1;
	if (smtp_session_state(c->s) == SMTP_SESSION_TLS)
		smtp_session_tls_done(c->s, 0, tls_conn_errstr(c->tls));
	fail(c, "TLS handshake failed: %s", tls_conn_errstr(c->tls));
}

/* ---- receiving --------------------------------------------------------- */

static void on_recv(struct loop_op *op, int res);

static void post_recv(struct conn *c)
{
	/* Never while on_recv is still reading the last buffer: the kernel
	 * would write into it (or into a session buffer about to move). */
	if (c->closing || c->op_recv.inflight || !c->connected || c->receiving)
		return;
	void *buf;
	size_t cap;
	if (c->tls) {
		/* Straight into the TLS input buffer: room for a full record
		 * while busy, a little when idle (it shrinks once drained). */
		buf = tls_conn_recv_space(c->tls, c->tls_up && smtp_session_inflight(c->s) == 0
					  ? TLS_IN_IDLE : CONN_TLS_RECV, &cap);
		if (!buf) {
			fail(c, "TLS input overflow");
			return;
		}
	} else {
		buf = smtp_session_input_space(c->s, &cap);
		if (cap == 0) {
			smtp_session_input_commit(c->s, 0);
			fail(c, "reply too long");
			return;
		}
	}
	int r = loop_recv(c->loop, &c->op_recv, c->fd, buf, cap);
	if (r < 0)
		fail(c, "recv: %s", strerror(-r));
}

static void on_recv(struct loop_op *op, int res)
{
	struct conn *c = (struct conn *)((char *)op - offsetof(struct conn, op_recv));
	enter(c);
	c->receiving = 1;
	if (c->closing) {
		/* shut down: nothing more to read */
	} else if (res == 0) {
		if (smtp_session_state(c->s) == SMTP_SESSION_CLOSED)
			close_now(c);
		else
			fail(c, "connection closed by the server");
	} else if (res < 0) {
		fail(c, "recv: %s", strerror(-res));
	} else if (!c->tls) {
		smtp_session_input_commit(c->s, (size_t)res);
		pump(c);
	} else {
		tls_conn_recv_commit(c->tls, (size_t)res);
		if (!c->tls_up)
			handshake_step(c);
		if (c->tls_up && !c->closing)
			read_plain(c);
		pump(c);
	}
	c->receiving = 0;
	post_recv(c);
	leave(c);
}

/* ---- the state after every event ---------------------------------------- */

static void pump(struct conn *c)
{
	if (c->closing)
		return;
	enum smtp_session_state st = smtp_session_state(c->s);
	if (st == SMTP_SESSION_TLS && !c->tls) {
		start_tls(c);
		if (c->closing)
			return;
	}
	if (st == SMTP_SESSION_FAILED) {
		const struct smtp_reply *r;
		enum smtp_phase ph = smtp_session_failure(c->s, &r);
		if (!c->err[0])
			snprintf(c->err, sizeof c->err, "%s: %d %.200s", smtp_phase_name(ph), r->code, r->text);
		close_now(c);
		return;
	}
	if (st == SMTP_SESSION_CLOSED) {
		close_now(c);
		return;
	}
	if (st == SMTP_SESSION_READY && !c->notifying && c->cfg.on_event && smtp_session_can_send(c->s)) {
		c->notifying = 1;
		c->cfg.on_event(c->cfg.user, c, CONN_EVENT_READY);
		c->notifying = 0;
		if (c->closing)
			return;
	}
	flush(c);
	post_recv(c);
	rearm(c);
}

static void on_connect(struct loop_op *op, int res)
{
	struct conn *c = (struct conn *)((char *)op - offsetof(struct conn, op_connect));
	enter(c);
	if (c->closing) {
		/* cancelled */
	} else if (res < 0) {
		fail(c, "connect: %s", strerror(-res));
	} else {
		c->connected = 1;
		if (c->cfg.session.tls == SMTP_TLS_IMPLICIT)
			start_tls(c);
		flush(c);
		post_recv(c);
		rearm(c);
	}
	leave(c);
}

/* ---- the public side ---------------------------------------------------- */

struct conn *conn_open(struct loop *l, const struct conn_config *cfg)
{
	struct conn *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->loop = l;
	c->cfg = *cfg;
	c->fd = -1;
	c->op_connect.cb = on_connect;
	c->op_recv.cb = on_recv;
	c->op_send.cb = on_send;
	c->timer.cb = on_timer;
	c->pump_later.cb = on_pump_later;
	c->s = smtp_session_new(&c->cfg.session);
	if (!c->s)
		goto fail;
	int family = cfg->addr.ss_family;
	c->fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		goto fail;
	if (family == AF_INET || family == AF_INET6) {
		/* Pipelined writes are whole batches already; Nagle only delays them. */
		int one = 1;
		setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	}
	if (cfg->sourcelen && bind(c->fd, (const struct sockaddr *)&cfg->source, cfg->sourcelen) < 0)
		goto fail;
	int r = loop_connect(l, &c->op_connect, c->fd, (const struct sockaddr *)&c->cfg.addr, cfg->addrlen);
	if (r < 0) {
		errno = -r;
		goto fail;
	}
	rearm(c);
	return c;
fail:;
	int e = errno;
	if (c->fd >= 0)
		close(c->fd);
	smtp_session_free(c->s);
	free(c);
	errno = e;
	return NULL;
}

struct smtp_session *conn_session(struct conn *c) { return c->s; }

static void on_pump_later(struct loop_deferred *d)
{
	struct conn *c = (struct conn *)((char *)d - offsetof(struct conn, pump_later));
	enter(c);
	pump(c);
	leave(c);
}

int conn_send(struct conn *c, struct smtp_msg *m)
{
	if (c->closing)
		return -1;
	/* Written when the loop next waits, with every message queued by
	 * then: one send for a batch, not one per message. */
	int r = smtp_session_send(c->s, m);
	if (r == 0)
		loop_defer(c->loop, &c->pump_later);
	return r;
}

int conn_command(struct conn *c, const char *line, void *cookie)
{
	if (c->closing)
		return -1;
	enter(c);
	int r = smtp_session_command(c->s, line, cookie);
	if (r == 0) {
		flush(c);
		rearm(c);
	}
	leave(c);
	return r;
}

void conn_quit(struct conn *c)
{
	if (c->closing)
		return;
	enter(c);
	smtp_session_quit(c->s);
	if (!c->notifying)
		pump(c);
	leave(c);
}

void conn_abort(struct conn *c, const char *why)
{
	enter(c);
	fail(c, "%s", why);
	leave(c);
}

const char *conn_tls_version(const struct conn *c) { return c->tls && c->tls_up ? tls_conn_version(c->tls) : NULL; }
const char *conn_tls_cipher(const struct conn *c) { return c->tls && c->tls_up ? tls_conn_cipher(c->tls) : NULL; }
int conn_tls_resumed(const struct conn *c) { return c->tls && c->tls_up ? tls_conn_resumed(c->tls) : 0; }
int conn_tls_failed(const struct conn *c) { return c->tls_failed; }
enum smtp_phase conn_tls_phase(const struct conn *c)
{
	return c->cfg.session.tls == SMTP_TLS_IMPLICIT ? SMTP_PHASE_TLS : SMTP_PHASE_STARTTLS;
}
int conn_connected(const struct conn *c) { return c->connected; }
const char *conn_error(const struct conn *c) { return c->err[0] ? c->err : NULL; }
