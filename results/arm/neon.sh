#!/usr/bin/env bash
# FP32 and FP16 on edgebench's NEON kernels, on the emulated aarch64 board (started by
# `edgebench board up`: 127.0.0.1:9091). Correctness only: every time here is EMULATED.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=results/arm
# Cortex-A72 code (4 x 8 tiles, no fullfp16: the quant=fp16 rows are refused, by design)
edgebench run digits-cnn mlp --variants fp32 quant=fp16 --target arm --trials 32 \
  --runtimes tvm -o "$OUT/neon-fp32.csv"
# Cortex-A76 code +dotprod +fullfp16 on the same board (qemu's CPU model max has FEAT_FP16):
# 6 x 8 tiles, quant=fp16 on the float16 form of the same kernels
edgebench run digits-cnn mlp --variants fp32 quant=fp16 --target arm-dotprod --trials 32 \
  --runtimes tvm -o "$OUT/neon-a76.csv"
# the static instruction count of each kernel's inner loop (no board)
python benchmarks/neon_inner_loop.py > "$OUT/neon-inner-loop.md"
