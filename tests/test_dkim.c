/* test_dkim: the DKIM signer against RFC 6376's canonicalisation examples,
 * the RFC 8463 Appendix A signatures (Ed25519 and RSA PKCS#1 v1.5 are both
 * deterministic, so b= must match to the byte), and fixtures made by openssl
 * over dkimpy's canonical form (tests/data/dkim/gen.py); then streaming at
 * every split point, the field's layout, errors, keys and threads. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/sha256.h>
#include "pool/sasl.h"
#include "templates/dkim.h"
#include "tests/testutil.h"

#define DATA "data/dkim/"
#define S(lit) lit, sizeof(lit) - 1

/* ---- helpers ------------------------------------------------------------- */

struct buf {
	char *p;
	size_t len, cap;
	int overflow;
};

static void buf_write(void *arg, const void *p, size_t n)
{
	struct buf *b = arg;
	if (n > b->cap - b->len) {
		b->overflow = 1;
		return;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		T_FAIL("cannot open %s (run from tests/)", path);
		return NULL;
	}
	char *p = malloc(1 << 20);
	size_t n = p ? fread(p, 1, (1 << 20) - 1, f) : 0;
	fclose(f);
	if (p)
		p[n] = 0;
	*len = n;
	return p;
}

/* Canonicalises a body fed in pieces of step bytes (0: cut once at split). */
static size_t canon_body(const char *in, size_t len, size_t split, size_t step, char *out, size_t cap)
{
	struct buf b = { out, 0, cap, 0 };
	const struct dkim_sink sink = { buf_write, &b };
	struct dkim_body body;
	dkim_body_init(&body, &sink);
	if (step) {
		for (size_t i = 0; i < len; i += step)
			dkim_body_feed(&body, in + i, len - i < step ? len - i : step);
	} else {
		dkim_body_feed(&body, in, split);
		dkim_body_feed(&body, in + split, len - split);
	}
	dkim_body_end(&body);
	if (b.overflow)
		T_FAIL("canonical body larger than %zu", cap);
	return b.len;
}

/* The base64 SHA-256 of data. */
static void sha256_b64(const void *data, size_t len, char out[48])
{
	wc_Sha256 sha;
	unsigned char d[32];
	if (wc_InitSha256(&sha) != 0 || wc_Sha256Update(&sha, data, (word32)len) != 0 ||
	    wc_Sha256Final(&sha, d) != 0 || sasl_b64_encode(d, 32, out, 47) != 44)
		T_FAIL("sha256");
	out[44] = 0;
	wc_Sha256Free(&sha);
}

static struct dkim_key *load(const char *name)
{
	char path[256], err[300];
	snprintf(path, sizeof path, DATA "%s", name);
	struct dkim_key *k = dkim_key_load(path, err, sizeof err);
	if (!k)
		T_FAIL("loading %s: %s", path, err);
	return k;
}

/* ---- canonicalisation ------------------------------------------------------ */

static void test_canon_header(void)
{
	static const struct { const char *in, *want; } t[] = {
		/* RFC 6376 section 3.4.6 */
		{ "A: X", "a:X" },
		{ "B : Y\t\r\n\tZ  ", "b:Y Z" },
		/* edge cases */
		{ "Subject:", "subject:" },
		{ "Subject:   \t ", "subject:" },
		{ "X-Mixed-CASE:\tv", "x-mixed-case:v" },
		{ "To: a,\r\n b,\r\n\tc", "to:a, b, c" },
		{ "K:v  \r\n  ", "k:v" },
		{ "Name\t :  a \t b  ", "name:a b" },
		{ "Subject:\r\n Zam\xc3\xb3wienie  \xe2\x80\x94\tx", "subject:Zam\xc3\xb3wienie \xe2\x80\x94 x" },
		{ "From:a:b: c", "from:a:b: c" },
		/* values copied whole when they are canonical already, and
		 * those that only nearly are */
		{ "Subject: Your offers, week 5", "subject:Your offers, week 5" },
		{ "Subject:  a b", "subject:a b" },
		{ "Subject: a  b", "subject:a b" },
		{ "Subject: a b ", "subject:a b" },
		{ "Subject: a\tb", "subject:a b" },
		{ "Subject: a\rb", "subject:a\rb" },
		{ "Subject: a", "subject:a" },
		{ "DKIM-Signature: v=1; a=x;\r\n d=y; h=a:b:\r\n c; bh=z;\r\n b=",
		  "dkim-signature:v=1; a=x; d=y; h=a:b: c; bh=z; b=" },
		{ "Subject: a b\r\n\tc  d \r\n e", "subject:a b c d e" },
		{ "Subject: a\rb c\r\n d", "subject:a\rb c d" },
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		for (int crlf = 0; crlf <= 1; crlf++) {
			char out[256], want[256];
			struct buf b = { out, 0, sizeof out, 0 };
			const struct dkim_sink sink = { buf_write, &b };
			dkim_canon_header(t[i].in, strlen(t[i].in), crlf, &sink);
			int wl = snprintf(want, sizeof want, "%s%s", t[i].want, crlf ? "\r\n" : "");
			T_EQ_MEM(out, b.len, want, (size_t)wl);
		}
	}

	/* A value longer than the canonicaliser's internal chunk. */
	static char in[4000], want[4000], out[4000];
	size_t il = (size_t)snprintf(in, sizeof in, "X-Long:");
	size_t wl = (size_t)snprintf(want, sizeof want, "x-long:");
	for (int i = 0; i < 300; i++) {
		il += (size_t)snprintf(in + il, sizeof in - il, "  ab\t%s", i % 7 ? "" : "\r\n ");
		wl += (size_t)snprintf(want + wl, sizeof want - wl, "%sab", i ? " " : "");
	}
	wl += (size_t)snprintf(want + wl, sizeof want - wl, "\r\n");
	struct buf b = { out, 0, sizeof out, 0 };
	const struct dkim_sink sink = { buf_write, &b };
	dkim_canon_header(in, il, 1, &sink);
	T_EQ_MEM(out, b.len, want, wl);
}

