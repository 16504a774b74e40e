#!/bin/bash
# Session 15: LeNet-5's search on the 10k MNIST validation images, fresh (no journal), the
# defaults (fragile first) and `--dataset-order` alternating, ROUNDS rounds; prints the real
# time of each and compares the packages' metadata. B: a sieve-design binary.
S=${SIEVE_SHARED:-/work/shared}; B=$(realpath "${B:-target/release/sieve-design}")
OUT=${OUT:-/tmp/lenet_order_ab}; ROUNDS=${ROUNDS:-3}
mkdir -p "$OUT" && cd "$OUT" || exit 1
for r in $(seq 1 "$ROUNDS"); do
  for mode in fragile dataset; do
    extra=""; [ "$mode" = dataset ] && extra="--dataset-order"
    # shellcheck disable=SC2086
    /usr/bin/time -f "%e" -o "time_$mode.$r" $B design --model $S/models/lenet5/model.onnx \
      --val mnist:$S/data/mnist --out "$mode.$r.sieve" --no-journal --json $extra \
      > "$mode.$r.json" 2> "$mode.$r.err" || { echo "design failed: $mode round $r"; exit 1; }
    echo "round $r $mode: $(cat "time_$mode.$r") s real, images_run $(python3 -c \
      "import json;print(json.load(open('$mode.$r.json'))['timing'].get('images_run'))")"
  done
done
for mode in fragile dataset; do $B inspect "$mode.1.sieve" --json > "$mode.inspect.json"; done
python3 - <<'PY'
import json
a = json.load(open("fragile.inspect.json"))["meta"]; b = json.load(open("dataset.inspect.json"))["meta"]
a["settings"].pop("fragile_first", None)
same = [k for k in a if a[k] == b.get(k)]
print("metadata fields equal apart from settings.fragile_first:", sorted(same))
print("fields that differ:", sorted(k for k in a if a[k] != b.get(k)))
PY
