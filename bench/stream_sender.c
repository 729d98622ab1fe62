/* stream-sender: the trivial SMTP sender that sets the limit in benchmarks.
 *
 *   stream-sender HOST:PORT --messages N --size BYTES --connections C
 *                 [--mode bdat|data]
 *
 * No parsing beyond counting reply lines, no rendering, no TLS: each
 * connection's whole byte stream is built once before the clock starts, and
 * the sender only moves bytes (epoll, write, read).
 *
 *   bdat  every message as MAIL, RCPT, BDAT n LAST and the body, all of a
 *         connection's messages back to back without waiting (CHUNKING);
 *   data  PIPELINING without CHUNKING: one write per message (the previous
 *         body and its dot, then MAIL, RCPT, DATA), then wait for the 354.
 *         One round trip per message, as any DATA client must.
 *
 * It prints one JSON object: messages, seconds, msgs_per_s, cpu_s,
 * cpu_s_per_msg (user + system CPU of this process). It does not check the
 * replies' codes (the server is a sink); it exits 2 when a connection ends
 * before its last reply. */
#include "bench/measure.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum mode { MODE_BDAT, MODE_DATA };

struct stream {
	int fd;
	const char *buf;          /* bytes to send, in order */
	size_t len, sent;
	size_t release;           /* data mode: may send up to here */
	unsigned long long lines_seen, lines_wanted;  /* final reply lines */
	unsigned long long msgs_released;
	char code_sep;            /* the 4th byte of the line being read */
	size_t col;
	int done;
};

static const char *body_text(size_t size, size_t *len)
{
	char *b = malloc(size + 2);
	if (!b)
		return NULL;
	size_t i = 0, col = 0;
	while (i + 2 < size) {
		if (col == 76) {
			b[i++] = '\r';
			b[i++] = '\n';
			col = 0;
			continue;
		}
		b[i++] = (char)('a' + col % 26);
		col++;
	}
	b[i++] = '\r';
	b[i++] = '\n';
	*len = i;
	return b;
}

/* One connection's whole stream. In data mode, `marks` gets the offset at
 * which each message's write ends (its MAIL, RCPT, DATA). */
static char *build_stream(enum mode mode, unsigned long long n, const char *body, size_t blen,
			  size_t *len, size_t *marks)
{
	char head[256];
	size_t cap = 64 + n * (blen + 256), o = 0;
	char *s = malloc(cap);
	if (!s)
		return NULL;
	o += (size_t)sprintf(s + o, "EHLO stream.volley.test\r\n");
	for (unsigned long long i = 0; i < n; i++) {
		int h;
		if (mode == MODE_BDAT) {
			h = snprintf(head, sizeof head, "MAIL FROM:<stream@volley.test>\r\n"
				     "RCPT TO:<user%llu@dest.test>\r\nBDAT %zu LAST\r\n", i, blen);
			memcpy(s + o, head, (size_t)h);
			o += (size_t)h;
			memcpy(s + o, body, blen);
			o += blen;
		} else {
			h = snprintf(head, sizeof head, "MAIL FROM:<stream@volley.test>\r\n"
				     "RCPT TO:<user%llu@dest.test>\r\nDATA\r\n", i);
			memcpy(s + o, head, (size_t)h);
			o += (size_t)h;
			marks[i] = o;
			memcpy(s + o, body, blen);   /* no line starts with '.' */
			o += blen;
			memcpy(s + o, ".\r\n", 3);
			o += 3;
		}
	}
	o += (size_t)sprintf(s + o, "QUIT\r\n");
	*len = o;
	return s;
}

