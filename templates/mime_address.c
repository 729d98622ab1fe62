/* mime_address: see mime_address.h. */
#include "templates/mime_address.h"

#include <idn2.h>
#include <string.h>

#include "templates/utf8.h"

/* ---- characters ---- */

/* What each octet is, as bits: addresses are scanned byte by byte for
 * every recipient, so each test is one load. */
#define C_ALNUM 0x1u   /* letter or digit */
#define C_ATEXT 0x2u   /* RFC 5322 atext, with RFC 6532's non-ASCII (validity
			* is checked before) */
static const unsigned char CHAR_CLASS[256] = {
	['a' ... 'z'] = C_ALNUM | C_ATEXT, ['A' ... 'Z'] = C_ALNUM | C_ATEXT,
	['0' ... '9'] = C_ALNUM | C_ATEXT, [0x80 ... 0xff] = C_ATEXT,
	['!'] = C_ATEXT, ['#'] = C_ATEXT, ['$'] = C_ATEXT, ['%'] = C_ATEXT, ['&'] = C_ATEXT,
	['\''] = C_ATEXT, ['*'] = C_ATEXT, ['+'] = C_ATEXT, ['-'] = C_ATEXT, ['/'] = C_ATEXT,
	['='] = C_ATEXT, ['?'] = C_ATEXT, ['^'] = C_ATEXT, ['_'] = C_ATEXT, ['`'] = C_ATEXT,
	['{'] = C_ATEXT, ['|'] = C_ATEXT, ['}'] = C_ATEXT, ['~'] = C_ATEXT,
};

static int is_alnum(unsigned char c)
{
	return CHAR_CLASS[c] & C_ALNUM;
}

static int is_atext(unsigned char c)
{
	return CHAR_CLASS[c] & C_ATEXT;
}

static int is_wsp(unsigned char c)
{
	return c == ' ' || c == '\t';
}

/* Printable US-ASCII, as allowed in a quoted string or a domain literal
 * (the quotes, backslash and brackets are the callers' business). */
static int is_vchar(unsigned char c)
{
	return c >= 0x21 && c <= 0x7e;
}

/* ---- parsing ---- */

struct scan {
	const unsigned char *s;
	size_t n, i;
	char *store;
	size_t store_len, store_cap;
	struct mime_addr_error err;
};

static int fail(struct scan *sc, size_t off, const char *why)
{
	sc->err.offset = off;
	sc->err.why = why;
	return -1;
}

static void store_put(struct scan *sc, const void *p, size_t n)
{
	/* cannot overflow: a name is never longer than the text it comes
	 * from, and store_cap >= n was checked on entry */
	memcpy(sc->store + sc->store_len, p, n);
	sc->store_len += n;
}

/* Skips spaces, tabs and comments (nested, with quoted pairs). Returns 0,
 * or -1 for a comment that does not end. */
static int skip_cfws(struct scan *sc)
{
	while (sc->i < sc->n) {
		unsigned char c = sc->s[sc->i];
		if (is_wsp(c)) {
			sc->i++;
		} else if (c == '(') {
			size_t open = sc->i;
			unsigned depth = 0;
			do {
				c = sc->s[sc->i++];
				if (c == '(')
					depth++;
				else if (c == ')')
					depth--;
				else if (c == '\\' && sc->i < sc->n)
					sc->i++;
			} while (depth > 0 && sc->i < sc->n);
			if (depth > 0)
				return fail(sc, open, "unterminated comment");
		} else {
			break;
		}
	}
	return 0;
}

/* A quoted string at sc->i; its content (escapes removed) goes to the store
 * when keep. Returns 0 or -1. */
static int quoted_string(struct scan *sc, int keep)
{
	size_t open = sc->i++;

	while (sc->i < sc->n) {
		unsigned char c = sc->s[sc->i];
		if (c == '"') {
			sc->i++;
			return 0;
		}
		if (c == '\\') {
			if (sc->i + 1 >= sc->n)
				break;
			c = sc->s[sc->i + 1];
			if (!is_vchar(c) && !is_wsp(c))
				return fail(sc, sc->i, "bad quoted pair");
			sc->i++;
		} else if (!is_vchar(c) && !is_wsp(c) && c < 0x80) {
			return fail(sc, sc->i, "control character in a quoted string");
		}
		if (keep)
			store_put(sc, &c, 1);
		sc->i++;
	}
	return fail(sc, open, "unterminated quoted string");
}

