/* mime_build_tool: builds one message from a template file, for the
 * integration test that reads it back with Python's email package. Test
 * only, not installed.
 *
 *   mime_build_tool [options] TEMPLATE
 *     -o FILE              write the message to FILE (default: stdout)
 *     --8bitmime           the server offers 8BITMIME
 *     --smtputf8           the message goes with SMTPUTF8
 *     --domain D           the Message-ID domain (default: volley.test)
 *     --date SECONDS       the Date (default: 1700000000)
 *     --unsubscribe URL    an https unsubscribe URL
 *     --mailto URL         a mailto: unsubscribe address
 *     --header 'N: V'      one more header after the template's; \r \n \t
 *                          \\ and \xHH in it are decoded (injection tests)
 *     --repeat N           build the message N times and report the rate
 *
 * The template's header values are used as they are written (this tool
 * renders no mustache tags). With -o, what the caller needs to send the
 * message goes to stdout: envelope_from=, message_id=, needs_8bitmime=,
 * needs_smtputf8=, size=. Errors go to stderr, exit status 1; a usage
 * error exits 2. */
#include "templates/message_template.h"
#include "templates/mime_attachment.h"
#include "templates/mime_message.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TEMPLATE_MAX (4u << 20)
#define MESSAGE_MAX  (64u << 20)
#define EXTRA_HEADERS 16

static void usage(void)
{
	fprintf(stderr, "usage: mime_build_tool [-o FILE] [--8bitmime] [--smtputf8] [--domain D] "
			"[--date SECONDS] [--unsubscribe URL] [--mailto URL] [--header 'N: V']... "
			"[--repeat N] TEMPLATE\n");
	exit(2);
}

/* Decodes the escapes of --header in place. Returns the new length. */
static size_t unescape(char *s)
{
	size_t o = 0;

	for (size_t i = 0; s[i]; i++) {
		if (s[i] != '\\' || !s[i + 1]) {
			s[o++] = s[i];
			continue;
		}
		i++;
		switch (s[i]) {
		case 'r': s[o++] = '\r'; break;
		case 'n': s[o++] = '\n'; break;
		case 't': s[o++] = '\t'; break;
		case 'x':
			if (s[i + 1] && s[i + 2]) {
				char hex[3] = { s[i + 1], s[i + 2], 0 };
				s[o++] = (char)strtoul(hex, NULL, 16);
				i += 2;
			}
			break;
		default: s[o++] = s[i]; break;
		}
	}
	s[o] = '\0';
	return o;
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;

	if (!f) {
		perror(path);
		return NULL;
	}
	buf = malloc(TEMPLATE_MAX);
	if (!buf) {
		fclose(f);
		return NULL;
	}
	*len = fread(buf, 1, TEMPLATE_MAX, f);
	if (ferror(f) || !feof(f)) {
		fprintf(stderr, "%s: unreadable or larger than %u bytes\n", path, TEMPLATE_MAX);
		fclose(f);
		free(buf);
		return NULL;
	}
	fclose(f);
	return buf;
}

