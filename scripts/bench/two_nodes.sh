# two_nodes.sh (sourced by the benchmarks): two namespace nodes of tests/slurm_cluster.sh on
# this machine, and a command run on them with one rank each.
#
#   two_nodes_up PORT_BASE    starts the 2-node cluster in a directory under /var/tmp (the
#                             nodes see this file system but not this /tmp), taken down and
#                             removed when the script exits; PORT_BASE keeps its daemons'
#                             ports apart from other clusters' on this machine
#   two_nodes PROGRAM ARGS... runs PROGRAM ARGS on node1 and node2 under mpirun, one rank each
#                             over TCP, node1's pinned to core 0 and node2's to core 1 (the
#                             nodes share this machine's cores: mpirun would bind both ranks
#                             to core 0, 8 ms a call, and unbound ranks drift between cores)

two_nodes_up() {
  TWO_NODES_DIR=$(mktemp -d /var/tmp/trainer-two-nodes.XXXXXX)
  trap 'tests/slurm_cluster.sh down "$TWO_NODES_DIR/cluster" >/dev/null 2>&1 || true; rm -rf "$TWO_NODES_DIR"' EXIT
  export SLURM_TEST_CTLD_PORT=$(($1 + ($$ % 2000) * 2)) SLURM_TEST_SLURMD_PORT=$(($1 + 1 + ($$ % 2000) * 2))
  mkdir -p "$TWO_NODES_DIR/cluster"
  eval "$(tests/slurm_cluster.sh up "$TWO_NODES_DIR/cluster" 2)" >/dev/null
  TWO_NODES_NODE1=$(awk '$2 == "slurmd" && $3 == "node1" {print $1}' "$TWO_NODES_DIR/cluster/started.pids")
}

two_nodes() {
  nsenter -t "$TWO_NODES_NODE1" -n -u -m -- env CLUSTER_DIR="$TWO_NODES_DIR/cluster" \
    OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
    mpirun --bind-to none --mca plm_rsh_agent "$PWD/tests/ns_agent.sh" \
    --mca btl_tcp_if_include eth0 --mca oob_tcp_if_include eth0 \
    --host node1:1 -np 1 taskset -c 0 "$@" : --host node2:1 -np 1 taskset -c 1 "$@"
}
