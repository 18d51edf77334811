#!/usr/bin/env bash
# Int8 benchmark, third sitting (issue 6): every model of the issue's table in one run on
# core 1 (results/sparse/x86-core1.toml: 1 thread, batch 1), nothing else measuring meanwhile:
# FP32 on TVM (tuned, 32 MetaSchedule trials per task), PyTorch eager and ONNX Runtime (the
# well-optimized FP32 baselines: 32 trials leave TVM's NCHW convs far from tuned, see
# README.md), TVM int8 with AMX where it pays
# (x86-core1 is mcpu=native: this Emerald Rapids host has amx-int8) and with vpdpbusd only
# (x86-vnni-core1.toml), the encoder's dynamic int8 too, then the peers' own int8 builds
# (ExecuTorch XNNPACK, ONNX Runtime static QDQ and dynamic, PyTorch dynamic).
# The int8 glue (quantize, pads, residual adds) gets 1 MetaSchedule trial per task: see README.md.
#   bash results/int8/run-final.sh      (edgebench's venv active; tuning cached after one run)
# One torch thread in the driver: the integer reference executor's float64 convs otherwise
# compete with the measured core.
set -uo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
OUT="${OUT:-results/int8/final.csv}"
T=results/sparse/x86-core1.toml
V=results/int8/x86-vnni-core1.toml
for m in ${MODELS:-resnet18 mobilenetv2 digits-cnn mlp encoder}; do
    edgebench run "$m" --target $T --runtimes tvm pytorch onnxruntime -o "$OUT" --variants fp32 \
        --trials 32
    edgebench run "$m" --target $T --runtimes tvm -o "$OUT" --variants quant=static --trials 1
    edgebench run "$m" --target $V --runtimes tvm -o "$OUT" --variants quant=static --trials 1
    if [ "$m" = encoder ]; then
        edgebench run "$m" --target $T --runtimes tvm -o "$OUT" --variants quant=dynamic --trials 1
    fi
    edgebench run "$m" --target $T --variants fp32 --runtimes onnxruntime-int8 executorch-int8 -o "$OUT"
done
