#!/bin/bash
# Deterministic mode's cost: the step time of the 784-256-128-10 network (batch 128, Adam,
# one BLAS thread per rank) with deterministic = true as a ratio of the default mode's, at
# np=1 and np=2. The two modes alternate REPEAT times and the medians are compared, because
# a shared machine's speed drifts.
#
#   scripts/bench/deterministic.sh [REPEAT] [STEPS] [CHUNK_ROWS]     (defaults 5, 500, 64)
set -euo pipefail
cd "$(dirname "$0")/../.."
REPEAT=${1:-5}
STEPS=${2:-500}
CHUNK=${3:-64}
[[ -x build/trainer ]] || scripts/build.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
LOG=build/bench-deterministic.log
: >"$LOG"
for ((r = 0; r < REPEAT; r++)); do
    for np in 1 2; do
        for det in false true; do
            mpirun -np $np --bind-to core build/trainer bench scripts/bench/mlp784.ini --steps "$STEPS" --warmup 20 \
                --set train.threads=1 --set train.deterministic=$det --set train.chunk_rows="$CHUNK" |
                grep '^BENCH' | sed "s/^BENCH/BENCH det=$det/" >>"$LOG"
        done
    done
done
/usr/bin/python3 - "$LOG" "$CHUNK" <<'PY'
import collections, statistics as st, sys
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    kv = dict(f.split("=", 1) for f in line.split()[1:])
    rows[(kv["det"], int(kv["np"]))].append(float(kv["step_ms"]))
print(f"| np | default step ms | deterministic step ms (chunk_rows {sys.argv[2]}) | ratio |")
print("| --- | --- | --- | --- |")
for np in (1, 2):
    a, b = st.median(rows[("false", np)]), st.median(rows[("true", np)])
    print(f"| {np} | {a:.3f} | {b:.3f} | {b / a:.2f}x |")
PY
