/* Tests for templates/message_render through its public header: template
 * files written into a fresh folder, loaded, rendered with JSON or CSV data
 * by one reused renderer, and the messages read back by a small MIME reader
 * (fields unfolded, multipart split on its boundary, quoted-printable and
 * base64 decoded, RFC 2047 words decoded), so that the checks hold whatever
 * transfer encoding the MIME builder picks: the header fields a message
 * needs, the Content-Type structure, decoded content, header injection,
 * strict mode per recipient, List-Unsubscribe, and error places. */
#include "templates/message_render.h"
#include "templates/mustache_csv.h"
#include "tests/testutil.h"

#include <ctype.h>
#include <jansson.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define NOW 1700000000             /* Tue, 14 Nov 2023 22:13:20 +0000 */
#define NOW_DATE "Tue, 14 Nov 2023 22:13:20 +0000"
#define FIELD_MAX 2048
#define CONTENT_MAX 65536
#define KIDS_MAX 8

static char dir[] = "/tmp/test_message_render.XXXXXX";
static char path[512];             /* of the last file written */
static char err[CAMPAIGN_ERR_MAX];

/* ---- files ---- */

/* Writes data[0..n) to dir/name and leaves its path in path. Returns 0 or -1. */
static int write_bytes(const char *name, const char *data, size_t n)
{
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (!f) {
		T_FAIL("cannot write %s", path);
		return -1;
	}
	int ok = fwrite(data, 1, n, f) == n;
	if (fclose(f) != 0 || !ok) {
		T_FAIL("cannot write %s", path);
		return -1;
	}
	return 0;
}

/* Writes the template text as dir/name and loads it with o (NULL: no
 * options). Returns the template, or NULL with the reason in err. */
static struct campaign_template *load(const char *name, const char *text,
				      const struct campaign_opts *o)
{
	static const struct campaign_opts none;

	err[0] = '\0';
	if (write_bytes(name, text, strlen(text)) != 0)
		return NULL;
	return campaign_template_load(path, o ? o : &none, err, sizeof err);
}

/* ---- one message, copied out of the renderer ---- */

struct msg {
	char text[CONTENT_MAX];
	size_t len;
	struct mime_message_info info;
};

/* Renders with the JSON object vars into m. Returns 0, or -1 with the
 * renderer's reason in err. */
static int render_json(struct campaign_renderer *r, const char *vars, struct msg *m)
{
	json_t *root = json_loads(vars, 0, NULL);
	struct campaign_message cm;

	if (!root) {
		snprintf(err, sizeof err, "(bad JSON in the test)");
		return -1;
	}
	struct campaign_data d = { campaign_json_piece, root };
	int rc = campaign_render(r, &d, NOW, &cm);
	json_decref(root);
	if (rc != 0) {
		snprintf(err, sizeof err, "%s", campaign_renderer_errstr(r));
		return -1;
	}
	if (cm.dkim_len + cm.msg_len >= sizeof m->text) {
		snprintf(err, sizeof err, "(message too large for the test)");
		return -1;
	}
	memcpy(m->text, cm.dkim, cm.dkim_len);
	memcpy(m->text + cm.dkim_len, cm.msg, cm.msg_len);
	m->len = cm.dkim_len + cm.msg_len;
	m->text[m->len] = '\0';
	m->info = cm.info;
	return 0;
}

/* Loads text as dir/name and renders it once with vars into m. Returns 0,
 * or -1 with the reason in err. */
static int render_once(const char *name, const char *text, const struct campaign_opts *o,
		       const char *vars, struct msg *m)
{
	struct campaign_template *t = load(name, text, o);

	if (!t)
		return -1;
	struct campaign_renderer *r = campaign_renderer_new(t, err, sizeof err);
	int rc = r ? render_json(r, vars, m) : -1;
	campaign_renderer_free(r);
	campaign_template_free(t);
	return rc;
}

/* ---- a small MIME reader ---- */

struct view {
	const char *p;
	size_t n;
};

static struct view whole(const struct msg *m)
{
	return (struct view){ m->text, m->len };
}

/* Splits an entity into its header (each field with its CRLF) and body. */
static int split_entity(struct view e, struct view *head, struct view *body)
{
	if (e.n >= 2 && memcmp(e.p, "\r\n", 2) == 0) {
		*head = (struct view){ e.p, 0 };
		*body = (struct view){ e.p + 2, e.n - 2 };
		return 0;
	}
	for (size_t i = 0; i + 4 <= e.n; i++) {
		if (memcmp(e.p + i, "\r\n\r\n", 4) == 0) {
			*head = (struct view){ e.p, i + 2 };
			*body = (struct view){ e.p + i + 4, e.n - i - 4 };
			return 0;
		}
	}
	return -1;
}

