/* Tests for pool/relay_url: every URL form, the column of every error, the
 * canonical form and its round trip, and garbage. */
#include "pool/relay_url.h"
#include "tests/testutil.h"

#include <stdint.h>
#include <stdlib.h>

struct ok_case {
	const char *url;
	int lmtp;
	enum relay_tls tls;
	const char *host;
	unsigned port;
	const char *path;
	const char *canonical;
};

static const struct ok_case ok_cases[] = {
	{ "smtp://mail.test", 0, RELAY_TLS_OPPORTUNISTIC, "mail.test", 25, "", "smtp://mail.test:25" },
	{ "smtp://mail.test:2525", 0, RELAY_TLS_OPPORTUNISTIC, "mail.test", 2525, "", "smtp://mail.test:2525" },
	{ "smtp+starttls://relay.test", 0, RELAY_TLS_STARTTLS, "relay.test", 587, "",
	  "smtp+starttls://relay.test:587" },
	{ "smtp+starttls://relay.test:25", 0, RELAY_TLS_STARTTLS, "relay.test", 25, "",
	  "smtp+starttls://relay.test:25" },
	{ "smtps://mail.test", 0, RELAY_TLS_IMPLICIT, "mail.test", 465, "", "smtps://mail.test:465" },
	{ "smtps://mail.test:465", 0, RELAY_TLS_IMPLICIT, "mail.test", 465, "", "smtps://mail.test:465" },
	{ "SMTPS://Mail.Example.TEST:10465", 0, RELAY_TLS_IMPLICIT, "mail.example.test", 10465, "",
	  "smtps://mail.example.test:10465" },
	{ "smtp://192.0.2.1", 0, RELAY_TLS_OPPORTUNISTIC, "192.0.2.1", 25, "", "smtp://192.0.2.1:25" },
	{ "smtp://[2001:db8::1]:587", 0, RELAY_TLS_OPPORTUNISTIC, "2001:db8::1", 587, "",
	  "smtp://[2001:db8::1]:587" },
	{ "smtps://[::1]", 0, RELAY_TLS_IMPLICIT, "::1", 465, "", "smtps://[::1]:465" },
	{ "smtp://[2001:DB8::A]", 0, RELAY_TLS_OPPORTUNISTIC, "2001:db8::a", 25, "", "smtp://[2001:db8::a]:25" },
	{ "lmtp://127.0.0.1:24", 1, RELAY_TLS_NONE, "127.0.0.1", 24, "", "lmtp://127.0.0.1:24" },
	{ "lmtp://[::1]:24", 1, RELAY_TLS_NONE, "::1", 24, "", "lmtp://[::1]:24" },
	{ "lmtp:///var/run/dovecot/lmtp", 1, RELAY_TLS_NONE, "", 0, "/var/run/dovecot/lmtp",
	  "lmtp:///var/run/dovecot/lmtp" },
	/* an '@' in a socket path is not user information */
	{ "lmtp:///run/user@1/lmtp", 1, RELAY_TLS_NONE, "", 0, "/run/user@1/lmtp", "lmtp:///run/user@1/lmtp" },
	{ "LMTP:///run/a b", 1, RELAY_TLS_NONE, "", 0, "/run/a b", "lmtp:///run/a b" },
	{ "smtp://localhost:65535", 0, RELAY_TLS_OPPORTUNISTIC, "localhost", 65535, "", "smtp://localhost:65535" },
	{ "smtp://a:1", 0, RELAY_TLS_OPPORTUNISTIC, "a", 1, "", "smtp://a:1" },
	{ "smtp://mx1-b.xn--bcher-kva.test:00025", 0, RELAY_TLS_OPPORTUNISTIC, "mx1-b.xn--bcher-kva.test", 25, "",
	  "smtp://mx1-b.xn--bcher-kva.test:25" },
};

static void test_ok(void)
{
	struct relay_url u, again;
	char err[128], buf[300];

	for (size_t i = 0; i < sizeof(ok_cases) / sizeof(ok_cases[0]); i++) {
		const struct ok_case *c = &ok_cases[i];

		memset(err, 'E', sizeof(err));
		T_EQ_INT(relay_url_parse(c->url, &u, err, sizeof(err)), 0);
		T_EQ_STR(err, "");
		T_EQ_INT(u.lmtp, c->lmtp);
		T_EQ_INT(u.tls, c->tls);
		T_EQ_STR(u.host, c->host);
		T_EQ_INT(u.port, c->port);
		T_EQ_STR(u.unix_path, c->path);
		T_EQ_STR(relay_url_format(&u, buf, sizeof(buf)), c->canonical);
		/* the canonical form means the same */
		T_EQ_INT(relay_url_parse(buf, &again, NULL, 0), 0);
		T_TRUE(memcmp(&u, &again, sizeof(u)) == 0);
	}
}

