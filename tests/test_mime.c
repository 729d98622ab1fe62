/* Tests for templates/: the capped buffer, UTF-8 checks, the MIME encoders
 * (quoted-printable, base64, the 7bit/8bit choice, RFC 2047 header fields)
 * against known vectors and their own decoders, addresses (quoting, RFC
 * 2047 display names, IDN through libidn2), attachments, and whole messages
 * (exact bytes with a known random source, structure, header injection,
 * unsubscribe headers, boundaries, limits). */
#include "templates/bytebuf.h"
#include "templates/mime_address.h"
#include "templates/mime_attachment.h"
#include "templates/mime_encode.h"
#include "templates/mime_message.h"
#include "templates/utf8.h"
#include "tests/testutil.h"
#include "tests/guard.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <strings.h>
#include <unistd.h>

/* ---- helpers ---- */

#define BUF_MAX (8u << 20)

static void buf_set(struct bytebuf *b, size_t max)
{
	bytebuf_free(b);
	bytebuf_init(b, max);
}

/* Every line of s[0..n) ends in CRLF (the last may have no end), holds no
 * bare CR or LF and has at most max octets. Returns the longest line, or
 * (size_t)-1 for a bad line end. */
static size_t longest_line(const char *s, size_t n)
{
	size_t longest = 0, start = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\r') {
			if (i + 1 >= n || s[i + 1] != '\n')
				return (size_t)-1;
			if (i - start > longest)
				longest = i - start;
			start = i + 2;
			i++;
		} else if (s[i] == '\n') {
			return (size_t)-1;
		}
	}
	if (n - start > longest)
		longest = n - start;
	return longest;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* A strict quoted-printable decoder for the round trips: upper-case hex
 * only, no whitespace before a line end, lines of at most 76. Returns the
 * decoded length, or -1. */
static long qp_decode(const char *s, size_t n, char *out)
{
	size_t o = 0, col = 0;

	for (size_t i = 0; i < n;) {
		if (s[i] == '\r') {
			if (i + 1 >= n || s[i + 1] != '\n' || (i > 0 && (s[i - 1] == ' ' || s[i - 1] == '\t')))
				return -1;
			out[o++] = '\r';
			out[o++] = '\n';
			i += 2;
			col = 0;
			continue;
		}
		if (s[i] == '=') {
			if (i + 1 < n && s[i + 1] == '\r') {
				if (i + 2 >= n || s[i + 2] != '\n' || col + 1 > MIME_QP_LINE)
					return -1;
				i += 3;
				col = 0;
				continue;
			}
			if (i + 2 >= n || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0)
				return -1;
			out[o++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
			i += 3;
			col += 3;
		} else {
			unsigned char c = (unsigned char)s[i];
			if (c >= 0x80 || (c < 0x20 && c != '\t'))
				return -1;
			out[o++] = s[i++];
			col++;
		}
		if (col > MIME_QP_LINE)
			return -1;
	}
	if (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		return -1;
	return (long)o;
}

/* Line ends made CRLF, as the encoders do. Returns the length. */
static size_t to_crlf(const char *s, size_t n, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\r' || s[i] == '\n') {
			if (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n')
				i++;
			out[o++] = '\r';
			out[o++] = '\n';
		} else {
			out[o++] = s[i];
		}
	}
	return o;
}

static int b64val(char c)
{
	const char *a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const char *p = c ? strchr(a, c) : NULL;
	return p ? (int)(p - a) : -1;
}

/* Decodes base64 without line breaks. Returns the length or -1. */
static long b64_decode(const char *s, size_t n, unsigned char *out)
{
	size_t o = 0;

	if (n % 4)
		return -1;
	for (size_t i = 0; i < n; i += 4) {
		int v[4];
		for (int k = 0; k < 4; k++)
			v[k] = s[i + k] == '=' ? 0 : b64val(s[i + k]);
		if (v[0] < 0 || v[1] < 0 || v[2] < 0 || v[3] < 0)
			return -1;
		out[o++] = (unsigned char)(v[0] << 2 | v[1] >> 4);
		if (s[i + 2] != '=')
			out[o++] = (unsigned char)(v[1] << 4 | v[2] >> 2);
		if (s[i + 3] != '=')
			out[o++] = (unsigned char)(v[2] << 6 | v[3]);
	}
	return (long)o;
}

/* ---- bytebuf ---- */

static void test_bytebuf(void)
{
	struct bytebuf b;
	struct bytebuf_cursor c;

	bytebuf_init(&b, 10);
	T_EQ_INT(bytebuf_append(&b, "hello", 5), 0);
	T_EQ_INT(bytebuf_append(&b, "world", 5), 0);
	T_EQ_MEM(b.data, b.len, "helloworld", 10);
	T_EQ_INT(bytebuf_append_byte(&b, '!'), -1);
	T_EQ_STR(b.errstr, "output larger than its cap");
	T_EQ_INT(b.len, 10);
	T_EQ_INT(b.cap, 10);
	bytebuf_clear(&b);
	T_EQ_INT(bytebuf_append(&b, "0123456789a", 11), -1);
	T_EQ_INT(b.len, 0);
	T_EQ_INT(bytebuf_append_str(&b, "abc"), 0);
	T_EQ_INT(bytebuf_append_byte(&b, 'd'), 0);
	T_EQ_MEM(b.data, b.len, "abcd", 4);
	bytebuf_free(&b);
	bytebuf_free(NULL);

	/* a cursor grows by steps and stops at the cap */
	bytebuf_init(&b, 10000);
	bytebuf_cursor_begin(&c, &b);
	for (int i = 0; i < 10000; i++) {
		T_EQ_INT(bytebuf_cursor_need(&c, 1), 0);
		*c.o++ = (char)('a' + i % 26);
	}
	T_EQ_INT(bytebuf_cursor_need(&c, 1), -1);
	bytebuf_cursor_end(&c);
	T_EQ_INT(b.len, 10000);
	T_EQ_INT(b.data[9999], 'a' + 9999 % 26);
	bytebuf_free(&b);

	/* a cap of 0 holds nothing */
	bytebuf_init(&b, 0);
	T_EQ_INT(bytebuf_append(&b, "x", 1), -1);
	T_EQ_INT(bytebuf_append(&b, "", 0), 0);
	bytebuf_free(&b);
}

/* ---- utf8 ---- */

static void test_utf8(void)
{
	static const struct {
		const char *s;
		size_t bad;     /* offset of the first invalid byte; strlen when valid */
	} cases[] = {
		{ "", 0 },
		{ "plain ascii", 11 },
		{ "caf\xc3\xa9", 5 },
		{ "\xe2\x82\xac 10", 6 },
		{ "\xf0\x9f\x98\x80", 4 },
		{ "\xf4\x8f\xbf\xbf", 4 },          /* U+10FFFF */
		{ "ab\xc3", 2 },                     /* truncated */
		{ "ab\x80", 2 },                     /* stray continuation */
		{ "\xc0\xaf", 0 },                   /* overlong '/' */
		{ "\xe0\x80\xaf", 0 },               /* overlong */
		{ "\xed\xa0\x80", 0 },               /* surrogate */
		{ "\xf4\x90\x80\x80", 0 },           /* past U+10FFFF */
		{ "\xff", 0 },
		{ "12345678\xc3\xa9\xc3", 10 },      /* after an 8-byte ASCII run */
		/* tails under eight bytes after a whole word: read as the last
		 * eight bytes when they are ASCII, else byte by byte */
		{ "123456789abcdef", 15 },
		{ "123456789abcd\xff" "f", 13 },
		{ "123456789\xc3\xa9", 11 },
		{ "123456789ab\xc3", 11 },
		{ "1234567\xc3\xa9" "abc", 12 },
		{ "\xe2\x82" "x", 0 },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		size_t n = strlen(cases[i].s);
		memcpy(guard_mem - n, cases[i].s, n);
		T_EQ_INT(utf8_check(guard_mem - n, n), cases[i].bad);
	}
	T_EQ_INT(utf8_has_non_ascii("abcdefghijkl", 12), 0);
	T_EQ_INT(utf8_has_non_ascii("abcdefghijk\xc3\xa9", 13), 1);
	T_EQ_INT(utf8_has_non_ascii("\xc3\xa9", 2), 1);
	T_EQ_INT(utf8_char_len("\xc3\xa9", 1), 0);
	T_EQ_INT(utf8_char_len("\xc3\xa9", 2), 2);
}

/* ---- quoted-printable ---- */

struct qp_case {
	const char *in;
	const char *want;
};

static void test_qp_vectors(void)
{
	static char a75[80], a76[80], a77[90], w1[120], w2[120], w3[120], w4[120], w5[120], w6[120];
	static char x1[200], x2[200], x3[200], x4[200];
	struct qp_case cases[] = {
		{ "", "" },
		{ "hello", "hello" },
		{ "a=b", "a=3Db" },
		{ "caf\xc3\xa9", "caf=C3=A9" },
		{ "trailing \n", "trailing=20\r\n" },
		{ "trailing two  \nx", "trailing two =20\r\nx" },
		{ "tab\t", "tab=09" },
		{ "tab\tin", "tab\tin" },
		{ "a\r\nb", "a\r\nb" },
		{ "a\rb", "a\r\nb" },
		{ "a\nb", "a\r\nb" },
		{ "a\n\n", "a\r\n\r\n" },
		{ ".dot\n.start", ".dot\r\n.start" },
		{ "nul\x01\x7f", "nul=01=7F" },
		{ "\xf0\x9f\x98\x80", "=F0=9F=98=80" },
		{ a75, NULL }, { a76, NULL }, { a77, NULL },
		{ w1, NULL }, { w2, NULL }, { w3, NULL }, { w4, NULL }, { w5, NULL }, { w6, NULL },
		{ x1, NULL }, { x2, NULL }, { x3, NULL }, { x4, NULL },
	};
	char want[16][200];
	struct bytebuf b;
	int k = 0;

	/* the 76-column boundaries: a line may take 76 characters when nothing
	 * follows on it, 75 and a soft break otherwise, and an =XX is never
	 * split */
	memset(a75, 'a', 75);
	memset(a76, 'a', 76);
	memset(a77, 'a', 77);
	snprintf(want[k++], 200, "%s", a75);
	snprintf(want[k++], 200, "%s", a76);
	snprintf(want[k++], 200, "%.75s=\r\naa", a77);
	snprintf(w1, sizeof w1, "%.73s=", a77);          /* =3D ends the line at 76 */
	snprintf(want[k++], 200, "%.73s=3D", a77);
	snprintf(w2, sizeof w2, "%.74s=", a77);          /* =3D would end at 77 */
	snprintf(want[k++], 200, "%.74s=\r\n=3D", a77);
	snprintf(w3, sizeof w3, "%.73s=b", a77);         /* =3D not last: at most 75 */
	snprintf(want[k++], 200, "%.73s=\r\n=3Db", a77);
	snprintf(w4, sizeof w4, "%.72s=b", a77);
	snprintf(want[k++], 200, "%.72s=3Db", a77);   /* b may take the 76th */
	snprintf(w5, sizeof w5, "%.75s b", a77);         /* a space may not end a line */
	snprintf(want[k++], 200, "%.75s=\r\n b", a77);
	snprintf(w6, sizeof w6, "%.75s \n", a77);        /* a trailing space is =20 */
	snprintf(want[k++], 200, "%.75s=\r\n=20\r\n", a77);
	snprintf(x1, sizeof x1, "%.73s\xc3\xa9", a77);   /* é is two =XX, not split */
	snprintf(want[k++], 200, "%.73s=\r\n=C3=A9", a77);
	snprintf(x2, sizeof x2, "%.70s\xc3\xa9", a77);
	snprintf(want[k++], 200, "%.70s=C3=A9", a77);
	snprintf(x3, sizeof x3, ".%.75s\n.b", a77);      /* a dot starting a line stays */
	snprintf(want[k++], 200, ".%.75s\r\n.b", a77);
	snprintf(x4, sizeof x4, "%.76s\n%.76s", a77, a77);
	snprintf(want[k++], 200, "%.76s\r\n%.76s", a77, a77);

	bytebuf_init(&b, BUF_MAX);
	k = 0;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *w = cases[i].want ? cases[i].want : want[k++];
		size_t n = strlen(cases[i].in);
		bytebuf_clear(&b);
		memcpy(guard_mem - n, cases[i].in, n);
		T_EQ_INT(mime_qp_encode(&b, guard_mem - n, n), 0);
		T_EQ_MEM(b.data ? b.data : "", b.len, w, strlen(w));
		T_TRUE(longest_line(b.data ? b.data : "", b.len) <= MIME_QP_LINE);
	}

	/* invalid UTF-8 is refused and nothing is written */
	bytebuf_clear(&b);
	T_EQ_INT(bytebuf_append_str(&b, "keep"), 0);
	T_EQ_INT(mime_qp_encode(&b, "ok\xc3(", 4), MIME_EUTF8);
	T_EQ_MEM(b.data, b.len, "keep", 4);
	/* the cap */
	buf_set(&b, 10);
	T_EQ_INT(mime_qp_encode(&b, "\xc3\xa9\xc3\xa9", 4), MIME_EBUF);
	T_EQ_INT(b.len, 0);
	bytebuf_free(&b);
}