static void test_canon_body(void)
{
	static char line998[1001], spaces998[1001], inner_blank[200], trailing_blank[4000];
	memset(line998, 'x', 998);
	memcpy(line998 + 998, "\r\n", 3);
	memset(spaces998, ' ', 998);
	memcpy(spaces998 + 998, "\r\n", 3);
	size_t n = (size_t)snprintf(inner_blank, sizeof inner_blank, "a\r\n");
	for (int i = 0; i < 40; i++)   /* more than one write of held line ends */
		n += (size_t)snprintf(inner_blank + n, sizeof inner_blank - n, "\r\n");
	snprintf(inner_blank + n, sizeof inner_blank - n, "b");
	n = (size_t)snprintf(trailing_blank, sizeof trailing_blank, "end");
	for (int i = 0; i < 1000; i++)
		n += (size_t)snprintf(trailing_blank + n, sizeof trailing_blank - n, i % 2 ? "\r\n" : " \t\r\n");

	static char want_inner[200];
	n = (size_t)snprintf(want_inner, sizeof want_inner, "a\r\n");
	for (int i = 0; i < 40; i++)
		n += (size_t)snprintf(want_inner + n, sizeof want_inner - n, "\r\n");
	snprintf(want_inner + n, sizeof want_inner - n, "b\r\n");

	const struct { const char *in, *want; } t[] = {
		/* RFC 6376 section 3.4.6 */
		{ " C \r\nD \t E\r\n\r\n\r\n", " C\r\nD E\r\n" },
		/* An empty body stays empty in relaxed (RFC 6376 3.4.4; only
		 * "simple" turns it into one CRLF, 3.4.3), as dkimpy does. */
		{ "", "" },
		{ "\r\n", "" },
		{ "\r\n\r\n\r\n", "" },
		{ " \t \r\n\r\n  \r\n", "" },
		{ "a", "a\r\n" },
		{ "a\r\n", "a\r\n" },
		{ "a\r\n\r\n\r\n", "a\r\n" },
		{ "a  \t \r\n", "a\r\n" },
		{ "a\t\tb  c\r\n", "a b c\r\n" },
		{ "\r\n\r\na", "\r\n\r\na\r\n" },
		{ "a\r\n \r\nb", "a\r\n\r\nb\r\n" },
		{ "  lead\r\n", " lead\r\n" },
		{ "a\rb\r\n", "a\rb\r\n" },
		{ "a\r", "a\r\r\n" },
		{ "a \r", "a \r\r\n" },
		{ "a\r\r\n", "a\r\r\n" },
		{ "a\nb\r\n", "a\nb\r\n" },
		{ "a \nb", "a \nb\r\n" },
		{ "caf\xc3\xa9  \xe2\x80\x94 \r\n", "caf\xc3\xa9 \xe2\x80\x94\r\n" },
		{ line998, line998 },
		{ spaces998, "" },
		{ inner_blank, want_inner },
		{ trailing_blank, "end\r\n" },
	};
	static char out[4000];
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		size_t len = strlen(t[i].in), wl = strlen(t[i].want);
		for (size_t split = 0; split <= len; split++) {
			size_t got = canon_body(t[i].in, len, split, 0, out, sizeof out);
			if (got != wl || memcmp(out, t[i].want, wl) != 0) {
				T_FAIL("case %zu split at %zu: got \"%.*s\", want \"%s\"", i, split,
				       (int)got, out, t[i].want);
				break;
			}
			t_checks++;
		}
		for (size_t step = 1; step <= 3; step++) {
			size_t got = canon_body(t[i].in, len, 0, step, out, sizeof out);
			T_EQ_MEM(out, got, t[i].want, wl);
		}
	}

	/* Body hashes: SHA-256 of nothing for an empty body, and RFC 8463's bh=. */
	char b64[48];
	size_t got = canon_body(S("\r\n\r\n"), 0, 1, out, sizeof out);
	sha256_b64(out, got, b64);
	T_EQ_STR(b64, "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
	got = canon_body(S("Hi.\r\n\r\nWe lost the game.  Are you hungry yet?\r\n\r\nJoe.\r\n"), 0, 1,
			 out, sizeof out);
	sha256_b64(out, got, b64);
	T_EQ_STR(b64, "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=");
}

/* Bodies made of the bytes the canonicaliser cares about, long enough for
 * its sixteen-at-a-time scan: fed whole, they must canonicalise as they do
 * one byte at a time (where every byte goes through the state machine). */
static void test_canon_body_random(void)
{
	static const char alphabet[] = { 'a', 'b', ' ', ' ', '\t', '\r', '\n', '\r', '\n' };
	static char in[300], whole[700], bytewise[700];
	uint32_t seed = 12345;

	for (int round = 0; round < 3000; round++) {
		size_t len = 20 + (size_t)(round % 280);
		for (size_t i = 0; i < len; i++) {
			seed = seed * 1103515245u + 12345u;
			in[i] = alphabet[(seed >> 16) % sizeof alphabet];
		}
		size_t a = canon_body(in, len, len, 0, whole, sizeof whole);
		size_t b = canon_body(in, len, 0, 1, bytewise, sizeof bytewise);
		if (a != b || memcmp(whole, bytewise, a) != 0) {
			T_FAIL("round %d: whole and byte-wise canonical bodies differ", round);
			return;
		}
		t_checks++;
	}
}

