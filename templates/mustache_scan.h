/* mustache_scan: finds the tags of one template source, with the delimiters
 * in force, and says whether each one could stand alone on its line. Pure:
 * bytes in, tag positions out; the compiler decides what a tag means. */
#ifndef VOLLEY_MUSTACHE_SCAN_H
#define VOLLEY_MUSTACHE_SCAN_H

#include "templates/mustache.h"

#include <stddef.h>

struct tpl_scan {
	const char *s;
	size_t n;
	char open[TPL_DELIM_MAX], close[TPL_DELIM_MAX + 1];
	size_t open_len, close_len;
};

struct tpl_tag {
	size_t start, end;      /* the whole tag, delimiters included */
	char type;              /* 0 for a variable, else one of # ^ / ! > < $ & { = */
	size_t name, name_len;  /* the content, trimmed (for '=': the new delimiters) */
	int clear_left;         /* only spaces and tabs before it on its line */
	int clear_right;        /* only spaces and tabs after it, then a line end or the end */
	size_t ws_start;        /* where that leading whitespace starts */
	size_t line_end;        /* just past the line end that follows (when clear_right) */
};

/* Starts scanning s[0..n) with the default delimiters. */
void tpl_scan_init(struct tpl_scan *sc, const char *s, size_t n);

/* Finds the first tag at or after pos. Returns 1 and fills *tag, 0 when no
 * tag is left, or -1 with a static reason in *why and its place in *at (an
 * opening delimiter without its closing one). */
int tpl_scan_next(const struct tpl_scan *sc, size_t pos, struct tpl_tag *tag,
		  const char **why, size_t *at);

/* Applies a '=' tag's new delimiters. Returns 0, or -1 with a static reason
 * in *why (not two whitespace-separated delimiters of 1 to TPL_DELIM_MAX
 * bytes without '='). */
int tpl_scan_set_delims(struct tpl_scan *sc, const struct tpl_tag *tag, const char **why);

/* Space, tab, CR or LF. */
int tpl_is_space(char c);

/* A running line/column position in a source, moved forward as the
 * compiler goes (moving back starts again from the top). */
struct tpl_lc {
	size_t off;
	unsigned line, col;
	unsigned base_line, base_col;   /* the place of offset 0 */
};

/* Starts at line 1, column 1. */
void tpl_lc_init(struct tpl_lc *lc);

/* Starts with offset 0 at line:col (a source cut from a larger file). */
void tpl_lc_init_at(struct tpl_lc *lc, unsigned line, unsigned col);

/* Moves lc to offset off of s and returns it. */
const struct tpl_lc *tpl_lc_at(struct tpl_lc *lc, const char *s, size_t off);

#endif
