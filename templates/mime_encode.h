/* mime_encode: the encodings a message is written in. Pure: bytes in, bytes
 * appended to a capped struct bytebuf, nothing else touched.
 *
 * Bodies: quoted-printable and base64 (RFC 2045 6.7, 6.8), and the choice of
 * a text part's Content-Transfer-Encoding: 7bit, 8bit when the server offers
 * 8BITMIME, quoted-printable otherwise.
 *
 * Header fields: a struct mime_field writes one field a token at a time and
 * folds before whitespace so that lines stay within 78 octets where the
 * tokens allow it and never pass 998 (RFC 5322 2.1.1, 2.2.3). Non-ASCII text
 * goes in RFC 2047 encoded words (UTF-8, B or Q whichever is shorter, at most
 * 75 characters each, never splitting a UTF-8 sequence), unless the message
 * goes out with SMTPUTF8 (RFC 6532), where raw UTF-8 is allowed.
 *
 * Every function returns 0 or a negative MIME_E* code; on failure the output
 * buffer is left as it was on entry unless said otherwise. */
#ifndef VOLLEY_MIME_ENCODE_H
#define VOLLEY_MIME_ENCODE_H

#include <stddef.h>

#include "templates/bytebuf.h"

#define MIME_LINE_MAX    998   /* octets in a line, CRLF excluded (RFC 5322 2.1.1) */
#define MIME_LINE_SHOULD 78    /* ... and what a line should stay within */
#define MIME_QP_LINE     76    /* RFC 2045 6.7 (5) */
#define MIME_B64_LINE    76    /* RFC 2045 6.8 */
#define MIME_EWORD_MAX   75    /* RFC 2047 2 */

#define MIME_EBUF   (-1)   /* the output passed its cap, or no memory: see out->errstr */
#define MIME_EUTF8  (-2)   /* the text is not valid UTF-8 */
#define MIME_ELONG  (-3)   /* a token no folding can fit in MIME_LINE_MAX */
#define MIME_EADDR  (-4)   /* an address that cannot be written (see mime_address.h) */
#define MIME_ESOURCE (-5)  /* a part's writer failed (mime_message.h): it knows why */

/* A short static description of a MIME_E* code (out may be NULL; with it,
 * MIME_EBUF says which limit was hit). */
const char *mime_strerror(int code, const struct bytebuf *out);

/* ---- bodies ---- */

enum mime_cte {
	MIME_CTE_7BIT,
	MIME_CTE_8BIT,
	MIME_CTE_QP,
	MIME_CTE_BASE64,
};

/* "7bit", "8bit", "quoted-printable", "base64". */
const char *mime_cte_name(enum mime_cte cte);

/* The encoding a text part goes in. Line ends in text may be CRLF, LF or a
 * CR alone; each is written as CRLF and none counts in a line's length.
 * 7bit: ASCII without NUL, every line at most 998 octets. 8bit: the same
 * but with non-ASCII (valid UTF-8), only when allow_8bit (the server offers
 * 8BITMIME). Otherwise quoted-printable. */
enum mime_cte mime_text_cte(const char *text, size_t n, int allow_8bit);

/* mime_text_copy's answer when text cannot go as it is. */
#define MIME_NEED_QP 1

/* Appends text with every line end made CRLF, when mime_text_cte would say
 * 7bit or 8bit, and sets *cte to which. Returns 0, MIME_NEED_QP when text
 * must be quoted-printable (nothing appended), MIME_EUTF8, or MIME_EBUF.
 * One pass; ASCII is scanned eight bytes at a time. */
int mime_text_copy(struct bytebuf *out, const char *text, size_t n, int allow_8bit,
		   enum mime_cte *cte);

/* Appends text (valid UTF-8, else MIME_EUTF8) in quoted-printable: line
 * ends (CRLF, LF, CR) become CRLF hard breaks; lines are at most 76
 * characters, soft breaks ("=" CRLF) never split an =XX; '=', controls other
 * than TAB, and every non-ASCII byte are =XX; a space or TAB before a line
 * end (or at the end) is =20 or =09. A '.' starting a line stays as it is
 * (SMTP dot-stuffs). Returns 0, MIME_EUTF8 or MIME_EBUF. */
int mime_qp_encode(struct bytebuf *out, const char *text, size_t n);

/* The length of mime_base64_encode's output for n bytes. */
size_t mime_base64_len(size_t n);

/* Appends p[0..n) in base64, 76 characters a line, every line (the last
 * too) ending in CRLF; nothing for n == 0. Returns 0 or MIME_EBUF. */
int mime_base64_encode(struct bytebuf *out, const void *p, size_t n);

/* ---- header fields ---- */

/* One header field being written. */
struct mime_field {
	struct bytebuf *out;
	size_t start;        /* where the field starts in out */
	size_t col;          /* octets on the line being written */
	unsigned tokens;     /* tokens written after the name */
};

/* Starts the field "name:" (the name is not checked here). Returns 0 or
 * MIME_EBUF. */
int mime_field_begin(struct mime_field *f, struct bytebuf *out, const char *name, size_t len);

/* Appends the whitespace ws[0..wsn) then the token tok[0..n), folding
 * (CRLF before ws) when the line would pass 78 octets and something is on it
 * already, or would pass 998. With wsn == 0 there is no place to fold. The
 * first token after the name should come with ws " ". Returns 0, MIME_ELONG
 * (nothing appended) or MIME_EBUF. */
int mime_field_token(struct mime_field *f, const char *ws, size_t wsn, const char *tok, size_t n);

/* Appends ws then text[0..n) (valid UTF-8) as RFC 2047 encoded words, with
 * "=?UTF-8?B?" or "=?UTF-8?Q?" whichever makes the text shorter; Q uses only
 * the characters allowed in a phrase (RFC 2047 5 (3)), so the words may
 * stand for a display name too. The first word fills what is left of the
 * line when that is worth it; the words are separated by folds or spaces,
 * which decoders drop. Returns 0, MIME_EUTF8, MIME_ELONG or MIME_EBUF. */
int mime_field_encoded(struct mime_field *f, const char *ws, size_t wsn, const char *text, size_t n);

/* Appends an unstructured value (Subject and the like): leading and
 * trailing whitespace dropped, the rest kept exactly, folded at whitespace.
 * A word is written as it is unless it holds non-ASCII (and !utf8), a
 * control character, or "=?" (it would read as an encoded word), or cannot
 * fit in 998 octets; such words, and the whitespace between neighbours of
 * them, go as encoded words. Returns 0, MIME_EUTF8, MIME_ELONG or MIME_EBUF. */
int mime_field_unstructured(struct mime_field *f, const char *v, size_t n, int utf8);

/* Ends the field with CRLF. Returns 0 or MIME_EBUF. */
int mime_field_end(struct mime_field *f);

/* Drops a half-written field from out (after an error). */
void mime_field_cancel(struct mime_field *f);

/* Header injection: copies v[0..n) into dst (room for n bytes) with every
 * run of CR and LF removed when a space or tab follows it (that is RFC 5322
 * unfolding, so a folded template value reads as it was meant) and replaced
 * by one space otherwise. The result holds no CR or LF, so a rendered value
 * can never start a header line of its own. Returns the new length. */
size_t mime_header_clean(char *dst, const char *v, size_t n);

#endif
