/* test_tls: a client and a server tls_conn talking to each other purely in
 * memory: a pump moves each side's ciphertext output into the other's input,
 * in random-sized pieces, so every record boundary case gets exercised. */
#include <stdint.h>
#include <stdlib.h>
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/aes.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include "pool/tls.h"
#include "pool/tls_aead.h"
#include "tests/testutil.h"
#include "tests/tls_testutil.h"

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

static int device_usable(void);

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
			/* Both sides list AES-128-GCM first when libcrypto
			 * does it, ChaCha20 first otherwise. */
			T_TRUE(strstr(tls_conn_cipher(c), device_usable() ? "AES128-GCM" : "CHACHA20") != NULL);
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
			/* Half the trials look like a handshake record header,
			 * with a length that ends the record within the junk
			 * (a longer one would rightly wait for the rest). */
			if (trial % 2 && jl >= 3)
				memcpy(junk, "\x16\x03\x03", 3);
			if (trial % 2 && jl >= 5) {
				junk[3] = (unsigned char)((jl - 5) >> 8);
				junk[4] = (unsigned char)(jl - 5);
			}
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

/* The device's AES-GCM against wolfCrypt's own (the software one wolfSSL
 * falls back to), both ways, at sizes around the block and record edges,
 * and a changed bit anywhere fails the tag and leaves no plaintext. */
static void test_aead_gcm(void)
{
	T_TRUE(wolfSSL_Init() == WOLFSSL_SUCCESS);
	int devid = tls_aead_attach();
	if (devid == INVALID_DEVID) {
		printf("tls: no AES-NI here, the AES-GCM device is off (not tested)\n");
		wolfSSL_Cleanup();
		return;
	}
	static const size_t sizes[] = { 0, 1, 15, 16, 17, 255, 4096, 16383, 16384, 16401 };
	static unsigned char pt[16401], ct[16401], back[16401];
	for (size_t k = 16; k <= 32; k += 16) {
		for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
			size_t sz = sizes[si];
			unsigned char key[32], iv[12], aad[13], tag[16], wtag[16];
			for (size_t i = 0; i < k; i++) key[i] = (unsigned char)rng();
			for (size_t i = 0; i < 12; i++) iv[i] = (unsigned char)rng();
			for (size_t i = 0; i < 13; i++) aad[i] = (unsigned char)rng();
			for (size_t i = 0; i < sz; i++) pt[i] = (unsigned char)rng();

			Aes sw;
			T_EQ_INT(wc_AesInit(&sw, NULL, INVALID_DEVID), 0);
			T_EQ_INT(wc_AesGcmSetKey(&sw, key, (word32)k), 0);
			T_EQ_INT(wc_AesGcmEncrypt(&sw, ct, pt, (word32)sz, iv, 12, wtag, 16, aad, 13), 0);

			unsigned long long ops = tls_aead_thread_ops();
			T_EQ_INT(tls_aead_gcm(1, key, k, iv, 12, aad, 13, pt, back, sz, tag, 16), 0);
			T_EQ_INT(tls_aead_thread_ops(), ops + 1);
			T_EQ_MEM(back, sz, ct, sz);
			T_EQ_MEM(tag, 16, wtag, 16);
			/* In place, as wolfSSL decrypts. */
			memcpy(back, ct, sz);
			T_EQ_INT(tls_aead_gcm(0, key, k, iv, 12, aad, 13, back, back, sz, wtag, 16), 0);
			T_EQ_MEM(back, sz, pt, sz);

			/* Through wolfSSL's own call, as its TLS code makes it. */
			Aes dev;
			T_EQ_INT(wc_AesInit(&dev, NULL, devid), 0);
			T_EQ_INT(wc_AesGcmSetKey(&dev, key, (word32)k), 0);
			ops = tls_aead_thread_ops();
			T_EQ_INT(wc_AesGcmEncrypt(&dev, back, pt, (word32)sz, iv, 12, tag, 16, aad, 13), 0);
			T_EQ_INT(tls_aead_thread_ops(), ops + 1);
			T_EQ_MEM(back, sz, ct, sz);
			T_EQ_MEM(tag, 16, wtag, 16);
			T_EQ_INT(wc_AesGcmDecrypt(&dev, back, ct, (word32)sz, iv, 12, wtag, 16, aad, 13), 0);
			T_EQ_MEM(back, sz, pt, sz);

			/* The same key again with the next IV, as a connection's
			 * next record: only the IV is set anew. */
			iv[11] ^= 1;
			T_EQ_INT(wc_AesGcmEncrypt(&sw, ct, pt, (word32)sz, iv, 12, wtag, 16, aad, 13), 0);
			T_EQ_INT(tls_aead_gcm(1, key, k, iv, 12, aad, 13, pt, back, sz, tag, 16), 0);
			T_EQ_INT(tls_aead_gcm(1, key, k, iv, 12, aad, 13, pt, back, sz, tag, 16), 0);
			T_EQ_MEM(back, sz, ct, sz);
			T_EQ_MEM(tag, 16, wtag, 16);

			/* A flipped bit in the ciphertext, the tag or the
			 * additional data. */
			for (int what = 0; what < 3; what++) {
				if (what == 0 && sz == 0)
					continue;
				unsigned char c2[16401], t2[16], a2[13];
				memcpy(c2, ct, sz);
				memcpy(t2, wtag, 16);
				memcpy(a2, aad, 13);
				if (what == 0) c2[rng() % sz] ^= 0x10;
				if (what == 1) t2[rng() % 16] ^= 0x01;
				if (what == 2) a2[rng() % 13] ^= 0x80;
				memset(back, 0x5a, sz);
				T_EQ_INT(tls_aead_gcm(0, key, k, iv, 12, a2, 13, c2, back, sz, t2, 16), -1);
				size_t nonzero = 0;
				for (size_t i = 0; i < sz; i++)
					nonzero += back[i] != 0;
				T_EQ_INT(nonzero, 0);
				T_EQ_INT(wc_AesGcmDecrypt(&dev, back, c2, (word32)sz, iv, 12, t2, 16, a2, 13),
					 AES_GCM_AUTH_E);
			}
			wc_AesFree(&sw);
			wc_AesFree(&dev);
		}
	}
	/* Sizes the device does not take: an IV that is not 96 bits, a short
	 * tag, a key of another length. */
	unsigned char key[32] = { 1 }, iv[16] = { 2 }, tag[16], buf[32] = { 3 };
	T_EQ_INT(tls_aead_gcm(1, key, 16, iv, 16, NULL, 0, buf, buf, 32, tag, 16), -1);
	T_EQ_INT(tls_aead_gcm(1, key, 16, iv, 12, NULL, 0, buf, buf, 32, tag, 8), -1);
	T_EQ_INT(tls_aead_gcm(1, key, 20, iv, 12, NULL, 0, buf, buf, 32, tag, 16), -1);
	/* ... which wolfSSL then does itself. */
	Aes dev, sw;
	unsigned char tag2[16], out1[32], out2[32];
	T_EQ_INT(wc_AesInit(&dev, NULL, devid), 0);
	T_EQ_INT(wc_AesInit(&sw, NULL, INVALID_DEVID), 0);
	T_EQ_INT(wc_AesGcmSetKey(&dev, key, 16), 0);
	T_EQ_INT(wc_AesGcmSetKey(&sw, key, 16), 0);
	unsigned long long ops = tls_aead_thread_ops();
	T_EQ_INT(wc_AesGcmEncrypt(&dev, out1, buf, 32, iv, 16, tag, 16, NULL, 0), 0);
	T_EQ_INT(tls_aead_thread_ops(), ops);
	T_EQ_INT(wc_AesGcmEncrypt(&sw, out2, buf, 32, iv, 16, tag2, 16, NULL, 0), 0);
	T_EQ_MEM(out1, 32, out2, 32);
	T_EQ_MEM(tag, 16, tag2, 16);
	wc_AesFree(&dev);
	wc_AesFree(&sw);
	tls_aead_detach();
	wolfSSL_Cleanup();
}

