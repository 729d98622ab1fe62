/* volley: the command line. */
#include "engine/commands.h"

#include <stdio.h>
#include <string.h>

static const char usage[] =
"usage: volley COMMAND [options]\n"
"\n"
"volley is a bulk SMTP sending engine.\n"
"\n"
"commands:\n"
"  probe URL   run one session against a server: capabilities, STARTTLS, AUTH,\n"
"              raw commands, one message, every reply (like swaks or smtplib)\n"
"  bench URL   push N generated messages over C persistent sessions and report\n"
"              messages/s, MB/s, latency percentiles and CPU per message\n"
"  dkim-keygen --domain D --selector S\n"
"              make a DKIM key (RSA or Ed25519), write it to a file and print\n"
"              the DNS TXT record to publish\n"
"  render --template FILE (--vars JSON | --csv FILE --row N)\n"
"              print the exact message one recipient would be sent: the\n"
"              template rendered, assembled as MIME and DKIM-signed\n"
"  send --template FILE --csv FILE --relay URL --log FILE\n"
"              send a CSV batch: one rendered message per row, every outcome\n"
"              in the delivery log, retries, suppression; resumable\n"
"  mx DOMAIN...\n"
"              where each domain's mail goes: MX hosts in the order tried,\n"
"              their addresses, the implicit MX, the null MX\n"
"  sink        a fast SMTP server for tests and benchmarks: every extension,\n"
"              STARTTLS, AUTH, counters, Maildir, fault injection (--rules)\n"
"  help [COMMAND]\n"
"\n"
"Run 'volley COMMAND --help' for a command's options.\n"
"Relay URLs: smtp://host[:port], smtp+starttls://host[:port], smtps://host[:port],\n"
"lmtp://host:port, lmtp:///path/to/socket.\n";

struct command {
	const char *name;
	int (*run)(int argc, char **argv);
};

static const struct command commands[] = {
	{ "probe", volley_probe },
	{ "bench", volley_bench },
	{ "dkim-keygen", volley_dkim_keygen },
	{ "sink", volley_sink },
	{ "render", volley_render },
	{ "send", volley_send },
	{ "mx", volley_mx },
};

int main(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		fputs(usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? 1 : 0;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("volley %s\n", VOLLEY_VERSION);
		return 0;
	}
	const char *name = argv[1];
	int help = 0;
	if (strcmp(name, "help") == 0) {
		if (argc < 3) {
			fputs(usage, stdout);
			return 0;
		}
		name = argv[2];
		help = 1;
	}
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
		if (strcmp(name, commands[i].name) != 0)
			continue;
		if (help) {
			char *hargv[] = { (char *)name, (char *)"--help", NULL };
			return commands[i].run(2, hargv);
		}
		return commands[i].run(argc - 1, argv + 1);
	}
	fprintf(stderr, "volley: unknown command '%s'\n%s", name, usage);
	return 1;
}
