#!/bin/bash
# BLAS threads per rank follow the CPUs the launcher gives each rank: mpirun binds ranks to
# one core each by default (then one thread: two would take turns on that core), unbound
# ranks split the node's CPUs, and threads set by hand beyond a rank's CPUs are warned about.
# At np=2 the bench also reports the round trip of a cache line between the two ranks.
#   tests/test_threads.sh TRAINER SOURCE_DIR
set -u
TRAINER=$1
SRC=$2
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
failures=0
source "$SRC/tests/expect.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cpus=$(nproc)
BENCH=("$TRAINER" bench "$SRC/scripts/bench/mlp784.ini" --steps 2 --warmup 1 --set "output.dir=$W/run")
threads_of() { grep -o 'threads=[0-9]*' "$W/out.txt" | cut -d= -f2; }

# one rank bound to one core: 1 thread (the 784-256-128-10 net asks for threads otherwise)
expect "np=1 bound to a core" 0 "" -- mpirun -np 1 --bind-to core "${BENCH[@]}"
check "np=1 bound to a core: 1 thread" test "$(threads_of)" = 1
# taskset without mpirun: the mask counts too
expect "taskset -c 0" 0 "" -- taskset -c 0 "${BENCH[@]}"
check "taskset -c 0: 1 thread" test "$(threads_of)" = 1
if ((cpus >= 2)); then
  expect "np=1 unbound" 0 "" -- mpirun -np 1 --bind-to none "${BENCH[@]}"
  check "np=1 unbound: every CPU ($cpus)" test "$(threads_of)" = "$cpus"
  expect "np=2 bound to cores" 0 "" -- mpirun -np 2 --bind-to core "${BENCH[@]}"
  check "np=2 bound to cores: 1 thread each" test "$(threads_of)" = 1
  # the bench states the placement it ran in: a cache line's round trip between the ranks
  check "np=2: the bench reports the ranks' core round trip" grep -Eq 'core_rtt_ns=[1-9][0-9]*' "$W/out.txt"
  check "np=1: no round trip to report" bash -c "! mpirun -np 1 ${BENCH[*]} | grep -q core_rtt_ns"
  expect "np=2 unbound" 0 "" -- mpirun -np 2 --bind-to none "${BENCH[@]}"
  check "np=2 unbound: half the CPUs each" test "$(threads_of)" = $((cpus / 2))
else
  echo "skip the unbound cases: one CPU"
fi
# threads set by hand beyond the rank's CPUs: trained as asked, with a warning naming the fix
expect "threads = 2 on one core" 0 "2 BLAS threads per rank, but rank 0 has 1 CPU to itself" -- \
  mpirun -np 1 --bind-to core "${BENCH[@]}" --set train.threads=2
check "threads = 2 on one core: 2 threads as asked" test "$(threads_of)" = 2
expect "threads = 1 on one core: no warning" 0 "" -- mpirun -np 1 --bind-to core "${BENCH[@]}" --set train.threads=1
check "threads = 1 on one core: no warning" bash -c "! grep -q warning '$W/err.txt'"

echo "$failures failure(s)"
((failures == 0))
