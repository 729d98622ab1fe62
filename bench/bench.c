/* volley bench: the relay benchmark. Generates N messages of a given body
 * size and pushes them over C persistent sessions with pipelining and
 * chunking on (or off, to compare), then reports rates, latency percentiles
 * per message and client CPU per message. A rejected or deferred message is
 * counted, never retried. */
#include "bench/latency_hist.h"
#include "bench/measure.h"
#include "engine/cli.h"
#include "engine/commands.h"
#include "pool/pool.h"
#include "ratelimit/limits.h"

#include <errno.h>
#include <getopt.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* How long a busy worker waits to gather completions (see loop_set_batching). */
#define BENCH_BATCH_US 200
/* Transactions in flight per session with CHUNKING (RFC 3030 lets a client
 * stream them; the session keeps this many unanswered at most). */
#define BENCH_INFLIGHT 32

struct bench_msg {
	struct smtp_msg m;
	uint64_t t_submit_us;
};

/* What every worker sends, the same for all (read-only once they run, but
 * for the hold handshake). */
struct bench_job {
	struct pool_dest_config dc;
	atomic_int release;       /* --hold: the main thread lets the sessions go */
	unsigned hold;            /* --hold seconds; 0: none */
	const char *from;
	const char *const *rcpts;
	unsigned nrcpt;
	const char *body;
	size_t body_len;
	struct limit_entry *limit;   /* --rate: shared by the workers; NULL: none */
};

/* One worker thread: its own io_uring loop, pool and sessions, a share of
 * the connections and of the messages. */
struct bench_worker {
	pthread_t thread;
	const struct bench_job *job;
	unsigned connections;
	unsigned long long messages, submitted, done;
	unsigned long long delivered, deferred, rejected;
	unsigned long long rcpt_ok, rcpt_failed;
	/* The messages in flight live in a window of slots, reused as they
	 * finish (free_slots is a stack of their indexes), so memory does not
	 * grow with --messages. */
	struct bench_msg *slots;
	unsigned *free_slots;
	unsigned nfree;
	struct latency_hist latency;
	struct pool_dest_stats stats;
	atomic_int holding;       /* --hold: its messages are done, sessions idle */
	atomic_uint sessions_held;
	atomic_int exited;
	char first_failure[512];
	char error[512];          /* setup failed: why */
};

static const char bench_usage[] =
"usage: volley bench URL --messages N --size BYTES --connections C [options]\n"
"\n"
"Pushes N generated messages of BYTES each over C persistent sessions and\n"
"reports messages/s, MB/s, latency per message (p50, p90, p99, max), client\n"
"CPU seconds per message, and how many were delivered, deferred (4xx) and\n"
"rejected (5xx). Nothing is retried.\n"
"\n"
"options:\n"
"  --messages N            messages to send (k and m suffixes: 50k)\n"
"  --size BYTES            size of each message (k and m suffixes: 1k = 1024)\n"
"  --connections C         persistent sessions to use (in all)\n"
"  --threads T             worker threads, each with its own io_uring and a\n"
"                          share of the sessions (default 1)\n"
"  --recipients R          recipients per message (default 1)\n"
"  --per-connection M      close a session after M messages (default: no cap)\n"
"  --rate R                send at most R messages a second, all threads together\n"
"                          (a gcra limit with bursts of 2 ms worth; k suffix: 5k)\n"
"  --hold S                keep the sessions open and idle for S seconds after\n"
"                          the last message, then report resident memory per\n"
"                          held session\n"
"  --from ADDR             envelope sender (default bench@volley.test)\n"
"  --rcpt-domain DOMAIN    recipients are userN@DOMAIN (default dest.test)\n"
"  --auth-user USER        authenticate; the password comes from\n"
"  --auth-password-file F  the first line of F, or $VOLLEY_AUTH_PASSWORD\n"
"  --auth-plaintext        allow AUTH without TLS\n"
"  --ca FILE | --insecure  how to verify the server's certificate\n"
"  --no-pipelining         never pipeline\n"
"  --no-chunking           use DATA even when CHUNKING is offered\n"
"  --json                  print one JSON object instead of text\n";

