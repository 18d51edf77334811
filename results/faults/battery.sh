#!/usr/bin/env bash
# The issue-18 fault battery: each case's command, its exit code and its line(s); every output is
# searched for "Traceback" (none expected). Run from the repository root as root (the read-only
# cache is a read-only tmpfs), with the emulated board NOT on port 9299:
#   bash results/faults/battery.sh > results/faults/battery-s4.txt   (TUNING=0: without the two
#   tuning cases, which take minutes: stalled task, GRU under its budgets)
# EB (default: edgebench) is the command; W is a scratch directory; the cache is a fresh one.
set -u
EB=${EB:-edgebench}
W=$(mktemp -d /tmp/battery.XXXX)
export EDGEBENCH_CACHE=$W/cache
cat > "$W/nets.py" <<'PY'
import torch

def small():      # Linear(12, 10) - ReLU - Linear(10, 6): no layer tiles into 7x1 blocks
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(12, 10), torch.nn.ReLU(), torch.nn.Linear(10, 6))

def constant():   # random weights whose outputs give class 5 to every input
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(12, 6))
    with torch.no_grad():
        net[0].weight.mul_(1e-3)
        net[0].bias.copy_(torch.arange(6.0))
    return net

def relu():       # one task with one schedule: MetaSchedule's search has nothing new to try
    return torch.nn.ReLU()

class GRUNet(torch.nn.Module):  # issue 18's user model: a 50-step GRU, then a classifier
    def __init__(self):
        super().__init__()
        self.gru = torch.nn.GRU(16, 32, batch_first=True)
        self.fc = torch.nn.Linear(32, 6)

    def forward(self, x):
        return self.fc(self.gru(x)[0][:, -1])

def gru():
    torch.manual_seed(0)
    return GRUNet()
PY
show() {  # the case's warning/error/waiting lines, then its last lines (each once)
  sed "s#$W#W#g" "$1" | grep -v '^\s*$' > "$W/shown"
  { grep -E "warning|error|set aside|waiting|already measured|interrupted|tuning|FAILED" "$W/shown" | head -n 6
    tail -n "${2:-6}" "$W/shown"; } | awk '!seen[$0]++'
  grep -q Traceback "$1" && echo "!! TRACEBACK in the output"
}
case_() {  # title, then the command; runs it, prints command, its last lines, exit code
  local title=$1; shift
  echo "### $title"; echo "\$ $*" | sed "s#$W#W#g"
  "$@" > "$W/out" 2>&1; local rc=$?
  show "$W/out" "${LINES_:-6}"; echo "exit $rc"; echo
}
SMALL=("$W/nets.py:small" --input-shape 1,12)

# 1. interrupt (SIGINT once one row is written), then the same command resumes
echo "### Ctrl-C (SIGINT) once one row is written"
cmd=($EB run "${SMALL[@]}" --runtimes pytorch onnxruntime --min-time 5 --variants fp32 prune=unstructured:0.5 -o "$W/int.csv")
echo "\$ ${cmd[*]}" | sed "s#$W#W#g"
"${cmd[@]}" > "$W/out" 2>&1 & pid=$!
for _ in $(seq 600); do [ "$(grep -c 'p50' "$W/out" 2>/dev/null)" -ge 1 ] && break; sleep 0.5; done
kill -INT $pid; wait $pid; rc=$?; show "$W/out" 3; echo "exit $rc"; echo
LINES_=9 case_ "the same command again: resumes" "${cmd[@]}"

# 2. SIGKILL of the run: its worker must not outlive it
echo "### SIGKILL of the run while its worker measures: no orphan"
echo "\$ $EB run W/nets.py:small --input-shape 1,12 --runtimes pytorch --min-time 60 -o W/kill.csv &   # kill -9 once its worker runs"
$EB run "${SMALL[@]}" --runtimes pytorch --min-time 60 -o "$W/kill.csv" > "$W/out" 2>&1 & pid=$!
for _ in $(seq 600); do wpid=$(pgrep -P $pid -f edgebench.execute.worker) && break; sleep 0.5; done
sleep 2; kill -9 $pid; wait $pid 2>/dev/null; rc=$?; t0=$(date +%s.%N)
while kill -0 "$wpid" 2>/dev/null; do sleep 0.1; done
echo "exit $rc (killed); worker pid $wpid gone $(echo "$(date +%s.%N) - $t0" | bc | cut -c1-4) s after the kill"; echo

