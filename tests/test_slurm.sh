#!/bin/bash
# test_slurm.sh: the batch scripts in slurm/ on a real (one-node, localhost) SLURM cluster.
#
#   tests/test_slurm.sh TRAINER_BINARY SOURCE_DIR        (CTest label `slurm`)
#
# Brings the cluster up with tests/slurm_cluster.sh and checks:
#   1. sbatch --wait slurm/train.sbatch on 2 tasks x 2 CPUs: exit 0, 2 BLAS threads per rank, the
#      metric log, checkpoints, accuracy
#   2. preemption: USR1 to the batch shell (what --signal=B:USR1@T delivers before the time
#      limit) -> the ranks checkpoint -> the job requeues itself -> resumes -> final parameters
#      and optimizer state bit for bit those of an uninterrupted run
#   3. slurm/sweep.sbatch as a 4-task array and scripts/sweep_report.py over it
#   4. slurm/multinode.sbatch (1 node x 2 tasks here), and a request for more nodes than the
#      cluster has failing at submission (EnforcePartLimits=ALL), not pending forever
#   5. a missing configuration: the job fails with status 2 and says which file
#   6. the watchdog: rank 1 of 3 stopped with SIGSTOP -> the step ends with status 8 naming
#      it -> train.sbatch requeues -> the job resumes and completes
#   7. slurm/search.sbatch: a search of 4 trials on 2 ranks, USR1 after the first trial ->
#      every group checkpoints -> requeue -> the search continues (--resume) -> the table of an
#      uninterrupted search
# then tears the cluster down (only the daemons it started). Exit 77 (skipped) when not root
# or SLURM/munge are not installed; CI installs them (scripts/install-deps.sh --test).
set -euo pipefail

TRAINER=$(realpath "$1")
SRC=$(realpath "$2")
export TRAINER TRAINER_HOME=$SRC
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

if [[ $(id -u) -ne 0 ]] || ! command -v sbatch >/dev/null || [[ ! -x /usr/sbin/munged ]]; then
    echo "SKIP: needs root and Debian's slurm-wlm and munge packages"
    exit 77
fi

W=$(mktemp -d /tmp/trainer-slurm.XXXXXX)
# ports of our own, so a cluster already running on this machine is left alone
export SLURM_TEST_CTLD_PORT=$((20000 + ($$ % 2000) * 2)) SLURM_TEST_SLURMD_PORT=$((20001 + ($$ % 2000) * 2))
cleanup() {
    local rc=$?
    "$SRC/tests/slurm_cluster.sh" down "$W/cluster" || true
    if [[ $rc -eq 0 ]]; then rm -rf "$W"; else echo "test_slurm: files kept in $W" >&2; fi
}
trap cleanup EXIT

# shellcheck source=tests/slurm_jobs.sh
. "$SRC/tests/slurm_jobs.sh" # fail, pass, wait_gone, job_field, wait_checkpoint, rank_pid

t0=$(date +%s)
eval "$("$SRC/tests/slurm_cluster.sh" up "$W/cluster")"
pass "cluster up in $(($(date +%s) - t0)) s ($(sinfo -h -o '%P %D node %c CPUs'))"
cd "$W"

MOONS=$SRC/datasets/configs/moons.ini

# last_value RUN_DIR COLUMN: the column's value in the last row of metrics.csv
last_value() {
    awk -F, -v col="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) c = i } END { print $c }' "$1/metrics.csv"
}

# ---- 1. a plain run with sbatch --wait ----------------------------------------------------
jid=$(timeout 300 sbatch --parsable --wait --ntasks=2 --cpus-per-task=2 "$SRC/slurm/train.sbatch" "$MOONS" \
    --set train.epochs=20) || fail "sbatch --wait train.sbatch did not succeed"
run=$W/runs/trainer-$jid
[[ -f $run/metrics.csv && -f $run/metrics.h5 && -f $run/best.h5 && -f $run/ckpt-000000500.h5 ]] ||
    fail "run directory $run lacks metrics or checkpoints: $(ls "$run" 2>&1)"
[[ $(last_value "$run" epoch) == 20 ]] || fail "metrics.csv does not end at epoch 20"
acc=$(last_value "$run" test_accuracy)
awk -v a="$acc" 'BEGIN { exit !(a >= 0.95) }' || fail "test accuracy $acc < 0.95"
h5ls "$run/ckpt-000000500.h5/model/0" | grep -q weight || fail "checkpoint has no /model/0/weight"
grep -q "2 ranks x 2 threads" "trainer-$jid.out" || fail "the job did not run 2 ranks with 2 threads each"
pass "train.sbatch: 2 ranks x 2 threads (from --cpus-per-task), 20 epochs, test accuracy $acc, checkpoints in $run"

