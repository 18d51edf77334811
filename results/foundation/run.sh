#!/usr/bin/env bash
# Foundation benchmark (issue 2): FP32, batch 1, 1 thread pinned to core 0, this host.
# TVM tuned with 32 MetaSchedule trials per task, beside PyTorch eager, ONNX Runtime and
# ExecuTorch-XNNPACK in the same run. Then the same command again on the warm tuning cache
# (second CSV) to show what a cached re-run costs before measuring.
set -euo pipefail
cd "$(dirname "$0")/../.."
models="digits-cnn mlp resnet18 mobilenetv2 encoder"
edgebench run $models --target x86-native --trials 32 --no-resume -o results/foundation/fp32.csv
edgebench run $models --target x86-native --trials 32 --no-resume --runtimes tvm \
  -o results/foundation/fp32-cached-rerun.csv
