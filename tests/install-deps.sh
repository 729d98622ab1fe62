#!/usr/bin/env bash
# Installs what volley's build, tests and demo need on a Debian 12 machine, as
# root, and only what is missing: Debian packages, Exim unpacked privately
# (it conflicts with postfix), and the npm packages of the nodemailer peer.
# Used by tests/run.sh and bench/demo.sh.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
export DEBIAN_FRONTEND=noninteractive
PY=/usr/bin/python3

say() { printf '== %s\n' "$*"; }

# --- 1. packages -------------------------------------------------------------
PKGS=(meson ninja-build pkg-config gcc liburing-dev libwolfssl-dev libssl-dev libhiredis-dev
      libcsv-dev libjansson-dev libidn2-dev libinih-dev libc-ares-dev dnsmasq-base postfix python3 python3-aiosmtpd python3-dkim openssl
      ca-certificates time coreutils swaks libnet-ssleay-perl
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

exit 0
