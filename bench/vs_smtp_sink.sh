#!/usr/bin/env bash
# Benchmark (not a test) for volley sink and for volley at full speed, in one
# run on this machine:
#   1. the sink's own cost: the same client load (smtp-source -d, 50
#      sessions, 1 KB; then volley bench with PIPELINING only, since
#      smtp-sink has no CHUNKING) against Postfix's smtp-sink and against
#      volley sink; each server's CPU seconds per message, from /proc
#      (target: volley sink at most a third of smtp-sink's);
#   2. the limit: bench/stream-sender writing a pre-rendered, fully pipelined
#      BDAT stream into volley sink from 50 connections, and volley bench
#      (CHUNKING) against the same sink, at 1 KB and 100 KB (target: 70%);
#   3. TLS: volley bench with STARTTLS and AUTH, 100 KB messages, against
#      volley sink, beside bench/tls-record-bench, wolfSSL's record layer
#      encrypting the same sizes on one core (target: 70% of its rate), timed
#      both with wolfSSL's own ciphers and with AES-GCM done by libcrypto, as
#      volley does it;
#   4. memory: resident memory of volley bench holding 10,000 idle TLS
#      sessions (target: under 40 KB each) and of volley sink holding them.
#
#   bash bench/vs_smtp_sink.sh        (RUNS=3 MESSAGES=50000 LIMIT_MESSAGES=300000 BIG=5000 IDLE=10000)
#
# Every server is started here on 127.0.0.1 with its PID kept, and stopped by
# that PID. Prints per-run figures, medians and the ratios.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
RUNS=${RUNS:-3}
MESSAGES=${MESSAGES:-50000}   # 1 KB messages per run of part 1
# 1 KB messages per run of part 2: enough that the steady state, not the 50
# connections' setup, is what is timed.
LIMIT_MESSAGES=${LIMIT_MESSAGES:-300000}
BIG=${BIG:-5000}              # 100 KB messages per run
IDLE=${IDLE:-10000}           # idle TLS sessions for the memory figure
CONNS=50
PY=/usr/bin/python3
SINK_BIN=$(command -v smtp-sink || echo /usr/sbin/smtp-sink)
SOURCE_BIN=$(command -v smtp-source || echo /usr/sbin/smtp-source)

if [ -z "${VOLLEY:-}" ]; then
  [ -f build/build.ninja ] || meson setup build --buildtype=release >/dev/null
  ninja -C build >/dev/null
  VOLLEY=$ROOT/build/volley
fi
BENCHDIR=$(dirname "$VOLLEY")/bench
STREAM=$BENCHDIR/stream-sender
TLSREC=$BENCHDIR/tls-record-bench
for b in "$VOLLEY" "$STREAM" "$TLSREC" "$SINK_BIN" "$SOURCE_BIN"; do
  [ -x "$b" ] || { echo "missing: $b" >&2; exit 1; }
done

