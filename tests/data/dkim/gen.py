#!/usr/bin/python3
"""Makes the DKIM fixtures of tests/test_dkim.c without any of volley's code:
keys from `openssl genpkey`, canonicalisation and header selection from
dkimpy (Debian's python3-dkim), signatures from `openssl dgst` / `openssl
pkeyutl`. The expected DKIM-Signature fields follow the layout that
templates/dkim.h documents (tags v a c d s t h bh b, folded with CRLF SP before
a piece that would pass 78 octets, h= breaking after a colon, b= anywhere),
written out again here from that description.

Run from anywhere:  /usr/bin/python3 tests/data/dkim/gen.py [--new-keys]
Keys are kept when present (--new-keys replaces them; then commit every file
here together). The RFC 8463 keys are the published test vectors.
"""

import base64
import hashlib
import os
import subprocess
import sys
import tempfile

import dkim
from dkim.canonicalization import Relaxed

HERE = os.path.dirname(os.path.abspath(__file__))
CRLF = b'\r\n'
LINE_MAX = 78

# RFC 8463 Appendix A.1 and A.2.
RFC8463_ED25519_SEED = 'nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A='
RFC8463_RSA = """-----BEGIN RSA PRIVATE KEY-----
MIICXQIBAAKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQi
Y/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqM
KrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB
AoGAH0cxOhFZDgzXWhDhnAJDw5s4roOXN4OhjiXa8W7Y3rhX3FJqmJSPuC8N9vQm
6SVbaLAE4SG5mLMueHlh4KXffEpuLEiNp9Ss3O4YfLiQpbRqE7Tm5SxKjvvQoZZe
zHorimOaChRL2it47iuWxzxSiRMv4c+j70GiWdxXnxe4UoECQQDzJB/0U58W7RZy
6enGVj2kWF732CoWFZWzi1FicudrBFoy63QwcowpoCazKtvZGMNlPWnC7x/6o8Gc
uSe0ga2xAkEA8C7PipPm1/1fTRQvj1o/dDmZp243044ZNyxjg+/OPN0oWCbXIGxy
WvmZbXriOWoSALJTjExEgraHEgnXssuk7QJBALl5ICsYMu6hMxO73gnfNayNgPxd
WFV6Z7ULnKyV7HSVYF0hgYOHjeYe9gaMtiJYoo0zGN+L3AAtNP9huqkWlzECQE1a
licIeVlo1e+qJ6Mgqr0Q7Aa7falZ448ccbSFYEPD6oFxiOl9Y9se9iYHZKKfIcst
o7DUw1/hz2Ck4N5JrgUCQQCyKveNvjzkkd8HjYs0SwM0fPjK16//5qDZ2UiDGnOe
uEzxBDAr518Z8VFbR41in3W4Y3yCDgQlLlcETrS+zYcL
-----END RSA PRIVATE KEY-----
"""
# An Ed25519 seed as PKCS#8 (RFC 8410 section 7): this DER prefix, then the seed.
ED25519_PKCS8_PREFIX = bytes.fromhex('302e020100300506032b657004220420')

# The message every case signs: RFC 2047 and raw UTF-8 in headers, a folded
# To, WSP runs and trailing WSP, a repeated field, a field no list signs;
# a UTF-8 body with WSP runs, trailing WSP, a 998-octet line, empty lines
# inside and at the end.
MESSAGE = CRLF.join([
    b'From: =?UTF-8?Q?Zo=C3=AB_=C5=81ukasiewicz?= <zoe@volley.test>',
    b'To: Suzie Q <suzie@dest.test>,',
    b'\tJoe <joe@dest.test>',
    'Subject:   Zamówienie #42 —  potwierdzenie   '.encode(),
    b'Date: Tue, 14 Nov 2023 22:13:20 +0000',
    b'Message-ID: <fixture-1@volley.test>',
    b'MIME-Version: 1.0',
    b'Content-Type: text/plain; charset=utf-8',
    b'Content-Transfer-Encoding: 8bit',
    b'Keywords: first',
    b'X-Campaign:spring',
    b'Keywords: second',
    b'X-Unsigned: no list names this field',
    b'List-Unsubscribe: <https://volley.test/u/1>, <mailto:u@volley.test>',
    b'List-Unsubscribe-Post: List-Unsubscribe=One-Click',
    b'',
    'Dziękujemy  za \t zamówienie.  '.encode(),
    b'',
    b' leading space, trailing tab\t',
    b'x' * 998,
    b'',
    b'',
    b'last line',
    b'',
    b'',
    b'',
]) + CRLF

