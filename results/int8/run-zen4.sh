#!/usr/bin/env bash
# Int8 follow-ups (issue 16) on this AMD EPYC Zen 4 host (TVM mcpu znver4: AVX-512 VNNI, no
# AMX), batch 1, 1 thread, everything pinned to core 1 (results/sparse/x86-core1.toml), one
# run: per model the peers' FP32 (PyTorch eager, ONNX Runtime), TVM int8 (`quant=static`: our
# vpdpbusd conv/linear and depthwise kernels; glue tuned by the int8 per-task policy: integer
# data movement 1 MetaSchedule trial, float glue $TRIALS), then the peers' own int8 builds
# (runtimes executorch-int8: XNNPACK PT2E, onnxruntime-int8: static QDQ; the committed rows
# also have ORT and PyTorch dynamic, built by the former results/int8/peers.py),
# then `edgebench profile` of the TVM int8 build (which kernel the time goes to).
#   EDGEBENCH_CACHE=... bash results/int8/run-zen4.sh   (tuning cached after one run)
# Committed: MODELS="mobilenetv2 resnet18 digits-cnn mlp" TRIALS=1 PROFILE=mobilenetv2 and,
# beside it (its own cache and CSV), OUT=results/int8/zen4-encoder.csv MODELS=encoder TRIALS=8
# PROFILE=encoder.
set -uo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
OUT="${OUT:-results/int8/zen4.csv}"
T=results/sparse/x86-core1.toml
for m in ${MODELS:-mobilenetv2 encoder resnet18 digits-cnn mlp}; do
    edgebench run "$m" --target $T --runtimes pytorch onnxruntime -o "$OUT" --variants fp32
    edgebench run "$m" --target $T --runtimes tvm -o "$OUT" --variants quant=static --trials "${TRIALS:-32}"
    edgebench run "$m" --target $T --variants fp32 --runtimes onnxruntime-int8 executorch-int8 -o "$OUT"
done
for m in ${PROFILE:-mobilenetv2 encoder}; do
    edgebench profile "$m" --target $T --variants quant=static --trials "${TRIALS:-32}" \
        -o "results/int8/zen4-profile-$m.csv"
done
