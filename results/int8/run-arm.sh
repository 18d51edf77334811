#!/usr/bin/env bash
# Int8 on aarch64 with the dot product (sdot), on the EMULATED board (`edgebench board up`:
# qemu-user on this x86 host, 127.0.0.1:9091; targets/arm-dotprod.toml = Cortex-A76
# +neon +dotprod). Correctness only: qemu's times mean nothing. trials 0: our sdot kernels are
# hand-scheduled (no tuning applies), the glue (pads, quantize, pools) is left untuned.
# What produced aarch64-dotprod-emulated.csv on 2026-11-25 (edgebench's venv active):
#   ./results/int8/run-arm.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=results/int8/aarch64-dotprod-emulated.csv
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
EB="taskset -c 0 python -m edgebench.cli run --target arm-dotprod --runtimes tvm --trials 0"
$EB digits-cnn digits-mlp mlp --variants quant=static -o "$OUT"
$EB digits-mlp mlp --variants quant=dynamic -o "$OUT"
