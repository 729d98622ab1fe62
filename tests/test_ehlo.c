/* Tests for pool/smtp_ehlo: capability tables from raw EHLO replies, SIZE and
 * AUTH forms, caps on keywords and lengths, guard pages and garbage. */
#include "pool/smtp_ehlo.h"
#include "tests/testutil.h"
#include "tests/guard.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define GUARD_REGION (96u * 4096u)
static void guard_init(void) { guard_init_size(GUARD_REGION); }

/* Parses raw (placed against the guard page), then moves the parsed reply to
 * the end of the page as well, so that reading past the struct faults. */
static struct smtp_reply *reply_from(const char *raw, size_t n)
{
	static struct smtp_reply tmp;
	struct smtp_reply *r = (struct smtp_reply *)(void *)(guard_mem - sizeof(*r));
	int ret;

	memcpy(guard_mem - n, raw, n);
	ret = smtp_reply_parse(guard_mem - n, n, &tmp);
	T_EQ_INT(ret, (int)n);
	/* what lies past text_len is garbage, never to be read as text */
	memset(r, 'Z', sizeof(*r));
	memcpy(r, &tmp, sizeof(tmp));
	memset(r->text + r->text_len + 1, 'Z', sizeof(r->text) - r->text_len - 1);
	return r;
}

static struct smtp_caps caps;

static void test_postfix(void)
{
	static const char raw[] =
		"250-mx.test\r\n"
		"250-PIPELINING\r\n"
		"250-SIZE 10240000\r\n"
		"250-VRFY\r\n"
		"250-ETRN\r\n"
		"250-STARTTLS\r\n"
		"250-AUTH PLAIN LOGIN\r\n"
		"250-AUTH=PLAIN LOGIN\r\n"
		"250-ENHANCEDSTATUSCODES\r\n"
		"250-8BITMIME\r\n"
		"250-DSN\r\n"
		"250-SMTPUTF8\r\n"
		"250 CHUNKING\r\n";
	struct smtp_reply *r = reply_from(raw, strlen(raw));

	T_EQ_INT(smtp_ehlo_parse(r, &caps), 0);
	T_EQ_STR(caps.domain, "mx.test");
	T_EQ_INT(caps.ext, SMTP_EXT_PIPELINING | SMTP_EXT_SIZE | SMTP_EXT_STARTTLS |
		 SMTP_EXT_AUTH | SMTP_EXT_ENHANCEDSTATUSCODES | SMTP_EXT_8BITMIME |
		 SMTP_EXT_DSN | SMTP_EXT_SMTPUTF8 | SMTP_EXT_CHUNKING);
	T_EQ_INT(caps.auth, SMTP_AUTH_PLAIN | SMTP_AUTH_LOGIN);
	T_EQ_INT(caps.size_max, 10240000);
	T_EQ_INT(caps.nkeywords, 12);
	T_EQ_STR(smtp_caps_keyword(&caps, 0), "PIPELINING");
	T_EQ_STR(smtp_caps_keyword_params(&caps, 0), "");
	T_EQ_STR(smtp_caps_keyword(&caps, 1), "SIZE");
	T_EQ_STR(smtp_caps_keyword_params(&caps, 1), "10240000");
	T_EQ_STR(smtp_caps_keyword(&caps, 6), "AUTH");
	T_EQ_STR(smtp_caps_keyword_params(&caps, 6), "PLAIN LOGIN");
	T_EQ_STR(smtp_caps_param(&caps, "size"), "10240000");
	T_EQ_STR(smtp_caps_param(&caps, "Vrfy"), "");
	T_EQ_STR(smtp_caps_param(&caps, "AUTH"), "PLAIN LOGIN");
	T_TRUE(smtp_caps_param(&caps, "XCLIENT") == NULL);
	T_TRUE(smtp_caps_param(&caps, "SIZ") == NULL);
}

struct ehlo_case {
	const char *raw;
	int ret;
	const char *domain;
	unsigned ext;
	unsigned auth;
	uint64_t size;
	unsigned nkeywords;
};

