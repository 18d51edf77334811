#!/usr/bin/env bash
# Our int8 (TVM quant=static) against the peers' real int8 builds (issue 16), this AMD EPYC
# Zen 4 host, batch 1, 1 thread, pinned to core 1 (results/accuracy/x86-core1.toml), one run:
# per model fp32 and quant=static on TVM, PyTorch, ONNX Runtime, ExecuTorch, plus the peers'
# own int8 (onnxruntime-int8: static QDQ; executorch-int8: XNNPACK PT2E; both calibrated on
# quant=static's samples, on the fp32 variant). The int8 modules' float glue (the encoder's
# embedding, layer norms, softmax, GELU, attention's matmuls and transposes, quantizes) runs on
# our FP32 kernels (passes/fp32.py over the int8 module): the encoder builds with 0 tuning
# tasks, so --trials is irrelevant for it; --trials 8 now only reaches the conv models'
# integer glue (pads, sums), which gets 1 trial (passes/int8.py: glue_trials). Our kernels
# and the FP32 rows are not tuned.
# First a warm-up outside the core-1 lock (same TVM target, cores = [0]; fills the tuning
# database in $EDGEBENCH_CACHE), then the timed run under `flock /tmp/core1.lock`.
#   EDGEBENCH_CACHE=/work/cache-s5-enc8 bash results/int8/run-vs-peers.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
MODELS="resnet18 mobilenetv2 encoder mlp digits-cnn"
WARM=$(mktemp --suffix=.toml)
sed 's/^cores = \[1\]/cores = [0]/' results/accuracy/x86-core1.toml > "$WARM"
taskset -c 0 nice -n 5 edgebench run $MODELS --variants quant=static --runtimes tvm \
    --target "$WARM" --quick --trials 8 -o "$(mktemp -d)/warm.csv"
# a fresh table (the previous one is in git): the CSV is append-only and resumes finished rows
rm -f results/int8/vs-int8-peers.csv results/int8/vs-int8-peers.md
flock /tmp/core1.lock edgebench run $MODELS --variants fp32 quant=static \
    --runtimes tvm pytorch onnxruntime onnxruntime-int8 executorch executorch-int8 \
    --target results/accuracy/x86-core1.toml --trials 8 -o results/int8/vs-int8-peers.csv
