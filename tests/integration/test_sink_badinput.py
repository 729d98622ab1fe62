#!/usr/bin/python3
"""volley sink against bad clients: garbage, a 10 MB line, a body past SIZE,
commands out of order, TLS handshakes that stop halfway, 5,000 idle
connections. Each gets correct replies or a disconnect, while another client
is served meanwhile, and the sink's memory (VmRSS) stays bounded."""

import os
import random
import resource
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vtest  # noqa: E402
from volley_sink import VolleySink, stop_and_check  # noqa: E402

IDLE_CONNS = 5000


class Client:
    """A raw SMTP client that reads replies line by line."""

    def __init__(self, port, timeout=20):
        self.sock = socket.create_connection(('127.0.0.1', port), timeout=timeout)
        self.buf = b''

    def line(self):
        while b'\r\n' not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError('closed')
            self.buf += data
        line, self.buf = self.buf.split(b'\r\n', 1)
        return line

    def reply(self):
        """One whole reply: (code, [lines])."""
        lines = [self.line()]
        while len(lines[-1]) > 3 and lines[-1][3:4] == b'-':
            lines.append(self.line())
        return int(lines[0][:3]), lines

    def send(self, data):
        self.sock.sendall(data)

    def closed(self, timeout=5):
        """True when the sink closes the connection (EOF or reset)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
                self.buf += data
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def close(self):
        self.sock.close()


def served(t, s, what):
    """Another client is served while the bad one is there."""
    p = t.probe(s.url(), '--to', 'ok@dest.test', '--ca', s.cert, '--timeout', '10')
    t.rcpt(p, 'ok@dest.test', 'ok', code=250)
    t.check(p.elapsed < 5, '%s: another client is served meanwhile (%.2fs)' % (what, p.elapsed), p)


def garbage(t, s):
    c = Client(s.port)
    t.eq(c.reply()[0], 220, 'garbage: greeting')
    rnd = random.Random(7)
    junk = bytes(rnd.randrange(256) for _ in range(4000)).replace(b'\n', b' ')
    # Lines of random bytes, each ending in CRLF: 500s, then 421 and a close.
    c.send(b''.join(junk[i:i + 100] + b'\r\n' for i in range(0, 4000, 100)))
    codes = []
    try:
        while True:
            codes.append(c.reply()[0])
    except (EOFError, ConnectionResetError, socket.timeout):
        pass
    t.check(codes and codes[-1] == 421 and set(codes[:-1]) <= {500, 501, 502, 503}
            and len(codes) <= 21, 'garbage: 500s, then 421 after 20 errors (%s)' % codes[-3:], None, codes)
    t.check(c.closed(), 'garbage: the sink closed the connection')
    c.close()
    # Random bytes without line ends, then the client goes away.
    c = Client(s.port)
    c.reply()
    c.send(bytes(rnd.randrange(256) for _ in range(100000)).replace(b'\n', b'x'))
    c.close()
    served(t, s, 'garbage')


def long_line(t, s):
    rss0 = s.rss_kb()
    c = Client(s.port, timeout=60)
    c.reply()
    c.send(b'EHLO client.test\r\n')
    c.reply()
    chunk = b'A' * 65536
    for _ in range(160):   # 10 MiB
        c.send(chunk)
    served(t, s, '10 MB line')
    c.send(b'\r\nNOOP\r\n')
    r1, r2 = c.reply(), c.reply()
    t.eq((r1[0], r1[1][0][:9], r2[0]), (500, b'500 5.5.2', 250), '10 MB line: 500 5.5.2, then NOOP 250')
    rss1 = s.rss_kb()
    t.check(rss1 - rss0 < 4096, '10 MB line: RSS grew %d KB (less than 4 MB)' % (rss1 - rss0))
    c.close()


def size_limit(t, s):
    c = Client(s.port, timeout=60)
    c.reply()
    c.send(b'EHLO c\r\n')
    t.eq(c.reply()[0], 250, 'size: EHLO')
    body = (b'x' * 998 + b'\r\n') * 300   # 300 KB against --size 100k
    c.send(b'MAIL FROM:<a@src.test>\r\nRCPT TO:<b@dest.test>\r\nDATA\r\n')
    t.eq([c.reply()[0] for _ in range(3)], [250, 250, 354], 'size: MAIL, RCPT, DATA')
    c.send(body + b'.\r\n')
    code, lines = c.reply()
    t.eq((code, lines[0][:9]), (552, b'552 5.3.4'), 'size: a 300 KB DATA body gets 552 5.3.4')
    c.send(b'MAIL FROM:<a@src.test>\r\nRCPT TO:<b@dest.test>\r\nBDAT %d LAST\r\n' % len(body) + body)
    t.eq([c.reply()[0] for _ in range(3)], [250, 250, 552], 'size: a 300 KB BDAT chunk gets 552')
    c.send(b'MAIL FROM:<a@src.test> SIZE=300000\r\n')
    t.eq(c.reply()[0], 552, 'size: SIZE=300000 declared gets 552')
    c.send(b'NOOP\r\n')
    t.eq(c.reply()[0], 250, 'size: the session goes on')
    c.close()


def out_of_order(t, s):
    c = Client(s.port)
    c.reply()
    steps = [
        (b'RCPT TO:<b@dest.test>\r\n', 503),
        (b'MAIL FROM:<a@src.test>\r\n', 503),   # before EHLO
        (b'EHLO c\r\n', 250),
        (b'DATA\r\n', 503),
        (b'BDAT 5\r\n12345', 503),             # the chunk is read all the same
        (b'NOOP\r\n', 250),
        (b'MAIL FROM:<a@src.test>\r\n', 250),
        (b'MAIL FROM:<a@src.test>\r\n', 503),
        (b'DATA\r\n', 503),
        (b'STARTTLS extra\r\n', 501),
        (b'RSET\r\n', 250),
        (b'QUIT\r\n', 221),
    ]
    got = []
    for data, _ in steps:
        c.send(data)
        got.append(c.reply()[0])
    t.eq(got, [w for _, w in steps], 'out of order: 503s where they belong')
    t.check(c.closed(), 'out of order: closed after QUIT')
    c.close()


def half_tls(t, s, implicit):
    what = 'implicit TLS' if implicit else 'STARTTLS'
    c = Client(s.port)
    if not implicit:
        c.reply()
        c.send(b'EHLO c\r\nSTARTTLS\r\n')
        t.eq([c.reply()[0], c.reply()[0]], [250, 220], '%s halfway: EHLO, STARTTLS 220' % what)
    # The first bytes of a ClientHello, and then nothing.
    c.send(bytes.fromhex('160301020001'))
    if implicit:
        p = t.probe(s.url('smtps'), '--to', 'ok@dest.test', '--ca', s.cert, '--timeout', '10')
        t.rcpt(p, 'ok@dest.test', 'ok', code=250)
    else:
        served(t, s, '%s halfway' % what)
    c.close()


def idle_connections(t, s):
    rss0 = s.rss_kb()
    conns = []
    t0 = time.monotonic()
    try:
        for i in range(IDLE_CONNS):
            conns.append(socket.create_connection(('127.0.0.1', s.port), timeout=30))
        greeted = 0
        for so in conns:
            if so.recv(512).startswith(b'220'):
                greeted += 1
    except OSError as e:
        t.check(False, 'idle: opening %d connections: %s (after %d)' % (IDLE_CONNS, e, len(conns)))
        greeted = 0
    t.eq(greeted, IDLE_CONNS, 'idle: %d connections greeted (%.1fs)' % (IDLE_CONNS, time.monotonic() - t0))
    served(t, s, '%d idle connections' % IDLE_CONNS)
    rss1 = s.rss_kb()
    per = (rss1 - rss0) * 1024.0 / max(len(conns), 1)
    print('# idle: VmRSS %d KB -> %d KB, %.0f bytes a connection' % (rss0, rss1, per))
    t.check(per < 8192, 'idle: %.0f bytes of RSS a connection (less than 8 KB)' % per)
    st = s.stats()
    t.check(st.get('sessions_open', 0) >= IDLE_CONNS, 'idle: the sink counts %s open sessions' % st.get('sessions_open'))
    for so in conns:
        so.close()


def idle_timeout(t):
    s = t.start(VolleySink(t.volley, t.peerdir('idle-timeout'), ['--idle-timeout', '1']))
    c = Client(s.port)
    c.reply()
    t0 = time.monotonic()
    code, lines = c.reply()
    took = time.monotonic() - t0
    t.check(code == 421 and lines[0].startswith(b'421 4.4.2') and 0.8 <= took <= 4,
            '--idle-timeout 1: 421 4.4.2 after %.2fs' % took, None, lines)
    t.check(c.closed(), '--idle-timeout 1: then closed')
    c.close()
    # A handshake that stops halfway is cut as well.
    c = Client(s.port)
    c.reply()
    c.send(b'EHLO c\r\nSTARTTLS\r\n')
    c.reply()
    c.reply()
    c.send(bytes.fromhex('160301020001'))
    t.check(c.closed(timeout=5), '--idle-timeout 1: a stalled TLS handshake is closed')
    c.close()


def main(t):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = IDLE_CONNS * 2 + 200   # ours and the sink's (it inherits the limit)
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard) if hard != resource.RLIM_INFINITY else want, hard))
        except (ValueError, OSError) as e:
            print('# cannot raise RLIMIT_NOFILE: %s' % e)
    s = t.start(VolleySink(t.volley, t.peerdir('bad'), ['--size', '100k']))
    garbage(t, s)
    long_line(t, s)
    size_limit(t, s)
    out_of_order(t, s)
    half_tls(t, s, implicit=False)
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= want:
        idle_connections(t, s)
    else:
        t.check(False, 'idle: RLIMIT_NOFILE could not be raised to %d' % want)
    t.check(s.alive(), 'the sink is still running after all of it')
    st = s.stats()
    t.check(st.get('replies', {}).get('500', 0) >= 20, 'stats: the 500s are counted (%s)' % st.get('replies'))
    s2 = t.start(VolleySink(t.volley, t.peerdir('bad-implicit'), ['--implicit-tls']))
    half_tls(t, s2, implicit=True)
    idle_timeout(t)
    stop_and_check(t)


if __name__ == '__main__':
    vtest.run_guarded(vtest.Test('sink_badinput'), main)
