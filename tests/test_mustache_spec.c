/* The official mustache spec (tests/conformance/mustache, vendored from
 * github.com/mustache/spec): every test of the files volley implements,
 * compiled with the test's partials (all preloaded, for dynamic names) and
 * rendered with its data. Prints a count per file and in total; exits
 * non-zero when any test fails. Lambdas (code in the data) do not apply to
 * C: that file is reported as skipped. Runs from tests/. */
#include "templates/mustache.h"
#include "templates/mustache_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SPEC_DIR "conformance/mustache/"

static const char *const spec_files[] = {
	"comments.json", "delimiters.json", "interpolation.json", "inverted.json",
	"partials.json", "sections.json", "~inheritance.json", "~dynamic-names.json",
};

static const char *const skipped_files[][2] = {
	{ "~lambdas.json", "lambdas are code in the data, which C data has not" },
};

#define MAX_PARTIALS 16

/* Partials come from the test's "partials" object. */
static int json_partial(void *ud, const char *name, struct tpl_partial *out, char *err, size_t errlen)
{
	const json_t *text = json_object_get(ud, name);

	if (!json_is_string(text))
		return TPL_NOT_FOUND;
	out->len = json_string_length(text);
	out->text = malloc(out->len + 1);
	if (!out->text) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	memcpy(out->text, json_string_value(text), out->len + 1);
	return 0;
}

/* Tests that tpl_render_lines could render as lines (the others hold a
 * value with a line end, which it leaves to the caller). */
static int lines_rendered;

/* want[0..n) with every LF that no CR comes before made CRLF, into out
 * (room for 2n). Returns the length. */
static size_t crlf(const char *want, size_t n, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		if (want[i] == '\n' && (i == 0 || want[i - 1] != '\r'))
			out[o++] = '\r';
		out[o++] = want[i];
	}
	return o;
}

/* The test rendered again with the JSON adapter's find() taken away, so
 * that the render asks get, kind and text in turn: it must give the
 * expected text too. Returns 1 when it does. */
static int three_calls_agree(const struct tpl *t, const struct tpl_data *data,
			     const json_t *expected, struct tpl_buf *out)
{
	struct tpl_data_ops ops = *data->ops;
	struct tpl_data d = *data;
	struct tpl_error err;

	ops.find = NULL;
	d.ops = &ops;
	out->len = 0;
	return tpl_render(t, &d, TPL_ESCAPE_HTML, 0, out, &err) == 0 &&
	       out->len == json_string_length(expected) &&
	       (out->len == 0 || memcmp(out->data, json_string_value(expected), out->len) == 0);
}

/* The test rendered by tpl_render_lines: the expected text with CRLF line
 * ends, or TPL_NOT_LINES. Returns 1 when so, printing why when not. */
static int lines_agree(const char *file, const char *name, const struct tpl *t,
		       const struct tpl_data *data, const json_t *expected, struct tpl_buf *out)
{
	struct tpl_lines *l = tpl_lines_new(t, 0);
	struct tpl_lines_out lo = { .max_line = 998, .allow_8bit = 1 };
	size_t n = json_string_length(expected);
	char *want = malloc(2 * n + 1);
	struct tpl_error err;
	int ok = 0;

	if (!l || !want) {
		printf("  FAIL %s: %s: out of memory\n", file, name);
		goto done;
	}
	size_t wl = crlf(json_string_value(expected), n, want);
	out->len = 0;
	int rc = tpl_render_lines(t, l, data, TPL_ESCAPE_HTML, 0, out, &lo, &err);
	if (rc == TPL_NOT_LINES && out->len == 0) {
		ok = 1;
	} else if (rc == 0 && out->len == wl && memcmp(out->data, want, wl) == 0) {
		lines_rendered++;
		ok = 1;
	} else {
		printf("  FAIL %s: %s: tpl_render_lines returned %d, %zu bytes\n", file, name, rc,
		       out->len);
	}
done:
	free(want);
	tpl_lines_free(l);
	return ok;
}