/* Random text: ASCII, spaces and tabs, '=', line ends of three kinds,
 * controls and non-ASCII characters; valid UTF-8. */
static size_t random_text(uint32_t *seed, char *out, size_t n)
{
	static const char *pieces[] = {
		"a", "b", "Z", "0", ".", "=", " ", "\t", "\n", "\r\n", "\r", "\x01",
		"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "  ", "=?", "_", "-", "\x7f",
	};
	size_t o = 0;

	while (o + 8 < n) {
		const char *p = pieces[xorshift32(seed) % (sizeof pieces / sizeof pieces[0])];
		if (xorshift32(seed) % 4 == 0) {
			/* a run of letters, sometimes long enough for soft breaks */
			size_t run = xorshift32(seed) % 120;
			for (size_t i = 0; i < run && o + 8 < n; i++)
				out[o++] = (char)('a' + i % 26);
			continue;
		}
		memcpy(out + o, p, strlen(p));
		o += strlen(p);
	}
	return o;
}

static void test_qp_round_trip(void)
{
	static char in[4096], crlf[8192], dec[8192];
	struct bytebuf b;
	uint32_t seed = 12345;

	bytebuf_init(&b, BUF_MAX);
	for (int round = 0; round < 500; round++) {
		size_t n = random_text(&seed, in, 1 + xorshift32(&seed) % sizeof in);
		size_t cn = to_crlf(in, n, crlf);
		long dn;

		bytebuf_clear(&b);
		memcpy(guard_mem - n, in, n);
		T_EQ_INT(mime_qp_encode(&b, guard_mem - n, n), 0);
		T_TRUE(longest_line(b.data, b.len) <= MIME_QP_LINE);
		dn = qp_decode(b.data, b.len, dec);
		T_TRUE(dn >= 0);
		if (dn >= 0)
			T_EQ_MEM(dec, (size_t)dn, crlf, cn);
		if (t_failures)
			break;
	}
	bytebuf_free(&b);
}

/* ---- base64 ---- */

static void test_base64(void)
{
	static const struct qp_case rfc4648[] = {
		{ "", "" },
		{ "f", "Zg==\r\n" },
		{ "fo", "Zm8=\r\n" },
		{ "foo", "Zm9v\r\n" },
		{ "foob", "Zm9vYg==\r\n" },
		{ "fooba", "Zm9vYmE=\r\n" },
		{ "foobar", "Zm9vYmFy\r\n" },
	};
	unsigned char data[600], dec[600];
	struct bytebuf b;
	uint32_t seed = 777;

	bytebuf_init(&b, BUF_MAX);
	for (size_t i = 0; i < sizeof rfc4648 / sizeof rfc4648[0]; i++) {
		size_t n = strlen(rfc4648[i].in);
		bytebuf_clear(&b);
		memcpy(guard_mem - n, rfc4648[i].in, n);
		T_EQ_INT(mime_base64_encode(&b, guard_mem - n, n), 0);
		T_EQ_MEM(b.data ? b.data : "", b.len, rfc4648[i].want, strlen(rfc4648[i].want));
	}

	/* 57 bytes fill one 76-column line exactly; 58 start a second */
	memset(data, 0xff, sizeof data);
	bytebuf_clear(&b);
	T_EQ_INT(mime_base64_encode(&b, data, 57), 0);
	T_EQ_INT(b.len, 78);
	T_EQ_INT(longest_line(b.data, b.len), 76);
	bytebuf_clear(&b);
	T_EQ_INT(mime_base64_encode(&b, data, 58), 0);
	T_EQ_INT(b.len, 78 + 6);
	T_EQ_MEM(b.data + 76, 8, "\r\n/w==\r\n", 8);

	/* every length: the predicted size, 76 columns, and the bytes back */
	for (size_t n = 0; n < sizeof data; n++) {
		size_t o = 0;
		long dn = 0;
		for (size_t i = 0; i < n; i++)
			data[i] = (unsigned char)xorshift32(&seed);
		bytebuf_clear(&b);
		memcpy(guard_mem - n, data, n);
		T_EQ_INT(mime_base64_encode(&b, guard_mem - n, n), 0);
		T_EQ_INT(b.len, mime_base64_len(n));
		T_TRUE(longest_line(b.data ? b.data : "", b.len) <= MIME_B64_LINE);
		/* decode line by line */
		for (size_t start = 0; start < b.len;) {
			const char *e = memchr(b.data + start, '\r', b.len - start);
			size_t len = (size_t)(e - (b.data + start));
			long got = b64_decode(b.data + start, len, dec + o);
			if (got < 0) {
				dn = -1;
				break;
			}
			o += (size_t)got;
			start += len + 2;
		}
		T_TRUE(dn == 0);
		T_EQ_MEM(dec, o, data, n);
		if (t_failures)
			break;
	}
	buf_set(&b, 10);
	T_EQ_INT(mime_base64_encode(&b, data, 9), MIME_EBUF);
	T_EQ_INT(b.len, 0);
	bytebuf_free(&b);
}

/* ---- 7bit, 8bit or quoted-printable ---- */

static void test_cte(void)
{
	static char line[2100];
	struct bytebuf b;
	enum mime_cte cte;

	T_EQ_STR(mime_cte_name(MIME_CTE_7BIT), "7bit");
	T_EQ_STR(mime_cte_name(MIME_CTE_8BIT), "8bit");
	T_EQ_STR(mime_cte_name(MIME_CTE_QP), "quoted-printable");
	T_EQ_STR(mime_cte_name(MIME_CTE_BASE64), "base64");

	T_EQ_INT(mime_text_cte("", 0, 0), MIME_CTE_7BIT);
	T_EQ_INT(mime_text_cte("Hello\n.\nBye\n", 12, 0), MIME_CTE_7BIT);
	T_EQ_INT(mime_text_cte("tab\tdel\x7f bell\x07", 14, 0), MIME_CTE_7BIT);
	T_EQ_INT(mime_text_cte("caf\xc3\xa9", 5, 0), MIME_CTE_QP);
	T_EQ_INT(mime_text_cte("caf\xc3\xa9", 5, 1), MIME_CTE_8BIT);
	T_EQ_INT(mime_text_cte("nul\0x", 5, 1), MIME_CTE_QP);
	T_EQ_INT(mime_text_cte("bad\xc3(", 5, 1), MIME_CTE_QP);

	/* a line of exactly 998 octets goes as it is, 999 does not, whatever
	 * the line end */
	memset(line, 'x', sizeof line);
	T_EQ_INT(mime_text_cte(line, 998, 0), MIME_CTE_7BIT);
	T_EQ_INT(mime_text_cte(line, 999, 0), MIME_CTE_QP);
	memcpy(line + 998, "\r\n", 2);
	T_EQ_INT(mime_text_cte(line, 1000, 0), MIME_CTE_7BIT);
	T_EQ_INT(mime_text_cte(line, 1010, 0), MIME_CTE_7BIT);
	line[998] = '\n';
	T_EQ_INT(mime_text_cte(line, 1010, 0), MIME_CTE_7BIT);
	memset(line, 'x', sizeof line);
	line[1000] = '\n';
	T_EQ_INT(mime_text_cte(line, 1100, 0), MIME_CTE_QP);
	/* 998 octets counting a multi-byte character */
	memset(line, 'x', sizeof line);
	memcpy(line + 996, "\xc3\xa9\n", 3);
	T_EQ_INT(mime_text_cte(line, 999, 1), MIME_CTE_8BIT);
	memcpy(line + 997, "\xc3\xa9\n", 3);
	T_EQ_INT(mime_text_cte(line, 1000, 1), MIME_CTE_QP);

	/* the copy: CRLF line ends, the rest as it is */
	bytebuf_init(&b, BUF_MAX);
	T_EQ_INT(mime_text_copy(&b, "a\nb\rc\r\nd\n\n.e", 12, 0, &cte), 0);
	T_EQ_INT(cte, MIME_CTE_7BIT);
	T_EQ_MEM(b.data, b.len, "a\r\nb\r\nc\r\nd\r\n\r\n.e", 16);
	bytebuf_clear(&b);
	T_EQ_INT(mime_text_copy(&b, "\xc3\xa9t\xc3\xa9\n", 6, 1, &cte), 0);
	T_EQ_INT(cte, MIME_CTE_8BIT);
	T_EQ_MEM(b.data, b.len, "\xc3\xa9t\xc3\xa9\r\n", 7);
	/* what cannot go as it is leaves the buffer as it was */
	bytebuf_clear(&b);
	T_EQ_INT(bytebuf_append_str(&b, "keep"), 0);
	T_EQ_INT(mime_text_copy(&b, "abc\xc3\xa9", 5, 0, &cte), MIME_NEED_QP);
	T_EQ_MEM(b.data, b.len, "keep", 4);
	T_EQ_INT(mime_text_copy(&b, line, 1000, 0, &cte), MIME_NEED_QP);
	T_EQ_INT(mime_text_copy(&b, "ab\0", 3, 0, &cte), MIME_NEED_QP);
	T_EQ_INT(mime_text_copy(&b, "ab\xc3", 3, 1, &cte), MIME_EUTF8);
	T_EQ_MEM(b.data, b.len, "keep", 4);
	buf_set(&b, 5);
	T_EQ_INT(mime_text_copy(&b, "a\nb\nc", 5, 0, &cte), MIME_EBUF);
	T_EQ_INT(b.len, 0);
	bytebuf_free(&b);
}

