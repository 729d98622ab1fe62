/* Transcript tests of the session state machine: a scripted server feeds
 * replies, and the test asserts the exact bytes the session sends and the
 * outcome of every recipient and message. */
#include "pool/smtp_session.h"
#include "tests/testutil.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>

struct harness {
	struct smtp_session *s;
	struct smtp_session_config cfg;
	char out[1 << 20];
	size_t out_len;
	char log[32768];           /* outcomes, in order */
	size_t log_len;
	char trace[16384];
	size_t trace_len;
	int lent_max;              /* largest number of iovecs in one call */
	char msg_reply[256];       /* the last message outcome's reply: "enhanced text" */
};

static void logf_(struct harness *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(struct harness *h, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(h->log + h->log_len, sizeof h->log - h->log_len, fmt, ap);
	va_end(ap);
	if (n > 0 && (size_t)n < sizeof h->log - h->log_len)
		h->log_len += (size_t)n;
}

static void on_rcpt(void *u, const struct smtp_outcome *o)
{
	logf_(u, "r%d:%s:%s:%d;", o->rcpt, smtp_status_name(o->status), smtp_phase_name(o->phase),
	      o->reply->code);
}

static void on_msg(void *u, const struct smtp_outcome *o)
{
	struct harness *h = u;
	logf_(u, "m:%s:%s:%d;", smtp_status_name(o->status), smtp_phase_name(o->phase), o->reply->code);
	snprintf(h->msg_reply, sizeof h->msg_reply, "%s %.200s", o->reply->enhanced, o->reply->text);
}

static void on_cmd(void *u, void *cookie, const struct smtp_reply *r)
{
	logf_(u, "c%ld:%d;", (long)(intptr_t)cookie, r->code);
}

static void on_trace(void *u, char dir, const char *line, size_t len)
{
	struct harness *h = u;
	int n = snprintf(h->trace + h->trace_len, sizeof h->trace - h->trace_len, "%c %.*s\n", dir,
			 (int)len, line);
	if (n > 0 && (size_t)n < sizeof h->trace - h->trace_len)
		h->trace_len += (size_t)n;
}

static void h_init(struct harness *h, enum smtp_tls_mode tls)
{
	memset(h, 0, sizeof *h);
	h->cfg.ehlo_name = "client.test";
	h->cfg.tls = tls;
	smtp_session_timeouts_default(&h->cfg.timeouts);
	h->cfg.cb.rcpt_done = on_rcpt;
	h->cfg.cb.msg_done = on_msg;
	h->cfg.cb.cmd_done = on_cmd;
	h->cfg.cb.trace = on_trace;
	h->cfg.cb_user = h;
}

static void h_start(struct harness *h)
{
	h->s = smtp_session_new(&h->cfg);
}

/* Collects everything the session wants to send, in pieces of at most
 * `piece` bytes per consumed() call (0: all at once). */
static void h_drain_by(struct harness *h, size_t piece)
{
	struct iovec iov[16];
	int n;
	while ((n = smtp_session_output(h->s, iov, 16)) > 0) {
		if (n > h->lent_max)
			h->lent_max = n;
		size_t total = 0;
		for (int i = 0; i < n; i++)
			total += iov[i].iov_len;
		size_t take = piece && piece < total ? piece : total;
		size_t left = take;
		for (int i = 0; i < n && left; i++) {
			size_t k = iov[i].iov_len < left ? iov[i].iov_len : left;
			memcpy(h->out + h->out_len, iov[i].iov_base, k);
			h->out_len += k;
			left -= k;
		}
		smtp_session_output_consumed(h->s, take);
	}
}

static void h_drain(struct harness *h) { h_drain_by(h, 0); }

static void h_server(struct harness *h, const char *bytes)
{
	smtp_session_input(h->s, bytes, strlen(bytes));
}

#define EXPECT_OUT(h, want) do { \
	h_drain(h); \
	T_EQ_MEM((h)->out, (h)->out_len, want, strlen(want)); \
	(h)->out_len = 0; \
} while (0)

#define EXPECT_LOG(h, want) do { \
	T_EQ_MEM((h)->log, (h)->log_len, want, strlen(want)); \
	(h)->log_len = 0; \
} while (0)

static const char *const two_rcpts[] = { "bob@dest.test", "carol@dest.test" };
static const char *const three_rcpts[] = { "bob@dest.test", "carol@dest.test", "dave@dest.test" };

