/* test_tls: a client and a server tls_conn talking to each other purely in
 * memory: a pump moves each side's ciphertext output into the other's input,
 * in random-sized pieces, so every record boundary case gets exercised. */
#include <stdint.h>
#include <stdlib.h>
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include "pool/tls.h"
#include "tests/testutil.h"

/* xorshift: reproducible "random" chunk sizes and payloads. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static size_t pick(size_t max)
{
	return max ? 1 + (size_t)(rng() % max) : 0;
}

/* Moves up to max bytes (all when max is 0) of from's output into to. */
static size_t move(struct tls_conn *from, struct tls_conn *to, size_t max)
{
	size_t len;
	const void *p = tls_conn_cipher_out(from, &len);
	if (max && len > max)
		len = max;
	size_t n = tls_conn_feed(to, p, len);
	tls_conn_cipher_consume(from, n);
	return n;
}

static void pump(struct tls_conn *a, struct tls_conn *b)
{
	move(a, b, 0);
	move(b, a, 0);
}

static struct tls_ctx *ctx_or_die(const struct tls_ctx_opts *o)
{
	char err[256] = "";
	struct tls_ctx *t = tls_ctx_new(o, err, sizeof(err));
	if (!t) {
		fprintf(stderr, "tls_ctx_new: %s\n", err);
		exit(99);
	}
	return t;
}

static struct tls_ctx *server_ctx(const char *cert, const char *key, int minv, int maxv)
{
	struct tls_ctx_opts o = { .server = 1, .cert_file = cert, .key_file = key,
				  .min_version = minv, .max_version = maxv };
	return ctx_or_die(&o);
}

static struct tls_ctx *client_ctx(const char *ca, int insecure, int minv, int maxv)
{
	struct tls_ctx_opts o = { .ca_file = ca, .insecure = insecure,
				  .min_version = minv, .max_version = maxv };
	return ctx_or_die(&o);
}

/* Runs both handshakes to the end. Returns the client's result (1 or
 * TLS_ERROR); *srv gets the server's. */
static int handshake(struct tls_conn *c, struct tls_conn *s, int *srv)
{
	int rc = TLS_AGAIN, rs = TLS_AGAIN;
	for (int i = 0; i < 50; i++) {
		if (rc == TLS_AGAIN)
			rc = tls_conn_handshake(c);
		if (rs == TLS_AGAIN)
			rs = tls_conn_handshake(s);
		pump(c, s);
		if (rc != TLS_AGAIN && rs != TLS_AGAIN)
			break;
		if (rc == TLS_ERROR || rs == TLS_ERROR) {
			/* Let the alert reach the other side, then stop. */
			if (rc == TLS_AGAIN)
				rc = tls_conn_handshake(c);
			if (rs == TLS_AGAIN)
				rs = tls_conn_handshake(s);
			break;
		}
	}
	if (srv)
		*srv = rs;
	return rc;
}

/* Reads what is readable now into buf; returns bytes read or a TLS_ code
 * other than TLS_AGAIN. */
static ssize_t read_all(struct tls_conn *c, char *buf, size_t cap)
{
	size_t got = 0;
	for (;;) {
		ssize_t n = tls_conn_read(c, buf + got, cap - got);
		if (n > 0) {
			got += (size_t)n;
			if (got == cap)
				return (ssize_t)got;
			continue;
		}
		if (n == TLS_AGAIN)
			return (ssize_t)got;
		return n;
	}
}

