#!/usr/bin/python3
"""`volley render`: the example templates (templates/examples/) rendered with
--vars and with --csv/--row, read back by Python's email package under the
strict policy; header injection, strict mode and error places; --date for
a reproducible Date; and DKIM signatures (keys from `volley dkim-keygen`)
verified by dkimpy with the TXT values keygen printed served through
dnsfunc."""

import email
import email.policy
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vtest  # noqa: E402

EXAMPLES = os.path.join(os.getcwd(), 'templates', 'examples')
DOMAIN = 'volley.test'

NEWS_VARS = {
    'sender_name': 'Volley News',
    'name': 'Zoë Ann',
    'email': 'zoe@example.test',
    'subject': 'Größere Neuigkeiten',
    'intro': 'Fish & chips <b>bold</b> "quoted"',
    'items': [
        {'title': 'First & best', 'url': 'https://example.test/1?a=1&b=2'},
        {'title': 'Second <i>', 'url': 'https://example.test/2'},
    ],
}


def render(t, *args, template='newsletter.tmpl'):
    path = template if os.path.isabs(template) else os.path.join(EXAMPLES, template)
    argv = [t.volley, 'render', '--template', path] + [str(a) for a in args]
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    print('# ran: volley render --template %s %s -> exit %d' % (
        os.path.basename(path), ' '.join(str(a)[:60] for a in args), r.returncode), flush=True)
    return r


def parse(t, out, what):
    """The message, or None after a failed check."""
    lines = out.split(b'\r\n')
    t.check(out.endswith(b'\r\n') and b'\n' not in out.replace(b'\r\n', b''),
            '%s: every line ends in CRLF' % what, None, out[:300])
    t.check(all(len(ln) <= 998 for ln in lines), '%s: no line over 998 octets' % what)
    try:
        return email.message_from_bytes(out, policy=email.policy.strict)
    except Exception as e:  # the strict policy raises on defects
        t.check(False, '%s: parses under email.policy.strict' % what, None, '%s\n%r' % (e, out[:800]))
        return None


def content(part):
    """A text part's decoded content with its line ends as LF (a 7bit part
    keeps the CRLFs it was sent with)."""
    return part.get_content().replace('\r\n', '\n')


def header_names(out):
    head = out.split(b'\r\n\r\n', 1)[0].decode('ascii', 'replace')
    return [m.group(1) for m in re.finditer(r'(?m)^([^ \t:\r\n]+):', head)]


