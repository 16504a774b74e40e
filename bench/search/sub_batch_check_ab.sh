#!/usr/bin/env bash
# Session 16: the search's fixed costs (examples/search_overheads: baseline, sub-batch
# check, cache walk) of two commits, alternated, and where the time goes.
#   OLD=334bbf0 NEW=HEAD RUNS=3 bench/search/sub_batch_check_ab.sh
# builds the example at both commits (git worktrees sharing this checkout's target dir),
# runs each RUNS times alternated on MobileNet v2 with 1,000 validation images (2 rounds
# per process; the example prints the larger of the two as its "median"), then with
# PERF=1 a `perf record` of the new one (share of samples in the kernel's page zeroing),
# and the first-touch cost of this machine (bench/first_touch.py).
set -euo pipefail
cd "$(dirname "$0")/../.."
S=${SIEVE_SHARED:-$(pwd)/../shared}
OLD=${OLD:-334bbf0} NEW=${NEW:-HEAD} RUNS=${RUNS:-3}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$(pwd)/target}
out=$(mktemp -d)
for which in old new; do
  rev=$OLD; [ $which = new ] && rev=$NEW
  wt=$out/wt-$which
  git worktree add -q --detach "$wt" "$rev"
  (cd "$wt" && cargo build -q --release -p sieve-design --example search_overheads)
  cp "$CARGO_TARGET_DIR/release/examples/search_overheads" "$out/so-$which"
  git worktree remove --force "$wt"
done
args=("$S/models/mobilenet_v2_1.0_224/model.onnx" "images:$S/data/imagenet" 1000 1 2)
for _ in $(seq 1 "$RUNS"); do
  for which in old new; do
    echo "$which $("$out/so-$which" "${args[@]}" | grep medians)"
  done
done
if [ "${PERF:-0}" = 1 ]; then
  perf record -q -g -o "$out/perf.data" "$out/so-new" "${args[@]::4}" 1 > /dev/null
  perf report -i "$out/perf.data" --no-children --sort sym > "$out/perf.txt" 2> /dev/null
  grep -m1 clear_page "$out/perf.txt" || echo "no clear_page samples"

  [ -x .venv/bin/python ] || { python3 -m venv .venv && .venv/bin/pip install -q numpy; }
  .venv/bin/python bench/first_touch.py
fi
