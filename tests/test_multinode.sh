#!/bin/bash
# test_multinode.sh: the trainer across real (namespace) nodes under SLURM.
#
#   tests/test_multinode.sh TRAINER_BINARY SOURCE_DIR        (CTest label `multinode`)
#
# Brings up a 3-node cluster (tests/slurm_cluster.sh up DIR 3: each node a network, UTS and
# mount namespace with its own slurmd, 2 CPUs, TCP between nodes over a private bridge) and
# checks, each job through slurm/multinode.sbatch or slurm/train.sbatch with sbatch:
#   1. 2 nodes x 2 tasks, deterministic mode: final parameters and optimizer state bit for bit
#      those of 4 ranks on one node (mpirun here)
#   2. 2 nodes x 2 tasks, comm = allreduce, and 3 nodes x 1 task, comm = shared (default
#      mode): equal to one node's run of as many ranks to 1e-5
#      2 nodes x 1 task with grad_compression = bf16: bit for bit one node's 2 ranks
#      compressing over comm = allreduce (each rounds its own gradient, one sum of two)
#   3. an uneven layout, 2 + 1 tasks: runs (comm = auto falls back to the allreduce) and
#      equals one node's 3 ranks to 1e-5
#   4. SIGUSR1 to a 2-node job: checkpoint, requeue, resume across nodes, bitwise equal to
#      the uninterrupted run (deterministic)
#   5. predict and eval across 2 nodes: the same predictions and metrics as one rank
#   6. the watchdog across nodes: a rank on node2 stopped -> status 8 naming node2 -> requeue
#      -> the job resumes and completes
#   7. node loss: node2's link taken down mid-run -> the watchdog names it, SLURM marks node2
#      DOWN and requeues the job, which resumes on node1 + node3 and completes
#   8. node loss under plain mpirun (scripts/mpirun.sh, tests/ns_agent.sh as its ssh): node3's
#      link taken down -> named, status 8 within the deadline plus about 30 s
#   9. slurm/search.sbatch on 2 nodes x 2 tasks, 2 ranks a trial, successive halving,
#      deterministic: the table of the same search on one node (run before 6-8)
# then tears the cluster down (only what it started). Exit 77 (skipped) when not root or the
# packages are missing.
set -euo pipefail

TRAINER=$(realpath "$1")
SRC=$(realpath "$2")
export TRAINER TRAINER_HOME=$SRC
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

if [[ $(id -u) -ne 0 ]] || ! command -v sbatch >/dev/null || [[ ! -x /usr/sbin/munged ]] ||
    ! command -v nsenter >/dev/null; then
    echo "SKIP: needs root, Debian's slurm-wlm and munge packages, and nsenter"
    exit 77
fi

# not under /tmp: every node has a private /tmp
W=$(mktemp -d /var/tmp/trainer-multinode.XXXXXX)
export SLURM_TEST_CTLD_PORT=$((22000 + ($$ % 2000) * 2)) SLURM_TEST_SLURMD_PORT=$((22001 + ($$ % 2000) * 2))
cleanup() {
    local rc=$?
    "$SRC/tests/slurm_cluster.sh" down "$W/cluster" || true
    if [[ $rc -eq 0 ]]; then rm -rf "$W"; else echo "test_multinode: files kept in $W" >&2; fi
}
trap cleanup EXIT

# shellcheck source=tests/slurm_jobs.sh
. "$SRC/tests/slurm_jobs.sh" # fail, pass, wait_gone, job_field, wait_checkpoint, rank_pid

