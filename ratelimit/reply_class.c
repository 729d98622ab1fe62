/* reply_class: see reply_class.h. The classes with their actions and their
 * PowerMTA and KumoMTA names, and the verdict: the rules' class, then the
 * two rules above every class, then what the action means for this code. */
#include "ratelimit/reply_class.h"
#include "ratelimit/reply_rules.h"

#include <string.h>

static const struct reply_class_info classes[RC_COUNT] = {
	[RC_INVALID_RECIPIENT] = { "invalid_recipient", REPLY_HARD, "bad-mailbox", "InvalidRecipient" },
	[RC_INACTIVE_MAILBOX] = { "inactive_mailbox", REPLY_HARD, "inactive-mailbox", "InactiveMailbox" },
	[RC_BAD_DOMAIN] = { "bad_domain", REPLY_HARD, "bad-domain", "BadDomain" },
	[RC_MAILBOX_FULL] = { "mailbox_full", REPLY_SOFT, "quota-issues", "QuotaIssues" },
	[RC_RECIPIENT_RATE_LIMITED] = { "recipient_rate_limited", REPLY_SOFT, "quota-issues",
					"QuotaIssues" },
	[RC_RATE_LIMITED] = { "rate_limited", REPLY_THROTTLE, "policy-related", "PolicyRelated" },
	[RC_CONNECTION_LIMIT] = { "connection_limit", REPLY_THROTTLE, "policy-related", "PolicyRelated" },
	[RC_REPUTATION_DEFERRAL] = { "reputation_deferral", REPLY_THROTTLE, "spam-related", "SpamBlock" },
	[RC_GREYLISTED] = { "greylisted", REPLY_SOFT, "other", "TransientFailure" },
	[RC_TRANSIENT_FAILURE] = { "transient_failure", REPLY_SOFT, "other", "TransientFailure" },
	[RC_CONNECTION_FAILURE] = { "connection_failure", REPLY_SOFT, "bad-connection", "BadConnection" },
	[RC_DNS_FAILURE] = { "dns_failure", REPLY_SOFT, "routing-errors", "DNSFailure" },
	[RC_TOO_MANY_RECIPIENTS] = { "too_many_recipients", REPLY_SOFT, "policy-related",
				     "TooManyRecipients" },
	[RC_BLOCKLISTED] = { "blocklisted", REPLY_BLOCK, "spam-related", "SpamBlock" },
	[RC_REPUTATION_BLOCK] = { "reputation_block", REPLY_BLOCK, "spam-related", "SpamBlock" },
	[RC_CONTENT_SPAM] = { "content_spam", REPLY_BLOCK, "content-related", "SpamContent" },
	[RC_AUTH_FAILURE] = { "auth_failure", REPLY_BLOCK, "policy-related", "AuthenticationFailed" },
	[RC_SENDER_CONFIG] = { "sender_config", REPLY_BLOCK, "bad-configuration", "BadConfiguration" },
	[RC_INVALID_SENDER] = { "invalid_sender", REPLY_BLOCK, "invalid-sender", "InvalidSender" },
	[RC_POLICY_REJECTION] = { "policy_rejection", REPLY_BLOCK, "policy-related", "PolicyRelated" },
	[RC_RELAYING_ROUTING] = { "relaying_routing", REPLY_SOFT, "relaying-issues", "RelayingIssues" },
	[RC_MESSAGE_FORMAT] = { "message_format", REPLY_OTHER, "content-related", "ContentRelated" },
	[RC_MESSAGE_TOO_LARGE] = { "message_too_large", REPLY_OTHER, "content-related", "ContentRelated" },
	[RC_VIRUS_OR_ATTACHMENT] = { "virus_or_attachment", REPLY_OTHER, "virus-related", "VirusRelated" },
	[RC_PROTOCOL_ERROR] = { "protocol_error", REPLY_OTHER, "protocol-errors", "ProtocolErrors" },
	[RC_MESSAGE_EXPIRED] = { "message_expired", REPLY_OTHER, "message-expired", "MessageExpired" },
	[RC_UNCATEGORIZED] = { "uncategorized", REPLY_OTHER, "other", "Uncategorized" },
};

const struct reply_class_info *reply_class_info(enum reply_class c)
{
	return (unsigned)c < RC_COUNT ? &classes[c] : &classes[RC_UNCATEGORIZED];
}

int reply_class_by_name(const char *name, size_t len)
{
	for (int i = 0; i < RC_COUNT; i++)
		if (strlen(classes[i].name) == len && memcmp(classes[i].name, name, len) == 0)
			return i;
	return -1;
}

const char *reply_action_name(enum reply_action a)
{
	static const char *const names[] = { "hard", "soft", "throttle", "block", "other" };

	return (unsigned)a < sizeof names / sizeof names[0] ? names[a] : "other";
}

void reply_classify(const struct reply_rules *r, const struct reply_facts *f,
		    struct reply_verdict *out)
{
	struct reply_rule_hit hit = { RC_UNCATEGORIZED, 0, NULL };
	/* no reply at all counts as temporary, as a 4xx does */
	int temporary = f->code < 500;

	if (!r || !reply_rules_match(r, f, &hit))
		hit = (struct reply_rule_hit){ RC_UNCATEGORIZED, 0, NULL };
	enum reply_action action = classes[hit.cls].action;
	if (hit.cls == RC_UNCATEGORIZED && temporary)
		action = REPLY_SOFT;
	/* above every class: a 4xx never makes a recipient hard, and a
	 * rejection that is not about the recipient (at connect, EHLO, MAIL, or
	 * after the message in SMTP) concerns the sender, not the address */
	if (action == REPLY_HARD && temporary)
		action = REPLY_SOFT;
	if (action == REPLY_HARD && !f->per_recipient)
		action = REPLY_OTHER;

	out->cls = hit.cls;
	out->action = action;
	out->rule = hit.name;
	out->suppress = action == REPLY_HARD;
	out->fail = action == REPLY_HARD || hit.permanent ||
		    ((action == REPLY_BLOCK || action == REPLY_OTHER) && !temporary);
	out->retry_now = hit.cls == RC_TOO_MANY_RECIPIENTS;
}
