#!/usr/bin/python3
"""An aiosmtpd server for volley's integration tests (run with Debian's python3).

    aio_server.py --dir DIR [--port 0 | --unix PATH] [--cert C --key K | --no-tls]
                  [--implicit-tls] [--lmtp] [--password-file F]
                  [--user alice@volley.test] [--auth-plaintext-ok] [--lifetime S]

Listens on 127.0.0.1 (port 0 = any free port) or on a Unix socket, and writes
"PORT PID" to DIR/port (PORT is 0 for a Unix socket). Offers STARTTLS (unless
--no-tls), AUTH PLAIN and LOGIN only after TLS (unless --auth-plaintext-ok),
SIZE, 8BITMIME, SMTPUTF8; never PIPELINING.

--implicit-tls: TLS from the first byte (port 465 style); no STARTTLS, and AUTH
is offered since the connection is already encrypted.
--lmtp: speaks LMTP (RFC 2033): LHLO instead of EHLO, and one reply per
accepted recipient after the message:
  RCPT TO    full*       -> after DATA: 452 4.2.2 Mailbox full
             gone*       -> after DATA: 550 5.2.1 Mailbox disabled
             anything else (accepted at RCPT) -> after DATA: 250 2.0.0 Delivered

Replies by local part:
  MAIL FROM  badsender*  -> 553 5.1.8 Sender refused
  RCPT TO    temp*       -> 451 4.2.0 Try again later
             bad*        -> 550 5.1.1 User unknown
             anything else -> 250
  DATA with a header line "X-Test-Reject: yes" -> 554 5.6.0 Content refused
  otherwise 250 2.0.0 Queued as msg-N

Writes:
  DIR/messages/msg-NNNNNN.json   every accepted message with its envelope
  DIR/sessions.jsonl             one record per connection (commands seen, TLS,
                                 AUTH outcome, pipelining violations)
  DIR/violations                 total count of replies sent while the client had
                                 already sent more bytes (the client pipelined)
  DIR/auth.log                   one line per AUTH attempt: mechanism, user, result
"""

import argparse
import asyncio
import json
import os
import ssl
import sys
import time

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

STATE = {'violations': 0, 'messages': 0, 'sessions': 0}
ARGS = None


def _write_atomic(path, text):
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        f.write(text)
    os.replace(tmp, path)


def _append(path, line):
    with open(path, 'a') as f:
        f.write(line + '\n')


def _local(addr):
    return addr.split('@', 1)[0].lower()


class Handler:
    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if _local(address).startswith('badsender'):
            return '553 5.1.8 Sender refused'
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return '250 2.1.0 OK'

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        lp = _local(address)
        if lp.startswith('temp'):
            return '451 4.2.0 Try again later'
        if lp.startswith('bad'):
            return '550 5.1.1 User unknown'
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return '250 2.1.5 OK'

    async def handle_DATA(self, server, session, envelope):
        data = envelope.original_content or envelope.content
        if isinstance(data, bytes):
            text = data.decode('utf-8', errors='replace')
        else:
            text = data
        head = text.split('\r\n\r\n', 1)[0]
        for line in head.split('\r\n'):
            if line.lower().replace(' ', '') == 'x-test-reject:yes':
                return '554 5.6.0 Content refused'
        replies = None
        delivered = list(envelope.rcpt_tos)
        if ARGS.lmtp:
            replies, delivered = lmtp_replies(envelope.rcpt_tos)
            if not delivered:
                return '\r\n'.join(replies)
        STATE['messages'] += 1
        n = STATE['messages']
        rec = {
            'id': 'msg-%06d' % n,
            'mail_from': envelope.mail_from,
            'mail_options': envelope.mail_options,
            'rcpt_to': delivered,
            'data': text,
            'size': len(data),
            'tls': session.ssl is not None or ARGS.implicit_tls,
            'auth_user': session.auth_data.decode() if isinstance(session.auth_data, bytes)
                         else session.auth_data,
            'session': getattr(server, 'sid', None),
            'time': time.time(),
        }
        _write_atomic(os.path.join(ARGS.dir, 'messages', rec['id'] + '.json'),
                      json.dumps(rec, indent=1))
        if replies is not None:
            return '\r\n'.join(replies)
        return '250 2.0.0 Queued as %s' % rec['id']


def lmtp_replies(rcpts):
    """LMTP's answer after the message: one reply per accepted recipient, in
    RCPT order, and the recipients that were delivered."""
    replies, delivered = [], []
    for addr in rcpts:
        lp = _local(addr)
        if lp.startswith('full'):
            replies.append('452 4.2.2 Mailbox full <%s>' % addr)
        elif lp.startswith('gone'):
            replies.append('550 5.2.1 Mailbox disabled <%s>' % addr)
        else:
            replies.append('250 2.0.0 Delivered to <%s>' % addr)
            delivered.append(addr)
    return replies, delivered


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = False
    user = None
    if isinstance(auth_data, LoginPassword):
        user = auth_data.login.decode('utf-8', 'replace')
        ok = (user == ARGS.user and auth_data.password.decode('utf-8', 'replace') == PASSWORD)
    _append(os.path.join(ARGS.dir, 'auth.log'), '%s %s %s tls=%s' % (
        mechanism, user, 'ok' if ok else 'fail', session.ssl is not None))
    server.rec['auth'] = {'mech': mechanism, 'user': user, 'ok': ok}
    return AuthResult(success=ok, handled=False, auth_data=user if ok else None)


