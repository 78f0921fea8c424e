#!/usr/bin/env bash
# Installs the Debian packages roomcast needs to build, run and test, and only
# those that are missing. Used by `make deps`, `make run`, `make test` and CI.
set -euo pipefail
PKGS=(
  build-essential cmake pkg-config clang clang-format libfuzzer-14-dev libclang-rt-14-dev
  libev-dev libluajit-5.1-dev luajit libssl-dev openssl lua-cjson libsqlite3-dev zlib1g-dev
  libhiredis-dev redis-server
  libcmocka-dev lua-busted
  python3 python3-websockets python3-prometheus-client python3-jwt python3-cryptography
  valgrind
  # bench/peer_detect builds the lws peer after its .pc file "appears"
  libwebsockets-dev
  # make test-package checks the packaged logrotate snippet
  logrotate
  # tests/integration/80_browser.js drives it through npm puppeteer-core
  chromium
)
# Node.js may come from outside Debian (with its own npm); Debian's npm
# conflicts with such a node, so it is only installed when the commands are absent.
command -v node >/dev/null || PKGS+=(nodejs)
command -v npm >/dev/null || PKGS+=(npm)
missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null; then SUDO=sudo; else
      echo "deps: missing packages and not root: ${missing[*]}" >&2; exit 1; fi
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# Node's `ws` (a second third-party client) and `puppeteer-core` (drives the
# Debian chromium for the browser tests).
here=$(cd "$(dirname "$0")/.." && pwd)
if [ -f "$here/tests/package.json" ] && { [ ! -d "$here/tests/node_modules/ws" ] || [ ! -d "$here/tests/node_modules/puppeteer-core" ]; } && command -v npm >/dev/null; then
  (cd "$here/tests" && npm install --no-audit --no-fund --silent) || echo "deps: npm install failed; node tests will be skipped" >&2
fi
exit 0
