/* Tests for templates/mustache_csv: a program's names bound to a CSV
 * header's columns, one row's values rendered (escaped or raw, quoted and
 * UTF-8 fields byte for byte), missing and extra columns, sections over a
 * column, dotted names reading dotted headers, strict mode's error places,
 * a binding reused across rows, and the edges (short rows, no columns, no
 * names, the output cap). */
#include "templates/mustache.h"
#include "templates/mustache_csv.h"
#include "tests/testutil.h"

#include <stdlib.h>
#include <string.h>

#define COLS_MAX 8

static struct tpl_error err;
static struct tpl_buf out;

/* A header or a row: NULL-terminated strings. */
struct fields {
	const char *s[COLS_MAX + 1];
};

static size_t fields_count(const struct fields *f)
{
	size_t n = 0;

	while (n < COLS_MAX && f->s[n])
		n++;
	return n;
}

static void fields_lens(const struct fields *f, size_t n, size_t lens[COLS_MAX])
{
	for (size_t i = 0; i < n; i++)
		lens[i] = strlen(f->s[i]);
}

static struct tpl *compile(const char *tmpl)
{
	return tpl_compile("t.mustache", tmpl, strlen(tmpl), NULL, &err);
}

/* The output as a string, or the error message. */
static const char *output_or_error(int rc)
{
	static char text[4096];

	if (rc < 0)
		return err.msg;
	snprintf(text, sizeof text, "%.*s", (int)out.len, out.data ? out.data : "");
	return text;
}

/* Columns with their lengths: a header or a row. */
struct cols {
	const char *const *s;
	const size_t *lens;
	size_t n;
};

/* The adapter without find(): the render asks get, kind and text in turn. */
static struct tpl_data_ops three_calls;

/* Binds bound_for's symbols to header, renders t with row into buf (which
 * is not emptied first). Returns tpl_render's result, or -2 when binding
 * failed. Every render is made a second time through get, kind and text,
 * which must give the same bytes (or the same error) as find. */
static int bind_render(const struct tpl *bound_for, const struct tpl *t, struct cols header,
		       struct cols row, enum tpl_escape esc, unsigned flags, struct tpl_buf *buf)
{
	struct tpl_csv_binding b;
	struct tpl_buf again;
	struct tpl_error err_again;

	if (tpl_csv_bind(&b, bound_for, header.s, header.lens, header.n) != 0)
		return -2;
	struct tpl_csv_row r = { row.s, row.lens, row.n };
	struct tpl_data d = tpl_csv_data(&r, &b);
	size_t start = buf->len;
	int rc = tpl_render(t, &d, esc, flags, buf, &err);

	three_calls = tpl_csv_ops;
	three_calls.find = NULL;
	d.ops = &three_calls;
	/* again starts as buf did, so that the same cap applies */
	tpl_buf_init(&again, buf->max);
	if (start) {
		if (!(again.data = malloc(start))) {
			T_FAIL("out of memory");
			tpl_csv_binding_free(&b);
			return rc;
		}
		memcpy(again.data, buf->data, start);
		again.len = again.cap = start;
	}
	int rc_again = tpl_render(t, &d, esc, flags, &again, &err_again);
	if (rc_again != rc)
		T_FAIL("without find: rc %d, with find %d", rc_again, rc);
	else if (rc == 0 && (again.len != buf->len ||
			     (again.len && memcmp(again.data, buf->data, again.len) != 0)))
		T_FAIL("without find: \"%.*s\", with find \"%.*s\"", (int)again.len,
		       again.data ? again.data : "", (int)buf->len, buf->data ? buf->data : "");
	else if (rc != 0)
		T_EQ_STR(err_again.msg, err.msg);
	tpl_buf_free(&again);
	tpl_csv_binding_free(&b);
	return rc;
}

/* Renders t with row under a binding to header. Returns the output, or
 * the error message. */
