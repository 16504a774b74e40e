#!/usr/bin/env python3
"""Side-by-side latency of sieve, onnxruntime and tract on the same machine, same run.

For every model: batch-1 latency (median of per-round medians, rounds interleaved so
machine noise hits all engines alike; `sieve_over_ort` is the ratio of the two medians,
`sieve_over_ort_paired` the median of the per-round ratios) and batch-N throughput, plus the machine floors
(GEMM peak with numpy/OpenBLAS, memory bandwidth) and each model's FLOP floor.
Writes a JSON file and prints a markdown table. Run through bench/compare.sh.
"""
import argparse, json, os, subprocess, sys, time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import tract


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if len(xs) % 2 else 0.5 * (xs[len(xs) // 2 - 1] + xs[len(xs) // 2])


def time_fn(fn, min_seconds, min_runs, warmup=2):
    for _ in range(warmup):
        fn()
    times, start = [], time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < min_seconds:
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return median(times)


def input_chw(path):
    m = onnx.load(path, load_external_data=False)
    dims = m.graph.input[0].type.tensor_type.shape.dim
    return [d.dim_value for d in dims[1:]]


def macs(path, batch=1):
    """Conv + Gemm/MatMul multiply-accumulates per image (from ONNX shape inference)."""
    m = onnx.load(path)
    inp = m.graph.input[0].type.tensor_type.shape.dim
    inp[0].ClearField("dim_param")
    inp[0].dim_value = batch
    m = onnx.shape_inference.infer_shapes(m)
    shapes = {}
    for vi in list(m.graph.value_info) + list(m.graph.input) + list(m.graph.output):
        shapes[vi.name] = [d.dim_value for d in vi.type.tensor_type.shape.dim]
    for init in m.graph.initializer:
        shapes[init.name] = list(init.dims)
    total = 0
    for n in m.graph.node:
        if n.op_type == "Conv":
            w = shapes.get(n.input[1]); o = shapes.get(n.output[0])
            if w and o:
                total += int(np.prod(o)) * int(np.prod(w[1:]))
        elif n.op_type in ("Gemm", "MatMul"):
            a = shapes.get(n.input[0]); o = shapes.get(n.output[0])
            if a and o:
                trans_a = any(at.name == "transA" and at.i for at in n.attribute)
                k = a[-2] if trans_a else a[-1]
                total += int(np.prod(o)) * k
    return total // batch


def floors():
    a = np.random.rand(2048, 2048).astype(np.float32)
    flops = 2 * 2048 ** 3 / (time_fn(lambda: a @ a, 1.0, 3) / 1e3) / 1e9
    src = np.ones(64 * 2 ** 20, dtype=np.float32)  # 256 MiB
    dst = np.empty_like(src)
    ms = time_fn(lambda: np.copyto(dst, src), 1.0, 3)
    bw = 2 * src.nbytes / (ms / 1e3) / 1e9  # read + write
    return {"gemm_gflops_numpy": flops, "copy_bandwidth_gbs": bw}


def sieve_bench(exe, path, batch, threads, min_seconds, min_runs, warmup):
    out = subprocess.run(
        [exe, "bench", "--model", str(path), "--batch", str(batch), "--threads", str(threads),
         "--min-seconds", str(min_seconds), "--runs", str(min_runs), "--warmup", str(warmup), "--json"],
        check=True, capture_output=True, text=True)
    return json.loads(out.stdout)["median_ms"]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("models", nargs="+", help="ONNX files")
    ap.add_argument("--sieve", default="target/release/sieve")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--big-batch", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=1.0, help="min seconds per measurement")
    ap.add_argument("--big-models", default="",
                    help="comma-separated model names that get the big-batch run too (default: all)")
    ap.add_argument("--out", default="bench/out/compare.json")
    args = ap.parse_args()

    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    load_start = os.getloadavg()
    results = {"floors": floors(), "threads": args.threads, "onnxruntime": ort.__version__,
               "tract": tract.version(), "models": []}
    print(f"floors: {results['floors']}", file=sys.stderr)
    rng = np.random.default_rng(0)
    for path in args.models:
        name = Path(path).parent.name if Path(path).name == "model.onnx" else Path(path).stem
        c, h, w = input_chw(path)
        row = {"model": name, "path": str(path), "macs": macs(path)}
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        iname = sess.get_inputs()[0].name
        big = not args.big_models or name in args.big_models.split(",")
        for batch in (1, args.big_batch) if big else (1,):
            x = rng.integers(0, 256, size=(batch, c, h, w)).astype(np.float32)
            try:
                im = tract.onnx().load(str(path))
                im.set_input_fact(0, f"{batch},{c},{h},{w},f32")
                tr = im.into_model().into_runnable()
            except Exception as e:  # a peer that cannot load the model is reported, not fatal
                print(f"tract cannot run {name}: {str(e).splitlines()[0]}", file=sys.stderr)
                tr = None
            heavy = row["macs"] * batch > 5e10
            rounds = 1 if heavy else args.rounds
            runs, warmup = (2, 1) if heavy else (5, 2)
            secs = 0.0 if heavy else args.seconds
            s, o, t = [], [], []
            for _ in range(rounds):
                s.append(sieve_bench(args.sieve, path, batch, args.threads, secs, runs, warmup))
                o.append(time_fn(lambda: sess.run(None, {iname: x}), secs, runs, warmup))
                if tr is not None:
                    t.append(time_fn(lambda: tr.run([x]), secs, runs, warmup))
            key = "b1" if batch == 1 else f"b{batch}"
            row[key] = {"sieve_ms": median(s), "ort_ms": median(o),
                        "tract_ms": median(t) if t else None,
                        "sieve_over_ort": median(s) / median(o),
                        # Median of the per-round ratios (each round times both engines
                        # back to back): less sensitive to the host's slow drifts.
                        "sieve_over_ort_paired": median([a / b for a, b in zip(s, o)]),
                        "sieve_over_tract": median(s) / median(t) if t else None,
                        "rounds": rounds}
            print(f"{name} batch {batch}: {row[key]}", file=sys.stderr)
        results["models"].append(row)
    results["loadavg_start"], results["loadavg_end"] = load_start, os.getloadavg()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))

    fl = results["floors"]
    bb = f"b{args.big_batch}"
    print(f"onnxruntime {results['onnxruntime']}, tract {results['tract']}, {args.threads} threads; "
          f"numpy GEMM peak {fl['gemm_gflops_numpy']:.0f} GFLOP/s, copy bandwidth {fl['copy_bandwidth_gbs']:.1f} GB/s; "
          f"load average (1/5/15 min) {' '.join(f'{x:.1f}' for x in load_start)} at start, "
          f"{' '.join(f'{x:.1f}' for x in results['loadavg_end'])} at end\n")
    print(f"| model | MACs | b1 sieve ms | b1 ort ms | b1 tract ms | sieve/ort | sieve/ort paired | sieve/tract | FLOP floor b1 ms | "
          f"b{args.big_batch} sieve img/s | ort img/s | tract img/s | sieve/ort time |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    def f(v, fmt):
        return "n/a" if v is None else format(v, fmt)

    def tput(ms):
        return None if ms is None else args.big_batch * 1e3 / ms

    missing = {"sieve_ms": None, "ort_ms": None, "tract_ms": None, "sieve_over_ort": None}
    for r in results["models"]:
        b1, bn = r["b1"], r.get(bb, missing)
        floor_ms = 2 * r["macs"] / (fl["gemm_gflops_numpy"] * 1e9) * 1e3
        tract_tput = None if bn["tract_ms"] is None else args.big_batch * 1e3 / bn["tract_ms"]
        print(f"| {r['model']} | {r['macs']/1e6:.1f} M | {b1['sieve_ms']:.3f} | {b1['ort_ms']:.3f} | {f(b1['tract_ms'], '.3f')} | "
              f"{b1['sieve_over_ort']:.2f}x | {b1['sieve_over_ort_paired']:.2f}x | {f(b1['sieve_over_tract'], '.2f')}x | {floor_ms:.3f} | "
              f"{f(tput(bn['sieve_ms']), '.1f')} | {f(tput(bn['ort_ms']), '.1f')} | "
              f"{f(tract_tput, '.1f')} | {f(bn['sieve_over_ort'], '.2f')}x |")


if __name__ == "__main__":
    main()
