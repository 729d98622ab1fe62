/* dkim_key: DKIM private keys. PEM is parsed once (wolfCrypt) into a
 * struct dkim_key holding the key in a compact form (PKCS#1 DER for RSA, the
 * seed and public key for Ed25519); each thread then decodes its own
 * struct dkim_key_ctx from it, since key objects carry per-operation state.
 *
 * RSA signs with OpenSSL's libcrypto, Ed25519 with wolfCrypt: Debian 12's
 * wolfSSL has no assembly and signs RSA-2048 in about 1.7 ms where
 * libcrypto takes about 0.26 ms, while its Ed25519 is faster than
 * libcrypto's here (see dkim_crypto.h). Loading, generating and writing keys
 * stay on wolfCrypt, and the load-time test signature made by libcrypto is
 * verified by wolfCrypt.
 *
 * Key material is wiped wherever a copy ends, and no error message quotes
 * it. */
#include "templates/dkim.h"
#include "templates/dkim_crypto.h"
#include "pool/sasl.h"   /* base64 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ed25519.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/wolfcrypt/rsa.h>

#if !defined(HAVE_ED25519) || !defined(HAVE_ED25519_SIGN) || !defined(WOLFSSL_KEY_GEN)
#error "volley's DKIM needs wolfSSL built with Ed25519 and key generation"
#endif

#define KEY_FILE_MAX 65536          /* a PEM key is a few KiB at most */
#define RSA_DER_MAX  2600           /* PKCS#1 DER of a 4096-bit key, with room */
#define ED_LEN       ED25519_KEY_SIZE

struct dkim_key {
	enum dkim_alg alg;
	unsigned bits;
	size_t der_len;                    /* RSA: PKCS#1 RSAPrivateKey */
	unsigned char der[RSA_DER_MAX];
	unsigned char seed[ED_LEN];        /* Ed25519: the private key (RFC 8032's seed) */
	unsigned char pub[ED_LEN];         /* and the public key derived from it */
};

struct dkim_key_ctx {
	enum dkim_alg alg;
	struct dkim_rsa *rsa;              /* libcrypto: RSA */
	int ed_ready;
	ed25519_key ed;                    /* wolfCrypt: Ed25519 */
};

/* RFC 8017 9.2, note 1: the DER prefix of a SHA-256 DigestInfo. */
static const unsigned char sha256_digest_info[19] = {
	0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
	0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20,
};

static void set_err(char *err, size_t errlen, const char *what, int code)
{
	if (code)
		snprintf(err, errlen, "%s (wolfCrypt error %d)", what, code);
	else
		snprintf(err, errlen, "%s", what);
}

void dkim_key_free(struct dkim_key *k)
{
	if (!k)
		return;
	explicit_bzero(k, sizeof *k);
	free(k);
}

enum dkim_alg dkim_key_alg(const struct dkim_key *k)
{
	return k->alg;
}

unsigned dkim_key_bits(const struct dkim_key *k)
{
	return k->bits;
}

/* Fills k from a decoded RSA key: its size, and PKCS#1 DER. */
static int keep_rsa(struct dkim_key *k, RsaKey *rsa, char *err, size_t errlen)
{
	int size = wc_RsaEncryptSize(rsa);
	if (size <= 0 || size * 8 < DKIM_RSA_MIN_BITS || size * 8 > DKIM_RSA_MAX_BITS) {
		snprintf(err, errlen, "an RSA key of %d bits: DKIM wants %d to %d", size * 8,
			 DKIM_RSA_MIN_BITS, DKIM_RSA_MAX_BITS);
		return -1;
	}
	int n = wc_RsaKeyToDer(rsa, k->der, sizeof k->der);
	if (n <= 0) {
		set_err(err, errlen, "cannot encode the RSA key", n);
		return -1;
	}
	k->alg = DKIM_RSA_SHA256;
	k->bits = (unsigned)size * 8;
	k->der_len = (size_t)n;
	return 0;
}

/* Fills k from a decoded Ed25519 private key, deriving its public key (a
 * PKCS#8 file from openssl carries only the seed, and wolfCrypt needs both
 * to sign). */
static int keep_ed25519(struct dkim_key *k, ed25519_key *ed, char *err, size_t errlen)
{
	word32 len = sizeof k->seed;
	int r = wc_ed25519_export_private_only(ed, k->seed, &len);
	if (r == 0 && len == ED_LEN)
		r = wc_ed25519_make_public(ed, k->pub, sizeof k->pub);
	if (r != 0 || len != ED_LEN) {
		set_err(err, errlen, "cannot read the Ed25519 key", r);
		return -1;
	}
	k->alg = DKIM_ED25519_SHA256;
	k->bits = 256;
	return 0;
}

