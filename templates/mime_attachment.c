/* mime_attachment: see mime_attachment.h. */
#include "templates/mime_attachment.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "templates/bytebuf.h"
#include "templates/mime_encode.h"
#include "templates/utf8.h"

struct mime_attachment {
	char *part;
	size_t part_len;
	size_t size;
};

/* ---- content types ---- */

static const struct {
	const char *ext;
	const char *type;
} TYPES[] = {
	{ "pdf",  "application/pdf" },
	{ "png",  "image/png" },
	{ "jpg",  "image/jpeg" },
	{ "jpeg", "image/jpeg" },
	{ "gif",  "image/gif" },
	{ "webp", "image/webp" },
	{ "svg",  "image/svg+xml" },
	{ "txt",  "text/plain" },
	{ "csv",  "text/csv" },
	{ "htm",  "text/html" },
	{ "html", "text/html" },
	{ "ics",  "text/calendar" },
	{ "vcf",  "text/vcard" },
	{ "xml",  "application/xml" },
	{ "json", "application/json" },
	{ "zip",  "application/zip" },
	{ "gz",   "application/gzip" },
	{ "doc",  "application/msword" },
	{ "docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document" },
	{ "xls",  "application/vnd.ms-excel" },
	{ "xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" },
	{ "ppt",  "application/vnd.ms-powerpoint" },
	{ "pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation" },
	{ "odt",  "application/vnd.oasis.opendocument.text" },
	{ "ods",  "application/vnd.oasis.opendocument.spreadsheet" },
	{ "mp3",  "audio/mpeg" },
	{ "wav",  "audio/wav" },
	{ "mp4",  "video/mp4" },
};

#define OCTET_STREAM "application/octet-stream"

const char *mime_content_type_guess(const char *name, size_t len)
{
	const char *dot = NULL;

	for (size_t i = len; i > 0; i--) {
		if (name[i - 1] == '.') {
			dot = name + i;
			break;
		}
		if (name[i - 1] == '/')
			break;
	}
	if (!dot)
		return OCTET_STREAM;
	for (size_t k = 0; k < sizeof TYPES / sizeof TYPES[0]; k++) {
		size_t elen = strlen(TYPES[k].ext);
		if ((size_t)(name + len - dot) == elen && strncasecmp(dot, TYPES[k].ext, elen) == 0)
			return TYPES[k].type;
	}
	return OCTET_STREAM;
}

/* RFC 2045 token: printable ASCII but tspecials. */
static int is_token_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && !strchr("()<>@,;:\\\"/[]?=", c);
}

int mime_content_type_valid(const char *ct, size_t len)
{
	size_t slash = 0;

	if (len == 0 || len > MIME_CONTENT_TYPE_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		if (ct[i] == '/') {
			if (slash || i == 0)
				return 0;
			slash = i;
		} else if (!is_token_char((unsigned char)ct[i])) {
			return 0;
		}
	}
	return slash && slash + 1 < len;
}

/* ---- the part ---- */

