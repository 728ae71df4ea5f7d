#!/bin/bash
# The data path's cost on Fashion-MNIST (784-256-128-10, Adam, batch 128, one BLAS thread per
# rank): samples/s of whole epochs (data loading excluded, evaluation included) reading the
# converted HDF5 file into memory (mmap = false) and using it in place (mmap = true, warm page
# cache), at np=1 and np=2, alternating REPEAT times. (Memory per added rank: tests/test_data_memory.py.)
#
#   scripts/bench/data.sh [REPEAT] [EPOCHS]      (defaults 3, 2)
set -euo pipefail
cd "$(dirname "$0")/../.."
REPEAT=${1:-3}
EPOCHS=${2:-2}
FM=/usr/share/datasets/fashion-mnist
[[ -x build/trainer ]] || scripts/build.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
W=$(mktemp -d /var/tmp/trainer-bench-data.XXXXXX)
trap 'rm -rf "$W"' EXIT
build/trainer data convert $FM/train-images-idx3-ubyte.gz "$W/train.h5" --labels $FM/train-labels-idx1-ubyte.gz
build/trainer data convert $FM/t10k-images-idx3-ubyte.gz "$W/test.h5" --labels $FM/t10k-labels-idx1-ubyte.gz
cat >"$W/f.ini" <<INI
[model]
layers = 784, 256, 128, 10
[data]
path = $W/train.h5
test_path = $W/test.h5
[train]
loss = cross_entropy
optimizer = adam
batch_size = 128
epochs = $EPOCHS
threads = 1
seed = 1
[output]
checkpoint_every = 0
INI
LOG=build/bench-data.log
: >"$LOG"
for ((r = 0; r < REPEAT; r++)); do
    for np in 1 2; do
        for mmap in false true; do
            mpirun -np $np --bind-to core build/trainer train "$W/f.ini" --overwrite --set data.mmap=$mmap \
                --set output.dir="$W/run" >/dev/null
            sps=$(/usr/bin/python3 -c "import csv,sys; r=list(csv.DictReader(open(sys.argv[1]))); print(sum(float(x['samples_per_s']) for x in r)/len(r))" "$W/run/metrics.csv")
            echo "np=$np mmap=$mmap samples_per_s=$sps" >>"$LOG"
        done
    done
done
/usr/bin/python3 - "$LOG" <<'PY'
import collections, statistics as st, sys
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    kv = dict(f.split("=", 1) for f in line.split())
    rows[(int(kv["np"]), kv["mmap"])].append(float(kv["samples_per_s"]))
print("| np | read into memory, samples/s | mapped, samples/s | mapped / read |")
print("| --- | --- | --- | --- |")
for np in (1, 2):
    a, b = st.median(rows[(np, "false")]), st.median(rows[(np, "true")])
    print(f"| {np} | {a:.0f} | {b:.0f} | {b / a:.3f} |")
PY
