/* dkim: DKIM signing (RFC 6376) with rsa-sha256 and ed25519-sha256 (RFC 8463),
 * relaxed/relaxed canonicalisation, one or two signatures per message.
 *
 * The objects, and what threads may share:
 *   struct dkim_key     a private key, parsed once from PEM. Read-only after
 *                       creation: any number of threads may use one.
 *   struct dkim_signer  what every signature of a sender holds (d=, the keys
 *                       and their selectors, the header names to sign).
 *                       Read-only after creation: shared like a key.
 *   struct dkim_sign    one thread's signing state: its own key objects
 *                       (decoded once from the shared keys: libcrypto's
 *                       EVP_PKEY_CTX for RSA and wolfCrypt's ed25519_key
 *                       keep per-operation state), the hash contexts and a
 *                       bounded table of header fields. One per thread, reused for
 *                       every message; nothing is allocated per message.
 *
 * A message is signed in three steps, so that a renderer can hash the body
 * while it writes it: dkim_sign_begin, dkim_sign_body (pieces of any size),
 * dkim_sign_end (the header block and t=), which writes the DKIM-Signature
 * field(s) to put above the message. dkim_sign_message does all three for a
 * message held whole.
 *
 * Below that sits the pure core the signer is made of (canonicalisation,
 * header field selection, the field's layout), public so that tests can hold
 * it against RFC examples and independent implementations. */
#ifndef VOLLEY_DKIM_H
#define VOLLEY_DKIM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define DKIM_MAX_KEYS      2      /* signatures per message (RSA and Ed25519 together) */
#define DKIM_MAX_HEADERS   32     /* header names a signer is configured with */
#define DKIM_NAME_MAX      64     /* octets in one header name */
#define DKIM_MAX_SIGNED    64     /* entries in h= (a name once per instance, plus over-signing) */
#define DKIM_MAX_FIELDS    512    /* header fields in one message */
#define DKIM_DNS_NAME_MAX  253    /* d= and s= */
#define DKIM_SIGNATURE_MAX 8192   /* one DKIM-Signature field, CRLF included */
#define DKIM_LINE_MAX      78     /* the folding target (RFC 5322 2.1.1) */
#define DKIM_RSA_MIN_BITS  1024   /* RFC 8301 section 3.2 */
#define DKIM_RSA_MAX_BITS  4096   /* the largest the Debian wolfSSL build handles */
#define DKIM_SIG_MAX_BYTES (DKIM_RSA_MAX_BITS / 8)
#define DKIM_TXT_MAX       1024   /* "v=DKIM1; k=rsa; p=..." for a 4096-bit key */
#define DKIM_PEM_MAX       4096   /* a 4096-bit RSA key in PKCS#8 PEM is about 3.3 KiB */

enum dkim_alg {
	DKIM_RSA_SHA256 = 1,
	DKIM_ED25519_SHA256 = 2,
};

/* Returns "rsa-sha256" or "ed25519-sha256" (the a= value); NULL otherwise. */
const char *dkim_alg_name(enum dkim_alg alg);

/* ---- keys ---------------------------------------------------------------- */

struct dkim_key;

/* Reads a private key in PEM: RSA in PKCS#1 ("RSA PRIVATE KEY") or PKCS#8,
 * Ed25519 in PKCS#8 ("PRIVATE KEY", as written by openssl genpkey). Returns
 * the key, or NULL with a reason in err (which never quotes key material).
 * Encrypted keys, public keys and other algorithms are refused. The copies of
 * the file's bytes are wiped. */
struct dkim_key *dkim_key_load(const char *path, char *err, size_t errlen);
struct dkim_key *dkim_key_from_pem(const char *pem, size_t len, char *err, size_t errlen);

/* Generates a new key: RSA of bits (DKIM_RSA_MIN_BITS to DKIM_RSA_MAX_BITS,
 * a multiple of 8) or Ed25519 (bits ignored). NULL with a reason in err. */
struct dkim_key *dkim_key_generate(enum dkim_alg alg, unsigned bits, char *err, size_t errlen);

/* Wipes and frees the key; NULL is fine. */
void dkim_key_free(struct dkim_key *k);

enum dkim_alg dkim_key_alg(const struct dkim_key *k);

/* Returns the key's size in bits: the RSA modulus, or 256 for Ed25519. */
unsigned dkim_key_bits(const struct dkim_key *k);

/* Writes the private key as PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----"),
 * NUL-terminated. Returns its length, or -1 when cap is too small. The caller
 * wipes out when done. */
ssize_t dkim_key_to_pem(const struct dkim_key *k, char *out, size_t cap);

/* Writes the DNS TXT value to publish at SELECTOR._domainkey.DOMAIN, e.g.
 * "v=DKIM1; k=ed25519; p=...", NUL-terminated. p= is the base64 of the
 * SubjectPublicKeyInfo for RSA, of the raw 32-byte key for Ed25519 (RFC 8463
 * section 4). Returns its length, or -1 when cap is too small. */
