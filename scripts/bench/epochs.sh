#!/bin/bash
# The whole-epoch loop against the bench loop: `trainer train` on Fashion-MNIST's 60000 rows
# (784-256-128-10, Adam, batch 128, a checkpoint and the per-epoch bookkeeping every epoch, no
# held-out set to evaluate) as a whole process, samples/s = epochs x rows / the seconds it
# reports for training (loading excluded), against `trainer bench` of the same model and batch,
# alternated REPEAT times on one core, for each engine x precision. Prints medians, ranges and
# the ratio of the medians (the loop's loss against the bench).
#
#   scripts/bench/epochs.sh [REPEAT] [EPOCHS]        (defaults 5 and 5)
set -euo pipefail
cd "$(dirname "$0")/../.."
REPEAT=${1:-5}
EPOCHS=${2:-5}
[[ -x build/trainer ]] || scripts/build.sh >/dev/null
T=build/trainer
ONE_CORE="taskset -c ${CORE:-1}"
FM=/usr/share/datasets/fashion-mnist
[[ -f $FM/train-images-idx3-ubyte.gz ]] || { echo "no Fashion-MNIST (apt-get install dataset-fashion-mnist)"; exit 0; }
WORK=$(mktemp -d /tmp/trainer-epochs.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
$T data convert $FM/train-images-idx3-ubyte.gz "$WORK/fm.h5" --labels $FM/train-labels-idx1-ubyte.gz >/dev/null
cat > "$WORK/fm.ini" <<INI
[model]
layers = 784, 256, 128, 10
activations = relu
output_activation = identity
[data]
path = $WORK/fm.h5
[train]
loss = cross_entropy
optimizer = adam
batch_size = 128
epochs = $EPOCHS
threads = 1
INI
LOG=$WORK/epochs.log
for ((r = 0; r < REPEAT; r++)); do
  for variant in openblas-fp32 onednn-fp32 onednn-bf16; do
    engine=${variant%-*} precision=${variant#*-}
    sets=(--set train.gemm="$engine" --set train.precision="$precision")
    $ONE_CORE $T train "$WORK/fm.ini" --set output.dir="$WORK/run" --overwrite "${sets[@]}" |
      awk -v v="$variant" -v rows=60000 -v e="$EPOCHS" '/^trained/ { print "train", v, e * rows / $(NF - 4) }' >> "$LOG"
    $ONE_CORE $T bench scripts/bench/mlp784.ini --steps 1000 "${sets[@]}" |
      awk -v v="$variant" -F'samples_per_s=' '/^BENCH/ { split($2, f, " "); print "bench", v, f[1] }' >> "$LOG"
  done
done
/usr/bin/python3 - "$LOG" <<'PY'
import collections, statistics as st, sys
v = collections.defaultdict(list)
for line in open(sys.argv[1]):
    kind, variant, sps = line.split()
    v[(kind, variant)].append(float(sps))
print("| gemm | whole epochs, samples/s | bench loop, samples/s | epochs / bench |")
print("| --- | --- | --- | --- |")
for variant in ("openblas-fp32", "onednn-fp32", "onednn-bf16"):
    a, b = v[("train", variant)], v[("bench", variant)]
    if a and b:
        print(f"| {variant.replace('-', ' ')} | {st.median(a):,.0f} ({min(a):,.0f}-{max(a):,.0f}) | "
              f"{st.median(b):,.0f} ({min(b):,.0f}-{max(b):,.0f}) | {st.median(a) / st.median(b):.3f} |")
PY
