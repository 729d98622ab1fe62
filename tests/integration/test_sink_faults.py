#!/usr/bin/python3
"""Every kind of fault volley sink injects (bench/rules/faults.rules, and the
Gmail and Yahoo examples), seen through volley's own client: `volley probe`
with several recipients (one outcome line per recipient) and `volley bench`
(counts). Also --delay and --max-rate."""

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vtest  # noqa: E402
from volley_sink import VolleySink, stop_and_check  # noqa: E402

RULES = os.path.join(os.path.dirname(vtest.HERE), '..', 'bench', 'rules')


def rules(name):
    return os.path.abspath(os.path.join(RULES, name))


def bench(t, port, *args):
    argv = [t.volley, 'bench', 'smtp://127.0.0.1:%d' % port, '--size', '1k', '--json'] + [str(a) for a in args]
    t0 = time.monotonic()
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=180)
    elapsed = time.monotonic() - t0
    print('# ran: %s -> exit %d (%.2fs)' % (' '.join(argv[1:]), r.returncode, elapsed), flush=True)
    try:
        out = json.loads(r.stdout.decode())
    except ValueError:
        out = {'error': r.stdout.decode() + r.stderr.decode()[-1000:]}
    return out, elapsed


def per_recipient(t, s):
    # Each probe runs on its own session: after=3 never trips here.
    p = t.probe(s.url(), '--from', 'sender@volley.test',
                '--to', 'ok@dest.test,perm@dest.test,temp@dest.test,grey@dest.test')
    t.all_rcpts_reported(p, ['ok@dest.test', 'perm@dest.test', 'temp@dest.test', 'grey@dest.test'])
    t.rcpt(p, 'ok@dest.test', 'ok', code=250)
    t.rcpt(p, 'perm@dest.test', 'permfail', code=550, enhanced='5.1.1', phase='rcpt', text_has='User unknown')
    t.rcpt(p, 'temp@dest.test', 'tempfail', code=450, enhanced='4.2.1', phase='rcpt')
    t.rcpt(p, 'grey@dest.test', 'tempfail', code=451, enhanced='4.7.1', phase='rcpt', text_has='Greylisted')
    t.eq(p.rc, 6, 'rules at RCPT: probe exit 6 (a recipient not delivered)', p)
    # Greylisting: the same (sender, recipient) pair is accepted the second time;
    # another sender is greylisted again.
    p = t.probe(s.url(), '--from', 'sender@volley.test', '--to', 'grey@dest.test')
    t.rcpt(p, 'grey@dest.test', 'ok', code=250)
    p = t.probe(s.url(), '--from', 'other@volley.test', '--to', 'grey@dest.test')
    t.rcpt(p, 'grey@dest.test', 'tempfail', code=451, enhanced='4.7.1')


def at_data_and_body(t, s):
    for extra, what in (([], 'BDAT'), (['--no-chunking'], 'DATA')):
        p = t.probe(s.url(), '--to', 'datafail@dest.test,ok@dest.test', *extra)
        for r in ('datafail@dest.test', 'ok@dest.test'):
            t.rcpt(p, r, 'permfail', code=554, enhanced='5.7.1', text_has='refused at DATA')
        p = t.probe(s.url(), '--to', 'spam@dest.test', *extra)
        t.rcpt(p, 'spam@dest.test', 'permfail', code=554, enhanced='5.7.1', phase='body', text_has='spam')
        p = t.probe(s.url(), '--to', 'later@dest.test', *extra)
        t.rcpt(p, 'later@dest.test', 'tempfail', code=451, enhanced='4.3.0', phase='body')
        t.eq(p.rc, 7, 'body 451 with %s: exit 7 (message data refused)' % what, p)
        # Delay before the reply to DATA (or the first BDAT).
        p = t.probe(s.url(), '--to', 'slow@dest.test', *extra)
        t.rcpt(p, 'slow@dest.test', 'ok', code=250)
        t.check(p.elapsed >= 1.4, 'delay 1500 at DATA with %s: the probe took %.2fs' % (what, p.elapsed), p)
        # A silent disconnect mid-DATA: nothing delivered, the sink serves on.
        p = t.probe(s.url(), '--to', 'drop@dest.test,ok@dest.test', *extra)
        for r in ('drop@dest.test', 'ok@dest.test'):
            t.rcpt(p, r, 'tempfail', text_has='closed')
        t.check(p.message is not None and p.message.get('status') == 'tempfail',
                'disconnect mid-DATA with %s: the message is not delivered' % what, p)
        p = t.probe(s.url(), '--to', 'ok@dest.test', *extra)
        t.rcpt(p, 'ok@dest.test', 'ok', code=250)


def sender_and_client(t, s):
    p = t.probe(s.url(), '--from', 'blocked@src.test', '--to', 'a@dest.test,b@dest.test')
    for r in ('a@dest.test', 'b@dest.test'):
        t.rcpt(p, r, 'permfail', code=553, enhanced='5.7.1', phase='mail')
    t.eq(p.rc, 5, 'sender refused: exit 5', p)
    # Per client address: 127.0.0.2 is refused at the greeting, 127.0.0.3 waits.
    p = t.probe(s.url(), '--source', '127.0.0.2', '--to', 'a@dest.test')
    t.eq(p.rc, 2, 'client 127.0.0.2: refused at the greeting (exit 2)', p)
    t.check('554' in p.out + p.err, 'client 127.0.0.2: the 554 is reported', p)
    p = t.probe(s.url(), '--source', '127.0.0.3', '--to', 'a@dest.test')
    t.rcpt(p, 'a@dest.test', 'ok', code=250)
    t.check(p.elapsed >= 0.9, 'client 127.0.0.3: the greeting waited 1 s (took %.2fs)' % p.elapsed, p)