static struct view head_of(struct view e)
{
	struct view head = { e.p, 0 }, body;

	split_entity(e, &head, &body);
	return head;
}

static struct view body_of(struct view e)
{
	struct view head, body = { e.p, 0 };

	split_entity(e, &head, &body);
	return body;
}

/* Copies the value of the field starting at head.p[i] (just past its
 * colon) into out, unfolded, leading whitespace dropped. */
static void field_value(struct view head, size_t i, char *out, size_t cap)
{
	size_t o = 0;

	while (i < head.n && (head.p[i] == ' ' || head.p[i] == '\t'))
		i++;
	for (; i < head.n; i++) {
		if (head.p[i] == '\r' && i + 2 < head.n && head.p[i + 1] == '\n' &&
		    (head.p[i + 2] == ' ' || head.p[i + 2] == '\t')) {
			i++;
			continue;
		}
		if (head.p[i] == '\r')
			break;
		if (o + 1 < cap)
			out[o++] = head.p[i];
	}
	out[o] = '\0';
}

/* Counts the fields called name in head; the first one's value goes into
 * out (unfolded), "" when there is none. */
static int field(struct view head, const char *name, char *out, size_t cap)
{
	size_t nlen = strlen(name);
	int count = 0;

	out[0] = '\0';
	for (size_t i = 0; i < head.n;) {
		if (i + nlen < head.n && strncasecmp(head.p + i, name, nlen) == 0 &&
		    head.p[i + nlen] == ':') {
			if (count++ == 0)
				field_value(head, i + nlen + 1, out, cap);
		}
		const char *lf = memchr(head.p + i, '\n', head.n - i);
		i = lf ? (size_t)(lf - head.p) + 1 : head.n;
	}
	return count;
}

/* The media type of an entity, lower case ("text/plain"), "" without one. */
static void media_type(struct view e, char *out, size_t cap)
{
	char ct[FIELD_MAX];
	size_t o = 0;

	field(head_of(e), "Content-Type", ct, sizeof ct);
	for (const char *s = ct; *s && *s != ';' && *s != ' ' && o + 1 < cap; s++)
		out[o++] = (char)tolower((unsigned char)*s);
	out[o] = '\0';
}

/* The value of a parameter of e's field (e.g. Content-Type's boundary),
 * quotes removed; "" when absent. */
static void field_param(struct view e, const char *fname, const char *param, char *out, size_t cap)
{
	char v[FIELD_MAX], key[64];
	size_t o = 0;

	out[0] = '\0';
	field(head_of(e), fname, v, sizeof v);
	snprintf(key, sizeof key, "%s=", param);
	const char *s = strcasestr(v, key);
	if (!s)
		return;
	s += strlen(key);
	int quoted = *s == '"';
	s += quoted;
	for (; *s && (quoted ? *s != '"' : *s != ';' && *s != ' ') && o + 1 < cap; s++)
		out[o++] = *s;
	out[o] = '\0';
}

/* Where the line starting at body.p[i] ends (the index of its CR, or n). */
static size_t line_end(struct view body, size_t i)
{
	for (; i + 1 < body.n; i++)
		if (body.p[i] == '\r' && body.p[i + 1] == '\n')
			return i;
	return body.n;
}

/* The parts of a multipart entity: each part between its delimiter line
 * and the CRLF before the next one. Returns how many, or -1 when the body
 * lacks a boundary or its closing delimiter. */
static int children(struct view e, struct view *kids, int max)
{
	char boundary[256], open[300], close[300];
	struct view body = body_of(e);
	int n = 0, in_part = 0;

	field_param(e, "Content-Type", "boundary", boundary, sizeof boundary);
	if (!boundary[0])
		return -1;
	snprintf(open, sizeof open, "--%s", boundary);
	snprintf(close, sizeof close, "--%s--", boundary);
	for (size_t i = 0; i < body.n;) {
		size_t end = line_end(body, i);
		struct view line = { body.p + i, end - i };
		int is_open = line.n == strlen(open) && memcmp(line.p, open, line.n) == 0;
		int is_close = line.n == strlen(close) && memcmp(line.p, close, line.n) == 0;
		if ((is_open || is_close) && in_part && n > 0)
			kids[n - 1].n = (size_t)(line.p - kids[n - 1].p) - 2;   /* the CRLF before */
		if (is_close)
			return n;
		if (is_open && n < max) {
			kids[n++] = (struct view){ body.p + end + 2, 0 };
			in_part = 1;
		}
		i = end + 2;
	}
	return -1;
}

static int hex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = toupper(c);
	return c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Quoted-printable (RFC 2045 6.7) or, with underscores, an RFC 2047 Q word.
 * Returns the decoded length, or -1 at a bad escape or no room. */
