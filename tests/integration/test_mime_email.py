#!/usr/bin/python3
"""Messages built by templates/ (through tests/mime_build_tool) read back by
Python's email package with email.policy.strict, which raises on any defect:
every shape (text, html, alternative, mixed with attachments, attachments
only), non-ASCII subjects and display names, IDN, SMTPUTF8 and 8BITMIME,
long lines, unsubscribe headers, header injection, and template errors.
Each part is decoded and compared with what went in.

The tool comes from the environment variable MIME_BUILD_TOOL (VOLLEY is set
too, as for the other integration tests; vtest.Test wants it)."""

import datetime
import email
import email.policy
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vtest  # noqa: E402

DATE = 1700000000


class Built:
    """One run of the tool: the message bytes, its info lines, and the
    message as Python's email package reads it."""

    def __init__(self, rc, raw, info, err):
        self.rc, self.raw, self.info, self.err = rc, raw, info, err
        self.msg = None
        self.parse_error = None
        if rc == 0:
            try:
                self.msg = email.message_from_bytes(raw, policy=email.policy.strict)
            except Exception as e:   # strict raises on every defect
                self.parse_error = '%s: %s' % (type(e).__name__, e)


class Suite:
    def __init__(self, t, tool, tmp):
        self.t, self.tool, self.tmp = t, tool, tmp
        self.n = 0

    def write(self, name, data):
        path = os.path.join(self.tmp, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'wb') as f:
            f.write(data if isinstance(data, bytes) else data.encode('utf-8'))
        return path

    def build(self, template, *args):
        self.n += 1
        tpl = self.write('t%d.tpl' % self.n, template)
        out = os.path.join(self.tmp, 'm%d.eml' % self.n)
        p = subprocess.run([self.tool, '-o', out] + list(args) + [tpl],
                           capture_output=True, timeout=60)
        raw = b''
        if p.returncode == 0:
            with open(out, 'rb') as f:
                raw = f.read()
        info = dict(line.split('=', 1) for line in p.stdout.decode('utf-8', 'replace').splitlines()
                    if '=' in line)
        return Built(p.returncode, raw, info, p.stderr.decode('utf-8', 'replace'))

    # ---- checks every message gets ----

    def wire(self, b, what, header_limit=78):
        t = self.t
        if not t.eq(b.rc, 0, '%s: the tool succeeded' % what) or not t.check(
                b.parse_error is None, '%s: email.policy.strict parses it' % what,
                detail=b.parse_error):
            print('      stderr: %s' % b.err.strip())
            return False
        raw = b.raw
        t.check(b'\n' not in raw.replace(b'\r\n', b''), '%s: no bare LF' % what)
        t.check(b'\r' not in raw.replace(b'\r\n', b''), '%s: no bare CR' % what)
        lines = raw.split(b'\r\n')
        t.check(max(len(x) for x in lines) <= 998, '%s: no line over 998 octets' % what,
                detail=max(len(x) for x in lines))
        head = raw.split(b'\r\n\r\n', 1)[0].split(b'\r\n')
        if header_limit:
            long_ones = [x for x in head if len(x) > header_limit]
            t.check(not long_ones, '%s: header lines within %d octets' % (what, header_limit),
                    detail=long_ones[:2])
        m = b.msg
        t.eq(m['MIME-Version'], '1.0', '%s: MIME-Version' % what)
        t.eq(len(m.get_all('MIME-Version')), 1, '%s: one MIME-Version' % what)
        t.eq(m['Date'].datetime, datetime.datetime.fromtimestamp(DATE, datetime.timezone.utc),
             '%s: Date' % what)
        mid = str(m['Message-ID'])
        t.check(re.fullmatch(r'<\d{14}\.[a-z2-7]{26}@[a-z0-9.-]+>', mid) is not None,
                '%s: Message-ID form' % what, detail=mid)
        t.eq(b.info.get('message_id'), mid, '%s: the Message-ID the tool reports' % what)
        t.check(not m.defects, '%s: no defects' % what, detail=m.defects)
        for part in m.walk():
            t.check(not part.defects, '%s: no defects in %s' % (what, part.get_content_type()),
                    detail=part.defects)
        # the boundaries appear nowhere but on their own lines
        for part in m.walk():
            bnd = part.get_boundary()
            if bnd:
                for line in raw.split(b'\r\n'):
                    if bnd.encode() in line:
                        t.check(line.startswith(b'--' + bnd.encode()) or b'boundary=' in line,
                                '%s: boundary only on delimiter lines' % what, detail=line[:80])
        return True

    def leaves(self, m):
        return [p for p in m.walk() if not p.is_multipart()]


