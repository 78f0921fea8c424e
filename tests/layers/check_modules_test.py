#!/usr/bin/python3
"""check_modules_test.py - check_modules.py on small synthetic trees.

The checker reads C with regular expressions; these trees hold the
constructs that once fooled it: a compiler word with parentheses
(__attribute__, __attribute, _Alignas, __typeof__, _Static_assert,
__builtin_*, sizeof, _Alignof...) in a header read as a function that
header declares, and every .c that used the word as a call into that
module: a false edge, here a false cycle and a false upward edge.

Each case runs the checker as ctest does (its exit status and its lines)
and reads its graph: the words make no edge, the functions behind them are
still found (a call to one is an edge), and a true upward call or cycle
still fails.

usage: check_modules_test.py   (exit 0 when every case passes)
"""
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKER = os.path.join(HERE, "check_modules.py")
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import check_modules  # noqa: E402

# base/fast: a header full of compiler words in front of its functions.
FAST_H = """\
#ifndef FAST_H
#define FAST_H
#include <stddef.h>
#define FAST_LIKELY(x) __builtin_expect(!!(x), 1)
_Static_assert(sizeof(int) >= 2, "int");
static inline __attribute__((always_inline)) int fast_add(int a, int b)
{
    return a + b;
}
__attribute__((noreturn)) void fast_die(const char *why);
__attribute((cold)) void fast_warn(const char *why);
extern _Alignas(64) char fast_pad[64];
__extension__ typedef unsigned long long fast_u64;
static inline __typeof__(sizeof(int)) fast_size(void)
{
    return _Alignof(long) + __builtin_offsetof(struct { int a; }, a);
}
typeof(0) fast_zero(void);
_Noreturn void fast_abort(void);
#endif
"""
FAST_C = """\
#include "fast.h"
#include <stdlib.h>
char fast_pad[64];
void fast_die(const char *why) { (void)why; abort(); }
void fast_warn(const char *why) { (void)why; }
int fast_zero(void) { return 0; }
void fast_abort(void) { abort(); }
static __attribute((unused)) int fast_unused;
%(extra)s
"""
# proto/codec: uses the same words, and calls base/fast's functions only
# through their names (no include: the call alone must make the edge).
CODEC_H = """\
#ifndef CODEC_H
#define CODEC_H
#include <stddef.h>
static inline __attribute((always_inline)) size_t codec_len(const char *p)
{
    return sizeof(p) + __alignof__(p);
}
_Alignas(16) extern char codec_buf[16];
#endif
"""
CODEC_C = """\
#include "codec.h"
char codec_buf[16];
static __attribute__((unused)) int codec_mark;
int codec_sum(int a, int b)
{
    _Static_assert(sizeof(a) == sizeof(b), "same");
    __typeof__(a) s = fast_add(a, b);
    if (__builtin_expect(s < 0, 0))
        fast_die("negative");
    return s + (int)_Alignof(int) + (int)fast_size() + fast_zero();
}
"""


def tree(root, fast_extra=""):
    for layer in ("base", "proto"):
        os.makedirs(os.path.join(root, "core", layer))
    files = {
        "core/base/fast.h": FAST_H,
        "core/base/fast.c": FAST_C % {"extra": fast_extra},
        "core/proto/codec.h": CODEC_H,
        "core/proto/codec.c": CODEC_C,
    }
    for path, text in files.items():
        with open(os.path.join(root, path), "w", encoding="utf-8") as f:
            f.write(text)


def run(root):
    p = subprocess.run([sys.executable, CHECKER, "--root", root, "--text"],
                       capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout + p.stderr


def edges_of(root):
    return check_modules.graph(*check_modules.scan(root))


FAILS = []


def expect(cond, what, detail=""):
    print("%s %s" % ("ok  " if cond else "FAIL", what))
    if not cond:
        FAILS.append(what)
        if detail:
            print("    " + detail.replace("\n", "\n    "))


def case_compiler_words_make_no_edge():
    with tempfile.TemporaryDirectory() as root:
        tree(root)
        rc, out = run(root)
        expect(rc == 0, "compiler words: the check passes", out)
        expect("CYCLE" not in out and "UPWARD" not in out, "compiler words: no cycle, no upward edge",
               out)
        e = edges_of(root)
        expect(set(e["base/fast"]) == set(), "compiler words: base/fast depends on nothing",
               repr(e["base/fast"]))
        expect(set(e["proto/codec"]) == {"base/fast"},
               "compiler words: proto/codec depends on base/fast alone", repr(e["proto/codec"]))
        decls = check_modules.declarations(check_modules.scan(root)[0])
        for fn in ("fast_add", "fast_die", "fast_warn", "fast_size", "fast_zero", "fast_abort"):
            expect(decls.get(fn) == "base/fast", "compiler words: %s() is base/fast's" % fn,
                   repr(decls.get(fn)))
        expect(decls.get("codec_len") == "proto/codec", "compiler words: codec_len() is "
               "proto/codec's", repr(decls.get("codec_len")))
        words = sorted(fn for fn in decls if check_modules.reserved(fn))
        expect(words == [], "compiler words: no compiler word is a declared function",
               repr(words))


def case_true_upward_call_still_fails():
    # base/fast calls codec_len(), declared behind __attribute in
    # proto/codec's header: a real upward edge and a real cycle.
    with tempfile.TemporaryDirectory() as root:
        tree(root, fast_extra="size_t fast_codec(void) { return codec_len(\"x\"); }\n")
        rc, out = run(root)
        expect(rc == 1, "upward call: the check fails", out)
        expect("UPWARD base/fast (base) -> proto/codec (proto): call codec_len() (fast.c)" in out,
               "upward call: named with the call behind the attribute", out)
        expect("CYCLE between 2 modules: base/fast proto/codec" in out, "upward call: the cycle",
               out)


def case_unattribute():
    u = check_modules.unattribute
    cases = [
        ("static inline __attribute__((always_inline)) int f(int x)",
         "static inline int f(int x)"),
        ("__attribute__((format(printf, 1, 2))) void g(const char *fmt, ...);",
         "void g(const char *fmt, ...);"),
        ("int h(void) __attribute((pure));", "int h(void) ;"),
        ("extern _Alignas(64) char pad[64];", "extern char pad[64];"),
        ("__typeof__(sizeof(int)) k(void);", "typeof_t k(void);"),
        ("__extension__ _Noreturn void m(void);", "void m(void);"),
    ]
    for text, want in cases:
        got = u(text)
        expect(got == want, "unattribute %r" % text, "got %r, want %r" % (got, want))
    for word in ("__attribute__", "__attribute", "__extension__", "__typeof__", "typeof",
                 "_Alignas", "_Static_assert", "__builtin_expect", "__builtin_offsetof",
                 "sizeof", "_Alignof", "__alignof__", "_Generic", "alignof", "static_assert"):
        expect(check_modules.reserved(word), "reserved: %s" % word)
    for name in ("fast_add", "ws_msg_whole", "rc_log", "typeof_t_user"):
        expect(not check_modules.reserved(name), "not reserved: %s" % name)


def main():
    case_compiler_words_make_no_edge()
    case_true_upward_call_still_fails()
    case_unattribute()
    print("check_modules_test: %d failed" % len(FAILS))
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
