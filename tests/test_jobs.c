/* test_jobs: what volley send keeps and reads besides the pool.
 * csv_source: every row's offset and line (CRLF, blank lines, quoted line
 * ends, a last row without a newline, rows past the 64 KiB read buffer),
 * each row read again at its offset, bad rows named and skipped; the
 * suppression list (case, its file read and appended); the retry schedule;
 * the delivery log written and replayed (a cut last line, another CSV). */
#include "engine/csv_source.h"
#include "engine/delivery_log.h"
#include "engine/retry.h"
#include "engine/suppress.h"
#include "tests/testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[] = "/tmp/volley-test-jobs-XXXXXX";

static const char *path_in_dir(const char *name)
{
	static char buf[4][256];
	static int k;
	k = (k + 1) % 4;
	snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
	return buf[k];
}

static void write_file(const char *path, const char *text, size_t len)
{
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(text, 1, len, f) != len || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
}

struct want_row {
	enum csv_next got;
	unsigned long line;
	const char *first;      /* the first field, for good rows */
	const char *second;
};

/* Reads every row of text and checks each against want; then reads each
 * good row again at its offset. */
static void check_rows(const char *text, const struct want_row *want, size_t n)
{
	const char *path = path_in_dir("rows.csv");
	char err[512];
	struct csv_record rec;
	off_t *offsets = calloc(n, sizeof *offsets);

	write_file(path, text, strlen(text));
	struct csv_source *s = csv_source_open(path, err, sizeof err);
	if (!s || !offsets) {
		T_FAIL("open: %s", err);
		free(offsets);
		return;
	}
	T_EQ_INT(csv_source_header(s)->n, 2);
	for (size_t i = 0; i < n; i++) {
		enum csv_next got = csv_source_next(s, &rec, err, sizeof err);
		T_EQ_INT(got, want[i].got);
		T_EQ_INT(rec.row, i + 1);
		T_EQ_INT(rec.line, want[i].line);
		offsets[i] = rec.offset;
		if (got == CSV_ROW && want[i].got == CSV_ROW) {
			T_EQ_STR(rec.fields[0], want[i].first);
			T_EQ_STR(rec.fields[1], want[i].second);
		}
		if (got == CSV_BAD_ROW)
			T_TRUE(strstr(err, "rows.csv:") != NULL);
	}
	T_EQ_INT(csv_source_next(s, &rec, err, sizeof err), CSV_END);
	T_EQ_INT(csv_source_next(s, &rec, err, sizeof err), CSV_END);
	/* read again at the offsets, last first */
	for (size_t i = n; i-- > 0;) {
		if (want[i].got != CSV_ROW)
			continue;
		enum csv_next got = csv_source_read_at(s, offsets[i], i + 1, want[i].line, &rec, err,
						       sizeof err);
		T_EQ_INT(got, CSV_ROW);
		if (got == CSV_ROW) {
			T_EQ_STR(rec.fields[0], want[i].first);
			T_EQ_STR(rec.fields[1], want[i].second);
			T_EQ_INT(rec.row, i + 1);
		}
	}
	csv_source_close(s);
	free(offsets);
}

