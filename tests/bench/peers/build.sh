#!/usr/bin/env bash
# peers/build.sh BUILD_DIR [PEER...] - builds the compiled benchmark peers outside the
# main CMake tree, into BUILD_DIR/bench-peers/, and writes
# BUILD_DIR/bench-peers/status: one line per peer,
#
#   NAME<TAB>ok<TAB>PATH
#   NAME<TAB>missing<TAB>WHY
#
# Detection runs every time and is never cached: a peer's package installed
# after the main build was configured is found on the next run (CMake caches
# a failed find_library until the build directory is deleted; that is why the
# peers are not in CMakeLists.txt). libwebsockets is found with pkg-config, so
# PKG_CONFIG_PATH / PKG_CONFIG_LIBDIR steer it (tests/bench/peer_detect_test.sh);
# gorilla needs the go command and Debian's gorilla source.
#
# PEER... (lws gorilla node) limits the work to those; default: all three.
# Never fails the caller: a peer that cannot be built is "missing" with why.
set -u
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="${1:?usage: build.sh BUILD_DIR [PEER...]}"
shift
wanted=" ${*:-lws gorilla node} "
want() { [[ "$wanted" == *" $1 "* ]]; }
dir="$build/bench-peers"
mkdir -p "$dir"
status="$dir/status"
: >"$status.new"

# deps.sh leaves the reason its last install failed here.
failure="${RC_BENCH_OUT:-$(cd "$here/../../.." && pwd)/bench-out}/deps-failure.txt"
why_pkg() { # package: why it is not there, and what would fix it
    local last=""
    [ -s "$failure" ] && last="; last try: $(head -n 1 "$failure")"
    if [ "$(id -u)" != 0 ] && ! command -v sudo >/dev/null 2>&1; then
        echo "$1 not installed (needs root: run make bench-deps as root$last)"
    else
        echo "$1 not installed (run make bench-deps$last)"
    fi
}

# ---- lws: libwebsockets through pkg-config ------------------------------------
lws_bin="$dir/peer_lws"
if ! want lws; then
    :
elif pkg-config --exists libwebsockets 2>/dev/null; then
    # Rebuilt when the source changed or the flags pkg-config gives changed.
    flags="$(pkg-config --cflags --libs libwebsockets)"
    if [ ! -x "$lws_bin" ] || [ "$here/lws.c" -nt "$lws_bin" ] ||
        [ "$(cat "$lws_bin.flags" 2>/dev/null)" != "$flags" ]; then
        # shellcheck disable=SC2046,SC2086 # the flags are words on purpose
        if ${CC:-cc} -std=c11 -O2 -D_GNU_SOURCE -o "$lws_bin" "$here/lws.c" \
            $(pkg-config --cflags libwebsockets) $(pkg-config --libs libwebsockets) \
            >"$dir/peer_lws.build.log" 2>&1; then
            echo "$flags" >"$lws_bin.flags"
        else
            rm -f "$lws_bin" "$lws_bin.flags"
        fi
    fi
    if [ -x "$lws_bin" ]; then
        printf 'lws\tok\t%s\n' "$lws_bin" >>"$status.new"
    else
        printf 'lws\tmissing\tpeers/lws.c did not compile (see %s)\n' \
            "$dir/peer_lws.build.log" >>"$status.new"
    fi
else
    rm -f "$lws_bin" "$lws_bin.flags" # what pkg-config no longer sees is not used
    printf 'lws\tmissing\t%s\n' "$(why_pkg libwebsockets-dev)" >>"$status.new"
fi

# ---- gorilla: Go and Debian's gorilla/websocket source -----------------------
gorilla_bin="$dir/peer_gorilla"
gocode=/usr/share/gocode
if ! want gorilla; then
    :
elif ! command -v go >/dev/null 2>&1; then
    rm -f "$gorilla_bin"
    printf 'gorilla\tmissing\t%s\n' "$(why_pkg golang-go)" >>"$status.new"
elif [ ! -d "$gocode/src/github.com/gorilla/websocket" ]; then
    rm -f "$gorilla_bin"
    printf 'gorilla\tmissing\t%s\n' "$(why_pkg golang-github-gorilla-websocket-dev)" >>"$status.new"
else
    if [ ! -x "$gorilla_bin" ] || [ "$here/gorilla.go" -nt "$gorilla_bin" ]; then
        (cd "$here" && GOPATH=$gocode GO111MODULE=off GOFLAGS='' GOCACHE="$dir/gocache" \
            go build -o "$gorilla_bin" gorilla.go) >"$dir/peer_gorilla.build.log" 2>&1 ||
            rm -f "$gorilla_bin"
    fi
    if [ -x "$gorilla_bin" ]; then
        printf 'gorilla\tok\t%s\n' "$gorilla_bin" >>"$status.new"
    else
        printf 'gorilla\tmissing\tpeers/gorilla.go did not build (see %s)\n' \
            "$dir/peer_gorilla.build.log" >>"$status.new"
    fi
fi

# ---- node: node and the npm package ws -----------------------------------------
if ! want node; then
    :
elif ! command -v node >/dev/null 2>&1; then
    printf 'node\tmissing\t%s\n' "$(why_pkg nodejs)" >>"$status.new"
elif [ ! -f "$here/node_modules/ws/package.json" ]; then
    last=""
    [ -s "$failure" ] && last="; last try: $(tail -n 1 "$failure")"
    printf 'node\tmissing\tthe npm package ws is not installed (run make bench-deps%s)\n' "$last" \
        >>"$status.new"
else
    printf 'node\tok\t%s\n' "$here/node_ws.js" >>"$status.new"
fi

mv "$status.new" "$status"
exit 0
