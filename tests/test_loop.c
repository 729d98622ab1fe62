/* test_loop: the io_uring loop against the real kernel. Sockets are a unix
 * socketpair and TCP on 127.0.0.1 only. Timing is asserted only as order and
 * "never before the deadline". Exits 77 when io_uring is unavailable. */
#include "engine/loop.h"
#include "tests/testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define container_of(p, type, member) \
	((type *)(void *)((char *)(p) - offsetof(type, member)))

/* Upper bound on iterations for any wait below, so a bug fails, not hangs. */
#define MAX_ITER 10000

/* An op plus what its callback saw. */
struct rec_op {
	struct loop_op op;
	int calls;
	int res;
};

static void rec_cb(struct loop_op *op, int res)
{
	struct rec_op *r = container_of(op, struct rec_op, op);

	r->calls++;
	r->res = res;
}

static void rec_init(struct rec_op *r)
{
	memset(r, 0, sizeof(*r));
	r->op.cb = rec_cb;
}

/* Runs the loop until *count reaches want; returns iterations, or -1. */
static int run_until(struct loop *l, const int *count, int want)
{
	for (int i = 0; i < MAX_ITER; i++) {
		if (*count >= want)
			return i;
		int ret = loop_run_once(l, 200);
		if (ret < 0) {
			T_FAIL("loop_run_once: got %d", ret);
			return -1;
		}
	}
	T_FAIL("gave up waiting: count %d, want %d", *count, want);
	return -1;
}

static void make_pair(int sv[2])
{
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
		perror("socketpair");
		exit(1);
	}
}

/* ---- send then recv on a socketpair ---- */

static void test_send_recv(struct loop *l)
{
	int sv[2];
	struct rec_op s, r;
	char buf[64];
	static const char msg[] = "EHLO volley.example\r\n";

	make_pair(sv);
	rec_init(&s);
	rec_init(&r);
	memset(buf, 0, sizeof(buf));

	T_EQ_INT(loop_send(l, &s.op, sv[0], msg, sizeof(msg) - 1), 0);
	T_EQ_INT(s.op.inflight, 1);
	T_EQ_INT(loop_inflight(l), 1);
	/* Queued, not submitted: nothing can have completed yet. */
	T_EQ_INT(s.calls, 0);
	T_TRUE(run_until(l, &s.calls, 1) >= 0);
	T_EQ_INT(s.res, (int)sizeof(msg) - 1);
	T_EQ_INT(s.op.inflight, 0);

	T_EQ_INT(loop_recv(l, &r.op, sv[1], buf, sizeof(buf)), 0);
	T_TRUE(run_until(l, &r.calls, 1) >= 0);
	T_EQ_INT(r.calls, 1);
	T_EQ_MEM(buf, r.res > 0 ? (size_t)r.res : 0, msg, sizeof(msg) - 1);
	T_EQ_INT(loop_inflight(l), 0);

	/* A peer that has gone away: -EPIPE, and no SIGPIPE kills us. */
	close(sv[1]);
	rec_init(&s);
	T_EQ_INT(loop_send(l, &s.op, sv[0], msg, sizeof(msg) - 1), 0);
	T_TRUE(run_until(l, &s.calls, 1) >= 0);
	T_EQ_INT(s.res, -EPIPE);
	close(sv[0]);
}

/* ---- many round trips driven only by callbacks ---- */

#define ROUNDS 1000

struct pingpong {
	struct loop *l;
	int fd_a, fd_b;
	struct loop_op a_send, a_recv, b_send, b_recv;
	uint64_t a_out, a_in, b_buf;
	uint64_t round;
	int errors;
	int done;
};

static void a_send_cb(struct loop_op *op, int res);
static void a_recv_cb(struct loop_op *op, int res);
static void b_send_cb(struct loop_op *op, int res);
static void b_recv_cb(struct loop_op *op, int res);

static void a_ping(struct pingpong *p)
{
	p->a_out = p->round;
	if (loop_send(p->l, &p->a_send, p->fd_a, &p->a_out, sizeof(p->a_out)) != 0)
		p->errors++;
}

