/* csv_source: see csv_source.h.
 *
 * libcsv is fed one line at a time (up to and with its LF), and LF alone
 * ends a record (csv_set_term_func), so a record can only end where a piece
 * ends: the next one starts at the following byte, which is how every row
 * knows its offset. A line end inside quotes ends no record; the quotes
 * seen since the record began tell the two apart (an even count: outside
 * quotes, as "" pairs keep it), so a blank line, which libcsv skips, moves
 * the next record's start past it.
 *
 * Two readers share the file: the sequential one, and one for rows read
 * again at an offset (retries), each with its own parser and buffer. */
#include "engine/csv_source.h"

#include <csv.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define READ_CHUNK 65536

struct reader {
	int fd;
	struct csv_parser p;
	int parser_ok;
	char *buf;
	size_t pos, len;          /* unread bytes are buf[pos..len) */
	off_t buf_off;            /* the file offset of buf[0] */
	int eof;
	int skip_line;            /* after a bad piece without its LF: drop up to the LF */
	unsigned long line;       /* the line buf[pos] is on */
	/* the record being read */
	char *arena;              /* its fields, each NUL-terminated */
	size_t used, cap;
	size_t starts[CSV_ROW_FIELDS_MAX];
	size_t lens[CSV_ROW_FIELDS_MAX];
	const char *ptrs[CSV_ROW_FIELDS_MAX];
	size_t nfields;
	const char *problem;      /* a field callback's: the record is bad */
	int complete;             /* a record ended in the last piece */
	unsigned long quotes;     /* quote characters since the record began */
	off_t rec_off;
	unsigned long rec_line;
};

struct csv_source {
	char *path;
	struct reader seq, side;
	size_t columns;           /* the header's */
	unsigned long rows;       /* data rows returned by csv_source_next */
	/* the header, kept */
	char *header_arena;
	const char *header_ptrs[CSV_ROW_FIELDS_MAX];
	size_t header_lens[CSV_ROW_FIELDS_MAX];
	struct csv_record header;
};

static int only_lf(unsigned char c)
{
	return c == '\n';
}

