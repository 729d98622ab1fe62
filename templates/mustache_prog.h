/* mustache_prog: the compiled form of a template, shared by the compiler
 * (mustache_compile.c) and the renderer (mustache_render.c). Not an API.
 *
 * Every template and partial is a unit: its source lives in one pool and
 * its ops are a range of one flat array. A construct with a body (section,
 * parent, block) is followed by its body's ops and holds the index just past
 * them, so the renderer walks ranges and jumps, never searches. */
#ifndef VOLLEY_MUSTACHE_PROG_H
#define VOLLEY_MUSTACHE_PROG_H

#include "templates/mustache.h"

#include <stdint.h>

enum tpl_opcode {
	TPL_OP_TEXT,      /* a: pool offset, b: length */
	TPL_OP_VAR,       /* a: name; TPL_F_RAW */
	TPL_OP_SECTION,   /* a: name, b: index past the body */
	TPL_OP_INVERTED,  /* a: name, b: index past the body */
	TPL_OP_PARTIAL,   /* a: unit (with TPL_F_DYNAMIC: the name whose value names
			   * it), c/d: indentation (pool offset/length); TPL_F_STANDALONE */
	TPL_OP_PARENT,    /* a: as PARTIAL, b: index past the overrides, c/d:
			   * indentation; TPL_F_STANDALONE; its body holds only
			   * TPL_OP_OVERRIDE */
	TPL_OP_BLOCK,     /* a place a parent's child may fill: a: block id, b: index
			   * past the default content, c/d: indentation of what fills
			   * it; TPL_F_STANDALONE, TPL_F_CLOSE_STANDALONE */
	TPL_OP_OVERRIDE,  /* inside a PARENT: a: block id, b: index past the content */
};

#define TPL_F_RAW              0x1   /* {{{x}}} or {{&x}} */
#define TPL_F_STANDALONE       0x2   /* the tag's line was removed: indent from the start */
#define TPL_F_CLOSE_STANDALONE 0x4   /* the closing tag's line was removed */
#define TPL_F_DYNAMIC          0x8   /* {{>*name}}: the unit is found at render */

struct tpl_op {
	uint8_t code;
	uint8_t flags;
	uint16_t unit;        /* for error messages */
	uint32_t a, b, c, d;
	uint32_t line, col;   /* of the tag */
};

/* A tag name: its whole text (pool offset and length) and its parts
 * t->keys[first .. first + nparts); nparts 0 is the implicit iterator ".". */
struct tpl_name {
	uint32_t off, len;
	uint32_t first, nparts;
};

struct tpl_unit {
	uint32_t off, len;       /* source in the pool */
	uint32_t begin, end;     /* ops */
	uint32_t name_off, name_len;  /* the partial name (pool), 0/0 for the main template */
	uint32_t depth;          /* partial nesting at compile */
	uint32_t ref_unit, ref_line, ref_col;  /* first tag that named it (0:0: preloaded) */
	char *file;
};

struct tpl_sym {
	uint32_t off, len;
};

struct tpl {
	char *pool;
	size_t pool_len;
	struct tpl_op *ops;
	size_t nops;
	struct tpl_name *names;
	size_t nnames;
	struct tpl_key *keys;    /* ->s points into pool once compiled */
	size_t nkeys;
	struct tpl_sym *syms;
	size_t nsyms;
	struct tpl_unit *units;
	size_t nunits;
};

/* What text holds, as bits: a text op's (struct tpl_text_shape) and what
 * tpl_render_lines has written so far. */
#define TPL_HAS_NON_ASCII 0x1u   /* a byte >= 0x80 */
#define TPL_HAS_WATCH     0x2u   /* the watch byte (tpl_lines_new) */
#define TPL_HAS_LOOSE     0x4u   /* whitespace DKIM's relaxed canonicalisation changes */
#define TPL_HAS_UNFIT     0x8u   /* a CR alone, a NUL or invalid UTF-8: not for lines */

/* A text op as tpl_render_lines writes it (struct tpl_lines). */
struct tpl_text_shape {
	uint32_t off, len;      /* the CRLF text in the lines pool */
	uint32_t head;          /* octets before its first line end (all of them without one) */
	uint32_t tail;          /* octets after its last line end */
	uint32_t longest;       /* the longest line between two of its line ends */
	uint8_t eol;            /* it holds a line end */
	uint8_t has;            /* TPL_HAS_* (LOOSE: a TAB, or a SP before SP or CR) */
	uint8_t first, last;    /* its first and last bytes (0 when empty) */
};

struct tpl_lines {
	const struct tpl *t;
	unsigned char watch;            /* 0: none */
	char *pool;
	struct tpl_text_shape *shape;   /* one per op; text ops' entries only are used */
};

/* Fills *e (which may be NULL): msg becomes "file:line:col: what", or
 * "file: what" without a line, or "what" without a file. */
void tpl_set_error(struct tpl_error *e, const char *file, unsigned line, unsigned col,
		   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#endif