def crlf(s):
    return s.replace('\r\n', '\n').replace('\n', '\r\n')


def unescape(s):
    """An address as Python's parser gives a raw UTF-8 header: undo its
    surrogate escapes."""
    return s.encode('utf-8', 'surrogateescape').decode('utf-8')


def shapes(s):
    t = s.t
    text = 'Hello Jane,\n\n.a line that starts with a dot\n..two dots\nBye\n'
    html = '<html><body><p>Hello <b>Jane</b></p>\n<p>.dot</p></body></html>\n'

    b = s.build('From: news@example.test\nTo: jane@example.test\nSubject: plain\n\n' + text)
    if s.wire(b, 'text only'):
        m = b.msg
        t.eq(m.get_content_type(), 'text/plain', 'text only: text/plain')
        t.eq(m.get_content_charset(), 'utf-8', 'text only: charset')
        t.eq(m['Content-Transfer-Encoding'], '7bit', 'text only: 7bit')
        t.eq(m.get_content(), crlf(text), 'text only: the body, dots and all')
        t.eq(b.info.get('envelope_from'), 'news@example.test', 'text only: envelope sender')

    b = s.build('From: news@example.test\nSubject: html\n\n--- html\n' + html)
    if s.wire(b, 'html only'):
        t.eq(b.msg.get_content_type(), 'text/html', 'html only: text/html')
        t.eq(b.msg.get_content(), crlf(html), 'html only: the body')

    b = s.build('From: news@example.test\nSubject: both\n\n--- text\n' + text + '--- html\n' + html)
    if s.wire(b, 'alternative'):
        m = b.msg
        t.eq(m.get_content_type(), 'multipart/alternative', 'alternative: type')
        leaves = s.leaves(m)
        t.eq([p.get_content_type() for p in leaves], ['text/plain', 'text/html'],
             'alternative: text first, then html')
        t.eq(leaves[0].get_content(), crlf(text), 'alternative: text')
        t.eq(leaves[1].get_content(), crlf(html), 'alternative: html')
        t.eq(m.get_body(('plain',)).get_content(), crlf(text), 'alternative: get_body plain')

    # attachments of sizes around the 57-byte base64 line, binary and text
    blobs = {
        'empty.bin': b'',
        'one.bin': b'\x00',
        'line56.bin': os.urandom(56),
        'line57.bin': os.urandom(57),
        'line58.bin': os.urandom(58),
        'big.bin': os.urandom(100000),
        'notes.txt': 'caf\u00e9 notes\r\nline two\n'.encode('utf-8'),
        'docs/terms.pdf': b'%PDF-1.4 not really\n',
        'r\u00e9sum\u00e9.pdf': b'resume',
    }
    for name, data in blobs.items():
        s.write(name, data)
    markers = ''.join('--- attach %s%s\n' % (n, ' application/x-volley-test' if n.startswith('r') else '')
                      for n in blobs)
    b = s.build('From: news@example.test\nSubject: mixed\n\n--- text\n' + text + '--- html\n' + html
                + markers)
    if s.wire(b, 'mixed'):
        m = b.msg
        t.eq(m.get_content_type(), 'multipart/mixed', 'mixed: type')
        parts = list(m.iter_parts())
        t.eq(parts[0].get_content_type(), 'multipart/alternative', 'mixed: the readable part first')
        t.eq(m.get_body(('html',)).get_content(), crlf(html), 'mixed: html body')
        atts = list(m.iter_attachments())
        want = list(blobs)
        t.eq([a.get_filename() for a in atts], [os.path.basename(n) for n in want],
             'mixed: attachments in order, with their names')
        for a, n in zip(atts, want):
            data = blobs[n]
            t.eq(a['Content-Transfer-Encoding'], 'base64', 'mixed: %s in base64' % n)
            t.eq(a.get_payload(decode=True), data, 'mixed: %s comes back byte for byte' % n)
            t.eq(a.get_content_disposition(), 'attachment', 'mixed: %s is an attachment' % n)
        types = {a.get_filename(): a.get_content_type() for a in atts}
        t.eq(types.get('terms.pdf'), 'application/pdf', 'mixed: a content type guessed from .pdf')
        t.eq(types.get('notes.txt'), 'text/plain', 'mixed: .txt')
        t.eq(types.get('big.bin'), 'application/octet-stream', 'mixed: unknown extension')
        t.eq(types.get('r\u00e9sum\u00e9.pdf'), 'application/x-volley-test', 'mixed: a given content type')
        t.check(b'filename*=UTF-8\'\'r%C3%A9sum%C3%A9.pdf' in b.raw, 'mixed: RFC 2231 file name')

    b = s.build('From: news@example.test\nSubject: files\n\n--- attach notes.txt\n--- attach one.bin\n')
    if s.wire(b, 'attachments only'):
        atts = list(b.msg.iter_attachments())
        t.eq([a.get_filename() for a in atts], ['notes.txt', 'one.bin'], 'attachments only: both')
        t.eq(atts[0].get_payload(decode=True), blobs['notes.txt'], 'attachments only: bytes')
        t.check(b.msg.get_body() is None, 'attachments only: no body part')


