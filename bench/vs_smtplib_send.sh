#!/usr/bin/env bash
# vs_smtplib_send.sh: a CSV batch sent by `volley send` beside the same batch
# sent by a careful user of Python's smtplib (one persistent session, one
# EmailMessage built per row from the same template text, sendmail per
# row), both to volley sink on 127.0.0.1 (no TLS, nothing stored). Prints
# rows/s and the sender's CPU per row for each, median of RUNS runs taken
# alternately, and the ratios. Asserts nothing.
#
# usage: bench/vs_smtplib_send.sh [BUILD_DIR]
#   ROWS   rows in the CSV (default 20000)
#   RUNS   runs of each (default 3)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD=${1:-build}
VOLLEY=$PWD/$BUILD/volley
ROWS=${ROWS:-20000}
RUNS=${RUNS:-3}
PY=/usr/bin/python3
[ -x "$VOLLEY" ] || { echo "build first: ninja -C $BUILD" >&2; exit 1; }

WORK=$(mktemp -d /tmp/volley-vs-smtplib.XXXXXX)
SINK_PID=
cleanup() {
	[ -n "$SINK_PID" ] && kill "$SINK_PID" 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT

"$VOLLEY" sink --listen 127.0.0.1:0 --no-starttls > "$WORK/sink.log" 2>&1 &
SINK_PID=$!
for _ in $(seq 100); do grep -q '^listening ' "$WORK/sink.log" && break; sleep 0.05; done
PORT=$(sed -n 's/^listening .*:\([0-9]*\)$/\1/p' "$WORK/sink.log")
[ -n "$PORT" ] || { echo "volley sink did not start: $(cat "$WORK/sink.log")" >&2; exit 1; }

# The template: a greeting, a few variables, about 2 KB of text.
{
	printf 'From: "Volley News" <news@example.test>\n'
	printf 'To: {{name}} <{{email}}>\n'
	printf 'Subject: News for {{name}} from {{city}}\n\n'
	printf 'Hello {{name}},\n\nYour account {{email}} in {{city}} has {{points}} points.\n\n'
	for i in $(seq 20); do
		printf 'Paragraph %d of the newsletter, the same for every reader, about as long as a line.\n' "$i"
	done
} > "$WORK/t.tmpl"
$PY -c 'import sys
print("name,email,city,points")
for i in range(1, int(sys.argv[1]) + 1):
    print("Reader %d,reader%d@dest.test,City %d,%d" % (i, i, i % 97, i * 7))' "$ROWS" > "$WORK/rows.csv"

# The smtplib peer: the same template by str.replace per variable, one
# session for the whole batch, the outcome of each row kept. Mode "message":
# the headers through email.message.EmailMessage, as smtplib's users build
# them; mode "text": the message as one string by hand (no MIME, no
# encoding checks), smtplib's floor per row.
cat > "$WORK/peer.py" <<'EOF'
import csv, resource, smtplib, sys, time
from email.message import EmailMessage
from email.utils import formataddr, make_msgid, formatdate
tmpl, rows, port, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
head, _, body = open(tmpl).read().partition('\n\n')
headers = dict(l.split(': ', 1) for l in head.splitlines())
t0, c0 = time.monotonic(), resource.getrusage(resource.RUSAGE_SELF)
ok = n = 0
with smtplib.SMTP('127.0.0.1', port) as s, open(rows, newline='') as f:
    for row in csv.DictReader(f):
        def fill(text):
            for k, v in row.items():
                text = text.replace('{{%s}}' % k, v)
            return text
        n += 1
        try:
            if mode == 'message':
                m = EmailMessage()
                m['From'] = headers['From']
                m['To'] = formataddr((row['name'], row['email']))
                m['Subject'] = fill(headers['Subject'])
                m['Date'] = formatdate()
                m['Message-ID'] = make_msgid(domain='example.test')
                m.set_content(fill(body))
                s.send_message(m, from_addr='news@example.test', to_addrs=[row['email']])
            else:
                text = ('From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: %s\r\n'
                        'MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n%s' % (
                            headers['From'], formataddr((row['name'], row['email'])),
                            fill(headers['Subject']), formatdate(), make_msgid(domain='example.test'),
                            fill(body).replace('\n', '\r\n')))
                s.sendmail('news@example.test', [row['email']], text)
            ok += 1
        except smtplib.SMTPException:
            pass
c1 = resource.getrusage(resource.RUSAGE_SELF)
el = time.monotonic() - t0
cpu = (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)
print('rows=%d delivered=%d elapsed=%.3f cpu=%.3f' % (n, ok, el, cpu))
EOF

volley_rates=() volley_cpus=() py_rates=() py_cpus=() txt_rates=() txt_cpus=()
for run in $(seq "$RUNS"); do
	rm -f "$WORK/send.log"
	out=$("$VOLLEY" send --template "$WORK/t.tmpl" --csv "$WORK/rows.csv" \
		--relay "smtp://127.0.0.1:$PORT" --log "$WORK/send.log" --connections 4)
	delivered=$(printf '%s\n' "$out" | sed -n 's/^delivered //p')
	elapsed=$(printf '%s\n' "$out" | sed -n 's/^elapsed_s //p')
	cpu=$(printf '%s\n' "$out" | sed -n 's/^cpu_s //p')   # the whole run: start-up and log too
	[ "$delivered" = "$ROWS" ] || { echo "volley send delivered $delivered of $ROWS" >&2; exit 1; }
	volley_rates+=("$(awk -v n="$ROWS" -v e="$elapsed" 'BEGIN { printf "%.0f", n / e }')")
	volley_cpus+=("$(awk -v n="$ROWS" -v c="$cpu" 'BEGIN { printf "%.1f", c * 1e6 / n }')")

	for mode in message text; do
		out=$($PY "$WORK/peer.py" "$WORK/t.tmpl" "$WORK/rows.csv" "$PORT" "$mode")
		eval "$(printf '%s\n' "$out" | tr ' ' '\n' | sed -n 's/^\(delivered\|elapsed\|cpu\)=/py_\1=/p')"
		[ "$py_delivered" = "$ROWS" ] || { echo "smtplib delivered $py_delivered of $ROWS" >&2; exit 1; }
		rate=$(awk -v n="$ROWS" -v e="$py_elapsed" 'BEGIN { printf "%.0f", n / e }')
		cpu=$(awk -v n="$ROWS" -v c="$py_cpu" 'BEGIN { printf "%.1f", c * 1e6 / n }')
		if [ "$mode" = message ]; then py_rates+=("$rate"); py_cpus+=("$cpu")
		else txt_rates+=("$rate"); txt_cpus+=("$cpu"); fi
	done
	echo "run $run: volley send ${volley_rates[-1]} rows/s ${volley_cpus[-1]} us/row;" \
	     "smtplib+EmailMessage ${py_rates[-1]} rows/s ${py_cpus[-1]} us/row;" \
	     "smtplib+text ${txt_rates[-1]} rows/s ${txt_cpus[-1]} us/row"
done

median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
vr=$(median "${volley_rates[@]}") vc=$(median "${volley_cpus[@]}")
pr=$(median "${py_rates[@]}") pc=$(median "${py_cpus[@]}")
tr=$(median "${txt_rates[@]}") tc=$(median "${txt_cpus[@]}")
echo
echo "$ROWS rows, ~$(wc -c < "$WORK/t.tmpl") byte template, to volley sink on 127.0.0.1; median of $RUNS"
printf '%-34s %12s %14s\n' "" "rows/s" "CPU us/row"
printf '%-34s %12s %14s\n' "volley send (4 sessions, 1 thread)" "$vr" "$vc"
printf '%-34s %12s %14s\n' "smtplib, EmailMessage (1 session)" "$pr" "$pc"
printf '%-34s %12s %14s\n' "smtplib, text by hand (1 session)" "$tr" "$tc"
awk -v vr="$vr" -v pr="$pr" -v vc="$vc" -v pc="$pc" -v tr="$tr" -v tc="$tc" 'BEGIN {
	printf "against EmailMessage: %.1fx the rows/s, %.3fx the CPU per row\n", vr / pr, vc / pc
	printf "against text by hand: %.1fx the rows/s, %.3fx the CPU per row\n", vr / tr, vc / tc }'
