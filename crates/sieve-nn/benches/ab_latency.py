#!/usr/bin/env python3
"""Interleaved batch-1 medians: sieve `latency` example binaries (comma-separated; wrap one
in a shell script to set SIEVE_* env knobs) vs onnxruntime, several rounds.

ab_latency.py EXE[,EXE...] ROUNDS SECONDS MODEL.onnx...   (run with the bench venv python)
"""
import sys, subprocess, re, time, numpy as np, onnxruntime as ort, statistics as st
exes=sys.argv[1].split(","); rounds=int(sys.argv[2]); secs=float(sys.argv[3]); models=sys.argv[4:]
so=ort.SessionOptions(); so.intra_op_num_threads=2; so.inter_op_num_threads=1
so.execution_mode=ort.ExecutionMode.ORT_SEQUENTIAL
def tf(fn):
    for _ in range(3): fn()
    ts=[]; s=time.perf_counter()
    while len(ts)<5 or time.perf_counter()-s<secs:
        t=time.perf_counter(); fn(); ts.append((time.perf_counter()-t)*1e3)
    return st.median(ts)
for m in models:
    sess=ort.InferenceSession(m,so,providers=["CPUExecutionProvider"]); i=sess.get_inputs()[0]
    shp=[1 if not isinstance(d,int) else d for d in i.shape]
    x=np.random.default_rng(0).integers(0,256,size=shp).astype(np.float32)
    res={e:[] for e in exes}; o=[]
    for r in range(rounds):
        for e in exes:
            out=subprocess.run([e,m,"1",str(secs),"2"],capture_output=True,text=True,check=True).stdout
            res[e].append(float(re.search(r"median ([\d.]+)",out).group(1)))
        o.append(tf(lambda: sess.run(None,{i.name:x})))
    om=st.median(o)
    print(m.split('/')[-2] if m.endswith('model.onnx') else m.split('/')[-1], f"ort {om:.3f}", " ".join(f"{e.split('/')[-1]} {st.median(v):.3f} ({st.median(v)/om:.2f}x) rounds {['%.3f'%t for t in v]}" for e,v in res.items()), f"ort rounds {['%.3f'%t for t in o]}", flush=True)