static const char *render_bound(const struct tpl *t, const struct fields *header,
				const struct fields *row, enum tpl_escape esc, unsigned flags)
{
	size_t nh = fields_count(header), nr = fields_count(row);
	size_t hlens[COLS_MAX], rlens[COLS_MAX];

	fields_lens(header, nh, hlens);
	fields_lens(row, nr, rlens);
	out.len = 0;
	int rc = bind_render(t, t, (struct cols){ header->s, hlens, nh }, (struct cols){ row->s, rlens, nr },
			     esc, flags, &out);
	return rc == -2 ? "(tpl_csv_bind failed)" : output_or_error(rc);
}

/* Compiles tmpl, renders it with row under header. Returns the output, or
 * the (compile or render) error message. */
static const char *render_csv(const char *tmpl, const struct fields *header, const struct fields *row,
			      enum tpl_escape esc, unsigned flags)
{
	struct tpl *t = compile(tmpl);

	if (!t)
		return err.msg;
	const char *s = render_bound(t, header, row, esc, flags);
	tpl_free(t);
	return s;
}

/* ---- one row rendered: a table ---- */

struct csv_case {
	const char *what;
	const char *tmpl;
	struct fields header, row;
	enum tpl_escape esc;
	unsigned flags;
	const char *want;
};

#define NONE TPL_ESCAPE_NONE
#define HTML TPL_ESCAPE_HTML
#define STRICT TPL_RENDER_STRICT

