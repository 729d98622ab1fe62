#!/usr/bin/env bash
# volley's main job, end to end, on a fresh Debian 12 machine (as root):
# installs what is missing, builds, starts two real SMTP servers on 127.0.0.1
# (aiosmtpd with STARTTLS and AUTH; Postfix's smtp-sink), then
#   1. volley probe: STARTTLS, AUTH PLAIN, a raw command, one message to four
#      recipients of which the server refuses two (one 4xx, one 5xx);
#   2. volley send: a CSV batch (templates/examples/welcome.tmpl with its
#      recipients.csv, plus rows aiosmtpd refuses) through aiosmtpd with
#      STARTTLS and AUTH, every outcome in the delivery log; then 20,000
#      generated rows of the same template through smtp-sink;
#   3. volley bench: 20,000 1 KB messages over 20 pipelined sessions.
# Every server it starts is stopped by its PID when it ends.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
ROOT=$PWD
PY=/usr/bin/python3

bash tests/install-deps.sh || exit 1
if [ ! -f build/build.ninja ]; then
  meson setup build --buildtype=release >/dev/null || exit 1
fi
ninja -C build volley >/dev/null || exit 1
VOLLEY=$ROOT/build/volley

work=$(mktemp -d /tmp/volley-demo.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT

printf 'demo-password-%s\n' "$RANDOM$RANDOM" > "$work/password"
$PY tests/peers/aio.py --dir "$work/aio" --port-file "$work/aio.port" \
    --password-file "$work/password" --lifetime 300 >/dev/null || exit 1
read -r AIO_PORT AIO_PID < "$work/aio.port"; pids+=("$AIO_PID")
$PY tests/peers/sink.py --dir "$work/sink" --port-file "$work/sink.port" --lifetime 300 >/dev/null || exit 1
read -r SINK_PORT SINK_PID < "$work/sink.port"; pids+=("$SINK_PID")

echo "== volley probe against aiosmtpd (STARTTLS, AUTH PLAIN) on 127.0.0.1:$AIO_PORT"
"$VOLLEY" probe "smtp+starttls://127.0.0.1:$AIO_PORT" --ca tests/data/ca.pem \
    --auth-user alice@volley.test --auth-password-file "$work/password" \
    --from newsletter@volley.test \
    --to reader1@dest.test,temp-reader@dest.test,bad-reader@dest.test,reader2@dest.test \
    --cmd NOOP --debug 1
echo "(exit status $?: 6 means some recipients were not delivered, as the server's rules say)"
echo "== messages aiosmtpd stored: $(ls "$work/aio/messages" | wc -l)"

echo "== volley send: a CSV batch through aiosmtpd (STARTTLS, AUTH PLAIN)"
{ cat templates/examples/recipients.csv
  printf 'Tim Porary,temp-reader@dest.test,basic\nBad Reader,bad-reader@dest.test,pro\n'
  printf 'No Address,,pro\n'
} > "$work/batch.csv"
"$VOLLEY" send --template templates/examples/welcome.tmpl --csv "$work/batch.csv" \
    --relay "smtp+starttls://127.0.0.1:$AIO_PORT" --ca tests/data/ca.pem \
    --auth-user alice@volley.test --auth-password-file "$work/password" \
    --log "$work/batch.log" --suppress "$work/suppressed.txt" \
    --retry-delay 0.5 --max-attempts 2
echo "(exit status $?: 3 means every row is final and some were not delivered)"
echo "== the delivery log ($work/batch.log), outcome by row:"
$PY -c 'import json,sys
for l in open(sys.argv[1]):
    e = json.loads(l)
    if "row" in e:
        print("row %(row)s attempt %(attempt)s %(outcome)s" % e, e.get("rcpt", "-"), e.get("code", ""),
              e.get("enhanced", ""), e.get("class", ""), (e.get("text") or "")[:60])' "$work/batch.log"
echo "== suppressed since: $(cat "$work/suppressed.txt" 2>/dev/null)"

echo "== volley send: 20,000 generated rows through smtp-sink on 127.0.0.1:$SINK_PORT"
$PY -c 'import sys
print("name,email,plan")
for i in range(1, 20001):
    print("Reader %d,reader%d@dest.test,%s" % (i, i, "pro" if i % 3 else ""))' > "$work/many.csv"
"$VOLLEY" send --template templates/examples/welcome.tmpl --csv "$work/many.csv" \
    --relay "smtp://127.0.0.1:$SINK_PORT" --connections 8 --log "$work/many.log" || exit 1

echo "== volley bench against smtp-sink on 127.0.0.1:$SINK_PORT"
"$VOLLEY" bench "smtp://127.0.0.1:$SINK_PORT" --messages 20000 --size 1k --connections 20
