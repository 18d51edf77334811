#!/usr/bin/env bash
# Structured (channel) pruning compiled and tuned in TVM (issue 3): latency of the smaller dense
# network vs the dense model, with accuracy (digits-cnn, fine-tuned 30 epochs after pruning)
# or fidelity to FP32 (ResNet-18, MobileNetV2: one-shot, no data to fine-tune on).
# Batch 1, 1 thread on core 0. The dense models reuse their 32-trial tuning from the
# foundation benchmark; the pruned networks are new workloads, tuned here with the trials below
# (fewer trials only handicap the pruned nets: their speedups are lower bounds).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=results/pruning/structured.csv
edgebench run digits-cnn --trials 32 -o "$out" --runtimes tvm pytorch onnxruntime \
  --variants fp32 prune=channel:0.25:ft30 prune=channel:0.5:ft30 prune=channel:0.75:ft30
edgebench run resnet18 --trials "${TRIALS:-16}" -o "$out" --runtimes tvm pytorch onnxruntime \
  --variants fp32 prune=channel:0.25 prune=channel:0.5 prune=channel:0.75
edgebench run mobilenetv2 --trials "${TRIALS:-16}" -o "$out" --runtimes tvm pytorch onnxruntime \
  --variants fp32 prune=channel:0.25 prune=channel:0.5 prune=channel:0.75
