/* mustache_json: see mustache_json.h. */
#include "templates/mustache_json.h"

#include <stdio.h>
#include <stdlib.h>

static int json_get(void *ud, struct tpl_val obj, const struct tpl_key *key, struct tpl_val *out)
{
	const json_t *o = obj.ptr;

	if (!json_is_object(o))
		return 0;
	const json_t *v = json_object_getn(o, key->s, key->len);
	if (!v)
		return 0;
	out->ptr = v;
	out->aux = 0;
	return 1;
}

static enum tpl_kind json_kind(void *ud, struct tpl_val v)
{
	switch (json_typeof((const json_t *)v.ptr)) {
	case JSON_OBJECT:  return TPL_OBJECT;
	case JSON_ARRAY:   return TPL_LIST;
	case JSON_STRING:
	case JSON_INTEGER:
	case JSON_REAL:    return TPL_STRING;
	case JSON_TRUE:    return TPL_TRUE;
	case JSON_FALSE:   return TPL_FALSE;
	default:           return TPL_NULL;
	}
}

/* The fewest significant digits that read back as x. */
static size_t format_real(double x, char *buf, size_t cap)
{
	int n = 0;

	for (int prec = 1; prec <= 17; prec++) {
		n = snprintf(buf, cap, "%.*g", prec, x);
		if (strtod(buf, NULL) == x)
			break;
	}
	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

static const char *json_text(void *ud, struct tpl_val v, char scratch[TPL_SCRATCH], size_t *len)
{
	const json_t *j = v.ptr;
	int n;

	switch (json_typeof(j)) {
	case JSON_STRING:
		*len = json_string_length(j);
		return json_string_value(j);
	case JSON_INTEGER:
		n = snprintf(scratch, TPL_SCRATCH, "%" JSON_INTEGER_FORMAT, json_integer_value(j));
		*len = n > 0 && n < TPL_SCRATCH ? (size_t)n : 0;
		return scratch;
	case JSON_REAL:
		*len = format_real(json_real_value(j), scratch, TPL_SCRATCH);
		return scratch;
	default:
		*len = 0;
		return "";
	}
}

/* json_get and json_kind in one, with a string's text (numbers are
 * formatted by json_text when they are written). */
static int json_find(void *ud, struct tpl_val obj, const struct tpl_key *key, struct tpl_found *out)
{
	if (!json_get(ud, obj, key, &out->v))
		return 0;
	const json_t *j = out->v.ptr;
	out->kind = json_kind(ud, out->v);
	out->s = json_is_string(j) ? json_string_value(j) : NULL;
	out->len = json_is_string(j) ? json_string_length(j) : 0;
	return 1;
}

static size_t json_list_len(void *ud, struct tpl_val list)
{
	return json_array_size((const json_t *)list.ptr);
}

static struct tpl_val json_list_at(void *ud, struct tpl_val list, size_t i)
{
	return (struct tpl_val){ json_array_get((const json_t *)list.ptr, i), 0 };
}

const struct tpl_data_ops tpl_json_ops = {
	.get = json_get,
	.kind = json_kind,
	.text = json_text,
	.list_len = json_list_len,
	.list_at = json_list_at,
	.find = json_find,
};

struct tpl_data tpl_json_data(const json_t *root)
{
	return (struct tpl_data){ &tpl_json_ops, NULL, { root, 0 } };
}
