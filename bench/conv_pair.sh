#!/usr/bin/env bash
# One convolution layer with and without the Winograd kernel, alternated round by round
# (a noisy host drifts between minutes): medians of examples/conv_single's best-of-30
# times and the median of the per-round ratios Winograd / direct.
# Usage: bench/conv_pair.sh THREADS ROUNDS SHAPE...   (SHAPE = c_in,c_out,k,stride,pad,hw[,groups])
#   e.g. bench/conv_pair.sh 2 7 64,64,3,1,1,56 128,128,3,1,1,28
# Needs: cargo build --release -p sieve-nn --examples
set -euo pipefail
cd "$(dirname "$0")/.."
T=$1; R=$2; shift 2
B=target/release/examples/conv_single
ms() { sed 's/.*: \([0-9.]*\) ms.*/\1/'; }
for s in "$@"; do
  a=(); b=()
  for _ in $(seq "$R"); do
    a+=("$(THREADS=$T SIEVE_WINOGRAD_MIN_TILES=1 $B "$s" | ms)")
    b+=("$(THREADS=$T SIEVE_WINOGRAD=0 $B "$s" | ms)")
  done
  python3 - "$s" "${a[*]}" "${b[*]}" <<'PY'
import statistics as st, sys
s, a, b = sys.argv[1], [float(x) for x in sys.argv[2].split()], [float(x) for x in sys.argv[3].split()]
print(f"{s} winograd {st.median(a):.3f} ms direct {st.median(b):.3f} ms ratio {st.median([x / y for x, y in zip(a, b)]):.2f}")
PY
done
