/* Tests of volley sink's server session: exact replies for every command and
 * sequence error, pipelined input fed at every split point (replies batched
 * into one output per input), DATA unstuffing, BDAT bodies split anywhere,
 * SIZE, AUTH with volley's own SASL client, STARTTLS, verdicts from hooks,
 * bounded input and output. */
#include "bench/sink_auth.h"
#include "bench/sink_session.h"
#include "pool/sasl.h"
#include "tests/guard.h"
#include "tests/testutil.h"

#include <stdint.h>
#include <stdlib.h>

#define ALL_EXT (SMTP_EXT_PIPELINING | SMTP_EXT_CHUNKING | SMTP_EXT_SIZE | SMTP_EXT_8BITMIME | \
		 SMTP_EXT_SMTPUTF8 | SMTP_EXT_ENHANCEDSTATUSCODES | SMTP_EXT_DSN)
#define ALL_MECHS (SMTP_AUTH_PLAIN | SMTP_AUTH_LOGIN | SMTP_AUTH_CRAM_MD5 | SMTP_AUTH_XOAUTH2)

struct harness {
	struct sink_config cfg;
	struct sink_hooks hooks;
	struct sink_stats st;
	struct sink_session *s;
	char *out;
	size_t out_len, out_cap;
	char body[1 << 16];
	size_t body_len;
	int begun, ended, accepted;
	unsigned inputs_with_output;   /* input calls after which output was waiting */
	/* the verdict the decide hook gives at one stage */
	enum sink_stage at;
	struct sink_verdict verdict;
	const char *only_rcpt;         /* at RCPT: only for this recipient */
	char decided[256];             /* "stage:rcpt;" per decide call */
	size_t decided_len;
	uint32_t end_delay;
	int fail_store;
};

static void hk_decide(void *u, const struct sink_view *view, struct sink_verdict *v)
{
	struct harness *h = u;
	int n = snprintf(h->decided + h->decided_len, sizeof h->decided - h->decided_len, "%s%s%s;",
			 sink_stage_name(view->stage), view->rcpt ? ":" : "", view->rcpt ? view->rcpt : "");
	if (n > 0 && (size_t)n < sizeof h->decided - h->decided_len)
		h->decided_len += (size_t)n;
	if (view->stage != h->at)
		return;
	if (h->only_rcpt && (!view->rcpt || strcmp(view->rcpt, h->only_rcpt) != 0))
		return;
	*v = h->verdict;
}

static void hk_begin(void *u, const struct sink_view *view)
{
	struct harness *h = u;
	h->begun++;
	h->body_len = 0;
	(void)view;
}

static void hk_data(void *u, const char *p, size_t n)
{
	struct harness *h = u;
	if (n > sizeof h->body - h->body_len)
		n = sizeof h->body - h->body_len;
	memcpy(h->body + h->body_len, p, n);
	h->body_len += n;
}

static int hk_end(void *u, int accepted, uint32_t *delay_ms)
{
	struct harness *h = u;
	h->ended++;
	h->accepted += accepted;
	*delay_ms = h->end_delay;
	return h->fail_store ? -1 : 0;
}

static struct sink_auth *creds_table;

static struct harness *h_new(unsigned ext, int with_auth)
{
	struct harness *h = calloc(1, sizeof *h);
	h->cfg.hostname = "sink.test";
	h->cfg.ext = ext;
	h->cfg.size_max = 1000;
	if (with_auth) {
		h->cfg.ext |= SMTP_EXT_AUTH;
		h->cfg.auth = creds_table;
		h->cfg.auth_mechs = ALL_MECHS;
	}
	if (sink_config_prepare(&h->cfg) != 0)
		T_FAIL("sink_config_prepare failed");
	h->hooks = (struct sink_hooks){ hk_decide, hk_begin, hk_data, hk_end, h };
	h->at = SINK_STAGE_COUNT;
	h->out_cap = 1 << 16;
	h->out = malloc(h->out_cap);
	return h;
}

static void h_start(struct harness *h, int secure)
{
	h->s = sink_session_new(&h->cfg, &h->hooks, &h->st, secure, 42);
	sink_session_start(h->s);
}

static void h_free(struct harness *h)
{
	sink_session_free(h->s);
	free(h->out);
	free(h);
}

/* Moves the session's output into h->out. Returns the bytes moved. */
static size_t h_drain(struct harness *h)
{
	size_t len;
	const char *p = sink_session_output(h->s, &len);
	if (!len)
		return 0;
	if (h->out_len + len > h->out_cap) {
		h->out_cap = (h->out_len + len) * 2;
		h->out = realloc(h->out, h->out_cap);
	}
	memcpy(h->out + h->out_len, p, len);
	h->out_len += len;
	sink_session_output_consumed(h->s, len);
	return len;
}

/* Feeds bytes as one read would: input, then one drain per input call.
 * Returns the bytes the session took in all. */
static size_t h_feed(struct harness *h, const char *p, size_t len)
{
	size_t total = 0;
	while (len) {
		size_t k = sink_session_input(h->s, p, len);
		if (h_drain(h))
			h->inputs_with_output++;
		total += k;
		p += k;
		len -= k;
		if (k == 0 || sink_session_state(h->s) != SINK_SESSION_OPEN)
			break;
	}
	return total;
}

