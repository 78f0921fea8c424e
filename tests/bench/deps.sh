#!/usr/bin/env bash
# deps.sh - installs what the benchmark needs and is missing: the Debian
# packages for the peers and the plots, and the npm `ws` package for the node
# peer. `make bench-deps` runs it, and `make bench` / `make bench-quick` run
# that first, before anything is configured or timed. Installs nothing that
# is already there (as root, or through sudo); never fails the caller for a
# peer that cannot be had (run.sh names it and why in the table).
set -u
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# Why the last install failed, for peers/build.sh to put in the table.
out="${RC_BENCH_OUT:-$(cd "$here/../.." && pwd)/bench-out}"
mkdir -p "$out"
failure="$out/deps-failure.txt"
rm -f "$failure"

missing=()
for pkg in golang-go golang-github-gorilla-websocket-dev libwebsockets-dev gnuplot-nox valgrind; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
        missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "deps: installing ${missing[*]}" >&2
    SUDO=()
    [ "$(id -u)" = 0 ] || SUDO=(sudo)
    if [ "$(id -u)" = 0 ] || command -v sudo >/dev/null 2>&1; then
        { "${SUDO[@]}" apt-get update -qq &&
            "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } \
            >"$out/deps-apt.log" 2>&1 || {
            echo "deps: apt-get failed (see $out/deps-apt.log); the peers that need it are skipped" >&2
            echo "apt-get failed, see $out/deps-apt.log" >"$failure"
        }
    else
        echo "deps: not root and no sudo, cannot install ${missing[*]}" >&2
        echo "not root, no sudo" >"$failure"
    fi
fi

if command -v npm >/dev/null 2>&1; then
    if [ ! -f "$here/peers/node_modules/ws/package.json" ]; then
        echo "deps: npm install (ws)" >&2
        (cd "$here/peers" && npm install --no-audit --no-fund --silent) >"$out/deps-npm.log" 2>&1 || {
            echo "deps: npm install failed; the node peer is skipped" >&2
            echo "npm install failed, see $out/deps-npm.log" >>"$failure"
        }
    fi
else
    echo "deps: npm not found; the node peer is skipped" >&2
fi
exit 0