# templates/dkim.h's dkim_default_headers.
DEFAULT_HEADERS = ['From', 'Reply-To', 'Sender', 'To', 'Cc', 'Subject', 'Date', 'Message-ID',
                   'In-Reply-To', 'References', 'MIME-Version', 'Content-Type',
                   'Content-Transfer-Encoding', 'List-Id', 'List-Unsubscribe',
                   'List-Unsubscribe-Post', 'Feedback-ID']

DOMAIN = 'volley.test'
# name, [(algorithm, key file, selector)], t=, header list (None: the
# default), over-sign From. tests/test_dkim.c signs the same cases.
CASES = [
    ('rsa', [('rsa-sha256', 'rsa2048.pem', 'rsa2048')], 1700000000, None, False),
    ('ed25519', [('ed25519-sha256', 'ed25519.pem', 'ed')], 1700000001,
     ['Subject', 'X-Campaign', 'Keywords', 'To'], True),
    ('both', [('rsa-sha256', 'rsa2048_pkcs1.pem', 'rsa2048'), ('ed25519-sha256', 'ed25519.pem', 'ed')],
     1700000002, None, True),
]


def here(name):
    return os.path.join(HERE, name)


def openssl(*args, data=None):
    return subprocess.run(['openssl'] + list(args), input=data, check=True,
                          stdout=subprocess.PIPE).stdout


def make_keys(new):
    def need(name):
        return new or not os.path.exists(here(name))
    if need('rsa2048.pem') or need('rsa2048_pkcs1.pem'):
        openssl('genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', here('rsa2048.pem'))
        openssl('pkey', '-in', here('rsa2048.pem'), '-traditional', '-out', here('rsa2048_pkcs1.pem'))
    if need('ed25519.pem') or need('ed25519_encrypted.pem') or need('ed25519_public.pem'):
        openssl('genpkey', '-algorithm', 'ED25519', '-out', here('ed25519.pem'))
        openssl('pkey', '-in', here('ed25519.pem'), '-aes-256-cbc', '-passout', 'pass:test',
                '-out', here('ed25519_encrypted.pem'))
        openssl('pkey', '-in', here('ed25519.pem'), '-pubout', '-out', here('ed25519_public.pem'))
    if need('rsa512.pem'):
        openssl('genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:512', '-out', here('rsa512.pem'))
    if need('ec.pem'):
        openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', here('ec.pem'))
    with open(here('rfc8463_rsa.pem'), 'w') as f:
        f.write(RFC8463_RSA)
    der = ED25519_PKCS8_PREFIX + base64.b64decode(RFC8463_ED25519_SEED)
    openssl('pkey', '-inform', 'DER', '-out', here('rfc8463_ed25519.pem'), data=der)
    for name in os.listdir(HERE):
        if name.endswith('.pem'):
            os.chmod(here(name), 0o644)   # test keys: nothing secret about them


class Layout:
    """The folding of a DKIM-Signature field, as templates/dkim.h describes it."""

    def __init__(self):
        self.text = b'DKIM-Signature:'
        self.col = len(self.text)

    def _new_line(self):
        self.text += b'\r\n '
        self.col = 1

    def _space_for(self, n):
        """A SP when n more octets fit on this line, else a new line."""
        if self.col + 1 + n <= LINE_MAX:
            self.text += b' '
            self.col += 1
        else:
            self._new_line()

    def token(self, t):
        self._space_for(len(t))
        self.text += t
        self.col += len(t)

    def piece(self, t):
        if self.col + len(t) > LINE_MAX:
            self._new_line()
        self.text += t
        self.col += len(t)

    def b_tag(self):
        # b= stays on its line only if 8 characters of its value fit there too
        self._space_for(2 + 8)
        self.text += b'b='
        self.col += 2

    def b_value(self, b64):
        i = 0
        while i < len(b64):
            if self.col >= LINE_MAX:
                self._new_line()
                continue
            k = min(LINE_MAX - self.col, len(b64) - i)
            self.text += b64[i:i + k]
            self.col += k
            i += k
        self.text += CRLF


