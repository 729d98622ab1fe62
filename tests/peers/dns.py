#!/usr/bin/python3
"""dnsmasq answering made-up .test domains on 127.0.0.1:PORT (a free port
picked here), for MX tests; nothing is forwarded anywhere (--no-resolv).

Python:
    from dns import Dnsmasq
    with Dnsmasq(['--mx-host=example.test,mx1.example.test,10',
                  '--host-record=mx1.example.test,127.0.0.1']) as d:
        d.port, d.pid, d.servers()   # "127.0.0.1:PORT" for --dns

Also SilentDns: a UDP socket that reads queries and never answers, for
timeouts (it lives in this process: nothing to stop but the socket).
"""

import os
import shutil
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peerlib  # noqa: E402

DNSMASQ = shutil.which('dnsmasq') or '/usr/sbin/dnsmasq'
READY_NAME = 'ready.volley.test'


def available():
    return os.access(DNSMASQ, os.X_OK)


def query_packet(name, qtype=1, qid=0x5eed):
    """A DNS query for name (type A by default), recursion desired."""
    q = struct.pack('>HHHHHH', qid, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip('.').split('.'):
        q += bytes([len(label)]) + label.encode('ascii')
    return q + b'\0' + struct.pack('>HH', qtype, 1)


class Dnsmasq(peerlib.Peer):
    name = 'dnsmasq'

    def __init__(self, records, workdir=None, lifetime=peerlib.DEFAULT_LIFETIME):
        super().__init__(workdir, lifetime)
        self.records = list(records)

    def _launch(self):
        port = peerlib.free_port()
        argv = [DNSMASQ, '--no-daemon', '--port=%d' % port, '--listen-address=' + peerlib.HOST,
                '--bind-interfaces', '--no-resolv', '--no-hosts', '--no-poll', '--user=',
                '--pid-file=', '--local=/test/', '--log-facility=-',
                '--host-record=%s,127.0.0.1' % READY_NAME] + self.records
        return peerlib.spawn(peerlib.lifetime_wrap(argv, self.lifetime), self.log), port

    def _ready(self):
        """Ready once it answers a query (it greets nobody)."""
        deadline = time.monotonic() + 15
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.2)
            while time.monotonic() < deadline and peerlib.pid_alive(self.pid):
                try:
                    s.sendto(query_packet(READY_NAME), (peerlib.HOST, self.port))
                    if s.recv(512)[:2] == b'\x5e\xed':
                        return True
                except OSError:
                    pass
                time.sleep(0.05)
        return False

    def servers(self):
        return '%s:%d' % (peerlib.HOST, self.port)


class SilentDns:
    """A DNS server that never answers: a bound UDP socket nobody reads."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((peerlib.HOST, 0))
        self.port = self.sock.getsockname()[1]

    def servers(self):
        return '%s:%d' % (peerlib.HOST, self.port)

    def close(self):
        self.sock.close()