/* Trimmed around unquoted fields: a CR before the LF goes this way. */
static int blank(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

static int parser_start(struct reader *r)
{
	if (r->parser_ok)
		csv_free(&r->p);
	r->parser_ok = csv_init(&r->p, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL) == 0;
	if (!r->parser_ok)
		return -1;
	csv_set_term_func(&r->p, only_lf);
	csv_set_space_func(&r->p, blank);
	return 0;
}

static void record_reset(struct reader *r, off_t off, unsigned long line)
{
	r->used = 0;
	r->nfields = 0;
	r->problem = NULL;
	r->complete = 0;
	r->quotes = 0;
	r->rec_off = off;
	r->rec_line = line;
}

static int reader_init(struct reader *r, int fd)
{
	memset(r, 0, sizeof *r);
	r->fd = fd;
	r->parser_ok = 0;
	r->buf = malloc(READ_CHUNK);
	r->line = 1;
	if (!r->buf || parser_start(r) != 0)
		return -1;
	record_reset(r, 0, 1);
	return 0;
}

static void reader_free(struct reader *r)
{
	if (r->parser_ok)
		csv_free(&r->p);
	free(r->buf);
	free(r->arena);
	if (r->fd >= 0)
		close(r->fd);
}

/* Starts reading at offset off, on line `line`. */
static int reader_seek(struct reader *r, off_t off, unsigned long line)
{
	r->pos = r->len = 0;
	r->buf_off = off;
	r->eof = 0;
	r->line = line;
	record_reset(r, off, line);
	return parser_start(r);
}

static void on_field(void *s, size_t len, void *ud)
{
	struct reader *r = ud;

	if (r->problem)
		return;
	if (r->nfields == CSV_ROW_FIELDS_MAX) {
		r->problem = "more than 1024 fields";
		return;
	}
	if (r->used + len + 1 > CSV_ROW_BYTES_MAX) {
		r->problem = "row larger than 1 MiB";
		return;
	}
	if (r->used + len + 1 > r->cap) {
		size_t cap = r->cap ? r->cap : 4096;
		while (cap < r->used + len + 1)
			cap *= 2;
		char *a = realloc(r->arena, cap);
		if (!a) {
			r->problem = "out of memory";
			return;
		}
		r->arena = a;
		r->cap = cap;
	}
	if (len)
		memcpy(r->arena + r->used, s, len);
	r->arena[r->used + len] = '\0';
	r->starts[r->nfields] = r->used;
	r->lens[r->nfields] = len;
	r->nfields++;
	r->used += len + 1;
}

static void on_record(int c, void *ud)
{
	struct reader *r = ud;
	r->complete = 1;
}

/* More bytes into the buffer, keeping what is unread. Returns 0, or -1
 * (errno) on a read error. */
static int refill(struct reader *r)
{
	if (r->pos > 0) {
		memmove(r->buf, r->buf + r->pos, r->len - r->pos);
		r->buf_off += (off_t)r->pos;
		r->len -= r->pos;
		r->pos = 0;
	}
	while (r->len < READ_CHUNK && !r->eof) {
		ssize_t n = pread(r->fd, r->buf + r->len, READ_CHUNK - r->len, r->buf_off + (off_t)r->len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0)
			r->eof = 1;
		r->len += (size_t)n;
	}
	return 0;
}

static unsigned long count_quotes(const char *s, size_t n)
{
	unsigned long q = 0;
	for (const char *e = s + n; (s = memchr(s, '"', (size_t)(e - s))) != NULL; s++)
		q++;
	return q;
}

/* Column (1-based) of the byte at s + k on a line that starts at s. */
static unsigned long column_of(const char *s, size_t k)
{
	unsigned long col = 1;
	for (size_t i = 0; i < k; i++)
		col = s[i] == '\n' ? 1 : col + 1;
	return col;
}

enum piece_result { PIECE_MORE, PIECE_RECORD, PIECE_BAD, PIECE_END, PIECE_IO };

/* Reads until a record ends (PIECE_RECORD), the file ends (PIECE_END, with
 * nothing pending) or a record is bad (PIECE_BAD, why in err). */
static enum piece_result read_record(struct reader *r, const char *path, char *err, size_t errlen)
{
	for (;;) {
		while (r->skip_line) {   /* the rest of a bad line longer than the buffer */
			const char *nl = memchr(r->buf + r->pos, '\n', r->len - r->pos);
			if (nl) {
				r->pos = (size_t)(nl - r->buf) + 1;
				r->line++;
				r->skip_line = 0;
				record_reset(r, r->buf_off + (off_t)r->pos, r->line);
				break;
			}
			r->pos = r->len;
			if (r->eof)
				return PIECE_END;
			if (refill(r) != 0) {
				snprintf(err, errlen, "%s: %s", path, strerror(errno));
				return PIECE_IO;
			}
		}
		if (r->pos == r->len || !memchr(r->buf + r->pos, '\n', r->len - r->pos)) {
			if (!r->eof && refill(r) != 0) {
				snprintf(err, errlen, "%s: %s", path, strerror(errno));
				return PIECE_IO;
			}
		}
		if (r->pos == r->len) {   /* the end of the file */
			if (csv_fini(&r->p, on_field, on_record, r) != 0) {
				snprintf(err, errlen, "%s:%lu: %s (a quote left open)", path, r->rec_line,
					 csv_strerror(csv_error(&r->p)));
				parser_start(r);
				return PIECE_BAD;
			}
			if (r->complete)
				return PIECE_RECORD;
			return PIECE_END;
		}
		const char *s = r->buf + r->pos;
		const char *nl = memchr(s, '\n', r->len - r->pos);
		size_t n = nl ? (size_t)(nl - s) + 1 : r->len - r->pos;
		size_t used = csv_parse(&r->p, s, n, on_field, on_record, r);
		if (used != n) {
			snprintf(err, errlen, "%s:%lu:%lu: %s", path, r->line, column_of(s, used),
				 csv_strerror(csv_error(&r->p)));
			/* go on after this line, with a parser afresh */
			r->pos += n;
			r->line += nl != NULL;
			r->skip_line = nl == NULL;
			if (parser_start(r) != 0) {
				snprintf(err, errlen, "%s: out of memory", path);
				return PIECE_IO;
			}
			return PIECE_BAD;
		}
		r->quotes += count_quotes(s, n);
		r->pos += n;
		if (nl)
			r->line++;
		if (r->complete)
			return PIECE_RECORD;
		if (nl && r->quotes % 2 == 0)   /* a blank line: the record starts after it */
			record_reset(r, r->buf_off + (off_t)r->pos, r->line);
	}
}

/* After a record or a bad one: the next starts here. */
static void next_record(struct reader *r)
{
	record_reset(r, r->buf_off + (off_t)r->pos, r->line);
}

/* Fills rec from r's record, or says why it is bad. */
static int take_record(struct csv_source *s, struct reader *r, unsigned long row,
		       struct csv_record *rec, char *err, size_t errlen)
{
	rec->row = row;
	rec->line = r->rec_line;
	rec->offset = r->rec_off;
	if (r->problem) {
		snprintf(err, errlen, "%s:%lu: row %lu: %s", s->path, r->rec_line, row, r->problem);
		return -1;
	}
	if (s->columns && r->nfields != s->columns) {
		snprintf(err, errlen, "%s:%lu: row %lu has %zu fields, the header %zu", s->path,
			 r->rec_line, row, r->nfields, s->columns);
		return -1;
	}
	for (size_t i = 0; i < r->nfields; i++)
		r->ptrs[i] = r->arena + r->starts[i];
	rec->fields = r->ptrs;
	rec->lens = r->lens;
	rec->n = r->nfields;
	return 0;
}

struct csv_source *csv_source_open(const char *path, char *err, size_t errlen)
{
	struct csv_source *s = calloc(1, sizeof *s);
	int fd = -1, fd2 = -1;

	if (!s || !(s->path = strdup(path))) {
		snprintf(err, errlen, "%s: out of memory", path);
		free(s);
		return NULL;
	}
	s->seq.fd = s->side.fd = -1;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	fd2 = fd >= 0 ? open(path, O_RDONLY | O_CLOEXEC) : -1;
	if (fd < 0 || fd2 < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		free(s->path);
		free(s);
		return NULL;
	}
	s->seq.fd = fd;
	s->side.fd = fd2;   /* closed by csv_source_close from here on */
	if (reader_init(&s->seq, fd) != 0 || reader_init(&s->side, fd2) != 0) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	/* a UTF-8 byte order mark (spreadsheets write one) is not the
	 * first column's name */
	unsigned char bom[3];
	if (pread(fd, bom, 3, 0) == 3 && bom[0] == 0xef && bom[1] == 0xbb && bom[2] == 0xbf &&
	    reader_seek(&s->seq, 3, 1) != 0) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	switch (read_record(&s->seq, path, err, errlen)) {
	case PIECE_RECORD:
		break;
	case PIECE_END:
		snprintf(err, errlen, "%s: no header row", path);
		goto fail;
	case PIECE_BAD:
		goto fail;   /* a bad header is the file's fault: nothing can be read */
	default:
		goto fail;
	}
	if (take_record(s, &s->seq, 0, &s->header, err, errlen) != 0) {
		goto fail;
	}
	/* keep the header apart from the arena the next rows reuse */
	s->header_arena = malloc(s->seq.used ? s->seq.used : 1);
	if (!s->header_arena) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	memcpy(s->header_arena, s->seq.arena, s->seq.used);
	for (size_t i = 0; i < s->seq.nfields; i++) {
		s->header_ptrs[i] = s->header_arena + s->seq.starts[i];
		s->header_lens[i] = s->seq.lens[i];
	}
	s->header.fields = s->header_ptrs;
	s->header.lens = s->header_lens;
	s->columns = s->seq.nfields;
	next_record(&s->seq);
	return s;
fail:
	csv_source_close(s);
	return NULL;
}

void csv_source_close(struct csv_source *s)
{
	if (!s)
		return;
	reader_free(&s->seq);
	reader_free(&s->side);
	free(s->header_arena);
	free(s->path);
	free(s);
}

const struct csv_record *csv_source_header(const struct csv_source *s)
{
	return &s->header;
}

int csv_source_column(const struct csv_source *s, const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < s->columns; i++)
		if (s->header_lens[i] == n && memcmp(s->header_ptrs[i], name, n) == 0)
			return (int)i;
	return -1;
}

