#!/usr/bin/python3
"""volley probe against Exim 4.96: CHUNKING (BDAT) used when offered, plain DATA
with --no-chunking, ^bounce rejections and ^temp deferrals per recipient, STARTTLS
+ AUTH PLAIN, what landed in Exim's queue, and an Exim that does not offer
PIPELINING logging zero synchronization errors."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vtest  # noqa: E402
from exim import Exim, available  # noqa: E402

USER = 'alice@volley.test'
SENDER = 'sender@volley.test'
PASSWORD = 'exim-it-pw-4711'
MIX = ['good1@dest.test', 'bounce1@dest.test', 'temp1@dest.test', 'good2@dest.test']
GOOD = ['good1@dest.test', 'good2@dest.test']


def by_token(e, token):
    return [m for m in e.queue() if token in (m.get('headers') or '') + (m.get('data') or '')]


def received_for(e, qid):
    for r in e.received():
        if r['id'] == qid:
            return r
    return None


def deliver(t, e, ca, pw, label, rcpts, extra=(), size=0, expect_rc=None):
    msg, token, body = t.message_file(size=size)
    p = t.probe('smtp+starttls://127.0.0.1:%d' % e.port, '--ca', ca, '--auth-user', USER,
                '--auth-password-file', pw, '--auth-mech', 'PLAIN', '--from', SENDER,
                '--to', ','.join(rcpts), '--message', msg, *extra)
    good = [r for r in rcpts if r.startswith('good')]
    t.eq(p.rc, expect_rc if expect_rc is not None else (0 if good == rcpts else 6),
         '%s: exit status' % label, p)
    t.check(p.tls is not None and 'PLAIN ok' in p.auth, '%s: TLS and AUTH PLAIN ok' % label, p)
    t.all_rcpts_reported(p, rcpts)
    for r in rcpts:
        if r.startswith('good'):
            t.rcpt(p, r, 'ok', code=250, enhanced='-')
        elif r.startswith('bounce'):
            t.rcpt(p, r, 'permfail', code=550, enhanced='-', phase='rcpt',
                   text_has='bounce rule')
        elif r.startswith('temp'):
            t.rcpt(p, r, 'tempfail', code=451, enhanced='-', phase='rcpt',
                   text_has='Try again later')
    t.check(p.message is not None and p.message.get('status') == 'ok'
            and p.message.get('code') == '250', '%s: message accepted' % label, p)
    queued = by_token(e, token)
    t.eq(len(queued), 1, '%s: one message in the Exim queue' % label)
    rec = None
    if queued:
        m = queued[0]
        t.eq(m['mail_from'], SENDER, '%s: envelope sender in the spool' % label)
        t.eq(sorted(m['rcpt_to']), sorted(good), '%s: spool recipients are the accepted ones' % label)
        got = vtest.normalise(m['data'] or '')
        want = vtest.normalise(body.split('\r\n\r\n', 1)[1])
        t.check(got == want, '%s: body stored byte for byte (dot-stuffing transparent)' % label,
                None, 'got %d bytes, want %d; head %r' % (len(got), len(want), got[:300]))
        rec = received_for(e, m['id'])
        t.check(rec is not None and rec['auth'] == 'plain:' + USER and rec['tls'],
                '%s: mainlog shows TLS and AUTH for %s' % (label, USER), None, rec)
    return p, rec


def main(t):
    ca, cert, key = t.certs()
    pw = t.password_file(PASSWORD)

    e = t.start(Exim(t.peerdir('exim'), pipelining=True, password=PASSWORD, cert=cert, key=key))
    p, rec = deliver(t, e, ca, pw, 'CHUNKING', MIX)
    t.check('CHUNKING' in p.caps and 'PIPELINING' in p.caps,
            'Exim offers CHUNKING and PIPELINING', p)
    t.check(rec is not None and rec['chunking'], 'CHUNKING: Exim logged BDAT use (K)', None, rec)

    p, rec = deliver(t, e, ca, pw, 'CHUNKING 1 MB', GOOD, size=1_000_000)
    t.check(rec is not None and rec['chunking'], 'CHUNKING 1 MB: BDAT used', None, rec)

    p, rec = deliver(t, e, ca, pw, '--no-chunking', MIX, ['--no-chunking'])
    t.check(rec is not None and not rec['chunking'], '--no-chunking: DATA used (no K)', None, rec)

    t.eq(e.sync_errors(), [], 'PIPELINING Exim: no synchronization errors')
    t.eq(e.paniclog(), '', 'Exim paniclog is empty')

    # Exim without PIPELINING: it enforces synchronisation and logs violations.
    strict = t.start(Exim(t.peerdir('exim-strict'), pipelining=False, password=PASSWORD,
                          cert=cert, key=key))
    p, rec = deliver(t, strict, ca, pw, 'no PIPELINING', MIX)
    t.check('PIPELINING' not in p.caps, 'strict Exim does not offer PIPELINING', p)
    p, rec = deliver(t, strict, ca, pw, 'no PIPELINING, --no-chunking', MIX, ['--no-chunking'])
    t.eq(strict.sync_errors(), [], 'strict Exim: zero synchronization errors')
    t.eq(strict.paniclog(), '', 'strict Exim paniclog is empty')


if __name__ == '__main__':
    ok, why = available()
    if not ok:
        vtest.skip(why)
    vtest.run_guarded(vtest.Test('exim'), main)