/* Resident memory of the process (VmRSS), in KB; -1 when unknown. */
static long rss_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	if (!f)
		return -1;
	char line[256];
	long kb = -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

static void on_msg_done(void *user, const struct pool_outcome *po)
{
	struct bench_worker *b = user;
	const struct smtp_outcome *o = po->o;
	struct bench_msg *bm = (struct bench_msg *)o->msg;
	latency_hist_add(&b->latency, (uint32_t)(measure_mono_us() - bm->t_submit_us));
	b->done++;
	b->free_slots[b->nfree++] = (unsigned)(bm - b->slots);
	switch (o->status) {
	case SMTP_STATUS_OK:       b->delivered++; return;
	case SMTP_STATUS_TEMPFAIL: b->deferred++; break;
	default:                   b->rejected++; break;
	}
	if (!b->first_failure[0])
		snprintf(b->first_failure, sizeof b->first_failure, "%s: %d %s %.400s",
			 smtp_phase_name(o->phase), o->reply->code, o->reply->enhanced, o->reply->text);
}

static void on_rcpt_done(void *user, const struct pool_outcome *po)
{
	struct bench_worker *b = user;
	if (po->o->status == SMTP_STATUS_OK)
		b->rcpt_ok++;
	else
		b->rcpt_failed++;
}

/* One body for every message: headers, then lines of text up to size. */
static char *make_body(unsigned long long size, const char *from, size_t *len)
{
	char head[512];
	int h = snprintf(head, sizeof head,
			 "From: <%s>\r\nTo: <bench@dest.test>\r\nSubject: volley bench\r\n"
			 "Message-ID: <bench@volley.test>\r\nMIME-Version: 1.0\r\n"
			 "Content-Type: text/plain; charset=us-ascii\r\n\r\n", from);
	size_t total = size > (unsigned long long)h + 2 ? size : (size_t)h + 2;
	char *b = malloc(total);
	if (!b)
		return NULL;
	memcpy(b, head, (size_t)h);
	static const char text[] = "The quick brown fox jumps over the lazy dog. 0123456789 volley bench.";
	size_t i = (size_t)h, col = 0;
	while (i < total - 2) {
		if (col == 76 || i == total - 3) {
			b[i++] = '\r';
			b[i++] = '\n';
			col = 0;
			continue;
		}
		b[i++] = text[col % (sizeof text - 1)];
		col++;
	}
	if (b[total - 1] != '\n') {
		b[total - 2] = '\r';
		b[total - 1] = '\n';
	}
	*len = total;
	return b;
}

/* A worker's whole run: its loop, pool and destination, a window of
 * messages kept queued, then QUIT on every session. */
