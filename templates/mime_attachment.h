/* mime_attachment: an attachment's whole MIME part (its header fields and
 * its base64 body), built once per campaign and copied as it is into every
 * message, so that no message encodes an attachment again. Reading the file
 * is the only I/O here, and it happens when the campaign starts. */
#ifndef VOLLEY_MIME_ATTACHMENT_H
#define VOLLEY_MIME_ATTACHMENT_H

#include <stddef.h>

#define MIME_FILENAME_MAX        255          /* octets in an attachment's file name */
#define MIME_CONTENT_TYPE_MAX    127          /* octets in "type/subtype" */
#define MIME_ATTACHMENT_MAX_SIZE (25u << 20)  /* the default limit on a file's size */

/* The content type of a file, from the extension of name[0..len) (case
 * does not matter): "application/pdf" for "x.PDF"..., and
 * "application/octet-stream" for anything unknown. A static string. */
const char *mime_content_type_guess(const char *name, size_t len);

/* Returns 1 when ct[0..len) is "type/subtype" made of RFC 2045 token
 * characters, 0 otherwise. */
int mime_content_type_valid(const char *ct, size_t len);

struct mime_attachment;

/* Builds the part for data[0..len), shown as filename (a base name: valid
 * UTF-8, no '/', no control character, at most MIME_FILENAME_MAX octets;
 * non-ASCII names are written as RFC 2231 "filename*=UTF-8''...") with
 * content_type (NULL: guessed from filename). Returns the attachment, or
 * NULL with a reason in err. */
struct mime_attachment *mime_attachment_new(const void *data, size_t len, const char *filename,
					    const char *content_type, char *err, size_t errlen);

/* Reads the regular file path (at most max_size bytes; 0 means
 * MIME_ATTACHMENT_MAX_SIZE) and builds its part, named after the file's base
 * name. Returns the attachment, or NULL with a reason in err. */
struct mime_attachment *mime_attachment_load(const char *path, const char *content_type,
					     size_t max_size, char *err, size_t errlen);

void mime_attachment_free(struct mime_attachment *a);

/* The part, ready to follow a boundary line: "Content-Type: ...", its
 * other header fields, an empty line and the base64 lines, without a CRLF
 * after the last one (the next boundary brings it). Sets *len. */
const char *mime_attachment_part(const struct mime_attachment *a, size_t *len);

/* The size of the file's content, before encoding. */
size_t mime_attachment_size(const struct mime_attachment *a);

#endif