static void h_in(struct harness *h, const char *text)
{
	h_feed(h, text, strlen(text));
}

#define EXPECT(h, want) do { \
	h_drain(h); \
	T_EQ_MEM((h)->out, (h)->out_len, want, strlen(want)); \
	(h)->out_len = 0; \
} while (0)

static const char ehlo_all[] =
	"250-sink.test\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"
	"250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n250 CHUNKING\r\n";

static void test_greeting_and_ehlo(void)
{
	struct harness *h = h_new(ALL_EXT, 0);
	h_start(h, 0);
	EXPECT(h, "220 sink.test ESMTP volley sink\r\n");
	h_in(h, "EHLO client.test\r\n");
	EXPECT(h, ehlo_all);
	h_in(h, "HELO client.test\r\n");
	EXPECT(h, "250 sink.test\r\n");
	h_in(h, "EHLO\r\n");
	EXPECT(h, "501 5.5.4 Syntax: EHLO hostname\r\n");
	h_free(h);

	/* Everything switched off; STARTTLS with AUTH: AUTH only after TLS. */
	h = h_new(SMTP_EXT_STARTTLS, 1);
	h_start(h, 0);
	h_in(h, "EHLO c.test\r\n");
	EXPECT(h, "220 sink.test ESMTP volley sink\r\n250-sink.test\r\n250 STARTTLS\r\n");
	h_free(h);
	h = h_new(SMTP_EXT_STARTTLS, 1);
	h_start(h, 1);
	h_in(h, "EHLO c.test\r\n");
	EXPECT(h, "220 sink.test ESMTP volley sink\r\n250-sink.test\r\n250 AUTH PLAIN LOGIN CRAM-MD5 XOAUTH2\r\n");
	h_free(h);
	/* No TLS at all: AUTH is offered in the clear. */
	h = h_new(SMTP_EXT_SIZE, 1);
	h->cfg.size_max = 0;
	sink_config_prepare(&h->cfg);
	h_start(h, 0);
	h_in(h, "ehlo c.test\r\n");
	EXPECT(h, "220 sink.test ESMTP volley sink\r\n250-sink.test\r\n250-SIZE\r\n"
		  "250 AUTH PLAIN LOGIN CRAM-MD5 XOAUTH2\r\n");
	h_free(h);
}

/* One pipelined session: what it sends and the replies it must get. */
static const char pipelined_in[] =
	"EHLO client.test\r\n"
	"MAIL FROM:<alice@src.test> SIZE=100 BODY=8BITMIME RET=HDRS ENVID=id+2B1\r\n"
	"RCPT TO:<bob@dest.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@dest.test\r\n"
	"RCPT TO:<carol@dest.test>\r\n"
	"DATA\r\n"
	"Subject: hi\r\n\r\n..leading dot\r\n.\r.x\r\nbare\nlf\n.\nstill body\r\n.\r\n"
	"MAIL FROM:<>\r\n"
	"RCPT TO:<Postmaster>\r\n"
	"BDAT 10\r\n\r\n.\r\n\0\r\n.X"
	"BDAT 3 LAST\r\nend"
	"RSET\r\nNOOP\r\nVRFY bob\r\nHELP\r\nQUIT\r\n";
static const char pipelined_out[] =
	"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n"
	"354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Ok: queued\r\n"
	"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 Ok: chunk received\r\n250 2.0.0 Ok: queued\r\n"
	"250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n"
	"252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery\r\n"
	"214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP VRFY HELP QUIT STARTTLS AUTH\r\n"
	"221 2.0.0 Bye\r\n";
static const char pipelined_body2[] = "\r\n.\r\n\0\r\n.Xend";

static void run_pipelined(size_t split, size_t piece, int *ok)
{
	struct harness *h = h_new(ALL_EXT, 0);
	size_t len = sizeof pipelined_in - 1;
	/* The input sits right before a guard page: an over-read faults. */
	char *in = guard_mem - len;
	memcpy(in, pipelined_in, len);
	h_start(h, 0);
	h_drain(h);
	h->out_len = 0;
	size_t off = 0;
	if (piece == 0) {
		off += h_feed(h, in, split);
		/* what a read does not complete stays unread by no one: it was taken */
		off += h_feed(h, in + split, len - split);
	} else {
		while (off < len) {
			size_t n = len - off < piece ? len - off : piece;
			off += h_feed(h, in + off, n);
		}
	}
	char want[sizeof ehlo_all + sizeof pipelined_out];
	snprintf(want, sizeof want, "%s%s", ehlo_all, pipelined_out);
	h_drain(h);
	int good = h->out_len == strlen(want) && memcmp(h->out, want, h->out_len) == 0 &&
		   off == len && sink_session_state(h->s) == SINK_SESSION_CLOSING &&
		   h->body_len == sizeof pipelined_body2 - 1 &&
		   memcmp(h->body, pipelined_body2, h->body_len) == 0 &&
		   h->begun == 2 && h->accepted == 2 && h->st.messages == 2 && h->st.recipients == 3;
	if (!good && *ok) {
		T_FAIL("pipelined input split at %zu (pieces of %zu): got \"%.*s\" body \"%.*s\" off %zu",
		       split, piece, (int)h->out_len, h->out, (int)h->body_len, h->body, off);
		*ok = 0;
	}
	t_checks++;
	h_free(h);
}

