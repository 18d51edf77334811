#!/usr/bin/env bash
# FP16 on TVM (issue 6): float16 compute where the target has FP16 arithmetic, a refusal row
# elsewhere. What produced the CSVs here (edgebench's venv active, board up on 127.0.0.1:9091):
#   ./results/fp16/run.sh
# arm-dotprod = the EMULATED board (qemu-user, CPU model max) running Cortex-A76 +fullfp16 code:
# correctness, accuracy and size only; its times are qemu's and mean nothing. trials 0 (untuned).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=results/fp16
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
EB="taskset -c 0 python -m edgebench.cli run --runtimes tvm --trials 0"
# FP32 vs FP16 on the emulated Cortex-A76 (+fullfp16)
$EB digits-cnn digits-mlp mlp --target arm-dotprod --variants fp32 quant=fp16 \
    -o "$OUT/arm-dotprod-emulated.csv"
# targets without FP16 arithmetic: failed rows naming the missing feature
$EB digits-cnn digits-mlp mlp --target arm --variants quant=fp16 -o "$OUT/refused.csv"
$EB digits-cnn digits-mlp mlp --target x86-avx512 --variants quant=fp16 -o "$OUT/refused.csv"
# ResNet-18 and MobileNetV2 FP16 on the emulated board, correctness only: 2 evaluation inputs
# (one untuned inference takes minutes under qemu), verified against PyTorch's FP16 model
taskset -c 0 python benchmarks/fp16_few_inputs.py resnet18 mobilenetv2 --target arm-dotprod \
    --inputs 2 --variants quant=fp16 -o "$OUT/large-emulated.csv"
# Where ResNet-18's and MobileNetV2's FP16 error comes from (float16 vs float32 accumulation,
# natively on this AVX512-FP16 host, 4 inputs)
taskset -c 0 python benchmarks/fp16_accumulation.py resnet18 --inputs 4 > "$OUT/accumulation.md"
taskset -c 0 python benchmarks/fp16_accumulation.py mobilenetv2 --inputs 4 \
    > "$OUT/accumulation-mobilenetv2.md"
# This host (Intel Xeon with AVX512-FP16, so x86-native has FP16 arithmetic): FP32 vs FP16
# natively, untuned (correctness, accuracy, size; a tuned comparison did not fit the time: one
# tuning round of digits-cnn's 7 tasks took 26 min on the shared core)
$EB digits-cnn digits-mlp mlp --target x86-native --variants fp32 quant=fp16 \
    -o "$OUT/x86-native.csv"
