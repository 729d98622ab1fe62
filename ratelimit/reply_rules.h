/* reply_rules: the rule language of reply_class.h (its format is described
 * at the top of ratelimit/bounce_rules.ini), compiled by reply_rules_parse
 * and matched here. Not an API: reply_class.c asks it which rule matches. */
#ifndef VOLLEY_REPLY_RULES_H
#define VOLLEY_REPLY_RULES_H

#include "ratelimit/reply_class.h"

/* The rule that decides f. */
struct reply_rule_hit {
	enum reply_class cls;
	int permanent;      /* the message fails even on a 4xx */
	const char *name;
};

/* Fills *hit from the first rule that matches f. Returns 1, or 0 when none
 * does. */
int reply_rules_match(const struct reply_rules *r, const struct reply_facts *f,
		      struct reply_rule_hit *hit);

/* The text of ratelimit/bounce_rules.ini (generated at build). */
extern const char reply_rules_default_text[];
extern const size_t reply_rules_default_text_len;

#endif
