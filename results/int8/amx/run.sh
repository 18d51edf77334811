#!/usr/bin/env bash
# AMX-INT8 vs VNNI (issue 6): ResNet-18 (and MobileNetV2) quant=static on TVM with the AMX
# tile kernel (targets/x86-native.toml: this Emerald Rapids host has amx-int8) and with
# vpdpbusd only (targets/x86-vnni.toml: AMX turned off in the TVM target), then the peers'
# int8 (ExecuTorch XNNPACK PT2E, ONNX Runtime static QDQ), then the TVM rows again: all on
# core 0, one sitting. TVM int8 rows: --trials 1 for the glue (see results/int8/run.sh).
# Run with edgebench's venv active: ./results/int8/amx/run.sh
set -uo pipefail
cd "$(dirname "$0")/../../.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
OUT=results/int8/amx/amx.csv
AGAIN=results/int8/amx/amx-again.csv  # the TVM rows re-measured after the peers
MODELS="${MODELS:-resnet18}"  # mobilenetv2 too if time allows (not run on 2026-11-28)
EB="taskset -c 0 python -m edgebench.cli run --runtimes tvm --variants quant=static --trials 1"
for m in $MODELS; do
    $EB "$m" --target x86-native -o "$OUT"
    $EB "$m" --target x86-vnni -o "$OUT"
    edgebench run "$m" --target x86-native --variants fp32 --runtimes onnxruntime-int8 executorch-int8 -o "$OUT"
    $EB "$m" --target x86-native -o "$AGAIN"
    $EB "$m" --target x86-vnni -o "$AGAIN"
    # per-kernel times (edgebench profile: interleaved rounds, median) on both targets
    for t in x86-native x86-vnni; do
        taskset -c 0 python -m edgebench.cli profile "$m" --variants quant=static --trials 1 \
            --target "$t" -o "results/int8/amx/profile-$m-$t.csv"
    done
done
# does ONNX Runtime's MLAS take the AMX path here? (it asks Linux for the tile state first)
taskset -c 0 python benchmarks/int8_ort_amx.py | tee results/int8/amx/ort_amx.txt