def check_newsletter(t):
    r = render(t, '--vars', json.dumps(NEWS_VARS), '--unsubscribe-url', 'https://example.test/u/abc',
               '--message-id-domain', 'mail.example.test')
    t.check(r.returncode == 0, 'newsletter --vars: exit 0', None, r.stderr)
    m = parse(t, r.stdout, 'newsletter')
    if m is None:
        return
    t.eq(str(m['From']), 'Volley News <news@example.test>', 'newsletter: From')
    t.eq(m['To'].addresses[0].display_name, 'Zoë Ann', 'newsletter: To display name (non-ASCII, decoded)')
    t.eq(m['To'].addresses[0].addr_spec, 'zoe@example.test', 'newsletter: To address')
    t.eq(str(m['Subject']), 'Größere Neuigkeiten', 'newsletter: Subject with non-ASCII, decoded')
    t.check(b'Gr\xc3\xb6' not in r.stdout.split(b'\r\n\r\n', 1)[0],
            'newsletter: no raw UTF-8 in the header without --smtputf8')
    t.check(m['Date'] is not None and m['Date'].datetime is not None, 'newsletter: Date parses', None, m['Date'])
    t.check(re.fullmatch(r'<\d{14}\.[a-z2-7]{26}@mail\.example\.test>', str(m['Message-ID'])) is not None,
            'newsletter: Message-ID with --message-id-domain', None, m['Message-ID'])
    t.eq(str(m['MIME-Version']), '1.0', 'newsletter: MIME-Version')
    t.eq(str(m['List-Unsubscribe']), '<https://example.test/u/abc>', 'newsletter: List-Unsubscribe')
    t.eq(str(m['List-Unsubscribe-Post']), 'List-Unsubscribe=One-Click', 'newsletter: List-Unsubscribe-Post')
    t.eq(str(m['List-Id']), '<news.example.test>', 'newsletter: the template\'s own List-Id')
    t.eq(m.get_content_type(), 'multipart/alternative', 'newsletter: multipart/alternative')
    parts = list(m.iter_parts())
    t.eq([p.get_content_type() for p in parts], ['text/plain', 'text/html'], 'newsletter: text then html')
    if len(parts) != 2:
        return
    text, html = content(parts[0]), content(parts[1])
    t.check('Hello Zoë Ann,' in text and 'Fish & chips <b>bold</b> "quoted"' in text,
            'newsletter text: variables as they are (not HTML-escaped)', None, text)
    t.check('* First & best: https://example.test/1?a=1&b=2\n* Second <i>: https://example.test/2\n' in text,
            'newsletter text: the items section, once per item', None, text)
    t.check('You receive this because zoe@example.test subscribed' in text,
            'newsletter text: the footer partial', None, text)
    t.check('<p>Fish &amp; chips &lt;b&gt;bold&lt;/b&gt; &quot;quoted&quot;</p>' in html,
            'newsletter html: variables HTML-escaped', None, html)
    t.check('<li><a href="https://example.test/1?a=1&amp;b=2">First &amp; best</a></li>' in html and
            '<li><a href="https://example.test/2">Second &lt;i&gt;</a></li>' in html,
            'newsletter html: the items section, escaped', None, html)
    t.check(html.startswith('<!DOCTYPE html>') and '<title>Größere Neuigkeiten</title>' in html and
            '</body>\n</html>' in html, 'newsletter html: the layout with its blocks filled', None, html)

    empty = dict(NEWS_VARS, items=[])
    r = render(t, '--vars', json.dumps(empty))
    m = parse(t, r.stdout, 'newsletter, no items')
    if m is not None:
        text = content(list(m.iter_parts())[0])
        t.check('Nothing new this week.' in text and '* ' not in text,
                'newsletter, no items: the inverted section', None, text)
        t.check(str(m['Message-ID']).endswith('@example.test>'),
                'no --message-id-domain: the Message-ID takes From\'s domain', None, m['Message-ID'])
        t.check(m['List-Unsubscribe'] is None, 'no --unsubscribe-url: no List-Unsubscribe')


def check_text_only(t):
    r = render(t, '--vars', json.dumps({'name': 'Ann', 'email': 'ann@example.test', 'plan': 'pro'}),
               template='welcome.tmpl')
    t.check(r.returncode == 0, 'welcome --vars: exit 0', None, r.stderr)
    m = parse(t, r.stdout, 'welcome')
    if m is None:
        return
    t.eq(m.get_content_type(), 'text/plain', 'welcome: one text/plain part')
    t.eq(content(m), 'Hello Ann,\n\nThank you for signing up for the pro plan.\n'
         'Your account name is ann@example.test.\n\n-- \nThe example.test team\n', 'welcome: body')
    t.eq(header_names(r.stdout), ['Date', 'From', 'To', 'Subject', 'Message-ID', 'MIME-Version',
                                  'Content-Type', 'Content-Transfer-Encoding'], 'welcome: header fields in order')