static void test_pipelined_every_split(void)
{
	int ok = 1;
	size_t len = sizeof pipelined_in - 1;
	for (size_t split = 0; split <= len; split++)
		run_pipelined(split, 0, &ok);
	for (size_t piece = 1; piece <= 7; piece++)
		run_pipelined(0, piece, &ok);

	/* All of it in one read: all the replies in one output. */
	struct harness *h = h_new(ALL_EXT, 0);
	h_start(h, 0);
	h_drain(h);
	h->inputs_with_output = 0;
	h_feed(h, pipelined_in, sizeof pipelined_in - 1);
	T_EQ_INT(h->inputs_with_output, 1);
	h_free(h);
}

static void test_data_body(void)
{
	/* The first DATA body of the pipelined input, checked on its own. */
	struct harness *h = h_new(ALL_EXT, 0);
	h_start(h, 0);
	h_in(h, "EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n");
	h->out_len = 0;
	h_in(h, "..leading dot\r\n.\r.x\r\nbare\nlf\n.\nstill body\r\n.\r\n");
	EXPECT(h, "250 2.0.0 Ok: queued\r\n");
	const char want[] = ".leading dot\r\n\r.x\r\nbare\nlf\n.\nstill body\r\n";
	T_EQ_MEM(h->body, h->body_len, want, sizeof want - 1);
	/* An empty body. */
	h_in(h, "MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n.\r\n");
	EXPECT(h, "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Ok: queued\r\n");
	T_EQ_INT(h->body_len, 0);
	h_free(h);
}

static void test_size(void)
{
	struct harness *h = h_new(ALL_EXT, 0);
	h_start(h, 0);
	h_in(h, "EHLO c\r\n");
	h->out_len = 0;
	h_in(h, "MAIL FROM:<a@b.test> SIZE=1001\r\n");
	EXPECT(h, "552 5.3.4 Message size exceeds fixed maximum message size\r\n");
	h_in(h, "MAIL FROM:<a@b.test> SIZE=1000\r\nRCPT TO:<c@d.test>\r\nDATA\r\n");
	EXPECT(h, "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n");
	char big[1200];
	memset(big, 'x', sizeof big);
	for (size_t i = 70; i < sizeof big; i += 72)
		big[i] = '\r', big[i + 1] = '\n';
	h_feed(h, big, sizeof big);
	h_in(h, "\r\n.\r\n");
	EXPECT(h, "552 5.3.4 Message size exceeds fixed maximum message size\r\n");
	T_EQ_INT(h->accepted, 0);
	T_EQ_INT(h->st.rejected, 1);
	T_TRUE(h->body_len <= 1000);   /* nothing past the limit reached the hook */
	/* BDAT past the limit, over two chunks. */
	h_in(h, "MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nBDAT 600\r\n");
	h_feed(h, big, 600);
	h_in(h, "BDAT 600 LAST\r\n");
	h_feed(h, big, 600);
	EXPECT(h, "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 Ok: chunk received\r\n"
		  "552 5.3.4 Message size exceeds fixed maximum message size\r\n");
	/* The session goes on. */
	h_in(h, "NOOP\r\n");
	EXPECT(h, "250 2.0.0 Ok\r\n");
	h_free(h);
}

struct exchange {
	const char *in;
	const char *out;
};

static void run_exchanges(struct harness *h, const struct exchange *x, size_t n, const char *what)
{
	for (size_t i = 0; i < n; i++) {
		h_in(h, x[i].in);
		h_drain(h);
		t_checks++;
		if (h->out_len != strlen(x[i].out) || memcmp(h->out, x[i].out, h->out_len) != 0)
			T_FAIL("%s: after \"%s\": got \"%.*s\", want \"%s\"", what, x[i].in,
			       (int)h->out_len, h->out, x[i].out);
		h->out_len = 0;
	}
}

/* Feeds each exchange to a fresh session (after its greeting) and checks
 * the replies; the NUL case needs its length, not strlen. */
static void run_list(const struct exchange *x, size_t n, const char *what)
{
	struct harness *h = h_new(ALL_EXT, 0);
	h_start(h, 0);
	h_drain(h);
	h->out_len = 0;
	for (size_t i = 0; i < n; i++) {
		const char *in = x[i].in;
		size_t len = strncmp(in, "NOOP\0", 5) == 0 ? 8 : strlen(in);
		h_feed(h, in, len);
		h_drain(h);
		t_checks++;
		if (h->out_len != strlen(x[i].out) || memcmp(h->out, x[i].out, h->out_len) != 0)
			T_FAIL("%s: after \"%s\": got \"%.*s\", want \"%s\"", what, in, (int)h->out_len,
			       h->out, x[i].out);
		h->out_len = 0;
	}
	h_free(h);
}

