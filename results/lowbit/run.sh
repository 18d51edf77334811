#!/usr/bin/env bash
# Low-bit weights benchmark (issue 6): int8 vs ternary vs binary weights on TVM x86, batch 1,
# 1 thread, core 0 (targets/x86-native.toml pins the workers there too). Glue tasks get 1
# MetaSchedule trial like results/int8/run.sh (the conv/linear kernels are hand-scheduled).
# Run with edgebench's venv active; what produced lowbit.csv / lowbit.md:
#   ./results/lowbit/run.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
taskset -c 0 python -m edgebench.cli run digits-cnn mlp \
    --variants quant=static quant=ternary quant=binary \
    --runtimes tvm --target x86-native --trials 1 -o results/lowbit/lowbit.csv
