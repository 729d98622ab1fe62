/* Tests for pool/smtp_reply: table cases, every prefix of every input, inputs
 * against a guard page, caps, and a deterministic garbage loop. */
#include "pool/smtp_reply.h"
#include "tests/testutil.h"
#include "tests/guard.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* Inputs are copied to the end of a writable region that a PROT_NONE page
 * follows, so reading one byte past the input faults. */
#define GUARD_REGION (96u * 4096u)
static void guard_init(void) { guard_init_size(GUARD_REGION); }

static const char *guard_put(const char *s, size_t n)
{
	memcpy(guard_mem - n, s, n);
	return guard_mem - n;
}

static int parse_guarded(const char *s, size_t n, struct smtp_reply *r)
{
	return smtp_reply_parse(guard_put(s, n), n, r);
}

/* Every prefix shorter than the reply must say "need more". */
static void check_prefixes(const char *s, size_t upto)
{
	static struct smtp_reply r;
	size_t bad = 0;

	for (size_t n = 0; n < upto; n++)
		if (parse_guarded(s, n, &r) != -2 && !bad)
			bad = n + 1;
	T_EQ_INT(bad, 0);
}

struct ok_case {
	const char *in;
	int ret;
	int code;
	const char *enhanced;
	int ecls, esub, edet;
	unsigned nlines;
	const char *text;
};

static const struct ok_case ok_cases[] = {
	{ "250 OK\r\n", 8, 250, "", 0, 0, 0, 1, "OK" },
	{ "250 OK\n", 7, 250, "", 0, 0, 0, 1, "OK" },
	{ "250\r\n", 5, 250, "", 0, 0, 0, 1, "" },
	{ "250\n", 4, 250, "", 0, 0, 0, 1, "" },
	{ "250 \r\n", 6, 250, "", 0, 0, 0, 1, "" },
	{ "200 x\r\n", 7, 200, "", 0, 0, 0, 1, "x" },
	{ "599 x\r\n", 7, 599, "", 0, 0, 0, 1, "x" },
	{ "354 End data with <CR><LF>.<CR><LF>\r\n", 37, 354, "", 0, 0, 0, 1,
	  "End data with <CR><LF>.<CR><LF>" },
	{ "250-mx.test\r\n250-PIPELINING\r\n250 SIZE 1000\r\n", 44, 250, "", 0, 0, 0, 3,
	  "mx.test\nPIPELINING\nSIZE 1000" },
	{ "250-a\n250-b\r\n250 c\n", 19, 250, "", 0, 0, 0, 3, "a\nb\nc" },
	{ "250-\r\n250 \r\n", 12, 250, "", 0, 0, 0, 2, "\n" },
	{ "250-first\r\n250\r\n", 16, 250, "", 0, 0, 0, 2, "first\n" },
	{ "550 5.1.1 User unknown\r\n", 24, 550, "5.1.1", 5, 1, 1, 1, "User unknown" },
	{ "550 5.1.1 User unknown\n", 23, 550, "5.1.1", 5, 1, 1, 1, "User unknown" },
	{ "250 2.0.0\r\n", 11, 250, "2.0.0", 2, 0, 0, 1, "" },
	{ "250 2.0.0 \r\n", 12, 250, "2.0.0", 2, 0, 0, 1, "" },
	{ "421 4.123.456 bye\r\n", 19, 421, "4.123.456", 4, 123, 456, 1, "bye" },
	/* the class must agree with the code */
	{ "250 5.1.1 x\r\n", 13, 250, "", 0, 0, 0, 1, "5.1.1 x" },
	{ "550 2.0.0 x\r\n", 13, 550, "", 0, 0, 0, 1, "2.0.0 x" },
	/* 3 is not an enhanced class */
	{ "354 3.0.0 go\r\n", 14, 354, "", 0, 0, 0, 1, "3.0.0 go" },
	/* not followed by a space, or a part too long */
	{ "250 2.0.0Ok\r\n", 13, 250, "", 0, 0, 0, 1, "2.0.0Ok" },
	{ "250 2.1234.5 x\r\n", 16, 250, "", 0, 0, 0, 1, "2.1234.5 x" },
	{ "250 2.1.1234 x\r\n", 16, 250, "", 0, 0, 0, 1, "2.1.1234 x" },
	{ "250 2..1 x\r\n", 12, 250, "", 0, 0, 0, 1, "2..1 x" },
	{ "250 2.1 x\r\n", 11, 250, "", 0, 0, 0, 1, "2.1 x" },
	/* only the first line decides; only the same code is stripped */
	{ "550-5.1.1 first\r\n550 5.1.1 second\r\n", 35, 550, "5.1.1", 5, 1, 1, 2, "first\nsecond" },
	{ "550-5.7.1 first\r\n550 other\r\n", 28, 550, "5.7.1", 5, 7, 1, 2, "first\nother" },
	{ "550-5.1.1 a\r\n550-5.1.2 b\r\n550 5.1.1\r\n", 37, 550, "5.1.1", 5, 1, 1, 3, "a\n5.1.2 b\n" },
	{ "550-no code\r\n550 5.1.1 late\r\n", 29, 550, "", 0, 0, 0, 2, "no code\n5.1.1 late" },
	/* a pipelined reply after the first is left for the next call */
	{ "250 OK\r\n354 go\r\n", 8, 250, "", 0, 0, 0, 1, "OK" },
	{ "250-a\r\n250 b\r\n250 c\r\n", 14, 250, "", 0, 0, 0, 2, "a\nb" },
	{ "250 a\tb  c\r\n", 12, 250, "", 0, 0, 0, 1, "a\tb  c" },
	{ "220 mx.test ESMTP \xc3\xa9t\xc3\xa9\r\n", 25, 220, "", 0, 0, 0, 1,
	  "mx.test ESMTP \xc3\xa9t\xc3\xa9" },
};

