/* mustache_load: template files. The directory loader resolves a partial's
 * name inside one folder and refuses every way out of it: absolute names,
 * "." and ".." parts, and symbolic links that lead elsewhere (the real path
 * must stay under the folder's real path). */
#include "templates/mustache_prog.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Reads the regular file path, at most max bytes. Returns 0 with a malloc'd
 * *text (NUL-terminated, not counted in *len), or -1 with a reason in err. */
static int read_file(const char *path, int flags, size_t max, char **text, size_t *len,
		     char *err, size_t errlen)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | flags);

	if (fd < 0) {
		snprintf(err, errlen, "%s", strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "not a regular file");
		close(fd);
		return -1;
	}
	if ((unsigned long long)st.st_size > max) {
		snprintf(err, errlen, "larger than %zu bytes", max);
		close(fd);
		return -1;
	}
	size_t cap = (size_t)st.st_size + 1, n = 0;
	char *buf = malloc(cap);
	if (!buf) {
		snprintf(err, errlen, "out of memory");
		close(fd);
		return -1;
	}
	/* the file may change while read: never past what was allocated */
	for (;;) {
		ssize_t r = read(fd, buf + n, cap - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(err, errlen, "%s", strerror(errno));
			free(buf);
			close(fd);
			return -1;
		}
		if (r == 0 || (n += (size_t)r) == cap - 1)
			break;
	}
	close(fd);
	buf[n] = '\0';
	*text = buf;
	*len = n;
	return 0;
}

int tpl_dir_loader_init(struct tpl_dir_loader *dl, const char *dir, size_t max_file,
			char *err, size_t errlen)
{
	_Static_assert(sizeof dl->root >= PATH_MAX, "realpath needs PATH_MAX bytes");

	if (!realpath(dir, dl->root)) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return -1;
	}
	snprintf(dl->shown, sizeof dl->shown, "%s", dir);
	dl->max_file = max_file ? max_file : TPL_DEFAULT_MAX_FILE;
	return 0;
}

/* A relative name of non-empty parts other than "." and "..", without
 * control characters or backslashes. */
static int safe_name(const char *name)
{
	const char *p = name;

	if (*p == '\0' || *p == '/')
		return 0;
	while (*p) {
		const char *e = strchrnul(p, '/');
		size_t n = (size_t)(e - p);
		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return 0;
		for (const char *q = p; q < e; q++)
			if ((unsigned char)*q < 0x20 || *q == 0x7f || *q == '\\')
				return 0;
		p = *e ? e + 1 : e;
		if (*e && !*p)
			return 0;   /* a trailing '/' */
	}
	return 1;
}

static int inside(const char *root, const char *real)
{
	size_t n = strlen(root);

	if (n == 1 && root[0] == '/')
		return real[0] == '/';
	return strncmp(real, root, n) == 0 && real[n] == '/';
}

int tpl_dir_load(void *ud, const char *name, struct tpl_partial *out, char *err, size_t errlen)
{
	const struct tpl_dir_loader *dl = ud;
	const char *last = strrchr(name, '/');
	const char *ext = strchr(last ? last + 1 : name, '.') ? "" : ".mustache";
	char path[PATH_MAX], real[PATH_MAX];

	if (!safe_name(name)) {
		snprintf(err, errlen, "not a name inside the template folder");
		return -1;
	}
	int n = snprintf(path, sizeof path, "%s/%s%s", dl->root, name, ext);
	if (n < 0 || (size_t)n >= sizeof path) {
		snprintf(err, errlen, "path too long");
		return -1;
	}
	n = snprintf(out->file, sizeof out->file, "%s/%s%s", dl->shown, name, ext);
	if (n < 0 || (size_t)n >= sizeof out->file)   /* only shown: a shortened name will do */
		out->file[sizeof out->file - 1] = '\0';
	if (!realpath(path, real)) {
		if (errno == ENOENT || errno == ENOTDIR)
			return TPL_NOT_FOUND;
		snprintf(err, errlen, "%s: %s", out->file, strerror(errno));
		return -1;
	}
	if (!inside(dl->root, real)) {
		snprintf(err, errlen, "%s leads outside %s", out->file, dl->shown);
		return -1;
	}
	char why[128];
	if (read_file(real, O_NOFOLLOW, dl->max_file, &out->text, &out->len, why, sizeof why) < 0) {
		snprintf(err, errlen, "%s: %s", out->file, why);
		return -1;
	}
	return 0;
}

struct tpl *tpl_compile_file(const char *path, const struct tpl_opts *o, struct tpl_error *err)
{
	struct tpl_opts opts = { 0 };
	struct tpl_dir_loader *dl = NULL;
	struct tpl_loader loader;
	char why[TPL_ERR_MAX];
	char *text;
	size_t len;

	if (o)
		opts = *o;
	if (read_file(path, 0, opts.max_source ? opts.max_source : TPL_DEFAULT_MAX_SOURCE,
		      &text, &len, why, sizeof why) < 0) {
		tpl_set_error(err, path, 0, 0, "%s", why);
		return NULL;
	}
	if (!opts.loader) {
		char dir[PATH_MAX];
		snprintf(dir, sizeof dir, "%s", path);
		dl = malloc(sizeof *dl);
		if (!dl || tpl_dir_loader_init(dl, dirname(dir), 0, why, sizeof why) < 0) {
			tpl_set_error(err, path, 0, 0, "%s", dl ? why : "out of memory");
			free(dl);
			free(text);
			return NULL;
		}
		loader = (struct tpl_loader){ tpl_dir_load, dl };
		opts.loader = &loader;
	}
	struct tpl *t = tpl_compile(path, text, len, &opts, err);
	free(text);
	free(dl);
	return t;
}
