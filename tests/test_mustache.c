/* Tests for templates/mustache: compile errors with their exact place,
 * strict rendering, escape modes, the choices the spec leaves open, bounds
 * (output cap, nesting, partial count, depth and size), the directory
 * loader's folder jail, a second data adapter bound by symbol, and the
 * scanner against a guard page. The spec itself runs in test_mustache_spec. */
#include "templates/mustache.h"
#include "templates/mustache_json.h"
#include "templates/mustache_csv.h"
#include "templates/mustache_scan.h"
#include "tests/testutil.h"
#include "tests/guard.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- helpers ---- */

/* Partials from a table of name/text pairs, counting the loads. */
struct table_loader {
	const char *const (*pairs)[2];
	int loads;
};

static int table_load(void *ud, const char *name, struct tpl_partial *out, char *err, size_t errlen)
{
	struct table_loader *tl = ud;

	tl->loads++;
	for (size_t i = 0; tl->pairs && tl->pairs[i][0]; i++) {
		if (strcmp(tl->pairs[i][0], name) != 0)
			continue;
		out->text = strdup(tl->pairs[i][1]);
		out->len = strlen(tl->pairs[i][1]);
		snprintf(out->file, sizeof out->file, "%s.mustache", name);
		return out->text ? 0 : -1;
	}
	return TPL_NOT_FOUND;
}

static struct tpl_error err;
static struct tpl_buf out;

/* Renders t with vars (JSON) into out; returns the output as a string, or
 * the error message. */
static const char *render_with(const struct tpl *t, const char *vars, enum tpl_escape esc,
			       unsigned flags)
{
	json_t *data = json_loads(vars, JSON_DECODE_ANY, NULL);

	if (!data)
		return "(bad json in the test)";
	struct tpl_data d = tpl_json_data(data);
	out.len = 0;
	int rc = tpl_render(t, &d, esc, flags, &out, &err);
	/* the same through get, kind and text (no find): the same bytes or error */
	struct tpl_data_ops three_calls = tpl_json_ops;
	struct tpl_buf again;
	struct tpl_error err_again;
	three_calls.find = NULL;
	d.ops = &three_calls;
	tpl_buf_init(&again, out.max);
	int rc_again = tpl_render(t, &d, esc, flags, &again, &err_again);
	if (rc_again != rc)
		T_FAIL("without find: rc %d, with find %d", rc_again, rc);
	else if (rc < 0)
		T_EQ_STR(err_again.msg, err.msg);
	else
		T_EQ_MEM(again.data ? again.data : "", again.len, out.data ? out.data : "", out.len);
	tpl_buf_free(&again);
	json_decref(data);
	if (rc < 0)
		return err.msg;
	/* a string for the checks: the terminating NUL is not output */
	static char text[8192];
	snprintf(text, sizeof text, "%.*s", (int)out.len, out.data ? out.data : "");
	return text;
}

static struct tpl *compile_with(const char *tmpl, const char *const (*partials)[2])
{
	struct table_loader tl = { partials, 0 };
	struct tpl_loader loader = { table_load, &tl };
	struct tpl_opts o = { .loader = &loader };

	return tpl_compile("t.mustache", tmpl, strlen(tmpl), &o, &err);
}

/* Compiles and renders; returns the output or the (compile or render) error. */
static const char *render(const char *tmpl, const char *vars, enum tpl_escape esc, unsigned flags,
			  const char *const (*partials)[2])
{
	struct tpl *t = compile_with(tmpl, partials);

	if (!t)
		return err.msg;
	const char *s = render_with(t, vars, esc, flags);
	tpl_free(t);
	return s;
}

static const char *html(const char *tmpl, const char *vars)
{
	return render(tmpl, vars, TPL_ESCAPE_HTML, 0, NULL);
}

/* ---- compile errors: message, line and column ---- */

struct error_case {
	const char *tmpl;
	unsigned line, col;
	const char *msg;
};

static const struct error_case error_cases[] = {
	{ "a\n  {{#list}}\nb", 2, 3, "t.mustache:2:3: unclosed section 'list'" },
	{ "{{^empty}}x", 1, 1, "t.mustache:1:1: unclosed inverted section 'empty'" },
	{ "{{#a}}\n{{#b}}\n{{/b}}", 1, 1, "t.mustache:1:1: unclosed section 'a'" },
	{ "{{#a}}\n  {{#b}}\n  {{/a}}\n{{/b}}", 3, 3,
	  "t.mustache:3:3: close tag 'a' does not match section 'b' opened at 2:3" },
	{ "x {{/a}}", 1, 3, "t.mustache:1:3: close tag 'a' without an open section" },
	{ "ab\ncd {{name", 2, 4, "t.mustache:2:4: unclosed tag" },
	{ "{{{name}}", 1, 1,
	  "t.mustache:1:1: a triple mustache must end with '}' before its closing delimiter" },
	{ "{{{name", 1, 1, "t.mustache:1:1: unclosed tag" },
	{ "x\n{{=<% %>}}", 2, 1,
	  "t.mustache:2:1: a set-delimiter tag must end with '=' before its closing delimiter" },
	{ "{{! no end", 1, 1, "t.mustache:1:1: unclosed tag" },
	{ "{{=<% %>=}}\n<%name}}", 2, 1, "t.mustache:2:1: unclosed tag" },
	{ "line\n  {{=<% =}}", 2, 3,
	  "t.mustache:2:3: bad set-delimiter tag: a set-delimiter tag takes two delimiters" },
	{ "{{=a b c=}}", 1, 1,
	  "t.mustache:1:1: bad set-delimiter tag: a set-delimiter tag takes two delimiters" },
	{ "{{=a= b=}}", 1, 1, "t.mustache:1:1: bad set-delimiter tag: a delimiter may not contain '='" },
	{ "{{=<<<<<<<<<<<<<<<<< >>=}}", 1, 1, "t.mustache:1:1: bad set-delimiter tag: delimiter too long" },
	{ "x{{}}", 1, 2, "t.mustache:1:2: empty tag" },
	{ "{{#}}{{/}}", 1, 1, "t.mustache:1:1: empty tag" },
	{ "{{first name}}", 1, 1, "t.mustache:1:1: tag name 'first name' holds whitespace" },
	{ "{{a..b}}", 1, 1, "t.mustache:1:1: bad name 'a..b'" },
	{ "{{#.a}}{{/.a}}", 1, 1, "t.mustache:1:1: bad name '.a'" },
	{ "{{a.}}", 1, 1, "t.mustache:1:1: bad name 'a.'" },
	{ "x\n {{> footer}}", 2, 2, "t.mustache:2:2: missing partial 'footer'" },
	{ "{{<layout}}{{/layout}}", 1, 1, "t.mustache:1:1: missing partial 'layout'" },
	{ "{{>* }}", 1, 1, "t.mustache:1:1: empty tag" },
	{ "{{>*a b}}", 1, 1, "t.mustache:1:1: tag name 'a b' holds whitespace" },
	{ "{{<*a}}{{/a}}", 1, 8, "t.mustache:1:8: close tag 'a' does not match parent '*a' opened at 1:1" },
	{ "{{<base}}\n  {{name}}\n{{/base}}", 2, 3,
	  "t.mustache:2:3: only blocks may appear inside parent 'base'" },
	{ "{{<base}}{{#s}}{{/s}}{{/base}}", 1, 10,
	  "t.mustache:1:10: only blocks may appear inside parent 'base'" },
	{ "{{<base}}{{$b}}x{{/base}}", 1, 17,
	  "t.mustache:1:17: close tag 'base' does not match block 'b' opened at 1:10" },
	{ "{{<base}}\n{{$b}}x{{/b}}", 1, 1, "t.mustache:1:1: unclosed parent 'base'" },
	{ "\r\n{{$b}}\r\nx", 2, 1, "t.mustache:2:1: unclosed block 'b'" },
	/* lines counted across a multi-line comment */
	{ "{{!\n\n}}\n   {{#x}}", 4, 4, "t.mustache:4:4: unclosed section 'x'" },
};

