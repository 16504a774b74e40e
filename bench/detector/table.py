import json,sys
print("| model | variant | mode (target) | threshold t | val P_r | test P_r | success (test) | final top-1 | original top-1 | speculative alone | final - original | correctable caught / missed | acceptance (normal) |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for m in sys.argv[1:]:
    c=json.load(open(f'{m}.cal.json'))
    s=json.load(open(f'{m}.spec.json'))
    for r in s['rows']:
        t=r['threshold']; ts='inf' if t=='inf' else f"{t:.4f}"
        d=100*(r['final_top1']-r['original_top1'])
        acc=''
        if r['mode']=='normal':
            ok1 = d >= -0.1-1e-9; ok2 = r['success_rate']>=0.8
            acc = ('yes' if ok1 and ok2 else 'NO: ' + ', '.join(x for x,ok in [('accuracy',ok1),('success',ok2)] if not ok))
        print(f"| {m} | {r['variant']} | {r['mode']} ({r['target']}) | {ts} | {100*r['val_replay_rate']:.2f}% | {100*r['replay_rate']:.2f}% | {100*r['success_rate']:.2f}% | {100*r['final_top1']:.2f}% | {100*r['original_top1']:.2f}% | {100*r['speculative_top1']:.2f}% | {d:+.2f} | {r['correctable_caught']} / {r['correctable_missed']} | {acc} |")