static void test_sequence_and_syntax(void)
{
	/* Fewer than SINK_ERROR_MAX errors per list. */
	static const struct exchange x1[] = {
		{ "MAIL FROM:<a@b.test>\r\n", "503 5.5.1 Error: send HELO/EHLO first\r\n" },
		{ "FOO\r\n", "500 5.5.2 Error: command not recognized\r\n" },
		{ "LHLO c\r\n", "500 5.5.2 Error: command not recognized\r\n" },
		{ "EHLO c\r\n", ehlo_all },
		{ "RCPT TO:<c@d.test>\r\n", "503 5.5.1 Error: need MAIL command\r\n" },
		{ "DATA\r\n", "503 5.5.1 Error: need MAIL command\r\n" },
		{ "BDAT 3\r\nabc", "503 5.5.1 Error: need MAIL and RCPT commands first\r\n" },
		{ "MAIL TO:<a@b.test>\r\n", "501 5.5.4 Syntax: MAIL FROM:<address>\r\n" },
		{ "MAIL FROM:a@b.test\r\n", "501 5.1.7 Bad sender address syntax\r\n" },
		{ "MAIL FROM:<a b@c.test>\r\n", "501 5.1.7 Bad sender address syntax\r\n" },
		{ "MAIL FROM:<a@b.test> FOO=1\r\n", "555 5.5.4 Unsupported MAIL parameter\r\n" },
		{ "MAIL FROM:<a@b.test> SIZE=x\r\n", "501 5.5.4 Bad MAIL parameter value\r\n" },
		{ "MAIL FROM:<a@b.test> BODY=BINARYMIME\r\n", "501 5.5.4 Bad MAIL parameter value\r\n" },
		{ "MAIL FROM:<a@b.test> RET=FULL RET=HDRS\r\n", "501 5.5.4 Duplicate MAIL parameter\r\n" },
		{ "MAIL FROM:<a@b.test> ENVID=a=b\r\n", "501 5.5.4 Bad MAIL parameter value\r\n" },
		{ "MAIL FROM:<a@b.test> ENVID=a+2\r\n", "501 5.5.4 Bad MAIL parameter value\r\n" },
		{ "MAIL FROM:<j\xc3\xbcrg@b.test>\r\n", "553 5.6.7 Non-ASCII address needs SMTPUTF8\r\n" },
		{ "MAIL FROM:<j\xc3\xbcrg@b.test> SMTPUTF8\r\n", "250 2.1.0 Ok\r\n" },
		{ "MAIL FROM:<a@b.test>\r\n", "503 5.5.1 Error: nested MAIL command\r\n" },
	};
	static const struct exchange x2[] = {
		{ "EHLO c\r\n", ehlo_all },
		{ "MAIL FROM:<a@b.test> SIZE=10 AUTH=<>\r\n", "555 5.5.4 Unsupported MAIL parameter\r\n" },
		{ "MAIL FROM:<a@b.test> SIZE=10 BODY=7BIT RET=FULL ENVID=x+2Dy\r\n", "250 2.1.0 Ok\r\n" },
		{ "DATA\r\n", "503 5.5.1 Error: need RCPT command\r\n" },
		{ "RCPT TO:<>\r\n", "501 5.1.3 Bad recipient address syntax\r\n" },
		{ "RCPT TO:<c@d.test> NOTIFY=NEVER,SUCCESS\r\n", "501 5.5.4 Bad RCPT parameter value\r\n" },
		{ "RCPT TO:<c@d.test> ORCPT=rfc822\r\n", "501 5.5.4 Bad RCPT parameter value\r\n" },
		{ "RCPT TO:<c@d.test> XFOO\r\n", "555 5.5.4 Unsupported RCPT parameter\r\n" },
		{ "RCPT TO:<\xc3\xa9@d.test>\r\n", "553 5.6.7 Non-ASCII address needs SMTPUTF8\r\n" },
		{ "RCPT TO:<@relay.test:c@d.test> NOTIFY=DELAY,FAILURE ORCPT=rfc822;c+40d\r\n", "250 2.1.5 Ok\r\n" },
		{ "DATA extra\r\n", "501 5.5.4 Syntax: DATA\r\n" },
		{ "BDAT x\r\n", "501 5.5.4 Syntax: BDAT size [LAST]\r\n" },
		{ "BDAT 1 FIRST\r\n", "501 5.5.4 Syntax: BDAT size [LAST]\r\n" },
		{ "STARTTLS\r\n", "502 5.5.1 Error: command not implemented\r\n" },
		{ "AUTH PLAIN\r\n", "503 5.5.1 Error: authentication not enabled\r\n" },
		{ "EXPN list\r\n", "502 5.5.1 Error: EXPN not implemented\r\n" },
		{ "VRFY\r\n", "501 5.5.4 Syntax: VRFY address\r\n" },
		{ "RSET now\r\n", "501 5.5.4 Syntax: RSET\r\n" },
		{ "RSET\r\n", "250 2.0.0 Ok\r\n" },
		{ "rcpt to:<c@d.test>\r\n", "503 5.5.1 Error: need MAIL command\r\n" },
	};
	static const struct exchange x3[] = {
		{ "NOOP\0x\r\n", "500 5.5.2 Error: NUL byte in command\r\n" },
		{ "helo c\r\n", "250 sink.test\r\n" },
		{ "mail from:<a@b.test>\r\nrcpt to:<c@d.test>\r\nrset\r\n",
		  "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 Ok\r\n" },
		{ "MAIL FROM:<>\nRCPT TO:<c@d.test>\nQUIT\n", "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n221 2.0.0 Bye\r\n" },
	};
	run_list(x1, sizeof x1 / sizeof x1[0], "sequence");
	run_list(x2, sizeof x2 / sizeof x2[0], "parameters");
	run_list(x3, sizeof x3 / sizeof x3[0], "odd lines");

	/* DATA when every recipient was refused: 554 (RFC 2920 3.1). */
	struct harness *h = h_new(ALL_EXT, 0);
	h->at = SINK_STAGE_RCPT;
	h->verdict = (struct sink_verdict){ SINK_REPLY, 550, "5.1.1", "User unknown", 0 };
	h_start(h, 0);
	h_in(h, "EHLO c\r\n");
	h->out_len = 0;
	h_in(h, "MAIL FROM:<a@b.test>\r\nRCPT TO:<x@d.test>\r\nDATA\r\n");
	EXPECT(h, "250 2.1.0 Ok\r\n550 5.1.1 User unknown\r\n554 5.5.1 Error: no valid recipients\r\n");
	h_free(h);
}

