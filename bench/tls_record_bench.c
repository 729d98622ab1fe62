/* tls-record-bench: the rate at which wolfSSL's TLS record layer encrypts
 * on one core, the limit this dependency sets for sending over TLS; and with
 * --sessions, the memory wolfSSL itself keeps per established client session.
 *
 *   tls-record-bench --cert F --key F [--size BYTES] [--seconds S]
 *   tls-record-bench --cert F --key F --ca F --sessions N
 *
 * A client and a server connection are handshaken in memory (pool/tls, the
 * same code and cipher preference volley uses), then the client encrypts
 * messages of --size bytes (default 100 KB) in full records for S seconds;
 * the ciphertext is dropped, nothing is decrypted. Prints one JSON object:
 * version, cipher, aead (who does the cipher's work: "libcrypto" or
 * "wolfssl"), msgs_per_s, mb_per_s (plaintext), cpu_s. --wolfssl-aead leaves
 * AES-GCM to wolfSSL as on a CPU without AES-NI, so ChaCha20-Poly1305 in
 * wolfSSL's C is chosen (pool/tls_aead.h). */
#include "bench/measure.h"
#include "pool/tls.h"

#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

/* What wolfSSL has allocated and not freed, through its allocator hooks. */
static size_t wolf_live;

static void *wolf_malloc(size_t n)
{
	void *p = malloc(n);
	if (p)
		wolf_live += malloc_usable_size(p);
	return p;
}

static void wolf_free(void *p)
{
	if (p)
		wolf_live -= malloc_usable_size(p);
	free(p);
}

static void *wolf_realloc(void *p, size_t n)
{
	size_t before = p ? malloc_usable_size(p) : 0;
	void *q = realloc(p, n);
	if (q) {
		wolf_live -= before;
		wolf_live += malloc_usable_size(q);
	} else if (n == 0) {
		wolf_live -= before;
	}
	return q;
}

/* Moves one side's ciphertext into the other. */
static void move(struct tls_conn *from, struct tls_conn *to)
{
	size_t len;
	const void *p = tls_conn_cipher_out(from, &len);
	size_t n = len ? tls_conn_feed(to, p, len) : 0;
	tls_conn_cipher_consume(from, n);
}

/* Handshakes a client conn against a fresh server conn in memory; the
 * server conn is freed. Returns 0, or -1 with the reason printed. */
static int handshake(struct tls_conn *cl, struct tls_ctx *sctx)
{
	struct tls_conn *sv = tls_conn_new(sctx, NULL, NULL);
	int cd = 0, sd = 0;
	for (int i = 0; sv && i < 100 && !(cd == 1 && sd == 1); i++) {
		cd = tls_conn_handshake(cl);
		move(cl, sv);
		sd = tls_conn_handshake(sv);
		move(sv, cl);
		if (cd == TLS_ERROR || sd == TLS_ERROR)
			break;
	}
	if (!sv || cd != 1 || sd != 1) {
		fprintf(stderr, "tls-record-bench: handshake: %s / %s\n", tls_conn_errstr(cl),
			sv ? tls_conn_errstr(sv) : "out of memory");
		tls_conn_free(sv);
		return -1;
	}
	tls_conn_free(sv);
	return 0;
}

/* --sessions: n client sessions established (certificate verified against
 * ca) and kept; prints what wolfSSL holds for each one: the growth of its
 * heap from the first half of them to all of them, so that what it holds
 * once per thread (its cache of curve points, which fills over the first
 * few dozen handshakes) is left out. */
