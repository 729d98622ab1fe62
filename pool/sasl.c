/* sasl: client side of PLAIN, LOGIN, CRAM-MD5 and XOAUTH2 for SMTP AUTH.
 *
 * Every function here is pure: challenges in, response lines out. Anything
 * built from the credentials (the raw PLAIN/XOAUTH2 message, the HMAC state)
 * lives in stack buffers that are wiped before returning, so the only copies
 * left are the base64 lines handed back to the caller. */
#include "pool/sasl.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/coding.h>
#include <wolfssl/wolfcrypt/hmac.h>
#include <wolfssl/wolfcrypt/md5.h>

/* The largest raw message (before base64) a line can carry: the base64 of
 * it plus "AUTH XOAUTH2 " and CRLF must fit in SASL_LINE_MAX. */
#define SASL_RAW_MAX ((SASL_LINE_MAX / 4) * 3)

unsigned sasl_choose(unsigned offered, unsigned allowed)
{
	/* A bearer token is only ever sent when the user asked for nothing
	 * else: it is not interchangeable with a password. */
	if (allowed == SMTP_AUTH_XOAUTH2)
		return (offered & SMTP_AUTH_XOAUTH2) ? SMTP_AUTH_XOAUTH2 : 0;
	if (allowed == 0)
		allowed = SMTP_AUTH_CRAM_MD5 | SMTP_AUTH_PLAIN | SMTP_AUTH_LOGIN;
	static const unsigned order[] = { SMTP_AUTH_CRAM_MD5, SMTP_AUTH_PLAIN, SMTP_AUTH_LOGIN };
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
		if (offered & allowed & order[i])
			return order[i];
	return 0;
}

static const struct {
	unsigned mech;
	const char *name;
} mech_names[] = {
	{ SMTP_AUTH_PLAIN, "PLAIN" },
	{ SMTP_AUTH_LOGIN, "LOGIN" },
	{ SMTP_AUTH_CRAM_MD5, "CRAM-MD5" },
	{ SMTP_AUTH_XOAUTH2, "XOAUTH2" },
};

const char *sasl_mech_name(unsigned mech)
{
	for (size_t i = 0; i < sizeof(mech_names) / sizeof(mech_names[0]); i++)
		if (mech_names[i].mech == mech)
			return mech_names[i].name;
	return NULL;
}

unsigned sasl_mech_from_name(const char *name)
{
	if (!name)
		return 0;
	for (size_t i = 0; i < sizeof(mech_names) / sizeof(mech_names[0]); i++)
		if (strcasecmp(mech_names[i].name, name) == 0)
			return mech_names[i].mech;
	return 0;
}

/* ---- base64 ---- */

ssize_t sasl_b64_encode(const void *in, size_t len, char *out, size_t cap)
{
	if (len > SIZE_MAX / 4 - 3)
		return -1;
	size_t need = (len + 2) / 3 * 4;
	if (need > cap || need > UINT32_MAX)
		return -1;
	if (len == 0)
		return 0;
	/* The encoder NUL-terminates when there is room; cap bounds that too. */
	word32 olen = cap > UINT32_MAX ? UINT32_MAX : (word32)cap;
	if (Base64_Encode_NoNl(in, (word32)len, (byte *)out, &olen) != 0 || olen != need)
		return -1;
	return (ssize_t)need;
}

static int b64_is_alpha(unsigned char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
	       (ch >= '0' && ch <= '9') || ch == '+' || ch == '/';
}