static long qp_decode(struct view in, int underscore, char *out, size_t cap)
{
	size_t o = 0;

	for (size_t i = 0; i < in.n; i++) {
		int c = (unsigned char)in.p[i];
		if (c == '=' && i + 2 < in.n && in.p[i + 1] == '\r' && in.p[i + 2] == '\n') {
			i += 2;                     /* a soft line break */
			continue;
		}
		if (c == '=') {
			int h = i + 2 < in.n ? hex(in.p[i + 1]) : -1, l = h >= 0 ? hex(in.p[i + 2]) : -1;
			if (l < 0)
				return -1;
			c = h * 16 + l;
			i += 2;
		} else if (c == '_' && underscore) {
			c = ' ';
		}
		if (o + 1 >= cap)
			return -1;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return (long)o;
}

static int b64_value(int c)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const char *p = c ? strchr(alphabet, c) : NULL;

	return p ? (int)(p - alphabet) : -1;
}

/* Base64, line breaks skipped. Returns the decoded length, or -1. */
static long b64_decode(struct view in, char *out, size_t cap)
{
	unsigned long acc = 0;
	int bits = 0;
	size_t o = 0;

	for (size_t i = 0; i < in.n; i++) {
		int c = (unsigned char)in.p[i];
		if (c == '\r' || c == '\n')
			continue;
		if (c == '=')
			break;
		int v = b64_value(c);
		if (v < 0)
			return -1;
		acc = (acc << 6) | (unsigned long)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o + 1 >= cap)
				return -1;
			out[o++] = (char)((acc >> bits) & 0xff);
		}
	}
	out[o] = '\0';
	return (long)o;
}

/* A leaf part's content, its transfer encoding undone. Returns its length,
 * or -1. */
static long content(struct view e, char *out, size_t cap)
{
	char cte[64];
	struct view body = body_of(e);

	field(head_of(e), "Content-Transfer-Encoding", cte, sizeof cte);
	if (strcasecmp(cte, "quoted-printable") == 0)
		return qp_decode(body, 0, out, cap);
	if (strcasecmp(cte, "base64") == 0)
		return b64_decode(body, out, cap);
	if (body.n + 1 > cap)
		return -1;
	memcpy(out, body.p, body.n);
	out[body.n] = '\0';
	return (long)body.n;
}

/* A text part's content as a string with LF line ends ("" on failure). */
static const char *text_of(struct view e)
{
	static char buf[CONTENT_MAX];
	long n = content(e, buf, sizeof buf);
	size_t o = 0;

	if (n < 0)
		return "(undecodable)";
	for (long i = 0; i < n; i++)
		if (!(buf[i] == '\r' && i + 1 < n && buf[i + 1] == '\n'))
			buf[o++] = buf[i];
	buf[o] = '\0';
	return buf;
}

/* Decodes the encoded word at s ("=?charset?B|Q?text?=") into out.
 * Returns the bytes it spans (its decoded length in *n), or 0 when s starts
 * no encoded word. */
static size_t word_2047(const char *s, char *out, size_t cap, size_t *n)
{
	const char *q1 = strncmp(s, "=?", 2) == 0 ? strchr(s + 2, '?') : NULL;
	if (!q1 || !q1[1] || q1[2] != '?')
		return 0;
	const char *text = q1 + 3, *end = strstr(text, "?=");
	if (!end)
		return 0;
	struct view v = { text, (size_t)(end - text) };
	int enc = toupper((unsigned char)q1[1]);
	long got = enc == 'B' ? b64_decode(v, out, cap) : enc == 'Q' ? qp_decode(v, 1, out, cap) : -1;
	if (got < 0)
		return 0;
	*n = (size_t)got;
	return (size_t)(end + 2 - s);
}

/* An unstructured field value with its RFC 2047 words decoded (the space
 * between two adjacent words dropped). */
static const char *decode_2047(const char *in)
{
	static char out[FIELD_MAX];
	char word[FIELD_MAX];
	size_t o = 0, after_word = 0;   /* out's length just after the last word */
	int last_word = 0;

	for (const char *s = in; *s && o + 1 < sizeof out;) {
		size_t n = 0, used = word_2047(s, word, sizeof word, &n);
		if (used) {
			if (last_word)
				o = after_word;    /* only whitespace since the last word */
			if (o + n >= sizeof out)
				break;
			memcpy(out + o, word, n);
			o += n;
			s += used;
			after_word = o;
			last_word = 1;
			continue;
		}
		if (*s != ' ' && *s != '\t')
			last_word = 0;
		out[o++] = *s++;
	}
	out[o] = '\0';
	return out;
}

