/* test_reply_class: the reply classifier with the rules volley ships
 * (replies as providers send them, the traps of BOUNCES.md, the two rules
 * above every class), and the rule language: its order, its tests and its
 * errors, each naming the file and line. */
#include "ratelimit/reply_class.h"
#include "tests/testutil.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* "550 5.1.1 text": the code, the enhanced code when there is one, and the
 * text after the code (as the engine hands over a parsed reply). */
static struct reply_facts facts(const char *reply, enum reply_phase phase, int per_recipient,
				const char *provider)
{
	struct reply_facts f = { .phase = phase, .per_recipient = per_recipient, .provider = provider };
	const char *s = reply;

	f.code = atoi(s);
	s += strspn(s, "0123456789");
	s += strspn(s, " -");
	int c, sub, det, used = 0;
	if (sscanf(s, "%1d.%3d.%3d%n", &c, &sub, &det, &used) == 3 && used > 0 &&
	    (s[used] == ' ' || s[used] == '\0')) {
		f.ec_class = c;
		f.ec_subject = sub;
		f.ec_detail = det;
	}
	f.text = s;
	f.text_len = strlen(s);
	return f;
}

struct want {
	const char *reply;
	enum reply_phase phase;
	int per_recipient;
	const char *provider;
	const char *cls;
	const char *action;
	int fail, suppress;
};

#define RCPT REPLY_PHASE_RCPT, 1
#define MAIL REPLY_PHASE_MAIL, 0
#define CONNECT REPLY_PHASE_CONNECT, 0
#define DATA REPLY_PHASE_DATA, 0
#define LMTP_DATA REPLY_PHASE_DATA, 1

