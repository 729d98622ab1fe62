#!/usr/bin/python3
"""`volley send`: a CSV batch through volley sink (STARTTLS verified against
the sink's certificate, fault rules keyed on the recipient, Maildir), with
the delivery log read back: every row's outcome, the reply behind it, its
class, retries, the suppression list, bad rows named by file and line, a
header injection through a variable, DKIM signatures checked by dkimpy,
resuming from the log, and a send killed mid-way (SIGKILL and SIGTERM) then
finished from its log with every row delivered at least once."""

import csv
import email
import email.policy
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vtest  # noqa: E402
from volley_sink import VolleySink, maildir_messages, stop_and_check  # noqa: E402

ROOT = os.path.join(os.path.dirname(vtest.HERE), '..')
FAULTS = os.path.abspath(os.path.join(ROOT, 'bench', 'rules', 'faults.rules'))
GMAIL = os.path.abspath(os.path.join(ROOT, 'bench', 'rules', 'gmail.rules'))

TEMPLATE = """From: "Volley News" <news@example.test>
To: {{name}} <{{email}}>
Subject: Your code, {{name}}

Hello {{name}},
your code is {{code}}.
"""


class Send:
    """One run of `volley send`, its summary and its log."""

    def __init__(self, argv, rc, out, err, log):
        self.argv, self.rc, self.out, self.err = argv, rc, out, err
        self.summary = {}
        for line in out.splitlines():
            k, _, v = line.partition(' ')
            self.summary[k] = v
        self.events = []
        self.start_lines = 0
        if os.path.exists(log):
            with open(log) as f:
                for line in f:
                    ev = json.loads(line)
                    if ev.get('event') == 'start':
                        self.start_lines += 1
                    else:
                        self.events.append(ev)

    def n(self, key):
        return int(self.summary.get(key, '-1'))

    def final(self):
        """Each row's final event (the last one that is not deferred)."""
        out = {}
        for ev in self.events:
            if ev['outcome'] != 'deferred':
                out.setdefault(ev['row'], []).append(ev)
        return out

    def describe(self):
        return 'argv: %s\nexit %d\nstdout:\n%s\nstderr:\n%s' % (
            ' '.join(self.argv[1:]), self.rc, self.out, self.err[-3000:])


def run_send(t, workdir, *args, template='t.tmpl', csv_name='rows.csv', log='send.log', wait=True,
             timeout=180):
    argv = [t.volley, 'send', '--template', os.path.join(workdir, template),
            '--csv', os.path.join(workdir, csv_name), '--log', os.path.join(workdir, log)] + \
        [str(a) for a in args]
    if not wait:
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    s = Send(argv, r.returncode, r.stdout.decode(), r.stderr.decode(), os.path.join(workdir, log))
    print('# ran: volley send ... -> exit %d; %s' % (s.rc, ' '.join('%s=%s' % kv for kv in s.summary.items())),
          flush=True)
    return s


def write(path, text):
    with open(path, 'w', newline='') as f:
        f.write(text)


