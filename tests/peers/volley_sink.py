#!/usr/bin/python3
"""volley's own sink (`volley sink`) on 127.0.0.1, port 0: the port is read
from the "listening 127.0.0.1:PORT" line it prints when ready.

Python:
    from volley_sink import VolleySink
    with VolleySink(volley, args=['--rules', path]) as s:
        s.port, s.pid, s.cert (the generated certificate), s.stats(), s.maildir_messages()

Shell:
    tests/peers/volley_sink.py --volley build/volley [--dir D] [--port-file F] [--sink-args '--rules F ...']
    prints "port=N pid=P dir=D"; stop with "tests/peers/volley_sink.py stop P".
"""

import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peerlib  # noqa: E402


class VolleySink(peerlib.Peer):
    name = 'volley-sink'

    def __init__(self, volley, workdir=None, args=(), lifetime=peerlib.DEFAULT_LIFETIME):
        super().__init__(workdir, lifetime)
        self.volley = volley
        self.args = list(args)
        self.cert = None
        self.stats_path = os.path.join(self.dir, 'stats.json')

    def _launch(self):
        # A fresh log per launch: the port is read from it.
        try:
            os.unlink(self.log)
        except FileNotFoundError:
            pass
        argv = [self.volley, 'sink', '--listen', '%s:0' % peerlib.HOST,
                '--stats-json', self.stats_path] + self.args
        # Under timeout(1), so it ends by itself whatever happens to the
        # harness; SIGUSR1 goes to the sink itself (see sink_pid).
        proc = peerlib.spawn(peerlib.lifetime_wrap(argv, self.lifetime), self.log)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            for line in self.logtext().splitlines():
                if line.startswith('tls-cert '):
                    self.cert = line.split(' ', 1)[1]
                if line.startswith('listening '):
                    return proc, int(line.rsplit(':', 1)[1])
            if proc.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError('volley sink printed no "listening" line: %s' % self.logtext()[-2000:])

    def start(self, attempts=1):
        """Start it and wait until it accepts; with --implicit-tls its
        greeting is inside TLS, so only the port is waited for. The port
        comes from the sink itself, so one attempt is enough."""
        self.proc, self.port = self._launch()
        self.pid = self.proc.pid
        if peerlib.wait_port(self.port, self.pid, greeting='--implicit-tls' not in self.args):
            return self
        self.stop()
        raise RuntimeError('volley sink did not come up (see %s)' % self.log)

    def sink_pid(self):
        """The sink's own PID (the child of the timeout(1) wrapper)."""
        try:
            with open('/proc/%d/task/%d/children' % (self.pid, self.pid)) as f:
                kids = f.read().split()
            return int(kids[0]) if kids else None
        except (OSError, ValueError):
            return None

    def stats(self, timeout=5.0):
        """Ask the sink for its counters (SIGUSR1) and read --stats-json."""
        try:
            before = os.stat(self.stats_path).st_mtime_ns
        except FileNotFoundError:
            before = None
        os.kill(self.sink_pid(), signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                st = os.stat(self.stats_path)
                if before is None or st.st_mtime_ns != before:
                    with open(self.stats_path) as f:
                        return json.load(f)
            except (FileNotFoundError, ValueError):
                pass
            time.sleep(0.02)
        raise RuntimeError('volley sink wrote no stats')

    def rss_kb(self):
        with open('/proc/%d/status' % self.sink_pid()) as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1])
        return None

    def alive(self):
        pid = self.sink_pid()
        return pid is not None and peerlib.pid_alive(pid)


def stop_and_check(t):
    """Stop every volley sink the test started and check that each log is
    free of sanitizer reports (leaks, overflows, undefined behaviour): the
    sink runs in its own process, so its own exit is where they show."""
    for peer in t.peers:
        if not isinstance(peer, VolleySink):
            continue
        peer.stop()
        log = peer.logtext()
        bad = [w for w in ('AddressSanitizer', 'LeakSanitizer', 'runtime error:') if w in log]
        t.check(not bad, 'the sink on port %s ended clean' % peer.port, None, log[-3000:] if bad else None)


def maildir_messages(maildir):
    """Messages in DIR/new: a list of dicts with mail_from, rcpt_to, helo,
    client, tls and data (the message after the X-Volley- lines)."""
    out = []
    new = os.path.join(maildir, 'new')
    if not os.path.isdir(new):
        return out
    for name in sorted(os.listdir(new)):
        with open(os.path.join(new, name), 'rb') as f:
            raw = f.read()
        msg = {'mail_from': None, 'rcpt_to': [], 'helo': None, 'client': None, 'tls': None,
               'data': b'', 'name': name}
        pos = 0
        while raw.startswith(b'X-Volley-', pos):
            end = raw.index(b'\r\n', pos)
            key, _, val = raw[pos:end].decode('utf-8', 'replace').partition(': ')
            if key == 'X-Volley-Mail-From':
                msg['mail_from'] = val[1:-1]
            elif key == 'X-Volley-Rcpt-To':
                msg['rcpt_to'].append(val[1:-1])
            elif key == 'X-Volley-Helo':
                msg['helo'] = val
            elif key == 'X-Volley-Client':
                msg['client'] = val
            elif key == 'X-Volley-TLS':
                msg['tls'] = val
            pos = end + 2
        msg['data'] = raw[pos:]
        out.append(msg)
    return out


if __name__ == '__main__':
    import shlex

    def make(args, extra, workdir):
        if not args.volley:
            raise SystemExit('--volley PATH is needed')
        if extra:
            raise SystemExit('unknown arguments %s (volley sink options go in --sink-args)' % extra)
        return VolleySink(os.path.abspath(args.volley), workdir, shlex.split(args.sink_args or ''),
                          args.lifetime)

    def add(ap):
        ap.add_argument('--volley', help='the volley binary')
        ap.add_argument('--sink-args', help='options for volley sink, as one shell-quoted string')
    sys.exit(peerlib.main_for(make, add, 'volley sink on 127.0.0.1'))
