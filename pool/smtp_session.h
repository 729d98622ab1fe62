/* smtp_session: the SMTP/LMTP client state machine. Pure: bytes in, bytes
 * out, callbacks with outcomes; no socket, no clock, no TLS (the I/O layer
 * below it runs the TLS handshake when the session asks for one).
 *
 * Pipelining works as in Postfix's smtp_proto.c: commands go out as soon as
 * the rules allow, and every command sent pushes an entry on a queue of
 * pending replies; each reply that arrives pops the oldest entry, so it is
 * always mapped back to the exact command, message and recipient it answers.
 *
 *   no PIPELINING  one command, one reply, in lock step.
 *   PIPELINING     RSET?, MAIL, every RCPT and DATA in one write; after 354
 *                  the body, the end-of-data dot and the next transaction's
 *                  commands in one write (RFC 2920 3.1).
 *   CHUNKING       MAIL, RCPT..., BDAT n LAST and the body; with PIPELINING
 *                  too, whole transactions back to back, at most
 *                  max_inflight of them unanswered.
 *
 * Every recipient of every message handed to the session gets exactly one
 * outcome, and every message one msg_done, whatever happens: a refusal, a
 * 421, a dropped connection (smtp_session_abort). Nothing is reported OK
 * without its 2xx. */
#ifndef VOLLEY_SMTP_SESSION_H
#define VOLLEY_SMTP_SESSION_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include "pool/smtp_reply.h"
#include "pool/smtp_ehlo.h"
#include "pool/sasl.h"

enum smtp_phase {
	SMTP_PHASE_CONNECT,
	SMTP_PHASE_GREETING,
	SMTP_PHASE_EHLO,       /* EHLO, HELO or LHLO */
	SMTP_PHASE_STARTTLS,   /* the STARTTLS command and the handshake after it */
	SMTP_PHASE_AUTH,
	SMTP_PHASE_MAIL,
	SMTP_PHASE_RCPT,
	SMTP_PHASE_DATA,       /* the DATA command, waiting for 354 */
	SMTP_PHASE_BODY,       /* the reply after the message: end of DATA or BDAT */
	SMTP_PHASE_RSET,
	SMTP_PHASE_CMD,        /* a raw command (VRFY, EXPN, HELP, NOOP, ...) */
	SMTP_PHASE_QUIT,
	SMTP_PHASE_TLS,        /* the handshake of implicit TLS, before the greeting */
	SMTP_PHASE_COUNT
};

/* Returns "connect", "greeting", "ehlo", ... */
const char *smtp_phase_name(enum smtp_phase p);

enum smtp_status {
	SMTP_STATUS_OK,        /* 2xx: delivered (for a recipient: accepted and the message taken) */
	SMTP_STATUS_TEMPFAIL,  /* 4xx, or the connection was lost: not delivered, may be retried */
	SMTP_STATUS_PERMFAIL,  /* 5xx: not delivered */
	SMTP_STATUS_LOCAL,     /* refused by volley before it was sent (see the reply text) */
};

const char *smtp_status_name(enum smtp_status s);

enum smtp_msg_need {
	SMTP_NEED_8BITMIME = 1u << 0,   /* the body has 8-bit bytes */
	SMTP_NEED_SMTPUTF8 = 1u << 1,   /* UTF-8 in addresses or headers */
};

/* A message to send. Owned by the caller, who must keep it (and everything
 * it points to) alive until msg_done reports it. */
struct smtp_msg {
	const char *from;                 /* "" for the null reverse-path */
	const char *const *rcpts;
	unsigned nrcpt;
	const char *body;                 /* CRLF line ends, not dot-stuffed */
	size_t body_len;
	unsigned need;                    /* enum smtp_msg_need bits */
	void *user;                       /* the caller's cookie */
};

struct smtp_outcome {
	struct smtp_msg *msg;
	int rcpt;                         /* recipient index; -1 for the whole message */
	enum smtp_phase phase;            /* the command whose reply decided it */
	enum smtp_status status;
	const struct smtp_reply *reply;   /* valid during the callback only */
};

