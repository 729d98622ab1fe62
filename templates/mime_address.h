/* mime_address: mailboxes and address lists in header fields (RFC 5322
 * 3.4), internationalised (RFC 6531, 6532). Pure, apart from libidn2's
 * conversion of a non-ASCII domain.
 *
 * Parsing reads what a template rendered, e.g.
 *     "Doe, Jane" <jane@example.test>, bob@example.test (Bob)
 * into mailboxes whose display names are what they mean (quotes, escapes
 * and comments gone). Writing puts them back in the form the message needs:
 * a display name as atoms, a quoted string or RFC 2047 encoded words; a
 * non-ASCII domain as its A-label (libidn2, IDNA2008 with TR46
 * non-transitional mapping) unless the server has SMTPUTF8, where UTF-8 is
 * kept; a non-ASCII local part only with SMTPUTF8. */
#ifndef VOLLEY_MIME_ADDRESS_H
#define VOLLEY_MIME_ADDRESS_H

#include <stddef.h>
#include <sys/types.h>

#include "templates/mime_encode.h"

#define MIME_LOCAL_MAX  64    /* RFC 5321 4.5.3.1.1 */
#define MIME_DOMAIN_MAX 255   /* RFC 5321 4.5.3.1.2 */
#define MIME_ADDR_MAX   254   /* local@domain, so that <local@domain> fits a 256-octet path */

/* One mailbox: views into the parsed text, except name which is in the
 * caller's store. */
struct mime_mailbox {
	const char *name;      /* display name as meant; name_len 0 when there is none */
	size_t name_len;
	const char *local;     /* local part as written: dot-atom or "quoted string" */
	size_t local_len;
	const char *domain;    /* domain as written: dot-atom (may be UTF-8) or [literal] */
	size_t domain_len;
};

/* Where parsing stopped, and why (static text). */
struct mime_addr_error {
	size_t offset;
	const char *why;
};

/* Parses s[0..n) (valid UTF-8, no CR or LF: see mime_header_clean) as an
 * address list of at most max mailboxes into out; display names are written
 * into store (store_cap >= n is always enough). Groups are not accepted.
 *
 * When the list does not parse but the text is one "<addr-spec>" at its
 * end after some other text, that text is taken as the display name as it
 * stands (one quoted string is unquoted), so that a template's
 * "{{name}} <{{email}}>" works for the name "Doe, Jane" too.
 *
 * Returns the number of mailboxes (at least 1), or -1 with *err filled. */
int mime_address_list_parse(const char *s, size_t n, struct mime_mailbox *out, size_t max,
			    char *store, size_t store_cap, struct mime_addr_error *err);

/* The same for exactly one mailbox. Returns 0 or -1 with *err filled. */
int mime_mailbox_parse(const char *s, size_t n, struct mime_mailbox *out,
		       char *store, size_t store_cap, struct mime_addr_error *err);

/* Writes into out (NUL-terminated) the domain d[0..n) as it goes on the
 * wire: ASCII as it is; non-ASCII checked and converted to its A-label,
 * or kept in UTF-8 when smtputf8. Returns the length, or -1 with *why set
 * (libidn2's reason, or "domain too long"). */
ssize_t mime_domain_wire(const char *d, size_t n, int smtputf8, char out[MIME_DOMAIN_MAX + 1],
			 const char **why);

/* Writes the bare address "local@domain" of mb (for MAIL FROM and RCPT TO)
 * into out, NUL-terminated. Returns its length, or -1 with *why set: a
 * non-ASCII local part without smtputf8, a bad domain, out too small. */
ssize_t mime_mailbox_envelope(const struct mime_mailbox *mb, int smtputf8, char *out, size_t cap,
			      const char **why);

/* Appends mb to a header field after the whitespace ws: the display name
 * (atoms, a quoted string, or encoded words when it holds non-ASCII and
 * !smtputf8, a control character or "=?") then "<local@domain>", or the bare
 * address when there is no name. Returns 0, or a MIME_E* code; for
 * MIME_EADDR *why says what is wrong with the address. */
int mime_mailbox_write(struct mime_field *f, const char *ws, size_t wsn,
		       const struct mime_mailbox *mb, int smtputf8, const char **why);

/* Appends the n mailboxes separated by ", " (folding between them). Returns
 * what mime_mailbox_write returns. */
int mime_address_list_write(struct mime_field *f, const struct mime_mailbox *mb, size_t n,
			    int smtputf8, const char **why);

#endif