static void test_long_lines(void)
{
	struct harness *h = h_new(ALL_EXT, 0);
	h_start(h, 0);
	h_in(h, "EHLO c\r\n");
	h->out_len = 0;
	/* 511 octets with CRLF: fine. 513: too long. */
	char line[600];
	memset(line, 'x', sizeof line);
	memcpy(line, "NOOP ", 5);
	memcpy(line + 509, "\r\n", 2);
	h_feed(h, line, 511);
	EXPECT(h, "250 2.0.0 Ok\r\n");
	memset(line, 'x', sizeof line);
	memcpy(line, "NOOP ", 5);
	memcpy(line + 511, "\r\n", 2);
	h_feed(h, line, 513);
	EXPECT(h, "500 5.5.2 Error: line too long\r\n");

	/* A 10 MB line, fed as reads of 64 KiB: one 500, nothing kept, and
	 * the next command is served. */
	size_t chunk = 65536;
	char *junk = malloc(chunk);
	memset(junk, 'A', chunk);
	size_t taken = 0;
	for (size_t sent = 0; sent < 10u * 1024 * 1024; sent += chunk)
		taken += h_feed(h, junk, chunk);
	T_EQ_INT(taken, 10u * 1024 * 1024);
	h_in(h, "\r\nNOOP\r\n");
	EXPECT(h, "500 5.5.2 Error: line too long\r\n250 2.0.0 Ok\r\n");
	/* The same, split at a line end that arrives byte by byte. */
	h_feed(h, junk, 3000);
	h_in(h, "\r");
	h_in(h, "\n");
	h_in(h, "QUIT\r\n");
	EXPECT(h, "500 5.5.2 Error: line too long\r\n221 2.0.0 Bye\r\n");
	free(junk);
	h_free(h);
}

static void test_error_limit(void)
{
	struct harness *h = h_new(ALL_EXT, 0);
	h_start(h, 0);
	h->out_len = 0;
	h_drain(h);
	h->out_len = 0;
	for (int i = 0; i < SINK_ERROR_MAX + 5; i++)
		h_in(h, "garbage\r\n");
	h_drain(h);
	size_t n500 = 0;
	for (const char *p = h->out; (p = memmem(p, h->out_len - (size_t)(p - h->out), "500 ", 4)); p++)
		n500++;
	T_EQ_INT(n500, SINK_ERROR_MAX);
	T_TRUE(memmem(h->out, h->out_len, "421 4.7.0 Too many errors", 25) != NULL);
	T_EQ_INT(sink_session_state(h->s), SINK_SESSION_CLOSING);
	h_free(h);
}

/* A client that never reads: the session stops taking input when its output
 * is full, and resumes when it is sent. */
static void test_backpressure(void)
{
	struct harness *h = h_new(ALL_EXT, 0);
	h_start(h, 0);
	size_t n = 20000;
	char *in = malloc(n * 6);
	for (size_t i = 0; i < n; i++)
		memcpy(in + i * 6, "NOOP\r\n", 6);
	size_t len;
	sink_session_output(h->s, &len);   /* the greeting is lent, not sent */
	size_t took = sink_session_input(h->s, in, n * 6);
	T_TRUE(took < n * 6);
	T_TRUE(sink_session_output_pending(h->s) <= SINK_OUT_MAX);
	sink_session_output_consumed(h->s, 0);
	size_t off = took, rounds = 0;
	while (off < n * 6 && rounds++ < 100000) {
		off += sink_session_input(h->s, in + off, n * 6 - off);
		T_TRUE(sink_session_output_pending(h->s) <= SINK_OUT_MAX);
		h_drain(h);
	}
	h_drain(h);
	T_EQ_INT(off, n * 6);
	size_t replies = 0;
	for (size_t i = 0; i + 4 <= h->out_len; i++)
		replies += memcmp(h->out + i, "250 ", 4) == 0;
	T_EQ_INT(replies, n);
	free(in);
	h_free(h);
}

