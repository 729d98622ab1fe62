"""Shared helpers for the loopback SMTP peers used by volley's integration tests.

Every peer is a plain foreground process listening on 127.0.0.1 only. A starter
launches it in its own session (so a shell starter can exit and leave it running),
waits until the port accepts connections, and reports the port and the PID it
started. Stopping means signalling exactly that PID, never a name.

Usable from Python (import the peer module, use the class as a context manager)
and from the shell (each peer module is a script; see --help).
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DATA = os.path.join(REPO, 'tests', 'data')
# Debian's interpreter: aiosmtpd is a Debian package, not on any pyenv python.
SYS_PYTHON = '/usr/bin/python3'
HOST = '127.0.0.1'
DEFAULT_LIFETIME = 900   # seconds a peer may live at most, whatever happens
TEST_USER = 'alice@volley.test'


def free_port():
    """A port that was free a moment ago (bind to port 0 and release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_port(port, pid=None, timeout=15.0, greeting=True):
    """Wait until 127.0.0.1:port accepts and (optionally) sends a 220 greeting.

    Returns True when ready, False when the process died or the time ran out.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pid is not None and not pid_alive(pid):
            return False
        try:
            with socket.create_connection((HOST, port), timeout=2) as s:
                if not greeting:
                    return True
                s.settimeout(5)
                line = s.recv(512)
                if line.startswith(b'220'):
                    try:
                        s.sendall(b'QUIT\r\n')
                        s.recv(512)
                    except OSError:
                        pass
                    return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def pid_alive(pid):
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie that is not our child still answers kill(0): look at its state.
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError:
        return False


def stop_pid(pid, timeout=10.0):
    """SIGTERM exactly this PID, then SIGKILL it if it has not gone in time."""
    if pid is None or pid <= 1:
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    for _ in range(100):
        if not pid_alive(pid):
            return
        time.sleep(0.05)


def spawn(argv, logfile, env=None, cwd=None):
    """Start argv in its own session, stdout+stderr to logfile. Returns Popen."""
    log = open(logfile, 'ab')
    try:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                start_new_session=True)
    finally:
        log.close()


def read_port_file(path, timeout=15.0, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path) as f:
                txt = f.read().strip()
            if txt:
                return int(txt.split()[0])
        except (OSError, ValueError):
            pass
        if proc is not None and proc.poll() is not None:
            return None
        time.sleep(0.05)
    return None


def run(argv, **kw):
    kw.setdefault('timeout', 60)
    return subprocess.run(argv, check=True, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, **kw)


def test_certs(workdir):
    """(ca, cert, key) for the test servers.

    tests/data/{ca.pem,server.pem,server.key} when the repository has them,
    otherwise a throwaway CA and a server certificate for CN=localhost with
    SANs localhost and 127.0.0.1, generated with openssl under workdir.
    """
    ca, cert, key = (os.path.join(DATA, n) for n in ('ca.pem', 'server.pem', 'server.key'))
    if all(os.path.isfile(p) for p in (ca, cert, key)):
        return ca, cert, key
    d = os.path.join(workdir, 'certs')
    ca, cert, key = (os.path.join(d, n) for n in ('ca.pem', 'server.pem', 'server.key'))
    if all(os.path.isfile(p) for p in (ca, cert, key)):
        return ca, cert, key
    os.makedirs(d, exist_ok=True)
    cakey = os.path.join(d, 'ca.key')
    csr = os.path.join(d, 'server.csr')
    ext = os.path.join(d, 'ext.cnf')
    with open(ext, 'w') as f:
        f.write('subjectAltName=DNS:localhost,IP:127.0.0.1\n'
                'basicConstraints=CA:FALSE\n'
                'keyUsage=digitalSignature,keyEncipherment\n'
                'extendedKeyUsage=serverAuth\n')
    run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', cakey,
         '-out', ca, '-days', '3650', '-subj', '/CN=volley test CA',
         '-addext', 'basicConstraints=critical,CA:TRUE',
         '-addext', 'keyUsage=critical,keyCertSign,cRLSign'])
    run(['openssl', 'req', '-newkey', 'rsa:2048', '-nodes', '-keyout', key,
         '-out', csr, '-subj', '/CN=localhost'])
    run(['openssl', 'x509', '-req', '-in', csr, '-CA', ca, '-CAkey', cakey,
         '-CAcreateserial', '-out', cert, '-days', '3650', '-extfile', ext])
    os.chmod(key, 0o644)
    return ca, cert, key


def write_password(workdir, password='correct horse battery staple', name='password'):
    path = os.path.join(workdir, name)
    with open(path, 'w') as f:
        f.write(password + '\n')
    return path


def read_messages(msgdir):
    """Messages saved by the aiosmtpd and nodemailer peers: a list of dicts with
    mail_from, rcpt_to (list), data (str), tls, auth_user, session."""
    out = []
    if not os.path.isdir(msgdir):
        return out
    for name in sorted(os.listdir(msgdir)):
        if name.endswith('.json'):
            with open(os.path.join(msgdir, name)) as f:
                out.append(json.load(f))
    return out


def read_sessions(path):
    """JSON-lines session records written by the Python and node peers."""
    out = []
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    out.append(json.loads(line))
    except FileNotFoundError:
        pass
    return out


class Peer:
    """Base class: subclasses implement _launch() -> (Popen, port)."""

    name = 'peer'

    def __init__(self, workdir=None, lifetime=DEFAULT_LIFETIME):
        self.own_dir = workdir is None
        self.dir = workdir or tempfile.mkdtemp(prefix='volley-%s-' % self.name)
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o755)   # peers that drop privileges write below it
        self.lifetime = lifetime
        self.proc = None
        self.pid = None
        self.port = None
        self.log = os.path.join(self.dir, self.name + '.log')

    def start(self, attempts=5):
        last = None
        for _ in range(attempts):
            try:
                self.proc, self.port = self._launch()
            except Exception as e:  # e.g. port taken between probe and bind
                last = e
                continue
            self.pid = self.proc.pid
            if self.port is not None and self._ready():
                return self
            last = RuntimeError('%s did not come up (see %s)' % (self.name, self.log))
            self.stop()
        raise last

    def _ready(self):
        """True once the peer serves (by default: it greets on its port)."""
        return bool(self.port) and wait_port(self.port, self.pid)

    def stop(self):
        if self.pid is not None:
            stop_pid(self.pid)
            if self.proc is not None:
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
        self.pid = None

    def cleanup(self):
        self.stop()
        if self.own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def logtext(self):
        try:
            with open(self.log, errors='replace') as f:
                return f.read()
        except OSError:
            return ''

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()

    def url(self, scheme='smtp'):
        return '%s://%s:%d' % (scheme, HOST, self.port)


class RecordingPeer(Peer):
    """A peer run by our own server script, which records in its directory:
    messages/*.json, sessions.jsonl and auth.log."""

    def messages(self):
        return read_messages(os.path.join(self.dir, 'messages'))

    def sessions(self):
        return read_sessions(os.path.join(self.dir, 'sessions.jsonl'))

    def auth_log(self):
        try:
            with open(os.path.join(self.dir, 'auth.log')) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []


def lifetime_wrap(argv, lifetime):
    """Run argv under coreutils timeout so the peer ends by itself. SIGTERM sent
    to the timeout process is passed on to the peer."""
    return ['timeout', '--kill-after=5', str(int(lifetime))] + argv


def main_for(make_peer, add_args=None, description=''):
    """Shell entry point shared by the peer modules.

    start (default): start the peer in the background, print "port=N pid=P dir=D"
    and write "PORT PID" to --port-file; exits 0 and leaves the peer running.
    --foreground: start it, print the same, and wait until it ends or is
    interrupted, then stop it.  stop PID: stop exactly that PID.
    """
    import argparse
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument('action', nargs='?', default='start', choices=['start', 'stop'])
    ap.add_argument('pid', nargs='?', type=int, help='for stop: the PID to stop')
    ap.add_argument('--dir', help='working directory (messages, logs); created if missing')
    ap.add_argument('--port-file', help='write "PORT PID" here')
    ap.add_argument('--lifetime', type=int, default=DEFAULT_LIFETIME,
                    help='seconds after which the peer ends by itself')
    ap.add_argument('--foreground', action='store_true')
    if add_args:
        add_args(ap)
    args, extra = ap.parse_known_args()
    if args.action == 'stop':
        if not args.pid:
            ap.error('stop needs a PID')
        stop_pid(args.pid)
        return 0
    workdir = args.dir or tempfile.mkdtemp(prefix='volley-peer-')
    os.makedirs(workdir, exist_ok=True)
    peer = make_peer(args, extra, os.path.abspath(workdir))
    peer.start()
    line = 'port=%d pid=%d dir=%s' % (peer.port, peer.pid, peer.dir)
    if args.port_file:
        with open(args.port_file + '.tmp', 'w') as f:
            f.write('%d %d\n' % (peer.port, peer.pid))
        os.replace(args.port_file + '.tmp', args.port_file)
    print(line, flush=True)
    if args.foreground:
        try:
            while pid_alive(peer.pid):
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            peer.stop()
    return 0


if __name__ == '__main__':
    # "peerlib.py stop PID" for convenience; "peerlib.py certs DIR" prints paths.
    if len(sys.argv) == 3 and sys.argv[1] == 'stop':
        stop_pid(int(sys.argv[2]))
    elif len(sys.argv) == 3 and sys.argv[1] == 'certs':
        print(' '.join(test_certs(sys.argv[2])))
    else:
        print('usage: peerlib.py stop PID | certs DIR', file=sys.stderr)
        sys.exit(1)
