#!/usr/bin/env bash
# Issue 18 "Check": a fresh clone of this branch, a fresh venv, on a machine WITHOUT the apt
# cross compiler (simulated: a private mount namespace binds /dev/null over every
# aarch64-linux-gnu-* / arm-linux-gnueabihf-* binary, so shutil.which finds none of them), then the
# README's two commands, timed; then `pip install .` (a wheel, non-editable) into another venv
# runs `edgebench run --quick` on x86-native from a directory without targets/.
# Dependencies (torch, TVM, ORT, ExecuTorch, ziglang, pytest) come from the shared venv through a
# .pth line (no multi-GB download per check); edgebench itself is installed from the clone.
# Usage (root, for unshare): bash results/newcomer/fresh-check.sh BRANCH_DIR OUT_DIR > transcript
set -u
SRC=${1:?source repo}; OUT=${2:?scratch dir}
SHARED=/work/main/.venv/lib/python3.11/site-packages
rm -rf "$OUT"; mkdir -p "$OUT"
say() { echo "\$ $*"; }
step() { say "$@"; /usr/bin/time -f "[exit %x, wall %e s, cpu %U+%S s]" "$@" 2>&1; echo; }
say git clone --branch "$(git -C "$SRC" branch --show-current)" "$SRC" "$OUT/clone"
git clone -q --branch "$(git -C "$SRC" branch --show-current)" "$SRC" "$OUT/clone" && git -C "$OUT/clone" log --oneline -1
python3.11 -m venv "$OUT/venv" && echo "$SHARED" > "$OUT/venv/lib/python3.11/site-packages/shared-deps.pth"
step "$OUT/venv/bin/pip" install -q --no-deps -e "$OUT/clone[executorch,dev]"
HIDE='for f in /usr/bin/aarch64-linux-gnu-* /usr/bin/arm-linux-gnueabihf-*; do [ -e "$f" ] && mount --bind /dev/null "$f"; done'
cat > "$OUT/inside.sh" <<INNER
set -u
$HIDE
export PATH=$OUT/venv/bin:\$PATH EDGEBENCH_CACHE=$OUT/cache EDGEBENCH_BOARD_DIR=\${EDGEBENCH_BOARD_DIR:-/root/.cache/edgebench/board}
echo "\\\$ aarch64-linux-gnu-g++ --version   # hidden: not runnable"
aarch64-linux-gnu-g++ --version >/dev/null 2>&1; echo "exit \$?"
python -c 'import shutil; print("shutil.which:", shutil.which("aarch64-linux-gnu-g++"), shutil.which("aarch64-linux-gnu-gcc"))'
python -c 'from edgebench.compile.toolchain import resolve; print("cross compiler used:", resolve("aarch64-linux-gnu-g++"))'
cd $OUT/clone
echo "\\\$ edgebench run   # the main job, fresh cache"
/usr/bin/time -f "[exit %x, wall %e s, cpu %U+%S s]" edgebench run 2>&1 | tail -n 16
echo
echo "\\\$ python -m pytest -p no:cacheprovider -q -rs --durations=15   # the test command (full suite)"
/usr/bin/time -f "[exit %x, wall %e s, cpu %U+%S s]" python -m pytest -p no:cacheprovider -q -rs --durations=15 2>&1 | tail -n 60
INNER
say "unshare -m sh $OUT/inside.sh   # the apt cross compiler hidden in this mount namespace only"
taskset -c 0 nice -n 5 unshare -m --propagation private bash "$OUT/inside.sh"
echo
python3.11 -m venv "$OUT/venv2" && echo "$SHARED" > "$OUT/venv2/lib/python3.11/site-packages/shared-deps.pth"
step "$OUT/venv2/bin/pip" install -q --no-deps "$OUT/clone"
"$OUT/venv2/bin/pip" show -f edgebench | grep -c "target_files/.*toml" | sed 's/^/target files in the wheel: /'
mkdir -p "$OUT/empty" && cd "$OUT/empty"
step env EDGEBENCH_CACHE="$OUT/cache2" "$OUT/venv2/bin/edgebench" run --quick digits-mlp --target x86-native -o quick.csv
