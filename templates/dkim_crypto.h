/* dkim_crypto: what DKIM takes from OpenSSL's libcrypto, SHA-256 (the body
 * hash and the header hash) and RSA signing. Not an API: shared by the
 * dkim_*.c files. It names OpenSSL's types by their struct tags only, so
 * that a file may include it beside wolfCrypt's headers (the two define
 * some of the same RSA macros).
 *
 * Why libcrypto when wolfSSL does TLS everywhere else: Debian 12's wolfSSL
 * is built without its Intel assembly, so its SHA-256 runs at about
 * 280 MB/s where libcrypto's (SHA-NI, AVX2) runs at about 1.6 GB/s, and its
 * RSA-2048 signs in about 1.7 ms where libcrypto takes about 0.26 ms; and
 * `openssl speed` is what the render benchmark's DKIM targets are measured
 * against. Ed25519 stays on wolfCrypt, which signs faster than libcrypto
 * here. */
#ifndef VOLLEY_DKIM_CRYPTO_H
#define VOLLEY_DKIM_CRYPTO_H

#include <stddef.h>
#include <sys/types.h>

#include "templates/dkim.h"

struct evp_md_st;       /* EVP_MD */
struct evp_md_ctx_st;   /* EVP_MD_CTX */

/* ---- SHA-256 (dkim_header.c) ---- */

/* SHA-256, fetched from the default provider once per process (an explicit
 * fetch: EVP_sha256() would be looked up again at every init). Returns
 * NULL when libcrypto has none. */
const struct evp_md_st *dkim_sha256(void);

/* A new hash context, or NULL; dkim_sha_free(NULL) is fine. */
struct evp_md_ctx_st *dkim_sha_new(void);
void dkim_sha_free(struct evp_md_ctx_st *ctx);

/* Starts (or restarts) ctx as SHA-256. Returns 0 or -1. */
int dkim_sha_init(struct evp_md_ctx_st *ctx);

/* Ends the hash into digest. Returns 0 or -1. */
int dkim_sha_final(struct evp_md_ctx_st *ctx, unsigned char digest[32]);

/* The header hash (see dkim_header_hash in dkim.h) through the caller's
 * context, so that signing allocates nothing per message. */
int dkim_header_hash_ctx(struct evp_md_ctx_st *ctx, const struct dkim_field *fields,
			 size_t nfields, const char *const *names, size_t nnames,
			 const char *sig, size_t siglen, unsigned char digest[32]);

/* ---- RSA (dkim_rsa.c) ---- */

/* One thread's RSA signing key. */
struct dkim_rsa;

/* Decodes a PKCS#1 RSAPrivateKey (DER) and sets up signing. Returns the
 * key, or NULL. */
struct dkim_rsa *dkim_rsa_new(const unsigned char *der, size_t len);

/* r may be NULL. */
void dkim_rsa_free(struct dkim_rsa *r);

/* RSASSA-PKCS1-v1_5 over a SHA-256 digest (libcrypto writes the
 * DigestInfo). Returns the signature's length (the modulus size), or -1. */
ssize_t dkim_rsa_sign(struct dkim_rsa *r, const unsigned char digest[32],
		      unsigned char *sig, size_t cap);

#endif
