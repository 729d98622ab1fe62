/* reply_class: what a reply that is not a 2xx means for the recipient, the
 * message and the destination (the classes and actions of BOUNCES.md).
 *
 * A reply is classified from its code, enhanced status code (RFC 3463),
 * text and phase by rules that are data (reply_rules_parse; volley ships
 * ratelimit/bounce_rules.ini, which reply_rules_default compiles in, and a
 * user's file can replace it): the provider's own rules first, then generic
 * text, then enhanced codes, then reply codes. The class gives an action;
 * two rules sit above every class: a 4xx never makes a recipient hard, and
 * only a reply about the recipient (RCPT, or an LMTP reply per recipient
 * after the message) can suppress one.
 *
 * Pure: no I/O but reading a rules file, no allocation per reply. A
 * compiled rule set is read-only and may be shared by threads. */
#ifndef VOLLEY_REPLY_CLASS_H
#define VOLLEY_REPLY_CLASS_H

#include <stddef.h>

/* What the engine does (BOUNCES.md, "Actions"). */
enum reply_action {
	REPLY_HARD,       /* the recipient is suppressed, the message fails */
	REPLY_SOFT,       /* retried with backoff */
	REPLY_THROTTLE,   /* retried; the destination is slowed down */
	REPLY_BLOCK,      /* a sender problem: alert; 5xx fails, 4xx retried */
	REPLY_OTHER,      /* logged for review; 5xx fails, 4xx retried */
};

enum reply_class {
	/* the recipient */
	RC_INVALID_RECIPIENT,
	RC_INACTIVE_MAILBOX,
	RC_BAD_DOMAIN,
	RC_MAILBOX_FULL,
	RC_RECIPIENT_RATE_LIMITED,
	/* pressure from the destination */
	RC_RATE_LIMITED,
	RC_CONNECTION_LIMIT,
	RC_REPUTATION_DEFERRAL,
	RC_GREYLISTED,
	RC_TRANSIENT_FAILURE,
	RC_CONNECTION_FAILURE,
	RC_DNS_FAILURE,
	RC_TOO_MANY_RECIPIENTS,
	/* the sender */
	RC_BLOCKLISTED,
	RC_REPUTATION_BLOCK,
	RC_CONTENT_SPAM,
	RC_AUTH_FAILURE,
	RC_SENDER_CONFIG,
	RC_INVALID_SENDER,
	RC_POLICY_REJECTION,
	RC_RELAYING_ROUTING,
	/* the message */
	RC_MESSAGE_FORMAT,
	RC_MESSAGE_TOO_LARGE,
	RC_VIRUS_OR_ATTACHMENT,
	RC_PROTOCOL_ERROR,
	RC_MESSAGE_EXPIRED,
	RC_UNCATEGORIZED,
	RC_COUNT
};

/* A class's name (as rules and reports spell it), its action and the
 * nearest PowerMTA bounce category and KumoMTA bounce class, so that a
 * user moving from either keeps their reports. */
struct reply_class_info {
	const char *name;
	enum reply_action action;
	const char *powermta;
	const char *kumomta;
};

const struct reply_class_info *reply_class_info(enum reply_class c);
/* The class named name[0..len), or -1. */
int reply_class_by_name(const char *name, size_t len);
const char *reply_action_name(enum reply_action a);

/* Where a reply came (BOUNCES.md's phases). */
enum reply_phase {
	REPLY_PHASE_CONNECT,   /* the connection and the greeting */
	REPLY_PHASE_EHLO,      /* EHLO/HELO/LHLO and STARTTLS */
	REPLY_PHASE_AUTH,
	REPLY_PHASE_MAIL,
	REPLY_PHASE_RCPT,
	REPLY_PHASE_DATA,      /* DATA or BDAT, and the reply after the message */
	REPLY_PHASE_COUNT
};

/* A reply to classify. */
struct reply_facts {
	int code;                 /* 400-599; 0: no reply at all (a timeout, a lost
				   * connection: say what in text) */
	int ec_class;             /* the enhanced code class.subject.detail; */
	int ec_subject;           /* ec_class 0: the reply had none */
	int ec_detail;
	const char *text;         /* the reply text (its lines joined), not
				   * NUL-terminated; may be NULL when text_len is 0 */
	size_t text_len;
	enum reply_phase phase;
	int per_recipient;        /* the reply is about one recipient: RCPT, or
				   * LMTP's per-recipient reply after the message */
	const char *provider;     /* "gmail", "microsoft"... when the
				   * destination's provider is known; NULL: every
				   * provider's rules apply */
};

/* What a reply means, after the rules above every class. */
struct reply_verdict {
	enum reply_class cls;
	enum reply_action action;
	int fail;          /* the message fails for this recipient: not retried */
	int suppress;      /* the recipient goes on the suppression list now */
	int retry_now;     /* too many recipients: the rest go in a new
			    * transaction now, not after a backoff */
	const char *rule;  /* the name of the rule that decided; NULL when none
			    * did (uncategorized); valid while the rules are */
};

struct reply_rules;

#define REPLY_RULES_ERR_MAX 256

/* Compiles the rules in text[0..len), named name in errors. Returns them,
 * or NULL with "name:line: what" in err. */
struct reply_rules *reply_rules_parse(const char *text, size_t len, const char *name, char *err,
				      size_t errlen);
/* The same from a file. */
struct reply_rules *reply_rules_load(const char *path, char *err, size_t errlen);
/* The rules volley ships (ratelimit/bounce_rules.ini, compiled in). */
struct reply_rules *reply_rules_default(char *err, size_t errlen);
void reply_rules_free(struct reply_rules *r);
size_t reply_rules_count(const struct reply_rules *r);

/* Classifies f (a reply that is not a 2xx) into *out. */
void reply_classify(const struct reply_rules *r, const struct reply_facts *f,
		    struct reply_verdict *out);

#endif