def international(s):
    t = s.t
    subject = 'Gr\u00fc\u00dfe aus K\u00f6ln \u2013 \u00e9t\u00e9 2024, \u65e5\u672c\u8a9e\u306e\u4ef6\u540d \U0001F600'
    tpl = ('From: "J\u00fcrgen M\u00fcller" <j@b\u00fccher.test>\n'
           'To: Doe, Jane <jane@example.test>\n'
           'Cc: "Ren\u00e9e O\'Brien" <renee@\u4f8b\u5b50.test>, plain@example.test, '
           '"Quote \\"me\\", please" <q@example.test>\n'
           'Reply-To: Support (the desk) <help@example.test>\n'
           'Subject: ' + subject + '\n'
           'X-Campaign: =?not-an-encoded-word?= stays literal\n'
           '\n'
           'T\u00e9l\u00e9phone: \u260e\n')
    b = s.build(tpl)
    if s.wire(b, 'non-ASCII'):
        m = b.msg
        t.check(all(c < 0x80 for c in b.raw), 'non-ASCII: the message is ASCII without SMTPUTF8')
        t.eq(str(m['Subject']), subject, 'non-ASCII: Subject decodes to what went in')
        frm = m['From'].addresses[0]
        t.eq(frm.display_name, 'J\u00fcrgen M\u00fcller', 'non-ASCII: From display name')
        t.eq(frm.addr_spec, 'j@xn--bcher-kva.test', 'non-ASCII: From domain as an A-label')
        t.eq(b.info.get('envelope_from'), 'j@xn--bcher-kva.test', 'non-ASCII: envelope sender A-label')
        to = m['To'].addresses
        t.eq([(a.display_name, a.addr_spec) for a in to], [('Doe, Jane', 'jane@example.test')],
             'non-ASCII: "{{name}} <{{email}}>" with a comma in the name')
        cc = m['Cc'].addresses
        t.eq([(a.display_name, a.addr_spec) for a in cc],
             [('Ren\u00e9e O\'Brien', 'renee@xn--fsqu00a.test'), ('', 'plain@example.test'),
              ('Quote "me", please', 'q@example.test')], 'non-ASCII: Cc list')
        t.eq([(a.display_name, a.addr_spec) for a in m['Reply-To'].addresses],
             [('Support', 'help@example.test')], 'non-ASCII: a comment is not a name')
        t.eq(str(m['X-Campaign']), '=?not-an-encoded-word?= stays literal',
             'non-ASCII: text that looks like an encoded word stays as it was')
        t.eq(m['Content-Transfer-Encoding'], 'quoted-printable', 'non-ASCII: QP without 8BITMIME')
        t.eq(m.get_content(), 'T\u00e9l\u00e9phone: \u260e\r\n', 'non-ASCII: the body')
        t.eq(b.info.get('needs_8bitmime'), '0', 'non-ASCII: needs no 8BITMIME')
        t.eq(b.info.get('needs_smtputf8'), '0', 'non-ASCII: needs no SMTPUTF8')
        words = re.findall(rb'=\?UTF-8\?[BQ]\?[^?]*\?=', b.raw)
        t.check(words and max(len(w) for w in words) <= 75, 'non-ASCII: encoded words of 75 at most')
        for w in words:
            kind, text = w[8:9], w[10:-2]
            try:
                if kind == b'B':
                    import base64
                    base64.b64decode(text).decode('utf-8')
                else:
                    import quopri
                    quopri.decodestring(text.replace(b'_', b' '), header=True).decode('utf-8')
            except UnicodeDecodeError:
                t.check(False, 'non-ASCII: an encoded word splits a UTF-8 sequence', detail=w)

    b = s.build(tpl, '--8bitmime')
    if s.wire(b, '8BITMIME'):
        t.eq(b.msg['Content-Transfer-Encoding'], '8bit', '8BITMIME: 8bit body')
        t.eq(b.msg.get_content(), 'T\u00e9l\u00e9phone: \u260e\r\n', '8BITMIME: the body')
        t.eq(b.info.get('needs_8bitmime'), '1', '8BITMIME: the tool says BODY=8BITMIME')
        t.eq(b.info.get('needs_smtputf8'), '0', '8BITMIME: still no SMTPUTF8')

    b = s.build(tpl, '--8bitmime', '--smtputf8')
    if s.wire(b, 'SMTPUTF8'):
        m = b.msg
        t.check(subject.encode('utf-8') in b.raw, 'SMTPUTF8: the subject as raw UTF-8')
        t.eq(str(m['Subject']), subject, 'SMTPUTF8: Subject')
        frm = m['From'].addresses[0]
        t.eq(unescape(frm.display_name), 'J\u00fcrgen M\u00fcller', 'SMTPUTF8: From display name')
        t.eq(unescape(frm.addr_spec), 'j@b\u00fccher.test', 'SMTPUTF8: the domain kept in UTF-8')
        t.eq(b.info.get('envelope_from'), 'j@b\u00fccher.test', 'SMTPUTF8: envelope sender')
        t.eq(b.info.get('needs_smtputf8'), '1', 'SMTPUTF8: the tool says SMTPUTF8')

    # a non-ASCII local part needs SMTPUTF8
    utf8_local = 'From: \u7528\u6237@example.test\n\nx\n'
    b = s.build(utf8_local)
    t.eq(b.rc, 1, 'non-ASCII local part without SMTPUTF8: refused')
    t.check('needs a server with SMTPUTF8' in b.err, 'non-ASCII local part: the reason', detail=b.err)
    b = s.build(utf8_local, '--smtputf8')
    if s.wire(b, 'non-ASCII local part with SMTPUTF8'):
        t.eq(unescape(b.msg['From'].addresses[0].addr_spec), '\u7528\u6237@example.test',
             'non-ASCII local part with SMTPUTF8: kept')