static void test_errors(void)
{
	static const char *const base[][2] = { { "base", "{{$b}}{{/b}}" }, { NULL, NULL } };

	for (size_t i = 0; i < sizeof error_cases / sizeof error_cases[0]; i++) {
		const struct error_case *c = &error_cases[i];
		struct tpl *t = compile_with(c->tmpl, base);
		T_TRUE(t == NULL);
		tpl_free(t);
		if (t)
			continue;
		T_EQ_STR(err.msg, c->msg);
		T_EQ_STR(err.file, "t.mustache");
		T_EQ_INT(err.line, c->line);
		T_EQ_INT(err.col, c->col);
	}
}

/* An error in a partial names the partial's file; a missing partial is
 * named where the tag that wants it is. */
static void test_errors_in_partials(void)
{
	static const char *const parts[][2] = {
		{ "header", "<h1>\n{{#title}}{{title}}\n" },
		{ "footer", "ok\n  {{> missing}}\n" },
		{ NULL, NULL },
	};

	T_EQ_STR(render("{{>header}}", "{}", TPL_ESCAPE_HTML, 0, parts),
		 "header.mustache:2:1: unclosed section 'title'");
	T_EQ_STR(render("a\n{{>footer}}", "{}", TPL_ESCAPE_HTML, 0, parts),
		 "footer.mustache:2:3: missing partial 'missing'");
}

/* The spec's choice for missing partials, on request. */
static void test_missing_partial_empty(void)
{
	const char *tmpl = "[{{>nothing}}]\n  {{>nothing}}\n[{{<none}}{{$b}}x{{/b}}{{/none}}]";
	struct tpl_opts o = { .missing_partial_empty = 1 };
	struct tpl *t = tpl_compile("t", tmpl, strlen(tmpl), &o, &err);

	T_TRUE(t != NULL);
	if (t)
		T_EQ_STR(render_with(t, "{}", TPL_ESCAPE_HTML, 0), "[]\n[]");
	tpl_free(t);
}

/* ---- rendering ---- */

static void test_escape_modes(void)
{
	const char *vars = "{\"v\": \"<a href=\\\"x\\\">Tom & Jerry's</a>\"}";

	T_EQ_STR(render("{{v}}", vars, TPL_ESCAPE_HTML, 0, NULL),
		 "&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&#39;s&lt;/a&gt;");
	T_EQ_STR(render("{{{v}}}|{{&v}}", vars, TPL_ESCAPE_HTML, 0, NULL),
		 "<a href=\"x\">Tom & Jerry's</a>|<a href=\"x\">Tom & Jerry's</a>");
	/* text/plain: nothing is escaped, whatever the tag */
	T_EQ_STR(render("{{v}}|{{{v}}}|{{& v }}", vars, TPL_ESCAPE_NONE, 0, NULL),
		 "<a href=\"x\">Tom & Jerry's</a>|<a href=\"x\">Tom & Jerry's</a>|"
		 "<a href=\"x\">Tom & Jerry's</a>");
	/* the template's own text is never escaped */
	T_EQ_STR(html("<b>&amp;</b>{{v}}", "{\"v\": \"\"}"), "<b>&amp;</b>");
	/* set delimiters keep the triple form */
	T_EQ_STR(html("{{=<% %>=}}<%v%> <%{v}%> <%&v%>", "{\"v\": \"<\"}"), "&lt; < <");

	/* embedded NUL bytes are copied, not cut */
	json_t *v = json_pack("{s:s%}", "v", "a\0b", (size_t)3);
	struct tpl *t = tpl_compile("t", "[{{v}}]", 7, NULL, &err);
	struct tpl_data d = tpl_json_data(v);
	out.len = 0;
	T_EQ_INT(tpl_render(t, &d, TPL_ESCAPE_HTML, 0, &out, &err), 0);
	T_EQ_MEM(out.data, out.len, "[a\0b]", 5);
	tpl_free(t);
	json_decref(v);
}

struct render_case {
	const char *tmpl;
	const char *vars;
	const char *want;
};

/* The choices the spec leaves to the implementation, and data shapes. */
static const struct render_case render_cases[] = {
	/* falsey: missing, null, false, [], "" */
	{ "{{#a}}yes{{/a}}{{^a}}no{{/a}}", "{}", "no" },
	{ "{{#a}}yes{{/a}}{{^a}}no{{/a}}", "{\"a\": null}", "no" },
	{ "{{#a}}yes{{/a}}{{^a}}no{{/a}}", "{\"a\": false}", "no" },
	{ "{{#a}}yes{{/a}}{{^a}}no{{/a}}", "{\"a\": []}", "no" },
	{ "{{#a}}yes{{/a}}{{^a}}no{{/a}}", "{\"a\": \"\"}", "no" },
	/* truthy: 0, "0", {}, " " */
	{ "{{#a}}yes{{/a}}{{^a}}no{{/a}}", "{\"a\": 0}", "yes" },
	{ "{{#a}}yes{{/a}}{{^a}}no{{/a}}", "{\"a\": \"0\"}", "yes" },
	{ "{{#a}}yes{{/a}}{{^a}}no{{/a}}", "{\"a\": {}}", "yes" },
	{ "{{#a}}[{{.}}]{{/a}}", "{\"a\": \" \"}", "[ ]" },
	/* what values print as */
	{ "{{t}} {{f}} {{n}} {{l}} {{o}}", "{\"t\": true, \"f\": false, \"n\": null, \"l\": [1], \"o\": {}}",
	  "true false   " },
	{ "{{i}} {{r}} {{big}} {{neg}}", "{\"i\": 42, \"r\": 1.210, \"big\": 1e21, \"neg\": -0.5}",
	  "42 1.21 1e+21 -0.5" },
	/* dotted names, lists, nesting, the implicit iterator */
	{ "{{user.address.city}}", "{\"user\": {\"address\": {\"city\": \"Oslo\"}}}", "Oslo" },
	{ "{{user.missing.city}}|{{user.name.x}}", "{\"user\": {\"name\": \"n\"}}", "|" },
	{ "{{#items}}{{name}}:{{price}}{{^last}}, {{/last}}{{/items}}",
	  "{\"items\": [{\"name\": \"a\", \"price\": 1}, {\"name\": \"b\", \"price\": 2, \"last\": true}]}",
	  "a:1, b:2" },
	{ "{{#l}}{{#.}}{{.}}{{/.}};{{/l}}", "{\"l\": [[1, 2], [], [3]]}", "12;;3;" },
	{ "{{#o}}{{a}}{{b}}{{/o}}", "{\"o\": {\"a\": \"in\"}, \"b\": \"out\"}", "inout" },
	/* root names are memoised per render: inner contexts still shadow them,
	 * and a miss at the root is remembered as a miss */
	{ "{{a}}{{#o}}{{a}}{{/o}}{{a}}", "{\"a\": \"out\", \"o\": {\"a\": \"in\"}}", "outinout" },
	{ "{{x}}{{#o}}{{x}}{{/o}}{{x}}", "{\"o\": {\"x\": 1}}", "1" },
	{ "{{#l}}{{v}}{{/l}}{{v}}", "{\"v\": \"r\", \"l\": [{\"v\": 1}, {}, {\"v\": 2}]}", "1r2r" },
	/* a root that is not an object */
	{ "{{.}}|{{x}}", "\"top\"", "top|" },
	{ "{{#.}}<{{.}}>{{/.}}", "[\"a\", \"b\"]", "<a><b>" },
};

