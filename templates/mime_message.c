/* mime_message: see mime_message.h. */
#include "templates/mime_message.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "templates/mime_encode.h"
#include "templates/utf8.h"

/* Random bytes are drawn from the kernel this many at a time: one
 * getrandom call serves about 150 messages. */
#define RANDOM_POOL 4096
#define MSGID_RANDOM 16       /* 128 bits */
#define BOUNDARY_RANDOM 10    /* 80 bits */
/* "=_" and 20 hex digits: what every boundary of a message starts with */
#define BOUNDARY_PREFIX_LEN (2 + 2 * BOUNDARY_RANDOM)
#define BOUNDARY_LEN (BOUNDARY_PREFIX_LEN + 2)   /* the prefix, '_' and the level's letter */
#define BUILD_ATTEMPTS 4
/* Header fields remembered from the message before, by their place among
 * the template's headers, when their value is at most HEADER_MEMO_VALUE
 * octets and their field at most HEADER_MEMO_FIELD. */
#define HEADER_MEMO 16
#define HEADER_MEMO_VALUE 512
#define HEADER_MEMO_FIELD 2048
/* List-Unsubscribe with both URIs and List-Unsubscribe-Post, at most */
#define UNSUBSCRIBE_MAX (2 * (MIME_URL_MAX + 8) + 128)

/* A header field as it was written for a value: a campaign's From, List-Id
 * or Reply-To is often the same for every recipient, and is then parsed and
 * written once. */
struct header_memo {
	int ready;
	char name[MIME_HEADER_NAME_MAX];   /* the header it is for */
	size_t name_len;
	int smtputf8;
	size_t value_len;
	char value[HEADER_MEMO_VALUE];
	size_t field_len;
	char field[HEADER_MEMO_FIELD];
	char envelope_from[1 + MIME_LOCAL_MAX + 1 + MIME_DOMAIN_MAX + 1];   /* From's */
};
_Static_assert(sizeof ((struct header_memo *)0)->envelope_from ==
	       sizeof ((struct mime_message_info *)0)->envelope_from, "envelope sizes");

/* A header name that passed the checks, kept with what they found, so that
 * the next message with the same name at that place is not checked again. */
struct header_name {
	size_t len;                        /* 0: none kept */
	char name[MIME_HEADER_NAME_MAX];
	int single;                        /* its index in SINGLE, or -1 */
	int unsubscribe;                   /* List-Unsubscribe or List-Unsubscribe-Post */
};

struct mime_builder {
	struct header_memo memo[HEADER_MEMO];
	struct header_name names_checked[HEADER_MEMO];
	struct bytebuf clean;          /* one header value, cleaned */
	struct bytebuf names;          /* the display names of one address header */
	struct mime_mailbox boxes[MIME_ADDRESSES_MAX];
	int (*fill)(void *ud, void *buf, size_t n);
	void *fill_ud;
	unsigned char pool[RANDOM_POOL];
	size_t pool_used;
	/* What does not change from one message to the next, made once: the
	 * date's texts (for one second of the caller's clock) and the
	 * Message-ID's domain as it goes on the wire. */
	int64_t date_for;
	int date_ready;
	char date_text[MIME_DATE_MAX];
	char date_digits[15];          /* YYYYMMDDhhmmss, for the Message-ID */
	char msgid_domain_for[MIME_DOMAIN_MAX + 1];
	char msgid_domain_wire[MIME_DOMAIN_MAX + 1];
	/* the List-Unsubscribe fields, and the URL and mailto they are for */
	int unsub_ready, unsub_has_url, unsub_has_mailto;
	char unsub_url[MIME_URL_MAX + 1], unsub_mailto[MIME_URL_MAX + 1];
	char unsub[UNSUBSCRIBE_MAX];
	size_t unsub_len;
	char errstr[MIME_ERR_MAX];
};

/* One message being built. */
struct build {
	struct mime_builder *b;
	const struct mime_message_parts *in;
	const struct mime_text_writers *w;
	const struct mime_message_opts *o;
	struct bytebuf *out;
	struct mime_message_info *info;
	char boundary[BOUNDARY_LEN + 1];   /* prefix, '_', a letter per level */
	int multipart;
	int collided;                  /* a part that goes as it is holds the boundary */
	int any_8bit;
};

