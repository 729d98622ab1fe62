/* loop: one io_uring plus a timer heap. See loop.h for the contract.
 *
 * Shape of one iteration (loop_run_once):
 *   1. read the clock, bound the wait by the nearest timer;
 *   2. submit every queued SQE and wait in the same io_uring_enter;
 *   3. read the clock again (this is the loop_now_ms callbacks see);
 *   4. drain completions in batches, running callbacks;
 *   5. fire expired timers.
 *
 * Ownership: each SQE carries the struct loop_op pointer as user_data. The
 * op is "in flight" from queueing until its CQE is reaped; the flag is
 * cleared before the callback so the callback may start the op again.
 * Cancel requests carry the address of cancel_tag instead, and their CQEs
 * are swallowed here. SQEs reach the kernel in queue order, so a cancel
 * queued while an op is in flight can only hit that incarnation of the op,
 * never one restarted later from its callback.
 *
 * Ring setup: SINGLE_ISSUER with DEFER_TASKRUN (Linux 6.1) runs completion
 * work only when this thread enters the kernel to wait, and wakes it only
 * once as many completions as it asked for are ready; that is what makes
 * batched waits (loop_set_batching) save wakeups. Older kernels reject the
 * flags with EINVAL and we fall back to COOP_TASKRUN, then to a plain ring.
 * With SINGLE_ISSUER the kernel binds the ring to the thread that created
 * it, so a loop must be created on the thread that runs it (one loop per
 * worker thread).
 *
 * Timer heap memory: the heap starts with TIMER_HEAP_INIT slots, allocated
 * by loop_new, and doubles when full. loop_timer_start returns void (the API
 * is fixed), so a failed doubling is treated like any other OOM on a hot
 * path: a message on stderr and abort(). Growth is rare (log2 of the peak
 * number of armed timers) and never shrinks. */
#include "engine/loop.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <liburing.h>

#define TIMER_HEAP_INIT 64
#define CQE_BATCH 64

struct loop {
	struct io_uring ring;
	uint64_t now_ms;
	unsigned inflight;
	int firing_timers;       /* inside the timer phase of loop_run_once */
	unsigned batch_us;       /* see loop_set_batching; 0: off */
	unsigned last_ran;       /* completions reaped by the last iteration */
	struct loop_timer **heap; /* 1-based; heap[0] unused */
	unsigned heap_len;       /* armed timers */
	unsigned heap_cap;       /* usable slots, excluding heap[0] */
	struct loop_deferred *deferred; /* see loop_defer; run in queue order */
	struct loop_deferred *deferred_tail;
	unsigned ndeferred;
};

/* Its address tags cancel requests; no loop_op can have the same address. */
static const char cancel_tag;

static uint64_t mono_ms(void)
{
	struct timespec ts;

	/* CLOCK_MONOTONIC cannot fail with a valid pointer. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int ring_init(struct io_uring *ring, unsigned entries)
{
	/* The best setup first; an older kernel rejects flags it does not
	 * know with EINVAL (so does a bad entries, which the last try says). */
	static const unsigned setups[] = {
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
		0,
	};
	int ret = -EINVAL;

	for (size_t i = 0; i < sizeof(setups) / sizeof(setups[0]) && ret == -EINVAL; i++) {
		struct io_uring_params p;

		memset(&p, 0, sizeof(p));
		p.flags = setups[i];
		ret = io_uring_queue_init_params(entries, ring, &p);
	}
	return ret;
}

struct loop *loop_new(unsigned entries)
{
	struct loop *l;
	int ret;

	l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->heap_cap = TIMER_HEAP_INIT;
	l->heap = calloc(l->heap_cap + 1, sizeof(*l->heap));
	if (!l->heap) {
		free(l);
		errno = ENOMEM;
		return NULL;
	}
	ret = ring_init(&l->ring, entries);
	if (ret < 0) {
		free(l->heap);
		free(l);
		errno = -ret;
		return NULL;
	}
	l->now_ms = mono_ms();
	return l;
}

void loop_free(struct loop *l)
{
	if (!l)
		return;
	/* Disarm what is left so callers see heap_index == 0, as if stopped. */
	for (unsigned i = 1; i <= l->heap_len; i++)
		l->heap[i]->heap_index = 0;
	io_uring_queue_exit(&l->ring);
	free(l->heap);
	free(l);
}