static void test_csv_source(void)
{
	static const struct want_row plain[] = {
		{ CSV_ROW, 2, "a@x.test", "Ann" },
		{ CSV_ROW, 3, "b@x.test", "Bob" },
	};
	check_rows("email,name\na@x.test,Ann\nb@x.test,Bob\n", plain, 2);
	/* CRLF, a last row without its newline */
	check_rows("email,name\r\na@x.test,Ann\r\nb@x.test,Bob", plain, 2);
	/* blank lines before, between and after; spaces around fields */
	static const struct want_row blanks[] = {
		{ CSV_ROW, 4, "a@x.test", "Ann" },
		{ CSV_ROW, 7, "b@x.test", "Bob" },
	};
	check_rows("email,name\n\n\na@x.test,Ann\n\r\n\nb@x.test , Bob\n\n", blanks, 2);
	/* quoted fields with commas, quotes and line ends */
	static const struct want_row quoted[] = {
		{ CSV_ROW, 2, "a@x.test", "Ann \"the\"\nsecond, line" },
		{ CSV_ROW, 4, "b@x.test", "" },
		{ CSV_ROW, 5, "c,d@x.test", "Cy\r\n\r\n" },
		{ CSV_ROW, 8, "e@x.test", "Eve" },
	};
	check_rows("email,name\na@x.test,\"Ann \"\"the\"\"\nsecond, line\"\nb@x.test,\n"
		   "\"c,d@x.test\",\"Cy\r\n\r\n\"\ne@x.test,Eve\n", quoted, 4);
	/* bad rows: too few fields, too many, a stray quote; the rest go on */
	static const struct want_row bad[] = {
		{ CSV_ROW, 2, "a@x.test", "Ann" },
		{ CSV_BAD_ROW, 3, NULL, NULL },
		{ CSV_BAD_ROW, 4, NULL, NULL },
		{ CSV_BAD_ROW, 5, NULL, NULL },
		{ CSV_ROW, 6, "e@x.test", "Eve" },
	};
	check_rows("email,name\na@x.test,Ann\nb@x.test\nc@x.test,Cy,3\nd@x.test,\"D\"x\ne@x.test,Eve\n",
		   bad, 5);

	/* rows past the 64 KiB buffer, and one longer than it */
	size_t cap = 400000, len = 0;
	char *big = malloc(cap);
	struct want_row many[2000];
	len += (size_t)snprintf(big + len, cap - len, "email,name\n");
	for (int i = 0; i < 1500; i++) {
		len += (size_t)snprintf(big + len, cap - len, "u%d@x.test,User %d\n", i, i);
		many[i] = (struct want_row){ CSV_ROW, (unsigned long)i + 2, NULL, NULL };
	}
	len += (size_t)snprintf(big + len, cap - len, "long@x.test,\"");
	memset(big + len, 'L', 100000);
	len += 100000;
	len += (size_t)snprintf(big + len, cap - len, "\"\nlast@x.test,Last\n");
	big[len] = '\0';
	char names[1500][2][32];
	for (int i = 0; i < 1500; i++) {
		snprintf(names[i][0], sizeof names[i][0], "u%d@x.test", i);
		snprintf(names[i][1], sizeof names[i][1], "User %d", i);
		many[i].first = names[i][0];
		many[i].second = names[i][1];
	}
	char *l = malloc(100001);
	memset(l, 'L', 100000);
	l[100000] = '\0';
	many[1500] = (struct want_row){ CSV_ROW, 1502, "long@x.test", l };
	many[1501] = (struct want_row){ CSV_ROW, 1503, "last@x.test", "Last" };
	check_rows(big, many, 1502);
	free(l);
	free(big);

	/* a bad line longer than the read buffer is dropped whole: its tail
	 * is no row of its own */
	size_t blen = 0;
	big = malloc(200000);
	blen += (size_t)snprintf(big + blen, 200000 - blen, "email,name\nx\"bad,");
	memset(big + blen, 'y', 100000);
	blen += 100000;
	blen += (size_t)snprintf(big + blen, 200000 - blen, ",victim@x.test\nb@x.test,Bob\n");
	big[blen] = '\0';
	static const struct want_row longbad[] = {
		{ CSV_BAD_ROW, 2, NULL, NULL },
		{ CSV_ROW, 3, "b@x.test", "Bob" },
	};
	check_rows(big, longbad, 2);
	free(big);
	/* a UTF-8 byte order mark before the header */
	check_rows("\xef\xbb\xbf" "email,name\na@x.test,Ann\nb@x.test,Bob\n", plain, 2);

	/* the header: missing, and a column looked up */
	char err[256];
	write_file(path_in_dir("empty.csv"), "\n\n", 2);
	T_TRUE(csv_source_open(path_in_dir("empty.csv"), err, sizeof err) == NULL);
	T_TRUE(strstr(err, "no header row") != NULL);
	T_TRUE(csv_source_open(path_in_dir("none.csv"), err, sizeof err) == NULL);
	write_file(path_in_dir("h.csv"), "\xef\xbb\xbfname,email,email\n", 20);
	struct csv_source *s = csv_source_open(path_in_dir("h.csv"), err, sizeof err);
	T_TRUE(s != NULL);
	if (s) {
		T_EQ_INT(csv_source_column(s, "name"), 0);
		T_EQ_INT(csv_source_column(s, "email"), 1);
		T_EQ_INT(csv_source_column(s, "mail"), -1);
		struct csv_record rec;
		T_EQ_INT(csv_source_next(s, &rec, err, sizeof err), CSV_END);
		csv_source_close(s);
	}
}

