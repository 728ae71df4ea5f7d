#!/bin/bash
# ns_agent.sh: mpirun's remote shell (--mca plm_rsh_agent) for the namespace nodes of
# tests/slurm_cluster.sh: `ns_agent.sh HOST COMMAND...` runs the command line, as ssh would,
# with /bin/sh inside HOST's network, UTS and mount namespaces (those of its slurmd, whose
# PID CLUSTER_DIR/started.pids records). Plain mpirun across the test nodes, no SLURM.
set -euo pipefail
host=$1
shift
[[ -n ${CLUSTER_DIR:-} && -f $CLUSTER_DIR/started.pids ]] || { echo "ns_agent.sh: set CLUSTER_DIR" >&2; exit 2; }
pid=$(awk -v h="$host" '$2 == "slurmd" && $3 == h {print $1}' "$CLUSTER_DIR/started.pids")
[[ -n $pid ]] || { echo "ns_agent.sh: no node $host in $CLUSTER_DIR" >&2; exit 2; }
exec nsenter -t "$pid" -n -u -m -- /bin/sh -c "$*"
