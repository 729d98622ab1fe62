/* sink_session: the server side of one SMTP session, for volley sink. Pure:
 * bytes in, replies out, no socket, no clock, no TLS (the I/O layer runs the
 * handshake when the session asks for one), as pool/smtp_session is for the
 * client.
 *
 * Input is taken as it comes, split anywhere: many pipelined commands in one
 * read, a command split over several reads, a DATA or BDAT body in pieces.
 * Replies are appended to one output buffer, so the replies to everything a
 * read held leave in one write. A command line is never buffered past
 * SINK_LINE_MAX: a longer one is discarded up to its line end and answered
 * 500. Bodies are never buffered at all: they are streamed, dot-unstuffed,
 * to the body_data hook.
 *
 * Policy (fault injection, greylisting, rates) is not decided here: at each
 * stage the session asks the decide hook, which answers with a verdict. */
#ifndef VOLLEY_SINK_SESSION_H
#define VOLLEY_SINK_SESSION_H

#include <stddef.h>
#include <stdint.h>
#include "bench/sink_stats.h"
#include "pool/smtp_ehlo.h"   /* enum smtp_ext, enum smtp_auth_mech */

/* The longest command line kept (CRLF included): RFC 5321 4.5.3.1.4 allows
 * 512 octets, RFC 3461 adds 100 to MAIL and 500 to RCPT, RFC 4954 lets AUTH
 * lines be longer; so MAIL, RCPT, AUTH and SASL responses may use all of
 * SINK_LINE_MAX and every other command SINK_CMD_MAX. */
#define SINK_CMD_MAX   512
#define SINK_LINE_MAX  2048
/* The longest reply text a verdict may carry. */
#define SINK_TEXT_MAX  400
/* Output kept before input stops being consumed (the client reads slowly). */
#define SINK_OUT_SOFT  (16 * 1024)
#define SINK_OUT_MAX   (64 * 1024)
/* Recipients in one transaction (RFC 5321 4.5.3.1.8 asks for 100 at least). */
#define SINK_RCPT_MAX  1000
/* Bad commands before the session is closed with 421 (Postfix's default). */
#define SINK_ERROR_MAX 20

/* Where a decision is asked for. */
enum sink_stage {
	SINK_STAGE_CONNECT,   /* before the greeting */
	SINK_STAGE_HELO,      /* EHLO or HELO */
	SINK_STAGE_MAIL,
	SINK_STAGE_RCPT,
	SINK_STAGE_DATA,      /* the DATA command, or the first BDAT */
	SINK_STAGE_BODY,      /* asked when the body starts, applied at its end */
	SINK_STAGE_COUNT
};

/* Returns "connect", "helo", "mail", "rcpt", "data", "body"; NULL for others. */
const char *sink_stage_name(enum sink_stage st);

enum sink_action {
	SINK_ACCEPT,   /* the normal reply */
	SINK_REPLY,    /* the verdict's code and text instead; 421 also closes */
	SINK_DROP,     /* close without a reply; at BODY, once body bytes arrive */
};

struct sink_verdict {
	enum sink_action action;
	int code;                /* SINK_REPLY: 200..599 */
	const char *enhanced;    /* "4.7.1", or NULL */
	const char *text;        /* copied before decide's caller returns */
	uint32_t delay_ms;       /* added to the delay of the reply */
};

/* What the decide hook may look at. Strings are the session's and valid
 * during the call only. */
struct sink_view {
	enum sink_stage stage;
	const char *helo;        /* "" before EHLO/HELO */
	const char *from;        /* "" before MAIL and for the null path */
	const char *rcpt;        /* RCPT: the address being decided; else NULL */
	const char *rcpts;       /* accepted recipients, each NUL-terminated */
	unsigned nrcpt;          /* how many */
	unsigned messages;       /* messages accepted on this session so far */
	int secure, authed;
	uint64_t body_len;       /* body bytes (unstuffed) received so far */
};

