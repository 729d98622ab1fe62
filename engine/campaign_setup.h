/* campaign_setup: what the commands that render (volley render, volley
 * send) share: DKIM keys from the command line grouped into signers, and a
 * CSV header bound to every piece of a campaign template so that a row is
 * a recipient's data. */
#ifndef VOLLEY_CAMPAIGN_SETUP_H
#define VOLLEY_CAMPAIGN_SETUP_H

#include <stddef.h>

#include "templates/dkim.h"
#include "templates/message_render.h"
#include "templates/mustache_csv.h"

/* --dkim-key, --dkim-domain and --dkim-selector as given (up to
 * DKIM_MAX_KEYS of each, in order), and once loaded the keys and the
 * signers: two keys of one domain make one signer with two signatures,
 * keys of two domains two signers. */
struct dkim_setup {
	const char *key[DKIM_MAX_KEYS], *domain[DKIM_MAX_KEYS], *selector[DKIM_MAX_KEYS];
	unsigned nkey, ndomain, nselector;
	struct dkim_key *keys[DKIM_MAX_KEYS];
	struct dkim_signer *signers[CAMPAIGN_SIGNERS_MAX];
	unsigned nsigners;
};

enum dkim_setup_field { DKIM_SETUP_KEY, DKIM_SETUP_DOMAIN, DKIM_SETUP_SELECTOR };

/* Records one option's value. Returns 0, or -1 (with a message on stderr
 * naming cmd) when it was given more than DKIM_MAX_KEYS times. */
int dkim_setup_add(struct dkim_setup *s, enum dkim_setup_field f, const char *value,
		   const char *cmd);

/* Checks that the three options came in threes, loads the keys and makes
 * the signers, and puts them into o. Returns 0, or -1 with the reason in
 * err. */
int dkim_setup_load(struct dkim_setup *s, struct campaign_opts *o, char *err, size_t errlen);
void dkim_setup_free(struct dkim_setup *s);

/* The options every rendering command takes, as getopt_long codes above
 * any single-letter one: CAMPAIGN_LONG_OPTIONS goes into a command's
 * option table, campaign_option takes what getopt_long returns. */
enum campaign_option_code {
	CAMPAIGN_O_STRICT = 0x200, CAMPAIGN_O_KEY, CAMPAIGN_O_DOMAIN, CAMPAIGN_O_SELECTOR,
	CAMPAIGN_O_UNSUB_URL, CAMPAIGN_O_UNSUB_MAILTO, CAMPAIGN_O_MSGID, CAMPAIGN_O_8BIT,
	CAMPAIGN_O_UTF8,
};

#define CAMPAIGN_LONG_OPTIONS \
	{ "strict", no_argument, 0, CAMPAIGN_O_STRICT }, \
	{ "dkim-key", required_argument, 0, CAMPAIGN_O_KEY }, \
	{ "dkim-domain", required_argument, 0, CAMPAIGN_O_DOMAIN }, \
	{ "dkim-selector", required_argument, 0, CAMPAIGN_O_SELECTOR }, \
	{ "unsubscribe-url", required_argument, 0, CAMPAIGN_O_UNSUB_URL }, \
	{ "unsubscribe-mailto", required_argument, 0, CAMPAIGN_O_UNSUB_MAILTO }, \
	{ "message-id-domain", required_argument, 0, CAMPAIGN_O_MSGID }, \
	{ "8bitmime", no_argument, 0, CAMPAIGN_O_8BIT }, \
	{ "smtputf8", no_argument, 0, CAMPAIGN_O_UTF8 }

/* Takes option code c with its argument into co (and ds for the DKIM
 * keys), for a command's getopt_long default case. Returns 0 when taken;
 * -1 when c is no such option (usage then goes to stderr) or its value
 * cannot be taken (said on stderr, naming cmd). */
int campaign_option(int c, const char *arg, struct campaign_opts *co, struct dkim_setup *ds,
		    const char *cmd, const char *usage);

/* A CSV header bound to each piece of a template. */
struct campaign_csv {
	struct tpl_csv_binding *bindings;   /* one per piece */
	size_t npieces;
	struct tpl_csv_row row;             /* the row being rendered */
};

/* Binds t's pieces to the column names names[0..n). Returns 0, or -1 when
 * out of memory. */
int campaign_csv_bind(struct campaign_csv *c, const struct campaign_template *t,
		      const char *const *names, const size_t *lens, size_t n);
void campaign_csv_free(struct campaign_csv *c);

/* The data of one row (fields[0..n)), valid while c and the fields are. */
struct campaign_data campaign_csv_data(struct campaign_csv *c, const char *const *fields,
				       const size_t *lens, size_t n);

#endif
