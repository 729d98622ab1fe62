/* tls: wolfSSL driven over two bounded memory buffers.
 *
 * wolfSSL's I/O callbacks are set once on the context; each connection hands
 * itself to them as the read and write context. The receive callback takes
 * ciphertext from the input buffer the caller fills, the send callback
 * appends to the output buffer the caller drains; either answers "would
 * block" when its buffer is empty or full, which surfaces as TLS_AGAIN.
 *
 * Writing: wolfSSL requires a write that hit "would block" to be repeated
 * with the same buffer, because the record is already encrypted into its own
 * output buffer. To keep that from ever happening tls_conn_write only hands
 * wolfSSL as many bytes as fit, as one record, in the room left in our output
 * buffer, and returns TLS_AGAIN when there is not room for a useful record.
 * Should wolfSSL still report "would block", the count is remembered and the
 * next call repeats exactly that write (the API says TLS_AGAIN takes nothing,
 * so the caller hands the same bytes again). */
#include "pool/tls.h"
#include "pool/tls_aead.h"
#include "pool/bufmem.h"
#include "pool/zero_pages.h"

#include <arpa/inet.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/error-ssl.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/ecc.h>

/* One TLS record's plaintext, and what a record adds to it at most with the
 * AEAD suites we allow (header, explicit nonce or inner type, tag), rounded
 * up generously so a pending alert can share the room. */
#define TLS_RECORD_MAX      16384
#define TLS_RECORD_OVERHEAD 1024

/* AEAD suites only. With AES-GCM done by libcrypto (tls_aead), AES-128-GCM
 * is the fastest suite by far; left to this wolfSSL build, which has no
 * AES-NI, AES-GCM is several times slower than ChaCha20-Poly1305 in C. */
static const char tls_ciphers_aes_first[] =
	"TLS13-AES128-GCM-SHA256:"
	"TLS13-AES256-GCM-SHA384:"
	"TLS13-CHACHA20-POLY1305-SHA256:"
	"ECDHE-ECDSA-AES128-GCM-SHA256:"
	"ECDHE-RSA-AES128-GCM-SHA256:"
	"ECDHE-ECDSA-AES256-GCM-SHA384:"
	"ECDHE-RSA-AES256-GCM-SHA384:"
	"ECDHE-ECDSA-CHACHA20-POLY1305:"
	"ECDHE-RSA-CHACHA20-POLY1305";
static const char tls_ciphers_chacha_first[] =
	"TLS13-CHACHA20-POLY1305-SHA256:"
	"TLS13-AES128-GCM-SHA256:"
	"TLS13-AES256-GCM-SHA384:"
	"ECDHE-ECDSA-CHACHA20-POLY1305:"
	"ECDHE-RSA-CHACHA20-POLY1305:"
	"ECDHE-ECDSA-AES128-GCM-SHA256:"
	"ECDHE-RSA-AES128-GCM-SHA256:"
	"ECDHE-ECDSA-AES256-GCM-SHA384:"
	"ECDHE-RSA-AES256-GCM-SHA384";

struct tls_ctx {
	WOLFSSL_CTX *ctx;
	int server;
	int verify;
	int aead_offload;   /* AES-GCM records go to tls_aead */
};

struct tls_conn {
	struct tls_ctx *ctx;
	WOLFSSL *ssl;
	int done;            /* handshake complete */
	int closed;          /* close_notify received */
	int failed;          /* a fatal error happened; errstr says which */
	int write_pending;   /* bytes of a wolfSSL_write to repeat, see above */
	char errstr[192];
	/* Both buffers grow on demand up to their caps and shrink again, so
	 * that an idle connection holds little: see buffer_resize. */
	unsigned char *in, *out;
	size_t in_cap, out_cap;
	int in_mapped, out_mapped; /* which is a mapping, see buffer_resize */
	size_t in_off, in_len;     /* unread ciphertext is in[in_off, in_len) */
	size_t out_off, out_len;   /* unsent ciphertext is out[out_off, out_len) */
	int in_window;             /* a receive into in[in_len..] is outstanding */
	int out_lent;              /* out[out_off..] was handed out for sending */
};

struct tls_saved {
	WOLFSSL_SESSION *sess;
};

/* ---- buffers ---- */

/* Resizes *buf to cap bytes or more (0 frees it): a heap block when small,
 * its own mapping from a page up (see bufmem.h). Returns 0, or -1 out of
 * memory (the buffer unchanged). */