static int sys_random(void *ud, void *buf, size_t n)
{
	unsigned char *p = buf;

	while (n > 0) {
		ssize_t r = getrandom(p, n, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

struct mime_builder *mime_builder_new(void)
{
	struct mime_builder *b = calloc(1, sizeof *b);

	if (!b)
		return NULL;
	bytebuf_init(&b->clean, MIME_HEADER_VALUE_MAX);
	bytebuf_init(&b->names, MIME_HEADER_VALUE_MAX);
	b->fill = sys_random;
	b->pool_used = RANDOM_POOL;
	return b;
}

void mime_builder_free(struct mime_builder *b)
{
	if (!b)
		return;
	bytebuf_free(&b->clean);
	bytebuf_free(&b->names);
	free(b);
}

void mime_builder_set_random(struct mime_builder *b,
			     int (*fill)(void *ud, void *buf, size_t n), void *ud)
{
	b->fill = fill ? fill : sys_random;
	b->fill_ud = fill ? ud : NULL;
	b->pool_used = RANDOM_POOL;
}

const char *mime_builder_errstr(const struct mime_builder *b)
{
	return b->errstr;
}

__attribute__((format(printf, 2, 3)))
static int fail(struct mime_builder *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(b->errstr, sizeof b->errstr, fmt, ap);
	va_end(ap);
	return -1;
}

static int random_bytes(struct mime_builder *b, unsigned char *out, size_t n)
{
	if (RANDOM_POOL - b->pool_used < n) {
		if (b->fill(b->fill_ud, b->pool, RANDOM_POOL) != 0)
			return fail(b, "no random bytes: %s", strerror(errno));
		b->pool_used = 0;
	}
	memcpy(out, b->pool + b->pool_used, n);
	b->pool_used += n;
	return 0;
}

static void hex(char *out, const unsigned char *p, size_t n)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
}

/* ---- header names ---- */

#define NAME(s) { s, sizeof s - 1 }
static const struct {
	const char *name;
	size_t len;
} SINGLE[] = {
	/* the address headers first: mime_header_is_address counts them */
	NAME("From"), NAME("Sender"), NAME("Reply-To"), NAME("To"), NAME("Cc"), NAME("Bcc"),
	NAME("Subject"), NAME("In-Reply-To"), NAME("References"),
};
#undef NAME
#define ADDRESS_HEADERS 6

static int name_is(const char *name, size_t len, const char *want)
{
	return strlen(want) == len && strncasecmp(name, want, len) == 0;
}

/* The index of name in SINGLE, or -1. */
static int single_index(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof SINGLE / sizeof SINGLE[0]; i++)
		if (SINGLE[i].len == len && strncasecmp(name, SINGLE[i].name, len) == 0)
			return (int)i;
	return -1;
}

int mime_header_name_valid(const char *name, size_t len)
{
	if (len == 0 || len > MIME_HEADER_NAME_MAX)
		return 0;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)name[i] < 33 || (unsigned char)name[i] > 126 || name[i] == ':')
			return 0;
	return 1;
}

int mime_header_is_reserved(const char *name, size_t len)
{
	return name_is(name, len, "Date") || name_is(name, len, "Message-ID") ||
	       name_is(name, len, "MIME-Version") ||
	       (len > 8 && strncasecmp(name, "Content-", 8) == 0);
}

int mime_header_is_single(const char *name, size_t len)
{
	return single_index(name, len) >= 0;
}

int mime_header_is_address(const char *name, size_t len)
{
	int i = single_index(name, len);
	return i >= 0 && i < ADDRESS_HEADERS;
}

/* ---- dates and IDs ---- */

size_t mime_format_date(int64_t t, char out[MIME_DATE_MAX])
{
	static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	time_t tt = (time_t)t;
	struct tm tm;
	int n;

	/* 253402300799 is 9999-12-31 23:59:59 */
	if (t < 0 || t > 253402300799LL || !gmtime_r(&tt, &tm))
		return 0;
	n = snprintf(out, MIME_DATE_MAX, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday],
		     tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
		     tm.tm_sec);
	return n > 0 && n < MIME_DATE_MAX ? (size_t)n : 0;
}

/* A domain for the Message-ID: letters, digits and hyphens in labels of 1
 * to 63 octets (after IDNA). Returns the reason it is not, or NULL. */
static const char *msgid_domain_problem(const char *d, size_t n)
{
	size_t label = 0;

	if (n == 0)
		return "empty";
	for (size_t i = 0; i <= n; i++) {
		unsigned char c = i < n ? (unsigned char)d[i] : '.';
		if (c == '.') {
			if (i == label || i - label > 63 || d[label] == '-' || d[i - 1] == '-')
				return "not a domain name";
			label = i + 1;
		} else if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			     (c >= '0' && c <= '9') || c == '-')) {
			return "not a domain name";
		}
	}
	return NULL;
}

