#!/usr/bin/python3
"""check_modules.py - the module graph of core/, computed from the sources.

A module is one core/<layer>/<name>.c with its <name>.h (or a header alone,
or a .c alone such as tcp.c); main.c is the module "main". An edge A -> B
means A's .c or .h includes B's header ("..." includes that resolve to a file
under core/), or A's .c calls a function B's header declares.

Fails (exit 1) on:
  - a system header a pure layer must not see: core/base and core/proto
    never include the loop, sockets, Lua or libssl (they reach OpenSSL's
    libcrypto only through base/crypto);
  - a cycle between modules (a strongly connected component of more than
    one module): DESIGN.md "No two modules depend on each other in a loop";
  - an upward edge: a module that includes or calls a module of a higher
    layer. Layers, lowest first: base, proto, net, ext, app, lua, main.

usage: check_modules.py [--root DIR] [--dot | --text]
  --dot / --text print the graph (dot, or one line per module) and still check.
"""
import argparse
import os
import re
import sys

LAYERS = ["base", "proto", "net", "ext", "app", "lua", "main"]
RANK = {name: i for i, name in enumerate(LAYERS)}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
SYSINCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', re.M)
PURE = {"base", "proto"}
IMPURE = re.compile(r"^(ev\.h|lua\.h|lauxlib\.h|luajit\.h|sys/socket\.h|netinet/.*|openssl/ssl\.h)$")
# A declaration in a header: "<type words and stars> name(" at the start of a
# line, not a macro, typedef or struct member.
DECL = re.compile(r"^(?!\s*(?:#|typedef|return|static inline|\s))[A-Za-z_][\w \t\*]*?\b([a-z_]\w*)\s*\(",
                  re.M)
INLINE = re.compile(r"^static inline [\w \t\*]*?\b([a-z_]\w*)\s*\(", re.M)
COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)
STRING = re.compile(r'"(?:\\.|[^"\\])*"')
CALL = re.compile(r"\b([a-z_]\w*)\s*\(")
# Words that take parentheses but name no function of ours: C keywords and
# operators, and the identifiers the C standard reserves to the compiler
# (two underscores, or one and a capital: __attribute__, __builtin_expect,
# _Static_assert, _Alignas, _Alignof, _Generic...). Never a declaration in a
# header, never a call in a .c.
KEYWORDS = {
    "alignas", "alignof", "asm", "defined", "for", "if", "return", "sizeof",
    "static_assert", "switch", "typeof", "typeof_unqual", "while",
}
RESERVED = re.compile(r"^(?:__|_[A-Z])")
# In a header, what stands between a declaration's start and its name:
# attribute-like words with a parenthesised argument go (with the argument,
# nested parentheses included), type-like ones become a type word; bare
# qualifiers go. "static inline __attribute__((always_inline)) int f(" then
# reads as "static inline int f(": f, not __attribute__, is the function.
ATTR = re.compile(r"\b(?:__attribute__|__attribute|__declspec|_Alignas|alignas|__asm__|__asm|asm)"
                  r"\s*\(")
TYPEOF = re.compile(r"\b(?:__typeof__|__typeof|typeof_unqual|typeof|_Atomic)\s*\(")
QUALIFIER = re.compile(r"\b(?:__extension__|__inline__|__inline|_Noreturn|__restrict__|__restrict|"
                       r"__thread|__volatile__|__const__|__signed__)\b[ \t]*")


def reserved(name):
    return name in KEYWORDS or RESERVED.match(name) is not None


def close_paren(text, i):
    """Index just past the parenthesis that closes the one before text[i]."""
    depth = 1
    while i < len(text) and depth:
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        i += 1
    return i


def unattribute(text):
    """Header text with attribute, typeof and qualifier words taken out."""
    out, i = [], 0
    while True:
        a, t = ATTR.search(text, i), TYPEOF.search(text, i)
        m = min((x for x in (a, t) if x), key=lambda x: x.start(), default=None)
        if m is None:
            break
        end = close_paren(text, m.end())
        out.append(text[i:m.start()])
        if m is t:
            out.append("typeof_t ")
        while end < len(text) and text[end] in " \t":
            end += 1
        i = end
    out.append(text[i:])
    return QUALIFIER.sub("", "".join(out))


def strip(text):
    return STRING.sub('""', COMMENT.sub(" ", text))