ssize_t dkim_key_txt(const struct dkim_key *k, char *out, size_t cap);

/* One thread's working copy of a key, able to sign. */
struct dkim_key_ctx;

/* Returns a signing context for k (which must outlive it), or NULL with a
 * reason in err. */
struct dkim_key_ctx *dkim_key_ctx_new(const struct dkim_key *k, char *err, size_t errlen);
void dkim_key_ctx_free(struct dkim_key_ctx *c);

/* Signs a SHA-256 digest: RSASSA-PKCS1-v1_5 over its DigestInfo, or Ed25519
 * (PureEdDSA) over the 32 bytes, as RFC 8463 section 3 says. Writes the raw
 * signature; returns its length (the modulus size, or 64), or -1. */
ssize_t dkim_key_ctx_sign(struct dkim_key_ctx *c, const unsigned char digest[32],
			  unsigned char *sig, size_t cap);

/* ---- the signer ------------------------------------------------------------ */

struct dkim_signer_key {
	const struct dkim_key *key;   /* borrowed: must outlive the signer */
	const char *selector;         /* s= */
};

struct dkim_signer_opts {
	const char *domain;                            /* d= */
	struct dkim_signer_key keys[DKIM_MAX_KEYS];    /* one signature each, in this order */
	unsigned nkeys;                                /* 1 or 2 */
	const char *const *headers;   /* names to sign when present; NULL: dkim_default_headers */
	size_t nheaders;
	int oversign_from;            /* list From once more than it occurs, so that a
					 From added later breaks the signature */
};

/* The header names signed when the options give none: From, Reply-To,
 * Sender, To, Cc, Subject, Date, Message-ID, In-Reply-To, References,
 * MIME-Version, Content-Type, Content-Transfer-Encoding, List-Id,
 * List-Unsubscribe, List-Unsubscribe-Post (RFC 8058 requires both List-
 * fields signed) and Feedback-ID. */
extern const char *const dkim_default_headers[];
extern const size_t dkim_default_nheaders;

struct dkim_signer;

/* Checks and copies the options (d=, selectors and header names; the keys
 * are borrowed). From is always signed, and comes first in h=, whether the
 * list names it or not. Refused: a d= or s= that is not a DNS name of letters, digits, hyphens
 * and dots; a header name that is not printable ASCII without ':', longer
 * than DKIM_NAME_MAX, listed twice, or DKIM-Signature. Returns the signer,
 * or NULL with a reason in err. */
struct dkim_signer *dkim_signer_new(const struct dkim_signer_opts *o, char *err, size_t errlen);
void dkim_signer_free(struct dkim_signer *s);

/* ---- signing messages (one struct dkim_sign per thread) -------------------- */

struct dkim_sign;

/* Returns a signing state for the signer (which must outlive it), or NULL
 * with a reason in err. */
struct dkim_sign *dkim_sign_new(const struct dkim_signer *signer, char *err, size_t errlen);
void dkim_sign_free(struct dkim_sign *st);

/* Starts a message (forgets any previous one). */
void dkim_sign_begin(struct dkim_sign *st);

/* Hashes the next piece of the body: the bytes after the empty line that
 * ends the header, CRLF line ends. Pieces may split anywhere, even a CRLF. */
void dkim_sign_body(struct dkim_sign *st, const void *p, size_t n);

/* Ends the message. header holds its header fields, each ending in CRLF (the
 * empty line that follows may be included; it is where the fields stop); t is
 * the signature time (t=, seconds since the epoch). Writes one DKIM-Signature
 * field per key, each ending in CRLF, to go above the message's first field.
 * Returns the bytes written (no NUL), or -1 with the reason in
 * dkim_sign_errstr: no From field, a malformed header, more than
 * DKIM_MAX_FIELDS fields or DKIM_MAX_SIGNED signed instances, out too small. */
ssize_t dkim_sign_end(struct dkim_sign *st, const char *header, size_t len, uint64_t t,
		      char *out, size_t cap);

/* Signs a whole message (header, empty line, body; CRLF line ends): the three
 * steps above. Returns what dkim_sign_end returns. */
ssize_t dkim_sign_message(struct dkim_sign *st, const char *msg, size_t len, uint64_t t,
			  char *out, size_t cap);

/* dkim_sign_message for a message whose body the caller knows to be
 * canonical already (see dkim_body_feed_canonical): the body is hashed
 * without being canonicalised. */
ssize_t dkim_sign_message_canonical(struct dkim_sign *st, const char *msg, size_t len,
				    uint64_t t, char *out, size_t cap);

/* The reason the last dkim_sign_end failed. */
const char *dkim_sign_errstr(const struct dkim_sign *st);

/* ---- the pure core --------------------------------------------------------- */

