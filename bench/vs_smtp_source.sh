#!/usr/bin/env bash
# Comparison benchmark (not a test): volley bench vs Postfix's smtp-source, both
# sending to the same smtp-sink on 127.0.0.1, 1 KB messages, 50 connections,
# beside the floor: bench/stream-sender, a trivial sender of pre-rendered bytes
# with the same round trips (one per message: smtp-sink has no CHUNKING).
#
#   bash bench/vs_smtp_source.sh            (RUNS=3 MESSAGES=50000 SIZE=1024 CONNS=50)
#
# Builds volley if needed (build/, or VOLLEY=path to use another binary), starts
# smtp-sink on a free port, runs each client RUNS times under /usr/bin/time for
# user+sys CPU seconds, and prints per-run figures and the medians: msgs/s, the
# ratio volley/smtp-source, CPU seconds per message and their ratio. Stops the
# sink by its PID. Needs postfix (smtp-sink, smtp-source) and GNU time.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
RUNS=${RUNS:-3}
MESSAGES=${MESSAGES:-50000}
SIZE=${SIZE:-1024}
CONNS=${CONNS:-50}
RUN_TIMEOUT=${RUN_TIMEOUT:-600}   # seconds one client run may take at most
PY=/usr/bin/python3

for tool in smtp-sink smtp-source; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] \
    || { echo "$tool not found (apt-get install postfix)" >&2; exit 1; }
done
[ -x /usr/bin/time ] || { echo "/usr/bin/time not found (apt-get install time)" >&2; exit 1; }
SOURCE=$(command -v smtp-source || echo /usr/sbin/smtp-source)

if [ -z "${VOLLEY:-}" ]; then
  if [ ! -f build/build.ninja ]; then
    meson setup build --buildtype=release >/dev/null
  fi
  ninja -C build >/dev/null
  VOLLEY=$(find build -type f -name volley -perm -u+x | head -n1)
  [ -n "$VOLLEY" ] || { echo "no volley binary under build/" >&2; exit 1; }
