#!/bin/bash
# slurm_cluster.sh: a one-node SLURM cluster on localhost for the tests, from Debian's
# slurm-wlm and munge packages, without systemd or cgroups.
#
#   tests/slurm_cluster.sh up DIR     start munged (if none runs), slurmctld and slurmd with
#                                     the configuration, state and logs in DIR; prints
#                                     `export SLURM_CONF=DIR/slurm.conf` for the client commands
#   tests/slurm_cluster.sh down DIR   stop exactly the daemons `up` started (their PIDs are in
#                                     DIR/started.pids), never anybody else's
#
# Needs root (slurmd starts jobs as their user; munged runs as the munge user). The settings
# that make a scheduler on one small machine quick and predictable:
#   proctrack/linuxproc, task/none     no cgroups or systemd needed
#   NodeName=localhost + slurmd -N     the node is found whatever the host is called
#   SlurmdParameters=config_overrides  the node may declare more CPUs than the machine has
#   EnforcePartLimits=ALL              impossible requests fail at submission, never pend
#   cred_expire=10, sched_interval=2, bf_interval=1, KillWait=10
#                                      a requeued job starts again after ~12 s, not minutes
set -euo pipefail

SBIN=/usr/sbin
die() { echo "slurm_cluster.sh: $*" >&2; exit 1; }

write_conf() {
    local dir=$1 cpus=$2
    cat >"$dir/slurm.conf" <<EOF
# one-node test cluster written by tests/slurm_cluster.sh
ClusterName=trainertest
SlurmctldHost=localhost
SlurmUser=root
SlurmctldPort=${SLURM_TEST_CTLD_PORT:-6817}
SlurmdPort=${SLURM_TEST_SLURMD_PORT:-6818}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=cred_expire=10
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=pmix
SwitchType=switch/none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
EnforcePartLimits=ALL
SlurmdParameters=config_overrides
ReturnToService=2
KillWait=10
MinJobAge=300
InactiveLimit=0
NodeName=localhost CPUs=$cpus State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
}

start_munged() {
    local dir=$1
    if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
        return 0 # a munged is running already: use it, do not own it
    fi
    [[ -r /etc/munge/munge.key ]] || die "no /etc/munge/munge.key (is the munge package installed?)"
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge
    runuser -u munge -- $SBIN/munged
    for _ in $(seq 50); do
        if [[ -s /run/munge/munged.pid ]] && munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
            echo "$(cat /run/munge/munged.pid) munged" >>"$dir/started.pids"
            return 0
        fi
        sleep 0.1
    done
    die "munged did not start (see /var/log/munge/munged.log)"
}

wait_pidfile() { # FILE NAME LOG
    for _ in $(seq 100); do
        if [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; then
            echo "$(cat "$1") $2" >>"$DIR/started.pids"
            return 0
        fi
        sleep 0.1
    done
    die "$2 did not start; its log $3 ends with: $(tail -5 "$3" 2>/dev/null)"
}

up() {
    [[ $(id -u) -eq 0 ]] || die "needs root (slurmd and munged)"
    command -v $SBIN/slurmctld >/dev/null || die "slurm-wlm is not installed"
    mkdir -p "$DIR/state" "$DIR/spool"
    DIR=$(cd "$DIR" && pwd)
    : >"$DIR/started.pids"
    write_conf "$DIR" "${SLURM_TEST_CPUS:-4}"
    export SLURM_CONF=$DIR/slurm.conf
    start_munged "$DIR"
    # -c: a clean start (no jobs from an earlier cluster in this state directory)
    $SBIN/slurmctld -c -f "$SLURM_CONF"
    wait_pidfile "$DIR/slurmctld.pid" slurmctld "$DIR/slurmctld.log"
    $SBIN/slurmd -N localhost -f "$SLURM_CONF"
    wait_pidfile "$DIR/slurmd.pid" slurmd "$DIR/slurmd.log"
    for _ in $(seq 150); do
        if sinfo -h -N -o '%T' 2>/dev/null | grep -qx idle; then
            echo "export SLURM_CONF=$SLURM_CONF"
            return 0
        fi
        sleep 0.2
    done
    die "the node did not become idle: $(sinfo -N 2>&1 | tail -2); slurmctld log: $(tail -5 "$DIR/slurmctld.log")"
}

down() {
    [[ -f $DIR/started.pids ]] || return 0
    # slurmd and slurmctld first, munged last; reversed start order
    tac "$DIR/started.pids" | while read -r pid name; do
        kill -TERM "$pid" 2>/dev/null || continue
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null && echo "slurm_cluster.sh: $name ($pid) killed" >&2 || true
    done
    rm -f "$DIR/started.pids"
}

[[ $# -eq 2 ]] || die "usage: $0 up|down DIR"
DIR=$2
case $1 in
up) up ;;
down) down ;;
*) die "usage: $0 up|down DIR" ;;
esac
