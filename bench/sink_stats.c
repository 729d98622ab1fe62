/* sink_stats: summing and reporting the counters. See sink_stats.h. */
#include "bench/sink_stats.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

void sink_stats_sum(struct sink_stats *dst, const struct sink_stats *src)
{
	dst->sessions += LOAD(src->sessions);
	dst->sessions_closed += LOAD(src->sessions_closed);
	dst->tls += LOAD(src->tls);
	dst->tls_failed += LOAD(src->tls_failed);
	dst->auth_ok += LOAD(src->auth_ok);
	dst->auth_failed += LOAD(src->auth_failed);
	dst->messages += LOAD(src->messages);
	dst->rejected += LOAD(src->rejected);
	dst->recipients += LOAD(src->recipients);
	dst->bytes += LOAD(src->bytes);
	dst->bytes_in += LOAD(src->bytes_in);
	for (size_t i = 0; i < sizeof dst->replies / sizeof dst->replies[0]; i++)
		dst->replies[i] += LOAD(src->replies[i]);
}

/* The scalar counters, by name, in the order they are printed. */
#define SINK_STAT_FIELDS(X) \
	X(sessions) X(sessions_closed) X(tls) X(tls_failed) \
	X(auth_ok) X(auth_failed) X(messages) X(rejected) X(recipients) X(bytes) X(bytes_in)

void sink_stats_print(FILE *f, const struct sink_stats *st, double seconds)
{
	fprintf(f, "seconds %.3f\n", seconds);
	fprintf(f, "sessions_open %llu\n", (unsigned long long)(st->sessions - st->sessions_closed));
#define PRINT_ONE(name) fprintf(f, #name " %llu\n", (unsigned long long)st->name);
	SINK_STAT_FIELDS(PRINT_ONE)
#undef PRINT_ONE
	for (int code = SINK_CODE_MIN; code <= SINK_CODE_MAX; code++)
		if (st->replies[code - SINK_CODE_MIN])
			fprintf(f, "replies %d %llu\n", code,
				(unsigned long long)st->replies[code - SINK_CODE_MIN]);
	fflush(f);
}

int sink_stats_write_json(const char *path, const struct sink_stats *st, double seconds)
{
	size_t plen = strlen(path);
	char *tmp = malloc(plen + 8);
	if (!tmp)
		return -1;
	memcpy(tmp, path, plen);
	memcpy(tmp + plen, ".tmp", 5);
	FILE *f = fopen(tmp, "w");
	if (!f) {
		int e = errno;
		free(tmp);
		errno = e;
		return -1;
	}
	fprintf(f, "{\"seconds\": %.3f, \"sessions_open\": %llu", seconds,
		(unsigned long long)(st->sessions - st->sessions_closed));
#define JSON_ONE(name) fprintf(f, ", \"" #name "\": %llu", (unsigned long long)st->name);
	SINK_STAT_FIELDS(JSON_ONE)
#undef JSON_ONE
	fputs(", \"replies\": {", f);
	int first = 1;
	for (int code = SINK_CODE_MIN; code <= SINK_CODE_MAX; code++) {
		unsigned long long n = st->replies[code - SINK_CODE_MIN];
		if (!n)
			continue;
		fprintf(f, "%s\"%d\": %llu", first ? "" : ", ", code, n);
		first = 0;
	}
	fputs("}}\n", f);
	int bad = ferror(f);
	if (fclose(f) != 0 || bad || rename(tmp, path) != 0) {
		int e = errno ? errno : EIO;
		unlink(tmp);
		free(tmp);
		errno = e;
		return -1;
	}
	free(tmp);
	return 0;
}
