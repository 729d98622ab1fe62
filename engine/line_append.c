/* line_append: see line_append.h. */
#include "engine/line_append.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

int line_append_open(const char *path)
{
	int fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	char last;

	if (fd < 0)
		return -1;
	off_t end = lseek(fd, 0, SEEK_END);
	if (end < 0 || (end > 0 && (pread(fd, &last, 1, end - 1) != 1 ||
				    (last != '\n' && write(fd, "\n", 1) != 1)))) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}