/* The copy agrees with a byte-at-a-time model on random text. */
static void test_cte_random(void)
{
	static char in[4096], crlf[8192];
	struct bytebuf b;
	uint32_t seed = 99;

	bytebuf_init(&b, BUF_MAX);
	for (int round = 0; round < 500; round++) {
		size_t n = random_text(&seed, in, 1 + xorshift32(&seed) % sizeof in);
		size_t cn = to_crlf(in, n, crlf), line = 0, longest = 0;
		int allow = (int)(xorshift32(&seed) & 1), high = 0, nul = 0;
		enum mime_cte want, cte = MIME_CTE_BASE64;

		if (round % 3 == 0) {
			/* fewer line ends: some lines pass 998 */
			for (size_t i = 0; i < n; i++)
				if ((in[i] == '\n' || in[i] == '\r') && xorshift32(&seed) % 8)
					in[i] = 'L';
			cn = to_crlf(in, n, crlf);
		}
		for (size_t i = 0; i < cn; i++) {
			if (crlf[i] == '\r') {
				longest = line > longest ? line : longest;
				line = 0;
				i++;
				continue;
			}
			line++;
			high |= (unsigned char)crlf[i] >= 0x80;
			nul |= crlf[i] == 0;
		}
		longest = line > longest ? line : longest;
		want = nul || longest > MIME_LINE_MAX || (high && !allow) ? MIME_CTE_QP
		       : high ? MIME_CTE_8BIT : MIME_CTE_7BIT;
		T_EQ_INT(mime_text_cte(in, n, allow), want);
		bytebuf_clear(&b);
		memcpy(guard_mem - n, in, n);
		if (want == MIME_CTE_QP) {
			T_EQ_INT(mime_text_copy(&b, guard_mem - n, n, allow, &cte), MIME_NEED_QP);
			T_EQ_INT(b.len, 0);
		} else {
			T_EQ_INT(mime_text_copy(&b, guard_mem - n, n, allow, &cte), 0);
			T_EQ_INT(cte, want);
			T_EQ_MEM(b.data, b.len, crlf, cn);
		}
		if (t_failures)
			break;
	}
	bytebuf_free(&b);
}

/* ---- header fields ---- */

/* Writes "name: value" through mime_field_unstructured into b (cleared).
 * Returns the code. */
static int unstructured(struct bytebuf *b, const char *name, const char *v, int utf8)
{
	struct mime_field f;
	int r;

	bytebuf_clear(b);
	r = mime_field_begin(&f, b, name, strlen(name));
	if (r == 0)
		r = mime_field_unstructured(&f, v, strlen(v), utf8);
	if (r == 0)
		r = mime_field_end(&f);
	return r;
}

/* Decodes an unstructured field's value the way RFC 2047 readers do:
 * unfold, decode each encoded word, drop whitespace between adjacent
 * encoded words. Checks each word on the way: at most 75 characters,
 * valid UTF-8 by itself. Returns the length or -1. */
static long decode_field(const char *s, size_t n, char *out)
{
	char unfolded[8192];
	size_t u = 0, o = 0, i;
	int prev_encoded = 0;
	size_t pending_ws_start = 0, pending_ws = 0;

	for (i = 0; i < n; i++) {
		if (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n') {
			i++;
			continue;
		}
		unfolded[u++] = s[i];
	}
	if (u >= 2 && unfolded[u - 2] == '\r')
		u -= 2;
	i = 0;
	while (i < u && unfolded[i] != ':')
		i++;
	i++;
	while (i < u && unfolded[i] == ' ')
		i++;
	while (i < u) {
		size_t j = i;
		if (unfolded[i] == ' ' || unfolded[i] == '\t') {
			pending_ws_start = o;
			pending_ws = 0;
			while (i < u && (unfolded[i] == ' ' || unfolded[i] == '\t'))
				out[o++] = unfolded[i++], pending_ws++;
			continue;
		}
		while (j < u && unfolded[j] != ' ' && unfolded[j] != '\t')
			j++;
		if (j - i >= 12 && memcmp(unfolded + i, "=?UTF-8?", 8) == 0 &&
		    memcmp(unfolded + j - 2, "?=", 2) == 0) {
			char kind = unfolded[i + 8];
			const char *t = unfolded + i + 10;
			size_t tn = j - i - 12, start;
			if (j - i > MIME_EWORD_MAX)
				return -1;
			if (prev_encoded && pending_ws)
				o = pending_ws_start;   /* whitespace between encoded words */
			start = o;
			if (kind == 'B') {
				long got = b64_decode(t, tn, (unsigned char *)out + o);
				if (got < 0)
					return -1;
				o += (size_t)got;
			} else if (kind == 'Q') {
				for (size_t k = 0; k < tn; k++) {
					if (t[k] == '_') {
						out[o++] = ' ';
					} else if (t[k] == '=') {
						if (k + 2 >= tn || hexval(t[k + 1]) < 0 || hexval(t[k + 2]) < 0)
							return -1;
						out[o++] = (char)(hexval(t[k + 1]) * 16 + hexval(t[k + 2]));
						k += 2;
					} else {
						out[o++] = t[k];
					}
				}
			} else {
				return -1;
			}
			if (utf8_check(out + start, o - start) != o - start)
				return -1;
			prev_encoded = 1;
		} else {
			memcpy(out + o, unfolded + i, j - i);
			o += j - i;
			prev_encoded = 0;
		}
		pending_ws = 0;
		i = j;
	}
	return (long)o;
}

struct field_case {
	const char *value;
	int utf8;
	const char *want;    /* the whole field */
};

static void test_fields(void)
{
	static const struct field_case cases[] = {
		{ "Hello world", 0, "Subject: Hello world\r\n" },
		{ "  padded  \t", 0, "Subject: padded\r\n" },
		{ "two  spaces\tand tab", 0, "Subject: two  spaces\tand tab\r\n" },
		{ "", 0, "Subject:\r\n" },
		{ "Gr\xc3\xbc\xc3\x9f" "e aus K\xc3\xb6ln", 0,
		  "Subject: =?UTF-8?B?R3LDvMOfZQ==?= aus =?UTF-8?B?S8O2bG4=?=\r\n" },
		{ "J\xc3\xbcrgen", 0, "Subject: =?UTF-8?Q?J=C3=BCrgen?=\r\n" },
		/* adjacent non-ASCII words share encoded words, space included */
		{ "caf\xc3\xa9 cr\xc3\xa8me", 0, "Subject: =?UTF-8?B?Y2Fmw6kgY3LDqG1l?=\r\n" },
		/* a word that would read as an encoded word is encoded */
		{ "see =?x?= here", 0, "Subject: see =?UTF-8?B?PT94Pz0=?= here\r\n" },
		/* a control character */
		{ "bell\x07", 0, "Subject: =?UTF-8?Q?bell=07?=\r\n" },
		/* SMTPUTF8: as it is */
		{ "Gr\xc3\xbc\xc3\x9f" "e aus K\xc3\xb6ln", 1, "Subject: Gr\xc3\xbc\xc3\x9f" "e aus K\xc3\xb6ln\r\n" },
		{ "=?x?=", 1, "Subject: =?UTF-8?B?PT94Pz0=?=\r\n" },
	};
	struct bytebuf b;

	bytebuf_init(&b, BUF_MAX);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		T_EQ_INT(unstructured(&b, "Subject", cases[i].value, cases[i].utf8), 0);
		T_EQ_MEM(b.data, b.len, cases[i].want, strlen(cases[i].want));
	}
	/* a long name: a short encoded word still fits after it, a long one
	 * starts on the next line */
	T_EQ_INT(unstructured(&b, "X-A-Rather-Long-Header-Name-For-Testing-The-Fold-Rule-Here", "\xc3\xa9", 0), 0);
	T_EQ_MEM(b.data, b.len, "X-A-Rather-Long-Header-Name-For-Testing-The-Fold-Rule-Here: =?UTF-8?B?w6k=?=\r\n", 78);
	T_EQ_INT(unstructured(&b, "X-A-Rather-Long-Header-Name-For-Testing-The-Fold-Rule-Here",
			      "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 0), 0);
	T_EQ_MEM(b.data, b.len, "X-A-Rather-Long-Header-Name-For-Testing-The-Fold-Rule-Here:\r\n =?UTF-8?B?w6nDqcOpw6nDqcOp?=\r\n", 92);
	T_EQ_INT(unstructured(&b, "Subject", "bad \xc3(", 0), MIME_EUTF8);
	T_EQ_INT(unstructured(&b, "Subject", "bad \xc3(", 1), MIME_EUTF8);
	bytebuf_free(&b);
}

/* Long values: folded within 78 where the words allow, never past 998,
 * and they read back as they were. */
static void test_fields_folding(void)
{
	static char v[6000], dec[8192];
	struct bytebuf b;
	uint32_t seed = 4242;

	bytebuf_init(&b, BUF_MAX);
	/* a long ASCII subject of short words: every line within 78 */
	strcpy(v, "");
	for (int i = 0; i < 60; i++)
		strcat(v, i % 2 ? "lorem " : "ipsum ");
	strcat(v, "end");
	T_EQ_INT(unstructured(&b, "Subject", v, 0), 0);
	T_TRUE(longest_line(b.data, b.len) <= MIME_LINE_SHOULD);
	T_EQ_INT(decode_field(b.data, b.len, dec), (long)strlen(v));
	T_EQ_MEM(dec, strlen(v), v, strlen(v));

	/* a word of 997 octets fits a line of 998 after a fold; 998 do not and
	 * go as encoded words */
	memset(v, 'w', 997);
	v[997] = '\0';
	T_EQ_INT(unstructured(&b, "Subject", v, 0), 0);
	T_EQ_INT(b.len, strlen("Subject:\r\n ") + 997 + 2);
	T_EQ_INT(longest_line(b.data, b.len), 998);
	v[997] = 'w';
	v[998] = '\0';
	T_EQ_INT(unstructured(&b, "Subject", v, 0), 0);
	T_TRUE(longest_line(b.data, b.len) <= MIME_LINE_SHOULD);
	T_EQ_INT(decode_field(b.data, b.len, dec), 998);
	T_EQ_MEM(dec, 998, v, 998);

	/* euro signs (3 octets each) over many encoded words: no word splits
	 * one, every word at most 75 characters, lines within 78 */
	v[0] = '\0';
	for (int i = 0; i < 100; i++)
		strcat(v, "\xe2\x82\xac");
	T_EQ_INT(unstructured(&b, "Subject", v, 0), 0);
	T_TRUE(longest_line(b.data, b.len) <= MIME_LINE_SHOULD);
	T_EQ_INT(decode_field(b.data, b.len, dec), 300);
	T_EQ_MEM(dec, 300, v, 300);

	/* random values with and without SMTPUTF8 */
	for (int round = 0; round < 300; round++) {
		size_t n = 0, want_len;
		int utf8 = round & 1;
		char want[6000];
		long got;
		while (n < 20 + xorshift32(&seed) % 400) {
			static const char *w[] = { "word", " ", "  ", "\t", "\xc3\xa9", "\xe2\x82\xac",
						   "=?", "?=", "x", "longerwordhere", "\xf0\x9f\x98\x80",
						   "_", "=" };
			const char *p = w[xorshift32(&seed) % (sizeof w / sizeof w[0])];
			memcpy(v + n, p, strlen(p));
			n += strlen(p);
		}
		v[n] = '\0';
		/* what a reader gets: the value without the whitespace at its ends */
		{
			size_t a = 0, e = n;
			while (a < e && (v[a] == ' ' || v[a] == '\t'))
				a++;
			while (e > a && (v[e - 1] == ' ' || v[e - 1] == '\t'))
				e--;
			want_len = e - a;
			memcpy(want, v + a, want_len);
		}
		T_EQ_INT(unstructured(&b, "X-Random-Test-Header", v, utf8), 0);
		T_TRUE(longest_line(b.data, b.len) <= MIME_LINE_SHOULD);
		if (!utf8)
			T_EQ_INT(utf8_has_non_ascii(b.data, b.len), 0);
		got = decode_field(b.data, b.len, dec);
		T_EQ_INT(got, (long)want_len);
		if (got == (long)want_len)
			T_EQ_MEM(dec, want_len, want, want_len);
		if (t_failures)
			break;
	}
	bytebuf_free(&b);
}

static void test_header_clean(void)
{
	static const struct qp_case cases[] = {
		{ "plain", "plain" },
		{ "a\r\nBcc: evil@x.test", "a Bcc: evil@x.test" },
		{ "a\nBcc: x", "a Bcc: x" },
		{ "a\rBcc: x", "a Bcc: x" },
		{ "a\n\rb", "a b" },
		{ "a\r\n\r\nbody", "a body" },
		{ "folded\r\n value", "folded value" },
		{ "folded\n\tvalue", "folded\tvalue" },
		{ "end\r\n", "end " },
		{ "\r\nstart", " start" },
		{ "\r\n", " " },
		{ "\r\n ", " " },
	};
	char out[64];

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		size_t n = strlen(cases[i].in);
		memcpy(guard_mem - n, cases[i].in, n);
		n = mime_header_clean(out, guard_mem - n, n);
		T_EQ_MEM(out, n, cases[i].want, strlen(cases[i].want));
		T_TRUE(memchr(out, '\r', n) == NULL && memchr(out, '\n', n) == NULL);
	}
}

