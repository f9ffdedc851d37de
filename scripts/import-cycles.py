#!/usr/bin/env python3
"""Import circles in a crate's sources: between files, and between top-level modules.

Each `crate::a::b` or `super::x` path names the file module it resolves to; every
strongly connected component of more than one file (or top-level module) is printed.
Exits 1 if there is any. Usage: scripts/import-cycles.py shared/src origin/src edge/src"""
import os, re, sys
from collections import defaultdict

def modules(src):
    mods = {}
    for root, _, files in os.walk(src):
        for f in files:
            if not f.endswith('.rs'): continue
            p = os.path.join(root, f)
            rel = os.path.relpath(p, src)[:-3].split(os.sep)
            if rel[-1] in ('mod', 'lib', 'main'): rel = rel[:-1]
            mods[tuple(rel)] = p
    return mods

def strip(text):
    # drop test modules and comments
    text = re.sub(r'//[^\n]*', '', text)
    i = text.find('#[cfg(test)]\nmod tests')
    if i >= 0: text = text[:i]
    return text

def resolve(mods, path):
    for n in range(len(path), -1, -1):
        if tuple(path[:n]) in mods: return tuple(path[:n])
    return None

def graph(src):
    mods = modules(src)
    g = defaultdict(set)
    for m, p in mods.items():
        text = strip(open(p).read())
        # expand use crate::a::{b, c::d}
        for mm in re.finditer(r'\b(crate|super)((?:::\w+)*)(::\{([^;]*?)\})?', text):
            base = mm.group(1); rest = [x for x in mm.group(2).split('::') if x]
            if base == 'crate': prefix = []
            else:
                own = list(m) if not p.endswith(('mod.rs','lib.rs')) else list(m)+['_']
                prefix = own[:-2] if p.endswith(('mod.rs',)) and False else list(m)[:-1] if not p.endswith('mod.rs') else list(m)[:-1]
            targets = []
            if mm.group(4):
                for item in re.split(r',', mm.group(4)):
                    item = item.strip().split(' as ')[0].replace('{','').replace('}','').strip()
                    if item: targets.append(prefix + rest + [x for x in item.split('::') if x and x != 'self'])
            else:
                targets.append(prefix + rest)
            for t in targets:
                r = resolve(mods, t)
                if r is not None and r != m and r != ():
                    # importing a parent module's own items
                    g[m].add(r)
    return mods, g

def sccs(nodes, g):
    index = {}; low = {}; stack = []; on = set(); out = []; i = [0]
    sys.setrecursionlimit(10000)
    def visit(v):
        index[v] = low[v] = i[0]; i[0] += 1; stack.append(v); on.add(v)
        for w in g.get(v, ()):
            if w not in index: visit(w); low[v] = min(low[v], low[w])
            elif w in on: low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v: break
            out.append(comp)
    for v in nodes:
        if v not in index: visit(v)
    return [c for c in out if len(c) > 1]

total = 0
for src in sys.argv[1:]:
    mods, g = graph(src)
    for c in sccs(list(mods), g):
        total += 1
        print(src, 'files:', ' <-> '.join('::'.join(x) for x in sorted(c)))
    top = defaultdict(set)
    for a, bs in g.items():
        for b in bs:
            if a[:1] != b[:1]:
                top[a[:1]].add(b[:1])
    for c in sccs(list({m[:1] for m in mods}), top):
        total += 1
        print(src, 'modules:', ' <-> '.join('::'.join(x) for x in sorted(c)))
print('circles:', total)
sys.exit(1 if total else 0)