static const struct csv_case csv_cases[] = {
	/* binding: names find their columns wherever they are */
	{ "values by name", "Hi {{name}} <{{email}}>",
	  { { "email", "name" } }, { { "ann@x.test", "Ann" } }, NONE, STRICT, "Hi Ann <ann@x.test>" },
	{ "a name used twice", "{{a}}-{{b}}-{{a}}",
	  { { "b", "a" } }, { { "2", "1" } }, NONE, STRICT, "1-2-1" },
	{ "extra columns ignored", "{{name}}",
	  { { "id", "name", "zip", "notes" } }, { { "7", "Kim", "12345", "x,y" } }, NONE, STRICT, "Kim" },
	{ "header names match exactly (case)", "[{{Name}}][{{name}}]",
	  { { "name" } }, { { "lower" } }, NONE, 0, "[][lower]" },
	{ "a column whose name is a prefix does not match", "[{{name}}]",
	  { { "nam", "names", "name " } }, { { "1", "2", "3" } }, NONE, 0, "[]" },
	{ "two columns of one name: the first wins", "{{x}}",
	  { { "x", "y", "x" } }, { { "first", "y", "second" } }, NONE, STRICT, "first" },
	{ "an empty value", "[{{v}}]", { { "v" } }, { { "" } }, NONE, STRICT, "[]" },

	/* missing columns: empty, or an error in strict mode */
	{ "a missing column renders empty", "Dear {{name}}{{title}}!",
	  { { "name" } }, { { "Ann" } }, NONE, 0, "Dear Ann!" },
	{ "strict: a missing column names file:line:col", "Dear {{name}},\n  {{title}}!",
	  { { "name" } }, { { "Ann" } }, NONE, STRICT, "t.mustache:2:3: no value for 'title'" },
	{ "strict: a raw missing column", "x {{{gone}}}",
	  { { "name" } }, { { "Ann" } }, HTML, STRICT, "t.mustache:1:3: no value for 'gone'" },
	{ "strict: a section over a missing column is false, not an error",
	  "a{{#gone}}X{{/gone}}{{^gone}}b{{/gone}}", { { "name" } }, { { "Ann" } }, NONE, STRICT, "ab" },
	{ "a row shorter than the header: the missing field is missing", "[{{a}}|{{c}}]",
	  { { "a", "b", "c" } }, { { "1" } }, NONE, 0, "[1|]" },
	{ "strict: a row shorter than the header", "{{a}}{{c}}",
	  { { "a", "b", "c" } }, { { "1" } }, NONE, STRICT, "t.mustache:1:6: no value for 'c'" },
	{ "no columns at all", "[{{a}}]", { { NULL } }, { { NULL } }, NONE, 0, "[]" },
	{ "a program without names", "plain text", { { "a" } }, { { "1" } }, NONE, STRICT,
	  "plain text" },

	/* values as they are: quoted fields, UTF-8, line breaks */
	{ "a field that was quoted in the file", "{{who}}",
	  { { "who" } }, { { "Doe, \"JJ\" Jane" } }, NONE, STRICT, "Doe, \"JJ\" Jane" },
	{ "a field with a line break", "<{{note}}>",
	  { { "note" } }, { { "line 1\r\nline 2" } }, NONE, STRICT, "<line 1\r\nline 2>" },
	{ "UTF-8 bytes untouched", "{{name}} {{city}}",
	  { { "name", "city" } }, { { "Zo\xc3\xab", "\xe6\x9d\xb1\xe4\xba\xac \xf0\x9f\x98\x80" } },
	  HTML, STRICT, "Zo\xc3\xab \xe6\x9d\xb1\xe4\xba\xac \xf0\x9f\x98\x80" },
	{ "UTF-8 column names", "{{pr\xc3\xa9nom}}",
	  { { "pr\xc3\xa9nom" } }, { { "L\xc3\xa9" "a" } }, NONE, STRICT, "L\xc3\xa9" "a" },

	/* escaping: {{x}} in html, raw otherwise */
	{ "html: {{x}} escaped", "{{x}}",
	  { { "x" } }, { { "<b>Tom & Jerry's \"show\"</b>" } }, HTML, STRICT,
	  "&lt;b&gt;Tom &amp; Jerry&#39;s &quot;show&quot;&lt;/b&gt;" },
	{ "html: {{{x}}} raw", "{{{x}}}",
	  { { "x" } }, { { "<b>Tom & Jerry's</b>" } }, HTML, STRICT, "<b>Tom & Jerry's</b>" },
	{ "html: {{&x}} raw", "{{& x}}",
	  { { "x" } }, { { "a<b" } }, HTML, STRICT, "a<b" },
	{ "text: {{x}} raw", "{{x}}",
	  { { "x" } }, { { "<b>&amp;</b>" } }, NONE, STRICT, "<b>&amp;</b>" },
	{ "html: a quoted CSV value escaped", "<a title=\"{{t}}\">",
	  { { "t" } }, { { "say \"hi\", then go" } }, HTML, STRICT,
	  "<a title=\"say &quot;hi&quot;, then go\">" },

	/* sections over a column: a non-empty value is true, once */
	{ "section: a value is true", "{{#plan}}plan {{plan}}{{/plan}}",
	  { { "plan" } }, { { "pro" } }, NONE, STRICT, "plan pro" },
	{ "section: an empty value is false", "[{{#plan}}plan {{plan}}{{/plan}}]",
	  { { "plan" } }, { { "" } }, NONE, STRICT, "[]" },
	{ "section: \"0\" is true", "{{#n}}n={{n}}{{/n}}", { { "n" } }, { { "0" } }, NONE, STRICT,
	  "n=0" },
	{ "section: \"false\" is a true string", "{{#b}}yes{{/b}}", { { "b" } }, { { "false" } }, NONE,
	  STRICT, "yes" },
	{ "inverted: an empty value", "{{^plan}}no plan{{/plan}}",
	  { { "plan" } }, { { "" } }, NONE, STRICT, "no plan" },
	{ "inverted: a value", "[{{^plan}}no plan{{/plan}}]",
	  { { "plan" } }, { { "pro" } }, NONE, STRICT, "[]" },
	{ "section: {{.}} is the value", "{{#plan}}<{{.}}>{{/plan}}",
	  { { "plan" } }, { { "a&b" } }, HTML, STRICT, "<a&amp;b>" },
	{ "section: other columns still found inside", "{{#plan}}{{name}} has {{plan}}{{/plan}}",
	  { { "plan", "name" } }, { { "pro", "Ann" } }, NONE, STRICT, "Ann has pro" },
	{ "nested sections over two columns", "{{#a}}{{#b}}{{a}}{{b}}{{/b}}{{/a}}",
	  { { "a", "b" } }, { { "1", "2" } }, NONE, STRICT, "12" },
	{ "a value has no members", "[{{plan.name}}]",
	  { { "plan" } }, { { "pro" } }, NONE, 0, "[]" },
	{ "strict: a value has no members", "{{plan.name}}",
	  { { "plan" } }, { { "pro" } }, NONE, STRICT, "t.mustache:1:1: no value for 'plan.name'" },

	/* dotted names read dotted column names */
	{ "dotted: a dotted header", "{{customer.name}} <{{customer.email}}>",
	  { { "customer.email", "id", "customer.name" } }, { { "a@x.test", "7", "Ann" } }, NONE, STRICT,
	  "Ann <a@x.test>" },
	{ "dotted: three levels", "{{a.b.c}}|{{a.b.d}}|{{a.e}}",
	  { { "a.e", "a.b.d", "a.b.c" } }, { { "E", "D", "C" } }, NONE, STRICT, "C|D|E" },
	{ "dotted: a section over the prefix", "{{#customer}}{{name}} ({{plan}}){{/customer}}",
	  { { "plan", "customer.name" } }, { { "pro", "Ann" } }, NONE, STRICT, "Ann (pro)" },
	{ "dotted: the prefix is a true object", "[{{^customer}}none{{/customer}}]{{customer.name}}",
	  { { "customer.name" } }, { { "" } }, NONE, STRICT, "[]" },
	{ "dotted: a prefix interpolates as nothing", "[{{customer}}]{{customer.name}}",
	  { { "customer.name" } }, { { "Ann" } }, NONE, STRICT, "[]Ann" },
	{ "dotted: a prefix whose members the program never names is missing", "[{{customer}}]",
	  { { "customer.name" } }, { { "Ann" } }, NONE, STRICT, "t.mustache:1:2: no value for 'customer'" },
	{ "dotted: a column that is also a prefix", "{{customer}}/{{customer.name}}",
	  { { "customer.name", "customer" } }, { { "Ann", "ACME" } }, NONE, STRICT, "ACME/Ann" },
	{ "dotted: a section over a dotted value", "{{#c.vip}}VIP {{c.vip}}{{/c.vip}}{{^c.vip}}-{{/c.vip}}",
	  { { "c.vip" } }, { { "gold" } }, NONE, STRICT, "VIP gold" },
	{ "dotted: an empty dotted value is false", "{{#c.vip}}VIP{{/c.vip}}{{^c.vip}}-{{/c.vip}}",
	  { { "c.vip" } }, { { "" } }, NONE, STRICT, "-" },
	{ "dotted: escaped in html, raw in a triple mustache", "{{c.n}} {{{c.n}}}",
	  { { "c.n" } }, { { "<&>" } }, HTML, STRICT, "&lt;&amp;&gt; <&>" },
	{ "dotted: two columns of one dotted name: the first wins", "{{c.n}}",
	  { { "c.n", "c.n" } }, { { "1", "2" } }, NONE, STRICT, "1" },
	{ "dotted: strict, a missing member", "{{customer.name}}{{customer.phone}}",
	  { { "customer.name" } }, { { "Ann" } }, NONE, STRICT,
	  "t.mustache:1:18: no value for 'customer.phone'" },
	{ "dotted: a part the program never uses binds nothing", "[{{customer.name}}]",
	  { { "customer.x.name", "customer.namex" } }, { { "1", "2" } }, NONE, 0, "[]" },
	{ "dotted: empty parts bind nothing", "[{{name}}{{a.name}}]",
	  { { ".name", "name.", "a..name", "." } }, { { "1", "2", "3", "4" } }, NONE, 0, "[]" },
	{ "dotted: a short row misses the dotted field", "[{{a}}|{{c.d}}]",
	  { { "a", "c.d" } }, { { "1" } }, NONE, 0, "[1|]" },
};