static void test_render_cases(void)
{
	for (size_t i = 0; i < sizeof render_cases / sizeof render_cases[0]; i++) {
		const struct render_case *c = &render_cases[i];
		const char *got = html(c->tmpl, c->vars);
		if (strcmp(got, c->want) != 0)
			T_FAIL("case %zu %s: got \"%s\", want \"%s\"", i, c->tmpl, got, c->want);
		t_checks++;
	}
}

static const char *const layout_partials[][2] = {
	{ "layout", "<html>\n  <body>\n    {{$content}}\n    default\n    {{/content}}\n  </body>\n</html>\n" },
	{ "card", "[{{title}}]\n{{#more}}\n  {{>card}}\n{{/more}}\n" },
	{ "list", "<ul>\n  {{>item}}\n</ul>\n" },
	{ "item", "<li>{{name}}</li>\n{{#sub}}\n  {{>item}}\n{{/sub}}\n" },
	{ "inline", "a\nb" },
	{ "wrap", "  {{>inline}} {{>inline}}\n" },
	{ "frame", "({{$a}}frame{{/a}})" },
	{ "me", "{{>me}}" },
	{ "lines", "{{>word}}\nnext\n" },
	{ "word", "w" },
	{ NULL, NULL },
};

/* Partials and inheritance beyond the spec's cases. */
static void test_partials_and_layouts(void)
{
	const char *const (*p)[2] = layout_partials;

	/* a layout with a block, overridden on separate lines */
	T_EQ_STR(render("{{<layout}}\n{{$content}}\n<p>Hi {{name}}</p>\n<p>Bye</p>\n{{/content}}\n{{/layout}}\n",
			"{\"name\": \"Ann\"}", TPL_ESCAPE_HTML, 0, p),
		 "<html>\n  <body>\n    <p>Hi Ann</p>\n    <p>Bye</p>\n  </body>\n</html>\n");
	/* indentation accumulates through recursive standalone partials (the
	 * leaf says sub is null, or the lookup would find its parent's) */
	T_EQ_STR(render("{{>list}}", "{\"name\": \"a\", \"sub\": {\"name\": \"b\", \"sub\": {\"name\": \"c\", \"sub\": null}}}",
			TPL_ESCAPE_HTML, 0, p),
		 "<ul>\n  <li>a</li>\n    <li>b</li>\n      <li>c</li>\n</ul>\n");
	/* after a standalone partial the next line of its container is
	 * indented, even when the partial did not end its last line */
	T_EQ_STR(render("  {{>lines}}", "{}", TPL_ESCAPE_HTML, 0, p), "  w  next\n");
	/* a partial in the middle of a line is not indented by its container */
	T_EQ_STR(render("  {{>wrap}}", "{}", TPL_ESCAPE_HTML, 0, p), "    a\nb a\nb\n");
	/* an override that itself uses the same parent: rendered with the
	 * overrides in force where it was written, so it ends */
	T_EQ_STR(render("{{<frame}}{{$a}}<{{<frame}}{{$a}}in{{/a}}{{/frame}}>{{/a}}{{/frame}}", "{}",
			TPL_ESCAPE_HTML, 0, p),
		 "(<(in)>)");
	/* a partial that includes itself with no end stops at the depth bound */
	T_EQ_STR(render("x\n{{>me}}", "{}", TPL_ESCAPE_HTML, 0, p),
		 "me.mustache:1:1: nesting deeper than 100 (a partial that includes itself without end?)");
}

/* Each partial is loaded once, however often it is used, and rendering
 * needs no loader (the program holds everything). */
static void test_loaded_once(void)
{
	struct table_loader tl = { layout_partials, 0 };
	struct tpl_loader loader = { table_load, &tl };
	struct tpl_opts o = { .loader = &loader };
	const char *tmpl = "{{>card}}{{>card}}{{#x}}{{>card}}{{/x}}{{>item}}";
	struct tpl *t = tpl_compile("t", tmpl, strlen(tmpl), &o, &err);

	T_TRUE(t != NULL);
	T_EQ_INT(tl.loads, 2);
	if (t) {
		for (int i = 0; i < 3; i++)
			T_EQ_STR(render_with(t, "{\"title\": \"t\", \"more\": {\"title\": \"u\", \"more\": false}}",
					     TPL_ESCAPE_HTML, 0),
				 "[t]\n  [u]\n[t]\n  [u]\n<li></li>\n");
		T_EQ_INT(tl.loads, 2);
	}
	tpl_free(t);
}

/* Names past the memo (symbols 64 and up) are looked up each time. */
static void test_many_names(void)
{
	char tmpl[4096] = "", vars[2048] = "{", want[512] = "";

	for (int i = 0; i < 80; i++) {
		size_t n = strlen(tmpl);
		snprintf(tmpl + n, sizeof tmpl - n, "{{v%d}}{{#o}}{{v%d}}{{/o}}", i, i);
		n = strlen(vars);
		snprintf(vars + n, sizeof vars - n, "\"v%d\": %d, ", i, i % 10);
		n = strlen(want);
		snprintf(want + n, sizeof want - n, "%d%d", i % 10, i % 10);
	}
	strcat(vars, "\"o\": true}");
	struct tpl *t = compile_with(tmpl, NULL);
	T_TRUE(t != NULL);
	if (t) {
		T_EQ_INT(tpl_symbol_count(t), 81);
		T_EQ_STR(render_with(t, vars, TPL_ESCAPE_HTML, TPL_RENDER_STRICT), want);
	}
	tpl_free(t);
}

/* Dynamic names pick among the partials the program holds: named by a tag
 * or preloaded. */
