/* Tests for templates/message_template: a whole template read into views
 * with their places, folded header values, line ends, plain and multipart
 * bodies, every error with its exact line and column, and every prefix of
 * a template against a guard page. */
#include "templates/message_template.h"
#include "tests/testutil.h"
#include "tests/guard.h"

#include <stdint.h>
#include <stdlib.h>

#define GUARD_REGION (64u * 1024u)

static int parse_guarded(const char *src, size_t n, struct mtpl *t, struct mtpl_error *err)
{
	memcpy(guard_mem - n, src, n);
	return mtpl_parse("news.tpl", guard_mem - n, n, t, err);
}

#define T_VIEW(p, n, want) T_EQ_MEM(p, n, want, strlen(want))

static struct mtpl t;

static void test_full(void)
{
	static const char src[] =
		"From: \"{{sender}}\" <news@example.test>\n"            /* 1 */
		"To: {{name}} <{{email}}>\n"                           /* 2 */
		"Subject:   Hello {{name}},   \n"                      /* 3 */
		"  your invoice\n"                                     /* 4 */
		"\tis ready\n"                                         /* 5 */
		"X-Campaign:{{campaign}}\n"                            /* 6 */
		"Reply-To:\n"                                          /* 7 */
		"   help@example.test\n"                               /* 8 */
		"\n"                                                   /* 9 */
		"\n"                                                   /* 10 */
		"--- text\n"                                           /* 11 */
		"Hello {{name}},\n"                                    /* 12 */
		"--- html\n"                                           /* 13 */
		"<p>Hello {{name}}</p>\n"                              /* 14 */
		"\n"                                                   /* 15 */
		"--- attach docs/terms.pdf\n"                          /* 16 */
		"--- attach logo.bin image/png\n"                      /* 17 */
		"   \n"                                                /* 18 */
		"--- attach README\n";                                 /* 19 */
	struct mtpl_error err;

	T_EQ_INT(parse_guarded(src, sizeof src - 1, &t, &err), 0);
	T_EQ_INT(t.nheaders, 5);
	T_VIEW(t.headers[0].name, t.headers[0].name_len, "From");
	T_VIEW(t.headers[0].value, t.headers[0].value_len, "\"{{sender}}\" <news@example.test>");
	T_EQ_INT(t.headers[0].line, 1);
	T_EQ_INT(t.headers[0].col, 7);
	T_VIEW(t.headers[1].value, t.headers[1].value_len, "{{name}} <{{email}}>");
	T_EQ_INT(t.headers[1].line, 2);
	T_EQ_INT(t.headers[1].col, 5);
	/* a folded value keeps its folds; whitespace at its ends is dropped */
	T_VIEW(t.headers[2].value, t.headers[2].value_len,
	       "Hello {{name}},   \n  your invoice\n\tis ready");
	T_EQ_INT(t.headers[2].line, 3);
	T_EQ_INT(t.headers[2].col, 12);
	T_VIEW(t.headers[3].name, t.headers[3].name_len, "X-Campaign");
	T_VIEW(t.headers[3].value, t.headers[3].value_len, "{{campaign}}");
	T_EQ_INT(t.headers[3].col, 12);
	/* a value that starts on the next line */
	T_VIEW(t.headers[4].value, t.headers[4].value_len, "help@example.test");
	T_EQ_INT(t.headers[4].line, 8);
	T_EQ_INT(t.headers[4].col, 4);
	T_EQ_INT(t.body_line, 10);

	T_EQ_INT(t.nparts, 5);
	T_EQ_INT(t.text, 0);
	T_EQ_INT(t.html, 1);
	T_EQ_INT(t.parts[0].kind, MTPL_PART_TEXT);
	T_EQ_INT(t.parts[0].line, 11);
	T_EQ_INT(t.parts[0].body_line, 12);
	T_VIEW(t.parts[0].body, t.parts[0].body_len, "Hello {{name}},\n");
	T_EQ_INT(t.parts[1].kind, MTPL_PART_HTML);
	T_EQ_INT(t.parts[1].line, 13);
	T_EQ_INT(t.parts[1].body_line, 14);
	T_VIEW(t.parts[1].body, t.parts[1].body_len, "<p>Hello {{name}}</p>\n\n");
	T_EQ_INT(t.parts[2].kind, MTPL_PART_ATTACH);
	T_EQ_INT(t.parts[2].line, 16);
	T_VIEW(t.parts[2].path, t.parts[2].path_len, "docs/terms.pdf");
	T_VIEW(t.parts[2].content_type, t.parts[2].content_type_len, "application/pdf");
	T_EQ_INT(t.parts[2].body_len, 0);
	T_VIEW(t.parts[3].path, t.parts[3].path_len, "logo.bin");
	T_VIEW(t.parts[3].content_type, t.parts[3].content_type_len, "image/png");
	T_VIEW(t.parts[4].path, t.parts[4].path_len, "README");
	T_VIEW(t.parts[4].content_type, t.parts[4].content_type_len, "application/octet-stream");

	T_TRUE(mtpl_header_find(&t, "subject") == &t.headers[2]);
	T_TRUE(mtpl_header_find(&t, "Cc") == NULL);
	{
		char path[64];
		T_EQ_INT(mtpl_attachment_path("/srv/campaigns/news.tpl", &t.parts[2], path, sizeof path), 0);
		T_EQ_STR(path, "/srv/campaigns/docs/terms.pdf");
		T_EQ_INT(mtpl_attachment_path("news.tpl", &t.parts[3], path, sizeof path), 0);
		T_EQ_STR(path, "logo.bin");
		T_EQ_INT(mtpl_attachment_path("/srv/campaigns/news.tpl", &t.parts[2], path, 20), -1);
	}
}

