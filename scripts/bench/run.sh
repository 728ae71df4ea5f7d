#!/bin/bash
# The data-parallel benchmark: per-phase step time, samples/s and the fraction of the step
# that the same products need alone (in the run's engine and precision), at np=1 and np=2
# with one thread per rank, each rank bound to a core, for three networks and each engine x
# precision (VARIANTS, default "openblas-fp32 onednn-fp32 onednn-bf16"; bf16 only where the
# CPU has it). np=1 and np=2 runs alternate REPEAT times and the medians are reported,
# because a shared machine's speed drifts (the last column adds the range of the ratio over
# the alternating pairs). The first run also measures the machine's limit (trainer bench
# --limit), and every rate is stated as a share of its precision's FMA peak per core. A second
# table splits the np=2 runs by where the host placed the two CPUs (the round trip of a cache
# line between the ranks, which trainer bench measures: a virtual machine's two CPUs may share
# a core complex or not, and the node-shared exchange pays for every line that crosses).
#
# With root (and TWO_NODES unset or 1), every np=2 run is followed by the same on two namespace
# nodes of tests/slurm_cluster.sh, one rank each over TCP (scripts/bench/link.sh measures that
# link): the table's "2 nodes" rows, and the share of one node's np=2 speed they keep. Those
# runs repeat for each of TWO_NODE_MODES (default "fp32 bf16": the gradient between the nodes
# in fp32, and compressed to bf16; also fp16 and deterministic).
#
#   scripts/bench/run.sh [REPEAT] [STEPS]        (defaults 3 and 1000)
# Writes Markdown tables to standard output and the raw lines to build/bench.log.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPEAT=${1:-3}
STEPS=${2:-1000}
[[ -x build/trainer ]] || scripts/build.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
LOG=build/bench.log
: > "$LOG"
declare -A steps_for=([moons]=$((STEPS * 3)) [mlp784]=$STEPS [wide2048]=$((STEPS / 25 > 10 ? STEPS / 25 : 10)))
VARIANTS=${VARIANTS:-openblas-fp32 onednn-fp32 onednn-bf16}
TWO_NODES=${TWO_NODES:-1}
TWO_NODE_MODES=${TWO_NODE_MODES:-fp32 bf16}
[[ $(id -u) -eq 0 ]] || TWO_NODES=0
source scripts/bench/two_nodes.sh # two_nodes_up, two_nodes
if [[ $TWO_NODES == 1 ]]; then two_nodes_up 26000; fi
build/trainer bench scripts/bench/mlp784.ini --steps 50 --limit --set train.threads=1 | grep '^LIMIT' >> "$LOG"
for cfg in moons mlp784 wide2048; do
  n=${steps_for[$cfg]}
  for variant in $VARIANTS; do
    engine=${variant%-*} precision=${variant#*-}
    for ((r = 0; r < REPEAT; r++)); do
      for np in 1 2; do
        mpirun -np $np --bind-to core build/trainer bench scripts/bench/$cfg.ini --steps "$n" --warmup 10 \
          --set train.threads=1 --set train.gemm="$engine" --set train.precision="$precision" 2>/dev/null |
          grep '^BENCH' | sed "s/^BENCH/BENCH cfg=$cfg/" >> "$LOG" || echo "skipped $cfg $variant np=$np" >&2
      done
      for mode in $([[ $TWO_NODES == 1 ]] && echo "$TWO_NODE_MODES"); do
        case $mode in
          fp32) extra=() ;;
          deterministic) extra=(--set train.deterministic=true) ;;
          *) extra=(--set train.grad_compression="$mode") ;;
        esac
        two_nodes "$PWD/build/trainer" bench "$PWD/scripts/bench/$cfg.ini" --steps "$n" --warmup 10 --set train.threads=1 \
          --set train.gemm="$engine" --set train.precision="$precision" "${extra[@]}" 2>/dev/null |
          grep '^BENCH' | sed "s/^BENCH/BENCH cfg=$cfg layout=2nodes mode=$mode/" >> "$LOG" ||
          echo "skipped $cfg $variant 2 nodes $mode" >&2
      done
    done
  done
done
/usr/bin/python3 - "$LOG" <<'PY'
import sys, statistics as st, collections
rows = collections.defaultdict(list)
placement = collections.defaultdict(list)
NEAR_NS = 150
limit = {}
for line in open(sys.argv[1]):
    kv = dict(f.split("=", 1) for f in line.split()[1:])
    if line.startswith("LIMIT"):
        limit = {k: float(v) for k, v in kv.items()}
        continue
    layout = int(kv["np"]) if kv.get("layout") != "2nodes" else ("2 nodes " + kv["mode"]).replace(" fp32", "")
    rows[(kv["cfg"], kv["gemm"] + " " + kv["precision"], layout)].append(kv)