def check_csv(t):
    csv = os.path.join(EXAMPLES, 'recipients.csv')
    r = render(t, '--csv', csv, '--row', 2, template='welcome.tmpl')
    t.check(r.returncode == 0, 'welcome --csv --row 2: exit 0', None, r.stderr)
    m = parse(t, r.stdout, 'welcome csv row 2')
    if m is not None:
        t.eq(m['To'].addresses[0].display_name, 'Doe, Jane', 'csv row 2: quoted field with a comma in To')
        t.eq(m['To'].addresses[0].addr_spec, 'jane@example.test', 'csv row 2: To address')
        t.check('Thank you for signing up.\n' in content(m),
                'csv row 2: an empty column hides its section', None, content(m))
    r = render(t, '--csv', csv, '--row', 1, template='welcome.tmpl')
    m = parse(t, r.stdout, 'welcome csv row 1')
    if m is not None:
        t.check('for the pro plan.' in content(m) and str(m['Subject']) == 'Welcome, Ann Example!',
                'csv row 1: its own values', None, r.stdout[:500])

    r = render(t, '--csv', csv, '--row', 3, template='welcome.tmpl')
    t.check(r.returncode == 2 and b'recipients.csv: no data row 3 (the file has 2)' in r.stderr,
            'csv: a row past the end: exit 2, says so', None, r.stderr)
    r = render(t, '--csv', csv, template='welcome.tmpl')
    t.check(r.returncode == 1 and b'--row' in r.stderr, 'csv without --row: exit 1 (usage)', None, r.stderr)
    bad = os.path.join(t.work, 'bad.csv')
    with open(bad, 'w') as f:
        f.write('name,email,plan\nAnn,ann@example.test\n')
    r = render(t, '--csv', bad, '--row', 1, template='welcome.tmpl')
    t.check(r.returncode == 2 and b"row 1 has 2 fields, the header 3 (no 'plan')" in r.stderr,
            'csv: a short row names the row and the missing column', None, r.stderr)
    dotted = os.path.join(t.work, 'dotted.csv')
    with open(dotted, 'w') as f:
        f.write('customer.email,customer.name,order.id\nkim@example.test,"Kim, Lee",A-7\n')
    tmpl = os.path.join(t.work, 'dotted.tmpl')
    with open(tmpl, 'w') as f:
        f.write('From: shop@example.test\nTo: {{customer.email}}\nSubject: Order {{order.id}}\n\n'
                'Dear {{#customer}}{{name}}{{/customer}}, order {{order.id}} shipped.\n')
    r = render(t, '--csv', dotted, '--row', 1, '--strict', template=tmpl)
    m = parse(t, r.stdout, 'dotted csv') if r.returncode == 0 else None
    t.check(m is not None and str(m['Subject']) == 'Order A-7' and
            content(m) == 'Dear Kim, Lee, order A-7 shipped.\n',
            'csv: dotted names read dotted column headers (--strict)', None, r.stdout[:400] + r.stderr)
    with open(bad, 'w') as f:
        f.write('name,email,plan\nAnn,"ann@example.test\n')
    r = render(t, '--csv', bad, '--row', 1, template='welcome.tmpl')
    t.check(r.returncode == 2 and re.search(rb'bad\.csv:\d+:\d+: ', r.stderr) is not None,
            'csv: an unterminated quote names file:line:col', None, r.stderr)


def check_attachment(t):
    r = render(t, '--vars', json.dumps({'name': 'Ann', 'email': 'ann@example.test', 'invoice': 'F-17',
                                        'amount': '12.50 EUR'}), template='invoice.tmpl')
    t.check(r.returncode == 0, 'invoice: exit 0', None, r.stderr)
    m = parse(t, r.stdout, 'invoice')
    if m is None:
        return
    t.eq(m.get_content_type(), 'multipart/mixed', 'invoice: multipart/mixed')
    parts = list(m.iter_parts())
    t.eq([p.get_content_type() for p in parts], ['text/plain', 'application/pdf', 'text/plain'],
         'invoice: text, then the two attachments')
    if len(parts) != 3:
        return
    t.check('your invoice F-17 for 12.50 EUR is attached.' in content(parts[0]), 'invoice: text part')
    for p, name in ((parts[1], 'invoice.pdf'), (parts[2], 'terms.txt')):
        with open(os.path.join(EXAMPLES, name), 'rb') as f:
            want = f.read()
        t.eq(p.get_filename(), name, 'invoice: attachment file name %s' % name)
        t.check(p.is_attachment() and p.get_payload(decode=True) == want,
                'invoice: %s decodes to the file\'s bytes' % name)


def check_injection(t):
    evil = dict(NEWS_VARS, subject='Hi\r\nBcc: victim@example.test\r\nX-Evil: 1',
                name='Ann\r\nCc: other@example.test')
    r = render(t, '--vars', json.dumps(evil))
    t.check(r.returncode in (0, 2), 'injection: exit 0 or 2', None, r.stderr)
    names = [n.lower() for n in header_names(r.stdout)]
    t.check('bcc' not in names and 'x-evil' not in names and 'cc' not in names,
            'injection: a CRLF in a variable starts no header field', None, r.stdout[:600])
    m = parse(t, r.stdout, 'injection') if r.returncode == 0 else None
    if m is not None:
        t.eq(str(m['Subject']), 'Hi Bcc: victim@example.test X-Evil: 1',
             'injection: the CRLFs became spaces inside Subject')


