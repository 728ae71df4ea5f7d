#!/bin/bash
# Accuracy as the global batch grows: datasets/configs/fashion_mnist_fast.ini's recipe (batch
# norm, dropout 0.1, label smoothing, AdamW under a one-cycle rate) for its 10 epochs without
# stopping at the target, at global batches of 128, 1024, 4096 and 8192 rows on 2 ranks
# (micro-batches of at most 1024 rows, accumulated: the same numerics as one rank), the rate
# scaled by the square root of the batch (Adam's usual rule: 0.004 x sqrt(B / 128)) or kept,
# seeds 1-3 (or SEEDS). Prints the final test accuracy's mean and range per batch and rule.
# The baseline the layer-wise optimizers (LARS, LAMB: not in the trainer yet) are to improve.
#
#   scripts/bench/large_batch.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
SEEDS=${SEEDS:-1 2 3}
[[ -x build/trainer ]] || scripts/build.sh >/dev/null
[[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]] ||
  { echo "no Fashion-MNIST (apt-get install dataset-fashion-mnist)"; exit 0; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
WORK=$(mktemp -d /tmp/trainer-large-batch.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
for batch in 128 1024 4096 8192; do
  micro=$((batch < 1024 ? batch : 1024))
  for rule in sqrt constant; do
    lr=$(awk -v b="$batch" -v r="$rule" 'BEGIN {printf "%.6g", r == "sqrt" ? 0.004 * sqrt(b / 128) : 0.004}')
    [[ $rule == constant && $batch == 128 ]] && continue
    for seed in $SEEDS; do
      d=$WORK/$batch-$rule-$seed
      out=$(mpirun -np 2 --bind-to core build/trainer train datasets/configs/fashion_mnist_fast.ini \
        --set train.stop_at= --set train.eval_every=10 --set train.seed="$seed" --set train.lr="$lr" \
        --set train.batch_size="$micro" --set train.accumulate=$((batch / micro)) --set output.dir="$d" | tail -1)
      acc=$(awk -F, 'NR == 1 {for (i = 1; i <= NF; i++) if ($i == "test_accuracy") c = i} NR > 1 && $c != "" {a = $c} END {print a}' "$d/metrics.csv")
      echo "RESULT batch=$batch rule=$rule lr=$lr seed=$seed accuracy=$acc seconds=$(sed -n 's/^trained .* in \([0-9.]*\) s;.*/\1/p' <<<"$out")"
    done
  done
done | tee "$WORK/results" | sed 's/^RESULT //'
/usr/bin/python3 - "$WORK/results" <<'PY'
import collections, statistics as st, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    kv = dict(f.split("=", 1) for f in line.split()[1:])
    runs[(int(kv["batch"]), kv["rule"], kv["lr"])].append((float(kv["accuracy"]), float(kv["seconds"])))
base = st.mean(a for a, _ in runs[min(runs)])
print()
print("| global batch | lr | test accuracy after 10 epochs, mean (range) | against batch 128 | training s |")
print("| --- | --- | --- | --- | --- |")
for (batch, rule, lr), v in sorted(runs.items()):
    acc = [a for a, _ in v]
    print("| %d | %s (%s) | %.4f (%.4f-%.4f) | %+.2f points | %.1f |" % (
        batch, lr, rule, st.mean(acc), min(acc), max(acc), 100 * (st.mean(acc) - base), st.median(s for _, s in v)))
PY
