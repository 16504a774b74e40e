#!/bin/bash
# Session 9: MobileNet v2 searched on all 1,000 validation images, fresh (no journal), on an
# otherwise idle machine (issue 3's search-time criterion), with the exponent headroom this
# quantisation-aware-trained model needs and unlimited recovery. B: a sieve-design binary (the
# run used one built at 53049d2; the package is byte-identical to session 8's).
EXTRA="--e-headroom 1 --max-recovery 100000" OUTDIR=${OUTDIR:-/work/runs/s9/mnv2_1000} \
  exec "$(dirname "$0")/run11_mnv2_1000.sh"
