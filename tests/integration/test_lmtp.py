#!/usr/bin/python3
"""LMTP (RFC 2033) over a Unix socket and over TCP: aiosmtpd's LMTP server with
a reply per recipient after the message (delivered, mailbox full, mailbox
disabled) beside refusals at RCPT, and Postfix's smtp-sink in LMTP mode (-L)
on a Unix socket taking pipelined traffic from volley bench."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vtest  # noqa: E402
import aio  # noqa: E402
import sink  # noqa: E402

SENDER = 'sender@volley.test'
MIX = ['good1@dest.test', 'full1@dest.test', 'bad1@dest.test', 'gone1@dest.test',
       'temp1@dest.test', 'good2@dest.test']
DELIVERED = ['good1@dest.test', 'good2@dest.test']


def aio_lmtp(t, label, url_of):
    s = t.start(aio.AioSmtpd(t.peerdir(label), no_tls=True, lmtp=True,
                             unix=os.path.join(t.work, label + '.sock') if 'unix' in label else None))
    msg, token, body = t.message_file()
    p = t.probe(url_of(s), '--from', SENDER, '--to', ','.join(MIX), '--message', msg,
                '--debug', '1')
    t.eq(p.rc, 6, '%s: exit status 6 (some recipients not delivered)' % label, p)
    t.all_rcpts_reported(p, MIX)
    # Refused at RCPT: decided in the rcpt phase, never part of the message.
    t.rcpt(p, 'bad1@dest.test', 'permfail', code=550, enhanced='5.1.1', phase='rcpt')
    t.rcpt(p, 'temp1@dest.test', 'tempfail', code=451, enhanced='4.2.0', phase='rcpt')
    # Accepted at RCPT: each gets its own reply after the message, in order.
    t.rcpt(p, 'good1@dest.test', 'ok', code=250, phase='body', text_has='good1@dest.test')
    t.rcpt(p, 'good2@dest.test', 'ok', code=250, phase='body', text_has='good2@dest.test')
    t.rcpt(p, 'full1@dest.test', 'tempfail', code=452, enhanced='4.2.2', phase='body',
           text_has='full1@dest.test', cls='mailbox_full', action='soft', retry='yes')
    # LMTP's reply after the message is about that recipient alone: it can
    # suppress it (an SMTP reply after the message could not)
    t.rcpt(p, 'gone1@dest.test', 'permfail', code=550, enhanced='5.2.1', phase='body',
           text_has='gone1@dest.test', cls='inactive_mailbox', action='hard', retry='no')
    t.check('> LHLO ' in p.err and '> EHLO' not in p.err and '> HELO' not in p.err,
            '%s: LHLO, never EHLO or HELO' % label, p)
    msgs = s.messages()
    t.eq(len(msgs), 1, '%s: the server stored one message' % label)
    if msgs:
        t.eq(msgs[0]['rcpt_to'], DELIVERED, '%s: delivered to exactly the accepted mailboxes' % label)
        t.check(token in msgs[0]['data'], '%s: the body arrived' % label, None, msgs[0]['data'][:300])
    # Every recipient refused after the message: the message failed in its
    # data phase, exit 7.
    p = t.probe(url_of(s), '--from', SENDER, '--to', 'full2@dest.test,gone2@dest.test')
    t.eq(p.rc, 7, '%s: all refused after the message: exit status 7' % label, p)
    t.rcpt(p, 'full2@dest.test', 'tempfail', code=452, phase='body')
    t.rcpt(p, 'gone2@dest.test', 'permfail', code=550, phase='body')
    t.check(p.message is not None and p.message.get('status') != 'ok',
            '%s: message not reported delivered' % label, p)
    t.eq(len(s.messages()), 1, '%s: nothing more stored' % label)
    t.eq(s.violations(), 0, '%s: never pipelined (aiosmtpd does not offer it)' % label)


def sink_lmtp(t):
    path = os.path.join(t.work, 'sink-lmtp.sock')
    s = t.start(sink.SmtpSink(t.peerdir('sink-lmtp'), faults=['-L'], unix=path, dump=True))
    url = 'lmtp://' + path
    p = t.probe(url, '--from', SENDER, '--to', 'a@dest.test,b@dest.test')
    t.eq(p.rc, 0, 'smtp-sink -L: probe exit status', p)
    t.check('PIPELINING' in p.caps, 'smtp-sink -L: PIPELINING offered', p)
    for r in ('a@dest.test', 'b@dest.test'):
        t.rcpt(p, r, 'ok', code=250, phase='body')
    # Many sessions, three recipients a message, pipelined.
    rc, res, out = t.bench(url, '--messages', 1500, '--size', '2k', '--connections', 6,
                           '--recipients', 3)
    t.check(rc == 0 and res is not None, 'smtp-sink -L: bench exit status 0 with JSON', None, out)
    if res:
        t.eq(res['delivered'], 1500, 'smtp-sink -L: bench delivered every message')
        t.eq(res['recipients_delivered'], 4500, 'smtp-sink -L: one reply per recipient, all 250')
        t.eq(res['sessions'], 6, 'smtp-sink -L: six persistent sessions')
    msgs = s.messages()
    t.eq(len(msgs), 1501, 'smtp-sink -L: it saw 1501 transactions')
    t.eq(sum(1 for m in msgs if len(m['rcpt_to']) == 3), 1500,
         'smtp-sink -L: 1500 of them with three recipients')
    # Refusal after the message (-f .): every recipient fails in the body phase.
    path2 = os.path.join(t.work, 'sink-lmtp-refuse.sock')
    t.start(sink.SmtpSink(t.peerdir('sink-lmtp-refuse'), faults=['-L', '-f', '.'], unix=path2))
    p = t.probe('lmtp://' + path2, '--from', SENDER, '--to', 'a@dest.test,b@dest.test')
    t.eq(p.rc, 7, 'smtp-sink -L -f .: exit status 7', p)
    for r in ('a@dest.test', 'b@dest.test'):
        t.rcpt(p, r, 'permfail', code='5', phase='body')


def main(t):
    aio_lmtp(t, 'aio-unix', lambda s: 'lmtp://' + s.unix)
    aio_lmtp(t, 'aio-tcp', lambda s: 'lmtp://127.0.0.1:%d' % s.port)
    if sink.available():
        sink_lmtp(t)
    else:
        print('# smtp-sink not installed: its LMTP checks are left out')


if __name__ == '__main__':
    ok, why = aio.available()
    if not ok:
        vtest.skip(why)
    vtest.run_guarded(vtest.Test('lmtp'), main)