static void test_verdicts(void)
{
	/* 550 for one recipient; the other is accepted. */
	struct harness *h = h_new(ALL_EXT, 0);
	h->at = SINK_STAGE_RCPT;
	h->only_rcpt = "bad@d.test";
	h->verdict = (struct sink_verdict){ SINK_REPLY, 550, "5.1.1", "No such user", 5 };
	h_start(h, 0);
	h_in(h, "EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<bad@d.test>\r\nRCPT TO:<ok@d.test>\r\nDATA\r\nx\r\n.\r\n");
	h_drain(h);
	h->out_len = 0;
	T_EQ_STR(h->decided, "connect;helo;mail;rcpt:bad@d.test;rcpt:ok@d.test;data;body;");
	T_EQ_INT(sink_session_take_delay(h->s), 5);
	T_EQ_INT(sink_session_take_delay(h->s), 0);
	h_free(h);

	h = h_new(ALL_EXT, 0);
	h->at = SINK_STAGE_RCPT;
	h->only_rcpt = "bad@d.test";
	h->verdict = (struct sink_verdict){ SINK_REPLY, 550, "5.1.1", "No such user", 0 };
	h_start(h, 0);
	h_in(h, "EHLO c\r\n");
	h->out_len = 0;
	h_in(h, "MAIL FROM:<a@b.test>\r\nRCPT TO:<bad@d.test>\r\nRCPT TO:<ok@d.test>\r\nDATA\r\nx\r\n.\r\n");
	EXPECT(h, "250 2.1.0 Ok\r\n550 5.1.1 No such user\r\n250 2.1.5 Ok\r\n"
		  "354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Ok: queued\r\n");
	T_EQ_INT(h->st.recipients, 1);
	h_free(h);

	/* Refused after the body; then a 421 at MAIL closes. */
	h = h_new(ALL_EXT, 0);
	h->at = SINK_STAGE_BODY;
	h->verdict = (struct sink_verdict){ SINK_REPLY, 554, "5.7.1", "Message rejected as spam", 0 };
	h_start(h, 0);
	h_in(h, "EHLO c\r\n");
	h->out_len = 0;
	h_in(h, "MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\nbody\r\n.\r\n");
	EXPECT(h, "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
		  "554 5.7.1 Message rejected as spam\r\n");
	T_EQ_INT(h->accepted, 0);
	T_EQ_INT(h->ended, 1);
	/* The same verdict on a BDAT transaction. */
	h_in(h, "MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nBDAT 4 LAST\r\nbody");
	EXPECT(h, "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n554 5.7.1 Message rejected as spam\r\n");
	h->at = SINK_STAGE_MAIL;
	h->verdict = (struct sink_verdict){ SINK_REPLY, 421, "4.7.0", "Too many messages", 0 };
	h_in(h, "MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\n");
	EXPECT(h, "421 4.7.0 Too many messages\r\n");
	T_EQ_INT(sink_session_state(h->s), SINK_SESSION_CLOSING);
	h_free(h);

	/* 451 at DATA, with DATA and with BDAT (whose chunk is read first). */
	h = h_new(ALL_EXT, 0);
	h->at = SINK_STAGE_DATA;
	h->verdict = (struct sink_verdict){ SINK_REPLY, 451, "4.3.0", "Try later", 0 };
	h_start(h, 0);
	h_in(h, "EHLO c\r\n");
	h->out_len = 0;
	h_in(h, "MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n");
	EXPECT(h, "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n451 4.3.0 Try later\r\n");
	h_in(h, "MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nBDAT 5\r\nhello");
	EXPECT(h, "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n451 4.3.0 Try later\r\n");
	h_in(h, "BDAT 2 LAST\r\nhi");
	EXPECT(h, "503 5.5.1 Error: need MAIL and RCPT commands first\r\n");
	T_EQ_INT(h->begun, 0);
	h_free(h);

	/* A silent disconnect mid-DATA: 354, then nothing once the body flows. */
	h = h_new(ALL_EXT, 0);
	h->at = SINK_STAGE_BODY;
	h->verdict = (struct sink_verdict){ SINK_DROP, 0, NULL, NULL, 0 };
	h_start(h, 0);
	h_in(h, "EHLO c\r\n");
	h->out_len = 0;
	h_in(h, "MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n");
	EXPECT(h, "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n");
	T_EQ_INT(sink_session_state(h->s), SINK_SESSION_OPEN);
	h_in(h, "Subject: x\r\n");
	T_EQ_INT(sink_session_state(h->s), SINK_SESSION_DROPPED);
	EXPECT(h, "");
	h_free(h);

	/* 554 at connect: only QUIT is served. 421 at connect: closed. */
	h = h_new(ALL_EXT, 0);
	h->at = SINK_STAGE_CONNECT;
	h->verdict = (struct sink_verdict){ SINK_REPLY, 554, "5.7.1", "Go away", 0 };
	h_start(h, 0);
	h_in(h, "EHLO c\r\nQUIT\r\n");
	EXPECT(h, "554 5.7.1 Go away\r\n503 5.5.1 Error: no SMTP service here\r\n221 2.0.0 Bye\r\n");
	h_free(h);
	h = h_new(ALL_EXT, 0);
	h->at = SINK_STAGE_CONNECT;
	h->verdict = (struct sink_verdict){ SINK_REPLY, 421, "4.3.2", "Busy", 0 };
	h_start(h, 0);
	EXPECT(h, "421 4.3.2 Busy\r\n");
	T_EQ_INT(sink_session_state(h->s), SINK_SESSION_CLOSING);
	h_free(h);

	/* A 2xx verdict replaces the text of the positive reply. */
	h = h_new(ALL_EXT & ~SMTP_EXT_ENHANCEDSTATUSCODES, 0);
	h->at = SINK_STAGE_RCPT;
	h->verdict = (struct sink_verdict){ SINK_REPLY, 251, "2.1.5", "User not local; will forward", 0 };
	h_start(h, 0);
	h_in(h, "HELO c\r\n");
	h->out_len = 0;
	h_in(h, "MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\n");
	EXPECT(h, "250 Ok\r\n251 User not local; will forward\r\n");
	h_free(h);
}

