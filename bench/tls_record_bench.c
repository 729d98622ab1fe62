/* tls-record-bench: the rate at which wolfSSL's TLS record layer encrypts
 * on one core, the limit this dependency sets for sending over TLS.
 *
 *   tls-record-bench --cert F --key F [--size BYTES] [--seconds S]
 *
 * A client and a server connection are handshaken in memory (pool/tls, the
 * same code and cipher preference volley uses), then the client encrypts
 * messages of --size bytes (default 100 KB) in full records for S seconds;
 * the ciphertext is dropped, nothing is decrypted. Prints one JSON object:
 * version, cipher, msgs_per_s, mb_per_s (plaintext), cpu_s. */
#include "bench/measure.h"
#include "pool/tls.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

/* Moves one side's ciphertext into the other. */
static void move(struct tls_conn *from, struct tls_conn *to)
{
	size_t len;
	const void *p = tls_conn_cipher_out(from, &len);
	size_t n = len ? tls_conn_feed(to, p, len) : 0;
	tls_conn_cipher_consume(from, n);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "cert", required_argument, 0, 'c' },
		{ "key", required_argument, 0, 'k' },
		{ "size", required_argument, 0, 's' },
		{ "seconds", required_argument, 0, 't' },
		{ 0, 0, 0, 0 },
	};
	const char *cert = NULL, *key = NULL;
	size_t size = 100 * 1024;
	double seconds = 3;
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'c': cert = optarg; break;
		case 'k': key = optarg; break;
		case 's': size = strtoull(optarg, NULL, 10); break;
		case 't': seconds = atof(optarg); break;
		default: goto usage;
		}
	}
	if (!cert || !key || size == 0 || seconds <= 0)
		goto usage;

	char err[256];
	struct tls_ctx_opts so = { .server = 1, .cert_file = cert, .key_file = key };
	struct tls_ctx_opts co = { .insecure = 1 };
	struct tls_ctx *sctx = tls_ctx_new(&so, err, sizeof err);
	struct tls_ctx *cctx = sctx ? tls_ctx_new(&co, err, sizeof err) : NULL;
	if (!cctx) {
		fprintf(stderr, "tls-record-bench: %s\n", err);
		return 2;
	}
	struct tls_conn *cl = tls_conn_new(cctx, "localhost", NULL);
	struct tls_conn *sv = tls_conn_new(sctx, NULL, NULL);
	int cd = 0, sd = 0;
	for (int i = 0; i < 100 && !(cd == 1 && sd == 1); i++) {
		cd = tls_conn_handshake(cl);
		move(cl, sv);
		sd = tls_conn_handshake(sv);
		move(sv, cl);
		if (cd == TLS_ERROR || sd == TLS_ERROR) {
			fprintf(stderr, "tls-record-bench: handshake: %s / %s\n",
				tls_conn_errstr(cl), tls_conn_errstr(sv));
			return 2;
		}
	}
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
	printf("{\"version\":\"%s\",\"cipher\":\"%s\",\"size\":%zu,\"msgs_per_s\":%.1f,"
	       "\"mb_per_s\":%.1f,\"cpu_s\":%.3f}\n", tls_conn_version(cl), tls_conn_cipher(cl),
	       size, msgs / secs, (double)msgs * (double)size / secs / 1e6, cpu);
	free(msg);
	tls_conn_free(cl);
	tls_conn_free(sv);
	tls_ctx_free(cctx);
	tls_ctx_free(sctx);
	return 0;
usage:
	fprintf(stderr, "usage: tls-record-bench --cert F --key F [--size BYTES] [--seconds S]\n");
	return 1;
}