def long_lines(s):
    t = s.t
    exact = 'x' * 998 + '\n' + 'y' * 10 + '\n'
    b = s.build('From: a@example.test\nSubject: 998\n\n' + exact)
    if s.wire(b, 'a line of 998'):
        t.eq(b.msg['Content-Transfer-Encoding'], '7bit', 'a line of 998: still 7bit')
        t.eq(b.msg.get_content(), crlf(exact), 'a line of 998: the body')
    over = 'z' * 999 + '\n' + ('word ' * 1000) + '\n'
    b = s.build('From: a@example.test\nSubject: 999\n\n' + over)
    if s.wire(b, 'a line of 999'):
        t.eq(b.msg['Content-Transfer-Encoding'], 'quoted-printable', 'a line of 999: QP')
        t.eq(b.msg.get_content(), crlf(over), 'a line of 999: the body')
        body = b.raw.split(b'\r\n\r\n', 1)[1]
        t.check(max(len(x) for x in body.split(b'\r\n')) <= 76, 'a line of 999: QP lines of 76 at most')
    subject = ' '.join('word%d' % i for i in range(120))
    b = s.build('From: a@example.test\nSubject: ' + subject + '\n\nx\n')
    if s.wire(b, 'long subject'):
        t.eq(str(b.msg['Subject']), subject, 'long subject: folded and read back')
        t.check(b.raw.count(b'\r\n ') > 5, 'long subject: folded over several lines')
    one_word = 'w' * 2000
    b = s.build('From: a@example.test\nSubject: ' + one_word + '\n\nx\n')
    if s.wire(b, 'a 2000-octet word'):
        t.eq(str(b.msg['Subject']), one_word, 'a 2000-octet word: encoded words read back')
    folded = 'From: a@example.test\nSubject: a folded\n  template value\n\nx\n'
    b = s.build(folded)
    if s.wire(b, 'folded template header'):
        t.eq(str(b.msg['Subject']), 'a folded  template value', 'folded template header: unfolded')


