#!/usr/bin/env bash
# Ternary/binary weights on the aarch64 sdot kernel, on the EMULATED board (127.0.0.1:9091,
# `edgebench board status`): correctness and artifact size only, qemu's times mean nothing.
# Glue untuned (--trials 0) as results/int8/run-arm.sh. Produced aarch64-dotprod-emulated.csv:
#   ./results/lowbit/run-arm.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
taskset -c 0 python -m edgebench.cli run digits-cnn \
    --variants quant=static quant=ternary quant=binary \
    --runtimes tvm --target arm-dotprod --trials 0 -o results/lowbit/aarch64-dotprod-emulated.csv
