#!/usr/bin/python3
"""DKIM signatures made by volley, checked by an independent verifier: dkimpy
(Debian's python3-dkim), with the public keys served to it by this test
(dnsfunc) instead of DNS. Keys come from `volley dkim-keygen`, whose printed
TXT value is exactly what dkimpy is given. Messages are signed by
tests/dkim_sign_tool (templates/dkim; `volley render` does not exist yet),
whose path comes from the environment variable DKIM_SIGN_TOOL."""

import base64
import os
import re
import stat
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vtest  # noqa: E402

try:
    import dkim
except ImportError:
    vtest.skip('python3-dkim (dkimpy) is not installed: apt-get install python3-dkim')

DOMAIN = 'volley.test'
T = 1700000000
CRLF = '\r\n'


def run(argv, timeout=120):
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    print('# ran: %s -> exit %d' % (' '.join(os.path.basename(a) if i == 0 else a
                                             for i, a in enumerate(argv)), r.returncode), flush=True)
    return r


class Keys:
    """Keys made by `volley dkim-keygen`, and the TXT records it printed."""

    def __init__(self, t):
        self.t = t
        self.records = {}    # b'sel._domainkey.volley.test.' -> TXT value (bytes)
        self.files = {}      # selector -> key file

    def make(self, selector, *args):
        path = os.path.join(self.t.work, selector + '.pem')
        r = run([self.t.volley, 'dkim-keygen', '--domain', DOMAIN, '--selector', selector,
                 '--out', path] + list(args))
        out = r.stdout.decode()
        lines = out.splitlines()
        ok = self.t.check(r.returncode == 0 and len(lines) == 2,
                          'dkim-keygen %s %s: exit 0, two lines' % (selector, ' '.join(args)),
                          None, 'exit %d\nstdout %r\nstderr %r' % (r.returncode, out, r.stderr))
        if not ok:
            return None
        record, value = lines
        m = re.fullmatch(r'(\S+) IN TXT((?: "[^"]{1,255}")+)', record)
        self.t.check(m is not None and m.group(1) == '%s._domainkey.%s.' % (selector, DOMAIN),
                     'dkim-keygen %s: zone-file line names %s._domainkey.%s.' % (selector, selector, DOMAIN),
                     None, record)
        if m:
            strings = re.findall(r'"([^"]*)"', m.group(2))
            self.t.eq(''.join(strings), value, 'dkim-keygen %s: the record\'s strings join to the value' % selector)
        kind = 'ed25519' if '--type' in args and 'ed25519' in args else 'rsa'
        self.t.check(value.startswith('v=DKIM1; k=%s; p=' % kind),
                     'dkim-keygen %s: value starts v=DKIM1; k=%s; p=' % (selector, kind), None, value)
        mode = stat.S_IMODE(os.stat(path).st_mode)
        self.t.eq(oct(mode), oct(0o600), 'dkim-keygen %s: key file mode' % selector)
        # The printed public key is the key file's (openssl derives it independently).
        spki = subprocess.run(['openssl', 'pkey', '-in', path, '-pubout', '-outform', 'DER'],
                              stdout=subprocess.PIPE, check=True).stdout
        pub = spki[-32:] if kind == 'ed25519' else spki
        self.t.eq(value.split('p=', 1)[1], base64.b64encode(pub).decode(),
                  'dkim-keygen %s: p= is the public half of the key written (openssl pkey -pubout)' % selector)
        self.records[('%s._domainkey.%s.' % (selector, DOMAIN)).encode()] = value.encode()
        self.files[selector] = path
        return path

    def dns(self, name, timeout=5):
        return self.records.get(name)


def sign(t, keys, selectors, message, *extra):
    path = os.path.join(t.work, 'msg-%d.eml' % len(os.listdir(t.work)))
    with open(path, 'wb') as f:
        f.write(message)
    argv = [os.environ['DKIM_SIGN_TOOL'], '--domain', DOMAIN, '--time', str(T)]
    for s in selectors:
        argv += ['--key', keys.files[s], '--selector', s]
    r = run(argv + list(extra) + [path])
    t.check(r.returncode == 0, 'dkim_sign_tool signs (%s)' % ','.join(selectors), None, r.stderr)
    return r.stdout