/* ---- addresses ---- */

struct parse_case {
	const char *in;
	int count;              /* -1: error */
	const char *name0, *local0, *domain0;
	const char *name1;      /* second mailbox's name, when count == 2 */
	size_t offset;          /* error */
	const char *why;
};

static const struct parse_case parse_cases[] = {
	{ "jane@example.test", 1, "", "jane", "example.test", NULL, 0, NULL },
	{ "  jane@example.test  ", 1, "", "jane", "example.test", NULL, 0, NULL },
	{ "\"Doe, Jane\" <jane@example.test>", 1, "Doe, Jane", "jane", "example.test", NULL, 0, NULL },
	{ "Jane Doe <jane@example.test>", 1, "Jane Doe", "jane", "example.test", NULL, 0, NULL },
	{ "Jane   Doe\t<jane@example.test>", 1, "Jane Doe", "jane", "example.test", NULL, 0, NULL },
	{ "John Q. Public <jqp@example.test>", 1, "John Q. Public", "jqp", "example.test", NULL, 0, NULL },
	{ "jane@example.test (Jane)", 1, "", "jane", "example.test", NULL, 0, NULL },
	{ "Jane (the (nested) one) Doe <j@x.test>", 1, "Jane Doe", "j", "x.test", NULL, 0, NULL },
	{ "<jane@example.test>", 1, "", "jane", "example.test", NULL, 0, NULL },
	{ "\"Esc \\\"q\\\" \\\\\" <e@x.test>", 1, "Esc \"q\" \\", "e", "x.test", NULL, 0, NULL },
	{ "\"\" <e@x.test>", 1, "", "e", "x.test", NULL, 0, NULL },
	{ "\"quoted local\"@x.test", 1, "", "\"quoted local\"", "x.test", NULL, 0, NULL },
	{ "a.b+tag@sub.x.test", 1, "", "a.b+tag", "sub.x.test", NULL, 0, NULL },
	{ "a@[192.0.2.1]", 1, "", "a", "[192.0.2.1]", NULL, 0, NULL },
	{ "J\xc3\xbcrgen <j@b\xc3\xbc" "cher.test>", 1, "J\xc3\xbcrgen", "j", "b\xc3\xbc" "cher.test", NULL, 0, NULL },
	{ "\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.test", 1, "", "\xe7\x94\xa8\xe6\x88\xb7", "\xe4\xbe\x8b\xe5\xad\x90.test", NULL, 0, NULL },
	{ "a@x.test, B <b@y.test>", 2, "", "a", "x.test", "B", 0, NULL },
	{ "\"Doe, J\" <j@x.test>,\"Roe, R\" <r@x.test>", 2, "Doe, J", "j", "x.test", "Roe, R", 0, NULL },
	/* not RFC 5322, but what "{{name}} <{{email}}>" renders */
	{ "Doe, Jane <jane@example.test>", 1, "Doe, Jane", "jane", "example.test", NULL, 0, NULL },
	{ "Jane@Home <jane@example.test>", 1, "Jane@Home", "jane", "example.test", NULL, 0, NULL },
	{ "Jane \"JJ <j@x.test>", 1, "Jane \"JJ", "j", "x.test", NULL, 0, NULL },
	/* errors */
	{ "", -1, NULL, NULL, NULL, NULL, 0, "expected an address" },
	{ "jane", -1, NULL, NULL, NULL, NULL, 4, "expected '@'" },
	{ "jane@", -1, NULL, NULL, NULL, NULL, 5, "expected a domain after '@'" },
	{ "jane@@x.test", -1, NULL, NULL, NULL, NULL, 5, "expected a domain after '@'" },
	{ "jane@-x.test", -1, NULL, NULL, NULL, NULL, 5, "domain label starts with '-'" },
	{ "jane@x-.test", -1, NULL, NULL, NULL, NULL, 6, "domain label ends with '-'" },
	{ "jane@x..test", -1, NULL, NULL, NULL, NULL, 7, "empty label in the domain" },
	{ "jane@b_c.test", -1, NULL, NULL, NULL, NULL, 6, "expected ',' between addresses" },
	{ "a..b@x.test", -1, NULL, NULL, NULL, NULL, 2, "empty part in the local part" },
	{ ".a@x.test", -1, NULL, NULL, NULL, NULL, 0, "empty part in the local part" },
	{ "a.@x.test", -1, NULL, NULL, NULL, NULL, 1, "local part ends with '.'" },
	{ "\"unterminated@x.test", -1, NULL, NULL, NULL, NULL, 0, "unterminated quoted string" },
	{ "Jane <jane@x.test", -1, NULL, NULL, NULL, NULL, 17, "expected '>'" },
	{ "Jane (comment <j@x.test>", 1, "Jane (comment", "j", "x.test", NULL, 0, NULL },
	{ "Jane (comment", -1, NULL, NULL, NULL, NULL, 5, "unterminated comment" },
	{ "friends: a@x.test;", -1, NULL, NULL, NULL, NULL, 7, "group syntax is not supported" },
	{ "a@x.test,", -1, NULL, NULL, NULL, NULL, 9, "expected an address" },
	{ "a@x.test b@x.test", -1, NULL, NULL, NULL, NULL, 9, "expected ',' between addresses" },
	{ "Jane Doe", -1, NULL, NULL, NULL, NULL, 8, "expected '<' after the display name" },
	{ "bad \xc3(x <a@x.test>", -1, NULL, NULL, NULL, NULL, 4, "invalid UTF-8" },
	{ "a@x.test\r\nBcc: b@x.test", -1, NULL, NULL, NULL, NULL, 8, "CR or LF in an address" },
	{ "\"a\x01\"@x.test", -1, NULL, NULL, NULL, NULL, 2, "control character in a quoted string" },
	{ "<>", -1, NULL, NULL, NULL, NULL, 1, "expected an address" },
};

static void test_address_parse(void)
{
	struct mime_mailbox mb[4];
	struct mime_addr_error err;
	char store[256];

	for (size_t i = 0; i < sizeof parse_cases / sizeof parse_cases[0]; i++) {
		const struct parse_case *c = &parse_cases[i];
		size_t n = strlen(c->in);
		int got;

		memcpy(guard_mem - n, c->in, n);
		err.why = NULL;
		got = mime_address_list_parse(guard_mem - n, n, mb, 4, store, sizeof store, &err);
		T_EQ_INT(got, c->count);
		if (got != c->count) {
			fprintf(stderr, "  case %zu: \"%s\" (%s at %zu)\n", i, c->in,
				err.why ? err.why : "-", err.offset);
			continue;
		}
		if (c->count < 0) {
			T_EQ_STR(err.why, c->why);
			T_EQ_INT(err.offset, c->offset);
			if (err.offset != c->offset)
				fprintf(stderr, "  case %zu: \"%s\"\n", i, c->in);
			continue;
		}
		T_EQ_MEM(mb[0].name, mb[0].name_len, c->name0, strlen(c->name0));
		T_EQ_MEM(mb[0].local, mb[0].local_len, c->local0, strlen(c->local0));
		T_EQ_MEM(mb[0].domain, mb[0].domain_len, c->domain0, strlen(c->domain0));
		if (c->count == 2)
			T_EQ_MEM(mb[1].name, mb[1].name_len, c->name1, strlen(c->name1));
	}

	/* lengths: 64 octets of local part, 63 of a label, 254 in all */
	{
		char a[400];
		memset(a, 'l', 64);
		strcpy(a + 64, "@x.test");
		T_EQ_INT(mime_address_list_parse(a, strlen(a), mb, 4, store, sizeof store, &err), 1);
		memset(a, 'l', 65);
		strcpy(a + 65, "@x.test");
		T_EQ_INT(mime_address_list_parse(a, strlen(a), mb, 4, store, sizeof store, &err), -1);
		T_EQ_STR(err.why, "local part longer than 64 octets");
		strcpy(a, "a@");
		memset(a + 2, 'd', 63);
		strcpy(a + 65, ".test");
		T_EQ_INT(mime_address_list_parse(a, strlen(a), mb, 4, store, sizeof store, &err), 1);
		memset(a + 2, 'd', 64);
		strcpy(a + 66, ".test");
		T_EQ_INT(mime_address_list_parse(a, strlen(a), mb, 4, store, sizeof store, &err), -1);
		T_EQ_STR(err.why, "domain label longer than 63 octets");
		strcpy(a, "a@");
		for (size_t k = 2; k < 254; k++)
			a[k] = k % 50 == 1 ? '.' : 'd';
		a[254] = '\0';
		T_EQ_INT(mime_address_list_parse(a, 254, mb, 4, store, sizeof store, &err), 1);
		a[254] = 'd';
		a[255] = '\0';
		T_EQ_INT(mime_address_list_parse(a, 255, mb, 4, store, sizeof store, &err), -1);
		T_EQ_STR(err.why, "address longer than 254 octets");
	}

	/* exactly one, and the limit on a list */
	T_EQ_INT(mime_mailbox_parse("a@x.test", 8, mb, store, sizeof store, &err), 0);
	T_EQ_INT(mime_mailbox_parse("a@x.test, b@x.test", 18, mb, store, sizeof store, &err), -1);
	T_EQ_STR(err.why, "more than one address where one is expected");
	T_EQ_INT(mime_mailbox_parse("Doe, Jane <j@x.test>", 20, mb, store, sizeof store, &err), 0);
	T_EQ_MEM(mb[0].name, mb[0].name_len, "Doe, Jane", 9);
	T_EQ_INT(mime_address_list_parse("a@x.test,b@x.test,c@x.test", 26, mb, 2, store, sizeof store, &err), -1);
	T_EQ_STR(err.why, "too many addresses");
	T_EQ_INT(mime_address_list_parse("a@x.test", 8, mb, 2, store, 4, &err), -1);
	T_EQ_STR(err.why, "no room for the display names");
}

struct write_case {
	const char *in;
	int smtputf8;
	int code;            /* of mime_address_list_write */
	const char *want;    /* the field, or the reason when code == MIME_EADDR */
};