def outcomes(t, s):
    d = t.peerdir('outcomes')
    write(os.path.join(d, 't.tmpl'), TEMPLATE)
    write(os.path.join(d, 'strict.tmpl'), TEMPLATE.replace('{{code}}', '{{code}} {{missing}}'))
    rows = [
        ('email', 'name', 'code'),
        ('ok1@dest.test', 'Ann', '101'),                      # 1 delivered
        ('perm@dest.test', 'Bob', '102'),                     # 2 550 5.1.1: bounced, suppressed
        ('grey@dest.test', 'Cy', '103'),                      # 3 greylisted, then delivered
        ('later@dest.test', 'Dee', '104'),                    # 4 451 after the body every time: expired
        ('spam@dest.test', 'Eve', '105'),                     # 5 554 5.7.1 spam: failed, not suppressed
        ('', 'Fay', '106'),                                   # 6 no address: invalid
        ('listed@dest.test', 'Gus', '107'),                   # 7 on the suppression list
        ('ok2@dest.test', 'Hal\r\nBcc: victim@evil.test', '108'),  # 8 an injection attempt
        ('ok3@dest.test', 'Ivy', '109'),                      # 9 delivered
    ]
    with open(os.path.join(d, 'rows.csv'), 'w', newline='') as f:
        w = csv.writer(f, lineterminator='\n')
        w.writerows(rows)
        f.write('ok4@dest.test,Jo\n')                        # 10 two fields of three
        f.write('ok5@dest.test,Kim,"11"0\n')                 # 11 a quote inside a quoted field
        f.write('ok6@dest.test,"Lee\nmultiline",112\n')     # 12 a quoted line end: delivered
    write(os.path.join(d, 'suppressed.txt'), '# earlier bounces\nLISTED@dest.test\n')
    common = ('--relay', s.url(), '--ca', s.cert, '--suppress', os.path.join(d, 'suppressed.txt'),
              '--retry-delay', '0.2', '--max-attempts', '3', '--connections', '2')
    r = run_send(t, d, *common)
    t.eq(r.rc, 3, 'exit 3: every row final, some not delivered', r)
    t.eq(r.start_lines, 1, 'the log starts with a start line', r)
    fin = r.final()
    t.eq(sorted(fin), list(range(1, 13)), 'every row from 1 to 12 has a final outcome', r)
    t.check(all(len(v) == 1 for v in fin.values()), 'no row has two final outcomes', r, fin)

    def outcome(row):
        return fin.get(row, [{}])[0]
    want = {1: 'delivered', 2: 'bounced', 3: 'delivered', 4: 'expired', 5: 'failed', 6: 'invalid',
            7: 'suppressed', 8: 'delivered', 9: 'delivered', 10: 'invalid', 11: 'invalid', 12: 'delivered'}
    got = {row: outcome(row).get('outcome') for row in want}
    t.eq(got, want, 'each row its outcome', r)

    ev = outcome(2)
    t.check((ev.get('code'), ev.get('enhanced'), ev.get('phase'), ev.get('class'), ev.get('action')) ==
            (550, '5.1.1', 'rcpt', 'invalid_recipient', 'hard') and 'User unknown' in ev.get('text', ''),
            'the bounce carries its reply, phase, class and action', r, ev)
    ev = outcome(5)
    t.check((ev.get('code'), ev.get('phase'), ev.get('class'), ev.get('action')) ==
            (554, 'body', 'content_spam', 'block'), 'the spam refusal is failed, class content_spam', r, ev)
    ev = outcome(4)
    t.check(ev.get('attempt') == 3 and ev.get('code') == 451 and ev.get('class') == 'transient_failure',
            'the row deferred every time expires after its 3rd attempt', r, ev)
    defer4 = [e for e in r.events if e['row'] == 4 and e['outcome'] == 'deferred']
    t.check(len(defer4) == 2 and all('retry_at' in e for e in defer4),
            'its first two attempts are logged as deferred, each with retry_at', r, defer4)
    grey = [e for e in r.events if e['row'] == 3]
    t.check([e['outcome'] for e in grey] == ['deferred', 'delivered'] and grey[0].get('class') == 'greylisted'
            and grey[1].get('attempt') == 2, 'greylisted: deferred (class greylisted), then delivered on attempt 2',
            r, grey)
    ok = outcome(1)
    t.check(ok.get('code') == 250 and ok.get('tls', '').startswith('TLS') and ok.get('message_id', '').startswith('<')
            and ok.get('rcpt') == 'ok1@dest.test', 'a delivery names its 250, TLS version and Message-ID', r, ok)
    t.check('rows.csv:7:' in outcome(6).get('text', '') and 'address column is empty' in outcome(6).get('text', ''),
            'a row without an address is invalid, named by file and line', r, outcome(6))
    t.check('rows.csv:12: row 10 has 2 fields, the header 3' in outcome(10).get('text', ''),
            'a short row is invalid, named by file, line and row', r, outcome(10))
    t.check('rows.csv:13:' in outcome(11).get('text', ''), 'a CSV syntax error names file:line:column', r,
            outcome(11))
    t.eq(outcome(7).get('attempt'), 0, 'a suppressed row is never attempted', r)

    with open(os.path.join(d, 'suppressed.txt')) as f:
        listed = [x.strip() for x in f if x.strip() and not x.startswith('#')]
    t.eq(listed, ['LISTED@dest.test', 'perm@dest.test'], 'the hard bounce is added to the suppression list')

    msgs = maildir_messages(s.maildir)
    got_rcpts = sorted(a for m in msgs for a in m['rcpt_to'])
    t.eq(got_rcpts, ['grey@dest.test', 'ok1@dest.test', 'ok2@dest.test', 'ok3@dest.test', 'ok6@dest.test'],
         'the sink stored exactly the delivered rows, once each')
    by_rcpt = {m['rcpt_to'][0]: m for m in msgs if m['rcpt_to']}
    m = by_rcpt.get('ok1@dest.test')
    if t.check(m is not None, 'ok1 arrived'):
        parsed = email.message_from_bytes(m['data'], policy=email.policy.strict)
        t.eq(str(parsed['Subject']), 'Your code, Ann', 'the subject is personalised')
        t.check('your code is 101' in parsed.get_content(), 'the body is personalised')
        t.eq(m['mail_from'], 'news@example.test', 'the envelope sender is the template\'s From')
        t.eq(m['tls'] is not None, True, 'it went over TLS')
    m = by_rcpt.get('ok2@dest.test')
    if t.check(m is not None, 'the row with CRLF in a variable arrived'):
        heads = m['data'].split(b'\r\n\r\n', 1)[0]
        t.check(b'\r\nBcc:' not in heads and b'victim@evil.test' not in m['rcpt_to'][0].encode(),
                'a variable holding CRLF starts no header and adds no recipient', None, heads)

    # The same send again: every row was final, nothing is sent.
    before = len(msgs)
    r2 = run_send(t, d, *common)
    t.check(r2.n('skipped') == 12 and r2.n('attempts') == 0 and r2.rc == 3,
            'again with the same log: all 12 rows skipped, nothing attempted, still exit 3', r2)
    t.eq(len(maildir_messages(s.maildir)), before, 'nothing more reached the sink')

    # --strict: a row the template needs a variable of is invalid, with the
    # template's file, line and column.
    r3 = run_send(t, d, *common, '--strict', template='strict.tmpl', log='strict.log')
    ev = r3.final().get(1, [{}])[0]
    t.check(ev.get('outcome') == 'invalid' and 'strict.tmpl:6:' in ev.get('text', '') and
            "'missing'" in ev.get('text', ''), '--strict: a missing variable makes the row invalid (file:line:col)',
            r3, ev)

    # A log that belongs to another CSV file is refused.
    write(os.path.join(d, 'other.csv'), 'email,name,code\nx@dest.test,X,1\n')
    r4 = run_send(t, d, *common, csv_name='other.csv')
    t.check(r4.rc == 2 and 'belongs to a send of' in r4.err, 'a log of another CSV file is refused (exit 2)', r4)

    # Usage and setup errors.
    r5 = run_send(t, d, '--relay', s.url(), '--to-column', 'mail')
    t.check(r5.rc == 2 and "no column named 'mail'" in r5.err, 'an unknown --to-column: exit 2, says which', r5)
    r6 = run_send(t, d)
    t.check(r6.rc == 1 and '--relay' in r6.err, 'no --relay: exit 1 (usage)', r6)