static void test_csv_cases(void)
{
	for (size_t i = 0; i < sizeof csv_cases / sizeof csv_cases[0]; i++) {
		const struct csv_case *c = &csv_cases[i];
		const char *got = render_csv(c->tmpl, &c->header, &c->row, c->esc, c->flags);
		t_checks++;
		if (strcmp(got, c->want) != 0)
			T_FAIL("%s: got \"%s\", want \"%s\"", c->what, got, c->want);
	}
}

/* ---- one binding, many rows ---- */

static void test_binding_reused(void)
{
	struct tpl *t = compile("{{first}} {{last}}{{#vip}} (VIP){{/vip}}");
	static const char *const header[] = { "last", "vip", "first" };
	static const size_t hlens[] = { 4, 3, 5 };
	static const char *const rows[][3] = {
		{ "Lee", "", "Kim" },
		{ "Doe", "yes", "Jo" },
		{ "O'Neil", "", "Sam" },
	};
	static const char *const want[] = { "Kim Lee", "Jo Doe (VIP)", "Sam O'Neil" };
	struct tpl_csv_binding b;

	T_TRUE(t != NULL);
	if (!t)
		return;
	T_EQ_INT(tpl_csv_bind(&b, t, header, hlens, 3), 0);
	for (size_t i = 0; i < 3; i++) {
		size_t lens[3];
		for (size_t k = 0; k < 3; k++)
			lens[k] = strlen(rows[i][k]);
		struct tpl_csv_row r = { rows[i], lens, 3 };
		struct tpl_data d = tpl_csv_data(&r, &b);
		out.len = 0;
		T_EQ_INT(tpl_render(t, &d, TPL_ESCAPE_NONE, TPL_RENDER_STRICT, &out, &err), 0);
		T_EQ_STR(output_or_error(0), want[i]);
	}
	tpl_csv_binding_free(&b);
	tpl_csv_binding_free(&b);   /* twice is harmless */
	tpl_free(t);
}