fi
STREAM=${STREAM:-$(dirname "$VOLLEY")/bench/stream-sender}
[ -x "$STREAM" ] || { echo "no stream-sender at $STREAM (ninja -C build)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/volley-bench.XXXXXX)
SINK_PID=
cleanup() {
  if [ -n "$SINK_PID" ]; then
    $PY "$ROOT/tests/peers/peerlib.py" stop "$SINK_PID" || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

# smtp-sink on a free port; the starter prints "port=N pid=P dir=D".
$PY tests/peers/sink.py --dir "$WORK/sink" --port-file "$WORK/sink.port" \
  --lifetime $((RUN_TIMEOUT * RUNS * 2 + 120)) >/dev/null
read -r PORT SINK_PID < "$WORK/sink.port"
echo "smtp-sink on 127.0.0.1:$PORT (pid $SINK_PID); $MESSAGES messages of $SIZE bytes, $CONNS connections, $RUNS runs"
echo "volley: $VOLLEY"

# one_run OUTFILE CMD... -> prints "seconds cpu_seconds sys_seconds" (wall clock,
# user+sys, and sys alone: the kernel's share)
one_run() {
  local out=$1; shift
  local t0 t1
  t0=$(date +%s.%N)
  timeout "$RUN_TIMEOUT" /usr/bin/time -f '%U %S' -o "$out.time" "$@" >"$out" 2>"$out.err" \
    || { echo "run failed: $* (see below)" >&2; tail -5 "$out.err" >&2; return 1; }
  t1=$(date +%s.%N)
  read -r u s < "$out.time"
  $PY -c "print($t1 - $t0, $u + $s, $s)"
}

RESULTS=$WORK/results
: > "$RESULTS"
for i in $(seq 1 "$RUNS"); do
  # volley bench: its own JSON gives delivered and msgs_per_s; CPU from time(1)
  read -r wall cpu sys < <(one_run "$WORK/volley.$i" "$VOLLEY" bench "smtp://127.0.0.1:$PORT" \
    --messages "$MESSAGES" --size "$SIZE" --connections "$CONNS" --insecure --json)
  [ -n "${cpu:-}" ] || exit 1
  echo "$sys" >> "$WORK/volley.sys"
  $PY - "$WORK/volley.$i" "$wall" "$cpu" "$MESSAGES" "$i" >>"$RESULTS" <<'EOF'
import json, sys
path, wall, cpu, n, i = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
text = open(path).read()
try:
    j = json.loads(text[text.index('{'):text.rindex('}') + 1])
except ValueError:
    sys.exit('volley bench printed no JSON: %r' % text[:300])
delivered = j.get('delivered', n)
# wall clock for both clients (process start to exit), so the ratio is fair;
# volley's own msgs_per_s is shown on its per-run line
rate = delivered / wall
print('volley %s %.1f %.3f %.9f %d %.3f %s' % (i, rate, wall, cpu / max(delivered, 1), delivered,
                                            cpu, j.get('msgs_per_s')))
EOF
  # smtp-source: -d keeps the 50 sessions open for many messages
  read -r wall cpu sys < <(one_run "$WORK/source.$i" "$SOURCE" -d -s "$CONNS" -m "$MESSAGES" \
    -l "$SIZE" -M bench.test -f a@bench.test -t b@dest.test "127.0.0.1:$PORT")
  [ -n "${cpu:-}" ] || exit 1
  $PY -c "
import sys
wall, cpu, n = float('$wall'), float('$cpu'), int('$MESSAGES')
print('smtp-source $i %.1f %.3f %.9f %d %.3f' % (n / wall, wall, cpu / n, n, cpu))" >>"$RESULTS"
  # the floor: a trivial epoll sender with every byte pre-rendered, one
  # write and one round trip per message (PIPELINING without CHUNKING, as
  # smtp-sink offers), no parsing: what the kernel's loopback TCP costs
  read -r wall cpu sys < <(one_run "$WORK/floor.$i" "$STREAM" "127.0.0.1:$PORT" --mode data \
    --messages "$MESSAGES" --size "$SIZE" --connections "$CONNS")
  [ -n "${cpu:-}" ] || exit 1
  $PY -c "
wall, cpu, n = float('$wall'), float('$cpu'), int('$MESSAGES')
print('floor $i %.1f %.3f %.9f %d %.3f' % (n / wall, wall, cpu / n, n, cpu))" >>"$RESULTS"
  tail -n 3 "$RESULTS" | while read -r name run rate wall cpm n cpu self; do
    printf '%-12s run %s: %9.1f msgs/s  %7.2f s  %6.2f cpu-s  %8.2f us cpu/msg  (%s delivered%s)\n' \
      "$name" "$run" "$rate" "$wall" "$cpu" "$($PY -c "print($cpm*1e6)")" "$n" \
      "${self:+; volley reports $self msgs/s}"
  done
done

$PY - "$RESULTS" "$WORK/volley.sys" "$MESSAGES" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
v_sys = statistics.median(float(l) for l in open(sys.argv[2]) if l.strip()) / int(sys.argv[3])
def med(name, col):
    return statistics.median(float(r[col]) for r in rows if r[0] == name)
v_rate, s_rate = med('volley', 2), med('smtp-source', 2)
v_cpm, s_cpm = med('volley', 4), med('smtp-source', 4)
print()
print('median msgs/s:        volley %.1f   smtp-source %.1f   ratio volley/smtp-source %.2f'
      % (v_rate, s_rate, v_rate / s_rate if s_rate else float('nan')))
print('median CPU s/message: volley %.2e  smtp-source %.2e  ratio volley/smtp-source %.2f'
      % (v_cpm, s_cpm, v_cpm / s_cpm if s_cpm else float('nan')))
f_rate, f_cpm = med('floor', 2), med('floor', 4)
print('floor (stream-sender --mode data): %.1f msgs/s, CPU s/message %.2e = %.2f of smtp-source\'s;'
      % (f_rate, f_cpm, f_cpm / s_cpm if s_cpm else float('nan')))
print('  volley/floor: rate %.2f, CPU per message %.2f' % (v_rate / f_rate, v_cpm / f_cpm))
print('volley kernel (sys) CPU s/message %.2e = %.2f of smtp-source\'s total'
      % (v_sys, v_sys / s_cpm if s_cpm else float('nan')))
EOF