def relay_trouble(t, s):
    """Trouble with the relay is no row's fault: a certificate that does
    not verify stops the send (exit 4) with no row logged, and the same
    send with --ca then delivers them all; a relay that does not answer
    leaves every row waiting, none final."""
    d = t.peerdir('relay')
    many_rows(d, 50)
    # (the fault rules answer a 4th message on a session with 421)
    r = run_send(t, d, '--relay', s.url(), '--per-connection', '3')   # STARTTLS offered, no --ca
    t.check(r.rc == 4 and 'certificate verify failed' in r.err and '(the send stops)' in r.err,
            'an unverified certificate stops the send: exit 4, the reason on stderr', r)
    t.eq([e for e in r.events if e['outcome'] != 'deferred'], [], 'no row is logged final for it', r)
    r = run_send(t, d, '--relay', s.url(), '--ca', s.cert, '--per-connection', '3')
    t.check(r.rc == 0 and r.n('delivered') == 50, 'with --ca, the same log: all 50 delivered (exit 0)', r)

    port = vtest.peerlib.free_port()   # nothing listens there
    d = t.peerdir('down')
    many_rows(d, 50)
    p = run_send(t, d, '--relay', 'smtp://127.0.0.1:%d' % port, '--retry-delay', '0.2', wait=False)
    time.sleep(1.5)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    r = Send(p.args, p.returncode, out.decode(), err.decode(), os.path.join(d, 'send.log'))
    t.check(r.rc == 4 and 'rows wait and go again' in r.err,
            'a relay that refuses connections: rows wait, SIGTERM stops with exit 4', r)
    t.eq([e for e in r.events if e['outcome'] != 'deferred'], [],
         'no row is logged final while the relay is unreachable', r)