ssize_t sasl_b64_decode(const char *in, size_t len, void *out, size_t cap)
{
	/* wolfCrypt's decoder skips line breaks and silently drops a short
	 * final group, so the strict RFC 4648 shape is checked here first:
	 * whole groups of four, the alphabet only, '=' only as 1-2 pads. */
	if (len % 4 != 0 || len > UINT32_MAX)
		return -1;
	if (len == 0)
		return 0;
	size_t pad = 0;
	if (in[len - 1] == '=')
		pad = in[len - 2] == '=' ? 2 : 1;
	for (size_t i = 0; i < len - pad; i++)
		if (!b64_is_alpha((unsigned char)in[i]))
			return -1;
	size_t n = len / 4 * 3 - pad;
	if (n > cap)
		return -1;

	/* wolfCrypt wants room for a whole final group even when padding
	 * makes it shorter; decode the body in place and the last group into
	 * a small buffer so an exactly sized out works. */
	byte *o = out;
	size_t body = len - 4;
	word32 olen = (word32)(body / 4 * 3);
	if (body > 0 && (Base64_Decode((const byte *)in, (word32)body, o, &olen) != 0 ||
			 olen != body / 4 * 3))
		return -1;
	byte last[4];
	word32 llen = sizeof(last);
	if (Base64_Decode((const byte *)in + body, 4, last, &llen) != 0 || llen != 3 - pad) {
		explicit_bzero(last, sizeof(last));
		return -1;
	}
	memcpy(o + body / 4 * 3, last, llen);
	explicit_bzero(last, sizeof(last));
	return (ssize_t)n;
}

/* ---- lines ---- */

/* Writes prefix, the base64 of raw and CRLF. Returns the length or -1. */
static ssize_t put_line(const char *prefix, const void *raw, size_t rawlen, char *out, size_t cap)
{
	size_t plen = strlen(prefix);
	if (cap < plen + 2)
		return -1;
	memcpy(out, prefix, plen);
	ssize_t n = sasl_b64_encode(raw, rawlen, out + plen, cap - plen - 2);
	if (n < 0) {
		explicit_bzero(out, cap);
		return -1;
	}
	memcpy(out + plen + (size_t)n, "\r\n", 2);
	return (ssize_t)(plen + (size_t)n + 2);
}

/* Credentials go inside a single command line, so CR and LF would split it;
 * NUL cannot occur in a C string. sep is a further byte the mechanism uses
 * as a separator (0 for none). */
static int creds_ok(const struct sasl_creds *cr, char sep)
{
	if (!cr || !cr->user || !cr->secret)
		return 0;
	const char *s[2] = { cr->user, cr->secret };
	for (int i = 0; i < 2; i++)
		for (const char *p = s[i]; *p; p++)
			if (*p == '\r' || *p == '\n' || (sep && *p == sep))
				return 0;
	return 1;
}

/* Appends a string to raw, failing when it would pass SASL_RAW_MAX. */
static int raw_put(char *raw, size_t *len, const void *s, size_t n)
{
	if (n > SASL_RAW_MAX - *len)
		return 0;
	memcpy(raw + *len, s, n);
	*len += n;
	return 1;
}

ssize_t sasl_start(struct sasl_client *c, unsigned mech, const struct sasl_creds *creds,
		   char *out, size_t cap)
{
	c->mech = mech;
	c->step = 0;
	c->creds = creds;

	char raw[SASL_RAW_MAX];
	size_t rl = 0;
	ssize_t n = -1;
	const char *user = creds ? creds->user : NULL;
	const char *secret = creds ? creds->secret : NULL;

	switch (mech) {
	case SMTP_AUTH_PLAIN:
		/* RFC 4616: authzid (empty) NUL authcid NUL passwd. */
		if (!creds_ok(creds, 0))
			break;
		if (raw_put(raw, &rl, "", 1) && raw_put(raw, &rl, user, strlen(user)) &&
		    raw_put(raw, &rl, "", 1) && raw_put(raw, &rl, secret, strlen(secret)))
			n = put_line("AUTH PLAIN ", raw, rl, out, cap);
		break;
	case SMTP_AUTH_XOAUTH2:
		/* \x01 separates the fields, so it may not appear inside one. */
		if (!creds_ok(creds, '\x01'))
			break;
		if (raw_put(raw, &rl, "user=", 5) && raw_put(raw, &rl, user, strlen(user)) &&
		    raw_put(raw, &rl, "\x01" "auth=Bearer ", 13) &&
		    raw_put(raw, &rl, secret, strlen(secret)) && raw_put(raw, &rl, "\x01\x01", 2))
			n = put_line("AUTH XOAUTH2 ", raw, rl, out, cap);
		break;
	case SMTP_AUTH_LOGIN:
	case SMTP_AUTH_CRAM_MD5: {
		if (!creds_ok(creds, 0))
			break;
		const char *line = mech == SMTP_AUTH_LOGIN ? "AUTH LOGIN\r\n" : "AUTH CRAM-MD5\r\n";
		size_t ll = strlen(line);
		if (ll <= cap) {
			memcpy(out, line, ll);
			n = (ssize_t)ll;
		}
		break;
	}
	default:
		break;
	}
	explicit_bzero(raw, rl);
	return n;
}

