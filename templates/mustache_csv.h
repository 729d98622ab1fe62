/* mustache_csv: renders templates with one CSV row (volley render --csv, CSV
 * job intake). The columns are named by the file's header row; a program's
 * symbols are bound to column numbers once per file (tpl_csv_bind), so that
 * a lookup is an index, with no hashing per render. A row is an object of
 * strings: a column is a string (an empty one is falsey and hides a
 * section), a name that is no column is missing. Dotted names reach
 * nothing past the first part: a CSV value has no members. */
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

/* Column numbers of a program's symbols: col[sym] is the column named like
 * the symbol, or -1. */
struct tpl_csv_binding {
	int32_t *col;
	size_t nsyms;
};

/* Binds t's symbols to the columns names[0..n) (names[i] is lens[i] bytes;
 * when two columns share a name the first wins). Returns 0, or -1 when out
 * of memory. */
int tpl_csv_bind(struct tpl_csv_binding *b, const struct tpl *t, const char *const *names,
		 const size_t *lens, size_t n);

void tpl_csv_binding_free(struct tpl_csv_binding *b);

extern const struct tpl_data_ops tpl_csv_ops;

/* Returns the data for rendering the program b was bound for with row;
 * both must live as long as the render. */
struct tpl_data tpl_csv_data(const struct tpl_csv_row *row, const struct tpl_csv_binding *b);

#endif