static const struct ehlo_case cases[] = {
	{ "250 mx.test\r\n", 0, "mx.test", 0, 0, 0, 0 },
	{ "250 mx.test Hello client.test [192.0.2.1]\r\n", 0, "mx.test", 0, 0, 0, 0 },
	{ "250\r\n", 0, "", 0, 0, 0, 0 },
	/* case does not matter, mechanisms volley does not speak are skipped */
	{ "250-mx.test\n250-pipelining\n250-auth cram-md5 xoauth2 SCRAM-SHA-256 GSSAPI\n250 binarymime\n",
	  0, "mx.test", SMTP_EXT_PIPELINING | SMTP_EXT_AUTH | SMTP_EXT_BINARYMIME,
	  SMTP_AUTH_CRAM_MD5 | SMTP_AUTH_XOAUTH2, 0, 3 },
	{ "250-mx\r\n250-Auth Plain\r\n250 StartTLS\r\n", 0, "mx",
	  SMTP_EXT_AUTH | SMTP_EXT_STARTTLS, SMTP_AUTH_PLAIN, 0, 2 },
	/* the old form alone still counts as AUTH */
	{ "250-mx\r\n250 AUTH=LOGIN\r\n", 0, "mx", SMTP_EXT_AUTH, SMTP_AUTH_LOGIN, 0, 1 },
	{ "250-mx\r\n250 auth=login cram-md5\r\n", 0, "mx", SMTP_EXT_AUTH,
	  SMTP_AUTH_LOGIN | SMTP_AUTH_CRAM_MD5, 0, 1 },
	{ "250-mx\r\n250 AUTH\r\n", 0, "mx", SMTP_EXT_AUTH, 0, 0, 1 },
	{ "250-mx\r\n250 AUTH PLAINX XPLAIN LOGIN-\r\n", 0, "mx", SMTP_EXT_AUTH, 0, 0, 1 },
	/* SIZE with and without a number */
	{ "250-mx\r\n250 SIZE\r\n", 0, "mx", SMTP_EXT_SIZE, 0, 0, 1 },
	{ "250-mx\r\n250 SIZE 0\r\n", 0, "mx", SMTP_EXT_SIZE, 0, 0, 1 },
	{ "250-mx\r\n250 SIZE 1\r\n", 0, "mx", SMTP_EXT_SIZE, 0, 1, 1 },
	{ "250-mx\r\n250 size 52428800\r\n", 0, "mx", SMTP_EXT_SIZE, 0, 52428800, 1 },
	{ "250-mx\r\n250 SIZE abc\r\n", 0, "mx", SMTP_EXT_SIZE, 0, 0, 1 },
	{ "250-mx\r\n250 SIZE 12x\r\n", 0, "mx", SMTP_EXT_SIZE, 0, 0, 1 },
	{ "250-mx\r\n250 SIZE -5\r\n", 0, "mx", SMTP_EXT_SIZE, 0, 0, 1 },
	{ "250-mx\r\n250 SIZE 18446744073709551615\r\n", 0, "mx", SMTP_EXT_SIZE, 0, UINT64_MAX, 1 },
	{ "250-mx\r\n250 SIZE 18446744073709551616\r\n", 0, "mx", SMTP_EXT_SIZE, 0, UINT64_MAX, 1 },
	{ "250-mx\r\n250 SIZE 99999999999999999999999999\r\n", 0, "mx", SMTP_EXT_SIZE, 0, UINT64_MAX, 1 },
	/* near misses of known keywords are listed but set nothing */
	{ "250-mx\r\n250-SIZES 10\r\n250-PIPELININGX\r\n250-AUTHX PLAIN\r\n250-XSTARTTLS\r\n250 DSN2\r\n",
	  0, "mx", 0, 0, 0, 5 },
	/* empty and indented lines */
	{ "250-mx\r\n250-\r\n250- 8BITMIME\r\n250 DSN\r\n", 0, "mx", SMTP_EXT_8BITMIME | SMTP_EXT_DSN, 0, 0, 2 },
	/* LHLO gets the same reply shape */
	{ "250-lmtp.test\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n250 CHUNKING\r\n", 0, "lmtp.test",
	  SMTP_EXT_PIPELINING | SMTP_EXT_ENHANCEDSTATUSCODES | SMTP_EXT_CHUNKING, 0, 0, 3 },
	/* not a 2xx */
	{ "500 5.5.1 Command unrecognized\r\n", -1, "", 0, 0, 0, 0 },
	{ "421 4.7.0 go away\r\n", -1, "", 0, 0, 0, 0 },
	{ "554-mx\r\n554 PIPELINING\r\n", -1, "", 0, 0, 0, 0 },
};

