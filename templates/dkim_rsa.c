/* dkim_rsa: RSA signing with OpenSSL's libcrypto (dkim_crypto.h says why).
 * Each thread decodes its own key and context, set up once and reused for
 * every message. */
#include "templates/dkim_crypto.h"

#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdlib.h>

struct dkim_rsa {
	EVP_PKEY *key;
	EVP_PKEY_CTX *sign;     /* PKCS#1 v1.5 padding, SHA-256 digests */
};

void dkim_rsa_free(struct dkim_rsa *r)
{
	if (!r)
		return;
	EVP_PKEY_CTX_free(r->sign);
	EVP_PKEY_free(r->key);   /* libcrypto clears the key's numbers */
	free(r);
}

struct dkim_rsa *dkim_rsa_new(const unsigned char *der, size_t len)
{
	struct dkim_rsa *r = calloc(1, sizeof *r);
	const unsigned char *p = der;

	if (!r)
		return NULL;
	r->key = d2i_PrivateKey(EVP_PKEY_RSA, NULL, &p, (long)len);
	if (r->key)
		r->sign = EVP_PKEY_CTX_new(r->key, NULL);
	if (!r->sign || EVP_PKEY_sign_init(r->sign) != 1 ||
	    EVP_PKEY_CTX_set_rsa_padding(r->sign, RSA_PKCS1_PADDING) != 1 ||
	    EVP_PKEY_CTX_set_signature_md(r->sign, EVP_sha256()) != 1) {
		dkim_rsa_free(r);
		return NULL;
	}
	return r;
}

ssize_t dkim_rsa_sign(struct dkim_rsa *r, const unsigned char digest[32],
		      unsigned char *sig, size_t cap)
{
	size_t len = cap;

	if (EVP_PKEY_sign(r->sign, sig, &len, digest, 32) != 1)
		return -1;
	return (ssize_t)len;
}
