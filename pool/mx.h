/* mx: where mail for a domain goes (RFC 5321 5.1, RFC 7505). Its MX hosts
 * by preference, those of equal preference in random order (to share the
 * load as the domain asks); the domain itself when it has no MX record (the
 * implicit MX); nowhere when its one MX record is the null MX, "." (the
 * domain takes no mail).
 *
 * Pure: the resolver (resolver.h) does the lookups and fills a struct
 * mx_result; the choices are made here, with the caller's randomness, so
 * that a test can check them. */
#ifndef VOLLEY_MX_H
#define VOLLEY_MX_H

#include <stddef.h>
#include <sys/socket.h>

#define MX_HOSTS_MAX 16    /* MX hosts kept, the most preferred */
#define MX_ADDRS_MAX 8     /* addresses kept per host */
#define MX_NAME_MAX  253   /* a domain name, without the final dot */

enum mx_status {
	MX_OK,           /* hosts holds where to go, at least one with an address */
	MX_NULL,         /* the null MX: the domain accepts no mail */
	MX_NXDOMAIN,     /* the domain does not exist */
	MX_NO_ADDRESS,   /* no host (MX, or the implicit one) has an address */
	MX_TEMPFAIL,     /* the DNS did not answer, or failed: try again later */
	MX_BAD_NAME,     /* not a domain name (nor one IDNA can make one of) */
};

const char *mx_status_name(enum mx_status s);

struct mx_host {
	char name[MX_NAME_MAX + 1];
	unsigned pref;
	int implicit;                 /* the domain itself: it has no MX */
	int temporary;                /* its address lookup failed for now */
	unsigned naddrs;
	struct sockaddr_storage addrs[MX_ADDRS_MAX];   /* port 0 */
};

struct mx_result {
	enum mx_status status;
	char domain[MX_NAME_MAX + 1];   /* as queried: lower case, A-labels */
	unsigned nhosts;
	struct mx_host hosts[MX_HOSTS_MAX];
	char why[320];                  /* for what is not MX_OK */
};

/* A record as the DNS gave it: the target ("" or "." for the null MX). */
struct mx_record {
	unsigned pref;
	const char *host;
};

/* Which records are the MX hosts: sets r->status to MX_NULL when the one
 * record is the null MX, else fills r->hosts (names only) with the
 * records in order of preference, equal ones shuffled with rnd (which
 * returns a number below bound), a null MX among others dropped, at most
 * MX_HOSTS_MAX. n == 0 makes the implicit MX: r->domain itself. */
void mx_choose(struct mx_result *r, const struct mx_record *recs, size_t n,
	       unsigned (*rnd)(void *ud, unsigned bound), void *ud);

/* After the address lookups: MX_OK when a host has an address, else
 * MX_TEMPFAIL when one lookup failed for now, else MX_NO_ADDRESS (why is
 * set for both). */
void mx_settle(struct mx_result *r);

#endif