/* Runs one test; returns 1 when it passes, printing why when it does not. */
static int run_test(const char *file, const json_t *test, struct tpl_buf *out)
{
	const char *name = json_string_value(json_object_get(test, "name"));
	const json_t *tmpl = json_object_get(test, "template");
	const json_t *expected = json_object_get(test, "expected");
	json_t *partials = json_object_get(test, "partials");
	struct tpl_loader loader = { json_partial, partials ? partials : json_object() };
	const char *names[MAX_PARTIALS + 1];
	struct tpl_opts opts = { .loader = &loader, .missing_partial_empty = 1, .preload = names };
	struct tpl_error err;
	const char *key;
	const json_t *value;
	size_t n = 0;
	int ok = 0;

	json_object_foreach(loader.ud, key, value)
		if (n < MAX_PARTIALS)
			names[n++] = key;
	names[n] = NULL;

	if (!json_is_string(tmpl) || !json_is_string(expected)) {
		printf("  %s: %s: malformed test\n", file, name ? name : "?");
		goto done;
	}
	struct tpl *t = tpl_compile("template", json_string_value(tmpl), json_string_length(tmpl),
				    &opts, &err);
	if (!t) {
		printf("  FAIL %s: %s: %s\n", file, name, err.msg);
		goto done;
	}
	struct tpl_data data = tpl_json_data(json_object_get(test, "data"));
	out->len = 0;
	if (tpl_render(t, &data, TPL_ESCAPE_HTML, 0, out, &err) < 0) {
		printf("  FAIL %s: %s: %s\n", file, name, err.msg);
	} else if (out->len != json_string_length(expected) ||
		   memcmp(out->data, json_string_value(expected), out->len) != 0) {
		printf("  FAIL %s: %s\n    template: ", file, name);
		json_dumpf(tmpl, stdout, JSON_ENCODE_ANY);
		printf("\n    got:      ");
		json_t *got = json_stringn(out->data ? out->data : "", out->len);
		json_dumpf(got, stdout, JSON_ENCODE_ANY);
		json_decref(got);
		printf("\n    want:     ");
		json_dumpf(expected, stdout, JSON_ENCODE_ANY);
		printf("\n");
	} else if (!three_calls_agree(t, &data, expected, out)) {
		printf("  FAIL %s: %s: not the same through get, kind and text (no find)\n", file, name);
	} else {
		ok = lines_agree(file, name, t, &data, expected, out);
	}
	tpl_free(t);
done:
	if (!partials)
		json_decref(loader.ud);
	return ok;
}

int main(void)
{
	struct tpl_buf out;
	int total = 0, passed = 0, broken = 0;

	tpl_buf_init(&out, 0);
	for (size_t f = 0; f < sizeof spec_files / sizeof spec_files[0]; f++) {
		char path[256];
		json_error_t jerr;

		snprintf(path, sizeof path, SPEC_DIR "%s", spec_files[f]);
		json_t *spec = json_load_file(path, 0, &jerr);
		const json_t *tests = json_object_get(spec, "tests");
		if (!json_is_array(tests)) {
			printf("%s: cannot read: %s\n", path, spec ? "no tests" : jerr.text);
			json_decref(spec);
			broken++;
			continue;
		}
		int n = 0, ok = 0;
		size_t i;
		const json_t *test;
		json_array_foreach(tests, i, test) {
			n++;
			ok += run_test(spec_files[f], test, &out);
		}
		printf("%s: %d/%d passed\n", spec_files[f], ok, n);
		total += n;
		passed += ok;
		json_decref(spec);
	}
	for (size_t f = 0; f < sizeof skipped_files / sizeof skipped_files[0]; f++)
		printf("%s: skipped (%s)\n", skipped_files[f][0], skipped_files[f][1]);
	printf("mustache spec: %d/%d passed\n", passed, total);
	printf("mustache spec as CRLF lines: %d rendered, the rest left to the caller\n",
	       lines_rendered);
	tpl_buf_free(&out);
	return passed == total && total > 0 && !broken ? 0 : 1;
}
