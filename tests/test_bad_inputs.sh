#!/bin/bash
# test_bad_inputs.sh: every bad input of the README's reliability table, each with a time
# limit: the documented exit status, a message naming the file, key or row, and the results
# of an earlier run left intact.
#
#   tests/test_bad_inputs.sh TRAINER_BINARY SOURCE_DIR        (CTest label `reliability`)
#
# Needs root for the disk-full cases (a small tmpfs) and the permission cases (run as
# `nobody`); without root those cases are reported as skipped, the others still run.
set -uo pipefail

T=$(realpath "$1")
SRC=$(realpath "$2")
MOONS=$SRC/datasets/configs/moons.ini
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
W=$(mktemp -d /tmp/trainer-bad.XXXXXX)
chmod 755 "$W"
cd "$W" || exit 1
mounted=()
cleanup() {
    for m in "${mounted[@]}"; do umount "$m" 2>/dev/null; done
    [[ $failures -eq 0 ]] && rm -rf "$W"
}
failures=0
trap cleanup EXIT
is_root=0
[[ $(id -u) -eq 0 ]] && is_root=1

source "$SRC/tests/expect.sh"
# the command lines the cases extend (arrays, so that `timeout` can run them)
train=("$T" train "$MOONS" --set train.epochs=4 --set train.eval_every=2)
csv=("${train[@]}" --set data.generator=) # then --set data.path=FILE

# an earlier run whose files must survive every failure below
"${train[@]}" --set output.dir="$W/prev" >/dev/null 2>&1 || { echo "FAIL: the baseline run failed"; exit 1; }
before=$(sums "$W/prev")

# ---- configuration --------------------------------------------------------------------------
printf '[model]\nlayers = 2, 4, 1\noutput_activation = sigmoid\n[train]\nloss = bce\nepochs = ten\n' >bad_type.ini
expect "wrong type in the file" 2 "bad_type.ini:6: [train] epochs = ten: not an integer" -- "$T" train bad_type.ini
expect "wrong type in --set" 2 "[train] lr = fast: not a finite number" -- "${train[@]}" --set train.lr=fast
expect "unknown key" 2 "unknown key" -- "${train[@]}" --set train.learning_rate=0.1
expect "missing config file" 2 "no-such.ini" -- "$T" train "$W/no-such.ini"
mkdir -p a_dir.ini
expect "config that is a directory" 2 "a_dir.ini: is a directory" -- "$T" train a_dir.ini
head -c 2000 /dev/urandom >binary.ini
expect "binary config file" 2 "binary.ini" -- "$T" train binary.ini

# ---- data -------------------------------------------------------------------------------------
expect "missing data file" 3 "/no/such/data.csv: cannot open: No such file or directory" -- \
    "${csv[@]}" --set data.path=/no/such/data.csv --set output.dir="$W/r"
printf 'x0,x1,y\n0.1,0.2,0\nnan,0.3,1\n0.5,0.6,1\n' >nan.csv
expect "NaN feature" 3 "nan.csv:3: column 1 ('x0'): nan is not a finite float" -- "${csv[@]}" --set data.path=nan.csv --set output.dir="$W/r"
printf 'x0,x1,y\n0.1,0.2,0\n0.3,inf,1\n0.5,0.6,1\n' >inf.csv
expect "infinite feature" 3 "inf.csv:3: column 2 ('x1'): inf is not a finite float" -- "${csv[@]}" --set data.path=inf.csv --set output.dir="$W/r"
printf 'x0,x1,y\n0.1,0.2,0\n0.3,0.4,1\n0.5,0.6,7\n' >label.csv
expect "label out of range (cross_entropy)" 3 "class label 7 is outside [0, 3)" -- \
    "${csv[@]}" --set data.path=label.csv --set model.layers=2,4,3 --set model.output_activation=identity --set train.loss=cross_entropy \
    --set data.test_fraction=0 --set output.dir="$W/r"
expect "label out of range (bce)" 3 "target 7 of a bce loss must be in [0, 1]" -- \
    "${csv[@]}" --set data.path=label.csv --set data.test_fraction=0 --set output.dir="$W/r"
printf 'x0,x1,y\n0.1,zero,1\n' >word.csv  # a word in a feature column (a label column of words names classes)
expect "text in a number column" 3 "word.csv:2" -- "${csv[@]}" --set data.path=word.csv --set data.test_fraction=0 --set output.dir="$W/r"
printf 'x0,x1,y\n' >zero.csv
expect "zero data rows" 3 "zero.csv: no data rows" -- "${csv[@]}" --set data.path=zero.csv --set output.dir="$W/r"
printf 'x0,x1,y\n0.1,0.2,1\n' >one.csv
expect "one row split into train and test" 3 "no training rows left after the split" -- \
    "${csv[@]}" --set data.path=one.csv --set output.dir="$W/r"
expect "one row, no split: trains" 0 "" -- "${csv[@]}" --set data.path=one.csv --set data.test_fraction=0 --set output.dir="$W/one"
expect "batch larger than the data: trains" 0 "" -- "${train[@]}" --set data.n=40 --set train.batch_size=1000 \
    --set output.dir="$W/bigbatch"
check "  one optimizer step per epoch with batch > rows" grep -q "step 4 " "$W/out.txt"
expect "more ranks than rows (3 ranks, 1 row): trains" 0 "" -- \
    mpirun -np 3 "$T" train "$MOONS" --set train.epochs=2 --set data.generator= --set data.path=one.csv \
    --set data.test_fraction=0 --set output.dir="$W/ranks"