/* An addr-spec at sc->i into mb. Returns 0 or -1. */
static int addr_spec(struct scan *sc, struct mime_mailbox *mb)
{
	const unsigned char *s = sc->s;
	size_t start = sc->i, at, label;

	if (sc->i < sc->n && s[sc->i] == '"') {
		if (quoted_string(sc, 0) != 0)
			return -1;
		if (sc->i - start == 2)
			return fail(sc, start, "empty local part");
	} else {
		while (sc->i < sc->n && (is_atext(s[sc->i]) || s[sc->i] == '.')) {
			if (s[sc->i] == '.' && (sc->i == start || s[sc->i - 1] == '.'))
				return fail(sc, sc->i, "empty part in the local part");
			sc->i++;
		}
		if (sc->i == start)
			return fail(sc, start, "expected an address");
		if (s[sc->i - 1] == '.')
			return fail(sc, sc->i - 1, "local part ends with '.'");
	}
	if (sc->i - start > MIME_LOCAL_MAX)
		return fail(sc, start, "local part longer than 64 octets");
	if (sc->i == sc->n || s[sc->i] != '@')
		return fail(sc, sc->i, "expected '@'");
	at = sc->i++;
	mb->local = (const char *)s + start;
	mb->local_len = at - start;

	start = sc->i;
	if (sc->i < sc->n && s[sc->i] == '[') {
		sc->i++;
		while (sc->i < sc->n && is_vchar(s[sc->i]) && s[sc->i] != '[' && s[sc->i] != ']' &&
		       s[sc->i] != '\\')
			sc->i++;
		if (sc->i == sc->n || s[sc->i] != ']')
			return fail(sc, sc->i, "unterminated domain literal");
		if (sc->i == start + 1)
			return fail(sc, start, "empty domain literal");
		sc->i++;
	} else {
		label = start;
		for (;;) {
			unsigned char c = sc->i < sc->n ? s[sc->i] : 0;
			int ascii = 1;
			if (is_alnum(c) || c == '-' || c >= 0x80) {
				sc->i++;
				continue;
			}
			if (sc->i == label)
				return fail(sc, sc->i, sc->i == start ? "expected a domain after '@'"
								       : "empty label in the domain");
			for (size_t k = label; k < sc->i; k++)
				if (s[k] >= 0x80)
					ascii = 0;
			/* non-ASCII labels are checked by libidn2 when written */
			if (ascii) {
				if (s[label] == '-')
					return fail(sc, label, "domain label starts with '-'");
				if (s[sc->i - 1] == '-')
					return fail(sc, sc->i - 1, "domain label ends with '-'");
				if (sc->i - label > 63)
					return fail(sc, label, "domain label longer than 63 octets");
			}
			if (c != '.')
				break;
			label = ++sc->i;
		}
	}
	if (sc->i - start > MIME_DOMAIN_MAX)
		return fail(sc, start, "domain longer than 255 octets");
	if (sc->i - (at - mb->local_len) > MIME_ADDR_MAX)
		return fail(sc, at - mb->local_len, "address longer than 254 octets");
	mb->domain = (const char *)s + start;
	mb->domain_len = sc->i - start;
	return 0;
}

