#!/usr/bin/env bash
# Int8 benchmark, second sitting (issue 6): MobileNetV2 (not measured in the first sitting),
# all its rows in one run on core 1
# (results/sparse/x86-core1.toml, 1 thread, batch 1) while core 0 ran other work: TVM FP32 tuned
# (32 MetaSchedule trials per task), TVM int8 (our hand-scheduled vpdpbusd / depthwise kernels;
# the glue gets 1 trial per task, see README.md), then the peers' own int8 builds.
# The encoder also gets quant=dynamic (int8 Linear, activations quantized at run time).
# What produced models.csv on 2026-11-28 (MobileNetV2 rows 07:10-09:00, this session's Intel
# Xeon host): `bash results/int8/run-models.sh`. MODELS=encoder runs the encoder the same way
# (started, then stopped during its FP32 tuning for time: no encoder rows).
#   bash results/int8/run-models.sh      (edgebench's venv active)
# One torch thread in the driver: with the host oversubscribed, two OpenMP threads made the
# integer reference executor (float64 convs) of MobileNetV2 run for 40+ minutes.
set -uo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
OUT=results/int8/models.csv
T=results/sparse/x86-core1.toml
EB="edgebench run --target $T --runtimes tvm -o $OUT"
for m in ${MODELS:-mobilenetv2}; do
    $EB "$m" --variants fp32 --trials 32
    $EB "$m" --variants quant=static --trials 1
    [ "$m" = encoder ] && $EB "$m" --variants quant=dynamic --trials 1
    edgebench run "$m" --target "$T" --variants fp32 --runtimes onnxruntime-int8 executorch-int8 -o "$OUT"
done
