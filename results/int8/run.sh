#!/usr/bin/env bash
# Int8 benchmark (issue 6): batch 1, 1 thread, core 0 of this host (targets/x86-native.toml).
# Everything runs on core 0 (tuning included); the workers are pinned there by the target file.
# Run with edgebench's venv active. What produced int8.csv / recheck.csv on 2026-11-25:
#   ./results/int8/run.sh            (MODELS = resnet18 digits-cnn mlp; MobileNetV2 and the
#                                     encoder were left out for time, see README.md)
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=results/int8/int8.csv
MODELS="${MODELS:-resnet18 digits-cnn mlp}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
EB="taskset -c 0 python -m edgebench.cli run --target x86-native --runtimes tvm"
for m in $MODELS; do
    # TVM FP32, tuned with 32 MetaSchedule trials per task (the cached database)
    $EB "$m" --variants fp32 --trials 32 -o "$OUT"
    # TVM int8: conv/linear/depthwise layers on edgebench's hand-scheduled kernels (no tuning
    # applies to them); the glue MetaSchedule sees (pads, residual adds, input quantize,
    # pools: ~0.5 ms of ResNet-18) gets 1 trial per task: its search stalls on such tasks
    # (rounds of 0 new candidates, ~70 s each) and 8 trials did not finish in 15 minutes
    $EB "$m" --variants quant=static --trials 1 -o "$OUT"
done
# the peers' own int8 builds (ExecuTorch PT2E, ORT static QDQ; the committed rows also have ORT
# and PyTorch dynamic, built by the former results/int8/peers.py)
edgebench run $MODELS --variants fp32 --runtimes onnxruntime-int8 executorch-int8 -o "$OUT"
python benchmarks/int8_table.py "$OUT" > results/int8/table.md
# ResNet-18's TVM rows again, minutes later (the FP32 figure moved 142 -> 84 ms on this
# shared, loaded host: see README.md)
$EB resnet18 --variants fp32 --trials 32 -o results/int8/recheck.csv
$EB resnet18 --variants quant=static --trials 1 -o results/int8/recheck.csv
