/* mustache_csv: see mustache_csv.h. Binding reads the header's names as
 * paths of the program's symbols (a header whose parts are not all symbols
 * is dropped), sorts the paths, and builds the tree from them in one pass:
 * sorted paths share their prefixes with their neighbours, so a node is
 * made once, children in symbol order. A value is {its node, the binding};
 * ud is the row. */
#include "templates/mustache_csv.h"

#include <stdlib.h>
#include <string.h>

#define PARTS_MAX (TPL_NAME_MAX / 2 + 1)   /* parts in a name of TPL_NAME_MAX bytes */

/* How bind made a node: the symbol that reaches it from its parent. */
struct made {
	uint32_t sym, parent;
};

/* ---- the program's symbols, sorted by text ---- */

struct sym_ref {
	const char *s;
	size_t len;
	uint32_t sym;
};

static int sym_cmp(const void *a, const void *b)
{
	const struct sym_ref *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = n ? memcmp(x->s, y->s, n) : 0;

	return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* Returns a table of t's symbols sorted by text, or NULL when out of memory. */
static struct sym_ref *syms_sorted(const struct tpl *t, size_t nsyms)
{
	struct sym_ref *refs = malloc((nsyms ? nsyms : 1) * sizeof *refs);

	if (!refs)
		return NULL;
	for (size_t i = 0; i < nsyms; i++) {
		refs[i].s = tpl_symbol(t, i, &refs[i].len);
		refs[i].sym = (uint32_t)i;
	}
	qsort(refs, nsyms, sizeof *refs, sym_cmp);
	return refs;
}

/* ---- header names as paths of symbols ---- */

struct path {
	const uint32_t *sym;       /* into the paths' shared array */
	uint32_t n;
	int32_t col;
};

/* Parts in name[0..len): its dots and one; 0 when no name of a program can
 * be that long. */
static size_t parts_in(const char *name, size_t len)
{
	size_t n = 1;

	if (len == 0 || len > TPL_NAME_MAX)
		return 0;
	for (size_t i = 0; i < len; i++)
		n += name[i] == '.';
	return n;
}

/* Reads name[0..len) as a path of symbols into p, whose sym has room for
 * its parts. Returns 1, or 0 when a part is no symbol (an empty part never
 * is). */
static int path_of(const char *name, size_t len, const struct sym_ref *refs, size_t nsyms,
		   struct path *p)
{
	uint32_t *sym = (uint32_t *)p->sym;

	p->n = 0;
	for (size_t i = 0; i <= len;) {
		const char *dot = memchr(name + i, '.', len - i);
		size_t e = dot ? (size_t)(dot - name) : len;
		struct sym_ref key = { name + i, e - i, 0 };
		const struct sym_ref *hit = bsearch(&key, refs, nsyms, sizeof *refs, sym_cmp);
		if (!hit)
			return 0;
		sym[p->n++] = hit->sym;
		i = e + 1;
	}
	return 1;
}

/* Paths in order: by symbols, a prefix first, then by column (the first of
 * two equal names first). */
static int path_cmp(const void *a, const void *b)
{
	const struct path *x = a, *y = b;
	uint32_t n = x->n < y->n ? x->n : y->n;

	for (uint32_t i = 0; i < n; i++)
		if (x->sym[i] != y->sym[i])
			return x->sym[i] < y->sym[i] ? -1 : 1;
	if (x->n != y->n)
		return x->n < y->n ? -1 : 1;
	return (x->col > y->col) - (x->col < y->col);
}

/* The header names that are paths of t's symbols, sorted: *np of them, their
 * parts in *syms (to free with them). Returns them, or NULL when out of
 * memory or past 2^32 parts. */
static struct path *header_paths(const struct tpl *t, size_t nsyms, const char *const *names,
				 const size_t *lens, size_t n, size_t *np, uint32_t **syms)
{
	size_t cols = n < INT32_MAX ? n : INT32_MAX, nparts = 0;

	for (size_t i = 0; i < cols; i++)
		nparts += parts_in(names[i], lens[i]);
	*np = 0;
	*syms = NULL;
	if (nparts >= UINT32_MAX)     /* node numbers are 32 bits */
		return NULL;
	struct sym_ref *refs = syms_sorted(t, nsyms);
	struct path *paths = malloc((cols ? cols : 1) * sizeof *paths);
	*syms = malloc((nparts ? nparts : 1) * sizeof **syms);
	if (!refs || !paths || !*syms) {
		free(refs);
		free(paths);
		free(*syms);
		*syms = NULL;
		return NULL;
	}
	uint32_t *next = *syms;
	for (size_t i = 0; i < cols; i++) {
		struct path *p = &paths[*np];
		p->sym = next;
		p->col = (int32_t)i;
		if (parts_in(names[i], lens[i]) && path_of(names[i], lens[i], refs, nsyms, p)) {
			next += p->n;
			(*np)++;
		}
	}
	free(refs);
	qsort(paths, *np, sizeof *paths, path_cmp);
	return paths;
}

/* ---- the tree ---- */

static uint32_t common_prefix(const struct path *a, const struct path *b)
{
	uint32_t i = 0;

	while (i < a->n && i < b->n && a->sym[i] == b->sym[i])
		i++;
	return i;
}

/* Makes the nodes of the sorted paths in b->nodes, in depth-first order,
 * how node k was reached in up[k]. Returns the number of nodes. */
static size_t make_nodes(struct tpl_csv_binding *b, const struct path *paths, size_t np,
			 struct made *up)
{
	uint32_t at[PARTS_MAX];   /* the nodes of the previous path, by depth */
	size_t nn = 1;

	b->nodes[0] = (struct tpl_csv_node){ -1, 0, 0 };
	for (size_t i = 0; i < np; i++) {
		const struct path *p = &paths[i];
		uint32_t d = i ? common_prefix(&paths[i - 1], p) : 0;
		for (; d < p->n; d++) {
			uint32_t parent = d ? at[d - 1] : 0;
			b->nodes[nn] = (struct tpl_csv_node){ -1, 0, 0 };
			b->nodes[parent].count++;
			up[nn] = (struct made){ p->sym[d], parent };
			at[d] = (uint32_t)nn++;
		}
		struct tpl_csv_node *last = &b->nodes[at[p->n - 1]];
		if (last->col < 0)
			last->col = p->col;
	}
	return nn;
}

/* Lays the edges out by parent (children stay in the symbol order they
 * were made in) and fills top[] with the row's children. */
static void link_edges(struct tpl_csv_binding *b, const struct made *up)
{
	uint32_t next = 0;

	for (size_t k = 0; k < b->nnodes; k++) {
		b->nodes[k].first = next;
		next += b->nodes[k].count;
		b->nodes[k].count = 0;
	}
	for (size_t k = 1; k < b->nnodes; k++) {
		struct tpl_csv_node *parent = &b->nodes[up[k].parent];
		b->edges[parent->first + parent->count++] = (struct tpl_csv_edge){ up[k].sym, (uint32_t)k };
		if (up[k].parent == 0)
			b->top[up[k].sym] = (uint32_t)k;
	}
}

/* Nodes the paths need at most: the row and one per part. */
static size_t nodes_max(const struct path *paths, size_t np)
{
	size_t n = 1;

	for (size_t i = 0; i < np; i++)
		n += paths[i].n;
	return n;
}

int tpl_csv_bind(struct tpl_csv_binding *b, const struct tpl *t, const char *const *names,
		 const size_t *lens, size_t n)
{
	size_t nsyms = tpl_symbol_count(t), np;
	uint32_t *syms;
	struct path *paths = header_paths(t, nsyms, names, lens, n, &np, &syms);
	size_t max = paths ? nodes_max(paths, np) : 1;
	struct made *up = malloc(max * sizeof *up);

	*b = (struct tpl_csv_binding){
		.top = calloc(nsyms ? nsyms : 1, sizeof *b->top),
		.nodes = malloc(max * sizeof *b->nodes),
		.edges = malloc(max * sizeof *b->edges),
		.nsyms = nsyms,
	};
	int rc = -1;
	if (paths && up && b->top && b->nodes && b->edges) {
		b->nnodes = make_nodes(b, paths, np, up);
		link_edges(b, up);
		rc = 0;
	}
	free(paths);
	free(syms);
	free(up);
	if (rc)
		tpl_csv_binding_free(b);
	return rc;
}

void tpl_csv_binding_free(struct tpl_csv_binding *b)
{
	free(b->top);
	free(b->nodes);
	free(b->edges);
	*b = (struct tpl_csv_binding){ 0 };
}

/* ---- the data adapter ---- */

/* The child of node k reached by sym, or 0. */
static uint32_t child(const struct tpl_csv_binding *b, uint32_t k, uint32_t sym)
{
	if (k == 0)
		return sym < b->nsyms ? b->top[sym] : 0;
	const struct tpl_csv_edge *e = b->edges + b->nodes[k].first;
	size_t lo = 0, hi = b->nodes[k].count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (e[mid].sym == sym)
			return e[mid].to;
		if (e[mid].sym < sym)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

/* The column a node holds in row, or -1. */
static int32_t field_of(const struct tpl_csv_row *row, const struct tpl_csv_node *node)
{
	return node->col >= 0 && (size_t)node->col < row->n ? node->col : -1;
}

static int csv_get(void *ud, struct tpl_val obj, const struct tpl_key *key, struct tpl_val *out)
{
	const struct tpl_csv_row *row = ud;
	const struct tpl_csv_binding *b = (const struct tpl_csv_binding *)obj.aux;
	const struct tpl_csv_node *node = obj.ptr;
	uint32_t k = child(b, (uint32_t)(node - b->nodes), key->sym);

	/* a node is there when its row has its column or it has children */
	if (k == 0 || (field_of(row, &b->nodes[k]) < 0 && b->nodes[k].count == 0))
		return 0;
	out->ptr = &b->nodes[k];
	out->aux = obj.aux;
	return 1;
}

/* A node with a column is a string (that may have members too), one
 * without, and the row, are objects. */
static enum tpl_kind csv_kind(void *ud, struct tpl_val v)
{
	return field_of(ud, v.ptr) >= 0 ? TPL_STRING : TPL_OBJECT;
}

static const char *csv_text(void *ud, struct tpl_val v, char scratch[TPL_SCRATCH], size_t *len)
{
	const struct tpl_csv_row *row = ud;
	int32_t c = field_of(row, v.ptr);

	*len = c >= 0 ? row->lens[c] : 0;
	return c >= 0 ? row->fields[c] : "";
}

/* csv_get, csv_kind and csv_text in one: a column's text is at hand. */
static int csv_find(void *ud, struct tpl_val obj, const struct tpl_key *key, struct tpl_found *out)
{
	const struct tpl_csv_row *row = ud;

	if (!csv_get(ud, obj, key, &out->v))
		return 0;
	int32_t c = field_of(row, out->v.ptr);
	out->kind = c >= 0 ? TPL_STRING : TPL_OBJECT;
	out->s = c >= 0 ? row->fields[c] : NULL;
	out->len = c >= 0 ? row->lens[c] : 0;
	return 1;
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
	.find = csv_find,
};

struct tpl_data tpl_csv_data(const struct tpl_csv_row *row, const struct tpl_csv_binding *b)
{
	return (struct tpl_data){
		.ops = &tpl_csv_ops,
		.ud = (void *)row,
		.root = { .ptr = &b->nodes[0], .aux = (uintptr_t)b },
	};
}
