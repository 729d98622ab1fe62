/* mustache_compile: see mustache.h. One pass over each unit's tags with a
 * stack of open constructs; a partial is compiled after the unit that first
 * names it (a worklist, so a template that includes itself is no recursion
 * here, and the first reference is always the shortest chain).
 *
 * Whitespace follows the spec's standalone rules: a tag that may stand alone
 * (section, inverted, close, comment, partial, set-delimiter, parent, block)
 * and is the only thing on its line takes the whole line with it, and a
 * standalone partial's leading whitespace becomes its indentation.
 *
 * Inheritance adds three rules (mustache/spec's block reindentation):
 *   - a parent pair {{<p}}..{{/p}} stands alone when the opening tag clears
 *     its line on the left and the closing tag clears it on the right, even
 *     on one line; it is then indented like a standalone partial.
 *   - an override ({{$b}} inside a parent) whose opening tag ends its line
 *     starts its content on the next line, and the whitespace that starts
 *     the content's first line is removed from the start of every line of
 *     it; a closing tag alone on its line leaves its whitespace out too.
 *   - a block where content is placed indents that content by the
 *     indentation of its default content when its opening tag stands alone
 *     (or the tag's own, when there is no default), or by the tag's leading
 *     whitespace when the pair clears the line on both sides. */
#include "templates/mustache_prog.h"
#include "templates/mustache_scan.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Interned strings of the pool: an open-addressing table of item numbers. */
struct intern {
	uint32_t *slots;          /* item + 1, 0 is empty */
	size_t nslots;
	struct tpl_sym *items;
	size_t n, cap;
};

/* A construct whose closing tag has not come yet. */
struct open {
	char type;             /* '#', '^', '<', '$' (a block) or 'o' (an override) */
	uint32_t op;
	struct tpl_tag tag;    /* its opening tag */
	unsigned line, col;
	size_t content;        /* where its content starts */
	long text_op;          /* '<': the TEXT op that ends at the tag, or -1 */
	size_t strip;          /* 'o': the strip in force outside it */
};

struct comp {
	struct tpl *t;
	size_t ops_cap, names_cap, keys_cap, units_cap, pool_cap;
	struct intern syms, blocks;
	struct tpl_opts o;
	struct tpl_error *err;

	/* the unit being compiled; its source does not move while it is */
	uint32_t unit;
	const char *s;
	size_t n, base;
	struct tpl_scan sc;
	struct tpl_lc lc;
	size_t strip;          /* blanks removed from each line start (override content) */
	struct open stack[TPL_NESTING_MAX];
	int depth;
};

static int is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* Makes room for one more item in a growing array. Returns 0 or -1. */
static int reserve(void **p, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return 0;
	size_t ncap = *cap ? *cap * 2 : 16;
	if (ncap > SIZE_MAX / size)
		return -1;
	void *np = realloc(*p, ncap * size);
	if (!np)
		return -1;
	*p = np;
	*cap = ncap;
	return 0;
}

static const char *unit_file(const struct comp *c, uint32_t u)
{
	return c->t->units[u].file ? c->t->units[u].file : "";
}

static int oom(struct comp *c)
{
	tpl_set_error(c->err, unit_file(c, c->unit), 0, 0, "out of memory");
	return -1;
}

