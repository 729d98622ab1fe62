/* csv_row: see csv_row.h. libcsv calls back per field and per record; the
 * reader keeps the header row and the wanted row, counts the others, and
 * stops reading once it has the wanted row. */
#include "engine/csv_row.h"

#include <csv.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct picker {
	struct csv_pick *out;
	unsigned long want;        /* data row wanted */
	unsigned long record;      /* records finished (the header is record 0) */
	size_t fields;             /* fields of the record being read */
	size_t bytes;              /* bytes kept of it */
	const char *problem;       /* set by a callback: stop */
	char why[160];
	int done;
};

static struct csv_fields *keeping(struct picker *pk)
{
	if (pk->record == 0)
		return &pk->out->header;
	return pk->record == pk->want ? &pk->out->row : NULL;
}

static void on_field(void *s, size_t len, void *ud)
{
	struct picker *pk = ud;
	struct csv_fields *f = keeping(pk);

	if (pk->problem || pk->done)
		return;
	if (++pk->fields > CSV_ROW_FIELDS_MAX) {
		snprintf(pk->why, sizeof pk->why, "row %lu has more than %d fields", pk->record,
			 CSV_ROW_FIELDS_MAX);
		pk->problem = pk->why;
		return;
	}
	if (!f)
		return;
	pk->bytes += len;
	if (pk->bytes > CSV_ROW_BYTES_MAX) {
		pk->problem = "row larger than 1 MiB";
		return;
	}
	char *copy = malloc(len + 1);
	if (!copy) {
		pk->problem = "out of memory";
		return;
	}
	if (len)
		memcpy(copy, s, len);
	copy[len] = '\0';
	f->text[f->n] = copy;
	f->len[f->n] = len;
	f->n++;
}

static void on_record(int c, void *ud)
{
	struct picker *pk = ud;
	size_t cols = pk->out->header.n;

	if (pk->problem || pk->done)
		return;
	if (pk->record > 0 && pk->fields != cols) {
		if (pk->fields < cols)
			snprintf(pk->why, sizeof pk->why, "row %lu has %zu fields, the header %zu (no '%.40s')",
				 pk->record, pk->fields, cols, pk->out->header.text[pk->fields]);
		else
			snprintf(pk->why, sizeof pk->why, "row %lu has %zu fields, the header %zu",
				 pk->record, pk->fields, cols);
		pk->problem = pk->why;
		return;
	}
	if (pk->record == pk->want)
		pk->done = 1;
	pk->record++;
	pk->fields = 0;
	pk->bytes = 0;
}

/* Line and column (1-based) of offset off in buf, from the place *lc. */
static void advance(const char *buf, size_t n, unsigned long *line, unsigned long *col)
{
	for (size_t i = 0; i < n; i++) {
		if (buf[i] == '\n') {
			(*line)++;
			*col = 1;
		} else {
			(*col)++;
		}
	}
}

int csv_pick_row(const char *path, unsigned long n, struct csv_pick *out, char *err, size_t errlen)
{
	struct csv_parser p;
	struct picker pk = { .out = out, .want = n };
	unsigned long line = 1, col = 1;
	char buf[65536];
	int rc = -1;

	memset(out, 0, sizeof *out);
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL) != 0) {
		snprintf(err, errlen, "%s: out of memory", path);
		fclose(f);
		return -1;
	}
	size_t got;
	while (!pk.done && !pk.problem && (got = fread(buf, 1, sizeof buf, f)) > 0) {
		size_t used = csv_parse(&p, buf, got, on_field, on_record, &pk);
		if (used != got) {
			advance(buf, used, &line, &col);
			snprintf(err, errlen, "%s:%lu:%lu: %s", path, line, col,
				 csv_strerror(csv_error(&p)));
			goto done;
		}
		advance(buf, got, &line, &col);
	}
	if (ferror(f)) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto done;
	}
	if (!pk.done && !pk.problem && csv_fini(&p, on_field, on_record, &pk) != 0) {
		snprintf(err, errlen, "%s:%lu:%lu: %s", path, line, col, csv_strerror(csv_error(&p)));
		goto done;
	}
	if (pk.problem) {
		snprintf(err, errlen, "%s: %s", path, pk.problem);
		goto done;
	}
	if (out->header.n == 0) {
		snprintf(err, errlen, "%s: no header row", path);
		goto done;
	}
	if (!pk.done) {
		snprintf(err, errlen, "%s: no data row %lu (the file has %lu)", path, n,
			 pk.record ? pk.record - 1 : 0);
		goto done;
	}
	rc = 0;
done:
	csv_free(&p);
	fclose(f);
	if (rc)
		csv_pick_free(out);
	return rc;
}

static void fields_free(struct csv_fields *f)
{
	for (size_t i = 0; i < f->n; i++)
		free(f->text[i]);
	f->n = 0;
}

void csv_pick_free(struct csv_pick *p)
{
	fields_free(&p->header);
	fields_free(&p->row);
}
