"""Helpers for volley's integration tests against real SMTP servers on loopback.

Each test program is standalone: it exits 0 when every check passed, 1 when one
failed, 77 when the peer cannot run on this machine. The volley binary comes from
the environment variable VOLLEY.
"""

import base64
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'peers'))
import peerlib  # noqa: E402

SKIP = 77
PROBE_TIMEOUT = 60      # seconds the harness waits for one volley run
VOLLEY_TIMEOUT = '20'   # what volley itself is told (--timeout)
PASSWORD = 'correct-horse-battery-staple'


def skip(why):
    print('SKIP: %s' % why, flush=True)
    sys.exit(SKIP)


def binary_from_env(var, what):
    """The executable named by the environment variable var (meson sets
    it); a failure when it is missing."""
    path = os.environ.get(var)
    if not path:
        print('FAIL: the environment variable %s (path to %s) is not set' % (var, what))
        sys.exit(1)
    if not os.access(path, os.X_OK):
        print('FAIL: %s=%s is not an executable file' % (var, path))
        sys.exit(1)
    return path


def volley_binary():
    return binary_from_env('VOLLEY', 'the built volley')


class Probe:
    """One run of `volley probe`, with its output parsed line by line."""

    def __init__(self, argv, rc, out, err, elapsed):
        self.argv, self.rc, self.out, self.err, self.elapsed = argv, rc, out, err, elapsed
        self.connected = None
        self.greeting = None
        self.caps = {}
        self.tls = None
        self.auth = []
        self.cmds = []
        self.rcpts = {}
        self.rcpt_order = []
        self.message = None
        self.unparsed = []
        for line in out.splitlines():
            self._parse(line)

    @staticmethod
    def _fields(rest):
        """key=value fields, the last one being text= which takes the rest."""
        d = {}
        head, sep, text = rest.partition(' text=')
        if not sep and rest.startswith('text='):
            head, text, sep = '', rest[5:], True
        for tok in head.split():
            k, _, v = tok.partition('=')
            d[k] = v
        d['text'] = text if sep else None
        return d

    def _parse(self, line):
        word, _, rest = line.partition(' ')
        if word == 'connected':
            self.connected = rest
        elif word == 'greeting':
            code, _, text = rest.partition(' ')
            self.greeting = (code, text)
        elif word == 'capability':
            kw, _, params = rest.partition(' ')
            self.caps[kw.upper()] = params
        elif word == 'tls':
            self.tls = rest
        elif word == 'auth':
            self.auth.append(rest)
        elif word == 'cmd':
            # cmd "CMD" CODE ENHANCED TEXT
            try:
                parts = shlex.split(rest)
            except ValueError:
                parts = rest.split()
            self.cmds.append(parts)
        elif word.startswith('rcpt=<'):
            addr = word[6:-1] if word.endswith('>') else word[6:]
            f = self._fields(rest)
            self.rcpts[addr] = f
            self.rcpt_order.append(addr)
        elif word == 'message':
            self.message = self._fields(rest)
        elif line.strip():
            self.unparsed.append(line)

    def describe(self):
        return 'argv: %s\nexit: %s (%.2fs)\n--- stdout\n%s--- stderr\n%s---' % (
            ' '.join(shlex.quote(a) for a in self.argv), self.rc, self.elapsed,
            self.out, self.err[-4000:])