/* 128 bits in 26 characters of lower-case base32 (RFC 4648's alphabet):
 * shorter than hex, so that the Message-ID line stays within 78. Five
 * bytes make eight characters, taken from one 40-bit number; the last
 * byte makes two, its low 3 bits followed by two zero bits. */
static void base32_128(char out[26], const unsigned char in[MSGID_RANDOM])
{
	static const char digits[] = "abcdefghijklmnopqrstuvwxyz234567";
	_Static_assert(MSGID_RANDOM == 16, "base32_128 takes 16 bytes");

	for (size_t b = 0; b < 3; b++) {
		const unsigned char *p = in + 5 * b;
		uint64_t v = (uint64_t)p[0] << 32 | (uint64_t)p[1] << 24 | (uint64_t)p[2] << 16 |
			     (uint64_t)p[3] << 8 | p[4];
		for (size_t j = 0; j < 8; j++)
			out[8 * b + j] = digits[(v >> (35 - 5 * j)) & 31];
	}
	out[24] = digits[in[15] >> 3];
	out[25] = digits[(in[15] << 2) & 31];
}

/* The Message-ID's domain as it goes on the wire (A-labels), checked;
 * worked out again only when the caller's domain changes. Returns it, or
 * NULL with b->errstr set. */
static const char *msgid_domain(struct mime_builder *b, const char *d)
{
	const char *why = NULL;
	size_t n = strlen(d);
	ssize_t dlen;

	if (b->msgid_domain_wire[0] && strcmp(b->msgid_domain_for, d) == 0)
		return b->msgid_domain_wire;
	b->msgid_domain_wire[0] = '\0';
	dlen = mime_domain_wire(d, n, 0, b->msgid_domain_wire, &why);
	if (dlen >= 0)
		why = msgid_domain_problem(b->msgid_domain_wire, (size_t)dlen);
	if (why) {
		b->msgid_domain_wire[0] = '\0';
		fail(b, "Message-ID domain \"%.64s\": %s", d, why);
		return NULL;
	}
	if (n < sizeof b->msgid_domain_for)
		memcpy(b->msgid_domain_for, d, n + 1);
	else
		b->msgid_domain_wire[0] = '\0';   /* too long to keep: looked at every time */
	return b->msgid_domain_wire;
}

static int message_id(struct build *st)
{
	unsigned char rnd[MSGID_RANDOM];
	const char *domain;
	char *id = st->info->message_id;
	struct mime_field f;
	int r;

	if (!st->o->msgid_domain)
		return fail(st->b, "no Message-ID domain");
	domain = msgid_domain(st->b, st->o->msgid_domain);
	if (!domain || random_bytes(st->b, rnd, sizeof rnd) != 0)
		return -1;
	/* <YYYYMMDDhhmmss.base32@domain>: the date's digits (four for the
	 * year: mime_format_date checked it), then the random bits */
	id[0] = '<';
	memcpy(id + 1, st->b->date_digits, 14);
	id[15] = '.';
	base32_128(id + 16, rnd);
	size_t dn = strlen(domain);   /* at most MIME_DOMAIN_MAX: it fits */
	id[42] = '@';
	memcpy(id + 43, domain, dn);
	memcpy(id + 43 + dn, ">", 2);

	r = mime_field_begin(&f, st->out, "Message-ID", 10);
	if (r == 0)
		r = mime_field_token(&f, " ", 1, id, 44 + dn);
	if (r == 0)
		r = mime_field_end(&f);
	if (r != 0)
		return fail(st->b, "Message-ID: %s", mime_strerror(r, st->out));
	return 0;
}

/* ---- unsubscribe (RFC 2369, RFC 8058) ---- */

static const char *url_problem(const char *u, const char *scheme)
{
	size_t n = strlen(u), sn = strlen(scheme);

	if (n <= sn || strncasecmp(u, scheme, sn) != 0)
		return "wrong scheme or nothing after it";
	if (n > MIME_URL_MAX)
		return "longer than 900 octets";
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)u[i];
		if (c < 0x21 || c > 0x7e || c == '<' || c == '>' || c == '"')
			return "holds a space, control, quote, angle bracket or non-ASCII character "
			       "(percent-encode it)";
	}
	return NULL;
}

/* "<" uri ">" into tok (room for MIME_URL_MAX + 3; url_problem checked
 * the length). Returns its length. */
