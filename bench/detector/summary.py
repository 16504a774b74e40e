import json,sys
for m in sys.argv[1:]:
    c=json.load(open(f'{m}.cal.json'))
    print(m, 'val A0', c['original_top1'], 'images', c['images'])
    for k,v in c['variants'].items():
        print('  val', k, 'top1', v['top1'], 'correctable', v['correctable'], 'uncorrectable', v['uncorrectable'], [(x['target'],x['threshold'],round(x['replay_rate'],4),x['final_top1']) for x in v['choices']])
    s=json.load(open(f'{m}.spec.json'))
    for r in s['rows']: print('  test',r['variant'],r['mode'],r['threshold'],'rep',r['replay_rate'],'succ',r['success_rate'],'fin',r['final_top1'],'orig',r['original_top1'],'spec',r['speculative_top1'],'caught',r['correctable_caught'],'missed',r['correctable_missed'])
