/* volley render: prints the exact message (RFC 5322, CRLF line ends) one
 * recipient would be sent, from a template and that recipient's data (a
 * JSON object, or one row of a CSV file), DKIM-signed when keys are given. */
#include "engine/campaign_setup.h"
#include "engine/commands.h"
#include "engine/csv_row.h"
#include "templates/dkim.h"
#include "templates/message_render.h"
#include "templates/mustache_csv.h"
#include "templates/mustache_json.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum render_exit { RENDER_OK = 0, RENDER_USAGE = 1, RENDER_FAILED = 2 };

static const char render_usage[] =
"usage: volley render --template FILE (--vars JSON | --csv FILE --row N) [options]\n"
"\n"
"Prints the exact message (RFC 5322, CRLF line ends) that would be sent to one\n"
"recipient: the template rendered with that recipient's data, assembled as MIME,\n"
"and DKIM-signed when keys are given.\n"
"\n"
"options:\n"
"  --template FILE         the template file (headers, empty line, parts);\n"
"                          partials come from its folder\n"
"  --vars JSON             the recipient's data, a JSON object\n"
"  --csv FILE              the recipient's data, a row of a CSV file whose first\n"
"                          row names the columns\n"
"  --row N                 which data row of --csv (1 is the row after the header)\n"
"  --strict                a variable the data lacks is an error (file:line:col)\n"
"  --dkim-key KEYFILE      a DKIM private key (PEM, RSA or Ed25519), with\n"
"  --dkim-domain D         its d= and\n"
"  --dkim-selector S       its s=; the three go together and may be given twice\n"
"                          for two signatures (e.g. RSA and Ed25519)\n"
"  --unsubscribe-url URL   List-Unsubscribe with an https URL, and\n"
"                          List-Unsubscribe-Post (RFC 8058)\n"
"  --unsubscribe-mailto A  List-Unsubscribe with mailto:A\n"
"  --message-id-domain D   the Message-ID's domain (default: From's)\n"
"  --8bitmime              the server offers 8BITMIME (text parts may go 8bit)\n"
"  --smtputf8              the message goes with SMTPUTF8 (raw UTF-8 headers)\n"
"  --date SECONDS          date the message (Date, the Message-ID's time and\n"
"                          DKIM t=) at SECONDS since 1970 UTC instead of now,\n"
"                          for a reproducible render\n"
"  --help                  this text\n"
"\n"
"exit status: 0 printed; 1 usage; 2 a template, data or key error (on stderr,\n"
"naming the file, line and column).\n";

static int write_all(const char *p, size_t n)
{
	return n == 0 || fwrite(p, 1, n, stdout) == n ? 0 : -1;
}

/* The latest --date: 9999-12-31 23:59:59 UTC, the last a Date header holds. */
#define RENDER_DATE_MAX 253402300799LL

/* Reads --date SECONDS into *now. Returns 0, or -1 when it is not a number
 * of seconds from 0 to RENDER_DATE_MAX. */
static int parse_date(const char *arg, int64_t *now)
{
	char *end;
	long long v;

	if (arg[0] < '0' || arg[0] > '9')
		return -1;
	errno = 0;
	v = strtoll(arg, &end, 10);
	if (errno || *end || v > RENDER_DATE_MAX)
		return -1;
	*now = (int64_t)v;
	return 0;
}

/* Renders with data d dated now and prints. Returns an enum render_exit. */
static int render_print(struct campaign_template *t, const struct campaign_data *d, int64_t now)
{
	char err[CAMPAIGN_ERR_MAX];
	struct campaign_message m;
	struct campaign_renderer *r = campaign_renderer_new(t, err, sizeof err);

	if (!r) {
		fprintf(stderr, "volley render: %s\n", err);
		return RENDER_FAILED;
	}
	int rc = RENDER_OK;
	if (campaign_render(r, d, now, &m) != 0) {
		fprintf(stderr, "volley render: %s\n", campaign_renderer_errstr(r));
		rc = RENDER_FAILED;
	} else if (write_all(m.dkim, m.dkim_len) || write_all(m.msg, m.msg_len) || fflush(stdout)) {
		fprintf(stderr, "volley render: stdout: %s\n", strerror(errno));
		rc = RENDER_FAILED;
	}
	campaign_renderer_free(r);
	return rc;
}

