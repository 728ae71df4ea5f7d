#!/bin/bash
# test_data_loss.sh: the ways a user's files could be lost or a run could hang, one case each
# (issue 12): outputs that name an input, a run directory that belongs to another run, the
# metric history on resume, two trainers in one directory, signals at every phase, inputs
# longer than any buffer, special files, and non-finite checkpoints. Every command runs
# under a time limit; a file that must survive is compared by checksum.
#
#   tests/test_data_loss.sh TRAINER_BINARY SOURCE_DIR        (CTest label `reliability`)
set -uo pipefail

T=$(realpath "$1")
SRC=$(realpath "$2")
MOONS=$SRC/datasets/configs/moons.ini
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
W=$(mktemp -d /tmp/trainer-loss.XXXXXX)
cd "$W" || exit 1
failures=0
background=()
cleanup() {
    for p in "${background[@]}"; do kill -9 "$p" 2>/dev/null; done
    [[ $failures -eq 0 ]] && rm -rf "$W"
}
trap cleanup EXIT
source "$SRC/tests/expect.sh"
train=("$T" train "$MOONS" --set train.epochs=4 --set train.eval_every=2 --set output.checkpoint_every=2)
same() { cmp -s "$1" "$2"; }

# ---- a run whose files every case below must leave alone --------------------------------------
"${train[@]}" --set output.dir="$W/run" >/dev/null 2>&1 || { echo "FAIL: the baseline run failed"; exit 1; }
before=$(sums "$W/run")
ckpt=$(ls "$W/run"/ckpt-*.h5 | tail -1)
"$T" data gen moons --out points.csv --n 50 >/dev/null
cp points.csv points.orig

# ---- outputs that name an input or a user's file ----------------------------------------------
expect "predict --output = its checkpoint" 2 "which this command reads" -- \
    "$T" predict --checkpoint "$ckpt" --input points.csv --output "$ckpt"
ln -sf points.csv alias.csv
expect "predict --output = its input (a link)" 2 "is points.csv, which this command reads" -- \
    "$T" predict --checkpoint "$ckpt" --input points.csv --output alias.csv
check "  the input is intact" same points.csv points.orig
expect "predict --output over another checkpoint" 2 "not one trainer predict wrote" -- \
    "$T" predict --checkpoint "$ckpt" --input points.csv --output "$W/run/best.h5"
printf 'name,value\nalpha,1\n' >notes.csv
cp notes.csv notes.orig
expect "predict --output over a user's CSV" 2 "not one trainer predict wrote" -- \
    "$T" predict --checkpoint "$ckpt" --input points.csv --output notes.csv
check "  the user's CSV is intact" same notes.csv notes.orig
expect "predict --output /dev/null" 2 "is a character device" -- \
    "$T" predict --checkpoint "$ckpt" --input points.csv --output /dev/null
check "  /dev/null is still a device" test -c /dev/null
expect "predict over an earlier prediction" 0 "" -- "$T" predict --checkpoint "$ckpt" --input points.csv --output p.csv
expect "  and again (replaces its own output)" 0 "" -- "$T" predict --checkpoint "$ckpt" --input points.csv --output p.csv
expect "data gen --out over a user's CSV" 2 "not one trainer data gen wrote" -- "$T" data gen moons --out notes.csv
check "  the user's CSV is intact" same notes.csv notes.orig
check "the earlier run is intact" [ "$before" == "$(sums "$W/run")" ]

# ---- a run directory that belongs to another run ----------------------------------------------
expect "new run into an earlier run's directory" 2 "holds an earlier run" -- "${train[@]}" --set output.dir="$W/run"
check "  the earlier run is intact" [ "$before" == "$(sums "$W/run")" ]
cp -r run over
expect "--overwrite replaces it" 0 "" -- "${train[@]}" --set train.epochs=2 --set output.keep_last=1 \
    --set output.dir="$W/over" --overwrite
check "  only the new run's checkpoint is left (keep_last 1)" [ "$(ls over/ckpt-*.h5 | xargs -n1 basename)" == \
    "ckpt-000000050.h5" ]
check "  the new log has the new run's rows only" [ "$(wc -l <over/metrics.csv)" -eq 2 ]
cp -r run auto && rm auto/ckpt-*.h5 auto/best.h5
expect "resume = auto with no checkpoint sets the log aside" 0 "previous-1" -- "${train[@]}" \
    --set output.dir="$W/auto" --set output.resume=auto
check "  the earlier log is kept in previous-1/" cmp run/metrics.csv auto/previous-1/metrics.csv
mkdir -p own && printf '# my notes\n[train]\nepochs = 4\n' >own/config.ini && cp own/config.ini own.orig
expect "a user's own config.ini in the run directory" 0 "" -- "${train[@]}" --set output.dir="$W/own"
check "  is kept" same own/config.ini own.orig
check "  the effective configuration is effective-config.ini" grep -q "^\[train\]" own/effective-config.ini