static void test_versions(void)
{
	static const struct {
		int cmin, cmax, smin, smax;
		int want;
		const char *version;
	} t[] = {
		{ 0, 0, 0, 0, 1, "TLSv1.3" },
		{ 12, 12, 0, 0, 1, "TLSv1.2" },
		{ 0, 0, 12, 12, 1, "TLSv1.2" },
		{ 13, 13, 13, 13, 1, "TLSv1.3" },
		{ 13, 0, 12, 12, TLS_ERROR, "" },   /* no common version */
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct tls_ctx *sc = server_ctx("data/server.pem", "data/server.key", t[i].smin, t[i].smax);
		struct tls_ctx *cc = client_ctx("data/ca.pem", 0, t[i].cmin, t[i].cmax);
		struct tls_conn *s = tls_conn_new(sc, NULL, NULL);
		struct tls_conn *c = tls_conn_new(cc, "localhost", NULL);
		int rs;
		int rc = handshake(c, s, &rs);
		T_EQ_INT(rc, t[i].want);
		T_EQ_INT(rs, t[i].want);
		T_EQ_STR(tls_conn_version(c), t[i].version);
		if (rc == 1) {
			T_EQ_STR(tls_conn_version(s), t[i].version);
			/* Both sides list ChaCha20 first. */
			T_TRUE(strstr(tls_conn_cipher(c), "CHACHA20") != NULL);
			T_EQ_STR(tls_conn_cipher(c), tls_conn_cipher(s));
			T_EQ_INT(tls_conn_resumed(c), 0);
			T_EQ_STR(tls_conn_errstr(c), "");
		} else {
			T_TRUE(strstr(tls_conn_errstr(c), "handshake failed") != NULL);
		}
		tls_conn_free(c);
		tls_conn_free(s);
		tls_ctx_free(cc);
		tls_ctx_free(sc);
	}
}

static void test_verify(void)
{
	static const struct {
		const char *ca;
		int insecure;
		const char *cert, *key, *name;
		int want;
		const char *err;   /* a part of the client's errstr */
	} t[] = {
		{ "data/ca.pem", 0, "data/server.pem", "data/server.key", "localhost", 1, "" },
		{ "data/ca.pem", 0, "data/server.pem", "data/server.key", "mail.volley.test", 1, "" },
		{ "data/ca.pem", 0, "data/server.pem", "data/server.key", "127.0.0.1", 1, "" },
		{ "data/ca.pem", 0, "data/server.pem", "data/server.key", "other.test", TLS_ERROR,
		  "certificate verify failed: host name mismatch" },
		{ "data/ca.pem", 0, "data/server.pem", "data/server.key", "volley.test", TLS_ERROR,
		  "certificate verify failed: host name mismatch" },
		{ "data/ca.pem", 0, "data/server.pem", "data/server.key", "127.0.0.2", TLS_ERROR,
		  "certificate verify failed: host name mismatch" },
		{ "data/ca.pem", 0, "data/server.pem", "data/server.key", "::1", TLS_ERROR,
		  "certificate verify failed: host name mismatch" },
		{ "data/selfsigned.pem", 0, "data/server.pem", "data/server.key", "localhost",
		  TLS_ERROR, "certificate verify failed: unknown CA" },
		{ "data/ca.pem", 0, "data/selfsigned.pem", "data/selfsigned.key", "localhost",
		  TLS_ERROR, "certificate verify failed: unknown CA" },
		{ "data/ca.pem", 0, "data/expired.pem", "data/expired.key", "localhost", TLS_ERROR,
		  "certificate verify failed: certificate expired" },
		/* No CA file: the system store, which does not know the test CA. */
		{ NULL, 0, "data/server.pem", "data/server.key", "localhost", TLS_ERROR,
		  "certificate verify failed: unknown CA" },
		{ NULL, 1, "data/selfsigned.pem", "data/selfsigned.key", "localhost", 1, "" },
		{ NULL, 1, "data/expired.pem", "data/expired.key", "other.test", 1, "" },
	};
	for (int v = 12; v <= 13; v++) {
		for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
			struct tls_ctx *sc = server_ctx(t[i].cert, t[i].key, 0, v);
			struct tls_ctx *cc = client_ctx(t[i].ca, t[i].insecure, 0, 0);
			struct tls_conn *s = tls_conn_new(sc, NULL, NULL);
			struct tls_conn *c = tls_conn_new(cc, t[i].name, NULL);
			int rc = handshake(c, s, NULL);
			t_checks += 2;
			if (rc != t[i].want)
				T_FAIL("TLS 1.%d %s for %s: got %d, want %d (%s)", v - 10, t[i].cert,
				       t[i].name, rc, t[i].want, tls_conn_errstr(c));
			if (!strstr(tls_conn_errstr(c), t[i].err) || (!*t[i].err && *tls_conn_errstr(c)))
				T_FAIL("TLS 1.%d %s for %s: got \"%s\", want \"%s\"", v - 10, t[i].cert,
				       t[i].name, tls_conn_errstr(c), t[i].err);
			/* An error sticks. */
			if (rc == TLS_ERROR) {
				char b[8];
				T_EQ_INT(tls_conn_read(c, b, sizeof(b)), TLS_ERROR);
				T_EQ_INT(tls_conn_write(c, "x", 1), TLS_ERROR);
			}
			tls_conn_free(c);
			tls_conn_free(s);
			tls_ctx_free(cc);
			tls_ctx_free(sc);
		}
	}
}

