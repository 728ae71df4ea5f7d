#!/bin/bash
# Many models in one job (`trainer search`), wall times from the command's start (process
# start, MPI, data and every trial's output included), repeats 1-3 (or REPEATS; the space's
# search.seed is the repeat):
#
# 1. 64 trials of the course's moons network (datasets/spaces/moons_64.space: 2-20-20-1, 100
#    epochs, lr and optimizer sampled): the same 64 trials as 64 `trainer train` runs one
#    after another (np=1, what a shell loop or a job array of one task does), as one
#    `trainer search` at np=1, and at np=2 (two groups of one rank).
# 2. The course's comparison (datasets/spaces/moons_course.space: lr x optimizer x activation,
#    45 trials, validation split 0.2) as the exhaustive grid and with successive halving
#    (rungs at 5, 15, 45 epochs, eta 3), np=2, train.seed = the repeat: the grid's best test
#    accuracy, the test accuracy of the trial ASHA ranks first (by validation accuracy), the
#    trial the grid ranks first alike, and the share of the grid's epochs ASHA trained.
#
#   scripts/bench/search.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
REPEATS=${REPEATS:-1 2 3}
[[ -x build/trainer ]] || scripts/build.sh >/dev/null
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
WORK=$(mktemp -d /tmp/trainer-search-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
T=build/trainer
CFG=datasets/configs/moons.ini
now() { date +%s.%N; }
since() { awk -v a="$(now)" -v b="$1" 'BEGIN {printf "%.2f", a - b}'; }

echo "## 64 moons trials (datasets/spaces/moons_64.space)"
for r in $REPEATS; do
  "$T" search "$CFG" datasets/spaces/moons_64.space --set search.seed="$r" --set output.dir="$WORK/s1-$r" >/dev/null
  t0=$(now)
  # the same trials, each its own run: the values trials.csv of the np=1 search lists
  tail -n +2 "$WORK/s1-$r/trials.csv" | while IFS=, read -r trial _ _ _ _ lr opt _; do
    "$T" train "$CFG" --set train.lr="$lr" --set train.optimizer="$opt" \
      --set output.dir="$WORK/seq-$r/$trial" </dev/null >/dev/null
  done
  seq=$(since "$t0")
  rm -rf "$WORK/s1-$r"
  t0=$(now)
  "$T" search "$CFG" datasets/spaces/moons_64.space --set search.seed="$r" --set output.dir="$WORK/s1-$r" >/dev/null
  one=$(since "$t0")
  t0=$(now)
  mpirun -np 2 --bind-to core "$T" search "$CFG" datasets/spaces/moons_64.space --set search.seed="$r" \
    --set output.dir="$WORK/s2-$r" >/dev/null
  two=$(since "$t0")
  same=$(cmp -s <(cut -d, -f1-4,6- "$WORK/s1-$r/trials.csv") <(cut -d, -f1-4,6- "$WORK/s2-$r/trials.csv") &&
    echo same || echo differ)
  echo "RESULT64 repeat=$r sequential=$seq search1=$one search2=$two tables=$same"
done | tee "$WORK/r64" | sed 's/^RESULT64 //'

echo "## the course's comparison: grid against ASHA (datasets/spaces/moons_course.space, np=2)"
for r in $REPEATS; do
  for mode in false true; do
    t0=$(now)
    mpirun -np 2 --bind-to core "$T" search "$CFG" datasets/spaces/moons_course.space --set search.asha=$mode \
      --set data.val_fraction=0.2 --set train.seed="$r" --set output.dir="$WORK/c-$mode-$r" >/dev/null
    echo "RESULTC repeat=$r asha=$mode seconds=$(since "$t0") dir=$WORK/c-$mode-$r"
  done
done | tee "$WORK/rc" | sed 's/^RESULTC //; s/ dir=.*//'

/usr/bin/python3 - "$WORK/r64" "$WORK/rc" <<'PY'
import csv, statistics as st, sys

def kv(line):
    return dict(f.split("=", 1) for f in line.split()[1:])

runs = [kv(l) for l in open(sys.argv[1])]
def col(k):
    v = [float(r[k]) for r in runs]
    return "%.2f (%.2f-%.2f)" % (st.median(v), min(v), max(v)), st.median(v)
print("\n| 64 moons trials | wall s, median (range) | share of the sequential runs | share of search at np=1 |")
print("| --- | --- | --- | --- |")
seq, s1, s2 = col("sequential"), col("search1"), col("search2")
print("| 64 x trainer train, np=1 | %s | 1 | |" % seq[0])
print("| trainer search, np=1 | %s | %.2f | 1 |" % (s1[0], s1[1] / seq[1]))
print("| trainer search, np=2 | %s | %.2f | %.2f |" % (s2[0], s2[1] / seq[1], s2[1] / s1[1]))
print("np=2 tables equal np=1's (all but seconds): %s" % ", ".join(r["tables"] for r in runs))

rows = [kv(l) for l in open(sys.argv[2])]
print("\n| repeat | grid best test acc. | grid's pick (best val.) test acc. | ASHA's pick test acc. | ASHA - grid best | ASHA epochs / grid's | grid s | ASHA s |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for r in sorted({x["repeat"] for x in rows}):
    g = next(x for x in rows if x["repeat"] == r and x["asha"] == "false")
    a = next(x for x in rows if x["repeat"] == r and x["asha"] == "true")
    gt = list(csv.DictReader(open(g["dir"] + "/trials.csv")))
    at = list(csv.DictReader(open(a["dir"] + "/trials.csv")))
    def pick(t):  # the trial ranked first: best val_accuracy, the lower number on a tie
        return max(t, key=lambda x: (float(x["val_accuracy"] or "nan"), -int(x["trial"])))
    best = max(float(x["test_accuracy"]) for x in gt)
    ep_g = sum(int(x["epochs"]) for x in gt)
    ep_a = sum(int(x["epochs"]) for x in at)
    print("| %s | %.4f | %.4f | %.4f | %+.2f pts | %.2f | %s | %s |" % (
        r, best, float(pick(gt)["test_accuracy"]), float(pick(at)["test_accuracy"]),
        100 * (float(pick(at)["test_accuracy"]) - best), ep_a / ep_g, g["seconds"], a["seconds"]))
PY
