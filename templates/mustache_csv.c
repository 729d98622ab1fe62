/* mustache_csv: see mustache_csv.h. The root value is {row, binding}; a
 * field is {its bytes, its length}. ud is the row, which tells the two
 * kinds apart. */
#include "templates/mustache_csv.h"

#include <stdlib.h>
#include <string.h>

int tpl_csv_bind(struct tpl_csv_binding *b, const struct tpl *t, const char *const *names,
		 const size_t *lens, size_t n)
{
	size_t nsyms = tpl_symbol_count(t);

	b->nsyms = nsyms;
	b->col = malloc((nsyms ? nsyms : 1) * sizeof *b->col);
	if (!b->col)
		return -1;
	for (size_t s = 0; s < nsyms; s++) {
		size_t len;
		const char *sym = tpl_symbol(t, s, &len);
		b->col[s] = -1;
		for (size_t i = 0; i < n && i <= INT32_MAX; i++) {
			if (lens[i] == len && memcmp(names[i], sym, len) == 0) {
				b->col[s] = (int32_t)i;
				break;
			}
		}
	}
	return 0;
}

void tpl_csv_binding_free(struct tpl_csv_binding *b)
{
	free(b->col);
	b->col = NULL;
	b->nsyms = 0;
}

static int csv_get(void *ud, struct tpl_val obj, const struct tpl_key *key, struct tpl_val *out)
{
	const struct tpl_csv_row *row = ud;
	const struct tpl_csv_binding *b = (const struct tpl_csv_binding *)obj.aux;

	if (obj.ptr != row || key->sym >= b->nsyms)
		return 0;
	int32_t c = b->col[key->sym];
	if (c < 0 || (size_t)c >= row->n)
		return 0;
	out->ptr = row->fields[c];
	out->aux = row->lens[c];
	return 1;
}

static enum tpl_kind csv_kind(void *ud, struct tpl_val v)
{
	return v.ptr == ud ? TPL_OBJECT : TPL_STRING;
}

static const char *csv_text(void *ud, struct tpl_val v, char scratch[TPL_SCRATCH], size_t *len)
{
	*len = v.aux;
	return v.ptr;
}

static size_t csv_list_len(void *ud, struct tpl_val list)
{
	return 0;
}

static struct tpl_val csv_list_at(void *ud, struct tpl_val list, size_t i)
{
	return (struct tpl_val){ NULL, 0 };
}

const struct tpl_data_ops tpl_csv_ops = {
	.get = csv_get,
	.kind = csv_kind,
	.text = csv_text,
	.list_len = csv_list_len,
	.list_at = csv_list_at,
};

struct tpl_data tpl_csv_data(const struct tpl_csv_row *row, const struct tpl_csv_binding *b)
{
	return (struct tpl_data){
		.ops = &tpl_csv_ops,
		.ud = (void *)row,
		.root = { .ptr = row, .aux = (uintptr_t)b },
	};
}