static size_t angle(char *tok, const char *uri)
{
	size_t n = strlen(uri);

	tok[0] = '<';
	memcpy(tok + 1, uri, n);
	tok[n + 1] = '>';
	return n + 2;
}

static int write_unsubscribe(struct build *st, const char *url, const char *mailto)
{
	const char *why;
	char tok[MIME_URL_MAX + 3];
	struct mime_field f;
	int r;

	if (url && (why = url_problem(url, "https://")))
		return fail(st->b, "unsubscribe URL must be https://...: %s", why);
	if (mailto && (why = url_problem(mailto, "mailto:")))
		return fail(st->b, "unsubscribe mailto must be mailto:...: %s", why);
	r = mime_field_begin(&f, st->out, "List-Unsubscribe", 16);
	if (r == 0 && url) {
		r = mime_field_token(&f, " ", 1, tok, angle(tok, url));
		if (r == 0 && mailto)
			r = mime_field_token(&f, "", 0, ",", 1);
	}
	if (r == 0 && mailto)
		r = mime_field_token(&f, " ", 1, tok, angle(tok, mailto));
	if (r == 0)
		r = mime_field_end(&f);
	if (r == 0 && url &&
	    bytebuf_append_str(st->out, "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n") != 0)
		r = MIME_EBUF;
	if (r != 0)
		return fail(st->b, "List-Unsubscribe: %s", mime_strerror(r, st->out));
	return 0;
}

/* Whether s (NULL or not) is what was kept (had, kept). */
static int same_uri(const char *s, int had, const char *kept)
{
	return s ? had && strcmp(s, kept) == 0 : !had;
}

/* Keeps the fields just written at out[at..) for the next message, with
 * the URIs they were made from. */
static void keep_unsubscribe(struct mime_builder *b, const struct bytebuf *out, size_t at,
			     const char *url, const char *mailto)
{
	size_t n = out->len - at;

	b->unsub_ready = n <= sizeof b->unsub;
	if (!b->unsub_ready)
		return;
	memcpy(b->unsub, out->data + at, n);
	b->unsub_len = n;
	b->unsub_has_url = url != NULL;
	b->unsub_has_mailto = mailto != NULL;
	/* url_problem checked both lengths */
	snprintf(b->unsub_url, sizeof b->unsub_url, "%s", url ? url : "");
	snprintf(b->unsub_mailto, sizeof b->unsub_mailto, "%s", mailto ? mailto : "");
}

/* List-Unsubscribe (and -Post): the same for every message of a campaign,
 * so written once and then copied while the URIs stay the same. */
static int unsubscribe(struct build *st)
{
	const char *url = st->o->unsubscribe_url, *mailto = st->o->unsubscribe_mailto;
	struct mime_builder *b = st->b;
	size_t at = st->out->len;

	if (!url && !mailto)
		return 0;
	if (b->unsub_ready && same_uri(url, b->unsub_has_url, b->unsub_url) &&
	    same_uri(mailto, b->unsub_has_mailto, b->unsub_mailto)) {
		if (bytebuf_append(st->out, b->unsub, b->unsub_len) != 0)
			return fail(b, "List-Unsubscribe: %s", st->out->errstr);
		return 0;
	}
	b->unsub_ready = 0;
	if (write_unsubscribe(st, url, mailto) != 0)
		return -1;
	keep_unsubscribe(b, st->out, at, url, mailto);
	return 0;
}

/* ---- the template's headers ---- */

/* A header name as it may be shown in a message: printable ASCII only. */
static const char *shown(const char *name, size_t len, char out[MIME_HEADER_NAME_MAX + 1])
{
	size_t n = len > MIME_HEADER_NAME_MAX ? MIME_HEADER_NAME_MAX : len;

	for (size_t i = 0; i < n; i++)
		out[i] = name[i] > 32 && name[i] < 127 ? name[i] : '?';
	out[n] = '\0';
	return out;
}

static int is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

