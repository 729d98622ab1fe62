/* sink_file: reads a small configuration file (credentials, rules) whole,
 * with a size cap and errors that name the file. */
#ifndef VOLLEY_SINK_FILE_H
#define VOLLEY_SINK_FILE_H

#include <stddef.h>

/* Returns the file's bytes (malloc'ed, NUL-terminated, *len without the
 * NUL), or NULL with "PATH: reason" in err: missing, unreadable, larger than
 * max. The caller frees it (and wipes it first when it held secrets). */
char *sink_file_read(const char *path, size_t max, size_t *len, char *err, size_t errlen);

#endif