/* A signature made and checked once at load: a key file whose parts do not
 * belong together would otherwise sign every message wrongly. */
static int self_test(const struct dkim_key *k, char *err, size_t errlen)
{
	static const unsigned char digest[32] = { 'v', 'o', 'l', 'l', 'e', 'y' };
	unsigned char sig[DKIM_SIG_MAX_BYTES], out[64];
	struct dkim_key_ctx *c = dkim_key_ctx_new(k, err, errlen);
	if (!c)
		return -1;
	int ok = 0;
	ssize_t n = dkim_key_ctx_sign(c, digest, sig, sizeof sig);
	if (n > 0 && k->alg == DKIM_RSA_SHA256) {
		RsaKey rsa;
		word32 idx = 0;
		if (wc_InitRsaKey(&rsa, NULL) == 0) {
			int m = wc_RsaPrivateKeyDecode(k->der, &idx, &rsa, (word32)k->der_len) == 0
					? wc_RsaSSL_Verify(sig, (word32)n, out, sizeof out, &rsa) : -1;
			ok = m == (int)(sizeof sha256_digest_info + 32) &&
			     memcmp(out, sha256_digest_info, sizeof sha256_digest_info) == 0 &&
			     memcmp(out + sizeof sha256_digest_info, digest, 32) == 0;
			wc_FreeRsaKey(&rsa);
		}
	} else if (n > 0) {
		int res = 0;
		ok = wc_ed25519_verify_msg(sig, (word32)n, digest, 32, &res, &c->ed) == 0 && res == 1;
	}
	dkim_key_ctx_free(c);
	if (!ok)
		snprintf(err, errlen, "the key fails a test signature: its parts do not match");
	return ok ? 0 : -1;
}

/* Ends the making of k, which failed already when r < 0: returns it once it
 * passes the test signature, or frees it and returns NULL. */
static struct dkim_key *finish_key(struct dkim_key *k, int r, char *err, size_t errlen)
{
	if (r == 0)
		r = self_test(k, err, errlen);
	if (r < 0) {
		dkim_key_free(k);
		return NULL;
	}
	return k;
}

/* Fills k from a DER private key: RSA (PKCS#1 or PKCS#8), else Ed25519. */
static int decode_der(struct dkim_key *k, const unsigned char *der, word32 len, char *err, size_t errlen)
{
	RsaKey rsa;
	ed25519_key ed;
	word32 idx = 0;
	int r;

	if ((r = wc_InitRsaKey(&rsa, NULL)) != 0) {
		set_err(err, errlen, "cannot decode the key", r);
		return -1;
	}
	int is_rsa = wc_RsaPrivateKeyDecode(der, &idx, &rsa, len) == 0;
	int ok = is_rsa ? keep_rsa(k, &rsa, err, errlen) : -1;
	wc_FreeRsaKey(&rsa);
	if (is_rsa)
		return ok;
	if ((r = wc_ed25519_init(&ed)) != 0) {
		set_err(err, errlen, "cannot decode the key", r);
		return -1;
	}
	idx = 0;
	int is_ed = wc_Ed25519PrivateKeyDecode(der, &idx, &ed, len) == 0;
	ok = is_ed ? keep_ed25519(k, &ed, err, errlen) : -1;
	wc_ed25519_free(&ed);
	if (!is_ed)
		snprintf(err, errlen, "neither an RSA nor an Ed25519 private key");
	return ok;
}

struct dkim_key *dkim_key_from_pem(const char *pem, size_t len, char *err, size_t errlen)
{
	if (!pem || len == 0 || len > KEY_FILE_MAX || !memmem(pem, len, "-----BEGIN ", 11)) {
		snprintf(err, errlen, "no PEM key found");
		return NULL;
	}
	if (memmem(pem, len, "ENCRYPTED", 9)) {
		snprintf(err, errlen, "an encrypted private key: decrypt it first (openssl pkey -in KEY -out PLAIN)");
		return NULL;
	}
	if (!memmem(pem, len, "PRIVATE KEY-----", 16)) {
		snprintf(err, errlen, "no private key in the PEM (a public key or a certificate?)");
		return NULL;
	}
	struct dkim_key *k = calloc(1, sizeof *k);
	unsigned char *der = malloc(len);
	if (!k || !der) {
		snprintf(err, errlen, "out of memory");
		free(k);
		free(der);
		return NULL;
	}
	int der_len = wc_KeyPemToDer((const unsigned char *)pem, (int)len, der, (int)len, NULL);
	int r = -1;
	if (der_len <= 0)
		set_err(err, errlen, "the PEM private key does not decode", der_len);
	else
		r = decode_der(k, der, (word32)der_len, err, errlen);
	explicit_bzero(der, len);
	free(der);
	return finish_key(k, r, err, errlen);
}

