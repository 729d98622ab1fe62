/* outcome_class: see outcome_class.h. */
#include "engine/outcome_class.h"

enum reply_phase outcome_reply_phase(enum smtp_phase phase)
{
	switch (phase) {
	case SMTP_PHASE_CONNECT:
	case SMTP_PHASE_GREETING:
		return REPLY_PHASE_CONNECT;
	case SMTP_PHASE_EHLO:
	case SMTP_PHASE_STARTTLS:
		return REPLY_PHASE_EHLO;
	case SMTP_PHASE_AUTH:
		return REPLY_PHASE_AUTH;
	case SMTP_PHASE_MAIL:
		return REPLY_PHASE_MAIL;
	case SMTP_PHASE_RCPT:
		return REPLY_PHASE_RCPT;
	default:   /* DATA, BDAT, the reply after the message; RSET and raw commands
		    * decide no outcome */
		return REPLY_PHASE_DATA;
	}
}

void outcome_classify(const struct reply_rules *rules, const struct smtp_outcome *o, int lmtp,
		      const char *provider, struct reply_verdict *out)
{
	const struct smtp_reply *r = o->reply;
	struct reply_facts f = {
		.code = r->code,
		.ec_class = r->ecls,
		.ec_subject = r->esub,
		.ec_detail = r->edet,
		.text = r->text,
		.text_len = r->text_len,
		.phase = outcome_reply_phase(o->phase),
		/* about this recipient alone: its RCPT, or LMTP's reply for it
		 * after the message */
		.per_recipient = o->rcpt >= 0 &&
				 (o->phase == SMTP_PHASE_RCPT || (lmtp && o->phase == SMTP_PHASE_BODY)),
		.provider = provider,
	};

	reply_classify(rules, &f, out);
}
