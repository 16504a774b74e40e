#!/usr/bin/env python3
"""Session 8: the --json timing of a design run as tables (phases; per layer, grouped)."""
import json, sys
d = json.load(open(sys.argv[1]))
t = d['timing']
print('| points | combinations | new evaluations | reused points | reused combinations | load | baseline | sub-batch check | cache cuts | weight points | activation points | combinations (s) | total (s) |')
print('|---|---|---|---|---|---|---|---|---|---|---|---|---|')
print(f"| {d['points']} | {d['combinations']} | {t['new_evaluations']} | {t.get('reused_points',0)} | {t.get('reused_combinations',0)} | {t['load']:.1f} | {t['baseline']:.1f} | {t.get('sub_batch_check',0):.1f} | {t['cache']:.1f} | {t['weight_points']:.1f} | {t['activation_points']:.1f} | {t['combinations']:.1f} | {t['total']:.1f} |")
L = t.get('layers', [])
if L:
    groups = [(0, 4), (4, 10), (10, 19), (19, 37), (37, 52), (52, 53)]
    print()
    print('| layers | evaluations (w + a) | seconds | s per evaluation | share of sweep time |')
    print('|---|---|---|---|---|')
    tot = sum(l['cache'] + l['weight'] + l['activation'] for l in L)
    for a, b in groups:
        g = L[a:b]
        if not g: continue
        ev = sum(l['weight_evals'] + l['activation_evals'] for l in g)
        s = sum(l['cache'] + l['weight'] + l['activation'] for l in g)
        print(f"| {a}-{b-1} ({g[0]['name']} .. {g[-1]['name']}) | {ev} | {s:.0f} | {s/max(ev,1):.2f} | {100*s/tot:.0f}% |")
