#!/usr/bin/python3
"""volley bench against real servers: its JSON report (the fields other tools
read), every message counted exactly once as delivered, deferred or rejected
and never retried, worker threads, the per-connection cap, the rate limit, and STARTTLS+AUTH
to a server without PIPELINING that is never pipelined to."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vtest  # noqa: E402
import aio  # noqa: E402
from sink import SmtpSink, available  # noqa: E402

FIELDS = ['messages', 'delivered', 'deferred', 'rejected', 'seconds', 'msgs_per_s',
          'mb_per_s', 'cpu_s_per_msg', 'latency_ms']


def report_shape(t, res, label):
    missing = [f for f in FIELDS if f not in res]
    t.check(not missing, '%s: JSON has %s' % (label, ', '.join(FIELDS)), None,
            'missing %s' % missing)
    lat = res.get('latency_ms', {})
    t.check(all(k in lat for k in ('p50', 'p90', 'p99', 'max'))
            and lat['p50'] <= lat['p90'] <= lat['p99'] <= lat['max'],
            '%s: latency p50 <= p90 <= p99 <= max' % label, None, lat)
    t.check(res.get('cpu_s_per_msg', 0) > 0 and res.get('msgs_per_s', 0) >= 0,
            '%s: CPU per message measured' % label, None, res)


def plain(t):
    s = t.start(SmtpSink(t.peerdir('plain'), dump=True))
    rc, res, out = t.bench(s.url(), '--messages', 3000, '--size', '1k', '--connections', 10,
                           '--threads', 2)
    t.check(rc == 0 and res is not None, 'two threads: exit status 0 with JSON', None, out)
    if res:
        report_shape(t, res, 'two threads')
        t.eq((res['delivered'], res['deferred'], res['rejected']), (3000, 0, 0),
             'two threads: delivered, deferred, rejected')
        t.eq(res['threads'], 2, 'two threads: reported')
        t.eq(res['sessions'], 10, 'two threads: 10 sessions between them')
    msgs = s.messages()
    t.eq(len(msgs), 3000, 'two threads: smtp-sink saw 3000 transactions')
    t.check(all(m['mail_from'] == 'bench@volley.test' for m in msgs),
            'two threads: every envelope from bench@volley.test')
    sizes = {len(m['data']) for m in msgs}
    t.check(len(sizes) == 1, 'two threads: every message the same size', None, sorted(sizes)[:5])

    # Cap of 7 messages per connection: 100 messages need at least 15 sessions.
    rc, res, out = t.bench(s.url(), '--messages', 100, '--size', '512', '--connections', 3,
                           '--per-connection', 7)
    t.check(rc == 0 and res is not None, 'per-connection 7: exit status 0', None, out)
    if res:
        t.eq(res['delivered'], 100, 'per-connection 7: all delivered')
        t.check(res['sessions'] >= 15, 'per-connection 7: %d sessions (>= 15)' % res['sessions'],
                None, out)


def rate_limited(t):
    # --rate: never faster than the limit, whatever the machine; two threads
    # share the one limiter. 600 messages at 500/s with bursts of one: the
    # first goes at once, each other waits its 2 ms, so at least 1.198 s.
    s = t.start(SmtpSink(t.peerdir('rate'), dump=False))
    rc, res, out = t.bench(s.url(), '--messages', 600, '--size', '512', '--connections', 4,
                           '--threads', 2, '--rate', 500)
    t.check(rc == 0 and res is not None, '--rate 500: exit status 0 with JSON', None, out)
    if res:
        t.eq(res['delivered'], 600, '--rate 500: all delivered')
        t.eq(res.get('rate_limit'), 500, '--rate 500: reported')
        t.check(res['seconds'] >= 1.198, '--rate 500: 600 messages took %.3f s (>= 1.198 s)'
                % res['seconds'], None, out)
        t.check(res['msgs_per_s'] <= 501, '--rate 500: %.1f msgs/s (<= 501)' % res['msgs_per_s'],
                None, out)


def faults(t):
    # 4xx at RCPT: every message deferred, counted once, not retried.
    s = t.start(SmtpSink(t.peerdir('defer'), faults=['-r', 'RCPT'], dump=True))
    rc, res, out = t.bench(s.url(), '--messages', 200, '--size', '1k', '--connections', 4)
    t.eq(rc, 2, 'RCPT 4xx: exit status 2 (not everything delivered)')
    if t.check(res is not None, 'RCPT 4xx: JSON report', None, out):
        t.eq((res['delivered'], res['deferred'], res['rejected']), (0, 200, 0),
             'RCPT 4xx: delivered, deferred, rejected')
    t.eq(len(s.settled_messages()), 0, 'RCPT 4xx: nothing reached the sink')
    # 5xx after the data: rejected, counted once.
    s = t.start(SmtpSink(t.peerdir('reject'), faults=['-f', '.'], dump=True))
    rc, res, out = t.bench(s.url(), '--messages', 200, '--size', '1k', '--connections', 4)
    t.eq(rc, 2, 'end-of-data 5xx: exit status 2')
    if t.check(res is not None, 'end-of-data 5xx: JSON report', None, out):
        t.eq((res['delivered'], res['deferred'], res['rejected']), (0, 0, 200),
             'end-of-data 5xx: delivered, deferred, rejected')
    t.check('first failure: body: 5' in out, 'end-of-data 5xx: the first failure is named', None, out)


def starttls_auth(t):
    ca, cert, key = t.certs()
    pw = t.password_file()
    s = t.start(aio.AioSmtpd(t.peerdir('aio'), cert=cert, key=key, password_file=pw))
    rc, res, out = t.bench('smtp+starttls://127.0.0.1:%d' % s.port, '--ca', ca,
                           '--auth-user', vtest.peerlib.TEST_USER, '--auth-password-file', pw,
                           '--messages', 80, '--size', '4k', '--connections', 4,
                           '--recipients', 2, '--rcpt-domain', 'dest.test')
    t.check(rc == 0 and res is not None, 'STARTTLS+AUTH: exit status 0', None, out)
    if res:
        t.eq(res['delivered'], 80, 'STARTTLS+AUTH: all delivered')
        t.eq(res['recipients_delivered'], 160, 'STARTTLS+AUTH: two recipients each')
        t.eq(res['sessions_tls'], res['sessions'], 'STARTTLS+AUTH: every session over TLS')
    t.eq(len(s.messages()), 80, 'STARTTLS+AUTH: the server stored 80 messages')
    t.check(all(m['tls'] and m['auth_user'] for m in s.messages()),
            'STARTTLS+AUTH: every message over TLS from the authenticated user')
    t.eq(s.violations(), 0, 'STARTTLS+AUTH: never pipelined to aiosmtpd (no PIPELINING)')

    # 100 KB bodies: encrypted straight from the body, a record at a time,
    # and still every byte arrives as sent.
    s = t.start(aio.AioSmtpd(t.peerdir('aio-big'), cert=cert, key=key, password_file=pw))
    rc, res, out = t.bench('smtp+starttls://127.0.0.1:%d' % s.port, '--ca', ca,
                           '--auth-user', vtest.peerlib.TEST_USER, '--auth-password-file', pw,
                           '--messages', 12, '--size', '100k', '--connections', 3)
    t.check(rc == 0 and res is not None, 'STARTTLS+AUTH 100 KB: exit status 0', None, out)
    msgs = s.messages()
    t.eq(len(msgs), 12, 'STARTTLS+AUTH 100 KB: the server stored 12 messages')
    bodies = {bytes(m['data']) if not isinstance(m['data'], str) else m['data'].encode()
              for m in msgs}
    t.eq(len(bodies), 1, 'STARTTLS+AUTH 100 KB: every message arrived the same')
    if bodies:
        body = bodies.pop()
        t.eq(len(body), 100 * 1024, 'STARTTLS+AUTH 100 KB: 102400 bytes each')
        t.check(body.endswith(b'\r\n') and b'volley bench.' in body[-200:],
                'STARTTLS+AUTH 100 KB: the end of the body arrived', None, body[-80:])


def main(t):
    plain(t)
    rate_limited(t)
    faults(t)
    if aio.available()[0]:
        starttls_auth(t)
    else:
        t.check(False, 'aiosmtpd is available for the STARTTLS bench check')


if __name__ == '__main__':
    if not available():
        vtest.skip('smtp-sink not installed')
    vtest.run_guarded(vtest.Test('bench'), main)