/* Every line of m ends in CRLF, and no line is longer than 998 octets. */
static int lines_ok(struct view m)
{
	size_t len = 0;

	for (size_t i = 0; i < m.n; i++) {
		if (m.p[i] == '\n' && (i == 0 || m.p[i - 1] != '\r'))
			return 0;
		if (m.p[i] == '\r' && (i + 1 == m.n || m.p[i + 1] != '\n'))
			return 0;
		len = m.p[i] == '\n' ? 0 : len + 1;
		if (len > 999)
			return 0;
	}
	return m.n >= 2 && memcmp(m.p + m.n - 2, "\r\n", 2) == 0;
}

/* Whether the address field value v is the one mailbox addr, with the
 * display name name (NULL: none), whichever of the equivalent forms
 * (quoted or not, angle brackets or not) it takes. */
static int mailbox_is(const char *v, const char *name, const char *addr)
{
	char want[FIELD_MAX];

	if (!name)
		return strcmp(v, addr) == 0 ||
		       (v[0] == '<' && strncmp(v + 1, addr, strlen(addr)) == 0 &&
			strcmp(v + 1 + strlen(addr), ">") == 0);
	snprintf(want, sizeof want, " <%s>", addr);
	size_t nl = strlen(name), vl = strlen(v), wl = strlen(want);
	if (vl < wl || strcmp(v + vl - wl, want) != 0)
		return 0;
	size_t dl = vl - wl;   /* the display name, maybe quoted */
	if (dl == nl + 2 && v[0] == '"' && v[dl - 1] == '"')
		return strncmp(v + 1, name, nl) == 0;
	return dl == nl && strncmp(v, name, nl) == 0;
}

/* The header of a whole message: Date, From, Message-ID, MIME-Version each
 * once, the Message-ID the one info reports. */
static void check_basic_fields(const struct msg *m, const char *from_name, const char *from)
{
	struct view head = head_of(whole(m));
	char v[FIELD_MAX];

	T_TRUE(lines_ok(whole(m)));
	T_EQ_INT(field(head, "Date", v, sizeof v), 1);
	T_EQ_STR(v, NOW_DATE);
	T_EQ_INT(field(head, "From", v, sizeof v), 1);
	if (!mailbox_is(v, from_name, from))
		T_FAIL("From: got \"%s\", want %s <%s>", v, from_name ? from_name : "", from);
	T_EQ_INT(field(head, "MIME-Version", v, sizeof v), 1);
	T_EQ_STR(v, "1.0");
	T_EQ_INT(field(head, "Message-ID", v, sizeof v), 1);
	T_EQ_STR(v, m->info.message_id);
	T_TRUE(v[0] == '<' && strchr(v, '@') && v[strlen(v) - 1] == '>');
	T_EQ_INT(field(head, "Content-Type", v, sizeof v), 1);
	T_EQ_INT(field(head, "DKIM-Signature", v, sizeof v), 0);
}

static const char *field_of(const struct msg *m, const char *name)
{
	static char v[FIELD_MAX];

	field(head_of(whole(m)), name, v, sizeof v);
	return v;
}

/* ---- the message shapes ---- */

static struct msg m1, m2;

/* Checks that entity e is media type want; returns 1 when it is. */
static int is_type(struct view e, const char *want)
{
	char type[64];

	media_type(e, type, sizeof type);
	t_checks++;
	if (strcmp(type, want) == 0)
		return 1;
	T_FAIL("media type: got \"%s\", want \"%s\"", type, want);
	return 0;
}

/* Renders tmpl (From: a@example.test) once with vars into m1 and checks
 * the fields every message has and its media type. Returns 1 when the
 * message is there to look into. */
static int render_shape(const char *name, const char *tmpl, const char *vars, const char *type)
{
	if (render_once(name, tmpl, NULL, vars, &m1) != 0) {
		T_FAIL("%s: %s", name, err);
		return 0;
	}
	check_basic_fields(&m1, NULL, "a@example.test");
	return is_type(whole(&m1), type);
}

static void test_text_only(void)
{
	const char *tmpl = "From: \"{{sender}}\" <news@example.test>\n"
			   "To: {{name}} <{{email}}>\n"
			   "Subject: Hello {{name}}\n"
			   "\n"
			   "Hi {{name}},\n"
			   "a <b> & c: {{what}}\n";

	if (render_once("text.tmpl", tmpl, NULL,
			"{\"sender\": \"News\", \"name\": \"Ann\", \"email\": \"ann@example.test\","
			" \"what\": \"<x>&\"}", &m1) != 0) {
		T_FAIL("text only: %s", err);
		return;
	}
	check_basic_fields(&m1, "News", "news@example.test");
	T_EQ_STR(field_of(&m1, "Subject"), "Hello Ann");
	T_TRUE(mailbox_is(field_of(&m1, "To"), "Ann", "ann@example.test"));
	T_EQ_STR(m1.info.envelope_from, "news@example.test");
	T_TRUE(strstr(m1.info.message_id, "@example.test>") != NULL);
	char type[64], charset[32];
	media_type(whole(&m1), type, sizeof type);
	T_EQ_STR(type, "text/plain");
	field_param(whole(&m1), "Content-Type", "charset", charset, sizeof charset);
	T_TRUE(strcasecmp(charset, "utf-8") == 0);
	/* a text part is not HTML-escaped */
	T_EQ_STR(text_of(whole(&m1)), "Hi Ann,\na <b> & c: <x>&\n");
}