/* Bodies without loose whitespace (no TAB, no SP before SP or CR, no CR
 * alone) but with empty lines anywhere: dkim_body_feed_canonical must give
 * what dkim_body_feed gives. */
static void test_canon_body_known(void)
{
	static const char *const pieces[] = { "a", "bc", " ", "\r\n", "\r\n\r\n", "\n" };
	static char in[400], plain[900], known[900];
	uint32_t seed = 777;

	for (int round = 0; round < 3000; round++) {
		size_t len = 0;
		for (int k = round % 40; k > 0; k--) {
			seed = seed * 1103515245u + 12345u;
			const char *p = pieces[(seed >> 16) % (sizeof pieces / sizeof pieces[0])];
			size_t pl = strlen(p);
			/* no SP before SP or CR */
			if (len > 0 && in[len - 1] == ' ' && (p[0] == ' ' || p[0] == '\r'))
				continue;
			memcpy(in + len, p, pl);
			len += pl;
		}
		if (len > 0 && in[len - 1] == ' ')
			len--;
		size_t a = canon_body(in, len, len, 0, plain, sizeof plain);
		struct buf b = { known, 0, sizeof known, 0 };
		const struct dkim_sink sink = { buf_write, &b };
		struct dkim_body body;
		dkim_body_init(&body, &sink);
		dkim_body_feed_canonical(&body, in, len);
		dkim_body_end(&body);
		if (a != b.len || memcmp(plain, known, a) != 0) {
			T_FAIL("round %d: dkim_body_feed_canonical differs on \"%.*s\"", round, (int)len, in);
			return;
		}
		t_checks++;
	}
}

/* ---- header fields ----------------------------------------------------------- */

static void test_split_fields(void)
{
	struct dkim_field f[8];
	static const char ok[] = "From: a\r\nTo: b,\r\n c\r\nX-Y :z\r\n\r\nbody: not a field\r\n";
	T_EQ_INT(dkim_split_fields(S(ok), f, 8), 3);
	T_EQ_MEM(f[0].p, f[0].len, "From: a", 7);
	T_EQ_INT(f[0].name_len, 4);
	T_EQ_MEM(f[1].p, f[1].len, "To: b,\r\n c", 10);
	T_EQ_MEM(f[2].p, f[2].len, "X-Y :z", 6);
	T_EQ_INT(f[2].name_len, 3);
	/* Without the empty line, and with nothing at all. */
	T_EQ_INT(dkim_split_fields(S("A: 1\r\nB: 2\r\n"), f, 8), 2);
	T_EQ_INT(dkim_split_fields(S(""), f, 8), 0);
	T_EQ_INT(dkim_split_fields(S("\r\nA: 1\r\n"), f, 8), 0);
	/* The cap. */
	T_EQ_INT(dkim_split_fields(S("A: 1\r\nB: 2\r\n"), f, 1), -2);
	T_EQ_INT(dkim_split_fields(S("A: 1\r\nB: 2\r\n"), f, 2), 2);

	static const char *const bad[] = {
		"No colon here\r\n", " A: continuation first\r\n", "A: 1\nB: 2\r\n", "A: 1\rB: 2\r\n",
		"A: no CRLF at the end", ": empty name\r\n", "A B: space in name\r\n", "A: 1\r\n\tx\n",
		"A: 1\r\n \r", "\xc3\xa9: non-ASCII name\r\n",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int got = dkim_split_fields(bad[i], strlen(bad[i]), f, 8);
		t_checks++;
		if (got != -1)
			T_FAIL("split \"%s\": got %d, want -1", bad[i], got);
	}
}

/* ---- RFC 8463 Appendix A -------------------------------------------------------- */

static const char rfc_header[] =
	"From: Joe SixPack <joe@football.example.com>\r\n"
	"To: Suzie Q <suzie@shopping.example.net>\r\n"
	"Subject: Is dinner ready?\r\n"
	"Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
	"Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n";

/* The fields as the RFC prints them, up to b= (the text that is signed). */
static const char rfc_ed25519_sig[] =
	"DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;\r\n"
	" d=football.example.com; i=@football.example.com;\r\n"
	" q=dns/txt; s=brisbane; t=1528637909; h=from : to :\r\n"
	" subject : date : message-id : from : subject : date;\r\n"
	" bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n"
	" b=";
static const char rfc_rsa_sig[] =
	"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;\r\n"
	" d=football.example.com; i=@football.example.com;\r\n"
	" q=dns/txt; s=test; t=1528637909; h=from : to : subject :\r\n"
	" date : message-id : from : subject : date;\r\n"
	" bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n"
	" b=";

