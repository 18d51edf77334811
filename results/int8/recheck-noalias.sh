#!/usr/bin/env bash
# ResNet-18 int8 re-measured after the tirx.noalias fix (see README.md), on core 1 while core 0
# ran other work: TVM FP32 (32 trials), TVM int8, then the peers' int8, in one sitting.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=results/int8/recheck-noalias.csv
T=results/sparse/x86-core1.toml
edgebench run resnet18 --target "$T" --runtimes tvm --variants fp32 --trials 32 -o "$OUT"
edgebench run resnet18 --target "$T" --runtimes tvm --variants quant=static --trials 1 -o "$OUT"
edgebench run resnet18 --target "$T" --variants fp32 --runtimes onnxruntime-int8 executorch-int8 -o "$OUT"
edgebench run resnet18 --target "$T" --runtimes tvm --variants quant=static --trials 1 -o results/int8/recheck-noalias-again.csv