static const struct write_case write_cases[] = {
	{ "jane@example.test", 0, 0, "To: jane@example.test\r\n" },
	{ "Jane Doe <jane@example.test>", 0, 0, "To: Jane Doe <jane@example.test>\r\n" },
	{ "\"Doe, Jane\" <jane@example.test>", 0, 0, "To: \"Doe, Jane\" <jane@example.test>\r\n" },
	{ "Doe, Jane <jane@example.test>", 0, 0, "To: \"Doe, Jane\" <jane@example.test>\r\n" },
	{ "John Q. Public <j@x.test>", 0, 0, "To: \"John Q. Public\" <j@x.test>\r\n" },
	{ "\"Esc \\\"q\\\" \\\\\" <e@x.test>", 0, 0, "To: \"Esc \\\"q\\\" \\\\\" <e@x.test>\r\n" },
	{ "\" padded \" <p@x.test>", 0, 0, "To: \" padded \" <p@x.test>\r\n" },
	{ "Jane (x) <j@x.test>", 0, 0, "To: Jane <j@x.test>\r\n" },
	{ "O'Brien <o@x.test>", 0, 0, "To: O'Brien <o@x.test>\r\n" },
	{ "\"a@b\" <o@x.test>", 0, 0, "To: \"a@b\" <o@x.test>\r\n" },
	{ "J\xc3\xbcrgen <j@x.test>", 0, 0, "To: =?UTF-8?Q?J=C3=BCrgen?= <j@x.test>\r\n" },
	{ "J\xc3\xbcrgen <j@x.test>", 1, 0, "To: J\xc3\xbcrgen <j@x.test>\r\n" },
	{ "\"J\xc3\xbcrgen, M.\" <j@x.test>", 1, 0, "To: \"J\xc3\xbcrgen, M.\" <j@x.test>\r\n" },
	{ "\"J\xc3\xbcrgen, M.\" <j@x.test>", 0, 0, "To: =?UTF-8?B?SsO8cmdlbiwgTS4=?= <j@x.test>\r\n" },
	{ "\"=?x?=\" <j@x.test>", 0, 0, "To: =?UTF-8?B?PT94Pz0=?= <j@x.test>\r\n" },
	{ "a@x.test, B <b@y.test>", 0, 0, "To: a@x.test, B <b@y.test>\r\n" },
	/* IDN: the A-label without SMTPUTF8, the U-label with it */
	{ "j@b\xc3\xbc" "cher.test", 0, 0, "To: j@xn--bcher-kva.test\r\n" },
	{ "j@B\xc3\x9c" "CHER.test", 0, 0, "To: j@xn--bcher-kva.test\r\n" },
	{ "j@b\xc3\xbc" "cher.test", 1, 0, "To: j@b\xc3\xbc" "cher.test\r\n" },
	{ "J <j@\xe4\xbe\x8b\xe5\xad\x90.test>", 0, 0, "To: J <j@xn--fsqu00a.test>\r\n" },
	{ "\xe7\x94\xa8\xe6\x88\xb7@x.test", 1, 0, "To: \xe7\x94\xa8\xe6\x88\xb7@x.test\r\n" },
	{ "\xe7\x94\xa8\xe6\x88\xb7@x.test", 0, MIME_EADDR, "a non-ASCII local part needs a server with SMTPUTF8" },
	{ "j@\xe2\x98\x83\xe2\x8c\x98.test", 0, MIME_EADDR, NULL },
};

static void test_address_write(void)
{
	struct mime_mailbox mb[4];
	struct mime_addr_error err;
	struct mime_field f;
	struct bytebuf b;
	char store[256];

	bytebuf_init(&b, BUF_MAX);
	for (size_t i = 0; i < sizeof write_cases / sizeof write_cases[0]; i++) {
		const struct write_case *c = &write_cases[i];
		const char *why = NULL;
		int n = mime_address_list_parse(c->in, strlen(c->in), mb, 4, store, sizeof store, &err);
		int r;

		T_TRUE(n > 0);
		if (n <= 0)
			continue;
		bytebuf_clear(&b);
		T_EQ_INT(mime_field_begin(&f, &b, "To", 2), 0);
		r = mime_address_list_write(&f, mb, (size_t)n, c->smtputf8, &why);
		T_EQ_INT(r, c->code);
		if (r == 0) {
			T_EQ_INT(mime_field_end(&f), 0);
			T_EQ_MEM(b.data, b.len, c->want, strlen(c->want));
		} else if (c->want) {
			T_EQ_STR(why, c->want);
		} else {
			T_TRUE(why != NULL && *why);
		}
	}

	/* many mailboxes fold between them */
	{
		static char list[4000], dec[8192];
		list[0] = '\0';
		for (int k = 0; k < 40; k++) {
			char one[80];
			snprintf(one, sizeof one, "%s\"Person, Number %d\" <person%d@example.test>",
				 k ? ", " : "", k, k);
			strcat(list, one);
		}
		{
			static struct mime_mailbox many[64];
			static char st[4000];
			const char *why = NULL;
			int n = mime_address_list_parse(list, strlen(list), many, 64, st, sizeof st, &err);
			T_EQ_INT(n, 40);
			bytebuf_clear(&b);
			T_EQ_INT(mime_field_begin(&f, &b, "To", 2), 0);
			T_EQ_INT(mime_address_list_write(&f, many, (size_t)n, 0, &why), 0);
			T_EQ_INT(mime_field_end(&f), 0);
			T_TRUE(longest_line(b.data, b.len) <= MIME_LINE_SHOULD);
			T_EQ_INT(decode_field(b.data, b.len, dec), (long)strlen(list));
			T_EQ_MEM(dec, strlen(list), list, strlen(list));
		}
	}

	/* a display name too long for one line as a quoted string */
	{
		static char in[3000];
		const char *why = NULL;
		memset(in, 'n', 1200);
		in[0] = '"';
		memcpy(in + 600, ", ", 2);
		strcpy(in + 1200, "\" <long@x.test>");
		{
			static char st[3000];
			T_EQ_INT(mime_address_list_parse(in, strlen(in), mb, 4, st, sizeof st, &err), 1);
			bytebuf_clear(&b);
			T_EQ_INT(mime_field_begin(&f, &b, "From", 4), 0);
			T_EQ_INT(mime_address_list_write(&f, mb, 1, 0, &why), 0);
			T_TRUE(longest_line(b.data, b.len) <= MIME_LINE_SHOULD);
		}
	}
	bytebuf_free(&b);
}

static void test_envelope(void)
{
	struct mime_mailbox mb;
	struct mime_addr_error err;
	char store[256], out[300], dom[MIME_DOMAIN_MAX + 1];
	const char *why = NULL;
	const char *in = "\"Doe, Jane\" <jane@b\xc3\xbc" "cher.test>";

	T_EQ_INT(mime_mailbox_parse(in, strlen(in), &mb, store, sizeof store, &err), 0);
	T_EQ_INT(mime_mailbox_envelope(&mb, 0, out, sizeof out, &why), 23);
	T_EQ_STR(out, "jane@xn--bcher-kva.test");
	T_EQ_INT(mime_mailbox_envelope(&mb, 1, out, sizeof out, &why), 17);
	T_EQ_STR(out, "jane@b\xc3\xbc" "cher.test");
	T_EQ_INT(mime_mailbox_envelope(&mb, 0, out, 10, &why), -1);
	T_EQ_STR(why, "address too long");

	T_EQ_INT(mime_domain_wire("example.test", 12, 0, dom, &why), 12);
	T_EQ_STR(dom, "example.test");
	T_EQ_INT(mime_domain_wire("\xc3\xa9" "cole.test", 11, 0, dom, &why), 17);
	T_EQ_STR(dom, "xn--cole-9oa.test");
	T_EQ_INT(mime_domain_wire("\xe2\x98\x83.test", 8, 0, dom, &why), -1);
	T_TRUE(why != NULL);
}

/* ---- attachments ---- */

static void test_attachment(void)
{
	char err[256];
	struct mime_attachment *a;
	const char *part;
	size_t len;

	T_EQ_STR(mime_content_type_guess("report.PDF", 10), "application/pdf");
	T_EQ_STR(mime_content_type_guess("a/b.c/photo.jpeg", 16), "image/jpeg");
	T_EQ_STR(mime_content_type_guess("data.csv", 8), "text/csv");
	T_EQ_STR(mime_content_type_guess("noext", 5), "application/octet-stream");
	T_EQ_STR(mime_content_type_guess("dir.pdf/file", 12), "application/octet-stream");
	T_EQ_STR(mime_content_type_guess("x.unknown", 9), "application/octet-stream");
	T_EQ_STR(mime_content_type_guess(".pdf", 4), "application/pdf");

	T_EQ_INT(mime_content_type_valid("application/pdf", 15), 1);
	T_EQ_INT(mime_content_type_valid("image/svg+xml", 13), 1);
	T_EQ_INT(mime_content_type_valid("text", 4), 0);
	T_EQ_INT(mime_content_type_valid("/pdf", 4), 0);
	T_EQ_INT(mime_content_type_valid("a/", 2), 0);
	T_EQ_INT(mime_content_type_valid("a/b/c", 5), 0);
	T_EQ_INT(mime_content_type_valid("a/b;x=1", 7), 0);
	T_EQ_INT(mime_content_type_valid("a b/c", 5), 0);

	a = mime_attachment_new("hello", 5, "hello.txt", NULL, err, sizeof err);
	T_TRUE(a != NULL);
	if (a) {
		static const char want[] =
			"Content-Type: text/plain; name=\"hello.txt\"\r\n"
			"Content-Disposition: attachment; filename=\"hello.txt\"\r\n"
			"Content-Transfer-Encoding: base64\r\n"
			"\r\n"
			"aGVsbG8=";
		part = mime_attachment_part(a, &len);
		T_EQ_MEM(part, len, want, strlen(want));
		T_EQ_INT(mime_attachment_size(a), 5);
		mime_attachment_free(a);
	}
	a = mime_attachment_new("", 0, "R\xc3\xa9sum\xc3\xa9 \"final\".pdf", "application/x-test", err, sizeof err);
	T_TRUE(a != NULL);
	if (a) {
		static const char want[] =
			"Content-Type: application/x-test;\r\n"
			" name*=UTF-8''R%C3%A9sum%C3%A9%20%22final%22.pdf\r\n"
			"Content-Disposition: attachment;\r\n"
			" filename*=UTF-8''R%C3%A9sum%C3%A9%20%22final%22.pdf\r\n"
			"Content-Transfer-Encoding: base64\r\n"
			"\r\n";
		part = mime_attachment_part(a, &len);
		T_EQ_MEM(part, len, want, strlen(want));
		mime_attachment_free(a);
	}
	a = mime_attachment_new("x", 1, "a\"b\\c.bin", NULL, err, sizeof err);
	T_TRUE(a != NULL);
	if (a) {
		part = mime_attachment_part(a, &len);
		T_TRUE(memmem(part, len, "filename=\"a\\\"b\\\\c.bin\"", 22) != NULL);
		mime_attachment_free(a);
	}
	T_TRUE(mime_attachment_new("x", 1, "", NULL, err, sizeof err) == NULL);
	T_EQ_STR(err, "empty file name");
	T_TRUE(mime_attachment_new("x", 1, "a/b", NULL, err, sizeof err) == NULL);
	T_EQ_STR(err, "file name holds '/'");
	T_TRUE(mime_attachment_new("x", 1, "a\nb", NULL, err, sizeof err) == NULL);
	T_EQ_STR(err, "control character in the file name");
	T_TRUE(mime_attachment_new("x", 1, "a\xc3", NULL, err, sizeof err) == NULL);
	T_EQ_STR(err, "file name is not valid UTF-8");
	T_TRUE(mime_attachment_new("x", 1, "a.bin", "nope", err, sizeof err) == NULL);
	T_EQ_STR(err, "bad content type \"nope\" (want type/subtype)");
	mime_attachment_free(NULL);

	/* from a file */
	{
		char path[] = "/tmp/volley-test-attach-XXXXXX";
		int fd = mkstemp(path);
		T_TRUE(fd >= 0);
		if (fd >= 0) {
			T_EQ_INT(write(fd, "abc", 3), 3);
			close(fd);
			a = mime_attachment_load(path, "text/plain", 0, err, sizeof err);
			T_TRUE(a != NULL);
			if (a) {
				part = mime_attachment_part(a, &len);
				T_TRUE(len > 4 && memcmp(part + len - 4, "YWJj", 4) == 0);
				mime_attachment_free(a);
			}
			T_TRUE(mime_attachment_load(path, NULL, 2, err, sizeof err) == NULL);
			T_TRUE(strstr(err, "larger than 2 bytes") != NULL);
			unlink(path);
			T_TRUE(mime_attachment_load(path, NULL, 0, err, sizeof err) == NULL);
			T_TRUE(strstr(err, "No such file") != NULL);
		}
		T_TRUE(mime_attachment_load("/tmp", NULL, 0, err, sizeof err) == NULL);
		T_EQ_STR(err, "/tmp: not a regular file");
	}
}