static void test_forms(void)
{
	struct mtpl_error err;

	/* CRLF line ends and a byte order mark */
	{
		static const char src[] = "\xef\xbb\xbf" "From: a@x.test\r\nSubject: Hi\r\n there\r\n\r\n"
					  "--- text\r\nline one\r\nline two\r\n--- html\r\n<p></p>";
		T_EQ_INT(parse_guarded(src, sizeof src - 1, &t, &err), 0);
		T_EQ_INT(t.headers[0].col, 7);
		T_VIEW(t.headers[1].value, t.headers[1].value_len, "Hi\r\n there");
		T_VIEW(t.parts[0].body, t.parts[0].body_len, "line one\r\nline two\r\n");
		T_VIEW(t.parts[1].body, t.parts[1].body_len, "<p></p>");
		T_EQ_INT(t.parts[1].body_line, 9);
	}
	/* a plain body: one text part, "--- " lines in it are text */
	{
		static const char src[] = "From: a@x.test\n\nHello\n--- Original message ---\n--- snip\n";
		T_EQ_INT(parse_guarded(src, sizeof src - 1, &t, &err), 0);
		T_EQ_INT(t.nparts, 1);
		T_EQ_INT(t.text, 0);
		T_EQ_INT(t.html, -1);
		T_EQ_INT(t.parts[0].line, 3);
		T_EQ_INT(t.parts[0].body_line, 3);
		T_VIEW(t.parts[0].body, t.parts[0].body_len, "Hello\n--- Original message ---\n--- snip\n");
	}
	/* no body at all, and no empty line */
	{
		static const char src[] = "From: a@x.test\nSubject: x";
		T_EQ_INT(parse_guarded(src, sizeof src - 1, &t, &err), 0);
		T_EQ_INT(t.nheaders, 2);
		T_VIEW(t.headers[1].value, t.headers[1].value_len, "x");
		T_EQ_INT(t.nparts, 1);
		T_EQ_INT(t.parts[0].body_len, 0);
	}
	/* html only; an empty value; a whitespace-only line ends the header */
	{
		static const char src[] = "From: a@x.test\nX-Empty:\n  \t\n--- html\n<b>x</b>\n";
		T_EQ_INT(parse_guarded(src, sizeof src - 1, &t, &err), 0);
		T_EQ_INT(t.headers[1].value_len, 0);
		T_EQ_INT(t.text, -1);
		T_EQ_INT(t.html, 0);
		T_VIEW(t.parts[0].body, t.parts[0].body_len, "<b>x</b>\n");
	}
	/* attachments only, the marker last without a line end */
	{
		static const char src[] = "From: a@x.test\n\n--- attach a.PNG";
		T_EQ_INT(parse_guarded(src, sizeof src - 1, &t, &err), 0);
		T_EQ_INT(t.nparts, 1);
		T_EQ_INT(t.text, -1);
		T_VIEW(t.parts[0].content_type, t.parts[0].content_type_len, "image/png");
	}
	/* "." parts that are not "..", and a text part with nothing in it */
	{
		static const char src[] = "From: a@x.test\n\n--- text\n--- attach ./a..b/.x/c...\n";
		T_EQ_INT(parse_guarded(src, sizeof src - 1, &t, &err), 0);
		T_EQ_INT(t.parts[0].body_len, 0);
		T_VIEW(t.parts[1].path, t.parts[1].path_len, "./a..b/.x/c...");
	}
}

