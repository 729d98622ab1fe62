/* volley sink: a fast SMTP server for tests and benchmarks, with fault
 * injection. The command line, the TLS and credentials setup, the signals
 * and the reports; the I/O is sink_server, the protocol sink_session, the
 * faults sink_rules. */
#include "bench/measure.h"
#include "bench/sink_auth.h"
#include "bench/sink_cert.h"
#include "bench/sink_maildir.h"
#include "bench/sink_rules.h"
#include "bench/sink_server.h"
#include "engine/cli.h"
#include "engine/commands.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char sink_usage[] =
"usage: volley sink --listen HOST:PORT [options]\n"
"\n"
"A fast SMTP server for tests and benchmarks. It accepts every message (or\n"
"refuses, delays and disconnects as --rules says), counts everything, and\n"
"keeps messages only with --maildir. When it is ready it prints\n"
"\"listening HOST:PORT\" on stdout (PORT 0 picks a free port and prints it).\n"
"SIGINT or SIGTERM: open sessions get \"421 4.3.2\", the counters are printed\n"
"(and written to --stats-json) and it exits; SIGUSR1 prints and writes them.\n"
"\n"
"options:\n"
"  --listen HOST:PORT       the address to listen on (IPv4, or [IPv6]:PORT)\n"
"  --threads N              worker threads, each with its own io_uring and\n"
"                           listener (SO_REUSEPORT) (default 1)\n"
"  --tls-cert FILE          certificate chain (PEM) for STARTTLS and --implicit-tls\n"
"  --tls-key FILE           its private key (PEM); without both, a self-signed\n"
"                           certificate for localhost and 127.0.0.1 is made and\n"
"                           its path printed as \"tls-cert PATH\" (trust it with --ca)\n"
"  --implicit-tls           TLS from the first byte (as on port 465)\n"
"  --auth-file FILE         \"user:password\" lines; AUTH is then offered (after\n"
"                           STARTTLS when TLS is on) and required before MAIL\n"
"  --rules FILE             fault injection rules (see bench/README.md)\n"
"  --seed N                 seed for rules with prob= (default: fixed)\n"
"  --maildir DIR            keep every accepted message in DIR/new, the envelope\n"
"                           first as X-Volley-Mail-From and X-Volley-Rcpt-To lines\n"
"  --stats-json FILE        write the counters here on exit and on SIGUSR1\n"
"  --max-rate N             at most N messages a second: the 250 after a message\n"
"                           waits for its slot\n"
"  --delay MS               wait MS before every reply (replies to one pipelined\n"
"                           batch leave together, after the sum of their delays)\n"
"  --size N                 SIZE limit in bytes, k and m suffixes (default 10m;\n"
"                           0: no limit)\n"
"  --hostname NAME          the name in the greeting (default sink.volley.test)\n"
"  --idle-timeout SECONDS   421 and close after this long without a byte (300)\n"
"  --no-pipelining --no-chunking --no-starttls --no-auth --no-smtputf8\n"
"  --no-8bitmime --no-dsn --no-enhancedstatuscodes --no-size\n"
"                           do not offer that extension\n"
"  -h, --help               this text\n";

enum {
	OPT_LISTEN = 256, OPT_THREADS, OPT_CERT, OPT_KEY, OPT_IMPLICIT, OPT_AUTH, OPT_RULES, OPT_SEED,
	OPT_MAILDIR, OPT_STATS, OPT_MAX_RATE, OPT_DELAY, OPT_SIZE, OPT_HOSTNAME, OPT_IDLE,
	OPT_NO_PIPELINING, OPT_NO_CHUNKING, OPT_NO_STARTTLS, OPT_NO_AUTH, OPT_NO_SMTPUTF8,
	OPT_NO_8BITMIME, OPT_NO_DSN, OPT_NO_ENHANCED, OPT_NO_SIZE,
};

