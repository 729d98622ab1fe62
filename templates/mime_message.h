/* mime_message: one whole message (RFC 5322, RFC 2045-2047, RFC 8058) from
 * the pieces rendered for one recipient. Pure, except that random bytes
 * come from getrandom (in batches) unless the caller gives its own source.
 *
 * The message is written with CRLF line ends and no line over 998 octets:
 *
 *     Date, the template's headers in their order, Message-ID,
 *     List-Unsubscribe and List-Unsubscribe-Post (RFC 8058, when an https
 *     unsubscribe URL is given), MIME-Version: 1.0, then the body:
 *       text only       text/plain; charset=utf-8
 *       html only       text/html; charset=utf-8
 *       text and html   multipart/alternative (text first)
 *       attachments     multipart/mixed around the above, then each
 *                       attachment's precomputed base64 part
 *
 * Header values: each is cleaned by mime_header_clean, so that a CR or LF in
 * a rendered value never starts a header line (a run of them becomes one
 * space, or nothing when whitespace follows it, as in unfolding). From,
 * Sender, Reply-To, To, Cc and Bcc are parsed as addresses and written back
 * (mime_address.h); the others are unstructured text. Non-ASCII goes in
 * RFC 2047 encoded words unless opts->smtputf8, where it stays UTF-8. A
 * header whose value is empty after cleaning is left out (so "Cc: {{cc}}"
 * works for recipients without one); an empty From is an error.
 *
 * Text parts go as 7bit when they can, 8bit when they need it and the
 * server offers 8BITMIME, quoted-printable otherwise; they are copied in one
 * pass (the encoding is settled while copying). Boundaries are random and
 * hold "=_", which neither quoted-printable nor base64 can produce; parts
 * that go as they are (7bit, 8bit) are searched for the boundary, and the
 * message is built again with new boundaries in the (2^-80) case it is
 * there. The Message-ID is <YYYYMMDDhhmmss.R@domain>, R being 128 random
 * bits in base32.
 *
 * Text parts may also come from writers (mime_build_written) that write
 * them straight into the message: templates/message_render.c renders
 * mustache that way, with no copy of the text in between.
 *
 * A builder keeps its scratch memory between messages, and what does not
 * change from one to the next: the Date texts (per second), the
 * Message-ID's domain, List-Unsubscribe, and each header field whose value
 * is the one it had in the message before (a campaign's From, List-Id).
 * One per thread. */
#ifndef VOLLEY_MIME_MESSAGE_H
#define VOLLEY_MIME_MESSAGE_H

#include <stddef.h>
#include <stdint.h>

#include "templates/bytebuf.h"
#include "templates/mime_address.h"
#include "templates/mime_attachment.h"
#include "templates/mime_encode.h"

#define MIME_HEADER_NAME_MAX   76            /* octets in a header name */
#define MIME_HEADER_VALUE_MAX  (64u << 10)   /* octets in one rendered header value */
#define MIME_ADDRESSES_MAX     100           /* mailboxes in one address header */
#define MIME_URL_MAX           900           /* octets in an unsubscribe URL */
#define MIME_MSGID_MAX         (1 + 14 + 1 + 26 + 1 + MIME_DOMAIN_MAX + 1 + 1)
#define MIME_DATE_MAX          32            /* "Thu, 01 Jan 1970 00:00:00 +0000" and NUL */
#define MIME_ERR_MAX           320

/* One header as rendered: name and value (not NUL-terminated). */
struct mime_header_value {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
};

/* A text part that its owner writes straight into the message, rather
 * than handing over its text to be copied (templates/message_render.c
 * renders mustache this way). */
struct mime_text_writer {
	/* Appends the part's text to out, line ends CRLF, when it can go as
	 * 7bit, or 8bit when allow_8bit (see mime_text_cte): returns 0 and
	 * sets *cte, and *underscore to 0 when the text surely holds no '_'
	 * (boundaries hold one: such a text need not be searched for them);
	 * MIME_NEED_QP when it cannot, MIME_EUTF8, MIME_EBUF, or MIME_ESOURCE
	 * when the writer failed for a reason of its own (out is then as it
	 * was). */
	int (*write)(void *ud, struct bytebuf *out, int allow_8bit, enum mime_cte *cte,
		     int *underscore);
	/* The part's text as it is, for quoted-printable: returns 0 and sets
	 * *text and *len (valid until the next call), or MIME_ESOURCE. */
	int (*text)(void *ud, const char **text, size_t *len);
	void *ud;
};

