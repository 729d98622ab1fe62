/* dkim_sign_tool: a test-only program (not installed, not a volley command)
 * that signs one message file with templates/dkim and prints the signed
 * message, so that tests/integration/test_dkim.py can hand volley's
 * signatures to an independent verifier before `volley render` exists.
 *
 *   dkim_sign_tool --domain D --key FILE --selector S [--key FILE --selector S]
 *                  --time T [--headers A,B,...] [--oversign-from] [--chunk N] MESSAGE
 *
 * Bare LF line ends in MESSAGE become CRLF. --chunk feeds the body to the
 * signer N bytes at a time. Exit status: 0 signed, 1 usage, 2 I/O or signing
 * failure. */
#include "templates/dkim.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MESSAGE_MAX (32u << 20)

static const char usage[] =
"usage: dkim_sign_tool --domain D --key FILE --selector S [--key FILE --selector S]\n"
"                      --time T [--headers A,B,...] [--oversign-from] [--chunk N] MESSAGE\n";

/* Reads the file whole, LF line ends made CRLF. NULL with errno-style text in err. */
static char *read_message(const char *path, size_t *len, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	char *raw = malloc(MESSAGE_MAX);
	size_t n = raw ? fread(raw, 1, MESSAGE_MAX, f) : 0;
	int bad = !raw || ferror(f) || n == MESSAGE_MAX;
	fclose(f);
	char *msg = bad ? NULL : malloc(2 * n + 1);
	if (!msg) {
		snprintf(err, errlen, "%s: unreadable, too large or out of memory", path);
		free(raw);
		return NULL;
	}
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		if (raw[i] == '\n' && (i == 0 || raw[i - 1] != '\r'))
			msg[m++] = '\r';
		msg[m++] = raw[i];
	}
	free(raw);
	*len = m;
	return msg;
}

/* Splits a comma list in place into names. Returns the count, or -1. */
static int split_list(char *s, const char **names, int max)
{
	int n = 0;
	for (char *save = NULL, *tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (n == max)
			return -1;
		names[n++] = tok;
	}
	return n;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "domain", required_argument, 0, 'd' },
		{ "key", required_argument, 0, 'k' },
		{ "selector", required_argument, 0, 's' },
		{ "time", required_argument, 0, 't' },
		{ "headers", required_argument, 0, 'H' },
		{ "oversign-from", no_argument, 0, 'o' },
		{ "chunk", required_argument, 0, 'c' },
		{ 0, 0, 0, 0 },
	};
	struct dkim_signer_opts so = { 0 };
	const char *key_files[DKIM_MAX_KEYS] = { 0 };
	const char *headers[DKIM_MAX_HEADERS];
	unsigned nkeyfiles = 0, nselectors = 0;
	int have_time = 0, nheaders = -1;
	uint64_t t = 0;
	size_t chunk = 0;
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'd': so.domain = optarg; break;
		case 'k':
			if (nkeyfiles == DKIM_MAX_KEYS)
				goto bad_usage;
			key_files[nkeyfiles++] = optarg;
			break;
		case 's':
			if (nselectors == DKIM_MAX_KEYS)
				goto bad_usage;
			so.keys[nselectors++].selector = optarg;
			break;
		case 't': t = strtoull(optarg, NULL, 10); have_time = 1; break;
		case 'H':
			nheaders = split_list(optarg, headers, DKIM_MAX_HEADERS);
			if (nheaders < 0)
				goto bad_usage;
			break;
		case 'o': so.oversign_from = 1; break;
		case 'c': chunk = strtoull(optarg, NULL, 10); break;
		default: goto bad_usage;
		}
	}
	if (optind != argc - 1 || !so.domain || nkeyfiles == 0 || nkeyfiles != nselectors || !have_time)
		goto bad_usage;
	if (nheaders >= 0) {
		so.headers = headers;
		so.nheaders = (size_t)nheaders;
	}

	char err[300];
	int rc = 2;
	struct dkim_key *keys[DKIM_MAX_KEYS] = { 0 };
	struct dkim_signer *signer = NULL;
	struct dkim_sign *st = NULL;
	char *msg = NULL, *out = NULL;
	size_t len = 0;

	for (unsigned i = 0; i < nkeyfiles; i++) {
		keys[i] = dkim_key_load(key_files[i], err, sizeof err);
		if (!keys[i])
			goto fail;
		so.keys[i].key = keys[i];
	}
	so.nkeys = nkeyfiles;
	if (!(signer = dkim_signer_new(&so, err, sizeof err)) ||
	    !(st = dkim_sign_new(signer, err, sizeof err)) ||
	    !(msg = read_message(argv[optind], &len, err, sizeof err)))
		goto fail;
	size_t cap = DKIM_MAX_KEYS * DKIM_SIGNATURE_MAX;
	if (!(out = malloc(cap))) {
		snprintf(err, sizeof err, "out of memory");
		goto fail;
	}
	ssize_t n;
	if (chunk == 0) {
		n = dkim_sign_message(st, msg, len, t, out, cap);
	} else {
		const char *sep = memmem(msg, len, "\r\n\r\n", 4);
		size_t hlen = sep ? (size_t)(sep - msg) + 2 : len, body = sep ? hlen + 2 : len;
		dkim_sign_begin(st);
		for (size_t i = body; i < len; i += chunk)
			dkim_sign_body(st, msg + i, len - i < chunk ? len - i : chunk);
		n = dkim_sign_end(st, msg, hlen, t, out, cap);
	}
	if (n < 0) {
		snprintf(err, sizeof err, "%s", dkim_sign_errstr(st));
		goto fail;
	}
	if (fwrite(out, 1, (size_t)n, stdout) != (size_t)n || fwrite(msg, 1, len, stdout) != len ||
	    fflush(stdout) != 0) {
		snprintf(err, sizeof err, "writing the output: %s", strerror(errno));
		goto fail;
	}
	rc = 0;
fail:
	if (rc)
		fprintf(stderr, "dkim_sign_tool: %s\n", err);
	free(out);
	free(msg);
	dkim_sign_free(st);
	dkim_signer_free(signer);
	for (unsigned i = 0; i < DKIM_MAX_KEYS; i++)
		dkim_key_free(keys[i]);
	return rc;
bad_usage:
	fputs(usage, stderr);
	return 1;
}
