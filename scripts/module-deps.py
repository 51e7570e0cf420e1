#!/usr/bin/env python3
"""Lists the bridge's module dependencies (`crate::` paths) and fails on an import circle.

Usage: python3 scripts/module-deps.py [bridge/src]

A module is a top-level file or folder of bridge/src (`hub/redis.rs` belongs to `hub`).
Prints `module -> dependencies` per line, then each cycle found, and exits 1 if any.
"""
import pathlib
import re
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "bridge/src")
graph = {}


def top_level_names(text):
    """The first path segment of every `crate::` path, including inside `use crate::{…}`."""
    names = []
    for m in re.finditer(r"crate::", text):
        i = m.end()
        if text.startswith("{", i):
            depth, j, item = 0, i, ""
            while j < len(text):
                c = text[j]
                if c == "{":
                    depth += 1
                    if depth == 1:
                        j += 1
                        continue
                elif c == "}":
                    depth -= 1
                    if depth == 0:
                        break
                if depth == 1 and c == ",":
                    names.append(item)
                    item = ""
                elif depth >= 1:
                    item += c
                j += 1
            names.append(item)
        else:
            names.append(re.match(r"[a-z_0-9]*", text[i:]).group(0))
    return [re.split(r"::|\s|\{", n.strip())[0] for n in names if n.strip()]


for path in sorted(root.rglob("*.rs")):
    rel = path.relative_to(root)
    module = rel.parts[0].removesuffix(".rs")
    if module in ("lib", "main"):
        continue
    # Unit tests may import anything.
    text = path.read_text().split("#[cfg(test)]")[0]
    # Comments (doc links included) are not dependencies.
    text = re.sub(r"//[^\n]*", "", text)
    deps = graph.setdefault(module, set())
    for name in top_level_names(text):
        if name != module and ((root / f"{name}.rs").exists() or (root / name).is_dir()):
            deps.add(name)

for module in sorted(graph):
    print(f"{module} -> {', '.join(sorted(graph[module])) or '(nothing)'}")

# Cycles: strongly connected components with more than one module (Tarjan).
index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]
def visit(v):
    index[v] = low[v] = counter[0]; counter[0] += 1
    stack.append(v); on.add(v)
    for w in graph.get(v, ()):
        if w not in index:
            visit(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop(); on.discard(w); comp.append(w)
            if w == v:
                break
        if len(comp) > 1:
            sccs.append(sorted(comp))
sys.setrecursionlimit(10000)
for v in sorted(graph):
    if v not in index:
        visit(v)
for comp in sccs:
    print(f"import circle: {' <-> '.join(comp)}")
sys.exit(1 if sccs else 0)