static struct smtp_msg msg(const char *const *rcpts, unsigned n, const char *body)
{
	struct smtp_msg m = { "alice@src.test", rcpts, n, body, strlen(body), 0, NULL };
	return m;
}

/* Greeting and EHLO with the given extension lines. */
static void h_hello(struct harness *h, const char *ehlo_reply)
{
	h_start(h);
	EXPECT_OUT(h, "");
	h_server(h, "220 mx.dest.test ESMTP\r\n");
	EXPECT_OUT(h, "EHLO client.test\r\n");
	h_server(h, ehlo_reply);
}

static void test_lockstep(void)
{
	struct harness *h = calloc(1, sizeof *h);
	h_init(h, SMTP_TLS_NONE);
	h_hello(h, "250-mx.dest.test\r\n250 8BITMIME\r\n");
	T_EQ_INT(smtp_session_state(h->s), SMTP_SESSION_READY);
	struct smtp_msg m = msg(two_rcpts, 2, "Subject: hi\r\n\r\n.leading dot\r\nend\r\n");
	T_EQ_INT(smtp_session_send(h->s, &m), 0);
	T_EQ_INT(smtp_session_can_send(h->s), 0);   /* one at a time without PIPELINING */
	EXPECT_OUT(h, "MAIL FROM:<alice@src.test>\r\n");
	EXPECT_OUT(h, "");                          /* nothing more before the reply */
	h_server(h, "250 2.1.0 ok\r\n");
	EXPECT_OUT(h, "RCPT TO:<bob@dest.test>\r\n");
	h_server(h, "250 2.1.5 ok\r\n");
	EXPECT_OUT(h, "RCPT TO:<carol@dest.test>\r\n");
	h_server(h, "550 5.1.1 no such user\r\n");
	EXPECT_LOG(h, "r1:permfail:rcpt:550;");
	EXPECT_OUT(h, "DATA\r\n");
	h_server(h, "354 go ahead\r\n");
	EXPECT_OUT(h, "Subject: hi\r\n\r\n..leading dot\r\nend\r\n.\r\n");
	h_server(h, "250 2.0.0 queued\r\n");
	EXPECT_LOG(h, "r0:ok:body:250;m:ok:body:250;");
	T_EQ_INT(smtp_session_inflight(h->s), 0);

	/* Every recipient refused: no DATA, and RSET before the next MAIL. */
	struct smtp_msg m2 = msg(two_rcpts, 2, "x\r\n");
	T_EQ_INT(smtp_session_send(h->s, &m2), 0);
	EXPECT_OUT(h, "MAIL FROM:<alice@src.test>\r\n");
	h_server(h, "250 ok\r\n");
	EXPECT_OUT(h, "RCPT TO:<bob@dest.test>\r\n");
	h_server(h, "450 4.2.0 busy\r\n");
	EXPECT_OUT(h, "RCPT TO:<carol@dest.test>\r\n");
	h_server(h, "550 5.1.1 no\r\n");
	EXPECT_LOG(h, "r0:tempfail:rcpt:450;r1:permfail:rcpt:550;m:permfail:rcpt:550;");
	EXPECT_OUT(h, "");
	struct smtp_msg m3 = msg(two_rcpts, 1, "y");
	T_EQ_INT(smtp_session_send(h->s, &m3), 0);
	EXPECT_OUT(h, "RSET\r\n");
	h_server(h, "250 reset\r\n");
	EXPECT_OUT(h, "MAIL FROM:<alice@src.test>\r\n");
	/* MAIL refused: no RCPT is sent at all. */
	h_server(h, "553 5.7.1 sender rejected\r\n");
	EXPECT_LOG(h, "r0:permfail:mail:553;m:permfail:mail:553;");
	EXPECT_OUT(h, "");

	smtp_session_quit(h->s);
	EXPECT_OUT(h, "QUIT\r\n");
	h_server(h, "221 bye\r\n");
	T_EQ_INT(smtp_session_state(h->s), SMTP_SESSION_CLOSED);
	smtp_session_free(h->s);
	free(h);
}