static void test_ok_cases(void)
{
	static struct smtp_reply r;

	for (size_t i = 0; i < sizeof(ok_cases) / sizeof(ok_cases[0]); i++) {
		const struct ok_case *c = &ok_cases[i];
		size_t n = strlen(c->in);

		T_EQ_INT(parse_guarded(c->in, n, &r), c->ret);
		T_EQ_INT(r.code, c->code);
		T_EQ_STR(r.enhanced, c->enhanced);
		T_EQ_INT(r.ecls, c->ecls);
		T_EQ_INT(r.esub, c->esub);
		T_EQ_INT(r.edet, c->edet);
		T_EQ_INT(r.nlines, c->nlines);
		T_EQ_MEM(r.text, r.text_len, c->text, strlen(c->text));
		T_EQ_INT(strlen(r.text), r.text_len);
		T_EQ_INT(r.truncated, 0);
		T_EQ_INT(smtp_reply_class(&r), c->code / 100);
		/* the reply alone parses the same, and nothing shorter does */
		T_EQ_INT(parse_guarded(c->in, (size_t)c->ret, &r), c->ret);
		T_EQ_MEM(r.text, r.text_len, c->text, strlen(c->text));
		check_prefixes(c->in, (size_t)c->ret);
	}
}

struct bad_case {
	const char *in;
	size_t len;     /* 0: strlen */
};

static const struct bad_case bad_cases[] = {
	{ "150 x\r\n", 0 },          /* 1xx does not exist in SMTP */
	{ "100 x\r\n", 0 },
	{ "600 x\r\n", 0 },
	{ "099 x\r\n", 0 },
	{ "2a0 x\r\n", 0 },
	{ "25a x\r\n", 0 },
	{ "25\r\n", 0 },
	{ "2\n", 0 },
	{ "\r\n", 0 },
	{ "\n", 0 },
	{ "250x\r\n", 0 },
	{ "250_x\r\n", 0 },
	{ " 250 x\r\n", 0 },
	{ "HTTP/1.1 200 OK\r\n", 0 },
	{ "250-a\r\n251 b\r\n", 0 },  /* the code changes */
	{ "250-a\r\n550 b\r\n", 0 },
	{ "250-a\r\n250x\r\n", 0 },
	{ "250-a\r\n\r\n", 0 },
	{ "250 a\rb\r\n", 0 },        /* a bare CR inside a line */
	{ "250 a\r\r\n", 0 },
	{ "250 a\0b\r\n", 9 },        /* NUL */
	{ "250 ok\0", 7 },
	{ "\0", 1 },
	{ "250-a\r\n250 b\0", 13 },
};