static void rfc_case(const char *keyfile, const char *sig, const char *want_b, const char *want_txt)
{
	static const char *const h[] = {
		"from", "to", "subject", "date", "message-id", "from", "subject", "date",
	};
	struct dkim_field f[8];
	unsigned char digest[32], raw[DKIM_SIG_MAX_BYTES];
	char b64[DKIM_SIG_MAX_BYTES * 2], err[300], txt[DKIM_TXT_MAX];
	struct dkim_key *k = load(keyfile);
	if (!k)
		return;
	T_EQ_INT(dkim_key_txt(k, txt, sizeof txt), strlen(want_txt));
	T_EQ_STR(txt, want_txt);
	int nf = dkim_split_fields(S(rfc_header), f, 8);
	T_EQ_INT(nf, 5);
	T_EQ_INT(dkim_header_hash(f, (size_t)nf, h, 8, sig, strlen(sig), digest), 0);
	struct dkim_key_ctx *c = dkim_key_ctx_new(k, err, sizeof err);
	T_TRUE(c != NULL);
	ssize_t n = c ? dkim_key_ctx_sign(c, digest, raw, sizeof raw) : -1;
	ssize_t bl = n > 0 ? sasl_b64_encode(raw, (size_t)n, b64, sizeof b64) : -1;
	T_EQ_MEM(b64, bl > 0 ? (size_t)bl : 0, want_b, strlen(want_b));
	dkim_key_ctx_free(c);
	dkim_key_free(k);
}