static void test_suppress(void)
{
	char err[256];
	const char *path = path_in_dir("suppress.txt");
	write_file(path, "# bounced\n\nBob@Example.TEST\n <carol@x.test> \r\n", 46);
	struct suppress *sp = suppress_open(path, err, sizeof err);
	if (!sp) {
		T_FAIL("open: %s", err);
		return;
	}
	T_EQ_INT(suppress_count(sp), 2);
	T_TRUE(suppress_has(sp, "bob@example.test", 16));
	T_TRUE(suppress_has(sp, "BOB@EXAMPLE.TEST", 16));
	T_TRUE(suppress_has(sp, "carol@x.test", 12));
	T_TRUE(!suppress_has(sp, "bob@example.tes", 15));
	T_EQ_INT(suppress_add(sp, "dave@x.test", 11), 1);
	T_EQ_INT(suppress_add(sp, "DAVE@x.test", 11), 0);
	T_EQ_INT(suppress_add(sp, "a\r\nb@x.test", 11), -1);
	for (int i = 0; i < 5000; i++) {   /* grow past the first table */
		char a[32];
		int n = snprintf(a, sizeof a, "u%d@many.test", i);
		suppress_add(sp, a, (size_t)n);
	}
	T_EQ_INT(suppress_count(sp), 5003);
	T_TRUE(suppress_has(sp, "U4999@MANY.test", 15));
	suppress_close(sp);
	/* the adds reached the file */
	sp = suppress_open(path, err, sizeof err);
	T_TRUE(sp != NULL);
	if (sp) {
		T_EQ_INT(suppress_count(sp), 5003);
		T_TRUE(suppress_has(sp, "dave@x.test", 11));
		suppress_close(sp);
	}
	/* a line too long to be an address is named */
	char longline[600];
	memset(longline, 'a', sizeof longline - 1);
	longline[sizeof longline - 1] = '\n';
	write_file(path_in_dir("long.txt"), longline, sizeof longline);
	T_TRUE(suppress_open(path_in_dir("long.txt"), err, sizeof err) == NULL);
	T_TRUE(strstr(err, "long.txt:1:") != NULL);
	/* a file whose last line has no LF: the first add ends it */
	write_file(path_in_dir("nolf.txt"), "old@x.test", 10);
	sp = suppress_open(path_in_dir("nolf.txt"), err, sizeof err);
	T_TRUE(sp != NULL && suppress_add(sp, "new@x.test", 10) == 1);
	suppress_close(sp);
	sp = suppress_open(path_in_dir("nolf.txt"), err, sizeof err);
	T_TRUE(sp != NULL && suppress_has(sp, "old@x.test", 10) && suppress_has(sp, "new@x.test", 10));
	suppress_close(sp);
	/* in memory only */
	sp = suppress_open(NULL, err, sizeof err);
	T_TRUE(sp != NULL && suppress_add(sp, "x@y.test", 8) == 1 && suppress_has(sp, "X@Y.TEST", 8));
	suppress_close(sp);
}

static void test_retry(void)
{
	struct retry_policy p = { .max_attempts = 5, .base_ms = 1000, .max_delay_ms = 5000,
				  .max_age_ms = 60000 };
	int64_t at = 0;

	T_EQ_INT(retry_next(&p, 1, 0, 100, &at), 1);
	T_EQ_INT(at, 1100);
	T_EQ_INT(retry_next(&p, 2, 0, 100, &at), 1);
	T_EQ_INT(at, 2100);
	T_EQ_INT(retry_next(&p, 3, 0, 100, &at), 1);
	T_EQ_INT(at, 4100);
	T_EQ_INT(retry_next(&p, 4, 0, 100, &at), 1);
	T_EQ_INT(at, 5100);                               /* capped */
	T_EQ_INT(retry_next(&p, 5, 0, 100, &at), 0);      /* attempts spent */
	T_EQ_INT(retry_next(&p, 1, 0, 59500, &at), 0);    /* would be past the age */
	T_EQ_INT(retry_next(&p, 1, 0, 58000, &at), 1);
	p.max_age_ms = 0;
	p.max_attempts = 100;
	T_EQ_INT(retry_next(&p, 90, 0, 0, &at), 1);       /* no overflow doubling */
	T_EQ_INT(at, 5000);
	retry_policy_default(&p);
	T_EQ_INT(p.max_attempts, 8);
}

struct seen_log {
	struct delivery_seen s[16];
	int n;
};

static void on_seen(void *ud, const struct delivery_seen *s)
{
	struct seen_log *l = ud;
	if (l->n < 16)
		l->s[l->n++] = *s;
}

