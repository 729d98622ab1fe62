/* smtp_cmd: see smtp_cmd.h. Formatters build the whole line in a bounded
 * writer and only report success when all of it fit, so a caller never sends
 * half a command. */
#include "pool/smtp_cmd.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* RFC 3461 4.4: ENVID is at most 100 characters (after xtext encoding). */
#define ENVID_MAX 100

/* ---- address validation ---- */

/* Returns the length of the valid UTF-8 sequence of a non-ASCII character at
 * p[0..n), or 0 (overlong forms, surrogates and values past U+10FFFF are
 * invalid, RFC 3629). */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
	unsigned c = p[0];
	size_t need;
	unsigned lo = 0x80, hi = 0xbf;

	if (c >= 0xc2 && c <= 0xdf) {
		need = 2;
	} else if (c >= 0xe0 && c <= 0xef) {
		need = 3;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		need = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else {
		return 0;
	}
	if (n < need)
		return 0;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < need; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return need;
}

/* What each octet may be in an address, looked up once per octet (every
 * message's sender and recipients go through smtp_addr_check). */
enum {
	AC_ALNUM  = 1,   /* letter or digit */
	AC_ATEXT  = 2,   /* RFC 5322 atext; RFC 6531 adds every non-ASCII octet */
	AC_DOMAIN = 4,   /* may appear in a domain label: let-dig, '-', UTF-8 */
	AC_REFUSE = 8,   /* could end or split a command line: refused anywhere */
	/* For plain_address: ASCII only. */
	AC_PLAIN_LOCAL = 16,   /* ASCII atext */
	AC_PLAIN_LABEL = 32,   /* letter, digit or '-' */
};
#define AC_WORD (AC_ALNUM | AC_ATEXT | AC_DOMAIN | AC_PLAIN_LOCAL | AC_PLAIN_LABEL)
#define AC_ASCII_ATEXT (AC_ATEXT | AC_PLAIN_LOCAL)
static const unsigned char addr_class[256] = {
	[0x00 ... 0x1f] = AC_REFUSE, [' '] = AC_REFUSE, ['<'] = AC_REFUSE, ['>'] = AC_REFUSE,
	[0x7f] = AC_REFUSE,
	['0' ... '9'] = AC_WORD, ['A' ... 'Z'] = AC_WORD, ['a' ... 'z'] = AC_WORD,
	['-'] = AC_ASCII_ATEXT | AC_DOMAIN | AC_PLAIN_LABEL, [0x80 ... 0xff] = AC_ATEXT | AC_DOMAIN,
	['!'] = AC_ASCII_ATEXT, ['#'] = AC_ASCII_ATEXT, ['$'] = AC_ASCII_ATEXT,
	['%'] = AC_ASCII_ATEXT, ['&'] = AC_ASCII_ATEXT, ['\''] = AC_ASCII_ATEXT,
	['*'] = AC_ASCII_ATEXT, ['+'] = AC_ASCII_ATEXT, ['/'] = AC_ASCII_ATEXT,
	['='] = AC_ASCII_ATEXT, ['?'] = AC_ASCII_ATEXT, ['^'] = AC_ASCII_ATEXT,
	['_'] = AC_ASCII_ATEXT, ['`'] = AC_ASCII_ATEXT, ['{'] = AC_ASCII_ATEXT,
	['|'] = AC_ASCII_ATEXT, ['}'] = AC_ASCII_ATEXT, ['~'] = AC_ASCII_ATEXT,
};

static int is_alnum(unsigned char c)
{
	return addr_class[c] & AC_ALNUM;
}

static int is_atext(unsigned char c)
{
	return addr_class[c] & AC_ATEXT;
}

static int addr_fail(struct smtp_addr_check *res, size_t off, const char *why)
{
	res->ok = 0;
	res->utf8 = 0;
	res->bad_offset = off;
	res->why = why;
	return 0;
}

/* RFC 5321 IPv4-address-literal: four decimal parts of 1 to 3 digits, each
 * at most 255. Returns 1 when s[0..n) is one. */