class Checking:
    """Mixed into aiosmtpd's SMTP or LMTP: a check of the client's synchronisation: when a reply
    is about to be sent and the client has already sent bytes we have not
    answered yet, the client pipelined without PIPELINING being offered."""

    def connection_made(self, transport):
        first = self._original_transport is None and getattr(self, 'rec', None) is None
        super().connection_made(transport)
        if first:
            STATE['sessions'] += 1
            self.sid = STATE['sessions']
            self.rec = {'session': self.sid, 'commands': [], 'violations': [],
                        'tls': ARGS.implicit_tls, 'auth': None, 'start': time.time()}
            self._last_violation = None
            reader = self._reader
            orig = reader.readuntil

            async def readuntil(separator=b'\n'):
                line = await orig(separator)
                if separator == b'\n':   # command lines (DATA body uses b'\r\n')
                    self._note_command(line)
                return line
            reader.readuntil = readuntil
        else:
            self.rec['tls'] = True

    def _note_command(self, line):
        text = line.decode('utf-8', 'replace').rstrip('\r\n')
        if getattr(self, '_in_auth', False):
            text = '****'                        # an AUTH LOGIN/PLAIN continuation
        elif text[:4].upper() == 'AUTH':
            self._in_auth = True
            text = ' '.join(text.split()[:2])   # keep the mechanism, drop the payload
        self.rec['commands'].append(text)

    async def push(self, status):
        st = status if isinstance(status, str) else status.decode('ascii', 'replace')
        if not st.startswith('334'):
            self._in_auth = False
        buf = getattr(self._reader, '_buffer', b'')
        if buf:
            snap = (len(self.rec['commands']), bytes(buf[:64]))
            if snap != self._last_violation:
                self._last_violation = snap
                STATE['violations'] += 1
                last = self.rec['commands'][-1] if self.rec['commands'] else None
                self.rec['violations'].append(
                    {'after': last, 'pending': bytes(buf[:80]).decode('utf-8', 'replace')})
                _write_atomic(os.path.join(ARGS.dir, 'violations'),
                              '%d\n' % STATE['violations'])
        await super().push(status)

    def connection_lost(self, error):
        rec = getattr(self, 'rec', None)
        if rec is not None and not rec.get('closed'):
            rec['closed'] = True
            rec['end'] = time.time()
            _append(os.path.join(ARGS.dir, 'sessions.jsonl'), json.dumps(rec))
        super().connection_lost(error)


class CheckingSMTP(Checking, SMTP):
    pass


class CheckingLMTP(Checking, LMTP):
    pass


async def main():
    tls = None
    if not ARGS.no_tls:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(ARGS.cert, ARGS.key)
    handler = Handler()
    loop = asyncio.get_running_loop()
    protocol = CheckingLMTP if ARGS.lmtp else CheckingSMTP
    # With implicit TLS the listener does the TLS; aiosmtpd then must not offer
    # STARTTLS, and AUTH needs no further TLS.
    starttls = None if ARGS.implicit_tls else tls
    auth_require_tls = not (ARGS.auth_plaintext_ok or ARGS.implicit_tls)

    def factory():
        return protocol(
            handler, hostname='aiosmtpd.volley.test', tls_context=starttls,
            require_starttls=False, authenticator=authenticator,
            auth_require_tls=auth_require_tls, auth_required=False,
            enable_SMTPUTF8=True, decode_data=False, data_size_limit=ARGS.size_limit,
            timeout=ARGS.idle_timeout, loop=loop)

    listen_tls = tls if ARGS.implicit_tls else None
    if ARGS.unix:
        server = await loop.create_unix_server(factory, path=ARGS.unix, ssl=listen_tls)
        port = 0
    else:
        server = await loop.create_server(factory, host='127.0.0.1', port=ARGS.port,
                                          reuse_address=True, ssl=listen_tls)
        port = server.sockets[0].getsockname()[1]
    _write_atomic(os.path.join(ARGS.dir, 'port'), '%d %d\n' % (port, os.getpid()))
    print('aio_server listening on %s pid %d' % (
        ARGS.unix or '127.0.0.1:%d' % port, os.getpid()), flush=True)
    try:
        await asyncio.sleep(ARGS.lifetime)
        print('aio_server: lifetime over, exiting', flush=True)
    finally:
        server.close()


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--dir', required=True)
    ap.add_argument('--port', type=int, default=0)
    ap.add_argument('--unix', metavar='PATH', help='listen on this Unix socket instead')
    ap.add_argument('--implicit-tls', action='store_true')
    ap.add_argument('--lmtp', action='store_true')
    ap.add_argument('--cert')
    ap.add_argument('--key')
    ap.add_argument('--no-tls', action='store_true')
    ap.add_argument('--user', default='alice@volley.test')
    ap.add_argument('--password-file')
    ap.add_argument('--auth-plaintext-ok', action='store_true',
                    help='offer and accept AUTH before STARTTLS')
    ap.add_argument('--size-limit', type=int, default=10 * 1024 * 1024)
    ap.add_argument('--idle-timeout', type=float, default=60)
    ap.add_argument('--lifetime', type=float, default=900)
    ARGS = ap.parse_args()
    if not ARGS.no_tls and not (ARGS.cert and ARGS.key):
        ap.error('--cert and --key are needed unless --no-tls')
    if ARGS.implicit_tls and ARGS.no_tls:
        ap.error('--implicit-tls needs --cert and --key')
    PASSWORD = None
    if ARGS.password_file:
        with open(ARGS.password_file) as f:
            PASSWORD = f.readline().rstrip('\r\n')
    os.makedirs(os.path.join(ARGS.dir, 'messages'), exist_ok=True)
    _write_atomic(os.path.join(ARGS.dir, 'violations'), '0\n')
    import signal
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    try:
        asyncio.run(main())
    except SystemExit:
        pass