static void test_dynamic_names(void)
{
	static const char *const parts[][2] = {
		{ "text", "{{content}}\n" }, { "image", "<img src=\"{{url}}\">\n" },
		{ "box", "[{{$in}}-{{/in}}]" }, { NULL, NULL },
	};
	static const char *const preload[] = { "text", "image", NULL };
	struct table_loader tl = { parts, 0 };
	struct tpl_loader loader = { table_load, &tl };
	struct tpl_opts o = { .loader = &loader, .preload = preload };
	const char *tmpl = "{{#items}}\n  {{>*kind}}\n{{/items}}\n{{<*frame}}{{$in}}{{x}}{{/in}}{{/*frame}}";
	struct tpl *t = tpl_compile("t.mustache", tmpl, strlen(tmpl), &o, &err);

	T_TRUE(t != NULL);
	if (!t)
		return;
	T_EQ_INT(tl.loads, 2);
	const char *items = "{\"items\": [{\"kind\": \"text\", \"content\": \"hi\"},"
			    " {\"kind\": \"image\", \"url\": \"a.png\"}], \"frame\": \"text\", \"content\": \"c\"";
	char vars[512];
	snprintf(vars, sizeof vars, "%s}", items);
	T_EQ_STR(render_with(t, vars, TPL_ESCAPE_HTML, TPL_RENDER_STRICT),
		 "  hi\n  <img src=\"a.png\">\nc\n");
	/* a name the program has no partial for: nothing, or an error when strict */
	snprintf(vars, sizeof vars, "{\"items\": [{\"kind\": \"video\"}], \"frame\": \"text\", \"content\": \"c\"}");
	T_EQ_STR(render_with(t, vars, TPL_ESCAPE_HTML, 0), "c\n");
	T_EQ_STR(render_with(t, vars, TPL_ESCAPE_HTML, TPL_RENDER_STRICT),
		 "t.mustache:2:3: no partial 'video' (the value of 'kind')");
	T_EQ_STR(render_with(t, "{\"items\": [{}]}", TPL_ESCAPE_HTML, TPL_RENDER_STRICT),
		 "t.mustache:2:3: no value for 'kind'");
	tpl_free(t);

	/* a dynamic parent takes the overrides of its tag pair */
	t = tpl_compile("t.mustache", "{{<*p}}{{$in}}{{x}}{{/in}}{{/*p}}{{>box}}", 41, &o, &err);
	T_TRUE(t != NULL);
	if (t)
		T_EQ_STR(render_with(t, "{\"p\": \"box\", \"x\": 1}", TPL_ESCAPE_HTML, 0), "[1][-]");
	tpl_free(t);

	/* preloading a partial that is not there fails like a missing one */
	static const char *const absent[] = { "text", "nowhere", NULL };
	o.preload = absent;
	t = tpl_compile("t.mustache", "x", 1, &o, &err);
	T_TRUE(t == NULL);
	T_EQ_STR(err.msg, "t.mustache: missing partial 'nowhere'");
	tpl_free(t);
}

/* ---- strict mode ---- */

static void test_strict(void)
{
	const char *tmpl = "Hello {{name}},\n{{#orders}}\n  #{{id}}: {{item.title}}\n{{/orders}}\n";
	struct tpl *t = compile_with(tmpl, NULL);

	T_TRUE(t != NULL);
	if (!t)
		return;
	const char *full = "{\"name\": \"Ann\", \"orders\": [{\"id\": 1, \"item\": {\"title\": \"pen\"}}]}";
	T_EQ_STR(render_with(t, full, TPL_ESCAPE_HTML, TPL_RENDER_STRICT), "Hello Ann,\n  #1: pen\n");

	/* a missing name: empty by default, an error naming it when strict */
	const char *partial = "{\"name\": \"Ann\", \"orders\": [{\"id\": 1, \"item\": {}}]}";
	T_EQ_STR(render_with(t, partial, TPL_ESCAPE_HTML, 0), "Hello Ann,\n  #1: \n");
	T_EQ_STR(render_with(t, partial, TPL_ESCAPE_HTML, TPL_RENDER_STRICT),
		 "t.mustache:3:12: no value for 'item.title'");
	T_EQ_STR(err.file, "t.mustache");
	T_EQ_INT(err.line, 3);
	T_EQ_INT(err.col, 12);
	T_EQ_STR(render_with(t, "{\"orders\": []}", TPL_ESCAPE_HTML, TPL_RENDER_STRICT),
		 "t.mustache:1:7: no value for 'name'");

	/* not fatal: the same program renders the next recipient */
	T_EQ_STR(render_with(t, full, TPL_ESCAPE_HTML, TPL_RENDER_STRICT), "Hello Ann,\n  #1: pen\n");

	/* a miss at the root is remembered as a miss, not as a value */
	struct tpl *twice = compile_with("{{^x}}-{{/x}}{{x}}", NULL);
	T_EQ_STR(render_with(twice, "{}", TPL_ESCAPE_HTML, TPL_RENDER_STRICT),
		 "t.mustache:1:14: no value for 'x'");
	tpl_free(twice);

	/* null is a value; a missing section name is false, strict or not */
	T_EQ_STR(render_with(t, "{\"name\": null}", TPL_ESCAPE_HTML, TPL_RENDER_STRICT), "Hello ,\n");
	tpl_free(t);

	/* a failed render leaves what the buffer held before it */
	struct tpl *kept = compile_with("kept", NULL);
	t = compile_with("{{x}}", NULL);
	json_t *empty = json_object();
	struct tpl_data d = tpl_json_data(empty);
	out.len = 0;
	T_EQ_INT(tpl_render(kept, &d, TPL_ESCAPE_HTML, TPL_RENDER_STRICT, &out, &err), 0);
	T_EQ_INT(tpl_render(t, &d, TPL_ESCAPE_HTML, TPL_RENDER_STRICT, &out, &err), -1);
	T_EQ_MEM(out.data, out.len, "kept", 4);
	T_EQ_STR(err.msg, "t.mustache:1:1: no value for 'x'");
	json_decref(empty);
	tpl_free(kept);
	tpl_free(t);

	/* the place of a missing name in a partial is the partial's */
	static const char *const parts[][2] = { { "sig", "--\n{{sender}}\n" }, { NULL, NULL } };
	T_EQ_STR(render("Hi\n{{>sig}}", "{}", TPL_ESCAPE_HTML, TPL_RENDER_STRICT, parts),
		 "sig.mustache:2:1: no value for 'sender'");
}

/* A source cut from a larger file (a header value, a part body) is
 * compiled with its place there: its first line starts at base_col, the
 * others at column 1, for compile errors, render errors and a partial's
 * reference alike. */
static void test_base_place(void)
{
	static const char *const parts[][2] = { { "sig", "{{sender}}" }, { NULL, NULL } };
	struct table_loader tl = { parts, 0 };
	struct tpl_loader loader = { table_load, &tl };
	struct tpl_opts o = { .loader = &loader, .base_line = 7, .base_col = 10 };
	const char *bad = "ab {{#x}}\n{{/y}}";

	T_TRUE(tpl_compile("m.tmpl", bad, strlen(bad), &o, &err) == NULL);
	T_EQ_STR(err.msg, "m.tmpl:8:1: close tag 'y' does not match section 'x' opened at 7:13");
	const char *first = "ab {{#x}";
	T_TRUE(tpl_compile("m.tmpl", first, strlen(first), &o, &err) == NULL);
	T_EQ_INT(err.line, 7);
	T_EQ_INT(err.col, 13);

	const char *ok = "Hi {{name}}\n  {{who}} {{>nope}}";
	T_TRUE(tpl_compile("m.tmpl", ok, strlen(ok), &o, &err) == NULL);
	T_EQ_STR(err.msg, "m.tmpl:8:11: missing partial 'nope'");

	const char *good = "Hi {{name}}\n  {{who}}\n{{>sig}}";
	struct tpl *t = tpl_compile("m.tmpl", good, strlen(good), &o, &err);
	T_TRUE(t != NULL);
	if (!t)
		return;
	T_EQ_STR(render_with(t, "{\"who\": 1, \"sender\": 2}", TPL_ESCAPE_NONE, TPL_RENDER_STRICT),
		 "m.tmpl:7:13: no value for 'name'");
	T_EQ_STR(render_with(t, "{\"name\": 1, \"sender\": 2}", TPL_ESCAPE_NONE, TPL_RENDER_STRICT),
		 "m.tmpl:8:3: no value for 'who'");
	T_EQ_STR(render_with(t, "{\"name\": 1, \"who\": 2}", TPL_ESCAPE_NONE, TPL_RENDER_STRICT),
		 "sig.mustache:1:1: no value for 'sender'");
	tpl_free(t);
}