static void test_cases(void)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct ehlo_case *c = &cases[i];
		struct smtp_reply *r = reply_from(c->raw, strlen(c->raw));

		memset(&caps, 0x5a, sizeof(caps));
		T_EQ_INT(smtp_ehlo_parse(r, &caps), c->ret);
		T_EQ_STR(caps.domain, c->domain);
		T_EQ_INT(caps.ext, c->ext);
		T_EQ_INT(caps.auth, c->auth);
		T_TRUE(caps.size_max == c->size);
		T_EQ_INT(caps.nkeywords, c->nkeywords);
	}
}

static char raw[SMTP_REPLY_LINES_MAX * 80 + 8192];

static void test_limits(void)
{
	struct smtp_reply *r;
	size_t n = 0;
	char line[400];

	/* more lines than SMTP_EHLO_KEYWORDS_MAX: the last ones still count */
	n += (size_t)sprintf(raw + n, "250-mx.test\r\n");
	for (int i = 0; i < SMTP_EHLO_KEYWORDS_MAX + 6; i++)
		n += (size_t)sprintf(raw + n, "250-X-EXT-%d\r\n", i);
	n += (size_t)sprintf(raw + n, "250-SIZE 777\r\n250 CHUNKING\r\n");
	r = reply_from(raw, n);
	T_EQ_INT(smtp_ehlo_parse(r, &caps), 0);
	T_EQ_INT(caps.nkeywords, SMTP_EHLO_KEYWORDS_MAX);
	T_EQ_INT(caps.ext, SMTP_EXT_SIZE | SMTP_EXT_CHUNKING);
	T_EQ_INT(caps.size_max, 777);
	T_EQ_STR(smtp_caps_keyword(&caps, SMTP_EHLO_KEYWORDS_MAX - 1), "X-EXT-63");
	T_TRUE(smtp_caps_param(&caps, "CHUNKING") == NULL);

	/* a long keyword and long params are kept whole while the text pool has
	 * room; a long first word is cut to the domain's size */
	n = 0;
	memset(line, 'd', 300);
	line[300] = '\0';
	n += (size_t)sprintf(raw + n, "250-%s greets you\r\n", line);
	memset(line, 'k', 40);
	line[40] = '\0';
	n += (size_t)sprintf(raw + n, "250-%s v\r\n", line);
	memset(line, 'p', 300);
	line[300] = '\0';
	n += (size_t)sprintf(raw + n, "250 XPARAMS %s\r\n", line);
	r = reply_from(raw, n);
	T_EQ_INT(smtp_ehlo_parse(r, &caps), 0);
	T_EQ_INT(strlen(caps.domain), sizeof(caps.domain) - 1);
	T_EQ_INT(caps.nkeywords, 2);
	T_EQ_INT(strlen(smtp_caps_keyword(&caps, 0)), 40);
	T_EQ_STR(smtp_caps_keyword_params(&caps, 0), "v");
	T_EQ_STR(smtp_caps_keyword(&caps, 1), "XPARAMS");
	T_EQ_INT(strlen(smtp_caps_keyword_params(&caps, 1)), 300);
	T_EQ_INT(smtp_caps_keyword_params(&caps, 1)[0], 'p');

	/* keywords past the text pool are not listed, and still count: four
	 * lines of 300 params fill 3 * 306 of the 1024 bytes, the fourth does
	 * not fit, the fifth (short) does */
	n = 0;
	n += (size_t)sprintf(raw + n, "250-mx.test\r\n");
	for (int i = 0; i < 4; i++) {
		memset(line, 'a' + i, 300);
		line[300] = '\0';
		n += (size_t)sprintf(raw + n, "250-XLONG %s\r\n", line);
	}
	n += (size_t)sprintf(raw + n, "250-SIZE 99\r\n250 8BITMIME\r\n");
	r = reply_from(raw, n);
	T_EQ_INT(smtp_ehlo_parse(r, &caps), 0);
	T_EQ_INT(caps.nkeywords, 5);
	T_EQ_INT(smtp_caps_keyword_params(&caps, 2)[0], 'c');
	T_EQ_STR(smtp_caps_keyword(&caps, 3), "SIZE");
	T_EQ_STR(smtp_caps_keyword(&caps, 4), "8BITMIME");
	T_EQ_INT(caps.ext, SMTP_EXT_SIZE | SMTP_EXT_8BITMIME);
	T_EQ_INT(caps.size_max, 99);
	T_TRUE(caps.text_len <= SMTP_EHLO_TEXT_MAX);

	/* a line cut by the reply's text cap must not give a wrong SIZE: the
	 * text holds "mx\n" (3), 2040 A + '\n' (2041), 2042 B + '\n' (2043),
	 * leaving 9 bytes for "SIZE 123456789" */
	n = 0;
	n += (size_t)sprintf(raw + n, "250-mx\r\n250-");
	memset(raw + n, 'A', 2040);
	n += 2040;
	n += (size_t)sprintf(raw + n, "\r\n250-");
	memset(raw + n, 'B', 2042);
	n += 2042;
	n += (size_t)sprintf(raw + n, "\r\n250-SIZE 123456789\r\n250 PIPELINING\r\n");
	r = reply_from(raw, n);
	T_EQ_INT(r->truncated, 1);
	T_EQ_MEM(r->text + r->text_len - 9, 9, "SIZE 1234", 9);
	T_EQ_INT(smtp_ehlo_parse(r, &caps), 0);
	T_EQ_INT(caps.ext & SMTP_EXT_SIZE, 0);
	T_EQ_INT(caps.size_max, 0);
	/* the 2040- and 2042-byte keywords are larger than the text pool */
	T_EQ_INT(caps.nkeywords, 0);
}