static int ipv4_literal(const char *s, size_t n)
{
	size_t i = 0;

	for (int part = 0; part < 4; part++) {
		unsigned v = 0;
		size_t digits = 0;
		if (part > 0) {
			if (i >= n || s[i] != '.')
				return 0;
			i++;
		}
		while (i < n && s[i] >= '0' && s[i] <= '9' && digits < 4) {
			v = v * 10 + (unsigned)(s[i] - '0');
			i++;
			digits++;
		}
		if (digits < 1 || digits > 3 || v > 255)
			return 0;
	}
	return i == n;
}

static int check_literal(const char *a, size_t start, size_t len, struct smtp_addr_check *res)
{
	const char *s = a + start + 1;
	size_t n;

	if (a[len - 1] != ']')
		return addr_fail(res, len - 1, "address literal without ']'");
	n = len - start - 2;
	if (n >= 5 && strncasecmp(s, "IPv6:", 5) == 0) {
		char tmp[INET6_ADDRSTRLEN];
		struct in6_addr in6;
		if (n - 5 >= sizeof(tmp))
			return addr_fail(res, start + 1, "bad IPv6 address literal");
		memcpy(tmp, s + 5, n - 5);
		tmp[n - 5] = '\0';
		if (inet_pton(AF_INET6, tmp, &in6) != 1)
			return addr_fail(res, start + 1, "bad IPv6 address literal");
		return 1;
	}
	if (!ipv4_literal(s, n))
		return addr_fail(res, start + 1, "bad address literal");
	return 1;
}

/* Domain = sub-domain *("." sub-domain), sub-domain = let-dig [ldh-str]
 * (RFC 5321 4.1.2); U-labels may hold UTF-8, already checked by the caller. */
static int check_domain(const char *a, size_t start, size_t len, struct smtp_addr_check *res)
{
	size_t label = start;

	for (size_t i = start; i <= len; i++) {
		unsigned char c = i < len ? (unsigned char)a[i] : '.';
		if (c == '.') {
			if (i == label)
				return addr_fail(res, i, "empty label in domain");
			if (i - label > 63)
				return addr_fail(res, label + 63, "domain label too long");
			if (a[label] == '-')
				return addr_fail(res, label, "label starts with '-'");
			if (a[i - 1] == '-')
				return addr_fail(res, i - 1, "label ends with '-'");
			label = i + 1;
			continue;
		}
		if (!(addr_class[c] & AC_DOMAIN))
			return addr_fail(res, i, "character not allowed in domain");
	}
	return 1;
}

/* The common address, checked in one pass: ASCII dot-atom "@" a domain of
 * letters, digits and hyphens. Returns 1 when addr is one (and so valid),
 * 0 when it is anything else and needs the full check below, which also
 * says what is wrong. Accepts nothing the full check refuses. */
static int plain_address(const unsigned char *u, size_t len)
{
	if (len == 0 || len > SMTP_PATH_MAX - 2)
		return 0;
	/* The local part: atoms of ASCII atext joined by single dots. */
	size_t i = 0;
	for (;;) {
		size_t atom = i;
		while (i < len && (addr_class[u[i]] & AC_PLAIN_LOCAL))
			i++;
		if (i == atom || i == len)
			return 0;
		if (u[i] == '@')
			break;
		if (u[i] != '.')
			return 0;
		i++;
	}
	if (i > SMTP_LOCAL_PART_MAX)
		return 0;
	/* The domain: labels of letters, digits and inner hyphens, 1 to 63
	 * octets each, joined by single dots. */
	i++;
	for (;;) {
		size_t label = i;
		while (i < len && (addr_class[u[i]] & AC_PLAIN_LABEL))
			i++;
		if (i == label || i - label > 63 || u[label] == '-' || u[i - 1] == '-')
			return 0;
		if (i == len)
			return 1;
		if (u[i] != '.')
			return 0;
		i++;
	}
}

