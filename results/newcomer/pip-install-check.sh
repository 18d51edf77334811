set -u
OUT=/tmp/newc/pip; rm -rf $OUT; mkdir -p $OUT
SHARED=/work/main/.venv/lib/python3.11/site-packages
step() { echo "\$ $*" | sed "s#$OUT#OUT#g"; /usr/bin/time -f "[exit %x, wall %e s, cpu %U+%S s]" "$@" 2>&1 | sed "s#$OUT#OUT#g"; echo; }
git clone -q --branch s4-newc /work/wt-newc $OUT/clone; echo "clone of $(git -C $OUT/clone log --oneline -1)"
python3.11 -m venv $OUT/venv2 && echo "$SHARED" > $OUT/venv2/lib/python3.11/site-packages/shared-deps.pth
step $OUT/venv2/bin/pip install -q --no-deps $OUT/clone
$OUT/venv2/bin/pip show -f edgebench | grep -E "Location|target_files/.*toml" | sed "s#$OUT#OUT#g"
mkdir -p $OUT/empty && cd $OUT/empty && ls -A
step env EDGEBENCH_CACHE=$OUT/cache2 $OUT/venv2/bin/edgebench run --quick digits-mlp --target x86-native -o quick.csv
