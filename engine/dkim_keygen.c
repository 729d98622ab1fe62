/* volley dkim-keygen: makes a DKIM key pair, writes the private key where
 * asked (never over an existing file, readable by its owner only) and prints
 * the DNS TXT record that publishes the public key. */
#include "engine/commands.h"
#include "templates/dkim.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum keygen_exit { KEYGEN_OK = 0, KEYGEN_USAGE = 1, KEYGEN_FAILED = 2 };

/* A TXT record's strings hold at most 255 octets each (RFC 1035 3.3). */
#define TXT_STRING_MAX 255

static const char keygen_usage[] =
"usage: volley dkim-keygen --domain D --selector S [--type rsa|ed25519] [--bits N] --out KEYFILE\n"
"\n"
"Makes a DKIM signing key. The private key goes to KEYFILE in PEM (PKCS#8,\n"
"mode 0600; an existing file is never overwritten). Printed on stdout:\n"
"  line 1: the DNS record to publish, in zone-file syntax\n"
"          (S._domainkey.D. IN TXT \"v=DKIM1; k=...; p=...\", split into\n"
"          strings of at most 255 octets)\n"
"  line 2: the TXT value alone, for DNS providers' web forms\n"
"\n"
"options:\n"
"  --domain D       the signing domain (d=), e.g. example.com\n"
"  --selector S     the selector (s=): the record goes at S._domainkey.D\n"
"  --type T         rsa (default) or ed25519 (RFC 8463; not every verifier\n"
"                   knows it yet, so sign with an RSA key beside it)\n"
"  --bits N         RSA modulus size, 1024 to 4096, a multiple of 128 (default 2048)\n"
"  --out KEYFILE    where to write the private key\n"
"  --help           this text\n"
"\n"
"exit status: 0 written; 1 usage; 2 I/O or key generation failed.\n";

/* Writes the whole PEM into a new file of mode 0600. Returns 0, or -1 with
 * the reason in err; a partly written file is removed. */
static int write_new_file(const char *path, const char *data, size_t len, char *err, size_t errlen)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path,
			 errno == EEXIST ? "exists already; not overwriting it" : strerror(errno));
		return -1;
	}
	size_t done = 0;
	while (done < len) {
		ssize_t n = write(fd, data + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	int saved = errno;
	if (done == len && fsync(fd) != 0)
		saved = errno, done = 0;
	if (close(fd) != 0 && done == len)
		saved = errno, done = 0;
	if (done != len) {
		snprintf(err, errlen, "%s: %s", path, strerror(saved ? saved : EIO));
		unlink(path);
		return -1;
	}
	return 0;
}

/* Prints the zone-file line: the value cut into quoted strings. */
static void print_record(const char *selector, const char *domain, const char *txt)
{
	size_t len = strlen(txt);
	printf("%s._domainkey.%s. IN TXT", selector, domain);
	for (size_t i = 0; i < len; i += TXT_STRING_MAX) {
		size_t k = len - i < TXT_STRING_MAX ? len - i : TXT_STRING_MAX;
		printf(" \"%.*s\"", (int)k, txt + i);
	}
	putchar('\n');
}

int volley_dkim_keygen(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "domain", required_argument, 0, 'd' },
		{ "selector", required_argument, 0, 's' },
		{ "type", required_argument, 0, 't' },
		{ "bits", required_argument, 0, 'b' },
		{ "out", required_argument, 0, 'o' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	const char *domain = NULL, *selector = NULL, *out = NULL, *why;
	enum dkim_alg alg = DKIM_RSA_SHA256;
	unsigned long bits = 2048;
	int bits_given = 0, c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd': domain = optarg; break;
		case 's': selector = optarg; break;
		case 'o': out = optarg; break;
		case 't':
			if (strcmp(optarg, "rsa") == 0) {
				alg = DKIM_RSA_SHA256;
			} else if (strcmp(optarg, "ed25519") == 0) {
				alg = DKIM_ED25519_SHA256;
			} else {
				fprintf(stderr, "volley dkim-keygen: --type %s: want rsa or ed25519\n", optarg);
				return KEYGEN_USAGE;
			}
			break;
		case 'b': {
			char *end;
			errno = 0;
			bits = strtoul(optarg, &end, 10);
			if (errno || end == optarg || *end || bits < DKIM_RSA_MIN_BITS ||
			    bits > DKIM_RSA_MAX_BITS || bits % 128 != 0) {
				fprintf(stderr, "volley dkim-keygen: --bits %s: want %d to %d, a multiple of 128\n",
					optarg, DKIM_RSA_MIN_BITS, DKIM_RSA_MAX_BITS);
				return KEYGEN_USAGE;
			}
			bits_given = 1;
			break;
		}
		case 'h':
			fputs(keygen_usage, stdout);
			return KEYGEN_OK;
		default:
			fputs(keygen_usage, stderr);
			return KEYGEN_USAGE;
		}
	}
	if (optind != argc || !domain || !selector || !out) {
		fprintf(stderr, "volley dkim-keygen: --domain, --selector and --out are needed\n%s",
			keygen_usage);
		return KEYGEN_USAGE;
	}
	if ((why = dkim_dns_name_problem(domain)) != NULL) {
		fprintf(stderr, "volley dkim-keygen: --domain %s: %s\n", domain, why);
		return KEYGEN_USAGE;
	}
	if ((why = dkim_dns_name_problem(selector)) != NULL) {
		fprintf(stderr, "volley dkim-keygen: --selector %s: %s\n", selector, why);
		return KEYGEN_USAGE;
	}
	if (bits_given && alg != DKIM_RSA_SHA256) {
		fprintf(stderr, "volley dkim-keygen: --bits is for RSA keys (Ed25519 keys have one size)\n");
		return KEYGEN_USAGE;
	}
	struct stat sb;
	if (lstat(out, &sb) == 0) {   /* early, before a slow RSA generation; open checks again */
		fprintf(stderr, "volley dkim-keygen: %s: exists already; not overwriting it\n", out);
		return KEYGEN_FAILED;
	}

	char err[300], pem[DKIM_PEM_MAX], txt[DKIM_TXT_MAX];
	int rc = KEYGEN_FAILED;
	struct dkim_key *key = dkim_key_generate(alg, (unsigned)bits, err, sizeof err);
	if (!key) {
		fprintf(stderr, "volley dkim-keygen: %s\n", err);
		return KEYGEN_FAILED;
	}
	ssize_t pem_len = dkim_key_to_pem(key, pem, sizeof pem);
	if (pem_len < 0 || dkim_key_txt(key, txt, sizeof txt) < 0) {
		fprintf(stderr, "volley dkim-keygen: cannot encode the new key\n");
	} else if (write_new_file(out, pem, (size_t)pem_len, err, sizeof err) < 0) {
		fprintf(stderr, "volley dkim-keygen: %s\n", err);
	} else {
		print_record(selector, domain, txt);
		printf("%s\n", txt);
		rc = fflush(stdout) == 0 ? KEYGEN_OK : KEYGEN_FAILED;
	}
	explicit_bzero(pem, sizeof pem);
	dkim_key_free(key);
	return rc;
}