static void test_pipelining(void)
{
	struct harness *h = calloc(1, sizeof *h);
	h_init(h, SMTP_TLS_NONE);
	h_hello(h, "250-mx.dest.test\r\n250-PIPELINING\r\n250-SIZE 1000000\r\n250 ENHANCEDSTATUSCODES\r\n");
	struct smtp_msg m1 = msg(two_rcpts, 2, "one\r\n");
	struct smtp_msg m2 = msg(two_rcpts, 1, "two");
	T_EQ_INT(smtp_session_send(h->s, &m1), 0);
	T_EQ_INT(smtp_session_send(h->s, &m2), 0);
	T_EQ_INT(smtp_session_can_send(h->s), 0);
	/* One write: MAIL, both RCPTs, DATA. The second message waits for the
	 * first one's body. */
	EXPECT_OUT(h, "MAIL FROM:<alice@src.test> SIZE=5\r\nRCPT TO:<bob@dest.test>\r\n"
		      "RCPT TO:<carol@dest.test>\r\nDATA\r\n");
	h_server(h, "250 2.1.0 ok\r\n250 2.1.5 ok\r\n250 2.1.5 ok\r\n354 go\r\n");
	/* Body, dot, and the next transaction's commands in one write. */
	EXPECT_OUT(h, "one\r\n.\r\nMAIL FROM:<alice@src.test> SIZE=3\r\nRCPT TO:<bob@dest.test>\r\nDATA\r\n");
	h_server(h, "250 2.0.0 queued as A\r\n250 ok\r\n554 5.7.1 bob refused\r\n554 5.5.1 no valid recipients\r\n");
	EXPECT_LOG(h, "r0:ok:body:250;r1:ok:body:250;m:ok:body:250;"
		      "r0:permfail:rcpt:554;m:permfail:rcpt:554;");
	/* The refused transaction left MAIL open: RSET goes first. */
	struct smtp_msg m3 = msg(two_rcpts, 1, "three\r\n");
	T_EQ_INT(smtp_session_send(h->s, &m3), 0);
	EXPECT_OUT(h, "RSET\r\nMAIL FROM:<alice@src.test> SIZE=7\r\nRCPT TO:<bob@dest.test>\r\nDATA\r\n");
	/* MAIL refused: the RCPT and DATA replies are consumed, the recipient's
	 * outcome is the MAIL reply. */
	h_server(h, "250 ok\r\n451 4.3.0 try later\r\n503 5.5.1 need MAIL\r\n503 5.5.1 need RCPT\r\n");
	EXPECT_LOG(h, "r0:tempfail:mail:451;m:tempfail:mail:451;");
	EXPECT_OUT(h, "");
	/* Over SIZE: refused locally, nothing sent. */
	char *big = malloc(1000002);
	memset(big, 'a', 1000001);
	big[1000001] = 0;
	struct smtp_msg m4 = msg(two_rcpts, 1, big);
	T_EQ_INT(smtp_session_send(h->s, &m4), 0);
	EXPECT_LOG(h, "r0:local:mail:552;m:local:mail:552;");
	EXPECT_OUT(h, "");
	free(big);
	smtp_session_free(h->s);
	free(h);
}