# a clone or build under /tmp is out of the nodes' sight: the jobs run copies in W (the
# binary links the system's libraries only; the scripts, configs and data sets beside it)
if [[ $SRC == /tmp/* || $TRAINER == /tmp/* ]]; then
    mkdir -p "$W/src" "$W/bin"
    cp -a "$SRC/slurm" "$SRC/datasets" "$SRC/scripts" "$SRC/tests" "$W/src/"
    cp "$TRAINER" "$W/bin/trainer"
    SRC=$W/src TRAINER=$W/bin/trainer
    export TRAINER TRAINER_HOME=$SRC
fi

t0=$(date +%s.%N)
mkdir -p "$W/cluster"
eval "$("$SRC/tests/slurm_cluster.sh" up "$W/cluster" 3)"
pass "3-node cluster up in $(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN {printf "%.1f", a - b}') s" \
    "($(sinfo -h -o '%D nodes x %c CPUs'))"
cd "$W"
MOONS=$SRC/datasets/configs/moons.ini
COMMON=(--set data.n=4000 --set train.epochs=6 --set train.eval_every=3)

# newest DIR: the newest checkpoint of a run directory
newest() { ls "$1"/ckpt-*.h5 | sort | tail -1; }
# one_node NAME NP SETTINGS...: the same training on NP ranks of this machine
one_node() {
    local name=$1 np=$2
    shift 2
    mpirun -np "$np" --oversubscribe "$TRAINER" train "$MOONS" "${COMMON[@]}" "$@" \
        --set output.dir="$W/$name" >"$W/$name.log" 2>&1 || fail "one-node run $name failed: $(tail -3 "$W/$name.log")"
}
# on_nodes NAME SBATCH_OPTIONS... -- SETTINGS...: a job through multinode.sbatch, waited for
on_nodes() {
    local name=$1 opts=()
    shift
    while [[ $1 != -- ]]; do opts+=("$1"); shift; done
    shift
    local jid
    jid=$(RUN_DIR="$W/$name" timeout 300 sbatch --parsable --wait --cpus-per-task=1 --time=10 "${opts[@]}" \
        "$SRC/slurm/multinode.sbatch" "$MOONS" "${COMMON[@]}" "$@") || fail "job $name failed"
    grep -q "trained 6 epochs" "trainer-mn-$jid.out" || fail "job $name did not train 6 epochs"
    echo "$jid"
}
# same A B [DELTA]: /model and /optimizer of the newest checkpoints equal (to DELTA)
same() {
    local d=()
    [[ -n ${3:-} ]] && d=(--delta="$3")
    h5diff -q "${d[@]}" "$(newest "$1")" "$(newest "$2")" /model /model &&
        h5diff -q "${d[@]}" "$(newest "$1")" "$(newest "$2")" /optimizer /optimizer
}

# ---- 1. 2 nodes x 2 tasks, deterministic: bitwise one node's 4 ranks -----------------------
jid=$(on_nodes det --nodes=2 --ntasks-per-node=2 -- --set train.deterministic=true)
grep -q "4 ranks" "trainer-mn-$jid.out" || fail "the 2 x 2 job did not run 4 ranks"
grep -q "on node\[1-2\]: 4 tasks" "trainer-mn-$jid.out" || fail "the 2 x 2 job did not run on node1 and node2"
one_node det1 4 --set train.deterministic=true
same "$W/det" "$W/det1" || fail "2 nodes x 2 tasks (deterministic) differ from 4 ranks on one node"
pass "2 nodes x 2 tasks, deterministic: bitwise equal to 4 ranks on one node"

# ---- 2. default mode, both strategies --------------------------------------------------------
on_nodes allreduce --nodes=2 --ntasks-per-node=2 -- --set train.comm=allreduce >/dev/null
one_node allreduce1 4 --set train.comm=allreduce
same "$W/allreduce" "$W/allreduce1" 1e-5 || fail "2 x 2 (comm = allreduce) differs from one node by more than 1e-5"
on_nodes shared --nodes=3 --ntasks-per-node=1 -- --set train.comm=shared >/dev/null
one_node shared1 3 --set train.comm=shared
same "$W/shared" "$W/shared1" 1e-5 || fail "3 x 1 (comm = shared) differs from one node by more than 1e-5"
pass "2 x 2 (allreduce) and 3 x 1 (shared): equal to one node's runs to 1e-5"
on_nodes bf16 --nodes=2 --ntasks-per-node=1 -- --set train.grad_compression=bf16 >/dev/null
one_node bf16_1 2 --set train.comm=allreduce --set train.grad_compression=bf16
same "$W/bf16" "$W/bf16_1" || fail "2 x 1 with grad_compression = bf16 differs from one node's 2 ranks (allreduce, bf16)"
pass "2 x 1, gradients in bf16 between the nodes: bitwise one node's 2 ranks compressing over allreduce"

# ---- 3. uneven: 2 + 1 tasks --------------------------------------------------------------------
jid=$(RUN_DIR="$W/uneven" timeout 300 sbatch --parsable --wait --nodes=2 --ntasks=3 --cpus-per-task=1 \
    --distribution=block "$SRC/slurm/train.sbatch" "$MOONS" "${COMMON[@]}") || fail "the 2 + 1 job failed"
grep -q "3 ranks" "trainer-$jid.out" || fail "the 2 + 1 job did not run 3 ranks"
one_node uneven1 3
same "$W/uneven" "$W/uneven1" 1e-5 || fail "2 + 1 tasks differ from one node's 3 ranks by more than 1e-5"
pass "2 + 1 tasks (comm = auto: the allreduce): equal to one node's 3 ranks to 1e-5"

# ---- 4. USR1 -> checkpoint -> requeue -> resume across nodes ---------------------------------
LONG=(--set data.n=40000 --set model.layers=2,64,64,1 --set train.epochs=8 --set train.eval_every=4
    --set train.deterministic=true)
jid=$(RUN_DIR="$W/requeue" sbatch --parsable --nodes=2 --ntasks-per-node=1 --cpus-per-task=1 \
    "$SRC/slurm/multinode.sbatch" "$MOONS" "${LONG[@]}")
wait_checkpoint "$jid" "$W/requeue"
scancel --batch --signal=USR1 "$jid"
mpirun -np 2 "$TRAINER" train "$MOONS" "${LONG[@]}" --set output.dir="$W/requeue1" >"$W/requeue1.log" 2>&1 ||
    fail "reference run failed"
wait_gone "$jid" 240
[[ $(job_field "$jid" JobState) == COMPLETED && $(job_field "$jid" Restarts) == 1 ]] ||
    fail "job $jid: $(job_field "$jid" JobState), restarted $(job_field "$jid" Restarts) times"
grep -q "resumed from $W/requeue/ckpt-" "trainer-mn-$jid.out" || fail "the restart did not resume"
same "$W/requeue" "$W/requeue1" || fail "the requeued 2-node run differs from the uninterrupted one"
pass "USR1 across 2 nodes: checkpoint, requeue, resume; bitwise the uninterrupted run"

# ---- 5. predict and eval across nodes ------------------------------------------------------------
ck=$(newest "$W/det")
"$TRAINER" data gen moons --out "$W/in.csv" --n 500 >/dev/null
"$TRAINER" predict --checkpoint "$ck" --input "$W/in.csv" --output "$W/pred1.csv" >/dev/null
"$TRAINER" eval "$MOONS" "${COMMON[@]}" --checkpoint "$ck" >"$W/eval1.txt" 2>&1
cat >"$W/pe.sh" <<EOF
#!/bin/bash
srun --mpi=pmix "$TRAINER" predict --checkpoint "$ck" --input "$W/in.csv" --output "$W/pred2.csv" &&
srun --mpi=pmix "$TRAINER" eval "$MOONS" ${COMMON[*]} --checkpoint "$ck" >"$W/eval2.txt" 2>&1
EOF
timeout 200 sbatch --parsable --wait --nodes=2 --ntasks-per-node=1 -o "$W/pe.out" "$W/pe.sh" >/dev/null ||
    fail "predict/eval job failed: $(tail -5 "$W/pe.out")"
cmp -s "$W/pred1.csv" "$W/pred2.csv" || fail "predictions across 2 nodes differ from one rank's"
diff <(grep -E "loss|accuracy" "$W/eval1.txt") <(grep -E "loss|accuracy" "$W/eval2.txt") >/dev/null ||
    fail "eval across 2 nodes differs from one rank's"
pass "predict and eval across 2 nodes: byte-identical predictions, the same metrics as one rank"

# ---- 9. a search across nodes: groups of 2 ranks, successive halving ----------------------------
SEARCH=(--ranks-per-trial 2 --set train.epochs=30 --set train.deterministic=true --set data.val_fraction=0.2)
jid=$(RUN_DIR="$W/search" timeout 300 sbatch --parsable --wait --nodes=2 --ntasks-per-node=2 --cpus-per-task=1 \
    --time=10 "$SRC/slurm/search.sbatch" "$MOONS" "$SRC/datasets/spaces/moons_course.space" "${SEARCH[@]}") ||
    fail "the 2-node search failed: $(tail -5 search-*.out 2>/dev/null)"
mpirun -np 4 --oversubscribe "$TRAINER" search "$MOONS" "$SRC/datasets/spaces/moons_course.space" "${SEARCH[@]}" \
    --set output.dir="$W/search1" >"$W/search1.log" 2>&1 || fail "the one-node search failed: $(tail -3 "$W/search1.log")"
grep -q "2 groups of 2 ranks" "search-$jid.out" || fail "the 2-node search did not form 2 groups of 2 ranks"
cmp -s <(cut -d, -f1-4,6- "$W/search/trials.csv") <(cut -d, -f1-4,6- "$W/search1/trials.csv") ||
    fail "the 2-node search's table differs from one node's"
pass "a search on 2 nodes x 2 tasks (2 ranks a trial, ASHA, deterministic): the table of one node's" \
    "$(grep -c . "$W/search/trials.csv") lines"

# ---- 6. the watchdog across nodes -----------------------------------------------------------------
jid=$(RUN_DIR="$W/wd" sbatch --parsable --nodes=2 --ntasks-per-node=1 --cpus-per-task=1 \
    "$SRC/slurm/multinode.sbatch" "$MOONS" "${LONG[@]}" --set train.epochs=4 --set train.watchdog=4)
wait_checkpoint "$jid" "$W/wd"
victim=$(rank_pid "$jid" SLURMD_NODENAME=node2)
[[ -n $victim ]] || fail "no rank of job $jid on node2"
kill -STOP "$victim"
t_stop=$(date +%s)
wait_gone "$jid" 240
kill -9 "$victim" 2>/dev/null || true
[[ $(job_field "$jid" JobState) == COMPLETED && $(job_field "$jid" Restarts) == 1 ]] ||
    fail "watchdog job $jid: $(job_field "$jid" JobState), restarted $(job_field "$jid" Restarts) times"
grep -q "watchdog: rank 1 on node2 did not answer" "trainer-mn-$jid.out" || fail "the watchdog did not name node2"
pass "watchdog across nodes: rank 1 on node2 stopped -> named, requeued, resumed, completed" \
    "($(($(date +%s) - t_stop)) s from the stop to the end); the job's log:"
grep -E "^== |watchdog:|resumed from" "trainer-mn-$jid.out" | sed 's/^/    /'

# ---- 7. node loss: node2's link goes down mid-run ---------------------------------------------
jid=$(RUN_DIR="$W/lost" sbatch --parsable --nodes=2 --ntasks-per-node=1 --cpus-per-task=1 \
    "$SRC/slurm/multinode.sbatch" "$MOONS" "${LONG[@]}" --set train.epochs=4 --set train.watchdog=4)
wait_checkpoint "$jid" "$W/lost"
netns=$(awk '$1 == "netns" && $2 ~ /-n2$/ {print $2}' "$W/cluster/started.net")
ip -n "$netns" link set eth0 down
t_lost=$(date +%s)
wait_gone "$jid" 240
[[ $(job_field "$jid" JobState) == COMPLETED && $(job_field "$jid" Restarts) == 1 ]] ||
    fail "lost-node job $jid: $(job_field "$jid" JobState), restarted $(job_field "$jid" Restarts) times"
grep -q "watchdog: rank 1 on node2 did not answer" "trainer-mn-$jid.out" || fail "the lost node2 was not named"
grep -q "(restart 1) on node\[1,3\]" "trainer-mn-$jid.out" || fail "the job did not resume on node1 and node3"
grep -q "resumed from $W/lost/ckpt-" "trainer-mn-$jid.out" || fail "the restart did not resume from a checkpoint"
grep -q "trained 4 epochs" "trainer-mn-$jid.out" || fail "the resumed job did not finish its 4 epochs"
pass "node2 lost (link down): named, node2 DOWN, the job requeued onto node1 + node3, resumed and completed" \
    "($(($(date +%s) - t_lost)) s from the link going down to the end); the job's log:"
grep -E "^== |watchdog:|resumed from|[Nn]ode failure" "trainer-mn-$jid.out" | sed 's/^/    /'

# ---- 8. node loss under plain mpirun (no SLURM): scripts/mpirun.sh ends the job ------------------
# mpirun on node1 starts node3's daemon through tests/ns_agent.sh (its ssh); node3's link goes
# down mid-run. The watchdog (5 s) names rank 1 on node3 and the ranks exit 8, but mpirun
# itself would wait for the lost daemon for many minutes: scripts/mpirun.sh must return 8
# within the deadline plus about 30 s.
node1=$(awk '$2 == "slurmd" && $3 == "node1" {print $1}' "$W/cluster/started.pids")
ns3=$(awk '$1 == "netns" && $2 ~ /-n3$/ {print $2}' "$W/cluster/started.net")
mkdir -p "$W/plain"
(
    for _ in $(seq 600); do ls "$W/plain/run"/ckpt-*.h5 >/dev/null 2>&1 && break; sleep 0.1; done
    sleep 1
    ip -n "$ns3" link set eth0 down
    date +%s.%N >"$W/plain/t_down"
) &
set +e
(cd "$W/plain" && timeout 150 nsenter -t "$node1" -n -u -m -- env CLUSTER_DIR="$W/cluster" \
    TRAINER_STATUS_DIR="$W/plain" "$SRC/scripts/mpirun.sh" --host node1:1,node3:1 \
    --mca plm_rsh_agent "$SRC/tests/ns_agent.sh" --mca btl_tcp_if_include eth0 --mca oob_tcp_if_include eth0 \
    "$TRAINER" train "$MOONS" "${LONG[@]}" --set train.epochs=2000 --set train.watchdog=5 \
    --set output.dir="$W/plain/run" >"$W/plain/out.txt" 2>&1)
rc=$?
set -e
t_end=$(date +%s.%N)
wait
for p in $(ip netns pids "$ns3"); do # the lost node's daemon and rank, not its slurmd
    [[ $(cat "/proc/$p/comm" 2>/dev/null) == slurmd ]] || kill -9 "$p" 2>/dev/null || true
done
took=$(awk -v a="$t_end" -v b="$(cat "$W/plain/t_down" 2>/dev/null || echo 0)" 'BEGIN {printf "%.0f", a - b}')
[[ $rc -eq 8 ]] || fail "plain mpirun with node3 lost: status $rc (want 8): $(grep -v '^epoch' "$W/plain/out.txt" | tail -5)"
grep -q "watchdog: rank 1 on node3 did not answer" "$W/plain/out.txt" || fail "the lost node3 was not named"
((took <= 45)) || fail "plain mpirun with node3 lost ended $took s after the link went down (want <= 45)"
pass "node3 lost under plain mpirun (scripts/mpirun.sh): named, status 8, $took s after the link went down"

echo "all multi-node checks passed in $(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN {printf "%.0f", a - b}') s"
