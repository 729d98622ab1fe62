/* Tests for pool/smtp_cmd: address checks (against a guard page), command
 * formatters with every too-small cap, dot-stuffing over every split, message
 * inspection and CRLF conversion, and garbage. */
#include "pool/smtp_cmd.h"
#include "tests/testutil.h"
#include "tests/guard.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define GUARD_REGION (16u * 4096u)
static void guard_init(void) { guard_init_size(GUARD_REGION); }

static int check_guarded(const char *s, size_t n, int allow_empty, struct smtp_addr_check *res)
{
	memcpy(guard_mem - n, s, n);
	return smtp_addr_check(guard_mem - n, n, allow_empty, res);
}

/* ---- addresses ---- */

struct addr_case {
	const char *addr;
	size_t len;          /* 0: strlen */
	int allow_empty;
	int ok;
	int utf8;
	size_t bad_offset;
	const char *why;     /* the reason, when !ok */
};

static const struct addr_case addr_cases[] = {
	{ "a@b.test", 0, 0, 1, 0, 0, NULL },
	{ "first.last@example.com", 0, 0, 1, 0, 0, NULL },
	{ "x+tag@sub.example.co.uk", 0, 0, 1, 0, 0, NULL },
	{ "!#$%&'*+-/=?^_`{|}~@x.test", 0, 0, 1, 0, 0, NULL },
	{ "user@localhost", 0, 0, 1, 0, 0, NULL },
	{ "1@2.3a", 0, 0, 1, 0, 0, NULL },
	{ "a@a-b.test", 0, 0, 1, 0, 0, NULL },
	{ "a@xn--bcher-kva.test", 0, 0, 1, 0, 0, NULL },
	{ "\"quoted\"@x.test", 0, 0, 1, 0, 0, NULL },
	{ "\"with@at.and..dots.\"@x.test", 0, 0, 1, 0, 0, NULL },
	{ "\"esc\\\"aped\"@x.test", 0, 0, 1, 0, 0, NULL },
	{ "\"a\\\\b\"@x.test", 0, 0, 1, 0, 0, NULL },
	{ "user@[192.0.2.1]", 0, 0, 1, 0, 0, NULL },
	{ "user@[0.0.0.0]", 0, 0, 1, 0, 0, NULL },
	{ "user@[255.255.255.255]", 0, 0, 1, 0, 0, NULL },
	{ "user@[IPv6:2001:db8::1]", 0, 0, 1, 0, 0, NULL },
	{ "user@[ipv6:::1]", 0, 0, 1, 0, 0, NULL },
	{ "user@[IPv6:::ffff:192.0.2.1]", 0, 0, 1, 0, 0, NULL },
	{ "\xc3\xa9l\xc3\xa8ve@\xc3\xa9" "cole.test", 0, 0, 1, 1, 0, NULL },
	{ "\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a", 0, 0, 1, 1, 0, NULL },
	{ "\"\xf0\x9f\x98\x80\"@x.test", 0, 0, 1, 1, 0, NULL },
	{ "", 0, 1, 1, 0, 0, NULL },

	{ "", 0, 0, 0, 0, 0, "empty address" },
	/* injection attempts */
	{ "a@b.test>\r\nRCPT TO:<x@y.test", 0, 0, 0, 0, 8, "angle bracket" },
	{ "a@b.test\r\nRSET", 0, 0, 0, 0, 8, "CR or LF" },
	{ "a@b.test\nRSET", 0, 0, 0, 0, 8, "CR or LF" },
	{ "a@b.test> SIZE=1", 0, 0, 0, 0, 8, "angle bracket" },
	{ "a@b.test SIZE=1", 0, 0, 0, 0, 8, "space" },
	{ "<a@b.test>", 0, 0, 0, 0, 0, "angle bracket" },
	{ "a\0b@x.test", 10, 0, 0, 0, 1, "NUL byte" },
	{ "a@x.test\0", 9, 0, 0, 0, 8, "NUL byte" },
	{ "a\tb@x.test", 0, 0, 0, 0, 1, "control character" },
	{ "a\x7f@x.test", 0, 0, 0, 0, 1, "control character" },
	{ "\"a b\"@x.test", 0, 0, 0, 0, 2, "space" },
	{ "\"a\r\nb\"@x.test", 0, 0, 0, 0, 2, "CR or LF" },
	/* local part */
	{ "ab", 0, 0, 0, 0, 2, "missing '@'" },
	{ "@b.test", 0, 0, 0, 0, 0, "empty local part" },
	{ ".a@b.test", 0, 0, 0, 0, 0, "empty atom in local part" },
	{ "a..b@c.test", 0, 0, 0, 0, 2, "empty atom in local part" },
	{ "a.@b.test", 0, 0, 0, 0, 1, "local part ends with '.'" },
	{ "a(b)@c.test", 0, 0, 0, 0, 1, "character not allowed in local part" },
	{ "a,b@c.test", 0, 0, 0, 0, 1, "character not allowed in local part" },
	{ "a\"b@c.test", 0, 0, 0, 0, 1, "character not allowed in local part" },
	{ "a\\b@c.test", 0, 0, 0, 0, 1, "character not allowed in local part" },
	{ "\"\"@x.test", 0, 0, 0, 0, 0, "empty local part" },
	{ "\"abc@x.test", 0, 0, 0, 0, 11, "unterminated quoted string" },
	{ "\"abc\"x@y.test", 0, 0, 0, 0, 5, "expected '@' after quoted local part" },
	{ "\"abc\"", 0, 0, 0, 0, 5, "expected '@' after quoted local part" },
	{ "\"a\\\xc3\xa9\"@x.test", 0, 0, 0, 0, 2, "bad quoted pair" },
	/* invalid UTF-8: truncated, overlong, surrogate, past U+10FFFF */
	{ "\xc3@x.test", 0, 0, 0, 0, 0, "invalid UTF-8" },
	{ "a\xc0\xaf@x.test", 0, 0, 0, 0, 1, "invalid UTF-8" },
	{ "a\xe0\x80\xaf@x.test", 0, 0, 0, 0, 1, "invalid UTF-8" },
	{ "\xed\xa0\x80@x.test", 0, 0, 0, 0, 0, "invalid UTF-8" },
	{ "\xf4\x90\x80\x80@x.test", 0, 0, 0, 0, 0, "invalid UTF-8" },
	{ "\xff@x.test", 0, 0, 0, 0, 0, "invalid UTF-8" },
	{ "\x80@x.test", 0, 0, 0, 0, 0, "invalid UTF-8" },
	{ "a@x.\xe2\x82", 0, 0, 0, 0, 4, "invalid UTF-8" },
	/* domain */
	{ "a@", 0, 0, 0, 0, 2, "empty domain" },
	{ "a@b@c.test", 0, 0, 0, 0, 3, "character not allowed in domain" },
	{ "a@-b.test", 0, 0, 0, 0, 2, "label starts with '-'" },
	{ "a@b-.test", 0, 0, 0, 0, 3, "label ends with '-'" },
	{ "a@b..test", 0, 0, 0, 0, 4, "empty label in domain" },
	{ "a@.b", 0, 0, 0, 0, 2, "empty label in domain" },
	{ "a@b.test.", 0, 0, 0, 0, 9, "empty label in domain" },
	{ "a@b_c.test", 0, 0, 0, 0, 3, "character not allowed in domain" },
	{ "a@x[1].test", 0, 0, 0, 0, 3, "character not allowed in domain" },
	/* address literals */
	{ "a@[1.2.3.4", 0, 0, 0, 0, 9, "address literal without ']'" },
	{ "a@[1.2.3.4]x", 0, 0, 0, 0, 11, "address literal without ']'" },
	{ "a@[1.2.3]", 0, 0, 0, 0, 3, "bad address literal" },
	{ "a@[256.1.1.1]", 0, 0, 0, 0, 3, "bad address literal" },
	{ "a@[1.2.3.4.5]", 0, 0, 0, 0, 3, "bad address literal" },
	{ "a@[1.2.3.0004]", 0, 0, 0, 0, 3, "bad address literal" },
	{ "a@[]", 0, 0, 0, 0, 3, "bad address literal" },
	{ "a@[", 0, 0, 0, 0, 2, "address literal without ']'" },
	{ "a@[tag:stuff]", 0, 0, 0, 0, 3, "bad address literal" },
	{ "a@[IPv6:zz::1]", 0, 0, 0, 0, 3, "bad IPv6 address literal" },
	{ "a@[IPv6:1.2.3.4]", 0, 0, 0, 0, 3, "bad IPv6 address literal" },
	{ "a@[IPv6:fe80::1%eth0]", 0, 0, 0, 0, 3, "bad IPv6 address literal" },
	{ "a@[IPv6:1111:2222:3333:4444:5555:6666:7777:8888:9999]", 0, 0, 0, 0, 3, "bad IPv6 address literal" },
};

