/* campaign_setup: see campaign_setup.h. */
#include "engine/campaign_setup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const field_option[] = { "--dkim-key", "--dkim-domain", "--dkim-selector" };

int dkim_setup_add(struct dkim_setup *s, enum dkim_setup_field f, const char *value,
		   const char *cmd)
{
	const char **list = f == DKIM_SETUP_KEY ? s->key : f == DKIM_SETUP_DOMAIN ? s->domain : s->selector;
	unsigned *n = f == DKIM_SETUP_KEY ? &s->nkey : f == DKIM_SETUP_DOMAIN ? &s->ndomain : &s->nselector;

	if (*n >= DKIM_MAX_KEYS) {
		fprintf(stderr, "volley %s: %s given more than %d times\n", cmd, field_option[f],
			DKIM_MAX_KEYS);
		return -1;
	}
	list[(*n)++] = value;
	return 0;
}

int dkim_setup_load(struct dkim_setup *s, struct campaign_opts *o, char *err, size_t errlen)
{
	char why[256];

	if (s->nkey != s->ndomain || s->nkey != s->nselector) {
		snprintf(err, errlen, "each --dkim-key needs its --dkim-domain and --dkim-selector");
		return -1;
	}
	for (unsigned i = 0; i < s->nkey; i++) {
		s->keys[i] = dkim_key_load(s->key[i], why, sizeof why);
		if (!s->keys[i]) {
			snprintf(err, errlen, "--dkim-key %s: %s", s->key[i], why);
			return -1;
		}
	}
	for (unsigned i = 0; i < s->nkey; i++) {
		struct dkim_signer_opts so = { .domain = s->domain[i], .oversign_from = 1 };
		so.keys[so.nkeys++] = (struct dkim_signer_key){ s->keys[i], s->selector[i] };
		if (i + 1 < s->nkey && strcasecmp(s->domain[i], s->domain[i + 1]) == 0) {
			so.keys[so.nkeys++] = (struct dkim_signer_key){ s->keys[i + 1], s->selector[i + 1] };
			i++;
		}
		s->signers[s->nsigners] = dkim_signer_new(&so, why, sizeof why);
		if (!s->signers[s->nsigners]) {
			snprintf(err, errlen, "--dkim-domain %s: %s", so.domain, why);
			return -1;
		}
		s->nsigners++;
	}
	for (unsigned i = 0; i < s->nsigners; i++)
		o->signers[o->nsigners++] = s->signers[i];
	return 0;
}

void dkim_setup_free(struct dkim_setup *s)
{
	for (unsigned i = 0; i < s->nsigners; i++)
		dkim_signer_free(s->signers[i]);
	for (unsigned i = 0; i < s->nkey; i++)
		dkim_key_free(s->keys[i]);
	s->nsigners = 0;
	s->nkey = 0;
}

int campaign_option(int c, const char *arg, struct campaign_opts *co, struct dkim_setup *ds,
		    const char *cmd, const char *usage)
{
	switch (c) {
	case CAMPAIGN_O_STRICT: co->strict = 1; return 0;
	case CAMPAIGN_O_KEY: return dkim_setup_add(ds, DKIM_SETUP_KEY, arg, cmd);
	case CAMPAIGN_O_DOMAIN: return dkim_setup_add(ds, DKIM_SETUP_DOMAIN, arg, cmd);
	case CAMPAIGN_O_SELECTOR: return dkim_setup_add(ds, DKIM_SETUP_SELECTOR, arg, cmd);
	case CAMPAIGN_O_UNSUB_URL: co->unsubscribe_url = arg; return 0;
	case CAMPAIGN_O_UNSUB_MAILTO: co->unsubscribe_mailto = arg; return 0;
	case CAMPAIGN_O_MSGID: co->msgid_domain = arg; return 0;
	case CAMPAIGN_O_8BIT: co->smtp_8bitmime = 1; return 0;
	case CAMPAIGN_O_UTF8: co->smtputf8 = 1; return 0;
	default:
		fputs(usage, stderr);
		return -1;
	}
}

int campaign_csv_bind(struct campaign_csv *c, const struct campaign_template *t,
		      const char *const *names, const size_t *lens, size_t n)
{
	c->npieces = campaign_template_pieces(t);
	c->bindings = calloc(c->npieces ? c->npieces : 1, sizeof *c->bindings);
	if (!c->bindings)
		return -1;
	for (size_t i = 0; i < c->npieces; i++)
		if (tpl_csv_bind(&c->bindings[i], campaign_template_program(t, i), names, lens, n) != 0)
			return -1;
	return 0;
}

void campaign_csv_free(struct campaign_csv *c)
{
	if (c->bindings)
		for (size_t i = 0; i < c->npieces; i++)
			tpl_csv_binding_free(&c->bindings[i]);
	free(c->bindings);
	c->bindings = NULL;
}

static struct tpl_data csv_piece(const void *ud, size_t piece)
{
	const struct campaign_csv *c = ud;
	return tpl_csv_data(&c->row, &c->bindings[piece]);
}

struct campaign_data campaign_csv_data(struct campaign_csv *c, const char *const *fields,
				       const size_t *lens, size_t n)
{
	c->row = (struct tpl_csv_row){ fields, lens, n };
	return (struct campaign_data){ csv_piece, c };
}
