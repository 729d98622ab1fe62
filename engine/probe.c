/* volley probe: one session against one server, every feature of it, like a
 * scriptable swaks or Python's smtplib. Prints one fact per line on stdout
 * and the transcript on stderr (--debug). */
#include "engine/cli.h"
#include "engine/commands.h"
#include "engine/outcome_class.h"
#include "pool/conn.h"
#include "pool/pool.h"
#include "pool/relay_url.h"
#include "pool/smtp_cmd.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum probe_exit {
	EXIT_OK = 0, EXIT_USAGE = 1, EXIT_CONNECT = 2, EXIT_TLS = 3, EXIT_AUTH = 4,
	EXIT_SENDER = 5, EXIT_RCPT = 6, EXIT_DATA = 7, EXIT_PROTOCOL = 8, EXIT_CMD = 9,
};

#define PROBE_MAX_CMDS 64
#define PROBE_MAX_RCPTS 1000

struct probe {
	const char *url_text;
	struct relay_url url;
	const char *from;
	const char *rcpts[PROBE_MAX_RCPTS];
	unsigned nrcpt;
	char *rcpt_lists[PROBE_MAX_RCPTS];   /* the --to strings the addresses point into */
	unsigned nlists;
	const char *cmds[PROBE_MAX_CMDS];
	unsigned ncmd, cmds_done;
	int debug;
	int started, finished;
	int exit_code;
	struct conn *conn;
	struct smtp_msg msg;
	int have_msg;
	char *body;
	struct reply_rules *rules;   /* what a refusal means (--bounce-rules) */
};

static const char probe_usage[] =
"usage: volley probe URL [options]\n"
"\n"
"Runs one SMTP or LMTP session: connects, shows the server's capabilities,\n"
"starts TLS and authenticates when asked, runs raw commands, sends one\n"
"message to the given recipients, and reports every reply.\n"
"\n"
"URL: smtp://host[:port]           STARTTLS when offered (port 25)\n"
"     smtp+starttls://host[:port]  STARTTLS required (port 587)\n"
"     smtps://host[:port]          implicit TLS (port 465)\n"
"     lmtp://host:port, lmtp:///path/to/socket\n"
"\n"
"options:\n"
"  --from ADDR              envelope sender (default: probe@volley.test; \"\" is <>)\n"
"  --to ADDR[,ADDR...]      recipients (repeatable); a message is sent when given\n"
"  --message FILE           the message (RFC 5322); a short test message otherwise\n"
"  --ehlo NAME              the name to give in EHLO/LHLO (default: the host name)\n"
"  --source ADDR            connect from this local IP address\n"
"  --auth-user USER         authenticate as USER; the password comes from\n"
"  --auth-password-file F   the first line of F, or $VOLLEY_AUTH_PASSWORD\n"
"  --auth-mech MECH         PLAIN, LOGIN, CRAM-MD5 or XOAUTH2 (default: the best offered;\n"
"                           XOAUTH2 takes the access token as the password)\n"
"  --auth-plaintext         allow AUTH on a connection without TLS\n"
"  --ca FILE                trust the CAs in FILE (default: the system store)\n"
"  --insecure               do not verify the server's certificate\n"
"  --no-pipelining          never pipeline, even when offered\n"
"  --no-chunking            use DATA, even when CHUNKING is offered\n"
"  --cmd CMD                send a raw command (VRFY x, EXPN x, HELP, NOOP, RSET...);\n"
"                           repeatable, run in order before the message\n"
"  --timeout SECONDS        the timeout for every reply (default: RFC 5321's)\n"
"  --debug 1|2              print the transcript on stderr (2: with timestamps)\n"
"  --bounce-rules FILE      classify refusals with the rules in FILE instead of\n"
"                           volley's own (ratelimit/bounce_rules.ini)\n"
"\n"
"exit status: 0 delivered to every recipient and every command 2xx/3xx; 1 usage;\n"
"2 connect or greeting failed; 3 TLS failed; 4 AUTH failed or refused;\n"
"5 sender refused; 6 a recipient was not delivered; 7 the message data was\n"
"refused; 8 another protocol failure (EHLO, timeout, lost connection);\n"
"9 a command got 4xx/5xx.\n";

static void print_reply_fields(const struct smtp_reply *r)
{
	/* Reply text is one line here: line breaks become " / ". */
	printf("code=%d enhanced=%s text=", r->code, r->enhanced[0] ? r->enhanced : "-");
	for (size_t i = 0; i < r->text_len; i++) {
		if (r->text[i] == '\n')
			fputs(" / ", stdout);
		else
			putchar((unsigned char)r->text[i] < 0x20 ? '?' : r->text[i]);
	}
	putchar('\n');
}