static const struct want shipped[] = {
	/* the recipient */
	{ "550 5.1.1 <a@x.test>: Recipient address rejected: User unknown", RCPT, NULL,
	  "invalid_recipient", "hard", 1, 1 },
	{ "550 5.1.1 The email account that you tried to reach does not exist.", RCPT, "gmail",
	  "invalid_recipient", "hard", 1, 1 },
	{ "550 5.2.1 The email account that you tried to reach is disabled.", RCPT, NULL,
	  "inactive_mailbox", "hard", 1, 1 },
	{ "550 5.1.2 Host unknown: no such domain", RCPT, NULL, "bad_domain", "hard", 1, 1 },
	{ "556 5.1.10 Recipient address has null MX", RCPT, NULL, "bad_domain", "hard", 1, 1 },
	{ "552 5.2.2 <a@x.test>: mailbox full", RCPT, NULL, "mailbox_full", "soft", 0, 0 },
	{ "452 4.2.2 The email account that you tried to reach is over quota.", RCPT, "gmail",
	  "mailbox_full", "soft", 0, 0 },
	/* a 4xx never makes a recipient hard */
	{ "450 4.1.1 <a@x.test>: Recipient address rejected: User unknown in local table", RCPT,
	  NULL, "invalid_recipient", "soft", 0, 0 },
	/* only a reply about the recipient suppresses it */
	{ "550 5.1.1 User unknown", MAIL, NULL, "invalid_recipient", "other", 1, 0 },
	{ "550 5.1.1 <a@x.test>: user unknown", DATA, NULL, "invalid_recipient", "other", 1, 0 },
	{ "550 5.1.1 <a@x.test>: user unknown", LMTP_DATA, NULL, "invalid_recipient", "hard", 1, 1 },

	/* the traps */
	{ "550 5.2.1 The user you are trying to contact is receiving mail at a rate that prevents "
	  "additional messages from being delivered. Please resend your message at a later time. "
	  "ReceivingRatePerm", RCPT, "gmail", "recipient_rate_limited", "soft", 0, 0 },
	{ "550 Mail is rejected by recipients [a@qq.test]. frequency limited", RCPT, NULL,
	  "rate_limited", "throttle", 0, 0 },
	{ "421 4.7.1 [TS03] All messages from 192.0.2.1 will be permanently deferred; Retrying will "
	  "NOT succeed.", CONNECT, "yahoo", "reputation_block", "block", 1, 0 },
	{ "552 Too many recipients", RCPT, NULL, "too_many_recipients", "soft", 0, 0 },
	{ "452 4.5.3 Too many recipients", RCPT, NULL, "too_many_recipients", "soft", 0, 0 },
	{ "421 4.7.27 Your email has been rate limited because SPF authentication didn't pass for "
	  "this message.", DATA, "gmail", "auth_failure", "block", 0, 0 },
	{ "550 5.7.27 Sender address has null MX", MAIL, "example", "invalid_sender", "block", 1, 0 },

	/* pressure from the destination */
	{ "421 4.7.28 Our system has detected an unusual rate of unsolicited mail originating from "
	  "your IP address.", DATA, "gmail", "rate_limited", "throttle", 0, 0 },
	{ "451 4.7.500 Server busy. Please try again later from [192.0.2.1]. (S77719)", RCPT,
	  "microsoft", "rate_limited", "throttle", 0, 0 },
	{ "451 4.7.650 The mail server [192.0.2.1] has been temporarily rate limited due to IP "
	  "reputation.", RCPT, "microsoft", "reputation_deferral", "throttle", 0, 0 },
	{ "421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume "
	  "or user complaints", CONNECT, "yahoo", "reputation_deferral", "throttle", 0, 0 },
	{ "421 4.7.0 Too many concurrent connections from this IP", CONNECT, NULL,
	  "connection_limit", "throttle", 0, 0 },
	{ "450 4.2.0 <a@x.test>: Recipient address rejected: Greylisted, see "
	  "https://postgrey.example.test/", RCPT, NULL, "greylisted", "soft", 0, 0 },
	{ "451 4.3.0 Mail server temporarily rejected message.", DATA, NULL, "transient_failure",
	  "soft", 0, 0 },
	{ "451 4.4.3 Temporary lookup failure", RCPT, NULL, "dns_failure", "soft", 0, 0 },
	{ "0 connection closed by the server before its reply", DATA, NULL, "connection_failure",
	  "soft", 0, 0 },
	{ "0", CONNECT, NULL, "connection_failure", "soft", 0, 0 },

	/* the sender */
	{ "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org",
	  CONNECT, NULL, "blocklisted", "block", 1, 0 },
	{ "550 5.7.1 Message rejected as spam by Content Filtering.", DATA, NULL, "content_spam",
	  "block", 1, 0 },
	{ "550 5.7.26 Unauthenticated email from x.test is not accepted due to domain's DMARC policy",
	  DATA, NULL, "auth_failure", "block", 1, 0 },
	{ "550 5.7.25 The IP address sending this message does not have a PTR record setup",
	  CONNECT, NULL, "sender_config", "block", 1, 0 },
	{ "535 5.7.8 Username and Password not accepted", REPLY_PHASE_AUTH, 0, NULL,
	  "sender_config", "block", 1, 0 },
	{ "553 5.1.8 <s@x.test>: Sender address rejected: Domain not found", MAIL, NULL,
	  "invalid_sender", "block", 1, 0 },
	{ "550 5.7.1 Message rejected", DATA, NULL, "policy_rejection", "block", 1, 0 },
	{ "554 5.7.1 <a@x.test>: Relay access denied", RCPT, NULL, "relaying_routing", "soft", 0, 0 },

	/* the message */
	{ "552 5.3.4 Message size exceeds fixed limit", DATA, NULL, "message_too_large", "other", 1,
	  0 },
	{ "554 5.6.0 Message is not RFC 5322 compliant", DATA, NULL, "message_format", "other", 1, 0 },
	{ "554 5.7.0 Message contains a virus", DATA, NULL, "virus_or_attachment", "other", 1, 0 },
	{ "503 5.5.1 Error: need RCPT command", DATA, NULL, "protocol_error", "other", 1, 0 },
	{ "500 unrecognized command", MAIL, NULL, "protocol_error", "other", 1, 0 },

	/* nothing matches: other for a 5xx, soft for a 4xx */
	{ "550 5.9.9 something nobody wrote a rule for", RCPT, NULL, "uncategorized", "other", 1, 0 },
	{ "451 nobody wrote a rule for this either", RCPT, NULL, "uncategorized", "soft", 0, 0 },
};

