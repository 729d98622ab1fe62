/* line_append: a file of lines opened for appending (the delivery log, the
 * suppression list). A last line left without its LF, by a crash in the
 * middle of a write or by an editor, is ended first, so that the next line
 * appended stands alone. */
#ifndef VOLLEY_LINE_APPEND_H
#define VOLLEY_LINE_APPEND_H

/* Opens (creating, mode 0644) path for appending. Returns the descriptor,
 * or -1 with errno. */
int line_append_open(const char *path);

#endif