def signatures(signed):
    return len(re.findall(rb'(?m)^DKIM-Signature:', signed.split(b'\r\n\r\n', 1)[0]))


def verify(keys, signed, idx):
    d = dkim.DKIM(signed)
    try:
        return d.verify(idx=idx, dnsfunc=keys.dns)
    except dkim.DKIMException as e:
        print('# dkimpy: %s' % e)
        return False


def lines_ok(t, signed, what):
    bad = [ln for ln in signed.split(b'\r\n') if len(ln) > 998]
    head = signed.split(b'\r\n\r\n', 1)[0]
    sig_lines = []
    for field in re.findall(rb'(?ms)^DKIM-Signature:.*?(?=\r\n(?! ))', head):
        sig_lines += field.split(b'\r\n')
    long_sig = [ln for ln in sig_lines if len(ln) > 78]
    t.check(not bad and not long_sig, '%s: signature lines within 78 octets, all lines within 998' % what,
            None, 'long: %r' % (long_sig or bad)[:2])


def message(subject, body, extra=()):
    head = ['From: Sender <sender@volley.test>',
            'To: Someone <someone@dest.test>',
            'Subject: %s' % subject,
            'Date: Tue, 14 Nov 2023 22:13:20 +0000',
            'Message-ID: <%s@volley.test>' % re.sub(r'[^A-Za-z0-9]', '', subject)[:40],
            'MIME-Version: 1.0',
            'Content-Type: text/plain; charset=utf-8'] + list(extra)
    return (CRLF.join(head) + CRLF + CRLF + body).encode('utf-8')


def check_all(t, keys, selectors, msg, what, *extra):
    signed = sign(t, keys, selectors, msg, *extra)
    t.eq(signatures(signed), len(selectors), '%s: %d DKIM-Signature field(s)' % (what, len(selectors)))
    for i, s in enumerate(selectors):
        t.check(verify(keys, signed, i), '%s: dkimpy verifies signature %d (%s)' % (what, i, s), None,
                signed[:1500])
    lines_ok(t, signed, what)
    return signed


def keygen_cli(t):
    r = run([t.volley, 'dkim-keygen', '--help'])
    out = r.stdout.decode()
    for opt in ('--domain', '--selector', '--type', '--bits', '--out', '--help'):
        t.check(opt in out, 'dkim-keygen --help lists %s' % opt, None, out)
    t.eq(r.returncode, 0, 'dkim-keygen --help: exit 0')
    r = run([t.volley, 'help'])
    t.check('dkim-keygen' in r.stdout.decode(), 'volley help lists dkim-keygen', None, r.stdout)
    for args, what in ((['--domain', DOMAIN, '--selector', 's'], 'no --out'),
                       (['--domain', 'bad domain', '--selector', 's', '--out', 'x'], 'a bad domain'),
                       (['--domain', DOMAIN, '--selector', 's', '--type', 'dsa', '--out', 'x'], 'an unknown type'),
                       (['--domain', DOMAIN, '--selector', 's', '--bits', '777', '--out', 'x'], 'odd bits')):
        r = run([t.volley, 'dkim-keygen'] + args)
        t.eq(r.returncode, 1, 'dkim-keygen with %s: exit 1 (usage)' % what)
        t.check(r.stderr and not r.stdout, 'dkim-keygen with %s: says why on stderr only' % what, None,
                (r.stdout, r.stderr))


