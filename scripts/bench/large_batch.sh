#!/bin/bash
# Accuracy as the global batch grows: global batches of 128, 1024, 4096 and 8192 rows on 2
# ranks (micro-batches of at most 1024 rows, accumulated: the same numerics as one rank),
# each optimizer's rate set for the batch by the trainer's own switch ([train] lr_scaling from
# lr_base_batch = 128: sqrt for Adam-like optimizers, linear for LARS), on three recipes:
#   fast    datasets/configs/fashion_mnist_fast.ini, 10 epochs under a one-cycle rate (its
#           own warm-up, so lr_scaling_warmup_epochs = 0): AdamW 0.004 (the recipe), LAMB
#           0.0141 and LARS 0.625 at batch 128 (0.08 and 20 at 4096: the best of a sweep)
#   course  datasets/configs/fashion_mnist.ini, 20 epochs at a constant rate: Adam 0.001 (the
#           recipe) and LAMB 0.0015, with Goyal et al.'s 2-epoch warm-up of the scaled rate
#   best    datasets/configs/fashion_mnist_best.ini, 30 epochs of the wider network under a
#           one-cycle rate: AdamW 0.003 (the recipe), LAMB and LARS at the fast recipe's rates
# Seeds 1-3 (or SEEDS); RECIPES (fast course best), OPTIMIZERS and BATCHES narrow the sweep. Prints one line
# per run and a Markdown table per recipe: the final test accuracy's mean and range, and the
# difference from the recipe's own optimizer at batch 128.
#
#   scripts/bench/large_batch.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
SEEDS=${SEEDS:-1 2 3}
RECIPES=${RECIPES:-fast course best}
BATCHES=${BATCHES:-128 1024 4096 8192}
[[ -x build/trainer ]] || scripts/build.sh >/dev/null
[[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]] ||
  { echo "no Fashion-MNIST (apt-get install dataset-fashion-mnist)"; exit 0; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
WORK=$(mktemp -d /tmp/trainer-large-batch.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# recipe optimizer lr(batch 128) lr_scaling warm-up-epochs
PLANS="fast adamw 0.004 sqrt 0
fast lamb 0.01414 sqrt 0
fast lars 0.625 linear 0
course adam 0.001 sqrt 2
course lamb 0.0015 sqrt 2
best adamw 0.003 sqrt 0
best lamb 0.01414 sqrt 0
best lars 0.625 linear 0"

for recipe in $RECIPES; do
  case $recipe in
    fast) config=datasets/configs/fashion_mnist_fast.ini epochs=10 ;;
    course) config=datasets/configs/fashion_mnist.ini epochs=20 ;;
    best) config=datasets/configs/fashion_mnist_best.ini epochs=30 ;;
    *) echo "unknown recipe $recipe"; exit 2 ;;
  esac
  while read -r r opt lr rule warm; do
    [[ $r == "$recipe" && " ${OPTIMIZERS:-$opt} " == *" $opt "* ]] || continue
    for batch in $BATCHES; do
      micro=$((batch < 1024 ? batch : 1024))
      for seed in $SEEDS; do
        d=$WORK/$recipe-$opt-$batch-$seed
        mpirun -np 2 --bind-to core build/trainer train "$config" --set train.stop_at= \
          --set train.epochs=$epochs --set train.eval_every=$epochs --set train.seed="$seed" \
          --set train.optimizer=$opt --set train.lr="$lr" --set train.lr_scaling=$rule \
          --set train.lr_base_batch=128 --set train.lr_scaling_warmup_epochs=$warm \
          --set train.batch_size=$micro --set train.accumulate=$((batch / micro)) \
          --set output.checkpoint_every=0 --set output.dir="$d" >/dev/null </dev/null # mpirun reads stdin
        acc=$(awk -F, 'NR == 1 {for (i = 1; i <= NF; i++) {if ($i == "test_accuracy") c = i; if ($i == "lr") l = i}}
                       NR > 1 && $c != "" {a = $c; r = $l} END {print a, r}' "$d/metrics.csv")
        echo "RESULT recipe=$recipe opt=$opt batch=$batch seed=$seed accuracy=${acc% *} final_lr=${acc#* }"
        rm -rf "$d"
      done
    done
  done <<<"$PLANS"
done | tee "$WORK/results" | sed 's/^RESULT //'
/usr/bin/python3 - "$WORK/results" <<'PY'
import collections, statistics as st, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    kv = dict(f.split("=", 1) for f in line.split()[1:])
    runs[(kv["recipe"], kv["opt"], int(kv["batch"]))].append(float(kv["accuracy"]))
for recipe, base_opt in (("fast", "adamw"), ("course", "adam"), ("best", "adamw")):
    opts = sorted({o for r, o, _ in runs if r == recipe}, key=lambda o: o != base_opt)
    if not opts:
        continue
    base = runs.get((recipe, base_opt, 128))
    base = st.mean(base) if base else float("nan")
    print(f"\n{recipe}: test accuracy, mean (range) over {len(runs[(recipe, opts[0], 128)]) if (recipe, opts[0], 128) in runs else '?'} seeds,"
          f" and the difference from {base_opt} at batch 128 ({base:.4f})\n")
    print("| global batch | " + " | ".join(opts) + " |")
    print("| --- |" + " --- |" * len(opts))
    for batch in sorted({b for r, _, b in runs if r == recipe}):
        cells = []
        for o in opts:
            a = runs.get((recipe, o, batch))
            cells.append("%.4f (%.4f-%.4f) %+.2f" % (st.mean(a), min(a), max(a), 100 * (st.mean(a) - base)) if a else "")
        print(f"| {batch} | " + " | ".join(cells) + " |")
PY
