/* render_bench: renders a campaign template for N generated recipients on
 * one thread and prints messages/s (bench/render_bench.sh runs it). The
 * data comes from a small adapter: each recipient's values are formatted
 * from its number into a row of text, so that every message differs and no
 * JSON is parsed. Rows are formatted a batch at a time, apart from the
 * renders, and the two are timed apart: msgs_per_s is what templates/
 * (mustache, MIME, DKIM) does, with_rows_msgs_per_s the same with the
 * formatting of the rows counted in (the bench's own data source, a
 * stand-in for a CSV reader or a Redis reply).
 *
 * usage: render_bench TEMPLATE N [KEYFILE DOMAIN SELECTOR]
 * RENDER_BENCH_OUT=FILE writes every message to FILE (to compare the output
 * of two builds byte for byte; the timing then counts the writes). */
#include "bench/measure.h"
#include "templates/dkim.h"
#include "templates/message_render.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ITEMS 5
#define BATCH 8    /* rows formatted before their renders: 16 KB, which stays in the
			  * caches beside the template and the message (64 rows, 128 KB,
			  * made every render a third slower on this machine) */

/* The variables the bench template uses: ten at the top, three per item. */
enum field {
	F_NONE = -1,
	F_NAME, F_EMAIL, F_FIRST, F_LAST, F_CITY, F_COMPANY, F_CODE, F_AMOUNT, F_SUBJECT, F_SENDER,
	F_ITEMS, F_TITLE, F_URL, F_PRICE, F_COUNT
};

static const char *const field_names[F_COUNT] = {
	"name", "email", "first", "last", "city", "company", "code", "amount", "subject",
	"sender_name", "items", "title", "url", "price",
};

/* Values: ptr says which kind, aux which item or which row field. */
static const char k_root, k_items, k_item, k_text;

/* One recipient's values as a CSV row holds them: text, back to back in
 * one buffer, formatted before the render (as a CSV reader splits a row
 * into fields before the row is rendered). The ten top fields come first,
 * then each item's title, url and price. */
#define TOP_FIELDS (F_SENDER + 1)
#define ITEM_FIELDS (F_PRICE - F_TITLE + 1)
#define ROW_FIELDS (TOP_FIELDS + ITEMS * ITEM_FIELDS)

struct row {
	const char *field[ROW_FIELDS];
	size_t len[ROW_FIELDS];
	char buf[ROW_FIELDS * TPL_SCRATCH];
};

struct piece_data {
	const struct row *row;
	int8_t *field_of_sym;
	size_t nsyms;
};

static int bench_get(void *ud, struct tpl_val obj, const struct tpl_key *key, struct tpl_val *out)
{
	const struct piece_data *pd = ud;
	enum field f = key->sym < pd->nsyms ? pd->field_of_sym[key->sym] : F_NONE;

	if (obj.ptr == &k_root && f >= F_NAME && f <= F_SENDER) {
		*out = (struct tpl_val){ &k_text, (uintptr_t)f };
		return 1;
	}
	if (obj.ptr == &k_root && f == F_ITEMS) {
		*out = (struct tpl_val){ &k_items, 0 };
		return 1;
	}
	if (obj.ptr == &k_item && f >= F_TITLE && f <= F_PRICE) {
		*out = (struct tpl_val){ &k_text, TOP_FIELDS + obj.aux * ITEM_FIELDS + (f - F_TITLE) };
		return 1;
	}
	return 0;
}

static enum tpl_kind bench_kind(void *ud, struct tpl_val v)
{
	if (v.ptr == &k_text)
		return TPL_STRING;
	if (v.ptr == &k_items)
		return TPL_LIST;
	return TPL_OBJECT;
}

static const char *bench_text(void *ud, struct tpl_val v, char scratch[TPL_SCRATCH], size_t *len)
{
	const struct piece_data *pd = ud;

	if (v.ptr != &k_text || v.aux >= ROW_FIELDS) {
		*len = 0;
		return "";
	}
	*len = pd->row->len[v.aux];
	return pd->row->field[v.aux];
}

/* bench_get, bench_kind and bench_text in one call. */
static int bench_find(void *ud, struct tpl_val obj, const struct tpl_key *key, struct tpl_found *out)
{
	if (!bench_get(ud, obj, key, &out->v))
		return 0;
	out->kind = bench_kind(ud, out->v);
	out->s = out->kind == TPL_STRING ? bench_text(ud, out->v, NULL, &out->len) : NULL;
	return 1;
}

/* A value being written into the adapter's scratch: snprintf would cost
 * more than the whole render (its format parsing), and a real adapter (CSV,
 * Redis) hands over text it already has. */
struct text {
	char *p;
	size_t len;
};

