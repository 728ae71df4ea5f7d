#!/bin/bash
# The soak benchmark: many epochs of Fashion-MNIST on 2 ranks, with every rank's resident
# memory sampled twice a second and the throughput of every epoch taken from the metric log.
# A long run must hold still: no memory growth after the first epoch, no drift in step time.
#
#   scripts/bench/soak.sh [EPOCHS] [RUN_DIR]      (defaults 60 and build/soak; ~2 min on 2 cores)
# Needs the dataset-fashion-mnist package. Prints a Markdown summary; the samples are in
# RUN_DIR/rss.csv (time_s, rank, rss_kib) and RUN_DIR/metrics.csv.
set -euo pipefail
cd "$(dirname "$0")/../.."
EPOCHS=${1:-60}
RUN=${2:-build/soak}
[[ -x build/trainer ]] || scripts/build.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
rm -rf "$RUN"
mkdir -p "$RUN"
mpirun -np 2 --bind-to core build/trainer train datasets/configs/fashion_mnist.ini --set train.epochs="$EPOCHS" \
    --set train.eval_every=1 --set output.checkpoint_every=5 --set train.threads=1 --set output.dir="$RUN" \
    >"$RUN/train.log" 2>&1 &
mpirun_pid=$!
start=$(date +%s%N)
echo "time_s,rank,rss_kib" >"$RUN/rss.csv"
while kill -0 "$mpirun_pid" 2>/dev/null; do
    ms=$((($(date +%s%N) - start) / 1000000))
    now=$((ms / 1000)).$(printf %03d $((ms % 1000)))
    for p in $(pgrep -P "$mpirun_pid" 2>/dev/null); do
        rank=$(tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | sed -n 's/^OMPI_COMM_WORLD_RANK=//p')
        rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || true)
        [[ -n $rank && -n $rss ]] && echo "$now,$rank,$rss" >>"$RUN/rss.csv"
    done
    sleep 0.5
done
wait "$mpirun_pid" || { echo "soak.sh: the run failed:"; tail -5 "$RUN/train.log"; exit 1; }

/usr/bin/python3 - "$RUN" <<'PY'
import csv, statistics as st, sys
run = sys.argv[1]
metrics = list(csv.DictReader(open(f"{run}/metrics.csv")))
rss = list(csv.DictReader(open(f"{run}/rss.csv")))
t_epoch1 = float(metrics[0]["time_s"])  # the end of the first epoch, in training time
sps = [float(r["samples_per_s"]) for r in metrics]
print(f"Soak: Fashion-MNIST 784-256-128-10, Adam, batch 128, 2 ranks x 1 thread, {len(metrics)} epochs, "
      f"{float(metrics[-1]['time_s']):.0f} s of training, final test accuracy {float(metrics[-1]['test_accuracy']):.4f}\n")
print("| rank | RSS after epoch 1 (MiB) | at 10% of the run (or epoch 1) | at the end | max | growth since then |")
print("|---|---|---|---|---|---|")
t_end = float(rss[-1]["time_s"])
startup = max(0.0, t_end - float(metrics[-1]["time_s"]))  # wall clock before training time starts
for rank in sorted({r["rank"] for r in rss}):
    samples = [(float(r["time_s"]), int(r["rss_kib"])) for r in rss if r["rank"] == rank]
    at = lambda t: min(samples, key=lambda s: abs(s[0] - t))[1] / 1024
    t1 = startup + t_epoch1
    first, tenth, last = at(t1), at(max(t1, 0.1 * t_end)), samples[-1][1] / 1024
    print(f"| {rank} | {first:.1f} | {tenth:.1f} | {last:.1f} | {max(k for _, k in samples) / 1024:.1f} | "
          f"{last - tenth:+.1f} MiB ({len(samples)} samples) |")
half = len(sps) // 2
print(f"\nsamples/s per epoch: median {st.median(sps):.0f}, min {min(sps):.0f}, max {max(sps):.0f}, "
      f"sd {st.pstdev(sps) / st.mean(sps) * 100:.1f}% of the mean; "
      f"first half median {st.median(sps[:half]):.0f}, second half {st.median(sps[half:]):.0f} "
      f"({(st.median(sps[half:]) / st.median(sps[:half]) - 1) * 100:+.1f}%)")
PY