static void test_rfc8463(void)
{
	rfc_case("rfc8463_ed25519.pem", rfc_ed25519_sig,
		 "/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11BusFa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==",
		 "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
	rfc_case("rfc8463_rsa.pem", rfc_rsa_sig,
		 "F45dVWDfMbQDGHJFlXUNB2HKfbCeLRyhDXgFpEL8GwpsRe0IeIixNTe3DhCVlUrSjV4BwcVcOF6+FF3Zo9Rpo1tFOeS9"
		 "mPYQTnGdaSGsgeefOsk2JzdA+L10TeYt9BgDfQNZtKdN1WO//KgIqXP7OdEFE4LjFYNcUxZQ4FADY+8=",
		 "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qh"
		 "dR6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5"
		 "QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB");
}

/* ---- the fixtures: openssl over dkimpy's canonical form ------------------------------- */

struct fixture {
	const char *name;
	const char *keys[DKIM_MAX_KEYS], *selectors[DKIM_MAX_KEYS];
	unsigned nkeys;
	uint64_t t;
	const char *const *headers;
	size_t nheaders;
	int oversign;
};

static const char *const ed_headers[] = { "Subject", "X-Campaign", "Keywords", "To" };

/* The CASES of tests/data/dkim/gen.py. */
static const struct fixture fixtures[] = {
	{ "rsa", { "rsa2048.pem" }, { "rsa2048" }, 1, 1700000000, NULL, 0, 0 },
	{ "ed25519", { "ed25519.pem" }, { "ed" }, 1, 1700000001, ed_headers, 4, 1 },
	{ "both", { "rsa2048_pkcs1.pem", "ed25519.pem" }, { "rsa2048", "ed" }, 2, 1700000002, NULL, 0, 1 },
};

struct fixture_run {
	struct dkim_key *keys[DKIM_MAX_KEYS];
	struct dkim_signer *signer;
	char *want;
	size_t want_len;
};

static int fixture_open(const struct fixture *fx, struct fixture_run *r)
{
	struct dkim_signer_opts o = { .domain = "volley.test", .nkeys = fx->nkeys,
				      .headers = fx->headers, .nheaders = fx->nheaders,
				      .oversign_from = fx->oversign };
	char path[256], err[300];
	memset(r, 0, sizeof *r);
	for (unsigned i = 0; i < fx->nkeys; i++) {
		if (!(r->keys[i] = load(fx->keys[i])))
			return -1;
		o.keys[i] = (struct dkim_signer_key){ r->keys[i], fx->selectors[i] };
	}
	if (!(r->signer = dkim_signer_new(&o, err, sizeof err))) {
		T_FAIL("%s: %s", fx->name, err);
		return -1;
	}
	snprintf(path, sizeof path, DATA "expected_%s.txt", fx->name);
	r->want = read_file(path, &r->want_len);
	return r->want ? 0 : -1;
}

static void fixture_close(struct fixture_run *r)
{
	dkim_signer_free(r->signer);
	for (unsigned i = 0; i < DKIM_MAX_KEYS; i++)
		dkim_key_free(r->keys[i]);
	free(r->want);
}

static void test_fixtures(void)
{
	size_t len;
	char *msg = read_file(DATA "message.eml", &len);
	static char out[DKIM_MAX_KEYS * DKIM_SIGNATURE_MAX];
	char err[300];
	if (!msg)
		return;
	const char *sep = strstr(msg, "\r\n\r\n");
	size_t hlen = (size_t)(sep - msg) + 2, body = hlen + 2;

	for (size_t i = 0; i < sizeof fixtures / sizeof fixtures[0]; i++) {
		const struct fixture *fx = &fixtures[i];
		struct fixture_run r;
		struct dkim_sign *st = NULL;
		if (fixture_open(fx, &r) < 0 || !(st = dkim_sign_new(r.signer, err, sizeof err))) {
			T_FAIL("%s: cannot set up", fx->name);
			fixture_close(&r);
			continue;
		}
		ssize_t n = dkim_sign_message(st, msg, len, fx->t, out, sizeof out);
		if (n < 0)
			T_FAIL("%s: %s", fx->name, dkim_sign_errstr(st));
		T_EQ_MEM(out, n > 0 ? (size_t)n : 0, r.want, r.want_len);

		/* The body fed in two pieces cut at every point (every third for
		 * RSA, which is slower), then byte by byte: the same fields. */
		size_t stride = fx->nkeys == 1 && fx->keys[0][0] == 'e' ? 1 : 3;
		for (size_t cut = body; cut <= len; cut += stride) {
			dkim_sign_begin(st);
			dkim_sign_body(st, msg + body, cut - body);
			dkim_sign_body(st, msg + cut, len - cut);
			n = dkim_sign_end(st, msg, hlen, fx->t, out, sizeof out);
			if (n != (ssize_t)r.want_len || memcmp(out, r.want, r.want_len) != 0) {
				T_FAIL("%s: body cut at %zu gives other fields", fx->name, cut - body);
				break;
			}
			t_checks++;
		}
		dkim_sign_begin(st);
		for (size_t k = body; k < len; k++)
			dkim_sign_body(st, msg + k, 1);
		n = dkim_sign_end(st, msg, hlen, fx->t, out, sizeof out);
		T_EQ_MEM(out, n > 0 ? (size_t)n : 0, r.want, r.want_len);

		/* Every output buffer short of the fields fails; the exact size works. */
		for (size_t cap = 0; cap < r.want_len; cap += cap < 200 ? 1 : 97) {
			n = dkim_sign_message(st, msg, len, fx->t, out, cap);
			if (n != -1) {
				T_FAIL("%s: cap %zu: got %zd, want -1", fx->name, cap, n);
				break;
			}
			t_checks++;
		}
		T_EQ_STR(dkim_sign_errstr(st), "the output buffer is too small");
		T_EQ_INT(dkim_sign_message(st, msg, len, fx->t, out, r.want_len), r.want_len);
		dkim_sign_free(st);
		fixture_close(&r);
	}
	free(msg);
}

/* ---- the layout -------------------------------------------------------------------- */

/* Checks one field's shape: CRLF SP folds only, a final CRLF, lines of at
 * most line_max (and 998) octets, b= not followed by a fold. */
static void check_shape(const char *f, size_t len, size_t line_max, const char *what)
{
	size_t col = 0, longest = 0;
	t_checks++;
	if (len < 2 || memcmp(f + len - 2, "\r\n", 2) != 0) {
		T_FAIL("%s: no final CRLF", what);
		return;
	}
	for (size_t i = 0; i < len; i++) {
		if (f[i] == '\r') {
			if (f[i + 1] != '\n' || (i + 2 < len && f[i + 2] != ' ')) {
				T_FAIL("%s: a line break that is not CRLF SP at %zu", what, i);
				return;
			}
			longest = col > longest ? col : longest;
			col = 0;
			i++;
			continue;
		}
		col++;
	}
	if (longest > line_max || longest >= 998)
		T_FAIL("%s: a line of %zu octets (at most %zu wanted)", what, longest, line_max);
	const char *b = strstr(f, "; b=");
	if (!b)
		b = strstr(f, "\r\n b=");
	if (!b || b[strlen(b[0] == ';' ? "; b=" : "\r\n b=")] == '\r')
		T_FAIL("%s: b= missing or followed by a fold", what);
}

/* The tags of a field, folds and the spaces around separators removed:
 * "v=1;a=...;h=from:to;...". */
static size_t squeeze(const char *f, size_t len, char *out)
{
	size_t n = 0;
	for (size_t i = strlen("DKIM-Signature:"); i < len; i++)
		if (f[i] != '\r' && f[i] != '\n' && f[i] != ' ')
			out[n++] = f[i];
	out[n] = 0;
	return n;
}

static void test_layout(void)
{
	static const char *const names[] = {
		"from", "to", "subject", "date", "message-id", "mime-version", "content-type",
		"list-unsubscribe", "list-unsubscribe-post", "x-a-rather-long-header-name-for-testing-folds",
	};
	static char domain[DKIM_DNS_NAME_MAX + 1], field[DKIM_SIGNATURE_MAX], want[DKIM_SIGNATURE_MAX];
	static char squeezed[DKIM_SIGNATURE_MAX];
	const char *hnames[DKIM_MAX_SIGNED];
	char b64[700];
	memset(b64, 'A', sizeof b64);

	for (size_t dl = 1; dl <= DKIM_DNS_NAME_MAX; dl += dl < 90 ? 1 : 31) {
		/* labels of up to 63 octets joined by dots */
		for (size_t i = 0; i < dl; i++)
			domain[i] = i % 64 == 63 ? '.' : (char)('a' + i % 26);
		domain[dl] = 0;
		for (size_t nn = 1; nn <= DKIM_MAX_SIGNED; nn += nn < 12 ? 1 : 13) {
			for (size_t i = 0; i < nn; i++)
				hnames[i] = names[i % (sizeof names / sizeof names[0])];
			for (size_t blen = 4; blen <= 684; blen += blen < 100 ? 4 : 296) {
				const struct dkim_sig_tags tags = {
					(nn & 1) ? DKIM_RSA_SHA256 : DKIM_ED25519_SHA256, domain, "sel-1.x",
					1700000000u + nn, hnames, nn, "sF5YAHtx9wYiPkjQ6OaxkKNPiyNpqLh4XfvVRFDdxeM=",
				};
				size_t col;
				ssize_t head = dkim_format_head(&tags, field, sizeof field, &col);
				ssize_t tail = head > 0 ? dkim_format_b(b64, blen, col, field + head,
									sizeof field - (size_t)head) : -1;
				if (head < 0 || tail < 0) {
					T_FAIL("domain %zu, %zu names: no room", dl, nn);
					return;
				}
				size_t len = (size_t)(head + tail);
				field[len] = 0;
				/* d= is the only tag that may pass 77 octets here */
				size_t dtok = 1 + strlen("d=;") + dl;
				check_shape(field, len, dtok > DKIM_LINE_MAX ? dtok : DKIM_LINE_MAX, "layout");
				/* everything is there, in order */
				size_t wl = (size_t)snprintf(want, sizeof want, "v=1;a=%s;c=relaxed/relaxed;d=%s;s=sel-1.x;t=%llu;h=",
							     dkim_alg_name(tags.alg), domain,
							     (unsigned long long)tags.t);
				for (size_t i = 0; i < nn; i++)
					wl += (size_t)snprintf(want + wl, sizeof want - wl, "%s%c", hnames[i],
							       i + 1 < nn ? ':' : ';');
				wl += (size_t)snprintf(want + wl, sizeof want - wl, "bh=%s;b=%.*s", tags.bh,
						       (int)blen, b64);
				size_t sl = squeeze(field, len, squeezed);
				T_EQ_MEM(squeezed, sl, want, wl);
			}
		}
	}

	/* Buffers short by any amount fail; the exact size works. */
	const struct dkim_sig_tags tags = {
		DKIM_ED25519_SHA256, "volley.test", "s", 1, names, 10, "sF5YAHtx9wYiPkjQ6OaxkKNPiyNpqLh4XfvVRFDdxeM=",
	};
	size_t col;
	ssize_t full = dkim_format_head(&tags, field, sizeof field, &col);
	T_TRUE(full > 0);
	for (size_t cap = 0; full > 0 && cap < (size_t)full; cap++) {
		char *exact = malloc(cap ? cap : 1);
		size_t c2;
		if (dkim_format_head(&tags, exact, cap, &c2) != -1)
			T_FAIL("format_head with cap %zu: want -1", cap);
		t_checks++;
		free(exact);
	}
	ssize_t tail = dkim_format_b(b64, 88, col, field, sizeof field);
	T_TRUE(tail > 0);
	for (size_t cap = 0; tail > 0 && cap < (size_t)tail; cap++)
		T_EQ_INT(dkim_format_b(b64, 88, col, field, cap), -1);
	T_EQ_INT(dkim_format_b(b64, 88, col, field, (size_t)tail), tail);
}

/* ---- names, options, errors ---------------------------------------------------------- */

static void test_dns_names(void)
{
	static const char *const good[] = { "volley.test", "a", "x1-2.b3", "rsa2048", "2024.sel" };
	static const char *const bad[] = {
		"", ".volley.test", "volley.test.", "a..b", "-a.test", "a-.test", "a_b.test", "a b",
		"a;b", "caf\xc3\xa9.test",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.test",   /* 64 */
	};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		const char *why = dkim_dns_name_problem(good[i]);
		t_checks++;
		if (why)
			T_FAIL("\"%s\": %s", good[i], why);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		t_checks++;
		if (!dkim_dns_name_problem(bad[i]))
			T_FAIL("\"%s\" accepted", bad[i]);
	}
	char longname[300];
	for (int i = 0; i < 254; i++)
		longname[i] = i % 2 ? '.' : 'a';
	longname[253] = 0;
	T_TRUE(dkim_dns_name_problem(longname) == NULL);
	longname[253] = 'b';
	longname[254] = 0;
	T_TRUE(dkim_dns_name_problem(longname) != NULL);
}

