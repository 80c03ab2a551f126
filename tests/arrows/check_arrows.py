#!/usr/bin/env python3
"""check_arrows.py - no two modules may call each other in a circle.

Reads the product's object files with nm(1): module A depends on module B
when A uses a symbol that B defines.  Prints every arrow, then fails when
the graph has a cycle (a strongly connected set of two or more modules,
or a module whose arrows lead back to itself).

usage: check_arrows.py OBJ...      (make arrows passes the product's .o)
"""
import os
import subprocess
import sys


def symbols(obj):
    """(defined, undefined) global symbols of one object file"""
    out = subprocess.run(["nm", "-g", obj], check=True, capture_output=True,
                         text=True).stdout
    defined, used = set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "U":
            used.add(parts[1])
        elif len(parts) == 3 and parts[1] in "TDBRCVW":
            defined.add(parts[2])
    return defined, used


def graph(objs):
    """module name -> set of modules it uses"""
    owner, uses = {}, {}
    for obj in objs:
        mod = os.path.splitext(os.path.basename(obj))[0]
        defined, used = symbols(obj)
        for sym in defined:
            owner[sym] = mod
        uses[mod] = used
    return {m: {owner[s] for s in u if s in owner and owner[s] != m}
            for m, u in uses.items()}


def cycles(g):
    """strongly connected components with more than one module (Tarjan)"""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(g[v]):
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

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def main(objs):
    if not objs:
        print("usage: check_arrows.py OBJ...", file=sys.stderr)
        return 2
    g = graph(objs)
    for m in sorted(g):
        print("%-12s -> %s" % (m, " ".join(sorted(g[m])) or "(libc only)"))
    bad = cycles(g)
    for comp in bad:
        print("CIRCLE: " + " <-> ".join(comp))
    print("%d passed, %d failed" % (0 if bad else 1, 1 if bad else 0))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
