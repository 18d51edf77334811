#!/usr/bin/env bash
# ResNet-18 int8 on this session's host (issue 6), every row in one results file on core 0
# (targets/x86-native.toml, 1 thread, batch 1): TVM FP32 tuned (32 MetaSchedule trials per
# task), TVM int8 on edgebench's kernels (glue 1 trial per task, see README.md), then the
# peers' own int8 builds. Its own cache (EDGEBENCH_CACHE) so it never waits on another
# tuner's database lock.
#   PHASE=fp32 bash results/int8/run-resnet18.sh    (tuning, ~30-40 min on a loaded host)
#   PHASE=int8 bash results/int8/run-resnet18.sh    (int8 and peers, minutes)
set -uo pipefail
cd "$(dirname "$0")/../.."
export EDGEBENCH_CACHE="${EDGEBENCH_CACHE:-$HOME/.cache/edgebench-r18}"
OUT=results/int8/resnet18.csv
EB="edgebench run resnet18 --target x86-native --runtimes tvm -o $OUT"
case "${PHASE:-all}" in
  fp32|all) $EB --variants fp32 --trials 32 ;;&
  int8|all) $EB --variants quant=static --trials 1
            python results/int8/peers.py resnet18 --target x86-native -o "$OUT"
            # both TVM rows again right after the peers (the host's speed drifts)
            AGAIN="--no-resume -o results/int8/resnet18-again.csv"
            $EB --variants fp32 --trials 32 $AGAIN
            $EB --variants quant=static --trials 1 $AGAIN ;;
esac
