/* sink_rules: fault injection for volley sink, from a rules file. A pure
 * parser (errors name the file, line and column) and a matcher that turns a
 * session's view at one stage into a verdict. The clock and the random
 * generator are the caller's.
 *
 * The format, one rule a line ('#' starts a comment, blank lines are fine):
 *
 *   [CONDITION...] at=STAGE ACTION [ARGUMENTS]
 *
 * STAGE is connect, helo, mail, rcpt, data or body (body rules are asked when
 * the body starts and answer after it, so a reply there is the reply to the
 * message). CONDITIONs, all of which must hold:
 *
 *   rcpt=GLOB     the recipient (at rcpt), or any accepted recipient (at data
 *                 and body); '*' and '?' wildcards, case-insensitive
 *   from=GLOB     the envelope sender ("" for <>), from mail on
 *   client=GLOB   the client's IP address, as text ("127.0.0.*")
 *   helo=GLOB     the EHLO/HELO name, from helo on
 *   after=N       N messages or more were accepted earlier on this session
 *   rate>N        more than N per second reach this rule across the sink
 *                 (a burst of N is allowed, as a token bucket)
 *   prob=P        with probability P, 0 to 1 (seed the generator: --seed)
 *
 * ACTIONs:
 *
 *   reply CODE [X.Y.Z] TEXT   reply with CODE (2xx, 4xx or 5xx) and TEXT; a 2xx
 *                             only changes the text of an acceptance; 421
 *                             also closes the session
 *   delay MS                  wait MS milliseconds before the reply; matching
 *                             goes on (delays add up)
 *   disconnect                close the connection without a reply; at body,
 *                             once the first body bytes arrive (mid-DATA)
 *   greylist [SECONDS]        at rcpt: the first attempt of a (sender,
 *                             recipient) pair gets "451 4.7.1", attempts
 *                             SECONDS (default 0) or more later go on
 *
 * The first rule that matches with reply, disconnect or greylist (that lets
 * the command go on) decides; the delays of the rules before it add up. */
#ifndef VOLLEY_SINK_RULES_H
#define VOLLEY_SINK_RULES_H

#include <stddef.h>
#include <stdint.h>
#include "bench/sink_session.h"

#define SINK_RULES_MAX 1024
#define SINK_GREY_SLOTS 65536   /* (sender, recipient) pairs remembered */

struct sink_rules;

/* Parses a rules file's text. name is for error messages. Returns the rules,
 * or NULL with "NAME:LINE:COL: reason" in err. */
struct sink_rules *sink_rules_parse(const char *name, const char *text, size_t len,
				    char *err, size_t errlen);
/* Reads and parses a file. */
struct sink_rules *sink_rules_load(const char *path, char *err, size_t errlen);
void sink_rules_free(struct sink_rules *r);
unsigned sink_rules_count(const struct sink_rules *r);
/* Whether any rule looks at the client's address (so it must be looked up). */
int sink_rules_need_client(const struct sink_rules *r);

/* What the matcher needs besides the session's view. */
struct sink_match {
	const char *client;     /* the client's IP address, as text */
	uint64_t now_ms;        /* a monotonic clock */
	uint64_t *rng;          /* xorshift64 state, never 0; one per thread */
};

/* Fills *v (which arrives as SINK_ACCEPT) from the first rule that decides.
 * Safe to call from several threads at once: rate buckets and the greylist
 * are shared, with atomics and a lock. */
void sink_rules_decide(struct sink_rules *r, const struct sink_match *m,
		       const struct sink_view *view, struct sink_verdict *v);

/* Returns a uniform double in [0, 1) and advances *state (xorshift64). */
double sink_rules_random(uint64_t *state);

#endif