static const struct option sink_options[] = {
	{ "listen", required_argument, NULL, OPT_LISTEN },
	{ "threads", required_argument, NULL, OPT_THREADS },
	{ "tls-cert", required_argument, NULL, OPT_CERT },
	{ "tls-key", required_argument, NULL, OPT_KEY },
	{ "implicit-tls", no_argument, NULL, OPT_IMPLICIT },
	{ "auth-file", required_argument, NULL, OPT_AUTH },
	{ "rules", required_argument, NULL, OPT_RULES },
	{ "seed", required_argument, NULL, OPT_SEED },
	{ "maildir", required_argument, NULL, OPT_MAILDIR },
	{ "stats-json", required_argument, NULL, OPT_STATS },
	{ "max-rate", required_argument, NULL, OPT_MAX_RATE },
	{ "delay", required_argument, NULL, OPT_DELAY },
	{ "size", required_argument, NULL, OPT_SIZE },
	{ "hostname", required_argument, NULL, OPT_HOSTNAME },
	{ "idle-timeout", required_argument, NULL, OPT_IDLE },
	{ "no-pipelining", no_argument, NULL, OPT_NO_PIPELINING },
	{ "no-chunking", no_argument, NULL, OPT_NO_CHUNKING },
	{ "no-starttls", no_argument, NULL, OPT_NO_STARTTLS },
	{ "no-auth", no_argument, NULL, OPT_NO_AUTH },
	{ "no-smtputf8", no_argument, NULL, OPT_NO_SMTPUTF8 },
	{ "no-8bitmime", no_argument, NULL, OPT_NO_8BITMIME },
	{ "no-dsn", no_argument, NULL, OPT_NO_DSN },
	{ "no-enhancedstatuscodes", no_argument, NULL, OPT_NO_ENHANCED },
	{ "no-size", no_argument, NULL, OPT_NO_SIZE },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* "127.0.0.1:25", "[::1]:25". Returns 0 or -1. */
static int parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon = strrchr(s, ':');
	if (!colon || (size_t)(colon - s) >= sizeof host)
		return -1;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = 0;
	unsigned long long port;
	if (cli_parse_count(colon + 1, &port, 0) < 0 || port > 65535 || strpbrk(colon + 1, "kKmM"))
		return -1;
	memset(ss, 0, sizeof *ss);
	size_t hl = strlen(host);
	if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
		host[hl - 1] = 0;
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
		if (inet_pton(AF_INET6, host + 1, &a->sin6_addr) != 1)
			return -1;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		*len = sizeof *a;
		return 0;
	}
	struct sockaddr_in *a = (struct sockaddr_in *)ss;
	if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
		return -1;
	a->sin_family = AF_INET;
	a->sin_port = htons((uint16_t)port);
	*len = sizeof *a;
	return 0;
}

static int number(const char *opt, const char *val, unsigned long long max, unsigned long long *out, int is_size)
{
	if (cli_parse_count(val, out, is_size) < 0 || *out > max) {
		fprintf(stderr, "volley sink: %s: '%s' is not a number up to %llu\n", opt, val, max);
		return -1;
	}
	return 0;
}

static void report(struct sink_server *srv, const char *json, double seconds)
{
	struct sink_stats sum;
	memset(&sum, 0, sizeof sum);
	sink_server_stats(srv, &sum);
	sink_stats_print(stdout, &sum, seconds);
	if (json && sink_stats_write_json(json, &sum, seconds) < 0)
		fprintf(stderr, "volley sink: %s: %s\n", json, strerror(errno));
}

/* Removes the self-signed certificate and its directory. */
static void remove_generated(const char *dir)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/cert.pem", dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/key.pem", dir);
	unlink(path);
	rmdir(dir);
}