/* Fields are lengths, not C strings: a value's bytes past its length are
 * not rendered, and a header name is compared by length. */
static void test_lengths_not_nul(void)
{
	struct tpl *t = compile("[{{id}}|{{name}}]");
	static const char *const header[] = { "identifier", "name" };
	static const size_t hlens[] = { 2, 4 };          /* "id", "name" */
	static const char *const row[] = { "42 and more", "Ann Example" };
	static const size_t lens[] = { 2, 3 };           /* "42", "Ann" */

	if (!t) {
		T_FAIL("compile: %s", err.msg);
		return;
	}
	out.len = 0;
	T_EQ_INT(bind_render(t, t, (struct cols){ header, hlens, 2 }, (struct cols){ row, lens, 2 },
			     TPL_ESCAPE_NONE, TPL_RENDER_STRICT, &out), 0);
	T_EQ_STR(output_or_error(0), "[42|Ann]");
	tpl_free(t);
}

/* A binding made for another program: names it does not cover are missing,
 * nothing is read out of bounds. */
static void test_binding_of_another_program(void)
{
	struct tpl *small = compile("{{a}}");
	struct tpl *big = compile("{{z}}{{y}}{{a}}");
	static const char *const header[] = { "a", "y", "z" };
	static const size_t hlens[] = { 1, 1, 1 };
	static const char *const row[] = { "A", "Y", "Z" };
	static const size_t lens[] = { 1, 1, 1 };

	if (small && big) {
		out.len = 0;
		T_EQ_INT(bind_render(small, big, (struct cols){ header, hlens, 3 },
				     (struct cols){ row, lens, 3 }, TPL_ESCAPE_NONE, TPL_RENDER_STRICT, &out),
			 -1);
		T_EQ_STR(err.msg, "t.mustache:1:6: no value for 'y'");
	} else {
		T_FAIL("compile: %s", err.msg);
	}
	tpl_free(small);
	tpl_free(big);
}

/* Many dotted columns under a few prefixes, the header in reverse order:
 * every name finds its own column (children laid out and searched by
 * symbol). */
#define MANY 60