def many_rows(d, n, template=TEMPLATE):
    write(os.path.join(d, 't.tmpl'), template)
    with open(os.path.join(d, 'rows.csv'), 'w', newline='') as f:
        f.write('email,name,code\n')
        for i in range(1, n + 1):
            f.write('user%d@dest.test,User %d,%d\n' % (i, i, 1000 + i))


def delivered_rows(events):
    return {e['row'] for e in events if e['outcome'] == 'delivered'}


def killed(t, volley, sig, label):
    """A send stopped by sig mid-way, then finished from its log."""
    n = 3000
    d = t.peerdir('kill-%s' % label)
    many_rows(d, n)
    # Every reply a little late, so that the send is still running when it is stopped.
    s = t.start(VolleySink(volley, t.peerdir('sink-%s' % label),
                           ['--no-starttls', '--maildir', os.path.join(d, 'maildir'), '--delay', '1']))
    args = ('--relay', s.url(), '--connections', '2', '--max-inflight', '8')
    p = run_send(t, d, *args, wait=False)
    log = os.path.join(d, 'send.log')
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:   # wait until some rows are delivered
        if os.path.exists(log) and os.path.getsize(log) > 20000:
            break
        time.sleep(0.02)
    p.send_signal(sig)
    out, err = p.communicate(timeout=60)
    first = Send(p.args, p.returncode, out.decode(), err.decode(), log)
    done_first = delivered_rows(first.events)
    if sig == signal.SIGKILL:
        t.eq(p.returncode, -signal.SIGKILL, '%s: the send was killed' % label)
    else:
        t.eq(p.returncode, 4, '%s: the send stops with exit 4 (work left)' % label, first)
    t.check(0 < len(done_first) < n, '%s: it was stopped mid-way (%d of %d delivered)' % (label, len(done_first), n),
            first)
    r = run_send(t, d, *args)
    t.eq(r.rc, 0, '%s: run again with the same log, it finishes (exit 0)' % label, r)
    t.eq(r.n('skipped'), len({e['row'] for e in first.events if e['outcome'] != 'deferred'}),
         '%s: the second run skips exactly the rows the first one logged' % label, r)
    lost = set(range(1, n + 1)) - delivered_rows(r.events)
    t.check(not lost, '%s: the log has every row delivered' % label, r, 'not delivered: %s' % sorted(lost)[:20])
    msgs = maildir_messages(os.path.join(d, 'maildir'))
    got = {}
    for m in msgs:
        for a in m['rcpt_to']:
            got[a] = got.get(a, 0) + 1
    missing = [i for i in range(1, n + 1) if ('user%d@dest.test' % i) not in got]
    dups = sum(c - 1 for c in got.values())
    t.check(not missing, '%s: the sink got every one of the %d rows at least once' % (label, n), None,
            'missing rows %s' % missing[:20])
    window = 2 * 8 * 2
    if sig == signal.SIGKILL:
        t.check(dups <= window, '%s: sent twice at most what was in flight (%d <= %d)' % (label, dups, window))
    else:
        t.eq(dups, 0, '%s: stopped gracefully, no row was sent twice' % label)
    s.stop()


