/* dkim_header: a message's header block cut into fields, and the hash of the
 * fields a signature covers (RFC 6376 section 5.4.2: instances of a name are
 * taken from the bottom up, and a name listed once more than it occurs adds
 * nothing, which is how over-signing works). Pure apart from the hash. */
#include "templates/dkim.h"
#include "templates/dkim_crypto.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <string.h>
#include <strings.h>

#define IS_WSP(c) ((c) == ' ' || (c) == '\t')

static const EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void fetch_sha256(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

const EVP_MD *dkim_sha256(void)
{
	pthread_once(&sha256_once, fetch_sha256);
	return sha256_md;
}

EVP_MD_CTX *dkim_sha_new(void)
{
	return EVP_MD_CTX_new();
}

void dkim_sha_free(EVP_MD_CTX *ctx)
{
	EVP_MD_CTX_free(ctx);
}

int dkim_sha_init(EVP_MD_CTX *ctx)
{
	const EVP_MD *md = dkim_sha256();
	return md && EVP_DigestInit_ex(ctx, md, NULL) == 1 ? 0 : -1;
}

int dkim_sha_final(EVP_MD_CTX *ctx, unsigned char digest[32])
{
	return EVP_DigestFinal_ex(ctx, digest, NULL) == 1 ? 0 : -1;
}

void dkim_sha_write(void *arg, const void *p, size_t n)
{
	struct dkim_sha_sink *s = arg;

	if (n > 0 && EVP_DigestUpdate(s->sha256, p, n) != 1)
		s->failed = 1;
}

/* Returns the offset of the CR of the CRLF that ends the line starting at i,
 * or -1 when the line holds a bare CR or LF or has no CRLF. The line's LF is
 * found first and the CR looked for before it (memchr, not a byte loop). */
static ssize_t line_end(const char *h, size_t i, size_t len)
{
	const char *lf = i < len ? memchr(h + i, '\n', len - i) : NULL;

	if (!lf || lf == h + i || lf[-1] != '\r')
		return -1;
	size_t cr = (size_t)(lf - 1 - h);
	return memchr(h + i, '\r', cr - i) ? -1 : (ssize_t)cr;
}

/* ftext (RFC 5322 3.6.8): printable ASCII but the colon. */
static int is_ftext(unsigned char c)
{
	return c >= 33 && c <= 126 && c != ':';
}

int dkim_split_fields(const char *h, size_t len, struct dkim_field *fields, size_t max)
{
	size_t i = 0;
	int n = 0;

	while (i < len) {
		if (h[i] == '\r' && i + 1 < len && h[i + 1] == '\n')
			break;   /* the empty line that ends the header */
		if (IS_WSP(h[i]))
			return -1;   /* a continuation with no field above it */
		size_t start = i;
		ssize_t first_end = line_end(h, i, len);
		if (first_end < 0)
			return -1;
		ssize_t end = first_end;
		for (i = (size_t)end + 2; i < len && IS_WSP(h[i]); i = (size_t)end + 2) {
			end = line_end(h, i, len);
			if (end < 0)
				return -1;
		}
		/* The name ends at the colon, which is on the field's first line;
		 * obsolete syntax allows WSP before it. */
		size_t name_len = 0;
		while (start + name_len < (size_t)first_end && is_ftext((unsigned char)h[start + name_len]))
			name_len++;
		size_t k = start + name_len;
		while (k < (size_t)first_end && IS_WSP(h[k]))
			k++;
		if (name_len == 0 || k == (size_t)first_end || h[k] != ':')
			return -1;
		if ((size_t)n == max)
			return -2;
		fields[n++] = (struct dkim_field){ h + start, (size_t)end - start, name_len };
	}
	return n;
}

int dkim_header_hash_ctx(EVP_MD_CTX *ctx, const struct dkim_field *fields, size_t nfields,
			 const char *const *names, size_t nnames,
			 const char *sig, size_t siglen, unsigned char digest[32])
{
	unsigned char used[DKIM_MAX_FIELDS] = { 0 };

	if (nfields > DKIM_MAX_FIELDS || dkim_sha_init(ctx) != 0)
		return -1;
	struct dkim_sha_sink hs = { ctx, 0 };
	const struct dkim_sink sink = { dkim_sha_write, &hs };

	for (size_t i = 0; i < nnames; i++) {
		size_t nl = strlen(names[i]);
		for (size_t j = nfields; j-- > 0;) {
			if (used[j] || fields[j].name_len != nl || strncasecmp(fields[j].p, names[i], nl) != 0)
				continue;
			used[j] = 1;
			dkim_canon_header(fields[j].p, fields[j].len, 1, &sink);
			break;
		}
	}
	dkim_canon_header(sig, siglen, 0, &sink);
	if (dkim_sha_final(ctx, digest) != 0)
		hs.failed = 1;
	return hs.failed ? -1 : 0;
}

int dkim_header_hash(const struct dkim_field *fields, size_t nfields,
		     const char *const *names, size_t nnames,
		     const char *sig, size_t siglen, unsigned char digest[32])
{
	EVP_MD_CTX *ctx = dkim_sha_new();

	if (!ctx)
		return -1;
	int r = dkim_header_hash_ctx(ctx, fields, nfields, names, nnames, sig, siglen, digest);
	dkim_sha_free(ctx);
	return r;
}
