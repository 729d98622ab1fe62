/* smtp_ehlo: the server's capabilities, from its EHLO (or LHLO) reply. Pure. */
#ifndef VOLLEY_SMTP_EHLO_H
#define VOLLEY_SMTP_EHLO_H

#include <stddef.h>
#include <stdint.h>
#include "pool/smtp_reply.h"

enum smtp_ext {
	SMTP_EXT_PIPELINING          = 1u << 0,  /* RFC 2920 */
	SMTP_EXT_CHUNKING            = 1u << 1,  /* RFC 3030 */
	SMTP_EXT_SIZE                = 1u << 2,  /* RFC 1870 */
	SMTP_EXT_8BITMIME            = 1u << 3,  /* RFC 6152 */
	SMTP_EXT_SMTPUTF8            = 1u << 4,  /* RFC 6531 */
	SMTP_EXT_ENHANCEDSTATUSCODES = 1u << 5,  /* RFC 2034 */
	SMTP_EXT_STARTTLS            = 1u << 6,  /* RFC 3207 */
	SMTP_EXT_AUTH                = 1u << 7,  /* RFC 4954 */
	SMTP_EXT_DSN                 = 1u << 8,  /* RFC 3461 */
	SMTP_EXT_BINARYMIME          = 1u << 9,  /* RFC 3030 */
};

/* SASL mechanisms volley can speak, as bits (see pool/sasl.h). */
enum smtp_auth_mech {
	SMTP_AUTH_PLAIN    = 1u << 0,
	SMTP_AUTH_LOGIN    = 1u << 1,
	SMTP_AUTH_CRAM_MD5 = 1u << 2,
	SMTP_AUTH_XOAUTH2  = 1u << 3,
};

#define SMTP_EHLO_KEYWORDS_MAX 64
#define SMTP_EHLO_TEXT_MAX     1024  /* keyword names and params, NUL-separated */

/* Every session keeps its caps, so they are compact: the keywords' text
 * lives in one pool, and each keyword is two offsets into it. */
struct smtp_ehlo_keyword {
	uint16_t name;             /* upper-cased, e.g. "SIZE" */
	uint16_t params;           /* the rest of the line, as sent */
};

struct smtp_caps {
	unsigned ext;              /* enum smtp_ext bits */
	unsigned auth;             /* enum smtp_auth_mech bits the server offers */
	uint64_t size_max;         /* SIZE n; 0 when absent or given without n */
	char domain[256];          /* the first word of the first line */
	unsigned nkeywords;        /* every extension line, known or not, that fit */
	struct smtp_ehlo_keyword keywords[SMTP_EHLO_KEYWORDS_MAX];
	uint16_t text_len;
	char text[SMTP_EHLO_TEXT_MAX];
};

/* The name and the params of keyword i (< nkeywords). */
static inline const char *smtp_caps_keyword(const struct smtp_caps *caps, unsigned i)
{
	return caps->text + caps->keywords[i].name;
}
static inline const char *smtp_caps_keyword_params(const struct smtp_caps *caps, unsigned i)
{
	return caps->text + caps->keywords[i].params;
}

/* Fills *caps from a 250 reply to EHLO or LHLO. Keywords are matched without
 * regard to case; "AUTH=LOGIN PLAIN" (the pre-RFC 4954 form) counts as AUTH.
 * Lines past SMTP_EHLO_KEYWORDS_MAX, or past SMTP_EHLO_TEXT_MAX of keyword
 * text, are still parsed for known keywords but not listed. Returns 0, or -1
 * if the reply is not a 2xx. */
int smtp_ehlo_parse(const struct smtp_reply *r, struct smtp_caps *caps);

/* Returns the params of keyword name (case-insensitive) or NULL. */
const char *smtp_caps_param(const struct smtp_caps *caps, const char *name);

#endif