/* Sends len bytes each way at once, both sides writing and reading random
 * sized pieces and the pump moving random sized pieces, then compares. */
static void transfer(struct tls_conn *c, struct tls_conn *s, size_t len)
{
	unsigned char *src[2], *dst[2];
	size_t sent[2] = { 0, 0 }, got[2] = { 0, 0 };
	struct tls_conn *side[2] = { c, s };
	for (int k = 0; k < 2; k++) {
		src[k] = malloc(len);
		dst[k] = malloc(len);
		for (size_t i = 0; i < len; i++)
			src[k][i] = (unsigned char)rng();
	}
	int again_writes = 0, ok = 1;
	for (long round = 0; round < 1000000 && (got[0] < len || got[1] < len); round++) {
		for (int k = 0; k < 2 && ok; k++) {
			if (sent[k] < len) {
				size_t want = pick(len - sent[k] < 40000 ? len - sent[k] : 40000);
				ssize_t n = tls_conn_write(side[k], src[k] + sent[k], want);
				if (n == TLS_AGAIN)
					again_writes++;
				else if (n <= 0 || (size_t)n > want)
					ok = 0;
				else
					sent[k] += (size_t)n;
			}
			/* k reads what the other side sent. */
			size_t room = len - got[1 - k];
			if (room) {
				ssize_t n = tls_conn_read(side[k], dst[1 - k] + got[1 - k], pick(room));
				if (n > 0)
					got[1 - k] += (size_t)n;
				else if (n != TLS_AGAIN)
					ok = 0;
			}
		}
		if (!ok)
			break;
		move(c, s, pick(30000));
		move(s, c, pick(30000));
	}
	T_TRUE(ok);
	T_EQ_INT(sent[0], len);
	T_EQ_INT(sent[1], len);
	T_EQ_INT(got[0], len);
	T_EQ_INT(got[1], len);
	t_checks += 2;
	for (int k = 0; k < 2; k++)
		if (got[k] != len || memcmp(src[k], dst[k], len) != 0)
			T_FAIL("transfer %d: bytes differ", k);
	/* The bounded buffers must have pushed back at some point. */
	T_TRUE(again_writes > 0);
	for (int k = 0; k < 2; k++) {
		free(src[k]);
		free(dst[k]);
	}
}

static void test_transfer_and_close(void)
{
	for (int v = 12; v <= 13; v++) {
		struct tls_ctx *sc = server_ctx("data/server.pem", "data/server.key", 0, v);
		struct tls_ctx *cc = client_ctx("data/ca.pem", 0, 0, 0);
		struct tls_conn *s = tls_conn_new(sc, NULL, NULL);
		struct tls_conn *c = tls_conn_new(cc, "mail.volley.test", NULL);
		T_EQ_INT(handshake(c, s, NULL), 1);
		transfer(c, s, 1 << 20);

		/* close_notify reaches the peer as TLS_CLOSED, and stays so. */
		tls_conn_close_notify(c);
		pump(c, s);
		char b[16];
		T_EQ_INT(tls_conn_read(s, b, sizeof(b)), TLS_CLOSED);
		T_EQ_INT(tls_conn_read(s, b, sizeof(b)), TLS_CLOSED);
		tls_conn_free(c);
		tls_conn_free(s);
		tls_ctx_free(cc);
		tls_ctx_free(sc);
	}
}

