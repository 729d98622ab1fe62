/* sink_auth: volley sink's credentials (an auth file of "user:password"
 * lines) and the server side of the SASL mechanisms SMTP AUTH uses: PLAIN
 * (RFC 4616), LOGIN, CRAM-MD5 (RFC 2195) and XOAUTH2 (the password is the
 * bearer token). Pure once loaded: decoded client responses in, a yes or no
 * out. Passwords are compared in constant time, wiped when the table is
 * freed, and never printed. */
#ifndef VOLLEY_SINK_AUTH_H
#define VOLLEY_SINK_AUTH_H

#include <stddef.h>

#define SINK_AUTH_FIELD_MAX 256   /* the longest user name or password */

struct sink_auth;

/* Reads path. Lines are "user:password" (the first ':' splits; the password
 * may hold more); empty lines and lines starting with '#' are skipped.
 * Returns the table, or NULL with "FILE:LINE:COL: reason" in err. */
struct sink_auth *sink_auth_load(const char *path, char *err, size_t errlen);
/* Builds a table from memory, the same format (for tests). name is used in
 * error messages. */
struct sink_auth *sink_auth_parse(const char *name, const char *text, size_t len,
				  char *err, size_t errlen);
void sink_auth_free(struct sink_auth *a);
unsigned sink_auth_count(const struct sink_auth *a);

/* PLAIN: the decoded message "authzid NUL authcid NUL passwd". Returns 1 when
 * the password is right and the authzid is empty or the same user. */
int sink_auth_plain(const struct sink_auth *a, const char *msg, size_t len);
/* LOGIN: the decoded user name and password. Returns 1 or 0. */
int sink_auth_login(const struct sink_auth *a, const char *user, size_t ulen,
		    const char *pass, size_t plen);
/* CRAM-MD5: the challenge sent and the decoded response "user hexdigest".
 * Returns 1 when hexdigest is HMAC-MD5(password, challenge). */
int sink_auth_cram(const struct sink_auth *a, const char *challenge, size_t clen,
		   const char *resp, size_t rlen);
/* XOAUTH2: the decoded "user=U\x01auth=Bearer T\x01\x01". Returns 1 when T
 * is U's password. */
int sink_auth_xoauth2(const struct sink_auth *a, const char *msg, size_t len);

#endif