static void a_send_cb(struct loop_op *op, int res)
{
	struct pingpong *p = container_of(op, struct pingpong, a_send);

	if (res != (int)sizeof(p->a_out))
		p->errors++;
	if (loop_recv(p->l, &p->a_recv, p->fd_a, &p->a_in, sizeof(p->a_in)) != 0)
		p->errors++;
}

static void a_recv_cb(struct loop_op *op, int res)
{
	struct pingpong *p = container_of(op, struct pingpong, a_recv);

	/* B echoes the round number plus one. */
	if (res != (int)sizeof(p->a_in) || p->a_in != p->round + 1)
		p->errors++;
	p->round++;
	if (p->round == ROUNDS) {
		p->done = 1;
		return;
	}
	a_ping(p);
}

static void b_recv_cb(struct loop_op *op, int res)
{
	struct pingpong *p = container_of(op, struct pingpong, b_recv);

	if (res != (int)sizeof(p->b_buf)) {
		p->errors++;
		return;
	}
	p->b_buf++;
	if (loop_send(p->l, &p->b_send, p->fd_b, &p->b_buf, sizeof(p->b_buf)) != 0)
		p->errors++;
}

static void b_send_cb(struct loop_op *op, int res)
{
	struct pingpong *p = container_of(op, struct pingpong, b_send);

	if (res != (int)sizeof(p->b_buf))
		p->errors++;
	if (p->round + 1 >= ROUNDS)
		return; /* last echo sent; leave nothing in flight */
	/* Restarting the op that just completed is allowed from its sibling's
	 * callback; b_recv is no longer in flight. */
	if (loop_recv(p->l, &p->b_recv, p->fd_b, &p->b_buf, sizeof(p->b_buf)) != 0)
		p->errors++;
}

static void test_round_trips(struct loop *l)
{
	struct pingpong p;
	int sv[2];

	make_pair(sv);
	memset(&p, 0, sizeof(p));
	p.l = l;
	p.fd_a = sv[0];
	p.fd_b = sv[1];
	p.a_send.cb = a_send_cb;
	p.a_recv.cb = a_recv_cb;
	p.b_send.cb = b_send_cb;
	p.b_recv.cb = b_recv_cb;

	T_EQ_INT(loop_recv(l, &p.b_recv, p.fd_b, &p.b_buf, sizeof(p.b_buf)), 0);
	a_ping(&p);
	T_TRUE(run_until(l, &p.done, 1) >= 0);
	/* b_send's last completion may trail a_recv's by an iteration. */
	for (int i = 0; i < MAX_ITER && loop_inflight(l); i++)
		loop_run_once(l, 200);
	T_EQ_INT(p.round, ROUNDS);
	T_EQ_INT(p.errors, 0);
	T_EQ_INT(loop_inflight(l), 0);
	close(sv[0]);
	close(sv[1]);
}

/* ---- a callback restarting its own op ---- */

struct self_recv {
	struct loop_op op;
	struct loop *l;
	int fd;
	char buf[1];
	char got[8];
	int n;
	int errors;
};

static void self_recv_cb(struct loop_op *op, int res)
{
	struct self_recv *s = container_of(op, struct self_recv, op);

	if (res != 1 || op->inflight) {
		s->errors++;
		return;
	}
	s->got[s->n++] = s->buf[0];
	if (s->n < 5 && loop_recv(s->l, &s->op, s->fd, s->buf, 1) != 0)
		s->errors++;
}

static void test_restart_in_callback(struct loop *l)
{
	struct self_recv s;
	int sv[2];

	make_pair(sv);
	memset(&s, 0, sizeof(s));
	s.op.cb = self_recv_cb;
	s.l = l;
	s.fd = sv[1];
	T_EQ_INT(write(sv[0], "abcde", 5), 5);
	T_EQ_INT(loop_recv(l, &s.op, s.fd, s.buf, 1), 0);
	T_TRUE(run_until(l, &s.n, 5) >= 0);
	T_EQ_MEM(s.got, (size_t)s.n, "abcde", 5);
	T_EQ_INT(s.errors, 0);
	T_EQ_INT(loop_inflight(l), 0);
	close(sv[0]);
	close(sv[1]);
}

