/* mustache_csv: renders templates with one CSV row (volley render --csv, CSV
 * job intake). The columns are named by the file's header row; a program's
 * symbols are bound to column numbers once per file (tpl_csv_bind), so that
 * a lookup is an index, with no hashing per render. A row is an object of
 * strings: a column is a string (an empty one is falsey and hides a
 * section), a name that is no column is missing.
 *
 * Dotted names reach dotted column names: {{customer.name}} is the column
 * whose header is "customer.name" (nested data flattened into CSV). The
 * headers' dots make a tree: "customer" is then an object whose member
 * "name" is that column, so {{#customer}}{{name}}{{/customer}} reads it too,
 * and a column called "customer" is a string that still has that member. A
 * header whose parts are not all names the program uses binds nothing. */
#ifndef VOLLEY_MUSTACHE_CSV_H
#define VOLLEY_MUSTACHE_CSV_H

#include "templates/mustache.h"

#include <stdint.h>

/* One row: field i is fields[i][0..lens[i]). */
struct tpl_csv_row {
	const char *const *fields;
	const size_t *lens;
	size_t n;
};

/* A node of the tree the header's dotted names make over a program's
 * symbols: col is the column whose header is the path from the row to the
 * node (or -1), its children are edges[first .. first + count). */
struct tpl_csv_node {
	int32_t col;
	uint32_t first, count;
};

struct tpl_csv_edge {
	uint32_t sym;
	uint32_t to;
};

/* A program's symbols bound to a header: nodes[0] is the row, top[sym] the
 * node a name's first part reaches from it (0: none); a node's edges are
 * sorted by symbol. */
struct tpl_csv_binding {
	uint32_t *top;
	struct tpl_csv_node *nodes;
	struct tpl_csv_edge *edges;
	size_t nsyms, nnodes;
};

/* Binds t's symbols to the columns names[0..n) (names[i] is lens[i] bytes;
 * when two columns share a name the first wins; a name split on its dots
 * binds when every part is a symbol of t). Returns 0, or -1 when out of
 * memory or the names hold 2^32 parts or more (b is then empty:
 * tpl_csv_binding_free is harmless). */
int tpl_csv_bind(struct tpl_csv_binding *b, const struct tpl *t, const char *const *names,
		 const size_t *lens, size_t n);

/* b may be freed twice. */
void tpl_csv_binding_free(struct tpl_csv_binding *b);

extern const struct tpl_data_ops tpl_csv_ops;

/* Returns the data for rendering the program b was bound for with row;
 * both must live as long as the render. */
struct tpl_data tpl_csv_data(const struct tpl_csv_row *row, const struct tpl_csv_binding *b);

#endif
