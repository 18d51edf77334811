#!/usr/bin/env bash
# ARM boards over RPC, on the emulated aarch64 board (Debian arm64 under qemu-user on this x86
# host, TVM's own rpc_server and rpc_tracker on 127.0.0.1). Checks correctness, the RPC path and
# the tracker farm; every time in these CSVs is EMULATED and says nothing about a real board.
# Needs root and: apt-get install -y debootstrap qemu-user-static binfmt-support g++-aarch64-linux-gnu
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=results/arm
run() { nice -n 19 "$@"; }   # the host's two cores are shared with other benchmarks

run edgebench board down >/dev/null 2>&1 || true
run edgebench board build                      # once per machine (~6 min), then cached
# Cached start, timed: one direct server, then a tracker with two servers of key 'arm'.
{ run edgebench board up; run edgebench board up --servers 2 --tracker --port 9101; } \
  | tee "$OUT/board-start.txt"

VARIANTS="fp32 prune=unstructured:0.9 prune=channel:0.5 quant=static"
# 1. One board, direct (target arm = 127.0.0.1:9091). Untuned (--trials 0): see README.
run edgebench run digits-cnn digits-mlp --target arm --trials 0 --variants $VARIANTS \
  --runtimes tvm pytorch -o "$OUT/board.csv" --no-resume
# 2. The farm: the same rows through the tracker (target arm-farm, key arm, two servers).
run edgebench run digits-cnn digits-mlp --target arm-farm --trials 0 --variants $VARIANTS \
  prune=nm:2:4 --no-peers -o "$OUT/farm.csv" --no-resume
# 3. MetaSchedule tuning on the board (RPC runner through the tracker), 4 trials per task,
#    from an empty tuning cache so the row shows what tuning over RPC costs.
EDGEBENCH_CACHE="$(mktemp -d)" run edgebench run digits-mlp --target arm-farm --trials 4 --no-peers -o "$OUT/farm-tuned.csv" \
  --no-resume
run edgebench board status