/* What a refusal means (ratelimit/reply_class.h): its class, the action
 * volley takes and whether the message would be retried. */
static void print_verdict(const struct probe *p, const struct smtp_outcome *o)
{
	struct reply_verdict v;

	if (o->status == SMTP_STATUS_OK)
		return;
	outcome_classify(p->rules, o, p->url.lmtp, NULL, &v);
	printf("class=%s action=%s retry=%s ", reply_class_info(v.cls)->name,
	       reply_action_name(v.action), v.fail ? "no" : "yes");
}

static void set_exit(struct probe *p, int code)
{
	if (p->exit_code == EXIT_OK)
		p->exit_code = code;
}

static void on_trace(void *user, char dir, const char *line, size_t len)
{
	struct probe *p = user;
	if (!p->debug)
		return;
	if (p->debug >= 2) {
		char ts[32];
		cli_timestamp(ts, sizeof ts);
		fprintf(stderr, "%s ", ts);
	}
	fprintf(stderr, "%c %.*s\n", dir, (int)len, line);
}

static void on_rcpt(void *user, const struct smtp_outcome *o)
{
	struct probe *p = user;
	printf("rcpt=<%s> status=%s phase=%s ", o->msg->rcpts[o->rcpt], smtp_status_name(o->status),
	       smtp_phase_name(o->phase));
	print_verdict(p, o);
	print_reply_fields(o->reply);
	if (o->status == SMTP_STATUS_OK)
		return;
	switch (o->phase) {
	case SMTP_PHASE_MAIL:  set_exit(p, EXIT_SENDER); break;
	case SMTP_PHASE_RCPT:  set_exit(p, EXIT_RCPT); break;
	case SMTP_PHASE_DATA:
	case SMTP_PHASE_BODY:  set_exit(p, o->reply->code == 421 ? EXIT_PROTOCOL : EXIT_DATA); break;
	default:               set_exit(p, EXIT_PROTOCOL); break;
	}
}

static void on_msg(void *user, const struct smtp_outcome *o)
{
	const struct probe *p = user;

	printf("message status=%s phase=%s ", smtp_status_name(o->status), smtp_phase_name(o->phase));
	print_verdict(p, o);
	print_reply_fields(o->reply);
	fflush(stdout);
}

static void send_message_and_quit(struct probe *p)
{
	if (p->have_msg && conn_send(p->conn, &p->msg) < 0) {
		fprintf(stderr, "volley probe: the session cannot take the message now\n");
		set_exit(p, EXIT_PROTOCOL);
	}
	conn_quit(p->conn);
}

static void on_cmd(void *user, void *cookie, const struct smtp_reply *r)
{
	struct probe *p = user;
	unsigned i = (unsigned)(uintptr_t)cookie;
	printf("cmd \"%s\" %d %s ", p->cmds[i], r->code, r->enhanced[0] ? r->enhanced : "-");
	for (size_t k = 0; k < r->text_len; k++)
		putchar(r->text[k] == '\n' ? ' ' : r->text[k]);
	putchar('\n');
	if (r->code >= 400)
		set_exit(p, EXIT_CMD);
	if (++p->cmds_done == p->ncmd && p->conn)
		send_message_and_quit(p);
}

static void print_session(struct probe *p, struct conn *c)
{
	struct smtp_session *s = conn_session(c);
	const struct smtp_reply *g = smtp_session_greeting(s);
	char canon[400];
	printf("connected %s\n", relay_url_format(&p->url, canon, sizeof canon));
	printf("greeting %d ", g->code);
	for (size_t k = 0; k < g->text_len; k++)
		putchar(g->text[k] == '\n' ? ' ' : g->text[k]);
	putchar('\n');
	const struct smtp_caps *caps = smtp_session_caps(s);
	for (unsigned i = 0; i < caps->nkeywords; i++)
		printf("capability %s%s%s\n", smtp_caps_keyword(caps, i),
		       smtp_caps_keyword_params(caps, i)[0] ? " " : "", smtp_caps_keyword_params(caps, i));
	if (conn_tls_version(c))
		printf("tls %s %s resumed=%s\n", conn_tls_version(c), conn_tls_cipher(c),
		       conn_tls_resumed(c) ? "yes" : "no");
	if (smtp_session_authenticated(s))
		printf("auth %s ok\n", sasl_mech_name(smtp_session_auth_mech(s)));
}

