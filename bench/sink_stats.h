/* sink_stats: the counters of volley sink. Each worker thread owns one
 * struct sink_stats and is its only writer; other threads read it (for
 * SIGUSR1 and the exit report) with relaxed atomic loads, so an increment
 * costs a plain load and store, never a locked instruction. */
#ifndef VOLLEY_SINK_STATS_H
#define VOLLEY_SINK_STATS_H

#include <stdint.h>
#include <stdio.h>

#define SINK_CODE_MIN 200
#define SINK_CODE_MAX 599

struct sink_stats {
	uint64_t sessions;        /* accepted connections */
	uint64_t sessions_closed;
	uint64_t tls;             /* TLS handshakes completed */
	uint64_t tls_failed;
	uint64_t auth_ok, auth_failed;
	uint64_t messages;        /* accepted (250 after the body) */
	uint64_t rejected;        /* bodies refused (4xx/5xx after the body) */
	uint64_t recipients;      /* recipients of accepted messages */
	uint64_t bytes;           /* body bytes of accepted messages */
	uint64_t bytes_in;        /* every byte read from clients */
	uint64_t replies[SINK_CODE_MAX - SINK_CODE_MIN + 1];   /* by code */
};

/* Adds n to a counter only the calling thread writes. */
static inline void sink_stat_add(uint64_t *c, uint64_t n)
{
	__atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}

static inline void sink_stat_reply(struct sink_stats *st, int code)
{
	if (st && code >= SINK_CODE_MIN && code <= SINK_CODE_MAX)
		sink_stat_add(&st->replies[code - SINK_CODE_MIN], 1);
}

/* Adds every counter of src into dst (dst is private to the caller). */
void sink_stats_sum(struct sink_stats *dst, const struct sink_stats *src);

/* Writes the counters as text lines ("messages 123"), replies by code last. */
void sink_stats_print(FILE *f, const struct sink_stats *st, double seconds);

/* Writes the counters as one JSON object. Returns 0, or -1 (errno set) when
 * the file cannot be written; it is replaced atomically (tmp then rename). */
int sink_stats_write_json(const char *path, const struct sink_stats *st, double seconds);

#endif