def session_cap(t, s):
    # after=3: a session carries 3 messages, the 4th MAIL gets 421.
    out, _ = bench(t, s.port, '--messages', 60, '--connections', 2, '--per-connection', 3)
    t.eq((out.get('delivered'), out.get('deferred')), (60, 0),
         'after=3 with --per-connection 3: every message delivered')
    before = s.stats().get('replies', {}).get('421', 0)
    out, _ = bench(t, s.port, '--messages', 60, '--connections', 1, '--no-pipelining')
    after = s.stats().get('replies', {}).get('421', 0)
    t.check(out.get('deferred', 0) > 0 and out.get('delivered', 0) >= 3 and after > before,
            'after=3 without a cap: 421s, and messages deferred', None, out)


def probability(t):
    got = []
    for _ in range(2):
        s = t.start(VolleySink(t.volley, t.peerdir('prob'), ['--rules', rules('faults.rules'), '--seed', '42',
                                                              '--no-starttls']))
        out, _ = bench(t, s.port, '--messages', 200, '--connections', 1, '--per-connection', 3,
                       '--rcpt-domain', 'flaky.test', '--no-pipelining')
        got.append((out.get('delivered'), out.get('deferred')))
        s.stop()
    d = got[0][0] or 0
    t.check(60 <= d <= 140 and got[0][1] == 200 - d, 'prob=0.5: about half delivered (%s)' % (got[0],))
    t.eq(got[1], got[0], 'prob=0.5 with --seed 42: the same outcome twice')


def gmail_rate(t):
    s = t.start(VolleySink(t.volley, t.peerdir('gmail'), ['--rules', rules('gmail.rules'), '--no-starttls']))
    out, _ = bench(t, s.port, '--messages', 3000, '--connections', 4)
    st = s.stats()
    n421 = st.get('replies', {}).get('421', 0)
    t.check(out.get('delivered', 0) >= 100 and out.get('deferred', 0) > 0 and n421 > 0,
            'gmail rules: over 100 messages/s, MAIL gets 421 4.7.28 (%s, %d x 421)' % (out, n421))
    p = t.probe(s.url(), '--to', 'nosuchuser1@gmail.test,overquota@gmail.test')
    t.rcpt(p, 'nosuchuser1@gmail.test', 'permfail', code=550, enhanced='5.1.1')
    t.rcpt(p, 'overquota@gmail.test', 'tempfail', code=452, enhanced='4.2.2')


def yahoo_cap(t):
    s = t.start(VolleySink(t.volley, t.peerdir('yahoo'), ['--rules', rules('yahoo.rules'), '--no-starttls']))
    out, _ = bench(t, s.port, '--messages', 200, '--connections', 2, '--per-connection', 20)
    t.eq((out.get('delivered'), out.get('deferred')), (200, 0),
         'yahoo rules: 20 messages per connection are all delivered')
    out, _ = bench(t, s.port, '--messages', 200, '--connections', 2, '--per-connection', 30)
    t.check(out.get('deferred', 0) > 0, 'yahoo rules: the 21st message on a connection is deferred (%s)' % out)
    p = t.probe(s.url(), '--cmd', 'NOOP', '--to', 'a@yahoo.test')
    t.rcpt(p, 'a@yahoo.test', 'ok', code=250)


def delay_and_rate(t):
    s = t.start(VolleySink(t.volley, t.peerdir('delay'), ['--delay', '300', '--no-starttls']))
    p = t.probe(s.url(), '--to', 'a@dest.test', '--no-pipelining', '--no-chunking')
    # greeting, EHLO, MAIL, RCPT, DATA, the end of data, QUIT: 7 replies
    t.rcpt(p, 'a@dest.test', 'ok', code=250)
    t.check(p.elapsed >= 1.8, '--delay 300: a lock-step session of 7 replies took %.2fs' % p.elapsed, p)
    s.stop()
    s = t.start(VolleySink(t.volley, t.peerdir('rate'), ['--max-rate', '100', '--no-starttls']))
    out, elapsed = bench(t, s.port, '--messages', 300, '--connections', 4)
    t.check(out.get('delivered') == 300 and 1.8 <= elapsed, '--max-rate 100: 300 messages took %.2fs' % elapsed,
            None, out)


def main(t):
    s = t.start(VolleySink(t.volley, t.peerdir('faults'), ['--rules', rules('faults.rules'), '--seed', '1',
                                                           '--no-starttls']))
    per_recipient(t, s)
    at_data_and_body(t, s)
    sender_and_client(t, s)
    session_cap(t, s)
    t.check(s.alive(), 'the sink is still running after every fault')
    probability(t)
    gmail_rate(t)
    yahoo_cap(t)
    delay_and_rate(t)
    stop_and_check(t)


if __name__ == '__main__':
    vtest.run_guarded(vtest.Test('sink_faults'), main)