static void test_addr_cases(void)
{
	for (size_t i = 0; i < sizeof(addr_cases) / sizeof(addr_cases[0]); i++) {
		const struct addr_case *c = &addr_cases[i];
		size_t n = c->len ? c->len : strlen(c->addr);
		struct smtp_addr_check res;

		memset(&res, 0x5a, sizeof(res));
		T_EQ_INT(check_guarded(c->addr, n, c->allow_empty, &res), c->ok);
		T_EQ_INT(res.ok, c->ok);
		T_EQ_INT(res.utf8, c->utf8);
		if (c->ok) {
			T_TRUE(res.why == NULL);
		} else {
			T_EQ_INT(res.bad_offset, c->bad_offset);
			T_EQ_STR(res.why, c->why);
		}
		/* the result does not depend on res being there */
		T_EQ_INT(check_guarded(c->addr, n, c->allow_empty, NULL), c->ok);
	}
}

static void test_addr_lengths(void)
{
	char a[400];
	struct smtp_addr_check res;

	/* a 64-octet local part is fine, 65 is not */
	memset(a, 'l', 64);
	memcpy(a + 64, "@x.test", 7);
	T_EQ_INT(check_guarded(a, 71, 0, &res), 1);
	memset(a, 'l', 65);
	memcpy(a + 65, "@x.test", 7);
	T_EQ_INT(check_guarded(a, 72, 0, &res), 0);
	T_EQ_INT(res.bad_offset, SMTP_LOCAL_PART_MAX);
	T_EQ_STR(res.why, "local part too long");
	/* a quoted local part counts its quotes */
	a[0] = '"';
	memset(a + 1, 'q', 62);
	memcpy(a + 63, "\"@x.test", 8);
	T_EQ_INT(check_guarded(a, 71, 0, &res), 1);
	a[0] = '"';
	memset(a + 1, 'q', 63);
	memcpy(a + 64, "\"@x.test", 8);
	T_EQ_INT(check_guarded(a, 72, 0, &res), 0);
	T_EQ_STR(res.why, "local part too long");

	/* labels: 63 octets fine, 64 not */
	memcpy(a, "a@", 2);
	memset(a + 2, 'd', 63);
	memcpy(a + 65, ".test", 5);
	T_EQ_INT(check_guarded(a, 70, 0, &res), 1);
	memset(a + 2, 'd', 64);
	memcpy(a + 66, ".test", 5);
	T_EQ_INT(check_guarded(a, 71, 0, &res), 0);
	T_EQ_INT(res.bad_offset, 2 + 63);
	T_EQ_STR(res.why, "domain label too long");

	/* the whole path: 254 octets inside <> is the limit */
	memcpy(a, "a@", 2);
	for (size_t i = 2; i < 254; i++)
		a[i] = (i % 50 == 1) ? '.' : 'd';
	T_EQ_INT(check_guarded(a, 254, 0, &res), 1);
	a[254] = 'd';
	T_EQ_INT(check_guarded(a, 255, 0, &res), 0);
	T_EQ_INT(res.bad_offset, SMTP_PATH_MAX - 2);
	T_EQ_STR(res.why, "address too long");
}