/* ---- bounds ---- */

static void test_output_cap(void)
{
	struct tpl *t = compile_with("{{#l}}0123456789{{/l}}", NULL);
	json_t *ten = json_loads("{\"l\": [1,2,3,4,5,6,7,8,9,10]}", 0, NULL);
	struct tpl_data d = tpl_json_data(ten);
	struct tpl_buf small;

	tpl_buf_init(&small, 100);
	T_EQ_INT(tpl_render(t, &d, TPL_ESCAPE_HTML, 0, &small, &err), 0);
	T_EQ_INT(small.len, 100);
	T_EQ_INT(small.cap, 100);
	/* one byte more does not fit */
	small.len = 1;
	T_EQ_INT(tpl_render(t, &d, TPL_ESCAPE_HTML, 0, &small, &err), -1);
	T_EQ_STR(err.msg, "t.mustache: output larger than 100 bytes");
	T_EQ_INT(err.line, 0);
	T_EQ_INT(small.len, 1);

	/* a buffer large enough is reused as it is: no allocation per render */
	small.len = 0;
	char *before = small.data;
	for (int i = 0; i < 5; i++) {
		small.len = 0;
		T_EQ_INT(tpl_render(t, &d, TPL_ESCAPE_HTML, 0, &small, &err), 0);
	}
	T_TRUE(small.data == before);
	tpl_buf_free(&small);
	tpl_buf_free(NULL);
	json_decref(ten);
	tpl_free(t);
}

static void test_compile_bounds(void)
{
	/* nesting */
	char deep[2048] = "";
	for (int i = 0; i < TPL_NESTING_MAX + 1; i++)
		strcat(deep, "{{#a}}");
	struct tpl *t = compile_with(deep, NULL);
	T_TRUE(t == NULL);
	T_EQ_STR(err.msg, "t.mustache:1:385: sections nested deeper than 64");
	tpl_free(t);

	/* name length */
	char name[TPL_NAME_MAX + 8];
	snprintf(name, sizeof name, "{{%0*d}}", TPL_NAME_MAX + 1, 0);
	t = compile_with(name, NULL);
	T_EQ_STR(err.msg, "t.mustache:1:1: tag name longer than 255 bytes");
	tpl_free(t);

	/* source size, partial count and partial depth */
	static const char *const chain[][2] = {
		{ "p1", "{{>p2}}" }, { "p2", "{{>p3}}" }, { "p3", "{{>p4}}" }, { "p4", "end" },
		{ "big", "0123456789012345678901234567890123456789" },
		{ NULL, NULL },
	};
	struct table_loader tl = { chain, 0 };
	struct tpl_loader loader = { table_load, &tl };
	struct tpl_opts o = { .loader = &loader, .max_partial_depth = 3 };
	t = tpl_compile("t", "{{>p1}}", 7, &o, &err);
	T_EQ_STR(err.msg, "p3.mustache:1:1: partials nested deeper than 3 ('p4')");
	tpl_free(t);
	o.max_partial_depth = 4;
	t = tpl_compile("t", "{{>p1}}", 7, &o, &err);
	T_TRUE(t != NULL);
	if (t)
		T_EQ_STR(render_with(t, "{}", TPL_ESCAPE_NONE, 0), "end");
	tpl_free(t);

	o.max_partials = 2;
	t = tpl_compile("t", "{{>p4}}{{>big}}\n{{>p1}}", 23, &o, &err);
	T_EQ_STR(err.msg, "t:2:1: more than 2 partials");
	tpl_free(t);

	o.max_partials = 0;
	o.max_source = 40;
	t = tpl_compile("t", "01234567890123456789012345678901234567890", 41, &o, &err);
	T_EQ_STR(err.msg, "t: template larger than 40 bytes");
	tpl_free(t);
	t = tpl_compile("t", "{{>big}}", 8, &o, &err);
	T_EQ_STR(err.msg, "t:1:1: partial 'big' makes the template larger than 40 bytes");
	tpl_free(t);
}

/* A loader that fails, or hands back a length without text. */
static int broken_load(void *ud, const char *name, struct tpl_partial *p, char *why, size_t len)
{
	if (strcmp(name, "lying") == 0) {
		p->len = 10;
		return 0;
	}
	snprintf(why, len, "disk on fire");
	return -1;
}

static void test_broken_loader(void)
{
	struct tpl_loader loader = { broken_load, NULL };
	struct tpl_opts o = { .loader = &loader, .missing_partial_empty = 1 };
	struct tpl *t = tpl_compile("t", "a\n{{>lying}}", 12, &o, &err);

	T_TRUE(t == NULL);
	T_EQ_STR(err.msg, "t:2:1: partial 'lying': the loader gave a length without text");
	tpl_free(t);
	t = tpl_compile("t", "{{<any}}{{/any}}", 16, &o, &err);
	T_TRUE(t == NULL);
	T_EQ_STR(err.msg, "t:1:1: partial 'any': disk on fire");
	tpl_free(t);
}

/* ---- the directory loader ---- */

static char tmpdir[] = "/tmp/test_mustache.XXXXXX";

static void write_file(const char *rel, const char *text)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", tmpdir, rel);
	FILE *f = fopen(path, "w");
	if (!f || fputs(text, f) < 0 || fclose(f) != 0)
		T_FAIL("cannot write %s: %s", path, strerror(errno));
}

