/* tls_aead: AES-GCM for wolfSSL's records through libcrypto (see tls_aead.h).
 *
 * wolfSSL keeps the raw key of an Aes handed to a device in Aes.devKey (and
 * sets up its own software key beside it, so anything this device declines
 * falls back to wolfSSL). wolfSSL 5.5 tells a device nothing when an Aes is
 * freed, so nothing is kept per key here: a call uses one libcrypto context
 * per thread and key size, and sets its key only when it differs from the
 * last call's (600 ns here; the IV alone takes 250 ns, and a 16 KB
 * record 4 us). */
#include "pool/tls_aead.h"

#include <limits.h>
#include <pthread.h>
#include <string.h>
#if defined(__aarch64__)
#include <sys/auxv.h>
#endif

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/aes.h>
#include <wolfssl/wolfcrypt/cryptocb.h>
#include <wolfssl/wolfcrypt/error-crypt.h>

/* Any id not used by another device of the process: "VOLL". */
#define TLS_AEAD_DEVID 0x564f4c4c

#define GCM_IV_LEN   12
#define GCM_TAG_MAX  16
#define GCM_TAG_MIN  12   /* TLS uses 16; shorter tags are not for us */

/* AES-128, -192 and -256 GCM, fetched once. */
static EVP_CIPHER *gcm_cipher[3];

/* This thread's contexts, one per key size: a context keeps its cipher,
 * and the key and direction it last had (a connection's records of a
 * message come one after another), so a call sets the IV only, or key and
 * IV. */
struct gcm_slot {
	EVP_CIPHER_CTX *ctx;
	int enc;
	unsigned char key[32];
};
static __thread struct gcm_slot gcm_slot[3];
static __thread unsigned long long gcm_ops;

static int key_index(size_t key_len)
{
	switch (key_len) {
	case 16: return 0;
	case 24: return 1;
	case 32: return 2;
	default: return -1;
	}
}

static struct gcm_slot *thread_slot(size_t key_len)
{
	int i = key_index(key_len);
	if (i < 0 || !gcm_cipher[i])
		return NULL;
	struct gcm_slot *sl = &gcm_slot[i];
	if (!sl->ctx) {
		EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
		if (!x)
			return NULL;
		if (EVP_CipherInit_ex2(x, gcm_cipher[i], NULL, NULL, 1, NULL) != 1) {
			EVP_CIPHER_CTX_free(x);
			return NULL;
		}
		sl->ctx = x;
		sl->enc = -1;   /* no key yet */
	}
	return sl;
}

/* Gives sl's context this key, direction and IV, setting the key only when
 * it changed. */
static int slot_start(struct gcm_slot *sl, int enc, const unsigned char *key, size_t key_len,
		      const unsigned char *iv)
{
	if (sl->enc == enc && CRYPTO_memcmp(sl->key, key, key_len) == 0)
		return EVP_CipherInit_ex2(sl->ctx, NULL, NULL, iv, enc, NULL) == 1 ? 0 : -1;
	sl->enc = -1;
	if (EVP_CipherInit_ex2(sl->ctx, NULL, key, iv, enc, NULL) != 1)
		return -1;
	memcpy(sl->key, key, key_len);
	sl->enc = enc;
	return 0;
}

unsigned long long tls_aead_thread_ops(void)
{
	return gcm_ops;
}

void tls_aead_thread_done(void)
{
	for (int i = 0; i < 3; i++) {
		EVP_CIPHER_CTX_free(gcm_slot[i].ctx);
		OPENSSL_cleanse(&gcm_slot[i], sizeof(gcm_slot[i]));
	}
}

static int sizes_ok(size_t key_len, size_t iv_len, size_t aad_len, size_t sz, size_t tag_len)
{
	return key_index(key_len) >= 0 && iv_len == GCM_IV_LEN &&
	       tag_len >= GCM_TAG_MIN && tag_len <= GCM_TAG_MAX &&
	       aad_len <= INT_MAX && sz <= INT_MAX;
}

int tls_aead_gcm(int enc, const unsigned char *key, size_t key_len,
		 const unsigned char *iv, size_t iv_len,
		 const unsigned char *aad, size_t aad_len,
		 const unsigned char *in, unsigned char *out, size_t sz,
		 unsigned char *tag, size_t tag_len)
{
	struct gcm_slot *sl = sizes_ok(key_len, iv_len, aad_len, sz, tag_len) ? thread_slot(key_len) : NULL;
	unsigned char tail[EVP_MAX_BLOCK_LENGTH];
	int n;
	if (!sl || slot_start(sl, enc ? 1 : 0, key, key_len, iv) < 0)
		goto fail;
	EVP_CIPHER_CTX *x = sl->ctx;
	if (aad_len && EVP_CipherUpdate(x, NULL, &n, aad, (int)aad_len) != 1)
		goto fail;
	if (sz && EVP_CipherUpdate(x, out, &n, in, (int)sz) != 1)
		goto fail;
	/* The tag is checked in Final; libcrypto copies it. */
	if (!enc && EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_SET_TAG, (int)tag_len, tag) != 1)
		goto fail;
	if (EVP_CipherFinal_ex(x, tail, &n) != 1)
		goto fail;
	if (enc && EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_GET_TAG, (int)tag_len, tag) != 1)
		goto fail;
	gcm_ops++;
	return 0;