/* One mailbox: a bare addr-spec, or [display-name] <addr-spec>. */
static int mailbox(struct scan *sc, struct mime_mailbox *mb)
{
	size_t start, name_start, store_start = sc->store_len;
	struct mime_addr_error bare_err;
	int words = 0, bare_got_at = 0;

	if (skip_cfws(sc) != 0)
		return -1;
	start = sc->i;
	if (addr_spec(sc, mb) == 0) {
		if (skip_cfws(sc) != 0)
			return -1;
		if (sc->i == sc->n || sc->s[sc->i] == ',') {
			mb->name = sc->store + store_start;
			mb->name_len = 0;
			return 0;
		}
		bare_err.offset = sc->i;
		bare_err.why = "expected ',' between addresses";
		bare_got_at = 1;
	} else {
		bare_err = sc->err;
		bare_got_at = memchr(sc->s + start, '@', sc->err.offset - start) != NULL;
	}

	/* a display name: atoms, quoted strings and dots, separated by
	 * whitespace or comments, which become one space */
	sc->i = start;
	name_start = sc->store_len;
	for (;;) {
		size_t before = sc->i;
		unsigned char c;

		if (skip_cfws(sc) != 0)
			return -1;
		if (sc->i == sc->n)
			break;
		c = sc->s[sc->i];
		if (c == '<')
			break;
		if (c != '"' && c != '.' && !is_atext(c))
			break;
		if (words > 0 && sc->i > before)
			store_put(sc, " ", 1);
		if (c == '"') {
			if (quoted_string(sc, 1) != 0)
				return -1;
		} else if (c == '.') {
			store_put(sc, ".", 1);
			sc->i++;
		} else {
			size_t a = sc->i;
			while (sc->i < sc->n && is_atext(sc->s[sc->i]))
				sc->i++;
			store_put(sc, sc->s + a, sc->i - a);
		}
		words++;
	}
	if (sc->i == sc->n || sc->s[sc->i] != '<') {
		/* an '@' where the name should go on, or one word: the text was
		 * meant as an address, and the first attempt's reason says why it
		 * is not one */
		sc->store_len = store_start;
		if (sc->i < sc->n && sc->s[sc->i] == ':')
			return fail(sc, sc->i, "group syntax is not supported");
		if (bare_got_at || words <= 1 || (sc->i < sc->n && sc->s[sc->i] == '@')) {
			sc->err = bare_err;
			return -1;
		}
		return fail(sc, sc->i, "expected '<' after the display name");
	}
	sc->i++;
	if (addr_spec(sc, mb) != 0)
		return -1;
	if (sc->i == sc->n || sc->s[sc->i] != '>')
		return fail(sc, sc->i, "expected '>'");
	sc->i++;
	if (skip_cfws(sc) != 0)
		return -1;
	mb->name = sc->store + name_start;
	mb->name_len = sc->store_len - name_start;
	return 0;
}

/* The fallback of mime_address_list_parse: everything before the only '<'
 * is the display name as it stands. Returns 0 or -1. */
static int lenient_mailbox(struct scan *sc, struct mime_mailbox *mb)
{
	const unsigned char *s = sc->s, *lt = memchr(s, '<', sc->n);
	size_t end = sc->n, a, b;

	while (end > 0 && is_wsp(s[end - 1]))
		end--;
	if (!lt || end == 0 || s[end - 1] != '>' || memchr(lt + 1, '<', end - (size_t)(lt - s) - 1))
		return -1;
	a = 0;
	b = (size_t)(lt - s);
	while (a < b && is_wsp(s[a]))
		a++;
	while (b > a && is_wsp(s[b - 1]))
		b--;
	sc->store_len = 0;
	sc->i = a;
	if (b - a >= 2 && s[a] == '"' && quoted_string(sc, 1) == 0 && sc->i == b) {
		/* one quoted string: unquoted above */
	} else {
		sc->store_len = 0;
		store_put(sc, s + a, b - a);
	}
	sc->i = (size_t)(lt - s) + 1;
	if (addr_spec(sc, mb) != 0 || sc->i != end - 1)
		return -1;
	mb->name = sc->store;
	mb->name_len = sc->store_len;
	return 0;
}

static int scan_init(struct scan *sc, const char *s, size_t n, char *store, size_t store_cap)
{
	size_t bad;

	sc->s = (const unsigned char *)s;
	sc->n = n;
	sc->i = 0;
	sc->store = store;
	sc->store_len = 0;
	sc->store_cap = store_cap;
	sc->err.offset = 0;
	sc->err.why = NULL;
	if (store_cap < n)
		return fail(sc, 0, "no room for the display names");
	bad = utf8_check(s, n);
	if (bad != n)
		return fail(sc, bad, "invalid UTF-8");
	const char *cr = memchr(s, '\r', n), *lf = memchr(s, '\n', n);
	if (cr || lf)
		return fail(sc, (size_t)((cr && (!lf || cr < lf) ? cr : lf) - s), "CR or LF in an address");
	return 0;
}