enum smtp_tls_mode {
	SMTP_TLS_NONE,           /* never STARTTLS */
	SMTP_TLS_OPPORTUNISTIC,  /* STARTTLS when offered, plaintext otherwise */
	SMTP_TLS_REQUIRED,       /* STARTTLS or fail */
	SMTP_TLS_IMPLICIT,       /* the connection is TLS from the start */
};

/* Timeouts per phase (RFC 5321 4.5.3.2), in milliseconds; see
 * smtp_session_timeouts_default. */
struct smtp_timeouts {
	uint32_t ms[SMTP_PHASE_COUNT];
};
void smtp_session_timeouts_default(struct smtp_timeouts *t);

struct smtp_session_callbacks {
	/* One per recipient: its final outcome. */
	void (*rcpt_done)(void *user, const struct smtp_outcome *o);
	/* One per message, after all its recipients: the session no longer
	 * refers to msg. o->rcpt is -1; o->reply is the reply that ended the
	 * transaction. */
	void (*msg_done)(void *user, const struct smtp_outcome *o);
	/* The reply to a raw command queued with smtp_session_command. */
	void (*cmd_done)(void *user, void *cookie, const struct smtp_reply *r);
	/* The transcript: dir '<' for a line from the server, '>' for a line to
	 * it, '*' for a note (TLS started, N bytes of message data). AUTH
	 * payloads are redacted. line has no CRLF. May be NULL. */
	void (*trace)(void *user, char dir, const char *line, size_t len);
};

struct smtp_session_config {
	const char *ehlo_name;            /* the name after EHLO/HELO/LHLO */
	int lmtp;
	enum smtp_tls_mode tls;
	const struct sasl_creds *creds;   /* NULL: no AUTH */
	unsigned auth_mechs;              /* allowed mechanisms (0: any) */
	int auth_plaintext_ok;            /* allow AUTH without TLS */
	int no_pipelining;                /* never pipeline, even if offered */
	int no_chunking;                  /* use DATA even if CHUNKING is offered */
	unsigned max_inflight;            /* transactions unanswered (CHUNKING+PIPELINING); 0: 8 */
	int keep_greeting;                /* keep a copy for smtp_session_greeting */
	struct smtp_timeouts timeouts;
	struct smtp_session_callbacks cb;
	void *cb_user;
};

enum smtp_session_state {
	SMTP_SESSION_GREETING,   /* waiting for 220 */
	SMTP_SESSION_HELLO,      /* EHLO/HELO/LHLO, STARTTLS, AUTH under way */
	SMTP_SESSION_TLS,        /* wants the I/O layer to run the TLS handshake */
	SMTP_SESSION_READY,      /* takes messages and commands */
	SMTP_SESSION_QUITTING,
	SMTP_SESSION_CLOSED,     /* finished cleanly (QUIT answered) */
	SMTP_SESSION_FAILED,     /* see smtp_session_failure */
};

const char *smtp_session_state_name(enum smtp_session_state s);

struct smtp_session;

/* Returns a new session waiting for the greeting, or NULL (out of memory).
 * cfg is copied; the strings and creds it points to are borrowed. When
 * cfg->tls is SMTP_TLS_IMPLICIT the I/O layer has already secured the
 * connection. */
struct smtp_session *smtp_session_new(const struct smtp_session_config *cfg);
void smtp_session_free(struct smtp_session *s);

enum smtp_session_state smtp_session_state(const struct smtp_session *s);

/* Room for bytes received from the server: returns a pointer and sets *cap
 * (0 when the buffer is full, which only a malformed reply can cause). */
char *smtp_session_input_space(struct smtp_session *s, size_t *cap);
/* Takes n bytes written at smtp_session_input_space() and processes every
 * complete reply (callbacks run from here). Returns 0, or -1 when the session
 * has failed (protocol error, a fatal reply). */
