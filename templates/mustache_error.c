/* mustache_error: fills a struct tpl_error, for the compiler and the renderer. */
#include "templates/mustache_prog.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void tpl_set_error(struct tpl_error *e, const char *file, unsigned line, unsigned col,
		   const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!e)
		return;
	snprintf(e->file, sizeof e->file, "%.*s", (int)sizeof e->file - 1, file ? file : "");
	e->line = line;
	e->col = col;
	if (file && line)
		n = snprintf(e->msg, sizeof e->msg, "%s:%u:%u: ", e->file, line, col);
	else if (file && *file)
		n = snprintf(e->msg, sizeof e->msg, "%s: ", e->file);
	else
		n = 0;
	if (n < 0 || (size_t)n >= sizeof e->msg)
		n = 0;   /* a file name too long to show: the reason matters more */
	va_start(ap, fmt);
	vsnprintf(e->msg + n, sizeof e->msg - (size_t)n, fmt, ap);
	va_end(ap);
}