static void test_delay_and_shutdown(void)
{
	struct harness *h = h_new(ALL_EXT, 0);
	h->cfg.reply_delay_ms = 10;
	h->end_delay = 7;
	h_start(h, 0);
	T_EQ_INT(sink_session_take_delay(h->s), 10);
	h_in(h, "EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\nx\r\n.\r\n");
	/* five replies, and --max-rate's delay before the last */
	T_EQ_INT(sink_session_take_delay(h->s), 57);
	h_drain(h);
	h->out_len = 0;
	h_in(h, "MAIL FROM:<a@b.test>\r\n");
	sink_session_shutdown(h->s);
	EXPECT(h, "250 2.1.0 Ok\r\n421 4.3.2 Service shutting down, closing the connection\r\n");
	T_EQ_INT(sink_session_state(h->s), SINK_SESSION_CLOSING);
	h_free(h);

	h = h_new(ALL_EXT, 0);
	h_start(h, 0);
	h_in(h, "EHLO c\r\n");
	h->out_len = 0;
	h->fail_store = 1;
	h_in(h, "MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\nx\r\n.\r\n");
	EXPECT(h, "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
		  "451 4.3.0 Error: cannot store the message\r\n");
	T_EQ_INT(h->st.messages, 0);
	sink_session_timeout(h->s);
	EXPECT(h, "421 4.4.2 Error: timeout exceeded\r\n");
	h_free(h);
}

static void test_starttls(void)
{
	struct harness *h = h_new(ALL_EXT | SMTP_EXT_STARTTLS, 1);
	h_start(h, 0);
	h_in(h, "EHLO c\r\n");
	h->out_len = 0;
	h_in(h, "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n");
	EXPECT(h, "538 5.7.11 Encryption required for requested authentication mechanism\r\n");
	h_in(h, "MAIL FROM:<a@b.test>\r\n");
	EXPECT(h, "530 5.7.0 Authentication required\r\n");
	h_in(h, "STARTTLS now\r\n");
	EXPECT(h, "501 5.5.4 Syntax: STARTTLS\r\n");
	/* Commands injected after STARTTLS in the same read are dropped. */
	const char inj[] = "STARTTLS\r\nMAIL FROM:<evil@x.test>\r\n";
	T_EQ_INT(sink_session_input(h->s, inj, sizeof inj - 1), sizeof inj - 1);
	EXPECT(h, "220 2.0.0 Ready to start TLS\r\n");
	T_EQ_INT(sink_session_state(h->s), SINK_SESSION_TLS);
	sink_session_tls_done(h->s);
	h_in(h, "MAIL FROM:<a@b.test>\r\n");
	EXPECT(h, "503 5.5.1 Error: send HELO/EHLO first\r\n");
	h_in(h, "EHLO c\r\nSTARTTLS\r\n");
	EXPECT(h, "250-sink.test\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"
		  "250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n250-CHUNKING\r\n250 AUTH PLAIN LOGIN CRAM-MD5 XOAUTH2\r\n"
		  "503 5.5.1 Error: TLS already active\r\n");
	h_free(h);
}

/* AUTH with volley's own client side (pool/sasl), every mechanism, right and
 * wrong passwords. */
static int auth_run(unsigned mech, const char *user, const char *pass, char *got, size_t gotcap)
{
	struct harness *h = h_new(ALL_EXT, 1);
	h_start(h, 1);
	h_in(h, "EHLO c\r\n");
	h->out_len = 0;
	struct sasl_creds cr = { user, pass };
	struct sasl_client c = { 0 };
	char line[SASL_LINE_MAX];
	ssize_t n = sasl_start(&c, mech, &cr, line, sizeof line);
	int result = -1;
	for (int step = 0; n > 0 && step < 5; step++) {
		h_feed(h, line, (size_t)n);
		h_drain(h);
		if (h->out_len >= 4 && memcmp(h->out, "334 ", 4) == 0) {
			size_t l = h->out_len - 6;
			n = sasl_step(&c, h->out + 4, l, line, sizeof line);
			h->out_len = 0;
			continue;
		}
		result = h->out_len >= 3 && memcmp(h->out, "235", 3) == 0;
		snprintf(got, gotcap, "%.*s", (int)h->out_len, h->out);
		break;
	}
	if (result == 1) {
		h->out_len = 0;
		h_in(h, "AUTH PLAIN\r\n");
		EXPECT(h, "503 5.5.1 Error: already authenticated\r\n");
		h_in(h, "MAIL FROM:<a@b.test>\r\n");
		EXPECT(h, "250 2.1.0 Ok\r\n");
	}
	T_EQ_INT(h->st.auth_ok + h->st.auth_failed, 1);
	h_free(h);
	return result;
}