int main(int argc, char **argv)
{
	struct mime_message_opts o = { .msgid_domain = "volley.test", .date = 1700000000 };
	struct mime_header_value headers[MTPL_HEADERS_MAX + EXTRA_HEADERS];
	const struct mime_attachment *atts[MTPL_ATTACH_MAX];
	struct mime_attachment *owned[MTPL_ATTACH_MAX];
	struct mime_message_parts in = { 0 };
	struct mime_message_info info;
	const char *tpl_path = NULL, *out_path = NULL;
	size_t nextra = 0, natt = 0, src_len = 0;
	char *extra[EXTRA_HEADERS];
	struct mime_builder *b;
	struct mtpl_error err;
	struct bytebuf out;
	static struct mtpl t;
	long repeat = 1;
	char *src;
	int rc = 1;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--8bitmime"))
			o.smtp_8bitmime = 1;
		else if (!strcmp(a, "--smtputf8"))
			o.smtputf8 = 1;
		else if (!strcmp(a, "-o") && i + 1 < argc)
			out_path = argv[++i];
		else if (!strcmp(a, "--domain") && i + 1 < argc)
			o.msgid_domain = argv[++i];
		else if (!strcmp(a, "--date") && i + 1 < argc)
			o.date = strtoll(argv[++i], NULL, 10);
		else if (!strcmp(a, "--unsubscribe") && i + 1 < argc)
			o.unsubscribe_url = argv[++i];
		else if (!strcmp(a, "--mailto") && i + 1 < argc)
			o.unsubscribe_mailto = argv[++i];
		else if (!strcmp(a, "--header") && i + 1 < argc && nextra < EXTRA_HEADERS)
			extra[nextra++] = argv[++i];
		else if (!strcmp(a, "--repeat") && i + 1 < argc)
			repeat = strtol(argv[++i], NULL, 10);
		else if (a[0] == '-' || tpl_path)
			usage();
		else
			tpl_path = a;
	}
	if (!tpl_path || repeat < 1)
		usage();

	src = read_file(tpl_path, &src_len);
	if (!src)
		return 1;
	if (mtpl_parse(tpl_path, src, src_len, &t, &err) != 0) {
		fprintf(stderr, "%s\n", err.msg);
		free(src);
		return 1;
	}
	for (size_t k = 0; k < t.nheaders; k++)
		headers[k] = (struct mime_header_value){ t.headers[k].name, t.headers[k].name_len,
							 t.headers[k].value, t.headers[k].value_len };
	in.headers = headers;
	in.nheaders = t.nheaders;
	for (size_t k = 0; k < nextra; k++) {
		char *colon = strchr(extra[k], ':');
		size_t n;
		if (!colon)
			usage();
		*colon = '\0';
		n = unescape(colon + 1);
		headers[in.nheaders++] = (struct mime_header_value){ extra[k], strlen(extra[k]),
								     colon + 1, n };
	}
	if (t.text >= 0) {
		in.text = t.parts[t.text].body;
		in.text_len = t.parts[t.text].body_len;
	}
	if (t.html >= 0) {
		in.html = t.parts[t.html].body;
		in.html_len = t.parts[t.html].body_len;
	}
	for (size_t k = 0; k < t.nparts; k++) {
		const struct mtpl_part *p = &t.parts[k];
		char path[4096], ct[MIME_CONTENT_TYPE_MAX + 1], why[512];
		if (p->kind != MTPL_PART_ATTACH)
			continue;
		if (mtpl_attachment_path(tpl_path, p, path, sizeof path) != 0 ||
		    p->content_type_len > MIME_CONTENT_TYPE_MAX) {
			fprintf(stderr, "%s:%u: attachment path too long\n", tpl_path, p->line);
			goto out_atts;
		}
		snprintf(ct, sizeof ct, "%.*s", (int)p->content_type_len, p->content_type);
		owned[natt] = mime_attachment_load(path, ct, 0, why, sizeof why);
		if (!owned[natt]) {
			fprintf(stderr, "%s:%u: %s\n", tpl_path, p->line, why);
			goto out_atts;
		}
		atts[natt] = owned[natt];
		natt++;
	}
	in.attachments = atts;
	in.nattachments = natt;

	b = mime_builder_new();
	bytebuf_init(&out, MESSAGE_MAX);
	if (!b)
		goto out_atts;
	{
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		for (long r = 0; r < repeat; r++) {
			bytebuf_clear(&out);
			if (mime_build(b, &in, &o, &out, &info) != 0) {
				fprintf(stderr, "%s: %s\n", tpl_path, mime_builder_errstr(b));
				goto out_build;
			}
		}
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (repeat > 1) {
			double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
			fprintf(stderr, "%ld messages of %zu bytes in %.3f s: %.0f messages/s\n", repeat,
				out.len, s, s > 0 ? (double)repeat / s : 0.0);
		}
	}
	if (out_path) {
		FILE *f = fopen(out_path, "wb");
		if (!f || fwrite(out.data, 1, out.len, f) != out.len || fclose(f) != 0) {
			perror(out_path);
			goto out_build;
		}
		printf("envelope_from=%s\nmessage_id=%s\nneeds_8bitmime=%d\nneeds_smtputf8=%d\nsize=%zu\n",
		       info.envelope_from, info.message_id, info.needs_8bitmime, info.needs_smtputf8,
		       out.len);
	} else if (fwrite(out.data, 1, out.len, stdout) != out.len) {
		perror("stdout");
		goto out_build;
	}
	rc = 0;
out_build:
	bytebuf_free(&out);
	mime_builder_free(b);
out_atts:
	for (size_t k = 0; k < natt; k++)
		mime_attachment_free(owned[k]);
	free(src);
	return rc;
}
