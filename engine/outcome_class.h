/* outcome_class: the reply classifier (ratelimit/reply_class.h) applied to
 * what the pool reports (pool/smtp_session.h): a failed recipient's or
 * message's outcome, with the phase it failed in and whether its reply was
 * about that recipient alone. */
#ifndef VOLLEY_OUTCOME_CLASS_H
#define VOLLEY_OUTCOME_CLASS_H

#include "pool/smtp_session.h"
#include "ratelimit/reply_class.h"

/* The classifier's phase for a session's. */
enum reply_phase outcome_reply_phase(enum smtp_phase phase);

/* Classifies o (not SMTP_STATUS_OK) into *out. lmtp: the session speaks
 * LMTP, whose replies after the message are one per recipient. provider:
 * the destination's provider when known, else NULL. */
void outcome_classify(const struct reply_rules *rules, const struct smtp_outcome *o, int lmtp,
		      const char *provider, struct reply_verdict *out);

#endif
