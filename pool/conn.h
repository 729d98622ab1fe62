/* conn: one SMTP session on one socket, driven by the io_uring loop.
 *
 * The thin I/O layer around smtp_session: it connects (TCP or Unix socket,
 * from a chosen source address), keeps one receive posted, sends what the
 * session queues (plaintext with sendmsg, or through tls_conn), runs the TLS
 * handshake for implicit TLS and STARTTLS, and arms one timer: the session's
 * reply timeout while it waits, the idle timeout while it does not.
 *
 * A conn is freed by the conn itself, from a loop callback, once none of its
 * operations is in flight: after CONN_EVENT_DONE the caller must forget it. */
#ifndef VOLLEY_CONN_H
#define VOLLEY_CONN_H

#include <stdint.h>
#include <sys/socket.h>
#include "engine/loop.h"
#include "pool/smtp_session.h"
#include "pool/tls.h"

struct conn;

enum conn_event {
	CONN_EVENT_READY,   /* the session can take a message or a command */
	CONN_EVENT_DONE,    /* closed or failed; outcomes already reported */
};

struct conn_config {
	struct sockaddr_storage addr;      /* where to connect */
	socklen_t addrlen;
	struct sockaddr_storage source;    /* bind to this first, when sourcelen > 0 */
	socklen_t sourcelen;
	struct tls_ctx *tls;               /* needed for IMPLICIT, REQUIRED, OPPORTUNISTIC */
	const char *tls_name;              /* SNI and the name to verify */
	struct tls_saved **tls_resume;     /* where the session for resumption is kept */
	uint32_t connect_timeout_ms;
	uint32_t idle_timeout_ms;          /* QUIT after this long with nothing to do; 0: never */
	struct smtp_session_config session;
	void (*on_event)(void *user, struct conn *c, enum conn_event ev);
	void *user;
};

/* Returns a new conn, already connecting, or NULL with errno set. */
struct conn *conn_open(struct loop *l, const struct conn_config *cfg);

struct smtp_session *conn_session(struct conn *c);

/* Hands a message to the session and starts sending. Returns 0 or -1 (see
 * smtp_session_send). */
int conn_send(struct conn *c, struct smtp_msg *m);
/* Queues a raw command (see smtp_session_command). */
int conn_command(struct conn *c, const char *line, void *cookie);
/* Ends the session politely (QUIT) once its work is done. */
void conn_quit(struct conn *c);
/* Ends it now: what is in flight fails as not delivered with why. */
void conn_abort(struct conn *c, const char *why);

/* After the handshake: "TLSv1.3 TLS13-CHACHA20-POLY1305-SHA256" style
 * details, or NULL for plaintext. */
const char *conn_tls_version(const struct conn *c);
const char *conn_tls_cipher(const struct conn *c);
int conn_tls_resumed(const struct conn *c);
/* Whether the connection ended because TLS failed (handshake, certificate),
 * and the phase that failed: SMTP_PHASE_TLS for implicit TLS, else
 * SMTP_PHASE_STARTTLS. */
int conn_tls_failed(const struct conn *c);
enum smtp_phase conn_tls_phase(const struct conn *c);
/* Whether the TCP connection was ever established. */
int conn_connected(const struct conn *c);
/* Why the connection itself failed (connect, TLS), or NULL. */
const char *conn_error(const struct conn *c);

#endif