static int render_json(struct campaign_template *t, const char *vars, int64_t now)
{
	json_error_t jerr;
	json_t *root = json_loads(vars, 0, &jerr);

	if (!root) {
		fprintf(stderr, "volley render: --vars:%d:%d: %s\n", jerr.line, jerr.column, jerr.text);
		return RENDER_FAILED;
	}
	if (!json_is_object(root)) {
		fprintf(stderr, "volley render: --vars: not a JSON object\n");
		json_decref(root);
		return RENDER_FAILED;
	}
	struct campaign_data d = { campaign_json_piece, root };
	int rc = render_print(t, &d, now);
	json_decref(root);
	return rc;
}

static int render_csv(struct campaign_template *t, const char *path, unsigned long row, int64_t now)
{
	struct csv_pick *pick = calloc(1, sizeof *pick);
	struct campaign_csv cc = { 0 };
	char err[512];
	int rc = RENDER_FAILED;

	if (!pick) {
		fprintf(stderr, "volley render: out of memory\n");
		return RENDER_FAILED;
	}
	if (csv_pick_row(path, row, pick, err, sizeof err) != 0) {
		fprintf(stderr, "volley render: %s\n", err);
		goto done;
	}
	if (campaign_csv_bind(&cc, t, (const char *const *)pick->header.text, pick->header.len,
			      pick->header.n) != 0) {
		fprintf(stderr, "volley render: out of memory\n");
		goto done;
	}
	struct campaign_data d = campaign_csv_data(&cc, (const char *const *)pick->row.text,
						   pick->row.len, pick->row.n);
	rc = render_print(t, &d, now);
done:
	campaign_csv_free(&cc);
	csv_pick_free(pick);
	free(pick);
	return rc;
}

int volley_render(int argc, char **argv)
{
	enum { O_TEMPLATE = 256, O_VARS, O_CSV, O_ROW, O_DATE };
	static const struct option opts[] = {
		{ "template", required_argument, 0, O_TEMPLATE },
		{ "vars", required_argument, 0, O_VARS },
		{ "csv", required_argument, 0, O_CSV },
		{ "row", required_argument, 0, O_ROW },
		CAMPAIGN_LONG_OPTIONS,
		{ "date", required_argument, 0, O_DATE },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	const char *template = NULL, *vars = NULL, *csv = NULL;
	struct campaign_opts co = { 0 };
	struct dkim_setup ds = { 0 };
	unsigned long row = 0;
	int64_t now = (int64_t)time(NULL);
	int c, has_row = 0;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case O_TEMPLATE: template = optarg; break;
		case O_VARS: vars = optarg; break;
		case O_CSV: csv = optarg; break;
		case O_ROW: {
			char *end;
			errno = 0;
			row = strtoul(optarg, &end, 10);
			if (errno || end == optarg || *end || row == 0 || optarg[0] == '-') {
				fprintf(stderr, "volley render: --row %s: want a number from 1\n", optarg);
				return RENDER_USAGE;
			}
			has_row = 1;
			break;
		}
		case O_DATE:
			if (parse_date(optarg, &now) != 0) {
				fprintf(stderr, "volley render: --date %s: want seconds since 1970, "
					"from 0 to %lld\n", optarg, RENDER_DATE_MAX);
				return RENDER_USAGE;
			}
			break;
		case 'h':
			fputs(render_usage, stdout);
			return RENDER_OK;
		default:
			if (campaign_option(c, optarg, &co, &ds, "render", render_usage) != 0)
				return RENDER_USAGE;
			break;
		}
	}
	if (optind != argc || !template || (!vars == !csv)) {
		fprintf(stderr, "volley render: --template and one of --vars or --csv are needed\n%s",
			render_usage);
		return RENDER_USAGE;
	}
	if (csv && !has_row) {
		fprintf(stderr, "volley render: --csv needs --row N\n");
		return RENDER_USAGE;
	}
	if (has_row && !csv) {
		fprintf(stderr, "volley render: --row goes with --csv\n");
		return RENDER_USAGE;
	}
	if (ds.nkey != ds.ndomain || ds.nkey != ds.nselector) {
		fprintf(stderr, "volley render: each --dkim-key needs its --dkim-domain and --dkim-selector\n");
		return RENDER_USAGE;
	}

	char err[CAMPAIGN_ERR_MAX];
	int rc = RENDER_FAILED;
	struct campaign_template *t = NULL;
	if (dkim_setup_load(&ds, &co, err, sizeof err) != 0) {
		fprintf(stderr, "volley render: %s\n", err);
		goto done;
	}
	t = campaign_template_load(template, &co, err, sizeof err);
	if (!t) {
		fprintf(stderr, "volley render: %s\n", err);
		goto done;
	}
	rc = vars ? render_json(t, vars, now) : render_csv(t, csv, row, now);
done:
	campaign_template_free(t);
	dkim_setup_free(&ds);
	return rc;
}
