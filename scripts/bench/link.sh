#!/bin/bash
# The link the gradient exchange runs on, measured: build/link_probe (MPI_Allreduce latency
# and bandwidth over message sizes, and the alpha-beta fit of the scaling model) with two
# ranks on this node (shared memory), then with one rank on each of two namespace nodes
# (tests/slurm_cluster.sh: network namespaces on a veth bridge, Open MPI's TCP transport: an
# Ethernet-class link that exists only inside the namespaces; the nodes share this machine's
# cores, so node1's rank is pinned to core 0 and node2's to core 1: mpirun would bind both to
# core 0). Needs root for the nodes.
#
#   scripts/bench/link.sh [SECONDS_PER_SIZE]        (default 0.2)
# Writes the probe's tables to standard output and its LINK/FIT lines to build/link.log.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_PER_SIZE=${1:-0.2}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
[[ -x build/link_probe ]] || cmake --build build --target link_probe >/dev/null
LOG=build/link.log
: >"$LOG"
echo "## one node, 2 ranks (shared memory)"
mpirun -np 2 --bind-to core build/link_probe --seconds "$SECONDS_PER_SIZE" | tee -a "$LOG" | grep -v '^LINK\|^FIT'
# the nodes see this file system but not this /tmp
W=$(mktemp -d /var/tmp/trainer-link.XXXXXX)
trap 'tests/slurm_cluster.sh down "$W/cluster" >/dev/null 2>&1 || true; rm -rf "$W"' EXIT
export SLURM_TEST_CTLD_PORT=$((24000 + ($$ % 2000) * 2)) SLURM_TEST_SLURMD_PORT=$((24001 + ($$ % 2000) * 2))
mkdir -p "$W/cluster"
eval "$(tests/slurm_cluster.sh up "$W/cluster" 2)" >/dev/null
node1=$(awk '$2 == "slurmd" && $3 == "node1" {print $1}' "$W/cluster/started.pids")
echo
echo "## two namespace nodes, 1 rank each (TCP over a veth bridge)"
nsenter -t "$node1" -n -u -m -- env CLUSTER_DIR="$W/cluster" OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
    mpirun --bind-to none --mca plm_rsh_agent "$PWD/tests/ns_agent.sh" \
    --mca btl_tcp_if_include eth0 --mca oob_tcp_if_include eth0 \
    --host node1:1 -np 1 taskset -c 0 "$PWD/build/link_probe" --seconds "$SECONDS_PER_SIZE" : \
    --host node2:1 -np 1 taskset -c 1 "$PWD/build/link_probe" --seconds "$SECONDS_PER_SIZE" |
    tee -a "$LOG" | grep -v '^LINK\|^FIT'
