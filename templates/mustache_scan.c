/* mustache_scan: see mustache_scan.h. */
#include "templates/mustache_scan.h"

#include <string.h>

int tpl_is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int is_blank(char c)
{
	return c == ' ' || c == '\t';
}

void tpl_scan_init(struct tpl_scan *sc, const char *s, size_t n)
{
	sc->s = s;
	sc->n = n;
	memcpy(sc->open, "{{", 2);
	memcpy(sc->close, "}}", 2);
	sc->open_len = sc->close_len = 2;
}

/* A tag whose content ends in a character of its own before the closing
 * delimiter: {{{x}}} and {{=<% %>=}}. */
static char closing_mark(char type)
{
	return type == '{' ? '}' : type == '=' ? '=' : 0;
}

static int is_type(char c)
{
	return c && strchr("#^/!><$&{=", c) != NULL;
}

/* Fills clear_left/ws_start and clear_right/line_end of a tag. */
static void clearance(const char *s, size_t n, struct tpl_tag *t)
{
	size_t i = t->start;

	while (i > 0 && is_blank(s[i - 1]))
		i--;
	t->ws_start = i;
	t->clear_left = i == 0 || s[i - 1] == '\n';

	i = t->end;
	while (i < n && is_blank(s[i]))
		i++;
	t->line_end = i;
	t->clear_right = 1;
	if (i == n)
		return;
	if (s[i] == '\n')
		t->line_end = i + 1;
	else if (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n')
		t->line_end = i + 2;
	else
		t->clear_right = 0;
}

int tpl_scan_next(const struct tpl_scan *sc, size_t pos, struct tpl_tag *tag,
		  const char **why, size_t *at)
{
	const char *s = sc->s;
	size_t n = sc->n;

	if (pos >= n)
		return 0;
	const char *o = memmem(s + pos, n - pos, sc->open, sc->open_len);
	if (!o)
		return 0;

	size_t start = (size_t)(o - s);
	size_t body = start + sc->open_len;
	char type = body < n && is_type(s[body]) ? s[body] : 0;
	size_t content = type ? body + 1 : body;

	/* the closing delimiter, preceded by '}' or '=' for those two types */
	char mark = closing_mark(type);
	char closer[TPL_DELIM_MAX + 2];
	size_t closer_len = 0;
	if (mark)
		closer[closer_len++] = mark;
	memcpy(closer + closer_len, sc->close, sc->close_len);
	closer_len += sc->close_len;

	const char *c = content <= n ? memmem(s + content, n - content, closer, closer_len) : NULL;
	if (!c) {
		/* a closing delimiter without its mark is a malformed tag, not
		 * a missing end */
		int unmarked = mark && memmem(s + content, n - content, sc->close, sc->close_len);
		*why = !unmarked ? "unclosed tag"
		       : type == '=' ? "a set-delimiter tag must end with '=' before its closing delimiter"
		       : "a triple mustache must end with '}' before its closing delimiter";
		*at = start;
		return -1;
	}

	size_t b = content, e = (size_t)(c - s);
	if (type != '!') {
		while (b < e && tpl_is_space(s[b]))
			b++;
		while (e > b && tpl_is_space(s[e - 1]))
			e--;
	}
	tag->start = start;
	tag->end = (size_t)(c - s) + closer_len;
	tag->type = type;
	tag->name = b;
	tag->name_len = e - b;
	clearance(s, n, tag);
	return 1;
}

int tpl_scan_set_delims(struct tpl_scan *sc, const struct tpl_tag *tag, const char **why)
{
	const char *p = sc->s + tag->name, *end = p + tag->name_len;
	const char *part[2];
	size_t len[2];
	int k = 0;

	while (p < end) {
		if (tpl_is_space(*p)) {
			p++;
			continue;
		}
		if (k == 2) {
			*why = "a set-delimiter tag takes two delimiters";
			return -1;
		}
		part[k] = p;
		while (p < end && !tpl_is_space(*p))
			p++;
		len[k] = (size_t)(p - part[k]);
		k++;
	}
	if (k != 2) {
		*why = "a set-delimiter tag takes two delimiters";
		return -1;
	}
	for (int i = 0; i < 2; i++) {
		if (len[i] > TPL_DELIM_MAX) {
			*why = "delimiter too long";
			return -1;
		}
		if (memchr(part[i], '=', len[i])) {
			*why = "a delimiter may not contain '='";
			return -1;
		}
	}
	memcpy(sc->open, part[0], len[0]);
	sc->open_len = len[0];
	memcpy(sc->close, part[1], len[1]);
	sc->close_len = len[1];
	return 0;
}

void tpl_lc_init_at(struct tpl_lc *lc, unsigned line, unsigned col)
{
	lc->off = 0;
	lc->line = lc->base_line = line;
	lc->col = lc->base_col = col;
}

void tpl_lc_init(struct tpl_lc *lc)
{
	tpl_lc_init_at(lc, 1, 1);
}

const struct tpl_lc *tpl_lc_at(struct tpl_lc *lc, const char *s, size_t off)
{
	if (off < lc->off)
		tpl_lc_init_at(lc, lc->base_line, lc->base_col);
	for (size_t i = lc->off; i < off; i++) {
		if (s[i] == '\n') {
			lc->line++;
			lc->col = 1;
		} else {
			lc->col++;
		}
	}
	lc->off = off;
	return lc;
}