# ---- resume: a changed task is refused, the metric history is never dropped ------------------
cp -r run res
expect "resume with another loss" 2 "[train] loss = bce in the checkpoint, mse in the configuration" -- \
    "${train[@]}" --set output.dir="$W/res" --resume "$W/res" --set train.loss=mse --set model.output_activation=identity
cp -r run twin && rm twin/metrics.h5
expect "resume with metrics.h5 missing" 0 "rebuilt from" -- "${train[@]}" --set train.epochs=6 \
    --set output.dir="$W/twin" --resume "$W/twin"
check "  metrics.h5 has every row of the CSV" /usr/bin/python3 -c "
import h5py, sys
n = len(open('twin/metrics.csv').read().splitlines()) - 1
sys.exit(0 if n == 3 and h5py.File('twin/metrics.h5', 'r')['metrics/epoch'].shape[0] == n else 1)"
cp -r run twin2 && head -c 60 run/metrics.csv >twin2/metrics.csv
expect "resume with metrics.csv damaged" 0 "metrics.earlier-1.csv" -- "${train[@]}" --set train.epochs=6 \
    --set output.dir="$W/twin2" --resume "$W/twin2"
check "  metrics.csv is rebuilt with every row" [ "$(wc -l <twin2/metrics.csv)" -eq 4 ]
cp -r run layout
expect "resume with eval_train changed" 0 "metrics.earlier-1.h5 and" -- "${train[@]}" --set train.epochs=6 \
    --set train.eval_train=false --set output.dir="$W/layout" --resume "$W/layout"
check "  the earlier log is kept whole" cmp run/metrics.csv layout/metrics.earlier-1.csv

# ---- one owner per run directory ---------------------------------------------------------------
cp -r run busy
"${train[@]}" --set train.epochs=100000 --set output.dir="$W/busy" --resume "$W/busy" >/dev/null 2>&1 &
owner=$!
background+=($owner)
for _ in $(seq 100); do grep -q "pid $owner " busy/.trainer-lock 2>/dev/null && break; sleep 0.1; done
expect "a second trainer in a busy directory" 4 "in use by another trainer (pid $owner on host" -- "${train[@]}" --set train.epochs=8 \
    --set output.dir="$W/busy" --resume "$W/busy"
expect "  also under mpirun -np 2" 4 "in use by another trainer (pid $owner on host" -- mpirun -np 2 "$T" train "$MOONS" \
    --set output.dir="$W/busy" --resume "$W/busy"
kill -TERM $owner
wait $owner
check "  the first one still stops with a checkpoint (75)" [ $? -eq 75 ]

# ---- signals at every phase --------------------------------------------------------------------
"$T" data gen blobs --out big.h5 --n 2000000 --classes 3 >/dev/null
printf '[model]\nlayers = 2, 8, 3\n[data]\npath = %s/big.h5\n[train]\nloss = cross_entropy\nepochs = 1\n' "$W" >big.ini
# whether process $1 has a handler for signal $2 (its SigCgt mask): a signal sent before the
# handlers exist would test the kernel's default action, not the trainer (slow starts: ASan)
catches() {
    local mask
    mask=$(awk '/^SigCgt/ {print $2}' "/proc/$1/status" 2>/dev/null) || return 1
    [[ -n $mask ]] && (((0x$mask >> ($(kill -l "$2") - 1)) & 1))
}
for sig in TERM USR1 HUP INT; do
    "$T" train big.ini --set output.dir="$W/start-$sig" >/dev/null 2>"$W/err-$sig.txt" &
    p=$!
    for _ in $(seq 400); do catches $p "$sig" && break; sleep 0.025; done
    kill -"$sig" $p
    wait $p
    rc=$?
    check "SIG$sig during start-up: status 75 ($rc), nothing written" [ $rc -eq 75 -a ! -e "start-$sig/metrics.csv" ]
done
timeout 60 "${train[@]}" --set train.epochs=100000 --set output.dir="$W/pipe" 2>/dev/null | head -1 >/dev/null
check "SIGPIPE (trainer train | head): status 75 (${PIPESTATUS[0]}) with a checkpoint" \
    [ "${PIPESTATUS[0]}" -eq 75 -a -n "$(ls pipe/ckpt-*.h5)" ]