/* RFC 2231 attribute-char, which stands for itself in filename*=. */
static int is_attr_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$&+-.^_`|~", c));
}

/* Writes the parameter attr="value" (ASCII) or attr*=UTF-8''%XX... into
 * out, NUL-terminated; out has room for the longest (3 octets a byte). */
static void filename_param(char *out, const char *attr, const char *name, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o;

	if (!utf8_has_non_ascii(name, len)) {
		o = (size_t)sprintf(out, "%s=\"", attr);
		for (size_t i = 0; i < len; i++) {
			if (name[i] == '"' || name[i] == '\\')
				out[o++] = '\\';
			out[o++] = name[i];
		}
		out[o++] = '"';
	} else {
		o = (size_t)sprintf(out, "%s*=UTF-8''", attr);
		for (size_t i = 0; i < len; i++) {
			unsigned char c = (unsigned char)name[i];
			if (is_attr_char(c)) {
				out[o++] = (char)c;
			} else {
				out[o++] = '%';
				out[o++] = hex[c >> 4];
				out[o++] = hex[c & 15];
			}
		}
	}
	out[o] = '\0';
}

static const char *filename_problem(const char *name, size_t len)
{
	if (len == 0)
		return "empty file name";
	if (len > MIME_FILENAME_MAX)
		return "file name longer than 255 octets";
	if (utf8_check(name, len) != len)
		return "file name is not valid UTF-8";
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c < 0x20 || c == 0x7f)
			return "control character in the file name";
		if (c == '/')
			return "file name holds '/'";
	}
	return NULL;
}

/* One header field "name: first; param" folded before the parameter when
 * the line would be long. Returns a MIME_E* code. */
static int param_field(struct bytebuf *out, const char *name, const char *first, const char *param)
{
	struct mime_field f;
	int r;

	r = mime_field_begin(&f, out, name, strlen(name));
	if (r == 0)
		r = mime_field_token(&f, " ", 1, first, strlen(first));
	if (r == 0)
		r = mime_field_token(&f, " ", 1, param, strlen(param));
	if (r == 0)
		r = mime_field_end(&f);
	return r;
}

struct mime_attachment *mime_attachment_new(const void *data, size_t len, const char *filename,
					    const char *content_type, char *err, size_t errlen)
{
	/* "filename*=UTF-8''" and three octets a byte of the name */
	char param[32 + 3 * MIME_FILENAME_MAX];
	char first[MIME_CONTENT_TYPE_MAX + 16];
	size_t name_len = strlen(filename);
	struct mime_attachment *a;
	struct bytebuf b;
	const char *why;
	int r;

	why = filename_problem(filename, name_len);
	if (why) {
		snprintf(err, errlen, "%s", why);
		return NULL;
	}
	if (!content_type)
		content_type = mime_content_type_guess(filename, name_len);
	if (!mime_content_type_valid(content_type, strlen(content_type))) {
		snprintf(err, errlen, "bad content type \"%.*s\" (want type/subtype)",
			 MIME_CONTENT_TYPE_MAX, content_type);
		return NULL;
	}
	if (len > (SIZE_MAX - 4096) / 2) {
		snprintf(err, errlen, "attachment too large");
		return NULL;
	}

	bytebuf_init(&b, 4096 + mime_base64_len(len));
	snprintf(first, sizeof first, "%s;", content_type);
	filename_param(param, "name", filename, name_len);
	r = param_field(&b, "Content-Type", first, param);
	filename_param(param, "filename", filename, name_len);
	if (r == 0)
		r = param_field(&b, "Content-Disposition", "attachment;", param);
	if (r == 0 && bytebuf_append_str(&b, "Content-Transfer-Encoding: base64\r\n\r\n") != 0)
		r = MIME_EBUF;
	if (r == 0)
		r = mime_base64_encode(&b, data, len);
	if (r != 0) {
		snprintf(err, errlen, "%s", mime_strerror(r, &b));
		bytebuf_free(&b);
		return NULL;
	}
	if (len > 0)
		b.len -= 2;   /* the next boundary brings the line end */
	a = malloc(sizeof *a);
	if (!a) {
		snprintf(err, errlen, "out of memory");
		bytebuf_free(&b);
		return NULL;
	}
	a->part = b.data;
	a->part_len = b.len;
	a->size = len;
	return a;
}

struct mime_attachment *mime_attachment_load(const char *path, const char *content_type,
					     size_t max_size, char *err, size_t errlen)
{
	struct mime_attachment *a = NULL;
	const char *base = strrchr(path, '/');
	struct stat st;
	char *data = NULL;
	size_t got = 0;
	int fd;

	base = base ? base + 1 : path;
	if (max_size == 0)
		max_size = MIME_ATTACHMENT_MAX_SIZE;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		goto out;
	}
	if ((unsigned long long)st.st_size > max_size) {
		snprintf(err, errlen, "%s: larger than %zu bytes", path, max_size);
		goto out;
	}
	data = malloc(st.st_size > 0 ? (size_t)st.st_size : 1);
	if (!data) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto out;
	}
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, data + got, (size_t)st.st_size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			goto out;
		}
		if (r == 0) {
			snprintf(err, errlen, "%s: the file shrank while it was read", path);
			goto out;
		}
		got += (size_t)r;
	}
	a = mime_attachment_new(data, got, base, content_type, err, errlen);
	if (!a) {
		/* name the file in the reason */
		char why[256];
		snprintf(why, sizeof why, "%s", err);
		snprintf(err, errlen, "%s: %s", path, why);
	}
out:
	free(data);
	close(fd);
	return a;
}

void mime_attachment_free(struct mime_attachment *a)
{
	if (!a)
		return;
	free(a->part);
	free(a);
}

const char *mime_attachment_part(const struct mime_attachment *a, size_t *len)
{
	*len = a->part_len;
	return a->part;
}

size_t mime_attachment_size(const struct mime_attachment *a)
{
	return a->size;
}
