#!/bin/bash
# Session 12: MobileNet v2's sub-batch plan by stage (--sub-batch-bytes 2.5 MiB) against 4 images
# throughout: the time of one evaluation of the network from before compute layer FROM on 200
# validation images (both cores, batches of 50), the two evaluators alternating, paired median
# of ROUNDS (docs/SPECULATIVE.md "Session 12").
S=${SIEVE_SHARED:-/work/shared}; ROUNDS=${ROUNDS:-8}
cargo build --release -p sieve-design --example sub_batch_plan || exit 1
for F in ${FROMS:-0 4 10 21 42}; do
  target/release/examples/sub_batch_plan $S/models/mobilenet_v2_1.0_224/model.onnx \
    images:$S/data/imagenet 200 4 2621440 "$F" "$ROUNDS"
done