/* Counts final reply lines ("250 ..." as opposed to "250-...") in buf. */
static unsigned long long count_final_lines(struct stream *st, const char *buf, size_t n)
{
	unsigned long long finals = 0;
	for (size_t i = 0; i < n; i++) {
		char c = buf[i];
		if (st->col == 3)
			st->code_sep = c;
		st->col++;
		if (c == '\n') {
			finals += st->code_sep == ' ';
			st->col = 0;
			st->code_sep = 0;
		}
	}
	return finals;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "messages", required_argument, 0, 'n' },
		{ "size", required_argument, 0, 's' },
		{ "connections", required_argument, 0, 'c' },
		{ "mode", required_argument, 0, 'm' },
		{ 0, 0, 0, 0 },
	};
	unsigned long long messages = 0;
	size_t size = 1024;
	unsigned conns = 0;
	enum mode mode = MODE_BDAT;
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'n': messages = strtoull(optarg, NULL, 10); break;
		case 's': size = strtoull(optarg, NULL, 10); break;
		case 'c': conns = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'm':
			if (strcmp(optarg, "bdat") == 0) mode = MODE_BDAT;
			else if (strcmp(optarg, "data") == 0) mode = MODE_DATA;
			else goto usage;
			break;
		default: goto usage;
		}
	}
	if (optind != argc - 1 || !messages || !conns || size < 64)
		goto usage;
	char host[64];
	unsigned port;
	if (sscanf(argv[optind], "%63[^:]:%u", host, &port) != 2 || port > 65535)
		goto usage;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		fprintf(stderr, "stream-sender: %s: not an IPv4 address\n", host);
		return 1;
	}

	size_t blen;
	const char *body = body_text(size, &blen);
	struct stream *st = calloc(conns, sizeof *st);
	size_t **marks = calloc(conns, sizeof *marks);
	if (!body || !st || !marks)
		return 1;
	for (unsigned i = 0; i < conns; i++) {
		unsigned long long n = messages / conns + (i < messages % conns);
		marks[i] = mode == MODE_DATA ? calloc(n + 1, sizeof **marks) : NULL;
		char *s = build_stream(mode, n, body, blen, &st[i].len, marks[i]);
		if (!s || (mode == MODE_DATA && !marks[i])) {
			fprintf(stderr, "stream-sender: out of memory\n");
			return 1;
		}
		st[i].buf = s;
		/* Final reply lines: greeting, EHLO, then per message MAIL, RCPT
		 * and BDAT (or 354 and the end of data), then QUIT. */
		st[i].lines_wanted = 2 + n * (mode == MODE_BDAT ? 3 : 4) + 1;
		/* data mode: the first write ends after the first DATA. */
		st[i].release = mode == MODE_DATA ? (n ? marks[i][0] : st[i].len) : st[i].len;
		st[i].msgs_released = n ? 1 : 0;
		if (marks[i])
			marks[i][n] = st[i].len;
	}

	int ep = epoll_create1(0);
	double t0 = measure_mono_s(), c0 = measure_cpu_s();
	for (unsigned i = 0; i < conns; i++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
			fprintf(stderr, "stream-sender: connect %s: %s\n", argv[optind], strerror(errno));
			return 2;
		}
		fcntl(fd, F_SETFL, O_NONBLOCK);
		st[i].fd = fd;
		/* Edge-triggered: a short read or write means the socket is
		 * drained or full, and the next change brings a new event, so
		 * there is no epoll_ctl per message. */
		struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLET, .data.u32 = i };
		epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
	}
	unsigned open = conns;
	static char rbuf[65536];
	struct epoll_event evs[256];
	int failed = 0;
	while (open) {
		int n = epoll_wait(ep, evs, 256, 10000);
		if (n <= 0) {
			fprintf(stderr, "stream-sender: no progress for 10 s\n");
			return 2;
		}
		for (int k = 0; k < n; k++) {
			unsigned i = evs[k].data.u32;
			struct stream *s = &st[i];
			unsigned long long nmsg = messages / conns + (i < messages % conns);
			if (s->done)
				continue;
			if (evs[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
				ssize_t r;
				do {
					r = read(s->fd, rbuf, sizeof rbuf);
					if (r > 0)
						s->lines_seen += count_final_lines(s, rbuf, (size_t)r);
				} while (r == (ssize_t)sizeof rbuf);
				if (r == 0 || (r < 0 && errno != EAGAIN)) {
					if (s->lines_seen < s->lines_wanted) {
						fprintf(stderr, "stream-sender: connection %u ended after %llu of %llu replies\n",
							i, s->lines_seen, s->lines_wanted);
						failed = 1;
					}
					s->done = 1;
					open--;
					close(s->fd);
					continue;
				}
				/* data mode: after the greeting and the EHLO reply, 4
				 * final lines per message (MAIL, RCPT, 354, end of
				 * data); the 354 of message m releases the next write. */
				while (mode == MODE_DATA && s->msgs_released <= nmsg &&
				       s->lines_seen >= 2 + 4 * (s->msgs_released - 1) + 3) {
					s->release = marks[i][s->msgs_released];
					s->msgs_released++;
				}
				if (s->lines_seen >= s->lines_wanted) {
					s->done = 1;
					open--;
					close(s->fd);
					continue;
				}
			}
			while (s->sent < s->release) {
				ssize_t w = write(s->fd, s->buf + s->sent, s->release - s->sent);
				if (w <= 0)
					break;
				s->sent += (size_t)w;
			}
		}
	}
	double secs = measure_mono_s() - t0, cpu = measure_cpu_s() - c0;
	printf("{\"mode\":\"%s\",\"messages\":%llu,\"size\":%zu,\"connections\":%u,\"seconds\":%.3f,"
	       "\"msgs_per_s\":%.1f,\"cpu_s\":%.3f,\"cpu_s_per_msg\":%.9f}\n",
	       mode == MODE_BDAT ? "bdat" : "data", messages, blen, conns, secs,
	       messages / secs, cpu, cpu / (double)messages);
	return failed ? 2 : 0;
usage:
	fprintf(stderr, "usage: stream-sender HOST:PORT --messages N --size BYTES --connections C "
		"[--mode bdat|data]\n");
	return 1;
}