/* An error at offset off of the unit being compiled. Returns -1. */
__attribute__((format(printf, 3, 4)))
static int fail_at(struct comp *c, size_t off, const char *fmt, ...)
{
	char what[TPL_ERR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	const struct tpl_lc *lc = tpl_lc_at(&c->lc, c->s, off);
	tpl_set_error(c->err, unit_file(c, c->unit), lc->line, lc->col, "%s", what);
	return -1;
}

/* ---- interning ---- */

static uint32_t hash(const char *s, size_t n)
{
	uint32_t h = 2166136261u;   /* FNV-1a */

	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 16777619u;
	return h;
}

/* Returns the item number of pool[off..off+len) in tab, adding it when new,
 * or -1 (out of memory). */
static long intern(struct intern *tab, const char *pool, uint32_t off, uint32_t len)
{
	if (tab->n * 2 >= tab->nslots) {
		size_t nslots = tab->nslots ? tab->nslots * 2 : 64;
		uint32_t *slots = calloc(nslots, sizeof *slots);
		if (!slots)
			return -1;
		for (size_t i = 0; i < tab->n; i++) {
			const struct tpl_sym *it = &tab->items[i];
			size_t h = hash(pool + it->off, it->len) & (nslots - 1);
			while (slots[h])
				h = (h + 1) & (nslots - 1);
			slots[h] = (uint32_t)i + 1;
		}
		free(tab->slots);
		tab->slots = slots;
		tab->nslots = nslots;
	}
	size_t h = hash(pool + off, len) & (tab->nslots - 1);
	for (; tab->slots[h]; h = (h + 1) & (tab->nslots - 1)) {
		const struct tpl_sym *it = &tab->items[tab->slots[h] - 1];
		if (it->len == len && memcmp(pool + it->off, pool + off, len) == 0)
			return (long)tab->slots[h] - 1;
	}
	if (reserve((void **)&tab->items, &tab->cap, tab->n, sizeof *tab->items) < 0)
		return -1;
	tab->items[tab->n] = (struct tpl_sym){ off, len };
	tab->slots[h] = (uint32_t)++tab->n;
	return (long)tab->n - 1;
}

static void intern_free(struct intern *tab)
{
	free(tab->slots);
	free(tab->items);
}

/* ---- ops ---- */

/* Appends an op for the tag at off; returns its index or -1. */
static long add_op(struct comp *c, uint8_t code, size_t off)
{
	struct tpl *t = c->t;

	if (reserve((void **)&t->ops, &c->ops_cap, t->nops, sizeof *t->ops) < 0)
		return oom(c);
	const struct tpl_lc *lc = tpl_lc_at(&c->lc, c->s, off);
	t->ops[t->nops] = (struct tpl_op){
		.code = code, .unit = (uint16_t)c->unit, .line = lc->line, .col = lc->col,
	};
	return (long)t->nops++;
}

/* Text s[a..b) of the unit. Inside an override with a strip, each line is
 * its own op and loses up to strip leading blanks. */
static int emit_text(struct comp *c, size_t a, size_t b)
{
	while (a < b) {
		if (c->strip && a > 0 && c->s[a - 1] == '\n')
			for (size_t k = 0; k < c->strip && a < b && is_blank(c->s[a]); k++)
				a++;
		size_t e = b;
		if (c->strip) {
			const char *nl = memchr(c->s + a, '\n', b - a);
			if (nl)
				e = (size_t)(nl - c->s) + 1;
		}
		if (e > a) {
			long i = add_op(c, TPL_OP_TEXT, a);
			if (i < 0)
				return -1;
			c->t->ops[i].a = (uint32_t)(c->base + a);
			c->t->ops[i].b = (uint32_t)(e - a);
		}
		a = e;
	}
	return 0;
}

/* Sets op i's indentation to the blanks s[a..a+len) at a line start, less
 * what the override strip removes from that line. */
static void set_indent(struct comp *c, long i, size_t a, size_t len)
{
	struct tpl_op *op = &c->t->ops[i];

	if (len <= c->strip) {
		op->c = op->d = 0;
		return;
	}
	op->c = (uint32_t)(c->base + a + c->strip);
	op->d = (uint32_t)(len - c->strip);
}

/* ---- names ---- */

/* Checks a tag's name: not empty, not too long, no whitespace in it. */
static int check_name(struct comp *c, const struct tpl_tag *tag)
{
	const char *p = c->s + tag->name;

	if (tag->name_len == 0)
		return fail_at(c, tag->start, "empty tag");
	if (tag->name_len > TPL_NAME_MAX)
		return fail_at(c, tag->start, "tag name longer than %d bytes", TPL_NAME_MAX);
	for (size_t i = 0; i < tag->name_len; i++)
		if (tpl_is_space(p[i]))
			return fail_at(c, tag->start, "tag name '%.*s' holds whitespace",
				       (int)tag->name_len, p);
	return 0;
}

/* Adds the dotted name of a variable or section; returns its number or -1. */
static long add_name(struct comp *c, const struct tpl_tag *tag)
{
	struct tpl *t = c->t;
	const char *p = c->s + tag->name;
	size_t len = tag->name_len;

	if (reserve((void **)&t->names, &c->names_cap, t->nnames, sizeof *t->names) < 0)
		return oom(c);
	struct tpl_name *nm = &t->names[t->nnames];
	nm->off = (uint32_t)(c->base + tag->name);
	nm->len = (uint32_t)len;
	nm->first = (uint32_t)t->nkeys;
	nm->nparts = 0;
	if (len == 1 && p[0] == '.')
		return (long)t->nnames++;

	for (size_t i = 0; i <= len;) {
		const char *dot = memchr(p + i, '.', len - i);
		size_t e = dot ? (size_t)(dot - p) : len;
		if (e == i)
			return fail_at(c, tag->start, "bad name '%.*s'", (int)len, p);
		long sym = intern(&c->syms, t->pool, (uint32_t)(c->base + tag->name + i),
				  (uint32_t)(e - i));
		if (sym < 0 || reserve((void **)&t->keys, &c->keys_cap, t->nkeys, sizeof *t->keys) < 0)
			return oom(c);
		t->keys[t->nkeys++] = (struct tpl_key){ NULL, (uint32_t)(e - i), (uint32_t)sym };
		nm->nparts++;
		i = e + 1;
	}
	return (long)t->nnames++;
}

/* The unit of the partial called pool[off..off+len), first named by the
 * unit being compiled at line:col (0:0 for a preloaded name); added, to be
 * compiled later, when new. Returns its number or -1. */
static long find_unit(struct comp *c, uint32_t off, uint32_t len, unsigned line, unsigned col)
{
	struct tpl *t = c->t;
	const char *name = t->pool + off;
	const char *file = unit_file(c, c->unit);

	for (size_t u = 1; u < t->nunits; u++) {
		const struct tpl_unit *un = &t->units[u];
		if (un->name_len == len && memcmp(t->pool + un->name_off, name, len) == 0)
			return (long)u;
	}
	if (t->nunits > c->o.max_partials) {
		tpl_set_error(c->err, file, line, col, "more than %u partials", c->o.max_partials);
		return -1;
	}
	uint32_t depth = t->units[c->unit].depth + 1;
	if (depth > c->o.max_partial_depth) {
		tpl_set_error(c->err, file, line, col, "partials nested deeper than %u ('%.*s')",
			      c->o.max_partial_depth, (int)len, name);
		return -1;
	}
	if (reserve((void **)&t->units, &c->units_cap, t->nunits, sizeof *t->units) < 0)
		return oom(c);
	t->units[t->nunits] = (struct tpl_unit){
		.name_off = off, .name_len = len, .depth = depth,
		.ref_unit = c->unit, .ref_line = line, .ref_col = col,
	};
	return (long)t->nunits++;
}

/* What a partial or parent tag includes: its unit, or for a dynamic name
 * ("*name", blanks allowed after the star) the name whose value names the
 * unit at render, with *dynamic set. Returns the number or -1. */
static long include_target(struct comp *c, const struct tpl_tag *tag, int *dynamic)
{
	*dynamic = c->s[tag->name] == '*';
	if (!*dynamic) {
		const struct tpl_lc *lc = tpl_lc_at(&c->lc, c->s, tag->start);
		return find_unit(c, (uint32_t)(c->base + tag->name), (uint32_t)tag->name_len,
				 lc->line, lc->col);
	}
	struct tpl_tag name = *tag;
	do {
		name.name++;
		name.name_len--;
	} while (name.name_len && tpl_is_space(c->s[name.name]));
	if (check_name(c, &name) < 0)
		return -1;
	return add_name(c, &name);
}

/* ---- tags ---- */

static const char *construct_name(char type)
{
	switch (type) {
	case '#': return "section";
	case '^': return "inverted section";
	case '<': return "parent";
	default:  return "block";
	}
}

static int push(struct comp *c, char type, long op, const struct tpl_tag *tag, size_t content)
{
	if (c->depth == TPL_NESTING_MAX)
		return fail_at(c, tag->start, "sections nested deeper than %d", TPL_NESTING_MAX);
	const struct tpl_lc *lc = tpl_lc_at(&c->lc, c->s, tag->start);
	c->stack[c->depth++] = (struct open){
		.type = type, .op = (uint32_t)op, .tag = *tag, .line = lc->line, .col = lc->col,
		.content = content, .text_op = -1, .strip = c->strip,
	};
	return 0;
}

/* The closing tag of an open parent: it stands alone as a pair when its
 * opening tag clears the line on the left and the closing tag on the right.
 * Returns where the text after it starts. */
static size_t close_parent(struct comp *c, const struct open *o, const struct tpl_tag *tag,
			   size_t next)
{
	struct tpl_op *op = &c->t->ops[o->op];

	if (!o->tag.clear_left || !tag->clear_right)
		return next;
	op->flags |= TPL_F_STANDALONE;
	set_indent(c, o->op, o->tag.ws_start, o->tag.start - o->tag.ws_start);
	if (o->text_op >= 0) {
		/* the indentation was emitted as text: take it back */
		struct tpl_op *text = &c->t->ops[o->text_op];
		uint32_t ws = (uint32_t)(c->base + o->tag.ws_start);
		text->b = text->a >= ws ? 0 : ws - text->a;
	}
	return tag->line_end;
}

/* The closing tag of an open block: decides how what fills it is indented.
 * content_end is where its default content ends. */
static void close_block(struct comp *c, const struct open *o, const struct tpl_tag *tag,
			int standalone, size_t content_end)
{
	const struct tpl_tag *open = &o->tag;
	struct tpl_op *op = &c->t->ops[o->op];

	if (standalone)
		op->flags |= TPL_F_CLOSE_STANDALONE;
	if (op->flags & TPL_F_STANDALONE) {
		size_t k = o->content;
		while (k < content_end && is_blank(c->s[k]))
			k++;
		if (content_end > o->content)
			set_indent(c, o->op, o->content, k - o->content);
		else
			set_indent(c, o->op, open->ws_start, open->start - open->ws_start);
	} else if (open->clear_left && tag->clear_right) {
		set_indent(c, o->op, open->ws_start, open->start - open->ws_start);
	}
}

/* A closing tag. Returns where the text after it starts, or -1. */
static long close_tag(struct comp *c, const struct tpl_tag *tag, int standalone, size_t next)
{
	const char *name = c->s + tag->name;

	if (c->depth == 0)
		return fail_at(c, tag->start, "close tag '%.*s' without an open section",
			       (int)tag->name_len, name);
	struct open *o = &c->stack[c->depth - 1];
	if (o->tag.name_len != tag->name_len || memcmp(c->s + o->tag.name, name, tag->name_len) != 0)
		return fail_at(c, tag->start, "close tag '%.*s' does not match %s '%.*s' opened at %u:%u",
			       (int)tag->name_len, name, construct_name(o->type),
			       (int)o->tag.name_len, c->s + o->tag.name, o->line, o->col);
	c->depth--;
	c->t->ops[o->op].b = (uint32_t)c->t->nops;

	switch (o->type) {
	case '<':
		return (long)close_parent(c, o, tag, next);
	case 'o':
		c->strip = o->strip;
		return (long)tag->end;
	case '$':
		close_block(c, o, tag, standalone, standalone ? tag->ws_start : tag->start);
		return (long)next;
	default:
		return (long)next;
	}
}

/* One tag, and the text between pos and it. Returns where the text after it
 * starts, or -1. */
static long compile_tag(struct comp *c, const struct tpl_tag *tag, size_t pos)
{
	const struct open *top = c->depth ? &c->stack[c->depth - 1] : NULL;
	int in_parent = top && top->type == '<';
	char ty = tag->type;
	int may_stand = ty && ty != '&' && ty != '{';
	int standalone = may_stand && tag->clear_left && tag->clear_right;
	size_t next = standalone ? tag->line_end : tag->end;
	long i;

	if (in_parent && ty != '!' && ty != '=' && ty != '$' && ty != '/')
		return fail_at(c, tag->start, "only blocks may appear inside parent '%.*s'",
			       (int)top->tag.name_len, c->s + top->tag.name);

	/* the text before the tag (between the blocks of a parent, ignored) */
	size_t text_end = standalone ? tag->ws_start : tag->start;
	if (ty == '/' && top && top->type == 'o')
		text_end = tag->clear_left ? tag->ws_start : tag->start;
	else if (ty == '<')
		text_end = tag->start;   /* taken back if the pair stands alone */
	if (!in_parent && emit_text(c, pos, text_end) < 0)
		return -1;

	/* a dynamic name may have blanks after its star */
	int star = (ty == '>' || ty == '<') && tag->name_len && c->s[tag->name] == '*';
	if (ty != '!' && ty != '=' && !star && check_name(c, tag) < 0)
		return -1;

	switch (ty) {
	case '!':
		return (long)next;

	case '=': {
		const char *why;
		if (tpl_scan_set_delims(&c->sc, tag, &why) < 0)
			return fail_at(c, tag->start, "bad set-delimiter tag: %s", why);
		return (long)next;
	}

	case 0: case '&': case '{': {
		long nm = add_name(c, tag);
		if (nm < 0 || (i = add_op(c, TPL_OP_VAR, tag->start)) < 0)
			return -1;
		c->t->ops[i].a = (uint32_t)nm;
		c->t->ops[i].flags = ty ? TPL_F_RAW : 0;
		return (long)next;
	}

	case '#': case '^': {
		long nm = add_name(c, tag);
		if (nm < 0 || (i = add_op(c, ty == '#' ? TPL_OP_SECTION : TPL_OP_INVERTED, tag->start)) < 0)
			return -1;
		c->t->ops[i].a = (uint32_t)nm;
		if (push(c, ty, i, tag, next) < 0)
			return -1;
		return (long)next;
	}

	case '>': case '<': {
		int dynamic;
		long target = include_target(c, tag, &dynamic);
		long last = (long)c->t->nops - 1;
		if (target < 0 || (i = add_op(c, ty == '>' ? TPL_OP_PARTIAL : TPL_OP_PARENT, tag->start)) < 0)
			return -1;
		c->t->ops[i].a = (uint32_t)target;
		c->t->ops[i].flags = dynamic ? TPL_F_DYNAMIC : 0;
		if (ty == '>') {
			if (standalone) {
				c->t->ops[i].flags |= TPL_F_STANDALONE;
				set_indent(c, i, tag->ws_start, tag->start - tag->ws_start);
			}
			return (long)next;
		}
		if (push(c, '<', i, tag, next) < 0)
			return -1;
		const struct tpl_op *prev = last >= (long)c->t->units[c->unit].begin
					    ? &c->t->ops[last] : NULL;
		if (prev && prev->code == TPL_OP_TEXT && prev->a + prev->b == c->base + tag->start)
			c->stack[c->depth - 1].text_op = last;
		return (long)next;
	}

	case '$': {
		long id = intern(&c->blocks, c->t->pool, (uint32_t)(c->base + tag->name),
				 (uint32_t)tag->name_len);
		if (id < 0)
			return oom(c);
		if (in_parent) {
			/* an override: content from the next line when the tag ends
			 * its line, less the blanks that start that line */
			if ((i = add_op(c, TPL_OP_OVERRIDE, tag->start)) < 0)
				return -1;
			c->t->ops[i].a = (uint32_t)id;
			next = tag->clear_right ? tag->line_end : tag->end;
			if (push(c, 'o', i, tag, next) < 0)
				return -1;
			c->strip = 0;
			if (tag->clear_right)
				while (next + c->strip < c->n && is_blank(c->s[next + c->strip]))
					c->strip++;
			return (long)next;
		}
		if ((i = add_op(c, TPL_OP_BLOCK, tag->start)) < 0)
			return -1;
		c->t->ops[i].a = (uint32_t)id;
		c->t->ops[i].flags = standalone ? TPL_F_STANDALONE : 0;
		if (push(c, '$', i, tag, next) < 0)
			return -1;
		return (long)next;
	}

	case '/':
		return close_tag(c, tag, standalone, next);
	}
	return fail_at(c, tag->start, "unknown tag");
}

/* Compiles unit u, whose source is in the pool. Returns 0 or -1. */
static int compile_unit(struct comp *c, uint32_t u)
{
	struct tpl *t = c->t;

	c->unit = u;
	c->base = t->units[u].off;
	c->s = t->pool + c->base;
	c->n = t->units[u].len;
	c->strip = 0;
	c->depth = 0;
	tpl_scan_init(&c->sc, c->s, c->n);
	if (u == 0)
		tpl_lc_init_at(&c->lc, c->o.base_line ? c->o.base_line : 1,
			       c->o.base_col ? c->o.base_col : 1);
	else
		tpl_lc_init(&c->lc);
	t->units[u].begin = (uint32_t)t->nops;

	size_t pos = 0;
	for (;;) {
		struct tpl_tag tag;
		const char *why;
		size_t at;
		int r = tpl_scan_next(&c->sc, pos, &tag, &why, &at);
		if (r < 0)
			return fail_at(c, at, "%s", why);
		if (r == 0)
			break;
		long next = compile_tag(c, &tag, pos);
		if (next < 0)
			return -1;
		pos = (size_t)next;
	}
	if (c->depth) {
		const struct open *o = &c->stack[c->depth - 1];
		tpl_set_error(c->err, unit_file(c, u), o->line, o->col, "unclosed %s '%.*s'",
			      construct_name(o->type), (int)o->tag.name_len, c->s + o->tag.name);
		return -1;
	}
	if (emit_text(c, pos, c->n) < 0)
		return -1;
	t->units[u].end = (uint32_t)t->nops;
	return 0;
}

/* ---- units and their sources ---- */

/* Appends src to the pool at *off. Returns 0, 1 when the pool would grow
 * past max_source, or -1 (out of memory, reported). */
static int pool_append(struct comp *c, const char *src, size_t len, uint32_t *off)
{
	struct tpl *t = c->t;

	if (len > c->o.max_source - t->pool_len)
		return 1;
	if (t->pool_len + len > c->pool_cap) {
		size_t cap = c->pool_cap ? c->pool_cap : 4096;
		while (cap < t->pool_len + len)
			cap *= 2;
		char *p = realloc(t->pool, cap);
		if (!p)
			return oom(c);
		t->pool = p;
		c->pool_cap = cap;
	}
	if (len)
		memcpy(t->pool + t->pool_len, src, len);
	*off = (uint32_t)t->pool_len;
	t->pool_len += len;
	return 0;
}

/* Appends src to the pool as unit u's source; returns as pool_append. */
static int add_source(struct comp *c, uint32_t u, const char *src, size_t len)
{
	uint32_t off = 0;
	int r = pool_append(c, src, len, &off);

	if (r == 0) {
		c->t->units[u].off = off;
		c->t->units[u].len = (uint32_t)len;
	}
	return r;
}

/* Adds the partials opts.preload names, for dynamic names to find. */
static int preload(struct comp *c)
{
	for (const char *const *p = c->o.preload; p && *p; p++) {
		size_t len = strlen(*p);
		uint32_t off;
		if (len == 0 || len > TPL_NAME_MAX) {
			tpl_set_error(c->err, unit_file(c, 0), 0, 0, "bad partial name to preload '%s'", *p);
			return -1;
		}
		int r = pool_append(c, *p, len, &off);
		if (r > 0)
			tpl_set_error(c->err, unit_file(c, 0), 0, 0, "template larger than %zu bytes",
				      c->o.max_source);
		if (r || find_unit(c, off, (uint32_t)len, 0, 0) < 0)
			return -1;
	}
	return 0;
}

/* Loads partial unit u through the loader. Returns 0 or -1. */
static int load_unit(struct comp *c, uint32_t u)
{
	struct tpl *t = c->t;
	struct tpl_unit *un = &t->units[u];
	char name[TPL_NAME_MAX + 1];
	char why[TPL_ERR_MAX] = "";
	struct tpl_partial p;
	const char *ref = unit_file(c, un->ref_unit);

	memcpy(name, t->pool + un->name_off, un->name_len);
	name[un->name_len] = '\0';
	memset(&p, 0, sizeof p);
	int r = c->o.loader ? c->o.loader->load(c->o.loader->ud, name, &p, why, sizeof why)
			    : TPL_NOT_FOUND;
	if (r < 0) {
		tpl_set_error(c->err, ref, un->ref_line, un->ref_col, "partial '%s': %s", name, why);
		return -1;
	}
	if (r == 0 && !p.text && p.len) {
		tpl_set_error(c->err, ref, un->ref_line, un->ref_col,
			      "partial '%s': the loader gave a length without text", name);
		return -1;
	}
	if (r == TPL_NOT_FOUND && !c->o.missing_partial_empty) {
		tpl_set_error(c->err, ref, un->ref_line, un->ref_col, "missing partial '%s'", name);
		return -1;
	}
	p.file[sizeof p.file - 1] = '\0';
	un->file = strdup(p.file[0] ? p.file : name);
	if (!un->file) {
		free(p.text);
		return oom(c);
	}
	r = r == TPL_NOT_FOUND ? add_source(c, u, "", 0) : add_source(c, u, p.text, p.len);
	free(p.text);
	if (r > 0)
		tpl_set_error(c->err, ref, un->ref_line, un->ref_col,
			      "partial '%s' makes the template larger than %zu bytes", name,
			      c->o.max_source);
	return r ? -1 : 0;
}

struct tpl *tpl_compile(const char *file, const char *src, size_t len,
			const struct tpl_opts *o, struct tpl_error *err)
{
	struct comp c;
	struct tpl *t = calloc(1, sizeof *t);

	memset(&c, 0, sizeof c);
	if (o)
		c.o = *o;
	/* ops hold a unit in 16 bits and pool offsets in 32 */
	if (!c.o.max_partials || c.o.max_partials > UINT16_MAX - 1)
		c.o.max_partials = c.o.max_partials ? UINT16_MAX - 1 : TPL_DEFAULT_MAX_PARTIALS;
	if (!c.o.max_partial_depth)
		c.o.max_partial_depth = TPL_DEFAULT_MAX_PARTIAL_DEPTH;
	if (!c.o.max_source || c.o.max_source > UINT32_MAX / 2)
		c.o.max_source = c.o.max_source ? UINT32_MAX / 2 : TPL_DEFAULT_MAX_SOURCE;
	if (!file)
		file = "<template>";
	c.err = err;
	c.t = t;
	if (!t) {
		tpl_set_error(err, file, 0, 0, "out of memory");
		return NULL;
	}
	if (reserve((void **)&t->units, &c.units_cap, 0, sizeof *t->units) < 0) {
		tpl_set_error(err, file, 0, 0, "out of memory");
		goto fail;
	}
	memset(&t->units[0], 0, sizeof t->units[0]);
	t->nunits = 1;
	t->units[0].file = strdup(file);
	if (!t->units[0].file) {
		tpl_set_error(err, file, 0, 0, "out of memory");
		goto fail;
	}
	int r = add_source(&c, 0, src, len);
	if (r > 0)
		tpl_set_error(err, file, 0, 0, "template larger than %zu bytes", c.o.max_source);
	if (r || preload(&c) < 0)
		goto fail;

	for (uint32_t u = 0; u < t->nunits; u++) {
		if (u > 0 && load_unit(&c, u) < 0)
			goto fail;
		if (compile_unit(&c, u) < 0)
			goto fail;
	}

	/* key texts point at their symbol's first occurrence, now that the
	 * pool stays where it is */
	for (size_t i = 0; i < t->nkeys; i++)
		t->keys[i].s = t->pool + c.syms.items[t->keys[i].sym].off;
	t->syms = c.syms.items;
	t->nsyms = c.syms.n;
	c.syms.items = NULL;
	intern_free(&c.syms);
	intern_free(&c.blocks);
	return t;

fail:
	intern_free(&c.syms);
	intern_free(&c.blocks);
	tpl_free(t);
	return NULL;
}

void tpl_free(struct tpl *t)
{
	if (!t)
		return;
	for (size_t u = 0; u < t->nunits; u++)
		free(t->units[u].file);
	free(t->units);
	free(t->pool);
	free(t->ops);
	free(t->names);
	free(t->keys);
	free(t->syms);
	free(t);
}

size_t tpl_symbol_count(const struct tpl *t)
{
	return t->nsyms;
}

const char *tpl_symbol(const struct tpl *t, size_t i, size_t *len)
{
	if (i >= t->nsyms)
		return NULL;
	*len = t->syms[i].len;
	return t->pool + t->syms[i].off;
}

const char *tpl_fixed_text(const struct tpl *t, size_t *len)
{
	const struct tpl_unit *u = &t->units[0];

	if (u->begin == u->end) {
		*len = 0;
		return "";
	}
	if (u->end - u->begin != 1 || t->ops[u->begin].code != TPL_OP_TEXT)
		return NULL;
	*len = t->ops[u->begin].b;
	return t->pool + t->ops[u->begin].a;
}