static void on_event(void *user, struct conn *c, enum conn_event ev)
{
	struct probe *p = user;
	if (ev == CONN_EVENT_READY) {
		if (p->started)
			return;
		p->started = 1;
		print_session(p, c);
		for (unsigned i = 0; i < p->ncmd; i++) {
			if (conn_command(c, p->cmds[i], (void *)(uintptr_t)i) < 0) {
				fprintf(stderr, "volley probe: --cmd \"%s\": not a valid command line\n", p->cmds[i]);
				set_exit(p, EXIT_USAGE);
				p->cmds_done++;
			}
		}
		if (p->ncmd == 0 || p->cmds_done == p->ncmd)
			send_message_and_quit(p);
		return;
	}
	/* DONE */
	p->finished = 1;
	struct smtp_session *s = conn_session(c);
	if (smtp_session_state(s) == SMTP_SESSION_CLOSED && conn_error(c) == NULL)
		return;
	if (!p->started) {
		const struct smtp_reply *r = NULL;
		enum smtp_phase ph = SMTP_PHASE_CONNECT;
		if (smtp_session_state(s) == SMTP_SESSION_FAILED)
			ph = smtp_session_failure(s, &r);
		if (!conn_connected(c))
			ph = SMTP_PHASE_CONNECT;
		if (conn_tls_failed(c))
			ph = conn_tls_phase(c);
		if (smtp_session_greeting(s)->code)
			print_session(p, c);
		fprintf(stderr, "volley probe: %s failed: %s\n", smtp_phase_name(ph),
			conn_error(c) ? conn_error(c) : (r ? r->text : "connection closed"));
		if (r && ph != SMTP_PHASE_CONNECT) {
			printf("failed phase=%s ", smtp_phase_name(ph));
			print_reply_fields(r);
		}
		switch (ph) {
		case SMTP_PHASE_CONNECT:
		case SMTP_PHASE_GREETING: set_exit(p, EXIT_CONNECT); break;
		case SMTP_PHASE_STARTTLS:
		case SMTP_PHASE_TLS:      set_exit(p, EXIT_TLS); break;
		case SMTP_PHASE_AUTH:     set_exit(p, EXIT_AUTH); break;
		default:                  set_exit(p, EXIT_PROTOCOL); break;
		}
		return;
	}
	if (conn_error(c) && smtp_session_state(s) != SMTP_SESSION_CLOSED) {
		fprintf(stderr, "volley probe: %s\n", conn_error(c));
		set_exit(p, EXIT_PROTOCOL);
	}
}

static int add_rcpts(struct probe *p, const char *list)
{
	char *copy = strdup(list);
	if (!copy || p->nlists == PROBE_MAX_RCPTS) {
		free(copy);
		return -1;
	}
	p->rcpt_lists[p->nlists++] = copy;
	for (char *save = NULL, *a = strtok_r(copy, ",", &save); a; a = strtok_r(NULL, ",", &save)) {
		while (*a == ' ')
			a++;
		if (!*a)
			continue;
		if (p->nrcpt == PROBE_MAX_RCPTS) {
			fprintf(stderr, "volley probe: more than %d recipients\n", PROBE_MAX_RCPTS);
			return -1;
		}
		p->rcpts[p->nrcpt++] = a;
	}
	return 0;
}

static char *default_message(const char *from, const char *to, size_t *len)
{
	char date[64];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
	char *m = NULL;
	int n = asprintf(&m,
		"From: <%s>\r\nTo: <%s>\r\nSubject: volley probe\r\nDate: %s\r\n"
		"Message-ID: <%ld.%d@probe.volley.test>\r\nMIME-Version: 1.0\r\n"
		"Content-Type: text/plain; charset=us-ascii\r\n\r\n"
		"This is a test message sent by volley probe.\r\n",
		*from ? from : "probe@volley.test", to, date, (long)now, (int)getpid());
	if (n < 0)
		return NULL;
	*len = (size_t)n;
	return m;
}

