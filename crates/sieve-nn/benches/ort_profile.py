#!/usr/bin/env python3
"""onnxruntime per-node profile of one model at batch 1 (2 intra-op threads): ort_profile.py MODEL.onnx [RUNS] [TOP]."""
import sys, json, collections, numpy as np, onnxruntime as ort, onnx, time, os
path=sys.argv[1]; runs=int(sys.argv[2]) if len(sys.argv)>2 else 200
so=ort.SessionOptions(); so.intra_op_num_threads=2; so.inter_op_num_threads=1
so.execution_mode=ort.ExecutionMode.ORT_SEQUENTIAL; so.enable_profiling=True
so.profile_file_prefix="/tmp/ort_profile"
s=ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
i=s.get_inputs()[0]; shp=[1 if not isinstance(d,int) else d for d in i.shape]
x=np.random.default_rng(0).integers(0,256,size=shp).astype(np.float32)
for _ in range(runs): s.run(None,{i.name:x})
f=s.end_profiling(); ev=json.load(open(f)); os.remove(f)
agg=collections.defaultdict(lambda:[0,0]); op=collections.defaultdict(float); tot=0
for e in ev:
    if e.get("cat")=="Node" and e["name"].endswith("_kernel_time"):
        n=e["name"][:-12]; agg[(n,e["args"].get("op_name"))][0]+=e["dur"]; agg[(n,e["args"].get("op_name"))][1]+=1
        op[e["args"].get("op_name")]+=e["dur"]; tot+=e["dur"]
print(f"ort profile {path}: {tot/runs:.1f} us/run in nodes")
for k,v in sorted(op.items(), key=lambda x:-x[1]): print(f"  op {k:<20} {v/runs:9.1f} us/run {100*v/tot:5.1f}%")
for (n,o),(d,c) in sorted(agg.items(), key=lambda x:-x[1][0])[:int(sys.argv[3]) if len(sys.argv)>3 else 25]:
    print(f"  {d/c:9.1f} us {100*d/tot:5.1f}% {o:<14} {n[:90]}")