static int address_header(struct build *st, const struct mime_header_value *h, const char *name,
			  const char *v, size_t n, int is_from, int one)
{
	struct mime_builder *b = st->b;
	struct mime_addr_error aerr;
	struct mime_field f;
	const char *why = NULL;
	int count, r;

	bytebuf_clear(&b->names);
	if (bytebuf_reserve(&b->names, n) != 0)
		return fail(b, "header %s: %s", name, b->names.errstr);
	if (one)
		count = mime_mailbox_parse(v, n, b->boxes, b->names.data, b->names.cap, &aerr) == 0 ? 1 : -1;
	else
		count = mime_address_list_parse(v, n, b->boxes, MIME_ADDRESSES_MAX, b->names.data,
						b->names.cap, &aerr);
	if (count < 0)
		return fail(b, "header %s: %s at offset %zu of \"%.*s\"", name, aerr.why, aerr.offset,
			    n > 80 ? 80 : (int)n, v);
	r = mime_field_begin(&f, st->out, h->name, h->name_len);
	if (r == 0)
		r = mime_address_list_write(&f, b->boxes, (size_t)count, st->o->smtputf8, &why);
	if (r == 0)
		r = mime_field_end(&f);
	if (r != 0)
		return fail(b, "header %s: %s", name, r == MIME_EADDR ? why : mime_strerror(r, st->out));
	if (is_from && mime_mailbox_envelope(&b->boxes[0], st->o->smtputf8, st->info->envelope_from,
					     sizeof st->info->envelope_from, &why) < 0)
		return fail(b, "header %s: %s", name, why);
	return 0;
}

/* The texts of the date t: b->date_text and b->date_digits, made once per
 * second of the caller's clock. Returns 0, or -1 when t is out of range. */
static int date_texts(struct mime_builder *b, int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (b->date_ready && b->date_for == t)
		return 0;
	b->date_ready = 0;
	if (mime_format_date(t, b->date_text) == 0 || !gmtime_r(&tt, &tm) ||
	    strftime(b->date_digits, sizeof b->date_digits, "%Y%m%d%H%M%S", &tm) != 14)
		return fail(b, "date out of range: %lld", (long long)t);
	b->date_for = t;
	b->date_ready = 1;
	return 0;
}

/* Writes the field for h (nothing when its value is empty, but for From)
 * as it is given; single is its index in SINGLE, or -1. Returns 0 or -1. */
static int header_field(struct build *st, const struct mime_header_value *h, const char *name,
			int single)
{
	struct mime_builder *b = st->b;
	struct mime_field f;
	const char *v;
	size_t n;
	int r;

	bytebuf_clear(&b->clean);
	if (bytebuf_reserve(&b->clean, h->value_len) != 0)
		return fail(b, "header %s: %s", name, b->clean.errstr);
	v = b->clean.data;
	n = h->value_len ? mime_header_clean(b->clean.data, h->value, h->value_len) : 0;
	while (n > 0 && is_wsp(v[0]))
		v++, n--;
	while (n > 0 && is_wsp(v[n - 1]))
		n--;
	if (n == 0)   /* "Cc: {{cc}}" without a cc */
		return single == 0 ? fail(b, "header From is empty") : 0;
	if (utf8_check(v, n) != n)
		return fail(b, "header %s: invalid UTF-8 at byte %zu", name, utf8_check(v, n));
	if (single >= 0 && single < ADDRESS_HEADERS) {
		/* From and Sender name one mailbox: MAIL FROM comes from it */
		return address_header(st, h, name, v, n, single == 0, single <= 1);
	}
	r = mime_field_begin(&f, st->out, h->name, h->name_len);
	if (r == 0)
		r = mime_field_unstructured(&f, v, n, st->o->smtputf8);
	if (r == 0)
		r = mime_field_end(&f);
	if (r != 0)
		return fail(b, "header %s: %s", name, mime_strerror(r, st->out));
	return 0;
}

/* When m holds h's field for the same value and options, appends it (and
 * From's envelope address) and returns 1; returns 0 when it does not, or
 * -1 when out is full. */
static int memo_hit(struct build *st, const struct header_memo *m,
		    const struct mime_header_value *h, int is_from)
{
	if (!m->ready || m->name_len != h->name_len || memcmp(m->name, h->name, h->name_len) != 0 ||
	    m->smtputf8 != st->o->smtputf8 || m->value_len != h->value_len ||
	    memcmp(m->value, h->value, h->value_len) != 0)
		return 0;
	if (bytebuf_append(st->out, m->field, m->field_len) != 0)
		return fail(st->b, "%s", st->out->errstr);
	if (is_from)
		memcpy(st->info->envelope_from, m->envelope_from, sizeof m->envelope_from);
	return 1;
}

/* Remembers the field just written at out[at..) for h's value, when both
 * are short enough. */
