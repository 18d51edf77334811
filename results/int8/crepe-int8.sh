#!/bin/sh
# CREPE int8 (issue 16: the FP32 chain fused into the int8 conv epilogue) vs the peers, core 1.
# Warm-up on core 0 (same target with cores = [0]) fills the caches; then the timed run under
# the shared core-1 lock. OMP_NUM_THREADS=1: the main process (quantization calibration) is
# pinned to one core; torch's 2 OpenMP threads spun there for minutes.
set -e
cd "$(dirname "$0")/../.."
sed 's/cores = \[1\]/cores = [0]/' results/accuracy/x86-core1.toml > /tmp/x86-core0.toml
RT="tvm pytorch onnxruntime onnxruntime-int8 executorch executorch-int8"
export OMP_NUM_THREADS=1
taskset -c 0 nice -n 5 edgebench run crepe-tiny --variants fp32 quant=static --runtimes $RT \
    --target /tmp/x86-core0.toml --quick -o /tmp/crepe-warm.csv
flock /tmp/core1.lock edgebench run crepe-tiny --variants fp32 quant=static --runtimes $RT \
    --target results/accuracy/x86-core1.toml -o results/int8/crepe-int8.csv
flock /tmp/core1.lock edgebench profile crepe-tiny --variants quant=static fp32 \
    --target results/accuracy/x86-core1.toml -o results/int8/crepe-tiny-profile.csv
taskset -c 0 nice -n 5 edgebench run crepe-full --variants fp32 quant=static --runtimes $RT \
    --target /tmp/x86-core0.toml --quick -o /tmp/crepe-warm.csv
flock /tmp/core1.lock edgebench run crepe-full --variants fp32 quant=static --runtimes $RT \
    --target results/accuracy/x86-core1.toml --quick -o results/int8/crepe-int8.csv
