#!/usr/bin/env bash
# deps.sh - installs what the benchmark needs and is missing: the Debian
# packages for the peers and the plots, and the npm `ws` package for the node
# peer. Installs nothing that is already there; never fails the caller for a
# peer that cannot be had (run.sh skips that peer with a message).
set -u
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

missing=()
for pkg in golang-go golang-github-gorilla-websocket-dev libwebsockets-dev gnuplot-nox valgrind; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
        missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "deps: installing ${missing[*]}" >&2
    if [ "$(id -u)" = 0 ]; then
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } \
            >/dev/null 2>&1 || echo "deps: apt-get failed; the peers that need it are skipped" >&2
    else
        echo "deps: not root, cannot install ${missing[*]}" >&2
    fi
fi

if command -v npm >/dev/null 2>&1; then
    if [ ! -f "$here/peers/node_modules/ws/package.json" ]; then
        echo "deps: npm install (ws)" >&2
        (cd "$here/peers" && npm install --no-audit --no-fund --silent) >/dev/null 2>&1 ||
            echo "deps: npm install failed; the node peer is skipped" >&2
    fi
else
    echo "deps: npm not found; the node peer is skipped" >&2
fi
exit 0
