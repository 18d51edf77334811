#!/bin/sh
# The optimize benchmark (results/optimize/README.md). Run from the repository root.
# The search runs on core 0 (taskset); each variant's timing worker pins itself to core 1
# (x86-core1 target). Peers (fp32 and quant=static) are timed after the search, outside it.
set -x
export EDGEBENCH_CACHE=${EDGEBENCH_CACHE:-/work/cache-opt}
EB="taskset -c 0 nice -n 5 edgebench"
T=results/accuracy/x86-core1.toml
O=results/optimize
B=${EDGEBENCH_CACHE}/bundles
$EB optimize digits-cnn --target $T --budget 10m --peers --export $B/digits-cnn-x86 -o $O/digits-cnn-x86.csv
$EB optimize mlp --target $T --budget 8m --peers --export $B/mlp-x86 -o $O/mlp-x86.csv
$EB optimize crepe-tiny --target $T --budget 10m --peers --export $B/crepe-tiny-x86 -o $O/crepe-tiny-x86.csv
$EB optimize digits-cnn --target arm --budget 10m --export $B/digits-cnn-arm -o $O/digits-cnn-arm.csv
for b in $B/*; do cp $b/manifest.json $O/$(basename $b)-manifest.json; done
# crepe-tiny again on the candidates that need no training (the default space's first
# fine-tune overran the budget in the run above; see README)
$EB optimize crepe-tiny --target $T --budget 7m --peers --export $B/crepe-tiny-x86 -o $O/crepe-tiny-x86-untrained.csv --variants fp32 quant=static quant=static:percentile quant=dynamic prune=unstructured:0.5 prune=nm:2:4
cp $B/crepe-tiny-x86/manifest.json $O/crepe-tiny-x86-manifest.json