struct error_case {
	const char *src;
	size_t len;          /* 0: strlen */
	unsigned line, col;
	const char *msg;     /* after "news.tpl:line:col: " */
};

static const struct error_case error_cases[] = {
	{ "From: a@x.test\nSubject: caf\xc3\n\n", 0, 2, 13, "invalid UTF-8" },
	{ "From: a@x.test\n\nbody \xff\n", 0, 3, 6, "invalid UTF-8" },
	{ "From: a@x.test\nSubject: \xed\xa0\x80\n", 0, 2, 10, "invalid UTF-8" },
	{ "From: a@x.test\n\nab\0cd", 21, 3, 3, "NUL byte" },
	{ "From: a@x.test\rSubject: x\n", 0, 1, 15, "CR not followed by LF" },
	{ "From: a@x.test\n\nbody\r", 0, 3, 5, "CR not followed by LF" },
	{ "From: a@x.test\nSubject hello\n\n", 0, 2, 1,
	  "header line without a colon (the header ends at the first empty line)" },
	{ "From: a@x.test\n: value\n", 0, 2, 1, "empty header name" },
	{ "From: a@x.test\nSub ject: x\n", 0, 2, 4,
	  "bad character in header name \"Sub ject\" (write \"Name: value\")" },
	{ "From: a@x.test\nSubject : x\n", 0, 2, 8,
	  "bad character in header name \"Subject \" (write \"Name: value\")" },
	{ "From: a@x.test\nX-\xc3\xa9: x\n", 0, 2, 3, "bad character in header name \"X-\xc3\xa9\"" },
	{ "From: a@x.test\nX-{{name}}: x\n", 0, 2, 3, "mustache tags are not allowed in header names" },
	{ " folded: x\nFrom: a@x.test\n", 0, 1, 1, "continuation line before the first header" },
	{ "From: a@x.test\nDate: {{date}}\n", 0, 2, 1, "Date is set by volley; remove it from the template" },
	{ "From: a@x.test\nmessage-id: <x@y>\n", 0, 2, 1,
	  "message-id is set by volley; remove it from the template" },
	{ "From: a@x.test\nMIME-Version: 1.0\n", 0, 2, 1,
	  "MIME-Version is set by volley; remove it from the template" },
	{ "From: a@x.test\nContent-Type: text/html\n", 0, 2, 1,
	  "Content-Type is set by volley; remove it from the template" },
	{ "From: a@x.test\nContent-Transfer-Encoding: 8bit\n", 0, 2, 1,
	  "Content-Transfer-Encoding is set by volley; remove it from the template" },
	{ "From: a@x.test\nContent-Disposition: inline\n", 0, 2, 1,
	  "Content-Disposition is set by volley; remove it from the template" },
	{ "From: a@x.test\nSubject: a\nX: y\nSUBJECT: b\n", 0, 4, 1,
	  "a second SUBJECT header (the first is on line 2)" },
	{ "From: a@x.test\nFrom: b@x.test\n", 0, 2, 1, "a second From header (the first is on line 1)" },
	{ "Subject: x\nTo: y@x.test\n\nbody\n", 0, 3, 1, "no From header before the body" },
	{ "Subject: x\nTo: y@x.test", 0, 3, 1, "no From header before the body" },
	{ "", 0, 1, 1, "no From header before the body" },
	{ "\n\nbody", 0, 1, 1, "no From header before the body" },
	{ "From: a@x.test\n\n--- txt\nhello\n", 0, 3, 5,
	  "unknown part marker \"--- txt\" (the markers are --- text, --- html and --- attach PATH)" },
	{ "From: a@x.test\n\n--- text\nhello\n--- Text\n", 0, 5, 5,
	  "unknown part marker \"--- Text\" (the markers are --- text, --- html and --- attach PATH)" },
	{ "From: a@x.test\n\n--- text\n--- snip ---\n", 0, 4, 5,
	  "unknown part marker \"--- snip\" (the markers are --- text, --- html and --- attach PATH)" },
	{ "From: a@x.test\n\n--- text\na\n--- html\nb\n--- text\nc\n", 0, 7, 5,
	  "a second text part (the first is on line 3)" },
	{ "From: a@x.test\n\n--- html\na\n--- html\n", 0, 5, 5,
	  "a second html part (the first is on line 3)" },
	{ "From: a@x.test\n\n--- text  plain\n", 0, 3, 11, "unexpected text after \"--- text\"" },
	{ "From: a@x.test\n\n--- attach\n", 0, 3, 11, "--- attach needs a file path" },
	{ "From: a@x.test\n\n--- attach   \n", 0, 3, 11, "--- attach needs a file path" },
	{ "From: a@x.test\n\n--- attach /etc/passwd\n", 0, 3, 12,
	  "attachment path must be relative to the template's folder" },
	{ "From: a@x.test\n\n--- attach ../secret.pdf\n", 0, 3, 12,
	  "attachment path may not hold \"..\"" },
	{ "From: a@x.test\n\n--- attach docs/../../x\n", 0, 3, 17,
	  "attachment path may not hold \"..\"" },
	{ "From: a@x.test\n\n--- attach docs/..\n", 0, 3, 17, "attachment path may not hold \"..\"" },
	{ "From: a@x.test\n\n--- attach {{file}}.pdf\n", 0, 3, 12,
	  "mustache tags are not allowed in attachment paths (attachments are read once per campaign)" },
	{ "From: a@x.test\n\n--- attach a.pdf pdf\n", 0, 3, 18,
	  "bad content type \"pdf\" (want type/subtype)" },
	{ "From: a@x.test\n\n--- attach a.pdf application/pdf extra\n", 0, 3, 34,
	  "unexpected text after the content type (--- attach PATH [type/subtype])" },
	{ "From: a@x.test\n\n--- attach a.pdf\nsome text\n", 0, 4, 1,
	  "text under an attach marker (an attachment's content comes from its file)" },
	{ "From: a@x.test\n\nHello\n--- html\n<p>x</p>\n", 0, 4, 1,
	  "a part marker in a body that does not start with one (begin the body with \"--- text\" to write it in parts)" },
	{ "From: a@x.test\n\nHello\n--- attach x.pdf\n", 0, 4, 1,
	  "a part marker in a body that does not start with one (begin the body with \"--- text\" to write it in parts)" },
};