/* ---- whole messages ---- */

/* A random source that counts: bytes 0, 1, 2, ... */
static int counting_fill(void *ud, void *buf, size_t n)
{
	unsigned *next = ud;
	unsigned char *p = buf;

	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(*next)++;
	return 0;
}

static const struct mime_message_opts default_opts = {
	.smtp_8bitmime = 0,
	.smtputf8 = 0,
	.msgid_domain = "mail.example.test",
	.date = 1700000000,   /* Tue, 14 Nov 2023 22:13:20 UTC */
	.unsubscribe_url = NULL,
	.unsubscribe_mailto = NULL,
};

#define H(n, v) { n, sizeof(n) - 1, v, sizeof(v) - 1 }

static void test_date(void)
{
	char d[MIME_DATE_MAX];

	T_EQ_INT(mime_format_date(0, d), 31);
	T_EQ_STR(d, "Thu, 01 Jan 1970 00:00:00 +0000");
	T_TRUE(mime_format_date(1700000000, d) > 0);
	T_EQ_STR(d, "Tue, 14 Nov 2023 22:13:20 +0000");
	T_TRUE(mime_format_date(951782400, d) > 0);
	T_EQ_STR(d, "Tue, 29 Feb 2000 00:00:00 +0000");
	T_TRUE(mime_format_date(253402300799LL, d) > 0);
	T_EQ_STR(d, "Fri, 31 Dec 9999 23:59:59 +0000");
	T_EQ_INT(mime_format_date(253402300800LL, d), 0);
	T_EQ_INT(mime_format_date(-1, d), 0);
}

static void test_message_exact(void)
{
	static const struct mime_header_value hs[] = {
		H("From", "Jane Doe <jane@example.test>"),
		H("To", "bob@example.test"),
		H("Subject", "Hello"),
	};
	static const char want[] =
		"Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
		"From: Jane Doe <jane@example.test>\r\n"
		"To: bob@example.test\r\n"
		"Subject: Hello\r\n"
		"Message-ID: <20231114221320.aaaqeayeaudaocajbifqydiob4@mail.example.test>\r\n"
		"MIME-Version: 1.0\r\n"
		"Content-Type: text/plain; charset=utf-8\r\n"
		"Content-Transfer-Encoding: 7bit\r\n"
		"\r\n"
		"Hi Bob,\r\n.\r\nBye\r\n";
	static const char want_alt[] =
		"Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
		"From: Jane Doe <jane@example.test>\r\n"
		"To: bob@example.test\r\n"
		"Subject: Hello\r\n"
		"Message-ID: <20231114221320.aaaqeayeaudaocajbifqydiob4@mail.example.test>\r\n"
		"List-Unsubscribe: <https://u.example.test/x?id=1>, <mailto:u@example.test>\r\n"
		"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
		"MIME-Version: 1.0\r\n"
		"Content-Type: multipart/mixed; boundary=\"=_10111213141516171819_m\"\r\n"
		"\r\n"
		"--=_10111213141516171819_m\r\n"
		"Content-Type: multipart/alternative; boundary=\"=_10111213141516171819_a\"\r\n"
		"\r\n"
		"--=_10111213141516171819_a\r\n"
		"Content-Type: text/plain; charset=utf-8\r\n"
		"Content-Transfer-Encoding: quoted-printable\r\n"
		"\r\n"
		"caf=C3=A9\r\n"
		"\r\n"
		"--=_10111213141516171819_a\r\n"
		"Content-Type: text/html; charset=utf-8\r\n"
		"Content-Transfer-Encoding: 7bit\r\n"
		"\r\n"
		"<p>cafe</p>\r\n"
		"\r\n"
		"--=_10111213141516171819_a--\r\n"
		"--=_10111213141516171819_m\r\n"
		"Content-Type: text/plain; name=\"a.txt\"\r\n"
		"Content-Disposition: attachment; filename=\"a.txt\"\r\n"
		"Content-Transfer-Encoding: base64\r\n"
		"\r\n"
		"YQ==\r\n"
		"--=_10111213141516171819_m--\r\n";
	struct mime_message_parts in = { hs, 3, "Hi Bob,\n.\nBye\n", 14, NULL, 0, NULL, 0 };
	struct mime_message_opts o = default_opts;
	struct mime_message_info info;
	struct mime_builder *b = mime_builder_new();
	struct mime_attachment *a;
	const struct mime_attachment *atts[1];
	struct bytebuf out;
	unsigned next = 0;
	char err[128];

	bytebuf_init(&out, BUF_MAX);
	mime_builder_set_random(b, counting_fill, &next);
	T_EQ_INT(mime_build(b, &in, &o, &out, &info), 0);
	T_EQ_MEM(out.data, out.len, want, strlen(want));
	T_EQ_STR(info.envelope_from, "jane@example.test");
	T_EQ_STR(info.message_id, "<20231114221320.aaaqeayeaudaocajbifqydiob4@mail.example.test>");
	T_EQ_INT(info.needs_8bitmime, 0);
	T_EQ_INT(info.needs_smtputf8, 0);

	/* text (non-ASCII, no 8BITMIME: quoted-printable), html, attachment,
	 * unsubscribe */
	a = mime_attachment_new("a", 1, "a.txt", NULL, err, sizeof err);
	atts[0] = a;
	in.text = "caf\xc3\xa9\n";
	in.text_len = 6;
	in.html = "<p>cafe</p>\n";
	in.html_len = 12;
	in.attachments = atts;
	in.nattachments = 1;
	o.unsubscribe_url = "https://u.example.test/x?id=1";
	o.unsubscribe_mailto = "mailto:u@example.test";
	next = 0;
	mime_builder_set_random(b, counting_fill, &next);
	bytebuf_clear(&out);
	T_EQ_INT(mime_build(b, &in, &o, &out, &info), 0);
	T_EQ_MEM(out.data, out.len, want_alt, strlen(want_alt));

	mime_attachment_free(a);
	mime_builder_free(b);
	bytebuf_free(&out);
}

/* The header lines of msg, unfolded, one per call: returns the next one's
 * name length (0 at the end of the header) and sets *line and *len. */
static size_t next_header(const char **p, const char *end, const char **line, size_t *len)
{
	const char *s = *p, *e = s;
	const char *colon;

	if (end - s >= 2 && s[0] == '\r' && s[1] == '\n')
		return 0;
	for (;;) {
		e = memmem(e, (size_t)(end - e), "\r\n", 2);
		if (!e)
			return 0;
		e += 2;
		if (e >= end || (*e != ' ' && *e != '\t'))
			break;
	}
	*line = s;
	*len = (size_t)(e - s);
	*p = e;
	colon = memchr(s, ':', *len);
	return colon ? (size_t)(colon - s) : 0;
}

static int count_headers(const char *msg, size_t n, const char *name)
{
	const char *p = msg, *end = msg + n, *line;
	size_t len, nl;
	int count = 0;

	while ((nl = next_header(&p, end, &line, &len)) > 0)
		if (nl == strlen(name) && strncasecmp(line, name, nl) == 0)
			count++;
	return count;
}

/* Every header line of msg begins a known field or continues one. */
static int headers_known(const char *msg, size_t n)
{
	static const char *known[] = { "Date", "From", "To", "Cc", "Reply-To", "Subject",
				       "X-Campaign", "Message-ID", "MIME-Version", "Content-Type",
				       "Content-Transfer-Encoding", "List-Unsubscribe",
				       "List-Unsubscribe-Post", "Sender" };
	const char *p = msg, *end = msg + n;

	while (p < end && !(end - p >= 2 && p[0] == '\r' && p[1] == '\n')) {
		const char *e = memmem(p, (size_t)(end - p), "\r\n", 2);
		int ok = 0;
		if (!e)
			return 0;
		if (*p == ' ' || *p == '\t') {
			ok = 1;
		} else {
			for (size_t k = 0; k < sizeof known / sizeof known[0]; k++) {
				size_t kn = strlen(known[k]);
				if ((size_t)(e - p) > kn && strncasecmp(p, known[k], kn) == 0 && p[kn] == ':')
					ok = 1;
			}
		}
		if (!ok) {
			fprintf(stderr, "  unknown header line: %.*s\n", (int)(e - p), p);
			return 0;
		}
		p = e + 2;
	}
	return 1;
}

static void test_message_injection(void)
{
	static const char *evil[] = {
		"x\r\nBcc: evil@attacker.test",
		"x\nBcc: evil@attacker.test",
		"x\rBcc: evil@attacker.test",
		"x\r\n\r\nBody injected",
		"x\n\nBody injected",
		"x\r\r\nX-Injected: 1",
		"x\r\n X-Folded: 1\r\nX-Injected: 1",
		"\r\nX-Injected: 1",
		"x\n",
	};
	static const char *fields[] = { "From", "To", "Cc", "Reply-To", "Subject", "X-Campaign" };
	struct mime_builder *b = mime_builder_new();
	struct bytebuf out;
	char value[200];
	int refused = 0;

	bytebuf_init(&out, BUF_MAX);
	for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++) {
		for (size_t e = 0; e < sizeof evil / sizeof evil[0]; e++) {
			struct mime_header_value hs[3];
			struct mime_message_parts in = { hs, 0, "body\n", 5, NULL, 0, NULL, 0 };
			size_t nh = 0;
			int is_addr = f < 4, r;
			const char *p;

			if (is_addr)
				snprintf(value, sizeof value, "Name %s <a@x.test>", evil[e]);
			else
				snprintf(value, sizeof value, "%s", evil[e]);
			if (f != 0)
				hs[nh++] = (struct mime_header_value)H("From", "a@x.test");
			hs[nh++] = (struct mime_header_value){ fields[f], strlen(fields[f]), value, strlen(value) };
			in.nheaders = nh;
			bytebuf_clear(&out);
			r = mime_build(b, &in, &default_opts, &out, NULL);
			if (r != 0) {
				/* refusing an address is fine; writing a second field is not */
				T_TRUE(is_addr);
				T_EQ_INT(out.len, 0);
				refused++;
				continue;
			}
			T_TRUE(headers_known(out.data, out.len));
			T_EQ_INT(count_headers(out.data, out.len, "Bcc"), 0);
			T_EQ_INT(count_headers(out.data, out.len, "X-Injected"), 0);
			T_EQ_INT(count_headers(out.data, out.len, "X-Folded"), 0);
			T_EQ_INT(count_headers(out.data, out.len, fields[f]), 1);
			T_TRUE(longest_line(out.data, out.len) != (size_t)-1);
			/* the body is the body */
			p = memmem(out.data, out.len, "\r\n\r\n", 4);
			T_TRUE(p != NULL && strncmp(p + 4, "body\r\n", 6) == 0 &&
			       (size_t)(p + 10 - out.data) == out.len);
		}
	}
	/* the lenient reading takes most injected addresses as display names */
	T_TRUE(refused < 6);
	bytebuf_free(&out);
	mime_builder_free(b);
}