# ---- 2. preemption: USR1 -> checkpoint -> requeue -> resume -> same final parameters ----
LONG=(--set data.n=40000 --set model.layers=2,128,128,1 --set train.epochs=24 --set train.eval_every=4)
jid=$(sbatch --parsable --ntasks=2 "$SRC/slurm/train.sbatch" "$MOONS" "${LONG[@]}")
run=$W/runs/trainer-$jid
wait_checkpoint "$jid" "$run"
scancel --batch --signal=USR1 "$jid"
t_signal=$(date +%s)
# the uninterrupted reference, on the same 2 ranks, while the requeued job waits to restart
srun --mpi=pmix --ntasks=2 "$TRAINER" train "$MOONS" "${LONG[@]}" --set output.dir="$W/reference" \
    >"$W/reference.log" 2>&1 || fail "reference run failed: $(tail -3 "$W/reference.log")"
wait_gone "$jid" 240
[[ $(job_field "$jid" JobState) == COMPLETED ]] || fail "job $jid ended $(job_field "$jid" JobState)"
[[ $(job_field "$jid" Restarts) == 1 ]] || fail "job $jid restarted $(job_field "$jid" Restarts) times, not once"
grep -q "stopped by a signal" "trainer-$jid.out" || fail "the trainer did not report stopping on the signal"
grep -q "requeueing job $jid" "trainer-$jid.out" || fail "train.sbatch did not requeue"
grep -q "resumed from $run/ckpt-" "trainer-$jid.out" || fail "the restart did not resume from a checkpoint"
final=$run/ckpt-000024000.h5
[[ -f $final ]] || fail "no final checkpoint $final"
h5diff -q "$W/reference/ckpt-000024000.h5" "$final" /model /model ||
    fail "final parameters differ from the uninterrupted run"
h5diff -q "$W/reference/ckpt-000024000.h5" "$final" /optimizer /optimizer ||
    fail "final optimizer state differs from the uninterrupted run"
pass "preemption: checkpoint, requeue, resume ($(($(date +%s) - t_signal)) s from signal to finish);" \
    "final parameters and Adam state identical to the uninterrupted run"

# ---- 3. a 4-task array sweep and its report -------------------------------------------------
GRID=$SRC/slurm/grids/smoke.grid
n=$(bash "$SRC/slurm/sweep.sbatch" --count "$GRID")
[[ $n == 4 ]] || fail "smoke grid has $n points, not 4"
sweep=$(sbatch --parsable --array=0-$((n - 1)) "$SRC/slurm/sweep.sbatch" "$MOONS" "$GRID" --set train.epochs=15)
# ---- 4. multinode.sbatch on 1 node x 2 tasks, submitted alongside ----------------------------
mn=$(sbatch --parsable --nodes=1 --ntasks-per-node=2 --cpus-per-task=1 "$SRC/slurm/multinode.sbatch" "$MOONS" \
    --set train.epochs=10)
wait_gone "$sweep" 300
wait_gone "$mn" 300
for i in 0 1 2 3; do
    d=$W/runs/sweep-$sweep/00$i
    [[ -f $d/metrics.csv && -f $d/sweep.txt ]] || fail "sweep task $i: no metrics.csv or sweep.txt in $d"
    [[ $(last_value "$d" epoch) == 15 ]] || fail "sweep task $i did not finish 15 epochs"
done
grep -qx "model.activations=tanh" "$W/runs/sweep-$sweep/002/sweep.txt" || fail "task 2 is not the grid's third point"
grep -q "lr 0.005 " "sweep-${sweep}_3.out" || fail "task 3 did not train with lr 0.005"
"$SRC/scripts/sweep_report.py" "$W/runs/sweep-$sweep" --metric test_loss >"$W/report.md" ||
    fail "sweep_report.py failed"
report=$W/runs/sweep-$sweep/sweep_report.csv
[[ $(wc -l <"$report") == 5 ]] || fail "report $report does not have 4 rows"
sort -c -t, -g -k6,6 <(tail -n +2 "$report" | cut -d, -f1-6) 2>/dev/null ||
    fail "report is not sorted by test_loss: $(cat "$report")"
grep -q "| model.activations | train.lr |" "$W/report.md" || fail "Markdown report lacks the grid's columns"
pass "sweep: 4 array tasks, report sorted by test_loss"
[[ $(job_field "$mn" JobState) == COMPLETED ]] || fail "multinode job ended $(job_field "$mn" JobState)"
grep -q "2 ranks" "trainer-mn-$mn.out" || fail "multinode job did not run 2 ranks"
pass "multinode.sbatch: 1 node x 2 tasks"
if out=$(sbatch --parsable "$SRC/slurm/multinode.sbatch" "$MOONS" 2>&1); then
    scancel "$out"
    fail "a 2-node job was accepted by a 1-node cluster"
