/* smtp_reply: a pure parser for SMTP server replies (RFC 5321 section 4.2),
 * with the RFC 3463 enhanced status code when one is present.
 *
 * Stateless, in the manner of picohttpparser: the caller keeps the bytes it
 * has received and calls smtp_reply_parse() on them after each read; it gets
 * back the length of the first complete reply, or -2 for "need more", or -1
 * for a protocol error. Nothing here touches a socket or a clock. */
#ifndef VOLLEY_SMTP_REPLY_H
#define VOLLEY_SMTP_REPLY_H

#include <stddef.h>

/* RFC 5321 allows 512 octets per reply line; real servers send longer ones
 * (long EHLO lists, verbose rejections), so the cap is generous but firm. */
#define SMTP_REPLY_LINE_MAX  2048
#define SMTP_REPLY_LINES_MAX 128
/* The text of every line, joined with '\n'; longer text is truncated (and
 * marked truncated), never a reason to fail the reply. */
#define SMTP_REPLY_TEXT_MAX  4096

struct smtp_reply {
	int code;               /* 200..599 */
	/* RFC 3463 enhanced status code "class.subject.detail", or all zero.
	 * It is taken only when the first line carries it and its class agrees
	 * with the first digit of code; it is then stripped from every line. */
	int ecls, esub, edet;
	char enhanced[16];      /* the same as text, "5.1.1", or "" */
	unsigned nlines;
	int truncated;          /* text was cut at SMTP_REPLY_TEXT_MAX */
	size_t text_len;
	char text[SMTP_REPLY_TEXT_MAX + 1]; /* NUL-terminated, lines joined by '\n' */
};

/* Copies a reply: the fields and the used part of the text only (a reply
 * struct is mostly room, and copies are kept per transaction). */
void smtp_reply_copy(struct smtp_reply *dst, const struct smtp_reply *src);

/* Parses the first complete reply in buf[0..len).
 * Returns the number of bytes it spans (CRLF included; a bare LF is accepted
 * as a line end) with *out filled in, -2 if buf holds no complete reply yet,
 * or -1 if the bytes are not an SMTP reply (bad code, codes that differ
 * between lines, a line over SMTP_REPLY_LINE_MAX, more than
 * SMTP_REPLY_LINES_MAX lines, a NUL byte). */
int smtp_reply_parse(const char *buf, size_t len, struct smtp_reply *out);

/* Returns the reply's first digit: 2, 3, 4 or 5. */
static inline int smtp_reply_class(const struct smtp_reply *r) { return r->code / 100; }

/* Returns a pointer to line i of r->text (0-based) and sets *len; NULL when i
 * is past the last line. */
const char *smtp_reply_line(const struct smtp_reply *r, unsigned i, size_t *len);

/* Fills *r with a reply that volley made itself (a timeout, a local refusal),
 * so that every outcome carries a reply in the same shape. */
void smtp_reply_synth(struct smtp_reply *r, int code, const char *enhanced, const char *text);

#endif
