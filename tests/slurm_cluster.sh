#!/bin/bash
# slurm_cluster.sh: a SLURM cluster on this machine for the tests, from Debian's slurm-wlm and
# munge packages, without systemd or cgroups: one node (localhost), or N "nodes" each in
# network, UTS and mount namespaces of its own.
#
#   tests/slurm_cluster.sh up DIR     start munged (if none runs), slurmctld and slurmd with
#                                     the configuration, state and logs in DIR; prints
#                                     `export SLURM_CONF=DIR/slurm.conf` for the client commands
#   tests/slurm_cluster.sh up DIR N   N >= 2 nodes node1..nodeN: each a network namespace with
#                                     address 10.213.0.(10+i) on a bridge of the cluster's own
#                                     (no uplink: nothing leaves these namespaces), its own host
#                                     name (UTS), a private /tmp and DIR/hosts as /etc/hosts
#                                     (mount), running its own slurmd with SLURM_TEST_CPUS CPUs
#                                     (default 2); slurmctld runs as host `ctl` at 10.213.0.1 on
#                                     the bridge. Open MPI then sees separate hosts: shared memory
#                                     inside a node, TCP between nodes. DIR must not be under /tmp
#                                     (each node has its own) and must be seen by every node (it
#                                     is: the namespaces share the file system).
#   tests/slurm_cluster.sh down DIR   stop exactly the daemons `up` started (their PIDs are in
#                                     DIR/started.pids), never anybody else's, and remove the
#                                     namespaces and the bridge it created (DIR/started.net)
#
# Jobs on the N-node cluster must be submitted with sbatch (the batch script then runs on
# node1, inside its namespaces); an srun from this machine's own network cannot be reached back.
#
# Needs root (slurmd starts jobs as their user; munged runs as the munge user). The settings
# that make a scheduler on one small machine quick and predictable:
#   proctrack/linuxproc, task/none     no cgroups or systemd needed
#   NodeName=localhost + slurmd -N     the node is found whatever the host is called
#   SlurmdParameters=config_overrides  the node may declare more CPUs than the machine has
#   EnforcePartLimits=ALL              impossible requests fail at submission, never pend
#   cred_expire=10, sched_interval=2, bf_interval=1, KillWait=10
#                                      a requeued job starts again after ~12 s, not minutes
#   SlurmdTimeout=10 (N nodes)         a node whose link is down is DOWN after 10 s, not 300
set -euo pipefail

SBIN=/usr/sbin
NET=10.213.0 BRIDGE_ADDR=10.213.0.1
die() { echo "slurm_cluster.sh: $*" >&2; exit 1; }

# The network of an N-node cluster: a bridge, and per node a namespace with a veth into it.
# Every name is recorded in DIR/started.net as it is made, for `down`.
make_network() {
    local nodes=$1 id=$$
    ip -o addr show | grep -q " $BRIDGE_ADDR/" && die "$BRIDGE_ADDR is in use (another test cluster is up?)"
    local br=trn$id-br
    ip link add "$br" type bridge && echo "link $br" >>"$DIR/started.net"
    ip addr add "$BRIDGE_ADDR/24" dev "$br"
    ip link set "$br" up
    for i in $(seq "$nodes"); do
        ip netns add "trn$id-n$i" && echo "netns trn$id-n$i" >>"$DIR/started.net"
        ip link add "trn$id-v$i" type veth peer name eth0 netns "trn$id-n$i"
        ip link set "trn$id-v$i" master "$br" up
        ip -n "trn$id-n$i" addr add "$NET.$((10 + i))/24" dev eth0
        ip -n "trn$id-n$i" link set eth0 up
        ip -n "trn$id-n$i" link set lo up
    done
    { echo "127.0.0.1 localhost"; echo "$BRIDGE_ADDR ctl"; for i in $(seq "$nodes"); do echo "$NET.$((10 + i)) node$i"; done; } >"$DIR/hosts"
}

# Runs "$@" (a daemon that detaches) as host NAME with DIR/hosts as /etc/hosts, in network
# namespace NETNS (empty: this machine's), with a private /tmp when in one. nsenter, not
# `ip netns exec`: that remounts /sys, and slurmd then finds no cgroup file system.
in_node() {
    local name=$1 netns=$2
    shift 2
    local setup="mount --bind $DIR/hosts /etc/hosts && hostname $name"
    [[ -n $netns ]] && setup="$setup && mount -t tmpfs -o size=256m tmpfs /tmp"
    if [[ -n $netns ]]; then
        nsenter --net="/run/netns/$netns" unshare --uts --mount sh -c "$setup && exec \"\$@\"" sh "$@"
    else
        unshare --uts --mount sh -c "$setup && exec \"\$@\"" sh "$@"
    fi
}