/* A write is refused while the output buffer lacks room for a record, and
 * nothing is lost once the caller drains it. */
static void test_backpressure(void)
{
	struct tls_ctx *sc = server_ctx("data/server.pem", "data/server.key", 0, 0);
	struct tls_ctx *cc = client_ctx("data/ca.pem", 0, 0, 0);
	struct tls_conn *s = tls_conn_new(sc, NULL, NULL);
	struct tls_conn *c = tls_conn_new(cc, "localhost", NULL);
	T_EQ_INT(handshake(c, s, NULL), 1);

	static unsigned char msg[200000], back[200000];
	for (size_t i = 0; i < sizeof(msg); i++)
		msg[i] = (unsigned char)(i * 7 + 3);
	size_t sent = 0;
	ssize_t n;
	while ((n = tls_conn_write(c, msg + sent, sizeof(msg) - sent)) > 0)
		sent += (size_t)n;
	T_EQ_INT(n, TLS_AGAIN);
	T_TRUE(sent > 0 && sent < sizeof(msg));
	size_t pending;
	tls_conn_cipher_out(c, &pending);
	T_TRUE(pending <= TLS_CIPHER_OUT_MAX);

	size_t got = 0;
	while (got < sizeof(msg)) {
		if (sent < sizeof(msg) && (n = tls_conn_write(c, msg + sent, sizeof(msg) - sent)) > 0)
			sent += (size_t)n;
		move(c, s, 0);
		n = tls_conn_read(s, back + got, sizeof(back) - got);
		if (n > 0)
			got += (size_t)n;
		else if (n != TLS_AGAIN)
			break;
	}
	T_EQ_INT(got, sizeof(msg));
	T_EQ_MEM(back, got, msg, sizeof(msg));
	tls_conn_free(c);
	tls_conn_free(s);
	tls_ctx_free(cc);
	tls_ctx_free(sc);
}

static void test_resume(void)
{
	for (int v = 12; v <= 13; v++) {
		struct tls_ctx *sc = server_ctx("data/server.pem", "data/server.key", 0, v);
		struct tls_ctx *cc = client_ctx("data/ca.pem", 0, 0, 0);
		struct tls_saved *saved = NULL;
		for (int round = 0; round < 3; round++) {
			struct tls_conn *s = tls_conn_new(sc, NULL, NULL);
			struct tls_conn *c = tls_conn_new(cc, "localhost", saved);
			T_EQ_INT(handshake(c, s, NULL), 1);
			T_EQ_STR(tls_conn_version(c), v == 12 ? "TLSv1.2" : "TLSv1.3");
			T_EQ_INT(tls_conn_resumed(c), round > 0);
			T_EQ_INT(tls_conn_resumed(s), round > 0);

			/* An SMTP-like exchange: the TLS 1.3 ticket rides in
			 * front of the server's first bytes. */
			T_EQ_INT(tls_conn_write(c, "EHLO x\r\n", 8), 8);
			pump(c, s);
			char b[64];
			T_EQ_INT(read_all(s, b, sizeof(b)), 8);
			T_EQ_INT(tls_conn_write(s, "250 ok\r\n", 8), 8);
			pump(c, s);
			ssize_t n = read_all(c, b, sizeof(b));
			T_EQ_MEM(b, n > 0 ? (size_t)n : 0, "250 ok\r\n", 8);

			tls_saved_free(saved);
			saved = tls_conn_save(c);
			T_TRUE(saved != NULL);
			T_TRUE(tls_conn_save(s) == NULL);
			tls_conn_free(c);
			tls_conn_free(s);
		}
		/* A TLS 1.3 ticket from another server is not resumed, only
		 * ignored. (TLS 1.2 session IDs live in wolfSSL's session cache,
		 * which is global to the process, so two server contexts here
		 * would share them; separate processes do not.) */
		if (v == 13) {
			struct tls_ctx *sc2 = server_ctx("data/server.pem", "data/server.key", 0, v);
			struct tls_conn *s = tls_conn_new(sc2, NULL, NULL);
			struct tls_conn *c = tls_conn_new(cc, "localhost", saved);
			T_EQ_INT(handshake(c, s, NULL), 1);
			T_EQ_INT(tls_conn_resumed(c), 0);
			tls_conn_free(c);
			tls_conn_free(s);
			tls_ctx_free(sc2);
		}

		tls_saved_free(saved);
		tls_ctx_free(cc);
		tls_ctx_free(sc);
	}
	tls_saved_free(NULL);
}