int smtp_addr_check(const char *addr, size_t len, int allow_empty, struct smtp_addr_check *res)
{
	struct smtp_addr_check scratch;
	const unsigned char *u = (const unsigned char *)addr;
	size_t i, at;

	if (!res)
		res = &scratch;
	memset(res, 0, sizeof(*res));
	if (len == 0) {
		if (!allow_empty)
			return addr_fail(res, 0, "empty address");
		res->ok = 1;
		return 1;
	}
	if (plain_address(u, len)) {
		res->ok = 1;
		return 1;
	}

	/* Bytes that could end or split the command line are refused
	 * wherever they are, quoted or not. */
	for (i = 0; i < len; i++) {
		unsigned char c = u[i];
		if (!(addr_class[c] & AC_REFUSE) && c < 0x80)
			continue;
		if (c == '\0')
			return addr_fail(res, i, "NUL byte");
		if (c == '\r' || c == '\n')
			return addr_fail(res, i, "CR or LF");
		if (c < 0x20 || c == 0x7f)
			return addr_fail(res, i, "control character");
		if (c == ' ')
			return addr_fail(res, i, "space");
		if (c == '<' || c == '>')
			return addr_fail(res, i, "angle bracket");
		if (c >= 0x80) {
			size_t n = utf8_seq(u + i, len - i);
			if (!n)
				return addr_fail(res, i, "invalid UTF-8");
			res->utf8 = 1;
			i += n - 1;
		}
	}
	/* The path "<addr>" holds at most SMTP_PATH_MAX octets, which also
	 * keeps the domain under SMTP_DOMAIN_MAX. */
	if (len > SMTP_PATH_MAX - 2)
		return addr_fail(res, SMTP_PATH_MAX - 2, "address too long");

	i = 0;
	if (u[0] == '"') {
		for (i = 1;; i++) {
			if (i >= len)
				return addr_fail(res, len, "unterminated quoted string");
			if (u[i] == '\\') {
				/* quoted-pairSMTP: backslash then any printable ASCII */
				if (i + 1 >= len || u[i + 1] > 0x7e)
					return addr_fail(res, i, "bad quoted pair");
				i++;
				continue;
			}
			if (u[i] == '"')
				break;
		}
		i++;
		if (i == 2)
			return addr_fail(res, 0, "empty local part");
		if (i >= len || u[i] != '@')
			return addr_fail(res, i, "expected '@' after quoted local part");
	} else {
		size_t atom = 0;
		for (; i < len && u[i] != '@'; i++) {
			if (u[i] == '.') {
				if (i == atom)
					return addr_fail(res, i, "empty atom in local part");
				atom = i + 1;
			} else if (!is_atext(u[i])) {
				return addr_fail(res, i, "character not allowed in local part");
			}
		}
		if (i == 0)
			return addr_fail(res, 0, "empty local part");
		if (i >= len)
			return addr_fail(res, len, "missing '@'");
		if (i == atom)
			return addr_fail(res, i - 1, "local part ends with '.'");
	}
	if (i > SMTP_LOCAL_PART_MAX)
		return addr_fail(res, SMTP_LOCAL_PART_MAX, "local part too long");
	at = i;
	if (at + 1 >= len)
		return addr_fail(res, len, "empty domain");
	if (u[at + 1] == '[') {
		if (!check_literal(addr, at + 1, len, res))
			return 0;
	} else if (!check_domain(addr, at + 1, len, res)) {
		return 0;
	}
	res->ok = 1;
	return 1;
}

/* ---- formatters ---- */

struct wbuf {
	char *p;
	size_t cap, len;
	int over;
};

static void w_mem(struct wbuf *w, const char *s, size_t n)
{
	if (w->over || n > w->cap - w->len) {
		w->over = 1;
		return;
	}
	if (n)
		memcpy(w->p + w->len, s, n);
	w->len += n;
}

static void w_str(struct wbuf *w, const char *s)
{
	w_mem(w, s, strlen(s));
}

/* Decimal digits without printf: BDAT and SIZE= go on every message. */
static void w_u64(struct wbuf *w, uint64_t v)
{
	char tmp[20];
	size_t i = sizeof tmp;

	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	w_mem(w, tmp + i, sizeof tmp - i);
}