/* mime_address_list_parse, saying too_many when there are more than max. */
static int list_parse(const char *s, size_t n, struct mime_mailbox *out, size_t max,
		      char *store, size_t store_cap, struct mime_addr_error *err, const char *too_many)
{
	struct scan sc;
	struct mime_addr_error strict;
	size_t count = 0;

	if (scan_init(&sc, s, n, store, store_cap) != 0)
		goto fail;
	for (;;) {
		if (mailbox(&sc, &out[count]) != 0)
			break;
		count++;
		if (sc.i == sc.n)
			return (int)count;
		if (count == max) {
			fail(&sc, sc.i, too_many);
			goto fail;
		}
		sc.i++;   /* the ',' mailbox() stopped at */
	}
	strict = sc.err;
	if (lenient_mailbox(&sc, &out[0]) == 0)
		return 1;
	sc.err = strict;
fail:
	if (err)
		*err = sc.err;
	return -1;
}

int mime_address_list_parse(const char *s, size_t n, struct mime_mailbox *out, size_t max,
			    char *store, size_t store_cap, struct mime_addr_error *err)
{
	return list_parse(s, n, out, max, store, store_cap, err, "too many addresses");
}

int mime_mailbox_parse(const char *s, size_t n, struct mime_mailbox *out,
		       char *store, size_t store_cap, struct mime_addr_error *err)
{
	return list_parse(s, n, out, 1, store, store_cap, err,
			  "more than one address where one is expected") == 1 ? 0 : -1;
}

/* ---- writing ---- */

ssize_t mime_domain_wire(const char *d, size_t n, int smtputf8, char out[MIME_DOMAIN_MAX + 1],
			 const char **why)
{
	char in[MIME_DOMAIN_MAX + 1];
	char *alabel = NULL;
	size_t len;
	int rc;

	if (n > MIME_DOMAIN_MAX) {
		*why = "domain longer than 255 octets";
		return -1;
	}
	if (!utf8_has_non_ascii(d, n)) {
		memcpy(out, d, n);
		out[n] = '\0';
		return (ssize_t)n;
	}
	memcpy(in, d, n);
	in[n] = '\0';
	rc = idn2_to_ascii_8z(in, &alabel, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
	if (rc != IDN2_OK) {
		*why = idn2_strerror(rc);
		return -1;
	}
	len = strlen(alabel);
	if (len > MIME_DOMAIN_MAX) {
		idn2_free(alabel);
		*why = "domain longer than 255 octets as an A-label";
		return -1;
	}
	if (smtputf8) {
		/* checked and kept as the sender wrote it */
		memcpy(out, d, n);
		len = n;
	} else {
		memcpy(out, alabel, len);
	}
	out[len] = '\0';
	idn2_free(alabel);
	return (ssize_t)len;
}

/* local@domain for the wire into out (at least MIME_ADDR_MAX + 1 bytes
 * when the parse checked the lengths). Returns the length or -1. */
static ssize_t addr_wire(const struct mime_mailbox *mb, int smtputf8, char *out, size_t cap,
			 const char **why)
{
	char domain[MIME_DOMAIN_MAX + 1];
	ssize_t dlen;

	if (!smtputf8 && utf8_has_non_ascii(mb->local, mb->local_len)) {
		*why = "a non-ASCII local part needs a server with SMTPUTF8";
		return -1;
	}
	dlen = mime_domain_wire(mb->domain, mb->domain_len, smtputf8, domain, why);
	if (dlen < 0)
		return -1;
	if (mb->local_len + 1 + (size_t)dlen + 1 > cap) {
		*why = "address too long";
		return -1;
	}
	memcpy(out, mb->local, mb->local_len);
	out[mb->local_len] = '@';
	memcpy(out + mb->local_len + 1, domain, (size_t)dlen);
	out[mb->local_len + 1 + (size_t)dlen] = '\0';
	return (ssize_t)(mb->local_len + 1 + (size_t)dlen);
}

ssize_t mime_mailbox_envelope(const struct mime_mailbox *mb, int smtputf8, char *out, size_t cap,
			      const char **why)
{
	return addr_wire(mb, smtputf8, out, cap, why);
}

enum name_form {
	NAME_ATOMS,      /* words of atext separated by single spaces */
	NAME_QUOTED,
	NAME_ENCODED,
};

static enum name_form name_form(const unsigned char *s, size_t n, int smtputf8)
{
	int atoms = 1;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = s[i];
		if (c < 0x20 || c == 0x7f || (c >= 0x80 && !smtputf8))
			return NAME_ENCODED;
		if (c == '=' && i + 1 < n && s[i + 1] == '?')
			return NAME_ENCODED;
		if (c == ' ') {
			if (i == 0 || i + 1 == n || s[i + 1] == ' ')
				atoms = 0;
		} else if (!is_atext(c)) {
			atoms = 0;
		}
	}
	return atoms ? NAME_ATOMS : NAME_QUOTED;
}