static void test_bad_cases(void)
{
	static struct smtp_reply r;

	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const char *s = bad_cases[i].in;
		size_t n = bad_cases[i].len ? bad_cases[i].len : strlen(s);
		int prefix_ok = 1;

		T_EQ_INT(parse_guarded(s, n, &r), -1);
		/* a shorter view of bad bytes is "need more" or already bad */
		for (size_t k = 0; k < n; k++) {
			int ret = parse_guarded(s, k, &r);
			if (ret != -2 && ret != -1)
				prefix_ok = 0;
		}
		T_TRUE(prefix_ok);
	}

	/* garbage is refused as soon as it is visible, not when a LF comes */
	T_EQ_INT(parse_guarded("1", 1, &r), -1);
	T_EQ_INT(parse_guarded("6", 1, &r), -1);
	T_EQ_INT(parse_guarded("2x", 2, &r), -1);
	T_EQ_INT(parse_guarded("25x", 3, &r), -1);
	T_EQ_INT(parse_guarded("250x", 4, &r), -1);
	T_EQ_INT(parse_guarded("250-a\r\n251", 10, &r), -1);
	T_EQ_INT(parse_guarded("250-a\r\n2", 8, &r), -2);
	T_EQ_INT(parse_guarded("250 a\r", 6, &r), -2);
	T_EQ_INT(parse_guarded("250 a\rb", 7, &r), -1);
	T_EQ_INT(parse_guarded("", 0, &r), -2);
}

/* Builds a line "250<sep>" padded with 'x' to content length n, CRLF added.
 * Returns the bytes written. */
static size_t make_line(char *buf, char sep, size_t n, int crlf)
{
	memcpy(buf, "250", 3);
	if (n > 3)
		buf[3] = sep;
	for (size_t i = 4; i < n; i++)
		buf[i] = 'x';
	if (crlf) {
		buf[n] = '\r';
		buf[n + 1] = '\n';
		return n + 2;
	}
	buf[n] = '\n';
	return n + 1;
}

static char big[SMTP_REPLY_LINES_MAX * (SMTP_REPLY_LINE_MAX + 2) + 64];

static void test_line_caps(void)
{
	static struct smtp_reply r;
	size_t n;

	/* RFC 5322's 998 octets is well within the cap */
	n = make_line(big, ' ', 998, 1);
	T_EQ_INT(parse_guarded(big, n, &r), (int)n);
	T_EQ_INT(r.text_len, 994);
	check_prefixes(big, n);

	/* exactly the cap, with CRLF and with a bare LF */
	n = make_line(big, ' ', SMTP_REPLY_LINE_MAX, 1);
	T_EQ_INT(parse_guarded(big, n, &r), (int)n);
	T_EQ_INT(r.text_len, SMTP_REPLY_LINE_MAX - 4);
	check_prefixes(big, n);
	n = make_line(big, ' ', SMTP_REPLY_LINE_MAX, 0);
	T_EQ_INT(parse_guarded(big, n, &r), (int)n);
	check_prefixes(big, n);

	/* one past the cap */
	n = make_line(big, ' ', SMTP_REPLY_LINE_MAX + 1, 1);
	T_EQ_INT(parse_guarded(big, n, &r), -1);
	n = make_line(big, ' ', SMTP_REPLY_LINE_MAX + 1, 0);
	T_EQ_INT(parse_guarded(big, n, &r), -1);
	/* and before its LF has come: the partial line is already too long */
	T_EQ_INT(parse_guarded(big, SMTP_REPLY_LINE_MAX + 1, &r), -1);
	T_EQ_INT(parse_guarded(big, SMTP_REPLY_LINE_MAX, &r), -2);
	/* a full-length line whose CR has come but not its LF */
	make_line(big, ' ', SMTP_REPLY_LINE_MAX, 1);
	T_EQ_INT(parse_guarded(big, SMTP_REPLY_LINE_MAX + 1, &r), -2);
	/* far too long, with no line end at all */
	memset(big + 4, 'x', 3 * SMTP_REPLY_LINE_MAX);
	T_EQ_INT(parse_guarded(big, 3 * SMTP_REPLY_LINE_MAX, &r), -1);

	/* a continuation line over the cap */
	n = make_line(big, '-', 10, 1);
	n += make_line(big + n, ' ', SMTP_REPLY_LINE_MAX + 1, 1);
	T_EQ_INT(parse_guarded(big, n, &r), -1);
}

