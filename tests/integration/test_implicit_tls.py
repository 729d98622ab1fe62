#!/usr/bin/python3
"""Implicit TLS (smtps://, port 465 style) against aiosmtpd behind Python's
TLS listener: the certificate verified with --ca, AUTH over the encrypted
session, refusals per recipient, failures named as the tls phase (exit 3), and
volley bench reconnecting with session resumption."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vtest  # noqa: E402
from aio import AioSmtpd, available  # noqa: E402

USER = 'alice@volley.test'
SENDER = 'sender@volley.test'
SYSTEM_CAS = '/etc/ssl/certs/ca-certificates.crt'


def main(t):
    ca, cert, key = t.certs()
    pw = t.password_file()
    s = t.start(AioSmtpd(t.peerdir('smtps'), cert=cert, key=key, password_file=pw,
                         implicit_tls=True))
    url = 'smtps://127.0.0.1:%d' % s.port

    msg, token, body = t.message_file()
    rcpts = ['good1@dest.test', 'bad1@dest.test', 'temp1@dest.test']
    p = t.probe(url, '--ca', ca, '--auth-user', USER, '--auth-password-file', pw,
                '--from', SENDER, '--to', ','.join(rcpts), '--message', msg, '--debug', '1')
    t.eq(p.rc, 6, 'smtps: exit status 6 (some recipients refused)', p)
    t.check(p.tls is not None and p.tls.startswith('TLSv1.3'), 'smtps: tls line, TLS 1.3', p)
    t.check('STARTTLS' not in p.caps, 'smtps: no STARTTLS offered inside TLS', p)
    t.check('> STARTTLS' not in p.err, 'smtps: no STARTTLS sent', p)
    t.check('PLAIN ok' in p.auth or 'LOGIN ok' in p.auth, 'smtps: AUTH succeeded', p)
    t.rcpt(p, 'good1@dest.test', 'ok', code=250)
    t.rcpt(p, 'bad1@dest.test', 'permfail', code=550, phase='rcpt')
    t.rcpt(p, 'temp1@dest.test', 'tempfail', code=451, phase='rcpt')
    msgs = s.messages()
    t.eq(len(msgs), 1, 'smtps: one message stored')
    if msgs:
        t.eq(msgs[0]['rcpt_to'], ['good1@dest.test'], 'smtps: to the accepted recipient')
        t.eq(msgs[0]['auth_user'], USER, 'smtps: from the authenticated user')
        t.check(token in msgs[0]['data'], 'smtps: body arrived')
    t.no_secret(p, [open(pw).readline().rstrip('\n')], 'smtps: the password appears nowhere')

    # The certificate must verify: the system store does not know our test CA.
    if os.path.exists(SYSTEM_CAS):
        p = t.probe(url, '--from', SENDER, '--to', 'good2@dest.test')
        t.eq(p.rc, 3, 'smtps, untrusted certificate: exit status 3', p)
        t.check('tls failed' in p.err and 'certificate' in p.err,
                'smtps, untrusted certificate: named as a TLS failure', p)
        t.check(p.greeting is None, 'smtps, untrusted certificate: no greeting read', p)
    # The certificate names mail.volley.test, localhost and 127.0.0.1.
    p = t.probe('smtps://localhost:%d' % s.port, '--ca', ca, '--from', SENDER,
                '--to', 'good3@dest.test')
    t.eq(p.rc, 0, 'smtps://localhost: the host name matches the certificate', p)
    p = t.probe(url, '--insecure', '--from', SENDER, '--to', 'good4@dest.test')
    t.eq(p.rc, 0, 'smtps --insecure: exit status 0', p)
    t.eq(len(s.messages()), 3, 'smtps: three messages stored so far')

    # bench: 4 sessions reopened every 5 messages; later sessions resume.
    rc, res, out = t.bench(url, '--ca', ca, '--auth-user', USER, '--auth-password-file', pw,
                           '--messages', 60, '--size', '3k', '--connections', 4,
                           '--per-connection', 5)
    t.check(rc == 0 and res is not None, 'smtps bench: exit status 0 with JSON', None, out)
    if res:
        t.eq(res['delivered'], 60, 'smtps bench: every message delivered')
        t.eq(res['sessions'], 12, 'smtps bench: 12 sessions of 5 messages')
        t.eq(res['sessions_tls'], 12, 'smtps bench: every session over TLS')
        t.check(res['sessions_resumed'] >= 4, 'smtps bench: reopened sessions resume TLS '
                '(%d of 12)' % res['sessions_resumed'], None, out)
    t.eq(len(s.messages()), 63, 'smtps bench: the server stored 60 more messages')
    t.eq(sum(1 for x in s.sessions() if x.get('tls')), len(s.sessions()),
         'smtps: every session the server saw was TLS')


if __name__ == '__main__':
    ok, why = available()
    if not ok:
        vtest.skip(why)
    vtest.run_guarded(vtest.Test('implicit_tls'), main)