static ssize_t w_end(const struct wbuf *w)
{
	return w->over ? SMTP_CMD_ETOOBIG : (ssize_t)w->len;
}

static int has_line_break(const char *s)
{
	return strpbrk(s, "\r\n") != NULL;
}

/* Encodes s as RFC 3461 xtext into out (ENVID_MAX + 1 bytes). Returns 0, or
 * -1 when s is empty or the encoding is too long. */
static int xtext_encode(const char *s, char *out)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;

	if (!*s)
		return -1;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p >= 33 && *p <= 126 && *p != '+' && *p != '=') {
			if (n + 1 > ENVID_MAX)
				return -1;
			out[n++] = (char)*p;
		} else {
			if (n + 3 > ENVID_MAX)
				return -1;
			out[n++] = '+';
			out[n++] = hex[*p >> 4];
			out[n++] = hex[*p & 15];
		}
	}
	out[n] = '\0';
	return 0;
}

ssize_t smtp_fmt_mail(char *out, size_t cap, const char *from, const struct smtp_mail_params *p)
{
	if (!from || !smtp_addr_check(from, strlen(from), 1, NULL))
		return SMTP_CMD_EINVAL;
	return smtp_fmt_mail_checked(out, cap, from, p);
}

ssize_t smtp_fmt_mail_checked(char *out, size_t cap, const char *from,
			      const struct smtp_mail_params *p)
{
	struct wbuf w = { out, cap, 0, 0 };
	char envid[ENVID_MAX + 1];
	const char *ret = NULL;

	if (p && p->ret) {
		if (strcasecmp(p->ret, "FULL") == 0)
			ret = "FULL";
		else if (strcasecmp(p->ret, "HDRS") == 0)
			ret = "HDRS";
		else
			return SMTP_CMD_EINVAL;
	}
	if (p && p->envid && xtext_encode(p->envid, envid) < 0)
		return SMTP_CMD_EINVAL;

	w_str(&w, "MAIL FROM:<");
	w_str(&w, from);
	w_str(&w, ">");
	if (p) {
		if (p->size) {
			w_str(&w, " SIZE=");
			w_u64(&w, p->size);
		}
		if (p->body_8bitmime)
			w_str(&w, " BODY=8BITMIME");
		if (p->smtputf8)
			w_str(&w, " SMTPUTF8");
		if (ret) {
			w_str(&w, " RET=");
			w_str(&w, ret);
		}
		if (p->envid) {
			w_str(&w, " ENVID=");
			w_str(&w, envid);
		}
	}
	w_str(&w, "\r\n");
	return w_end(&w);
}

/* RFC 3461 4.1: "NEVER", or a list of SUCCESS, FAILURE and DELAY. */
static int notify_ok(const char *s)
{
	static const char *const words[] = { "SUCCESS", "FAILURE", "DELAY", "NEVER" };
	unsigned seen = 0, count = 0;

	for (;;) {
		size_t n = strcspn(s, ",");
		unsigned k;
		for (k = 0; k < 4; k++)
			if (strlen(words[k]) == n && strncasecmp(s, words[k], n) == 0)
				break;
		if (k == 4 || (seen & (1u << k)))
			return 0;
		seen |= 1u << k;
		count++;
		if (!s[n])
			break;
		s += n + 1;
	}
	return !((seen & 8u) && count > 1);
}

ssize_t smtp_fmt_rcpt(char *out, size_t cap, const char *to, const char *notify)
{
	if (!to || !smtp_addr_check(to, strlen(to), 0, NULL))
		return SMTP_CMD_EINVAL;
	return smtp_fmt_rcpt_checked(out, cap, to, notify);
}

ssize_t smtp_fmt_rcpt_checked(char *out, size_t cap, const char *to, const char *notify)
{
	struct wbuf w = { out, cap, 0, 0 };

	if (notify && !notify_ok(notify))
		return SMTP_CMD_EINVAL;
	w_str(&w, "RCPT TO:<");
	w_str(&w, to);
	w_str(&w, ">");
	if (notify) {
		w_str(&w, " NOTIFY=");
		for (const char *q = notify; *q; q++) {
			char c = *q >= 'a' && *q <= 'z' ? (char)(*q - 'a' + 'A') : *q;
			w_mem(&w, &c, 1);
		}
	}
	w_str(&w, "\r\n");
	return w_end(&w);
}