def throttled(t):
    """gmail.rules: above 100 messages a second MAIL gets 421 4.7.28; those
    rows are deferred as rate_limited, and all arrive in the end."""
    n = 400
    d = t.peerdir('throttle')
    many_rows(d, n)
    s = t.start(VolleySink(t.volley, t.peerdir('sink-gmail'), ['--rules', GMAIL, '--no-starttls']))
    r = run_send(t, d, '--relay', s.url(), '--retry-delay', '0.3', '--max-retry-delay', '1',
                 '--max-attempts', '30', '--rate', '1000')
    t.eq(r.rc, 0, 'throttled: every row delivered in the end (exit 0)', r)
    lost = set(range(1, n + 1)) - delivered_rows(r.events)
    t.check(not lost, 'throttled: each row delivered', r, 'not delivered: %s' % sorted(lost)[:20])
    limited = [e for e in r.events if e['outcome'] == 'deferred']
    t.check(limited and all(e.get('class') == 'rate_limited' and e.get('action') == 'throttle' and e.get('code') == 421
                            for e in limited),
            'throttled: %d attempts deferred, all 421 rate_limited/throttle' % len(limited), r, limited[:3])
    s.stop()


def signed(t):
    """DKIM: two signatures (RSA and Ed25519) on every message of a send,
    verified by dkimpy with the keys volley dkim-keygen made."""
    try:
        import dkim
    except ImportError:
        t.check(False, 'python3-dkim (dkimpy) is installed')
        return
    d = t.peerdir('dkim')
    many_rows(d, 20)
    records, args = {}, []
    for sel, kind in (('rsa', 'rsa'), ('ed', 'ed25519')):
        path = os.path.join(d, sel + '.pem')
        k = subprocess.run([t.volley, 'dkim-keygen', '--domain', 'example.test', '--selector', sel, '--type', kind,
                            '--out', path], stdout=subprocess.PIPE, timeout=120)
        records[('%s._domainkey.example.test.' % sel).encode()] = k.stdout.decode().splitlines()[1].encode()
        args += ['--dkim-key', path, '--dkim-domain', 'example.test', '--dkim-selector', sel]
    s = t.start(VolleySink(t.volley, t.peerdir('sink-dkim'),
                           ['--no-starttls', '--maildir', os.path.join(d, 'maildir')]))
    r = run_send(t, d, '--relay', s.url(), *args)
    t.eq(r.rc, 0, 'signed: all 20 delivered', r)
    msgs = maildir_messages(os.path.join(d, 'maildir'))
    good = 0
    for m in msgs:
        try:
            good += all(dkim.DKIM(m['data']).verify(idx=i, dnsfunc=lambda name, timeout=5: records.get(name))
                        for i in (0, 1))
        except dkim.DKIMException as e:
            print('# dkimpy: %s' % e)
    t.check(len(msgs) == 20 and good == 20, 'signed: both signatures of all 20 messages verify (%d)' % good)
    s.stop()


def main(t):
    s = t.start(VolleySink(t.volley, t.peerdir('faults'),
                           ['--rules', FAULTS, '--maildir', os.path.join(t.work, 'maildir')]))
    s.maildir = os.path.join(t.work, 'maildir')
    outcomes(t, s)
    relay_trouble(t, s)
    killed(t, t.volley, signal.SIGKILL, 'SIGKILL')
    killed(t, t.volley, signal.SIGTERM, 'SIGTERM')
    throttled(t)
    signed(t)
    stop_and_check(t)


if __name__ == '__main__':
    vtest.run_guarded(vtest.Test('send'), main)