static void test_chunking(void)
{
	struct harness *h = calloc(1, sizeof *h);
	h_init(h, SMTP_TLS_NONE);
	h->cfg.max_inflight = 3;
	h_hello(h, "250-mx.dest.test\r\n250-PIPELINING\r\n250 CHUNKING\r\n");
	struct smtp_msg m[4];
	m[0] = msg(two_rcpts, 2, "A\r\n.dot\r\n");
	m[1] = msg(two_rcpts, 1, "B\r\n");
	m[2] = msg(three_rcpts, 3, "C\r\n");
	m[3] = msg(two_rcpts, 1, "D\r\n");
	for (int i = 0; i < 3; i++)
		T_EQ_INT(smtp_session_send(h->s, &m[i]), 0);
	T_EQ_INT(smtp_session_send(h->s, &m[3]), -1);   /* max_inflight */
	/* Whole transactions back to back, bodies verbatim (no dot-stuffing). */
	EXPECT_OUT(h, "MAIL FROM:<alice@src.test>\r\nRCPT TO:<bob@dest.test>\r\nRCPT TO:<carol@dest.test>\r\n"
		      "BDAT 9 LAST\r\nA\r\n.dot\r\n"
		      "MAIL FROM:<alice@src.test>\r\nRCPT TO:<bob@dest.test>\r\nBDAT 3 LAST\r\nB\r\n"
		      "MAIL FROM:<alice@src.test>\r\nRCPT TO:<bob@dest.test>\r\nRCPT TO:<carol@dest.test>\r\n"
		      "RCPT TO:<dave@dest.test>\r\nBDAT 3 LAST\r\nC\r\n");
	T_TRUE(h->lent_max >= 2);   /* bodies are sent from the message itself */
	h_server(h, "250 ok\r\n250 ok\r\n550 5.1.1 carol unknown\r\n250 queued\r\n"
		    "250 ok\r\n250 ok\r\n");
	EXPECT_LOG(h, "r1:permfail:rcpt:550;r0:ok:body:250;m:ok:body:250;");
	/* The second finishes; the third is half answered. */
	h_server(h, "452 4.3.1 out of space\r\n250 ok\r\n250 ok\r\n");
	EXPECT_LOG(h, "r0:tempfail:body:452;m:tempfail:body:452;");
	T_EQ_INT(smtp_session_send(h->s, &m[3]), 0);
	EXPECT_OUT(h, "MAIL FROM:<alice@src.test>\r\nRCPT TO:<bob@dest.test>\r\nBDAT 3 LAST\r\nD\r\n");
	/* 421 in the middle: everything in flight fails, not delivered. */
	h_server(h, "250 ok\r\n421 4.4.2 shutting down\r\n");
	T_EQ_INT(smtp_session_state(h->s), SMTP_SESSION_FAILED);
	smtp_session_abort(h->s, 421, "4.4.2", "connection lost");
	EXPECT_LOG(h, "r0:tempfail:rcpt:421;r1:tempfail:rcpt:421;r2:tempfail:rcpt:421;m:tempfail:rcpt:421;"
		      "r0:tempfail:rcpt:421;m:tempfail:rcpt:421;");
	smtp_session_free(h->s);
	free(h);
}

/* A parked session gives back its window and takes it again for the next
 * message; trimming with anything in flight or queued changes nothing. */
static void test_trim(void)
{
	struct harness *h = calloc(1, sizeof *h);
	h_init(h, SMTP_TLS_NONE);
	h->cfg.max_inflight = 100;
	h_hello(h, "250-mx.dest.test\r\n250-PIPELINING\r\n250 CHUNKING\r\n");
	T_EQ_INT(smtp_session_capacity(h->s), 100);
	smtp_session_trim(h->s);   /* nothing sent yet */
	/* A full window is queued at once. */
	struct smtp_msg m[100];
	char want[100 * 80], *w = want;
	for (int i = 0; i < 100; i++) {
		m[i] = msg(two_rcpts, 1, "B\r\n");
		T_EQ_INT(smtp_session_send(h->s, &m[i]), 0);
		w += sprintf(w, "MAIL FROM:<alice@src.test>\r\nRCPT TO:<bob@dest.test>\r\nBDAT 3 LAST\r\nB\r\n");
	}
	smtp_session_trim(h->s);   /* in flight: no effect */
	EXPECT_OUT(h, want);
	smtp_session_trim(h->s);
	char replies[100 * 24 + 1], *r = replies;
	for (int i = 0; i < 100; i++)
		r += sprintf(r, "250 ok\r\n250 ok\r\n250 ok\r\n");
	h_server(h, replies);
	T_EQ_INT(smtp_session_inflight(h->s), 0);
	T_EQ_INT((int)h->log_len, 100 * (int)strlen("r0:ok:body:250;m:ok:body:250;"));
	h->log_len = 0;
	smtp_session_trim(h->s);
	smtp_session_input_trim(h->s);
	smtp_session_trim(h->s);   /* twice is harmless */
	/* Parked: the next message takes the window again. */
	struct smtp_msg again = msg(three_rcpts, 3, "C\r\n");
	T_EQ_INT(smtp_session_send(h->s, &again), 0);
	EXPECT_OUT(h, "MAIL FROM:<alice@src.test>\r\nRCPT TO:<bob@dest.test>\r\nRCPT TO:<carol@dest.test>\r\n"
		      "RCPT TO:<dave@dest.test>\r\nBDAT 3 LAST\r\nC\r\n");
	h_server(h, "250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n250 2.0.0 queued\r\n");
	EXPECT_LOG(h, "r0:ok:body:250;r1:ok:body:250;r2:ok:body:250;m:ok:body:250;");
	/* A raw command and QUIT still work on the small rings. */
	smtp_session_trim(h->s);
	T_EQ_INT(smtp_session_command(h->s, "NOOP", (void *)(intptr_t)7), 0);
	EXPECT_OUT(h, "NOOP\r\n");
	h_server(h, "250 ok\r\n");
	EXPECT_LOG(h, "c7:250;");
	smtp_session_quit(h->s);
	EXPECT_OUT(h, "QUIT\r\n");
	smtp_session_free(h->s);
	free(h);
}

