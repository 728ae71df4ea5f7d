#!/bin/bash
# Time to accuracy: the shipped recipes run as a user runs them, wall time from the command's
# start (loading included) to the first evaluation that meets the target, over seeds 1-5 (or
# SEEDS), medians and ranges, with the test accuracy's mean and standard deviation:
#   datasets/configs/fashion_mnist_fast.ini   its stop_at (test accuracy >= 0.90), np=1 and np=2
#   datasets/configs/fashion_mnist_best.ini   its final test accuracy (30 epochs), np=2
#   datasets/configs/moons.ini                with stop_at test accuracy >= 0.99, np=1
# and the fast recipe in PyTorch, one thread (scripts/bench/tta_torch.py; skipped without
# python3-torch). One thread per rank, each rank bound to a core.
#
#   scripts/bench/tta.sh        (SEEDS="1 2 3 4 5" by default)
set -euo pipefail
cd "$(dirname "$0")/../.."
SEEDS=${SEEDS:-1 2 3 4 5}
[[ -x build/trainer ]] || scripts/build.sh >/dev/null
[[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]] ||
  { echo "no Fashion-MNIST (apt-get install dataset-fashion-mnist)"; exit 0; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
WORK=$(mktemp -d /tmp/trainer-tta.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
run() { # NAME NP CONFIG SETTINGS...: one RESULT line per seed
  local name=$1 np=$2 cfg=$3 seed out d
  shift 3
  for seed in $SEEDS; do
    d=$WORK/$name-$np-$seed
    out=$(mpirun -np "$np" --bind-to core build/trainer train "$cfg" --set train.seed="$seed" --set train.threads=1 \
      --set output.dir="$d" "$@" | tail -1)
    echo "RESULT name=$name np=$np seed=$seed" \
      "seconds=$(sed -n 's/.* met after epoch [0-9]*: \([0-9.]*\) s from the start.*/\1/p' <<<"$out")" \
      "total=$(sed -n 's/^trained .* in \([0-9.]*\) s;.*/\1/p' <<<"$out")" \
      "accuracy=$(awk -F, 'NR == 1 {for (i = 1; i <= NF; i++) if ($i == "test_accuracy") c = i} NR > 1 && $c != "" {a = $c} END {print a}' "$d/metrics.csv")"
  done
}
{
  run fashion_mnist_fast 1 datasets/configs/fashion_mnist_fast.ini
  run fashion_mnist_fast 2 datasets/configs/fashion_mnist_fast.ini
  run fashion_mnist_best 2 datasets/configs/fashion_mnist_best.ini
  run moons 1 datasets/configs/moons.ini --set "train.stop_at=test_accuracy >= 0.99" --set train.eval_every=1
  for seed in $SEEDS; do
    taskset -c 1 /usr/bin/python3 scripts/bench/tta_torch.py "$seed" | sed -n 's/^TTA /RESULT name=pytorch_fast np=1 /p'
  done
} | tee "$WORK/results" | sed 's/^RESULT //'
/usr/bin/python3 - "$WORK/results" <<'PY'
import collections, math, statistics as st, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    kv = dict(f.split("=", 1) for f in line.split()[1:])
    runs[(kv["name"], kv["np"])].append(kv)
print()
print("| recipe | np | seeds at the target | seconds to target, median (range) | test accuracy at the end, mean +- sd |")
print("| --- | --- | --- | --- | --- |")
for (name, np), rs in runs.items():
    secs = [float(r["seconds"]) for r in rs if r.get("seconds") and not math.isnan(float(r["seconds"]))]
    acc = [float(r.get("accuracy") or r.get("best")) for r in rs]
    target = "-" if name == "fashion_mnist_best" else f"{len(secs)} of {len(rs)}"
    time = f"{st.median(secs):.2f} ({min(secs):.2f}-{max(secs):.2f})" if secs else "-"
    if name == "fashion_mnist_best":
        total = [float(r["total"]) for r in rs]
        time = f"(training {st.median(total):.1f} s, {min(total):.1f}-{max(total):.1f})"
    print(f"| {name} | {np} | {target} | {time} | {st.mean(acc):.4f} +- {st.stdev(acc) if len(acc) > 1 else 0:.4f} |")
PY
