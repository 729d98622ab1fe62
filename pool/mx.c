/* mx: see mx.h. */
#include "pool/mx.h"

#include <stdio.h>
#include <string.h>

const char *mx_status_name(enum mx_status s)
{
	switch (s) {
	case MX_OK: return "ok";
	case MX_NULL: return "null-mx";
	case MX_NXDOMAIN: return "nxdomain";
	case MX_NO_ADDRESS: return "no-address";
	case MX_TEMPFAIL: return "tempfail";
	case MX_BAD_NAME: return "bad-name";
	}
	return "?";
}

static int is_null_target(const char *host)
{
	return host[0] == '\0' || (host[0] == '.' && host[1] == '\0');
}

/* The target's name as kept: lower case, no final dot. 0, or -1 when it
 * does not fit. */
static int copy_name(char *dst, const char *src)
{
	size_t n = strlen(src);

	if (n && src[n - 1] == '.')
		n--;
	if (n == 0 || n > MX_NAME_MAX)
		return -1;
	for (size_t i = 0; i < n; i++)
		dst[i] = (char)(src[i] >= 'A' && src[i] <= 'Z' ? src[i] + 32 : src[i]);
	dst[n] = '\0';
	return 0;
}

void mx_choose(struct mx_result *r, const struct mx_record *recs, size_t n,
	       unsigned (*rnd)(void *ud, unsigned bound), void *ud)
{
	r->nhosts = 0;
	if (n == 0) {
		struct mx_host *h = &r->hosts[r->nhosts++];
		memset(h, 0, sizeof *h);
		snprintf(h->name, sizeof h->name, "%s", r->domain);
		h->implicit = 1;
		r->status = MX_OK;
		return;
	}
	if (n == 1 && is_null_target(recs[0].host)) {
		r->status = MX_NULL;
		snprintf(r->why, sizeof r->why, "%s has a null MX: it accepts no mail (RFC 7505)",
			 r->domain);
		return;
	}
	/* insertion by preference; an equal one goes to a random place among
	 * its equals (each of k + 1 places equally likely: a uniform shuffle) */
	for (size_t i = 0; i < n; i++) {
		struct mx_host h;
		if (is_null_target(recs[i].host))
			continue;
		memset(&h, 0, sizeof h);
		if (copy_name(h.name, recs[i].host) < 0)
			continue;
		h.pref = recs[i].pref;
		unsigned lo = 0;
		while (lo < r->nhosts && r->hosts[lo].pref < h.pref)
			lo++;
		unsigned hi = lo;
		while (hi < r->nhosts && r->hosts[hi].pref == h.pref)
			hi++;
		unsigned at = lo + rnd(ud, hi - lo + 1);
		if (at >= MX_HOSTS_MAX)
			continue;   /* less preferred than the MX_HOSTS_MAX kept */
		unsigned keep = r->nhosts < MX_HOSTS_MAX ? r->nhosts : MX_HOSTS_MAX - 1;
		memmove(&r->hosts[at + 1], &r->hosts[at], (keep - at) * sizeof r->hosts[0]);
		r->hosts[at] = h;
		r->nhosts = keep + 1;
	}
	if (r->nhosts == 0) {
		r->status = MX_NO_ADDRESS;
		snprintf(r->why, sizeof r->why, "%s: no usable MX host name", r->domain);
		return;
	}
	r->status = MX_OK;
}

void mx_settle(struct mx_result *r)
{
	int temporary = 0;

	if (r->status != MX_OK)
		return;
	for (unsigned i = 0; i < r->nhosts; i++) {
		if (r->hosts[i].naddrs)
			return;
		temporary |= r->hosts[i].temporary;
	}
	r->status = temporary ? MX_TEMPFAIL : MX_NO_ADDRESS;
	snprintf(r->why, sizeof r->why, "%s: %s", r->domain,
		 temporary ? "the address lookups of its hosts failed for now"
			   : "none of its hosts has an address");
}
