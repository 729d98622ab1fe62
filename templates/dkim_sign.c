/* dkim_sign: the signer (what every signature of a sender shares) and the
 * per-thread signing state that turns a message into its DKIM-Signature
 * fields. Every signature of a message covers the same header fields and the
 * same body hash; none covers another DKIM-Signature, so a verifier can check
 * each one alone (RFC 8463 section 6 has the RSA and Ed25519 pair in mind). */
#include "templates/dkim.h"
#include "templates/dkim_crypto.h"
#include "pool/sasl.h"   /* base64 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *const dkim_default_headers[] = {
	"From", "Reply-To", "Sender", "To", "Cc", "Subject", "Date", "Message-ID",
	"In-Reply-To", "References", "MIME-Version", "Content-Type",
	"Content-Transfer-Encoding", "List-Id", "List-Unsubscribe", "List-Unsubscribe-Post",
	"Feedback-ID",
};
const size_t dkim_default_nheaders = sizeof dkim_default_headers / sizeof dkim_default_headers[0];

struct dkim_signer {
	char domain[DKIM_DNS_NAME_MAX + 1];
	struct {
		const struct dkim_key *key;
		char selector[DKIM_DNS_NAME_MAX + 1];
	} keys[DKIM_MAX_KEYS];
	unsigned nkeys;
	char names[DKIM_MAX_HEADERS][DKIM_NAME_MAX + 1];   /* lowercase; "from" first */
	size_t nnames;
	int oversign_from;
};

struct dkim_sign {
	const struct dkim_signer *signer;
	struct dkim_key_ctx *keys[DKIM_MAX_KEYS];
	struct evp_md_ctx_st *body_sha;
	int body_sha_ready;                /* body_sha was started for this message */
	struct evp_md_ctx_st *header_sha;
	struct dkim_sha_sink body_sink;
	struct dkim_body body;
	char errstr[160];
	struct dkim_field fields[DKIM_MAX_FIELDS];
	const char *hnames[DKIM_MAX_SIGNED];
};

/* ---- the signer ------------------------------------------------------------ */

/* Copies a header name lowercased into out; NULL, or why it cannot be one. */
static const char *take_header_name(const char *name, char out[DKIM_NAME_MAX + 1])
{
	size_t n = strlen(name);
	if (n == 0)
		return "an empty header name";
	if (n > DKIM_NAME_MAX)
		return "a header name longer than 64 octets";
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c < 33 || c > 126 || c == ':')
			return "a header name holds a character outside printable ASCII, or a colon";
		out[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : (char)c;
	}
	out[n] = 0;
	if (strcmp(out, "dkim-signature") == 0)
		return "DKIM-Signature cannot be signed: a signature never covers another";
	return NULL;
}

struct dkim_signer *dkim_signer_new(const struct dkim_signer_opts *o, char *err, size_t errlen)
{
	const char *why = o->domain ? dkim_dns_name_problem(o->domain) : "none given";

	if (why) {
		snprintf(err, errlen, "domain (d=) \"%s\": %s", o->domain ? o->domain : "", why);
		return NULL;
	}
	if (o->nkeys < 1 || o->nkeys > DKIM_MAX_KEYS) {
		snprintf(err, errlen, "give 1 or %d keys, not %u", DKIM_MAX_KEYS, o->nkeys);
		return NULL;
	}
	struct dkim_signer *s = calloc(1, sizeof *s);
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	memcpy(s->domain, o->domain, strlen(o->domain) + 1);
	for (unsigned i = 0; i < o->nkeys; i++) {
		const char *sel = o->keys[i].selector;
		if (!o->keys[i].key) {
			snprintf(err, errlen, "key %u: missing", i + 1);
			goto fail;
		}
		why = sel ? dkim_dns_name_problem(sel) : "none given";
		if (why) {
			snprintf(err, errlen, "selector (s=) \"%s\": %s", sel ? sel : "", why);
			goto fail;
		}
		s->keys[i].key = o->keys[i].key;
		memcpy(s->keys[i].selector, sel, strlen(sel) + 1);
	}
	s->nkeys = o->nkeys;