static void test_html_only(void)
{
	const char *tmpl = "From: a@example.test\nSubject: s\n\n--- html\n<p>Hi {{name}}</p>\n"
			   "<p>{{{raw}}}</p>\n";

	if (!render_shape("html.tmpl", tmpl, "{\"name\": \"<Ann> & 'co'\", \"raw\": \"<b>x</b>\"}",
			  "text/html"))
		return;
	T_EQ_STR(text_of(whole(&m1)), "<p>Hi &lt;Ann&gt; &amp; &#39;co&#39;</p>\n<p><b>x</b></p>\n");
}

/* e is multipart/alternative: a text/plain part holding text, then a
 * text/html one holding html. */
static void check_alternative(struct view e, const char *text, const char *html)
{
	struct view kids[KIDS_MAX];

	if (!is_type(e, "multipart/alternative"))
		return;
	T_EQ_INT(children(e, kids, KIDS_MAX), 2);
	if (!is_type(kids[0], "text/plain") || !is_type(kids[1], "text/html"))
		return;
	T_EQ_STR(text_of(kids[0]), text);
	T_EQ_STR(text_of(kids[1]), html);
}

static void test_text_and_html(void)
{
	const char *tmpl = "From: a@example.test\nSubject: s\n\n--- text\nHi {{name}}\n"
			   "--- html\n<p>Hi {{name}}</p>\n";

	if (render_shape("alt.tmpl", tmpl, "{\"name\": \"Tom & Jerry\"}", "multipart/alternative"))
		check_alternative(whole(&m1), "Hi Tom & Jerry\n", "<p>Hi Tom &amp; Jerry</p>\n");
}

/* Bytes no text encoding survives: NUL, CR alone, high bytes. */
static const char blob[] = { 'P', 'K', 0, 1, '\r', (char)0xff, (char)0x80, '\n', 'z' };

static void check_attachment(struct view e, const char *type, const char *name,
			     const char *data, size_t n)
{
	char v[FIELD_MAX], fname[256], buf[256];

	if (!is_type(e, type))
		return;
	field(head_of(e), "Content-Disposition", v, sizeof v);
	T_TRUE(strncasecmp(v, "attachment", 10) == 0);
	field_param(e, "Content-Disposition", "filename", fname, sizeof fname);
	T_EQ_STR(fname, name);
	long got = content(e, buf, sizeof buf);
	T_EQ_MEM(buf, got < 0 ? 0 : (size_t)got, data, n);
}

static void test_attachments(void)
{
	const char *tmpl = "From: a@example.test\nSubject: s\n\n--- text\nsee {{what}}\n"
			   "--- attach files/blob.bin application/octet-stream\n"
			   "--- attach notes.txt\n";
	const char *notes = "line one\nline two\n";
	struct view kids[KIDS_MAX];

	snprintf(path, sizeof path, "%s/files", dir);
	T_EQ_INT(mkdir(path, 0700), 0);
	if (write_bytes("files/blob.bin", blob, sizeof blob) != 0 ||
	    write_bytes("notes.txt", notes, strlen(notes)) != 0)
		return;
	if (!render_shape("att.tmpl", tmpl, "{\"what\": \"the files\"}", "multipart/mixed"))
		return;
	T_EQ_INT(children(whole(&m1), kids, KIDS_MAX), 3);
	if (is_type(kids[0], "text/plain"))
		T_EQ_STR(text_of(kids[0]), "see the files\n");
	check_attachment(kids[1], "application/octet-stream", "blob.bin", blob, sizeof blob);
	check_attachment(kids[2], "text/plain", "notes.txt", notes, strlen(notes));

	/* text and html with an attachment: mixed holding alternative */
	const char *both = "From: a@example.test\nSubject: s\n\n--- text\nt {{what}}\n"
			   "--- html\n<i>{{what}}</i>\n--- attach notes.txt\n";
	if (!render_shape("att2.tmpl", both, "{\"what\": \"a<b\"}", "multipart/mixed"))
		return;
	T_EQ_INT(children(whole(&m1), kids, KIDS_MAX), 2);
	check_alternative(kids[0], "t a<b\n", "<i>a&lt;b</i>\n");
	check_attachment(kids[1], "text/plain", "notes.txt", notes, strlen(notes));
}