static void memo_keep(struct build *st, struct header_memo *m, const struct mime_header_value *h,
		      size_t at, int is_from)
{
	size_t n = st->out->len - at;

	m->ready = h->value_len <= sizeof m->value && n <= sizeof m->field &&
		   h->name_len <= sizeof m->name;
	if (!m->ready)
		return;
	memcpy(m->name, h->name, h->name_len);
	m->name_len = h->name_len;
	m->smtputf8 = st->o->smtputf8;
	m->value_len = h->value_len;
	memcpy(m->value, h->value, h->value_len);
	m->field_len = n;
	memcpy(m->field, st->out->data + at, n);
	if (is_from)
		memcpy(m->envelope_from, st->info->envelope_from, sizeof m->envelope_from);
}

/* Checks h's name (the k-th header): sets *single (its index in SINGLE,
 * or -1) and *unsubscribe. Returns 0, or -1 when volley does not take it. */
static int header_name_check(struct mime_builder *b, size_t k, const struct mime_header_value *h,
			     int *single, int *unsubscribe)
{
	struct header_name *kept = k < HEADER_MEMO ? &b->names_checked[k] : NULL;
	char name[MIME_HEADER_NAME_MAX + 1];

	if (kept && kept->len == h->name_len && memcmp(kept->name, h->name, h->name_len) == 0) {
		*single = kept->single;
		*unsubscribe = kept->unsubscribe;
		return 0;
	}
	shown(h->name, h->name_len, name);
	if (!mime_header_name_valid(h->name, h->name_len))
		return fail(b, "bad header name \"%s\"", name);
	if (mime_header_is_reserved(h->name, h->name_len))
		return fail(b, "header %s is set by volley; remove it from the template", name);
	*single = single_index(h->name, h->name_len);
	*unsubscribe = name_is(h->name, h->name_len, "List-Unsubscribe") ||
		       name_is(h->name, h->name_len, "List-Unsubscribe-Post");
	if (kept) {
		/* a valid name is at most MIME_HEADER_NAME_MAX octets */
		memcpy(kept->name, h->name, h->name_len);
		kept->len = h->name_len;
		kept->single = *single;
		kept->unsubscribe = *unsubscribe;
	}
	return 0;
}

static int headers(struct build *st)
{
	const struct mime_message_opts *o = st->o;
	struct mime_builder *b = st->b;
	char name[MIME_HEADER_NAME_MAX + 1];
	unsigned seen = 0;     /* bit i: SINGLE[i] was given */
	size_t header_start = st->out->len;

	if (date_texts(b, o->date) != 0)
		return -1;
	if (bytebuf_append_str(st->out, "Date: ") != 0 || bytebuf_append_str(st->out, b->date_text) != 0 ||
	    bytebuf_append(st->out, "\r\n", 2) != 0)
		return fail(b, "%s", st->out->errstr);

	for (size_t k = 0; k < st->in->nheaders; k++) {
		const struct mime_header_value *h = &st->in->headers[k];
		int single = -1, unsubscribe = 0;

		if (header_name_check(b, k, h, &single, &unsubscribe) != 0)
			return -1;
		/* a valid name (at most MIME_HEADER_NAME_MAX octets, printable)
		 * is shown as it is */
		memcpy(name, h->name, h->name_len);
		name[h->name_len] = '\0';
		if ((o->unsubscribe_url || o->unsubscribe_mailto) && unsubscribe)
			return fail(b, "header %s is set by volley from the unsubscribe URL", name);
		if (single >= 0) {
			if (seen & (1u << single))
				return fail(b, "header %s appears twice", name);
			seen |= 1u << single;
		}
		if (h->value_len > MIME_HEADER_VALUE_MAX)
			return fail(b, "header %s: value longer than %u octets", name,
				    MIME_HEADER_VALUE_MAX);
		int hit = k < HEADER_MEMO ? memo_hit(st, &b->memo[k], h, single == 0) : 0;
		if (hit < 0)
			return -1;
		if (hit)
			continue;
		size_t at = st->out->len;
		if (header_field(st, h, name, single) != 0)
			return -1;
		if (k < HEADER_MEMO)
			memo_keep(st, &b->memo[k], h, at, single == 0);
	}
	if (!(seen & 1u))
		return fail(b, "no From header");
	if (message_id(st) != 0 || unsubscribe(st) != 0)
		return -1;
	if (bytebuf_append_str(st->out, "MIME-Version: 1.0\r\n") != 0)
		return fail(b, "%s", st->out->errstr);
	st->info->needs_smtputf8 =
		utf8_has_non_ascii(st->out->data + header_start, st->out->len - header_start);
	return 0;
}