	const char *const *list = o->headers ? o->headers : dkim_default_headers;
	size_t n = o->headers ? o->nheaders : dkim_default_nheaders;
	memcpy(s->names[0], "from", 5);
	s->nnames = 1;
	for (size_t i = 0; i < n; i++) {
		char name[DKIM_NAME_MAX + 1];
		if ((why = take_header_name(list[i] ? list[i] : "", name)) != NULL) {
			snprintf(err, errlen, "header %zu: %s", i + 1, why);
			goto fail;
		}
		if (strcmp(name, "from") == 0)
			continue;
		for (size_t j = 1; j < s->nnames; j++) {
			if (strcmp(s->names[j], name) == 0) {
				snprintf(err, errlen, "header \"%s\" is listed twice", list[i]);
				goto fail;
			}
		}
		if (s->nnames == DKIM_MAX_HEADERS) {
			snprintf(err, errlen, "more than %d header names", DKIM_MAX_HEADERS);
			goto fail;
		}
		memcpy(s->names[s->nnames++], name, sizeof name);
	}
	s->oversign_from = o->oversign_from;
	return s;
fail:
	free(s);
	return NULL;
}

void dkim_signer_free(struct dkim_signer *s)
{
	free(s);
}

/* ---- the per-thread state --------------------------------------------------- */

void dkim_sign_free(struct dkim_sign *st)
{
	if (!st)
		return;
	for (unsigned i = 0; i < DKIM_MAX_KEYS; i++)
		dkim_key_ctx_free(st->keys[i]);
	dkim_sha_free(st->body_sha);
	dkim_sha_free(st->header_sha);
	free(st);
}

struct dkim_sign *dkim_sign_new(const struct dkim_signer *signer, char *err, size_t errlen)
{
	struct dkim_sign *st = calloc(1, sizeof *st);
	if (!st) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	st->signer = signer;
	st->body_sha = dkim_sha_new();
	st->header_sha = dkim_sha_new();
	if (!st->body_sha || !st->header_sha || !dkim_sha256()) {
		snprintf(err, errlen, "cannot set up SHA-256 (libcrypto)");
		dkim_sign_free(st);
		return NULL;
	}
	for (unsigned i = 0; i < signer->nkeys; i++) {
		st->keys[i] = dkim_key_ctx_new(signer->keys[i].key, err, errlen);
		if (!st->keys[i]) {
			dkim_sign_free(st);
			return NULL;
		}
	}
	dkim_sign_begin(st);
	return st;
}

void dkim_sign_begin(struct dkim_sign *st)
{
	st->body_sha_ready = dkim_sha_init(st->body_sha) == 0;
	st->body_sink = (struct dkim_sha_sink){ st->body_sha, !st->body_sha_ready };
	const struct dkim_sink sink = { dkim_sha_write, &st->body_sink };
	dkim_body_init(&st->body, &sink);
}

void dkim_sign_body(struct dkim_sign *st, const void *p, size_t n)
{
	if (st->body_sha_ready)
		dkim_body_feed(&st->body, p, n);
}

const char *dkim_sign_errstr(const struct dkim_sign *st)
{
	return st->errstr;
}

/* Fills st->hnames: each configured name once per instance in the header,
 * from top to bottom of the configuration, and "from" once more when
 * over-signing. Returns the count, or -1 with errstr set. */
static int signed_names(struct dkim_sign *st, size_t nfields)
{
	const struct dkim_signer *s = st->signer;
	size_t nh = 0;

	for (size_t i = 0; i < s->nnames; i++) {
		size_t nl = strlen(s->names[i]), count = 0;
		for (size_t j = 0; j < nfields; j++)
			if (st->fields[j].name_len == nl && strncasecmp(st->fields[j].p, s->names[i], nl) == 0)
				count++;
		if (i == 0 && count == 0) {
			snprintf(st->errstr, sizeof st->errstr, "the message has no From field");
			return -1;
		}
		count += i == 0 && s->oversign_from;
		if (count > DKIM_MAX_SIGNED - nh) {
			snprintf(st->errstr, sizeof st->errstr,
				 "more than %d signed header fields", DKIM_MAX_SIGNED);
			return -1;
		}
		while (count--)
			st->hnames[nh++] = s->names[i];
	}
	return (int)nh;
}

/* Writes one DKIM-Signature field for key i into out. Returns its length or
 * -1 with errstr set. */