/* Writes s[0..n) as a quoted string into out. Returns its length, or 0
 * when it does not fit in cap. */
static size_t quote(char *out, size_t cap, const char *s, size_t n)
{
	size_t q = 0;

	if (cap < 2)
		return 0;
	out[q++] = '"';
	for (size_t i = 0; i < n; i++) {
		if (q + 3 > cap)
			return 0;
		if (s[i] == '"' || s[i] == '\\')
			out[q++] = '\\';
		out[q++] = s[i];
	}
	if (q + 1 > cap)
		return 0;
	out[q++] = '"';
	return q;
}

int mime_mailbox_write(struct mime_field *f, const char *ws, size_t wsn,
		       const struct mime_mailbox *mb, int smtputf8, const char **why)
{
	char addr[1 + MIME_ADDR_MAX + 1 + 1 + MIME_DOMAIN_MAX];   /* room for a UTF-8 domain too */
	char quoted[MIME_LINE_MAX - 1];   /* with the space before it, one line at most */
	ssize_t alen;
	int r = 0;

	alen = addr_wire(mb, smtputf8, addr + 1, sizeof addr - 2, why);
	if (alen < 0)
		return MIME_EADDR;
	if (mb->name_len == 0)
		return mime_field_token(f, ws, wsn, addr + 1, (size_t)alen);

	switch (name_form((const unsigned char *)mb->name, mb->name_len, smtputf8)) {
	case NAME_ATOMS: {
		size_t i = 0;
		while (i < mb->name_len) {
			const char *sp = memchr(mb->name + i, ' ', mb->name_len - i);
			size_t end = sp ? (size_t)(sp - mb->name) : mb->name_len;
			r = i == 0 ? mime_field_token(f, ws, wsn, mb->name, end)
				   : mime_field_token(f, " ", 1, mb->name + i, end - i);
			if (r != 0)
				return r;
			i = end + 1;
		}
		break;
	}
	case NAME_QUOTED: {
		size_t q = quote(quoted, sizeof quoted, mb->name, mb->name_len);
		if (q > 0) {
			r = mime_field_token(f, ws, wsn, quoted, q);
			break;
		}
		/* too long for one line as a quoted string: encoded words fold */
	}
		/* fall through */
	case NAME_ENCODED:
		r = mime_field_encoded(f, ws, wsn, mb->name, mb->name_len);
		break;
	}
	if (r != 0)
		return r;
	addr[0] = '<';
	addr[alen + 1] = '>';
	return mime_field_token(f, " ", 1, addr, (size_t)alen + 2);
}

int mime_address_list_write(struct mime_field *f, const struct mime_mailbox *mb, size_t n,
			    int smtputf8, const char **why)
{
	for (size_t k = 0; k < n; k++) {
		int r = mime_mailbox_write(f, " ", 1, &mb[k], smtputf8, why);
		if (r == 0 && k + 1 < n)
			r = mime_field_token(f, "", 0, ",", 1);
		if (r != 0)
			return r;
	}
	return 0;
}
