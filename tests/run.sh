#!/usr/bin/env bash
# volley's test command (the one the README gives): bash tests/run.sh
#
# For a Debian 12 machine, run as root. Installs what is missing (apt-get, only
# when something is missing; Exim is unpacked privately since it conflicts with
# postfix; npm packages for the nodemailer peer), then:
#   1. meson setup build --werror; meson test (every suite)
#   2. the same in build-asan with -Db_sanitize=address,undefined -Db_lundef=false
# and ends with the line "N passed, N failed[, N skipped]" summed over both,
# read from build*/meson-logs/testlog.json. Exits non-zero if anything failed.
# Re-runs reuse the build directories and skip every install step.
#
# Environment: VOLLEY_SKIP_ASAN=1 skips the sanitizer build (for quick local runs);
# MESON_TEST_ARGS adds arguments to both `meson test` runs (e.g. "--suite unit").
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
ROOT=$PWD
export DEBIAN_FRONTEND=noninteractive
PY=/usr/bin/python3   # Debian's interpreter: the peers need python3-aiosmtpd

say() { printf '== %s\n' "$*"; }

# --- 1. packages (shared with the demo) ----------------------------------------
bash tests/install-deps.sh || exit 1

# --- 2. builds and tests -----------------------------------------------------
build_failures=0
LOGS=()

run_build() {   # run_build DIR [meson setup options...]
  local dir=$1; shift
  rm -f "$dir/meson-logs/testlog.json"
  if [ ! -f "$dir/build.ninja" ]; then
    say "meson setup $dir --werror $*"
    if ! meson setup "$dir" --werror "$@"; then
      echo "tests/run.sh: meson setup $dir failed" >&2
      build_failures=$((build_failures + 1))
      return
    fi
  fi
  say "meson test -C $dir"
  # meson test builds what is out of date first
  # shellcheck disable=SC2086
  if ! meson test -C "$dir" --print-errorlogs ${MESON_TEST_ARGS:-} ${EXTRA_TEST_ARGS:-}; then
    if [ ! -f "$dir/meson-logs/testlog.json" ]; then
      echo "tests/run.sh: the build in $dir failed before any test ran" >&2
      build_failures=$((build_failures + 1))
    fi
    echo "tests/run.sh: test log: $ROOT/$dir/meson-logs/testlog.txt" >&2
  fi
  LOGS+=("$dir/meson-logs/testlog.json")
}

run_build build
if [ "${VOLLEY_SKIP_ASAN:-0}" != 1 ]; then
  EXTRA_TEST_ARGS="--timeout-multiplier 3" run_build build-asan \
    -Db_sanitize=address,undefined -Db_lundef=false
fi

# --- 3. the summary line ------------------------------------------------------
$PY - "$build_failures" "${LOGS[@]}" <<'EOF'
import json, os, sys
build_failures = int(sys.argv[1])
passed = failed = skipped = 0
for path in sys.argv[2:]:
    if not os.path.exists(path):
        continue
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                result = json.loads(line).get('result')
            except ValueError:
                continue
            if result in ('OK', 'EXPECTEDFAIL'):
                passed += 1
            elif result == 'SKIP':
                skipped += 1
            else:   # FAIL, TIMEOUT, ERROR, UNEXPECTEDPASS
                failed += 1
failed += build_failures
line = '%d passed, %d failed' % (passed, failed)
if skipped:
    line += ', %d skipped' % skipped
print(line)
sys.exit(1 if failed or passed == 0 else 0)
EOF
