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

# --- 1. packages -------------------------------------------------------------
PKGS=(meson ninja-build pkg-config gcc liburing-dev libwolfssl-dev libhiredis-dev
      libcsv-dev postfix python3 python3-aiosmtpd openssl ca-certificates time
      coreutils
      # exim4-daemon-light's own libraries (the package itself is unpacked, not installed)
      libidn12 libgnutls-dane0 libgnutls30 libnsl2 libdb5.3 libpcre2-8-0 libcrypt1 libidn2-0)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' \
    || missing+=("$p")
done
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)

apt_updated=0
apt_update() {
  if [ "$apt_updated" = 0 ]; then
    apt-get update -q || return 1
    apt_updated=1
  fi
}

if [ "${#missing[@]}" -gt 0 ]; then
  say "installing: ${missing[*]}"
  if [ "$(id -u)" != 0 ]; then
    echo "tests/run.sh: these packages are missing and installing them needs root: ${missing[*]}" >&2
    exit 1
  fi
  # postfix is only wanted for smtp-sink and smtp-source: leave it unconfigured
  echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections
  apt_update || exit 1
  apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null || exit 1
fi

# Exim, unpacked into tests/peers/.exim (and the Debian-exim user).
if ! $PY tests/peers/exim.py install >/dev/null 2>&1; then
  say "unpacking exim4-daemon-light"
  apt_update
  $PY tests/peers/exim.py install || echo "tests/run.sh: Exim could not be set up; its tests will skip" >&2
fi

# npm packages for the nodemailer peer (npm ci from the lock file, once).
if ! $PY -c 'import sys; sys.path.insert(0, "tests/peers"); import node_peer; sys.exit(0 if node_peer.installed() else 1)'; then
  say "npm ci in tests/peers/node"
  $PY tests/peers/node_peer.py install || echo "tests/run.sh: npm install failed; the nodemailer tests will skip" >&2
fi

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
