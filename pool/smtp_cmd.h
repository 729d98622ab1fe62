/* smtp_cmd: pure formatting of SMTP client commands, validation of what goes
 * into them, dot-stuffing for DATA and framing for BDAT.
 *
 * Every formatter writes into a caller's buffer of size cap and returns the
 * number of bytes written (CRLF included, no NUL), or a negative value:
 * SMTP_CMD_ETOOBIG when cap is too small, SMTP_CMD_EINVAL when an argument
 * would break the command (CR, LF or NUL in it, an invalid address). A
 * variable can therefore never inject a second command. */
#ifndef VOLLEY_SMTP_CMD_H
#define VOLLEY_SMTP_CMD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SMTP_CMD_ETOOBIG (-1)
#define SMTP_CMD_EINVAL  (-2)

/* RFC 5321 4.5.3.1: 256 octets for a path, 64 for a local part, 255 for a
 * domain; a command line is at most 512 octets (we allow parameters more). */
#define SMTP_PATH_MAX       256
#define SMTP_LOCAL_PART_MAX 64
#define SMTP_DOMAIN_MAX     255
#define SMTP_CMD_LINE_MAX   1024

/* Result of checking a mailbox address. */
struct smtp_addr_check {
	int ok;
	int utf8;            /* the address holds non-ASCII bytes (needs SMTPUTF8) */
	size_t bad_offset;   /* where the first problem is, when !ok */
	const char *why;     /* a short static reason, when !ok */
};

/* Checks a bare mailbox "local@domain" (no angle brackets), as it would go in
 * MAIL FROM or RCPT TO: non-empty local part and domain, lengths within RFC
 * 5321 limits, no CR, LF, NUL, space, control characters, '<' or '>'; the
 * local part may be a quoted string; the domain may be an address literal
 * "[127.0.0.1]". Non-ASCII UTF-8 is accepted and flagged in ->utf8 (invalid
 * UTF-8 is refused). allow_empty accepts "" (the null reverse-path).
 * Returns 1 when valid, 0 otherwise, and fills *res (which may be NULL). */
int smtp_addr_check(const char *addr, size_t len, int allow_empty, struct smtp_addr_check *res);

/* Parameters of MAIL FROM that volley sets. */
struct smtp_mail_params {
	uint64_t size;       /* SIZE=n when non-zero */
	int body_8bitmime;   /* BODY=8BITMIME */
	int smtputf8;        /* SMTPUTF8 */
	const char *ret;     /* DSN RET=FULL|HDRS, or NULL */
	const char *envid;   /* DSN ENVID=xtext, or NULL */
};

/* "MAIL FROM:<from> [params]\r\n". */
ssize_t smtp_fmt_mail(char *out, size_t cap, const char *from, const struct smtp_mail_params *p);

/* "RCPT TO:<to>[ NOTIFY=...]\r\n"; notify may be NULL. */
ssize_t smtp_fmt_rcpt(char *out, size_t cap, const char *to, const char *notify);

/* The same two without checking the address again, for a caller that has
 * already passed it through smtp_addr_check (the session checks each
 * transaction's addresses once, before it queues any of it). */
ssize_t smtp_fmt_mail_checked(char *out, size_t cap, const char *from,
			      const struct smtp_mail_params *p);
ssize_t smtp_fmt_rcpt_checked(char *out, size_t cap, const char *to, const char *notify);

/* "VERB\r\n" or "VERB arg\r\n" for EHLO, HELO, LHLO, VRFY, EXPN, HELP, NOOP,
 * RSET, QUIT, DATA, STARTTLS, AUTH ...; arg may be NULL. */
ssize_t smtp_fmt_cmd(char *out, size_t cap, const char *verb, const char *arg);

/* A raw command line given by the user ("VRFY alice"), CRLF appended; refused
 * when it holds CR, LF or NUL or is longer than SMTP_CMD_LINE_MAX. */
ssize_t smtp_fmt_raw(char *out, size_t cap, const char *line);

/* "BDAT n\r\n" or "BDAT n LAST\r\n". */
ssize_t smtp_fmt_bdat(char *out, size_t cap, uint64_t n, int last);

/* Dot-stuffing for DATA (RFC 5321 4.5.2) without copying the body: a '.'
 * that starts a line is sent twice, so the body goes out as runs of its own
 * bytes with one extra "." before each such dot. The body must already use
 * CRLF line ends (see smtp_msg_inspect).
 *
 * smtp_dot_next returns the offset of the first '.' at or after `from` that
 * starts a line (offset 0, or just after a LF), or len when there is none.
 * Any LF starts a line, not only one after CR: should a bare LF slip
 * through, a server that takes it as a line end still never sees a lone "."
 * line inside the body. */
size_t smtp_dot_next(const char *body, size_t len, size_t from);

/* The end of data for this body: ".\r\n" when it is empty or ends with CRLF,
 * "\r\n.\r\n" otherwise. Returns the terminator and sets *n to its length. */
const char *smtp_dot_terminator(const char *body, size_t len, size_t *n);

/* What a message needs from the server, found by one pass over it. */
struct smtp_msg_info {
	int has_8bit;        /* a byte >= 0x80: needs 8BITMIME (or SMTPUTF8) */
	int has_bare_lf;     /* a LF not preceded by CR */
	int has_bare_cr;     /* a CR not followed by LF */
	int has_nul;
	size_t longest_line; /* in octets, CRLF excluded */
	size_t crlf_len;     /* the length after smtp_msg_to_crlf */
};

/* Scans a message. */
void smtp_msg_inspect(const char *msg, size_t len, struct smtp_msg_info *info);

/* Copies msg into out with every line end made CRLF (a bare LF or bare CR
 * becomes CRLF). Returns bytes written, or SMTP_CMD_ETOOBIG when cap is less
 * than info->crlf_len. */
ssize_t smtp_msg_to_crlf(const char *msg, size_t len, char *out, size_t cap);

#endif
