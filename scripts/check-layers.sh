#!/bin/sh
# The one-way layers of src/ (docs/architecture.md), checked:
#   base <- format <- store <- {fill, upkeep} <- sources <- facade (src/*.c)
#  - no file includes a header of a layer above it (or of its sibling:
#    fill and upkeep do not see each other);
#  - no circle between files, by their #include lines (x.c and x.h are
#    one module) and, given a build directory, by the calls their objects
#    make (nm);
#  - cli/ includes no header of src/ (only include/larder.h), and tests/,
#    bench/, tools/ only src/testing.h (fuzz/ also the format layer's own
#    headers, which it compiles itself);
#  - given a build directory: each layer's objects' undefined ldr_* and
#    larder_* symbols are defined in the same or a lower layer, which
#    catches an upward call through a declaration written by hand.
# Usage: scripts/check-layers.sh [BUILD_DIR]. Prints each violation
# (file, what it includes or calls) and exits 1 if there is any.
set -eu
cd "$(dirname "$0")/.."
exec python3 - "$@" <<'EOF'
import os, re, subprocess, sys

ORDER = ["base", "format", "store", "fill", "upkeep", "sources", "facade"]
SEES = {
    "base": {"base"},
    "format": {"base", "format"},
    "store": {"base", "format", "store"},
    "fill": {"base", "format", "store", "fill"},
    "upkeep": {"base", "format", "store", "upkeep"},
    "sources": {"base", "format", "store", "fill", "upkeep", "sources"},
    "facade": set(ORDER),
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
errors = []


def layer_of(path):
    parts = path.split("/")
    if parts[0] != "src":
        return None
    return "facade" if len(parts) == 2 else parts[1]


def files(top, exts=(".c", ".h")):
    out = []
    for root, _, names in os.walk(top):
        out += [os.path.join(root, n) for n in names if n.endswith(exts)]
    return sorted(out)


src = files("src")
headers = {}  # name -> path (header names are unique across src/)
for p in src:
    if p.endswith(".h"):
        name = os.path.basename(p)
        if name in headers:
            errors.append(f"{p}: header name also used by {headers[name]}")
        headers[name] = p


def includes(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return INCLUDE.findall(f.read())


def module(path):
    return os.path.splitext(path)[0]


# 1. Upward includes, and the include graph between modules.
graph = {}
for p in src:
    me = layer_of(p)
    for inc in includes(p):
        if inc == "larder.h":
            continue
        h = headers.get(inc)
        if h is None:
            errors.append(f"{p}: includes \"{inc}\", no such header in src/")
            continue
        them = layer_of(h)
        if them not in SEES.get(me, set()):
            errors.append(f"{p}: includes \"{inc}\" ({h}), of layer "
                          f"'{them}', which layer '{me}' must not see")
        if module(h) != module(p):
            graph.setdefault(module(p), set()).add(module(h))


def cycle_in(graph, comp):
    """One shortest circle through comp's first node, as a path."""
    start, inside = comp[0], set(comp)
    prev, todo = {start: None}, [start]
    while todo:
        nxt = []
        for v in todo:
            for w in sorted(graph.get(v, ())):
                if w == start:
                    path = [v]
                    while prev[path[-1]] is not None:
                        path.append(prev[path[-1]])
                    return list(reversed(path)) + [start]
                if w in inside and w not in prev:
                    prev[w] = v
                    nxt.append(w)
        todo = nxt
    return comp


def circles(graph):
    """Strongly connected components of more than one node (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
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
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


for comp in circles(graph):
    errors.append("circle of includes: " +
                  " -> ".join(cycle_in(graph, comp)) +
                  f" ({len(comp)} modules in the knot)")

# 2. Clients: cli/ sees the public header only; tests and tools see
# src/testing.h (fuzz/: the layers it compiles).
for top, allowed in (("cli", set()), ("tests", {"testing.h"}),
                     ("bench", {"testing.h"}), ("tools", {"testing.h"}),
                     ("fuzz", {"testing.h"} | {
                         os.path.basename(h) for h in headers.values()
                         if layer_of(h) in ("base", "format")})):
    if not os.path.isdir(top):
        continue
    own = {os.path.basename(p) for p in files(top, (".h",))}
    for p in files(top):
        for inc in includes(p):
            if inc in headers and inc not in allowed and inc not in own:
                errors.append(f"{p}: includes \"{inc}\" ({headers[inc]}), "
                              f"an internal header of src/")

# 3. The linker's view: what each layer's objects call.
if len(sys.argv) > 1:
    objdir = os.path.join(sys.argv[1], "CMakeFiles")
    objs = {}  # object path -> layer
    for lay in ORDER:
        d = os.path.join(objdir, f"larder_{lay}.dir")
        for root, _, names in os.walk(d):
            for n in names:
                if n.endswith(".o"):
                    objs[os.path.join(root, n)] = lay
    if not objs:
        errors.append(f"{objdir}: no layer objects (larder_<layer>.dir)")
    defined, undefined = {}, {}
    for o in objs:
        out = subprocess.run(["nm", o], capture_output=True, text=True,
                             check=True).stdout
        for line in out.splitlines():
            f = line.split()
            if len(f) == 3 and f[1] in "TDBR":
                defined[f[2]] = o
            elif len(f) == 2 and f[0] == "U" and \
                    f[1].startswith(("ldr_", "larder_")):
                undefined.setdefault(o, set()).add(f[1])

    def name(o):
        return o.split(".dir/", 1)[1][:-2]

    calls = {}
    for o, syms in undefined.items():
        for s in sorted(syms):
            d = defined.get(s)
            if d is None:
                continue  # not ours (or not built in this configuration)
            if objs[d] not in SEES[objs[o]]:
                errors.append(f"{name(o)}: calls {s} of {name(d)}, layer "
                              f"'{objs[d]}' above layer '{objs[o]}'")
            calls.setdefault(module(name(o)), set()).add(module(name(d)))
    for comp in circles(calls):
        errors.append("circle of calls: " +
                      " -> ".join(cycle_in(calls, comp)) +
                      f" ({len(comp)} modules in the knot)")

for e in errors:
    print(e)
print(f"check-layers: {len(errors)} problem(s)" if errors
      else "check-layers: layers one-way, no circles")
sys.exit(1 if errors else 0)
EOF
