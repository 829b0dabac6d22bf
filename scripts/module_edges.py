#!/usr/bin/env python3
"""Lists the `use crate::…` and `super::…` edges between the modules of src/
(comments and unit-test modules left out) and any cycle among them.

Usage: python3 scripts/module_edges.py [src] [--edges]; the last line says how
many cycles there are (0 is the rule, issue 11)."""
import os,re,sys
root=sys.argv[1] if len(sys.argv)>1 else 'src'
mods={}
for d,_,fs in os.walk(root):
    for f in fs:
        if not f.endswith('.rs'): continue
        p=os.path.join(d,f); rel=os.path.relpath(p,root)[:-3]
        parts=rel.split('/')
        if parts[-1] in ('mod','lib','main'): parts=parts[:-1]
        mods['::'.join(parts)]=p
# Names a module re-exports (`pub use state::AppState;` in http/mod.rs): an
# import of `http::AppState` depends on `http::state`.
reexports={}
for m,p in mods.items():
    src=re.sub(r'//.*','',open(p).read())
    for vis,path in re.findall(r'\bpub(\([^)]*\))? use ([\w:{}, ]+);',src):
        path=path.replace(' ','')
        base,_,group=path.partition('{')
        names=group.rstrip('}').split(',') if group else [base.rsplit('::',1)[-1]]
        base=base.rstrip(':') if group else base.rsplit('::',1)[0]
        if base.startswith('crate::'): full=base[7:]
        elif base.startswith('super::'): full='::'.join(m.split('::')[:-1]+[base[7:]])
        else: full=(m+'::'+base) if m else base
        for name in names:
            name=name.split('::')[-1]
            if name and name!='self': reexports[(m,name)]=full+'::'+name
def resolve(path, depth=0):
    parts=path.split('::')
    for n in range(len(parts),0,-1):
        m='::'.join(parts[:n])
        if m in mods:
            if n<len(parts) and (m,parts[n]) in reexports and depth<5:
                return resolve('::'.join([reexports[(m,parts[n])]]+parts[n+1:]), depth+1) or m
            return m
    return None
edges={}
for m,p in mods.items():
    src=open(p).read()
    src=re.sub(r'//.*','',src)
    src=re.sub(r'#\[cfg\(test\)\]\s*mod tests\s*\{.*','',src,flags=re.S)
    out=set()
    for u in re.findall(r'\b(crate|super)((?:::\w+)+)',src):
        kind,rest=u; rest=rest[2:]
        if kind=='crate': full=rest
        else:
            base=m.split('::')[:-1] if not p.endswith('mod.rs') else m.split('::')
            if p.endswith('mod.rs'): base=base[:-1]
            full='::'.join([x for x in base if x]+[rest]) if base else rest
        t=resolve(full)
        # braces: use crate::x::{a, b}
        if t and t!=m and not t.startswith(m+'::') and not m.startswith(t+'::'):
            out.add(t)
    # grouped imports: use crate::x::{y::z, w}
    for base,group in re.findall(r'use crate::([\w:]*)::\{([^}]*)\}',src):
        for item in group.split(','):
            item=item.strip().split(' ')[0].split('::{')[0]
            if not item or item=='self': continue
            t=resolve(base+'::'+item)
            if t and t!=m and not t.startswith(m+'::') and not m.startswith(t+'::'): out.add(t)
    edges[m]=out
if '--edges' in sys.argv:
    for m in sorted(edges): print(f"{m or 'lib'} -> {', '.join(sorted(edges[m]))}")
# cycles
seen=set(); cyc=[]
def dfs(n,stack):
    for t in edges.get(n,()):
        if t in stack: cyc.append(stack[stack.index(t):]+[t])
        elif (n,t) not in seen:
            seen.add((n,t)); dfs(t,stack+[t])
for m in edges: dfs(m,[m])
uniq=set()
for c in cyc:
    k=tuple(sorted(set(c)))
    if k in uniq: continue
    uniq.add(k); print('CYCLE:',' -> '.join(c))
print(len(uniq),'cycles')
