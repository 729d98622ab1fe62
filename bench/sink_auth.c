/* sink_auth: credentials and server-side SASL checks. See sink_auth.h. */
#include "bench/sink_auth.h"
#include "bench/sink_file.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/hmac.h>
#include <wolfssl/wolfcrypt/md5.h>

#define SINK_AUTH_FILE_MAX (4 * 1024 * 1024)

struct sink_cred {
	char *user, *pass;   /* into blob */
	size_t ulen, plen;
};

struct sink_auth {
	char *blob;          /* a copy of the file, split in place */
	size_t blob_len;
	struct sink_cred *creds;
	unsigned n;
};

void sink_auth_free(struct sink_auth *a)
{
	if (!a)
		return;
	if (a->blob) {
		explicit_bzero(a->blob, a->blob_len);
		free(a->blob);
	}
	free(a->creds);
	free(a);
}

unsigned sink_auth_count(const struct sink_auth *a)
{
	return a ? a->n : 0;
}

struct sink_auth *sink_auth_parse(const char *name, const char *text, size_t len,
				  char *err, size_t errlen)
{
	struct sink_auth *a = calloc(1, sizeof *a);
	if (!a || !(a->blob = malloc(len + 1))) {
		free(a);
		snprintf(err, errlen, "%s: out of memory", name);
		return NULL;
	}
	memcpy(a->blob, text, len);
	a->blob[len] = 0;
	a->blob_len = len + 1;
	unsigned cap = 0;
	unsigned lineno = 0;
	char *p = a->blob, *end = a->blob + len;
	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		char *eol = nl ? nl : end;
		lineno++;
		if (eol > p && eol[-1] == '\r')
			eol[-1] = 0, eol--;
		*eol = 0;
		size_t ll = (size_t)(eol - p);
		if (ll == 0 || p[0] == '#')
			goto next;
		if (memchr(p, 0, ll)) {
			snprintf(err, errlen, "%s:%u:%zu: NUL byte", name, lineno,
				 (size_t)((char *)memchr(p, 0, ll) - p) + 1);
			goto fail;
		}
		char *colon = memchr(p, ':', ll);
		if (!colon) {
			snprintf(err, errlen, "%s:%u:%zu: expected user:password", name, lineno, ll + 1);
			goto fail;
		}
		size_t ulen = (size_t)(colon - p), plen = ll - ulen - 1;
		if (ulen == 0) {
			snprintf(err, errlen, "%s:%u:1: empty user name", name, lineno);
			goto fail;
		}
		if (plen == 0) {
			snprintf(err, errlen, "%s:%u:%zu: empty password", name, lineno, ulen + 2);
			goto fail;
		}
		if (ulen > SINK_AUTH_FIELD_MAX || plen > SINK_AUTH_FIELD_MAX) {
			snprintf(err, errlen, "%s:%u:%zu: %s longer than %d bytes", name, lineno,
				 ulen > SINK_AUTH_FIELD_MAX ? (size_t)1 : ulen + 2,
				 ulen > SINK_AUTH_FIELD_MAX ? "user name" : "password", SINK_AUTH_FIELD_MAX);
			goto fail;
		}
		for (size_t i = 0; i < ulen; i++) {
			if ((unsigned char)p[i] < 0x21 || p[i] == 0x7f) {
				snprintf(err, errlen, "%s:%u:%zu: space or control character in the user name",
					 name, lineno, i + 1);
				goto fail;
			}
		}
		if (a->n == cap) {
			unsigned ncap = cap ? cap * 2 : 8;
			struct sink_cred *c = realloc(a->creds, ncap * sizeof *c);
			if (!c) {
				snprintf(err, errlen, "%s: out of memory", name);
				goto fail;
			}
			a->creds = c;
			cap = ncap;
		}
		*colon = 0;
		a->creds[a->n++] = (struct sink_cred){ p, colon + 1, ulen, plen };
next:
		p = nl ? nl + 1 : end;
	}
	if (a->n == 0) {
		snprintf(err, errlen, "%s: no user:password line", name);
		goto fail;
	}
	return a;
fail:
	sink_auth_free(a);
	return NULL;
}

struct sink_auth *sink_auth_load(const char *path, char *err, size_t errlen)
{
	size_t n;
	char *buf = sink_file_read(path, SINK_AUTH_FILE_MAX, &n, err, errlen);
	if (!buf)
		return NULL;
	struct sink_auth *a = sink_auth_parse(path, buf, n, err, errlen);
	explicit_bzero(buf, n);
	free(buf);
	return a;
}

/* ---- checks ---- */