static void test_signer_options(void)
{
	struct dkim_key *k = load("ed25519.pem");
	if (!k)
		return;
	char err[300];
	static const char *const dup[] = { "To", "Subject", "to" };
	static const char *const colon[] = { "X:Y" };
	static const char *const sig[] = { "DKIM-Signature" };
	static const char *const empty[] = { "" };
	static const char *const from_only[] = { "FROM" };
	static const char *many[DKIM_MAX_HEADERS + 1];
	static char many_names[DKIM_MAX_HEADERS + 1][16];
	for (int i = 0; i <= DKIM_MAX_HEADERS; i++) {
		snprintf(many_names[i], sizeof many_names[i], "X-H%d", i);
		many[i] = many_names[i];
	}
	const struct { struct dkim_signer_opts o; const char *err_has; } t[] = {
		{ { "bad domain", { { k, "s" } }, 1, NULL, 0, 0 }, "domain" },
		{ { NULL, { { k, "s" } }, 1, NULL, 0, 0 }, "domain" },
		{ { "volley.test", { { k, "s;x" } }, 1, NULL, 0, 0 }, "selector" },
		{ { "volley.test", { { k, NULL } }, 1, NULL, 0, 0 }, "selector" },
		{ { "volley.test", { { NULL, "s" } }, 1, NULL, 0, 0 }, "missing" },
		{ { "volley.test", { { k, "s" } }, 0, NULL, 0, 0 }, "keys" },
		{ { "volley.test", { { k, "s" }, { k, "t" } }, 3, NULL, 0, 0 }, "keys" },
		{ { "volley.test", { { k, "s" } }, 1, dup, 3, 0 }, "twice" },
		{ { "volley.test", { { k, "s" } }, 1, colon, 1, 0 }, "colon" },
		{ { "volley.test", { { k, "s" } }, 1, sig, 1, 0 }, "DKIM-Signature" },
		{ { "volley.test", { { k, "s" } }, 1, empty, 1, 0 }, "empty" },
		{ { "volley.test", { { k, "s" } }, 1, many, DKIM_MAX_HEADERS, 0 }, "more than" },
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		err[0] = 0;
		struct dkim_signer *s = dkim_signer_new(&t[i].o, err, sizeof err);
		t_checks++;
		if (s || !strstr(err, t[i].err_has))
			T_FAIL("options %zu: got %s \"%s\", want an error with \"%s\"", i, s ? "a signer" : "",
			       err, t[i].err_has);
		dkim_signer_free(s);
	}
	/* From is signed when the list lacks it; "FROM" counts as From. */
	const struct dkim_signer_opts ok[] = {
		{ "volley.test", { { k, "s" } }, 1, many, DKIM_MAX_HEADERS - 1, 0 },
		{ "volley.test", { { k, "s" } }, 1, from_only, 1, 1 },
	};
	static char out[DKIM_SIGNATURE_MAX];
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		struct dkim_signer *s = dkim_signer_new(&ok[i], err, sizeof err);
		struct dkim_sign *st = s ? dkim_sign_new(s, err, sizeof err) : NULL;
		T_TRUE(st != NULL);
		ssize_t n = st ? dkim_sign_message(st, S("From: a@volley.test\r\nX-H3: x\r\n\r\nhi\r\n"), 1,
						   out, sizeof out) : -1;
		T_TRUE(n > 0);
		if (n > 0) {
			out[n] = 0;
			T_TRUE(strstr(out, i == 0 ? "h=from:x-h3;" : "h=from:from;") != NULL);
		}
		dkim_sign_free(st);
		dkim_signer_free(s);
	}
	dkim_key_free(k);
}