/* The same pipelined exchange, with the server's bytes split at every
 * point: the outcomes must not change. */
static void test_split_points(void)
{
	const char *greeting = "220 mx ESMTP\r\n";
	const char *hello = "250-mx\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n";
	/* Up to the sync point (354), then the reply to the dot. */
	const char *replies = "250 2.1.0 ok\r\n250 2.1.5 ok\r\n550-5.1.1 no such\r\n550 5.1.1 user\r\n354 go\r\n";
	const char *final = "250 2.0.0 queued\r\n";
	const char *want = "r1:permfail:rcpt:550;r0:ok:body:250;m:ok:body:250;";
	size_t len = strlen(replies);
	struct harness *h = calloc(1, sizeof *h);
	for (size_t cut = 0; cut <= len; cut++) {
		h_init(h, SMTP_TLS_NONE);
		h_start(h);
		h_server(h, greeting);
		h_drain(h);
		h_server(h, hello);
		h_drain(h);
		struct smtp_msg m = msg(two_rcpts, 2, "body\r\n");
		smtp_session_send(h->s, &m);
		h_drain(h);
		smtp_session_input(h->s, replies, cut);
		h_drain(h);
		smtp_session_input(h->s, replies + cut, len - cut);
		h_drain(h);
		size_t fcut = cut % strlen(final);
		smtp_session_input(h->s, final, fcut);
		smtp_session_input(h->s, final + fcut, strlen(final) - fcut);
		T_EQ_MEM(h->log, h->log_len, want, strlen(want));
		smtp_session_free(h->s);
	}
	/* Byte by byte too. */
	h_init(h, SMTP_TLS_NONE);
	h_start(h);
	for (const char *p = greeting; *p; p++)
		smtp_session_input(h->s, p, 1);
	h_drain(h);
	for (const char *p = hello; *p; p++)
		smtp_session_input(h->s, p, 1);
	h_drain(h);
	struct smtp_msg m = msg(two_rcpts, 2, "body\r\n");
	smtp_session_send(h->s, &m);
	h_drain(h);
	for (size_t i = 0; i < len; i++) {
		smtp_session_input(h->s, replies + i, 1);
		h_drain(h);
	}
	for (const char *p = final; *p; p++)
		smtp_session_input(h->s, p, 1);
	T_EQ_MEM(h->log, h->log_len, want, strlen(want));
	smtp_session_free(h->s);
	free(h);
}

/* A long body with a line-start dot on every line (many stuffed runs), sent in pieces of every
 * awkward size: what arrives, un-stuffed, must be the body. */
static void test_large_body(void)
{
	size_t n = 100000;
	char *body = malloc(n + 1);
	for (size_t i = 0; i < n; i++)
		body[i] = (i % 61 == 0 || i % 61 == 1) ? (i % 61 ? '\n' : '\r') : (i % 61 == 2 ? '.' : 'a' + i % 26);
	body[n] = 0;
	size_t pieces[] = { 0, 1, 7, 4096, 16383, 16384, 16385 };
	for (size_t k = 0; k < sizeof pieces / sizeof pieces[0]; k++) {
		struct harness *h = calloc(1, sizeof *h);
		h_init(h, SMTP_TLS_NONE);
		h_hello(h, "250-mx\r\n250 PIPELINING\r\n");
		struct smtp_msg m = { "a@src.test", two_rcpts, 1, body, n, 0, NULL };
		smtp_session_send(h->s, &m);
		h_drain(h);
		h->out_len = 0;
		h_server(h, "250 ok\r\n250 ok\r\n354 go\r\n");
		h_drain_by(h, pieces[k]);
		/* Un-stuff: a line starting ".." loses one dot. */
		char *plain = malloc(h->out_len + 1);
		size_t pl = 0;
		int bol = 1;
		for (size_t i = 0; i < h->out_len; i++) {
			if (bol && h->out[i] == '.' && i + 1 < h->out_len && h->out[i + 1] == '.') {
				bol = 0;
				continue;
			}
			plain[pl++] = h->out[i];
			bol = h->out[i] == '\n';
		}
		/* The body has no final CRLF, so the terminator is CRLF.CRLF. */
		T_TRUE(pl == n + 5);
		T_TRUE(memcmp(plain, body, n) == 0);
		T_TRUE(memcmp(plain + n, "\r\n.\r\n", 5) == 0);
		free(plain);
		h_server(h, "250 ok\r\n");
		EXPECT_LOG(h, "r0:ok:body:250;m:ok:body:250;");
		smtp_session_free(h->s);
		free(h);
	}
	free(body);
}