def unsubscribe(s):
    t = s.t
    url = 'https://unsubscribe.example.test/u/8d9f7a?c=42&r=abc'
    b = s.build('From: a@example.test\n\nx\n', '--unsubscribe', url, '--mailto',
                'mailto:unsub@example.test?subject=unsubscribe')
    if s.wire(b, 'unsubscribe'):
        t.eq(str(b.msg['List-Unsubscribe']),
             '<%s>, <mailto:unsub@example.test?subject=unsubscribe>' % url, 'unsubscribe: both')
        t.eq(str(b.msg['List-Unsubscribe-Post']), 'List-Unsubscribe=One-Click',
             'unsubscribe: RFC 8058 one-click')
    b = s.build('From: a@example.test\n\nx\n', '--mailto', 'mailto:unsub@example.test')
    if s.wire(b, 'unsubscribe by mail'):
        t.eq(str(b.msg['List-Unsubscribe']), '<mailto:unsub@example.test>', 'unsubscribe by mail')
        t.eq(b.msg['List-Unsubscribe-Post'], None, 'unsubscribe by mail: no one-click')
    b = s.build('From: a@example.test\n\nx\n', '--unsubscribe', 'http://insecure.example.test/u')
    t.eq(b.rc, 1, 'unsubscribe over http: refused')
    t.check('https://' in b.err, 'unsubscribe over http: the reason', detail=b.err)