static void test_dir_loader(void)
{
	char path[512];

	if (!mkdtemp(tmpdir)) {
		T_FAIL("mkdtemp: %s", strerror(errno));
		return;
	}
	snprintf(path, sizeof path, "%s/mail", tmpdir);
	mkdir(path, 0700);
	snprintf(path, sizeof path, "%s/mail/parts", tmpdir);
	mkdir(path, 0700);
	write_file("secret.mustache", "SECRET");
	write_file("mail/welcome.html", "{{<parts/layout}}{{$body}}Hi {{name}}{{/body}}{{/parts/layout}}\n");
	write_file("mail/parts/layout.mustache", "<p>{{$body}}{{/body}}</p>{{>footer.txt}}");
	write_file("mail/footer.txt", "\n-- {{>parts/sig}}");
	write_file("mail/parts/sig.mustache", "volley");
	write_file("mail/escape.html", "{{>../secret}}");
	write_file("mail/absolute.html", "{{>/etc/passwd}}");
	write_file("mail/link.html", "x\n {{>outside}}");
	write_file("mail/missing.html", "x\n {{>nowhere}}");
	write_file("mail/huge.html", "{{>huge}}");
	char big[TPL_DEFAULT_MAX_FILE / 1024 + 2];
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	snprintf(path, sizeof path, "%s/mail/huge.mustache", tmpdir);
	FILE *f = fopen(path, "w");
	for (int i = 0; f && i < 1025; i++)
		fputs(big, f);
	if (f)
		fclose(f);
	char target[512];
	snprintf(target, sizeof target, "%s/secret.mustache", tmpdir);
	snprintf(path, sizeof path, "%s/mail/outside.mustache", tmpdir);
	if (symlink(target, path) != 0)
		T_FAIL("symlink: %s", strerror(errno));

	char file[512];
	snprintf(file, sizeof file, "%s/mail/welcome.html", tmpdir);
	struct tpl *t = tpl_compile_file(file, NULL, &err);
	T_TRUE(t != NULL);
	if (t)
		T_EQ_STR(render_with(t, "{\"name\": \"Bo\"}", TPL_ESCAPE_HTML, 0),
			 "<p>Hi Bo</p>\n-- volley");
	tpl_free(t);

	/* "@" stands for the folder, <tmpdir>/mail */
	struct {
		const char *file;
		const char *want;
	} refused[] = {
		{ "escape.html", "@/escape.html:1:1: partial '../secret': not a name inside the template folder" },
		{ "absolute.html", "@/absolute.html:1:1: partial '/etc/passwd': not a name inside the template folder" },
		{ "link.html", "@/link.html:2:2: partial 'outside': @/outside.mustache leads outside @" },
		{ "missing.html", "@/missing.html:2:2: missing partial 'nowhere'" },
		{ "huge.html", "@/huge.html:1:1: partial 'huge': @/huge.mustache: larger than 1048576 bytes" },
	};
	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
		char want[1024] = "";
		for (const char *p = refused[i].want; *p; p++) {
			size_t n = strlen(want);
			if (*p == '@')
				snprintf(want + n, sizeof want - n, "%s/mail", tmpdir);
			else if (n + 1 < sizeof want)
				want[n] = *p, want[n + 1] = '\0';
		}
		snprintf(file, sizeof file, "%s/mail/%s", tmpdir, refused[i].file);
		t = tpl_compile_file(file, NULL, &err);
		T_TRUE(t == NULL);
		T_EQ_STR(err.msg, want);
		tpl_free(t);
	}
	snprintf(file, sizeof file, "%s/mail/none.html", tmpdir);
	t = tpl_compile_file(file, NULL, &err);
	T_TRUE(t == NULL);
	T_TRUE(strstr(err.msg, "none.html: No such file or directory") != NULL);

	struct tpl_dir_loader dl;
	char why[256];
	snprintf(file, sizeof file, "%s/not-there", tmpdir);
	T_EQ_INT(tpl_dir_loader_init(&dl, file, 0, why, sizeof why), -1);

	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		T_FAIL("cannot remove %s", tmpdir);
}

/* ---- another data source: a CSV row bound by symbol ---- */

/* The same program rendered from templates/mustache_csv: column names bound
 * to the program's symbols once, a lookup is then an index. */
static void test_row_adapter(void)
{
	const char *tmpl = "Dear {{first}} {{last}},{{#coupon}} use {{coupon}}{{/coupon}}. {{first}}!";
	struct tpl *t = compile_with(tmpl, NULL);
	static const char *const columns[] = { "email", "last", "first", "coupon" };
	static const size_t column_lens[] = { 5, 4, 5, 6 };

	T_TRUE(t != NULL);
	if (!t)
		return;
	/* symbols: each distinct name once */
	T_EQ_INT(tpl_symbol_count(t), 3);
	T_TRUE(tpl_symbol(t, 3, &(size_t){ 0 }) == NULL);
	struct tpl_csv_binding b;
	T_EQ_INT(tpl_csv_bind(&b, t, columns, column_lens, 4), 0);

	static const char *const row1[] = { "a@x", "Lee", "Kim", "" };
	static const size_t lens1[] = { 3, 3, 3, 0 };
	static const char *const row2[] = { "b@x", "Doe", "Jo", "SAVE10" };
	static const size_t lens2[] = { 3, 3, 2, 6 };
	struct tpl_csv_row r = { row1, lens1, 4 };
	struct tpl_data d = tpl_csv_data(&r, &b);
	out.len = 0;
	T_EQ_INT(tpl_render(t, &d, TPL_ESCAPE_NONE, TPL_RENDER_STRICT, &out, &err), 0);
	T_EQ_MEM(out.data, out.len, "Dear Kim Lee,. Kim!", 19);
	r = (struct tpl_csv_row){ row2, lens2, 4 };
	out.len = 0;
	T_EQ_INT(tpl_render(t, &d, TPL_ESCAPE_NONE, TPL_RENDER_STRICT, &out, &err), 0);
	T_EQ_MEM(out.data, out.len, "Dear Jo Doe, use SAVE10. Jo!", 28);

	/* the same program with JSON gives the same text */
	T_EQ_STR(render_with(t, "{\"first\": \"Jo\", \"last\": \"Doe\", \"coupon\": \"SAVE10\"}",
			     TPL_ESCAPE_NONE, 0),
		 "Dear Jo Doe, use SAVE10. Jo!");
	tpl_csv_binding_free(&b);
	tpl_free(t);
}

/* ---- the scanner against a guard page ---- */

/* Scans every tag of s[0..n) placed right before a PROT_NONE page. Returns
 * the number of tags, or -1 at an error. */
static int scan_all(const char *s, size_t n)
{
	char *p = guard_mem - n;
	struct tpl_scan sc;
	struct tpl_tag tag;
	const char *why;
	size_t at, pos = 0;
	int tags = 0;

	memcpy(p, s, n);
	tpl_scan_init(&sc, p, n);
	for (;;) {
		int r = tpl_scan_next(&sc, pos, &tag, &why, &at);
		if (r <= 0)
			return r < 0 ? -1 : tags;
		if (tag.end > n || tag.start < pos || tag.name + tag.name_len > tag.end)
			return -2;
		if (tag.type == '=' && tpl_scan_set_delims(&sc, &tag, &why) < 0)
			return -1;
		pos = tag.end;
		tags++;
	}
}

static void test_scan_guarded(void)
{
	static const char *const inputs[] = {
		"Hi {{name}}, {{{raw}}} {{& amp }}\r\n{{#s}}\n  x\n{{/s}}{{! c }}{{=<% %>=}}<%x%><%{y}%>",
		"{{<p}}\n  {{$b}}\n  body\n  {{/b}}\n{{/p}}\n{{>part}}  \n",
		"{{=| |=}}|a||b||c||={{ }}=|{{d}}",
	};
	static const int want_tags[] = { 9, 5, 6 };

	guard_init_size(1 << 16);
	for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
		size_t n = strlen(inputs[i]);
		T_EQ_INT(scan_all(inputs[i], n), want_tags[i]);
		/* every prefix: a result, never a read past the end */
		for (size_t k = 0; k < n; k++)
			T_TRUE(scan_all(inputs[i], k) >= -1);
	}

	/* garbage made of the bytes that matter, compiled and rendered (with
	 * data that nested sections cannot multiply) */
	uint32_t seed = 0x2545f491;
	static const char alphabet[] = "{{}}#^/!<>$&=. \n\rab*";
	char buf[256];
	for (int round = 0; round < 20000; round++) {
		size_t n = xorshift32(&seed) % sizeof buf;
		for (size_t k = 0; k < n; k++)
			buf[k] = alphabet[xorshift32(&seed) % (sizeof alphabet - 1)];
		T_TRUE(scan_all(buf, n) >= -1);
		struct tpl_opts o = { .missing_partial_empty = 1 };
		struct tpl *t = tpl_compile("g", guard_mem - n, n, &o, &err);
		if (t) {
			json_t *j = json_loads("{\"a\": {\"b\": \"<\"}, \"b\": true}", 0, NULL);
			struct tpl_data d = tpl_json_data(j);
			out.len = 0;
			T_TRUE(tpl_render(t, &d, TPL_ESCAPE_HTML, 0, &out, &err) == 0 ||
			       strstr(err.msg, "nesting deeper") != NULL);
			json_decref(j);
		}
		tpl_free(t);
	}
}