static void test_line_count(void)
{
	static struct smtp_reply r;
	size_t n = 0;

	for (unsigned i = 0; i < SMTP_REPLY_LINES_MAX - 1; i++)
		n += make_line(big + n, '-', 6, 1);
	n += make_line(big + n, ' ', 6, 1);
	T_EQ_INT(parse_guarded(big, n, &r), (int)n);
	T_EQ_INT(r.nlines, SMTP_REPLY_LINES_MAX);
	T_EQ_INT(r.text_len, SMTP_REPLY_LINES_MAX * 3 - 1);
	check_prefixes(big, n);

	/* one more line is too many, even before it is complete */
	n = 0;
	for (unsigned i = 0; i < SMTP_REPLY_LINES_MAX; i++)
		n += make_line(big + n, '-', 6, 1);
	T_EQ_INT(parse_guarded(big, n + 1, &r), -1);
	n += make_line(big + n, ' ', 6, 1);
	T_EQ_INT(parse_guarded(big, n, &r), -1);
}

static void test_truncation(void)
{
	static struct smtp_reply r;
	size_t n = 0, len;
	const char *l;

	/* four lines of 2040 text bytes: 2040 + 1 + 2040 + 1 leaves 14 bytes
	 * of the third line and nothing of the fourth */
	for (int i = 0; i < 3; i++)
		n += make_line(big + n, '-', 2044, 1);
	n += make_line(big + n, ' ', 2044, 1);
	T_EQ_INT(parse_guarded(big, n, &r), (int)n);
	T_EQ_INT(r.nlines, 4);
	T_EQ_INT(r.truncated, 1);
	T_EQ_INT(r.text_len, SMTP_REPLY_TEXT_MAX);
	T_EQ_INT(r.text[SMTP_REPLY_TEXT_MAX], '\0');
	l = smtp_reply_line(&r, 0, &len);
	T_TRUE(l == r.text);
	T_EQ_INT(len, 2040);
	l = smtp_reply_line(&r, 2, &len);
	T_TRUE(l == r.text + 4082);
	T_EQ_INT(len, 14);
	T_TRUE(smtp_reply_line(&r, 3, &len) == NULL);
	T_TRUE(smtp_reply_line(&r, 4, &len) == NULL);
	check_prefixes(big, n);

	/* exactly full is not truncated */
	n = make_line(big, '-', 2044, 1);
	n += make_line(big + n, '-', 2044, 1);
	n += make_line(big + n, ' ', 4 + 14, 1);
	T_EQ_INT(parse_guarded(big, n, &r), (int)n);
	T_EQ_INT(r.text_len, SMTP_REPLY_TEXT_MAX);
	T_EQ_INT(r.truncated, 0);
}

static void test_lines(void)
{
	static struct smtp_reply r;
	static const char in[] = "550-5.1.1 one\r\n550-two\r\n550 5.1.1\r\n";
	size_t len = 99;
	const char *l;

	T_EQ_INT(smtp_reply_parse(in, strlen(in), &r), (int)strlen(in));
	l = smtp_reply_line(&r, 0, &len);
	T_EQ_MEM(l, len, "one", 3);
	l = smtp_reply_line(&r, 1, &len);
	T_EQ_MEM(l, len, "two", 3);
	l = smtp_reply_line(&r, 2, &len);
	T_TRUE(l != NULL);
	T_EQ_INT(len, 0);
	T_TRUE(smtp_reply_line(&r, 3, &len) == NULL);
}

