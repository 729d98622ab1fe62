/* relay_url: see relay_url.h. Error messages never quote the URL back: a
 * mistaken "user:password@host" must not reach a log through its error. */
#include "pool/relay_url.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static int url_error(char *err, size_t errlen, size_t col, const char *msg)
{
	if (err && errlen)
		snprintf(err, errlen, "column %zu: %s", col, msg);
	return -1;
}

static int is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static const struct {
	const char *name;
	int lmtp;
	enum relay_tls tls;
	unsigned short port;    /* 0: the port must be given */
} schemes[] = {
	{ "smtp", 0, RELAY_TLS_OPPORTUNISTIC, 25 },
	{ "smtp+starttls", 0, RELAY_TLS_STARTTLS, 587 },
	{ "smtps", 0, RELAY_TLS_IMPLICIT, 465 },
	{ "lmtp", 1, RELAY_TLS_NONE, 0 },
};

/* Checks a host name or IPv4 address s[0..n) (RFC 1123 labels). Returns 0,
 * or -1 with the fault's offset in *at and its reason in *why. */
static int check_hostname(const char *s, size_t n, size_t *at, const char **why)
{
	size_t label = 0;
	int all_digits = 1;

	for (size_t i = 0; i <= n; i++) {
		char c = i < n ? s[i] : '.';
		if (c == '.') {
			if (i == label) {
				*why = "empty label in host";
				*at = i;
				return -1;
			}
			if (i - label > 63) {
				*why = "host label too long";
				*at = label;
				return -1;
			}
			if (s[label] == '-' || s[i - 1] == '-') {
				*why = "host label starts or ends with '-'";
				*at = s[label] == '-' ? label : i - 1;
				return -1;
			}
			label = i + 1;
			continue;
		}
		if (!is_alnum(c) && c != '-') {
			*why = "character not allowed in host";
			*at = i;
			return -1;
		}
		if (c < '0' || c > '9')
			all_digits = 0;
	}
	/* "1.2.3.999" is not a name that happens to be numeric: a host of
	 * digits and dots must be a real IPv4 address. */
	if (all_digits) {
		char tmp[INET_ADDRSTRLEN];
		struct in_addr a;
		if (n >= sizeof(tmp)) {
			*why = "bad IPv4 address";
			*at = 0;
			return -1;
		}
		memcpy(tmp, s, n);
		tmp[n] = '\0';
		if (inet_pton(AF_INET, tmp, &a) != 1) {
			*why = "bad IPv4 address";
			*at = 0;
			return -1;
		}
	}
	return 0;
}