static void test_starttls_auth(void)
{
	static const struct sasl_creds creds = { "alice@src.test", "s3cret-pass" };
	struct harness *h = calloc(1, sizeof *h);

	/* Opportunistic STARTTLS, then AUTH PLAIN, redacted in the trace. */
	h_init(h, SMTP_TLS_OPPORTUNISTIC);
	h->cfg.creds = &creds;
	h_hello(h, "250-mx\r\n250-STARTTLS\r\n250 AUTH LOGIN\r\n");
	EXPECT_OUT(h, "STARTTLS\r\n");
	h_server(h, "220 2.0.0 ready\r\n");
	T_EQ_INT(smtp_session_state(h->s), SMTP_SESSION_TLS);
	EXPECT_OUT(h, "");
	smtp_session_tls_done(h->s, 1, NULL);
	T_EQ_INT(smtp_session_secure(h->s), 1);
	EXPECT_OUT(h, "EHLO client.test\r\n");
	h_server(h, "250-mx\r\n250 AUTH PLAIN LOGIN\r\n");
	/* base64("\0alice@src.test\0s3cret-pass") */
	EXPECT_OUT(h, "AUTH PLAIN AGFsaWNlQHNyYy50ZXN0AHMzY3JldC1wYXNz\r\n");
	h_server(h, "235 2.7.0 ok\r\n");
	T_EQ_INT(smtp_session_state(h->s), SMTP_SESSION_READY);
	T_EQ_INT(smtp_session_authenticated(h->s), 1);
	T_TRUE(strstr(h->trace, "> AUTH PLAIN ****") != NULL);
	T_TRUE(strstr(h->trace, "AGFsaWNl") == NULL);
	smtp_session_free(h->s);

	/* No TLS on offer and AUTH wanted: refused before any secret is sent. */
	h_init(h, SMTP_TLS_OPPORTUNISTIC);
	h->cfg.creds = &creds;
	h_hello(h, "250-mx\r\n250 AUTH PLAIN\r\n");
	EXPECT_OUT(h, "");
	T_EQ_INT(smtp_session_state(h->s), SMTP_SESSION_FAILED);
	const struct smtp_reply *r;
	T_EQ_INT(smtp_session_failure(h->s, &r), SMTP_PHASE_AUTH);
	T_TRUE(strstr(r->text, "not encrypted") != NULL);
	smtp_session_free(h->s);

	/* Unless explicitly allowed; AUTH LOGIN in two steps, then refused. */
	h_init(h, SMTP_TLS_NONE);
	h->cfg.creds = &creds;
	h->cfg.auth_plaintext_ok = 1;
	h->cfg.auth_mechs = SMTP_AUTH_LOGIN;
	h_hello(h, "250-mx\r\n250 AUTH PLAIN LOGIN\r\n");
	EXPECT_OUT(h, "AUTH LOGIN\r\n");
	h_server(h, "334 VXNlcm5hbWU6\r\n");
	EXPECT_OUT(h, "YWxpY2VAc3JjLnRlc3Q=\r\n");
	h_server(h, "334 UGFzc3dvcmQ6\r\n");
	EXPECT_OUT(h, "czNjcmV0LXBhc3M=\r\n");
	h_server(h, "535 5.7.8 bad credentials\r\n");
	T_EQ_INT(smtp_session_failure(h->s, &r), SMTP_PHASE_AUTH);
	T_EQ_INT(r->code, 535);
	T_TRUE(strstr(h->trace, "czNjcmV0") == NULL);
	smtp_session_free(h->s);

	/* STARTTLS required and not offered. */
	h_init(h, SMTP_TLS_REQUIRED);
	h_hello(h, "250-mx\r\n250 PIPELINING\r\n");
	T_EQ_INT(smtp_session_failure(h->s, &r), SMTP_PHASE_STARTTLS);
	smtp_session_free(h->s);

	/* Bytes after the 220 to STARTTLS: an injection attempt. */
	h_init(h, SMTP_TLS_REQUIRED);
	h_hello(h, "250-mx\r\n250 STARTTLS\r\n");
	EXPECT_OUT(h, "STARTTLS\r\n");
	h_server(h, "220 go\r\n250-injected\r\n");
	T_EQ_INT(smtp_session_state(h->s), SMTP_SESSION_FAILED);
	smtp_session_free(h->s);
	free(h);
}