static void test_synth(void)
{
	static struct smtp_reply r;
	static char longtext[SMTP_REPLY_TEXT_MAX + 100];
	size_t len;

	smtp_reply_synth(&r, 421, "4.4.2", "timeout waiting for reply");
	T_EQ_INT(r.code, 421);
	T_EQ_STR(r.enhanced, "4.4.2");
	T_EQ_INT(r.ecls, 4);
	T_EQ_INT(r.esub, 4);
	T_EQ_INT(r.edet, 2);
	T_EQ_STR(r.text, "timeout waiting for reply");
	T_EQ_INT(r.text_len, 25);
	T_EQ_INT(r.nlines, 1);
	T_EQ_INT(r.truncated, 0);

	/* an enhanced code that disagrees with the reply is dropped */
	smtp_reply_synth(&r, 421, "5.1.1", "x");
	T_EQ_STR(r.enhanced, "");
	T_EQ_INT(r.ecls, 0);
	smtp_reply_synth(&r, 421, "4.4.2 trailing", "x");
	T_EQ_STR(r.enhanced, "");
	smtp_reply_synth(&r, 554, NULL, NULL);
	T_EQ_STR(r.enhanced, "");
	T_EQ_STR(r.text, "");
	T_EQ_INT(r.nlines, 1);

	smtp_reply_synth(&r, 451, "4.3.0", "a\nb");
	T_EQ_INT(r.nlines, 2);
	T_EQ_MEM(smtp_reply_line(&r, 1, &len), len, "b", 1);

	memset(longtext, 'y', sizeof(longtext) - 1);
	longtext[sizeof(longtext) - 1] = '\0';
	smtp_reply_synth(&r, 550, "5.0.0", longtext);
	T_EQ_INT(r.text_len, SMTP_REPLY_TEXT_MAX);
	T_EQ_INT(r.truncated, 1);
	T_EQ_INT(strlen(r.text), SMTP_REPLY_TEXT_MAX);
}

static uint32_t rng_state = 2463534242u;

static uint32_t rng(void) { return xorshift32(&rng_state); }

/* Whatever the bytes, the result is -1, -2 or a reply that is sane and that
 * every shorter prefix calls incomplete. */
static void check_any(const char *s, size_t n, int *bad)
{
	static struct smtp_reply r;
	int ret = parse_guarded(s, n, &r);

	if (ret == -1 || ret == -2)
		return;
	if (ret <= 0 || (size_t)ret > n || r.code < 200 || r.code > 599 ||
	    r.text_len > SMTP_REPLY_TEXT_MAX || strlen(r.text) != r.text_len ||
	    r.nlines < 1 || r.nlines > SMTP_REPLY_LINES_MAX) {
		(*bad)++;
		return;
	}
	for (size_t k = 0; k < (size_t)ret; k++)
		if (parse_guarded(s, k, &r) != -2) {
			(*bad)++;
			return;
		}
}

static void test_garbage(void)
{
	static const char alphabet[] = "0123452-  .\r\n\n5";
	static char buf[600];
	int bad = 0, replies = 0;
	static struct smtp_reply r;

	for (int iter = 0; iter < 4000; iter++) {
		size_t n = rng() % sizeof(buf);
		int mode = (int)(rng() % 3);

		for (size_t i = 0; i < n; i++) {
			if (mode == 0)
				buf[i] = (char)rng();
			else
				buf[i] = alphabet[rng() % (sizeof(alphabet) - 1)];
		}
		/* mode 2: start from a plausible reply so that the parser gets
		 * past the first bytes */
		if (mode == 2 && n >= 4)
			memcpy(buf, (rng() & 1) ? "250-" : "550 ", 4);
		check_any(buf, n, &bad);
		if (parse_guarded(buf, n, &r) > 0)
			replies++;
	}
	/* mutations of the valid table inputs: a byte changed, dropped or
	 * duplicated */
	for (size_t i = 0; i < sizeof(ok_cases) / sizeof(ok_cases[0]); i++) {
		const char *s = ok_cases[i].in;
		size_t n = strlen(s);
		for (int m = 0; m < 60; m++) {
			size_t at = rng() % n;
			memcpy(buf, s, n);
			switch (rng() % 3) {
			case 0:
				buf[at] = (char)rng();
				check_any(buf, n, &bad);
				break;
			case 1:
				memmove(buf + at, buf + at + 1, n - at - 1);
				check_any(buf, n - 1, &bad);
				break;
			default:
				memmove(buf + at + 1, buf + at, n - at);
				check_any(buf, n + 1, &bad);
				break;
			}
		}
	}
	T_EQ_INT(bad, 0);
	/* the loop really reached the success path */
	T_TRUE(replies > 10);
}

int main(void)
{
	guard_init();
	test_ok_cases();
	test_bad_cases();
	test_line_caps();
	test_line_count();
	test_truncation();
	test_lines();
	test_synth();
	test_garbage();
	return t_done("reply");
}