static const struct sink_cred *find(const struct sink_auth *a, const char *user, size_t ulen)
{
	if (!a)
		return NULL;
	for (unsigned i = 0; i < a->n; i++)
		if (a->creds[i].ulen == ulen && memcmp(a->creds[i].user, user, ulen) == 0)
			return &a->creds[i];
	return NULL;
}

/* Compares without an early exit, so the time does not tell how much of a
 * guess was right. */
static int same_secret(const char *x, size_t xl, const char *y, size_t yl)
{
	unsigned char d = xl != yl;
	size_t n = xl < yl ? xl : yl;
	for (size_t i = 0; i < n; i++)
		d |= (unsigned char)(x[i] ^ y[i]);
	return d == 0;
}

int sink_auth_login(const struct sink_auth *a, const char *user, size_t ulen,
		    const char *pass, size_t plen)
{
	const struct sink_cred *c = find(a, user, ulen);
	return c && same_secret(c->pass, c->plen, pass, plen);
}

int sink_auth_plain(const struct sink_auth *a, const char *msg, size_t len)
{
	const char *nul1 = memchr(msg, 0, len);
	if (!nul1)
		return 0;
	const char *authcid = nul1 + 1;
	size_t rest = len - (size_t)(authcid - msg);
	const char *nul2 = memchr(authcid, 0, rest);
	if (!nul2)
		return 0;
	size_t zlen = (size_t)(nul1 - msg), ulen = (size_t)(nul2 - authcid);
	const char *pass = nul2 + 1;
	size_t plen = len - (size_t)(pass - msg);
	/* Acting for another user is not something the sink grants. */
	if (zlen && (zlen != ulen || memcmp(msg, authcid, ulen) != 0))
		return 0;
	if (memchr(pass, 0, plen))
		return 0;
	return sink_auth_login(a, authcid, ulen, pass, plen);
}

int sink_auth_cram(const struct sink_auth *a, const char *challenge, size_t clen,
		   const char *resp, size_t rlen)
{
	static const char hexd[] = "0123456789abcdef";
	const char *sp = memchr(resp, ' ', rlen);
	if (!sp || rlen - (size_t)(sp - resp) - 1 != 2 * WC_MD5_DIGEST_SIZE)
		return 0;
	const struct sink_cred *c = find(a, resp, (size_t)(sp - resp));
	if (!c || clen > UINT32_MAX)
		return 0;
	Hmac h;
	byte mac[WC_MD5_DIGEST_SIZE];
	char hex[2 * WC_MD5_DIGEST_SIZE];
	int ok = 0;
	if (wc_HmacInit(&h, NULL, INVALID_DEVID) != 0)
		return 0;
	if (wc_HmacSetKey(&h, WC_MD5, (const byte *)c->pass, (word32)c->plen) == 0 &&
	    wc_HmacUpdate(&h, (const byte *)challenge, (word32)clen) == 0 &&
	    wc_HmacFinal(&h, mac) == 0) {
		for (size_t i = 0; i < sizeof mac; i++) {
			hex[2 * i] = hexd[mac[i] >> 4];
			hex[2 * i + 1] = hexd[mac[i] & 15];
		}
		/* RFC 2195 asks for lower case; accept upper case digits too. */
		char got[2 * WC_MD5_DIGEST_SIZE];
		for (size_t i = 0; i < sizeof got; i++) {
			char ch = sp[1 + i];
			got[i] = (char)(ch >= 'A' && ch <= 'F' ? ch - 'A' + 'a' : ch);
		}
		ok = same_secret(hex, sizeof hex, got, sizeof got);
		explicit_bzero(got, sizeof got);
	}
	wc_HmacFree(&h);
	explicit_bzero(&h, sizeof h);
	explicit_bzero(mac, sizeof mac);
	explicit_bzero(hex, sizeof hex);
	return ok;
}

int sink_auth_xoauth2(const struct sink_auth *a, const char *msg, size_t len)
{
	/* user=U ^A auth=Bearer T ^A ^A */
	if (len < 5 + 1 + 12 + 2 || memcmp(msg, "user=", 5) != 0 ||
	    msg[len - 1] != 1 || msg[len - 2] != 1)
		return 0;
	const char *user = msg + 5;
	const char *sep = memchr(user, 1, len - 5);
	if (!sep)
		return 0;
	const char *auth = sep + 1;
	size_t left = len - (size_t)(auth - msg) - 2;   /* without the final ^A^A */
	if (left < 12 || strncasecmp(auth, "auth=Bearer ", 12) != 0)
		return 0;
	const char *tok = auth + 12;
	size_t tlen = left - 12;
	if (memchr(tok, 1, tlen))
		return 0;
	return sink_auth_login(a, user, (size_t)(sep - user), tok, tlen);
}
