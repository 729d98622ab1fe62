/* sink_server: the I/O of volley sink. One worker thread per --threads, each
 * with its own io_uring loop (engine/loop) and its own listening socket on
 * the same address (SO_REUSEPORT: the kernel spreads connections), so the
 * threads share nothing on the hot path but the read-only configuration.
 *
 * A connection costs little while idle: its session, a receive buffer that
 * starts at 1 KiB (and doubles, up to 64 KiB, only while reads fill it),
 * and a reply buffer that starts at 1 KiB. Replies to everything one read
 * held leave in one send. TLS (STARTTLS or implicit) runs through pool/tls
 * over memory buffers; its buffers exist only for TLS connections. */
#ifndef VOLLEY_SINK_SERVER_H
#define VOLLEY_SINK_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include "bench/sink_rules.h"
#include "bench/sink_session.h"
#include "bench/sink_stats.h"
#include "pool/tls.h"

struct sink_server_opts {
	const struct sink_config *cfg;   /* prepared (sink_config_prepare) */
	struct tls_ctx *tls;             /* a server context, or NULL */
	int implicit_tls;                /* TLS from the first byte */
	struct sink_rules *rules;        /* or NULL */
	const char *maildir;             /* or NULL */
	uint32_t max_rate;               /* messages a second across the sink; 0: no cap */
	uint32_t idle_timeout_ms;        /* 421 after this long without a byte */
	uint64_t seed;                   /* for rules with prob= */
	unsigned threads;
	struct sockaddr_storage addr;
	socklen_t addrlen;
};

struct sink_server;

/* Binds one listening socket per thread. Returns the server, or NULL with a
 * reason in err. Nothing runs until sink_server_start. */
struct sink_server *sink_server_new(const struct sink_server_opts *o, char *err, size_t errlen);
/* The port the sockets are bound to (the real one when 0 was asked). */
int sink_server_port(const struct sink_server *s);
/* Starts the threads and waits until each one's loop is up. Returns 0, or -1
 * with a reason in err. */
int sink_server_start(struct sink_server *s, char *err, size_t errlen);
/* Adds up every thread's counters into *sum (which the caller zeroed). */
void sink_server_stats(const struct sink_server *s, struct sink_stats *sum);
/* Stops: every open session gets "421 4.3.2" and is closed (sessions that
 * do not drain within a few seconds are cut), then the threads end. */
void sink_server_stop(struct sink_server *s);
void sink_server_free(struct sink_server *s);

#endif
