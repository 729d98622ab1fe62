/* mustache: the template language, compiled once, rendered per recipient.
 *
 * tpl_compile() parses a template and every partial it reaches (through a
 * loader callback, once per name) into one immutable program: an array of
 * ops whose text is offsets into a source pool, with tag names split on
 * dots and interned. tpl_render() walks that program against one
 * recipient's data without parsing anything again; it allocates nothing
 * except by growing the output buffer, which has a cap. A program may be
 * rendered by many threads at once.
 *
 * Data comes through a small vtable (struct tpl_data_ops), so one program
 * renders a JSON object (templates/mustache_json.h), a CSV row or a Redis
 * hash alike. Every name part carries a symbol number, the same for the
 * same text anywhere in the program: an adapter whose field names are known
 * before rendering (a CSV header) maps symbols to fields once and then looks
 * up by index, with no hashing per render. Others (JSON) are asked once per
 * render for each name found in the root object, however often it is used.
 * An adapter with find() answers a lookup with the value's kind and text
 * together, so that a value written costs it one call.
 *
 * The language is the mustache spec (tests/conformance/mustache): variables ({{x}} escaped by the
 * render's escape mode, {{{x}}} and {{&x}} raw), dotted names, {{.}},
 * sections over lists, objects and truthy values, inverted sections,
 * comments, partials, set delimiters, and inheritance ({{<parent}} with
 * {{$block}} overrides, {{$block}}default{{/block}}), with the standalone
 * line rules, partial indentation and block reindentation of the spec.
 * Lambdas do not apply to C data.
 *
 * Dynamic names ({{>*name}}, and {{<*name}} closed by the same name) take
 * the partial's name from the data at render, among the partials the
 * program holds: those a tag names and those tpl_opts.preload lists
 * (rendering never loads).
 *
 * Where the spec leaves the choice to the implementation:
 *   - falsey are: a missing name, null, false, an empty list and an empty
 *     string (so an empty CSV column hides a section); 0 is truthy.
 *   - true and false interpolate as "true" and "false", lists and objects
 *     as nothing.
 *   - a partial or parent that cannot be found is a compile error, unless
 *     tpl_opts.missing_partial_empty asks for the spec's empty string.
 *   - between {{<parent}} and {{/parent}} only blocks, comments, set
 *     delimiters and text (which is ignored) may appear.
 *   - HTML escaping replaces & < > " and '.
 *   - a partial included in the middle of a line is not indented by the
 *     partial it sits in (indentation is prepended to the lines of a
 *     partial's own text, as the spec says, before rendering).
 */
#ifndef VOLLEY_MUSTACHE_H
#define VOLLEY_MUSTACHE_H

#include <stddef.h>
#include <stdint.h>

#define TPL_NAME_MAX   255         /* bytes in a tag name */
#define TPL_DELIM_MAX  16          /* bytes in a set delimiter */
#define TPL_NESTING_MAX 64         /* sections and blocks open at once in one template */
#define TPL_DEPTH_MAX  100         /* render: sections, partials and blocks inside each other */
#define TPL_FILE_MAX   256         /* bytes of a file name kept for error messages */
#define TPL_ERR_MAX    512

#define TPL_DEFAULT_MAX_PARTIALS      256        /* distinct partials in one program */
#define TPL_DEFAULT_MAX_PARTIAL_DEPTH 16         /* partials including partials, at compile */
#define TPL_DEFAULT_MAX_SOURCE        (16u << 20) /* template and partials, bytes */
#define TPL_DEFAULT_MAX_FILE          (1u << 20)  /* one file read by the directory loader */
#define TPL_DEFAULT_MAX_OUTPUT        (4u << 20)  /* one rendered message */

/* Where and what: file, line and column are 1-based (0 when the error is not
 * about a place, e.g. the output cap); msg is "file:line:col: what", ready
 * to print. */
struct tpl_error {
	char file[TPL_FILE_MAX];
	unsigned line, col;
	char msg[TPL_ERR_MAX];
};

/* ---- loading partials ---- */

#define TPL_NOT_FOUND 1

/* What a loader hands back for one partial. */
struct tpl_partial {
	char *text;                /* malloc'd by the loader; the compiler frees it */
	size_t len;
	char file[TPL_FILE_MAX];   /* how errors name it; "" means the partial's name */
};

struct tpl_loader {
	/* Loads the partial called name (NUL-terminated). Returns 0 and fills
	 * *out, TPL_NOT_FOUND when there is no such partial, or -1 with a
	 * reason in err. */
	int (*load)(void *ud, const char *name, struct tpl_partial *out, char *err, size_t errlen);
	void *ud;
};