struct err_case {
	const char *url;
	const char *err;
};

static const struct err_case err_cases[] = {
	{ "", "column 1: missing scheme (smtp://, smtps://, ...)" },
	{ "mail.test:25", "column 1: missing scheme (smtp://, smtps://, ...)" },
	{ "smtp:/mail.test", "column 1: missing scheme (smtp://, smtps://, ...)" },
	{ "http://mail.test", "column 1: unknown scheme (want smtp://, smtp+starttls://, smtps:// or lmtp://)" },
	{ "smtp+tls://mail.test", "column 1: unknown scheme (want smtp://, smtp+starttls://, smtps:// or lmtp://)" },
	/* credentials are refused, and never echoed */
	{ "smtp://user:pw@mail.test", "column 15: user information is not accepted in a URL" },
	{ "smtp://user@mail.test", "column 12: user information is not accepted in a URL" },
	{ "smtps://u:p/x@mail.test:465", "column 14: user information is not accepted in a URL" },
	/* ports */
	{ "smtp://mail.test:", "column 18: missing port" },
	{ "smtp://mail.test:-1", "column 18: missing port" },
	{ "smtp://mail.test:0", "column 18: port out of range" },
	{ "smtp://mail.test:65536", "column 18: port out of range" },
	{ "smtp://mail.test:1234567", "column 18: port out of range" },
	{ "smtp://mail.test:99999999999999999999999", "column 18: port out of range" },
	{ "smtp://mail.test:25x", "column 20: unexpected character" },
	{ "smtp://mail.test:25 ", "column 20: unexpected character" },
	{ "lmtp://mail.test", "column 17: lmtp:// over TCP requires a port" },
	{ "lmtp://[::1]", "column 13: lmtp:// over TCP requires a port" },
	/* paths */
	{ "smtp://mail.test/path", "column 17: a path is not accepted here" },
	{ "smtp://mail.test:25/", "column 20: a path is not accepted here" },
	{ "smtp:///tmp/sock", "column 8: a socket path is only for lmtp://" },
	{ "lmtp:///", "column 9: missing socket path" },
	{ "lmtp:///tmp/a\tb", "column 14: control character in socket path" },
	{ "smtp://mail.test?x=1", "column 17: unexpected character" },
	{ "smtp://mail.test#f", "column 17: unexpected character" },
	/* hosts */
	{ "smtp://", "column 8: missing host" },
	{ "smtp://:25", "column 8: missing host" },
	{ "smtp://::1", "column 8: missing host" },
	{ "smtp://[2001:db8::1", "column 8: '[' without ']'" },
	{ "smtp://[]:25", "column 9: bad IPv6 address" },
	{ "smtp://[zz::1]", "column 9: bad IPv6 address" },
	{ "smtp://[1.2.3.4]", "column 9: bad IPv6 address" },
	{ "smtp://[fe80::1%eth0]", "column 9: bad IPv6 address" },
	{ "smtp://[::1]x", "column 13: unexpected character" },
	{ "smtp://mail_test", "column 12: character not allowed in host" },
	{ "smtp://mail test", "column 12: character not allowed in host" },
	{ "smtp://-mail.test", "column 8: host label starts or ends with '-'" },
	{ "smtp://mail-.test", "column 12: host label starts or ends with '-'" },
	{ "smtp://mail..test", "column 13: empty label in host" },
	{ "smtp://.mail.test", "column 8: empty label in host" },
	{ "smtp://mail.test.", "column 18: empty label in host" },
	{ "smtp://1.2.3.999", "column 8: bad IPv4 address" },
	{ "smtp://1.2.3", "column 8: bad IPv4 address" },
	{ "smtp://1.2.3.4.5", "column 8: bad IPv4 address" },
};

static void test_errors(void)
{
	struct relay_url u;
	char err[128];

	for (size_t i = 0; i < sizeof(err_cases) / sizeof(err_cases[0]); i++) {
		const struct err_case *c = &err_cases[i];

		memset(&u, 'Z', sizeof(u));
		T_EQ_INT(relay_url_parse(c->url, &u, err, sizeof(err)), -1);
		T_EQ_STR(err, c->err);
		T_TRUE(strstr(err, "pw") == NULL);
		T_EQ_INT(relay_url_parse(c->url, &u, NULL, 0), -1);
	}
	T_EQ_INT(relay_url_parse(NULL, &u, err, sizeof(err)), -1);
	T_EQ_STR(err, "column 1: no URL");
	/* a short error buffer gets a cut, terminated message */
	T_EQ_INT(relay_url_parse("smtp://mail.test:0", &u, err, 10), -1);
	T_EQ_STR(err, "column 18");
}

