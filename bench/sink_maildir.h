/* sink_maildir: volley sink's --maildir. Every accepted message becomes one
 * file in Maildir layout: written under DIR/tmp, renamed into DIR/new once
 * the 250 is decided, removed when the message is refused. The envelope
 * comes first, as header lines a test can read back:
 *
 *   X-Volley-Mail-From: <sender>          (<> for the null sender)
 *   X-Volley-Rcpt-To: <recipient>         (one line per accepted recipient)
 *   X-Volley-Helo: name
 *   X-Volley-Client: 127.0.0.1
 *   X-Volley-TLS: yes|no
 *
 * followed by the message exactly as received (dot-unstuffed). Files are not
 * fsync'ed: this is a test sink, not a mail store. */
#ifndef VOLLEY_SINK_MAILDIR_H
#define VOLLEY_SINK_MAILDIR_H

#include <stddef.h>
#include <stdint.h>
#include "bench/sink_session.h"

/* Creates DIR, DIR/tmp, DIR/new and DIR/cur as needed. Returns 0, or -1 with
 * a reason in err. */
int sink_maildir_init(const char *dir, char *err, size_t errlen);

struct sink_mail;

/* Starts a message file; unique is a number no other message of this
 * process shares. Returns NULL (errno set) when the file cannot be made. */
struct sink_mail *sink_mail_begin(const char *dir, uint64_t unique, const struct sink_view *v,
				  const char *client);
void sink_mail_write(struct sink_mail *m, const char *p, size_t n);
/* Ends it: keep moves it into new/, otherwise it is removed. Frees m.
 * Returns 0, or -1 when keeping failed (a write or the rename). */
int sink_mail_end(struct sink_mail *m, int keep);

#endif
