#!/bin/bash
# The watchdog (watchdog.h): a rank that stops answering ends the job, named, with status 8,
# and the job resumes from its last checkpoint; a rank stopped for less than the deadline
# changes nothing.
#
#   tests/test_watchdog.sh TRAINER_BINARY
#
# Cases, at np=3 on one node (--oversubscribe), with [train] watchdog = 4 s:
#   1. kill -STOP of rank 1 mid-run (and of rank 0, whose watchdog cannot report): every
#      other rank exits 8 within deadline + grace + margin, the message names the stopped
#      rank; the newest checkpoint loads: the run resumes at np=2 and finishes.
#   2. kill -STOP of rank 2 for 2 s, then kill -CONT: the run finishes normally (status 0),
#      its final parameters equal an undisturbed run's (deterministic mode).
#   3. a stalled rank in the node-shared exchange (comm = shared) is caught alike.
set -uo pipefail
TRAINER=$(readlink -f "$1")
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
W=$(mktemp -d /tmp/trainer-watchdog.XXXXXX)
trap 'pkill -9 -f "$W/" 2>/dev/null; rm -rf "$W"' EXIT
failures=0
source "$(dirname "$0")/expect.sh" # check NAME CONDITION...
cat >"$W/wd.ini" <<EOF
[model]
layers = 2, 16, 2
[data]
generator = moons
n = 3000
test_fraction = 0.2
[train]
loss = cross_entropy
batch_size = 64
deterministic = true
watchdog = 4
[output]
checkpoint_every = 1
EOF

# pid_of_rank DIR R: the pid of rank R of the run writing to DIR
pid_of_rank() {
    local p
    for p in $(pgrep -f "output.dir=$1( |$)"); do
        [[ $(cat /proc/$p/comm 2>/dev/null) == trainer ]] || continue
        if tr '\0' '\n' </proc/$p/environ 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2"; then
            echo "$p"
            return
        fi
    done
}
# wait_epochs DIR N: until the run has logged N epochs (at most 60 s)
wait_epochs() {
    for _ in $(seq 600); do
        [[ -f $1/metrics.csv ]] && (($(wc -l <"$1/metrics.csv") > $2)) && return 0
        sleep 0.1
    done
    return 1
}
elapsed_since() { awk -v a="$(date +%s.%N)" -v b="$1" 'BEGIN {printf "%.1f", a - b}'; }

# 1. a stopped rank is named; the job ends; the last checkpoint resumes at another rank count
for victim in 1 0; do
    run="$W/stall$victim"
    mpirun -np 3 "$TRAINER" train "$W/wd.ini" --set train.epochs=100000 --set output.dir="$run" \
        >"$run.log" 2>&1 &
    job=$!
    wait_epochs "$run" 3 || echo "(the run did not start: $(tail -3 "$run.log"))"
    pid=$(pid_of_rank "$run" $victim)
    t0=$(date +%s.%N)
    kill -STOP "$pid"
    status=0
    timeout 60 tail --pid=$job -f /dev/null # the job ends by itself, or fails the case
    wait $job || status=$?
    took=$(elapsed_since "$t0")
    kill -9 "$pid" 2>/dev/null
    echo "     stopped rank $victim: status $status after $took s: $(grep -m1 'watchdog:' "$run.log")"
    check "a stopped rank $victim ends the job with status 8" test "$status" -eq 8
    check "within 4 s deadline + 3 s grace + margin ($took s)" awk -v t="$took" 'BEGIN {exit !(t < 15)}'
    check "the message names rank $victim" grep -q "watchdog: rank $victim on .* did not answer" "$run.log"
    check "printed once" test "$(grep -c 'watchdog:' "$run.log")" -eq 1
    epochs=$(/usr/bin/python3 -c "
import glob, h5py, sys
with h5py.File(sorted(glob.glob(sys.argv[1] + '/ckpt-*.h5'))[-1]) as f: print(int(f['state'].attrs['epoch']))" "$run")
    check "the newest checkpoint says how many epochs it holds ($epochs)" test "${epochs:-0}" -gt 0
    mpirun -np 2 "$TRAINER" train "$W/wd.ini" --resume "$run" --set train.epochs=$((${epochs:-0} + 2)) \
        --set output.dir="$run" >"$run.resume.log" 2>&1
    status=$?
    check "the last checkpoint (epoch $epochs) resumes at np=2 and finishes" test "$status" -eq 0
    check "the resumed run reached its $((${epochs:-0} + 2)) epochs" grep -q "trained $((${epochs:-0} + 2)) epochs" \
        "$run.resume.log"
    [[ $status -eq 0 ]] || tail -5 "$run.resume.log"
done

# 2. stopped for less than the deadline: nothing happens
mpirun -np 3 "$TRAINER" train "$W/wd.ini" --set train.epochs=40 --set output.dir="$W/calm" >"$W/calm.log" 2>&1
run="$W/pause"
mpirun -np 3 "$TRAINER" train "$W/wd.ini" --set train.epochs=40 --set output.dir="$run" >"$run.log" 2>&1 &
job=$!
wait_epochs "$run" 3
pid=$(pid_of_rank "$run" 2)
kill -STOP "$pid"
sleep 2
kill -CONT "$pid"
wait $job
status=$?
check "a rank stopped for 2 s (deadline 4 s) does not end the run" test "$status" -eq 0
same=$(/usr/bin/python3 -c "
import sys; sys.path.insert(0, sys.argv[3])
import checkpoint_hash as c
print(int(c.fingerprint(sys.argv[1]) == c.fingerprint(sys.argv[2])))" "$W/calm" "$run" "$(dirname "$0")")
check "and it ends with the undisturbed run's parameters" test "$same" = 1

# 3. the node-shared exchange (ranks spin on shared memory, not in MPI)
run="$W/shared"
mpirun -np 3 "$TRAINER" train "$W/wd.ini" --set train.epochs=100000 --set train.deterministic=false \
    --set train.comm=shared --set output.dir="$run" >"$run.log" 2>&1 &
job=$!
wait_epochs "$run" 3
pid=$(pid_of_rank "$run" 2)
kill -STOP "$pid"
timeout 60 tail --pid=$job -f /dev/null
wait $job
status=$?
kill -9 "$pid" 2>/dev/null
echo "     $(grep -m1 'watchdog:' "$run.log")"
check "comm = shared: a stopped rank ends the job with status 8" test "$status" -eq 8
check "comm = shared: the message names rank 2" grep -q "watchdog: rank 2 on .* did not answer" "$run.log"

echo "$failures failed"
exit $((failures > 0))