fail:
	/* A record that failed its tag was decrypted all the same: leave none
	 * of its unauthenticated plaintext behind. */
	if (out && sz)
		OPENSSL_cleanse(out, sz);
	return -1;
}

/* One operation handed over by wolfSSL; a size this device does not take
 * goes back to wolfSSL (which set up its own key beside devKey). */
static int device_gcm(int enc, const Aes *aes, unsigned char *out, const unsigned char *in,
		      word32 sz, const unsigned char *iv, word32 iv_len, unsigned char *tag,
		      word32 tag_len, const unsigned char *aad, word32 aad_len)
{
	size_t key_len = (size_t)aes->keylen;
	if (!sizes_ok(key_len, iv_len, aad_len, sz, tag_len))
		return CRYPTOCB_UNAVAILABLE;
	if (tls_aead_gcm(enc, (const unsigned char *)aes->devKey, key_len, iv, iv_len, aad,
			 aad_len, in, out, sz, tag, tag_len) == 0)
		return 0;
	return enc ? WC_HW_E : AES_GCM_AUTH_E;
}

/* wolfSSL's view: AES-GCM is ours, everything else is declined and done by
 * wolfSSL itself. */
static int device_cb(int devid, wc_CryptoInfo *info, void *arg)
{
	(void)devid;
	(void)arg;
	if (info->algo_type != WC_ALGO_TYPE_CIPHER || info->cipher.type != WC_CIPHER_AES_GCM)
		return CRYPTOCB_UNAVAILABLE;
	if (info->cipher.enc) {
		const __typeof__(info->cipher.aesgcm_enc) *e = &info->cipher.aesgcm_enc;
		return device_gcm(1, e->aes, e->out, e->in, e->sz, e->iv, e->ivSz, e->authTag,
				  e->authTagSz, e->authIn, e->authInSz);
	}
	const __typeof__(info->cipher.aesgcm_dec) *d = &info->cipher.aesgcm_dec;
	return device_gcm(0, d->aes, d->out, d->in, d->sz, d->iv, d->ivSz, (unsigned char *)d->authTag,
			  d->authTagSz, d->authIn, d->authInSz);
}

/* Whether the CPU has what makes libcrypto's AES-GCM fast and constant-time;
 * without it ChaCha20-Poly1305 in wolfSSL is the better suite. */
static int cpu_has_aes_clmul(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_cpu_init();
	return __builtin_cpu_supports("aes") && __builtin_cpu_supports("pclmul");
#elif defined(__aarch64__)
	unsigned long hw = getauxval(AT_HWCAP);
	return (hw & HWCAP_AES) && (hw & HWCAP_PMULL);
#else
	return 0;
#endif
}

/* Whether the device can be used at all: the CPU's instructions, and
 * libcrypto's ciphers (fetched once, kept for the process). */
static int usable;
static pthread_once_t usable_once = PTHREAD_ONCE_INIT;

static void check_usable(void)
{
	static const char *const names[3] = { "AES-128-GCM", "AES-192-GCM", "AES-256-GCM" };
	if (!cpu_has_aes_clmul())
		return;
	for (int i = 0; i < 3; i++)
		gcm_cipher[i] = EVP_CIPHER_fetch(NULL, names[i], NULL);
	/* The suites volley offers use 128- and 256-bit keys. */
	usable = gcm_cipher[0] && gcm_cipher[2];
}

/* wolfCrypt_Init empties wolfSSL's table of devices whenever its count of
 * users comes back from zero, so the device is registered while it has
 * users of its own and taken out when the last one leaves. */
static pthread_mutex_t attach_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned attached;

int tls_aead_attach(void)
{
	pthread_once(&usable_once, check_usable);
	if (!usable)
		return INVALID_DEVID;
	pthread_mutex_lock(&attach_lock);
	int ok = attached > 0 || wc_CryptoCb_RegisterDevice(TLS_AEAD_DEVID, device_cb, NULL) == 0;
	if (ok)
		attached++;
	pthread_mutex_unlock(&attach_lock);
	return ok ? TLS_AEAD_DEVID : INVALID_DEVID;
}

void tls_aead_detach(void)
{
	pthread_mutex_lock(&attach_lock);
	if (attached > 0 && --attached == 0)
		wc_CryptoCb_UnRegisterDevice(TLS_AEAD_DEVID);
	pthread_mutex_unlock(&attach_lock);
}
