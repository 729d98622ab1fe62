/* test_mx: the choices of RFC 5321 5.1 and RFC 7505 made by mx_choose and
 * mx_settle, with the randomness given by the test: order by preference,
 * equal preferences shuffled (every order reachable), the implicit MX, the
 * null MX alone and among others, names kept in lower case without their
 * final dot, the MX_HOSTS_MAX most preferred kept, and the statuses after
 * the address lookups. */
#include "pool/mx.h"
#include "tests/testutil.h"

#include <stdio.h>
#include <string.h>

/* rnd answering from a script, then 0 */
struct script {
	const unsigned *v;
	size_t n, i;
};

static unsigned scripted(void *ud, unsigned bound)
{
	struct script *s = ud;
	unsigned v = s->i < s->n ? s->v[s->i++] : 0;
	return v < bound ? v : bound - 1;
}

static void names(const struct mx_result *r, char *out, size_t cap)
{
	size_t len = 0;

	out[0] = '\0';
	for (unsigned i = 0; i < r->nhosts && len < cap; i++)
		len += (size_t)snprintf(out + len, cap - len, "%s%s:%u", i ? " " : "", r->hosts[i].name,
					r->hosts[i].pref);
}

static struct mx_result choose(const struct mx_record *recs, size_t n, const unsigned *rnd,
			       size_t nrnd)
{
	static struct mx_result r;
	struct script s = { rnd, nrnd, 0 };

	memset(&r, 0, sizeof r);
	snprintf(r.domain, sizeof r.domain, "example.test");
	mx_choose(&r, recs, n, scripted, &s);
	return r;
}

static void test_order(void)
{
	char got[512];
	const struct mx_record recs[] = {
		{ 20, "B.example.test." }, { 10, "a.example.test" }, { 30, "d.example.test" },
		{ 20, "c.example.test" },
	};
	struct mx_result r = choose(recs, 4, NULL, 0);

	T_EQ_INT(r.status, MX_OK);
	names(&r, got, sizeof got);
	/* with rnd 0 a newcomer goes first among its equals */
	T_EQ_STR(got, "a.example.test:10 c.example.test:20 b.example.test:20 d.example.test:30");
	const unsigned last[] = { 0, 0, 0, 1 };   /* c goes after b */
	r = choose(recs, 4, last, 4);
	names(&r, got, sizeof got);
	T_EQ_STR(got, "a.example.test:10 b.example.test:20 c.example.test:20 d.example.test:30");
	T_EQ_INT(r.hosts[0].implicit, 0);
}

/* Three of equal preference: the six orders, each from its own choices. */
static void test_shuffle_reaches_every_order(void)
{
	const struct mx_record recs[] = { { 5, "x.test" }, { 5, "y.test" }, { 5, "z.test" } };
	char seen[6][64];
	int nseen = 0;

	for (unsigned a = 0; a < 2; a++) {
		for (unsigned b = 0; b < 3; b++) {
			const unsigned rnd[] = { 0, a, b };
			struct mx_result r = choose(recs, 3, rnd, 3);
			char got[64];
			names(&r, got, sizeof got);
			int dup = 0;
			for (int i = 0; i < nseen; i++)
				dup |= strcmp(seen[i], got) == 0;
			if (!dup && nseen < 6)
				snprintf(seen[nseen++], sizeof seen[0], "%s", got);
		}
	}
	T_EQ_INT(nseen, 6);
}

static void test_implicit_and_null(void)
{
	struct mx_result r = choose(NULL, 0, NULL, 0);

	T_EQ_INT(r.status, MX_OK);
	T_EQ_INT(r.nhosts, 1);
	T_EQ_STR(r.hosts[0].name, "example.test");
	T_EQ_INT(r.hosts[0].implicit, 1);

	const struct mx_record null_mx[] = { { 0, "." } };
	r = choose(null_mx, 1, NULL, 0);
	T_EQ_INT(r.status, MX_NULL);
	T_EQ_INT(r.nhosts, 0);
	T_TRUE(strstr(r.why, "accepts no mail") != NULL);
	const struct mx_record null_empty[] = { { 0, "" } };
	r = choose(null_empty, 1, NULL, 0);
	T_EQ_INT(r.status, MX_NULL);

	/* a null MX among others is a mistake of the domain's: it is dropped */
	const struct mx_record mixed[] = { { 0, "." }, { 10, "mx.example.test" } };
	r = choose(mixed, 2, NULL, 0);
	T_EQ_INT(r.status, MX_OK);
	T_EQ_INT(r.nhosts, 1);
	T_EQ_STR(r.hosts[0].name, "mx.example.test");
}

static void test_most_preferred_kept(void)
{
	struct mx_record recs[MX_HOSTS_MAX + 8];
	char name[MX_HOSTS_MAX + 8][32];

	/* given least preferred first, so that the table overflows on the way */
	for (int i = 0; i < MX_HOSTS_MAX + 8; i++) {
		snprintf(name[i], sizeof name[i], "mx%02d.test", i);
		recs[i] = (struct mx_record){ (unsigned)(100 - i), name[i] };
	}
	struct mx_result r = choose(recs, MX_HOSTS_MAX + 8, NULL, 0);
	T_EQ_INT(r.nhosts, MX_HOSTS_MAX);
	T_EQ_INT(r.hosts[0].pref, 100 - (MX_HOSTS_MAX + 7));
	T_EQ_INT(r.hosts[MX_HOSTS_MAX - 1].pref, 100 - 8);
	int sorted = 1;
	for (int i = 1; i < MX_HOSTS_MAX; i++)
		sorted &= r.hosts[i - 1].pref <= r.hosts[i].pref;
	T_TRUE(sorted);
}

static void test_settle(void)
{
	const struct mx_record recs[] = { { 10, "a.test" }, { 20, "b.test" } };
	struct mx_result r = choose(recs, 2, NULL, 0);

	mx_settle(&r);
	T_EQ_INT(r.status, MX_NO_ADDRESS);
	r = choose(recs, 2, NULL, 0);
	r.hosts[1].temporary = 1;
	mx_settle(&r);
	T_EQ_INT(r.status, MX_TEMPFAIL);
	r = choose(recs, 2, NULL, 0);
	r.hosts[1].temporary = 1;
	r.hosts[0].naddrs = 1;
	mx_settle(&r);
	T_EQ_INT(r.status, MX_OK);
	const struct mx_record null_mx[] = { { 0, "." } };
	r = choose(null_mx, 1, NULL, 0);
	mx_settle(&r);
	T_EQ_INT(r.status, MX_NULL);   /* not turned into anything else */
	T_EQ_STR(mx_status_name(MX_NULL), "null-mx");
}

int main(void)
{
	test_order();
	test_shuffle_reaches_every_order();
	test_implicit_and_null();
	test_most_preferred_kept();
	test_settle();
	return t_done("test_mx");
}