static int buffer_resize(unsigned char **buf, size_t *cur, int *mapped, size_t cap)
{
	if (cap == *cur)
		return 0;
	unsigned char *n = bufmem_resize(*buf, cur, mapped, cap);
	if (!n && cap)
		return -1;
	*buf = n;
	return 0;
}

/* A capacity of at least need: doubling from start, at most max. */
static size_t grown(size_t cur, size_t need, size_t start, size_t max)
{
	size_t cap = cur ? cur : start;
	while (cap < need && cap < max)
		cap *= 2;
	return cap < max ? cap : max;
}

/* ---- I/O callbacks ---- */

static int tls_recv_cb(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
	struct tls_conn *c = arg;
	size_t avail = c->in_len - c->in_off;
	if (avail == 0 || sz <= 0)
		return WOLFSSL_CBIO_ERR_WANT_READ;
	size_t n = (size_t)sz < avail ? (size_t)sz : avail;
	memcpy(buf, c->in + c->in_off, n);
	c->in_off += n;
	if (c->in_off == c->in_len && !c->in_window)
		c->in_off = c->in_len = 0;
	return (int)n;
}

static int tls_send_cb(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
	struct tls_conn *c = arg;
	/* Never move unsent bytes here: the caller may have them in a send
	 * in flight. They move only in tls_conn_cipher_consume. */
	if (sz <= 0)
		return WOLFSSL_CBIO_ERR_WANT_WRITE;
	/* Grow unless the bytes were lent out: a send in flight may point
	 * into the buffer, which must not move. */
	if (c->out_cap - c->out_len < (size_t)sz && !c->out_lent) {
		size_t want = grown(c->out_cap, c->out_len + (size_t)sz, TLS_OUT_START, TLS_CIPHER_OUT_MAX);
		if (want > c->out_cap && buffer_resize(&c->out, &c->out_cap, &c->out_mapped, want) < 0)
			return WOLFSSL_CBIO_ERR_GENERAL;
	}
	size_t room = c->out_cap - c->out_len;
	if (room == 0)
		return WOLFSSL_CBIO_ERR_WANT_WRITE;
	/* A partial take is fine here: wolfSSL keeps the rest and offers it
	 * again on its next call. */
	size_t n = (size_t)sz < room ? (size_t)sz : room;
	memcpy(c->out + c->out_len, buf, n);
	c->out_len += n;
	return (int)n;
}

void tls_thread_done(void)
{
	tls_aead_thread_done();
#ifdef FP_ECC
	wc_ecc_fp_free();
#endif
}

/* ---- contexts ---- */

/* The key exchange groups, X25519 first, so that a TLS 1.3 client's one key
 * share is X25519 (wolfSSL's default is P-256) and a server accepts these.
 * A P-256 shared secret goes through wolfSSL's per-thread cache of curve
 * points for fixed-point multiplication, and each handshake adds the peer's
 * one-time point to it; X25519 does not touch it. Measured with
 * tls-record-bench --sessions 1000: the cache held 12.4 MB a thread with
 * P-256 shares and 2.5 MB with X25519. The NIST curves stay for peers
 * without X25519. wolfSSL's default list also offered Brainpool,
 * secp256k1, curves under 256 bits and FFDHE (no cipher suite we allow uses
 * FFDHE); a context-wide list also spares each connection its own copy of
 * the list (12 nodes). */
static int use_groups(WOLFSSL_CTX *ctx, int tls13)
{
	static const int groups[] = {
		WOLFSSL_ECC_X25519, WOLFSSL_ECC_SECP256R1, WOLFSSL_ECC_SECP384R1,
		WOLFSSL_ECC_SECP521R1,
	};
	int n = (int)(sizeof(groups) / sizeof(groups[0]));
	if (tls13)   /* the list and the key share order; 1.3 methods only */
		return wolfSSL_CTX_set_groups(ctx, (int *)groups, n) == WOLFSSL_SUCCESS ? 0 : -1;
	for (int i = 0; i < n; i++)
		if (wolfSSL_CTX_UseSupportedCurve(ctx, (word16)groups[i]) != WOLFSSL_SUCCESS)
			return -1;
	return 0;
}