static void put_str(struct text *t, const char *s)
{
	size_t n = strlen(s);

	if (n > TPL_SCRATCH - t->len)
		n = TPL_SCRATCH - t->len;
	memcpy(t->p + t->len, s, n);
	t->len += n;
}

/* v in base 10, at least width digits with leading zeros (the divisions
 * by a constant compile to multiplications). */
static void put_dec(struct text *t, uint64_t v, size_t width)
{
	char digits[24];
	size_t n = 0;

	do {
		digits[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n < width && n < sizeof digits)
		digits[n++] = '0';
	while (n > 0 && t->len < TPL_SCRATCH)
		t->p[t->len++] = digits[--n];
}

/* v in lower-case hex, at least 8 digits. */
static void put_hex8(struct text *t, uint64_t v)
{
	char digits[16];
	size_t n = 0;

	do {
		digits[n++] = "0123456789abcdef"[v & 15];
		v >>= 4;
	} while (v);
	while (n < 8)
		digits[n++] = '0';
	while (n > 0 && t->len < TPL_SCRATCH)
		t->p[t->len++] = digits[--n];
}

/* Formats field f (of item) for recipient r into t. */
static void format_value(struct text *t, enum field f, uint64_t r, unsigned item)
{
	switch (f) {
	case F_NAME: put_str(t, "Recipient "); put_dec(t, r, 0); break;
	case F_EMAIL: put_str(t, "user"); put_dec(t, r, 0); put_str(t, "@example.test"); break;
	case F_FIRST: put_str(t, "First"); put_dec(t, r % 9973, 0); break;
	case F_LAST: put_str(t, "Last"); put_dec(t, r % 7919, 0); break;
	case F_CITY: put_str(t, "City "); put_dec(t, r % 101, 0); break;
	case F_COMPANY: put_str(t, "Company & Sons "); put_dec(t, r % 211, 0); break;
	case F_CODE: put_str(t, "C-"); put_hex8(t, r * 2654435761u); break;
	case F_AMOUNT:
		put_dec(t, r % 1000, 0);
		put_str(t, ".");
		put_dec(t, r % 100, 2);
		put_str(t, " EUR");
		break;
	case F_SUBJECT: put_str(t, "Your offers, week "); put_dec(t, r % 52 + 1, 0); break;
	case F_SENDER: put_str(t, "Example Store"); break;
	case F_TITLE:
		put_str(t, "Product ");
		put_dec(t, (r + item) % 997, 0);
		put_str(t, " <");
		put_dec(t, item, 0);
		put_str(t, ">");
		break;
	case F_URL:
		put_str(t, "https://shop.example.test/p/");
		put_dec(t, (r + item) % 997, 0);
		put_str(t, "?u=");
		put_dec(t, r, 0);
		break;
	case F_PRICE: put_dec(t, (r + item) % 90 + 9, 0); put_str(t, ".99"); break;
	default: break;
	}
}

/* Formats recipient r's values into row, each in at most TPL_SCRATCH
 * bytes right after the one before. */
static void fill_row(struct row *row, uint64_t r)
{
	size_t used = 0;

	for (unsigned i = 0; i < ROW_FIELDS; i++) {
		struct text t = { row->buf + used, 0 };
		if (i < TOP_FIELDS)
			format_value(&t, (enum field)i, r, 0);
		else
			format_value(&t, F_TITLE + (i - TOP_FIELDS) % ITEM_FIELDS, r,
				     (i - TOP_FIELDS) / ITEM_FIELDS);
		row->field[i] = t.p;
		row->len[i] = t.len;
		used += t.len;
	}
}

static size_t bench_list_len(void *ud, struct tpl_val list)
{
	return ITEMS;
}

static struct tpl_val bench_list_at(void *ud, struct tpl_val list, size_t i)
{
	return (struct tpl_val){ &k_item, i };
}

static const struct tpl_data_ops bench_ops = {
	bench_get, bench_kind, bench_text, bench_list_len, bench_list_at, bench_find,
};

struct bench_data {
	struct row rows[BATCH];
	struct piece_data *pieces;
	size_t npieces;
};

static struct tpl_data bench_piece(const void *ud, size_t piece)
{
	const struct bench_data *bd = ud;
	return (struct tpl_data){ &bench_ops, &bd->pieces[piece], { &k_root, 0 } };
}

/* Binds each piece's symbols to the fields, once. Returns 0 or -1. */
static int bind(const struct campaign_template *t, struct bench_data *bd)
{
	size_t np = campaign_template_pieces(t);

	bd->pieces = calloc(np ? np : 1, sizeof *bd->pieces);
	if (!bd->pieces)
		return -1;
	bd->npieces = np;
	for (size_t p = 0; p < np; p++) {
		const struct tpl *prog = campaign_template_program(t, p);
		struct piece_data *pd = &bd->pieces[p];
		pd->row = &bd->rows[0];
		pd->nsyms = tpl_symbol_count(prog);
		pd->field_of_sym = malloc(pd->nsyms ? pd->nsyms : 1);
		if (!pd->field_of_sym)
			return -1;
		for (size_t s = 0; s < pd->nsyms; s++) {
			size_t len;
			const char *name = tpl_symbol(prog, s, &len);
			pd->field_of_sym[s] = F_NONE;
			for (int f = 0; f < F_COUNT; f++)
				if (strlen(field_names[f]) == len && memcmp(field_names[f], name, len) == 0)
					pd->field_of_sym[s] = (int8_t)f;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	char err[CAMPAIGN_ERR_MAX];
	struct campaign_opts o = { .msgid_domain = "example.test",
				   .unsubscribe_url = "https://example.test/unsubscribe" };
	struct dkim_key *key = NULL;
	struct dkim_signer *signer = NULL;

	if (argc != 3 && argc != 6) {
		fprintf(stderr, "usage: render_bench TEMPLATE N [KEYFILE DOMAIN SELECTOR]\n");
		return 1;
	}
	unsigned long long n = strtoull(argv[2], NULL, 10);
	if (argc == 6) {
		key = dkim_key_load(argv[3], err, sizeof err);
		if (!key) {
			fprintf(stderr, "render_bench: %s: %s\n", argv[3], err);
			return 2;
		}
		struct dkim_signer_opts so = { .domain = argv[4], .nkeys = 1, .oversign_from = 1 };
		so.keys[0] = (struct dkim_signer_key){ key, argv[5] };
		signer = dkim_signer_new(&so, err, sizeof err);
		if (!signer) {
			fprintf(stderr, "render_bench: %s\n", err);
			return 2;
		}
		o.signers[o.nsigners++] = signer;
	}
	struct campaign_template *t = campaign_template_load(argv[1], &o, err, sizeof err);
	if (!t) {
		fprintf(stderr, "render_bench: %s\n", err);
		return 2;
	}
	struct campaign_renderer *r = campaign_renderer_new(t, err, sizeof err);
	if (!r) {
		fprintf(stderr, "render_bench: %s\n", err);
		return 2;
	}

	struct bench_data *bd = calloc(1, sizeof *bd);
	if (!bd || bind(t, bd) != 0) {
		fprintf(stderr, "render_bench: out of memory\n");
		return 2;
	}
	const char *dump_path = getenv("RENDER_BENCH_OUT");
	FILE *dump = dump_path && *dump_path ? fopen(dump_path, "w") : NULL;
	if (dump_path && *dump_path && !dump) {
		perror(dump_path);
		return 2;
	}

	struct campaign_message m;
	unsigned long long bytes = 0;
	int64_t date = (int64_t)time(NULL);
	double rows_s = 0, render_s = 0;
	for (unsigned long long i = 0; i < n; i += BATCH) {
		unsigned batch = n - i < BATCH ? (unsigned)(n - i) : BATCH;
		double t0 = measure_mono_s();
		for (unsigned k = 0; k < batch; k++)
			fill_row(&bd->rows[k], i + k);
		double t1 = measure_mono_s();
		for (unsigned k = 0; k < batch; k++) {
			for (size_t p = 0; p < bd->npieces; p++)
				bd->pieces[p].row = &bd->rows[k];
			if (campaign_render(r, &(struct campaign_data){ bench_piece, bd }, date, &m) != 0) {
				fprintf(stderr, "render_bench: recipient %llu: %s\n", i + k,
					campaign_renderer_errstr(r));
				return 2;
			}
			bytes += m.dkim_len + m.msg_len;
			if (dump && (fwrite(m.dkim, 1, m.dkim_len, dump) != m.dkim_len ||
				     fwrite(m.msg, 1, m.msg_len, dump) != m.msg_len)) {
				perror(dump_path);
				return 2;
			}
		}
		rows_s += t1 - t0;
		render_s += measure_mono_s() - t1;
	}
	if (dump && fclose(dump) != 0) {
		perror(dump_path);
		return 2;
	}
	printf("messages=%llu seconds=%.3f msgs_per_s=%.0f with_rows_msgs_per_s=%.0f avg_bytes=%.0f\n",
	       n, render_s, render_s > 0 ? (double)n / render_s : 0.0,
	       render_s + rows_s > 0 ? (double)n / (render_s + rows_s) : 0.0,
	       n ? (double)bytes / (double)n : 0.0);

	for (size_t p = 0; p < bd->npieces; p++)
		free(bd->pieces[p].field_of_sym);
	free(bd->pieces);
	free(bd);
	campaign_renderer_free(r);
	campaign_template_free(t);
	dkim_signer_free(signer);
	dkim_key_free(key);
	return 0;
}
