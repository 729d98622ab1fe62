/* mustache_lines: a program's template text prepared for tpl_render_lines
 * (see mustache.h): every text op copied with its line ends made CRLF, and
 * measured, once per template rather than once per message. */
#include "templates/mustache_prog.h"
#include "templates/utf8.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Whether s[0..n) holds a CR that no LF follows. */
static int has_lone_cr(const char *s, size_t n)
{
	const char *p = s, *end = s + n;

	while ((p = memchr(p, '\r', (size_t)(end - p))) != NULL) {
		if (p + 1 == end || p[1] != '\n')
			return 1;
		p += 2;
	}
	return 0;
}

/* Copies s[0..n) to o with each LF alone made CRLF. Returns the length. */
static size_t to_crlf(char *o, const char *s, size_t n)
{
	size_t len = 0;

	for (size_t i = 0; i < n;) {
		const char *nl = memchr(s + i, '\n', n - i);
		size_t k = nl ? (size_t)(nl - (s + i)) : n - i;
		memcpy(o + len, s + i, k);
		len += k;
		i += k;
		if (!nl)
			break;
		if (k == 0 || s[i - 1] != '\r')
			o[len++] = '\r';
		o[len++] = '\n';
		i++;
	}
	return len;
}

/* Whether the CRLF text p[0..n) holds a TAB, or a SP before SP or CR. */
static int has_loose_space(const char *p, size_t n)
{
	if (memchr(p, '\t', n))
		return 1;
	for (const char *q = p, *end = p + n; (q = memchr(q, ' ', (size_t)(end - q))) != NULL; q++)
		if (q + 1 < end && (q[1] == ' ' || q[1] == '\r'))
			return 1;
	return 0;
}

/* Measures the CRLF text p[0..n) into sh. */
static void measure(struct tpl_text_shape *sh, const char *p, size_t n)
{
	const char *line = p, *end = p + n, *nl;

	sh->eol = 0;
	sh->longest = 0;
	while ((nl = memchr(line, '\n', (size_t)(end - line))) != NULL) {
		uint32_t len = (uint32_t)(nl - 1 - line);   /* the CR before it is not counted */
		if (!sh->eol)
			sh->head = len;
		else if (len > sh->longest)
			sh->longest = len;
		sh->eol = 1;
		line = nl + 1;
	}
	if (!sh->eol)
		sh->head = (uint32_t)n;
	sh->tail = (uint32_t)(end - line);
}

static void prepare_text(struct tpl_lines *l, size_t *used, const struct tpl_op *op,
			 struct tpl_text_shape *sh)
{
	const char *s = l->t->pool + op->a;
	size_t n = op->b;

	int non_ascii = utf8_has_non_ascii(s, n);

	sh->off = (uint32_t)*used;
	sh->len = (uint32_t)to_crlf(l->pool + *used, s, n);
	measure(sh, l->pool + *used, sh->len);
	sh->has = (non_ascii ? TPL_HAS_NON_ASCII : 0) |
		  (l->watch && memchr(s, l->watch, n) ? TPL_HAS_WATCH : 0) |
		  (has_loose_space(l->pool + *used, sh->len) ? TPL_HAS_LOOSE : 0) |
		  (memchr(s, '\0', n) || has_lone_cr(s, n) || (non_ascii && utf8_check(s, n) != n)
			   ? TPL_HAS_UNFIT : 0);
	sh->first = sh->len ? (uint8_t)l->pool[*used] : 0;
	sh->last = sh->len ? (uint8_t)l->pool[*used + sh->len - 1] : 0;
	*used += sh->len;
}

struct tpl_lines *tpl_lines_new(const struct tpl *t, unsigned char watch)
{
	struct tpl_lines *l = calloc(1, sizeof *l);
	size_t room = 0, used = 0;

	if (!l)
		return NULL;
	l->t = t;
	l->watch = watch;
	for (size_t i = 0; i < t->nops; i++)
		if (t->ops[i].code == TPL_OP_TEXT)
			room += 2 * (size_t)t->ops[i].b;
	if (room > UINT32_MAX) {   /* the shapes hold 32-bit offsets */
		free(l);
		return NULL;
	}
	l->pool = malloc(room ? room : 1);
	l->shape = calloc(t->nops ? t->nops : 1, sizeof *l->shape);
	if (!l->pool || !l->shape) {
		tpl_lines_free(l);
		return NULL;
	}
	for (size_t i = 0; i < t->nops; i++)
		if (t->ops[i].code == TPL_OP_TEXT)
			prepare_text(l, &used, &t->ops[i], &l->shape[i]);
	return l;
}

void tpl_lines_free(struct tpl_lines *l)
{
	if (!l)
		return;
	free(l->pool);
	free(l->shape);
	free(l);
}