int smtp_session_input_commit(struct smtp_session *s, size_t n);
/* Copying form of the two above. */
int smtp_session_input(struct smtp_session *s, const char *buf, size_t len);

/* The bytes to send next, as up to max iovecs; returns the count (0: nothing
 * to send). The memory stays valid and unchanged until
 * smtp_session_output_consumed(), which must come before the next call. */
int smtp_session_output(struct smtp_session *s, struct iovec *iov, int max);
void smtp_session_output_consumed(struct smtp_session *s, size_t n);
/* Bytes queued for sending (commands and bodies). */
size_t smtp_session_output_pending(const struct smtp_session *s);

/* After SMTP_SESSION_TLS: the I/O layer finished the handshake (ok) or did
 * not (!ok, with why). The session then sends EHLO again or fails. */
void smtp_session_tls_done(struct smtp_session *s, int ok, const char *why);

/* Whether a message can be handed over now (READY and below max_inflight). */
int smtp_session_can_send(const struct smtp_session *s);
/* Starts a transaction. Returns 0, or -1 when !smtp_session_can_send().
 * A message the server cannot take (SMTPUTF8 or 8BITMIME needed and not
 * offered, larger than SIZE, an invalid address) gets its outcomes at once
 * with SMTP_STATUS_LOCAL. */
int smtp_session_send(struct smtp_session *s, struct smtp_msg *m);
/* Transactions handed over and not finished. */
unsigned smtp_session_inflight(const struct smtp_session *s);
/* How many may be (settled when the session becomes ready: 1 without
 * PIPELINING, 2 without CHUNKING, else the configured max_inflight). */
unsigned smtp_session_capacity(const struct smtp_session *s);
/* With nothing in flight or queued, gives back the memory that only
 * traffic needs (the transaction slots and the window's rings); the next
 * message takes it again. Does nothing otherwise. */
void smtp_session_trim(struct smtp_session *s);
/* Shrinks an empty input buffer. Only for a caller with no receive posted
 * into it (one that reads through TLS, say): the buffer moves. */
void smtp_session_input_trim(struct smtp_session *s);

/* Queues a raw command line ("VRFY alice"); it is sent when no transaction
 * is under way, and its reply goes to cmd_done. Returns 0, or -1 when the
 * line is invalid (CR, LF, NUL, too long) or the session is not READY. */
int smtp_session_command(struct smtp_session *s, const char *line, void *cookie);

/* Sends QUIT once everything queued is answered. */
void smtp_session_quit(struct smtp_session *s);

/* Ends the session now (connection lost, timeout, local shutdown): every
 * message under way gets its outcomes as TEMPFAIL with a reply made from
 * code/enhanced/why (e.g. 421, "4.4.2", "connection timed out"). */
void smtp_session_abort(struct smtp_session *s, int code, const char *enhanced, const char *why);

/* How long the session may wait for the server from now on, in ms: the
 * timeout of the oldest unanswered command, or 0 when it waits for nothing. */
uint32_t smtp_session_timeout(const struct smtp_session *s);
/* The phase of the oldest unanswered command (for timeout messages). */
enum smtp_phase smtp_session_waiting_phase(const struct smtp_session *s);

/* After the greeting and EHLO: what the server offers; whether the
 * connection is encrypted; whether AUTH succeeded; the mechanism used. */
const struct smtp_caps *smtp_session_caps(const struct smtp_session *s);
int smtp_session_secure(const struct smtp_session *s);
int smtp_session_authenticated(const struct smtp_session *s);
/* The mechanism AUTH used (one enum smtp_auth_mech bit), 0 before AUTH. */
unsigned smtp_session_auth_mech(const struct smtp_session *s);
/* The server's greeting when cfg.keep_greeting asked for it; otherwise,
 * and before it arrives, a reply with code 0. */
const struct smtp_reply *smtp_session_greeting(const struct smtp_session *s);

/* When FAILED: the phase and the reply (real or made by volley) that ended
 * the session. */
enum smtp_phase smtp_session_failure(const struct smtp_session *s, const struct smtp_reply **r);

#endif