/* ---- headers: RFC 2047, injection, List-Unsubscribe ---- */

static int ascii_only(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] >= 0x80)
			return 0;
	return 1;
}

static void test_non_ascii_subject(void)
{
	const char *tmpl = "From: a@example.test\nSubject: Gr\xc3\xbc\xc3\x9f" "e {{name}}, plain words\n"
			   "\nbody\n";
	const char *vars = "{\"name\": \"Zo\xc3\xab\"}";

	if (render_once("utf8.tmpl", tmpl, NULL, vars, &m1) != 0) {
		T_FAIL("non-ASCII subject: %s", err);
		return;
	}
	struct view head = head_of(whole(&m1));
	T_TRUE(ascii_only(head.p, head.n));
	const char *raw = field_of(&m1, "Subject");
	T_TRUE(strstr(raw, "=?") != NULL && strcasestr(raw, "utf-8?") != NULL);
	T_EQ_STR(decode_2047(raw), "Gr\xc3\xbc\xc3\x9f" "e Zo\xc3\xab, plain words");
	T_EQ_INT(m1.info.needs_smtputf8, 0);

	/* with SMTPUTF8 the header carries the UTF-8 as it is */
	struct campaign_opts o = { .smtputf8 = 1 };
	if (render_once("utf8.tmpl", tmpl, &o, vars, &m2) != 0) {
		T_FAIL("non-ASCII subject, SMTPUTF8: %s", err);
		return;
	}
	T_EQ_STR(field_of(&m2, "Subject"), "Gr\xc3\xbc\xc3\x9f" "e Zo\xc3\xab, plain words");
	T_EQ_INT(m2.info.needs_smtputf8, 1);
}

/* A line of the header that starts a field called name. */
static int starts_field(const struct msg *m, const char *name)
{
	char v[FIELD_MAX];

	return field(head_of(whole(m)), name, v, sizeof v);
}

static void test_header_injection(void)
{
	const char *tmpl = "From: a@example.test\nTo: {{name}} <b@example.test>\nSubject: {{subject}}\n"
			   "\nHi {{name}}\n";
	const char *vars = "{\"name\": \"Ann\\r\\nCc: other@example.test\","
			   " \"subject\": \"Hi\\r\\nBcc: victim@example.test\\nX-Evil: 1\\r\\n\\r\\nbody\"}";

	if (render_once("inject.tmpl", tmpl, NULL, vars, &m1) != 0) {
		T_FAIL("injection: %s", err);
		return;
	}
	T_EQ_INT(starts_field(&m1, "Bcc"), 0);
	T_EQ_INT(starts_field(&m1, "Cc"), 0);
	T_EQ_INT(starts_field(&m1, "X-Evil"), 0);
	T_EQ_INT(starts_field(&m1, "Subject"), 1);
	T_EQ_STR(field_of(&m1, "Subject"), "Hi Bcc: victim@example.test X-Evil: 1 body");
	T_TRUE(lines_ok(whole(&m1)));
	/* the header still ends where it should: the body is the text part */
	T_EQ_STR(text_of(whole(&m1)), "Hi Ann\nCc: other@example.test\n");
}

static void test_list_unsubscribe(void)
{
	const char *tmpl = "From: a@example.test\nSubject: s\n\nbody\n";
	struct campaign_opts o = { .unsubscribe_url = "https://example.test/u/abc?x=1" };

	if (render_once("unsub.tmpl", tmpl, &o, "{}", &m1) != 0) {
		T_FAIL("unsubscribe: %s", err);
		return;
	}
	T_EQ_INT(starts_field(&m1, "List-Unsubscribe"), 1);
	T_EQ_STR(field_of(&m1, "List-Unsubscribe"), "<https://example.test/u/abc?x=1>");
	T_EQ_INT(starts_field(&m1, "List-Unsubscribe-Post"), 1);
	T_EQ_STR(field_of(&m1, "List-Unsubscribe-Post"), "List-Unsubscribe=One-Click");

	/* mailto only: no one-click POST */
	struct campaign_opts mail = { .unsubscribe_mailto = "mailto:unsub@example.test" };
	if (render_once("unsub.tmpl", tmpl, &mail, "{}", &m1) != 0) {
		T_FAIL("unsubscribe mailto: %s", err);
		return;
	}
	T_EQ_STR(field_of(&m1, "List-Unsubscribe"), "<mailto:unsub@example.test>");
	T_EQ_INT(starts_field(&m1, "List-Unsubscribe-Post"), 0);

	/* none given: neither field */
	if (render_once("unsub.tmpl", tmpl, NULL, "{}", &m1) != 0) {
		T_FAIL("no unsubscribe: %s", err);
		return;
	}
	T_EQ_INT(starts_field(&m1, "List-Unsubscribe"), 0);
	T_EQ_INT(starts_field(&m1, "List-Unsubscribe-Post"), 0);
}

