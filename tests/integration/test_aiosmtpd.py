#!/usr/bin/python3
"""volley probe against aiosmtpd: STARTTLS verified with --ca, AUTH PLAIN and
LOGIN after TLS, good/temp/bad recipients, AUTH refused over plaintext unless
--auth-plaintext, certificate and password failures, sender and content refusals,
transcript redaction, and never a pipelined command (aiosmtpd does not offer
PIPELINING)."""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vtest  # noqa: E402
from aio import AioSmtpd, available  # noqa: E402

USER = 'alice@volley.test'
SENDER = 'sender@volley.test'
MIX = ['good1@dest.test', 'temp1@dest.test', 'bad1@dest.test', 'good2@dest.test']
GOOD = ['good1@dest.test', 'good2@dest.test']
SYSTEM_CAS = '/etc/ssl/certs/ca-certificates.crt'


def check_mix(t, p, label):
    t.all_rcpts_reported(p, MIX)
    t.rcpt(p, 'good1@dest.test', 'ok', code=250)
    t.rcpt(p, 'good2@dest.test', 'ok', code=250)
    t.rcpt(p, 'temp1@dest.test', 'tempfail', code=451, enhanced='4.2.0', phase='rcpt',
           text_has='Try again later', cls='transient_failure', action='soft', retry='yes')
    t.rcpt(p, 'bad1@dest.test', 'permfail', code=550, enhanced='5.1.1', phase='rcpt',
           text_has='User unknown', cls='invalid_recipient', action='hard', retry='no')
    t.check('class' not in p.rcpts.get('good1@dest.test', {}),
            '%s: no class for a delivered recipient' % label, p)
    t.check(p.message is not None and p.message.get('status') == 'ok'
            and p.message.get('code') == '250', '%s: message accepted (250)' % label, p)


def tls_auth(t, s, ca, pw, mech):
    msg, token, body = t.message_file()
    before = len(s.messages())
    p = t.probe('smtp+starttls://127.0.0.1:%d' % s.port, '--ca', ca,
                '--auth-user', USER, '--auth-password-file', pw, '--auth-mech', mech,
                '--from', SENDER, '--to', ','.join(MIX), '--message', msg, '--debug', '1')
    label = 'STARTTLS+AUTH %s' % mech
    t.eq(p.rc, 6, '%s: exit status 6 (some recipients not delivered)' % label, p)
    t.check(p.tls is not None and p.tls.startswith('TLS'), '%s: tls line' % label, p)
    t.check('%s ok' % mech in p.auth, '%s: "auth %s ok"' % (label, mech), p)
    t.check('STARTTLS' not in p.caps, '%s: capabilities are from the EHLO after TLS' % label, p)
    t.check('PIPELINING' not in p.caps, '%s: aiosmtpd does not offer PIPELINING' % label, p)
    check_mix(t, p, label)
    msgs = s.messages()[before:]
    t.eq(len(msgs), 1, '%s: aiosmtpd stored one message' % label)
    if msgs:
        m = msgs[0]
        t.eq(m['mail_from'], SENDER, '%s: envelope sender' % label)
        t.eq(m['rcpt_to'], GOOD, '%s: envelope recipients are the accepted ones' % label)
        t.eq(m['tls'], True, '%s: message came over TLS' % label)
        t.eq(m['auth_user'], USER, '%s: message came from the authenticated user' % label)
        got = vtest.normalise(m['data'])
        t.check(token in got and '\n..two dots\n.\nafter the lone dot\n' in got,
                '%s: body intact, dot-stuffing transparent' % label, None, got[:600])
    t.check(('%s %s ok tls=True' % (mech, USER)) in s.auth_log(),
            '%s: server saw one successful AUTH over TLS' % label, None, s.auth_log())
    # The transcript is there and AUTH is redacted.
    t.check(re.search(r'> MAIL FROM:<', p.err, re.I) is not None
            and re.search(r'< 250', p.err) is not None,
            '%s: --debug transcript on stderr' % label, p)
    if mech == 'PLAIN':
        t.check('> AUTH PLAIN ****' in p.err, '%s: AUTH PLAIN payload redacted' % label, p)
    else:
        t.check('> ****' in p.err, '%s: AUTH LOGIN payloads redacted' % label, p)
    secret = open(pw).readline().rstrip('\n')
    t.no_secret(p, [secret, vtest.b64(secret), vtest.b64('\0%s\0%s' % (USER, secret)),
                    vtest.b64('%s\0%s\0%s' % (USER, USER, secret))],
                '%s: the password appears nowhere in the output' % label)