static void test_errors(void)
{
	for (size_t i = 0; i < sizeof error_cases / sizeof error_cases[0]; i++) {
		const struct error_case *c = &error_cases[i];
		size_t n = c->len ? c->len : strlen(c->src);
		struct mtpl_error err;
		char want[MTPL_ERR_MAX];

		memset(&err, 0, sizeof err);
		T_EQ_INT(parse_guarded(c->src, n, &t, &err), -1);
		T_EQ_INT(err.line, c->line);
		T_EQ_INT(err.col, c->col);
		snprintf(want, sizeof want, "news.tpl:%u:%u: %s", c->line, c->col, c->msg);
		T_EQ_STR(err.msg, want);
		T_EQ_STR(err.file, "news.tpl");
		if (err.line != c->line || err.col != c->col || strcmp(err.msg, want))
			fprintf(stderr, "  case %zu\n", i);
		/* the error is not needed to fail */
		T_EQ_INT(parse_guarded(c->src, n, &t, NULL), -1);
	}
}

static void test_limits(void)
{
	static char src[16384];
	struct mtpl_error err;
	size_t n;

	/* 64 headers are fine, 65 are not */
	n = (size_t)sprintf(src, "From: a@x.test\n");
	for (int i = 1; i < MTPL_HEADERS_MAX; i++)
		n += (size_t)sprintf(src + n, "X-H%d: v\n", i);
	T_EQ_INT(parse_guarded(src, n, &t, &err), 0);
	T_EQ_INT(t.nheaders, MTPL_HEADERS_MAX);
	n += (size_t)sprintf(src + n, "X-Last: v\n");
	T_EQ_INT(parse_guarded(src, n, &t, &err), -1);
	T_EQ_INT(err.line, 65);
	T_EQ_STR(err.msg, "news.tpl:65:1: more than 64 headers");

	/* 32 attachments are fine, 33 are not */
	n = (size_t)sprintf(src, "From: a@x.test\n\n--- text\nx\n");
	for (int i = 0; i < MTPL_ATTACH_MAX; i++)
		n += (size_t)sprintf(src + n, "--- attach f%d.pdf\n", i);
	T_EQ_INT(parse_guarded(src, n, &t, &err), 0);
	T_EQ_INT(t.nparts, 1 + MTPL_ATTACH_MAX);
	n += (size_t)sprintf(src + n, "--- attach last.pdf\n");
	T_EQ_INT(parse_guarded(src, n, &t, &err), -1);
	T_EQ_STR(err.msg, "news.tpl:37:1: more than 32 attachments");

	/* a name of 76 characters is fine, 77 is not */
	memset(src, 'N', 76);
	n = 76 + (size_t)sprintf(src + 76, ": v\nFrom: a@x.test\n");
	T_EQ_INT(parse_guarded(src, n, &t, &err), 0);
	memset(src, 'N', 77);
	n = 77 + (size_t)sprintf(src + 77, ": v\nFrom: a@x.test\n");
	T_EQ_INT(parse_guarded(src, n, &t, &err), -1);
	T_EQ_STR(err.msg, "news.tpl:1:1: header name longer than 76 characters");

	/* no file name */
	T_EQ_INT(mtpl_parse(NULL, "", 0, &t, &err), -1);
	T_EQ_STR(err.msg, "<template>:1:1: no From header before the body");
}