def main(t):
    keygen_cli(t)
    keys = Keys(t)
    if not keys.make('rsa1', '--type', 'rsa', '--bits', '2048') or not keys.make('ed1', '--type', 'ed25519'):
        return
    keys.make('rsa3k', '--bits', '3072')

    # Never over an existing file.
    before = open(keys.files['ed1'], 'rb').read()
    r = run([t.volley, 'dkim-keygen', '--domain', DOMAIN, '--selector', 'ed1', '--type', 'ed25519',
             '--out', keys.files['ed1']])
    t.eq(r.returncode, 2, 'dkim-keygen over an existing file: exit 2')
    t.check(b'exists' in r.stderr, 'dkim-keygen over an existing file: says it exists', None, r.stderr)
    t.check(open(keys.files['ed1'], 'rb').read() == before, 'dkim-keygen leaves the existing file alone')

    plain = message('plain', 'Hello.\r\nSecond line.\r\n')
    check_all(t, keys, ['rsa1'], plain, 'rsa-sha256')
    check_all(t, keys, ['ed1'], plain, 'ed25519-sha256')
    check_all(t, keys, ['rsa3k'], plain, 'rsa-sha256 3072 bits')
    both = check_all(t, keys, ['rsa1', 'ed1'], plain, 'rsa and ed25519 together', '--oversign-from')
    # The second signature does not cover the first: either verifies with
    # the other removed.
    head, body = both.split(b'\r\n\r\n', 1)
    fields = re.findall(rb'(?ms)^DKIM-Signature:.*?\r\n(?! )', head)
    if t.eq(len(fields), 2, 'two fields to take apart'):
        t.check(verify(keys, both.replace(fields[0], b'', 1), 0), 'ed25519 verifies with the RSA field gone')
        t.check(verify(keys, both.replace(fields[1], b'', 1), 0), 'RSA verifies with the ed25519 field gone')
        t.check(b'dkim-signature' not in fields[1].lower().split(b'h=', 1)[1].split(b';', 1)[0],
                'h= of the second signature leaves DKIM-Signature out')

    long_line = 'x' * 998
    trailing = message('trailing blank lines and long lines',
                       'first  line with   runs \t \r\n' + long_line + '\r\n' + ('y ' * 499) + '\r\n'
                       + '\r\n' * 5 + 'last\r\n' + '\r\n' * 7)
    check_all(t, keys, ['rsa1', 'ed1'], trailing, 'trailing blank lines, long lines')
    for chunk in ('1', '7', '4096'):
        again = sign(t, keys, ['rsa1', 'ed1'], trailing, '--chunk', chunk)
        t.check(again == sign(t, keys, ['rsa1', 'ed1'], trailing),
                'body fed %s bytes at a time: the same signed message' % chunk)

    utf8 = message('Zamówienie #42 — potwierdzenie',
                   'Dziękujemy za zamówienie, Zoë.\r\n日本語のテキスト\r\n',
                   ['Reply-To: =?UTF-8?Q?Zo=C3=AB?= <zoe@volley.test>',
                    'List-Unsubscribe: <https://volley.test/u/ż>', 'List-Unsubscribe-Post: List-Unsubscribe=One-Click'])
    signed_utf8 = check_all(t, keys, ['rsa1', 'ed1'], utf8, 'non-ASCII UTF-8 in headers and body')
    t.check(b'h=from:reply-to:to:subject:date:message-id:mime-version:' in signed_utf8.replace(b'\r\n ', b''),
            'h= lists the default fields present, From first', None, signed_utf8[:600])

    empty = message('empty body', '')
    signed_empty = check_all(t, keys, ['ed1'], empty, 'empty body')
    t.check(b'bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;' in signed_empty.replace(b'\r\n ', b''),
            'empty body: bh= is the SHA-256 of nothing (relaxed)', None, signed_empty[:600])

    # What relaxed canonicalisation forgives still verifies...
    refolded = both.replace(b'\r\nSubject: plain', b'\r\nSubject:   \r\n\t plain  ').replace(
        b'Second line.\r\n', b'Second   line. \t\r\n\r\n\r\n')
    for i in range(2):
        t.check(verify(keys, refolded, i), 'refolded header, extra WSP, trailing blank lines: signature %d still verifies' % i)
    # ...what it does not, fails.
    tampered = {
        'body changed': both.replace(b'Hello.', b'Hellp.'),
        'signed header changed': both.replace(b'Subject: plain', b'Subject: plaim'),
        'a From added on top (over-signed)': both.replace(b'\r\nFrom: Sender', b'\r\nFrom: Mallory <m@evil.test>\r\nFrom: Sender'),
        'a body line added': both + b'P.S. added later\r\n',
    }
    for what, msg in tampered.items():
        for i in range(2):
            t.check(not verify(keys, msg, i), 'tampered (%s): signature %d fails' % (what, i))
    # A key that is not the one published fails too.
    wrong = Keys(t)
    wrong.records = dict(keys.records)
    wrong.records[b'ed1._domainkey.volley.test.'] = keys.records[b'rsa1._domainkey.volley.test.']
    t.check(not verify(wrong, both, 1), 'ed25519 signature against another key: fails')


if __name__ == '__main__':
    vtest.run_guarded(vtest.Test('dkim'), main, limit=280)
