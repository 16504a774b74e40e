import json, os, subprocess
R='/work/runs/search'
models=[('lenet5','mnist 10k val (all)'),('cifar10_quick','data_batch_1 (all 10k)'),('nin_cifar10','data_batch_1, first 500'),('mobilenet_v1_0.25_128','sample1000 (1,000)'),('mv1_paper_head','mobilenet_v1 sample1000, `--paper --e-headroom 1` (ablation)'),('mv1_bisect','mobilenet_v1 sample1000, with bisection back-off (sd4)'),('mnv2_cap212','mobilenet_v2 sample1000, first 100, `--max-recovery` default (212)'),('mobilenet_v2_1.0_224','sample1000, first 100, `--max-recovery 100000`'),('mnv2_bisect','mobilenet_v2 sample1000, first 100, `--max-recovery 100000`, bisection back-off (sd4)')]
tests={'lenet5':'MNIST test 10k','cifar10_quick':'CIFAR-10 test 10k','nin_cifar10':'CIFAR-10 test, first 2,000','mobilenet_v1_0.25_128':'val1300 (1,300)','mobilenet_v2_1.0_224':'val1300, first 500','mnv2_cap212':'val1300, first 500','mv1_bisect':'val1300 (1,300)','mv1_paper_head':'val1300 (1,300)','mnv2_bisect':'val1300, first 500'}
rows=[];times=[]
for m,val in models:
    try: d=json.load(open(f'{R}/{m}.json'))
    except Exception as e: print('#',m,'missing',e); continue
    try: t=json.load(open(f'{R}/{m}.test.json'))['results']
    except Exception: t=None
    tr={r['variant']:r for r in t} if t else {}
    pk=subprocess.run([f'{R}/bin/sd3','inspect','--json',f'{R}/{m}.sieve'],capture_output=True,text=True).stdout
    meta=json.loads(pk); meta=meta.get('meta',meta)
    base=d['baseline_top1']
    vi={v['variant']:v for v in meta['variants']}
    for v in d['variants']:
        name=v['variant']; mv=vi[name]
        ag=mv.get('agree'); n=meta['baseline']['images']
        tt = f"{100*tr['original']['top1']:.2f} -> {100*tr[name]['top1']:.2f} ({100*(tr[name]['top1']-tr['original']['top1']):+.2f})" if tr else 'n/a'
        rows.append(f"| {m} | {val} | {name} | {v['avg_weight_bits']:.2f} | {v['avg_activation_bits']:.2f} | {v['weight_bytes']:,} | {d['package_bytes']:,} | {d['onnx_bytes']:,} | {100*base:.2f} -> {100*v['val_top1']:.2f} | {100*ag/n:.1f}% | {tests[m]}: {tt} | {len(v['recovered'])} |")
    T=d['timing']; real=open(f'{R}/{m}.err').read().strip().splitlines()[-1] if os.path.exists(f'{R}/{m}.err') else ''
    up=open(f'{R}/{m}.uptime2' if os.path.exists(f'{R}/{m}.uptime2') else f'{R}/{m}.uptime').read().strip().splitlines() if os.path.exists(f'{R}/{m}.uptime') else ['']
    la=up[0].split('load average:')[-1].strip() if up[0] else ''
    times.append(f"| {m} | {meta['provenance']['images']} | {d['points']} | {d['combinations']} | {T['new_evaluations']} | {T['load']:.1f} | {T['baseline']:.1f} | {T['cache']:.1f} | {T['weight_points']:.1f} | {T['activation_points']:.1f} | {T['combinations']:.1f} | {T['total']:.1f} | {real} | {la} |")
print("| model | val images | variant | avg weight bits | avg act bits | variant weight bytes | package bytes (3 variants) | ONNX bytes | val top-1 (orig -> variant) | val agreement with original top-1 | test top-1 (orig -> variant, pts) | recovery widenings |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
print("\n".join(rows))
print()
print("| model | images | points | combinations | new evaluations | load | baseline | cache cuts | weight points | activation points | combinations | total (s) | /usr/bin/time | load average at start (1/5/15 min) |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
print("\n".join(times))