static void test_sign_errors(void)
{
	struct dkim_key *k = load("ed25519.pem");
	if (!k)
		return;
	char err[300];
	static const char *const to[] = { "To" };
	const struct dkim_signer_opts o = { "volley.test", { { k, "ed" } }, 1, to, 1, 1 };
	struct dkim_signer *s = dkim_signer_new(&o, err, sizeof err);
	struct dkim_sign *st = s ? dkim_sign_new(s, err, sizeof err) : NULL;
	static char out[DKIM_SIGNATURE_MAX], msg[200000];
	if (!st) {
		T_FAIL("%s", err);
		goto out;
	}
	const struct { const char *msg, *err_has; } t[] = {
		{ "To: a@dest.test\r\n\r\nno From\r\n", "no From" },
		{ "\r\nno header at all\r\n", "no From" },
		{ "", "no From" },
		{ "From: a@volley.test\r\nbroken line\r\n\r\nbody\r\n", "malformed" },
		{ "From: a@volley.test\nTo: b\r\n\r\nbody\r\n", "malformed" },
		{ " From: a@volley.test\r\n\r\nbody\r\n", "malformed" },
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		ssize_t n = dkim_sign_message(st, t[i].msg, strlen(t[i].msg), 1, out, sizeof out);
		t_checks++;
		if (n != -1 || !strstr(dkim_sign_errstr(st), t[i].err_has))
			T_FAIL("message %zu: got %zd \"%s\", want -1 with \"%s\"", i, n, dkim_sign_errstr(st),
			       t[i].err_has);
	}

	/* Too many fields, and too many signed instances. */
	size_t n = (size_t)snprintf(msg, sizeof msg, "From: a@volley.test\r\n");
	for (int i = 0; i < DKIM_MAX_FIELDS; i++)
		n += (size_t)snprintf(msg + n, sizeof msg - n, "X-N: %d\r\n", i);
	n += (size_t)snprintf(msg + n, sizeof msg - n, "\r\nbody\r\n");
	T_EQ_INT(dkim_sign_message(st, msg, n, 1, out, sizeof out), -1);
	T_TRUE(strstr(dkim_sign_errstr(st), "header fields") != NULL);
	n = (size_t)snprintf(msg, sizeof msg, "From: a@volley.test\r\n");
	for (int i = 0; i < DKIM_MAX_SIGNED - 1; i++)   /* with From twice (over-signed): one too many */
		n += (size_t)snprintf(msg + n, sizeof msg - n, "To: r%d@dest.test\r\n", i);
	n += (size_t)snprintf(msg + n, sizeof msg - n, "\r\nbody\r\n");
	T_EQ_INT(dkim_sign_message(st, msg, n, 1, out, sizeof out), -1);
	T_TRUE(strstr(dkim_sign_errstr(st), "signed header fields") != NULL);
	/* One fewer To fits, and the field stays within its bound. */
	const char *cut = strstr(msg, "To: r0@dest.test\r\n");
	memmove((char *)cut, cut + 18, n - (size_t)(cut + 18 - msg));
	n -= 18;
	ssize_t got = dkim_sign_message(st, msg, n, 1, out, sizeof out);
	T_TRUE(got > 0 && got < DKIM_SIGNATURE_MAX);
	if (got > 0)
		check_shape(out, (size_t)got, DKIM_LINE_MAX, "64 signed fields");
out:
	dkim_sign_free(st);
	dkim_signer_free(s);
	dkim_key_free(k);
}

/* ---- keys ---------------------------------------------------------------------------- */