/* ---- the body ---- */

/* Inlined, so that the length of a literal is known when compiling. */
static inline int put(struct build *st, const char *s)
{
	if (bytebuf_append(st->out, s, strlen(s)) != 0)
		return fail(st->b, "%s", st->out->errstr);
	return 0;
}

/* The boundary of level (its length is known: no strlen per use). */
static inline int put_boundary(struct build *st, char level)
{
	st->boundary[BOUNDARY_LEN - 1] = level;
	if (bytebuf_append(st->out, st->boundary, BOUNDARY_LEN) != 0)
		return fail(st->b, "%s", st->out->errstr);
	return 0;
}

/* "--B_x" with what comes before and after it. */
static int delimiter(struct build *st, const char *before, char level, const char *after)
{
	if (put(st, before) != 0 || put(st, "--") != 0 || put_boundary(st, level) != 0)
		return -1;
	return put(st, after);
}

static int multipart_header(struct build *st, const char *subtype, char level)
{
	if (put(st, "Content-Type: multipart/") != 0 || put(st, subtype) != 0 ||
	    put(st, "; boundary=\"") != 0 || put_boundary(st, level) != 0 || put(st, "\"\r\n\r\n") != 0)
		return -1;
	return 0;
}

/* Whether p[0..n) holds the boundaries' prefix: every '_' is looked at
 * (memchr is fast, and '_' is rarer than '=' in HTML). */
static int holds_boundary(const char *p, size_t n, const char *prefix)
{
	const char *end = p + n, *q = p + 1;

	if (n < BOUNDARY_PREFIX_LEN)
		return 0;
	while ((q = memchr(q, '_', (size_t)(end - q))) != NULL) {
		if ((size_t)(end - q) < BOUNDARY_PREFIX_LEN - 1)
			return 0;
		if (q[-1] == '=' && memcmp(q - 1, prefix, BOUNDARY_PREFIX_LEN) == 0)
			return 1;
		q++;
	}
	return 0;
}

/* A text part's content: its text, or the writer that makes it. */
struct part_source {
	const char *text;
	size_t len;
	const struct mime_text_writer *writer;
};

/* Writes the part as it is (7bit or 8bit): returns as mime_text_copy, and
 * sets *underscore to 0 when the text surely holds no '_'. */
static int copy_plain(struct build *st, const struct part_source *src, enum mime_cte *cte,
		      int *underscore)
{
	int allow = st->o->smtp_8bitmime;

	*underscore = 1;
	if (src->writer)
		return src->writer->write(src->writer->ud, st->out, allow, cte, underscore);
	return mime_text_copy(st->out, src->text, src->len, allow, cte);
}

/* The part's text as it is. Returns 0 or MIME_ESOURCE. */
static int source_text(const struct part_source *src, const char **text, size_t *len)
{
	if (src->writer)
		return src->writer->text(src->writer->ud, text, len);
	*text = src->text;
	*len = src->len;
	return 0;
}

static int text_part(struct build *st, const char *subtype, const struct part_source *src)
{
	struct bytebuf *out = st->out;
	size_t cte_at, body_at, n = 0;
	const char *p = NULL;
	enum mime_cte cte;
	int r, underscore;

	if (put(st, "Content-Type: text/") != 0 || put(st, subtype) != 0 ||
	    put(st, "; charset=utf-8\r\nContent-Transfer-Encoding: ") != 0)
		return -1;
	cte_at = out->len;
	if (put(st, "7bit\r\n\r\n") != 0)
		return -1;
	body_at = out->len;
	r = copy_plain(st, src, &cte, &underscore);
	if (r == 0) {
		if (cte == MIME_CTE_8BIT) {
			/* same length as "7bit": settled after the copy, in place */
			memcpy(out->data + cte_at, "8bit", 4);
			st->any_8bit = 1;
		}
		if (st->multipart && underscore &&
		    holds_boundary(out->data + body_at, out->len - body_at, st->boundary))
			st->collided = 1;
		return 0;
	}
	if (r == MIME_NEED_QP || r == MIME_EUTF8) {
		int t = source_text(src, &p, &n);
		if (t != 0)
			r = t;
	}
	if (r == MIME_NEED_QP) {
		bytebuf_truncate(out, cte_at);
		if (put(st, "quoted-printable\r\n\r\n") != 0)
			return -1;
		r = mime_qp_encode(out, p, n);
	}
	if (r == MIME_EUTF8)
		return fail(st->b, "the text/%s part is not valid UTF-8 (byte %zu)", subtype,
			    utf8_check(p, n));
	if (r != 0)
		return fail(st->b, "the text/%s part: %s", subtype, mime_strerror(r, out));
	return 0;
}

