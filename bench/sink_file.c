/* sink_file: small files read whole. See sink_file.h. */
#include "bench/sink_file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *sink_file_read(const char *path, size_t max, size_t *len, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	char *buf = malloc(max + 1);
	if (!buf) {
		fclose(f);
		snprintf(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	size_t n = fread(buf, 1, max + 1, f);
	int bad = ferror(f);
	fclose(f);
	if (bad || n > max) {
		if (bad)
			snprintf(err, errlen, "%s: read error", path);
		else
			snprintf(err, errlen, "%s: larger than %zu bytes", path, max);
		explicit_bzero(buf, n);
		free(buf);
		return NULL;
	}
	buf[n] = 0;
	*len = n;
	return buf;
}