struct dkim_key *dkim_key_load(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	char *buf = malloc(KEY_FILE_MAX + 1);
	if (!buf) {
		fclose(f);
		snprintf(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	size_t n = fread(buf, 1, KEY_FILE_MAX + 1, f);
	int bad = ferror(f);
	fclose(f);
	struct dkim_key *k = NULL;
	if (bad) {
		snprintf(err, errlen, "%s: read error", path);
	} else if (n > KEY_FILE_MAX) {
		snprintf(err, errlen, "%s: larger than %d bytes: not a key", path, KEY_FILE_MAX);
	} else {
		char why[200] = "";
		k = dkim_key_from_pem(buf, n, why, sizeof why);
		if (!k)
			snprintf(err, errlen, "%s: %s", path, why);
	}
	explicit_bzero(buf, KEY_FILE_MAX + 1);
	free(buf);
	return k;
}

static int generate_rsa(struct dkim_key *k, unsigned bits, WC_RNG *rng, char *err, size_t errlen)
{
	RsaKey rsa;
	int ok = -1, r = wc_InitRsaKey(&rsa, NULL);

	if (r == 0) {
		r = wc_MakeRsaKey(&rsa, (int)bits, WC_RSA_EXPONENT, rng);
		/* wolfCrypt rounds sizes it cannot make down: say so */
		if (r == 0 && (unsigned)wc_RsaEncryptSize(&rsa) * 8 != bits)
			snprintf(err, errlen, "asked for %u bits, got %d", bits, wc_RsaEncryptSize(&rsa) * 8);
		else if (r == 0)
			ok = keep_rsa(k, &rsa, err, errlen);
		wc_FreeRsaKey(&rsa);
	}
	if (r != 0)
		set_err(err, errlen, "RSA key generation failed", r);
	return ok;
}

static int generate_ed25519(struct dkim_key *k, WC_RNG *rng, char *err, size_t errlen)
{
	ed25519_key ed;
	int ok = -1, r = wc_ed25519_init(&ed);

	if (r == 0) {
		r = wc_ed25519_make_key(rng, ED_LEN, &ed);
		if (r == 0)
			ok = keep_ed25519(k, &ed, err, errlen);
		wc_ed25519_free(&ed);
	}
	if (r != 0)
		set_err(err, errlen, "Ed25519 key generation failed", r);
	return ok;
}

struct dkim_key *dkim_key_generate(enum dkim_alg alg, unsigned bits, char *err, size_t errlen)
{
	if (alg == DKIM_RSA_SHA256 &&
	    (bits < DKIM_RSA_MIN_BITS || bits > DKIM_RSA_MAX_BITS || bits % 128 != 0)) {
		snprintf(err, errlen, "RSA keys of %d to %d bits, a multiple of 128, are made here",
			 DKIM_RSA_MIN_BITS, DKIM_RSA_MAX_BITS);
		return NULL;
	}
	if (alg != DKIM_RSA_SHA256 && alg != DKIM_ED25519_SHA256) {
		snprintf(err, errlen, "unknown key type");
		return NULL;
	}
	struct dkim_key *k = calloc(1, sizeof *k);
	WC_RNG rng;
	int r = k ? wc_InitRng(&rng) : -1;
	if (!k || r != 0) {
		set_err(err, errlen, k ? "cannot start the random generator" : "out of memory", k ? r : 0);
		free(k);
		return NULL;
	}
	int ok = alg == DKIM_RSA_SHA256 ? generate_rsa(k, bits, &rng, err, errlen)
				       : generate_ed25519(k, &rng, err, errlen);
	wc_FreeRng(&rng);
	return finish_key(k, ok, err, errlen);
}

ssize_t dkim_key_to_pem(const struct dkim_key *k, char *out, size_t cap)
{
	unsigned char pkcs8[RSA_DER_MAX + 64];
	word32 len = sizeof pkcs8;
	int r;

	if (k->alg == DKIM_RSA_SHA256) {
		unsigned char der[RSA_DER_MAX];
		memcpy(der, k->der, k->der_len);   /* wolfCrypt's prototype takes it non-const */
		r = wc_CreatePKCS8Key(pkcs8, &len, der, (word32)k->der_len, RSAk, NULL, 0);
		explicit_bzero(der, sizeof der);
	} else {
		ed25519_key ed;
		r = wc_ed25519_init(&ed);
		if (r == 0)
			r = wc_ed25519_import_private_key(k->seed, ED_LEN, k->pub, ED_LEN, &ed);
		if (r == 0) {
			r = wc_Ed25519PrivateKeyToDer(&ed, pkcs8, len);
			if (r > 0)
				len = (word32)r;
		}
		wc_ed25519_free(&ed);
	}
	ssize_t n = -1;
	if (r > 0 && cap <= UINT32_MAX) {
		int m = wc_DerToPem(pkcs8, len, (byte *)out, (word32)cap, PKCS8_PRIVATEKEY_TYPE);
		if (m > 0 && (size_t)m < cap) {
			out[m] = 0;
			n = m;
		}
	}
	explicit_bzero(pkcs8, sizeof pkcs8);
	return n;
}

ssize_t dkim_key_txt(const struct dkim_key *k, char *out, size_t cap)
{
	unsigned char spki[RSA_DER_MAX];
	const unsigned char *pub = k->pub;
	size_t pub_len = ED_LEN;

	if (k->alg == DKIM_RSA_SHA256) {
		RsaKey rsa;
		word32 idx = 0;
		int r = wc_InitRsaKey(&rsa, NULL);
		if (r != 0)
			return -1;
		r = wc_RsaPrivateKeyDecode(k->der, &idx, &rsa, (word32)k->der_len);
		if (r == 0)
			r = wc_RsaKeyToPublicDer(&rsa, spki, sizeof spki);
		wc_FreeRsaKey(&rsa);
		if (r <= 0)
			return -1;
		pub = spki;
		pub_len = (size_t)r;
	}
	int n = snprintf(out, cap, "v=DKIM1; k=%s; p=", k->alg == DKIM_RSA_SHA256 ? "rsa" : "ed25519");
	if (n < 0 || (size_t)n >= cap)
		return -1;
	ssize_t m = sasl_b64_encode(pub, pub_len, out + n, cap - (size_t)n);
	if (m < 0 || (size_t)n + (size_t)m >= cap)
		return -1;
	out[n + m] = 0;
	return n + m;
}

/* ---- one thread's signing copy ------------------------------------------- */

void dkim_key_ctx_free(struct dkim_key_ctx *c)
{
	if (!c)
		return;
	dkim_rsa_free(c->rsa);
	if (c->ed_ready)
		wc_ed25519_free(&c->ed);
	explicit_bzero(c, sizeof *c);
	free(c);
}

struct dkim_key_ctx *dkim_key_ctx_new(const struct dkim_key *k, char *err, size_t errlen)
{
	struct dkim_key_ctx *c = calloc(1, sizeof *c);
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->alg = k->alg;
	int r = 0;
	if (k->alg == DKIM_RSA_SHA256) {
		c->rsa = dkim_rsa_new(k->der, k->der_len);
		if (!c->rsa) {
			snprintf(err, errlen, "cannot prepare the RSA key for signing (libcrypto)");
			dkim_key_ctx_free(c);
			return NULL;
		}
	} else {
		if ((r = wc_ed25519_init(&c->ed)) != 0)
			goto fail;
		c->ed_ready = 1;
		if ((r = wc_ed25519_import_private_key(k->seed, ED_LEN, k->pub, ED_LEN, &c->ed)) != 0)
			goto fail;
	}
	return c;
fail:
	set_err(err, errlen, "cannot prepare the key for signing", r);
	dkim_key_ctx_free(c);
	return NULL;
}

ssize_t dkim_key_ctx_sign(struct dkim_key_ctx *c, const unsigned char digest[32],
			  unsigned char *sig, size_t cap)
{
	if (c->alg == DKIM_RSA_SHA256)
		return dkim_rsa_sign(c->rsa, digest, sig, cap);
	word32 len = cap > UINT32_MAX ? UINT32_MAX : (word32)cap;
	int r = wc_ed25519_sign_msg(digest, 32, sig, &len, &c->ed);
	return r == 0 ? (ssize_t)len : -1;
}
