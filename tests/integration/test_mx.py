#!/usr/bin/python3
"""volley mx against dnsmasq on loopback (made-up .test domains; nothing is
asked of any other server): MX hosts in the order of RFC 5321 5.1 with
their IPv4 and IPv6 addresses, equal preferences in random order, the
implicit MX, the null MX (RFC 7505), a domain that does not exist, MX hosts
without addresses, a Unicode domain looked up as A-labels, a DNS server
that never answers (the resolver's timeouts, on the loop's timer), and
many domains at once."""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vtest  # noqa: E402
from dns import Dnsmasq, SilentDns, available  # noqa: E402

RECORDS = [
    '--mx-host=example.test,mx1.example.test,10',
    '--mx-host=example.test,mx2.example.test,20',
    '--mx-host=example.test,mx3.example.test,20',
    '--mx-host=example.test,mx9.example.test,90',
    '--host-record=mx1.example.test,127.0.0.1',
    '--host-record=mx2.example.test,127.0.0.2,::1',
    '--host-record=mx3.example.test,127.0.0.3',
    '--host-record=mx9.example.test,127.0.0.9',
    '--mx-host=nullmx.test,.,0',
    '--host-record=plain.test,127.0.0.4',
    '--mx-host=noaddr.test,ghost.noaddr.test,5',
    '--host-record=xn--bcher-kva.test,127.0.0.5',
] + ['--mx-host=many%d.test,mx1.example.test,10' % i for i in range(40)]


def mx(t, *args):
    argv = [t.volley, 'mx'] + [str(a) for a in args]
    start = time.monotonic()
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    elapsed = time.monotonic() - start
    print('# ran: volley mx %s -> exit %d in %.2f s' % (' '.join(map(str, args)), r.returncode,
                                                      elapsed), flush=True)
    out = r.stdout.decode('utf-8', 'replace')
    domains, hosts = {}, {}
    for line in out.splitlines():
        words = line.split(' ', 1)
        fields = dict(w.split('=', 1) for w in line.split(' ') if '=' in w and
                      not w.startswith('why='))
        if line.startswith('why='):
            continue
        if words[0] == 'mx':
            hosts.setdefault(fields['domain'], []).append(fields)
        elif words[0].startswith('domain='):
            if ' why=' in line:
                fields['why'] = line.split(' why=', 1)[1]
            domains[fields['domain']] = fields
    return r.returncode, domains, hosts, out + r.stderr.decode('utf-8', 'replace'), elapsed


def main(t):
    d = t.start(Dnsmasq(RECORDS, t.peerdir('dns')))
    dns = d.servers()

    rc, doms, hosts, out, _ = mx(t, 'example.test', '--dns', dns)
    t.eq(rc, 0, 'example.test: exit status 0')
    t.eq(doms.get('example.test', {}).get('status'), 'ok', 'example.test: status ok', None)
    got = hosts.get('example.test', [])
    t.eq([h['pref'] for h in got], ['10', '20', '20', '90'], 'example.test: by preference')
    t.check(got and got[0]['host'] == 'mx1.example.test' and got[-1]['host'] == 'mx9.example.test',
            'example.test: the most preferred first, the least last', None, out)
    by_host = {h['host']: h['addrs'] for h in got}
    t.eq(by_host.get('mx2.example.test'), '127.0.0.2,::1',
         'mx2: its IPv4 and IPv6 addresses', None)
    t.eq(by_host.get('mx1.example.test'), '127.0.0.1', 'mx1: its address')

    # equal preferences in random order: over 24 runs both orders come up
    # (each run is a fair coin: all of them alike is a chance of 1 in 8 million)
    orders = set()
    for _ in range(24):
        _, _, hosts2, _, _ = mx(t, 'example.test', '--dns', dns)
        orders.add(tuple(h['host'] for h in hosts2.get('example.test', [])[1:3]))
    t.eq(orders, {('mx2.example.test', 'mx3.example.test'), ('mx3.example.test', 'mx2.example.test')},
         'equal preferences: both orders seen over 24 runs')

    rc, doms, hosts, out, _ = mx(t, 'plain.test', '--dns', dns)
    t.eq(rc, 0, 'no MX: exit status 0')
    h = hosts.get('plain.test', [{}])[0]
    t.check(h.get('host') == 'plain.test' and h.get('implicit') == 'yes' and
            h.get('addrs') == '127.0.0.4', 'no MX: the implicit MX, the domain itself', None, out)

    rc, doms, _, out, _ = mx(t, 'nullmx.test', '--dns', dns)
    t.eq(rc, 2, 'null MX: exit status 2')
    t.eq(doms.get('nullmx.test', {}).get('status'), 'null-mx', 'null MX: status null-mx', None)
    t.check('accepts no mail' in doms.get('nullmx.test', {}).get('why', ''),
            'null MX: says it accepts no mail', None, out)

    rc, doms, _, out, _ = mx(t, 'nothere.test', '--dns', dns)
    t.eq(rc, 2, 'no such domain: exit status 2')
    t.eq(doms.get('nothere.test', {}).get('status'), 'nxdomain', 'no such domain: nxdomain', None)

    rc, doms, _, out, _ = mx(t, 'noaddr.test', '--dns', dns)
    t.eq(rc, 2, 'MX without addresses: exit status 2')
    t.eq(doms.get('noaddr.test', {}).get('status'), 'no-address', 'MX without addresses: no-address')

    rc, doms, hosts, out, _ = mx(t, 'BÜCHER.test', '--dns', dns)
    t.eq(rc, 0, 'Unicode domain: exit status 0')
    t.check(doms.get('xn--bcher-kva.test', {}).get('asked') == 'BÜCHER.test' and
            hosts.get('xn--bcher-kva.test', [{}])[0].get('addrs') == '127.0.0.5',
            'Unicode domain: looked up as its A-labels, lower case', None, out)

    rc, doms, _, out, _ = mx(t, 'bad..name', '--dns', dns)
    t.eq((rc, doms.get('bad..name', {}).get('status')), (2, 'bad-name'),
         'not a domain name: exit status 2, bad-name')

    names = ['many%d.test' % i for i in range(40)]
    rc, doms, hosts, out, _ = mx(t, *names, '--dns', dns)
    t.eq(rc, 0, '40 domains at once: exit status 0')
    t.eq(sum(1 for n in names if hosts.get(n, [{}])[0].get('addrs') == '127.0.0.1'), 40,
         '40 domains at once: every one answered')

    # a server that never answers: the timeouts run (3 tries of 150 ms)
    silent = SilentDns()
    try:
        rc, doms, _, out, elapsed = mx(t, 'example.test', '--dns', silent.servers(),
                                       '--timeout', 150)
    finally:
        silent.close()
    t.eq(rc, 3, 'silent DNS server: exit status 3 (for now)')
    t.eq(doms.get('example.test', {}).get('status'), 'tempfail', 'silent DNS server: tempfail', None)
    t.check(elapsed >= 0.3, 'silent DNS server: the tries were waited for (%.2f s)' % elapsed)

    rc, _, _, out, _ = mx(t, 'example.test', '--dns', 'not a server')
    t.eq(rc, 1, 'bad --dns: exit status 1')
    t.check('DNS servers' in out, 'bad --dns: says so', None, out)


if __name__ == '__main__':
    if not available():
        vtest.skip('dnsmasq not installed')
    vtest.run_guarded(vtest.Test('mx'), main)