int relay_url_parse(const char *url, struct relay_url *out, char *err, size_t errlen)
{
	const char *sep, *p, *host;
	size_t slen, hlen, k;
	unsigned long port = 0;

	memset(out, 0, sizeof(*out));
	if (err && errlen)
		err[0] = '\0';
	if (!url)
		return url_error(err, errlen, 1, "no URL");

	sep = strstr(url, "://");
	slen = sep ? (size_t)(sep - url) : 0;
	for (k = 0; sep && k < sizeof(schemes) / sizeof(schemes[0]); k++)
		if (strlen(schemes[k].name) == slen && strncasecmp(url, schemes[k].name, slen) == 0)
			break;
	if (!sep)
		return url_error(err, errlen, 1, "missing scheme (smtp://, smtps://, ...)");
	if (k == sizeof(schemes) / sizeof(schemes[0]))
		return url_error(err, errlen, 1,
				 "unknown scheme (want smtp://, smtp+starttls://, smtps:// or lmtp://)");
	out->lmtp = schemes[k].lmtp;
	out->tls = schemes[k].tls;
	out->port = schemes[k].port;
	p = sep + 3;

	if (*p == '/') {
		size_t plen = strlen(p);
		if (!out->lmtp)
			return url_error(err, errlen, (size_t)(p - url) + 1,
					 "a socket path is only for lmtp://");
		if (plen < 2)
			return url_error(err, errlen, (size_t)(p - url) + 2, "missing socket path");
		if (plen >= sizeof(out->unix_path))
			return url_error(err, errlen, (size_t)(p - url) + sizeof(out->unix_path),
					 "socket path too long");
		for (size_t i = 0; i < plen; i++)
			if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
				return url_error(err, errlen, (size_t)(p - url) + i + 1,
						 "control character in socket path");
		memcpy(out->unix_path, p, plen + 1);
		out->tls = RELAY_TLS_NONE;
		out->port = 0;
		return 0;
	}

	if (strchr(p, '@'))
		return url_error(err, errlen, (size_t)(strchr(p, '@') - url) + 1,
				 "user information is not accepted in a URL");

	host = p;
	if (*p == '[') {
		const char *close = strchr(p, ']');
		char tmp[INET6_ADDRSTRLEN];
		struct in6_addr a6;
		if (!close)
			return url_error(err, errlen, (size_t)(p - url) + 1, "'[' without ']'");
		host = p + 1;
		hlen = (size_t)(close - host);
		if (hlen == 0 || hlen >= sizeof(tmp))
			return url_error(err, errlen, (size_t)(host - url) + 1, "bad IPv6 address");
		memcpy(tmp, host, hlen);
		tmp[hlen] = '\0';
		if (inet_pton(AF_INET6, tmp, &a6) != 1)
			return url_error(err, errlen, (size_t)(host - url) + 1, "bad IPv6 address");
		p = close + 1;
	} else {
		const char *why = NULL;
		size_t bad;
		hlen = strcspn(p, ":/?#");
		if (hlen == 0)
			return url_error(err, errlen, (size_t)(p - url) + 1, "missing host");
		if (hlen >= sizeof(out->host))
			return url_error(err, errlen, (size_t)(p - url) + sizeof(out->host),
					 "host too long");
		if (check_hostname(host, hlen, &bad, &why) < 0)
			return url_error(err, errlen, (size_t)(host - url) + bad + 1, why);
		p += hlen;
	}
	for (size_t i = 0; i < hlen; i++)
		out->host[i] = (host[i] >= 'A' && host[i] <= 'Z') ? (char)(host[i] - 'A' + 'a') : host[i];
	out->host[hlen] = '\0';

	if (*p == ':') {
		const char *d = ++p;
		port = 0;
		while (*p >= '0' && *p <= '9' && p - d < 6)
			port = port * 10 + (unsigned long)(*p++ - '0');
		if (p == d)
			return url_error(err, errlen, (size_t)(d - url) + 1, "missing port");
		if ((*p >= '0' && *p <= '9') || port == 0 || port > 65535)
			return url_error(err, errlen, (size_t)(d - url) + 1, "port out of range");
		out->port = (unsigned short)port;
	}
	if (*p == '/')
		return url_error(err, errlen, (size_t)(p - url) + 1, "a path is not accepted here");
	if (*p)
		return url_error(err, errlen, (size_t)(p - url) + 1, "unexpected character");
	if (out->port == 0)
		return url_error(err, errlen, (size_t)(p - url) + 1,
				 "lmtp:// over TCP requires a port");
	return 0;
}

const char *relay_url_format(const struct relay_url *u, char *buf, size_t cap)
{
	const char *scheme = "smtp";

	if (!cap)
		return buf;
	if (u->lmtp) {
		scheme = "lmtp";
	} else if (u->tls == RELAY_TLS_STARTTLS) {
		scheme = "smtp+starttls";
	} else if (u->tls == RELAY_TLS_IMPLICIT) {
		scheme = "smtps";
	}
	if (u->lmtp && u->unix_path[0])
		snprintf(buf, cap, "lmtp://%s", u->unix_path);
	else if (strchr(u->host, ':'))
		snprintf(buf, cap, "%s://[%s]:%u", scheme, u->host, (unsigned)u->port);
	else
		snprintf(buf, cap, "%s://%s:%u", scheme, u->host, (unsigned)u->port);
	return buf;
}
