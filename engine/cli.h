/* cli: what the volley commands share: secrets from files, TLS contexts from
 * --ca/--insecure, messages from files, timestamps for transcripts. */
#ifndef VOLLEY_CLI_H
#define VOLLEY_CLI_H

#include <stddef.h>
#include "pool/tls.h"

/* Reads a secret (a password, a token) from the first line of a file, or
 * from the environment variable env when path is NULL. Returns 0, or -1 with
 * a reason in err. The caller wipes out with explicit_bzero. */
int cli_read_secret(const char *path, const char *env, char *out, size_t cap, char *err, size_t errlen);

/* Returns a client TLS context trusting ca (NULL: the system store), or
 * verifying nothing when insecure; NULL with a reason in err. */
struct tls_ctx *cli_tls_client(const char *ca, int insecure, char *err, size_t errlen);

/* Reads a message file and turns its line ends into CRLF. Returns the
 * malloc'ed message (*len bytes, *need the enum smtp_msg_need bits it needs)
 * or NULL with a reason in err. Refuses NUL bytes and lines over 998 octets
 * (naming the line). */
char *cli_load_message(const char *path, size_t *len, unsigned *need, char *err, size_t errlen);

/* Parses a decimal number with an optional k or m suffix: thousands and
 * millions for counts, KiB and MiB when is_size. Returns 0 or -1. */
int cli_parse_count(const char *s, unsigned long long *out, int is_size);

/* Writes "HH:MM:SS.mmm" (UTC) into buf. */
void cli_timestamp(char *buf, size_t cap);

#endif
