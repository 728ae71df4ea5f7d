#!/bin/bash
# Gradient compression's effect on accuracy: Fashion-MNIST (datasets/configs/fashion_mnist.ini:
# 784-256-128-10, Adam, batch 128, 20 epochs) on 2 ranks with the gradient sum in fp32, bf16
# and fp16 (grad_compression), seeds 1-5, the final test accuracy of each run; then the mean
# and standard deviation per format and each format's mean minus fp32's. The ranks exchange
# over comm = allreduce on this node: the same numbers as two one-rank nodes (each rounds its
# own gradient, one sum of two; tests/test_compression.py checks the bits are equal).
#
#   scripts/bench/compression.sh [SEEDS] [EPOCHS]        (defaults "1 2 3 4 5" and 20)
set -euo pipefail
cd "$(dirname "$0")/../.."
SEEDS=${1:-1 2 3 4 5}
EPOCHS=${2:-20}
[[ -x build/trainer ]] || scripts/build.sh >/dev/null
[[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]] ||
  { echo "no Fashion-MNIST (apt-get install dataset-fashion-mnist)"; exit 0; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
WORK=$(mktemp -d /tmp/trainer-compression.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
for seed in $SEEDS; do
  for mode in none bf16 fp16; do
    acc=$(mpirun -np 2 --bind-to core build/trainer train datasets/configs/fashion_mnist.ini --set train.seed="$seed" \
      --set train.epochs="$EPOCHS" --set train.comm=allreduce --set train.grad_compression="$mode" \
      --set output.checkpoint_every=0 --set output.dir="$WORK/$mode-$seed" | awk '$1 == "accuracy" {a = $2} END {print a}')
    echo "RESULT seed=$seed mode=$mode test_accuracy=$acc"
  done
done | tee "$WORK/results" | sed 's/^RESULT //'
/usr/bin/python3 - "$WORK/results" <<'PY'
import statistics as st, sys, collections
acc = collections.defaultdict(list)
for line in open(sys.argv[1]):
    kv = dict(f.split("=") for f in line.split()[1:])
    acc[kv["mode"]].append(float(kv["test_accuracy"]))
print()
print("| gradient sum | runs | test accuracy, mean +- sd | range | mean - fp32's (points) |")
print("| --- | --- | --- | --- | --- |")
for mode in ("none", "bf16", "fp16"):
    a = acc[mode]
    sd = st.stdev(a) if len(a) > 1 else 0.0
    print("| %s | %d | %.4f +- %.4f | %.4f-%.4f | %+.2f |" % ("fp32" if mode == "none" else mode, len(a), st.mean(a), sd,
          min(a), max(a), 100 * (st.mean(a) - st.mean(acc["none"]))))
PY
