#!/bin/bash
# Per-layer FC timing at batch 1 (speculative_bench fc: f32 kernel vs 8-bit and 5-bit
# packed weights), two builds alternated run by run so both see the same machine state.
# Usage: OUT=raw.jsonl FC_ARGS="--cold" bench/fc_ab.sh BASE_BIN NEW_BIN [RUNS] [ROUNDS]
#   BASE_BIN/NEW_BIN: target/release/examples/speculative_bench of two commits.
# Raw JSON lines (build, run, data) go to $OUT; the summary (medians over runs of the
# per-run medians) to stdout.
set -euo pipefail
BASE="$1"; NEW="$2"; RUNS="${3:-5}"; ROUNDS="${4:-15}"; OUT="${OUT:-fc_ab.jsonl}"
: > "$OUT"
for r in $(seq 1 "$RUNS"); do
  for tag in base new; do
    bin=$BASE; [ "$tag" = new ] && bin=$NEW
    "$bin" fc --rounds "$ROUNDS" ${FC_ARGS:-} | while read -r line; do
      echo "{\"build\":\"$tag\",\"run\":$r,\"data\":$line}" >> "$OUT"
    done
  done
done
python3 - "$OUT" <<'PY'
import sys, json, statistics as st
rows=[json.loads(l) for l in open(sys.argv[1])]
med={}
for r in rows:
    d=r["data"]
    if d.get("mode")!="fc": continue
    med.setdefault((d["layer"], d["config"], r["build"]), []).append(d["median_ms"])
bw=[r["data"]["read_bytes_per_s"]/1e9 for r in rows if r["data"].get("mode")=="bandwidth"]
print("read bandwidth GB/s per run:", " ".join(f"{b:.1f}" for b in bw))
layers=[]
for (l,c,b) in med:
    if l not in layers: layers.append(l)
for l in layers:
    if any((l,"f32 (fc kernel)",b) not in med for b in ("base","new")): continue
    f={b: st.median(med[(l,"f32 (fc kernel)",b)]) for b in ("base","new")}
    for c in sorted({c for (ll,c,b) in med if ll==l}):
        if "gemm" in c or any((l,c,b) not in med for b in ("base","new")): continue
        m={b: st.median(med[(l,c,b)]) for b in ("base","new")}
        print(f"{l:18s} {c:26s} base {m['base']:7.3f} ms (x{f['base']/m['base']:.2f} vs f32)  new {m['new']:7.3f} ms (x{f['new']/m['new']:.2f} vs f32)  new/base speed x{m['base']/m['new']:.2f}")
PY
