/* sasl: the client side of the SASL mechanisms SMTP AUTH uses (RFC 4954):
 * PLAIN (RFC 4616), LOGIN, CRAM-MD5 (RFC 2195) and XOAUTH2 (Google's bearer
 * token form). Pure: it turns server challenges into the lines to send.
 *
 * Credentials are borrowed, never copied into anything that outlives the
 * exchange; sasl_client_wipe() clears what the client built from them. */
#ifndef VOLLEY_SASL_H
#define VOLLEY_SASL_H

#include <stddef.h>
#include <sys/types.h>
#include "pool/smtp_ehlo.h"   /* enum smtp_auth_mech */

#define SASL_LINE_MAX 2048

struct sasl_creds {
	const char *user;
	const char *secret;   /* the password, or the OAuth2 access token for XOAUTH2 */
};

struct sasl_client {
	unsigned mech;        /* one enum smtp_auth_mech bit */
	int step;
	const struct sasl_creds *creds;
};

/* Picks the mechanism to use from those the server offers and those the user
 * allows (0 means "any"): XOAUTH2 only when it is the only one allowed (a token
 * is not a password), otherwise the first of CRAM-MD5, PLAIN, LOGIN offered.
 * Returns one enum smtp_auth_mech bit, or 0 when none fits. */
unsigned sasl_choose(unsigned offered, unsigned allowed);

/* Returns "PLAIN", "LOGIN", "CRAM-MD5" or "XOAUTH2" for a single bit; NULL
 * otherwise. sasl_mech_from_name() is the inverse (case-insensitive), 0 when
 * unknown. */
const char *sasl_mech_name(unsigned mech);
unsigned sasl_mech_from_name(const char *name);

/* Starts an exchange. Writes the AUTH command line ("AUTH PLAIN <b64>\r\n",
 * "AUTH LOGIN\r\n", ...), using an initial response where the mechanism has
 * one. Returns bytes written, or -1 when the line does not fit in cap or the
 * credentials hold bytes the mechanism cannot carry (NUL, CR, LF). */
ssize_t sasl_start(struct sasl_client *c, unsigned mech, const struct sasl_creds *creds,
		   char *out, size_t cap);

/* Answers a 334 challenge. challenge is the reply text after "334 " (base64,
 * possibly empty). Writes the response line (base64 and CRLF). Returns bytes
 * written, or -1 on a challenge that does not decode or a step the mechanism
 * does not have. For XOAUTH2 a 334 carries a JSON error; the answer is an
 * empty line, after which the server sends its final 5xx. */
ssize_t sasl_step(struct sasl_client *c, const char *challenge, size_t len,
		  char *out, size_t cap);

/* Clears the client's state. The caller wipes its own copies of lines it
 * sent (they hold the credentials in base64) with explicit_bzero. */
void sasl_client_wipe(struct sasl_client *c);

/* Base64 (RFC 4648, no line breaks). Return bytes written, or -1 when out is
 * too small or (decode) the input is not base64. */
ssize_t sasl_b64_encode(const void *in, size_t len, char *out, size_t cap);
ssize_t sasl_b64_decode(const char *in, size_t len, void *out, size_t cap);

#endif