static int measure_sessions(struct tls_ctx *cctx, struct tls_ctx *sctx, unsigned n)
{
	struct tls_conn **cl = calloc(n, sizeof *cl);
	if (!cl)
		return 2;
	int rc = 2;
	size_t half = 0;
	for (unsigned i = 0; i < n; i++) {
		cl[i] = tls_conn_new(cctx, "localhost", NULL);
		if (!cl[i] || handshake(cl[i], sctx) < 0)
			goto out;
		tls_conn_trim(cl[i]);
		if (i + 1 == n / 2)
			half = wolf_live;
	}
	double per = (double)(wolf_live - half) / (n - n / 2);
	printf("{\"sessions\":%u,\"version\":\"%s\",\"cipher\":\"%s\","
	       "\"wolfssl_bytes_per_session\":%.0f,\"wolfssl_bytes_fixed\":%.0f}\n", n,
	       tls_conn_version(cl[0]), tls_conn_cipher(cl[0]), per,
	       (double)wolf_live - per * n);
	rc = 0;
out:
	for (unsigned i = 0; i < n; i++)
		tls_conn_free(cl[i]);
	free(cl);
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "cert", required_argument, 0, 'c' },
		{ "key", required_argument, 0, 'k' },
		{ "size", required_argument, 0, 's' },
		{ "seconds", required_argument, 0, 't' },
		{ "ca", required_argument, 0, 'a' },
		{ "sessions", required_argument, 0, 'n' },
		{ "wolfssl-aead", no_argument, 0, 'w' },
		{ 0, 0, 0, 0 },
	};
	const char *cert = NULL, *key = NULL, *ca = NULL;
	unsigned sessions = 0;
	int wolfssl_aead = 0;
	size_t size = 100 * 1024;
	double seconds = 3;
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'c': cert = optarg; break;
		case 'k': key = optarg; break;
		case 's': size = strtoull(optarg, NULL, 10); break;
		case 't': seconds = atof(optarg); break;
		case 'a': ca = optarg; break;
		case 'n': sessions = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'w': wolfssl_aead = 1; break;
		default: goto usage;
		}
	}
	if (!cert || !key || size == 0 || seconds <= 0 || (sessions && (!ca || sessions < 4)))
		goto usage;
	/* Before any other wolfSSL call, so that every allocation is seen. */
	wolfSSL_SetAllocators(wolf_malloc, wolf_free, wolf_realloc);

	char err[256];
	struct tls_ctx_opts so = { .server = 1, .cert_file = cert, .key_file = key,
				   .no_aead_offload = wolfssl_aead };
	struct tls_ctx_opts co = { .insecure = !sessions, .ca_file = ca,
				   .no_aead_offload = wolfssl_aead };
	struct tls_ctx *sctx = tls_ctx_new(&so, err, sizeof err);
	struct tls_ctx *cctx = sctx ? tls_ctx_new(&co, err, sizeof err) : NULL;
	if (!cctx) {
		fprintf(stderr, "tls-record-bench: %s\n", err);
		return 2;
	}
	if (sessions) {
		int rc = measure_sessions(cctx, sctx, sessions);
		tls_ctx_free(cctx);
		tls_ctx_free(sctx);
		return rc;
	}
	struct tls_conn *cl = tls_conn_new(cctx, "localhost", NULL);
	if (!cl || handshake(cl, sctx) < 0)
		return 2;
	char *msg = malloc(size);
	if (!msg)
		return 2;
	for (size_t i = 0; i < size; i++)
		msg[i] = (char)('a' + i % 26);

	unsigned long long msgs = 0;
	double t0 = measure_mono_s(), c0 = measure_cpu_s(), t;
	do {
		size_t off = 0;
		while (off < size) {
			ssize_t w = tls_conn_write(cl, msg + off, size - off);
			if (w == TLS_AGAIN) {
				size_t len;
				tls_conn_cipher_out(cl, &len);
				tls_conn_cipher_consume(cl, len);   /* dropped: as if sent */
				continue;
			}
			if (w < 0) {
				fprintf(stderr, "tls-record-bench: %s\n", tls_conn_errstr(cl));
				return 2;
			}
			off += (size_t)w;
		}
		msgs++;
		t = measure_mono_s();
	} while (t - t0 < seconds);
	double cpu = measure_cpu_s() - c0, secs = t - t0;
	printf("{\"version\":\"%s\",\"cipher\":\"%s\",\"aead\":\"%s\",\"size\":%zu,"
	       "\"msgs_per_s\":%.1f,\"mb_per_s\":%.1f,\"cpu_s\":%.3f}\n", tls_conn_version(cl),
	       tls_conn_cipher(cl), tls_conn_aead(cl), size, msgs / secs, (double)msgs * (double)size / secs / 1e6, cpu);
	free(msg);
	tls_conn_free(cl);
	tls_ctx_free(cctx);
	tls_ctx_free(sctx);
	return 0;
usage:
	fprintf(stderr, "usage: tls-record-bench --cert F --key F [--size BYTES] [--seconds S]"
			" [--wolfssl-aead]\n"
			"       tls-record-bench --cert F --key F --ca F --sessions N\n");
	return 1;
}
