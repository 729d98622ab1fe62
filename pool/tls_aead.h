/* tls_aead: the AES-GCM of TLS records done by OpenSSL's libcrypto, through
 * wolfSSL's crypto callbacks.
 *
 * Debian's wolfSSL is built without its assembly: its AES-GCM is table-driven
 * C (slow, and not constant-time), its ChaCha20-Poly1305 plain C. libcrypto's
 * AES-GCM runs on AES-NI and carry-less multiplication, several GB/s per core.
 * wolfSSL's crypto callbacks (WOLF_CRYPTO_CB, on in Debian's build) let a
 * "device" take over one algorithm while wolfSSL keeps everything else: a
 * context given this device's id hands every AES-GCM record encryption and
 * decryption here; the handshake, hashes and keys stay with wolfSSL. */
#ifndef VOLLEY_TLS_AEAD_H
#define VOLLEY_TLS_AEAD_H

#include <stddef.h>

/* Registers the device with wolfSSL (once for all callers) and returns the
 * id to give wolfSSL contexts (wolfSSL_CTX_SetDevId); or -2 (wolfSSL's
 * INVALID_DEVID) when this CPU lacks AES and carry-less multiply
 * instructions or libcrypto lacks AES-GCM: then wolfSSL does all the work.
 * wolfSSL must be initialised (wolfSSL_Init) from before attach until after
 * the matching detach. Thread-safe. */
int tls_aead_attach(void);
void tls_aead_detach(void);

/* How many AES-GCM operations libcrypto has done on the calling thread (a
 * record each, in TLS): shows the device is the one at work. */
unsigned long long tls_aead_thread_ops(void);

/* Frees the calling thread's cipher contexts (they are made again if the
 * thread encrypts later). */
void tls_aead_thread_done(void);

/* One AES-GCM operation as the device does it, for tests: encrypts (enc 1)
 * or decrypts and verifies (enc 0) sz bytes of in into out (which may be
 * in), with a 12-byte iv, the additional data aad and a tag of tag_len bytes
 * (written when encrypting, checked when decrypting). Returns 0, or -1 (bad
 * tag, bad sizes, or libcrypto failed; out is then zeroed). */
int tls_aead_gcm(int enc, const unsigned char *key, size_t key_len,
		 const unsigned char *iv, size_t iv_len,
		 const unsigned char *aad, size_t aad_len,
		 const unsigned char *in, unsigned char *out, size_t sz,
		 unsigned char *tag, size_t tag_len);

#endif