/* The text, the html, or both as multipart/alternative. */
static int readable_part(struct build *st, const struct part_source *text,
			 const struct part_source *html)
{
	if (!text || !html)
		return text ? text_part(st, "plain", text) : text_part(st, "html", html);
	if (multipart_header(st, "alternative", 'a') != 0 || delimiter(st, "", 'a', "\r\n") != 0 ||
	    text_part(st, "plain", text) != 0 || delimiter(st, "\r\n", 'a', "\r\n") != 0 ||
	    text_part(st, "html", html) != 0 || delimiter(st, "\r\n", 'a', "--") != 0)
		return -1;
	return 0;
}

/* The text or html part of in, or NULL when there is none. */
static const struct part_source *source_of(const char *s, size_t n,
					   const struct mime_text_writer *w,
					   struct part_source *src)
{
	if (!s && !w)
		return NULL;
	*src = (struct part_source){ s, n, w };
	return src;
}

static int body(struct build *st)
{
	const struct mime_message_parts *in = st->in;
	struct part_source tsrc, hsrc;
	const struct part_source *text = source_of(in->text, in->text_len, st->w->text, &tsrc);
	const struct part_source *html = source_of(in->html, in->html_len, st->w->html, &hsrc);
	int readable;

	if (!text && !html && in->nattachments == 0)
		text = source_of("", 0, NULL, &tsrc);   /* an empty text/plain message */
	readable = text || html;
	st->multipart = (text && html) || in->nattachments > 0;
	if (in->nattachments == 0) {
		if (readable_part(st, text, html) != 0)
			return -1;
		return st->multipart ? put(st, "\r\n") : 0;
	}
	if (multipart_header(st, "mixed", 'm') != 0)
		return -1;
	if (readable && (delimiter(st, "", 'm', "\r\n") != 0 || readable_part(st, text, html) != 0))
		return -1;
	for (size_t k = 0; k < in->nattachments; k++) {
		size_t len;
		const char *part = mime_attachment_part(in->attachments[k], &len);
		if (delimiter(st, readable || k > 0 ? "\r\n" : "", 'm', "\r\n") != 0)
			return -1;
		if (bytebuf_append(st->out, part, len) != 0)
			return fail(st->b, "%s", st->out->errstr);
	}
	return delimiter(st, "\r\n", 'm', "--\r\n");
}

int mime_build(struct mime_builder *b, const struct mime_message_parts *in,
	       const struct mime_message_opts *o, struct bytebuf *out, struct mime_message_info *info)
{
	const struct mime_text_writers none = { NULL, NULL };

	return mime_build_written(b, in, &none, o, out, info);
}

int mime_build_written(struct mime_builder *b, const struct mime_message_parts *in,
		       const struct mime_text_writers *w, const struct mime_message_opts *o,
		       struct bytebuf *out, struct mime_message_info *info)
{
	struct mime_message_info scratch;
	size_t entry = out->len;
	struct build st;

	b->errstr[0] = '\0';
	if (!info)
		info = &scratch;
	for (int attempt = 0; attempt < BUILD_ATTEMPTS; attempt++) {
		unsigned char rnd[BOUNDARY_RANDOM] = { 0 };

		memset(&st, 0, sizeof st);
		st.b = b;
		st.in = in;
		st.w = w;
		st.o = o;
		st.out = out;
		st.info = info;
		memset(info, 0, sizeof *info);
		bytebuf_truncate(out, entry);
		if (headers(&st) != 0 || random_bytes(b, rnd, sizeof rnd) != 0)
			goto failed;
		st.boundary[0] = '=';
		st.boundary[1] = '_';
		hex(st.boundary + 2, rnd, sizeof rnd);
		st.boundary[BOUNDARY_PREFIX_LEN] = '_';
		st.boundary[BOUNDARY_PREFIX_LEN + 1] = 'm';
		st.boundary[BOUNDARY_PREFIX_LEN + 2] = '\0';
		if (body(&st) != 0)
			goto failed;
		if (!st.collided) {
			info->needs_8bitmime = st.any_8bit;
			return 0;
		}
	}
	fail(b, "no boundary absent from the content after %d tries", BUILD_ATTEMPTS);
failed:
	bytebuf_truncate(out, entry);
	return -1;
}