struct refuse_case {
	struct mime_header_value h[3];
	size_t n;
	const char *why;
};

static void test_message_refusals(void)
{
	static const struct refuse_case cases[] = {
		{ { H("Subject", "x") }, 1, "no From header" },
		{ { H("From", "  \r\n ") }, 1, "header From is empty" },
		{ { H("From", "a@x.test, b@x.test") }, 1,
		  "header From: more than one address where one is expected at offset 8 of \"a@x.test, b@x.test\"" },
		{ { H("From", "a@x.test"), H("Date", "today") }, 2,
		  "header Date is set by volley; remove it from the template" },
		{ { H("From", "a@x.test"), H("message-id", "<x@y>") }, 2,
		  "header message-id is set by volley; remove it from the template" },
		{ { H("From", "a@x.test"), H("MIME-Version", "1.0") }, 2,
		  "header MIME-Version is set by volley; remove it from the template" },
		{ { H("From", "a@x.test"), H("Content-Type", "text/html") }, 2,
		  "header Content-Type is set by volley; remove it from the template" },
		{ { H("From", "a@x.test"), H("Content-Transfer-Encoding", "8bit") }, 2,
		  "header Content-Transfer-Encoding is set by volley; remove it from the template" },
		{ { H("From", "a@x.test"), H("Subject", "a"), H("subject", "b") }, 3,
		  "header subject appears twice" },
		{ { H("From", "a@x.test"), H("Bad Name", "a") }, 2, "bad header name \"Bad?Name\"" },
		{ { H("From", "a@x.test"), H("", "a") }, 2, "bad header name \"\"" },
		{ { H("From", "a@x.test"), H("To", "nobody") }, 2,
		  "header To: expected '@' at offset 6 of \"nobody\"" },
		{ { H("From", "\xe7\x94\xa8@x.test") }, 1,
		  "header From: a non-ASCII local part needs a server with SMTPUTF8" },
		{ { H("From", "a@x.test"), H("Subject", "bad \xc3(") }, 2,
		  "header Subject: invalid UTF-8 at byte 4" },
	};
	struct mime_builder *b = mime_builder_new();
	struct bytebuf out;

	bytebuf_init(&out, BUF_MAX);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct mime_message_parts in = { cases[i].h, cases[i].n, "x", 1, NULL, 0, NULL, 0 };
		bytebuf_clear(&out);
		T_EQ_INT(bytebuf_append_str(&out, "keep"), 0);
		T_EQ_INT(mime_build(b, &in, &default_opts, &out, NULL), -1);
		T_EQ_STR(mime_builder_errstr(b), cases[i].why);
		T_EQ_MEM(out.data, out.len, "keep", 4);
	}

	/* options */
	{
		static const struct mime_header_value from[] = { H("From", "a@x.test") };
		static const struct mime_header_value with_lu[] = {
			H("From", "a@x.test"), H("List-Unsubscribe", "<https://x.test/>"),
		};
		struct mime_message_parts in = { from, 1, "x", 1, NULL, 0, NULL, 0 };
		struct mime_message_opts o = default_opts;
		static const struct {
			const char *url, *mailto, *domain;
			int64_t date;
			const char *why;
		} opt_cases[] = {
			{ "http://x.test/u", NULL, "d.test", 0,
			  "unsubscribe URL must be https://...: wrong scheme or nothing after it" },
			{ "https://", NULL, "d.test", 0,
			  "unsubscribe URL must be https://...: wrong scheme or nothing after it" },
			{ "https://x.test/a b", NULL, "d.test", 0,
			  "unsubscribe URL must be https://...: holds a space, control, quote, angle bracket or non-ASCII character (percent-encode it)" },
			{ "https://x.test/>\r\nBcc: x", NULL, "d.test", 0,
			  "unsubscribe URL must be https://...: holds a space, control, quote, angle bracket or non-ASCII character (percent-encode it)" },
			{ NULL, "u@x.test", "d.test", 0,
			  "unsubscribe mailto must be mailto:...: wrong scheme or nothing after it" },
			{ NULL, NULL, NULL, 0, "no Message-ID domain" },
			{ NULL, NULL, "bad_domain.test", 0, "Message-ID domain \"bad_domain.test\": not a domain name" },
			{ NULL, NULL, "d.test", -5, "date out of range: -5" },
		};
		for (size_t i = 0; i < sizeof opt_cases / sizeof opt_cases[0]; i++) {
			o.unsubscribe_url = opt_cases[i].url;
			o.unsubscribe_mailto = opt_cases[i].mailto;
			o.msgid_domain = opt_cases[i].domain;
			o.date = opt_cases[i].date;
			bytebuf_clear(&out);
			T_EQ_INT(mime_build(b, &in, &o, &out, NULL), -1);
			T_EQ_STR(mime_builder_errstr(b), opt_cases[i].why);
			T_EQ_INT(out.len, 0);
		}
		o = default_opts;
		o.unsubscribe_url = "https://x.test/u";
		in.headers = with_lu;
		in.nheaders = 2;
		T_EQ_INT(mime_build(b, &in, &o, &out, NULL), -1);
		T_EQ_STR(mime_builder_errstr(b),
			 "header List-Unsubscribe is set by volley from the unsubscribe URL");
		/* without the option, the template may write its own */
		T_EQ_INT(mime_build(b, &in, &default_opts, &out, NULL), 0);
		/* an IDN Message-ID domain becomes its A-label */
		o = default_opts;
		o.msgid_domain = "b\xc3\xbc" "cher.test";
		in.headers = from;
		in.nheaders = 1;
		bytebuf_clear(&out);
		T_EQ_INT(mime_build(b, &in, &o, &out, NULL), 0);
		T_TRUE(memmem(out.data, out.len, "@xn--bcher-kva.test>\r\n", 22) != NULL);
	}

	/* the cap */
	{
		static const struct mime_header_value from[] = { H("From", "a@x.test") };
		struct mime_message_parts in = { from, 1, "x", 1, NULL, 0, NULL, 0 };
		bytebuf_free(&out);
		bytebuf_init(&out, 100);
		T_EQ_INT(mime_build(b, &in, &default_opts, &out, NULL), -1);
		T_EQ_STR(mime_builder_errstr(b), "Message-ID: output larger than its cap");
		T_EQ_INT(out.len, 0);
	}
	/* text that is not UTF-8 */
	{
		static const struct mime_header_value from[] = { H("From", "a@x.test") };
		struct mime_message_parts in = { from, 1, "ok\xff", 3, NULL, 0, NULL, 0 };
		struct mime_message_opts o = default_opts;
		bytebuf_free(&out);
		bytebuf_init(&out, BUF_MAX);
		T_EQ_INT(mime_build(b, &in, &o, &out, NULL), -1);
		T_EQ_STR(mime_builder_errstr(b), "the text/plain part is not valid UTF-8 (byte 2)");
		o.smtp_8bitmime = 1;
		T_EQ_INT(mime_build(b, &in, &o, &out, NULL), -1);
		T_EQ_STR(mime_builder_errstr(b), "the text/plain part is not valid UTF-8 (byte 2)");
	}
	bytebuf_free(&out);
	mime_builder_free(b);
}