def main(t):
    ca, cert, key = t.certs()
    pw = t.password_file()
    wrong = t.password_file('not-the-password', 'wrong')

    s = t.start(AioSmtpd(t.peerdir('tls'), cert=cert, key=key, password_file=pw))
    tls_auth(t, s, ca, pw, 'PLAIN')
    tls_auth(t, s, ca, pw, 'LOGIN')

    # smtp:// takes STARTTLS when offered; all good recipients: exit 0.
    msg, token, _ = t.message_file()
    p = t.probe(s.url(), '--ca', ca, '--auth-user', USER, '--auth-password-file', pw,
                '--from', SENDER, '--to', ','.join(GOOD), '--message', msg)
    t.eq(p.rc, 0, 'smtp:// with STARTTLS offered: exit status 0', p)
    t.check(p.tls is not None, 'smtp://: TLS was used', p)
    for r in GOOD:
        t.rcpt(p, r, 'ok', code=250)

    # Wrong password: exit 4, nothing sent.
    n = len(s.messages())
    p = t.probe(s.url('smtp+starttls'), '--ca', ca, '--auth-user', USER,
                '--auth-password-file', wrong, '--auth-mech', 'PLAIN',
                '--from', SENDER, '--to', GOOD[0])
    t.eq(p.rc, 4, 'wrong password: exit status 4', p)
    t.eq(len(s.messages()), n, 'wrong password: no message stored')

    # Certificate not signed by the CA given: exit 3, and no AUTH reached the server.
    auths = len(s.auth_log())
    if os.path.isfile(SYSTEM_CAS):
        p = t.probe(s.url('smtp+starttls'), '--ca', SYSTEM_CAS, '--auth-user', USER,
                    '--auth-password-file', pw, '--from', SENDER, '--to', GOOD[0])
        t.eq(p.rc, 3, 'untrusted certificate: exit status 3', p)
        t.eq(len(s.auth_log()), auths, 'untrusted certificate: no AUTH attempted')
        t.eq(len(s.messages()), n, 'untrusted certificate: no message stored')

    # Sender refused (553): exit 5.
    p = t.probe(s.url(), '--ca', ca, '--from', 'badsender@volley.test', '--to', GOOD[0])
    t.eq(p.rc, 5, 'sender refused: exit status 5', p)
    t.check(p.message is not None and p.message.get('phase') == 'mail'
            and p.message.get('code') == '553', 'sender refused: message phase=mail 553', p)
    t.check(p.message is not None and p.message.get('class') == 'invalid_sender'
            and p.message.get('action') == 'block' and p.message.get('retry') == 'no',
            'sender refused: class invalid_sender, action block, not retried', p)

    # Content refused after DATA (554): exit 7.
    msg, _, _ = t.message_file(extra_headers=['X-Test-Reject: yes'])
    p = t.probe(s.url(), '--ca', ca, '--from', SENDER, '--to', GOOD[0], '--message', msg)
    t.eq(p.rc, 7, 'content refused: exit status 7', p)
    t.check(p.message is not None and p.message.get('status') == 'permfail'
            and p.message.get('code') == '554', 'content refused: message permfail 554', p)
    t.check(p.message is not None and p.message.get('class') == 'message_format'
            and p.message.get('action') == 'other' and p.message.get('retry') == 'no',
            'content refused: class message_format, action other, not retried', p)
    t.eq(len(s.messages()), n, 'refusals: no message stored')

    # The user's own bounce rules replace volley's: a rule of theirs decides,
    # and a rule file with a mistake is refused with its place.
    rules = os.path.join(t.work, 'rules.ini')
    with open(rules, 'w') as f:
        f.write('[house-rule]\nclass = policy_rejection\ntext = user unknown\n'
                '[later]\nclass = greylisted\ntext = try again\n')
    msg, _, _ = t.message_file()
    p = t.probe(s.url(), '--ca', ca, '--from', SENDER, '--to', ','.join(MIX), '--message', msg,
                '--bounce-rules', rules)
    t.eq(p.rc, 6, '--bounce-rules: exit status 6', p)
    t.rcpt(p, 'bad1@dest.test', 'permfail', code=550, cls='policy_rejection', action='block',
           retry='no')
    t.rcpt(p, 'temp1@dest.test', 'tempfail', code=451, cls='greylisted', action='soft',
           retry='yes')
    with open(rules, 'w') as f:
        f.write('[house-rule]\nclass = policy_rejection\ncode = 55\n')
    p = t.probe(s.url(), '--ca', ca, '--from', SENDER, '--to', GOOD[0], '--bounce-rules', rules)
    t.eq(p.rc, 1, '--bounce-rules with a mistake: exit status 1 (usage)', p)
    t.check("%s:3: rule [house-rule]: code: not a 4xx or 5xx code: '55'" % rules in p.err,
            '--bounce-rules with a mistake: the error names the file and line', p)

    # A larger message.
    msg, token, body = t.message_file(size=300_000)
    p = t.probe(s.url(), '--ca', ca, '--from', SENDER, '--to', GOOD[0], '--message', msg)
    t.eq(p.rc, 0, '300 KB message: exit status 0', p)
    last = s.messages()[-1] if s.messages() else None
    t.check(last is not None and vtest.normalise(last['data']) == vtest.normalise(body),
            '300 KB message: stored byte for byte (modulo line ends)')

    # Plaintext server that offers AUTH without TLS.
    plain = t.start(AioSmtpd(t.peerdir('plain'), no_tls=True, password_file=pw,
                             auth_plaintext_ok=True))
    p = t.probe(plain.url(), '--auth-user', USER, '--auth-password-file', pw,
                '--from', SENDER, '--to', GOOD[0])
    t.eq(p.rc, 4, 'AUTH over plaintext without --auth-plaintext: exit status 4', p)
    t.eq(plain.auth_log(), [], 'AUTH over plaintext without --auth-plaintext: no AUTH sent')
    t.eq(len(plain.messages()), 0, 'AUTH over plaintext refused: no message sent')
    p = t.probe(plain.url(), '--auth-user', USER, '--auth-password-file', pw,
                '--auth-plaintext', '--auth-mech', 'PLAIN', '--from', SENDER, '--to', GOOD[0])
    t.eq(p.rc, 0, 'AUTH over plaintext with --auth-plaintext: exit status 0', p)
    t.check(p.tls is None and 'PLAIN ok' in p.auth, 'with --auth-plaintext: auth PLAIN ok, no TLS', p)
    t.check(('PLAIN %s ok tls=False' % USER) in plain.auth_log(),
            'with --auth-plaintext: server saw the AUTH', None, plain.auth_log())
    t.rcpt(p, GOOD[0], 'ok', code=250)
    # STARTTLS required but not offered: exit 3, nothing sent.
    p = t.probe(plain.url('smtp+starttls'), '--ca', ca, '--from', SENDER, '--to', GOOD[0])
    t.eq(p.rc, 3, 'smtp+starttls:// to a server without STARTTLS: exit status 3', p)
    t.eq(len(plain.messages()), 1, 'STARTTLS required: no message sent in the clear')

    # aiosmtpd never offered PIPELINING: volley must never have pipelined.
    for peer in (s, plain):
        v = peer.violations()
        bad = [x for ses in peer.sessions() for x in ses['violations']]
        t.eq(v, 0, '%s: pipelining violations' % peer.dir.rsplit('/', 1)[-1])
        if bad:
            print('  # %s' % bad[:5])


if __name__ == '__main__':
    ok, why = available()
    if not ok:
        vtest.skip(why)
    vtest.run_guarded(vtest.Test('aiosmtpd'), main)
