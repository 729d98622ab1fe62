/* sink_cert: a self-signed certificate, generated. See sink_cert.h.
 * Debian's wolfSSL is built with WOLFSSL_CERT_GEN and WOLFSSL_ALT_NAMES,
 * which this needs. */
#include "bench/sink_cert.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/random.h>

#if !defined(WOLFSSL_CERT_GEN) || !defined(WOLFSSL_ALT_NAMES)
#error "volley sink needs wolfSSL built with WOLFSSL_CERT_GEN and WOLFSSL_ALT_NAMES"
#endif

#define CERT_DER_MAX 4096
#define CERT_PEM_MAX 8192

/* GeneralNames: dNSName "localhost", iPAddress 127.0.0.1 (DER). */
static const unsigned char alt_names[] = {
	0x30, 0x11,
	0x82, 0x09, 'l', 'o', 'c', 'a', 'l', 'h', 'o', 's', 't',
	0x87, 0x04, 127, 0, 0, 1,
};

static int write_file(const char *dir, const char *name, const void *p, size_t n, int mode,
		      char *err, size_t errlen)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0) {
		snprintf(err, errlen, "%s: cannot create", path);
		return -1;
	}
	ssize_t w = write(fd, p, n);
	if (close(fd) != 0 || w != (ssize_t)n) {
		snprintf(err, errlen, "%s: cannot write", path);
		return -1;
	}
	return 0;
}

int sink_cert_generate(const char *dir, char *err, size_t errlen)
{
	WC_RNG rng;
	ecc_key key;
	Cert cert;
	static unsigned char der[CERT_DER_MAX], pem[CERT_PEM_MAX];
	int ret = -1, have_rng = 0, have_key = 0;

	if (wc_InitRng(&rng) != 0) {
		snprintf(err, errlen, "cannot seed the random generator");
		return -1;
	}
	have_rng = 1;
	if (wc_ecc_init(&key) != 0) {
		snprintf(err, errlen, "cannot make a key");
		goto out;
	}
	have_key = 1;
	if (wc_ecc_make_key(&rng, 32, &key) != 0) {
		snprintf(err, errlen, "cannot make a P-256 key");
		goto out;
	}
	int n = wc_EccKeyToDer(&key, der, sizeof der);
	int p = n > 0 ? wc_DerToPem(der, (word32)n, pem, sizeof pem, ECC_PRIVATEKEY_TYPE) : -1;
	if (p <= 0) {
		snprintf(err, errlen, "cannot encode the key");
		goto out;
	}
	if (write_file(dir, "key.pem", pem, (size_t)p, 0600, err, errlen) < 0)
		goto out;

	if (wc_InitCert(&cert) != 0) {
		snprintf(err, errlen, "cannot start a certificate");
		goto out;
	}
	strncpy(cert.subject.commonName, "localhost", CTC_NAME_SIZE - 1);
	strncpy(cert.subject.org, "volley sink (self-signed)", CTC_NAME_SIZE - 1);
	cert.isCA = 1;
	cert.daysValid = 30;
	cert.sigType = CTC_SHA256wECDSA;
	memcpy(cert.altNames, alt_names, sizeof alt_names);
	cert.altNamesSz = (int)sizeof alt_names;
#ifdef WOLFSSL_CERT_EXT
	if (wc_SetSubjectKeyIdFromPublicKey_ex(&cert, ECC_TYPE, &key) != 0 ||
	    wc_SetAuthKeyIdFromPublicKey_ex(&cert, ECC_TYPE, &key) != 0 ||
	    wc_SetKeyUsage(&cert, "digitalSignature,keyCertSign") != 0) {
		snprintf(err, errlen, "cannot set the certificate's extensions");
		goto out;
	}
#endif
	n = wc_MakeCert_ex(&cert, der, sizeof der, ECC_TYPE, &key, &rng);
	if (n > 0)
		n = wc_SignCert_ex(cert.bodySz, cert.sigType, der, sizeof der, ECC_TYPE, &key, &rng);
	p = n > 0 ? wc_DerToPem(der, (word32)n, pem, sizeof pem, CERT_TYPE) : -1;
	if (p <= 0) {
		snprintf(err, errlen, "cannot make the certificate (%d)", n);
		goto out;
	}
	if (write_file(dir, "cert.pem", pem, (size_t)p, 0644, err, errlen) < 0)
		goto out;
	ret = 0;
out:
	if (have_key)
		wc_ecc_free(&key);
	if (have_rng)
		wc_FreeRng(&rng);
#ifdef FP_ECC
	wc_ecc_fp_free();   /* this thread's fixed-point cache, filled by the signing */
#endif
	explicit_bzero(pem, sizeof pem);   /* they held the private key */
	explicit_bzero(der, sizeof der);
	return ret;
}