fi
pass "a 2-node request is refused at submission: ${out##*error: }"

# ---- 6. the watchdog: a stopped rank ends the step (status 8), the job requeues and finishes ----
jid=$(sbatch --parsable --ntasks=3 "$SRC/slurm/train.sbatch" "$MOONS" "${LONG[@]}" --set train.epochs=4 \
    --set train.watchdog=4)
run=$W/runs/trainer-$jid
wait_checkpoint "$jid" "$run"
victim=$(rank_pid "$jid" SLURM_PROCID=1)
[[ -n $victim ]] || fail "rank 1 of job $jid not found"
kill -STOP "$victim"
t_stop=$(date +%s)
wait_gone "$jid" 240
kill -9 "$victim" 2>/dev/null || true
[[ $(job_field "$jid" JobState) == COMPLETED ]] || fail "watchdog job $jid ended $(job_field "$jid" JobState)"
[[ $(job_field "$jid" Restarts) == 1 ]] || fail "watchdog job $jid restarted $(job_field "$jid" Restarts) times"
grep -q "watchdog: rank 1 on .* did not answer" "trainer-$jid.out" || fail "the watchdog did not name rank 1"
grep -q "the watchdog ended the step" "trainer-$jid.out" || fail "train.sbatch did not requeue on the watchdog"
grep -q "resumed from $run/ckpt-" "trainer-$jid.out" || fail "the restart did not resume from a checkpoint"
pass "watchdog: rank 1 stopped at $(date -d @"$t_stop" +%T) -> named, status 8, requeued, resumed and" \
    "finished ($(($(date +%s) - t_stop)) s from the stop to the end of the job); the job's log:"
grep -E "^== |watchdog:|resumed from" "trainer-$jid.out" | sed 's/^/    /'

# ---- 7. search.sbatch: a whole search as one job, preempted, requeued and continued ----------
SPACE=$W/lr.space
printf 'train.lr = 0.01 0.003 0.001 0.0003\n' >"$SPACE"
DIGITS=$SRC/datasets/configs/digits.ini
SEARCH=(--set train.epochs=300 --set train.deterministic=true)
jid=$(sbatch --parsable --ntasks=2 "$SRC/slurm/search.sbatch" "$DIGITS" "$SPACE" "${SEARCH[@]}")
run=$W/runs/search-$jid
for _ in $(seq 1200); do # until the first trial is done
    grep -q "^[0-9]* done " "$run/search.state" 2>/dev/null && break
    sleep 0.1
done
scancel --batch --signal=USR1 "$jid"
srun --mpi=pmix --ntasks=2 "$TRAINER" search "$DIGITS" "$SPACE" "${SEARCH[@]}" --set output.dir="$W/search-ref" \
    >"$W/search-ref.log" 2>&1 || fail "reference search failed: $(tail -3 "$W/search-ref.log")"
wait_gone "$jid" 300
[[ $(job_field "$jid" JobState) == COMPLETED ]] || fail "search job $jid ended $(job_field "$jid" JobState)"
[[ $(job_field "$jid" Restarts) == 1 ]] || fail "search job $jid restarted $(job_field "$jid" Restarts) times"
grep -q "requeueing job $jid" "search-$jid.out" || fail "search.sbatch did not requeue"
grep -q "(resumed)" "search-$jid.out" || fail "the restart did not continue the search"
cmp -s <(cut -d, -f1-4,6- "$run/trials.csv") <(cut -d, -f1-4,6- "$W/search-ref/trials.csv") ||
    fail "the requeued search's table differs from an uninterrupted one: $(cat "$run/trials.csv")"
pass "search.sbatch: 4 trials on 2 ranks, USR1 -> checkpoints -> requeue -> --resume; the table equals an" \
    "uninterrupted search's"

# ---- 5. a missing configuration ---------------------------------------------------------------
jid=$(sbatch --parsable "$SRC/slurm/train.sbatch" "$W/no-such.ini")
wait_gone "$jid" 60
[[ $(job_field "$jid" ExitCode) == 2:0 ]] || fail "missing config: exit code $(job_field "$jid" ExitCode), not 2"
grep -q "cannot read the configuration $W/no-such.ini" "trainer-$jid.out" || fail "missing config: no clear message"
pass "missing configuration: status 2 and the file named"
echo "all SLURM checks passed in $(($(date +%s) - t0)) s"
