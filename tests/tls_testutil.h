/* tls_testutil: what the TLS tests share. */
#ifndef VOLLEY_TLS_TESTUTIL_H
#define VOLLEY_TLS_TESTUTIL_H

#include <stdio.h>
#include <stdlib.h>
#include "pool/tls.h"

/* A context, or exit 99 (a set-up failure, not a test's) with the reason. */
static inline struct tls_ctx *ctx_or_die(const struct tls_ctx_opts *o)
{
	char err[256] = "";
	struct tls_ctx *t = tls_ctx_new(o, err, sizeof(err));
	if (!t) {
		fprintf(stderr, "tls_ctx_new: %s\n", err);
		exit(99);
	}
	return t;
}

#endif