class Test:
    """Collects checks; finish() prints the summary and exits."""

    def __init__(self, name):
        self.name = name
        self.volley = volley_binary()
        self.failures = 0
        self.passes = 0
        self.work = tempfile.mkdtemp(prefix='volley-it-%s-' % name)
        os.chmod(self.work, 0o755)   # smtp-sink (nobody) and Exim (Debian-exim) write below it
        self.peers = []
        self._n = 0
        self._described = set()
        self._keep = []

    # --- running volley -------------------------------------------------
    def probe(self, url, *args, timeout=PROBE_TIMEOUT):
        argv = [self.volley, 'probe', url] + [str(a) for a in args]
        if '--timeout' not in args:
            argv += ['--timeout', VOLLEY_TIMEOUT]
        t0 = time.monotonic()
        try:
            r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=timeout)
            rc, out, err = r.returncode, r.stdout, r.stderr
        except subprocess.TimeoutExpired as e:
            rc, out, err = 'timeout', e.stdout or b'', (e.stderr or b'') + b'\n[harness: killed after %ds]' % timeout
        p = Probe(argv, rc, out.decode('utf-8', 'replace'), err.decode('utf-8', 'replace'),
                  time.monotonic() - t0)
        print('# ran: %s -> exit %s' % (' '.join(shlex.quote(a) for a in argv[1:]), rc), flush=True)
        return p

    def bench(self, url, *args, timeout=PROBE_TIMEOUT):
        """Runs volley bench with --json: returns (exit status, the JSON
        object or None, the output for a failure message)."""
        argv = [self.volley, 'bench', url, '--json'] + [str(a) for a in args]
        try:
            r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=timeout)
            rc, out, err = r.returncode, r.stdout.decode('utf-8', 'replace'), \
                r.stderr.decode('utf-8', 'replace')
        except subprocess.TimeoutExpired:
            rc, out, err = 'timeout', '', '[harness: killed after %ds]' % timeout
        print('# ran: %s -> exit %s' % (' '.join(shlex.quote(a) for a in argv[1:]), rc), flush=True)
        try:
            result = json.loads(out)
        except ValueError:
            result = None
        return rc, result, 'argv: %s\nexit: %s\n--- stdout\n%s--- stderr\n%s' % (
            ' '.join(shlex.quote(a) for a in argv), rc, out, err[-3000:])

    # --- files ----------------------------------------------------------
    def password_file(self, password=PASSWORD, name='password'):
        return peerlib.write_password(self.work, password, name)

    def certs(self):
        return peerlib.test_certs(self.work)

    def message_file(self, size=0, extra_headers=()):
        """A message with a unique token, lines that need dot-stuffing, and
        optionally padded to about `size` bytes. Returns (path, token, body)."""
        self._n += 1
        token = 'volley-it-%s' % uuid.uuid4().hex
        lines = ['From: Sender <sender@volley.test>',
                 'To: Someone <someone@dest.test>',
                 'Subject: integration test %s' % token,
                 'Message-ID: <%s@volley.test>' % token,
                 'Date: Mon, 1 Jan 2024 00:00:00 +0000',
                 'MIME-Version: 1.0',
                 'Content-Type: text/plain; charset=us-ascii']
        lines += list(extra_headers)
        lines += ['', 'Hello from the integration test.', token,
                  '.a line that starts with a dot', '..two dots', '.', 'after the lone dot']
        body = '\r\n'.join(lines) + '\r\n'
        i = 0
        while len(body) < size:
            body += 'padding line %06d %s\r\n' % (i, 'x' * 60)
            i += 1
        body += 'end %s\r\n' % token
        path = os.path.join(self.work, 'msg%d.eml' % self._n)
        with open(path, 'wb') as f:
            f.write(body.encode('ascii'))
        return path, token, body

    # --- peers ----------------------------------------------------------
    def start(self, peer):
        """Start a peer (a peerlib.Peer) whose directory lives under our work dir."""
        self.peers.append(peer)
        try:
            peer.start()
        except Exception as e:
            print('FAIL: could not start %s: %s\n%s' % (peer.name, e, peer.logtext()[-3000:]))
            self.finish(force_fail=True)
        print('# started %s on 127.0.0.1:%d pid %d' % (peer.name, peer.port, peer.pid), flush=True)
        return peer

    def peerdir(self, name):
        d = os.path.join(self.work, name)
        os.makedirs(d, exist_ok=True)
        return d

    # --- checks ---------------------------------------------------------
    def check(self, cond, what, probe=None, detail=None):
        if cond:
            self.passes += 1
            print('ok - %s' % what, flush=True)
        else:
            self.failures += 1
            print('not ok - %s' % what, flush=True)
            if detail:
                print('  # %s' % str(detail).replace('\n', '\n  # '))
            if probe is not None and id(probe) not in self._described:
                self._described.add(id(probe))
                self._keep.append(probe)
                print('  # ' + probe.describe().replace('\n', '\n  # '))
            elif probe is not None:
                print('  # (the output of this volley run is shown above)')
        return cond

    def eq(self, got, want, what, probe=None):
        return self.check(got == want, '%s (want %r, got %r)' % (what, want, got), probe)

    def rcpt(self, p, addr, status, code=None, enhanced=None, phase=None, text_has=None,
             cls=None, action=None, retry=None):
        """Check the outcome volley reported for one recipient (cls, action and
        retry: what the reply classifier made of a refusal)."""
        r = p.rcpts.get(addr)
        if not self.check(r is not None, 'volley reports recipient %s' % addr, p):
            return
        bad = []
        if r.get('status') != status:
            bad.append('status %r != %r' % (r.get('status'), status))
        if code is not None:
            c = r.get('code', '')
            if isinstance(code, str) and len(code) == 1:
                if not c.startswith(code):
                    bad.append('code %r not %sxx' % (c, code))
            elif c != str(code):
                bad.append('code %r != %r' % (c, str(code)))
        if enhanced is not None and r.get('enhanced') != enhanced:
            bad.append('enhanced %r != %r' % (r.get('enhanced'), enhanced))
        if phase is not None and r.get('phase') != phase:
            bad.append('phase %r != %r' % (r.get('phase'), phase))
        if text_has is not None and text_has.lower() not in (r.get('text') or '').lower():
            bad.append('text %r lacks %r' % (r.get('text'), text_has))
        for key, want in (('class', cls), ('action', action), ('retry', retry)):
            if want is not None and r.get(key) != want:
                bad.append('%s %r != %r' % (key, r.get(key), want))
        self.check(not bad, 'recipient %s: %s%s' % (
            addr, status, (' ' + str(code)) if code else ''), p, '; '.join(bad))

    def all_rcpts_reported(self, p, addrs):
        missing = [a for a in addrs if a not in p.rcpts]
        extra = [a for a in p.rcpts if a not in addrs]
        self.check(not missing and not extra,
                   'volley reports exactly the %d recipients' % len(addrs), p,
                   'missing %s, unexpected %s' % (missing, extra))

    def no_secret(self, p, secrets, what):
        text = p.out + p.err
        leaked = [s for s in secrets if s and s in text]
        self.check(not leaked, what, p if leaked else None, 'leaked: %r' % leaked)

    def finish(self, force_fail=False):
        for peer in reversed(self.peers):
            try:
                peer.stop()
            except Exception as e:  # keep going: stop the others
                print('# stopping %s: %s' % (peer.name, e))
        if os.environ.get('VOLLEY_KEEP_WORK'):
            print('# work dir kept: %s' % self.work)
        else:
            shutil.rmtree(self.work, ignore_errors=True)
        failed = self.failures or force_fail
        print('%s: %d passed, %d failed' % (self.name, self.passes, self.failures), flush=True)
        sys.exit(1 if failed else 0)


def b64(s):
    return base64.b64encode(s.encode()).decode()


def normalise(text):
    """CRLF -> LF, for comparing what a server stored with what was sent."""
    return text.replace('\r\n', '\n')


def run_guarded(test, body, limit=540):
    """Run body(test); any exception is a failure, the peers are always stopped.
    The whole program gives up after `limit` seconds, and a SIGTERM (meson's
    timeout) also stops the peers first."""
    import signal
    import traceback

    def on_alarm(signum, frame):
        raise TimeoutError('test program ran out of time (%ds)' % limit)

    def on_term(signum, frame):
        raise KeyboardInterrupt('terminated')
    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_term)
    signal.alarm(limit)
    try:
        body(test)
    except SystemExit:
        raise
    except BaseException:
        traceback.print_exc()
        test.failures += 1
    test.finish()
