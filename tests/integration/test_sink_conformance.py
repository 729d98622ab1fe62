#!/usr/bin/python3
"""volley sink against clients nobody here wrote: Postfix's smtp-source,
swaks (STARTTLS, AUTH PLAIN/LOGIN/CRAM-MD5, --pipeline) and Python's smtplib
(STARTTLS, implicit TLS, every AUTH mechanism, SMTPUTF8, 8BITMIME, DSN, SIZE),
plus BDAT from a raw socket; messages are read back from --maildir."""

import json
import os
import shutil
import smtplib
import socket
import ssl
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vtest  # noqa: E402
from volley_sink import VolleySink, maildir_messages, stop_and_check  # noqa: E402

USER = 'alice@volley.test'
PASSWORD = 'correct-horse-battery-staple'
SMTP_SOURCE = shutil.which('smtp-source') or '/usr/sbin/smtp-source'
SWAKS = shutil.which('swaks')


def auth_file(t):
    path = os.path.join(t.work, 'auth')
    with open(path, 'w') as f:
        f.write('# test users\n%s:%s\nbob@volley.test:other\n' % (USER, PASSWORD))
    return path


def tls_ctx(cert):
    ctx = ssl.create_default_context(cafile=cert)
    return ctx


def smtp_source(t):
    if not os.access(SMTP_SOURCE, os.X_OK):
        t.check(False, 'smtp-source is installed (tests/install-deps.sh installs postfix)')
        return
    md = os.path.join(t.work, 'md-source')
    s = t.start(VolleySink(t.volley, t.peerdir('source'), ['--maildir', md]))
    # One message per connection, then 5 persistent sessions.
    for args, n in ((['-s', '4', '-m', '40'], 40), (['-d', '-s', '5', '-m', '200'], 200)):
        r = subprocess.run([SMTP_SOURCE] + args + ['-l', '2048', '-M', 'client.test', '-f', 'src@source.test',
                                                   '-t', 'dst@dest.test', '127.0.0.1:%d' % s.port],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
        t.eq(r.returncode, 0, 'smtp-source %s: exit status' % ' '.join(args))
        if r.returncode:
            print('  # ' + r.stdout.decode(errors='replace')[-1000:])
    st = s.stats()
    t.eq(st.get('messages'), 240, 'smtp-source: the sink counted 240 messages')
    t.eq(st.get('replies', {}).get('354'), 240, 'smtp-source: 240 replies 354')
    t.eq(st.get('sessions'), 40 + 5 + 1, 'smtp-source: 46 sessions (the harness made one)')
    msgs = maildir_messages(md)
    t.eq(len(msgs), 240, 'smtp-source: 240 messages in the maildir')
    if msgs:
        m = msgs[0]
        t.eq((m['mail_from'], m['rcpt_to'], m['helo'], m['client']),
             ('src@source.test', ['dst@dest.test'], 'client.test', '127.0.0.1'),
             'smtp-source: the envelope headers of a stored message')
        t.check(len(m['data']) >= 2048 and m['data'].endswith(b'\r\n'), 'smtp-source: the body is stored',
                None, m['data'][:200])
    t.check(os.listdir(os.path.join(md, 'tmp')) == [], 'smtp-source: nothing left in maildir/tmp')


def swaks(t, argv, what):
    r = subprocess.run([SWAKS, '--timeout', '20', '--helo', 'client.test'] + argv,
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    out = r.stdout.decode('utf-8', 'replace')
    print('# ran swaks %s -> exit %d' % (' '.join(argv), r.returncode), flush=True)
    return r.returncode, out


def swaks_tests(t):
    if not SWAKS:
        t.check(False, 'swaks is installed (tests/install-deps.sh)')
        return
    md = os.path.join(t.work, 'md-swaks')
    rules = os.path.join(vtest.HERE, '..', '..', 'bench', 'rules', 'faults.rules')
    s = t.start(VolleySink(t.volley, t.peerdir('swaks'), ['--auth-file', auth_file(t), '--maildir', md,
                                                           '--rules', rules]))
    base = ['--server', '127.0.0.1:%d' % s.port, '--from', 'sender@volley.test']
    tls = ['--tls', '--tls-verify', '--tls-ca-path', s.cert]
    for mech in ('PLAIN', 'LOGIN', 'CRAM-MD5'):
        rc, out = swaks(t, base + tls + ['--to', 'ok-%s@dest.test' % mech.lower(), '--auth', mech,
                                         '--auth-user', USER, '--auth-password', PASSWORD], 'auth')
        t.check(rc == 0 and '235 2.7.0 Authentication successful' in out and '250 2.0.0 Ok: queued' in out,
                'swaks: STARTTLS and AUTH %s, message queued' % mech, None, out[-1500:])
    rc, out = swaks(t, base + tls + ['--to', 'x@dest.test', '--auth', 'PLAIN', '--auth-user', USER,
                                     '--auth-password', 'wrong'], 'bad password')
    t.check(rc != 0 and '535 5.7.8 Authentication credentials invalid' in out,
            'swaks: a wrong password gets 535 5.7.8', None, out[-1500:])
    # Before STARTTLS the sink offers no AUTH, and MAIL needs it.
    rc, out = swaks(t, base + ['--to', 'x@dest.test'], 'no auth')
    t.check(rc != 0 and '530 5.7.0 Authentication required' in out and '250 AUTH' not in out,
            'swaks: no STARTTLS, no AUTH offered: MAIL gets 530 5.7.0', None, out[-1500:])
    # Pipelined, with per-recipient faults from the rules.
    rc, out = swaks(t, base + tls + ['--pipeline', '--auth', 'PLAIN', '--auth-user', USER,
                                     '--auth-password', PASSWORD,
                                     '--to', 'ok1@dest.test,perm@dest.test,ok2@dest.test'], 'pipeline')
    t.check('550 5.1.1 User unknown' in out and '250 2.0.0 Ok: queued' in out,
            'swaks --pipeline: 550 for perm@, the message queued for the others', None, out[-2000:])
    t.check('250-PIPELINING' in out, 'swaks --pipeline: PIPELINING offered', None, out[-2000:])
    msgs = maildir_messages(md)
    got = sorted(r for m in msgs for r in m['rcpt_to'])
    t.eq(got, ['ok-cram-md5@dest.test', 'ok-login@dest.test', 'ok-plain@dest.test', 'ok1@dest.test',
               'ok2@dest.test'], 'swaks: the recipients stored in the maildir')
    t.check(all(m['tls'] == 'yes' for m in msgs), 'swaks: every stored message came over TLS', None,
            [m['tls'] for m in msgs])
    t.check(PASSWORD not in s.logtext(), 'the sink never logs a password')


def smtplib_tests(t):
    md = os.path.join(t.work, 'md-smtplib')
    s = t.start(VolleySink(t.volley, t.peerdir('smtplib'), ['--auth-file', auth_file(t), '--maildir', md,
                                                             '--size', '100k']))
    c = smtplib.SMTP('127.0.0.1', s.port, local_hostname='client.test', timeout=20)
    code, _ = c.ehlo()
    t.eq(code, 250, 'smtplib: EHLO')
    for ext in ('pipelining', 'chunking', 'size', '8bitmime', 'smtputf8', 'enhancedstatuscodes', 'dsn', 'starttls'):
        t.check(c.has_extn(ext), 'smtplib: %s offered' % ext.upper(), None, c.esmtp_features)
    t.check(not c.has_extn('auth'), 'smtplib: no AUTH before STARTTLS', None, c.esmtp_features)
    t.eq(c.esmtp_features.get('size'), str(100 * 1024), 'smtplib: SIZE is --size')
    code, msg = c.docmd('AUTH', 'PLAIN AGFsaWNlAHg=')
    t.eq((code, msg[:6]), (538, b'5.7.11'), 'smtplib: AUTH before STARTTLS gets 538 5.7.11')
    code, _ = c.starttls(context=tls_ctx(s.cert))
    t.eq(code, 220, 'smtplib: STARTTLS verified against the generated certificate')
    c.ehlo()
    t.check(c.has_extn('auth') and not c.has_extn('starttls'), 'smtplib: AUTH offered after STARTTLS, STARTTLS not',
            None, c.esmtp_features)
    t.eq(c.esmtp_features.get('auth', '').split(), ['PLAIN', 'LOGIN', 'CRAM-MD5', 'XOAUTH2'],
         'smtplib: the AUTH mechanisms')
    c.user, c.password = USER, PASSWORD
    code, _ = c.auth('CRAM-MD5', c.auth_cram_md5)
    t.eq(code, 235, 'smtplib: AUTH CRAM-MD5')
    r = c.sendmail('sender@volley.test', ['a@dest.test', 'b@dest.test'],
                   b'Subject: one\r\n\r\n.dot line\r\nbody\r\n')
    t.eq(r, {}, 'smtplib: a message to two recipients')
    # SMTPUTF8 addresses and an 8-bit body.
    body = 'Subject: =?utf-8?q?caf=C3=A9?=\r\n\r\nGr\u00fc\u00dfe aus K\u00f6ln\r\n'.encode('utf-8')
    r = c.sendmail('j\u00fcrgen@src.test', ['\u00e9mile@dest.test'], body,
                   mail_options=['SMTPUTF8', 'BODY=8BITMIME'])
    t.eq(r, {}, 'smtplib: SMTPUTF8 addresses with an 8-bit body')
    # DSN parameters.
    r = c.sendmail('sender@volley.test', ['dsn@dest.test'], b'Subject: dsn\r\n\r\nx\r\n',
                   mail_options=['RET=HDRS', 'ENVID=env+2B1'],
                   rcpt_options=['NOTIFY=SUCCESS,FAILURE', 'ORCPT=rfc822;dsn@dest.test'])
    t.eq(r, {}, 'smtplib: DSN RET, ENVID, NOTIFY and ORCPT')
    # SIZE: declared too big, then a body past the limit (sent by hand:
    # sendmail() would declare its real size).
    code, msg = c.mail('sender@volley.test', ['SIZE=200000'])
    t.eq((code, msg[:5]), (552, b'5.3.4'), 'smtplib: MAIL SIZE=200000 refused with 552 5.3.4')
    c.mail('sender@volley.test')
    c.rcpt('big@dest.test')
    code, msg = c.data(b'Subject: big\r\n\r\n' + (b'z' * 78 + b'\r\n') * 2000)
    t.eq((code, msg[:5]), (552, b'5.3.4'), 'smtplib: a 160 KB body refused after the data with 552 5.3.4')
    for cmd, args, want in (('NOOP', '', 250), ('VRFY', 'bob', 252), ('HELP', '', 214), ('RSET', '', 250),
                            ('EXPN', 'list', 502), ('XYZZY', '', 500)):
        code, _ = c.docmd(cmd, args)
        t.eq(code, want, 'smtplib: %s gets %d' % (cmd, want))
    # BDAT from the same TLS socket: smtplib has no CHUNKING, so by hand.
    c.send(b'MAIL FROM:<sender@volley.test>\r\nRCPT TO:<chunks@dest.test>\r\n'
           b'BDAT 14\r\nSubject: b\r\n\r\nBDAT 11 LAST\r\n\r\n.\r\nbin\x00\r\n')
    replies = [c.getreply() for _ in range(4)]
    t.eq([code for code, _ in replies], [250, 250, 250, 250], 'BDAT: MAIL, RCPT, two chunks')
    code, _ = c.quit()
    t.eq(code, 221, 'smtplib: QUIT')

    # Other mechanisms, each on its own session.
    for mech in ('PLAIN', 'LOGIN', 'XOAUTH2'):
        c = smtplib.SMTP('127.0.0.1', s.port, local_hostname='client.test', timeout=20)
        c.starttls(context=tls_ctx(s.cert))
        c.ehlo()
        c.user, c.password = USER, PASSWORD
        if mech == 'XOAUTH2':
            tok = ('user=%s\x01auth=Bearer %s\x01\x01' % (USER, PASSWORD)).encode()
            code, _ = c.docmd('AUTH', 'XOAUTH2 ' + vtest.base64.b64encode(tok).decode())
        else:
            code, _ = c.auth(mech, getattr(c, 'auth_' + mech.lower()))
        t.eq(code, 235, 'smtplib: AUTH %s' % mech)
        c.quit()
    c = smtplib.SMTP('127.0.0.1', s.port, local_hostname='client.test', timeout=20)
    c.starttls(context=tls_ctx(s.cert))
    c.ehlo()
    try:
        c.login(USER, 'wrong')
        t.check(False, 'smtplib: a wrong password is refused')
    except smtplib.SMTPAuthenticationError as e:
        t.eq(e.smtp_code, 535, 'smtplib: a wrong password is refused with 535')
    c.close()

    msgs = {m['rcpt_to'][0]: m for m in maildir_messages(md)}
    t.eq(sorted(msgs), sorted(['a@dest.test', 'chunks@dest.test', 'dsn@dest.test', '\u00e9mile@dest.test']),
         'smtplib: the stored messages')
    if 'a@dest.test' in msgs:
        t.eq(msgs['a@dest.test']['rcpt_to'], ['a@dest.test', 'b@dest.test'], 'maildir: both recipients')
        t.eq(msgs['a@dest.test']['data'], b'Subject: one\r\n\r\n.dot line\r\nbody\r\n', 'maildir: the body unstuffed')
    if '\u00e9mile@dest.test' in msgs:
        m = msgs['\u00e9mile@dest.test']
        t.eq((m['mail_from'], m['data']), ('j\u00fcrgen@src.test', body), 'maildir: UTF-8 envelope, 8-bit body')
    if 'chunks@dest.test' in msgs:
        t.eq(msgs['chunks@dest.test']['data'], b'Subject: b\r\n\r\n\r\n.\r\nbin\x00\r\n', 'maildir: BDAT chunks, binary')
    st = s.stats()
    # smtplib's login() tries CRAM-MD5, PLAIN and LOGIN before it gives up.
    t.eq((st.get('auth_ok'), st.get('auth_failed')), (4, 3), 'stats: AUTH 4 ok, 3 failed')
    t.eq(st.get('tls'), 5, 'stats: 5 TLS sessions')


def implicit_tls(t):
    md = os.path.join(t.work, 'md-implicit')
    s = t.start(VolleySink(t.volley, t.peerdir('implicit'), ['--implicit-tls', '--maildir', md]))
    c = smtplib.SMTP_SSL('127.0.0.1', s.port, local_hostname='client.test', timeout=20, context=tls_ctx(s.cert))
    c.ehlo()
    t.check(not c.has_extn('starttls'), 'implicit TLS: no STARTTLS offered', None, c.esmtp_features)
    t.eq(c.sendmail('a@src.test', ['tls@dest.test'], b'Subject: tls\r\n\r\nx\r\n'), {}, 'implicit TLS: a message')
    c.quit()
    msgs = maildir_messages(md)
    t.check(len(msgs) == 1 and msgs[0]['tls'] == 'yes', 'implicit TLS: stored, with X-Volley-TLS: yes', None, msgs)


def switches(t):
    s = t.start(VolleySink(t.volley, t.peerdir('switches'),
                           ['--no-pipelining', '--no-chunking', '--no-starttls', '--no-smtputf8', '--no-8bitmime',
                            '--no-dsn', '--no-enhancedstatuscodes', '--no-size', '--hostname', 'mx.switch.test']))
    c = smtplib.SMTP('127.0.0.1', s.port, local_hostname='client.test', timeout=20)
    code, msg = c.ehlo()
    t.eq((code, msg), (250, b'mx.switch.test'), 'every --no-EXT: EHLO offers nothing')
    code, msg = c.docmd('NOOP')
    t.eq((code, msg), (250, b'Ok'), 'no ENHANCEDSTATUSCODES: replies without enhanced codes')
    code, _ = c.docmd('STARTTLS')
    t.eq(code, 502, '--no-starttls: STARTTLS gets 502')
    code, _ = c.docmd('MAIL FROM:<a@b.test> BODY=8BITMIME')
    t.eq(code, 555, '--no-8bitmime: BODY= gets 555')
    c.quit()
    s2 = t.start(VolleySink(t.volley, t.peerdir('size'), ['--size', '5000', '--no-starttls']))
    c = smtplib.SMTP('127.0.0.1', s2.port, local_hostname='client.test', timeout=20)
    c.ehlo()
    t.eq(c.esmtp_features.get('size'), '5000', '--size 5000: SIZE 5000 offered')
    c.quit()
    r = subprocess.run([t.volley, 'sink', '--help'], stdout=subprocess.PIPE, timeout=10)
    text = r.stdout.decode()
    missing = [o for o in ('--listen', '--threads', '--tls-cert', '--tls-key', '--implicit-tls', '--auth-file',
                           '--rules', '--maildir', '--stats-json', '--max-rate', '--delay', '--size',
                           '--no-pipelining', '--no-chunking', '--no-starttls', '--no-auth', '--no-smtputf8',
                           '--no-8bitmime', '--no-dsn', '--no-enhancedstatuscodes', '--seed') if o not in text]
    t.check(r.returncode == 0 and not missing, 'volley sink --help lists every option', None, missing)
    r = subprocess.run([t.volley, 'sink', '--listen', '127.0.0.1:0', '--rules', '/nonexistent.rules'],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
    t.check(r.returncode == 1 and b'/nonexistent.rules: No such file' in r.stderr,
            'a missing rules file is named', None, r.stderr)


def threads(t):
    s = t.start(VolleySink(t.volley, t.peerdir('threads'), ['--threads', '2', '--no-starttls']))
    r = subprocess.run([t.volley, 'bench', 'smtp://127.0.0.1:%d' % s.port, '--messages', '2000', '--size', '1k',
                        '--connections', '8', '--json'], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    out = r.stdout.decode()
    try:
        delivered = json.loads(out).get('delivered')
    except ValueError:
        delivered = None
    t.check(r.returncode == 0 and delivered == 2000, '--threads 2: volley bench delivers 2000', None,
            out + r.stderr.decode()[-500:])
    st = s.stats()
    t.eq(st.get('messages'), 2000, '--threads 2: the sink counted 2000 messages')


def main(t):
    smtp_source(t)
    swaks_tests(t)
    smtplib_tests(t)
    implicit_tls(t)
    switches(t)
    threads(t)
    stop_and_check(t)


if __name__ == '__main__':
    vtest.run_guarded(vtest.Test('sink_conformance'), main)