static void test_many_dotted(void)
{
	static char names[MANY][16], values[MANY][16];
	const char *header[MANY], *row[MANY];
	size_t hlens[MANY], lens[MANY];
	char tmpl[MANY * 24], want[MANY * 8];
	size_t tl = 0, wl = 0;

	for (int i = 0; i < MANY; i++) {
		int col = MANY - 1 - i;
		snprintf(names[col], sizeof names[col], "g%d.f%d", i % 7, i);
		snprintf(values[col], sizeof values[col], "<%d>", i);
		tl += (size_t)snprintf(tmpl + tl, sizeof tmpl - tl, "{{g%d.f%d}}", i % 7, i);
		wl += (size_t)snprintf(want + wl, sizeof want - wl, "<%d>", i);
	}
	for (int i = 0; i < MANY; i++) {
		header[i] = names[i];
		hlens[i] = strlen(names[i]);
		row[i] = values[i];
		lens[i] = strlen(values[i]);
	}
	struct tpl *t = compile(tmpl);
	if (!t) {
		T_FAIL("compile: %s", err.msg);
		return;
	}
	out.len = 0;
	T_EQ_INT(bind_render(t, t, (struct cols){ header, hlens, MANY }, (struct cols){ row, lens, MANY },
			     TPL_ESCAPE_NONE, TPL_RENDER_STRICT, &out), 0);
	T_EQ_STR(output_or_error(0), want);
	tpl_free(t);
}

/* The output cap holds with CSV data, and a failed render leaves the
 * buffer as it was. */
static void test_output_cap(void)
{
	struct tpl *t = compile("{{v}}{{v}}");
	static const char *const header[] = { "v" };
	static const size_t hlens[] = { 1 };
	static const char *const row[] = { "0123456789" };
	static const size_t lens[] = { 10 };
	const struct cols h = { header, hlens, 1 }, r = { row, lens, 1 };
	struct tpl_buf small;

	if (!t) {
		T_FAIL("compile: %s", err.msg);
		return;
	}
	tpl_buf_init(&small, 25);
	T_EQ_INT(bind_render(t, t, h, r, TPL_ESCAPE_NONE, 0, &small), 0);
	T_EQ_MEM(small.data, small.len, "01234567890123456789", 20);
	T_EQ_INT(bind_render(t, t, h, r, TPL_ESCAPE_NONE, 0, &small), -1);
	T_EQ_STR(err.msg, "t.mustache: output larger than 25 bytes");
	T_EQ_INT(small.len, 20);
	tpl_buf_free(&small);
	tpl_free(t);
}

/* The kinds the adapter reports: the row is an object, a field a string,
 * never a list. */
static void test_kinds(void)
{
	static const char *const row[] = { "x" };
	static const size_t lens[] = { 1 };
	struct tpl_csv_row r = { row, lens, 1 };
	struct tpl *t = compile("{{a}}");
	static const char *const header[] = { "a" };
	struct tpl_csv_binding b;

	if (!t) {
		T_FAIL("compile: %s", err.msg);
		return;
	}
	T_EQ_INT(tpl_csv_bind(&b, t, header, lens, 1), 0);
	struct tpl_data d = tpl_csv_data(&r, &b);
	const struct tpl_data_ops *ops = d.ops;
	T_EQ_INT(ops->kind(d.ud, d.root), TPL_OBJECT);
	struct tpl_key k = { "a", 1, 0 };
	struct tpl_val v;
	T_EQ_INT(ops->get(d.ud, d.root, &k, &v), 1);
	T_EQ_INT(ops->kind(d.ud, v), TPL_STRING);
	char scratch[TPL_SCRATCH];
	size_t n = 0;
	const char *s = ops->text(d.ud, v, scratch, &n);
	T_EQ_MEM(s, n, "x", 1);
	T_EQ_INT(ops->list_len(d.ud, v), 0);
	/* a string has no members */
	struct tpl_val w;
	T_EQ_INT(ops->get(d.ud, v, &k, &w), 0);
	/* find: the same value, its kind and its text in one call */
	struct tpl_found f;
	T_EQ_INT(ops->find(d.ud, d.root, &k, &f), 1);
	T_TRUE(f.v.ptr == v.ptr && f.v.aux == v.aux);
	T_EQ_INT(f.kind, TPL_STRING);
	T_EQ_MEM(f.s, f.len, "x", 1);
	T_EQ_INT(ops->find(d.ud, v, &k, &f), 0);
	tpl_csv_binding_free(&b);
	tpl_free(t);
}

