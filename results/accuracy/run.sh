#!/usr/bin/env bash
# Accuracy of pruning and quantization on trained models (issue 15): CREPE tiny/full (pitch,
# trained weights), ResNet-18 / MobileNetV2 trained on digits 3x32x32, digits-cnn.
# Every row is scored from that runtime's own outputs on the model's test data (metric,
# metric_value, metric_fp32, metric_drop). Speed is not the point here: TVM is untuned
# (--trials 0) and timings are --quick on a shared, heavily loaded 2-core host. Untuned TVM
# FP32 takes ~0.6 s a CREPE-tiny frame there, so CREPE is scored on fewer frames (same frames
# for every runtime and variant of a model: the drops are paired).
# Fine-tuning (:ftN, QAT) distills from the FP32 model and re-estimates BatchNorm statistics
# afterwards (README: the fine-tuning recipe). Re-measuring rows of an older recipe needs
# --no-resume (the rows' key does not name the recipe).
# Run from the repo root with edgebench's venv: ./results/accuracy/run.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
OUT=results/accuracy/accuracy.csv
TARGET=results/accuracy/x86-core1.toml
EB="python -m edgebench.cli run --target $TARGET --trials 0 --quick -o $OUT"
MODELS="${MODELS:-crepe-tiny resnet18-digits digits-cnn mobilenetv2-digits}"
VARIANTS="fp32 quant=static quant=static:percentile quant=qat prune=channel:0.5:ft5
  prune=unstructured:0.8:ft5 prune=unstructured:0.9:ft5 prune=unstructured:0.8:ft5+sparse"
for m in $MODELS; do
    n=$([ "$m" = crepe-tiny ] && echo 200 || echo 360)  # digits: the whole test split
    # shellcheck disable=SC2086
    $EB "$m" --variants $VARIANTS --runtimes tvm pytorch --eval-samples "$n"
    $EB "$m" --variants fp32 --runtimes onnxruntime executorch --eval-samples "$n"
    # the peers' own int8, calibrated on the very samples quant=static uses, same metric
    edgebench run "$m" --target "$TARGET" --eval-samples "$n" \
        --variants fp32 --runtimes onnxruntime-int8 executorch-int8 -o "$OUT"
done
# crepe-full (22 M params, ResNet-18 class): 64 frames, no fine-tuning, FP32 not on untuned TVM
$EB crepe-full --variants fp32 --runtimes pytorch onnxruntime --eval-samples 64
$EB crepe-full --variants quant=static --runtimes tvm pytorch --eval-samples 64
edgebench run crepe-full --target "$TARGET" --eval-samples 64 \
    --variants fp32 --runtimes onnxruntime-int8 executorch-int8 -o "$OUT"
# fine-tuning cost against accuracy (PyTorch metric, the default distilled recipe and the task
# loss alone): steps and seconds per :ftN
CURVE="python benchmarks/accuracy_finetune_curve.py -o results/accuracy/finetune_curve.csv"
$CURVE crepe-tiny unstructured:0.8:ft1 unstructured:0.8:ft2 unstructured:0.8:ft5 \
    unstructured:0.9:ft5 --eval-samples 200
$CURVE crepe-tiny unstructured:0.8:ft5 --eval-samples 200 --no-distill
$CURVE digits-cnn unstructured:0.8:ft1 unstructured:0.9:ft2 unstructured:0.9:ft5 channel:0.5:ft5
$CURVE digits-cnn unstructured:0.8:ft1 unstructured:0.9:ft5 channel:0.5:ft5 --no-distill
python -m edgebench.cli report "$OUT" --out results/accuracy/report