head -c 4096 /dev/urandom >junk.h5
expect "corrupt HDF5 data file" 3 "junk.h5: not an HDF5 file" -- "${csv[@]}" --set data.path=junk.h5 --set output.dir="$W/r"
"$T" data gen moons --out good.h5 --n 100 >/dev/null
head -c 3000 good.h5 >truncated.h5
expect "truncated HDF5 data file" 3 "truncated.h5" -- "${csv[@]}" --set data.path=truncated.h5 --set output.dir="$W/r"
expect "HDF5 data without the dataset" 3 "/features_here" -- "${csv[@]}" --set data.path=good.h5 --set data.features=/features_here \
    --set output.dir="$W/r"

# ---- checkpoints and the run directory -------------------------------------------------------
expect "architecture mismatch on resume" 4 "the architecture differs from the configuration; layers 2,20,20,1" -- \
    "${train[@]}" --set output.dir="$W/prev" --set output.resume=auto --set model.layers=2,8,1
head -c 3000 "$W/prev/best.h5" >trunc_ckpt.h5
expect "truncated checkpoint (predict)" 4 "trunc_ckpt.h5" -- \
    "$T" predict --checkpoint trunc_ckpt.h5 --input one.csv --output p.csv
expect "random bytes as checkpoint (eval)" 4 "junk.h5" -- "$T" eval "$MOONS" --checkpoint junk.h5
expect "missing checkpoint (--resume)" 4 "no-run" -- "${train[@]}" --resume "$W/no-run"
touch a_file
expect "output directory is a file" 4 "[output] dir = a_file: exists and is not a directory" -- \
    "${train[@]}" --set output.dir=a_file
expect "output directory under a file" 4 "a_file/run" -- "${train[@]}" --set output.dir=a_file/run
check "  earlier run's files unchanged by all of the above" [ "$(sums "$W/prev")" == "$before" ]

# ---- the file system says no ------------------------------------------------------------------
if [[ $is_root -eq 1 ]] && mkdir -p small && mount -t tmpfs -o size=1200k tmpfs small 2>/dev/null; then
    mounted+=("$W/small")
    # a 2-256-256-1 Adam checkpoint is 834 KB: the first fits, the second does not
    expect "disk full while checkpointing" 4 "No space left on device; the earlier checkpoints are kept" -- \
        "${train[@]}" --set model.layers=2,256,256,1 --set output.dir="$W/small/run"
    check "  no temporary file left behind" bash -c "! ls '$W'/small/run/*.tmp.* 2>/dev/null"
    check "  the earlier checkpoint is complete and loads" \
        "$T" eval "$MOONS" --set model.layers=2,256,256,1 --checkpoint "$W/small/run/ckpt-000000025.h5"
    umount small && mounted=()
    mount -t tmpfs -o size=16k tmpfs small && mounted+=("$W/small")
    expect "disk full under the metric log" 4 "metrics.h5: cannot" -- \
        "${train[@]}" --set train.epochs=300 --set train.eval_every=1 --set output.checkpoint_every=0 \
        --set output.dir="$W/small/run"
    umount small && mounted=()
else
    echo "skip disk full (needs root and tmpfs mounts)"
fi
if [[ $is_root -eq 1 ]] && command -v runuser >/dev/null; then
    # copies that `nobody` can reach wherever the checkout is (a clone under /root is not)
    install -m 755 "$T" "$W/trainer_copy" && install -m 644 "$MOONS" "$W/moons.ini"
    as_nobody=(runuser -u nobody -- env)
    if [[ ${LSAN_OPTIONS:-} =~ (^|:)suppressions=([^:]*) ]]; then # a sanitizer build: its suppressions too
        supp=${BASH_REMATCH[2]}
        install -m 644 "$supp" "$W/lsan.supp"
        as_nobody+=("LSAN_OPTIONS=${LSAN_OPTIONS/$supp/$W/lsan.supp}")
    fi
    cp good.h5 secret.h5 && chmod 600 secret.h5
    expect "permission denied on the data" 3 "secret.h5" -- \
        "${as_nobody[@]}" "$W/trainer_copy" train "$W/moons.ini" --set data.generator= --set data.path="$W/secret.h5" \
        --set output.dir=/tmp/trainer-bad-nobody-$$
    mkdir -p locked && chmod 755 locked
    expect "permission denied on the output" 4 "locked/run" -- \
        "${as_nobody[@]}" "$W/trainer_copy" train "$W/moons.ini" --set train.epochs=1 --set output.dir="$W/locked/run"
    rm -rf /tmp/trainer-bad-nobody-$$
else
    echo "skip permission denied (needs root to run as nobody)"
fi

# ---- several ranks: one bad rank stops all, with one message ----------------------------------
expect "config error under mpirun -np 2" 2 "epochs = ten" -- mpirun -np 2 "$T" train bad_type.ini
n_msgs=$(grep -c "epochs = ten" "$W/err.txt")
check "  reported once, not once per rank ($n_msgs)" [ "$n_msgs" -eq 1 ]
expect "data error under mpirun -np 2" 3 "nan.csv:3" -- mpirun -np 2 "$T" train "$MOONS" \
    --set data.generator= --set data.path=nan.csv --set output.dir="$W/r"

if [[ $failures -ne 0 ]]; then
    echo "$failures failed; files kept in $W"
    exit 1
fi
echo "all bad-input checks passed"