/* find() on the tree of dotted headers: a node without a column is an
 * object with no text, one with a column a string with its text; a name
 * that is no column, a column past the row's end and a symbol of no header
 * are not found. */
static void test_find(void)
{
	struct tpl *t = compile("{{a.b}}{{a.c}}{{a}}{{d}}{{e}}{{#a}}{{b}}{{/a}}");
	static const char *const header[] = { "a.b", "a.c", "e", "d" };
	static const size_t hlens[] = { 3, 3, 1, 1 };
	static const char *const row[] = { "AB", "", "E" };   /* d's column is past the end */
	static const size_t rlens[] = { 2, 0, 1 };
	struct tpl_csv_row r = { row, rlens, 3 };
	struct tpl_csv_binding b;
	size_t len;

	if (!t) {
		T_FAIL("compile: %s", err.msg);
		return;
	}
	T_EQ_INT(tpl_csv_bind(&b, t, header, hlens, 4), 0);
	struct tpl_data d = tpl_csv_data(&r, &b);
	struct tpl_key key[5];
	T_EQ_INT(tpl_symbol_count(t), 5);
	for (uint32_t i = 0; i < 5 && i < tpl_symbol_count(t); i++) {
		key[i].s = tpl_symbol(t, i, &len);
		key[i].len = (uint32_t)len;
		key[i].sym = i;
	}
	/* symbols in order of first use: a, b, c, d, e */
	T_EQ_MEM(key[0].s, key[0].len, "a", 1);
	T_EQ_MEM(key[3].s, key[3].len, "d", 1);
	struct tpl_found a, f;
	T_EQ_INT(tpl_csv_ops.find(d.ud, d.root, &key[0], &a), 1);
	T_EQ_INT(a.kind, TPL_OBJECT);
	T_TRUE(a.s == NULL);
	T_EQ_INT(tpl_csv_ops.find(d.ud, a.v, &key[1], &f), 1);
	T_EQ_INT(f.kind, TPL_STRING);
	T_EQ_MEM(f.s, f.len, "AB", 2);
	T_EQ_INT(tpl_csv_ops.find(d.ud, a.v, &key[2], &f), 1);   /* an empty column */
	T_EQ_INT(f.kind, TPL_STRING);
	T_EQ_MEM(f.s, f.len, "", 0);
	T_EQ_INT(tpl_csv_ops.find(d.ud, d.root, &key[1], &f), 0);   /* b only under a */
	T_EQ_INT(tpl_csv_ops.find(d.ud, d.root, &key[3], &f), 0);   /* past the row */
	T_EQ_INT(tpl_csv_ops.find(d.ud, d.root, &key[4], &f), 1);
	T_EQ_MEM(f.s, f.len, "E", 1);
	struct tpl_key other = { "zz", 2, 99 };   /* no symbol of the program */
	T_EQ_INT(tpl_csv_ops.find(d.ud, d.root, &other, &f), 0);
	T_EQ_INT(tpl_csv_ops.find(d.ud, f.v, &key[0], &f), 0);   /* a string has no members */
	tpl_csv_binding_free(&b);
	tpl_free(t);
}

int main(void)
{
	tpl_buf_init(&out, 0);
	test_csv_cases();
	test_binding_reused();
	test_lengths_not_nul();
	test_many_dotted();
	test_binding_of_another_program();
	test_output_cap();
	test_kinds();
	test_find();
	tpl_buf_free(&out);
	return t_done("test_mustache_csv");
}
