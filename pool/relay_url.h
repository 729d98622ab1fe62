/* relay_url: the relay URLs that mean the same everywhere in volley. Pure.
 *
 *   smtp://host[:port]            port 25, STARTTLS when the server offers it
 *   smtp+starttls://host[:port]   port 587, STARTTLS required
 *   smtps://host[:port]           port 465, implicit TLS
 *   lmtp://host:port              LMTP over TCP (port required)
 *   lmtp:///path/to/socket        LMTP over a Unix socket
 *
 * host is a name, an IPv4 address, or an IPv6 address in brackets. No user
 * information is accepted in a URL: credentials never go on a command line. */
#ifndef VOLLEY_RELAY_URL_H
#define VOLLEY_RELAY_URL_H

#include <stddef.h>

enum relay_tls {
	RELAY_TLS_NONE,           /* lmtp:// */
	RELAY_TLS_OPPORTUNISTIC,  /* smtp://: STARTTLS if offered */
	RELAY_TLS_STARTTLS,       /* smtp+starttls://: STARTTLS or fail */
	RELAY_TLS_IMPLICIT,       /* smtps:// */
};

struct relay_url {
	int lmtp;                 /* speak LMTP (LHLO, per-recipient DATA replies) */
	enum relay_tls tls;
	char host[256];           /* without brackets; empty for a Unix socket */
	unsigned short port;
	char unix_path[108];      /* for lmtp:///path; empty otherwise */
};

/* Parses url into *out. Returns 0, or -1 with a message in err saying what is
 * wrong and at which column (1-based), e.g. "column 8: port out of range". */
int relay_url_parse(const char *url, struct relay_url *out, char *err, size_t errlen);

/* Writes the canonical form of u ("smtps://mail.test:465") into buf. Returns
 * buf. */
const char *relay_url_format(const struct relay_url *u, char *buf, size_t cap);

#endif
