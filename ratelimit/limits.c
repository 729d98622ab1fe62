/* limits: see limits.h. The slots are twice max_entries (rounded up to a
 * power of two), so a probe meets an empty slot soon; a slot holds NULL
 * until one thread's compare-and-swap publishes its entry there. */
#include "ratelimit/limits.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct limits {
	_Atomic(struct limit_entry *) *slots;
	size_t mask;
	size_t max_entries;
	_Atomic size_t count;               /* entries made, or being made */
	struct limit_entry overflow;
	struct limit_spec dflt;
	struct limit_configured *configured;   /* keys lower-cased, copied */
	size_t nconfigured;
};

/* FNV-1a over the lower-cased key */
static uint64_t key_hash(const char *key, size_t len)
{
	uint64_t h = UINT64_C(14695981039346656037);

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)key[i];
		h ^= c >= 'A' && c <= 'Z' ? c + 32 : c;
		h *= UINT64_C(1099511628211);
	}
	return h;
}

static int spec_ok(const struct limit_spec *s)
{
	return s->rate > 0 && s->max_conns >= 1;
}

static int entry_init(struct limit_entry *e, const char *key, size_t len,
		      const struct limit_spec *s)
{
	struct backoff_config bc = {
		.max_rate = s->rate,
		.max_conns = s->max_conns,
		.max_msgs_per_conn = s->max_msgs_per_conn,
	};

	for (size_t i = 0; i < len; i++)
		e->key[i] = (char)(key[i] >= 'A' && key[i] <= 'Z' ? key[i] + 32 : key[i]);
	e->key[len] = '\0';
	e->burst = s->burst ? s->burst : 1;
	gcra_init(&e->bucket, s->rate, e->burst);
	return backoff_init(&e->backoff, &bc);
}

struct limits *limits_new(size_t max_entries, const struct limit_spec *dflt,
			  const struct limit_configured *configured, size_t n, char *err,
			  size_t errlen)
{
	if (!spec_ok(dflt)) {
		snprintf(err, errlen, "the default limits: want a rate above 0 and at least 1 connection");
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		size_t len = configured[i].key ? strlen(configured[i].key) : 0;
		if (len == 0 || len > LIMITS_KEY_MAX || !spec_ok(&configured[i].spec)) {
			snprintf(err, errlen, "limits for '%s': %s", configured[i].key ? configured[i].key : "",
				 len == 0 || len > LIMITS_KEY_MAX ? "not a destination name"
				 : "want a rate above 0 and at least 1 connection");
			return NULL;
		}
	}
	if (max_entries == 0 || max_entries > (SIZE_MAX / 4) / sizeof(void *)) {
		snprintf(err, errlen, "limits: %zu entries: want 1 or more", max_entries);
		return NULL;
	}
	struct limits *l = calloc(1, sizeof *l);
	size_t nslots = 16;
	while (nslots < 2 * max_entries)
		nslots *= 2;
	if (l)
		l->slots = calloc(nslots, sizeof *l->slots);
	if (l && n)
		l->configured = calloc(n, sizeof *l->configured);
	if (!l || !l->slots || (n && !l->configured) ||
	    entry_init(&l->overflow, "", 0, dflt) != 0) {
		snprintf(err, errlen, "limits: out of memory");
		if (l) {
			free(l->slots);
			free(l->configured);
		}
		free(l);
		return NULL;
	}
	for (size_t i = 0; i < nslots; i++)
		atomic_init(&l->slots[i], NULL);
	l->mask = nslots - 1;
	l->max_entries = max_entries;
	atomic_init(&l->count, 0);
	l->dflt = *dflt;
	for (size_t i = 0; i < n; i++) {
		l->configured[i].spec = configured[i].spec;
		l->configured[i].key = strdup(configured[i].key);
		if (!l->configured[i].key) {
			l->nconfigured = i;
			limits_free(l);
			snprintf(err, errlen, "limits: out of memory");
			return NULL;
		}
	}
	l->nconfigured = n;
	return l;
}

