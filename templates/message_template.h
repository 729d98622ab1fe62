/* message_template: the template file format. Pure: text in, views out.
 *
 * A template is one UTF-8 file: header lines, an empty line, the body.
 *
 *     From: "{{sender_name}}" <news@example.test>
 *     To: {{name}} <{{email}}>
 *     Subject: Hello {{name}},
 *       your invoice is ready          <- a continuation line (RFC 5322 folding)
 *
 *     --- text
 *     Hello {{name}}, ...
 *     --- html
 *     <p>Hello {{name}}, ...</p>
 *     --- attach terms.pdf application/pdf
 *
 * Header values may hold mustache tags; names may not, nor may an
 * attachment's PATH (attachments are read once per campaign). A header line
 * that starts with a space or tab continues the one above; a line of only
 * whitespace ends the header like an empty one.
 *
 * A body whose first non-empty line is not a part marker is one text/plain
 * part, and no line of it is read as a marker (but a line that is exactly a
 * known marker is an error there: surely a mistake). Otherwise the body is
 * made of parts, each starting with a marker line: "--- text", "--- html"
 * or "--- attach PATH [content-type]"; in such a body every line that
 * starts with "--- " and a letter is a marker, and an unknown one is an
 * error. A text or html part is the lines after its marker, line ends
 * included. PATH is relative to the template's folder (neither absolute nor
 * holding ".."); the content type is guessed from its extension when absent.
 *
 * The parser returns views into the caller's text (which must outlive
 * them), each with the line and column where it starts, so that the
 * mustache compiler can be handed each piece with a base place and its
 * errors point into the template file. Lines end in LF or CRLF; columns
 * count bytes from 1. A UTF-8 byte order mark at the start is skipped. */
#ifndef VOLLEY_MESSAGE_TEMPLATE_H
#define VOLLEY_MESSAGE_TEMPLATE_H

#include <stddef.h>

#define MTPL_HEADERS_MAX  64
#define MTPL_ATTACH_MAX   32
#define MTPL_PARTS_MAX    (2 + MTPL_ATTACH_MAX)
#define MTPL_FILE_MAX     256    /* bytes of a file name kept for messages */
#define MTPL_ERR_MAX      512

/* "file:line:col: what" in msg, ready to print; line and col 1-based. */
struct mtpl_error {
	char file[MTPL_FILE_MAX];
	unsigned line, col;
	char msg[MTPL_ERR_MAX];
};

struct mtpl_header {
	const char *name;            /* as written, e.g. "Subject" */
	size_t name_len;
	const char *value;           /* raw: mustache tags and folds kept, the */
	size_t value_len;            /* whitespace around it dropped */
	unsigned line, col;          /* where value starts */
};

enum mtpl_part_kind {
	MTPL_PART_TEXT,
	MTPL_PART_HTML,
	MTPL_PART_ATTACH,
};

struct mtpl_part {
	enum mtpl_part_kind kind;
	unsigned line;               /* the marker's line (the body's, when it has no marker) */
	const char *body;            /* text and html: the lines after the marker, */
	size_t body_len;             /* each with its line end */
	unsigned body_line;          /* where body starts (column 1) */
	const char *path;            /* attach: as written */
	size_t path_len;
	const char *content_type;    /* attach: as written, or guessed (static) */
	size_t content_type_len;
};

struct mtpl {
	struct mtpl_header headers[MTPL_HEADERS_MAX];
	size_t nheaders;
	struct mtpl_part parts[MTPL_PARTS_MAX];
	size_t nparts;
	int text, html;              /* index of that part in parts, or -1 */
	unsigned body_line;          /* the line after the empty line */
};

/* Parses src[0..len) (no NUL needed); file names it in errors (NULL:
 * "<template>"). Errors: invalid UTF-8, a NUL, a CR not followed by LF, a
 * header line without a colon, a bad header name, a continuation line
 * first, a header volley sets itself (Date, Message-ID, MIME-Version,
 * Content-*), a header given twice that may appear once (From, Sender,
 * Reply-To, To, Cc, Bcc, Subject, In-Reply-To, References), no From, too
 * many headers, text before the first marker, an unknown marker, a second
 * text or html part, a bad attach line, text under an attach marker.
 * Returns 0, or -1 with *err filled. */
int mtpl_parse(const char *file, const char *src, size_t len, struct mtpl *out,
	       struct mtpl_error *err);

/* The header called name (case-insensitive), or NULL. */
const struct mtpl_header *mtpl_header_find(const struct mtpl *t, const char *name);

/* Writes into out the path of attachment part p: template_path's folder
 * joined with p's PATH. Returns 0, or -1 when it does not fit in cap. */
int mtpl_attachment_path(const char *template_path, const struct mtpl_part *p, char *out,
			 size_t cap);

#endif