static void test_lengths(void)
{
	static char url[600];
	struct relay_url u;
	char err[128], buf[400];
	size_t n;

	/* a 250-octet name in labels of 63: fine; a 257-octet one is not */
	n = (size_t)sprintf(url, "smtp://");
	for (int i = 0; i < 3; i++) {
		memset(url + n, 'a' + i, 63);
		n += 63;
		url[n++] = '.';
	}
	memset(url + n, 'd', 58);
	url[n + 58] = '\0';
	T_EQ_INT(strlen(url) - 7, 250);
	T_EQ_INT(relay_url_parse(url, &u, err, sizeof(err)), 0);
	T_EQ_INT(strlen(u.host), 250);
	relay_url_format(&u, buf, sizeof(buf));
	T_EQ_STR(buf + strlen(buf) - 3, ":25");

	n = (size_t)sprintf(url, "smtp://");
	for (int i = 0; i < 4; i++) {
		memset(url + n, 'a', 63);
		n += 63;
		url[n++] = '.';
	}
	memcpy(url + n, "b", 2);
	T_EQ_INT(strlen(url) - 7, 257);
	T_EQ_INT(relay_url_parse(url, &u, err, sizeof(err)), -1);
	T_EQ_STR(err, "column 263: host too long");

	/* a 64-octet label */
	n = (size_t)sprintf(url, "smtp://");
	memset(url + n, 'a', 64);
	strcpy(url + n + 64, ".test");
	T_EQ_INT(relay_url_parse(url, &u, err, sizeof(err)), -1);
	T_EQ_STR(err, "column 8: host label too long");

	/* sun_path holds 107 octets and a NUL */
	n = (size_t)sprintf(url, "lmtp://");
	url[n++] = '/';
	memset(url + n, 's', 106);
	url[n + 106] = '\0';
	T_EQ_INT(relay_url_parse(url, &u, err, sizeof(err)), 0);
	T_EQ_INT(strlen(u.unix_path), 107);
	url[n + 106] = 's';
	url[n + 107] = '\0';
	T_EQ_INT(relay_url_parse(url, &u, err, sizeof(err)), -1);
	T_EQ_STR(err, "column 115: socket path too long");
}

static void test_format_caps(void)
{
	struct relay_url u;
	char buf[16];

	T_EQ_INT(relay_url_parse("smtps://mail.example.test", &u, NULL, 0), 0);
	memset(buf, 'Z', sizeof(buf));
	T_EQ_STR(relay_url_format(&u, buf, 10), "smtps://m");
	T_EQ_INT(buf[10], 'Z');
	memset(buf, 'Z', sizeof(buf));
	T_TRUE(relay_url_format(&u, buf, 0) == buf);
	T_EQ_INT(buf[0], 'Z');
}

static uint32_t rng_state = 362436069u;

static uint32_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 17;
	rng_state ^= rng_state << 5;
	return rng_state;
}

/* Random URLs from plausible pieces: every one is refused with a column in
 * range, or accepted and survives a format/parse round trip. */
static void test_garbage(void)
{
	static const char *const pieces[] = {
		"smtp://", "smtps://", "lmtp://", "smtp+starttls://", "a", "mail", ".", "-", ":", "25",
		"0", "[", "]", "::1", "/", "@", "1.2.3.4", "99999", "x_y", " ", "%", "?",
	};
	char url[200], err[160], buf[400];
	int bad = 0, accepted = 0;

	for (int iter = 0; iter < 5000; iter++) {
		size_t n = 0;
		unsigned parts = rng() % 8;
		struct relay_url u, again;

		n += (size_t)sprintf(url, "%s", pieces[rng() % 4]);
		for (unsigned p = 0; p < parts; p++)
			n += (size_t)sprintf(url + n, "%s", pieces[rng() % (sizeof(pieces) / sizeof(pieces[0]))]);
		if (relay_url_parse(url, &u, err, sizeof(err)) == 0) {
			accepted++;
			relay_url_format(&u, buf, sizeof(buf));
			if (relay_url_parse(buf, &again, NULL, 0) != 0 || memcmp(&u, &again, sizeof(u)) != 0)
				bad++;
		} else {
			unsigned long col = 0;
			if (sscanf(err, "column %lu:", &col) != 1 || col < 1 || col > n + 1)
				bad++;
		}
	}
	T_EQ_INT(bad, 0);
	T_TRUE(accepted > 50);
}

int main(void)
{
	test_ok();
	test_errors();
	test_lengths();
	test_format_caps();
	test_garbage();
	return t_done("url");
}