void limits_free(struct limits *l)
{
	if (!l)
		return;
	for (size_t i = 0; i <= l->mask; i++) {
		struct limit_entry *e = atomic_load_explicit(&l->slots[i], memory_order_relaxed);
		if (e) {
			backoff_destroy(&e->backoff);
			free(e);
		}
	}
	backoff_destroy(&l->overflow.backoff);
	for (size_t i = 0; i < l->nconfigured; i++)
		free((char *)l->configured[i].key);
	free(l->configured);
	free(l->slots);
	free(l);
}

size_t limits_count(const struct limits *l)
{
	size_t n = atomic_load_explicit(&l->count, memory_order_relaxed);
	return n < l->max_entries ? n : l->max_entries;
}

static const struct limit_spec *spec_for(const struct limits *l, const char *key, size_t len)
{
	for (size_t i = 0; i < l->nconfigured; i++)
		if (strlen(l->configured[i].key) == len && strncasecmp(l->configured[i].key, key, len) == 0)
			return &l->configured[i].spec;
	return &l->dflt;
}

static int same_key(const struct limit_entry *e, const char *key, size_t len)
{
	return strlen(e->key) == len && strncasecmp(e->key, key, len) == 0;
}

struct limit_entry *limits_get(struct limits *l, const char *key, size_t len)
{
	if (len == 0 || len > LIMITS_KEY_MAX || memchr(key, '\0', len))
		return NULL;
	size_t i = (size_t)key_hash(key, len) & l->mask;
	struct limit_entry *made = NULL;

	for (size_t probes = 0; probes <= l->mask; probes++, i = (i + 1) & l->mask) {
		struct limit_entry *e = atomic_load_explicit(&l->slots[i], memory_order_acquire);
		if (e) {
			if (same_key(e, key, len)) {
				if (made) {   /* another thread published it first */
					backoff_destroy(&made->backoff);
					free(made);
					atomic_fetch_sub_explicit(&l->count, 1, memory_order_relaxed);
				}
				return e;
			}
			continue;
		}
		/* an empty slot: the key is not in the table; make its entry once */
		if (!made) {
			if (atomic_fetch_add_explicit(&l->count, 1, memory_order_relaxed) >= l->max_entries) {
				atomic_fetch_sub_explicit(&l->count, 1, memory_order_relaxed);
				return &l->overflow;
			}
			made = malloc(sizeof *made);
			if (!made || entry_init(made, key, len, spec_for(l, key, len)) != 0) {
				free(made);
				atomic_fetch_sub_explicit(&l->count, 1, memory_order_relaxed);
				return &l->overflow;
			}
		}
		struct limit_entry *expected = NULL;
		if (atomic_compare_exchange_strong_explicit(&l->slots[i], &expected, made,
							    memory_order_acq_rel, memory_order_acquire))
			return made;
		/* the slot was taken meanwhile: look at what took it */
		if (same_key(expected, key, len)) {
			backoff_destroy(&made->backoff);
			free(made);
			atomic_fetch_sub_explicit(&l->count, 1, memory_order_relaxed);
			return expected;
		}
	}
	/* cannot happen: there are twice as many slots as entries */
	if (made) {
		backoff_destroy(&made->backoff);
		free(made);
		atomic_fetch_sub_explicit(&l->count, 1, memory_order_relaxed);
	}
	return &l->overflow;
}

uint64_t limit_take(struct limit_entry *e, uint64_t now_ns, unsigned n)
{
	return gcra_take(&e->bucket, now_ns, n);
}

int limit_feedback(struct limit_entry *e, const struct reply_verdict *v, uint64_t now_ns)
{
	int changed = v ? backoff_on_verdict(&e->backoff, v, now_ns) : backoff_on_delivered(&e->backoff);

	if (changed) {
		struct backoff_limits now;
		backoff_get(&e->backoff, &now);
		gcra_set(&e->bucket, now.rate, e->burst);
	}
	return changed;
}

void limit_caps(struct limit_entry *e, struct backoff_limits *out)
{
	backoff_get(&e->backoff, out);
}
