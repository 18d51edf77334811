#!/usr/bin/env bash
# The issue-16 benchmark as one script (results/dense/README.md says what each row group
# answers): batch 1, 1 thread, every model with its peers in one run on core 1.
#
#   results/dense/run.sh            warm-up on core 0 (builds, MetaSchedule tuning, peers'
#                                   exports), then every timed row on core 1 under the shared
#                                   lock /tmp/core1.lock -> results/dense/dense.csv (+ .md,
#                                   .env.json), then results/dense/summary.md
#   results/dense/run.sh --quick    the same commands once, on core 0, short timing, no lock,
#                                   into $EDGEBENCH_CACHE/dense-quick/: checks the script
#
# Env: EDGEBENCH_CACHE (tuning database, artifacts), MS_TRIALS (MetaSchedule trials per task
# of the `fp32+metaschedule` and int8 rows, default 16: the record of what tuning gives, not
# its best), MODELS (default: all seven), OUT (the timed CSV).
# A row already in the CSV is not measured again (edgebench run resumes): delete the CSV to
# re-measure everything. RECORD=no leaves out group 6 (the MetaSchedule record). Failed rows
# (a refusal, a build error) are rows like any other: summary.md shows them; the script
# stops only when edgebench run cannot go on (exit > 1).
set -uo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export OMP_NUM_THREADS=1  # the driver's torch (references, int8 reference executor)
EB=${EB:-edgebench}
CACHE=${EDGEBENCH_CACHE:-$HOME/.cache/edgebench}
MS_TRIALS=${MS_TRIALS:-16}
MODELS=${MODELS:-digits-cnn digits-mlp mlp resnet18 mobilenetv2 encoder crepe-tiny}
CORE1=results/accuracy/x86-core1.toml
export DENSE_OUT=${DENSE_OUT:-${OUT:-results/dense/dense.csv}}  # the timed rows
CORE0="$CACHE/dense-x86-core0.toml"  # the same target on core 0: warm-up and --quick
mkdir -p "$CACHE"
sed -e 's/^name = .*/name = "x86-core0"/' -e 's/^cores = .*/cores = [0]/' "$CORE1" > "$CORE0"

has() { [[ " $MODELS " == *" $1 "* ]]; }
only() { local m out=(); for m in "$@"; do has "$m" && out+=("$m"); done; echo "${out[@]:-}"; }
FAILED=0
eb() {  # one edgebench run; the phase sets TARGET, OUT, EXTRA, PREFIX
    echo "== $(date -u +%H:%M:%S) $*" >&2
    # exit 1 = some row of the CSV failed (the FP16 refusals always are, on a host without
    # FP16 arithmetic): the summary names them; anything else (bad input 2, interrupt 130) stops
    $PREFIX $EB run "$@" --target "$TARGET" -o "$OUT" --trials "$MS_TRIALS" $EXTRA
    local rc=$?
    [ $rc -le 1 ] || { echo "== edgebench run exited $rc: stopping" >&2; exit $rc; }
}
each() {  # eb over $MODELS: crepe-tiny alone, scored on EVAL_CREPE test clips
    local rest; rest=$(echo " $MODELS " | sed 's/ crepe-tiny / /')
    [ -n "${rest// /}" ] && eb $rest "$@"
    has crepe-tiny && eb crepe-tiny "$@" --eval-samples "$EVAL_CREPE"
    return 0
}

rows() {  # every row group, in the order the README lists them
    # 1. FP32: ours (0 tuning tasks) vs PyTorch, ONNX Runtime, ExecuTorch (XNNPACK), and the
    #    peers' own int8 builds of the same model (group 4 compares against them)
    each --variants fp32 \
        --runtimes tvm pytorch onnxruntime executorch onnxruntime-int8 executorch-int8
    # 2. Winograd F(4x4,3x3)/F(2x2,3x3) where a stride-1 3x3 conv exists (its own variant)
    local wino; wino=$(only resnet18 digits-cnn)
    [ -n "$wino" ] && eb $wino --variants fp32+winograd --runtimes tvm
    # 3. FP16: float16 compute needs avx512fp16; without it (this Zen 4) the row is a refusal
    #    naming the missing feature, never FP16 storage passed off as FP16 speed (then it is
    #    written outside the lock: nothing is timed, see fp16_refusals)
    [ "$FP16" = yes ] && each --variants quant=fp16 --runtimes tvm
    # 4. int8 (static, per-channel) on our int8 kernels, against group 1's int8 peers
    each --variants quant=static --runtimes tvm
    # 5. ResNet-18: 80% unstructured on the sparse kernels, and 50% channel pruning (a smaller
    #    dense network on the same dense kernels), both against group 1's dense rows
    has resnet18 && eb resnet18 --variants prune=unstructured:0.8+sparse prune=channel:0.5 \
        --runtimes tvm
    # 6. for the record: TVM's own FP32 ops tuned by MetaSchedule (MS_TRIALS per task);
    #    RECORD=no leaves it out (its tuning is most of the warm-up)
    [ "${RECORD:-yes}" = no ] || each --variants fp32+metaschedule --runtimes tvm
    return 0
}

# does the timed target compute in FP16? (x86 avx512fp16, aarch64 +fullfp16)
FP16=$(${PY:-python} -c "from edgebench.targets import find_target as f
print('yes' if f('$CORE1').fp16_arith else 'no')") || FP16=yes
fp16_refusals() {  # no FP16 arithmetic: the refusal rows, into the timed CSV, no lock needed
    [ "$FP16" = yes ] && return 0
    TARGET=$CORE1 OUT=$DENSE_OUT EXTRA="" PREFIX="nice -n 5" FP16=yes rows_fp16
}
rows_fp16() { each --variants quant=fp16 --runtimes tvm; }

if [ "${1:-}" = --quick ]; then
    TARGET=$CORE0 OUT=$CACHE/dense-quick/dense.csv EXTRA=--quick EVAL_CREPE=32
    PREFIX="taskset -c 0 nice -n 5"
    mkdir -p "$(dirname "$OUT")"
    rows
    [ "$FP16" = yes ] || rows_fp16
elif [ "${1:-}" = --timed ]; then  # (the lock holder: run.sh calls itself under flock)
    TARGET=$CORE1 OUT=$DENSE_OUT EXTRA="" EVAL_CREPE=256
    PREFIX="nice -n 0"
    rows
    exit $FAILED  # the caller writes the summary
else
    echo "== warm-up on core 0 (outside the lock)" >&2
    TARGET=$CORE0 OUT=$CACHE/dense-warm/dense.csv EXTRA=--quick EVAL_CREPE=32
    PREFIX="taskset -c 0 nice -n 5"
    mkdir -p "$(dirname "$OUT")"
    rows
    fp16_refusals
    echo "== timed run on core 1 (inside /tmp/core1.lock) from $(date -u +%H:%M:%S)" >&2
    flock /tmp/core1.lock "$0" --timed || FAILED=1
    echo "== lock released $(date -u +%H:%M:%S)" >&2
    OUT=$DENSE_OUT
fi
${PY:-python} results/dense/summary.py "${OUT}" > "$(dirname "$OUT")/summary.md" || FAILED=1
exit $FAILED