struct tls_ctx *tls_ctx_new(const struct tls_ctx_opts *o, char *err, size_t errlen)
{
	int minv = o->min_version ? o->min_version : 12;
	int maxv = o->max_version ? o->max_version : 13;
	if ((minv != 12 && minv != 13) || (maxv != 12 && maxv != 13) || minv > maxv) {
		snprintf(err, errlen, "bad TLS version range %d..%d", minv, maxv);
		return NULL;
	}
	if (o->server && (!o->cert_file || !o->key_file)) {
		snprintf(err, errlen, "a server context needs a certificate and a key");
		return NULL;
	}
	struct tls_ctx *t = calloc(1, sizeof(*t));
	if (!t) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	/* wolfSSL_Init and wolfSSL_Cleanup count references, so pairing them
	 * per context keeps the library alive exactly as long as needed. */
	if (wolfSSL_Init() != WOLFSSL_SUCCESS) {
		snprintf(err, errlen, "wolfSSL_Init failed");
		free(t);
		return NULL;
	}
	t->server = o->server != 0;

	/* The flexible method negotiates the highest version both support;
	 * a 1.2 ceiling needs the 1.2-only method. */
	WOLFSSL_METHOD *m;
	if (maxv == 12)
		m = t->server ? wolfTLSv1_2_server_method() : wolfTLSv1_2_client_method();
	else
		m = t->server ? wolfTLS_server_method() : wolfTLS_client_method();
	t->ctx = m ? wolfSSL_CTX_new(m) : NULL;
	if (!t->ctx) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (maxv == 13 &&
	    wolfSSL_CTX_SetMinVersion(t->ctx, minv == 13 ? WOLFSSL_TLSV1_3 : WOLFSSL_TLSV1_2)
	    != WOLFSSL_SUCCESS) {
		snprintf(err, errlen, "cannot set the minimum TLS version");
		goto fail;
	}
	int devid = o->no_aead_offload ? INVALID_DEVID : tls_aead_attach();
	t->aead_offload = devid != INVALID_DEVID;
	if (t->aead_offload && wolfSSL_CTX_SetDevId(t->ctx, devid) != WOLFSSL_SUCCESS) {
		snprintf(err, errlen, "cannot set the AES-GCM device");
		goto fail;
	}
	if (wolfSSL_CTX_set_cipher_list(t->ctx, t->aead_offload ? tls_ciphers_aes_first
							       : tls_ciphers_chacha_first)
	    != WOLFSSL_SUCCESS) {
		snprintf(err, errlen, "cannot set the cipher list");
		goto fail;
	}
	if (use_groups(t->ctx, maxv == 13) < 0) {
		snprintf(err, errlen, "cannot set the key exchange groups");
		goto fail;
	}
	wolfSSL_CTX_SetIORecv(t->ctx, tls_recv_cb);
	wolfSSL_CTX_SetIOSend(t->ctx, tls_send_cb);

	if (t->server) {
		if (wolfSSL_CTX_use_certificate_chain_file(t->ctx, o->cert_file) != WOLFSSL_SUCCESS) {
			snprintf(err, errlen, "cannot load certificate %s", o->cert_file);
			goto fail;
		}
		if (wolfSSL_CTX_use_PrivateKey_file(t->ctx, o->key_file, WOLFSSL_FILETYPE_PEM)
		    != WOLFSSL_SUCCESS) {
			snprintf(err, errlen, "cannot load key %s", o->key_file);
			goto fail;
		}
		if (wolfSSL_CTX_check_private_key(t->ctx) != WOLFSSL_SUCCESS) {
			snprintf(err, errlen, "key %s does not match certificate %s",
				 o->key_file, o->cert_file);
			goto fail;
		}
		wolfSSL_CTX_set_verify(t->ctx, WOLFSSL_VERIFY_NONE, NULL);
	} else if (o->insecure) {
		wolfSSL_CTX_set_verify(t->ctx, WOLFSSL_VERIFY_NONE, NULL);
	} else {
		const char *ca = o->ca_file ? o->ca_file : TLS_DEFAULT_CA_FILE;
		if (wolfSSL_CTX_load_verify_locations(t->ctx, ca, NULL) != WOLFSSL_SUCCESS) {
			snprintf(err, errlen, "cannot load CA file %s", ca);
			goto fail;
		}
		wolfSSL_CTX_set_verify(t->ctx, WOLFSSL_VERIFY_PEER, NULL);
		t->verify = 1;
	}
	return t;
fail:
	tls_ctx_free(t);
	return NULL;
}