def check_errors(t):
    strict_vars = dict(NEWS_VARS)
    del strict_vars['intro']
    r = render(t, '--vars', json.dumps(strict_vars), '--strict')
    tpl = os.path.join(EXAMPLES, 'newsletter.tmpl')
    t.check(r.returncode == 2 and ("%s:9:1: no value for 'intro'" % tpl).encode() in r.stderr and not r.stdout,
            '--strict: a missing variable fails with file:line:col naming it', None, r.stderr)
    r = render(t, '--vars', json.dumps(strict_vars))
    t.check(r.returncode == 0, 'without --strict the same data renders', None, r.stderr)
    bad = os.path.join(t.work, 'bad.tmpl')
    with open(bad, 'w') as f:
        f.write('From: a@example.test\nSubject: fine\n  and {{#open}} never closed\n\n--- text\nhi\n')
    r = render(t, '--vars', '{}', template=bad)
    t.check(r.returncode == 2 and ("%s:3:7: unclosed section 'open'" % bad).encode() in r.stderr,
            'a template error in a folded header names file:line:col', None, r.stderr)
    with open(bad, 'w') as f:
        f.write('From: a@example.test\nSubject: fine\n\n--- text\nhi\n--- html\n<p>\n  {{name}\n')
    r = render(t, '--vars', '{}', template=bad)
    t.check(r.returncode == 2 and ('%s:8:3: ' % bad).encode() in r.stderr,
            'a template error in the html part names file:line:col', None, r.stderr)
    r = render(t, '--vars', '[1]')
    t.check(r.returncode == 2 and b'not a JSON object' in r.stderr, '--vars not an object: exit 2', None, r.stderr)
    r = render(t)
    t.check(r.returncode == 1, 'no data: exit 1 (usage)', None, r.stderr)
    r = subprocess.run([t.volley, 'render', '--help'], stdout=subprocess.PIPE, timeout=30)
    opts = ['--template', '--vars', '--csv', '--row', '--strict', '--dkim-key', '--dkim-domain',
            '--dkim-selector', '--unsubscribe-url', '--unsubscribe-mailto', '--message-id-domain',
            '--8bitmime', '--smtputf8', '--date']
    t.check(r.returncode == 0 and all(o.encode() in r.stdout for o in opts),
            'render --help: exit 0, lists every option', None, r.stdout)


DATE = 1700000000
DATE_TEXT = 'Tue, 14 Nov 2023 22:13:20 +0000'


def check_date(t):
    """--date: the Date header and the Message-ID's time come from the given
    seconds, so that two renders of the same data agree; bad values are usage
    errors."""
    texts, dates = [], []
    for _ in range(2):
        r = render(t, '--vars', json.dumps(NEWS_VARS), '--date', DATE)
        t.check(r.returncode == 0, '--date: exit 0', None, r.stderr)
        m = parse(t, r.stdout, '--date')
        if m is None:
            return
        dates.append(str(m['Date']))
        texts.append(content(list(m.iter_parts())[0]))
        t.check(str(m['Message-ID']).startswith('<20231114221320.'),
                '--date: the Message-ID\'s time is the given one', None, m['Message-ID'])
    t.eq(dates, [DATE_TEXT, DATE_TEXT], '--date: two renders, the same Date header')
    t.eq(texts[0], texts[1], '--date: two renders of the same data, the same text')
    r = render(t, '--vars', json.dumps(NEWS_VARS), '--date', DATE + 86400 + 61)
    m = parse(t, r.stdout, '--date, a day later')
    if m is not None:
        t.eq(str(m['Date']), 'Wed, 15 Nov 2023 22:14:21 +0000', '--date: another time, another Date')
    csv = os.path.join(EXAMPLES, 'recipients.csv')
    heads = [render(t, '--csv', csv, '--row', 1, '--date', 0, template='welcome.tmpl').stdout
             for _ in range(2)]
    t.check(all(b'\r\nDate: Thu, 01 Jan 1970 00:00:00 +0000\r\n' in b'\r\n' + h for h in heads),
            '--date 0 with --csv: the Date of 1970', None, heads[0][:300])
    for bad in ('-1', 'soon', '12x', '253402300800', ''):
        r = render(t, '--vars', json.dumps(NEWS_VARS), '--date', bad)
        t.check(r.returncode == 1 and b'--date' in r.stderr and not r.stdout,
                '--date %r: exit 1 (usage), says --date' % bad, None, r.stderr)


class Keys:
    def __init__(self, t):
        self.t, self.records, self.files = t, {}, {}

    def make(self, selector, kind):
        path = os.path.join(self.t.work, selector + '.pem')
        r = subprocess.run([self.t.volley, 'dkim-keygen', '--domain', DOMAIN, '--selector', selector,
                            '--type', kind, '--out', path], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=120)
        lines = r.stdout.decode().splitlines()
        if not self.t.check(r.returncode == 0 and len(lines) == 2, 'dkim-keygen %s' % kind, None, r.stderr):
            return None
        self.records[('%s._domainkey.%s.' % (selector, DOMAIN)).encode()] = lines[1].encode()
        self.files[selector] = path
        return path

    def dns(self, name, timeout=5):
        return self.records.get(name)


