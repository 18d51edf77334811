#!/usr/bin/env bash
# Int8 + sparse (issue 6): the 784-2048-2048-10 `mlp`, batch 1, 1 thread, core 0
# (targets/x86-native.toml), TVM only, every row in ONE command so the ratios are side by side:
# TVM FP32 dense, FP32 BSR (`+sparse`), int8 dense (vpdpbusd), int8 BSR (`+quant=static+sparse`)
# at 90% in 16x1 blocks (one-shot and fine-tuned 10 epochs), and 8x1 / 4x1 (fine-tuned).
# `+sparse` is the measured per-layer choice in both domains (FP32: vs the tuned dense layer;
# int8: vs the dense vpdpbusd kernel); the row's sparse_layers gives both times per layer.
# MetaSchedule: 8 trials per task (the FP32 dense layers and the int8 glue: input quantize,
# output dequantize); our kernels are hand-scheduled. Run with edgebench's venv active:
#   EDGEBENCH_CACHE=/work/cache-int8sparse ./results/int8-sparse/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
out=results/int8-sparse/mlp.csv
v=(fp32 quant=static)
for p in block:16x1:0.9 block:16x1:0.9:ft10; do
  v+=("prune=$p" "prune=$p+sparse" "prune=$p+quant=static" "prune=$p+quant=static+sparse")
done
for p in block:8x1:0.9:ft10 block:4x1:0.9:ft10; do
  v+=("prune=$p+sparse" "prune=$p+quant=static" "prune=$p+quant=static+sparse")
done
taskset -c 0 python -m edgebench.cli run mlp --target x86-native --runtimes tvm --trials 8 \
  -o "$out" --variants "${v[@]}"
python benchmarks/int8_sparse_table.py "$out" > results/int8-sparse/table.md
