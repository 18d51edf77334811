#!/usr/bin/env bash
# The cheap first-ten-minutes checks: each command, its exit code, wall and CPU time, output.
# Run from the repository root: bash results/newcomer/checks.sh > results/newcomer/checks.txt
set -u
EB=${EB:-edgebench}
tmp=$(mktemp -d)
check() {
  echo "\$ edgebench $*"
  /usr/bin/time -f "[exit %x, wall %e s, cpu %U+%S s]" $EB "$@" 2>&1 | tail -n 40
  echo
}
check --version
check run --help
check run nosuchmodel
check run digits-cnn --target nosuch
check run digits-cnn --variants prune=bogus:0.5
check run digits-cnn --variants quant=static+sparse
check run digits-cnn --variants prune=nm:5:4
check run digits-cnn --runtimes tflite
check run digits-cnn -o /proc/no/such/r.csv
check run my_net.py:make --input-shape 1,8
check compare missing-a.csv missing-b.csv
# compare as a CI gate: the same rows from two committed runs, then a row made 2x slower
python - "$tmp" <<'PY'
import csv, sys
src = "results/foundation/fp32.csv"
rows = list(csv.DictReader(open(src)))
with open(f"{sys.argv[1]}/slower.csv", "w", newline="") as fh:
    w = csv.DictWriter(fh, fieldnames=rows[0].keys()); w.writeheader()
    for r in rows:
        if r["runtime"] == "tvm" and r["status"] == "ok":
            r["p50_ms"] = str(float(r["p50_ms"]) * 2); r["p90_ms"] = str(float(r["p90_ms"]) * 2)
        w.writerow(r)
PY
cp results/foundation/fp32.env.json "$tmp/slower.env.json"
check compare results/foundation/fp32.csv results/foundation/fp32.csv
check compare results/foundation/fp32.csv "$tmp/slower.csv"
rm -rf "$tmp"
