/* pool: persistent SMTP sessions per destination.
 *
 * A destination is one relay (URL, TLS, credentials, source address). The
 * pool keeps a queue of messages per destination and a set of sessions that
 * take them, opening sessions up to the connection cap and closing each after
 * its message cap or when idle. Caps come from outside (pool_dest_set_caps),
 * so a rate limiter can steer them.
 *
 * Every recipient of every message submitted gets exactly one outcome, with
 * the full reply and the phase: a session that dies fails what it had in
 * flight as not delivered (TEMPFAIL); a destination that keeps refusing
 * connections is marked down and what is queued for it fails the same way. */
#ifndef VOLLEY_POOL_H
#define VOLLEY_POOL_H

#include <stddef.h>
#include <stdint.h>
#include "engine/loop.h"
#include "pool/relay_url.h"
#include "pool/smtp_session.h"
#include "pool/tls.h"

struct pool;
struct pool_dest;

struct pool_dest_config {
	struct relay_url url;
	const char *source_addr;          /* bind to this IP first; NULL: any */
	const char *ehlo_name;
	struct tls_ctx *tls;              /* for STARTTLS and implicit TLS */
	const struct sasl_creds *creds;   /* NULL: no AUTH */
	unsigned auth_mechs;
	int auth_plaintext_ok;
	int no_pipelining, no_chunking;
	unsigned max_inflight;            /* per session, with CHUNKING */
	unsigned max_conns;               /* 0: 1 */
	unsigned max_msgs_per_conn;       /* 0: no cap */
	uint32_t idle_timeout_ms;         /* 0: 5 s */
	uint32_t connect_timeout_ms;      /* 0: 30 s */
	unsigned down_after;              /* failed connects in a row before down; 0: 3 */
	uint32_t down_ms;                 /* how long down lasts; 0: 60 s */
	unsigned queue_max;               /* messages waiting; 0: 65536 */
	struct smtp_timeouts timeouts;    /* zero: RFC 5321 defaults */
};

/* What the pool tells its owner, for each recipient and each message. */
struct pool_outcome {
	const struct smtp_outcome *o;
	struct pool_dest *dest;
	const char *tls_version;          /* NULL for plaintext or never connected */
};

struct pool_callbacks {
	void (*rcpt_done)(void *user, const struct pool_outcome *po);
	/* The message is released: the pool no longer refers to it. */
	void (*msg_done)(void *user, const struct pool_outcome *po);
	void (*trace)(void *user, char dir, const char *line, size_t len);
};

/* Returns a new pool on loop l, or NULL (out of memory). */
struct pool *pool_new(struct loop *l, const struct pool_callbacks *cb, void *user);
/* Frees the pool; call only when pool_idle() (all sessions closed). */
void pool_free(struct pool *p);

/* Adds a destination. Resolves the host once (numeric addresses and names in
 * /etc/hosts; MX routing comes later). Returns NULL with a reason in err. */
struct pool_dest *pool_dest_new(struct pool *p, const struct pool_dest_config *cfg, char *err, size_t errlen);

/* Resolves a relay URL's address (numeric, /etc/hosts, or a Unix socket).
 * Returns 0, or -1 with a reason in err. */
int pool_resolve(const struct relay_url *u, struct sockaddr_storage *ss, socklen_t *len, char *err, size_t errlen);

/* Changes the connection and message-per-connection caps. */
void pool_dest_set_caps(struct pool_dest *d, unsigned max_conns, unsigned max_msgs_per_conn);

/* Queues a message (kept by the caller until msg_done). Returns 0, or
 * -EAGAIN when the queue is full (submit again after some msg_done). */
int pool_submit(struct pool_dest *d, struct smtp_msg *m);

/* What a destination has seen so far (for reports and benchmarks). */
struct pool_dest_stats {
	unsigned long long sessions_opened;   /* connections started */
	unsigned long long sessions_ready;    /* reached the point of taking mail */
	unsigned long long sessions_tls;      /* of those, over TLS */
	unsigned long long sessions_resumed;  /* of those, with a resumed TLS session */
	unsigned long long connect_failures;  /* never got ready */
};
void pool_dest_get_stats(const struct pool_dest *d, struct pool_dest_stats *out);

/* Messages queued and not yet handed to a session; sessions open. */
size_t pool_dest_queued(const struct pool_dest *d);
unsigned pool_dest_sessions(const struct pool_dest *d);
int pool_dest_is_down(const struct pool_dest *d);

/* Closes every session once its work is done (QUIT). */
void pool_shutdown(struct pool *p);
/* True when no session is open and nothing is queued. */
int pool_idle(const struct pool *p);

#endif
