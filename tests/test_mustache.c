/* Tests for templates/mustache. */
#include "templates/mustache.h"
#include "templates/mustache_json.h"
#include "tests/testutil.h"

#include <stdlib.h>

/* Compiles and renders tmpl with the JSON vars; returns the output (static). */
static const char *render(const char *tmpl, const char *vars, enum tpl_escape esc)
{
	static struct tpl_buf out;
	static struct tpl_error err;
	json_t *data = json_loads(vars, 0, NULL);
	struct tpl *t = tpl_compile("t.mustache", tmpl, strlen(tmpl), NULL, &err);

	if (!t || !data) {
		json_decref(data);
		tpl_free(t);
		return t ? "(bad json)" : err.msg;
	}
	struct tpl_data d = tpl_json_data(data);
	tpl_buf_free(&out);
	tpl_buf_init(&out, 0);
	int rc = tpl_render(t, &d, esc, 0, &out, &err);
	if (rc == 0)
		out.data[out.len] = '\0';   /* FIXME */
	tpl_free(t);
	json_decref(data);
	return rc < 0 ? err.msg : out.data;
}

int main(void)
{
	T_EQ_STR(render("Hi {{name}}!", "{\"name\":\"<b>\"}", TPL_ESCAPE_HTML), "Hi &lt;b&gt;!");
	return t_done("test_mustache");
}