/* ---- per recipient: strict mode, reuse ---- */

static void test_strict_per_recipient(void)
{
	const char *tmpl = "From: a@example.test\nSubject: For {{name}}\n\n--- text\nHello,\n"
			   "  your code is {{code}}.\n";
	struct campaign_opts o = { .strict = 1 };
	struct campaign_template *t = load("strict.tmpl", tmpl, &o);
	char want[1024];

	if (!t) {
		T_FAIL("strict: %s", err);
		return;
	}
	struct campaign_renderer *r = campaign_renderer_new(t, err, sizeof err);
	if (!r) {
		T_FAIL("strict: %s", err);
		campaign_template_free(t);
		return;
	}
	snprintf(want, sizeof want, "%s:6:16: no value for 'code'", path);
	T_EQ_INT(render_json(r, "{\"name\": \"Ann\"}", &m1), -1);
	T_EQ_STR(err, want);
	/* the next recipient renders */
	T_EQ_INT(render_json(r, "{\"name\": \"Bo\", \"code\": \"X1\"}", &m1), 0);
	T_EQ_STR(field_of(&m1, "Subject"), "For Bo");
	T_EQ_STR(text_of(whole(&m1)), "Hello,\n  your code is X1.\n");
	/* a missing header variable names its place in the header */
	snprintf(want, sizeof want, "%s:2:14: no value for 'name'", path);
	T_EQ_INT(render_json(r, "{\"code\": \"X2\"}", &m2), -1);
	T_EQ_STR(err, want);
	T_EQ_INT(render_json(r, "{\"name\": \"Cy\", \"code\": \"X3\"}", &m2), 0);
	T_TRUE(strstr(text_of(whole(&m2)), "your code is X3.") != NULL);
	campaign_renderer_free(r);
	campaign_template_free(t);

	/* not strict: the same data renders, the variable empty */
	if (render_once("strict.tmpl", tmpl, NULL, "{\"name\": \"Ann\"}", &m1) != 0) {
		T_FAIL("not strict: %s", err);
		return;
	}
	T_EQ_STR(text_of(whole(&m1)), "Hello,\n  your code is .\n");
}

/* A CSV row as every piece's data, one binding per piece (as volley
 * render --csv does). */
struct csv_recipient {
	struct tpl_csv_row row;
	struct tpl_csv_binding *bind;
};

static struct tpl_data csv_piece(const void *ud, size_t piece)
{
	const struct csv_recipient *c = ud;

	return tpl_csv_data(&c->row, &c->bind[piece]);
}

/* Renders one CSV row into m. Returns 0, or -1 with the reason in err. */
static int render_row(struct campaign_renderer *r, struct csv_recipient *c,
		      const char *const *vals, size_t n, struct msg *m)
{
	size_t lens[8];
	struct campaign_message cm;

	for (size_t i = 0; i < n; i++)
		lens[i] = strlen(vals[i]);
	c->row = (struct tpl_csv_row){ vals, lens, n };
	struct campaign_data d = { csv_piece, c };
	if (campaign_render(r, &d, NOW, &cm) != 0) {
		snprintf(err, sizeof err, "%s", campaign_renderer_errstr(r));
		return -1;
	}
	m->len = cm.msg_len < sizeof m->text - 1 ? cm.msg_len : sizeof m->text - 1;
	memcpy(m->text, cm.msg, m->len);
	m->text[m->len] = '\0';
	m->info = cm.info;
	return 0;
}