static void test_shipped(const struct reply_rules *r)
{
	for (size_t i = 0; i < sizeof shipped / sizeof shipped[0]; i++) {
		const struct want *w = &shipped[i];
		struct reply_facts f = facts(w->reply, w->phase, w->per_recipient, w->provider);
		struct reply_verdict v;
		reply_classify(r, &f, &v);
		const char *cls = reply_class_info(v.cls)->name;
		const char *action = reply_action_name(v.action);
		t_checks++;
		if (strcmp(cls, w->cls) || strcmp(action, w->action) || v.fail != w->fail ||
		    v.suppress != w->suppress)
			T_FAIL("\"%s\": got %s/%s fail=%d suppress=%d (rule %s), want %s/%s fail=%d "
			       "suppress=%d", w->reply, cls, action, v.fail, v.suppress,
			       v.rule ? v.rule : "none", w->cls, w->action, w->fail, w->suppress);
	}
}

/* Provider rules apply to their provider, and to all when it is unknown. */
static void test_provider_scope(const struct reply_rules *r)
{
	const char *reply = "421 4.7.28 Our system has detected an unusual rate of unsolicited mail";
	struct reply_verdict v;
	struct reply_facts f = facts(reply, DATA, NULL);

	reply_classify(r, &f, &v);
	T_EQ_STR(reply_class_info(v.cls)->name, "rate_limited");
	T_EQ_STR(v.rule, "gmail-rate-limited");
	f = facts(reply, DATA, "microsoft");
	reply_classify(r, &f, &v);
	T_EQ_STR(reply_class_info(v.cls)->name, "content_spam");
	T_EQ_STR(v.rule, "spam-content-text");
}

/* The text is taken by its length, not up to a NUL. */
static void test_text_by_length(const struct reply_rules *r)
{
	struct reply_verdict v;
	struct reply_facts f = facts("550 user unknown", RCPT, NULL);

	f.text_len = 4;   /* "user" */
	reply_classify(r, &f, &v);
	T_EQ_STR(reply_class_info(v.cls)->name, "uncategorized");
	T_TRUE(v.rule == NULL);
	f.text_len = strlen(f.text);
	reply_classify(r, &f, &v);
	T_EQ_STR(reply_class_info(v.cls)->name, "invalid_recipient");
}

static void test_retry_now(const struct reply_rules *r)
{
	struct reply_verdict v;
	struct reply_facts f = facts("452 4.5.3 Too many recipients", RCPT, NULL);

	reply_classify(r, &f, &v);
	T_EQ_INT(v.retry_now, 1);
	f = facts("452 4.2.2 mailbox full", RCPT, NULL);
	reply_classify(r, &f, &v);
	T_EQ_INT(v.retry_now, 0);
}

static void test_classes(void)
{
	for (int i = 0; i < RC_COUNT; i++) {
		const struct reply_class_info *c = reply_class_info((enum reply_class)i);
		T_TRUE(c->name && c->powermta && c->kumomta);
		T_EQ_INT(reply_class_by_name(c->name, strlen(c->name)), i);
	}
	T_EQ_INT(reply_class_by_name("nope", 4), -1);
	T_EQ_INT(reply_class_by_name("bad_domainx", 10), RC_BAD_DOMAIN);   /* by length */
	T_EQ_STR(reply_class_info(RC_BLOCKLISTED)->powermta, "spam-related");
	T_EQ_STR(reply_class_info(RC_INVALID_RECIPIENT)->kumomta, "InvalidRecipient");
}

static struct reply_rules *parse(const char *text, char *err)
{
	return reply_rules_parse(text, strlen(text), "t.ini", err, REPLY_RULES_ERR_MAX);
}

/* Provider rules, then text, then enhanced codes, then reply codes, each
 * in file order; every key of a rule must match. */
