#!/bin/bash
# test_rank_kill.sh: one rank killed with SIGKILL in the middle of a 2-rank run.
#
#   tests/test_rank_kill.sh TRAINER_BINARY SOURCE_DIR        (CTest label `reliability`)
#
# For each victim (rank 1, then rank 0, the one that writes): the job must end promptly
# (mpirun takes the other rank down) with a non-zero status, the newest checkpoint must load,
# no half-written file may pass for a checkpoint, and resuming must finish with bit for bit
# the parameters, optimizer state and final metrics of an uninterrupted run (deterministic
# mode, so this holds whatever the rank count; here both runs use 2 ranks).
set -uo pipefail

T=$(realpath "$1")
SRC=$(realpath "$2")
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
W=$(mktemp -d /tmp/trainer-kill.XXXXXX)
failures=0
trap '[[ $failures -eq 0 ]] && rm -rf "$W"' EXIT
fail() { echo "FAIL $*"; failures=$((failures + 1)); }

ARGS=(train "$SRC/datasets/configs/moons.ini" --set data.n=40000 --set model.layers=2,128,128,1
    --set train.epochs=8 --set train.eval_every=2 --set train.deterministic=true)
final=ckpt-000008000.h5

timeout 300 mpirun -np 2 "$T" "${ARGS[@]}" --set output.dir="$W/reference" >"$W/reference.log" 2>&1 ||
    { echo "FAIL the uninterrupted run: $(tail -3 "$W/reference.log")"; exit 1; }

rank_pid() { # rank_pid MPIRUN_PID RANK: the PID of that rank (a child of mpirun)
    local p
    for p in $(pgrep -P "$1"); do
        if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2"; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

for victim in 1 0; do
    run=$W/killed-$victim
    mpirun -np 2 "$T" "${ARGS[@]}" --set output.dir="$run" >"$run.log" 2>&1 &
    mpirun_pid=$!
    # after the second checkpoint (epoch 2), in the middle of epoch 3
    end=$((SECONDS + 120))
    while [[ $(ls "$run"/ckpt-*.h5 2>/dev/null | wc -l) -lt 2 ]]; do
        ((SECONDS < end)) || { fail "rank $victim: no second checkpoint after 120 s"; kill -9 "$mpirun_pid"; continue 2; }
        sleep 0.05
    done
    sleep 0.3
    pid=$(rank_pid "$mpirun_pid" "$victim") || { fail "rank $victim: its process was not found"; continue; }
    t0=$(date +%s%N)
    kill -9 "$pid"
    # mpirun must notice and end the job; 60 s is the limit, a hang fails the test
    for _ in $(seq 600); do
        kill -0 "$mpirun_pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$mpirun_pid" 2>/dev/null; then
        fail "rank $victim killed: the job still runs after 60 s"
        kill -9 "$mpirun_pid"
        continue
    fi
    wait "$mpirun_pid"
    status=$?
    ms=$((($(date +%s%N) - t0) / 1000000))
    secs=$((ms / 1000)).$(printf %03d $((ms % 1000)))
    [[ $status -ne 0 ]] || fail "rank $victim killed: mpirun exited with status 0"
    [[ -f $run/$final ]] && fail "rank $victim killed: the run finished before the kill (make it longer)"
    newest=$(ls "$run"/ckpt-*.h5 | sort | tail -1)
    "$T" eval "$SRC/datasets/configs/moons.ini" --set data.n=40000 --set model.layers=2,128,128,1 \
        --checkpoint "$newest" >/dev/null 2>&1 || fail "rank $victim killed: newest checkpoint $newest does not load"
    echo "ok   rank $victim killed: mpirun ended in $secs s with status $status; newest checkpoint $(basename "$newest") loads"

    timeout 300 mpirun -np 2 "$T" "${ARGS[@]}" --set output.dir="$run" --resume "$run" >"$run.resume.log" 2>&1 ||
        { fail "rank $victim killed: the resumed run failed: $(tail -3 "$run.resume.log")"; continue; }
    grep -q "resumed from $newest" "$run.resume.log" || fail "rank $victim killed: did not resume from $newest"
    h5diff -q "$W/reference/$final" "$run/$final" /model /model || fail "rank $victim: parameters differ"
    h5diff -q "$W/reference/$final" "$run/$final" /optimizer /optimizer || fail "rank $victim: optimizer state differs"
    # every logged row (every column but timings and throughput) equals the uninterrupted run's
    cols='epoch,step,lr,train_loss,train_accuracy,train_eval_loss,train_eval_accuracy,test_loss,test_accuracy,test_macro_f1'
    pick() { /usr/bin/python3 -c "import csv,sys; r=list(csv.DictReader(open(sys.argv[1]))); \
print(len(r), [[x.get(c) for c in sys.argv[2].split(',')] for x in r])" "$1" "$cols"; }
    a=$(pick "$W/reference/metrics.csv") b=$(pick "$run/metrics.csv")
    [[ $a == "$b" ]] || fail "rank $victim: metric logs differ: $a vs $b"
    echo "ok   rank $victim killed: resumed; parameters, Adam state and all ${b%% *} metric rows equal the" \
        "uninterrupted run's (final test accuracy $(tail -1 "$run/metrics.csv" | cut -d, -f19))"
done

if [[ $failures -ne 0 ]]; then
    echo "$failures failed; files kept in $W"
    exit 1
fi
echo "all rank-kill checks passed"