static void test_delivery_log(void)
{
	char err[512];
	const char *path = path_in_dir("send.log");
	const char *csv = path_in_dir("rows.csv");
	unsigned long skipped = 0;
	struct seen_log got = { 0 };

	unlink(path);
	T_EQ_INT(delivery_log_replay(path, csv, on_seen, &got, &skipped, err, sizeof err), 0);
	T_EQ_INT(got.n, 0);   /* no log yet: nothing seen */
	struct delivery_log *l = delivery_log_open(path, err, sizeof err);
	if (!l) {
		T_FAIL("open: %s", err);
		return;
	}
	T_EQ_INT(delivery_log_start(l, csv, path_in_dir("t.tmpl"), 1765150000000), 0);
	static const char bad_text[] = "Mailbox \xff\xfe unknown\n\"quoted\"";
	struct delivery_event e = {
		.row = 3, .line = 4, .offset = 77, .rcpt = "a@x.test", .attempt = 1, .outcome = OUTCOME_DEFERRED,
		.code = 451, .enhanced = "4.3.0", .text = bad_text, .text_len = sizeof bad_text - 1,
		.phase = "rcpt", .cls = "transient_failure", .action = "soft", .relay = "smtp://127.0.0.1:25",
		.latency_ms = 12.34, .time_ms = 1765150001234, .retry_at_ms = 1765150061234,
	};
	T_EQ_INT(delivery_log_write(l, &e), 0);
	e.attempt = 2;
	e.outcome = OUTCOME_DELIVERED;
	e.code = 250;
	e.retry_at_ms = 0;
	e.time_ms = 1765150062000;
	T_EQ_INT(delivery_log_write(l, &e), 0);
	struct delivery_event inv = { .row = 5, .line = 7, .outcome = OUTCOME_INVALID, .text = "bad",
				      .text_len = 3, .latency_ms = -1, .time_ms = 1765150002000 };
	T_EQ_INT(delivery_log_write(l, &inv), 0);
	T_EQ_INT(delivery_log_sync(l), 0);
	delivery_log_close(l);

	/* a line cut by a crash at the end */
	FILE *f = fopen(path, "a");
	fputs("{\"row\":9,\"line\":10,\"outc", f);
	fclose(f);

	l = delivery_log_open(path, err, sizeof err);   /* ends the cut line first */
	struct delivery_event later = { .row = 6, .line = 8, .offset = 99, .attempt = 1,
					.outcome = OUTCOME_DELIVERED, .latency_ms = -1,
					.time_ms = 1765150003000 };
	T_TRUE(l != NULL && delivery_log_write(l, &later) == 0);
	delivery_log_close(l);
	T_EQ_INT(delivery_log_replay(path, csv, on_seen, &got, &skipped, err, sizeof err), 0);
	T_EQ_INT(skipped, 1);
	T_EQ_INT(got.n, 4);
	T_EQ_INT(got.s[3].row, 6);
	T_EQ_INT(got.s[0].row, 3);
	T_EQ_INT(got.s[0].attempt, 1);
	T_EQ_INT(got.s[0].outcome, OUTCOME_DEFERRED);
	T_EQ_INT(got.s[0].time_ms, 1765150001234);
	T_EQ_INT(got.s[0].retry_at_ms, 1765150061234);
	T_EQ_INT(got.s[0].offset, 77);
	T_EQ_INT(got.s[1].outcome, OUTCOME_DELIVERED);
	T_EQ_INT(got.s[1].attempt, 2);
	T_EQ_INT(got.s[1].retry_at_ms, -1);
	T_EQ_INT(got.s[2].row, 5);
	T_EQ_INT(got.s[2].outcome, OUTCOME_INVALID);
	T_TRUE(delivery_outcome_final(OUTCOME_INVALID) && !delivery_outcome_final(OUTCOME_DEFERRED));

	/* the line as JSON: the text's bad bytes replaced, its quote escaped */
	char line[1024];
	f = fopen(path, "r");
	T_TRUE(fgets(line, sizeof line, f) != NULL);   /* start */
	T_TRUE(strstr(line, "\"event\":\"start\"") != NULL);
	T_TRUE(fgets(line, sizeof line, f) != NULL);
	fclose(f);
	T_TRUE(strstr(line, "\"text\":\"Mailbox ?? unknown\\n\\\"quoted\\\"\"") != NULL);
	T_TRUE(strstr(line, "\"retry_at\":\"2025-12-07T23:27:41.234Z\"") != NULL);
	T_TRUE(strstr(line, "\"latency_ms\":12.3") != NULL);

	/* the same log for another CSV is refused */
	got.n = 0;
	T_EQ_INT(delivery_log_replay(path, path_in_dir("other.csv"), on_seen, &got, &skipped, err,
				     sizeof err), -1);
	T_TRUE(strstr(err, "belongs to a send of") != NULL);
	T_EQ_INT(delivery_outcome_by_name("expired"), OUTCOME_EXPIRED);
	T_EQ_INT(delivery_outcome_by_name("lost"), -1);
}

int main(void)
{
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	test_csv_source();
	test_suppress();
	test_retry();
	test_delivery_log();
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return t_done("jobs");
}
