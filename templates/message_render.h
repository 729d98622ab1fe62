/* message_render: the campaign template, glued from the pieces of
 * templates/: a template file (message_template.h) whose header values and
 * text/html bodies are mustache programs (mustache.h), attachments read once
 * (mime_attachment.h), and per recipient a rendered, assembled (mime_message.h)
 * and optionally DKIM-signed (dkim.h) RFC 5322 message.
 *
 * The bodies are rendered straight into the message as CRLF lines
 * (tpl_render_lines through mime_build_written), their template text
 * prepared once per template; a body whose values need a closer look (a
 * line end, a long line, bytes 7bit cannot carry) is rendered again the
 * plain way for MIME's checks and encoders. DKIM hashes a body without
 * loose whitespace as it is.
 *
 * A struct campaign_template is built once per campaign and is read-only
 * afterwards: any number of threads may render it, each with its own struct
 * campaign_renderer (render buffers, MIME builder, DKIM signing state), which
 * allocates nothing per message once its buffers have grown.
 *
 * The template's pieces are separate programs, each compiled with its place
 * in the template file, so that every compile and strict-render error reads
 * "template-file:line:col: what" (or names a partial's own file). */
#ifndef VOLLEY_MESSAGE_RENDER_H
#define VOLLEY_MESSAGE_RENDER_H

#include <stddef.h>
#include <stdint.h>

#include "templates/dkim.h"
#include "templates/mime_message.h"
#include "templates/mustache.h"

#define CAMPAIGN_ERR_MAX        768
#define CAMPAIGN_SIGNERS_MAX    DKIM_MAX_KEYS   /* signers (d= domains); 2 signatures at most */
#define CAMPAIGN_TEMPLATE_MAX   (1u << 20)      /* bytes in a template file */
#define CAMPAIGN_MESSAGE_MAX    (64u << 20)     /* bytes in one rendered message */

struct campaign_opts {
	int strict;                    /* a missing variable fails the recipient */
	int smtp_8bitmime;             /* the server offers 8BITMIME */
	int smtputf8;                  /* messages go with SMTPUTF8 */
	const char *msgid_domain;      /* Message-ID's right side; NULL: From's domain */
	const char *unsubscribe_url;   /* https://..., or NULL */
	const char *unsubscribe_mailto; /* mailto:..., or NULL */
	/* DKIM: each signer makes one or two signatures (dkim_signer_new);
	 * borrowed, they must outlive the template. At most two signatures in
	 * all. */
	const struct dkim_signer *signers[CAMPAIGN_SIGNERS_MAX];
	unsigned nsigners;
	size_t max_message;            /* 0: CAMPAIGN_MESSAGE_MAX */
};

/* What a template piece is: a header's value, the text or the html body. */
enum campaign_piece_kind {
	CAMPAIGN_PIECE_HEADER,
	CAMPAIGN_PIECE_TEXT,
	CAMPAIGN_PIECE_HTML,
};

struct campaign_template;

/* Reads and parses the template file path, compiles its header values and
 * bodies (partials come from path's folder) and loads its attachments. o is
 * copied (its strings too). Returns the template, or NULL with
 * "file:line:col: what" (or "file: what") in err. */
struct campaign_template *campaign_template_load(const char *path, const struct campaign_opts *o,
						 char *err, size_t errlen);

/* t may be NULL. */
void campaign_template_free(struct campaign_template *t);

/* The pieces: each is one mustache program, rendered with the data the
 * caller gives for it (see struct campaign_data). */
size_t campaign_template_pieces(const struct campaign_template *t);
const struct tpl *campaign_template_program(const struct campaign_template *t, size_t piece);
enum campaign_piece_kind campaign_template_piece_kind(const struct campaign_template *t,
						      size_t piece);

/* One recipient's data, per piece: the programs' symbol numbers differ, so
 * an adapter that binds symbols (mustache_csv.h) hands each piece its own
 * binding. */
struct campaign_data {
	struct tpl_data (*piece)(const void *ud, size_t piece);
	const void *ud;
};

/* The data for every piece is the same JSON value (root must outlive the
 * render). */
struct tpl_data campaign_json_piece(const void *root, size_t piece);

/* One rendered message: the DKIM-Signature fields (none when unsigned) go
 * first, then msg; both views live until the renderer's next render. */
struct campaign_message {
	const char *dkim;
	size_t dkim_len;
	const char *msg;
	size_t msg_len;
	struct mime_message_info info;
};

struct campaign_renderer;

/* Returns a renderer for t (which must outlive it), or NULL with the reason
 * in err. One per thread. */
struct campaign_renderer *campaign_renderer_new(const struct campaign_template *t,
						char *err, size_t errlen);

/* r may be NULL. */
void campaign_renderer_free(struct campaign_renderer *r);

/* Renders the message for one recipient dated now (seconds since 1970; the
 * DKIM t= too). Returns 0 and fills *out, or -1 with the reason in
 * campaign_renderer_errstr (a missing variable in strict mode as
 * "file:line:col: no value for 'x'", a header that cannot be written...):
 * that recipient fails, the next one may render. */
int campaign_render(struct campaign_renderer *r, const struct campaign_data *d, int64_t now,
		    struct campaign_message *out);

const char *campaign_renderer_errstr(const struct campaign_renderer *r);

#endif