write_conf() {
    local dir=$1 cpus=$2 nodes=${3:-1}
    local ctld=localhost spool=$dir/spool pidfile=$dir/slurmd.pid log=$dir/slurmd.log
    local nodeline="NodeName=localhost CPUs=$cpus State=UNKNOWN" partnodes=localhost timeout=300
    if ((nodes > 1)); then
        ctld="ctl($BRIDGE_ADDR)" spool=$dir/spool/%n pidfile=$dir/slurmd-%n.pid log=$dir/slurmd-%n.log
        nodeline="NodeName=node[1-$nodes] NodeAddr=$NET.[11-$((10 + nodes))] CPUs=$cpus State=UNKNOWN"
        partnodes="node[1-$nodes]"
        timeout=10 # a lost node is DOWN after 10 s (not 300): its jobs finish completing, the rest goes on
    fi
    cat >"$dir/slurm.conf" <<EOF
# test cluster written by tests/slurm_cluster.sh
ClusterName=trainertest
SlurmctldHost=$ctld
SlurmUser=root
SlurmctldPort=${SLURM_TEST_CTLD_PORT:-6817}
SlurmdPort=${SLURM_TEST_SLURMD_PORT:-6818}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=cred_expire=10
StateSaveLocation=$dir/state
SlurmdSpoolDir=$spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$pidfile
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$log
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
SlurmdTimeout=$timeout
MinJobAge=300
InactiveLimit=0
$nodeline
PartitionName=debug Nodes=$partnodes Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
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
    local nodes=${1:-1}
    [[ $(id -u) -eq 0 ]] || die "needs root (slurmd and munged)"
    command -v $SBIN/slurmctld >/dev/null || die "slurm-wlm is not installed"
    mkdir -p "$DIR/state" "$DIR/spool"
    DIR=$(cd "$DIR" && pwd)
    if ((nodes > 1)); then
        [[ $DIR != /tmp/* ]] || die "$DIR is under /tmp, which every node has its own of"
        command -v nsenter >/dev/null && command -v ip >/dev/null || die "needs nsenter and ip (util-linux, iproute2)"
    fi
    : >"$DIR/started.pids"
    : >"$DIR/started.net"
    write_conf "$DIR" "${SLURM_TEST_CPUS:-$((nodes > 1 ? 2 : 4))}" "$nodes"
    export SLURM_CONF=$DIR/slurm.conf
    start_munged "$DIR"
    # -c: a clean start (no jobs from an earlier cluster in this state directory)
    if ((nodes > 1)); then
        make_network "$nodes"
        in_node ctl "" $SBIN/slurmctld -c -f "$SLURM_CONF"
        wait_pidfile "$DIR/slurmctld.pid" slurmctld "$DIR/slurmctld.log"
        for i in $(seq "$nodes"); do
            mkdir -p "$DIR/spool/node$i"
            in_node "node$i" "trn$$-n$i" $SBIN/slurmd -N "node$i" -f "$SLURM_CONF"
            wait_pidfile "$DIR/slurmd-node$i.pid" "slurmd node$i" "$DIR/slurmd-node$i.log"
        done
    else
        $SBIN/slurmctld -c -f "$SLURM_CONF"
        wait_pidfile "$DIR/slurmctld.pid" slurmctld "$DIR/slurmctld.log"
        $SBIN/slurmd -N localhost -f "$SLURM_CONF"
        wait_pidfile "$DIR/slurmd.pid" slurmd "$DIR/slurmd.log"
    fi
    for _ in $(seq 150); do
        if [[ $(sinfo -h -N -o '%T' 2>/dev/null | grep -cx idle) -eq $nodes ]]; then
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
    [[ -f $DIR/started.net ]] || return 0
    tac "$DIR/started.net" | while read -r kind name; do # the namespaces (their veths go too), the bridge
        case $kind in
        netns) ip netns pids "$name" 2>/dev/null | xargs -r kill -KILL; ip netns del "$name" ;;
        link) ip link del "$name" ;;
        esac
    done
    rm -f "$DIR/started.net"
}

[[ $# -eq 2 || ($# -eq 3 && $1 == up) ]] || die "usage: $0 up DIR [NODES] | down DIR"
DIR=$2
case $1 in
up) up "${3:-1}" ;;
down) down ;;
*) die "usage: $0 up|down DIR" ;;
esac