/* ---- formatters ---- */

enum fmt_kind { F_MAIL, F_RCPT, F_CMD, F_RAW, F_BDAT };

struct fmt_case {
	enum fmt_kind kind;
	const char *a, *b;           /* address or verb/line; notify or arg */
	struct smtp_mail_params p;
	int use_p;
	uint64_t n;
	int last;
	ssize_t ret;                 /* > 0: want is the output */
	const char *want;
};

static ssize_t run_fmt(const struct fmt_case *c, char *out, size_t cap)
{
	switch (c->kind) {
	case F_MAIL: return smtp_fmt_mail(out, cap, c->a, c->use_p ? &c->p : NULL);
	case F_RCPT: return smtp_fmt_rcpt(out, cap, c->a, c->b);
	case F_CMD: return smtp_fmt_cmd(out, cap, c->a, c->b);
	case F_RAW: return smtp_fmt_raw(out, cap, c->a);
	case F_BDAT: return smtp_fmt_bdat(out, cap, c->n, c->last);
	}
	return 0;
}

#define OK(s) (ssize_t)(sizeof(s) - 1), s
#define EINVAL_ SMTP_CMD_EINVAL, NULL
#define P(...) { __VA_ARGS__ }, 1

static const struct fmt_case fmt_cases[] = {
	{ F_MAIL, "a@b.test", NULL, { 0 }, 0, 0, 0, OK("MAIL FROM:<a@b.test>\r\n") },
	{ F_MAIL, "", NULL, { 0 }, 0, 0, 0, OK("MAIL FROM:<>\r\n") },
	{ F_MAIL, "a@b.test", NULL, P(0), 0, 0, OK("MAIL FROM:<a@b.test>\r\n") },
	{ F_MAIL, "a@b.test", NULL, P(12345, 1, 1, "hdrs", "abc+d=e f\xc3\xa9"), 0, 0,
	  OK("MAIL FROM:<a@b.test> SIZE=12345 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=abc+2Bd+3De+20f+C3+A9\r\n") },
	{ F_MAIL, "a@b.test", NULL, P(UINT64_MAX, 0, 0, "FULL", NULL), 0, 0,
	  OK("MAIL FROM:<a@b.test> SIZE=18446744073709551615 RET=FULL\r\n") },
	{ F_MAIL, "\xc3\xa9@b.test", NULL, P(0, 0, 1, NULL, NULL), 0, 0,
	  OK("MAIL FROM:<\xc3\xa9@b.test> SMTPUTF8\r\n") },
	/* ENVID line breaks are encoded, so they cannot reach the wire */
	{ F_MAIL, "", NULL, P(0, 0, 0, NULL, "x\r\nRSET"), 0, 0, OK("MAIL FROM:<> ENVID=x+0D+0ARSET\r\n") },
	{ F_MAIL, "", NULL, P(0, 0, 0, NULL, "                                  "), 0, 0, EINVAL_ },
	{ F_MAIL, "", NULL, P(0, 0, 0, NULL, ""), 0, 0, EINVAL_ },
	{ F_MAIL, "", NULL, P(0, 0, 0, "BOGUS", NULL), 0, 0, EINVAL_ },
	{ F_MAIL, "", NULL, P(0, 0, 0, "FULL\r\n", NULL), 0, 0, EINVAL_ },
	{ F_MAIL, "a@b.test>\r\nRCPT TO:<x@y.test", NULL, { 0 }, 0, 0, 0, EINVAL_ },
	{ F_MAIL, "a@b.test> SIZE=1", NULL, { 0 }, 0, 0, 0, EINVAL_ },
	{ F_MAIL, "no-at-sign", NULL, { 0 }, 0, 0, 0, EINVAL_ },
	{ F_MAIL, NULL, NULL, { 0 }, 0, 0, 0, EINVAL_ },

	{ F_RCPT, "x@y.test", NULL, { 0 }, 0, 0, 0, OK("RCPT TO:<x@y.test>\r\n") },
	{ F_RCPT, "x@[IPv6:::1]", NULL, { 0 }, 0, 0, 0, OK("RCPT TO:<x@[IPv6:::1]>\r\n") },
	{ F_RCPT, "x@y.test", "success,failure", { 0 }, 0, 0, 0,
	  OK("RCPT TO:<x@y.test> NOTIFY=SUCCESS,FAILURE\r\n") },
	{ F_RCPT, "x@y.test", "Delay", { 0 }, 0, 0, 0, OK("RCPT TO:<x@y.test> NOTIFY=DELAY\r\n") },
	{ F_RCPT, "x@y.test", "NEVER", { 0 }, 0, 0, 0, OK("RCPT TO:<x@y.test> NOTIFY=NEVER\r\n") },
	{ F_RCPT, "x@y.test", "SUCCESS,FAILURE,DELAY", { 0 }, 0, 0, 0,
	  OK("RCPT TO:<x@y.test> NOTIFY=SUCCESS,FAILURE,DELAY\r\n") },
	{ F_RCPT, "x@y.test", "NEVER,SUCCESS", { 0 }, 0, 0, 0, EINVAL_ },
	{ F_RCPT, "x@y.test", "SUCCESS,SUCCESS", { 0 }, 0, 0, 0, EINVAL_ },
	{ F_RCPT, "x@y.test", "SUCCESS,,DELAY", { 0 }, 0, 0, 0, EINVAL_ },
	{ F_RCPT, "x@y.test", "SUCCESS,", { 0 }, 0, 0, 0, EINVAL_ },
	{ F_RCPT, "x@y.test", "", { 0 }, 0, 0, 0, EINVAL_ },
	{ F_RCPT, "x@y.test", "ALWAYS", { 0 }, 0, 0, 0, EINVAL_ },
	{ F_RCPT, "x@y.test", "DELAY\r\nRSET", { 0 }, 0, 0, 0, EINVAL_ },
	{ F_RCPT, "", NULL, { 0 }, 0, 0, 0, EINVAL_ },
	{ F_RCPT, NULL, NULL, { 0 }, 0, 0, 0, EINVAL_ },
	{ F_RCPT, "a@b.test>\r\nRCPT TO:<x@y.test", NULL, { 0 }, 0, 0, 0, EINVAL_ },
	{ F_RCPT, "a@b.test\r\nDATA", NULL, { 0 }, 0, 0, 0, EINVAL_ },

	{ F_CMD, "EHLO", "client.test", { 0 }, 0, 0, 0, OK("EHLO client.test\r\n") },
	{ F_CMD, "LHLO", "client.test", { 0 }, 0, 0, 0, OK("LHLO client.test\r\n") },
	{ F_CMD, "QUIT", NULL, { 0 }, 0, 0, 0, OK("QUIT\r\n") },
	{ F_CMD, "NOOP", "", { 0 }, 0, 0, 0, OK("NOOP\r\n") },
	{ F_CMD, "AUTH", "PLAIN AGFsaWNlAHNlY3JldA==", { 0 }, 0, 0, 0, OK("AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n") },
	{ F_CMD, "", NULL, { 0 }, 0, 0, 0, EINVAL_ },
	{ F_CMD, NULL, NULL, { 0 }, 0, 0, 0, EINVAL_ },
	{ F_CMD, "RSET\r\n", NULL, { 0 }, 0, 0, 0, EINVAL_ },
	{ F_CMD, "QUIT\n", NULL, { 0 }, 0, 0, 0, EINVAL_ },
	{ F_CMD, "MAIL FROM:<>", NULL, { 0 }, 0, 0, 0, EINVAL_ },
	{ F_CMD, "VRFY", "x\r\nQUIT", { 0 }, 0, 0, 0, EINVAL_ },
	{ F_CMD, "VRFY", "x\n", { 0 }, 0, 0, 0, EINVAL_ },
	{ F_CMD, "VRFY", "x\r", { 0 }, 0, 0, 0, EINVAL_ },

	{ F_RAW, "VRFY alice", NULL, { 0 }, 0, 0, 0, OK("VRFY alice\r\n") },
	{ F_RAW, "", NULL, { 0 }, 0, 0, 0, EINVAL_ },
	{ F_RAW, NULL, NULL, { 0 }, 0, 0, 0, EINVAL_ },
	{ F_RAW, "VRFY a\r\nQUIT", NULL, { 0 }, 0, 0, 0, EINVAL_ },
	{ F_RAW, "VRFY a\r\n", NULL, { 0 }, 0, 0, 0, EINVAL_ },
	{ F_RAW, "VRFY a\n", NULL, { 0 }, 0, 0, 0, EINVAL_ },
	{ F_RAW, "\r", NULL, { 0 }, 0, 0, 0, EINVAL_ },

	{ F_BDAT, NULL, NULL, { 0 }, 0, 0, 0, OK("BDAT 0\r\n") },
	{ F_BDAT, NULL, NULL, { 0 }, 0, 1000, 1, OK("BDAT 1000 LAST\r\n") },
	{ F_BDAT, NULL, NULL, { 0 }, 0, 0, 1, OK("BDAT 0 LAST\r\n") },
	{ F_BDAT, NULL, NULL, { 0 }, 0, UINT64_MAX, 0, OK("BDAT 18446744073709551615\r\n") },
};