def signed_names(headers, names, oversign):
    """h=: From first, then each listed name once per instance present."""
    order = ['from'] + [n.lower() for n in names if n.lower() != 'from']
    h = []
    for n in order:
        count = sum(1 for k, _ in headers if k.lower() == n.encode())
        if n == 'from' and oversign:
            count += 1
        h += [n] * count
    return h


class Recorder:
    """A stand-in hasher that keeps the bytes dkimpy would hash."""

    def __init__(self):
        self.data = b''

    def update(self, b):
        self.data += b


def sign(alg, keyfile, data):
    if alg == 'rsa-sha256':
        return openssl('dgst', '-sha256', '-sign', here(keyfile), data=data)
    # RFC 8463: Ed25519 over the SHA-256 of the data
    with tempfile.NamedTemporaryFile() as f:
        f.write(hashlib.sha256(data).digest())
        f.flush()
        return openssl('pkeyutl', '-sign', '-rawin', '-inkey', here(keyfile), '-in', f.name)


def signature_fields(msg, keys, t, names, oversign):
    headers, body = dkim.rfc822_parse(msg)
    bh = base64.b64encode(hashlib.sha256(Relaxed.canonicalize_body(body)).digest())
    h = signed_names(headers, names or DEFAULT_HEADERS, oversign)
    out = b''
    for alg, keyfile, selector in keys:
        lay = Layout()
        for tok in ['v=1;', 'a=%s;' % alg, 'c=relaxed/relaxed;', 'd=%s;' % DOMAIN,
                    's=%s;' % selector, 't=%d;' % t]:
            lay.token(tok.encode())
        for i, n in enumerate(h):
            piece = ('h=' if i == 0 else '') + n + (':' if i + 1 < len(h) else ';')
            (lay.token if i == 0 else lay.piece)(piece.encode())
        lay.token(b'bh=' + bh + b';')
        lay.b_tag()
        head = lay.text
        rec = Recorder()
        value = head[len(b'DKIM-Signature:'):] + CRLF
        # as dkimpy's verifier does: canonical fields in, the signature
        # field canonicalised (b= emptied) inside hash_headers
        dkim.hash_headers(rec, Relaxed, Relaxed.canonicalize_headers(headers), [n.encode() for n in h],
                          [b'DKIM-Signature', value], None)
        lay.b_value(base64.b64encode(sign(alg, keyfile, rec.data)))
        out += lay.text
    return out


def public_txt(keyfile):
    spki = openssl('pkey', '-in', here(keyfile), '-pubout', '-outform', 'DER')
    if b'\x2b\x65\x70' in spki[:16]:   # the Ed25519 OID: p= is the raw key
        return b'v=DKIM1; k=ed25519; p=' + base64.b64encode(spki[-32:])
    return b'v=DKIM1; k=rsa; p=' + base64.b64encode(spki)


def main():
    make_keys('--new-keys' in sys.argv[1:])
    with open(here('message.eml'), 'wb') as f:
        f.write(MESSAGE)
    for key in ('rsa2048', 'ed25519'):   # the TXT values, from openssl's public key
        with open(here(key + '.txt'), 'wb') as f:
            f.write(public_txt(key + '.pem'))
    for name, keys, t, names, oversign in CASES:
        fields = signature_fields(MESSAGE, keys, t, names, oversign)
        with open(here('expected_%s.txt' % name), 'wb') as f:
            f.write(fields)
        # dkimpy must accept what was made here, or the fixture is wrong
        records = {('%s._domainkey.%s.' % (sel, DOMAIN)).encode(): public_txt(kf) for _, kf, sel in keys}
        d = dkim.DKIM(fields + MESSAGE)
        for i in range(len(keys)):
            if not d.verify(idx=i, dnsfunc=lambda n, timeout=5: records.get(n)):
                sys.exit('gen.py: dkimpy rejects signature %d of case %s' % (i, name))
        print('expected_%s.txt: %d signature(s), verified by dkimpy' % (name, len(keys)))


if __name__ == '__main__':
    main()
