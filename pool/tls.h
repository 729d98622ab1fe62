/* tls: TLS 1.2 and 1.3 over memory buffers, with wolfSSL.
 *
 * TLS never touches a socket. wolfSSL's I/O callbacks read ciphertext from an
 * input buffer the caller fills (tls_conn_feed) and write ciphertext to an
 * output buffer the caller drains (tls_conn_cipher_out / _consume); io_uring
 * moves those bytes. Both buffers are bounded.
 *
 * Clients verify the server's certificate chain (system CA store or a given CA
 * file) and its host name (DNS name or IP address in subjectAltName) unless
 * the context was made insecure; SNI is sent for host names. */
#ifndef VOLLEY_TLS_H
#define VOLLEY_TLS_H

#include <stddef.h>
#include <sys/types.h>

/* Results other than a byte count. */
#define TLS_ERROR  (-1)   /* fatal: see tls_conn_errstr() */
#define TLS_AGAIN  (-2)   /* needs more ciphertext in, or room to write out */
#define TLS_CLOSED (-3)   /* the peer sent close_notify */

/* Ciphertext buffers per connection, grown on demand up to these caps; a
 * full TLS record is 16 KiB + overhead. An idle connection keeps only
 * TLS_IN_IDLE bytes of input room (see tls_conn_recv_space) and no output
 * buffer (see tls_conn_trim). */
#define TLS_CIPHER_IN_MAX  (40 * 1024)
#define TLS_CIPHER_OUT_MAX (80 * 1024)
#define TLS_IN_IDLE        512
#define TLS_OUT_START      4096

#define TLS_DEFAULT_CA_FILE "/etc/ssl/certs/ca-certificates.crt"

struct tls_ctx_opts {
	int server;              /* a server context (tests, volley sink) */
	const char *ca_file;     /* client: trust anchors; NULL means the system store */
	int insecure;            /* client: accept any certificate (self-signed peers) */
	const char *cert_file;   /* server: certificate chain (PEM) */
	const char *key_file;    /* server: private key (PEM) */
	int min_version;         /* 12 or 13; 0 means 12 */
	int max_version;         /* 12 or 13; 0 means 13 (12 for peers that break on 1.3) */
	int no_aead_offload;     /* leave AES-GCM to wolfSSL and prefer ChaCha20, as
				  * on a CPU without AES-NI (see pool/tls_aead.h) */
};

struct tls_ctx;
struct tls_conn;
struct tls_saved;            /* a session kept for resumption */

/* Frees what TLS keeps per thread (wolfSSL's cache of elliptic-curve points,
 * megabytes once handshakes have run). Call it as a thread that used TLS
 * ends; the thread may use TLS again afterwards. */
void tls_thread_done(void);

/* Returns a new context, or NULL with a reason in err. */
struct tls_ctx *tls_ctx_new(const struct tls_ctx_opts *o, char *err, size_t errlen);
void tls_ctx_free(struct tls_ctx *ctx);

/* Returns a new connection in its handshake, or NULL (out of memory).
 * server_name (clients only) is sent as SNI when it is a host name and is the
 * name the certificate must match; resume, when not NULL, is offered for
 * session resumption. */
struct tls_conn *tls_conn_new(struct tls_ctx *ctx, const char *server_name,
			      const struct tls_saved *resume);
void tls_conn_free(struct tls_conn *c);

/* Receiving straight into the connection's input buffer: recv_space returns
 * room for at least `want` bytes where it can (growing the buffer, or
 * shrinking it back to TLS_IN_IDLE once drained) and sets *len to the room
 * (0 and NULL when the buffer is full or memory is short); the caller's
 * receive writes there, and recv_commit(n) adds the n bytes it got. The
 * room stays put until recv_commit. */
void *tls_conn_recv_space(struct tls_conn *c, size_t want, size_t *len);
void tls_conn_recv_commit(struct tls_conn *c, size_t n);

/* Hands ciphertext received from the peer to the connection (a copy, for
 * callers that receive elsewhere). Returns the number of bytes taken (less
 * than len when the input buffer is full). */
size_t tls_conn_feed(struct tls_conn *c, const void *buf, size_t len);

/* Ciphertext waiting to be sent: returns a pointer and sets *len (0 when
 * none). tls_conn_cipher_consume() drops n bytes once they are sent. The
 * bytes never move until then (new ciphertext is only appended, and the
 * buffer does not grow while bytes are lent), so they may be handed to the
 * kernel as they are. */
const void *tls_conn_cipher_out(struct tls_conn *c, size_t *len);
void tls_conn_cipher_consume(struct tls_conn *c, size_t n);

/* Ciphertext bytes waiting to be sent (a look only: nothing is lent). */
size_t tls_conn_cipher_pending(const struct tls_conn *c);

/* Frees the output buffer when nothing waits in it (for idle connections). */
void tls_conn_trim(struct tls_conn *c);

/* Drives the handshake. Returns 1 when it is complete, TLS_AGAIN when it
 * waits for the peer (send what tls_conn_cipher_out holds, feed what
 * arrives, call again), or TLS_ERROR. */
int tls_conn_handshake(struct tls_conn *c);

/* Reads decrypted bytes. Returns a count > 0, TLS_AGAIN, TLS_CLOSED or
 * TLS_ERROR. */
ssize_t tls_conn_read(struct tls_conn *c, void *buf, size_t cap);

/* Encrypts up to len bytes into the output buffer. Returns the count taken
 * (> 0), TLS_AGAIN when the output buffer has no room for a record, or
 * TLS_ERROR. */
ssize_t tls_conn_write(struct tls_conn *c, const void *buf, size_t len);

/* Queues a close_notify alert in the output buffer. */
void tls_conn_close_notify(struct tls_conn *c);

/* After the handshake: "TLSv1.3", the cipher suite name, who does the
 * cipher's work ("libcrypto" for AES-GCM through pool/tls_aead, else
 * "wolfssl"), whether the session was resumed. */
const char *tls_conn_version(const struct tls_conn *c);
const char *tls_conn_cipher(const struct tls_conn *c);
const char *tls_conn_aead(const struct tls_conn *c);
int tls_conn_resumed(const struct tls_conn *c);

/* The last error, e.g. "certificate verify failed: host name mismatch". */
const char *tls_conn_errstr(const struct tls_conn *c);

/* Returns the session for resuming a later connection to the same server,
 * or NULL; free it with tls_saved_free (NULL is fine). */
struct tls_saved *tls_conn_save(struct tls_conn *c);
void tls_saved_free(struct tls_saved *s);

#endif
