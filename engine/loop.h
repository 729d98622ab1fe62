/* loop: one io_uring per worker thread, with timers.
 *
 * The loop knows nothing of SMTP. Callers embed a struct loop_op in their own
 * objects, start operations on it, and get a callback with the result (a
 * count, or a negative errno) when the completion arrives. Submissions are
 * batched: they go to the kernel when the loop next waits. Completions are
 * drained in batches.
 *
 * Timers live in a binary heap keyed by deadline; the loop waits for
 * completions no longer than the nearest deadline, so there is one timer
 * mechanism for thousands of sessions and no per-timer syscall. */
#ifndef VOLLEY_LOOP_H
#define VOLLEY_LOOP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct loop;
struct loop_op;

typedef void (*loop_cb)(struct loop_op *op, int res);

struct loop_op {
	loop_cb cb;
	int inflight;          /* set while the kernel owns the op */
};

struct loop_timer {
	void (*cb)(struct loop_timer *t);
	uint64_t deadline_ms;  /* monotonic, see loop_now_ms */
	unsigned heap_index;   /* 0 when not armed */
};

/* Work that runs once, just before the loop next submits and waits: a
 * connection that got new output several times in one iteration (a message
 * per submit, or per completion) writes it all with one send instead of one
 * per message. */
struct loop_deferred {
	void (*cb)(struct loop_deferred *d);
	struct loop_deferred *prev, *next;
	int queued;
};

/* Returns a new loop with a submission queue of `entries`, or NULL with
 * errno set. */
struct loop *loop_new(unsigned entries);
void loop_free(struct loop *l);

/* Completion batching, for throughput work: after an iteration that ran two
 * or more completions, the next one waits until as many are ready again, or
 * usec microseconds have passed, or a timer is due, whichever comes first.
 * Fewer wakeups per message under load, at most usec of added latency; 0
 * (the default) wakes for every completion. */
void loop_set_batching(struct loop *l, unsigned usec);

/* Monotonic milliseconds, read once per loop iteration (cheap). */
uint64_t loop_now_ms(const struct loop *l);

/* Start operations. Each returns 0 when queued, or -errno (-EBUSY when op
 * is already in flight). The callback gets what the syscall would return:
 * a byte count, 0, or -errno. */
int loop_connect(struct loop *l, struct loop_op *op, int fd, const struct sockaddr *sa, socklen_t salen);
int loop_recv(struct loop *l, struct loop_op *op, int fd, void *buf, size_t len);
int loop_send(struct loop *l, struct loop_op *op, int fd, const void *buf, size_t len);
/* msg (and what it points to) must stay valid until the callback. */
int loop_sendmsg(struct loop *l, struct loop_op *op, int fd, const struct msghdr *msg);
int loop_accept(struct loop *l, struct loop_op *op, int fd);
/* Waits until fd is ready for events (POLLIN, POLLOUT); the callback gets
 * the ready events, or -errno. One shot: start it again for more. For
 * sockets another library does its I/O on (c-ares, in pool/resolver). */
int loop_poll(struct loop *l, struct loop_op *op, int fd, unsigned events);
/* Asks the kernel to cancel op; its callback still runs (with -ECANCELED or
 * its real result). */
int loop_cancel(struct loop *l, struct loop_op *op);

/* Queues d to run before the next wait (a no-op when already queued). Its
 * callback may queue it, or others, again: they run before that wait too. */
void loop_defer(struct loop *l, struct loop_deferred *d);
/* Takes d off the queue, for an owner about to be freed. */
void loop_defer_cancel(struct loop *l, struct loop_deferred *d);

/* Arms t to fire at now + ms (re-arming moves it). loop_timer_stop is a
 * no-op on a timer that is not armed. */
void loop_timer_start(struct loop *l, struct loop_timer *t, uint64_t ms);
void loop_timer_stop(struct loop *l, struct loop_timer *t);

/* Runs one iteration: runs the deferred work, submits what is queued, waits up to max_wait_ms
 * (bounded further by the nearest timer; 0 means do not wait), runs the
 * callbacks of every completion and expired timer. Returns the number of
 * callbacks run, or -errno. */
int loop_run_once(struct loop *l, int max_wait_ms);

/* Number of ops in flight (for shutdown: run until it is 0). */
unsigned loop_inflight(const struct loop *l);

#endif