/* Every prefix of a template parses or fails with a place inside it, and
 * nothing reads past its end (the guard page). */
static void test_prefixes(void)
{
	static const char src[] =
		"\xef\xbb\xbf" "From: \"S\xc3\xa9nder\" <a@x.test>\r\n"
		"Subject: x\n  y\n"
		"\n"
		"--- text\n"
		"t\xc3\xa9xt\n"
		"--- html\r\n"
		"<p>x</p>\n"
		"--- attach a.pdf application/pdf\n"
		"--- attach b\n";
	struct mtpl_error err;
	uint32_t seed = 2024;

	for (size_t n = 0; n <= sizeof src - 1; n++) {
		int r = parse_guarded(src, n, &t, &err);
		if (r != 0) {
			T_TRUE(err.line >= 1 && err.line <= 10);
			T_TRUE(err.col >= 1);
		} else {
			for (size_t k = 0; k < t.nparts; k++)
				T_TRUE(t.parts[k].body + t.parts[k].body_len <= guard_mem);
		}
	}
	T_EQ_INT(parse_guarded(src, sizeof src - 1, &t, &err), 0);

	/* garbage: never a crash, always an answer */
	for (int round = 0; round < 20000; round++) {
		char g[200];
		size_t n = xorshift32(&seed) % sizeof g;
		static const char alphabet[] = "From:\n \t-attach texthml/.{}\r\xc3\xa9\x80";
		for (size_t i = 0; i < n; i++)
			g[i] = alphabet[xorshift32(&seed) % (sizeof alphabet - 1)];
		if (n > 6 && round % 2)
			memcpy(g, "From: ", 6);
		(void)parse_guarded(g, n, &t, &err);
	}
}

int main(void)
{
	guard_init_size(GUARD_REGION);
	test_full();
	test_forms();
	test_errors();
	test_limits();
	test_prefixes();
	return t_done("test_message_template");
}