static void test_helo_lmtp_cmds(void)
{
	struct harness *h = calloc(1, sizeof *h);
	/* EHLO refused: HELO, and no extensions used. */
	h_init(h, SMTP_TLS_NONE);
	h_hello(h, "502 5.5.2 what?\r\n");
	EXPECT_OUT(h, "HELO client.test\r\n");
	h_server(h, "250 mx\r\n");
	T_EQ_INT(smtp_session_state(h->s), SMTP_SESSION_READY);
	struct smtp_msg m = msg(two_rcpts, 2, "x\r\n");
	m.need = SMTP_NEED_8BITMIME;
	smtp_session_send(h->s, &m);
	EXPECT_LOG(h, "r0:local:mail:554;r1:local:mail:554;m:local:mail:554;");
	/* Raw commands, then QUIT. */
	T_EQ_INT(smtp_session_command(h->s, "VRFY bob", (void *)1), 0);
	T_EQ_INT(smtp_session_command(h->s, "NOOP\r\nRSET", (void *)2), -1);
	T_EQ_INT(smtp_session_command(h->s, "HELP", (void *)3), 0);
	EXPECT_OUT(h, "VRFY bob\r\n");
	h_server(h, "252 2.5.0 cannot verify\r\n");
	EXPECT_OUT(h, "HELP\r\n");
	h_server(h, "214 help\r\n");
	EXPECT_LOG(h, "c1:252;c3:214;");
	smtp_session_free(h->s);

	/* LMTP: LHLO, one reply per accepted recipient after the data. */
	h_init(h, SMTP_TLS_NONE);
	h->cfg.lmtp = 1;
	h_start(h);
	h_server(h, "220 lmtp ready\r\n");
	EXPECT_OUT(h, "LHLO client.test\r\n");
	h_server(h, "250-lmtp\r\n250 PIPELINING\r\n");
	struct smtp_msg l = msg(three_rcpts, 3, "hi\r\n");
	smtp_session_send(h->s, &l);
	EXPECT_OUT(h, "MAIL FROM:<alice@src.test>\r\nRCPT TO:<bob@dest.test>\r\nRCPT TO:<carol@dest.test>\r\n"
		      "RCPT TO:<dave@dest.test>\r\nDATA\r\n");
	h_server(h, "250 ok\r\n250 ok\r\n550 5.1.1 no carol\r\n250 ok\r\n354 go\r\n");
	EXPECT_OUT(h, "hi\r\n.\r\n");
	h_server(h, "250 2.0.0 bob ok\r\n452 4.2.2 dave over quota\r\n");
	EXPECT_LOG(h, "r1:permfail:rcpt:550;r0:ok:body:250;r2:tempfail:body:452;m:tempfail:body:452;");
	smtp_session_free(h->s);
	free(h);
}

