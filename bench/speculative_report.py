#!/usr/bin/env python3
"""Markdown tables from bench/out/speculative.jsonl (see bench/speculative.sh)."""
import json, statistics, sys
from collections import OrderedDict

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
loads = [r["result"]["uptime"].strip() for r in rows if r["model"] == "_machine"]
print("Load during the run: " + " / ".join(loads) + "\n")

fc = [r["result"] for r in rows if r["model"] == "fc"]
bw = [r for r in fc if r["mode"] == "bandwidth"]
if bw:
    print("Measured read bandwidth (2 threads, 512 MiB buffer): %.1f GB/s\n" % (bw[0]["read_bytes_per_s"] / 1e9))
if fc:
    print("| FC layer [n x k] (batch) | weights | bytes | median ms | floor ms (bytes/bw) | speedup vs f32 |")
    print("|---|---|---|---|---|---|")
    for r in fc:
        if r["mode"] != "fc":
            continue
        print("| %s [%d x %d] (%d) | %s | %s | %.2f | %.2f | %.2fx |" % (
            r["layer"], r["n"], r["k"], r.get("batch", 1), r["config"], f"{r['weight_bytes']:,}",
            r["median_ms"], r["floor_ms"], r["speedup_vs_f32"]))
    print()

pairs = [r for r in rows if r["model"] == "pair"]
models = OrderedDict()
for r in rows:
    if r["model"] in ("fc", "_machine", "pair"):
        continue
    models.setdefault(r["model"], OrderedDict()).setdefault(r["result"]["config"], []).append(r["result"])

print("| model | configuration | weight bytes | median ms (median of rounds) | min ms | vs sieve original | vs onnxruntime | RSS after load MiB | peak RSS during runs MiB |")
print("|---|---|---|---|---|---|---|---|---|")
for m, cfgs in models.items():
    med = {c: statistics.median(x["median_ms"] for x in v) for c, v in cfgs.items()}
    orig = med.get("original f32")
    ortk = next((c for c in cfgs if c.startswith("onnxruntime")), None)
    for c, v in cfgs.items():
        wb = v[0].get("weight_bytes")
        mn = min(x["min_ms"] for x in v)
        rss = statistics.median(x["rss_loaded_kb"] for x in v) / 1024
        peak = statistics.median(x["peak_run_kb"] for x in v) / 1024
        vs_o = "%.2fx" % (orig / med[c]) if orig else "-"
        vs_r = "%.2fx" % (med[ortk] / med[c]) if ortk else "-"
        print("| %s | %s | %s | %.2f (%d rounds) | %.2f | %s | %s | %.0f | %.0f |" % (
            m, c, f"{wb:,}" if wb else "-", med[c], len(v), mn, vs_o, vs_r, rss, peak))
print("\n(speedups > 1 mean faster than the reference; computed from the medians)")
if pairs:
    print("\nPaired in one process (original and variant alternating; speedup = original / variant per round):\n")
    print("| model | configuration | rounds | original median ms | variant median ms | speedup median (p10 - p90) |")
    print("|---|---|---|---|---|---|")
    for r in pairs:
        x = r["result"]
        print("| %s | %s | %d | %.2f | %.2f | %.3fx (%.3f - %.3f) |" % (
            x["onnx"], x["config"], x["rounds"], x["original_median_ms"], x["variant_median_ms"],
            x["speedup_median"], x["speedup_p10"], x["speedup_p90"]))