for sig in USR1 TERM; do
    mpirun -np 2 "$T" train "$MOONS" --set train.epochs=100000 --set output.dir="$W/mpi-$sig" >/dev/null 2>&1 &
    p=$!
    for _ in $(seq 200); do [[ -s mpi-$sig/metrics.csv ]] && break; sleep 0.1; done
    kill -"$sig" $p
    wait $p
    rc=$?
    want=$([[ $sig == USR1 ]] && echo 75 || echo 1)
    check "SIG$sig to mpirun: mpirun's status $rc (want $want), a checkpoint written" \
        [ $rc -eq "$want" -a -n "$(ls mpi-$sig/ckpt-*.h5)" ]
done

# ---- inputs longer than any buffer ------------------------------------------------------------
long=$(printf 'x%.0s' $(seq 1100))
expect "a config path of 1100 characters" 2 "path too long" -- "$T" train "$long.ini"
expect "a --set value of 1100 characters" 2 "too long" -- "${train[@]}" --set "train.lr=0.1$long"
expect "a data gen option of 1100 characters" 2 "too long" -- "$T" data gen moons --out g.h5 --noise "0.$long"
expect "a run directory of 1000 characters" 2 "path too long" -- "${train[@]}" --set "output.dir=$W/${long:0:950}"
expect "a key name of 200 characters" 2 "unknown key" -- "${train[@]}" --set "train.${long:0:200}=1"

# ---- special files where a regular file is expected --------------------------------------------
mkfifo fifo.ini fifo.csv fifo.h5
expect "a FIFO as the config file" 2 "is a FIFO" -- "$T" train fifo.ini
expect "a FIFO as the CSV data" 3 "is a FIFO" -- "${train[@]}" --set data.generator= --set data.path=fifo.csv \
    --set output.dir="$W/f1"
expect "a FIFO as the HDF5 data" 3 "is a FIFO" -- "${train[@]}" --set data.generator= --set data.path=fifo.h5 \
    --set output.dir="$W/f2"
expect "a FIFO as the checkpoint" 4 "is a FIFO" -- "$T" eval "$MOONS" --checkpoint fifo.h5
expect "a FIFO as predict's input" 3 "is a FIFO" -- "$T" predict --checkpoint "$ckpt" --input fifo.csv --output q.csv
expect "a device as the data" 3 "is a character device" -- "${train[@]}" --set data.generator= \
    --set data.path=/dev/zero --set output.dir="$W/f3"
expect "a directory as the checkpoint" 4 "is a directory" -- "$T" eval "$MOONS" --checkpoint "$W/run"
expect "a directory as --init-from" 4 "is a directory" -- "${train[@]}" --init-from "$W" --set output.dir="$W/f4"

# ---- a data file that crashes libhdf5 (found by fuzz_h5data): a data error naming it --------
expect "an HDF5 file that crashes libhdf5" 3 "libhdf5 crashed while reading this file" -- "${train[@]}" \
    --set data.generator= --set data.path="$SRC/tests/fuzz/open/h5data-libhdf5-segv-in-group-lookup.h5" \
    --set output.dir="$W/f5"

# ---- non-finite values inside a checkpoint ----------------------------------------------------
for tensor in model/0/weight optimizer/exp_avg/0/bias scaler/center; do
    nan=nan-${tensor//\//_}.h5
    cp "$ckpt" "$nan"
    /usr/bin/python3 - "$nan" "$tensor" <<'PY'
import sys
import h5py
import numpy as np
sys.path.insert(0, sys.argv[0].rsplit("/", 1)[0])
with h5py.File(sys.argv[1], "r+") as f:
    d = f[sys.argv[2]]
    a = d[...]
    a.flat[0] = np.nan
    d[...] = a
PY
    /usr/bin/python3 -c "import sys; sys.path.insert(0, '$SRC/scripts'); import trainer_h5; trainer_h5.stamp_checkpoint('$nan')"
    expect "NaN in $tensor: eval" 4 "/$tensor holds a non-finite value" -- "$T" eval "$MOONS" --checkpoint "$nan"
    expect "NaN in $tensor: predict" 4 "/$tensor holds a non-finite value" -- \
        "$T" predict --checkpoint "$nan" --input points.csv --output q.csv
    expect "NaN in $tensor: --init-from" 4 "/$tensor holds a non-finite value" -- \
        "${train[@]}" --init-from "$nan" --set output.dir="$W/n-${tensor//\//_}"
    mkdir -p "res-${tensor//\//_}" && cp "$nan" "res-${tensor//\//_}/ckpt-000000100.h5"
    expect "NaN in $tensor: --resume" 4 "/$tensor holds a non-finite value" -- \
        "${train[@]}" --set output.dir="$W/res-${tensor//\//_}" --resume "$W/res-${tensor//\//_}"
done

check "the earlier run is intact after everything" [ "$before" == "$(sums "$W/run")" ]
if [[ $failures -ne 0 ]]; then
    echo "$failures failed; files kept in $W"
    exit 1
fi
echo "all data-loss checks passed"