WORK=$(mktemp -d /tmp/volley-vs-sink.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

cpu_ticks() {   # cpu_ticks PID: utime + stime of that process, in clock ticks
  awk '{ print $14 + $15 }' "/proc/$1/stat"
}
TCK=$(getconf CLK_TCK)

free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_volley_sink NAME ARGS... -> sets SINK_PID and SINK_PORT
start_volley_sink() {
  local name=$1; shift
  "$VOLLEY" sink --listen 127.0.0.1:0 "$@" >"$WORK/$name.out" 2>&1 &
  SINK_PID=$!
  PIDS+=("$SINK_PID")
  for _ in $(seq 100); do
    SINK_PORT=$(sed -n 's/^listening 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$WORK/$name.out")
    [ -n "$SINK_PORT" ] && return 0
    sleep 0.05
  done
  echo "volley sink did not start: $(cat "$WORK/$name.out")" >&2
  exit 1
}

start_smtp_sink() {   # -> SINK_PID, SINK_PORT
  SINK_PORT=$(free_port)
  "$SINK_BIN" -u nobody "127.0.0.1:$SINK_PORT" 1024 >"$WORK/smtp-sink.out" 2>&1 &
  SINK_PID=$!
  PIDS+=("$SINK_PID")
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$SINK_PORT") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "smtp-sink did not start" >&2
  exit 1
}

stop_sink() { kill "$SINK_PID" 2>/dev/null || true; wait "$SINK_PID" 2>/dev/null || true; }

json() {   # json FILE KEY -> the value of KEY in the JSON object in FILE
  $PY -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"
}
median() { $PY -c 'import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }

echo "== 1. the sink's own cost: server CPU per message, same client load"
# The two servers alternate run by run, so that a machine that gets busier
# or quieter during the script weighs on both alike.
declare -A VALS
for i in $(seq "$RUNS"); do
  for client in smtp-source volley-pipelining; do
    for server in smtp-sink volley-sink; do
      if [ "$server" = smtp-sink ]; then start_smtp_sink; else start_volley_sink s1 --no-starttls; fi
      c0=$(cpu_ticks "$SINK_PID")
      if [ "$client" = smtp-source ]; then
        "$SOURCE_BIN" -d -s $CONNS -m "$MESSAGES" -l 1024 -M bench.test -f a@bench.test \
          -t b@dest.test "127.0.0.1:$SINK_PORT" >/dev/null
      else
        "$VOLLEY" bench "smtp://127.0.0.1:$SINK_PORT" --messages "$MESSAGES" --size 1k \
          --connections $CONNS --no-chunking --json >"$WORK/b.json"
        [ "$(json "$WORK/b.json" delivered)" = "$MESSAGES" ] || { echo "not all delivered" >&2; exit 1; }
      fi
      c1=$(cpu_ticks "$SINK_PID")
      stop_sink
      us=$($PY -c "print(($c1 - $c0) / $TCK / $MESSAGES * 1e6)")
      VALS[$server.$client]+="$us "
      printf '  %-11s <- %-17s run %d: %7.2f us server CPU per message\n' "$server" "$client" "$i" "$us"
    done
  done
done
declare -A COST
for key in "${!VALS[@]}"; do
  # shellcheck disable=SC2086
  COST[$key]=$(median ${VALS[$key]})
done
for client in smtp-source volley-pipelining; do
  $PY -c "
a, b = ${COST[volley-sink.$client]}, ${COST[smtp-sink.$client]}
print('  median with %-17s volley sink %6.2f us, smtp-sink %6.2f us: ratio %.2f (target <= 0.33)' % ('$client:', a, b, a / b))"
done

echo "== 2. the limit: a pre-rendered BDAT stream vs volley bench, into volley sink"
start_volley_sink s2 --no-starttls
for size in 1024 102400; do
  n=$([ "$size" = 1024 ] && echo "$LIMIT_MESSAGES" || echo "$BIG")
  fl=(); vb=()
  for i in $(seq "$RUNS"); do
    "$STREAM" "127.0.0.1:$SINK_PORT" --mode bdat --messages "$n" --size "$size" \
      --connections $CONNS >"$WORK/f.json"
    fl+=("$(json "$WORK/f.json" msgs_per_s)")
    "$VOLLEY" bench "smtp://127.0.0.1:$SINK_PORT" --messages "$n" --size "$size" \
      --connections $CONNS --json >"$WORK/b.json"
    vb+=("$(json "$WORK/b.json" msgs_per_s)")
    printf '  %6d B run %d: stream-sender %10.1f msgs/s   volley bench %10.1f msgs/s\n' \
      "$size" "$i" "${fl[-1]}" "${vb[-1]}"
  done
  $PY -c "
f, v = $(median "${fl[@]}"), $(median "${vb[@]}")
print('  %6d B median: stream-sender %.1f, volley bench %.1f msgs/s: %.0f%% of the limit (target >= 70%%)' % ($size, f, v, 100 * v / f))"
done
stop_sink

echo "== 3. TLS: volley bench with STARTTLS and AUTH, 100 KB, vs wolfSSL's record layer"
# The record layer is timed twice: with wolfSSL's own ciphers (this build has
# no assembly, so ChaCha20-Poly1305 in C is its fastest: the limit wolfSSL by
# itself sets), and with AES-GCM handed to libcrypto as volley does it
# (pool/tls_aead). Both ends of volley bench and volley sink use the latter.
printf 'bench@volley.test:bench-password\n' >"$WORK/auth"
printf 'bench-password\n' >"$WORK/pw"
start_volley_sink s3 --tls-cert tests/data/server.pem --tls-key tests/data/server.key \
  --auth-file "$WORK/auth"
tw=(); tl=(); vt=()
for i in $(seq "$RUNS"); do
  "$TLSREC" --cert tests/data/server.pem --key tests/data/server.key --size 102400 \
    --seconds 3 --wolfssl-aead >"$WORK/tw.json"
  tw+=("$(json "$WORK/tw.json" msgs_per_s)")
  "$TLSREC" --cert tests/data/server.pem --key tests/data/server.key --size 102400 \
    --seconds 3 >"$WORK/t.json"
  tl+=("$(json "$WORK/t.json" msgs_per_s)")
  c0=$(cpu_ticks "$SINK_PID")
  "$VOLLEY" bench "smtp+starttls://127.0.0.1:$SINK_PORT" --ca tests/data/ca.pem \
    --auth-user bench@volley.test --auth-password-file "$WORK/pw" \
    --messages "$((BIG * 2))" --size 100k --connections $CONNS --json >"$WORK/b.json"
  c1=$(cpu_ticks "$SINK_PID")
  vt+=("$(json "$WORK/b.json" msgs_per_s)")
  printf '  run %d: record layer, wolfSSL alone %8.1f msgs/s (%s, %s)\n' "$i" "${tw[-1]}" \
    "$(json "$WORK/tw.json" cipher)" "$(json "$WORK/tw.json" aead)"
  printf '         record layer, as volley   %8.1f msgs/s (%s, %s)\n' "${tl[-1]}" \
    "$(json "$WORK/t.json" cipher)" "$(json "$WORK/t.json" aead)"
  $PY -c "
import json, sys
b = json.load(open('$WORK/b.json'))
print('         volley bench              %8.1f msgs/s, client %.1f us, sink %.1f us of CPU per message'
      % (b['msgs_per_s'], b['cpu_s_per_msg'] * 1e6, ($c1 - $c0) / $TCK / b['messages'] * 1e6))"
done
$PY -c "
w, t, v = $(median "${tw[@]}"), $(median "${tl[@]}"), $(median "${vt[@]}")
print('  median: volley bench %.1f msgs/s' % v)
print('    against the record layer with wolfSSL alone (%.1f): %.0f%% (target >= 70%%)' % (w, 100 * v / w))
print('    against the record layer as volley runs it (%.1f): %.0f%%' % (t, 100 * v / t))"
stop_sink

echo "== 4. memory: $IDLE idle TLS sessions"
start_volley_sink s4 --implicit-tls --tls-cert tests/data/server.pem --tls-key tests/data/server.key \
  --idle-timeout 120
sink_rss0=$(awk '/VmRSS/ { print $2 }' "/proc/$SINK_PID/status")
"$VOLLEY" bench "smtps://127.0.0.1:$SINK_PORT" --ca tests/data/ca.pem --messages "$IDLE" \
  --size 1k --connections "$IDLE" --hold 5 --json >"$WORK/m.json" &
BENCH_PID=$!
PIDS+=("$BENCH_PID")
sink_max=$sink_rss0
while kill -0 "$BENCH_PID" 2>/dev/null; do
  r=$(awk '/VmRSS/ { print $2 }' "/proc/$SINK_PID/status")
  [ "$r" -gt "$sink_max" ] && sink_max=$r
  sleep 0.5
done
wait "$BENCH_PID" || true
stop_sink
$PY - "$WORK/m.json" "$sink_rss0" "$sink_max" "$IDLE" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
rss0, rssmax, n = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
print('  volley bench: %d sessions held, %.1f KB each (target < 40 KB)'
      % (m['held_sessions'], m['rss_kb_per_held_session']))
print('  volley sink:  %d KB -> %d KB at most, %.1f KB per session' % (rss0, rssmax, (rssmax - rss0) / n))
EOF
# What the TLS library alone keeps per established client session (its own
# allocations, counted through its allocator hooks): the floor under the
# figures above.
"$TLSREC" --cert tests/data/server.pem --key tests/data/server.key --ca tests/data/ca.pem \
  --sessions 1000 >"$WORK/w.json"
$PY - "$WORK/w.json" <<'EOF'
import json, sys
w = json.load(open(sys.argv[1]))
print('  wolfSSL alone: %.1f KB per client session (%s, %s), and %.1f MB per thread'
      % (w['wolfssl_bytes_per_session'] / 1024, w['version'], w['cipher'],
         w['wolfssl_bytes_fixed'] / 1048576))
EOF