static void test_keys(void)
{
	char err[300], txt[DKIM_TXT_MAX], txt2[DKIM_TXT_MAX];
	static char pem[DKIM_PEM_MAX];
	size_t len;

	/* The TXT values of the fixture keys are openssl's. */
	static const char *const pub[][2] = {
		{ "rsa2048.pem", "rsa2048.txt" }, { "rsa2048_pkcs1.pem", "rsa2048.txt" },
		{ "ed25519.pem", "ed25519.txt" },
	};
	for (size_t i = 0; i < sizeof pub / sizeof pub[0]; i++) {
		char path[256];
		snprintf(path, sizeof path, DATA "%s", pub[i][1]);
		char *want = read_file(path, &len);
		struct dkim_key *k = load(pub[i][0]);
		if (k && want) {
			T_EQ_INT(dkim_key_txt(k, txt, sizeof txt), len);
			T_EQ_STR(txt, want);
			T_EQ_INT(dkim_key_bits(k), pub[i][0][0] == 'r' ? 2048 : 256);
			/* A TXT value that does not fit is refused. */
			T_EQ_INT(dkim_key_txt(k, txt, len), -1);
		}
		free(want);
		dkim_key_free(k);
	}

	static const struct { const char *file, *err_has; } bad[] = {
		{ "missing.pem", "No such file" },
		{ "message.eml", "no PEM" },
		{ "ed25519_encrypted.pem", "encrypted" },
		{ "ed25519_public.pem", "no private key" },
		{ "rsa512.pem", "512 bits" },
		{ "ec.pem", "neither an RSA nor an Ed25519" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char path[256];
		snprintf(path, sizeof path, DATA "%s", bad[i].file);
		err[0] = 0;
		struct dkim_key *k = dkim_key_load(path, err, sizeof err);
		t_checks++;
		if (k || !strstr(err, bad[i].err_has))
			T_FAIL("%s: got \"%s\", want an error with \"%s\"", bad[i].file, err, bad[i].err_has);
		dkim_key_free(k);
	}
	/* A PEM whose base64 is damaged, and one cut short. */
	char *ed = read_file(DATA "ed25519.pem", &len);
	if (ed) {
		char *p = strstr(ed, "\n") + 5;
		*p = *p == 'A' ? 'B' : 'A';
		struct dkim_key *k = dkim_key_from_pem(ed, len, err, sizeof err);
		T_TRUE(k == NULL);
		dkim_key_free(k);
		k = dkim_key_from_pem(ed, len / 2, err, sizeof err);
		T_TRUE(k == NULL);
		dkim_key_free(k);
		free(ed);
	}

	/* Generated keys survive PEM and back; wrong sizes are refused. */
	const struct { enum dkim_alg alg; unsigned bits; } gen[] = {
		{ DKIM_ED25519_SHA256, 0 }, { DKIM_RSA_SHA256, 1024 }, { DKIM_RSA_SHA256, 1152 },
	};
	for (size_t i = 0; i < sizeof gen / sizeof gen[0]; i++) {
		struct dkim_key *k = dkim_key_generate(gen[i].alg, gen[i].bits, err, sizeof err);
		if (!k) {
			T_FAIL("generate %zu: %s", i, err);
			continue;
		}
		T_EQ_INT(dkim_key_alg(k), gen[i].alg);
		T_EQ_INT(dkim_key_bits(k), gen[i].bits ? gen[i].bits : 256);
		ssize_t n = dkim_key_to_pem(k, pem, sizeof pem);
		T_TRUE(n > 0 && strncmp(pem, "-----BEGIN PRIVATE KEY-----\n", 28) == 0);
		T_EQ_INT(dkim_key_to_pem(k, pem, n > 0 ? (size_t)n : 0), -1);   /* no room for the NUL */
		n = dkim_key_to_pem(k, pem, sizeof pem);
		struct dkim_key *back = n > 0 ? dkim_key_from_pem(pem, (size_t)n, err, sizeof err) : NULL;
		T_TRUE(back != NULL);
		if (back) {
			T_TRUE(dkim_key_txt(k, txt, sizeof txt) > 0 && dkim_key_txt(back, txt2, sizeof txt2) > 0);
			T_EQ_STR(txt2, txt);
		}
		dkim_key_free(back);
		dkim_key_free(k);
	}
	static const unsigned wrong[] = { 512, 1000, 1032, 4224, 0 };
	for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
		struct dkim_key *k = dkim_key_generate(DKIM_RSA_SHA256, wrong[i], err, sizeof err);
		t_checks++;
		if (k)
			T_FAIL("RSA of %u bits generated", wrong[i]);
		dkim_key_free(k);
	}
}

/* ---- threads: one signer, a state per thread -------------------------------------------- */

struct worker {
	const struct dkim_signer *signer;
	const char *msg;
	size_t len;
	const char *want;
	size_t want_len;
	int mismatches;
};

static void *work(void *arg)
{
	struct worker *w = arg;
	char err[300];
	static __thread char out[DKIM_MAX_KEYS * DKIM_SIGNATURE_MAX];
	struct dkim_sign *st = dkim_sign_new(w->signer, err, sizeof err);
	if (!st) {
		w->mismatches = -1;
		return NULL;
	}
	for (int i = 0; i < 20; i++) {
		ssize_t n = dkim_sign_message(st, w->msg, w->len, fixtures[2].t, out, sizeof out);
		if (n != (ssize_t)w->want_len || memcmp(out, w->want, w->want_len) != 0)
			w->mismatches++;
	}
	dkim_sign_free(st);
	return NULL;
}

static void test_threads(void)
{
	struct fixture_run r;
	size_t len;
	char *msg = read_file(DATA "message.eml", &len);
	if (!msg || fixture_open(&fixtures[2], &r) < 0) {
		free(msg);
		return;
	}
	struct worker w[4];
	pthread_t th[4];
	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){ r.signer, msg, len, r.want, r.want_len, 0 };
		if (pthread_create(&th[i], NULL, work, &w[i]) != 0)
			T_FAIL("pthread_create");
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		T_EQ_INT(w[i].mismatches, 0);
	}
	fixture_close(&r);
	free(msg);
}

int main(void)
{
	test_canon_header();
	test_canon_body();
	test_canon_body_random();
	test_canon_body_known();
	test_split_fields();
	test_rfc8463();
	test_fixtures();
	test_layout();
	test_dns_names();
	test_signer_options();
	test_sign_errors();
	test_keys();
	test_threads();
	return t_done("test_dkim");
}
