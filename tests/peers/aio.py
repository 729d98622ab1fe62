#!/usr/bin/python3
"""Starter for the aiosmtpd peer (tests/peers/aio_server.py).

Python:
    from aio import AioSmtpd
    with AioSmtpd(password_file=pw, cert=c, key=k) as s:   # or no_tls=True
        s.port, s.pid, s.messages(), s.sessions(), s.violations(), s.auth_log()

Shell:
    tests/peers/aio.py [--dir D] [--port-file F] [--cert C --key K | --no-tls]
                       [--password-file F] [--auth-plaintext-ok]
                       [--implicit-tls] [--lmtp] [--unix PATH]
    prints "port=N pid=P dir=D"; stop with "kill P" or "tests/peers/aio.py stop P".
    Without --cert/--key it uses tests/data/server.{pem,key}, or a generated
    throwaway CA and certificate under D/certs.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peerlib  # noqa: E402

SERVER = os.path.join(peerlib.HERE, 'aio_server.py')


def available():
    """(ok, why)"""
    if not os.access(peerlib.SYS_PYTHON, os.X_OK):
        return False, '%s not found' % peerlib.SYS_PYTHON
    import subprocess
    r = subprocess.run([peerlib.SYS_PYTHON, '-c', 'import aiosmtpd'],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
    if r.returncode != 0:
        return False, 'python3-aiosmtpd is not installed for %s' % peerlib.SYS_PYTHON
    return True, ''


class AioSmtpd(peerlib.RecordingPeer):
    name = 'aiosmtpd'

    def __init__(self, workdir=None, cert=None, key=None, no_tls=False,
                 password_file=None, user=peerlib.TEST_USER, auth_plaintext_ok=False,
                 implicit_tls=False, lmtp=False, unix=None,
                 lifetime=peerlib.DEFAULT_LIFETIME):
        super().__init__(workdir, lifetime)
        self.implicit_tls, self.lmtp, self.unix = implicit_tls, lmtp, unix
        if not no_tls and not (cert and key):
            _, cert, key = peerlib.test_certs(self.dir)
        self.cert, self.key, self.no_tls = cert, key, no_tls
        self.password_file = password_file
        self.user = user
        self.auth_plaintext_ok = auth_plaintext_ok

    def _launch(self):
        portfile = os.path.join(self.dir, 'port')
        if os.path.exists(portfile):
            os.unlink(portfile)
        argv = [peerlib.SYS_PYTHON, SERVER, '--dir', self.dir,
                '--lifetime', str(self.lifetime), '--user', self.user]
        if self.no_tls:
            argv.append('--no-tls')
        else:
            argv += ['--cert', self.cert, '--key', self.key]
        if self.password_file:
            argv += ['--password-file', self.password_file]
        if self.auth_plaintext_ok:
            argv.append('--auth-plaintext-ok')
        if self.implicit_tls:
            argv.append('--implicit-tls')
        if self.lmtp:
            argv.append('--lmtp')
        if self.unix:
            argv += ['--unix', self.unix]
        proc = peerlib.spawn(argv, self.log)
        return proc, peerlib.read_port_file(portfile, proc=proc)

    def _ready(self):
        # The server writes its port file once it listens; a greeting check
        # would need TLS (implicit TLS) or a TCP port (Unix socket).
        if self.implicit_tls or self.unix:
            return peerlib.pid_alive(self.pid)
        return super()._ready()

    def violations(self):
        with open(os.path.join(self.dir, 'violations')) as f:
            return int(f.read().strip() or 0)


def _make(args, extra, workdir):
    return AioSmtpd(workdir, cert=args.cert, key=args.key, no_tls=args.no_tls,
                    password_file=args.password_file, user=args.user,
                    auth_plaintext_ok=args.auth_plaintext_ok,
                    implicit_tls=args.implicit_tls, lmtp=args.lmtp, unix=args.unix,
                    lifetime=args.lifetime)


def _args(ap):
    ap.add_argument('--cert')
    ap.add_argument('--key')
    ap.add_argument('--no-tls', action='store_true')
    ap.add_argument('--password-file')
    ap.add_argument('--user', default=peerlib.TEST_USER)
    ap.add_argument('--auth-plaintext-ok', action='store_true')
    ap.add_argument('--implicit-tls', action='store_true')
    ap.add_argument('--lmtp', action='store_true')
    ap.add_argument('--unix')


if __name__ == '__main__':
    sys.exit(peerlib.main_for(_make, _args, __doc__))
