/* smtp_ehlo: see smtp_ehlo.h. Works on the parsed reply text, so every line
 * is already bounded by SMTP_REPLY_LINE_MAX; the copies into smtp_caps are
 * bounded again by their own sizes. */
#include "pool/smtp_ehlo.h"

#include <string.h>
#include <strings.h>

static char to_upper(char c)
{
	return c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
}

/* Compares s[0..n) with the upper-case word w, ignoring the case of s. */
static int word_eq(const char *s, size_t n, const char *w)
{
	size_t wl = strlen(w);

	if (n != wl)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (to_upper(s[i]) != w[i])
			return 0;
	return 1;
}

static void copy_bounded(char *dst, size_t cap, const char *src, size_t n)
{
	if (n > cap - 1)
		n = cap - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static unsigned auth_mechs(const char *p, size_t n)
{
	static const struct { const char *name; unsigned bit; } mechs[] = {
		{ "PLAIN", SMTP_AUTH_PLAIN },
		{ "LOGIN", SMTP_AUTH_LOGIN },
		{ "CRAM-MD5", SMTP_AUTH_CRAM_MD5 },
		{ "XOAUTH2", SMTP_AUTH_XOAUTH2 },
	};
	unsigned bits = 0;
	size_t i = 0;

	while (i < n) {
		size_t start;
		while (i < n && (p[i] == ' ' || p[i] == '\t'))
			i++;
		start = i;
		while (i < n && p[i] != ' ' && p[i] != '\t')
			i++;
		for (size_t k = 0; k < sizeof(mechs) / sizeof(mechs[0]); k++)
			if (word_eq(p + start, i - start, mechs[k].name))
				bits |= mechs[k].bit;
	}
	return bits;
}

/* "SIZE" alone or "SIZE 0" means no fixed limit (RFC 1870): both give 0. A
 * number too large for 64 bits is no limit either, so it saturates. */
static uint64_t parse_size(const char *p, size_t n)
{
	uint64_t v = 0;
	size_t i = 0;

	while (i < n && p[i] == ' ')
		i++;
	if (i == n || p[i] < '0' || p[i] > '9')
		return 0;
	for (; i < n && p[i] >= '0' && p[i] <= '9'; i++) {
		unsigned d = (unsigned)(p[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return UINT64_MAX;
		v = v * 10 + d;
	}
	if (i < n && p[i] != ' ')
		return 0;
	return v;
}

static void parse_line(struct smtp_caps *caps, const char *p, size_t n)
{
	static const struct { const char *name; unsigned bit; } exts[] = {
		{ "PIPELINING", SMTP_EXT_PIPELINING },
		{ "CHUNKING", SMTP_EXT_CHUNKING },
		{ "SIZE", SMTP_EXT_SIZE },
		{ "8BITMIME", SMTP_EXT_8BITMIME },
		{ "SMTPUTF8", SMTP_EXT_SMTPUTF8 },
		{ "ENHANCEDSTATUSCODES", SMTP_EXT_ENHANCEDSTATUSCODES },
		{ "STARTTLS", SMTP_EXT_STARTTLS },
		{ "AUTH", SMTP_EXT_AUTH },
		{ "DSN", SMTP_EXT_DSN },
		{ "BINARYMIME", SMTP_EXT_BINARYMIME },
	};
	size_t i = 0, kw, klen;
	const char *params;
	size_t plen;
	unsigned bit = 0;

	while (i < n && (p[i] == ' ' || p[i] == '\t'))
		i++;
	kw = i;
	while (i < n && p[i] != ' ' && p[i] != '\t')
		i++;
	klen = i - kw;
	if (klen == 0)
		return;
	if (i < n)
		i++;
	params = p + i;
	plen = n - i;

	/* The pre-RFC 4954 "AUTH=LOGIN PLAIN" is AUTH with its mechanisms
	 * after the '='. */
	if (klen > 5 && word_eq(p + kw, 5, "AUTH=")) {
		params = p + kw + 5;
		plen = n - kw - 5;
		klen = 4;
	}

	for (size_t k = 0; k < sizeof(exts) / sizeof(exts[0]); k++)
		if (word_eq(p + kw, klen, exts[k].name))
			bit = exts[k].bit;
	caps->ext |= bit;
	if (bit == SMTP_EXT_AUTH)
		caps->auth |= auth_mechs(params, plen);
	if (bit == SMTP_EXT_SIZE)
		caps->size_max = parse_size(params, plen);

	/* Listed only when the whole keyword and its params fit. */
	if (caps->nkeywords < SMTP_EHLO_KEYWORDS_MAX &&
	    klen + plen + 2 <= (size_t)SMTP_EHLO_TEXT_MAX - caps->text_len) {
		struct smtp_ehlo_keyword *k = &caps->keywords[caps->nkeywords++];
		char *t = caps->text + caps->text_len;
		k->name = caps->text_len;
		for (size_t j = 0; j < klen; j++)
			t[j] = to_upper(p[kw + j]);
		t[klen] = '\0';
		k->params = (uint16_t)(caps->text_len + klen + 1);
		memcpy(t + klen + 1, params, plen);
		t[klen + 1 + plen] = '\0';
		caps->text_len = (uint16_t)(caps->text_len + klen + plen + 2);
	}
}

int smtp_ehlo_parse(const struct smtp_reply *r, struct smtp_caps *caps)
{
	const char *line;
	size_t len, i = 0;

	memset(caps, 0, sizeof(*caps));
	if (r->code < 200 || r->code > 299)
		return -1;
	line = smtp_reply_line(r, 0, &len);
	if (line) {
		while (i < len && line[i] != ' ' && line[i] != '\t')
			i++;
		copy_bounded(caps->domain, sizeof(caps->domain), line, i);
	}
	for (unsigned n = 1; (line = smtp_reply_line(r, n, &len)) != NULL; n++) {
		/* A line cut by the reply's text cap could read as a smaller
		 * SIZE or a different keyword: it is left out. */
		if (r->truncated && line + len == r->text + r->text_len)
			break;
		parse_line(caps, line, len);
	}
	return 0;
}

const char *smtp_caps_param(const struct smtp_caps *caps, const char *name)
{
	for (unsigned i = 0; i < caps->nkeywords; i++)
		if (strcasecmp(smtp_caps_keyword(caps, i), name) == 0)
			return smtp_caps_keyword_params(caps, i);
	return NULL;
}