static void test_auth(void)
{
	static const unsigned mechs[] = { SMTP_AUTH_PLAIN, SMTP_AUTH_LOGIN, SMTP_AUTH_CRAM_MD5, SMTP_AUTH_XOAUTH2 };
	char got[256];
	for (size_t i = 0; i < 4; i++) {
		int ok = auth_run(mechs[i], "alice@volley.test", "s3cret:with:colons", got, sizeof got);
		if (ok != 1)
			T_FAIL("%s with the right password: got \"%s\"", sasl_mech_name(mechs[i]), got);
		t_checks++;
		ok = auth_run(mechs[i], "alice@volley.test", "wrong", got, sizeof got);
		if (ok != 0 || strcmp(got, "535 5.7.8 Authentication credentials invalid\r\n") != 0)
			T_FAIL("%s with a wrong password: got %d \"%s\"", sasl_mech_name(mechs[i]), ok, got);
		t_checks++;
		ok = auth_run(mechs[i], "nobody@volley.test", "s3cret:with:colons", got, sizeof got);
		if (ok != 0)
			T_FAIL("%s with an unknown user: got \"%s\"", sasl_mech_name(mechs[i]), got);
		t_checks++;
	}
	/* Aborts, bad base64, unknown mechanisms, a PLAIN for someone else. */
	static const struct exchange x[] = {
		{ "AUTH FOO\r\n", "504 5.5.4 Unrecognized authentication type\r\n" },
		{ "AUTH LOGIN\r\n", "334 VXNlcm5hbWU6\r\n" },
		{ "*\r\n", "501 5.0.0 Authentication aborted\r\n" },
		{ "AUTH PLAIN\r\n", "334 \r\n" },
		{ "!!!!\r\n", "501 5.5.2 Cannot decode response\r\n" },
		{ "AUTH CRAM-MD5 abc\r\n", "501 5.5.2 CRAM-MD5 takes no initial response\r\n" },
		/* authzid bob, authcid alice: refused */
		{ "AUTH PLAIN Ym9iAGFsaWNlQHZvbGxleS50ZXN0AHMzY3JldDp3aXRoOmNvbG9ucw==\r\n",
		  "535 5.7.8 Authentication credentials invalid\r\n" },
		{ "AUTH PLAIN =\r\n", "535 5.7.8 Authentication credentials invalid\r\n" },
		{ "AUTH PLAIN AGFsaWNlQHZvbGxleS50ZXN0AHMzY3JldDp3aXRoOmNvbG9ucw==\r\n",
		  "235 2.7.0 Authentication successful\r\n" },
	};
	struct harness *h = h_new(ALL_EXT, 1);
	h_start(h, 1);
	h_in(h, "EHLO c\r\n");
	h->out_len = 0;
	run_exchanges(h, x, sizeof x / sizeof x[0], "AUTH");
	h_free(h);

	h = h_new(ALL_EXT, 1);
	h_start(h, 1);
	h->out_len = 0;
	h_drain(h);
	h->out_len = 0;
	h_in(h, "HELO c\r\nAUTH PLAIN\r\n");
	EXPECT(h, "250 sink.test\r\n503 5.5.1 Error: send EHLO first\r\n");
	h_free(h);
}

static void test_auth_file(void)
{
	char err[256];
	static const struct { const char *text; const char *err; } bad[] = {
		{ "alice\n", "auth:1:6: expected user:password" },
		{ "# c\n\n:pw\n", "auth:3:1: empty user name" },
		{ "bob:x\nalice:\n", "auth:2:7: empty password" },
		{ "a b:x\n", "auth:1:2: space or control character in the user name" },
		{ "", "auth: no user:password line" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err[0] = 0;
		struct sink_auth *a = sink_auth_parse("auth", bad[i].text, strlen(bad[i].text), err, sizeof err);
		T_TRUE(a == NULL);
		T_EQ_STR(err, bad[i].err);
		sink_auth_free(a);
	}
	const char good[] = "# users\r\nalice:pw\r\nbob:p:w\n";
	struct sink_auth *a = sink_auth_parse("auth", good, sizeof good - 1, err, sizeof err);
	T_EQ_INT(sink_auth_count(a), 2);
	T_EQ_INT(sink_auth_login(a, "bob", 3, "p:w", 3), 1);
	T_EQ_INT(sink_auth_login(a, "bob", 3, "p:", 2), 0);
	T_EQ_INT(sink_auth_login(a, "alice", 5, "pw", 2), 1);
	T_EQ_INT(sink_auth_plain(a, "\0alice\0pw", 9), 1);
	T_EQ_INT(sink_auth_plain(a, "alice\0alice\0pw", 14), 1);
	T_EQ_INT(sink_auth_plain(a, "\0alice\0pw\0", 10), 0);
	T_EQ_INT(sink_auth_xoauth2(a, "user=alice\001auth=Bearer pw\001\001", 27), 1);
	T_EQ_INT(sink_auth_xoauth2(a, "user=alice\001auth=Bearer pw\001", 26), 0);
	sink_auth_free(a);
}

int main(void)
{
	char err[256];
	const char creds[] = "alice@volley.test:s3cret:with:colons\nbob@volley.test:other\n";
	creds_table = sink_auth_parse("test", creds, sizeof creds - 1, err, sizeof err);
	if (!creds_table) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	guard_init_size(8192);
	test_greeting_and_ehlo();
	test_pipelined_every_split();
	test_data_body();
	test_size();
	test_sequence_and_syntax();
	test_long_lines();
	test_error_limit();
	test_backpressure();
	test_verdicts();
	test_delay_and_shutdown();
	test_starttls();
	test_auth();
	test_auth_file();
	sink_auth_free(creds_table);
	return t_done("sink_session");
}