/* RFC 2195: base64("user " + lowercase hex of HMAC-MD5(password, challenge)). */
static ssize_t cram_md5(const struct sasl_creds *cr, const byte *chal, size_t chlen,
			char *out, size_t cap)
{
	static const char hexd[] = "0123456789abcdef";
	Hmac h;
	byte mac[WC_MD5_DIGEST_SIZE];
	char raw[SASL_RAW_MAX];
	size_t rl = 0;
	ssize_t n = -1;
	size_t klen = strlen(cr->secret);

	if (klen > UINT32_MAX || chlen > UINT32_MAX)
		return -1;
	if (wc_HmacInit(&h, NULL, INVALID_DEVID) != 0)
		return -1;
	int ok = wc_HmacSetKey(&h, WC_MD5, (const byte *)cr->secret, (word32)klen) == 0 &&
		 wc_HmacUpdate(&h, chal, (word32)chlen) == 0 &&
		 wc_HmacFinal(&h, mac) == 0;
	wc_HmacFree(&h);
	/* The HMAC state holds the padded password. */
	explicit_bzero(&h, sizeof(h));
	if (ok && raw_put(raw, &rl, cr->user, strlen(cr->user)) && raw_put(raw, &rl, " ", 1) &&
	    rl + 2 * sizeof(mac) <= SASL_RAW_MAX) {
		for (size_t i = 0; i < sizeof(mac); i++) {
			raw[rl++] = hexd[mac[i] >> 4];
			raw[rl++] = hexd[mac[i] & 15];
		}
		n = put_line("", raw, rl, out, cap);
	}
	explicit_bzero(mac, sizeof(mac));
	explicit_bzero(raw, rl);
	return n;
}

ssize_t sasl_step(struct sasl_client *c, const char *challenge, size_t len,
		  char *out, size_t cap)
{
	byte chal[SASL_RAW_MAX];
	ssize_t cl = sasl_b64_decode(challenge, len, chal, sizeof(chal));
	if (cl < 0 || !c->creds)
		return -1;
	ssize_t n = -1;
	const char *s;

	switch (c->mech) {
	case SMTP_AUTH_LOGIN:
		/* The prompts ("Username:", "Password:") vary between servers
		 * and languages; the order does not. */
		if (c->step > 1)
			break;
		s = c->step == 0 ? c->creds->user : c->creds->secret;
		n = put_line("", s, strlen(s), out, cap);
		break;
	case SMTP_AUTH_CRAM_MD5:
		if (c->step > 0)
			break;
		n = cram_md5(c->creds, chal, (size_t)cl, out, cap);
		break;
	case SMTP_AUTH_XOAUTH2:
		/* The challenge is a JSON error; an empty response makes the
		 * server finish with its 5xx. */
		if (c->step > 0 || cap < 2)
			break;
		memcpy(out, "\r\n", 2);
		n = 2;
		break;
	default:
		/* PLAIN sent everything in its initial response. */
		break;
	}
	explicit_bzero(chal, (size_t)cl);
	if (n >= 0)
		c->step++;
	return n;
}

void sasl_client_wipe(struct sasl_client *c)
{
	if (c)
		explicit_bzero(c, sizeof(*c));
}