static void test_fmt_cases(void)
{
	char out[512];

	for (size_t i = 0; i < sizeof(fmt_cases) / sizeof(fmt_cases[0]); i++) {
		const struct fmt_case *c = &fmt_cases[i];
		ssize_t r;
		int spill = 0, short_ok = 1;

		memset(out, '#', sizeof(out));
		r = run_fmt(c, out, sizeof(out) - 1);
		T_EQ_INT(r, c->ret);
		if (c->ret < 0) {
			/* nothing at all, not even with a tiny buffer */
			T_EQ_INT(run_fmt(c, out, 0), c->ret == SMTP_CMD_EINVAL ? SMTP_CMD_EINVAL : c->ret);
			continue;
		}
		T_EQ_MEM(out, (size_t)r, c->want, strlen(c->want));
		/* exactly enough room works; any less is ETOOBIG, and the
		 * formatter never writes past cap */
		memset(out, '#', sizeof(out));
		T_EQ_INT(run_fmt(c, out, (size_t)c->ret), c->ret);
		for (size_t cap = 0; cap < (size_t)c->ret; cap++) {
			memset(out, '#', sizeof(out));
			if (run_fmt(c, out, cap) != SMTP_CMD_ETOOBIG)
				short_ok = 0;
			for (size_t k = cap; k < sizeof(out); k++)
				if (out[k] != '#')
					spill = 1;
		}
		T_TRUE(short_ok);
		T_EQ_INT(spill, 0);
	}
}