def check_dkim(t):
    try:
        import dkim
    except ImportError:
        t.check(False, 'python3-dkim (dkimpy) is installed')
        return
    keys = Keys(t)
    if not keys.make('rsa1', 'rsa') or not keys.make('ed1', 'ed25519'):
        return

    def sign_args(*sels):
        a = []
        for s in sels:
            a += ['--dkim-key', keys.files[s], '--dkim-domain', DOMAIN, '--dkim-selector', s]
        return a

    def verify(msg, idx):
        try:
            return dkim.DKIM(msg).verify(idx=idx, dnsfunc=keys.dns)
        except dkim.DKIMException as e:
            print('# dkimpy: %s' % e)
            return False

    for sels in (['rsa1'], ['ed1'], ['rsa1', 'ed1']):
        what = 'DKIM ' + '+'.join(sels)
        r = render(t, '--vars', json.dumps(NEWS_VARS), '--unsubscribe-url', 'https://example.test/u/1',
                   *sign_args(*sels))
        t.check(r.returncode == 0, '%s: exit 0' % what, None, r.stderr)
        head = r.stdout.split(b'\r\n\r\n', 1)[0]
        t.eq(len(re.findall(rb'(?m)^DKIM-Signature:', head)), len(sels), '%s: signatures on top' % what)
        t.check(r.stdout.startswith(b'DKIM-Signature:'), '%s: the first field is a DKIM-Signature' % what)
        for i, s in enumerate(sels):
            t.check(verify(r.stdout, i), '%s: signature %d (%s) verifies with dkimpy' % (what, i, s))
        t.check(parse(t, r.stdout, what) is not None, '%s: still parses' % what)
        tampered = r.stdout.replace(b'Hello Zo', b'Hello Xo')
        t.check(not any(verify(tampered, i) for i in range(len(sels))), '%s: a changed body fails' % what)
    sig = render(t, '--vars', json.dumps(NEWS_VARS), '--unsubscribe-url', 'https://example.test/u/1',
                 *sign_args('ed1')).stdout.split(b'\r\n\r\n', 1)[0].replace(b'\r\n ', b'').replace(b'\r\n\t', b'')
    hm = re.search(rb'h=([^;]*);', sig)
    signed = [h.lower() for h in hm.group(1).decode().split(':')] if hm else []
    t.check(all(h in signed for h in ('from', 'to', 'subject', 'date', 'message-id', 'list-unsubscribe',
                                      'list-unsubscribe-post', 'mime-version', 'content-type')),
            'DKIM: h= covers the headers that matter', None, signed)
    r = render(t, '--vars', json.dumps(NEWS_VARS), '--date', DATE, *sign_args('ed1'))
    head = r.stdout.split(b'\r\n\r\n', 1)[0].replace(b'\r\n ', b' ').replace(b'\r\n\t', b' ')
    tm = re.search(rb'^DKIM-Signature:.*[;\s]t=(\d+);', head, re.M)
    t.check(tm is not None and int(tm.group(1)) == DATE and verify(r.stdout, 0),
            'DKIM with --date: t= is the given time and the signature verifies', None, head[:400])
    csv = os.path.join(EXAMPLES, 'recipients.csv')
    r = render(t, '--csv', csv, '--row', 2, *sign_args('rsa1', 'ed1'), template='invoice.tmpl')
    t.check(r.returncode == 0 and verify(r.stdout, 0) and verify(r.stdout, 1),
            'DKIM: CSV row with attachments, both signatures verify', None, r.stderr)
    r = render(t, '--vars', '{}', '--dkim-key', keys.files['rsa1'], template='welcome.tmpl')
    t.check(r.returncode == 1, 'DKIM: a key without domain and selector is a usage error', None, r.stderr)


def main(t):
    check_newsletter(t)
    check_text_only(t)
    check_csv(t)
    check_attachment(t)
    check_injection(t)
    check_errors(t)
    check_date(t)
    check_dkim(t)


if __name__ == '__main__':
    vtest.run_guarded(vtest.Test('render'), main, limit=280)