static ssize_t sign_one(struct dkim_sign *st, unsigned i, size_t nfields, size_t nh,
			const char *bh, uint64_t t, char *out, size_t cap)
{
	const struct dkim_signer *s = st->signer;
	const struct dkim_sig_tags tags = {
		dkim_key_alg(s->keys[i].key), s->domain, s->keys[i].selector, t, st->hnames, nh, bh,
	};
	unsigned char digest[32], sig[DKIM_SIG_MAX_BYTES];
	char b64[DKIM_SIG_MAX_BYTES / 3 * 4 + 8];
	size_t col;

	ssize_t head = dkim_format_head(&tags, out, cap, &col);
	if (head < 0) {
		snprintf(st->errstr, sizeof st->errstr, "the output buffer is too small");
		return -1;
	}
	if (dkim_header_hash_ctx(st->header_sha, st->fields, nfields, st->hnames, nh, out,
				 (size_t)head, digest) < 0) {
		snprintf(st->errstr, sizeof st->errstr, "cannot hash the header");
		return -1;
	}
	ssize_t n = dkim_key_ctx_sign(st->keys[i], digest, sig, sizeof sig);
	ssize_t bl = n > 0 ? sasl_b64_encode(sig, (size_t)n, b64, sizeof b64) : -1;
	if (bl < 0) {
		snprintf(st->errstr, sizeof st->errstr, "%s signing failed", dkim_alg_name(tags.alg));
		return -1;
	}
	ssize_t tail = dkim_format_b(b64, (size_t)bl, col, out + head, cap - (size_t)head);
	if (tail < 0) {
		snprintf(st->errstr, sizeof st->errstr, "the output buffer is too small");
		return -1;
	}
	return head + tail;
}

ssize_t dkim_sign_end(struct dkim_sign *st, const char *header, size_t len, uint64_t t,
		      char *out, size_t cap)
{
	unsigned char bh[32];
	char bh64[48];

	st->errstr[0] = 0;
	dkim_body_end(&st->body);
	ssize_t bl = -1;
	if (st->body_sha_ready && dkim_sha_final(st->body_sha, bh) == 0 &&
	    !st->body_sink.failed)
		bl = sasl_b64_encode(bh, sizeof bh, bh64, sizeof bh64 - 1);
	st->body_sha_ready = 0;   /* finished: dkim_sign_begin starts the next */
	if (bl < 0) {
		snprintf(st->errstr, sizeof st->errstr, "cannot hash the body");
		return -1;
	}
	bh64[bl] = 0;
	int nf = dkim_split_fields(header, len, st->fields, DKIM_MAX_FIELDS);
	if (nf == -2) {
		snprintf(st->errstr, sizeof st->errstr, "more than %d header fields", DKIM_MAX_FIELDS);
		return -1;
	}
	if (nf < 0) {
		snprintf(st->errstr, sizeof st->errstr,
			 "malformed header: a line without a colon, a bare CR or LF, or no CRLF at its end");
		return -1;
	}
	int nh = signed_names(st, (size_t)nf);
	if (nh < 0)
		return -1;
	size_t pos = 0;
	for (unsigned i = 0; i < st->signer->nkeys; i++) {
		ssize_t n = sign_one(st, i, (size_t)nf, (size_t)nh, bh64, t, out + pos, cap - pos);
		if (n < 0)
			return -1;
		pos += (size_t)n;
	}
	return (ssize_t)pos;
}

/* Where msg's header ends (*hlen, its last CRLF included) and its body
 * starts (the return value). */
static size_t split_message(const char *msg, size_t len, size_t *hlen)
{
	if (len >= 2 && msg[0] == '\r' && msg[1] == '\n') {
		*hlen = 0;   /* no header at all: dkim_sign_end says there is no From */
		return 2;
	}
	const char *sep = memmem(msg, len, "\r\n\r\n", 4);
	if (!sep) {
		*hlen = len;
		return len;
	}
	*hlen = (size_t)(sep - msg) + 2;
	return *hlen + 2;
}

ssize_t dkim_sign_message(struct dkim_sign *st, const char *msg, size_t len, uint64_t t,
			  char *out, size_t cap)
{
	size_t hlen, body = split_message(msg, len, &hlen);

	dkim_sign_begin(st);
	dkim_sign_body(st, msg + body, len - body);
	return dkim_sign_end(st, msg, hlen, t, out, cap);
}

ssize_t dkim_sign_message_canonical(struct dkim_sign *st, const char *msg, size_t len,
				    uint64_t t, char *out, size_t cap)
{
	size_t hlen, body = split_message(msg, len, &hlen);

	dkim_sign_begin(st);
	if (st->body_sha_ready)
		dkim_body_feed_canonical(&st->body, msg + body, len - body);
	return dkim_sign_end(st, msg, hlen, t, out, cap);
}