static void test_fmt_lengths(void)
{
	static char line[SMTP_CMD_LINE_MAX + 8];
	static char out[SMTP_CMD_LINE_MAX * 4];
	struct smtp_mail_params p = { 0 };

	/* ENVID: 100 characters once encoded, no more (RFC 3461 4.4) */
	memset(line, 'e', 100);
	line[100] = '\0';
	p.envid = line;
	T_EQ_INT(smtp_fmt_mail(out, sizeof(out), "", &p), 12 + 7 + 100 + 2);
	T_EQ_MEM(out + 12 + 7, 100, line, 100);
	line[100] = 'e';
	line[101] = '\0';
	T_EQ_INT(smtp_fmt_mail(out, sizeof(out), "", &p), SMTP_CMD_EINVAL);
	line[97] = '+';
	line[98] = '\0';
	T_EQ_INT(smtp_fmt_mail(out, sizeof(out), "", &p), 12 + 7 + 100 + 2);
	line[98] = 'e';
	line[99] = '\0';
	T_EQ_INT(smtp_fmt_mail(out, sizeof(out), "", &p), SMTP_CMD_EINVAL);

	/* the raw line cap counts the CRLF */
	memset(line, 'x', SMTP_CMD_LINE_MAX - 2);
	line[SMTP_CMD_LINE_MAX - 2] = '\0';
	T_EQ_INT(smtp_fmt_raw(out, sizeof(out), line), SMTP_CMD_LINE_MAX);
	line[SMTP_CMD_LINE_MAX - 2] = 'x';
	line[SMTP_CMD_LINE_MAX - 1] = '\0';
	T_EQ_INT(smtp_fmt_raw(out, sizeof(out), line), SMTP_CMD_EINVAL);

	/* AUTH arguments (XOAUTH2 tokens) may be longer than a raw line */
	memset(line, 'y', SMTP_CMD_LINE_MAX + 4);
	line[SMTP_CMD_LINE_MAX + 4] = '\0';
	T_EQ_INT(smtp_fmt_cmd(out, sizeof(out), "AUTH", line), SMTP_CMD_LINE_MAX + 4 + 7);
	T_EQ_INT(smtp_fmt_cmd(out, SMTP_CMD_LINE_MAX, "AUTH", line), SMTP_CMD_ETOOBIG);
}