int volley_sink(int argc, char **argv)
{
	const char *listen_s = NULL, *cert = NULL, *key = NULL, *auth_file = NULL, *rules_file = NULL;
	const char *maildir = NULL, *stats_json = NULL, *hostname = "sink.volley.test";
	unsigned long long threads = 1, seed = 0, max_rate = 0, delay = 0, size = 10 * 1024 * 1024, idle = 300;
	int implicit = 0, no_starttls = 0, no_auth = 0;
	unsigned ext = SMTP_EXT_PIPELINING | SMTP_EXT_CHUNKING | SMTP_EXT_SIZE | SMTP_EXT_8BITMIME |
		       SMTP_EXT_SMTPUTF8 | SMTP_EXT_ENHANCEDSTATUSCODES | SMTP_EXT_DSN;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", sink_options, NULL)) != -1) {
		switch (c) {
		case OPT_LISTEN: listen_s = optarg; break;
		case OPT_THREADS: if (number("--threads", optarg, 256, &threads, 0)) return 1; break;
		case OPT_CERT: cert = optarg; break;
		case OPT_KEY: key = optarg; break;
		case OPT_IMPLICIT: implicit = 1; break;
		case OPT_AUTH: auth_file = optarg; break;
		case OPT_RULES: rules_file = optarg; break;
		case OPT_SEED: if (number("--seed", optarg, UINT64_MAX, &seed, 0)) return 1; break;
		case OPT_MAILDIR: maildir = optarg; break;
		case OPT_STATS: stats_json = optarg; break;
		case OPT_MAX_RATE: if (number("--max-rate", optarg, 1000000, &max_rate, 0)) return 1; break;
		case OPT_DELAY: if (number("--delay", optarg, 3600000, &delay, 0)) return 1; break;
		case OPT_SIZE: if (number("--size", optarg, 1ull << 40, &size, 1)) return 1; break;
		case OPT_HOSTNAME: hostname = optarg; break;
		case OPT_IDLE: if (number("--idle-timeout", optarg, 86400, &idle, 0)) return 1; break;
		case OPT_NO_PIPELINING: ext &= ~(unsigned)SMTP_EXT_PIPELINING; break;
		case OPT_NO_CHUNKING: ext &= ~(unsigned)SMTP_EXT_CHUNKING; break;
		case OPT_NO_STARTTLS: no_starttls = 1; break;
		case OPT_NO_AUTH: no_auth = 1; break;
		case OPT_NO_SMTPUTF8: ext &= ~(unsigned)SMTP_EXT_SMTPUTF8; break;
		case OPT_NO_8BITMIME: ext &= ~(unsigned)SMTP_EXT_8BITMIME; break;
		case OPT_NO_DSN: ext &= ~(unsigned)SMTP_EXT_DSN; break;
		case OPT_NO_ENHANCED: ext &= ~(unsigned)SMTP_EXT_ENHANCEDSTATUSCODES; break;
		case OPT_NO_SIZE: ext &= ~(unsigned)SMTP_EXT_SIZE; break;
		case 'h': fputs(sink_usage, stdout); return 0;
		default: fputs(sink_usage, stderr); return 1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "volley sink: unexpected argument '%s'\n%s", argv[optind], sink_usage);
		return 1;
	}
	struct sink_server_opts o;
	memset(&o, 0, sizeof o);
	if (!listen_s || parse_listen(listen_s, &o.addr, &o.addrlen) < 0) {
		fprintf(stderr, "volley sink: --listen HOST:PORT is needed (e.g. 127.0.0.1:2525)\n");
		return 1;
	}
	if ((cert != NULL) != (key != NULL)) {
		fprintf(stderr, "volley sink: --tls-cert and --tls-key go together\n");
		return 1;
	}
	if (threads == 0 || idle == 0) {
		fprintf(stderr, "volley sink: --threads and --idle-timeout must be at least 1\n");
		return 1;
	}

	int rc = 1;
	char err[512];
	char gen_dir[] = "/tmp/volley-sink-XXXXXX";
	int generated = 0;
	struct sink_auth *auth = NULL;
	struct sink_rules *rules = NULL;
	struct tls_ctx *tls = NULL;
	struct sink_server *srv = NULL;
	static struct sink_config cfg;   /* read by every thread; lives as long as they do */

	if (auth_file && !no_auth && !(auth = sink_auth_load(auth_file, err, sizeof err))) {
		fprintf(stderr, "volley sink: %s\n", err);
		goto out;
	}
	if (rules_file && !(rules = sink_rules_load(rules_file, err, sizeof err))) {
		fprintf(stderr, "volley sink: %s\n", err);
		goto out;
	}
	if (maildir && sink_maildir_init(maildir, err, sizeof err) < 0) {
		fprintf(stderr, "volley sink: --maildir %s\n", err);
		goto out;
	}
	if (implicit || !no_starttls) {
		if (!cert) {
			if (!mkdtemp(gen_dir)) {
				fprintf(stderr, "volley sink: %s: %s\n", gen_dir, strerror(errno));
				goto out;
			}
			generated = 1;
			if (sink_cert_generate(gen_dir, err, sizeof err) < 0) {
				fprintf(stderr, "volley sink: self-signed certificate: %s\n", err);
				goto out;
			}
		}
		char cert_path[sizeof gen_dir + 16], key_path[sizeof gen_dir + 16];
		snprintf(cert_path, sizeof cert_path, "%s/cert.pem", gen_dir);
		snprintf(key_path, sizeof key_path, "%s/key.pem", gen_dir);
		struct tls_ctx_opts to = { 0 };
		to.server = 1;
		to.cert_file = cert ? cert : cert_path;
		to.key_file = key ? key : key_path;
		if (!(tls = tls_ctx_new(&to, err, sizeof err))) {
			fprintf(stderr, "volley sink: TLS: %s\n", err);
			goto out;
		}
		if (generated)
			printf("tls-cert %s\n", cert_path);
	}
	cfg.hostname = hostname;
	cfg.ext = ext;
	if (tls && !implicit)
		cfg.ext |= SMTP_EXT_STARTTLS;
	if (auth) {
		cfg.ext |= SMTP_EXT_AUTH;
		cfg.auth = auth;
		cfg.auth_mechs = SMTP_AUTH_PLAIN | SMTP_AUTH_LOGIN | SMTP_AUTH_CRAM_MD5 | SMTP_AUTH_XOAUTH2;
	}
	cfg.size_max = size;
	cfg.reply_delay_ms = (uint32_t)delay;
	if (sink_config_prepare(&cfg) < 0) {
		fprintf(stderr, "volley sink: --hostname: not a usable name\n");
		goto out;
	}
	o.cfg = &cfg;
	o.tls = tls;
	o.implicit_tls = implicit;
	o.rules = rules;
	o.maildir = maildir;
	o.max_rate = (uint32_t)max_rate;
	o.idle_timeout_ms = (uint32_t)(idle * 1000);
	o.seed = seed;
	o.threads = (unsigned)threads;
	if (!(srv = sink_server_new(&o, err, sizeof err))) {
		fprintf(stderr, "volley sink: %s: %s\n", listen_s, err);
		goto out;
	}

	/* Signals are taken by this thread alone (sigwait); the workers
	 * inherit the mask and never see them. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (sink_server_start(srv, err, sizeof err) < 0) {
		fprintf(stderr, "volley sink: %s\n", err);
		goto out;
	}
	double t0 = measure_mono_s();
	char host[INET6_ADDRSTRLEN];
	if (o.addr.ss_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)&o.addr)->sin_addr, host, sizeof host);
	else
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&o.addr)->sin6_addr, host, sizeof host);
	printf(o.addr.ss_family == AF_INET ? "listening %s:%d\n" : "listening [%s]:%d\n", host,
	       sink_server_port(srv));
	fflush(stdout);
	for (;;) {
		int sig;
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGUSR1) {
			report(srv, stats_json, measure_mono_s() - t0);
			continue;
		}
		break;   /* SIGINT, SIGTERM, SIGHUP */
	}
	sink_server_stop(srv);
	report(srv, stats_json, measure_mono_s() - t0);
	rc = 0;
out:
	sink_server_free(srv);
	tls_ctx_free(tls);
	sink_rules_free(rules);
	sink_auth_free(auth);
	if (generated)
		remove_generated(gen_dir);
	return rc;
}
