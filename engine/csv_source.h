/* csv_source: a CSV file of jobs, read a row at a time (libcsv), for
 * `volley send --csv`. The first row names the columns; every data row
 * after it is a job, numbered from 1 (as `volley render --row N` counts).
 *
 * A row knows where it starts in the file (byte offset and line), so that
 * a job to retry later is kept as that place, not as its data: the file is
 * the store, and memory holds only what is in flight.
 *
 * Records end at LF (a CR before it is dropped); quoted fields may hold
 * line ends. A bad row (a CSV syntax error, a field count that is not the
 * header's, a row over CSV_ROW_BYTES_MAX) is reported as such, naming the
 * file, line and column, and reading goes on with the next line. */
#ifndef VOLLEY_CSV_SOURCE_H
#define VOLLEY_CSV_SOURCE_H

#include <stddef.h>
#include <sys/types.h>

#include "engine/csv_row.h"   /* CSV_ROW_FIELDS_MAX, CSV_ROW_BYTES_MAX */

struct csv_source;

/* One row: fields[i][0..lens[i]) (NUL-terminated too), valid until the
 * next call on its source. */
struct csv_record {
	unsigned long row;        /* data row number, from 1 */
	unsigned long line;       /* the line it starts on, from 1 */
	off_t offset;             /* the byte it starts at */
	const char *const *fields;
	const size_t *lens;
	size_t n;
};

/* Opens path and reads its header row. Returns the source, or NULL with
 * the reason in err ("path:line:col: what" or "path: what"). */
struct csv_source *csv_source_open(const char *path, char *err, size_t errlen);
void csv_source_close(struct csv_source *s);

/* The header row: column names. */
const struct csv_record *csv_source_header(const struct csv_source *s);
/* The header's first column named name, or -1. */
int csv_source_column(const struct csv_source *s, const char *name);

enum csv_next {
	CSV_ROW = 1,      /* *rec is the next row */
	CSV_END = 0,      /* no more rows */
	CSV_BAD_ROW = -1, /* rec->row, line and offset say which; err why; go on */
	CSV_FAILED = -2,  /* reading failed (I/O): err says why; stop */
};

/* The next data row. */
enum csv_next csv_source_next(struct csv_source *s, struct csv_record *rec, char *err,
			      size_t errlen);

/* Reads the row that starts at offset again (its row and line numbers are
 * the caller's, from when it was first read), without moving where
 * csv_source_next is. Returns CSV_ROW, CSV_BAD_ROW or CSV_FAILED (the file
 * changed under us, say), as csv_source_next. */
enum csv_next csv_source_read_at(struct csv_source *s, off_t offset, unsigned long row,
				 unsigned long line, struct csv_record *rec, char *err,
				 size_t errlen);

#endif