/* What goes in the message. */
struct mime_message_parts {
	const struct mime_header_value *headers;
	size_t nheaders;
	const char *text;             /* NULL: no text/plain part */
	size_t text_len;
	const char *html;             /* NULL: no text/html part */
	size_t html_len;
	const struct mime_attachment *const *attachments;
	size_t nattachments;
};

/* How it goes out. */
struct mime_message_opts {
	int smtp_8bitmime;            /* the server offers 8BITMIME */
	int smtputf8;                 /* the message goes with SMTPUTF8 */
	const char *msgid_domain;     /* the right side of the Message-ID (required) */
	int64_t date;                 /* seconds since 1970 (UTC), the caller's clock */
	const char *unsubscribe_url;  /* "https://..." or NULL */
	const char *unsubscribe_mailto; /* "mailto:..." or NULL */
};

/* What the caller needs to send it. */
struct mime_message_info {
	int needs_8bitmime;           /* a part went as 8bit: MAIL FROM ... BODY=8BITMIME */
	int needs_smtputf8;           /* a header holds raw UTF-8: MAIL FROM ... SMTPUTF8 */
	char envelope_from[1 + MIME_LOCAL_MAX + 1 + MIME_DOMAIN_MAX + 1];  /* From's address */
	char message_id[MIME_MSGID_MAX];   /* with its angle brackets */
};

struct mime_builder;

/* Returns a builder, or NULL when out of memory. */
struct mime_builder *mime_builder_new(void);

/* b may be NULL. */
void mime_builder_free(struct mime_builder *b);

/* Random bytes come from fill (returns 0, or -1 on failure) instead of
 * getrandom: for tests, which need known boundaries and IDs. */
void mime_builder_set_random(struct mime_builder *b,
			     int (*fill)(void *ud, void *buf, size_t n), void *ud);

/* Appends the message to out. Returns 0 (and fills *info, which may be
 * NULL), or -1 with the reason in mime_builder_errstr (out is then as it
 * was): a header volley sets itself, a bad header name, a header given
 * twice that may appear once, no From or more than one mailbox in it, an
 * address that does not parse or cannot go without SMTPUTF8, invalid UTF-8,
 * a bad Message-ID domain or unsubscribe URL, out's cap. */
int mime_build(struct mime_builder *b, const struct mime_message_parts *in,
	       const struct mime_message_opts *o, struct bytebuf *out, struct mime_message_info *info);

/* The parts a caller writes itself: each, when not NULL, stands for the
 * text/plain or text/html part instead of in->text or in->html. */
struct mime_text_writers {
	const struct mime_text_writer *text;
	const struct mime_text_writer *html;
};

/* mime_build with writers for the text parts. It fails as mime_build
 * does, and also when a writer does (mime_builder_errstr then says
 * "...: its source failed"; the writer knows why). */
int mime_build_written(struct mime_builder *b, const struct mime_message_parts *in,
		       const struct mime_text_writers *w, const struct mime_message_opts *o,
		       struct bytebuf *out, struct mime_message_info *info);

/* Why the last mime_build failed. */
const char *mime_builder_errstr(const struct mime_builder *b);

/* ---- pieces, also used by the template parser ---- */

/* Writes t (seconds since 1970) as an RFC 5322 date-time in UTC, "Thu, 01
 * Jan 1970 00:00:00 +0000", into out. Returns its length, or 0 when t is
 * before 1970 or after 9999. */
size_t mime_format_date(int64_t t, char out[MIME_DATE_MAX]);

/* Returns 1 when name[0..len) is a header name: 1 to MIME_HEADER_NAME_MAX
 * printable ASCII characters but ':' (RFC 5322 2.2). */
int mime_header_name_valid(const char *name, size_t len);

/* Returns 1 when volley writes the header name[0..len) itself, so that a
 * template may not: Date, Message-ID, MIME-Version and Content-*. */
int mime_header_is_reserved(const char *name, size_t len);

/* Returns 1 when the header name[0..len) may appear at most once (RFC 5322
 * 3.6): From, Sender, Reply-To, To, Cc, Bcc, Subject, In-Reply-To,
 * References. */
int mime_header_is_single(const char *name, size_t len);

/* Returns 1 when the header name[0..len) holds addresses: From, Sender,
 * Reply-To, To, Cc, Bcc. */
int mime_header_is_address(const char *name, size_t len);

#endif