/* Where canonical bytes go: a hash, or a buffer in tests. */
struct dkim_sink {
	void (*write)(void *arg, const void *p, size_t n);
	void *arg;
};

/* A sink feeding a SHA-256 context (libcrypto's EVP_MD_CTX, held as void *
 * so that this header needs no OpenSSL; see dkim_crypto.h for why libcrypto):
 * dkim_sha_write's arg is a struct dkim_sha_sink, whose failed is set when
 * an update fails. */
struct dkim_sha_sink {
	void *sha256;
	int failed;
};
void dkim_sha_write(void *arg, const void *p, size_t n);

/* Writes the relaxed canonical form (RFC 6376 3.4.2) of one header field,
 * "Name: value" with its folding CRLFs but without the CRLF that ends it:
 * the name lowercased, the value unfolded, WSP runs reduced to one SP, WSP
 * at the value's ends and around the colon removed; then CRLF when crlf. */
void dkim_canon_header(const char *field, size_t len, int crlf, const struct dkim_sink *out);

/* The relaxed body canonicaliser (RFC 6376 3.4.4), fed in pieces: WSP at
 * line ends removed, WSP runs reduced to one SP, empty lines at the end
 * dropped, a CRLF added to a last line without one. An empty body (or one of
 * empty lines only) canonicalises to nothing. A CR not followed by LF, and a
 * bare LF, are ordinary bytes. Hold it by value; nothing to free. */
struct dkim_body {
	struct dkim_sink out;
	uint64_t held_crlf;     /* line ends not written yet: dropped if only empty lines follow */
	unsigned char wsp;      /* a WSP run not written yet: dropped if the line ends */
	unsigned char cr;       /* a CR not written yet: a line end if LF follows */
	unsigned char any;      /* something was written */
};

void dkim_body_init(struct dkim_body *b, const struct dkim_sink *out);
void dkim_body_feed(struct dkim_body *b, const void *p, size_t n);
void dkim_body_end(struct dkim_body *b);

/* Feeds a whole body (b fresh from dkim_body_init) that the caller knows
 * to be its own relaxed canonical form but for empty lines at its end: no
 * TAB, no SP before SP, CR or the end, no CR without LF after it. Only
 * the empty lines at the end are looked for; the rest goes out in one
 * write. Gives what dkim_body_feed gives for such a body. */
void dkim_body_feed_canonical(struct dkim_body *b, const void *p, size_t n);

/* A header field inside the caller's header block. */
struct dkim_field {
	const char *p;      /* "Name: value" with its folds, without the final CRLF */
	size_t len;
	size_t name_len;    /* the name, without WSP before the colon */
};

/* Splits a header block into fields (stopping at an empty line). Every line
 * must end in CRLF; a line starting with WSP continues the field above.
 * Returns the number of fields, -1 when the block is malformed (a line with
 * no colon or an empty name, a continuation first, a bare CR or LF, a last
 * line without CRLF) or -2 when it holds more than max fields. */
int dkim_split_fields(const char *header, size_t len, struct dkim_field *fields, size_t max);

/* The SHA-256 of what a signature signs (RFC 6376 3.7, 5.4.2): for each name
 * of h= in order, the canonical form of the last instance of that name not yet
 * used (nothing when none is left: that is over-signing), then the
 * DKIM-Signature field sig with an empty b= value, canonicalised without its
 * final CRLF. Returns 0, or -1 (too many fields, a hash failure). */
int dkim_header_hash(const struct dkim_field *fields, size_t nfields,
		     const char *const *names, size_t nnames,
		     const char *sig, size_t siglen, unsigned char digest[32]);

/* Returns NULL when name can go in d= or s= (labels of letters, digits and
 * inner hyphens, joined by dots, at most DKIM_DNS_NAME_MAX octets), or a short
 * static reason. */
const char *dkim_dns_name_problem(const char *name);

/* What one DKIM-Signature field says, for the layout below. */
struct dkim_sig_tags {
	enum dkim_alg alg;
	const char *domain;
	const char *selector;
	uint64_t t;
	const char *const *names;     /* h=, in order */
	size_t nnames;
	const char *bh;               /* base64 body hash */
};

/* Writes "DKIM-Signature: v=1; a=..; c=relaxed/relaxed; d=..; s=..; t=..;
 * h=..; bh=..; b=" folded with CRLF SP so that no line passes DKIM_LINE_MAX
 * octets unless one unbreakable tag value (d=, s=, a header name) is longer;
 * h= may break after a colon. *col is the length of the last line, where the
 * b= value will continue. Returns the length, or -1 when cap is too small. */
ssize_t dkim_format_head(const struct dkim_sig_tags *tags, char *out, size_t cap, size_t *col);

/* Writes the b= value (base64), folded on from column col the same way, and
 * the field's final CRLF. Returns the length, or -1 when cap is too small. */
ssize_t dkim_format_b(const char *b64, size_t len, size_t col, char *out, size_t cap);

#endif
