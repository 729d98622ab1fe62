/* suppress: see suppress.h. */
#include "engine/suppress.h"
#include "engine/line_append.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct suppress {
	char *arena;          /* addresses, lower case, NUL-terminated */
	size_t used, cap;
	uint32_t *slots;      /* arena offset + 1; 0: empty */
	size_t nslots, count;
	int fd;               /* -1: in memory only, or not yet created */
	char *path;
};

static unsigned char lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c | 0x20) : c;
}

static uint64_t hash(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ULL;   /* FNV-1a over the lower-cased bytes */
	for (size_t i = 0; i < n; i++)
		h = (h ^ lower((unsigned char)s[i])) * 1099511628211ULL;
	return h;
}

static int same(const char *stored, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (stored[i] != (char)lower((unsigned char)s[i]))
			return 0;
	return stored[n] == '\0';
}

/* The slot for s: its own, or the empty one it would take. */
static size_t probe(const struct suppress *sp, const char *s, size_t n)
{
	size_t mask = sp->nslots - 1, i = (size_t)hash(s, n) & mask;
	while (sp->slots[i] && !same(sp->arena + sp->slots[i] - 1, s, n))
		i = (i + 1) & mask;
	return i;
}

static int grow_slots(struct suppress *sp)
{
	size_t n = sp->nslots ? sp->nslots * 2 : 1024;
	uint32_t *old = sp->slots;
	size_t oldn = sp->nslots;

	sp->slots = calloc(n, sizeof *sp->slots);
	if (!sp->slots) {
		sp->slots = old;
		return -1;
	}
	sp->nslots = n;
	for (size_t i = 0; i < oldn; i++) {
		if (!old[i])
			continue;
		const char *a = sp->arena + old[i] - 1;
		sp->slots[probe(sp, a, strlen(a))] = old[i];
	}
	free(old);
	return 0;
}

/* Puts s in the set. Returns 1 added, 0 there, -1 out of memory. */
static int insert(struct suppress *sp, const char *s, size_t n)
{
	if ((sp->count + 1) * 4 > sp->nslots * 3 && grow_slots(sp) != 0)
		return -1;
	size_t i = probe(sp, s, n);
	if (sp->slots[i])
		return 0;
	if (sp->used + n + 1 > UINT32_MAX - 1) {
		errno = ENOMEM;
		return -1;
	}
	if (sp->used + n + 1 > sp->cap) {
		size_t cap = sp->cap ? sp->cap * 2 : 65536;
		while (cap < sp->used + n + 1)
			cap *= 2;
		char *a = realloc(sp->arena, cap);
		if (!a)
			return -1;
		sp->arena = a;
		sp->cap = cap;
	}
	for (size_t k = 0; k < n; k++)
		sp->arena[sp->used + k] = (char)lower((unsigned char)s[k]);
	sp->arena[sp->used + n] = '\0';
	sp->slots[i] = (uint32_t)sp->used + 1;
	sp->used += n + 1;
	sp->count++;
	return 1;
}

/* An address from a line: trimmed of spaces, and of angle brackets. */
static void trim(const char **s, size_t *n)
{
	while (*n && (**s == ' ' || **s == '\t' || **s == '<'))
		(*s)++, (*n)--;
	while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t' || (*s)[*n - 1] == '\r' ||
		      (*s)[*n - 1] == '\n' || (*s)[*n - 1] == '>'))
		(*n)--;
}

struct suppress *suppress_open(const char *path, char *err, size_t errlen)
{
	struct suppress *sp = calloc(1, sizeof *sp);

	if (sp)
		sp->fd = -1;
	if (!sp || grow_slots(sp) != 0 || (path && !(sp->path = strdup(path)))) {
		snprintf(err, errlen, "suppression list: out of memory");
		suppress_close(sp);
		return NULL;
	}
	if (!path)
		return sp;
	FILE *f = fopen(path, "r");
	if (!f && errno != ENOENT) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		suppress_close(sp);
		return NULL;
	}
	if (f) {
		char *line = NULL;
		size_t cap = 0;
		ssize_t got;
		unsigned long lineno = 0;
		while ((got = getline(&line, &cap, f)) >= 0) {
			const char *s = line;
			size_t n = (size_t)got;
			lineno++;
			trim(&s, &n);
			if (n == 0 || s[0] == '#')
				continue;
			if (n > SUPPRESS_ADDR_MAX || memchr(s, '\0', n)) {
				snprintf(err, errlen, "%s:%lu: not an address (%zu bytes)", path, lineno, n);
				free(line);
				fclose(f);
				suppress_close(sp);
				return NULL;
			}
			if (insert(sp, s, n) < 0) {
				snprintf(err, errlen, "%s: out of memory", path);
				free(line);
				fclose(f);
				suppress_close(sp);
				return NULL;
			}
		}
		free(line);
		fclose(f);
	}
	return sp;
}

void suppress_close(struct suppress *sp)
{
	if (!sp)
		return;
	if (sp->fd >= 0)
		close(sp->fd);
	free(sp->slots);
	free(sp->arena);
	free(sp->path);
	free(sp);
}

int suppress_has(const struct suppress *sp, const char *addr, size_t len)
{
	return sp->slots[probe(sp, addr, len)] != 0;
}

size_t suppress_count(const struct suppress *sp)
{
	return sp->count;
}

int suppress_add(struct suppress *sp, const char *addr, size_t len)
{
	if (len == 0 || len > SUPPRESS_ADDR_MAX || memchr(addr, '\n', len) || memchr(addr, '\r', len)) {
		errno = EINVAL;
		return -1;
	}
	int added = insert(sp, addr, len);
	if (added <= 0 || !sp->path)
		return added;
	if (sp->fd < 0 && (sp->fd = line_append_open(sp->path)) < 0)
		return -1;
	char line[SUPPRESS_ADDR_MAX + 2];
	memcpy(line, addr, len);
	line[len] = '\n';
	ssize_t w;
	do
		w = write(sp->fd, line, len + 1);
	while (w < 0 && errno == EINTR);
	return w == (ssize_t)(len + 1) ? 1 : -1;
}