struct sink_hooks {
	/* Fills *v, which arrives set to SINK_ACCEPT with no delay. May be NULL. */
	void (*decide)(void *user, const struct sink_view *view, struct sink_verdict *v);
	/* A body starts (after 354, or at the first BDAT); then its bytes, as
	 * they arrive, unstuffed; then its end: accepted (the 250 is about to
	 * be sent) or not. body_end may set *delay_ms, a delay before that
	 * reply (--max-rate); it returns 0, or -1 when the message could not
	 * be kept, which turns the 250 into "451 4.3.0". Any may be NULL. */
	void (*body_begin)(void *user, const struct sink_view *view);
	void (*body_data)(void *user, const char *p, size_t n);
	int (*body_end)(void *user, int accepted, uint32_t *delay_ms);
	void *user;
};

struct sink_auth;

/* What every session of a sink shares (read-only once prepared). */
struct sink_config {
	const char *hostname;        /* in the greeting and the EHLO reply */
	unsigned ext;                /* enum smtp_ext bits to offer */
	unsigned auth_mechs;         /* enum smtp_auth_mech bits to offer */
	uint64_t size_max;           /* SIZE; 0: no limit (and SIZE without a number) */
	const struct sink_auth *auth;/* credentials; NULL: no AUTH */
	uint32_t reply_delay_ms;     /* before every reply (--delay) */
	/* Made by sink_config_prepare. */
	char ehlo_plain[512];        /* the EHLO reply before TLS (no AUTH if TLS is offered) */
	char ehlo_secure[512];       /* after TLS: no STARTTLS, AUTH */
	size_t ehlo_plain_len, ehlo_secure_len;
};

/* Builds the EHLO replies from the fields above. SMTP_EXT_STARTTLS in ext
 * means TLS is available. AUTH is offered only when auth is set, and, when
 * STARTTLS is offered, only once the session is secure. Returns 0, or -1 when
 * a reply would not fit. */
int sink_config_prepare(struct sink_config *cfg);

enum sink_session_state {
	SINK_SESSION_OPEN,      /* reading commands */
	SINK_SESSION_TLS,       /* send the output, then run the TLS handshake */
	SINK_SESSION_CLOSING,   /* send the output, then close */
	SINK_SESSION_DROPPED,   /* close without another reply (what is queued may leave) */
};

struct sink_session;

/* Returns a new session, or NULL (out of memory). cfg, hooks and counters
 * are borrowed. secure: the connection is TLS already (implicit TLS). nonce
 * makes the CRAM-MD5 challenge unique. Call sink_session_start next. */
struct sink_session *sink_session_new(const struct sink_config *cfg, const struct sink_hooks *hooks,
				      struct sink_stats *stats, int secure, uint64_t nonce);
/* (stats must not be NULL: the session counts replies, messages, AUTH.) */
void sink_session_free(struct sink_session *s);

/* Decides the connection (SINK_STAGE_CONNECT) and queues the greeting. */
void sink_session_start(struct sink_session *s);

/* Takes bytes from the client. Returns how many it consumed: less than len
 * when it must stop until the output is sent (SINK_OUT_SOFT reached, or the
 * output is lent and full), or when the state changed to anything but OPEN
 * (the rest is then not for this session: after STARTTLS it is discarded as
 * RFC 3207 and CVE-2011-0411 ask, and len is returned). */
size_t sink_session_input(struct sink_session *s, const char *buf, size_t len);

/* The replies to send: returns a pointer and sets *len (0: none). The bytes
 * stay where they are until sink_session_output_consumed(), which must come
 * before the next call; replies may be appended meanwhile. */
const char *sink_session_output(struct sink_session *s, size_t *len);
void sink_session_output_consumed(struct sink_session *s, size_t n);
size_t sink_session_output_pending(const struct sink_session *s);

/* The delay (ms) the replies queued since the last call must wait; resets it. */
uint32_t sink_session_take_delay(struct sink_session *s);

enum sink_session_state sink_session_state(const struct sink_session *s);
/* Whether the session is inside a DATA or BDAT body (reads may be large). */
int sink_session_in_body(const struct sink_session *s);

/* After SINK_SESSION_TLS: the handshake is done. The session forgets what it
 * knew (EHLO, AUTH, the transaction) as RFC 3207 4.2 asks, and reads again. */
void sink_session_tls_done(struct sink_session *s);

/* The sink is stopping: queues "421 4.3.2" and closes (unless closed). */
void sink_session_shutdown(struct sink_session *s);
/* The client was silent too long: queues "421 4.4.2" and closes. */
void sink_session_timeout(struct sink_session *s);

#endif