static void test_garbage(void)
{
	/* Garbage to a server waiting for a ClientHello, and to a client
	 * waiting for a ServerHello; both fail cleanly. */
	for (int side = 0; side < 2; side++) {
		for (int trial = 0; trial < 20; trial++) {
			struct tls_ctx *sc = server_ctx("data/server.pem", "data/server.key", 0, 0);
			struct tls_ctx *cc = client_ctx("data/ca.pem", 0, 0, 0);
			struct tls_conn *s = tls_conn_new(sc, NULL, NULL);
			struct tls_conn *c = tls_conn_new(cc, "localhost", NULL);
			struct tls_conn *victim = side ? c : s;
			T_EQ_INT(tls_conn_handshake(c), TLS_AGAIN);
			unsigned char junk[3000];
			size_t jl = pick(sizeof(junk));
			for (size_t i = 0; i < jl; i++)
				junk[i] = (unsigned char)rng();
			/* Half the trials look like a handshake record header. */
			if (trial % 2 && jl >= 3)
				memcpy(junk, "\x16\x03\x03", 3);
			tls_conn_feed(victim, junk, jl);
			int r = TLS_AGAIN;
			for (int i = 0; i < 100 && r == TLS_AGAIN; i++) {
				r = tls_conn_handshake(victim);
				tls_conn_feed(victim, junk, jl);
			}
			t_checks++;
			if (r != TLS_ERROR)
				T_FAIL("garbage to %s, trial %d (%zu bytes): got %d, want %d",
				       side ? "client" : "server", trial, jl, r, TLS_ERROR);
			T_TRUE(*tls_conn_errstr(victim) != '\0');
			tls_conn_free(c);
			tls_conn_free(s);
			tls_ctx_free(cc);
			tls_ctx_free(sc);
		}
	}
}

static void test_ctx_errors(void)
{
	static const struct {
		struct tls_ctx_opts o;
		const char *err;
	} t[] = {
		{ { .server = 1, .cert_file = "data/none.pem", .key_file = "data/server.key" },
		  "cannot load certificate data/none.pem" },
		{ { .server = 1, .cert_file = "data/server.pem", .key_file = "data/none.key" },
		  "cannot load key data/none.key" },
		{ { .server = 1, .cert_file = "data/server.pem" }, "needs a certificate and a key" },
		{ { .ca_file = "data/none.pem" }, "cannot load CA file data/none.pem" },
		{ { .min_version = 13, .max_version = 12 }, "bad TLS version range" },
		{ { .min_version = 11 }, "bad TLS version range" },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char err[256] = "";
		struct tls_ctx *x = tls_ctx_new(&t[i].o, err, sizeof(err));
		T_TRUE(x == NULL);
		tls_ctx_free(x);
		t_checks++;
		if (!strstr(err, t[i].err))
			T_FAIL("ctx %zu: got \"%s\", want \"%s\"", i, err, t[i].err);
	}
	tls_ctx_free(NULL);
	tls_conn_free(NULL);
}

int main(void)
{
	test_ctx_errors();
	test_versions();
	test_verify();
	test_transfer_and_close();
	test_backpressure();
	test_resume();
	test_garbage();
	return t_done("tls");
}
