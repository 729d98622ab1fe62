/* message_template: see message_template.h. */
#include "templates/message_template.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "templates/mime_attachment.h"
#include "templates/mime_message.h"
#include "templates/utf8.h"

/* The parse of one file. */
struct parse {
	const char *file;
	const char *s;
	size_t len;
	struct mtpl *t;
	struct mtpl_error *err;
};

__attribute__((format(printf, 4, 5)))
static int perr(struct parse *p, unsigned line, unsigned col, const char *fmt, ...)
{
	struct mtpl_error *e = p->err;
	va_list ap;
	int n;

	if (!e)
		return -1;
	snprintf(e->file, sizeof e->file, "%s", p->file);
	e->line = line;
	e->col = col;
	n = snprintf(e->msg, sizeof e->msg, "%s:%u:%u: ", e->file, line, col);
	if (n < 0 || (size_t)n >= sizeof e->msg)
		n = 0;
	va_start(ap, fmt);
	vsnprintf(e->msg + n, sizeof e->msg - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

/* The line and column of offset off (errors only: it counts from the start). */
static int perr_at(struct parse *p, size_t off, const char *why)
{
	unsigned line = 1;
	size_t start = 0;

	for (size_t i = 0; i < off; i++) {
		if (p->s[i] == '\n') {
			line++;
			start = i + 1;
		}
	}
	return perr(p, line, (unsigned)(off - start + 1), "%s", why);
}

static int is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* The line starting at pos: sets *end to where its content ends (before
 * CRLF or LF) and returns where the next line starts. */
static size_t line_at(const struct parse *p, size_t pos, size_t *end)
{
	const char *nl = memchr(p->s + pos, '\n', p->len - pos);
	size_t e = nl ? (size_t)(nl - p->s) : p->len;

	*end = e > pos && p->s[e - 1] == '\r' ? e - 1 : e;
	return nl ? e + 1 : p->len;
}

static int blank(const struct parse *p, size_t a, size_t b)
{
	while (a < b && is_wsp(p->s[a]))
		a++;
	return a == b;
}

/* Trailing whitespace of s[a..b) dropped: returns the new b. */
static size_t rtrim(const struct parse *p, size_t a, size_t b)
{
	while (b > a && is_wsp(p->s[b - 1]))
		b--;
	return b;
}

/* ---- the header ---- */

static int header_line(struct parse *p, unsigned line, size_t pos, size_t end)
{
	struct mtpl *t = p->t;
	const char *s = p->s;
	const char *colon = memchr(s + pos, ':', end - pos);
	struct mtpl_header *h;
	size_t name_len, v;

	if (!colon)
		return perr(p, line, 1, "header line without a colon (the header ends at the first "
				      "empty line)");
	name_len = (size_t)(colon - (s + pos));
	if (name_len == 0)
		return perr(p, line, 1, "empty header name");
	for (size_t i = 0; i < name_len; i++) {
		unsigned char c = (unsigned char)s[pos + i];
		if (c == '{' && i + 1 < name_len && s[pos + i + 1] == '{')
			return perr(p, line, (unsigned)i + 1,
				    "mustache tags are not allowed in header names");
		if (c < 33 || c > 126)
			return perr(p, line, (unsigned)i + 1, "bad character in header name \"%.*s\"%s",
				    (int)name_len, s + pos,
				    is_wsp((char)c) ? " (write \"Name: value\")" : "");
	}
	if (name_len > MIME_HEADER_NAME_MAX)
		return perr(p, line, 1, "header name longer than %d characters", MIME_HEADER_NAME_MAX);
	if (mime_header_is_reserved(s + pos, name_len))
		return perr(p, line, 1, "%.*s is set by volley; remove it from the template",
			    (int)name_len, s + pos);
	if (mime_header_is_single(s + pos, name_len)) {
		for (size_t k = 0; k < t->nheaders; k++) {
			const struct mtpl_header *o = &t->headers[k];
			if (o->name_len == name_len && strncasecmp(o->name, s + pos, name_len) == 0)
				return perr(p, line, 1, "a second %.*s header (the first is on line %u)",
					    (int)name_len, s + pos, o->line);
		}
	}
	if (t->nheaders == MTPL_HEADERS_MAX)
		return perr(p, line, 1, "more than %d headers", MTPL_HEADERS_MAX);

	v = (size_t)(colon - s) + 1;
	while (v < end && is_wsp(s[v]))
		v++;
	h = &t->headers[t->nheaders++];
	h->name = s + pos;
	h->name_len = name_len;
	h->value = s + v;
	h->value_len = rtrim(p, v, end) - v;
	h->line = line;
	h->col = (unsigned)(v - pos + 1);
	return 0;
}

/* A line starting with whitespace continues the header above it. */
static int continuation_line(struct parse *p, unsigned line, size_t pos, size_t end)
{
	struct mtpl_header *h;
	size_t v = pos;

	if (p->t->nheaders == 0)
		return perr(p, line, 1, "continuation line before the first header");
	h = &p->t->headers[p->t->nheaders - 1];
	end = rtrim(p, pos, end);
	if (h->value_len == 0) {
		/* "Subject:" alone, the value on the next line */
		while (v < end && is_wsp(p->s[v]))
			v++;
		h->value = p->s + v;
		h->line = line;
		h->col = (unsigned)(v - pos + 1);
	}
	h->value_len = (size_t)(p->s + end - h->value);
	return 0;
}

/* ---- the body ---- */

/* A marker line: "--- " then a letter. */
static int is_marker(const struct parse *p, size_t pos, size_t end)
{
	unsigned char c;

	if (end - pos < 5 || memcmp(p->s + pos, "--- ", 4) != 0)
		return 0;
	c = (unsigned char)p->s[pos + 4];
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* The word after "--- ": returns its end. */
static size_t marker_word_end(const struct parse *p, size_t pos, size_t end)
{
	size_t w = pos + 4;

	while (w < end && !is_wsp(p->s[w]))
		w++;
	return w;
}

static int word_is(const struct parse *p, size_t a, size_t b, const char *w)
{
	return b - a == strlen(w) && memcmp(p->s + a, w, b - a) == 0;
}

/* "--- text", "--- html" or "--- attach ..." exactly, in a plain body. */
static int is_known_marker(const struct parse *p, size_t pos, size_t end)
{
	size_t w;

	if (!is_marker(p, pos, end))
		return 0;
	w = marker_word_end(p, pos, end);
	if (word_is(p, pos + 4, w, "attach"))
		return 1;
	return (word_is(p, pos + 4, w, "text") || word_is(p, pos + 4, w, "html")) &&
	       blank(p, w, end);
}

/* The next whitespace-separated token in [*a, end): sets *a past it,
 * returns its start (== *a when there is none). */
static size_t token(const struct parse *p, size_t *a, size_t end)
{
	size_t start;

	while (*a < end && is_wsp(p->s[*a]))
		(*a)++;
	start = *a;
	while (*a < end && !is_wsp(p->s[*a]))
		(*a)++;
	return start;
}

static int attach_marker(struct parse *p, unsigned line, size_t pos, size_t w, size_t end,
			 struct mtpl_part *part)
{
	const char *s = p->s;
	size_t a = w, path, path_end, ct, ct_end, extra;

	path = token(p, &a, end);
	path_end = a;
	if (path == path_end)
		return perr(p, line, (unsigned)(w - pos + 1), "--- attach needs a file path");
	ct = token(p, &a, end);
	ct_end = a;
	extra = token(p, &a, end);
	if (extra != a)
		return perr(p, line, (unsigned)(extra - pos + 1),
			    "unexpected text after the content type (--- attach PATH [type/subtype])");
	if (s[path] == '/')
		return perr(p, line, (unsigned)(path - pos + 1),
			    "attachment path must be relative to the template's folder");
	for (size_t i = path; i < path_end; i++) {
		/* a ".." part: at the start or after '/', and followed by '/' or the end */
		if (s[i] == '.' && i + 1 < path_end && s[i + 1] == '.' &&
		    (i == path || s[i - 1] == '/') && (i + 2 == path_end || s[i + 2] == '/'))
			return perr(p, line, (unsigned)(i - pos + 1),
				    "attachment path may not hold \"..\"");
		if (s[i] == '{' && i + 1 < path_end && s[i + 1] == '{')
			return perr(p, line, (unsigned)(i - pos + 1),
				    "mustache tags are not allowed in attachment paths (attachments "
				    "are read once per campaign)");
	}
	if (ct != ct_end && !mime_content_type_valid(s + ct, ct_end - ct))
		return perr(p, line, (unsigned)(ct - pos + 1),
			    "bad content type \"%.*s\" (want type/subtype)", (int)(ct_end - ct), s + ct);
	part->kind = MTPL_PART_ATTACH;
	part->path = s + path;
	part->path_len = path_end - path;
	if (ct != ct_end) {
		part->content_type = s + ct;
		part->content_type_len = ct_end - ct;
	} else {
		part->content_type = mime_content_type_guess(s + path, path_end - path);
		part->content_type_len = strlen(part->content_type);
	}
	return 0;
}

/* A marker line starts a part. */
static int marker_line(struct parse *p, unsigned line, size_t pos, size_t end, size_t next)
{
	struct mtpl *t = p->t;
	size_t w = marker_word_end(p, pos, end), attachments = 0;
	struct mtpl_part *part;
	int *slot = NULL;

	if (word_is(p, pos + 4, w, "text"))
		slot = &t->text;
	else if (word_is(p, pos + 4, w, "html"))
		slot = &t->html;
	else if (!word_is(p, pos + 4, w, "attach"))
		return perr(p, line, 5, "unknown part marker \"--- %.*s\" (the markers are --- text, "
				      "--- html and --- attach PATH)", (int)(w - pos - 4), p->s + pos + 4);
	if (slot && *slot >= 0)
		return perr(p, line, 5, "a second %.*s part (the first is on line %u)",
			    (int)(w - pos - 4), p->s + pos + 4, t->parts[*slot].line);
	if (slot && !blank(p, w, end)) {
		size_t x = w;
		while (is_wsp(p->s[x]))
			x++;
		return perr(p, line, (unsigned)(x - pos + 1), "unexpected text after \"--- %.*s\"",
			    (int)(w - pos - 4), p->s + pos + 4);
	}
	for (size_t k = 0; k < t->nparts; k++)
		attachments += t->parts[k].kind == MTPL_PART_ATTACH;
	if (!slot && attachments == MTPL_ATTACH_MAX)
		return perr(p, line, 1, "more than %d attachments", MTPL_ATTACH_MAX);

	part = &t->parts[t->nparts];
	memset(part, 0, sizeof *part);
	part->line = line;
	part->body = p->s + next;
	part->body_line = line + 1;
	if (slot) {
		part->kind = slot == &t->text ? MTPL_PART_TEXT : MTPL_PART_HTML;
		*slot = (int)t->nparts;
	} else if (attach_marker(p, line, pos, w, end, part) != 0) {
		return -1;
	}
	t->nparts++;
	return 0;
}

static int body(struct parse *p, size_t pos, unsigned line)
{
	struct mtpl *t = p->t;
	size_t first = pos, end = pos, next;
	unsigned first_line = line;

	/* the first line that is not blank decides */
	while (first < p->len) {
		next = line_at(p, first, &end);
		if (!blank(p, first, end))
			break;
		first = next;
		first_line++;
	}
	if (first < p->len)
		line_at(p, first, &end);
	if (first == p->len || !is_marker(p, first, end)) {
		struct mtpl_part *part = &t->parts[0];
		memset(part, 0, sizeof *part);
		part->kind = MTPL_PART_TEXT;
		part->line = line;
		part->body = p->s + pos;
		part->body_len = p->len - pos;
		part->body_line = line;
		t->text = 0;
		t->nparts = 1;
		for (size_t a = pos; a < p->len; a = next, line++) {
			next = line_at(p, a, &end);
			if (is_known_marker(p, a, end))
				return perr(p, line, 1, "a part marker in a body that does not start with "
						      "one (begin the body with \"--- text\" to write it "
						      "in parts)");
		}
		return 0;
	}

	line = first_line;
	for (size_t a = first; a < p->len; a = next, line++) {
		next = line_at(p, a, &end);
		if (is_marker(p, a, end)) {
			if (t->nparts > 0) {
				struct mtpl_part *prev = &t->parts[t->nparts - 1];
				prev->body_len = (size_t)(p->s + a - prev->body);
			}
			if (marker_line(p, line, a, end, next) != 0)
				return -1;
		} else if (t->parts[t->nparts - 1].kind == MTPL_PART_ATTACH && !blank(p, a, end)) {
			return perr(p, line, 1, "text under an attach marker (an attachment's content "
					      "comes from its file)");
		}
	}
	t->parts[t->nparts - 1].body_len = (size_t)(p->s + p->len - t->parts[t->nparts - 1].body);
	for (size_t k = 0; k < t->nparts; k++)
		if (t->parts[k].kind == MTPL_PART_ATTACH)
			t->parts[k].body_len = 0;
	return 0;
}

int mtpl_parse(const char *file, const char *src, size_t len, struct mtpl *out,
	       struct mtpl_error *err)
{
	struct parse p = { file ? file : "<template>", src, len, out, err };
	const struct mtpl_header *from;
	size_t pos = 0, bad, end, next;
	unsigned line = 1, sep_line = 0;
	const char *nul, *cr;

	out->nheaders = 0;
	out->nparts = 0;
	out->text = -1;
	out->html = -1;
	out->body_line = 0;
	if (len >= 3 && memcmp(src, "\xef\xbb\xbf", 3) == 0) {
		p.s += 3;
		p.len -= 3;
	}
	bad = utf8_check(p.s, p.len);
	if (bad != p.len)
		return perr_at(&p, bad, "invalid UTF-8");
	nul = memchr(p.s, '\0', p.len);
	if (nul)
		return perr_at(&p, (size_t)(nul - p.s), "NUL byte");
	for (cr = memchr(p.s, '\r', p.len); cr; cr = memchr(cr + 1, '\r', p.len - (size_t)(cr + 1 - p.s)))
		if (cr + 1 == p.s + p.len || cr[1] != '\n')
			return perr_at(&p, (size_t)(cr - p.s), "CR not followed by LF");

	while (pos < p.len) {
		next = line_at(&p, pos, &end);
		if (blank(&p, pos, end)) {
			sep_line = line;
			pos = next;
			line++;
			break;
		}
		if (is_wsp(p.s[pos]) ? continuation_line(&p, line, pos, end) != 0
				     : header_line(&p, line, pos, end) != 0)
			return -1;
		pos = next;
		line++;
	}
	from = mtpl_header_find(out, "From");
	if (!from)
		return perr(&p, sep_line ? sep_line : line, 1, "no From header before the body");
	out->body_line = line;
	return body(&p, pos, line);
}

const struct mtpl_header *mtpl_header_find(const struct mtpl *t, const char *name)
{
	size_t n = strlen(name);

	for (size_t k = 0; k < t->nheaders; k++)
		if (t->headers[k].name_len == n && strncasecmp(t->headers[k].name, name, n) == 0)
			return &t->headers[k];
	return NULL;
}

int mtpl_attachment_path(const char *template_path, const struct mtpl_part *p, char *out,
			 size_t cap)
{
	const char *slash = strrchr(template_path, '/');
	int dir = slash ? (int)(slash - template_path + 1) : 0;
	int n = snprintf(out, cap, "%.*s%.*s", dir, template_path, (int)p->path_len, p->path);

	return n >= 0 && (size_t)n < cap ? 0 : -1;
}