# 3. a results file whose last line was cut mid-write
$EB run "${SMALL[@]}" --runtimes pytorch onnxruntime --quick --variants fp32 prune=unstructured:0.5 -o "$W/cut.csv" > /dev/null 2>&1
size=$(stat -c %s "$W/cut.csv"); truncate -s $((size - 40)) "$W/cut.csv"
echo "(W/cut.csv: 4 rows, then its last line cut 40 bytes short)"; echo
case_ "the cut file: report" $EB report "$W/cut.csv" --out "$W/rep"
LINES_=10 case_ "the cut file: the same run again (cut line set aside, the rest resumed)" $EB run "${SMALL[@]}" --runtimes pytorch onnxruntime --quick --variants fp32 prune=unstructured:0.5 -o "$W/cut.csv"

# 4. a block that cannot tile the model: exit 2 before anything is measured
case_ "a variant that cannot apply: exit 2 before the first row" $EB run "${SMALL[@]}" --runtimes pytorch --quick --variants fp32 prune=block:7x1:0.9 prune=unstructured:0.5 -o "$W/tile.csv"
echo "(rows in W/tile.csv: $( [ -f "$W/tile.csv" ] && tail -n +2 "$W/tile.csv" | wc -l || echo 0))"; echo

# 5. two runs measuring on the same pinned cores at once
echo "### two runs on the same core at once"
echo "\$ $EB run W/nets.py:small ... --runtimes pytorch onnxruntime --min-time 10 -o W/a.csv & (2 s later) the same -o W/b.csv"
$EB run "${SMALL[@]}" --runtimes pytorch onnxruntime --min-time 10 -o "$W/a.csv" > "$W/a.out" 2>&1 & pa=$!
sleep 2
$EB run "${SMALL[@]}" --runtimes pytorch onnxruntime --min-time 10 -o "$W/b.csv" > "$W/b.out" 2>&1 & pb=$!
wait $pa; ra=$?; wait $pb; rb=$?
echo "run A:"; show "$W/a.out" 3; echo "exit $ra"; echo "run B:"; grep -h "waiting" "$W/b.out" | sed "s#$W#W#g"; show "$W/b.out" 2; echo "exit $rb"; echo

# 6. a degenerate evaluation set
case_ "a degenerate evaluation set (one class for every input)" $EB run "$W/nets.py:constant" --input-shape 1,12 --runtimes pytorch --quick -o "$W/deg.csv"

# 7. a cache that cannot be written: a read-only tmpfs
mkdir -p "$W/ro"; mount -t tmpfs -o ro,size=1m tmpfs "$W/ro" 2>/dev/null || chmod 555 "$W/ro"
case_ "a read-only cache directory" env EDGEBENCH_CACHE="$W/ro" $EB run "${SMALL[@]}" --runtimes pytorch --quick -o "$W/ro.csv"
umount "$W/ro" 2>/dev/null

# 8. an unreachable board: checked before building or tuning for it (rpi4's file, port 9299)
sed 's/^port = .*/port = 9299\nconnect_timeout = 3/; s/^host = .*/host = "127.0.0.1"/' "$(python -c 'from edgebench.targets import find_target; print(find_target("rpi4").path)')" > "$W/rpi4.toml"
case_ "--target rpi4 with no board, --trials 4" $EB run digits-mlp --target "$W/rpi4.toml" --trials 4 -o "$W/b1.csv"
sed 's/cross_compiler = .*/cross_compiler = "no-such-cross-g++"/' "$W/rpi4.toml" > "$W/rpi4-nocc.toml"
case_ "--target rpi4 with no board and no cross compiler, --trials 0: the board is tried first" $EB run digits-mlp --target "$W/rpi4-nocc.toml" --trials 0 -o "$W/b2.csv"

if [ "${TUNING:-1}" = 0 ]; then echo "(TUNING=0: the two tuning cases, stalled task and GRU, not run)"; rm -rf "$W"; exit 0; fi
# 9. a stalled task: one schedule asked for 32 trials, cut at its first empty round
case_ "a task with one schedule, 32 trials: cut when the search has nothing new" $EB run "$W/nets.py:relu" --input-shape 1,8 --runtimes tvm --variants fp32+metaschedule --trials 32 --quick -o "$W/stall.csv"

# 10. the GRU user model, --trials 4: ends within its budgets (here 60 s per task, 300 s per model)
case_ "the 50-step GRU user model, --trials 4, --task-budget 60 --tune-budget 300" $EB run "$W/nets.py:gru" --input-shape 1,50,16 --runtimes tvm pytorch --variants fp32+metaschedule --trials 4 --task-budget 60 --tune-budget 300 --quick -o "$W/gru.csv"
rm -rf "$W"
