#!/usr/bin/env bash
# Int8 + sparse on aarch64 +dotprod, on the EMULATED board (127.0.0.1:9091, started by
# `edgebench board up`; target arm-dotprod = Cortex-A76 +dotprod code under qemu-user):
# correctness only (outputs verified against the integer reference; qemu times mean nothing).
# The pruned layers run the int8 BSR kernel's sdot form (4x1 tiles), chosen by the 30%
# threshold on a board. Glue untuned (--trials 0). Run with edgebench's venv active.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
taskset -c 0 python -m edgebench.cli run digits-mlp mlp --target arm-dotprod --runtimes tvm \
  --trials 0 -o results/int8-sparse/aarch64-dotprod-emulated.csv \
  --variants prune=block:16x1:0.9+quant=static+sparse