static void test_guards(void)
{
	struct harness *h = calloc(1, sizeof *h);
	h_init(h, SMTP_TLS_NONE);
	h_hello(h, "250-mx\r\n250 PIPELINING\r\n");
	/* Address injection is refused locally, per recipient. */
	const char *const bad[] = { "bob@dest.test>\r\nRCPT TO:<evil@x.test", "ok@dest.test" };
	struct smtp_msg m = msg(bad, 2, "x\r\n");
	smtp_session_send(h->s, &m);
	EXPECT_LOG(h, "r0:local:rcpt:501;");
	EXPECT_OUT(h, "MAIL FROM:<alice@src.test>\r\nRCPT TO:<ok@dest.test>\r\nDATA\r\n");
	/* Timeouts follow the command waited for. */
	T_EQ_INT(smtp_session_timeout(h->s), 300000);
	h_server(h, "250 ok\r\n250 ok\r\n");
	T_EQ_INT(smtp_session_waiting_phase(h->s), SMTP_PHASE_DATA);
	T_EQ_INT(smtp_session_timeout(h->s), 120000);
	h_server(h, "354 go\r\n");
	h_drain(h);
	T_EQ_INT(smtp_session_timeout(h->s), 600000);
	/* Garbage from the server fails the session; the message is not
	 * delivered. */
	h_server(h, "hello?\r\n");
	T_EQ_INT(smtp_session_state(h->s), SMTP_SESSION_FAILED);
	smtp_session_abort(h->s, 421, "4.4.2", "closed");
	EXPECT_LOG(h, "r1:tempfail:body:500;m:tempfail:body:500;");
	smtp_session_free(h->s);

	/* A greeting that refuses service. */
	h_init(h, SMTP_TLS_NONE);
	h_start(h);
	h_server(h, "554 5.7.1 go away\r\n");
	const struct smtp_reply *r;
	T_EQ_INT(smtp_session_failure(h->s, &r), SMTP_PHASE_GREETING);
	T_EQ_INT(r->code, 554);
	smtp_session_free(h->s);

	/* More recipients than a transaction takes: each is refused once,
	 * locally, and the message fails whole. */
	h_init(h, SMTP_TLS_NONE);
	h_hello(h, "250-mx\r\n250 PIPELINING\r\n");
	enum { MANY = 1003 };
	const char **many = calloc(MANY, sizeof *many);
	for (unsigned i = 0; i < MANY; i++)
		many[i] = "bob@dest.test";
	m = msg(many, MANY, "x\r\n");
	smtp_session_send(h->s, &m);
	EXPECT_OUT(h, "");
	T_EQ_INT(strncmp(h->log, "r0:local:mail:452;r1:local:mail:452;", 36), 0);
	T_EQ_STR(h->log + h->log_len - 38, "r1002:local:mail:452;m:local:mail:452;");
	T_EQ_STR(h->msg_reply, "4.5.3 1003 recipients: a transaction takes 1 to 1000");
	h->log_len = 0;
	free(many);
	smtp_session_free(h->s);
	free(h);
}

/* The reply that decides a message is the one reported with it, whole,
 * however many replies come between the two. */
static void test_outcome_reply_kept(void)
{
	struct harness *h = calloc(1, sizeof *h);
	h_init(h, SMTP_TLS_NONE);
	h_hello(h, "250-mx\r\n250 PIPELINING\r\n");
	struct smtp_msg m1 = msg(two_rcpts, 2, "one\r\n");
	struct smtp_msg m2 = msg(two_rcpts, 2, "two\r\n");
	smtp_session_send(h->s, &m1);
	smtp_session_send(h->s, &m2);
	EXPECT_OUT(h, "MAIL FROM:<alice@src.test>\r\nRCPT TO:<bob@dest.test>\r\n"
		      "RCPT TO:<carol@dest.test>\r\nDATA\r\n");
	/* The first message is refused at MAIL, and its outcome waits for
	 * the replies to its RCPTs and DATA. */
	h_server(h, "550-5.7.1 sender blocked\r\n550 5.7.1 see https://help.test/\r\n");
	h_server(h, "503 5.5.1 no MAIL\r\n503 5.5.1 no MAIL\r\n");
	EXPECT_LOG(h, "r0:permfail:mail:550;r1:permfail:mail:550;");
	h_server(h, "503 5.5.1 no valid recipients\r\n");
	EXPECT_LOG(h, "m:permfail:mail:550;");
	T_EQ_STR(h->msg_reply, "5.7.1 sender blocked\nsee https://help.test/");
	/* The second one is delivered, with its own reply. */
	EXPECT_OUT(h, "MAIL FROM:<alice@src.test>\r\nRCPT TO:<bob@dest.test>\r\n"
		      "RCPT TO:<carol@dest.test>\r\nDATA\r\n");
	h_server(h, "250 ok\r\n250 ok\r\n451 4.2.1 try later\r\n354 go\r\n");
	EXPECT_LOG(h, "r1:tempfail:rcpt:451;");
	EXPECT_OUT(h, "two\r\n.\r\n");
	h_server(h, "250 2.0.0 queued as X1\r\n");
	EXPECT_LOG(h, "r0:ok:body:250;m:ok:body:250;");
	T_EQ_STR(h->msg_reply, "2.0.0 queued as X1");
	smtp_session_free(h->s);
	free(h);
}

int main(void)
{
	test_lockstep();
	test_pipelining();
	test_chunking();
	test_trim();
	test_split_points();
	test_large_body();
	test_starttls_auth();
	test_helo_lmtp_cmds();
	test_guards();
	test_outcome_reply_kept();
	return t_done("session");
}