/* Whether this machine has the AES-GCM device (a CPU with AES-NI). */
static int device_usable(void)
{
	if (wolfSSL_Init() != WOLFSSL_SUCCESS)
		return 0;
	int usable = tls_aead_attach() != INVALID_DEVID;
	if (usable)
		tls_aead_detach();
	wolfSSL_Cleanup();
	return usable;
}

/* A server whose AES-GCM is libcrypto's talks to a client whose AES-GCM is
 * wolfSSL's, on TLS 1.2 and 1.3: the records agree both ways, and the
 * device did the server's work. (The server lists AES-128-GCM first, and
 * wolfSSL's server picks by its own order.) */
static void test_aead_interop(void)
{
	if (!device_usable())
		return;
	for (int v = 12; v <= 13; v++) {
		struct tls_ctx_opts so = { .server = 1, .cert_file = "data/server.pem",
					   .key_file = "data/server.key", .max_version = v };
		struct tls_ctx_opts co = { .ca_file = "data/ca.pem", .max_version = v,
					   .no_aead_offload = 1 };
		struct tls_ctx *sc = ctx_or_die(&so), *cc = ctx_or_die(&co);
		struct tls_conn *s = tls_conn_new(sc, NULL, NULL);
		struct tls_conn *c = tls_conn_new(cc, "localhost", NULL);
		T_EQ_INT(handshake(c, s, NULL), 1);
		T_TRUE(strstr(tls_conn_cipher(c), "AES128-GCM") != NULL);
		T_EQ_STR(tls_conn_aead(s), "libcrypto");
		T_EQ_STR(tls_conn_aead(c), "wolfssl");
		unsigned long long ops = tls_aead_thread_ops();
		transfer(c, s, 1 << 20);
		/* Every record the server sent or read: 64 of 16 KB each way. */
		T_TRUE(tls_aead_thread_ops() >= ops + 2 * ((1 << 20) / 16384));
		tls_conn_free(c);
		tls_conn_free(s);
		tls_ctx_free(cc);
		tls_ctx_free(sc);
	}
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
	test_aead_gcm();
	test_aead_interop();
	return t_done("tls");
}