def scan(root):
    core = os.path.join(root, "core")
    mods = {}  # name -> {"layer", "files": []}
    header_of = {}  # header basename -> module
    for layer in os.listdir(core):
        d = os.path.join(core, layer)
        if not os.path.isdir(d):
            continue
        if layer not in RANK:
            sys.exit("check_modules: unknown layer core/%s (add it to LAYERS)" % layer)
        for f in sorted(os.listdir(d)):
            if not f.endswith((".c", ".h")):
                continue
            name = layer + "/" + f[:-2]
            m = mods.setdefault(name, {"layer": layer, "files": []})
            m["files"].append(os.path.join(d, f))
            if f.endswith(".h"):
                if f in header_of:
                    sys.exit("check_modules: two headers named %s" % f)
                header_of[f] = name
    if os.path.exists(os.path.join(core, "main.c")):
        mods["main"] = {"layer": "main", "files": [os.path.join(core, "main.c")]}
    return mods, header_of


def declarations(mods):
    """function -> the module whose header declares it."""
    decls = {}
    for name, m in mods.items():
        for f in m["files"]:
            if f.endswith(".h"):
                text = unattribute(strip(open(f, encoding="utf-8").read()))
                for fn in DECL.findall(text) + INLINE.findall(text):
                    if not reserved(fn):
                        decls.setdefault(fn, name)
    return decls


def graph(mods, header_of):
    decls = declarations(mods)
    edges = {name: {} for name in mods}  # a -> {b: "include" | "call"}
    for name, m in mods.items():
        for f in m["files"]:
            raw = open(f, encoding="utf-8").read()
            for inc in INCLUDE.findall(raw):
                b = header_of.get(os.path.basename(inc))
                if b and b != name:
                    edges[name].setdefault(b, "include %s (%s)" % (inc, os.path.basename(f)))
            if f.endswith(".c"):
                body = strip(raw)
                for fn in set(CALL.findall(body)):
                    b = None if reserved(fn) else decls.get(fn)
                    if b and b != name:
                        edges[name].setdefault(b, "call %s() (%s)" % (fn, os.path.basename(f)))
    return edges


def sccs(edges):
    """Tarjan's strongly connected components."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(comp)

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--root", default=os.path.dirname(os.path.dirname(here)))
    ap.add_argument("--dot", action="store_true")
    ap.add_argument("--text", action="store_true")
    args = ap.parse_args()
    mods, header_of = scan(args.root)
    edges = graph(mods, header_of)
    if args.dot:
        print("digraph core {\n  rankdir=BT; node [shape=box];")
        for layer in LAYERS:
            names = sorted(n for n in mods if mods[n]["layer"] == layer)
            if names:
                print('  subgraph "cluster_%s" { label="%s"; %s }'
                      % (layer, layer, " ".join('"%s";' % n for n in names)))
        for a in sorted(edges):
            for b in sorted(edges[a]):
                print('  "%s" -> "%s";' % (a, b))
        print("}")
    elif args.text:
        for a in sorted(edges):
            print("%s -> %s" % (a, " ".join(sorted(edges[a])) or "-"))
    bad = 0
    for name, m in sorted(mods.items()):
        if m["layer"] not in PURE:
            continue
        for f in m["files"]:
            for inc in SYSINCLUDE.findall(open(f, encoding="utf-8").read()):
                if IMPURE.match(inc):
                    bad += 1
                    print("IMPURE %s includes <%s>: core/%s stays free of the loop, sockets, "
                          "Lua and libssl" % (os.path.relpath(f, args.root), inc, m["layer"]),
                          file=sys.stderr)
    for comp in sccs(edges):
        if len(comp) > 1:
            bad += 1
            comp.sort()
            print("CYCLE between %d modules: %s" % (len(comp), " ".join(comp)), file=sys.stderr)
            members = set(comp)
            for a in comp:
                for b, why in sorted(edges[a].items()):
                    if b in members:
                        print("    %s -> %s: %s" % (a, b, why), file=sys.stderr)
    for a in sorted(edges):
        for b, why in sorted(edges[a].items()):
            if RANK[mods[b]["layer"]] > RANK[mods[a]["layer"]]:
                bad += 1
                print("UPWARD %s (%s) -> %s (%s): %s"
                      % (a, mods[a]["layer"], b, mods[b]["layer"], why), file=sys.stderr)
    nedges = sum(len(e) for e in edges.values())
    print("check_modules: %d modules, %d edges, %d problems" % (len(mods), nedges, bad),
          file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
