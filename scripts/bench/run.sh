#!/bin/bash
# The data-parallel benchmark: per-phase step time, samples/s and the fraction of the step
# that cblas_sgemm alone needs for the same products, at np=1 and np=2 with one BLAS thread
# per rank, for three networks. np=1 and np=2 runs alternate REPEAT times and the medians
# are reported, because a shared machine's speed drifts (the last column adds the range of
# the ratio over the alternating pairs).
#
#   scripts/bench/run.sh [REPEAT] [STEPS]        (defaults 3 and 1000)
# Writes a Markdown table to standard output and the raw lines to build/bench.log.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPEAT=${1:-3}
STEPS=${2:-1000}
[[ -x build/trainer ]] || scripts/build.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
LOG=build/bench.log
: > "$LOG"
declare -A steps_for=([moons]=$((STEPS * 3)) [mlp784]=$STEPS [wide2048]=$((STEPS / 25 > 10 ? STEPS / 25 : 10)))
for cfg in moons mlp784 wide2048; do
  n=${steps_for[$cfg]}
  for ((r = 0; r < REPEAT; r++)); do
    for np in 1 2; do
      mpirun -np $np --bind-to core build/trainer bench scripts/bench/$cfg.ini --steps "$n" --warmup 10 \
        --set train.threads=1 | grep '^BENCH' | sed "s/^BENCH/BENCH cfg=$cfg/" >> "$LOG"
    done
  done
done
/usr/bin/python3 - "$LOG" <<'PY'
import sys, statistics as st, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    kv = dict(f.split("=", 1) for f in line.split()[1:])
    rows[(kv["cfg"], int(kv["np"]))].append(kv)
def med(key, cfg, np):
    return st.median(float(r[key]) for r in rows[(cfg, np)])
print("| network | np | step ms | forward | backward | comm wait | optimizer | sgemm share | samples/s | scaling | scaling / sgemm scaling |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for cfg in ["moons", "mlp784", "wide2048"]:
    for np in (1, 2):
        if not rows[(cfg, np)]:
            continue
        step = med("step_ms", cfg, np)
        sps = med("samples_per_s", cfg, np)
        eff = norm = ""
        if np == 2:
            speedup = sps / med("samples_per_s", cfg, 1)
            # how much faster the same sgemm calls run on 2 ranks than on 1 (the hardware's
            # own parallel speedup for this work)
            sgemm_speedup = med("sgemm_ms", cfg, 1) / med("sgemm_ms", cfg, 2)
            eff = "%.0f%%" % (100 * speedup / 2)
            norm = "%.0f%%" % (100 * speedup / sgemm_speedup)
            # the same ratio within each alternating pair of runs: its spread shows how far
            # the machine drifted
            pairs = [(float(b["samples_per_s"]) / float(a["samples_per_s"])) /
                     (float(a["sgemm_ms"]) / float(b["sgemm_ms"]))
                     for a, b in zip(rows[(cfg, 1)], rows[(cfg, 2)])]
            if len(pairs) > 1:
                norm += " (%.0f-%.0f%%)" % (100 * min(pairs), 100 * max(pairs))
        wait = med("comm_wait_ms", cfg, np)
        print("| %s %s | %d | %.3f | %.3f | %.3f | %.3f (%.1f%%) | %.3f | %.1f%% | %.0f | %s | %s |" % (
            cfg, rows[(cfg, np)][0]["layers"], np, step, med("forward_ms", cfg, np), med("backward_ms", cfg, np),
            wait, 100 * wait / step, med("optimizer_ms", cfg, np), 100 * med("sgemm_fraction", cfg, np), sps, eff,
            norm))
PY