void tls_ctx_free(struct tls_ctx *t)
{
	if (!t)
		return;
	if (t->ctx)
		wolfSSL_CTX_free(t->ctx);
	if (t->aead_offload)
		tls_aead_detach();
	free(t);
	wolfSSL_Cleanup();
}

/* ---- connections ---- */

static int is_ip_address(const char *s)
{
	unsigned char a[16];
	return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

struct tls_conn *tls_conn_new(struct tls_ctx *ctx, const char *server_name,
			      const struct tls_saved *resume)
{
	struct tls_conn *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->ctx = ctx;
	c->ssl = wolfSSL_new(ctx->ctx);
	if (!c->ssl)
		goto fail;
	wolfSSL_SetIOReadCtx(c->ssl, c);
	wolfSSL_SetIOWriteCtx(c->ssl, c);

	if (!ctx->server && server_name && *server_name) {
		int ip = is_ip_address(server_name);
		/* RFC 6066: SNI carries host names only, never literal IPs. */
		if (!ip && wolfSSL_UseSNI(c->ssl, WOLFSSL_SNI_HOST_NAME, server_name,
					  (unsigned short)strnlen(server_name, USHRT_MAX))
			   != WOLFSSL_SUCCESS)
			goto fail;
		if (ctx->verify) {
			/* Names are matched against DNS SANs (and the CN when
			 * there are none); addresses only against IP SANs,
			 * which wolfSSL checks through the verify parameters. */
			int ok = ip ? wolfSSL_X509_VERIFY_PARAM_set1_ip_asc(
					      wolfSSL_get0_param(c->ssl), server_name)
				    : wolfSSL_check_domain_name(c->ssl, server_name);
			if (ok != WOLFSSL_SUCCESS)
				goto fail;
		}
	}
	if (resume && resume->sess && !ctx->server)
		/* A session the server no longer knows just means a full
		 * handshake, so failure to set it is not an error. */
		(void)wolfSSL_set_session(c->ssl, resume->sess);
	return c;
fail:
	tls_conn_free(c);
	return NULL;
}

void tls_conn_free(struct tls_conn *c)
{
	if (!c)
		return;
	if (c->ssl)
		wolfSSL_free(c->ssl);
	bufmem_free(c->in, c->in_cap, c->in_mapped);
	bufmem_free(c->out, c->out_cap, c->out_mapped);
	free(c);
}

void *tls_conn_recv_space(struct tls_conn *c, size_t want, size_t *len)
{
	if (c->in_off > 0) {
		memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
		c->in_len -= c->in_off;
		c->in_off = 0;
	}
	size_t cap = c->in_cap;
	if (c->in_len == 0 && cap > TLS_IN_IDLE && want <= TLS_IN_IDLE)
		cap = TLS_IN_IDLE;                       /* drained: give memory back */
	else if (cap - c->in_len < want)
		cap = grown(cap, c->in_len + want, TLS_IN_IDLE, TLS_CIPHER_IN_MAX);
	if (buffer_resize(&c->in, &c->in_cap, &c->in_mapped, cap) < 0 || c->in_cap == c->in_len) {
		*len = 0;
		return NULL;
	}
	c->in_window = 1;
	*len = c->in_cap - c->in_len;
	return c->in + c->in_len;
}

void tls_conn_recv_commit(struct tls_conn *c, size_t n)
{
	c->in_window = 0;
	c->in_len += n;
}

size_t tls_conn_feed(struct tls_conn *c, const void *buf, size_t len)
{
	size_t room;
	void *p = tls_conn_recv_space(c, len, &room);
	size_t n = len < room ? len : room;
	if (p)
		memcpy(p, buf, n);
	tls_conn_recv_commit(c, n);
	return n;
}

const void *tls_conn_cipher_out(struct tls_conn *c, size_t *len)
{
	*len = c->out_len - c->out_off;
	if (*len)
		c->out_lent = 1;
	return c->out + c->out_off;
}

size_t tls_conn_cipher_pending(const struct tls_conn *c)
{
	return c->out_len - c->out_off;
}

void tls_conn_trim(struct tls_conn *c)
{
	if (c->out_len == 0 && !c->out_lent)
		buffer_resize(&c->out, &c->out_cap, &c->out_mapped, 0);
}

void tls_conn_cipher_consume(struct tls_conn *c, size_t n)
{
	size_t pending = c->out_len - c->out_off;
	c->out_lent = 0;
	c->out_off += n < pending ? n : pending;
	if (c->out_off == c->out_len) {
		c->out_off = c->out_len = 0;
	} else if (c->out_off > 0) {
		/* The caller's send is complete: the one safe moment to move. */
		memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
		c->out_len -= c->out_off;
		c->out_off = 0;
	}
}

/* Turns a wolfSSL error into errstr, naming the reason a certificate was
 * refused in the words an operator looks for. */
static void set_error(struct tls_conn *c, const char *what, int err)
{
	const char *why = NULL;
	switch (err) {
	case ASN_NO_SIGNER_E:
	case ASN_SELF_SIGNED_E:
		why = "unknown CA";
		break;
	case DOMAIN_NAME_MISMATCH:
	case IPADDR_MISMATCH:
		why = "host name mismatch";
		break;
	case ASN_AFTER_DATE_E:
		why = "certificate expired";
		break;
	case ASN_BEFORE_DATE_E:
		why = "certificate not yet valid";
		break;
	case ASN_SIG_CONFIRM_E:
	case ASN_SIG_OID_E:
		why = "bad certificate signature";
		break;
	default:
		break;
	}
	if (why) {
		snprintf(c->errstr, sizeof(c->errstr), "certificate verify failed: %s", why);
	} else {
		char buf[WOLFSSL_MAX_ERROR_SZ];
		wolfSSL_ERR_error_string_n((unsigned long)err, buf, sizeof(buf));
		snprintf(c->errstr, sizeof(c->errstr), "%s: %s (%d)", what, buf, err);
	}
	c->failed = 1;
}

/* Maps a wolfSSL return to ours; errors are recorded and stick. */
static int map_result(struct tls_conn *c, int ret, const char *what)
{
	int err = wolfSSL_get_error(c->ssl, ret);
	switch (err) {
	case WOLFSSL_ERROR_WANT_READ:
	case WOLFSSL_ERROR_WANT_WRITE:
		return TLS_AGAIN;
	case WOLFSSL_ERROR_ZERO_RETURN:
		c->closed = 1;
		return TLS_CLOSED;
	default:
		set_error(c, what, err);
		return TLS_ERROR;
	}
}

/* Most of what wolfSSL keeps per connection after the handshake is room it
 * zeroed and will not use: the session's array for a nine-certificate peer
 * chain alone is 37 KB. Its all-zero pages go back to the kernel (see
 * zero_pages.h). Only where that session is the connection's own malloc'd
 * block: wolfSSL_get_session returns it when built with
 * NO_SESSION_CACHE_REF (as Debian builds it), and the block is malloc's
 * when no allocator was set (tls-record-bench counts through its own). */
static void release_unused_room(struct tls_conn *c)
{
#ifdef NO_SESSION_CACHE_REF
	wolfSSL_Malloc_cb mf = NULL;
	wolfSSL_Free_cb ff = NULL;
	wolfSSL_Realloc_cb rf = NULL;
	if (wolfSSL_GetAllocators(&mf, &ff, &rf) != 0 || mf || ff || rf)
		return;
	zero_pages_release(wolfSSL_get_session(c->ssl));
#else
	(void)c;
#endif
}

/* What the handshake alone needed: wolfSSL keeps its handshake arrays (the
 * randoms, the premaster secret's buffer and the secrets derived from it,
 * 5.5 KB) after a TLS 1.3 handshake, because this build allows post-handshake
 * authentication and tickets (wolfSSL 5.5.4, FreeHandshakeResources). Neither
 * uses them after the handshake: KeyUpdate derives from the traffic secrets
 * in the SSL object, a NewSessionTicket from the resumption secret in the
 * session, a client's answer to a late CertificateRequest (which we never
 * invite) from the handshake hashes, which stay; records and alerts use the
 * keys, and its handshake message reader takes the arrays' absence as
 * "handshake done".
 * Only the keying-material exporter and the client/server random getters
 * would want them, and volley calls neither. wolfSSL_FreeArrays does nothing
 * before the handshake is done, and TLS 1.2 has freed them already. */
static void release_handshake_arrays(struct tls_conn *c)
{
	wolfSSL_FreeArrays(c->ssl);
}

int tls_conn_handshake(struct tls_conn *c)
{
	if (c->failed)
		return TLS_ERROR;
	if (c->done)
		return 1;
	int ret = c->ctx->server ? wolfSSL_accept(c->ssl) : wolfSSL_connect(c->ssl);
	if (ret == WOLFSSL_SUCCESS) {
		c->done = 1;
		release_handshake_arrays(c);
		release_unused_room(c);
		return 1;
	}
	int r = map_result(c, ret, "handshake failed");
	if (r == TLS_CLOSED) {
		/* close_notify in the middle of a handshake is a failure. */
		snprintf(c->errstr, sizeof(c->errstr), "handshake failed: peer closed");
		c->failed = 1;
		r = TLS_ERROR;
	}
	return r;
}

ssize_t tls_conn_read(struct tls_conn *c, void *buf, size_t cap)
{
	if (c->failed)
		return TLS_ERROR;
	if (c->closed)
		return TLS_CLOSED;
	if (!c->done) {
		int h = tls_conn_handshake(c);
		if (h != 1)
			return h;
	}
	if (cap == 0)
		return TLS_AGAIN;
	int ret = wolfSSL_read(c->ssl, buf, cap > INT_MAX ? INT_MAX : (int)cap);
	if (ret > 0)
		return ret;
	return map_result(c, ret, "read failed");
}

ssize_t tls_conn_write(struct tls_conn *c, const void *buf, size_t len)
{
	if (c->failed)
		return TLS_ERROR;
	if (!c->done) {
		int h = tls_conn_handshake(c);
		if (h != 1)
			return h;
	}
	if (len == 0)
		return 0;

	int n;
	if (c->write_pending > 0) {
		if (len < (size_t)c->write_pending) {
			snprintf(c->errstr, sizeof(c->errstr),
				 "write failed: a blocked write was not repeated");
			c->failed = 1;
			return TLS_ERROR;
		}
		n = c->write_pending;
	} else {
		/* The buffer may grow to its cap, unless bytes are lent out. */
		size_t limit = c->out_lent ? c->out_cap : TLS_CIPHER_OUT_MAX;
		size_t room = limit - c->out_len;
		if (room <= TLS_RECORD_OVERHEAD)
			return TLS_AGAIN;
		size_t max = room - TLS_RECORD_OVERHEAD;
		if (max > TLS_RECORD_MAX)
			max = TLS_RECORD_MAX;
		/* Small fragments waste 20-odd bytes each; wait for room
		 * unless the whole remainder fits. */
		if (max < len && max < 4096)
			return TLS_AGAIN;
		n = (int)(len < max ? len : max);
	}
	int ret = wolfSSL_write(c->ssl, buf, n);
	if (ret > 0) {
		c->write_pending = 0;
		return ret;
	}
	int r = map_result(c, ret, "write failed");
	if (r == TLS_AGAIN)
		c->write_pending = n;
	else if (r == TLS_CLOSED)
		r = TLS_ERROR;
	return r;
}

void tls_conn_close_notify(struct tls_conn *c)
{
	/* Sends our alert; not waiting for the peer's is what SMTP after QUIT
	 * needs. The result is ignored: a full output buffer keeps the alert
	 * queued inside wolfSSL, and a dead session has nothing to say. */
	(void)wolfSSL_shutdown(c->ssl);
}

const char *tls_conn_version(const struct tls_conn *c)
{
	return c->done ? wolfSSL_get_version(c->ssl) : "";
}

const char *tls_conn_cipher(const struct tls_conn *c)
{
	const char *s = c->done ? wolfSSL_get_cipher_name(c->ssl) : NULL;
	return s ? s : "";
}

const char *tls_conn_aead(const struct tls_conn *c)
{
	const char *s = tls_conn_cipher(c);
	return c->ctx->aead_offload && strstr(s, "AES") && strstr(s, "GCM") ? "libcrypto" : "wolfssl";
}

int tls_conn_resumed(const struct tls_conn *c)
{
	return c->done && wolfSSL_session_reused(c->ssl) ? 1 : 0;
}

const char *tls_conn_errstr(const struct tls_conn *c)
{
	return c->errstr;
}

struct tls_saved *tls_conn_save(struct tls_conn *c)
{
	if (!c->done || c->ctx->server)
		return NULL;
	WOLFSSL_SESSION *cur = wolfSSL_get_session(c->ssl);
	if (!cur)
		return NULL;
	struct tls_saved *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	/* A copy, so the session outlives the connection it came from. */
	s->sess = wolfSSL_SESSION_dup(cur);
	if (!s->sess) {
		free(s);
		return NULL;
	}
	return s;
}

void tls_saved_free(struct tls_saved *s)
{
	if (!s)
		return;
	wolfSSL_SESSION_free(s->sess);
	free(s);
}