/* tpl_fixed_text: the text of a template without tags, NULL otherwise. */
static void test_fixed_text(void)
{
	static const struct {
		const char *tmpl, *want;
	} cases[] = {
		{ "<news.example.test>", "<news.example.test>" },
		{ "", "" },
		{ "a{{! note }}", "a" },
		{ "{{x}}", NULL },
		{ "a {{x}}", NULL },
		{ "{{#s}}a{{/s}}", NULL },
		{ "{{>item}}", NULL },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct tpl *t = compile_with(cases[i].tmpl, layout_partials);
		size_t len = 0;
		const char *got = t ? tpl_fixed_text(t, &len) : "(no compile)";
		if (cases[i].want ? !got || len != strlen(cases[i].want) ||
					    memcmp(got, cases[i].want, len) != 0
				  : got != NULL)
			T_FAIL("fixed text of \"%s\": got \"%.*s\"", cases[i].tmpl,
			       got ? (int)len : 4, got ? got : "NULL");
		t_checks++;
		tpl_free(t);
	}
}

/* ---- rendering as CRLF lines (tpl_render_lines) ---- */

/* Renders tmpl with vars as lines, max_line and allow_8bit as given;
 * returns the output, "NOT_LINES", or the error. *non_ascii is what the
 * render said. */
static const char *lines(const char *tmpl, const char *vars, size_t max_line, int allow_8bit,
			 int *non_ascii)
{
	static char text[8192];
	struct tpl *t = compile_with(tmpl, layout_partials);
	struct tpl_lines *l = t ? tpl_lines_new(t, 0) : NULL;
	json_t *data = json_loads(vars, JSON_DECODE_ANY, NULL);
	struct tpl_lines_out lo = { .max_line = max_line, .allow_8bit = allow_8bit };
	const char *res = err.msg;

	if (t && l && data) {
		struct tpl_data d = tpl_json_data(data);
		out.len = 0;
		int rc = tpl_render_lines(t, l, &d, TPL_ESCAPE_HTML, 0, &out, &lo, &err);
		*non_ascii = lo.non_ascii;
		if (rc == TPL_NOT_LINES)
			res = out.len == 0 ? "NOT_LINES" : "NOT_LINES with output left";
		else if (rc == 0)
			snprintf(text, sizeof text, "%.*s", (int)out.len, out.data ? out.data : ""), res = text;
	}
	json_decref(data);
	tpl_lines_free(l);
	tpl_free(t);
	return res;
}