/* ---- TCP on loopback: connect + accept, then sendmsg with 3 iovecs ---- */

static void test_tcp(struct loop *l)
{
	struct sockaddr_in sa;
	socklen_t salen = sizeof(sa);
	struct rec_op acc, con, smsg, r;
	int lfd, cfd, sfd;
	int one = 1;

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	T_TRUE(lfd >= 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = 0;
	T_EQ_INT(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	T_EQ_INT(listen(lfd, 16), 0);
	T_EQ_INT(getsockname(lfd, (struct sockaddr *)&sa, &salen), 0);
	T_TRUE(ntohs(sa.sin_port) != 0);

	cfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	T_TRUE(cfd >= 0);

	rec_init(&acc);
	rec_init(&con);
	T_EQ_INT(loop_accept(l, &acc.op, lfd), 0);
	T_EQ_INT(loop_connect(l, &con.op, cfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	T_EQ_INT(loop_inflight(l), 2);
	{
		int both = 0;

		for (int i = 0; i < MAX_ITER && !both; i++) {
			T_TRUE(loop_run_once(l, 200) >= 0);
			both = acc.calls && con.calls;
		}
		T_TRUE(both);
	}
	T_EQ_INT(con.res, 0);
	T_TRUE(acc.res >= 0);
	sfd = acc.res;
	if (sfd < 0)
		goto out;
	/* Accepted sockets come back non-blocking. */
	T_TRUE(fcntl(sfd, F_GETFL) & O_NONBLOCK);

	static const char p1[] = "MAIL FROM:<a@example.org>\r\n";
	static const char p2[] = "RCPT TO:<b@example.net>\r\n";
	static const char p3[] = "DATA\r\n";
	static const char all[] = "MAIL FROM:<a@example.org>\r\n"
				  "RCPT TO:<b@example.net>\r\nDATA\r\n";
	struct iovec iov[3] = {
		{ (void *)p1, sizeof(p1) - 1 },
		{ (void *)p2, sizeof(p2) - 1 },
		{ (void *)p3, sizeof(p3) - 1 },
	};
	struct msghdr msg;
	char buf[256];
	size_t have = 0;

	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = iov;
	msg.msg_iovlen = 3;
	rec_init(&smsg);
	T_EQ_INT(loop_sendmsg(l, &smsg.op, cfd, &msg), 0);
	T_TRUE(run_until(l, &smsg.calls, 1) >= 0);
	T_EQ_INT(smsg.res, (int)sizeof(all) - 1);

	/* TCP may split; keep receiving until the whole concatenation is in. */
	for (int i = 0; i < 100 && have < sizeof(all) - 1; i++) {
		rec_init(&r);
		T_EQ_INT(loop_recv(l, &r.op, sfd, buf + have, sizeof(buf) - have), 0);
		if (run_until(l, &r.calls, 1) < 0 || r.res <= 0)
			break;
		have += (size_t)r.res;
	}
	T_EQ_MEM(buf, have, all, sizeof(all) - 1);
	T_EQ_INT(loop_inflight(l), 0);
	close(sfd);
out:
	close(cfd);
	close(lfd);
}

/* ---- timers ---- */

struct rec_timer {
	struct loop_timer t;
	struct loop *l;
	int id;
	uint64_t armed_at, ms;   /* to check "not before now + ms" */
	int fired;
	int early;
	int *order;              /* shared log of ids, in firing order */
	int *n_order;
	int rearm_left;          /* self re-arm this many more times */
	struct loop_timer *stop_other;
};

static void rec_timer_cb(struct loop_timer *t)
{
	struct rec_timer *r = container_of(t, struct rec_timer, t);
	uint64_t now = loop_now_ms(r->l);

	r->fired++;
	if (now < t->deadline_ms || now < r->armed_at + r->ms)
		r->early++;
	if (t->heap_index != 0)
		r->early += 1000; /* must be disarmed while its callback runs */
	if (r->order)
		r->order[(*r->n_order)++] = r->id;
	if (r->stop_other)
		loop_timer_stop(r->l, r->stop_other);
	if (r->rearm_left > 0) {
		r->rearm_left--;
		r->armed_at = now;
		loop_timer_start(r->l, t, r->ms);
	}
}

static void arm(struct loop *l, struct rec_timer *r, uint64_t ms)
{
	r->armed_at = loop_now_ms(l);
	r->ms = ms;
	loop_timer_start(l, &r->t, ms);
	T_EQ_INT(r->t.deadline_ms, r->armed_at + ms);
	T_TRUE(r->t.heap_index != 0);
}

static void test_timers(struct loop *l)
{
	enum { N = 8 };
	struct rec_timer tm[N];
	int order[64], n_order = 0, fired_total;

	memset(tm, 0, sizeof(tm));
	for (int i = 0; i < N; i++) {
		tm[i].t.cb = rec_timer_cb;
		tm[i].l = l;
		tm[i].id = i;
		tm[i].order = order;
		tm[i].n_order = &n_order;
	}
	/* Out of order: ids 0..4 at 30, 10, 50, 20, 40 ms. */
	static const uint64_t ms[5] = { 30, 10, 50, 20, 40 };
	for (int i = 0; i < 5; i++)
		arm(l, &tm[i], ms[i]);
	/* 5: armed at 15 then stopped, never fires; stop twice is a no-op. */
	arm(l, &tm[5], 15);
	loop_timer_stop(l, &tm[5].t);
	T_EQ_INT(tm[5].t.heap_index, 0);
	loop_timer_stop(l, &tm[5].t);
	/* 6: armed late, re-armed early (moves to the front). */
	arm(l, &tm[6], 200);
	arm(l, &tm[6], 5);
	/* 7: armed early, re-armed past everything else. */
	arm(l, &tm[7], 5);
	arm(l, &tm[7], 70);

	for (int i = 0; i < MAX_ITER && n_order < 7; i++)
		T_TRUE(loop_run_once(l, 200) >= 0);
	static const int want[7] = { 6, 1, 3, 0, 4, 2, 7 };
	T_EQ_INT(n_order, 7);
	for (int i = 0; i < 7 && i < n_order; i++)
		T_EQ_INT(order[i], want[i]);
	fired_total = 0;
	for (int i = 0; i < N; i++) {
		T_EQ_INT(tm[i].early, 0);
		fired_total += tm[i].fired;
	}
	T_EQ_INT(tm[5].fired, 0);
	T_EQ_INT(fired_total, 7);
}

static void test_timer_rearm_and_stop_other(struct loop *l)
{
	struct rec_timer self, a, b;

	memset(&self, 0, sizeof(self));
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	self.t.cb = a.t.cb = b.t.cb = rec_timer_cb;
	self.l = a.l = b.l = l;

	/* Re-arms itself three times: four firings, none early. */
	self.rearm_left = 3;
	arm(l, &self, 3);
	/* a fires at 10 and stops b (due at 20). */
	a.stop_other = &b.t;
	arm(l, &a, 10);
	arm(l, &b, 20);

	for (int i = 0; i < MAX_ITER && (self.fired < 4 || !a.fired); i++)
		T_TRUE(loop_run_once(l, 200) >= 0);
	/* Give b every chance to fire wrongly. */
	for (uint64_t end = loop_now_ms(l) + 40; loop_now_ms(l) < end;)
		T_TRUE(loop_run_once(l, 50) >= 0);
	T_EQ_INT(self.fired, 4);
	T_EQ_INT(self.early, 0);
	T_EQ_INT(self.t.heap_index, 0);
	T_EQ_INT(a.fired, 1);
	T_EQ_INT(b.fired, 0);
	T_EQ_INT(b.t.heap_index, 0);
}

/* A zero-delay timer re-arming itself from its callback must not spin
 * inside one iteration. */
static void test_timer_zero_rearm(struct loop *l)
{
	struct rec_timer z;
	int before, ret;

	memset(&z, 0, sizeof(z));
	z.t.cb = rec_timer_cb;
	z.l = l;
	z.rearm_left = 1000000;
	arm(l, &z, 0);
	before = z.fired;
	ret = loop_run_once(l, 0);
	T_EQ_INT(ret, 1);
	T_EQ_INT(z.fired - before, 1);
	T_TRUE(z.t.heap_index != 0);
	loop_timer_stop(l, &z.t);
	T_EQ_INT(z.t.heap_index, 0);
	T_EQ_INT(z.early, 0);
}

/* Many timers, some stopped, some re-armed: the heap grows past its first
 * capacity and fires in deadline order. */
struct heap_timer {
	struct loop_timer t;
	struct loop *l;
	int fired;
	uint64_t *last_deadline;
	int *errors;
};

static void heap_timer_cb(struct loop_timer *t)
{
	struct heap_timer *h = container_of(t, struct heap_timer, t);

	h->fired++;
	if (t->deadline_ms < *h->last_deadline || loop_now_ms(h->l) < t->deadline_ms)
		(*h->errors)++;
	*h->last_deadline = t->deadline_ms;
}

static void test_timer_heap(struct loop *l)
{
	enum { N = 1000 };
	static struct heap_timer h[N];
	uint64_t last = 0;
	int errors = 0, want = 0, got;
	unsigned seed = 12345;

	for (int i = 0; i < N; i++) {
		h[i].t.cb = heap_timer_cb;
		h[i].l = l;
		h[i].last_deadline = &last;
		h[i].errors = &errors;
		seed = seed * 1103515245u + 12345u;
		loop_timer_start(l, &h[i].t, (seed >> 16) % 60);
	}
	/* Stop every third, re-arm every fifth to a new deadline. */
	for (int i = 0; i < N; i++) {
		if (i % 3 == 0) {
			loop_timer_stop(l, &h[i].t);
			continue;
		}
		if (i % 5 == 0) {
			seed = seed * 1103515245u + 12345u;
			loop_timer_start(l, &h[i].t, (seed >> 16) % 60);
		}
		want++;
	}
	for (int i = 0; i < MAX_ITER; i++) {
		got = 0;
		for (int k = 0; k < N; k++)
			got += h[k].fired;
		if (got >= want)
			break;
		T_TRUE(loop_run_once(l, 200) >= 0);
	}
	got = 0;
	for (int k = 0; k < N; k++) {
		got += h[k].fired;
		if (k % 3 == 0 && h[k].fired)
			errors++;
		if (h[k].t.heap_index != 0)
			errors++;
	}
	T_EQ_INT(got, want);
	T_EQ_INT(errors, 0);
}

/* ---- completions run before timers within one iteration ---- */

static int seq_log[4], seq_n;

static void seq_op_cb(struct loop_op *op, int res)
{
	seq_log[seq_n++] = 1;
}

static void seq_timer_cb(struct loop_timer *t)
{
	seq_log[seq_n++] = 2;
}

static void test_completion_before_timer(struct loop *l)
{
	int sv[2], ran;
	struct loop_op op = { .cb = seq_op_cb };
	struct loop_timer t = { .cb = seq_timer_cb };

	make_pair(sv);
	seq_n = 0;
	/* The timer is already due and the send completes at submission, so
	 * normally both land in one iteration; order is checked only then. */
	loop_timer_start(l, &t, 0);
	T_EQ_INT(loop_send(l, &op, sv[0], "z", 1), 0);
	ran = loop_run_once(l, 200);
	T_TRUE(ran >= 1);
	if (ran == 2) {
		T_EQ_INT(seq_log[0], 1);
		T_EQ_INT(seq_log[1], 2);
	}
	for (int i = 0; i < MAX_ITER && seq_n < 2; i++)
		T_TRUE(loop_run_once(l, 200) >= 0);
	T_EQ_INT(seq_n, 2);
	T_EQ_INT(loop_inflight(l), 0);
	close(sv[0]);
	close(sv[1]);
}

/* ---- deferred work: once per iteration, before the wait ---- */

struct rec_deferred {
	struct loop_deferred d;
	struct loop *l;
	int calls;
	int requeue;                 /* times the callback queues itself again */
	struct loop_deferred *cancel; /* another one the callback cancels */
	int order[4], norder;
};

static int defer_seq;

static void rec_deferred_cb(struct loop_deferred *d)
{
	struct rec_deferred *r = container_of(d, struct rec_deferred, d);
	r->calls++;
	if (r->norder < 4)
		r->order[r->norder++] = ++defer_seq;
	if (r->cancel)
		loop_defer_cancel(r->l, r->cancel);
	if (r->requeue > 0) {
		r->requeue--;
		loop_defer(r->l, d);
	}
}

static void rec_deferred_init(struct rec_deferred *r, struct loop *l)
{
	memset(r, 0, sizeof(*r));
	r->d.cb = rec_deferred_cb;
	r->l = l;
}

static void test_deferred(struct loop *l)
{
	struct rec_deferred a, b, c, forever;

	rec_deferred_init(&a, l);
	rec_deferred_init(&b, l);
	rec_deferred_init(&c, l);
	defer_seq = 0;
	/* Queued twice: runs once, in queue order with the others. */
	loop_defer(l, &a.d);
	loop_defer(l, &b.d);
	loop_defer(l, &a.d);
	loop_defer(l, &c.d);
	loop_defer_cancel(l, &c.d);   /* cancelled before the iteration: never runs */
	T_TRUE(loop_run_once(l, 0) >= 0);
	T_EQ_INT(a.calls, 1);
	T_EQ_INT(b.calls, 1);
	T_EQ_INT(c.calls, 0);
	T_EQ_INT(a.order[0], 1);
	T_EQ_INT(b.order[0], 2);
	T_TRUE(!a.d.queued);

	/* Nothing queued: the next iteration runs nothing. */
	T_TRUE(loop_run_once(l, 0) >= 0);
	T_EQ_INT(a.calls, 1);

	/* A callback that queues itself again runs again before the wait,
	 * and one that cancels another that was queued stops it. */
	rec_deferred_init(&a, l);
	rec_deferred_init(&b, l);
	a.requeue = 2;
	a.cancel = &b.d;
	loop_defer(l, &a.d);
	loop_defer(l, &b.d);
	T_TRUE(loop_run_once(l, 0) >= 0);
	T_EQ_INT(a.calls, 3);
	T_EQ_INT(b.calls, 0);

	/* Work that always queues itself again is bounded per iteration and
	 * turns the wait into a poll, so the loop cannot block on it. */
	rec_deferred_init(&forever, l);
	forever.requeue = 1000000;
	loop_defer(l, &forever.d);
	T_TRUE(loop_run_once(l, 5000) >= 0);
	T_TRUE(forever.calls >= 1 && forever.calls <= 8);
	T_TRUE(forever.d.queued);
	loop_defer_cancel(l, &forever.d);
	T_TRUE(!forever.d.queued);
}

/* ---- cancel, EBUSY ---- */

static void test_cancel(struct loop *l)
{
	int sv[2];
	struct rec_op r, r2;
	char buf[16];

	make_pair(sv);
	rec_init(&r);
	T_EQ_INT(loop_cancel(l, &r.op), -ENOENT);

	/* Submitted and parked in the kernel, then cancelled. */
	T_EQ_INT(loop_recv(l, &r.op, sv[1], buf, sizeof(buf)), 0);
	T_EQ_INT(loop_run_once(l, 0), 0);
	T_EQ_INT(loop_inflight(l), 1);
	T_EQ_INT(r.calls, 0);
	T_EQ_INT(loop_cancel(l, &r.op), 0);
	T_TRUE(run_until(l, &r.calls, 1) >= 0);
	T_EQ_INT(r.calls, 1);
	T_EQ_INT(r.res, -ECANCELED);
	T_EQ_INT(loop_inflight(l), 0);

	/* Queued and cancelled in the same batch. */
	rec_init(&r2);
	T_EQ_INT(loop_recv(l, &r2.op, sv[1], buf, sizeof(buf)), 0);
	T_EQ_INT(loop_cancel(l, &r2.op), 0);
	T_TRUE(run_until(l, &r2.calls, 1) >= 0);
	T_EQ_INT(r2.res, -ECANCELED);
	T_EQ_INT(loop_inflight(l), 0);

	/* The cancel's own completion produced no callback of its own. */
	T_EQ_INT(loop_run_once(l, 0), 0);
	T_EQ_INT(r.calls, 1);
	T_EQ_INT(r2.calls, 1);
	close(sv[0]);
	close(sv[1]);
}

static void test_busy(struct loop *l)
{
	int sv[2];
	struct rec_op r;
	char buf[16];

	make_pair(sv);
	rec_init(&r);
	T_EQ_INT(loop_recv(l, &r.op, sv[1], buf, sizeof(buf)), 0);
	/* Still only queued: already owned. */
	T_EQ_INT(loop_recv(l, &r.op, sv[1], buf, sizeof(buf)), -EBUSY);
	T_EQ_INT(loop_send(l, &r.op, sv[1], "x", 1), -EBUSY);
	T_EQ_INT(loop_run_once(l, 0), 0);
	/* Submitted: still owned. */
	T_EQ_INT(loop_recv(l, &r.op, sv[1], buf, sizeof(buf)), -EBUSY);
	T_EQ_INT(loop_inflight(l), 1);
	/* Let it complete for real. */
	T_EQ_INT(write(sv[0], "hi", 2), 2);
	T_TRUE(run_until(l, &r.calls, 1) >= 0);
	T_EQ_INT(r.calls, 1);
	T_EQ_INT(r.res, 2);
	T_EQ_INT(loop_inflight(l), 0);
	close(sv[0]);
	close(sv[1]);
}

/* More ops than SQ entries: the loop submits early rather than failing. */
static void test_sq_overflow(void)
{
	enum { N = 20 };
	struct loop *l = loop_new(4);
	struct rec_op s[N];
	int sv[2], done;

	T_TRUE(l != NULL);
	if (!l)
		return;
	make_pair(sv);
	for (int i = 0; i < N; i++) {
		rec_init(&s[i]);
		T_EQ_INT(loop_send(l, &s[i].op, sv[0], "y", 1), 0);
	}
	T_EQ_INT(loop_inflight(l), N);
	for (int i = 0; i < MAX_ITER && loop_inflight(l); i++)
		T_TRUE(loop_run_once(l, 200) >= 0);
	done = 0;
	for (int i = 0; i < N; i++)
		done += s[i].calls == 1 && s[i].res == 1;
	T_EQ_INT(done, N);
	T_EQ_INT(loop_inflight(l), 0);
	loop_free(l);
	close(sv[0]);
	close(sv[1]);
}

int main(void)
{
	struct loop *l = loop_new(64);

	if (!l) {
		int e = errno;

		if (e == ENOSYS || e == EPERM || e == EACCES) {
			printf("loop: io_uring unavailable (%s); skipping\n", strerror(e));
			return 77;
		}
		fprintf(stderr, "loop_new: %s\n", strerror(e));
		return 1;
	}
	T_TRUE(loop_now_ms(l) > 0);
	T_EQ_INT(loop_inflight(l), 0);
	/* Nothing queued, nothing armed, no wait: no callbacks. */
	T_EQ_INT(loop_run_once(l, 0), 0);

	test_send_recv(l);
	test_round_trips(l);
	test_restart_in_callback(l);
	test_tcp(l);
	test_timers(l);
	test_timer_rearm_and_stop_other(l);
	test_timer_zero_rearm(l);
	test_timer_heap(l);
	test_completion_before_timer(l);
	test_cancel(l);
	test_deferred(l);
	test_busy(l);
	test_sq_overflow();

	loop_free(l);
	loop_free(NULL);
	return t_done("loop");
}