static void test_renderer_reused(void)
{
	const char *tmpl = "From: {{from}}\nTo: <{{email}}>\nSubject: Order {{order}}\n\n--- text\n"
			   "Dear {{name}}, order {{order}} shipped.\n--- html\n<p>Dear {{name}}</p>\n";
	static const char *const header[] = { "email", "name", "order", "from" };
	static const char *const row1[] = { "ann@example.test", "Ann", "17", "shop@example.test" };
	static const char *const row2[] = { "bo@example.test", "Bo & Co", "18", "shop@example.org" };
	size_t hlens[4];
	struct campaign_template *t = load("reuse.tmpl", tmpl, NULL);
	struct campaign_renderer *r = t ? campaign_renderer_new(t, err, sizeof err) : NULL;
	size_t npieces = t ? campaign_template_pieces(t) : 0;
	struct csv_recipient c = { .bind = calloc(npieces ? npieces : 1, sizeof *c.bind) };
	struct view k1[KIDS_MAX], k2[KIDS_MAX];

	if (!r || !c.bind) {
		T_FAIL("reuse: %s", err);
		goto done;
	}
	for (size_t i = 0; i < 4; i++)
		hlens[i] = strlen(header[i]);
	for (size_t i = 0; i < npieces; i++)
		T_EQ_INT(tpl_csv_bind(&c.bind[i], campaign_template_program(t, i), header, hlens, 4), 0);
	if (render_row(r, &c, row1, 4, &m1) != 0 || render_row(r, &c, row2, 4, &m2) != 0) {
		T_FAIL("reuse: %s", err);
		goto done;
	}
	T_EQ_STR(m1.info.envelope_from, "shop@example.test");
	T_EQ_STR(m2.info.envelope_from, "shop@example.org");
	T_TRUE(strcmp(m1.info.message_id, m2.info.message_id) != 0);
	T_TRUE(strstr(m2.info.message_id, "@example.org>") != NULL);
	T_TRUE(mailbox_is(field_of(&m1, "To"), NULL, "ann@example.test"));
	T_TRUE(mailbox_is(field_of(&m2, "To"), NULL, "bo@example.test"));
	T_EQ_STR(field_of(&m2, "Subject"), "Order 18");
	if (children(whole(&m1), k1, KIDS_MAX) != 2 || children(whole(&m2), k2, KIDS_MAX) != 2) {
		T_FAIL("reuse: not two parts each");
		goto done;
	}
	T_EQ_STR(text_of(k1[0]), "Dear Ann, order 17 shipped.\n");
	T_EQ_STR(text_of(k2[0]), "Dear Bo & Co, order 18 shipped.\n");
	T_EQ_STR(text_of(k1[1]), "<p>Dear Ann</p>\n");
	T_EQ_STR(text_of(k2[1]), "<p>Dear Bo &amp; Co</p>\n");
done:
	for (size_t i = 0; c.bind && i < npieces; i++)
		tpl_csv_binding_free(&c.bind[i]);
	free(c.bind);
	campaign_renderer_free(r);
	campaign_template_free(t);
}

/* ---- errors name the file, line and column ---- */

struct error_case {
	const char *what, *tmpl;
	const char *want;    /* after "<path>:" */
};

static const struct error_case error_cases[] = {
	{ "a header value", "From: a@example.test\nSubject: {{#x}}\n\nbody\n",
	  "2:10: unclosed section 'x'" },
	{ "a folded header value", "From: a@example.test\nSubject: fine\n  and {{/y}}\n\nbody\n",
	  "3:7: close tag 'y' without an open section" },
	{ "a plain body", "From: a@example.test\nSubject: s\n\nline\nline {{name\n",
	  "5:6: unclosed tag" },
	{ "the text part", "From: a@example.test\nSubject: s\n\n--- text\nok\n {{#a}}\n--- html\n<p>\n",
	  "6:2: unclosed section 'a'" },
	{ "the html part", "From: a@example.test\nSubject: s\n\n--- text\nok\n--- html\n<p>\n  {{{x}}\n",
	  "8:3: a triple mustache must end with '}' before its closing delimiter" },
	{ "a missing partial", "From: a@example.test\nSubject: s\n\n--- text\nhi\n  {{>nope}}\n",
	  "6:3: missing partial 'nope'" },
	{ "a header volley sets", "From: a@example.test\nSubject: s\nDate: today\n\nbody\n",
	  "3:1: " },
	{ "an unknown part marker", "From: a@example.test\nSubject: s\n\n--- text\nhi\n--- pdf\n",
	  "6:5: unknown part marker" },
};

static void test_errors(void)
{
	char want[1024];

	for (size_t i = 0; i < sizeof error_cases / sizeof error_cases[0]; i++) {
		const struct error_case *c = &error_cases[i];
		struct campaign_template *t = load("broken.tmpl", c->tmpl, NULL);
		snprintf(want, sizeof want, "%s:%s", path, c->want);
		t_checks++;
		if (t)
			T_FAIL("%s: loaded, want the error \"%s\"", c->what, want);
		else if (strncmp(err, want, strlen(want)) != 0 || strlen(err) <= strlen(path) + 6)
			T_FAIL("%s: got \"%s\", want \"%s\"", c->what, err, want);
		campaign_template_free(t);
	}

	snprintf(path, sizeof path, "%s/none.tmpl", dir);
	static const struct campaign_opts none;
	T_TRUE(campaign_template_load(path, &none, err, sizeof err) == NULL);
	T_TRUE(strncmp(err, path, strlen(path)) == 0 && strstr(err, ": ") != NULL);
}

int main(void)
{
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	test_text_only();
	test_html_only();
	test_text_and_html();
	test_attachments();
	test_non_ascii_subject();
	test_header_injection();
	test_list_unsubscribe();
	test_strict_per_recipient();
	test_renderer_reused();
	test_errors();

	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		T_FAIL("cannot remove %s", dir);
	return t_done("test_message_render");
}
