/* message_render: see message_render.h. */
#include "templates/message_render.h"

#include "templates/message_template.h"
#include "templates/mime_address.h"
#include "templates/mime_attachment.h"
#include "templates/mime_encode.h"
#include "templates/mustache_json.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define CAMPAIGN_PIECES_MAX (MTPL_HEADERS_MAX + 2)

struct campaign_piece {
	enum campaign_piece_kind kind;
	size_t header;               /* CAMPAIGN_PIECE_HEADER: index in m.headers */
	struct tpl *prog;
	struct tpl_lines *lines;     /* a body: its text as CRLF lines (tpl_render_lines) */
	const char *fixed;           /* a header with no tags: its value (in prog), not
				      * rendered per message; else NULL */
	size_t fixed_len;
};

struct campaign_template {
	char *path;
	char *src;                   /* the file; m's views point into it */
	size_t len;
	struct mtpl m;
	struct campaign_piece pieces[CAMPAIGN_PIECES_MAX];
	size_t npieces;
	int from_piece;              /* the From header's piece, or -1 */
	struct mime_attachment *att[MTPL_ATTACH_MAX];
	size_t natt;
	struct campaign_opts o;      /* its strings point at the copies below */
	char *msgid_domain, *unsubscribe_url, *unsubscribe_mailto;
	struct tpl_dir_loader dl;
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Reads the whole regular file path, at most max bytes. Returns the
 * malloc'd bytes (*len of them, NUL after), or NULL with err filled. */
static char *read_file(const char *path, size_t max, size_t *len, char *err, size_t errlen)
{
	struct stat st;
	char *buf = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		set_err(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		set_err(err, errlen, "%s: not a regular file", path);
		goto done;
	}
	if ((uintmax_t)st.st_size > max) {
		set_err(err, errlen, "%s: larger than %zu bytes", path, max);
		goto done;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		set_err(err, errlen, "%s: out of memory", path);
		goto done;
	}
	size_t got = 0;
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			set_err(err, errlen, "%s: %s", path, n < 0 ? strerror(errno) : "file shrank");
			free(buf);
			buf = NULL;
			goto done;
		}
		got += (size_t)n;
	}
	buf[got] = '\0';
	*len = got;
done:
	close(fd);
	return buf;
}

/* strdup that keeps NULL. Returns 0, or -1 when out of memory. */
static int dup_opt(const char *s, char **out)
{
	*out = NULL;
	if (!s)
		return 0;
	*out = strdup(s);
	return *out ? 0 : -1;
}

static int add_piece(struct campaign_template *t, enum campaign_piece_kind kind, size_t header,
		     const char *src, size_t len, unsigned line, unsigned col,
		     char *err, size_t errlen)
{
	struct tpl_loader loader = { tpl_dir_load, &t->dl };
	struct tpl_opts opts = { .loader = &loader, .base_line = line, .base_col = col };
	struct tpl_error terr;
	struct campaign_piece *p = &t->pieces[t->npieces];

	p->kind = kind;
	p->header = header;
	p->prog = tpl_compile(t->path, src, len, &opts, &terr);
	if (!p->prog) {
		set_err(err, errlen, "%s", terr.msg);
		return -1;
	}
	t->npieces++;
	if (kind == CAMPAIGN_PIECE_HEADER)
		p->fixed = tpl_fixed_text(p->prog, &p->fixed_len);
	if (kind != CAMPAIGN_PIECE_HEADER && !(p->lines = tpl_lines_new(p->prog, '_'))) {
		set_err(err, errlen, "%s: out of memory", t->path);
		return -1;
	}
	return 0;
}

static int load_attachments(struct campaign_template *t, char *err, size_t errlen)
{
	for (size_t i = 0; i < t->m.nparts; i++) {
		const struct mtpl_part *p = &t->m.parts[i];
		char file[4096], ct[MIME_CONTENT_TYPE_MAX + 1], why[256];

		if (p->kind != MTPL_PART_ATTACH)
			continue;
		if (mtpl_attachment_path(t->path, p, file, sizeof file) != 0) {
			set_err(err, errlen, "%s:%u:1: attachment path too long", t->path, p->line);
			return -1;
		}
		if (p->content_type_len >= sizeof ct) {
			set_err(err, errlen, "%s:%u:1: content type too long", t->path, p->line);
			return -1;
		}
		memcpy(ct, p->content_type, p->content_type_len);
		ct[p->content_type_len] = '\0';
		t->att[t->natt] = mime_attachment_load(file, ct, 0, why, sizeof why);
		if (!t->att[t->natt]) {
			set_err(err, errlen, "%s:%u:1: attachment: %s", t->path, p->line, why);
			return -1;
		}
		t->natt++;
	}
	return 0;
}

