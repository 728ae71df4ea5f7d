#!/bin/bash
# The link the gradient exchange runs on, measured: build/link_probe (MPI_Allreduce latency
# and bandwidth over message sizes, and the alpha-beta fit of the scaling model) with two
# ranks on this node (shared memory), then with one rank on each of two namespace nodes
# (tests/slurm_cluster.sh: network namespaces on a veth bridge, Open MPI's TCP transport: an
# Ethernet-class link that exists only inside the namespaces; scripts/bench/two_nodes.sh).
# Needs root for the nodes.
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
source scripts/bench/two_nodes.sh
two_nodes_up 24000
echo
echo "## two namespace nodes, 1 rank each (TCP over a veth bridge)"
two_nodes "$PWD/build/link_probe" --seconds "$SECONDS_PER_SIZE" | tee -a "$LOG" | grep -v '^LINK\|^FIT'