int volley_probe(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "from", required_argument, 0, 'f' },
		{ "to", required_argument, 0, 't' },
		{ "message", required_argument, 0, 'm' },
		{ "ehlo", required_argument, 0, 'e' },
		{ "source", required_argument, 0, 's' },
		{ "auth-user", required_argument, 0, 'u' },
		{ "auth-password-file", required_argument, 0, 'p' },
		{ "auth-mech", required_argument, 0, 'M' },
		{ "auth-plaintext", no_argument, 0, 'P' },
		{ "ca", required_argument, 0, 'c' },
		{ "insecure", no_argument, 0, 'k' },
		{ "no-pipelining", no_argument, 0, 'n' },
		{ "no-chunking", no_argument, 0, 'N' },
		{ "cmd", required_argument, 0, 'C' },
		{ "timeout", required_argument, 0, 'T' },
		{ "debug", required_argument, 0, 'd' },
		{ "bounce-rules", required_argument, 0, 'B' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	struct probe *p = calloc(1, sizeof *p);
	if (!p)
		return EXIT_USAGE;
	const char *message_file = NULL, *ehlo = NULL, *source = NULL, *user = NULL, *pwfile = NULL;
	const char *ca = NULL, *rules_file = NULL;
	unsigned mechs = 0;
	int insecure = 0, plaintext = 0, no_pipe = 0, no_chunk = 0;
	unsigned long long timeout_s = 0;
	char err[512];
	int rc = EXIT_USAGE;
	struct tls_ctx *tls = NULL;
	struct loop *loop = NULL;
	static char secret[4096];
	struct sasl_creds creds;

	p->from = "probe@volley.test";
	optind = 1;
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'f': p->from = optarg; break;
		case 't': if (add_rcpts(p, optarg) < 0) goto out; break;
		case 'm': message_file = optarg; break;
		case 'e': ehlo = optarg; break;
		case 's': source = optarg; break;
		case 'u': user = optarg; break;
		case 'p': pwfile = optarg; break;
		case 'M':
			mechs = sasl_mech_from_name(optarg);
			if (!mechs) {
				fprintf(stderr, "volley probe: --auth-mech %s: not one of PLAIN, LOGIN, CRAM-MD5, XOAUTH2\n", optarg);
				goto out;
			}
			break;
		case 'P': plaintext = 1; break;
		case 'c': ca = optarg; break;
		case 'k': insecure = 1; break;
		case 'n': no_pipe = 1; break;
		case 'N': no_chunk = 1; break;
		case 'C':
			if (p->ncmd == PROBE_MAX_CMDS) {
				fprintf(stderr, "volley probe: more than %d --cmd\n", PROBE_MAX_CMDS);
				goto out;
			}
			p->cmds[p->ncmd++] = optarg;
			break;
		case 'T':
			if (cli_parse_count(optarg, &timeout_s, 0) < 0 || timeout_s == 0 || timeout_s > 86400) {
				fprintf(stderr, "volley probe: --timeout %s: want 1 to 86400 seconds\n", optarg);
				goto out;
			}
			break;
		case 'd':
			p->debug = atoi(optarg);
			if (p->debug < 1 || p->debug > 2) {
				fprintf(stderr, "volley probe: --debug takes 1 or 2\n");
				goto out;
			}
			break;
		case 'B': rules_file = optarg; break;
		case 'h':
			fputs(probe_usage, stdout);
			rc = EXIT_OK;
			goto out;
		default:
			fputs(probe_usage, stderr);
			goto out;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "volley probe: give exactly one URL\n%s", probe_usage);
		goto out;
	}
	p->url_text = argv[optind];
	if (relay_url_parse(p->url_text, &p->url, err, sizeof err) < 0) {
		fprintf(stderr, "volley probe: %s: %s\n", p->url_text, err);
		goto out;
	}
	if (ca && insecure) {
		fprintf(stderr, "volley probe: --ca and --insecure exclude each other\n");
		goto out;
	}
	p->rules = rules_file ? reply_rules_load(rules_file, err, sizeof err)
			      : reply_rules_default(err, sizeof err);
	if (!p->rules) {
		fprintf(stderr, "volley probe: %s\n", err);
		goto out;
	}
	if (message_file && p->nrcpt == 0) {
		fprintf(stderr, "volley probe: --message needs --to\n");
		goto out;
	}
	if ((pwfile || mechs) && !user) {
		fprintf(stderr, "volley probe: --auth-password-file and --auth-mech need --auth-user\n");
		goto out;
	}
	if (user) {
		if (cli_read_secret(pwfile, "VOLLEY_AUTH_PASSWORD", secret, sizeof secret, err, sizeof err) < 0) {
			fprintf(stderr, "volley probe: %s\n", err);
			goto out;
		}
		creds.user = user;
		creds.secret = secret;
	}
	if (p->nrcpt) {
		unsigned need = 0;
		size_t len = 0;
		if (message_file)
			p->body = cli_load_message(message_file, &len, &need, err, sizeof err);
		else
			p->body = default_message(p->from, p->rcpts[0], &len);
		if (!p->body) {
			fprintf(stderr, "volley probe: %s\n", message_file ? err : "out of memory");
			goto out;
		}
		struct smtp_addr_check chk;
		if (smtp_addr_check(p->from, strlen(p->from), 1, &chk) && chk.utf8)
			need |= SMTP_NEED_SMTPUTF8;
		for (unsigned i = 0; i < p->nrcpt; i++)
			if (smtp_addr_check(p->rcpts[i], strlen(p->rcpts[i]), 0, &chk) && chk.utf8)
				need |= SMTP_NEED_SMTPUTF8;
		p->msg = (struct smtp_msg){ p->from, p->rcpts, p->nrcpt, p->body, len, need, p };
		p->have_msg = 1;
	}
	if (!p->url.lmtp || p->url.tls != RELAY_TLS_NONE) {
		tls = cli_tls_client(ca, insecure, err, sizeof err);
		if (!tls && (p->url.tls == RELAY_TLS_STARTTLS || p->url.tls == RELAY_TLS_IMPLICIT)) {
			fprintf(stderr, "volley probe: TLS: %s\n", err);
			rc = EXIT_TLS;
			goto out;
		}
	}

	struct conn_config cc;
	memset(&cc, 0, sizeof cc);
	if (pool_resolve(&p->url, &cc.addr, &cc.addrlen, err, sizeof err) < 0) {
		fprintf(stderr, "volley probe: %s\n", err);
		rc = EXIT_CONNECT;
		goto out;
	}
	if (source) {
		struct relay_url su = { 0 };
		snprintf(su.host, sizeof su.host, "%s", source);
		if (pool_resolve(&su, &cc.source, &cc.sourcelen, err, sizeof err) < 0) {
			fprintf(stderr, "volley probe: --source %s: %s\n", source, err);
			goto out;
		}
	}
	char hostname[256] = "localhost";
	if (!ehlo) {
		gethostname(hostname, sizeof hostname - 1);
		ehlo = hostname;
	}
	cc.tls = tls;
	cc.tls_name = p->url.host;
	cc.connect_timeout_ms = timeout_s ? (uint32_t)timeout_s * 1000 : 30000;
	cc.on_event = on_event;
	cc.user = p;
	struct smtp_session_config *sc = &cc.session;
	sc->ehlo_name = ehlo;
	sc->lmtp = p->url.lmtp;
	sc->tls = p->url.tls == RELAY_TLS_IMPLICIT ? SMTP_TLS_IMPLICIT
		: p->url.tls == RELAY_TLS_STARTTLS ? SMTP_TLS_REQUIRED
		: p->url.tls == RELAY_TLS_OPPORTUNISTIC && tls ? SMTP_TLS_OPPORTUNISTIC : SMTP_TLS_NONE;
	sc->creds = user ? &creds : NULL;
	sc->auth_mechs = mechs;
	sc->auth_plaintext_ok = plaintext;
	sc->no_pipelining = no_pipe;
	sc->no_chunking = no_chunk;
	sc->keep_greeting = 1;   /* printed */
	smtp_session_timeouts_default(&sc->timeouts);
	if (timeout_s)
		for (int i = 0; i < SMTP_PHASE_COUNT; i++)
			sc->timeouts.ms[i] = (uint32_t)timeout_s * 1000;
	sc->cb.rcpt_done = on_rcpt;
	sc->cb.msg_done = on_msg;
	sc->cb.cmd_done = on_cmd;
	sc->cb.trace = on_trace;
	sc->cb_user = p;

	loop = loop_new(64);
	if (!loop) {
		perror("volley probe: io_uring");
		goto out;
	}
	p->conn = conn_open(loop, &cc);
	if (!p->conn) {
		perror("volley probe: socket");
		rc = EXIT_CONNECT;
		goto out;
	}
	while (!p->finished) {
		int r = loop_run_once(loop, 1000);
		if (r < 0) {
			fprintf(stderr, "volley probe: io_uring: %s\n", strerror(-r));
			set_exit(p, EXIT_PROTOCOL);
			break;
		}
	}
	rc = p->exit_code;
out:
	explicit_bzero(secret, sizeof secret);
	fflush(stdout);
	loop_free(loop);
	tls_ctx_free(tls);
	free(p->body);
	reply_rules_free(p->rules);
	for (unsigned i = 0; i < p->nlists; i++)
		free(p->rcpt_lists[i]);
	free(p);
	return rc;
}
