#!/usr/bin/python3
"""volley probe against Postfix's smtp-sink: plain delivery to several
recipients, 5xx and 4xx per recipient (-f RCPT, -r RCPT), DATA refused, --cmd."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vtest  # noqa: E402
from sink import SmtpSink, available  # noqa: E402

RCPTS = ['r1@dest.test', 'r2@dest.test', 'r3@dest.test']
SENDER = 'sender@volley.test'


def plain(t):
    s = t.start(SmtpSink(t.peerdir('plain'), dump=True))
    msg, token, body = t.message_file()
    p = t.probe(s.url(), '--from', SENDER, '--to', ','.join(RCPTS), '--message', msg,
                '--ehlo', 'client.volley.test')
    t.eq(p.rc, 0, 'plain: exit status', p)
    t.eq(p.connected is not None, True, 'plain: "connected" line', p)
    t.check(p.greeting is not None and p.greeting[0] == '220', 'plain: greeting 220', p)
    t.check('PIPELINING' in p.caps, 'plain: capability PIPELINING listed', p)
    t.check(p.tls is None, 'plain: no TLS (smtp-sink offers no STARTTLS)', p)
    t.all_rcpts_reported(p, RCPTS)
    for r in RCPTS:
        t.rcpt(p, r, 'ok', code=250)
    t.check(p.message is not None and p.message.get('status') == 'ok'
            and p.message.get('code') == '250', 'plain: message ok 250', p)
    msgs = s.messages()
    t.eq(len(msgs), 1, 'plain: smtp-sink got one transaction')
    if msgs:
        m = msgs[0]
        t.eq(m['mail_from'], SENDER, 'plain: envelope sender')
        t.eq(m['rcpt_to'], RCPTS, 'plain: envelope recipients, in order')
        t.eq(m['helo'], 'client.volley.test', 'plain: EHLO name from --ehlo')
        got = vtest.normalise(m['data'])
        t.check(token in got, 'plain: message body arrived (token found)', None, got[:500])
        t.check('\n.a line that starts with a dot\n..two dots\n.\nafter the lone dot\n' in got,
                'plain: dot-stuffing is transparent', None, got[:800])


def generated(t):
    s = t.start(SmtpSink(t.peerdir('generated'), dump=True))
    p = t.probe(s.url(), '--from', SENDER, '--to', 'only@dest.test')
    t.eq(p.rc, 0, 'generated message: exit status', p)
    t.rcpt(p, 'only@dest.test', 'ok', code=250)
    msgs = s.messages()
    t.check(len(msgs) == 1 and msgs[0]['rcpt_to'] == ['only@dest.test'],
            'generated message: one transaction to only@dest.test', None, msgs)


def rcpt_fault(t, flag, status, cls):
    s = t.start(SmtpSink(t.peerdir('fault%s' % flag), faults=[flag, 'RCPT'], dump=True))
    msg, token, body = t.message_file()
    p = t.probe(s.url(), '--from', SENDER, '--to', ','.join(RCPTS), '--message', msg)
    t.eq(p.rc, 6, '%s RCPT: exit status 6 (recipients not delivered)' % flag, p)
    t.all_rcpts_reported(p, RCPTS)
    for r in RCPTS:
        t.rcpt(p, r, status, code=cls, phase='rcpt')
    t.check(p.message is None or p.message.get('status') != 'ok',
            '%s RCPT: message not reported delivered' % flag, p)
    t.eq(len(s.settled_messages()), 0, '%s RCPT: nothing reached smtp-sink' % flag)


def data_fault(t):
    s = t.start(SmtpSink(t.peerdir('faultdata'), faults=['-f', 'DATA'], dump=True))
    msg, token, body = t.message_file()
    p = t.probe(s.url(), '--from', SENDER, '--to', ','.join(RCPTS[:2]), '--message', msg)
    t.eq(p.rc, 7, '-f DATA: exit status 7', p)
    t.check(p.message is not None and p.message.get('status') == 'permfail'
            and p.message.get('phase') == 'data' and (p.message.get('code') or '').startswith('5'),
            '-f DATA: message permfail phase=data 5xx', p)
    t.all_rcpts_reported(p, RCPTS[:2])
    for r in RCPTS[:2]:
        t.check(p.rcpts.get(r, {}).get('status') not in (None, 'ok'),
                '-f DATA: %s not reported delivered' % r, p)
    t.eq(len(s.settled_messages()), 0, '-f DATA: nothing reached smtp-sink')


def commands(t):
    s = t.start(SmtpSink(t.peerdir('cmd')))
    p = t.probe(s.url(), '--cmd', 'NOOP')
    t.eq(p.rc, 0, '--cmd NOOP: exit status', p)
    t.check(len(p.cmds) == 1 and p.cmds[0][:2] == ['NOOP', '250'],
            '--cmd NOOP: cmd "NOOP" 250', p)
    s2 = t.start(SmtpSink(t.peerdir('cmdfail'), faults=['-f', 'NOOP']))
    p = t.probe(s2.url(), '--cmd', 'NOOP')
    t.eq(p.rc, 9, '--cmd NOOP refused with 5xx: exit status 9', p)
    t.check(len(p.cmds) == 1 and p.cmds[0][0] == 'NOOP' and p.cmds[0][1].startswith('5'),
            '--cmd NOOP: 5xx reported', p)


def connect_refused(t):
    port = vtest.peerlib.free_port()   # nothing listens there
    p = t.probe('smtp://127.0.0.1:%d' % port, '--from', SENDER, '--to', RCPTS[0])
    t.eq(p.rc, 2, 'connection refused: exit status 2', p)


def main(t):
    plain(t)
    generated(t)
    rcpt_fault(t, '-f', 'permfail', '5')
    rcpt_fault(t, '-r', 'tempfail', '4')
    data_fault(t)
    commands(t)
    connect_refused(t)


if __name__ == '__main__':
    if not available():
        vtest.skip('smtp-sink (package postfix) is not installed')
    vtest.run_guarded(vtest.Test('smtp-sink'), main)