/* Shapes, encodings and flags. */
static void test_message_shapes(void)
{
	static const struct mime_header_value hs[] = {
		H("From", "\"J\xc3\xbcrgen M\xc3\xbcller\" <j@b\xc3\xbc" "cher.test>"),
		H("To", "Bob <bob@example.test>"),
		H("Cc", ""),
		H("Subject", "Gr\xc3\xbc\xc3\x9f" "e aus K\xc3\xb6ln"),
	};
	static char longline[3000];
	struct mime_builder *b = mime_builder_new();
	struct mime_message_parts in = { hs, 4, NULL, 0, NULL, 0, NULL, 0 };
	struct mime_message_opts o = default_opts;
	struct mime_message_info info;
	struct bytebuf out;

	bytebuf_init(&out, BUF_MAX);

	/* html only */
	in.html = "<p>x</p>";
	in.html_len = 8;
	T_EQ_INT(mime_build(b, &in, &o, &out, &info), 0);
	T_TRUE(memmem(out.data, out.len, "\r\nContent-Type: text/html; charset=utf-8\r\n"
				      "Content-Transfer-Encoding: 7bit\r\n\r\n<p>x</p>", 84) != NULL);
	T_TRUE(memmem(out.data, out.len, "multipart", 9) == NULL);
	/* an empty Cc is left out; non-ASCII is encoded; the From domain is an
	 * A-label, in the header and the envelope */
	T_EQ_INT(count_headers(out.data, out.len, "Cc"), 0);
	T_TRUE(memmem(out.data, out.len, "Subject: =?UTF-8?B?R3LDvMOfZQ==?= aus =?UTF-8?B?S8O2bG4=?=\r\n", 59) != NULL);
	T_TRUE(memmem(out.data, out.len, "From: =?UTF-8?B?SsO8cmdlbiBNw7xsbGVy?= <j@xn--bcher-kva.test>\r\n", 63) != NULL);
	T_EQ_STR(info.envelope_from, "j@xn--bcher-kva.test");
	T_EQ_INT(utf8_has_non_ascii(out.data, out.len), 0);
	T_EQ_INT(info.needs_smtputf8, 0);

	/* SMTPUTF8: raw UTF-8 in the header, and the flag says so */
	o.smtputf8 = 1;
	bytebuf_clear(&out);
	T_EQ_INT(mime_build(b, &in, &o, &out, &info), 0);
	T_TRUE(memmem(out.data, out.len, "Subject: Gr\xc3\xbc\xc3\x9f" "e aus K\xc3\xb6ln\r\n", 26) != NULL);
	T_TRUE(memmem(out.data, out.len, "From: J\xc3\xbcrgen M\xc3\xbcller <j@b\xc3\xbc" "cher.test>\r\n", 40) != NULL);
	T_EQ_STR(info.envelope_from, "j@b\xc3\xbc" "cher.test");
	T_EQ_INT(info.needs_smtputf8, 1);
	o.smtputf8 = 0;

	/* 8bit only with 8BITMIME */
	in.html = NULL;
	in.text = "Gr\xc3\xbc\xc3\x9f" "e\n";
	in.text_len = 8;
	bytebuf_clear(&out);
	T_EQ_INT(mime_build(b, &in, &o, &out, &info), 0);
	T_TRUE(memmem(out.data, out.len, "Content-Transfer-Encoding: quoted-printable\r\n\r\nGr=C3=BC=C3=9Fe\r\n", 63) != NULL);
	T_EQ_INT(info.needs_8bitmime, 0);
	o.smtp_8bitmime = 1;
	bytebuf_clear(&out);
	T_EQ_INT(mime_build(b, &in, &o, &out, &info), 0);
	T_TRUE(memmem(out.data, out.len, "Content-Transfer-Encoding: 8bit\r\n\r\nGr\xc3\xbc\xc3\x9f" "e\r\n", 43) != NULL);
	T_EQ_INT(info.needs_8bitmime, 1);
	o.smtp_8bitmime = 0;

	/* a line of 998 octets goes as it is, 999 as quoted-printable */
	memset(longline, 'y', sizeof longline);
	in.text = longline;
	in.text_len = 998;
	bytebuf_clear(&out);
	T_EQ_INT(mime_build(b, &in, &o, &out, &info), 0);
	T_TRUE(memmem(out.data, out.len, "Content-Transfer-Encoding: 7bit", 31) != NULL);
	T_EQ_INT(longest_line(out.data, out.len), 998);
	in.text_len = 999;
	bytebuf_clear(&out);
	T_EQ_INT(mime_build(b, &in, &o, &out, &info), 0);
	T_TRUE(memmem(out.data, out.len, "Content-Transfer-Encoding: quoted-printable", 43) != NULL);
	T_TRUE(longest_line(out.data, out.len) <= MIME_LINE_SHOULD);

	/* nothing at all: an empty text/plain message */
	in.text = NULL;
	bytebuf_clear(&out);
	T_EQ_INT(mime_build(b, &in, &o, &out, &info), 0);
	T_EQ_INT(out.len >= 4 && memcmp(out.data + out.len - 4, "\r\n\r\n", 4) == 0, 1);
	T_TRUE(memmem(out.data, out.len, "Content-Type: text/plain; charset=utf-8\r\n", 41) != NULL);

	/* attachments only: multipart/mixed of attachments */
	{
		char err[64];
		struct mime_attachment *a1 = mime_attachment_new("1", 1, "one.txt", NULL, err, sizeof err);
		struct mime_attachment *a2 = mime_attachment_new("22", 2, "two.bin", NULL, err, sizeof err);
		const struct mime_attachment *atts[] = { a1, a2 };
		const char *first;
		in.attachments = atts;
		in.nattachments = 2;
		bytebuf_clear(&out);
		T_EQ_INT(mime_build(b, &in, &o, &out, &info), 0);
		first = memmem(out.data, out.len, "\r\n\r\n--=_", 8);
		T_TRUE(first != NULL && memmem(first, 100, "_m\r\nContent-Type: text/plain; name=\"one.txt\"", 44) != NULL);
		T_TRUE(memmem(out.data, out.len, "Content-Type: application/octet-stream; name=\"two.bin\"", 54) != NULL);
		T_TRUE(memmem(out.data, out.len, "text/plain; charset", 19) == NULL);
		T_TRUE(out.len > 4 && memcmp(out.data + out.len - 6, "_m--\r\n", 6) == 0);
		in.attachments = NULL;
		in.nattachments = 0;
		mime_attachment_free(a1);
		mime_attachment_free(a2);
	}

	/* mailto only: no List-Unsubscribe-Post */
	o.unsubscribe_mailto = "mailto:unsub@example.test?subject=unsubscribe";
	bytebuf_clear(&out);
	T_EQ_INT(mime_build(b, &in, &o, &out, &info), 0);
	T_TRUE(memmem(out.data, out.len, "List-Unsubscribe: <mailto:unsub@example.test?subject=unsubscribe>\r\n", 67) != NULL);
	T_EQ_INT(count_headers(out.data, out.len, "List-Unsubscribe-Post"), 0);
	/* a long URL folds after the comma */
	o.unsubscribe_url = "https://unsubscribe.example.test/one-click/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa?campaign=1234";
	bytebuf_clear(&out);
	T_EQ_INT(mime_build(b, &in, &o, &out, &info), 0);
	T_TRUE(memmem(out.data, out.len, "campaign=1234>,\r\n <mailto:", 26) != NULL);
	T_EQ_INT(count_headers(out.data, out.len, "List-Unsubscribe-Post"), 1);

	bytebuf_free(&out);
	mime_builder_free(b);
}

/* Content that holds the first boundary: the message is built again with
 * another one. */
static void test_message_boundary(void)
{
	static const struct mime_header_value hs[] = { H("From", "a@x.test") };
	/* with the counting source, the first attempt's boundary is
	 * =_10111213141516171819 (bytes 16 to 25, after the Message-ID's 16) */
	static const char text[] = "a line\n--=_10111213141516171819_a\nanother\n";
	struct mime_builder *b = mime_builder_new();
	struct mime_message_parts in = { hs, 1, text, sizeof text - 1, "<p>h</p>", 8, NULL, 0 };
	struct mime_message_info info;
	struct bytebuf out;
	unsigned next = 0;
	const char *body;

	bytebuf_init(&out, BUF_MAX);
	mime_builder_set_random(b, counting_fill, &next);
	T_EQ_INT(mime_build(b, &in, &default_opts, &out, &info), 0);
	/* second attempt: Message-ID from bytes 26..41, boundary 42..51 */
	T_TRUE(memmem(out.data, out.len, "boundary=\"=_2a2b2c2d2e2f30313233_a\"", 35) != NULL);
	T_EQ_STR(info.message_id, "<20231114221320.dinryhi6d4qccirdeqssmjzife@mail.example.test>");
	body = memmem(out.data, out.len, "\r\n\r\n", 4);
	T_TRUE(body && memmem(body, out.len - (size_t)(body - out.data), "=_2a2b2c2d2e2f30313233", 22) != NULL);
	T_TRUE(memmem(out.data, out.len, "--=_10111213141516171819_a\r\n", 28) != NULL);   /* the text, kept */

	bytebuf_free(&out);
	mime_builder_free(b);
}

static int zero_fill(void *ud, void *buf, size_t n)
{
	(void)ud;
	memset(buf, 0, n);
	return 0;
}

static int failing_fill(void *ud, void *buf, size_t n)
{
	(void)ud, (void)buf, (void)n;
	errno = EIO;
	return -1;
}

static void test_message_random(void)
{
	static const struct mime_header_value hs[] = { H("From", "a@x.test") };
	static const char same[] = "x =_00000000000000000000 y";
	struct mime_builder *b = mime_builder_new();
	struct mime_message_parts in = { hs, 1, same, sizeof same - 1, "<p>h</p>", 8, NULL, 0 };
	struct mime_message_info info;
	struct bytebuf out;
	static char ids[2000][MIME_MSGID_MAX];

	bytebuf_init(&out, BUF_MAX);
	mime_builder_set_random(b, zero_fill, NULL);
	T_EQ_INT(mime_build(b, &in, &default_opts, &out, &info), -1);
	T_EQ_STR(mime_builder_errstr(b), "no boundary absent from the content after 4 tries");
	T_EQ_INT(out.len, 0);
	mime_builder_set_random(b, failing_fill, NULL);
	T_EQ_INT(mime_build(b, &in, &default_opts, &out, &info), -1);
	T_TRUE(strncmp(mime_builder_errstr(b), "no random bytes: ", 17) == 0);

	/* the kernel's random bytes: every Message-ID differs */
	mime_builder_set_random(b, NULL, NULL);
	for (int i = 0; i < 2000; i++) {
		bytebuf_clear(&out);
		T_EQ_INT(mime_build(b, &in, &default_opts, &out, &info), 0);
		snprintf(ids[i], sizeof ids[i], "%s", info.message_id);
		T_EQ_INT(strlen(ids[i]), 1 + 14 + 1 + 26 + 1 + strlen("mail.example.test") + 1);
	}
	qsort(ids, 2000, sizeof ids[0], (int (*)(const void *, const void *))strcmp);
	for (int i = 1; i < 2000; i++)
		T_TRUE(strcmp(ids[i - 1], ids[i]) != 0);
	bytebuf_free(&out);
	mime_builder_free(b);
}

/* A builder remembers header fields from one message to the next: what
 * it writes must follow the values, the names (even in the same memory)
 * and the options as they change. */
static void test_message_header_memo(void)
{
	char name[8] = "Subject", from[40] = "Ann <ann@example.test>", value[16] = "one";
	struct mime_header_value hs[2] = { { "From", 4, from, 0 }, { name, 7, value, 0 } };
	struct mime_builder *b = mime_builder_new();
	struct mime_message_parts in = { hs, 2, "x", 1, NULL, 0, NULL, 0 };
	struct mime_message_opts o = default_opts;
	struct mime_message_info info;
	struct bytebuf out;
	static const struct {
		const char *name, *from, *value;
		const char *want, *envelope;   /* want NULL: the build fails */
	} steps[] = {
		{ "Subject", "Ann <ann@example.test>", "one", "\r\nSubject: one\r\n", "ann@example.test" },
		{ "Subject", "Ann <ann@example.test>", "one", "\r\nSubject: one\r\n", "ann@example.test" },
		{ "Subject", "Ann <ann@example.test>", "two", "\r\nSubject: two\r\n", "ann@example.test" },
		{ "Keyword", "Ann <ann@example.test>", "two", "\r\nKeyword: two\r\n", "ann@example.test" },
		{ "Keyword", "Bob <bob@example.test>", "two", "\r\nFrom: Bob <bob@example.test>\r\n",
		  "bob@example.test" },
		{ "Keyword", "Bob", "two", NULL, NULL },
		{ "Keyword", "Ann <ann@example.test>", "two", "\r\nFrom: Ann <ann@example.test>\r\n",
		  "ann@example.test" },
		/* a name checked in the message before, then another at its place */
		{ "Key:ord", "Ann <ann@example.test>", "two", NULL, NULL },
		{ "Subject", "Ann <ann@example.test>", "two", "\r\nSubject: two\r\n", "ann@example.test" },
		{ "Sender\t", "Ann <ann@example.test>", "two", NULL, NULL },
	};

	bytebuf_init(&out, BUF_MAX);
	for (size_t i = 0; b && i < sizeof steps / sizeof steps[0]; i++) {
		memcpy(name, steps[i].name, 7);
		snprintf(from, sizeof from, "%s", steps[i].from);
		snprintf(value, sizeof value, "%s", steps[i].value);
		hs[0].value_len = strlen(from);
		hs[1].value_len = strlen(value);
		bytebuf_clear(&out);
		int r = mime_build(b, &in, &o, &out, &info);
		if (!steps[i].want) {
			T_EQ_INT(r, -1);
			continue;
		}
		T_EQ_INT(r, 0);
		T_TRUE(memmem(out.data, out.len, steps[i].want, strlen(steps[i].want)) != NULL);
		T_EQ_INT(count_headers(out.data, out.len, steps[i].name), 1);
		T_EQ_STR(info.envelope_from, steps[i].envelope);
	}
	bytebuf_free(&out);
	mime_builder_free(b);
}

int main(void)
{
	guard_init_size(1u << 16);
	test_bytebuf();
	test_utf8();
	test_qp_vectors();
	test_qp_round_trip();
	test_base64();
	test_cte();
	test_cte_random();
	test_fields();
	test_fields_folding();
	test_header_clean();
	test_address_parse();
	test_address_write();
	test_envelope();
	test_attachment();
	test_date();
	test_message_exact();
	test_message_injection();
	test_message_refusals();
	test_message_shapes();
	test_message_boundary();
	test_message_random();
	test_message_header_memo();
	return t_done("test_mime");
}