static void test_synth_reply(void)
{
	static struct smtp_reply r;

	smtp_reply_synth(&r, 250, NULL, "relay.test\nPIPELINING\nSIZE 42");
	T_EQ_INT(smtp_ehlo_parse(&r, &caps), 0);
	T_EQ_STR(caps.domain, "relay.test");
	T_EQ_INT(caps.ext, SMTP_EXT_PIPELINING | SMTP_EXT_SIZE);
	T_EQ_INT(caps.size_max, 42);
}

static uint32_t rng_state = 88172645u;

static uint32_t rng(void) { return xorshift32(&rng_state); }

/* Random lines of known words, fragments and bytes: whatever comes, every
 * string in the result is terminated within its array and the counts hold. */
static void test_garbage(void)
{
	static const char *const words[] = {
		"AUTH", "AUTH=", "SIZE", "PLAIN", "login", "CRAM-MD5", "XOAUTH2", " ", "  ",
		"=", "9", "18446744073709551617", "STARTTLS", "\t", "8BITMIME", "chunking",
	};
	static struct smtp_reply r;
	int bad = 0;

	for (int iter = 0; iter < 3000; iter++) {
		size_t n = 0;
		unsigned lines = 1 + rng() % 80;
		int ret;
		struct smtp_reply *g;

		for (unsigned l = 0; l < lines; l++) {
			unsigned parts = rng() % 8;
			n += (size_t)sprintf(raw + n, "250%c", l + 1 == lines ? ' ' : '-');
			for (unsigned p = 0; p < parts; p++) {
				if (rng() % 4 == 0) {
					char c = (char)(rng() % 95 + 32);
					raw[n++] = c;
				} else {
					n += (size_t)sprintf(raw + n, "%s", words[rng() % (sizeof(words) / sizeof(words[0]))]);
				}
			}
			raw[n++] = '\r';
			raw[n++] = '\n';
		}
		ret = smtp_reply_parse(raw, n, &r);
		if (ret != (int)n) {
			bad++;
			continue;
		}
		g = reply_from(raw, n);
		if (smtp_ehlo_parse(g, &caps) != 0 || caps.nkeywords > SMTP_EHLO_KEYWORDS_MAX ||
		    memchr(caps.domain, 0, sizeof(caps.domain)) == NULL ||
		    (caps.auth & ~0xfu) != 0 || (caps.ext & ~0x3ffu) != 0)
			bad++;
		for (unsigned k = 0; k < caps.nkeywords; k++) {
			const char *kn = smtp_caps_keyword(&caps, k);
			const char *kp = smtp_caps_keyword_params(&caps, k);
			if (caps.keywords[k].name >= caps.text_len || caps.keywords[k].params >= caps.text_len ||
			    kn + strlen(kn) >= caps.text + caps.text_len ||
			    kp + strlen(kp) >= caps.text + caps.text_len)
				bad++;
		}
	}
	T_EQ_INT(bad, 0);
}

int main(void)
{
	guard_init();
	test_postfix();
	test_cases();
	test_limits();
	test_synth_reply();
	test_garbage();
	return t_done("ehlo");
}