enum csv_next csv_source_next(struct csv_source *s, struct csv_record *rec, char *err,
			      size_t errlen)
{
	struct reader *r = &s->seq;
	enum piece_result pr = read_record(r, s->path, err, errlen);

	switch (pr) {
	case PIECE_END:
		return CSV_END;
	case PIECE_IO:
		return CSV_FAILED;
	case PIECE_BAD:
		rec->row = ++s->rows;
		rec->line = r->rec_line;
		rec->offset = r->rec_off;
		rec->n = 0;
		next_record(r);
		return CSV_BAD_ROW;
	default:
		break;
	}
	int bad = take_record(s, r, ++s->rows, rec, err, errlen);
	next_record(r);
	return bad ? CSV_BAD_ROW : CSV_ROW;
}

enum csv_next csv_source_read_at(struct csv_source *s, off_t offset, unsigned long row,
				 unsigned long line, struct csv_record *rec, char *err,
				 size_t errlen)
{
	struct reader *r = &s->side;

	if (reader_seek(r, offset, line) != 0) {
		snprintf(err, errlen, "%s: out of memory", s->path);
		return CSV_FAILED;
	}
	switch (read_record(r, s->path, err, errlen)) {
	case PIECE_RECORD:
		break;
	case PIECE_END:
		snprintf(err, errlen, "%s:%lu: row %lu is gone (the file changed?)", s->path, line, row);
		return CSV_FAILED;
	case PIECE_BAD:
		rec->row = row;
		rec->line = line;
		rec->offset = offset;
		rec->n = 0;
		return CSV_BAD_ROW;
	default:
		return CSV_FAILED;
	}
	return take_record(s, r, row, rec, err, errlen) ? CSV_BAD_ROW : CSV_ROW;
}