/* ---- dot-stuffing ---- */

struct dot_case {
	const char *in;
	size_t len;      /* 0: strlen */
	const char *want;
	size_t wlen;     /* 0: strlen */
};

static const struct dot_case dot_cases[] = {
	{ "", 0, ".\r\n", 0 },
	{ "Hello\r\n", 0, "Hello\r\n.\r\n", 0 },
	{ "Hello", 0, "Hello\r\n.\r\n", 0 },
	{ "\r\n", 0, "\r\n.\r\n", 0 },
	{ ".", 0, "..\r\n.\r\n", 0 },
	{ ".\r\n", 0, "..\r\n.\r\n", 0 },
	{ ".hidden\r\n", 0, "..hidden\r\n.\r\n", 0 },
	{ "..\r\n", 0, "...\r\n.\r\n", 0 },
	{ "a\r\n.\r\nb\r\n", 0, "a\r\n..\r\nb\r\n.\r\n", 0 },
	{ "a\r\n..b\r\n", 0, "a\r\n...b\r\n.\r\n", 0 },
	{ "a.b\r\n.c", 0, "a.b\r\n..c\r\n.\r\n", 0 },
	{ "a\r\n.", 0, "a\r\n..\r\n.\r\n", 0 },
	{ "\r\n\r\n.\r\n\r\n", 0, "\r\n\r\n..\r\n\r\n.\r\n", 0 },
	{ "a.\r\n b.\r\n", 0, "a.\r\n b.\r\n.\r\n", 0 },
	/* a body ending in CR alone did not end its line */
	{ "a\r", 0, "a\r\r\n.\r\n", 0 },
	/* bare LF (not expected here): still stuffed, still terminated */
	{ "a\n.b", 0, "a\n..b\r\n.\r\n", 0 },
	{ "a\n", 0, "a\n\r\n.\r\n", 0 },
	{ "a\r.\r\n", 0, "a\r.\r\n.\r\n", 0 },
	{ "x\0.\r\n.", 6, "x\0.\r\n..\r\n.\r\n", 12 },
};

/* Stuffs in as the session sends it: runs between line-start dots found by
 * smtp_dot_next, an extra "." before each, then the terminator. */
static size_t stuff_runs(const char *in, size_t len, char *out, size_t cap)
{
	size_t o = 0, off = 0, n;
	while (off < len) {
		size_t dot = smtp_dot_next(in, len, off);
		if (dot == off) {
			out[o++] = '.';
			dot = smtp_dot_next(in, len, off + 1);
		}
		if (o + (dot - off) > cap)
			return (size_t)-1;
		memcpy(out + o, in + off, dot - off);
		o += dot - off;
		off = dot;
	}
	const char *end = smtp_dot_terminator(in, len, &n);
	memcpy(out + o, end, n);
	return o + n;
}

/* The first line-start dot at or after from, one byte at a time. */
static size_t next_dot_slow(const char *in, size_t len, size_t from)
{
	for (size_t i = from; i < len; i++)
		if (in[i] == '.' && (i == 0 || in[i - 1] == '\n'))
			return i;
	return len;
}

