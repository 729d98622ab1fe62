/* volley mx: where mail for each domain given would go, as the pool's
 * resolver finds it (pool/resolver.h): the MX hosts in the order they
 * would be tried, with their addresses; the implicit MX; the null MX. All
 * the domains are looked up at once, on one loop. */
#include "engine/cli.h"
#include "engine/commands.h"
#include "pool/resolver.h"

#include <arpa/inet.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum mx_exit { MX_EXIT_OK = 0, MX_EXIT_USAGE = 1, MX_EXIT_PERMANENT = 2, MX_EXIT_TEMPORARY = 3 };

static const char mx_usage[] =
"usage: volley mx DOMAIN... [--dns HOST:PORT[,HOST:PORT...]] [--timeout MS]\n"
"\n"
"Prints where mail for each DOMAIN goes: its MX hosts in the order volley\n"
"tries them (by preference, equal ones in random order) with their IPv4 and\n"
"IPv6 addresses, the domain itself when it has no MX, or that it takes no\n"
"mail (a null MX). Unicode domains are looked up as A-labels.\n"
"\n"
"  --dns SERVERS   ask these DNS servers only (default: the system's)\n"
"  --timeout MS    per try, 3 tries (default 2000)\n"
"\n"
"exit status: 0 every domain has somewhere to go; 1 usage; 2 a domain does\n"
"not exist, takes no mail or has no address; 3 a lookup failed for now.\n";

struct mx_job {
	unsigned left;
	int exit_code;
	const char **domains;   /* to print the results in the order given */
	struct mx_result *results;
	unsigned n;
};

struct mx_one {
	struct mx_job *job;
	unsigned index;
};

static void print_addr(const struct sockaddr_storage *ss)
{
	char text[INET6_ADDRSTRLEN];
	const void *a = ss->ss_family == AF_INET6
				? (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr
				: (const void *)&((const struct sockaddr_in *)ss)->sin_addr;

	fputs(inet_ntop(ss->ss_family, a, text, sizeof text) ? text : "?", stdout);
}

static void print_result(const char *asked, const struct mx_result *res)
{
	printf("domain=%s status=%s", res->domain, mx_status_name(res->status));
	if (strcmp(asked, res->domain) != 0)
		printf(" asked=%s", asked);
	if (res->status != MX_OK) {
		printf(" why=%s\n", res->why);
		return;
	}
	printf(" hosts=%u\n", res->nhosts);
	for (unsigned i = 0; i < res->nhosts; i++) {
		const struct mx_host *h = &res->hosts[i];
		printf("mx domain=%s pref=%u host=%s%s addrs=", res->domain, h->pref, h->name,
		       h->implicit ? " implicit=yes" : "");
		for (unsigned k = 0; k < h->naddrs; k++) {
			if (k)
				putchar(',');
			print_addr(&h->addrs[k]);
		}
		if (!h->naddrs)
			fputs(h->temporary ? "- (lookup failed for now)" : "-", stdout);
		putchar('\n');
	}
}

static void on_mx(void *user, const struct mx_result *res)
{
	struct mx_one *one = user;
	struct mx_job *job = one->job;
	int code = res->status == MX_OK ? MX_EXIT_OK
		   : res->status == MX_TEMPFAIL ? MX_EXIT_TEMPORARY : MX_EXIT_PERMANENT;

	job->results[one->index] = *res;
	if (code > job->exit_code)
		job->exit_code = code;
	job->left--;
}

int volley_mx(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dns", required_argument, 0, 'd' },
		{ "timeout", required_argument, 0, 't' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	struct resolver_config rc = { 0 };
	unsigned long long v;
	char err[256];
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd': rc.servers = optarg; break;
		case 't':
			if (cli_parse_count(optarg, &v, 0) < 0 || v == 0 || v > 60000) {
				fprintf(stderr, "volley mx: --timeout %s: want 1 to 60000 ms\n", optarg);
				return MX_EXIT_USAGE;
			}
			rc.timeout_ms = (unsigned)v;
			break;
		case 'h': fputs(mx_usage, stdout); return MX_EXIT_OK;
		default: fputs(mx_usage, stderr); return MX_EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "volley mx: give at least one domain\n%s", mx_usage);
		return MX_EXIT_USAGE;
	}
	struct mx_job job = { .n = (unsigned)(argc - optind), .domains = (const char **)argv + optind };
	struct mx_one *ones = calloc(job.n, sizeof *ones);
	job.results = calloc(job.n, sizeof *job.results);
	struct loop *loop = loop_new(64);
	struct resolver *r = loop ? resolver_new(loop, &rc, err, sizeof err) : NULL;
	int code = MX_EXIT_USAGE;
	if (!ones || !job.results || !loop || !r) {
		fprintf(stderr, "volley mx: %s\n", loop && ones && job.results ? err : "out of memory");
		goto out;
	}
	for (unsigned i = 0; i < job.n; i++) {
		ones[i] = (struct mx_one){ &job, i };
		if (resolver_mx(r, job.domains[i], on_mx, &ones[i]) < 0) {
			fprintf(stderr, "volley mx: out of memory\n");
			goto out;
		}
		job.left++;
	}
	while (job.left) {
		int n = loop_run_once(loop, 1000);
		if (n < 0) {
			fprintf(stderr, "volley mx: io_uring: %s\n", strerror(-n));
			goto out;
		}
	}
	for (unsigned i = 0; i < job.n; i++)
		print_result(job.domains[i], &job.results[i]);
	code = job.exit_code;
out:
	fflush(stdout);
	resolver_free(r);
	while (loop && loop_inflight(loop))
		if (loop_run_once(loop, 100) < 0)
			break;
	loop_free(loop);
	free(ones);
	free(job.results);
	return code;
}
