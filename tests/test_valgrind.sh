#!/bin/bash
# test_valgrind.sh: memcheck on short runs of the trainer: training (with batch norm, dropout
# and a checkpoint), a resumed run, eval and predict. Each must end with zero errors: no
# invalid read or write, no use of uninitialised memory, no block definitely lost (the only
# suppressions are Open MPI's own state, tests/valgrind.supp says why).
#
#   tests/test_valgrind.sh TRAINER_BINARY SOURCE_DIR        (CTest label `valgrind`)
set -uo pipefail
T=$(realpath "$1")
SRC=$(realpath "$2")
command -v valgrind >/dev/null || { echo "SKIP: valgrind is not installed"; exit 77; }
W=$(mktemp -d /tmp/trainer-valgrind.XXXXXX)
failures=0
trap '[[ $failures -eq 0 ]] && rm -rf "$W"' EXIT
cd "$W" || exit 1
VG=(valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite
    --track-origins=yes --num-callers=30 --suppressions=/usr/share/openmpi/openmpi-valgrind.supp
    --suppressions="$SRC/tests/valgrind.supp")
M=$SRC/datasets/configs/moons.ini
SMALL=(--set data.n=200 --set train.threads=1 --set model.batchnorm=true --set model.dropout=0.2)

memcheck() { # memcheck NAME STATUS COMMAND...: the command under memcheck, expected to exit STATUS
    local name=$1 want=$2
    shift 2
    "${VG[@]}" --log-file="$W/$name.vg" "$@" >"$W/$name.out" 2>&1
    local rc=$?
    local summary
    summary=$(grep -h "ERROR SUMMARY" "$W/$name.vg" | tail -1 | sed 's/==[0-9]*== //')
    if [[ $rc -eq $want ]] && grep -q "ERROR SUMMARY: 0 errors" "$W/$name.vg"; then
        echo "ok   $name: $summary; $(grep -h 'definitely lost:' "$W/$name.vg" | tail -1 | sed 's/==[0-9]*== *//')"
    else
        echo "FAIL $name (status $rc): $summary"
        grep -h -A12 -E "Invalid|uninitialised|definitely lost in" "$W/$name.vg" | head -40
        failures=$((failures + 1))
    fi
}

memcheck train 0 "$T" train "$M" "${SMALL[@]}" --set train.epochs=2 --set output.dir=run
memcheck resume 0 "$T" train "$M" "${SMALL[@]}" --set train.epochs=3 --set output.dir=run --set output.resume=auto
memcheck eval 0 "$T" eval "$M" "${SMALL[@]}" --checkpoint run/best.h5
"$T" data gen moons --out points.csv --n 50 >/dev/null
memcheck predict 0 "$T" predict --checkpoint run/best.h5 --input points.csv --output predictions.csv
memcheck bad_config 2 "$T" train "$M" --set train.lr=fast
memcheck bad_checkpoint 4 "$T" eval "$M" --checkpoint points.csv
[[ $failures -eq 0 ]] || { echo "$failures failed; logs in $W"; exit 1; }
echo "all memcheck runs clean"