static void test_dot_cases(void)
{
	static char out[256];

	for (size_t i = 0; i < sizeof(dot_cases) / sizeof(dot_cases[0]); i++) {
		const struct dot_case *c = &dot_cases[i];
		size_t n = c->len ? c->len : strlen(c->in);
		size_t wl = c->wlen ? c->wlen : strlen(c->want);
		/* The body sits just before a guard page: no read past its end. */
		char *body = guard_mem - n;
		memcpy(body, c->in, n);
		size_t got = stuff_runs(body, n, out, sizeof(out) - 8);
		T_EQ_MEM(out, got, c->want, wl);
		int from_bad = 0;
		for (size_t from = 0; from <= n + 1; from++)
			if (smtp_dot_next(body, n, from) != next_dot_slow(body, n, from))
				from_bad++;
		T_EQ_INT(from_bad, 0);
	}
}

static void test_dot_terminator(void)
{
	size_t n;
	T_EQ_MEM(smtp_dot_terminator("", 0, &n), n, ".\r\n", 3);
	T_EQ_MEM(smtp_dot_terminator("a\r\n", 3, &n), n, ".\r\n", 3);
	T_EQ_MEM(smtp_dot_terminator("a", 1, &n), n, "\r\n.\r\n", 5);
	T_EQ_MEM(smtp_dot_terminator("\n", 1, &n), n, "\r\n.\r\n", 5);
	T_EQ_MEM(smtp_dot_terminator("a\r", 2, &n), n, "\r\n.\r\n", 5);
}

/* ---- inspection and CRLF ---- */

struct msg_case {
	const char *in;
	size_t len;      /* 0: strlen */
	int has_8bit, bare_lf, bare_cr, nul;
	size_t longest;
	const char *crlf;
};

static const struct msg_case msg_cases[] = {
	{ "", 0, 0, 0, 0, 0, 0, "" },
	{ "a\r\nbb\r\n", 0, 0, 0, 0, 0, 2, "a\r\nbb\r\n" },
	{ "a\r\nbbb", 0, 0, 0, 0, 0, 3, "a\r\nbbb" },
	{ "a\nbb", 0, 0, 1, 0, 0, 2, "a\r\nbb" },
	{ "a\rb", 0, 0, 0, 1, 0, 1, "a\r\nb" },
	{ "a\r", 0, 0, 0, 1, 0, 1, "a\r\n" },
	{ "\r\r\n", 0, 0, 0, 1, 0, 0, "\r\n\r\n" },
	{ "\n\r", 0, 0, 1, 1, 0, 0, "\r\n\r\n" },
	{ "\n\n", 0, 0, 1, 0, 0, 0, "\r\n\r\n" },
	{ "caf\xc3\xa9\r\n", 0, 1, 0, 0, 0, 5, "caf\xc3\xa9\r\n" },
	{ "Subject: x\r\n\r\nbody\n.\n", 0, 0, 1, 0, 0, 10, "Subject: x\r\n\r\nbody\r\n.\r\n" },
};

static void test_msg_cases(void)
{
	static char out[128];
	struct smtp_msg_info info;

	for (size_t i = 0; i < sizeof(msg_cases) / sizeof(msg_cases[0]); i++) {
		const struct msg_case *c = &msg_cases[i];
		size_t n = c->len ? c->len : strlen(c->in);
		size_t wl = strlen(c->crlf);
		int spill = 0;

		smtp_msg_inspect(c->in, n, &info);
		T_EQ_INT(info.has_8bit, c->has_8bit);
		T_EQ_INT(info.has_bare_lf, c->bare_lf);
		T_EQ_INT(info.has_bare_cr, c->bare_cr);
		T_EQ_INT(info.has_nul, c->nul);
		T_EQ_INT(info.longest_line, c->longest);
		T_EQ_INT(info.crlf_len, wl);
		T_EQ_INT(smtp_msg_to_crlf(c->in, n, out, sizeof(out)), (ssize_t)wl);
		T_EQ_MEM(out, wl, c->crlf, wl);
		T_EQ_INT(smtp_msg_to_crlf(c->in, n, out, wl), (ssize_t)wl);
		if (wl > 0) {
			memset(out, '#', sizeof(out));
			T_EQ_INT(smtp_msg_to_crlf(c->in, n, out, wl - 1), SMTP_CMD_ETOOBIG);
			for (size_t k = wl - 1; k < sizeof(out); k++)
				if (out[k] != '#')
					spill = 1;
			T_EQ_INT(spill, 0);
		}
		/* the converted message needs no more converting */
		smtp_msg_inspect(c->crlf, wl, &info);
		T_EQ_INT(info.has_bare_lf + info.has_bare_cr, 0);
		T_EQ_INT(info.crlf_len, wl);
	}
}