static void test_order(void)
{
	char err[REPLY_RULES_ERR_MAX];
	struct reply_rules *r = parse("[by-code]\nclass = protocol_error\ncode = 5xx\n"
				      "[by-ec]\nclass = policy_rejection\nenhanced = X.7.*\n"
				      "[by-text]\nclass = content_spam\ntext = spam\n"
				      "[by-text-2]\nclass = blocklisted\ntext = spam\n"
				      "[mine]\nprovider = acme\nclass = rate_limited\ntext = spam\n"
				      "[rcpt-only]\nclass = invalid_recipient\nphase = rcpt\ncode = 551\n"
				      "[both]\nclass = bad_domain\ncode = 4xx\nenhanced = 4.1.2\n",
				      err);
	struct reply_verdict v;
	struct reply_facts f;

	T_TRUE(r != NULL);
	if (!r) {
		fprintf(stderr, "%s\n", err);
		return;
	}
	T_EQ_INT(reply_rules_count(r), 7);
	static const struct {
		const char *reply;
		enum reply_phase phase;
		int per_recipient;
		const char *provider, *rule;
	} order[] = {
		{ "550 5.7.1 spam", DATA, "acme", "mine" },
		{ "550 5.7.1 spam", DATA, "other", "by-text" },
		{ "550 5.7.1 no", DATA, NULL, "by-ec" },
		{ "550 5.1.1 no", DATA, NULL, "by-code" },
		{ "551 no", MAIL, NULL, "by-code" },
		{ "551 no", RCPT, NULL, "by-code" },   /* by-code comes first in the same tier */
		{ "451 4.1.2 x", RCPT, NULL, "both" },
		{ "451 4.1.3 x", RCPT, NULL, "none" },
	};
	for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
		f = facts(order[i].reply, order[i].phase, order[i].per_recipient, order[i].provider);
		reply_classify(r, &f, &v);
		T_EQ_STR(v.rule ? v.rule : "none", order[i].rule);
	}
	reply_rules_free(r);

	/* text alternatives, continued lines, ranges, wildcards, "permanent" */
	r = parse("[a]\nclass = reputation_block\ntext = first\ntext = second\n  third\n"
		  "enhanced = 4.7.20-26, X.3.*\npermanent = yes\n", err);
	T_TRUE(r != NULL);
	if (!r) {
		fprintf(stderr, "%s\n", err);
		return;
	}
	const char *yes[] = { "421 4.7.20 first", "421 4.7.26 SECOND", "421 4.3.9 third" };
	const char *no[] = { "421 4.7.27 first", "421 4.7.19 first", "421 4.2.9 first",
			     "421 first" };
	for (size_t i = 0; i < 3; i++) {
		f = facts(yes[i], CONNECT, NULL);
		reply_classify(r, &f, &v);
		T_EQ_STR(v.rule ? v.rule : "none", "a");
		T_EQ_INT(v.fail, 1);   /* permanent despite the 4xx */
	}
	for (size_t i = 0; i < 4; i++) {
		f = facts(no[i], CONNECT, NULL);
		reply_classify(r, &f, &v);
		T_TRUE(v.rule == NULL);
		T_EQ_INT(v.fail, 0);
	}
	reply_rules_free(r);
}

