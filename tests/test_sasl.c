/* test_sasl: exact bytes of every mechanism's lines, against published
 * examples where one exists (RFC 2195, Google's XOAUTH2 page, RFC 4648). */
#include <stdint.h>
#include <stdlib.h>
#include "pool/sasl.h"
#include "tests/testutil.h"

#define S(lit) lit, sizeof(lit) - 1
/* Compares the line a call returned (n bytes, or -1) with a literal. */
#define T_LINE(out, n, lit) T_EQ_MEM(out, (n) > 0 ? (size_t)(n) : 0, lit, sizeof(lit) - 1)

static void test_b64(void)
{
	/* RFC 4648 section 10 test vectors. */
	static const struct { const char *raw, *b64; } vec[] = {
		{ "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
		{ "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
	};
	for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
		char enc[32], dec[32];
		size_t rl = strlen(vec[i].raw), bl = strlen(vec[i].b64);
		ssize_t n = sasl_b64_encode(vec[i].raw, rl, enc, sizeof(enc));
		T_EQ_INT(n, bl);
		if (n >= 0)
			T_EQ_MEM(enc, (size_t)n, vec[i].b64, bl);
		/* Exactly sized buffers work, one byte less does not. */
		T_EQ_INT(sasl_b64_encode(vec[i].raw, rl, enc, bl), bl);
		if (bl > 0)
			T_EQ_INT(sasl_b64_encode(vec[i].raw, rl, enc, bl - 1), -1);
		n = sasl_b64_decode(vec[i].b64, bl, dec, rl);
		T_EQ_INT(n, rl);
		if (n >= 0)
			T_EQ_MEM(dec, (size_t)n, vec[i].raw, rl);
		if (rl > 0)
			T_EQ_INT(sasl_b64_decode(vec[i].b64, bl, dec, rl - 1), -1);
	}

	/* Every byte value survives a round trip. */
	unsigned char all[256], back[256];
	char enc[400];
	for (int i = 0; i < 256; i++)
		all[i] = (unsigned char)i;
	ssize_t n = sasl_b64_encode(all, sizeof(all), enc, sizeof(enc));
	T_EQ_INT(n, 344);
	T_EQ_MEM(enc, 40, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd", 40);
	T_EQ_INT(sasl_b64_decode(enc, n > 0 ? (size_t)n : 0, back, sizeof(back)), 256);
	T_EQ_MEM(back, sizeof(back), all, sizeof(all));

	/* Input that is not strict base64 is refused. */
	static const char *bad[] = {
		"Zm9", "Zm9vY", "Zm 9v", "Zm9v\r\n", "Zm*v", "=Zm9", "Zm=v", "Z===", "====",
		"Zm9v=", "Zg=\n", "\xc3\xa9Zg=",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char out[16];
		ssize_t got = sasl_b64_decode(bad[i], strlen(bad[i]), out, sizeof(out));
		if (got != -1)
			T_FAIL("decode \"%s\": got %zd, want -1", bad[i], got);
		t_checks++;
	}
}

static void test_choose(void)
{
	const unsigned P = SMTP_AUTH_PLAIN, L = SMTP_AUTH_LOGIN, C = SMTP_AUTH_CRAM_MD5,
		       X = SMTP_AUTH_XOAUTH2;
	const struct { unsigned offered, allowed, want; } t[] = {
		{ 0, 0, 0 },
		{ P | L | C | X, 0, C },
		{ P | L, 0, P },
		{ L, 0, L },
		{ X, 0, 0 },             /* a token is not a password */
		{ P | L | C | X, X, X },
		{ P | L | C, X, 0 },
		{ X, X | P, 0 },         /* XOAUTH2 only when alone */
		{ P | L | C | X, X | P, P },
		{ P | L | C, L, L },
		{ P | L | C, P | L, P },
		{ C, P | L, 0 },
		{ P | L | C, C | L, C },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		unsigned got = sasl_choose(t[i].offered, t[i].allowed);
		t_checks++;
		if (got != t[i].want)
			T_FAIL("sasl_choose(%#x, %#x): got %#x, want %#x", t[i].offered,
			       t[i].allowed, got, t[i].want);
	}
}

static void test_names(void)
{
	T_EQ_STR(sasl_mech_name(SMTP_AUTH_PLAIN), "PLAIN");
	T_EQ_STR(sasl_mech_name(SMTP_AUTH_LOGIN), "LOGIN");
	T_EQ_STR(sasl_mech_name(SMTP_AUTH_CRAM_MD5), "CRAM-MD5");
	T_EQ_STR(sasl_mech_name(SMTP_AUTH_XOAUTH2), "XOAUTH2");
	T_TRUE(sasl_mech_name(SMTP_AUTH_PLAIN | SMTP_AUTH_LOGIN) == NULL);
	T_TRUE(sasl_mech_name(0) == NULL);
	T_EQ_INT(sasl_mech_from_name("plain"), SMTP_AUTH_PLAIN);
	T_EQ_INT(sasl_mech_from_name("Login"), SMTP_AUTH_LOGIN);
	T_EQ_INT(sasl_mech_from_name("cram-md5"), SMTP_AUTH_CRAM_MD5);
	T_EQ_INT(sasl_mech_from_name("XOAUTH2"), SMTP_AUTH_XOAUTH2);
	T_EQ_INT(sasl_mech_from_name("GSSAPI"), 0);
	T_EQ_INT(sasl_mech_from_name("PLAINX"), 0);
	T_EQ_INT(sasl_mech_from_name(""), 0);
	T_EQ_INT(sasl_mech_from_name(NULL), 0);
}

static void test_plain(void)
{
	struct sasl_creds cr = { "alice", "s3cret" };
	struct sasl_client c;
	char out[SASL_LINE_MAX];
	static const char want[] = "AUTH PLAIN AGFsaWNlAHMzY3JldA==\r\n";

	ssize_t n = sasl_start(&c, SMTP_AUTH_PLAIN, &cr, out, sizeof(out));
	T_EQ_INT(n, sizeof(want) - 1);
	T_LINE(out, n, want);
	/* PLAIN has no further step. */
	T_EQ_INT(sasl_step(&c, "", 0, out, sizeof(out)), -1);

	/* Exactly the line's length fits, one less does not. */
	T_EQ_INT(sasl_start(&c, SMTP_AUTH_PLAIN, &cr, out, sizeof(want) - 1), sizeof(want) - 1);
	T_EQ_INT(sasl_start(&c, SMTP_AUTH_PLAIN, &cr, out, sizeof(want) - 2), -1);
	T_EQ_INT(sasl_start(&c, SMTP_AUTH_PLAIN, &cr, out, 5), -1);
	sasl_client_wipe(&c);
	T_TRUE(c.creds == NULL && c.mech == 0 && c.step == 0);
}

static void test_bad_creds(void)
{
	static const struct { const char *user, *secret; unsigned mech; } t[] = {
		{ "a\r\nb", "x", SMTP_AUTH_PLAIN },
		{ "a", "x\n", SMTP_AUTH_PLAIN },
		{ "a", "x\ry", SMTP_AUTH_LOGIN },
		{ "a\n", "x", SMTP_AUTH_CRAM_MD5 },
		{ "a", "tok\r\n", SMTP_AUTH_XOAUTH2 },
		{ "a\x01", "tok", SMTP_AUTH_XOAUTH2 },
		{ "a", "t\x01ok", SMTP_AUTH_XOAUTH2 },
		{ NULL, "x", SMTP_AUTH_PLAIN },
		{ "a", NULL, SMTP_AUTH_LOGIN },
		{ "a", "x", 0 },
		{ "a", "x", SMTP_AUTH_PLAIN | SMTP_AUTH_LOGIN },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct sasl_creds cr = { t[i].user, t[i].secret };
		struct sasl_client c;
		char out[256];
		ssize_t got = sasl_start(&c, t[i].mech, &cr, out, sizeof(out));
		t_checks++;
		if (got != -1)
			T_FAIL("bad creds %zu: got %zd, want -1", i, got);
	}
	struct sasl_client c;
	char out[256];
	T_EQ_INT(sasl_start(&c, SMTP_AUTH_PLAIN, NULL, out, sizeof(out)), -1);

	/* A password too long for any line is refused, not truncated. */
	char *big = malloc(SASL_LINE_MAX + 1);
	memset(big, 'p', SASL_LINE_MAX);
	big[SASL_LINE_MAX] = '\0';
	struct sasl_creds cr = { "u", big };
	char line[SASL_LINE_MAX * 2];
	T_EQ_INT(sasl_start(&c, SMTP_AUTH_PLAIN, &cr, line, sizeof(line)), -1);
	free(big);
}

static void test_login(void)
{
	struct sasl_creds cr = { "bob", "hunter2" };
	struct sasl_client c;
	char out[64];

	ssize_t n = sasl_start(&c, SMTP_AUTH_LOGIN, &cr, out, sizeof(out));
	T_LINE(out, n, "AUTH LOGIN\r\n");
	/* Answered by order: a server asking "Password:" first still gets the
	 * user name first. */
	n = sasl_step(&c, S("UGFzc3dvcmQ6"), out, sizeof(out));
	T_LINE(out, n, "Ym9i\r\n");
	n = sasl_step(&c, S("VXNlcm5hbWU6"), out, sizeof(out));
	T_LINE(out, n, "aHVudGVyMg==\r\n");
	/* There is no third step. */
	T_EQ_INT(sasl_step(&c, S("VXNlcm5hbWU6"), out, sizeof(out)), -1);

	/* An empty prompt still decodes; a broken one does not. */
	sasl_start(&c, SMTP_AUTH_LOGIN, &cr, out, sizeof(out));
	n = sasl_step(&c, "", 0, out, sizeof(out));
	T_LINE(out, n, "Ym9i\r\n");
	T_EQ_INT(sasl_step(&c, S("UGFzc3dvcmQ"), out, sizeof(out)), -1);
	T_EQ_INT(c.step, 1);   /* a refused challenge does not advance */

	/* Too small for "aHVudGVyMg==\r\n" (14 bytes). */
	T_EQ_INT(sasl_step(&c, S("UGFzc3dvcmQ6"), out, 13), -1);
	T_EQ_INT(sasl_step(&c, S("UGFzc3dvcmQ6"), out, 14), 14);
	T_EQ_INT(sasl_start(&c, SMTP_AUTH_LOGIN, &cr, out, 11), -1);
	sasl_client_wipe(&c);
}

static void test_cram_md5(void)
{
	/* RFC 2195 section 2. */
	struct sasl_creds cr = { "tim", "tanstaaftanstaaf" };
	struct sasl_client c;
	char out[128];
	static const char want[] = "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw\r\n";

	ssize_t n = sasl_start(&c, SMTP_AUTH_CRAM_MD5, &cr, out, sizeof(out));
	T_LINE(out, n, "AUTH CRAM-MD5\r\n");
	n = sasl_step(&c, S("PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+"),
		      out, sizeof(out));
	T_LINE(out, n, want);
	char dec[64];
	ssize_t dl = n > 2 ? sasl_b64_decode(out, (size_t)n - 2, dec, sizeof(dec)) : -1;
	T_LINE(dec, dl, "tim b913a602c7eda7a495b4e6e7334d3890");
	T_EQ_INT(sasl_step(&c, S("PDE4OTYu"), out, sizeof(out)), -1);

	/* Bad challenges and short buffers. */
	static const char *bad[] = { "PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ",
				     "<1896.697170952@postoffice.reston.mci.net>", "PDE4!!==" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		sasl_start(&c, SMTP_AUTH_CRAM_MD5, &cr, out, sizeof(out));
		ssize_t got = sasl_step(&c, bad[i], strlen(bad[i]), out, sizeof(out));
		t_checks++;
		if (got != -1)
			T_FAIL("cram challenge \"%s\": got %zd, want -1", bad[i], got);
	}
	sasl_start(&c, SMTP_AUTH_CRAM_MD5, &cr, out, sizeof(out));
	T_EQ_INT(sasl_step(&c, S("PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+"),
			   out, sizeof(want) - 2), -1);
	T_EQ_INT(sasl_step(&c, S("PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+"),
			   out, sizeof(want) - 1), sizeof(want) - 1);
	sasl_client_wipe(&c);
}

static void test_xoauth2(void)
{
	/* The example on Google's "OAuth 2.0 Mechanism" page. */
	struct sasl_creds cr = { "someuser@example.com",
				 "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg" };
	struct sasl_client c;
	char out[256];
	static const char want[] = "AUTH XOAUTH2 dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJl"
				   "ciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhkSFJoZG1semRHRXVZ"
				   "Mjl0Q2cBAQ==\r\n";

	ssize_t n = sasl_start(&c, SMTP_AUTH_XOAUTH2, &cr, out, sizeof(out));
	T_LINE(out, n, want);
	/* The server's JSON error gets an empty line, once. */
	static const char err[] = "eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIiwic2NvcGUiOiJo"
				  "dHRwczovL21haWwuZ29vZ2xlLmNvbS8ifQ==";
	n = sasl_step(&c, S(err), out, sizeof(out));
	T_LINE(out, n, "\r\n");
	T_EQ_INT(sasl_step(&c, S(err), out, sizeof(out)), -1);

	sasl_start(&c, SMTP_AUTH_XOAUTH2, &cr, out, sizeof(out));
	T_EQ_INT(sasl_step(&c, S("{\"status\":\"401\"}"), out, sizeof(out)), -1);
	T_EQ_INT(sasl_step(&c, S(err), out, 1), -1);
	T_EQ_INT(sasl_start(&c, SMTP_AUTH_XOAUTH2, &cr, out, sizeof(want) - 2), -1);
	sasl_client_wipe(&c);
}

int main(void)
{
	test_b64();
	test_choose();
	test_names();
	test_plain();
	test_bad_creds();
	test_login();
	test_cram_md5();
	test_xoauth2();
	return t_done("sasl");
}