def injection(s):
    t = s.t
    attacks = ['a\\r\\nBcc: evil@attacker.test', 'a\\nBcc: evil@attacker.test',
               'a\\rBcc: evil@attacker.test', 'a\\r\\n\\r\\nInjected body',
               'a\\r\\r\\nBcc: evil@attacker.test', 'a\\n\\tBcc: folded@attacker.test']
    for name in ('X-Test', 'Subject', 'Cc'):
        for attack in attacks:
            value = attack if name != 'Cc' else 'Name ' + attack + ' <c@example.test>'
            b = s.build('From: a@example.test\n\nthe body\n', '--header', '%s: %s' % (name, value))
            what = 'injection in %s (%s)' % (name, attack)
            if not s.wire(b, what):
                continue
            m = b.msg
            t.eq(m.get_all('Bcc'), None, '%s: no Bcc header' % what)
            t.eq(len(m.get_all(name) or []), 1, '%s: one %s header' % (what, name))
            t.eq(m.get_content(), 'the body\r\n', '%s: the body is the body' % what)
            head = b.raw.split(b'\r\n\r\n', 1)[0]
            t.check(b'\r\nBcc:' not in head and b'\r\nInjected' not in head,
                    '%s: nothing starts a header line' % what)
            if name == 'X-Test':
                t.check(str(m['X-Test']).startswith('a ') or str(m['X-Test']).startswith('a\t'),
                        '%s: the value kept on one field' % what, detail=str(m['X-Test']))


def errors(s):
    t = s.t
    cases = [
        ('Subject: x\n\nbody\n', ':2:1: no From header'),
        ('From: a@example.test\nDate: today\n\nx\n', ':2:1: Date is set by volley'),
        ('From: a@example.test\nSubject x\n\nx\n', ':2:1: header line without a colon'),
        ('From: a@example.test\n\n--- text\nx\n--- txt\n', ':5:5: unknown part marker'),
        ('From: a@example.test\n\n--- text\na\n--- text\n', ':5:5: a second text part'),
        ('From: a@example.test\n\n--- attach missing.pdf\n', 'missing.pdf: No such file'),
        ('From: nobody\n\nx\n', "header From: expected '@'"),
    ]
    for tpl, want in cases:
        b = s.build(tpl)
        t.eq(b.rc, 1, 'error %r: exit status 1' % want)
        t.check(want in b.err, 'error %r: said' % want, detail=b.err.strip())
    b = s.build('From: a@example.test\n\nx\n', '--header', 'Content-Type: text/html')
    t.check(b.rc == 1 and 'Content-Type is set by volley' in b.err, 'a Content-Type added: refused',
            detail=b.err.strip())


def unique_ids(s):
    t = s.t
    ids = set()
    for _ in range(20):
        b = s.build('From: a@example.test\n\nx\n', '--domain', 'mail.example.test')
        if b.rc == 0:
            ids.add(b.info.get('message_id'))
    t.eq(len(ids), 20, 'Message-IDs: twenty runs, twenty IDs')
    t.check(all(i.endswith('@mail.example.test>') for i in ids), 'Message-IDs: the given domain')


def speed(s):
    """Not a check: the rate of one core, to watch. A text and an html part
    of about 10 KB each, in lines of 70, then the same in one long line
    (quoted-printable)."""
    line = 'Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eius\n'
    body = line * 150
    for name, text in (('short lines', body), ('one long line', body.replace('\n', ' ') + '\n')):
        tpl = s.write('speed.tpl', 'From: "News" <news@example.test>\nTo: Jane <jane@example.test>\n'
                      'Subject: Hello\n\n--- text\n' + text + '--- html\n<p>' + text + '</p>\n')
        p = subprocess.run([s.tool, '--repeat', '20000', '-o', os.path.join(s.tmp, 'speed.eml'), tpl],
                           capture_output=True, timeout=120)
        print('speed, %s: %s' % (name, p.stderr.decode().strip()))


def main(t):
    s = Suite(t, vtest.binary_from_env('MIME_BUILD_TOOL', 'the built tests/mime_build_tool'), t.work)
    for step in (shapes, international, long_lines, unsubscribe, injection, errors, unique_ids, speed):
        step(s)


if __name__ == '__main__':
    vtest.run_guarded(vtest.Test('mime-email'), main)