/* The folder part of path, "." when it has none. */
static void dir_of(const char *path, char *out, size_t cap)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		snprintf(out, cap, ".");
	else if (slash == path)
		snprintf(out, cap, "/");
	else
		snprintf(out, cap, "%.*s", (int)(slash - path), path);
}

struct campaign_template *campaign_template_load(const char *path, const struct campaign_opts *o,
						 char *err, size_t errlen)
{
	struct campaign_template *t = calloc(1, sizeof *t);
	struct mtpl_error merr;
	char dir[4096];

	if (!t || !(t->path = strdup(path))) {
		set_err(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	t->o = *o;
	t->from_piece = -1;
	if (dup_opt(o->msgid_domain, &t->msgid_domain) || dup_opt(o->unsubscribe_url, &t->unsubscribe_url) ||
	    dup_opt(o->unsubscribe_mailto, &t->unsubscribe_mailto)) {
		set_err(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	t->o.msgid_domain = t->msgid_domain;
	t->o.unsubscribe_url = t->unsubscribe_url;
	t->o.unsubscribe_mailto = t->unsubscribe_mailto;
	if (!t->o.max_message)
		t->o.max_message = CAMPAIGN_MESSAGE_MAX;
	if (t->o.nsigners > CAMPAIGN_SIGNERS_MAX) {
		set_err(err, errlen, "more than %d DKIM signers", CAMPAIGN_SIGNERS_MAX);
		goto fail;
	}

	t->src = read_file(path, CAMPAIGN_TEMPLATE_MAX, &t->len, err, errlen);
	if (!t->src)
		goto fail;
	if (mtpl_parse(path, t->src, t->len, &t->m, &merr) != 0) {
		set_err(err, errlen, "%s", merr.msg);
		goto fail;
	}
	dir_of(path, dir, sizeof dir);
	if (tpl_dir_loader_init(&t->dl, dir, 0, err, errlen) != 0)
		goto fail;

	for (size_t i = 0; i < t->m.nheaders; i++) {
		const struct mtpl_header *h = &t->m.headers[i];
		if (h->name_len == 4 && strncasecmp(h->name, "From", 4) == 0)
			t->from_piece = (int)t->npieces;
		if (add_piece(t, CAMPAIGN_PIECE_HEADER, i, h->value, h->value_len, h->line, h->col,
			      err, errlen) != 0)
			goto fail;
	}
	if (t->m.text >= 0) {
		const struct mtpl_part *p = &t->m.parts[t->m.text];
		if (add_piece(t, CAMPAIGN_PIECE_TEXT, 0, p->body, p->body_len, p->body_line, 1,
			      err, errlen) != 0)
			goto fail;
	}
	if (t->m.html >= 0) {
		const struct mtpl_part *p = &t->m.parts[t->m.html];
		if (add_piece(t, CAMPAIGN_PIECE_HTML, 0, p->body, p->body_len, p->body_line, 1,
			      err, errlen) != 0)
			goto fail;
	}
	if (load_attachments(t, err, errlen) != 0)
		goto fail;
	return t;

fail:
	campaign_template_free(t);
	return NULL;
}

void campaign_template_free(struct campaign_template *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->npieces; i++) {
		tpl_lines_free(t->pieces[i].lines);
		tpl_free(t->pieces[i].prog);
	}
	for (size_t i = 0; i < t->natt; i++)
		mime_attachment_free(t->att[i]);
	free(t->msgid_domain);
	free(t->unsubscribe_url);
	free(t->unsubscribe_mailto);
	free(t->src);
	free(t->path);
	free(t);
}

size_t campaign_template_pieces(const struct campaign_template *t)
{
	return t->npieces;
}

const struct tpl *campaign_template_program(const struct campaign_template *t, size_t piece)
{
	return piece < t->npieces ? t->pieces[piece].prog : NULL;
}

enum campaign_piece_kind campaign_template_piece_kind(const struct campaign_template *t,
						      size_t piece)
{
	return t->pieces[piece].kind;
}

/* ---- rendering ---- */

/* A body piece, written into the message by mime_build_written: rendered
 * as CRLF lines straight into the message when its output allows that (the
 * common case: one pass, template text copied in whole runs), else
 * rendered plainly into raw and handed to MIME's own checks and encoders. */
struct body_writer {
	struct campaign_renderer *r;
	const struct campaign_piece *piece;
	struct tpl_data data;
	struct tpl_buf raw;
	int raw_ready;                           /* raw holds this message's render */
	int canonical;                           /* written as lines, no loose whitespace:
						  * DKIM need not canonicalise it */
	struct mime_text_writer w;
};

struct campaign_renderer {
	const struct campaign_template *t;
	struct tpl_buf out;                      /* the header pieces, one after another */
	size_t off[CAMPAIGN_PIECES_MAX], len[CAMPAIGN_PIECES_MAX];
	struct mime_header_value hv[MTPL_HEADERS_MAX];
	struct body_writer body[2];              /* text, html */
	struct mime_builder *mb;
	struct bytebuf msg;
	struct bytebuf from;                     /* From cleaned, then its display name */
	struct dkim_sign *sign[CAMPAIGN_SIGNERS_MAX];
	char sig[DKIM_MAX_KEYS * DKIM_SIGNATURE_MAX];
	char from_domain[MIME_DOMAIN_MAX + 1];
	int source_failed;                       /* a body piece failed to render: err says why */
	struct tpl_error terr;
	char err[CAMPAIGN_ERR_MAX];
};

static unsigned render_flags(const struct campaign_renderer *r)
{
	return r->t->o.strict ? TPL_RENDER_STRICT : 0;
}

static enum tpl_escape piece_escape(const struct campaign_piece *p)
{
	return p->kind == CAMPAIGN_PIECE_HTML ? TPL_ESCAPE_HTML : TPL_ESCAPE_NONE;
}

/* A body piece failed to render: keeps the renderer's reason. Returns
 * MIME_ESOURCE. */
static int source_failed(struct campaign_renderer *r)
{
	snprintf(r->err, sizeof r->err, "%s", r->terr.msg);
	r->source_failed = 1;
	return MIME_ESOURCE;
}

/* struct mime_text_writer's text: the piece rendered plainly, once per
 * message. */
static int body_text(void *ud, const char **text, size_t *len)
{
	struct body_writer *bw = ud;

	if (!bw->raw_ready) {
		bw->raw.len = 0;
		if (tpl_render(bw->piece->prog, &bw->data, piece_escape(bw->piece), render_flags(bw->r),
			       &bw->raw, &bw->r->terr) != 0)
			return source_failed(bw->r);
		bw->raw_ready = 1;
	}
	*text = bw->raw.data ? bw->raw.data : "";
	*len = bw->raw.len;
	return 0;
}

/* struct mime_text_writer's write. The message's buffer is lent to the
 * renderer as a struct tpl_buf for the call (both grow with realloc under
 * a cap) so that the part is rendered in place. */
static int body_write(void *ud, struct bytebuf *out, int allow_8bit, enum mime_cte *cte,
		      int *underscore)
{
	struct body_writer *bw = ud;
	struct tpl_lines_out lo = { .max_line = MIME_LINE_MAX, .allow_8bit = allow_8bit,
				    .skip_loose = bw->r->t->o.nsigners == 0 };
	struct tpl_buf lent = { out->data, out->len, out->cap, out->max };
	const char *text;
	size_t len;

	bw->canonical = 0;
	int rc = tpl_render_lines(bw->piece->prog, bw->piece->lines, &bw->data,
				  piece_escape(bw->piece), render_flags(bw->r), &lent, &lo, &bw->r->terr);
	out->data = lent.data;
	out->cap = lent.cap;
	out->len = lent.len;
	if (rc == 0) {
		*cte = lo.non_ascii ? MIME_CTE_8BIT : MIME_CTE_7BIT;
		*underscore = lo.watched;
		bw->canonical = !lo.loose_space;
		return 0;
	}
	if (rc != TPL_NOT_LINES)
		return source_failed(bw->r);
	/* a value with a line end, a line too long, bytes 7bit and 8bit
	 * cannot carry: the whole text is looked at */
	rc = body_text(bw, &text, &len);
	return rc != 0 ? rc : mime_text_copy(out, text, len, allow_8bit, cte);
}

struct campaign_renderer *campaign_renderer_new(const struct campaign_template *t,
						char *err, size_t errlen)
{
	struct campaign_renderer *r = calloc(1, sizeof *r);

	if (!r) {
		set_err(err, errlen, "out of memory");
		return NULL;
	}
	r->t = t;
	tpl_buf_init(&r->out, t->o.max_message);
	bytebuf_init(&r->msg, t->o.max_message);
	bytebuf_init(&r->from, 2 * (size_t)MIME_HEADER_VALUE_MAX);
	r->mb = mime_builder_new();
	if (!r->mb) {
		set_err(err, errlen, "out of memory");
		goto fail;
	}
	for (unsigned i = 0; i < t->o.nsigners; i++) {
		r->sign[i] = dkim_sign_new(t->o.signers[i], err, errlen);
		if (!r->sign[i])
			goto fail;
	}
	for (size_t i = 0; i < t->npieces; i++) {
		const struct campaign_piece *p = &t->pieces[i];
		if (p->kind == CAMPAIGN_PIECE_HEADER) {
			r->hv[p->header].name = t->m.headers[p->header].name;
			r->hv[p->header].name_len = t->m.headers[p->header].name_len;
			continue;
		}
		struct body_writer *bw = &r->body[p->kind == CAMPAIGN_PIECE_HTML];
		bw->r = r;
		bw->piece = p;
		tpl_buf_init(&bw->raw, t->o.max_message);
		bw->w = (struct mime_text_writer){ body_write, body_text, bw };
	}
	return r;

fail:
	campaign_renderer_free(r);
	return NULL;
}

void campaign_renderer_free(struct campaign_renderer *r)
{
	if (!r)
		return;
	for (unsigned i = 0; i < CAMPAIGN_SIGNERS_MAX; i++)
		dkim_sign_free(r->sign[i]);
	mime_builder_free(r->mb);
	tpl_buf_free(&r->body[0].raw);
	tpl_buf_free(&r->body[1].raw);
	bytebuf_free(&r->msg);
	bytebuf_free(&r->from);
	tpl_buf_free(&r->out);
	free(r);
}

const char *campaign_renderer_errstr(const struct campaign_renderer *r)
{
	return r->err;
}

struct tpl_data campaign_json_piece(const void *root, size_t piece)
{
	/* the JSON adapter binds nothing: every piece gets the same data */
	return tpl_json_data(root);
}

/* The domain of the rendered From (value[0..n)), for the Message-ID when no
 * domain is configured. Returns it, or NULL with r->err set. */
static const char *from_domain(struct campaign_renderer *r, const char *value, size_t n)
{
	struct mime_mailbox mb;
	struct mime_addr_error aerr;

	bytebuf_clear(&r->from);
	if (bytebuf_reserve(&r->from, 2 * n + 1) != 0) {
		snprintf(r->err, sizeof r->err, "From: %s", r->from.errstr);
		return NULL;
	}
	size_t len = mime_header_clean(r->from.data, value, n);
	if (mime_mailbox_parse(r->from.data, len, &mb, r->from.data + len, n + 1, &aerr) != 0) {
		snprintf(r->err, sizeof r->err, "From: %s", aerr.why);
		return NULL;
	}
	if (mb.domain_len >= sizeof r->from_domain) {
		snprintf(r->err, sizeof r->err, "From: domain too long");
		return NULL;
	}
	memcpy(r->from_domain, mb.domain, mb.domain_len);
	r->from_domain[mb.domain_len] = '\0';
	return r->from_domain;
}

/* Signs r->msg with every signer into r->sig. Returns its length or -1. */
/* Whether r->msg's body is its own relaxed canonical form but for empty
 * lines at its end: every body piece went as lines without loose
 * whitespace, and what MIME adds around them (part headers, delimiters)
 * has none. Attachments are not looked at, so they rule it out. */
static int body_is_canonical(const struct campaign_renderer *r)
{
	if (r->t->natt > 0)
		return 0;
	for (size_t i = 0; i < 2; i++)
		if (r->body[i].piece && !r->body[i].canonical)
			return 0;
	return 1;
}

static ssize_t sign(struct campaign_renderer *r, int64_t now)
{
	int canonical = body_is_canonical(r);
	size_t used = 0;

	for (unsigned i = 0; i < r->t->o.nsigners; i++) {
		ssize_t n = (canonical ? dkim_sign_message_canonical : dkim_sign_message)(
			r->sign[i], r->msg.data, r->msg.len, (uint64_t)now, r->sig + used,
			sizeof r->sig - used);
		if (n < 0) {
			snprintf(r->err, sizeof r->err, "DKIM: %s", dkim_sign_errstr(r->sign[i]));
			return -1;
		}
		used += (size_t)n;
	}
	return (ssize_t)used;
}

/* Renders the header pieces into r->out and points r->hv at them; sets up
 * the body writers for this recipient. Returns 0 or -1 with r->err set. */
static int render_pieces(struct campaign_renderer *r, const struct campaign_data *d,
			 struct mime_text_writers *bodies)
{
	const struct campaign_template *t = r->t;

	r->out.len = 0;
	for (size_t i = 0; i < t->npieces; i++) {
		const struct campaign_piece *p = &t->pieces[i];
		if (p->fixed)   /* the same for every recipient: no data, no render */
			continue;
		struct tpl_data data = d->piece(d->ud, i);

		if (p->kind != CAMPAIGN_PIECE_HEADER) {
			struct body_writer *bw = &r->body[p->kind == CAMPAIGN_PIECE_HTML];
			bw->data = data;
			bw->raw_ready = 0;
			if (p->kind == CAMPAIGN_PIECE_HTML)
				bodies->html = &bw->w;
			else
				bodies->text = &bw->w;
			continue;
		}
		r->off[i] = r->out.len;
		if (tpl_render(p->prog, &data, TPL_ESCAPE_NONE, render_flags(r), &r->out, &r->terr) != 0) {
			snprintf(r->err, sizeof r->err, "%s", r->terr.msg);
			return -1;
		}
		r->len[i] = r->out.len - r->off[i];
	}
	/* the buffer may have moved while it grew: views are taken now */
	for (size_t i = 0; i < t->npieces; i++) {
		const struct campaign_piece *p = &t->pieces[i];
		if (p->kind == CAMPAIGN_PIECE_HEADER && p->fixed) {
			r->hv[p->header].value = p->fixed;
			r->hv[p->header].value_len = p->fixed_len;
		} else if (p->kind == CAMPAIGN_PIECE_HEADER) {
			r->hv[p->header].value = r->out.data ? r->out.data + r->off[i] : "";
			r->hv[p->header].value_len = r->len[i];
		}
	}
	return 0;
}

int campaign_render(struct campaign_renderer *r, const struct campaign_data *d, int64_t now,
		    struct campaign_message *out)
{
	const struct campaign_template *t = r->t;
	struct mime_text_writers bodies = { NULL, NULL };
	struct mime_message_parts parts = {
		.headers = r->hv,
		.nheaders = t->m.nheaders,
		.attachments = (const struct mime_attachment *const *)t->att,
		.nattachments = t->natt,
	};
	struct mime_message_opts mo = {
		.smtp_8bitmime = t->o.smtp_8bitmime,
		.smtputf8 = t->o.smtputf8,
		.msgid_domain = t->o.msgid_domain,
		.date = now,
		.unsubscribe_url = t->o.unsubscribe_url,
		.unsubscribe_mailto = t->o.unsubscribe_mailto,
	};

	r->err[0] = '\0';
	r->source_failed = 0;
	if (render_pieces(r, d, &bodies) != 0)
		return -1;
	if (!mo.msgid_domain && t->from_piece >= 0) {
		const struct mime_header_value *h = &r->hv[t->pieces[t->from_piece].header];
		mo.msgid_domain = from_domain(r, h->value, h->value_len);
		if (!mo.msgid_domain)
			return -1;
	}

	bytebuf_clear(&r->msg);
	if (mime_build_written(r->mb, &parts, &bodies, &mo, &r->msg, &out->info) != 0) {
		if (!r->source_failed)
			snprintf(r->err, sizeof r->err, "%s", mime_builder_errstr(r->mb));
		return -1;
	}
	ssize_t siglen = sign(r, now);
	if (siglen < 0)
		return -1;
	out->dkim = r->sig;
	out->dkim_len = (size_t)siglen;
	out->msg = r->msg.data;
	out->msg_len = r->msg.len;
	return 0;
}