static void *bench_worker_run(void *arg)
{
	struct bench_worker *w = arg;
	const struct bench_job *job = w->job;
	struct pool_dest_config dc = job->dc;
	dc.max_conns = w->connections;
	struct loop *loop = loop_new(4096);
	if (loop)
		loop_set_batching(loop, BENCH_BATCH_US);
	struct pool_callbacks cb = { on_rcpt_done, on_msg_done, NULL };
	struct pool *pool = loop ? pool_new(loop, &cb, w) : NULL;
	if (!pool) {
		snprintf(w->error, sizeof w->error, "io_uring: %s", strerror(errno));
		loop_free(loop);
		atomic_store(&w->exited, 1);
		return NULL;
	}
	struct pool_dest *d = pool_dest_new(pool, &dc, w->error, sizeof w->error);
	if (!d) {
		pool_free(pool);
		loop_free(loop);
		atomic_store(&w->exited, 1);
		return NULL;
	}
	/* Keep a window of messages queued: enough to keep every session
	 * busy (twice what the sessions may have in flight), few enough that
	 * latency measures the relay, not our queue. */
	size_t window = (size_t)w->connections * (dc.max_inflight ? dc.max_inflight : 1) * 2;
	if (window > w->messages)
		window = w->messages ? (size_t)w->messages : 1;
	w->slots = calloc(window, sizeof *w->slots);
	w->free_slots = calloc(window, sizeof *w->free_slots);
	if (!w->slots || !w->free_slots) {
		snprintf(w->error, sizeof w->error, "out of memory");
		pool_free(pool);
		loop_free(loop);
		atomic_store(&w->exited, 1);
		return NULL;
	}
	for (size_t i = 0; i < window; i++)
		w->free_slots[w->nfree++] = (unsigned)(window - 1 - i);
	int shut = 0;
	while (!shut || !pool_idle(pool)) {
		int wait_ms = job->hold ? 50 : 1000;
		while (w->submitted < w->messages && w->nfree) {
			if (job->limit) {   /* --rate: wait for the limiter's next slot */
				uint64_t wait = limit_take(job->limit, measure_mono_us() * 1000u, 1);
				if (wait) {
					uint64_t ms = wait / 1000000u + 1;
					if (ms < (uint64_t)wait_ms)
						wait_ms = (int)ms;
					break;
				}
			}
			/* Taken before the submit: a message the session refuses
			 * at once is done (and its slot given back) inside it. */
			struct bench_msg *bm = &w->slots[w->free_slots[--w->nfree]];
			bm->m = (struct smtp_msg){ job->from, job->rcpts, job->nrcpt,
						   job->body, job->body_len, 0, NULL };
			bm->t_submit_us = measure_mono_us();
			if (pool_submit(d, &bm->m) < 0) {
				w->nfree++;
				break;
			}
			w->submitted++;
		}
		if (!shut && w->done == w->messages) {
			/* --hold: keep the idle sessions open until released. */
			if (job->hold && !atomic_load(&job->release)) {
				atomic_store(&w->sessions_held, pool_dest_sessions(d));
				atomic_store(&w->holding, 1);
			} else {
				pool_shutdown(pool);
				shut = 1;
			}
		}
		int r = loop_run_once(loop, wait_ms);
		if (r < 0) {
			snprintf(w->error, sizeof w->error, "io_uring: %s", strerror(-r));
			break;
		}
	}
	pool_dest_get_stats(d, &w->stats);
	if (pool_idle(pool)) {
		pool_free(pool);
		loop_free(loop);
		free(w->slots);
		free(w->free_slots);
	}   /* else the run failed and the process is about to exit */
	tls_thread_done();
	atomic_store(&w->exited, 1);
	return NULL;
}