/* The default loader: partial "x/y" is the file <dir>/x/y.mustache, or
 * <dir>/x/y when the name's last part already has a dot. Names that are
 * absolute or hold "." or ".." parts are refused, and so is any file whose
 * real path (symbolic links resolved) is not inside dir. Files larger than
 * max_file are refused. */
struct tpl_dir_loader {
	char root[4096];           /* realpath of dir */
	char shown[TPL_FILE_MAX];  /* dir as given, for error messages */
	size_t max_file;
};

/* Returns 0, or -1 with a reason in err (the folder does not exist...).
 * max_file 0 means TPL_DEFAULT_MAX_FILE. */
int tpl_dir_loader_init(struct tpl_dir_loader *dl, const char *dir, size_t max_file,
			char *err, size_t errlen);

/* The load callback of a struct tpl_dir_loader (ud). */
int tpl_dir_load(void *ud, const char *name, struct tpl_partial *out, char *err, size_t errlen);

/* ---- compiling ---- */

struct tpl_opts {
	const struct tpl_loader *loader;  /* NULL: no partial can be found */
	int missing_partial_empty;        /* a missing partial renders "" instead of failing */
	const char *const *preload;       /* NULL-terminated partial names to compile even
					   * when no tag names them, for {{>*name}} */
	unsigned max_partials;            /* 0: TPL_DEFAULT_MAX_PARTIALS */
	unsigned max_partial_depth;       /* 0: TPL_DEFAULT_MAX_PARTIAL_DEPTH */
	size_t max_source;                /* 0: TPL_DEFAULT_MAX_SOURCE */
	unsigned base_line, base_col;     /* where src starts in its file, so that errors
					   * and render messages about the main template
					   * point into that file (a piece of a larger
					   * file); 0 means 1. Partials count from 1:1. */
};

struct tpl;

/* Compiles src[0..len) (no NUL needed) and the partials it reaches; file
 * names the template in errors (NULL: "<template>"). o may be NULL
 * (defaults, no partials).
 * Returns the program, or NULL with *err filled. */
struct tpl *tpl_compile(const char *file, const char *src, size_t len,
			const struct tpl_opts *o, struct tpl_error *err);

/* Reads path and compiles it; partials come from o->loader when there is
 * one, else from path's folder through a struct tpl_dir_loader. Returns the
 * program, or NULL with *err filled. */
struct tpl *tpl_compile_file(const char *path, const struct tpl_opts *o, struct tpl_error *err);

void tpl_free(struct tpl *t);

/* The distinct name parts the program looks up: symbol i is s[0..*len)
 * (not NUL-terminated). An adapter may bind them to its fields once. */
size_t tpl_symbol_count(const struct tpl *t);
const char *tpl_symbol(const struct tpl *t, size_t i, size_t *len);

/* The text t renders, whatever the data and flags, when it is nothing
 * but template text (no tags but comments, which leave none): sets *len
 * and returns it (not NUL-terminated; valid while t lives). NULL when
 * rendering depends on data. */
const char *tpl_fixed_text(const struct tpl *t, size_t *len);

/* ---- data ---- */

/* A value as an adapter sees it: two words it chooses the meaning of. */
struct tpl_val {
	const void *ptr;
	uintptr_t aux;
};

/* One part of a looked-up name: "user.name" is looked up as "user" then
 * "name". sym is the part's symbol number (see tpl_symbol). */
struct tpl_key {
	const char *s;
	uint32_t len;
	uint32_t sym;
};

enum tpl_kind {
	TPL_NULL,
	TPL_FALSE,
	TPL_TRUE,
	TPL_STRING,     /* numbers too: text() gives their text */
	TPL_LIST,
	TPL_OBJECT,
};

#define TPL_SCRATCH 64   /* room text() may use to format a number */

/* What a member lookup found (struct tpl_data_ops.find): the value, its
 * kind and, for a TPL_STRING the adapter holds as text already, that text
 * (s NULL: the render asks text(), e.g. for a number it must format). s
 * must stay valid as long as the data. */
struct tpl_found {
	struct tpl_val v;
	const char *s;
	size_t len;
	enum tpl_kind kind;
};

struct tpl_data_ops {
	/* Member key of obj: returns 1 and sets *out, or 0 when obj is not an
	 * object or has no such member. */
	int (*get)(void *ud, struct tpl_val obj, const struct tpl_key *key, struct tpl_val *out);
	enum tpl_kind (*kind)(void *ud, struct tpl_val v);
	/* Text of a TPL_STRING: returns it and sets *len; it may be written
	 * into scratch. */
	const char *(*text)(void *ud, struct tpl_val v, char scratch[TPL_SCRATCH], size_t *len);
	/* Items of a TPL_LIST. */
	size_t (*list_len)(void *ud, struct tpl_val list);
	struct tpl_val (*list_at)(void *ud, struct tpl_val list, size_t i);
	/* Optional: member key of obj as get finds it, with its kind and text
	 * in the same call, so that a value costs the render one call, not
	 * three. Returns 1 and fills *out, or 0 as get. NULL: the render asks
	 * get, kind and text in turn. */
	int (*find)(void *ud, struct tpl_val obj, const struct tpl_key *key, struct tpl_found *out);
};