ssize_t smtp_fmt_cmd(char *out, size_t cap, const char *verb, const char *arg)
{
	struct wbuf w = { out, cap, 0, 0 };

	/* A verb is a keyword (RFC 5321 4.1.1): letters and digits only, so
	 * it can carry neither a line break nor a hidden argument. */
	if (!verb || !*verb)
		return SMTP_CMD_EINVAL;
	for (const char *q = verb; *q; q++)
		if (!is_alnum((unsigned char)*q))
			return SMTP_CMD_EINVAL;
	if (arg && has_line_break(arg))
		return SMTP_CMD_EINVAL;
	w_str(&w, verb);
	if (arg && *arg) {
		w_str(&w, " ");
		w_str(&w, arg);
	}
	w_str(&w, "\r\n");
	return w_end(&w);
}

/* SMTP_CMD_LINE_MAX counts the CRLF, as RFC 5321 4.5.3.1.4 does. */
ssize_t smtp_fmt_raw(char *out, size_t cap, const char *line)
{
	struct wbuf w = { out, cap, 0, 0 };

	if (!line || !*line || has_line_break(line) || strlen(line) + 2 > SMTP_CMD_LINE_MAX)
		return SMTP_CMD_EINVAL;
	w_str(&w, line);
	w_str(&w, "\r\n");
	return w_end(&w);
}

ssize_t smtp_fmt_bdat(char *out, size_t cap, uint64_t n, int last)
{
	struct wbuf w = { out, cap, 0, 0 };

	w_str(&w, "BDAT ");
	w_u64(&w, n);
	if (last)
		w_str(&w, " LAST");
	w_str(&w, "\r\n");
	return w_end(&w);
}

/* ---- DATA ---- */

size_t smtp_dot_next(const char *body, size_t len, size_t from)
{
	if (from >= len)
		return len;
	if (body[from] == '.' && (from == 0 || body[from - 1] == '\n'))
		return from;
	const char *p = body + from, *end = body + len;
	while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		if (++p == end)
			break;
		if (*p == '.')
			return (size_t)(p - body);
	}
	return len;
}

const char *smtp_dot_terminator(const char *body, size_t len, size_t *n)
{
	int crlf_end = len == 0 || (len >= 2 && body[len - 2] == '\r' && body[len - 1] == '\n');
	*n = crlf_end ? 3 : 5;
	return crlf_end ? ".\r\n" : "\r\n.\r\n";
}

void smtp_msg_inspect(const char *msg, size_t len, struct smtp_msg_info *info)
{
	size_t line = 0;

	memset(info, 0, sizeof(*info));
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)msg[i];
		if (c == '\r') {
			if (i + 1 < len && msg[i + 1] == '\n')
				i++;
			else
				info->has_bare_cr = 1;
		} else if (c == '\n') {
			info->has_bare_lf = 1;
		} else {
			if (c == '\0')
				info->has_nul = 1;
			if (c >= 0x80)
				info->has_8bit = 1;
			line++;
			info->crlf_len++;
			continue;
		}
		if (line > info->longest_line)
			info->longest_line = line;
		line = 0;
		info->crlf_len += 2;
	}
	if (line > info->longest_line)
		info->longest_line = line;
}

ssize_t smtp_msg_to_crlf(const char *msg, size_t len, char *out, size_t cap)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		char c = msg[i];
		if (c == '\r' || c == '\n') {
			if (c == '\r' && i + 1 < len && msg[i + 1] == '\n')
				i++;
			if (cap - o < 2)
				return SMTP_CMD_ETOOBIG;
			out[o++] = '\r';
			out[o++] = '\n';
		} else {
			if (cap - o < 1)
				return SMTP_CMD_ETOOBIG;
			out[o++] = c;
		}
	}
	return (ssize_t)o;
}