void loop_defer(struct loop *l, struct loop_deferred *d)
{
	if (d->queued)
		return;
	d->queued = 1;
	d->next = NULL;
	d->prev = l->deferred_tail;
	if (l->deferred_tail)
		l->deferred_tail->next = d;
	else
		l->deferred = d;
	l->deferred_tail = d;
	l->ndeferred++;
}

void loop_defer_cancel(struct loop *l, struct loop_deferred *d)
{
	if (!d->queued)
		return;
	d->queued = 0;
	if (d->prev)
		d->prev->next = d->next;
	else
		l->deferred = d->next;
	if (d->next)
		d->next->prev = d->prev;
	else
		l->deferred_tail = d->prev;
	l->ndeferred--;
}

/* Runs the deferred work, including what it defers in turn, for a bounded
 * number of rounds: what is still queued then makes the wait a poll. */
static void run_deferred(struct loop *l)
{
	for (int round = 0; round < 8 && l->deferred; round++) {
		/* This round: what was queued when it began (callbacks may
		 * cancel some of it, or queue more for the next round). */
		for (unsigned n = l->ndeferred; n && l->deferred; n--) {
			struct loop_deferred *d = l->deferred;
			loop_defer_cancel(l, d);
			d->cb(d);
		}
	}
}

void loop_set_batching(struct loop *l, unsigned usec)
{
	l->batch_us = usec;
}

uint64_t loop_now_ms(const struct loop *l)
{
	return l->now_ms;
}

unsigned loop_inflight(const struct loop *l)
{
	return l->inflight;
}

/* ---- submissions ---- */

/* Returns an SQE for op, or NULL with *err set. On success the op counts as
 * in flight; the caller only fills in the SQE. */
static struct io_uring_sqe *op_sqe(struct loop *l, struct loop_op *op, int *err)
{
	struct io_uring_sqe *sqe;

	if (!op || !op->cb) {
		*err = -EINVAL;
		return NULL;
	}
	if (op->inflight) {
		*err = -EBUSY;
		return NULL;
	}
	sqe = io_uring_get_sqe(&l->ring);
	if (!sqe) {
		/* SQ full: push the batch to the kernel early, try once more. */
		io_uring_submit(&l->ring);
		sqe = io_uring_get_sqe(&l->ring);
		if (!sqe) {
			*err = -EAGAIN;
			return NULL;
		}
	}
	io_uring_sqe_set_data(sqe, op);
	op->inflight = 1;
	l->inflight++;
	return sqe;
}

/* prep_send/prep_recv take a 32-bit length; a shorter transfer is a valid
 * result the caller already handles. */
static unsigned clamp_len(size_t len)
{
	return len > UINT_MAX ? UINT_MAX : (unsigned)len;
}

int loop_connect(struct loop *l, struct loop_op *op, int fd, const struct sockaddr *sa, socklen_t salen)
{
	int err = 0;
	struct io_uring_sqe *sqe = op_sqe(l, op, &err);

	if (!sqe)
		return err;
	io_uring_prep_connect(sqe, fd, sa, salen);
	return 0;
}

int loop_recv(struct loop *l, struct loop_op *op, int fd, void *buf, size_t len)
{
	int err = 0;
	struct io_uring_sqe *sqe = op_sqe(l, op, &err);

	if (!sqe)
		return err;
	io_uring_prep_recv(sqe, fd, buf, clamp_len(len), 0);
	return 0;
}

int loop_poll(struct loop *l, struct loop_op *op, int fd, unsigned events)
{
	int err = 0;
	struct io_uring_sqe *sqe = op_sqe(l, op, &err);

	if (!sqe)
		return err;
	io_uring_prep_poll_add(sqe, fd, events);
	return 0;
}

int loop_send(struct loop *l, struct loop_op *op, int fd, const void *buf, size_t len)
{
	int err = 0;
	struct io_uring_sqe *sqe = op_sqe(l, op, &err);

	if (!sqe)
		return err;
	/* A peer that resets must not kill the process with SIGPIPE. */
	io_uring_prep_send(sqe, fd, buf, clamp_len(len), MSG_NOSIGNAL);
	return 0;
}

int loop_sendmsg(struct loop *l, struct loop_op *op, int fd, const struct msghdr *msg)
{
	int err = 0;
	struct io_uring_sqe *sqe = op_sqe(l, op, &err);

	if (!sqe)
		return err;
	io_uring_prep_sendmsg(sqe, fd, msg, MSG_NOSIGNAL);
	return 0;
}

