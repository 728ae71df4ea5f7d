#!/bin/bash
# Before/after: the bench networks' step time with build/trainer against another binary (say
# a build of the previous commit), default mode, one BLAS thread per rank, np=1 and np=2.
# The two binaries alternate REPEAT times and the medians are compared, because a shared
# machine's speed drifts; a ratio above 1 means build/trainer is slower.
#
#   git worktree add /tmp/before HEAD~1 && (cd /tmp/before && scripts/build.sh)
#   scripts/bench/compare.sh /tmp/before/build/trainer [REPEAT] [STEPS]   (defaults 5, 500)
set -euo pipefail
cd "$(dirname "$0")/../.."
BEFORE=$(realpath "$1")
REPEAT=${2:-5}
STEPS=${3:-500}
[[ -x build/trainer ]] || scripts/build.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
LOG=build/bench-compare.log
: >"$LOG"
declare -A steps_for=([moons]=$((STEPS * 3)) [mlp784]=$STEPS [wide2048]=$((STEPS / 25 > 10 ? STEPS / 25 : 10)))
for ((r = 0; r < REPEAT; r++)); do
    for cfg in moons mlp784 wide2048; do
        for np in 1 2; do
            for which in before after; do
                bin=build/trainer
                [[ $which == before ]] && bin=$BEFORE
                mpirun -np $np --bind-to core "$bin" bench scripts/bench/$cfg.ini --steps "${steps_for[$cfg]}" \
                    --warmup 10 --set train.threads=1 | grep '^BENCH' | sed "s/^BENCH/BENCH which=$which cfg=$cfg/" >>"$LOG"
            done
        done
    done
done
/usr/bin/python3 - "$LOG" <<'PY'
import collections, statistics as st, sys
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    kv = dict(f.split("=", 1) for f in line.split()[1:])
    rows[(kv["which"], kv["cfg"], int(kv["np"]))].append(float(kv["step_ms"]))
print("| network | np | before step ms | after step ms | after / before |")
print("| --- | --- | --- | --- | --- |")
for cfg in ("moons", "mlp784", "wide2048"):
    for np in (1, 2):
        a, b = st.median(rows[("before", cfg, np)]), st.median(rows[("after", cfg, np)])
        print(f"| {cfg} | {np} | {a:.4f} | {b:.4f} | {b / a:.3f} |")
PY