/* One recipient's data: the root value (usually an object) and its adapter. */
struct tpl_data {
	const struct tpl_data_ops *ops;
	void *ud;
	struct tpl_val root;
};

/* ---- rendering ---- */

/* The output: grows up to max bytes; reuse it across renders (set len = 0)
 * so that rendering allocates nothing once it is large enough. */
struct tpl_buf {
	char *data;
	size_t len, cap, max;
};

/* max 0 means TPL_DEFAULT_MAX_OUTPUT. */
void tpl_buf_init(struct tpl_buf *b, size_t max);
void tpl_buf_free(struct tpl_buf *b);

enum tpl_escape {
	TPL_ESCAPE_HTML,    /* text/html parts: {{x}} is HTML-escaped */
	TPL_ESCAPE_NONE,    /* text/plain parts and headers: nothing is escaped */
};

/* A name an interpolation or a dynamic name cannot find fails the render,
 * and so does a dynamic name whose partial the program lacks (sections and
 * inverted sections still take a missing name as false). */
#define TPL_RENDER_STRICT 0x1u

/* Renders t with d and appends the result to out. Returns 0, or -1 with
 * *err filled (out->len is then as it was on entry): a missing name in
 * strict mode (naming it, with its file, line and column), output past
 * out->max, nesting past TPL_DEPTH_MAX (a partial including itself without
 * end), or out of memory. */
int tpl_render(const struct tpl *t, const struct tpl_data *d, enum tpl_escape esc,
	       unsigned flags, struct tpl_buf *out, struct tpl_error *err);

/* ---- rendering a message body: line ends CRLF, lines measured ---- */

/* t's text prepared once for tpl_render_lines: each text's line ends made
 * CRLF (an LF alone becomes CRLF) and its shape measured (the octets
 * before its first line end and after its last, its longest whole line,
 * non-ASCII), so that rendering copies template text with one memcpy and
 * keeps the line length it is at without looking at the bytes again. */
struct tpl_lines;

/* Returns the prepared text, or NULL when out of memory. watch is a byte
 * the caller wants to know whether a render writes (0: none; MIME's
 * boundaries hold a '_', and a part without one need not be searched for
 * them). t must outlive it; any number of threads may share it. */
struct tpl_lines *tpl_lines_new(const struct tpl *t, unsigned char watch);

/* l may be NULL. */
void tpl_lines_free(struct tpl_lines *l);

/* What tpl_render_lines may write, and what it wrote. */
struct tpl_lines_out {
	size_t max_line;     /* in: the longest line allowed, CRLF not counted */
	int allow_8bit;      /* in: non-ASCII may be written (valid UTF-8 only) */
	int skip_loose;      /* in: loose_space is not wanted (nothing is DKIM-signed):
			      * whitespace is not tracked, and loose_space reads 1 */
	int non_ascii;       /* out: a byte written is non-ASCII */
	int watched;         /* out: the watch byte (tpl_lines_new) was written */
	int loose_space;     /* out: the output may hold whitespace that DKIM's relaxed
			      * canonicalisation changes (a TAB; a SP before SP, TAB or
			      * a line end, or at the end; indentation); 0 means it
			      * surely holds none */
};

/* tpl_render_lines' answer when the output cannot be written as lines. */
#define TPL_NOT_LINES (-2)

/* Renders t as tpl_render does, but with template text from l (t's own),
 * so that every line end is CRLF, and checking what goes out as it goes:
 * no line past lo->max_line, non-ASCII only when lo->allow_8bit. Returns 0
 * (and sets lo->non_ascii), -1 with *err filled as tpl_render, or
 * TPL_NOT_LINES (out->len as on entry) when the output cannot be written
 * that way: a value holding CR, LF or NUL, a line too long, non-ASCII not
 * allowed, invalid UTF-8, or template text holding a CR alone or a NUL. The
 * caller then renders with tpl_render and looks at the whole text. */
int tpl_render_lines(const struct tpl *t, const struct tpl_lines *l, const struct tpl_data *d,
		     enum tpl_escape esc, unsigned flags, struct tpl_buf *out,
		     struct tpl_lines_out *lo, struct tpl_error *err);

#endif
