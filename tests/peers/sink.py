#!/usr/bin/python3
"""Postfix's smtp-sink on 127.0.0.1:PORT (a free port picked here).

Python:
    from sink import SmtpSink
    with SmtpSink(faults=['-f', 'RCPT'], dump=True) as s:
        s.port, s.pid, s.messages()

Shell:
    tests/peers/sink.py [--dir D] [--port-file F] [--dump] [--backlog N] [-- SINK_FLAGS...]
    prints "port=N pid=P dir=D"; stop with "kill P" or "tests/peers/sink.py stop P".
    Anything after "--" (or unknown flags such as -f RCPT) is passed to smtp-sink.

With dump=True each transaction is written by smtp-sink under DIR/dump/ (as user
nobody); messages() parses them into dicts with mail_from, rcpt_to, data.
"""

import os
import re
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peerlib  # noqa: E402

SINK = shutil.which('smtp-sink') or '/usr/sbin/smtp-sink'


def available():
    return os.access(SINK, os.X_OK)


class SmtpSink(peerlib.Peer):
    name = 'smtp-sink'

    def __init__(self, workdir=None, faults=(), dump=False, backlog=1024, unix=None,
                 lifetime=peerlib.DEFAULT_LIFETIME):
        super().__init__(workdir, lifetime)
        self.unix = unix   # listen on this Unix socket instead of TCP
        self.faults = list(faults)
        self.dump = dump
        self.backlog = backlog
        self.dumpdir = os.path.join(self.dir, 'dump')

    def _launch(self):
        port = 0 if self.unix else peerlib.free_port()
        argv = [SINK, '-u', 'nobody']
        if self.dump:
            os.makedirs(self.dumpdir, exist_ok=True)
            os.chmod(self.dir, 0o755)
            shutil.chown(self.dumpdir, 'nobody')
            argv += ['-d', os.path.join(self.dumpdir, '%H%M%S.')]
        where = 'unix:' + self.unix if self.unix else '%s:%d' % (peerlib.HOST, port)
        argv += self.faults + [where, str(self.backlog)]
        return peerlib.spawn(peerlib.lifetime_wrap(argv, self.lifetime), self.log), port

    def _ready(self):
        if not self.unix:
            return super()._ready()
        # smtp-sink creates the socket once it listens.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and peerlib.pid_alive(self.pid):
            if os.path.exists(self.unix):
                return True
            time.sleep(0.05)
        return False

    def settled_messages(self, timeout=3.0):
        """messages() once no transaction is left in progress. smtp-sink
        keeps a capture file open for each transaction in progress and
        removes it when the transaction ends without a message, which can
        come a moment after the client has had its last reply: a test that
        expects nothing waits that moment out before it counts."""
        deadline = time.monotonic() + timeout
        while True:
            out = self.messages()
            if not out or time.monotonic() >= deadline:
                return out
            time.sleep(0.05)

    def messages(self):
        """Parse smtp-sink's dump files: [{mail_from, rcpt_to, helo, data}]."""
        out = []
        if not os.path.isdir(self.dumpdir):
            return out
        for name in sorted(os.listdir(self.dumpdir)):
            with open(os.path.join(self.dumpdir, name), errors='replace') as f:
                text = f.read()
            out.append(parse_dump(text))
        return out


def _addr(args):
    m = re.match(r'\s*(?:(?:FROM|TO)\s*:)?\s*<([^>]*)>', args, re.I)
    return m.group(1) if m else args.strip().split(' ')[0]


def parse_dump(text):
    msg = {'mail_from': None, 'rcpt_to': [], 'helo': None, 'data': ''}
    lines = text.split('\n')
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith('X-Helo-Args: '):
            msg['helo'] = line[13:]
        elif line.startswith('X-Mail-Args: '):
            msg['mail_from'] = _addr(line[13:])
        elif line.startswith('X-Rcpt-Args: '):
            msg['rcpt_to'].append(_addr(line[13:]))
        elif line.startswith('Received: '):
            # three-line Received: header ends smtp-sink's own headers
            i += 3
            break
        i += 1
    msg['data'] = '\n'.join(lines[i:])
    return msg


def _make(args, extra, workdir):
    flags = [a for a in extra if a != '--']
    return SmtpSink(workdir, faults=flags, dump=args.dump, backlog=args.backlog,
                    lifetime=args.lifetime)


def _args(ap):
    ap.add_argument('--dump', action='store_true', help='dump transactions under DIR/dump')
    ap.add_argument('--backlog', type=int, default=1024)


if __name__ == '__main__':
    sys.exit(peerlib.main_for(_make, _args, __doc__))