int loop_accept(struct loop *l, struct loop_op *op, int fd)
{
	int err = 0;
	struct io_uring_sqe *sqe = op_sqe(l, op, &err);

	if (!sqe)
		return err;
	/* Accepted sockets match the client side: non-blocking, close-on-exec. */
	io_uring_prep_accept(sqe, fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	return 0;
}

int loop_cancel(struct loop *l, struct loop_op *op)
{
	struct io_uring_sqe *sqe;

	if (!op || !op->inflight)
		return -ENOENT;
	sqe = io_uring_get_sqe(&l->ring);
	if (!sqe) {
		io_uring_submit(&l->ring);
		sqe = io_uring_get_sqe(&l->ring);
		if (!sqe)
			return -EAGAIN;
	}
	/* The op's SQE, if still queued, precedes this one, so the kernel has
	 * seen it by the time it processes the cancel. */
	io_uring_prep_cancel(sqe, op, 0);
	io_uring_sqe_set_data(sqe, (void *)&cancel_tag);
	return 0;
}

/* ---- timers: binary min-heap on deadline_ms, 1-based ---- */

static void heap_set(struct loop *l, unsigned i, struct loop_timer *t)
{
	l->heap[i] = t;
	t->heap_index = i;
}

static void heap_up(struct loop *l, unsigned i)
{
	struct loop_timer *t = l->heap[i];

	while (i > 1) {
		struct loop_timer *parent = l->heap[i / 2];

		if (parent->deadline_ms <= t->deadline_ms)
			break;
		heap_set(l, i, parent);
		i /= 2;
	}
	heap_set(l, i, t);
}

static void heap_down(struct loop *l, unsigned i)
{
	struct loop_timer *t = l->heap[i];

	for (;;) {
		unsigned c = i * 2;

		if (c > l->heap_len)
			break;
		if (c + 1 <= l->heap_len &&
		    l->heap[c + 1]->deadline_ms < l->heap[c]->deadline_ms)
			c++;
		if (t->deadline_ms <= l->heap[c]->deadline_ms)
			break;
		heap_set(l, i, l->heap[c]);
		i = c;
	}
	heap_set(l, i, t);
}

static void heap_grow(struct loop *l)
{
	unsigned cap = l->heap_cap * 2;
	struct loop_timer **h;

	if (cap < l->heap_cap ||
	    (size_t)cap + 1 > SIZE_MAX / sizeof(*h))
		goto oom;
	h = realloc(l->heap, ((size_t)cap + 1) * sizeof(*h));
	if (!h)
		goto oom;
	l->heap = h;
	l->heap_cap = cap;
	return;
oom:
	fprintf(stderr, "volley: loop: out of memory growing timer heap to %u\n", cap);
	abort();
}

void loop_timer_stop(struct loop *l, struct loop_timer *t)
{
	unsigned i = t->heap_index;
	struct loop_timer *last;

	if (i == 0)
		return;
	t->heap_index = 0;
	last = l->heap[l->heap_len];
	l->heap[l->heap_len--] = NULL;
	if (last == t)
		return;
	/* Move the last timer into the hole; it may belong above or below. */
	heap_set(l, i, last);
	if (i > 1 && l->heap[i / 2]->deadline_ms > last->deadline_ms)
		heap_up(l, i);
	else
		heap_down(l, i);
}

void loop_timer_start(struct loop *l, struct loop_timer *t, uint64_t ms)
{
	uint64_t deadline;

	/* A zero-delay timer armed by a timer callback would otherwise fire
	 * again in the same pass, and a self-rearming one would spin forever. */
	if (ms == 0 && l->firing_timers)
		ms = 1;
	deadline = l->now_ms + ms;
	if (deadline < l->now_ms)
		deadline = UINT64_MAX;

	if (t->heap_index) {
		uint64_t old = t->deadline_ms;

		t->deadline_ms = deadline;
		if (deadline < old)
			heap_up(l, t->heap_index);
		else
			heap_down(l, t->heap_index);
		return;
	}
	if (l->heap_len == l->heap_cap)
		heap_grow(l);
	t->deadline_ms = deadline;
	l->heap[++l->heap_len] = t;
	t->heap_index = l->heap_len;
	heap_up(l, l->heap_len);
}

/* Fires every timer due at now_ms; returns how many ran. */
static int fire_timers(struct loop *l)
{
	int n = 0;

	l->firing_timers = 1;
	while (l->heap_len && l->heap[1]->deadline_ms <= l->now_ms) {
		struct loop_timer *t = l->heap[1];

		/* Disarm before the callback so it may re-arm or stop others. */
		loop_timer_stop(l, t);
		t->cb(t);
		n++;
	}
	l->firing_timers = 0;
	return n;
}

/* ---- the iteration ---- */

/* Runs callbacks for everything in the CQ; returns how many ran. */
static int drain_cqes(struct loop *l)
{
	struct io_uring_cqe *cqes[CQE_BATCH];
	struct {
		struct loop_op *op;
		int res;
	} done[CQE_BATCH];
	/* Callbacks that overflow the SQ submit early, and those submissions
	 * may complete inline; bound the pass so such a chain cannot starve
	 * timers. Anything left is reaped next iteration. */
	unsigned budget = l->ring.cq.ring_entries;
	int ran = 0;

	while (budget) {
		unsigned want = budget < CQE_BATCH ? budget : CQE_BATCH;
		unsigned n = io_uring_peek_batch_cqe(&l->ring, cqes, want);
		unsigned k = 0;

		if (n == 0)
			break;
		budget -= n;
		/* Copy out and release the CQ slots before any callback runs. */
		for (unsigned i = 0; i < n; i++) {
			uint64_t ud = cqes[i]->user_data;

			if (ud == (uint64_t)(uintptr_t)&cancel_tag ||
			    ud == LIBURING_UDATA_TIMEOUT || ud == 0)
				continue;
			done[k].op = (struct loop_op *)(uintptr_t)ud;
			done[k].res = cqes[i]->res;
			k++;
		}
		io_uring_cq_advance(&l->ring, n);
		for (unsigned i = 0; i < k; i++) {
			struct loop_op *op = done[i].op;

			op->inflight = 0;
			l->inflight--;
			op->cb(op, done[i].res);
			ran++;
		}
	}
	return ran;
}

int loop_run_once(struct loop *l, int max_wait_ms)
{
	uint64_t wait_ms;
	int ret, ran;

	l->now_ms = mono_ms();
	run_deferred(l);
	/* Negative max_wait_ms: no bound of the caller's own. */
	wait_ms = max_wait_ms < 0 ? UINT64_MAX : (uint64_t)max_wait_ms;
	if (l->deferred)
		wait_ms = 0;
	if (l->heap_len) {
		uint64_t d = l->heap[1]->deadline_ms;
		uint64_t to_timer = d > l->now_ms ? d - l->now_ms : 0;

		if (to_timer < wait_ms)
			wait_ms = to_timer;
	}
	if (wait_ms == UINT64_MAX && l->inflight == 0 &&
	    io_uring_sq_ready(&l->ring) == 0)
		wait_ms = 0; /* nothing could ever wake us */

	if (wait_ms == 0 || io_uring_cq_ready(&l->ring)) {
		ret = io_uring_submit(&l->ring);
	} else if (l->batch_us && l->last_ran >= 2) {
		/* Busy: ask for as many completions as last time, for a
		 * short while, instead of waking for each one. */
		unsigned nr = l->last_ran < l->inflight ? l->last_ran : l->inflight;
		uint64_t us = l->batch_us;
		if (wait_ms != UINT64_MAX && wait_ms * 1000 < us)
			us = wait_ms * 1000;
		struct __kernel_timespec ts = {
			.tv_sec = (long long)(us / 1000000),
			.tv_nsec = (long long)(us % 1000000) * 1000,
		};
		struct io_uring_cqe *cqe;

		ret = io_uring_submit_and_wait_timeout(&l->ring, &cqe, nr ? nr : 1, &ts, NULL);
	} else if (wait_ms == UINT64_MAX) {
		ret = io_uring_submit_and_wait(&l->ring, 1);
	} else {
		struct __kernel_timespec ts = {
			.tv_sec = (long long)(wait_ms / 1000),
			.tv_nsec = (long long)(wait_ms % 1000) * 1000000,
		};
		struct io_uring_cqe *cqe;

		ret = io_uring_submit_and_wait_timeout(&l->ring, &cqe, 1, &ts, NULL);
	}
	/* ETIME: the wait ran out; EINTR: a signal; EBUSY/EAGAIN: the kernel
	 * wants the CQ drained first. All mean "go reap what there is". */
	if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EBUSY &&
	    ret != -EAGAIN)
		return ret;

	l->now_ms = mono_ms();
	ran = drain_cqes(l);
	l->last_ran = (unsigned)ran;
	ran += fire_timers(l);
	return ran;
}