static void test_lines(void)
{
	static const struct {
		const char *tmpl, *vars;
		size_t max;
		int allow_8bit, non_ascii;
		const char *want;
	} cases[] = {
		{ "a\nb {{x}}\n", "{\"x\":\"<1>\"}", 998, 0, 0, "a\r\nb &lt;1&gt;\r\n" },
		{ "a\r\nb\n", "{}", 998, 0, 0, "a\r\nb\r\n" },
		{ "{{x}}", "{\"x\":\"a\\nb\"}", 998, 1, 0, "NOT_LINES" },
		{ "{{x}}", "{\"x\":\"a\\rb\"}", 998, 1, 0, "NOT_LINES" },
		{ "a\rb", "{}", 998, 1, 0, "NOT_LINES" },
		{ "{{x}}!", "{\"x\":\"caf\u00e9\"}", 998, 1, 1, "caf\xc3\xa9!" },
		{ "{{x}}!", "{\"x\":\"caf\u00e9\"}", 998, 0, 0, "NOT_LINES" },
		{ "caf\xc3\xa9", "{}", 998, 0, 0, "NOT_LINES" },
		{ "{{#s}}caf\xc3\xa9{{/s}}ok", "{}", 998, 0, 0, "ok" },
		/* line lengths: text and values on one line, CRLF not counted */
		{ "12345\n1234{{x}}\n", "{\"x\":\"5\"}", 5, 0, 0, "12345\r\n12345\r\n" },
		{ "12345\n1234{{x}}\n", "{\"x\":\"56\"}", 5, 0, 0, "NOT_LINES" },
		{ "123456\n", "{}", 5, 0, 0, "NOT_LINES" },
		{ "1\n123456\n1\n", "{}", 5, 0, 0, "NOT_LINES" },
		{ "{{x}}{{x}}{{x}}", "{\"x\":\"ab\"}", 5, 0, 0, "NOT_LINES" },
		/* a standalone partial's indentation counts too */
		{ "  {{>item}}\n", "{\"name\":\"ab\"}", 13, 0, 0, "  <li>ab</li>\r\n" },
		{ "  {{>item}}\n", "{\"name\":\"ab\"}", 12, 0, 0, "NOT_LINES" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int non_ascii = -1;
		const char *got = lines(cases[i].tmpl, cases[i].vars, cases[i].max, cases[i].allow_8bit,
					&non_ascii);
		if (strcmp(got, cases[i].want) != 0)
			T_FAIL("lines case %zu: got \"%s\", want \"%s\"", i, got, cases[i].want);
		else if (strcmp(got, "NOT_LINES") != 0 && non_ascii != cases[i].non_ascii)
			T_FAIL("lines case %zu: non_ascii %d, want %d", i, non_ascii, cases[i].non_ascii);
		t_checks++;
	}
}

/* loose_space: whitespace DKIM's relaxed canonicalisation would change.
 * Values of every length up to 40 made of 'a', 'b' and SP, between two
 * letters: loose exactly when a value holds two SPs in a row (the value
 * scan looks at sixteen bytes at a time, and at short values in pieces). */
static void test_lines_loose_values(void)
{
	struct tpl *t = compile_with("x{{v}}y", NULL);
	struct tpl_lines *l = t ? tpl_lines_new(t, 0) : NULL;
	uint32_t seed = 99;
	char v[41], vars[128];

	for (int round = 0; l && round < 4000; round++) {
		size_t n = (size_t)round % 41;
		for (size_t i = 0; i < n; i++) {
			seed = seed * 1103515245u + 12345u;
			v[i] = "ab  "[(seed >> 16) % 4];
		}
		v[n] = '\0';
		snprintf(vars, sizeof vars, "{\"v\":\"%s\"}", v);
		json_t *data = json_loads(vars, 0, NULL);
		struct tpl_data d = tpl_json_data(data);
		struct tpl_lines_out lo = { .max_line = 998 };
		out.len = 0;
		int rc = tpl_render_lines(t, l, &d, TPL_ESCAPE_NONE, 0, &out, &lo, &err);
		json_decref(data);
		if (rc != 0 || lo.loose_space != (strstr(v, "  ") != NULL)) {
			T_FAIL("value \"%s\": rc %d, loose_space %d", v, rc, lo.loose_space);
			break;
		}
		t_checks++;
	}
	tpl_lines_free(l);
	tpl_free(t);
}

/* Two SPs on the seam between two of the value scan's sixteen-byte
 * blocks, at every place in values of 17 to 64 bytes, with no other SP:
 * each is loose. */
static void test_lines_loose_seams(void)
{
	struct tpl *t = compile_with("x{{v}}y", NULL);
	struct tpl_lines *l = t ? tpl_lines_new(t, 0) : NULL;
	char v[65], vars[128];

	for (size_t n = 17; l && n <= 64; n++) {
		for (size_t at = 0; at + 1 < n; at++) {
			memset(v, 'a', n);
			v[n] = '\0';
			v[at] = v[at + 1] = ' ';
			snprintf(vars, sizeof vars, "{\"v\":\"%s\"}", v);
			json_t *data = json_loads(vars, 0, NULL);
			struct tpl_data d = tpl_json_data(data);
			struct tpl_lines_out lo = { .max_line = 998 };
			out.len = 0;
			int rc = tpl_render_lines(t, l, &d, TPL_ESCAPE_NONE, 0, &out, &lo, &err);
			json_decref(data);
			if (rc != 0 || !lo.loose_space) {
				T_FAIL("value of %zu with SPs at %zu: rc %d, loose_space %d, want 0, 1", n,
				       at, rc, lo.loose_space);
				n = 64;
				break;
			}
			t_checks++;
		}
	}
	tpl_lines_free(l);
	tpl_free(t);
}

/* HTML escaping at every length up to 48 (the escape looks at sixteen
 * bytes at a time, at short values in pieces) with HTML's five characters
 * at random places: the same as escaping byte by byte, as text and as
 * lines. */
static void test_escape_lengths(void)
{
	struct tpl *t = compile_with("x{{v}}y", NULL);
	struct tpl_lines *l = t ? tpl_lines_new(t, 0) : NULL;
	uint32_t seed = 7;
	char v[49], want[2 + 48 * 6 + 1];

	for (int round = 0; l && round < 4900; round++) {
		size_t n = (size_t)round % 49, w = 0;
		want[w++] = 'x';
		for (size_t i = 0; i < n; i++) {
			seed = seed * 1103515245u + 12345u;
			v[i] = "ab<>&\"'c"[(seed >> 16) % 8];
			const char *e = v[i] == '<' ? "&lt;" : v[i] == '>' ? "&gt;" : v[i] == '&' ? "&amp;"
					: v[i] == '"' ? "&quot;" : v[i] == '\'' ? "&#39;" : NULL;
			if (e) {
				memcpy(want + w, e, strlen(e));
				w += strlen(e);
			} else {
				want[w++] = v[i];
			}
		}
		want[w++] = 'y';
		json_t *data = json_pack("{s:s%}", "v", v, n);
		struct tpl_data d = tpl_json_data(data);
		struct tpl_lines_out lo = { .max_line = 998 };
		out.len = 0;
		int rc = tpl_render(t, &d, TPL_ESCAPE_HTML, 0, &out, &err);
		int same = rc == 0 && out.len == w && memcmp(out.data, want, w) == 0;
		out.len = 0;
		rc = tpl_render_lines(t, l, &d, TPL_ESCAPE_HTML, 0, &out, &lo, &err);
		same = same && rc == 0 && out.len == w && memcmp(out.data, want, w) == 0;
		json_decref(data);
		if (!same) {
			T_FAIL("escaping \"%.*s\": got \"%.*s\"", (int)n, v, (int)out.len, out.data);
			break;
		}
		t_checks++;
	}
	tpl_lines_free(l);
	tpl_free(t);
}

/* What a render reports besides its text: whether it wrote the watch byte
 * ('_' here), and loose whitespace, also across the seams between text
 * and values and at the end. */
static void test_lines_reports(void)
{
	static const struct {
		const char *tmpl, *vars;
		int watched, loose;
	} cases[] = {
		{ "a_b", "{}", 1, 0 },
		{ "ab{{x}}", "{\"x\":\"c_d\"}", 1, 0 },
		{ "ab{{x}}", "{\"x\":\"cd\"}", 0, 0 },
		{ "{{#s}}_{{/s}}ab", "{}", 0, 0 },
		{ "a {{v}} b\n", "{\"v\":\"x\"}", 0, 0 },
		{ "a {{v}} b\n", "{\"v\":\" x\"}", 0, 1 },
		{ "a {{v}} b\n", "{\"v\":\"x \"}", 0, 1 },
		{ "a{{v}}\n", "{\"v\":\"x \"}", 0, 1 },
		{ "a{{v}}", "{\"v\":\"x \"}", 0, 1 },
		{ "a {{v}}\n", "{\"v\":\"\"}", 0, 1 },
		{ "a\tb\n", "{}", 0, 1 },
		{ "a  b\n", "{}", 0, 1 },
		{ "a \nb\n", "{}", 0, 1 },
		{ "a b\n c\n", "{}", 0, 0 },
		{ "{{v}}\n", "{\"v\":\"a\\tb\"}", 0, 1 },
		{ "  {{>inline}}\n", "{}", 0, 1 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct tpl *t = compile_with(cases[i].tmpl, layout_partials);
		struct tpl_lines *l = t ? tpl_lines_new(t, '_') : NULL;
		json_t *data = json_loads(cases[i].vars, 0, NULL);
		struct tpl_lines_out lo = { .max_line = 998 };
		struct tpl_data d = tpl_json_data(data);

		out.len = 0;
		if (!l || !data || tpl_render_lines(t, l, &d, TPL_ESCAPE_NONE, 0, &out, &lo, &err) != 0)
			T_FAIL("report case %zu: no render", i);
		else if (lo.watched != cases[i].watched || lo.loose_space != cases[i].loose)
			T_FAIL("report case %zu: watched %d, loose_space %d; want %d, %d", i, lo.watched,
			       lo.loose_space, cases[i].watched, cases[i].loose);
		t_checks++;
		/* whitespace not tracked (no DKIM): the same bytes and watch
		 * report, and loose_space says it may hold some */
		struct tpl_lines_out skip = { .max_line = 998, .skip_loose = 1 };
		struct tpl_buf again;
		tpl_buf_init(&again, 0);
		if (!l || !data || tpl_render_lines(t, l, &d, TPL_ESCAPE_NONE, 0, &again, &skip, &err) != 0)
			T_FAIL("report case %zu: no render without whitespace tracking", i);
		else if (again.len != out.len || memcmp(again.data, out.data, out.len) != 0 ||
			 skip.watched != cases[i].watched || skip.loose_space != 1)
			T_FAIL("report case %zu, whitespace not tracked: watched %d, loose_space %d, "
			       "output %s", i, skip.watched, skip.loose_space,
			       again.len == out.len ? "the same" : "differs");
		t_checks++;
		tpl_buf_free(&again);
		json_decref(data);
		tpl_lines_free(l);
		tpl_free(t);
	}
}

int main(void)
{
	tpl_buf_init(&out, 0);
	test_errors();
	test_errors_in_partials();
	test_missing_partial_empty();
	test_escape_modes();
	test_render_cases();
	test_partials_and_layouts();
	test_loaded_once();
	test_many_names();
	test_dynamic_names();
	test_strict();
	test_base_place();
	test_output_cap();
	test_compile_bounds();
	test_broken_loader();
	test_dir_loader();
	test_row_adapter();
	test_scan_guarded();
	test_fixed_text();
	test_lines();
	test_lines_loose_values();
	test_lines_loose_seams();
	test_escape_lengths();
	test_lines_reports();
	tpl_buf_free(&out);
	return t_done("test_mustache");
}
