#!/bin/bash
# Whole epochs on two nodes against one node: `trainer train` on Fashion-MNIST
# (datasets/configs/fashion_mnist.ini, 784-256-128-10, Adam, batch 128; EPOCHS epochs, test
# set evaluated at the end only, no checkpoint before the last) with 2 ranks on this node and
# with one rank on each of two namespace nodes (scripts/bench/two_nodes.sh: TCP over a veth
# bridge, ranks pinned to cores 0 and 1), the gradient between the nodes in fp32 and in bf16
# (grad_compression), for each GEMM variant (VARIANTS, default "openblas-fp32 onednn-bf16"),
# alternating REPEAT times. Reports the process's wall time (start-up and loading included),
# the training seconds the trainer prints, epochs x rows / wall time, and the share of one
# node's speed two nodes keep: medians and ranges. Needs root for the nodes.
#
#   scripts/bench/two_node_epochs.sh [REPEAT] [EPOCHS]        (defaults 3 and 3)
set -euo pipefail
cd "$(dirname "$0")/../.."
REPEAT=${1:-3}
EPOCHS=${2:-3}
VARIANTS=${VARIANTS:-openblas-fp32 onednn-bf16}
[[ -x build/trainer ]] || scripts/build.sh >/dev/null
[[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]] ||
  { echo "no Fashion-MNIST (apt-get install dataset-fashion-mnist)"; exit 0; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
source scripts/bench/two_nodes.sh
two_nodes_up 27000
LOG=$TWO_NODES_DIR/epochs.log
args() { # the run's settings: variant, compression, run directory
  echo train "$PWD/datasets/configs/fashion_mnist.ini" --set train.epochs="$EPOCHS" --set train.eval_every="$EPOCHS" \
    --set output.checkpoint_every=0 --set train.threads=1 --set train.gemm="${1%-*}" \
    --set train.precision="${1#*-}" --set train.grad_compression="$2" --set output.dir="$3"
}
timed() { # LAYOUT VARIANT COMPRESSION COMMAND...: one RESULT line
  local layout=$1 variant=$2 compression=$3 t0 out
  shift 3
  t0=$EPOCHREALTIME
  out=$("$@" 2>&1) || { echo "failed: $layout $variant $compression: ${out: -500}" >&2; return 0; }
  echo "RESULT layout=$layout variant=$variant compression=$compression wall_s=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {print b - a}')" \
    "train_s=$(sed -n 's/^trained .* in \([0-9.]*\) s;.*/\1/p' <<<"$out")" \
    "accuracy=$(awk '$1 == "accuracy" {a = $2} END {print a}' <<<"$out")" >>"$LOG"
}
for ((r = 0; r < REPEAT; r++)); do
  for variant in $VARIANTS; do
    dir=$TWO_NODES_DIR/run
    rm -rf "$dir"
    # shellcheck disable=SC2046
    timed "1 node" "$variant" none mpirun -np 2 --bind-to core build/trainer $(args "$variant" none "$dir")
    for compression in none bf16; do
      rm -rf "$dir"
      # shellcheck disable=SC2046
      timed "2 nodes" "$variant" "$compression" two_nodes "$PWD/build/trainer" $(args "$variant" "$compression" "$dir")
    done
  done
done
sed 's/^RESULT //' "$LOG"
/usr/bin/python3 - "$LOG" "$EPOCHS" <<'PY'
import collections, statistics as st, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    kv = dict(f.split("=", 1) for f in line.replace("1 node", "1_node").replace("2 nodes", "2_nodes").split()[1:])
    runs[(kv["variant"], kv["layout"], kv["compression"])].append((float(kv["wall_s"]), float(kv["train_s"])))
rows = 60000 * int(sys.argv[2])
print()
print("| gemm | layout | between nodes | wall s (range) | training s (range) | samples/s (wall) | share of 1 node, wall "
      "(range of pairs) | share of 1 node, training |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for (variant, layout, comp), v in sorted(runs.items()):
    wall = [w for w, _ in v]
    base = runs.get((variant, "1_node", "none"), [])
    train = [t for _, t in v]
    share = share_train = ""
    if layout == "2_nodes" and base:
        pairs = [b[0] / w for b, w in zip(base, wall)]
        share = "%.0f%% (%.0f-%.0f%%)" % (100 * st.median(b[0] for b in base) / st.median(wall), 100 * min(pairs),
                                          100 * max(pairs))
        share_train = "%.0f%%" % (100 * st.median(b[1] for b in base) / st.median(train))
    print("| %s | %s | %s | %.2f (%.2f-%.2f) | %.2f (%.2f-%.2f) | %.0f | %s | %s |" % (
        variant, layout.replace("_", " "), "-" if layout == "1_node" else ("fp32" if comp == "none" else comp),
        st.median(wall), min(wall), max(wall), st.median(train), min(train), max(train), rows / st.median(wall),
        share, share_train))
PY
