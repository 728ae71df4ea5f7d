#!/bin/bash
# trainer against PyTorch in one run: the same network, batch, optimizer and data, one thread
# per process bound to one core, trained by `trainer train` in each engine x precision
# (openblas fp32, onednn fp32, onednn bf16) and by a plain PyTorch loop
# (scripts/bench/peers_torch.py) in fp32 and under bf16 autocast, all in alternation; each
# one's samples/s over whole epochs (the data gather included, evaluation excluded; the first
# epoch is warm-up), medians and ranges over REPEAT alternations, with the ratios to PyTorch. Then the time to accuracy of the shipped
# Fashion-MNIST configs at np=1 and np=2: wall seconds from the command's start (loading
# included) to the first evaluation with test accuracy >= 0.90.
#
#   scripts/bench/peers.sh [REPEAT] [EPOCHS]          (defaults 3 and 4)
#   ONLY=moons|mlp784|wide2048 skips the others; NO_TTA=1 skips the time to accuracy
#   (scripts/bench/tta.sh, run at the end).
# PyTorch is Debian's python3-torch; without it the comparison is skipped with a message.
# Run it once as set in the environment and once with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE
# unset (env -u ...): both sides use this machine's OpenBLAS-free (PyTorch: its own) kernels.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPEAT=${1:-3}
EPOCHS=${2:-4}
[[ -x build/trainer ]] || scripts/build.sh >/dev/null
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
WORK=$(mktemp -d /tmp/trainer-peers.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
T=build/trainer
ONE_CORE="taskset -c ${CORE:-1}" # every process on the same single core

# the data: moons (generated), Fashion-MNIST (converted; random rows of its shape without it)
$T data gen moons --out "$WORK/moons.h5" --n 32768 --seed 1 >/dev/null
FM=/usr/share/datasets/fashion-mnist
if [[ -f $FM/train-images-idx3-ubyte.gz ]]; then
  $T data convert $FM/train-images-idx3-ubyte.gz "$WORK/mlp784.h5" --labels $FM/train-labels-idx1-ubyte.gz >/dev/null
else
  $T data gen random --out "$WORK/mlp784.h5" --n 60000 --n_features 784 --classes 10 >/dev/null
fi
$T data gen random --out "$WORK/wide2048.h5" --n 16384 --n_features 1024 --classes 10 >/dev/null

# name | layers | hidden activation | output activation | loss | optimizer | lr | batch
NETS=(
  "moons|2,20,20,1|tanh|sigmoid|bce|adam|0.01|32"
  "mlp784|784,256,128,10|relu|identity|cross_entropy|adam|0.001|128"
  "wide2048|1024,2048,2048,10|relu|identity|cross_entropy|momentum|0.01|512"
)
have_torch=1
/usr/bin/python3 -c "import torch" 2>/dev/null || { have_torch=0; echo "PyTorch is not installed (apt-get install python3-torch): trainer alone"; }
LOG=$WORK/peers.log
for net in "${NETS[@]}"; do
  IFS='|' read -r name layers act out loss opt lr batch <<<"$net"
  [[ -n ${ONLY:-} && $ONLY != "$name" ]] && continue
  cat > "$WORK/$name.ini" <<INI
[model]
layers = $layers
activations = $act
output_activation = $out
[data]
path = $WORK/$name.h5
[train]
loss = $loss
optimizer = $opt
lr = $lr
batch_size = $batch
drop_last = true
epochs = $EPOCHS
eval_every = 1
threads = 1
INI
  for ((r = 0; r < REPEAT; r++)); do
    for variant in openblas-fp32 onednn-fp32 onednn-bf16; do
      engine=${variant%-*} precision=${variant#*-}
      $ONE_CORE $T train "$WORK/$name.ini" --set output.dir="$WORK/run-$name" --overwrite \
        --set train.gemm="$engine" --set train.precision="$precision" >/dev/null
      # the epochs' rows after the first (metrics.csv: a header, then one row per epoch)
      tail -n +3 "$WORK/run-$name/metrics.csv" | /usr/bin/python3 -c '
import csv, sys
head = open(sys.argv[1]).readline().strip().split(",")
for row in csv.reader(sys.stdin):
    print("trainer-" + sys.argv[3], sys.argv[2], row[head.index("samples_per_s")])' \
        "$WORK/run-$name/metrics.csv" "$name" "$variant" >> "$LOG"
    done
    if ((have_torch)); then
      for precision in fp32 bf16; do
        OPENBLAS_NUM_THREADS=1 $ONE_CORE /usr/bin/python3 scripts/bench/peers_torch.py "$WORK/$name.h5" "$layers" \
          "$act" "$out" "$loss" "$opt" "$lr" "$batch" "$EPOCHS" "$precision" |
          awk -v n="$name" -v w="torch-$precision" '$1 == "EPOCH" && $2 > 1 { print w, n, $4 }' >> "$LOG"
      done
    fi
  done
done
/usr/bin/python3 - "$LOG" <<'PY'
import sys, statistics as st, collections
v = collections.defaultdict(list)
for line in open(sys.argv[1]):
    who, net, sps = line.split()
    v[(who, net)].append(float(sps))
who = ["trainer-openblas-fp32", "trainer-onednn-fp32", "trainer-onednn-bf16", "torch-fp32", "torch-bf16"]
def cell(w, net):
    x = v[(w, net)]
    if not x:
        return "-"
    return f"{st.median(x):,.0f} ({min(x):,.0f}-{max(x):,.0f})"
def ratio(w, ref, net):
    if not v[(w, net)] or not v[(ref, net)]:
        return "-"
    return f"{st.median(v[(w, net)]) / st.median(v[(ref, net)]):.2f}"
print("samples/s over whole epochs, median (range) of the alternations; ratios of the medians")
print()
print("| network | trainer openblas fp32 | trainer onednn fp32 | trainer onednn bf16 | PyTorch fp32 | PyTorch bf16 autocast "
      "| best trainer fp32 / PyTorch fp32 | trainer bf16 / PyTorch fp32 | trainer bf16 / PyTorch bf16 |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for net in ("moons", "mlp784", "wide2048"):
    if not any(v[(w, net)] for w in who):
        continue
    best32 = max(("trainer-openblas-fp32", "trainer-onednn-fp32"),
                 key=lambda w: st.median(v[(w, net)]) if v[(w, net)] else 0)
    print(f"| {net} | " + " | ".join(cell(w, net) for w in who) +
          f" | {ratio(best32, 'torch-fp32', net)} | {ratio('trainer-onednn-bf16', 'torch-fp32', net)} "
          f"| {ratio('trainer-onednn-bf16', 'torch-bf16', net)} |")
PY

[[ -n ${NO_TTA:-} ]] && exit 0
# time to accuracy: the shipped recipes and the fast one in PyTorch, seeds 1-5
echo
scripts/bench/tta.sh