print("Limit of one core (trainer bench --limit): fp32 FMA %.1f GFLOP/s, bf16 %.1f GFLOP/s; the 784 network's "
      "products alone: openblas fp32 %.1f (%.0f%%), onednn fp32 %.1f (%.0f%%), onednn bf16 %.1f (%.0f%%)" % (
          limit["fp32_peak"], limit["bf16_peak"],
          limit["openblas_fp32_gflops"], 100 * limit["openblas_fp32_gflops"] / limit["fp32_peak"],
          limit["onednn_fp32_gflops"], 100 * limit["onednn_fp32_gflops"] / limit["fp32_peak"],
          limit["onednn_bf16_gflops"], 100 * limit["onednn_bf16_gflops"] / max(limit["bf16_peak"], 1e-9)))
print()
print("| network | gemm | np | step ms | forward | backward | comm wait | optimizer | products share | samples/s | "
      "% of peak per core | scaling | scaling / products scaling |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for cfg in ["moons", "mlp784", "wide2048"]:
  for variant in [v for v in dict.fromkeys(k[1] for k in rows) if any(k[0] == cfg for k in rows)]:
    def med(key, cfg, np):
        return st.median(float(r[key]) for r in rows[(cfg, variant, np)])
    two_nodes = sorted({k[2] for k in rows if k[0] == cfg and k[1] == variant and isinstance(k[2], str)}, key=len)
    for np in [1, 2] + two_nodes:
        if not rows[(cfg, variant, np)]:
            continue
        step = med("step_ms", cfg, np)
        sps = med("samples_per_s", cfg, np)
        peak = limit["bf16_peak" if variant.endswith("bf16") else "fp32_peak"]
        ranks = 2 if np in two_nodes else np
        share = "%.1f%%" % (100 * sps * med("mflop_per_sample", cfg, np) / 1e3 / ranks / peak)
        eff = norm = ""
        if np in two_nodes and rows[(cfg, variant, 2)]:
            # what two nodes keep of one node's two ranks (the exchange over TCP instead of
            # shared memory), median and range over the alternating runs
            keep = [float(b["samples_per_s"]) / float(a["samples_per_s"])
                    for a, b in zip(rows[(cfg, variant, 2)], rows[(cfg, variant, np)])]
            eff = "%.0f%% of 1 node" % (100 * sps / med("samples_per_s", cfg, 2))
            if len(keep) > 1:
                eff += " (%.0f-%.0f%%)" % (100 * min(keep), 100 * max(keep))
        if np == 2:
            speedup = sps / med("samples_per_s", cfg, 1)
            # how much faster the same products run on 2 ranks than on 1 (the hardware's own
            # parallel speedup for this work)
            gemm_speedup = med("gemm_ms", cfg, 1) / med("gemm_ms", cfg, 2)
            eff = "%.0f%%" % (100 * speedup / 2)
            norm = "%.0f%%" % (100 * speedup / gemm_speedup)
            # the same ratio within each alternating pair of runs: its spread shows how far
            # the machine drifted
            pairs = [(float(b["samples_per_s"]) / float(a["samples_per_s"])) /
                     (float(a["gemm_ms"]) / float(b["gemm_ms"]))
                     for a, b in zip(rows[(cfg, variant, 1)], rows[(cfg, variant, 2)])]
            if len(pairs) > 1:
                norm += " (%.0f-%.0f%%)" % (100 * min(pairs), 100 * max(pairs))
            # the pairs by where the host put the two CPUs (trainer bench's core_rtt_ns: one
            # core complex ~60 ns, two ~370 ns; the exchange's shared lines cost accordingly)
            for r, p in zip(rows[(cfg, variant, 2)], pairs):
                rtt = float(r.get("core_rtt_ns", "nan"))
                placement[(cfg, variant, "near" if rtt < NEAR_NS else "far" if rtt >= NEAR_NS else "?")].append(
                    (p, rtt))
        wait = med("comm_wait_ms", cfg, np)
        print("| %s %s | %s | %s | %.3f | %.3f | %.3f | %.3f (%.1f%%) | %.3f | %.1f%% | %.0f | %s | %s | %s |" % (
            cfg, rows[(cfg, variant, np)][0]["layers"], variant, np, step, med("forward_ms", cfg, np),
            med("backward_ms", cfg, np), wait, 100 * wait / step, med("optimizer_ms", cfg, np),
            100 * med("gemm_fraction", cfg, np), sps, share, eff, norm))
print()
print("By placement of the two ranks' CPUs (a cache line's round trip between them, < %d ns: one core complex):"
      % NEAR_NS)
print()
print("| network | gemm | placement | pairs | round trip ns | scaling / products scaling (median, range) |")
print("| --- | --- | --- | --- | --- | --- |")
for (cfg, variant, where), v in sorted(placement.items()):
    ratios = [p for p, _ in v]
    print("| %s | %s | %s | %d | %.0f | %.0f%% (%.0f-%.0f%%) |" % (
        cfg, variant, where, len(v), st.median(r for _, r in v), 100 * st.median(ratios), 100 * min(ratios),
        100 * max(ratios)))
PY
