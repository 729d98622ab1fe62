/* csv_row: reads the header row and one data row of a CSV file (libcsv),
 * for `volley render --csv FILE --row N`. */
#ifndef VOLLEY_CSV_ROW_H
#define VOLLEY_CSV_ROW_H

#include <stddef.h>

#define CSV_ROW_FIELDS_MAX 1024        /* columns in a row */
#define CSV_ROW_BYTES_MAX  (1u << 20)  /* bytes in the header or the data row */

/* One row: field i is text[i][0..len[i]) (NUL-terminated too). */
struct csv_fields {
	char *text[CSV_ROW_FIELDS_MAX];
	size_t len[CSV_ROW_FIELDS_MAX];
	size_t n;
};

struct csv_pick {
	struct csv_fields header;   /* the column names */
	struct csv_fields row;      /* data row N */
};

/* Reads path up to data row n (1-based, counting rows after the header
 * row). Every data row up to it must have as many fields as the header.
 * Returns 0, or -1 with the reason in err, naming the file and the line, or
 * the row and the column. */
int csv_pick_row(const char *path, unsigned long n, struct csv_pick *out, char *err, size_t errlen);

void csv_pick_free(struct csv_pick *p);

#endif
