#!/usr/bin/python3
"""volley probe against nodemailer's smtp-server: STARTTLS + AUTH CRAM-MD5 (and
PLAIN, LOGIN, XOAUTH2), PIPELINING actually used when offered and not used with
--no-pipelining, per-recipient refusals, wrong password."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vtest  # noqa: E402
from node_peer import NodeSmtp, available  # noqa: E402

USER = 'alice@volley.test'
SENDER = 'sender@volley.test'
MIX = ['good1@dest.test', 'temp1@dest.test', 'bad1@dest.test', 'good2@dest.test']
GOOD = ['good1@dest.test', 'good2@dest.test']


def session_of(s, msg):
    for ses in s.sessions():
        if ses.get('session') == msg.get('session'):
            return ses
    return None


def pipelined_envelope(ses):
    """True when one chunk held MAIL FROM and at least one RCPT TO."""
    for chunk in ses.get('chunks', []):
        up = [c.upper() for c in chunk]
        if any(c.startswith('MAIL FROM:') for c in up) and any(c.startswith('RCPT TO:') for c in up):
            return True
    return False


def send(t, s, ca, pw, mech, rcpts, extra=()):
    msg, token, body = t.message_file()
    before = len(s.messages())
    p = t.probe('smtp+starttls://127.0.0.1:%d' % s.port, '--ca', ca, '--auth-user', USER,
                '--auth-password-file', pw, '--auth-mech', mech, '--from', SENDER,
                '--to', ','.join(rcpts), '--message', msg, *extra)
    new = s.messages()[before:]
    return p, token, new


def wait_session_of(s, msg, timeout=5.0):
    """The server's record of the session that carried msg, once that
    session has closed (the server writes it then), or None."""
    import time
    deadline = time.monotonic() + timeout
    while True:
        ses = session_of(s, msg)
        if ses is not None or time.monotonic() >= deadline:
            return ses
        time.sleep(0.05)


def main(t):
    ca, cert, key = t.certs()
    pw = t.password_file()
    wrong = t.password_file('not-the-password', 'wrong')
    s = t.start(NodeSmtp(t.peerdir('node'), cert=cert, key=key, password_file=pw))

    # STARTTLS + CRAM-MD5, mixed recipients, pipelined envelope.
    p, token, new = send(t, s, ca, pw, 'CRAM-MD5', MIX)
    label = 'CRAM-MD5'
    t.eq(p.rc, 6, '%s: exit status 6' % label, p)
    t.check(p.tls is not None, '%s: TLS used' % label, p)
    t.check('CRAM-MD5 ok' in p.auth, '%s: auth CRAM-MD5 ok' % label, p)
    t.check('PIPELINING' in p.caps, '%s: PIPELINING offered' % label, p)
    t.all_rcpts_reported(p, MIX)
    t.rcpt(p, 'good1@dest.test', 'ok', code=250)
    t.rcpt(p, 'good2@dest.test', 'ok', code=250)
    t.rcpt(p, 'temp1@dest.test', 'tempfail', code=451, enhanced='4.3.0', phase='rcpt',
           text_has='Try again later')
    t.rcpt(p, 'bad1@dest.test', 'permfail', code=550, enhanced='5.1.1', phase='rcpt',
           text_has='User unknown')
    t.check(p.message is not None and p.message.get('status') == 'ok'
            and p.message.get('code') == '250', '%s: message accepted' % label, p)
    t.eq(len(new), 1, '%s: smtp-server stored one message' % label)
    if new:
        m = new[0]
        t.eq(m['rcpt_to'], GOOD, '%s: envelope recipients are the accepted ones' % label)
        t.eq(m['mail_from'], SENDER, '%s: envelope sender' % label)
        t.check(m['tls'] and m['auth_user'] == USER, '%s: stored over TLS as %s' % (label, USER),
                None, m)
        got = vtest.normalise(m['data'])
        t.check(token in got and '\n..two dots\n.\nafter the lone dot\n' in got,
                '%s: body intact, dot-stuffing transparent' % label, None, got[:600])
        # Not a count of sessions: the server's readiness check was one.
        ses = wait_session_of(s, m)
        t.check(ses is not None and pipelined_envelope(ses),
                '%s: volley pipelined MAIL FROM and RCPT TO in one write' % label, None,
                ses and ses.get('chunks'))
    t.check(('CRAM-MD5 %s ok tls=true' % USER) in s.auth_log(),
            '%s: server verified CRAM-MD5' % label, None, s.auth_log())

    # --no-pipelining: one command per write.
    p, token, new = send(t, s, ca, pw, 'CRAM-MD5', GOOD, ['--no-pipelining'])
    t.eq(p.rc, 0, '--no-pipelining: exit status 0', p)
    for r in GOOD:
        t.rcpt(p, r, 'ok', code=250)
    t.eq(len(new), 1, '--no-pipelining: one message stored')
    if new:
        ses = wait_session_of(s, new[0])
        t.check(ses is not None and ses.get('max_commands_per_chunk') == 1,
                '--no-pipelining: never more than one command per write', None,
                ses and ses.get('chunks'))

    # The other mechanisms.
    for mech in ('PLAIN', 'LOGIN', 'XOAUTH2'):
        p, token, new = send(t, s, ca, pw, mech, GOOD)
        t.eq(p.rc, 0, 'AUTH %s: exit status 0' % mech, p)
        t.check('%s ok' % mech in p.auth, 'AUTH %s: auth %s ok' % (mech, mech), p)
        t.check(len(new) == 1 and new[0]['rcpt_to'] == GOOD and new[0]['auth_user'] == USER,
                'AUTH %s: message stored for the authenticated user' % mech, None, new)
        secret = open(pw).readline().rstrip('\n')
        t.no_secret(p, [secret, vtest.b64(secret)], 'AUTH %s: password not in output' % mech)

    # Wrong password.
    p, token, new = send(t, s, ca, wrong, 'CRAM-MD5', GOOD)
    t.eq(p.rc, 4, 'wrong password: exit status 4', p)
    t.eq(new, [], 'wrong password: nothing stored')

    # AUTH is refused before STARTTLS (538) and volley never sends it in the clear
    # without --auth-plaintext; with smtp:// it upgrades first anyway.
    p = t.probe(s.url(), '--ca', ca, '--auth-user', USER, '--auth-password-file', pw,
                '--auth-mech', 'PLAIN', '--from', SENDER, '--to', GOOD[0])
    t.eq(p.rc, 0, 'smtp:// with STARTTLS offered and AUTH: exit status 0', p)
    t.check(all('tls=true' in line for line in s.auth_log()),
            'no AUTH ever reached smtp-server in the clear', None, s.auth_log())


if __name__ == '__main__':
    ok, why = available()
    if not ok:
        vtest.skip(why)
    vtest.run_guarded(vtest.Test('nodemailer'), main)