static void test_msg_special(void)
{
	static char msg[4096];
	struct smtp_msg_info info;
	size_t n = 0;

	smtp_msg_inspect("a\0b\r\n", 5, &info);
	T_EQ_INT(info.has_nul, 1);
	T_EQ_INT(info.longest_line, 3);
	T_EQ_INT(info.has_8bit, 0);

	/* the 998-octet line of RFC 5322, then a 1000-octet one */
	memset(msg, 'a', 998);
	n = 998;
	memcpy(msg + n, "\r\n", 2);
	n += 2;
	smtp_msg_inspect(msg, n, &info);
	T_EQ_INT(info.longest_line, 998);
	memset(msg + n, 'b', 1000);
	n += 1000;
	smtp_msg_inspect(msg, n, &info);
	T_EQ_INT(info.longest_line, 1000);
	T_EQ_INT(info.crlf_len, n);
}

/* ---- garbage ---- */

static uint32_t rng_state = 123456789u;

static uint32_t rng(void) { return xorshift32(&rng_state); }

/* Undoes dot-stuffing: drops the first '.' of a line that starts with one and
 * the end marker. Returns the length, or (size_t)-1 when the stuffed form
 * holds a lone "." line before its end. */
static size_t unstuff(const char *s, size_t n, char *out)
{
	size_t o = 0;
	int bol = 1;

	if (n >= 5 && memcmp(s + n - 5, "\r\n.\r\n", 5) == 0)
		n -= 3;
	else if (n == 3 && memcmp(s, ".\r\n", 3) == 0)
		n = 0;
	else
		return (size_t)-1;
	for (size_t i = 0; i < n; i++) {
		if (bol && s[i] == '.') {
			if (i + 1 >= n || s[i + 1] != '.')
				return (size_t)-1;
			i++;
		}
		out[o++] = s[i];
		bol = s[i] == '\n';
	}
	return o;
}

static void test_garbage(void)
{
	static const char alphabet[] = ".\r\n.a\r\n";
	static char in[300], crlf[700], stuffed[1500], back[1500];
	int bad = 0, valid = 0;

	for (int iter = 0; iter < 4000; iter++) {
		size_t n = rng() % 120;
		struct smtp_addr_check res;
		char line[600];
		int ok;

		/* mostly plausible addresses, some with one stray byte */
		for (size_t i = 0; i < n; i++)
			in[i] = "abc.-1\"\\[]:"[rng() % (rng() % 4 ? 6 : 12)];
		if (n > 2)
			in[rng() % n] = '@';
		if (n > 2 && rng() % 3 == 0)
			in[rng() % n] = (char)rng();
		if (n > 2 && rng() % 5 == 0)
			memcpy(in + rng() % (n - 1), "\xc3\xa9", 2);
		ok = check_guarded(in, n, 1, &res);
		if (ok != res.ok || (!ok && (res.why == NULL || res.bad_offset > n)))
			bad++;
		if (ok && n > 0) {
			valid++;
			/* a valid address never carries a byte that could break
			 * the command, and it formats into exactly one line */
			memcpy(line, in, n);
			line[n] = '\0';
			if (memchr(in, '\0', n) || strlen(line) != n ||
			    smtp_fmt_rcpt(crlf, sizeof(crlf), line, NULL) != (ssize_t)(n + 12) ||
			    strpbrk(crlf + 9, "\r\n<> ") != crlf + 9 + n)
				bad++;
		}

		/* dot-stuffing round-trips for random pieces */
		n = rng() % 100;
		for (size_t i = 0; i < n; i++)
			in[i] = alphabet[rng() % (sizeof(alphabet) - 1)];
		{
			ssize_t cl = smtp_msg_to_crlf(in, n, crlf, sizeof(crlf));
			size_t got, b;
			if (cl < 0) {
				bad++;
				continue;
			}
			got = stuff_runs(crlf, (size_t)cl, stuffed, sizeof(stuffed) - 8);
			b = got == (size_t)-1 ? (size_t)-1 : unstuff(stuffed, got, back);
			if (b == (size_t)-1)
				bad++;
			else if (cl > 0 && (crlf[cl - 1] != '\n' || cl < 2 || crlf[cl - 2] != '\r'))
				bad += b != (size_t)cl + 2 || memcmp(back, crlf, (size_t)cl) != 0;
			else
				bad += b != (size_t)cl || memcmp(back, crlf, (size_t)cl) != 0;
		}
	}
	T_EQ_INT(bad, 0);
	T_TRUE(valid > 20);
}

int main(void)
{
	guard_init();
	test_addr_cases();
	test_addr_lengths();
	test_fmt_cases();
	test_fmt_lengths();
	test_dot_cases();
	test_dot_terminator();
	test_msg_cases();
	test_msg_special();
	test_garbage();
	return t_done("cmd");
}
