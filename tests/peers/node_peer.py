#!/usr/bin/python3
"""Starter for the nodemailer smtp-server peer (tests/peers/node/server.js).

Python:
    from node_peer import NodeSmtp
    with NodeSmtp(password_file=pw) as s:
        s.port, s.pid, s.messages(), s.sessions(), s.auth_log()

Shell:
    tests/peers/node_peer.py [--dir D] [--port-file F] [--cert C --key K] [--password-file F]
    prints "port=N pid=P dir=D"; stop with "kill P" or "tests/peers/node_peer.py stop P".
    tests/peers/node_peer.py install   installs node_modules (npm ci) when missing.
"""

import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peerlib  # noqa: E402

NODE_DIR = os.path.join(peerlib.HERE, 'node')
SERVER = os.path.join(NODE_DIR, 'server.js')


def node_bin():
    return shutil.which('node') or shutil.which('nodejs')


def installed():
    return os.path.isfile(os.path.join(NODE_DIR, 'node_modules', 'smtp-server', 'package.json'))


def install():
    """npm ci (or npm install without a lock file) into tests/peers/node."""
    if installed():
        return True
    npm = shutil.which('npm')
    if not npm:
        return False
    lock = os.path.exists(os.path.join(NODE_DIR, 'package-lock.json'))
    cmd = [npm, 'ci' if lock else 'install', '--no-audit', '--no-fund', '--loglevel=error']
    r = subprocess.run(cmd, cwd=NODE_DIR, stdin=subprocess.DEVNULL, timeout=600)
    return r.returncode == 0 and installed()


def available():
    """(ok, why)"""
    if not node_bin():
        return False, 'node is not installed'
    if not installed() and not install():
        return False, 'npm could not install smtp-server into %s' % NODE_DIR
    return True, ''


class NodeSmtp(peerlib.RecordingPeer):
    name = 'smtp-server'

    def __init__(self, workdir=None, cert=None, key=None, password_file=None,
                 user=peerlib.TEST_USER, lifetime=peerlib.DEFAULT_LIFETIME):
        super().__init__(workdir, lifetime)
        if not (cert and key):
            _, cert, key = peerlib.test_certs(self.dir)
        self.cert, self.key = cert, key
        self.password_file = password_file
        self.user = user

    def _launch(self):
        portfile = os.path.join(self.dir, 'port')
        if os.path.exists(portfile):
            os.unlink(portfile)
        argv = [node_bin(), SERVER, '--dir', self.dir, '--cert', self.cert, '--key', self.key,
                '--user', self.user, '--lifetime', str(self.lifetime)]
        if self.password_file:
            argv += ['--password-file', self.password_file]
        proc = peerlib.spawn(argv, self.log, cwd=NODE_DIR)
        return proc, peerlib.read_port_file(portfile, proc=proc)



def _make(args, extra, workdir):
    return NodeSmtp(workdir, cert=args.cert, key=args.key, password_file=args.password_file,
                    user=args.user, lifetime=args.lifetime)


def _args(ap):
    ap.add_argument('--cert')
    ap.add_argument('--key')
    ap.add_argument('--password-file')
    ap.add_argument('--user', default=peerlib.TEST_USER)


if __name__ == '__main__':
    if sys.argv[1:2] == ['install']:
        sys.exit(0 if install() else 1)
    ok, why = available()
    if not ok:
        print(why, file=sys.stderr)
        sys.exit(77)
    sys.exit(peerlib.main_for(_make, _args, __doc__))