static void test_errors(void)
{
	static const struct {
		const char *text, *err;
	} bad[] = {
		{ "class = bad_domain\n", "t.ini:1: a key before the first [rule]" },
		{ "[a]\ncode = 550\nclass = nope\n", "t.ini:3: rule [a]: no class 'nope'" },
		{ "[a]\ncode = 550\n", "t.ini: rule [a]: no class" },
		{ "[a]\nclass = bad_domain\nphase = rcpt\n",
		  "t.ini: rule [a] matches every reply: give text, enhanced or code" },
		{ "[a]\nclass = bad_domain\nprovider = acme\n",
		  "t.ini: rule [a] matches every reply: give text, enhanced or code" },
		{ "[a]\nclass = bad_domain\ncode = 550\n[b]\nclass = bad_domain\ncode = 551\n"
		  "[a]\nclass = bad_domain\n", "t.ini:8: rule [a] given twice" },   /* its first key */
		{ "[a]\nclass = bad_domain\nclass = bad_domain\n",
		  "t.ini:3: rule [a]: class given twice" },
		{ "[a]\nclass = bad_domain\nenhanced = 5.x.1\n",
		  "t.ini:3: rule [a]: enhanced: not a code: '5.x.1'" },
		{ "[a]\nclass = bad_domain\nenhanced = X.7.26-20\n",
		  "t.ini:3: rule [a]: enhanced: not a code: 'X.7.26-20'" },
		{ "[a]\nclass = bad_domain\ncode = 250\n",
		  "t.ini:3: rule [a]: code: not a 4xx or 5xx code: '250'" },
		{ "[a]\nclass = bad_domain\ncode = 55\n",
		  "t.ini:3: rule [a]: code: not a 4xx or 5xx code: '55'" },
		{ "[a]\nclass = bad_domain\ncode = 550\nphase = body\n",
		  "t.ini:4: rule [a]: phase: no phase 'body' (connect, ehlo, auth, mail, rcpt, data)" },
		{ "[a]\nclass = bad_domain\ncode = 550\npermanent = maybe\n",
		  "t.ini:4: rule [a]: permanent: 'maybe' is not yes or no" },
		{ "[a]\nclass = bad_domain\ncolour = red\n",
		  "t.ini:3: rule [a]: no key 'colour' (class, text, provider, enhanced, code, phase, "
		  "permanent)" },
		{ "[a]\nclass = bad_domain\ntext = (unclosed\n", "t.ini: rule [a]: text: " },
		{ "[a]\nclass = bad_domain\njust words\n",
		  "t.ini:3: not a [rule] or key = value line (at most 199 characters a line)" },
		{ "; nothing\n", "t.ini: no rules" },
	};
	char err[REPLY_RULES_ERR_MAX];

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err[0] = '\0';
		struct reply_rules *r = parse(bad[i].text, err);
		t_checks++;
		if (r || strncmp(err, bad[i].err, strlen(bad[i].err)) != 0)
			T_FAIL("rules %zu: got \"%s\", want \"%s\"", i, r ? "(parsed)" : err, bad[i].err);
		reply_rules_free(r);
	}

	/* a line longer than inih takes is an error, not a rule cut short */
	char longer[600];
	snprintf(longer, sizeof longer, "[a]\nclass = bad_domain\ntext = %0300d\n", 0);
	struct reply_rules *r = parse(longer, err);
	T_TRUE(r == NULL);
	reply_rules_free(r);

	/* a NUL in the rules */
	r = reply_rules_parse("[a]\0", 4, "t.ini", err, sizeof err);
	T_TRUE(r == NULL);
	T_EQ_STR(err, "t.ini: a NUL byte in the rules");

	r = reply_rules_load("/nonexistent/rules.ini", err, sizeof err);
	T_TRUE(r == NULL);
	T_EQ_STR(err, "/nonexistent/rules.ini: No such file or directory");
}

/* The shipped file, read from disk, is the one built in. */
static void test_load_file(void)
{
	char err[REPLY_RULES_ERR_MAX];
	struct reply_rules *file = reply_rules_load("../ratelimit/bounce_rules.ini", err, sizeof err);
	struct reply_rules *built = reply_rules_default(err, sizeof err);

	T_TRUE(file != NULL && built != NULL);
	if (file && built)
		T_EQ_INT(reply_rules_count(file), reply_rules_count(built));
	reply_rules_free(file);
	reply_rules_free(built);
}

int main(void)
{
	char err[REPLY_RULES_ERR_MAX];
	struct reply_rules *r = reply_rules_default(err, sizeof err);

	if (!r) {
		fprintf(stderr, "test_reply_class: the shipped rules: %s\n", err);
		return 1;
	}
	T_TRUE(reply_rules_count(r) > 40);
	test_shipped(r);
	test_provider_scope(r);
	test_text_by_length(r);
	test_retry_now(r);
	reply_rules_free(r);
	test_classes();
	test_order();
	test_errors();
	test_load_file();
	return t_done("test_reply_class");
}
