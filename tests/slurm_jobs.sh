# slurm_jobs.sh: helpers for the tests that submit jobs to a test cluster (tests/test_slurm.sh,
# tests/test_multinode.sh). Sourced; the caller sets W (its work directory, where the jobs'
# .out files and the cluster's logs are).

# fail MESSAGE: say it, show the jobs' and the controller's last lines, exit 1
fail() {
    echo "FAIL: $*" >&2
    for f in "$W"/*.out "$W/cluster/slurmctld.log"; do
        [[ -f $f ]] && { echo "--- $f (last lines)" >&2; tail -20 "$f" >&2; }
    done
    exit 1
}
pass() { echo "ok: $*"; }

# wait_gone JOB SECONDS: until the job has left the queue (for good: a requeued job returns)
wait_gone() {
    local end=$(($(date +%s) + $2))
    while [[ -n $(squeue -h -j "$1" -o %T 2>/dev/null) ]]; do
        (($(date +%s) < end)) || { scancel "$1"; fail "job $1 still in the queue after $2 s"; }
        sleep 0.5
    done
}
job_field() { scontrol show job "$1" | grep -o "$2=[^ ]*" | head -1 | cut -d= -f2; }

# wait_checkpoint JOB RUN_DIR: until the job has written a checkpoint there (at most 120 s)
wait_checkpoint() {
    local end=$(($(date +%s) + 120))
    until compgen -G "$2/ckpt-*.h5" >/dev/null; do
        (($(date +%s) < end)) || fail "no checkpoint from job $1 after 120 s"
        sleep 0.1
    done
}

# rank_pid JOB VAR=VALUE: the pid of the job's trainer process whose environment has VAR=VALUE
# (SLURM_PROCID=1: rank 1; SLURMD_NODENAME=node2: the rank on node2)
rank_pid() {
    local p
    for p in $(pgrep -x trainer); do
        if tr '\0' '\n' </proc/$p/environ 2>/dev/null | grep -qx "SLURM_JOB_ID=$1" &&
            tr '\0' '\n' </proc/$p/environ 2>/dev/null | grep -qx "$2"; then
            echo "$p"
            return
        fi
    done
}