int volley_bench(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "messages", required_argument, 0, 'n' },
		{ "size", required_argument, 0, 's' },
		{ "connections", required_argument, 0, 'c' },
		{ "threads", required_argument, 0, 'T' },
		{ "recipients", required_argument, 0, 'r' },
		{ "per-connection", required_argument, 0, 'M' },
		{ "hold", required_argument, 0, 'H' },
		{ "rate", required_argument, 0, 'R' },
		{ "from", required_argument, 0, 'f' },
		{ "rcpt-domain", required_argument, 0, 'D' },
		{ "auth-user", required_argument, 0, 'u' },
		{ "auth-password-file", required_argument, 0, 'p' },
		{ "auth-plaintext", no_argument, 0, 'P' },
		{ "ca", required_argument, 0, 'C' },
		{ "insecure", no_argument, 0, 'k' },
		{ "no-pipelining", no_argument, 0, 'x' },
		{ "no-chunking", no_argument, 0, 'X' },
		{ "json", no_argument, 0, 'j' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	unsigned long long v, per_conn = 0, messages = 0, size = 0, rate_limit = 0;
	unsigned connections = 0, threads = 1, recipients = 1, hold = 0;
	const char *from = "bench@volley.test", *domain = "dest.test", *user = NULL, *pwfile = NULL, *ca = NULL;
	int plaintext = 0, insecure = 0, no_pipe = 0, no_chunk = 0, json = 0, rc = 1;
	char err[512];
	static char secret[4096];
	struct sasl_creds creds;
	struct tls_ctx *tls = NULL;
	char *body = NULL;
	char **rcpt_names = NULL;
	struct bench_worker *workers = NULL;
	struct limits *limits = NULL;

	optind = 1;
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
		case 's':
		case 'c':
		case 'T':
		case 'r':
		case 'M':
		case 'H':
		case 'R':
			if (cli_parse_count(optarg, &v, c == 's') < 0 || (v == 0 && c != 's')) {
				fprintf(stderr, "volley bench: --%s %s: not a positive number\n",
					c == 'n' ? "messages" : c == 's' ? "size" : c == 'c' ? "connections"
					: c == 'T' ? "threads" : c == 'r' ? "recipients"
					: c == 'H' ? "hold" : c == 'R' ? "rate" : "per-connection", optarg);
				return 1;
			}
			if (c == 'n') messages = v;
			else if (c == 's') size = v;
			else if (c == 'c') connections = v > 100000 ? 100000 : (unsigned)v;
			else if (c == 'T') threads = v > 256 ? 256 : (unsigned)v;
			else if (c == 'r') recipients = v > 1000 ? 1000 : (unsigned)v;
			else if (c == 'H') hold = v > 3600 ? 3600 : (unsigned)v;
			else if (c == 'R') rate_limit = v > 100000000ULL ? 100000000ULL : v;
			else per_conn = v;
			break;
		case 'f': from = optarg; break;
		case 'D': domain = optarg; break;
		case 'u': user = optarg; break;
		case 'p': pwfile = optarg; break;
		case 'P': plaintext = 1; break;
		case 'C': ca = optarg; break;
		case 'k': insecure = 1; break;
		case 'x': no_pipe = 1; break;
		case 'X': no_chunk = 1; break;
		case 'j': json = 1; break;
		case 'h': fputs(bench_usage, stdout); return 0;
		default: fputs(bench_usage, stderr); return 1;
		}
	}
	if (optind != argc - 1 || !messages || !connections) {
		fprintf(stderr, "volley bench: give a URL, --messages, --size and --connections\n%s", bench_usage);
		return 1;
	}
	if (messages > 100000000ULL) {
		fprintf(stderr, "volley bench: --messages: at most 100m\n");
		return 1;
	}
	if (threads > connections) {
		fprintf(stderr, "volley bench: --threads %u: more threads than connections (%u)\n",
			threads, connections);
		return 1;
	}
	struct bench_job job;
	memset(&job, 0, sizeof job);
	struct pool_dest_config *dc = &job.dc;
	if (relay_url_parse(argv[optind], &dc->url, err, sizeof err) < 0) {
		fprintf(stderr, "volley bench: %s: %s\n", argv[optind], err);
		return 1;
	}
	if (user) {
		if (cli_read_secret(pwfile, "VOLLEY_AUTH_PASSWORD", secret, sizeof secret, err, sizeof err) < 0) {
			fprintf(stderr, "volley bench: %s\n", err);
			return 1;
		}
		creds.user = user;
		creds.secret = secret;
		dc->creds = &creds;
	}
	if (!dc->url.lmtp) {
		tls = cli_tls_client(ca, insecure, err, sizeof err);
		if (!tls && dc->url.tls != RELAY_TLS_OPPORTUNISTIC) {
			fprintf(stderr, "volley bench: TLS: %s\n", err);
			goto out;
		}
	}
	body = make_body(size, from, &job.body_len);
	rcpt_names = calloc(recipients, sizeof *rcpt_names);
	workers = calloc(threads, sizeof *workers);
	if (!body || !rcpt_names || !workers) {
		fprintf(stderr, "volley bench: out of memory\n");
		goto out;
	}
	for (unsigned i = 0; i < recipients; i++)
		if (asprintf(&rcpt_names[i], "user%u@%s", i + 1, domain) < 0)
			goto out;
	job.from = from;
	job.rcpts = (const char *const *)rcpt_names;
	job.nrcpt = recipients;
	job.body = body;

	dc->ehlo_name = "bench.volley.test";
	dc->tls = tls;
	dc->auth_plaintext_ok = plaintext;
	dc->no_pipelining = no_pipe;
	dc->no_chunking = no_chunk;
	dc->max_msgs_per_conn = (unsigned)per_conn;
	dc->down_after = 3;
	dc->max_inflight = BENCH_INFLIGHT;
	job.hold = hold;
	if (rate_limit) {
		/* bursts of 2 ms worth: a worker's loop wakes at least every
		 * millisecond while it waits for the limiter */
		struct limit_spec spec = { .rate = (double)rate_limit,
					   .burst = rate_limit / 500 ? (unsigned)(rate_limit / 500) : 1,
					   .max_conns = connections };
		limits = limits_new(1, &spec, NULL, 0, err, sizeof err);
		job.limit = limits ? limits_get(limits, domain, strlen(domain)) : NULL;
		if (!job.limit) {
			fprintf(stderr, "volley bench: --rate: %s\n", limits ? "the limiter has no entry" : err);
			goto out;
		}
	}
	if (hold)   /* idle sessions must outlive the hold */
		dc->idle_timeout_ms = (hold + 60) * 1000u;

	/* Connections and messages shared out as evenly as they divide. */
	for (unsigned i = 0; i < threads; i++) {
		struct bench_worker *w = &workers[i];
		w->job = &job;
		w->connections = connections / threads + (i < connections % threads);
		w->messages = messages / threads + (i < messages % threads);
	}

	long rss_start_kb = rss_kb();
	double cpu0 = measure_cpu_s();
	uint64_t t0 = measure_mono_us();
	unsigned started = 0;
	for (; started < threads; started++) {
		int e = pthread_create(&workers[started].thread, NULL, bench_worker_run, &workers[started]);
		if (e) {
			fprintf(stderr, "volley bench: cannot start a thread: %s\n", strerror(e));
			break;
		}
	}
	/* --hold: once every worker's messages are done, its sessions sit idle;
	 * hold them that long, then measure what they cost in memory. */
	unsigned long long held = 0;
	long rss_held_kb = 0;
	uint64_t t_all_done = 0;   /* with --hold, the clock stops here */
	double cpu_all_done = 0;
	if (hold) {
		for (;;) {
			unsigned ready = 0;
			for (unsigned i = 0; i < started; i++)
				ready += atomic_load(&workers[i].holding) || atomic_load(&workers[i].exited);
			if (ready == started)
				break;
			usleep(10000);
		}
		t_all_done = measure_mono_us();
		cpu_all_done = measure_cpu_s();
		sleep(hold);
		rss_held_kb = rss_kb();
		for (unsigned i = 0; i < started; i++)
			held += atomic_load(&workers[i].sessions_held);
		atomic_store(&job.release, 1);
	}
	struct bench_worker total;
	memset(&total, 0, sizeof total);
	int setup_failed = started < threads;
	for (unsigned i = 0; i < started; i++) {
		struct bench_worker *w = &workers[i];
		pthread_join(w->thread, NULL);
		if (w->error[0]) {
			fprintf(stderr, "volley bench: %s\n", w->error);
			setup_failed = 1;
		}
		total.done += w->done;
		total.delivered += w->delivered;
		total.deferred += w->deferred;
		total.rejected += w->rejected;
		total.rcpt_ok += w->rcpt_ok;
		total.rcpt_failed += w->rcpt_failed;
		total.stats.sessions_opened += w->stats.sessions_opened;
		total.stats.sessions_ready += w->stats.sessions_ready;
		total.stats.sessions_tls += w->stats.sessions_tls;
		total.stats.sessions_resumed += w->stats.sessions_resumed;
		total.stats.connect_failures += w->stats.connect_failures;
		if (!total.first_failure[0] && w->first_failure[0])
			memcpy(total.first_failure, w->first_failure, sizeof total.first_failure);
	}
	uint64_t t1 = hold ? t_all_done : measure_mono_us();
	double cpu = (hold ? cpu_all_done : measure_cpu_s()) - cpu0;
	double secs = (double)(t1 - t0) / 1e6;
	if (setup_failed && total.done == 0)
		goto out;

	for (unsigned i = 0; i < started; i++)
		latency_hist_merge(&total.latency, &workers[i].latency);
	unsigned long long n = total.latency.n;
	double rate = total.delivered / secs;
	double mbps = (double)total.delivered * (double)job.body_len / secs / 1e6;
	double cpu_per = n ? cpu / (double)n : 0;
	double p50 = latency_hist_percentile(&total.latency, 50) / 1000.0;
	double p90 = latency_hist_percentile(&total.latency, 90) / 1000.0;
	double p99 = latency_hist_percentile(&total.latency, 99) / 1000.0;
	double pmax = total.latency.max / 1000.0;
	const struct pool_dest_stats *st = &total.stats;
	if (json) {
		printf("{\"messages\":%llu,\"delivered\":%llu,\"deferred\":%llu,\"rejected\":%llu,"
		       "\"recipients_delivered\":%llu,\"recipients_failed\":%llu,"
		       "\"size\":%zu,\"connections\":%u,\"threads\":%u,"
		       "\"sessions\":%llu,\"sessions_tls\":%llu,\"sessions_resumed\":%llu,\"connect_failures\":%llu,"
		       "\"seconds\":%.3f,\"msgs_per_s\":%.1f,\"mb_per_s\":%.2f,"
		       "\"cpu_s\":%.3f,\"cpu_s_per_msg\":%.9f,"
		       "\"latency_ms\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"max\":%.3f}",
		       messages, total.delivered, total.deferred, total.rejected, total.rcpt_ok,
		       total.rcpt_failed, job.body_len, connections, threads,
		       st->sessions_ready, st->sessions_tls, st->sessions_resumed, st->connect_failures,
		       secs, rate, mbps, cpu, cpu_per, p50, p90, p99, pmax);
		if (rate_limit)
			printf(",\"rate_limit\":%llu", rate_limit);
		if (hold)
			printf(",\"held_sessions\":%llu,\"rss_kb_start\":%ld,\"rss_kb_held\":%ld,"
			       "\"rss_kb_per_held_session\":%.1f", held, rss_start_kb, rss_held_kb,
			       held ? (double)(rss_held_kb - rss_start_kb) / (double)held : 0.0);
		printf("}\n");
	} else {
		printf("messages    %llu of %zu bytes over %u sessions, %u thread%s\n", messages,
		       job.body_len, connections, threads, threads == 1 ? "" : "s");
		printf("delivered   %llu   deferred %llu   rejected %llu\n", total.delivered,
		       total.deferred, total.rejected);
		printf("time        %.3f s   %.1f msgs/s   %.2f MB/s\n", secs, rate, mbps);
		if (rate_limit)
			printf("rate limit  %llu msgs/s\n", rate_limit);
		printf("latency ms  p50 %.3f   p90 %.3f   p99 %.3f   max %.3f\n", p50, p90, p99, pmax);
		printf("client CPU  %.3f s   %.2f us/msg\n", cpu, cpu_per * 1e6);
		printf("sessions    %llu ready (%llu over TLS, %llu resumed)   %llu failed to connect\n",
		       st->sessions_ready, st->sessions_tls, st->sessions_resumed, st->connect_failures);
		if (hold)
			printf("held        %llu idle sessions for %u s: resident memory %ld KB -> %ld KB,"
			       " %.1f KB per session\n", held, hold, rss_start_kb, rss_held_kb,
			       held ? (double)(rss_held_kb - rss_start_kb) / (double)held : 0.0);
	}
	if (total.first_failure[0])
		fprintf(stderr, "volley bench: first failure: %s\n", total.first_failure);
	rc = total.delivered == messages && !setup_failed ? 0 : 2;
out:
	explicit_bzero(secret, sizeof secret);
	tls_ctx_free(tls);
	free(body);
	if (rcpt_names)
		for (unsigned i = 0; i < recipients; i++)
			free(rcpt_names[i]);
	free(rcpt_names);
	free(workers);
	limits_free(limits);
	return rc;
}
