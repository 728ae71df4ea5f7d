#!/bin/bash
# What the weights' moving average ([train] ema_decay) costs: datasets/configs/fashion_mnist_fast.ini
# (784-256-128-10 with batch norm, 235k parameters) for its 10 epochs without the stop, on 2
# ranks, gemm = openblas, with ema_decay = 0 and 0.999, seeds 1-3 (or SEEDS). Per run: the
# training seconds (the last line), the optimizer phase per step (metrics.csv optimizer_ms,
# the average's update included) and the final test accuracy of the weights and of the average.
# Then the same update in PyTorch in the same run, one thread: AveragedModel.update_parameters
# on the same network (the EMA average, use_buffers = True), the median of 2000 calls.
#
#   scripts/bench/ema.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
SEEDS=${SEEDS:-1 2 3}
[[ -x build/trainer ]] || scripts/build.sh >/dev/null
[[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]] ||
  { echo "no Fashion-MNIST (apt-get install dataset-fashion-mnist)"; exit 0; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
WORK=$(mktemp -d /tmp/trainer-ema.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
for seed in $SEEDS; do
  for decay in 0 0.999; do
    d=$WORK/$decay-$seed
    out=$(mpirun -np 2 --bind-to core build/trainer train datasets/configs/fashion_mnist_fast.ini \
      --set train.stop_at= --set train.seed="$seed" --set train.ema_decay=$decay --set train.gemm=openblas \
      --set output.checkpoint_every=0 --set output.dir="$d" </dev/null | tail -1)
    row=$(awk -F, 'NR == 1 {for (i = 1; i <= NF; i++) h[$i] = i}
                   END {printf "optimizer_ms=%s test=%s ema_test=%s", $h["optimizer_ms"], $h["test_accuracy"],
                        ("ema_test_accuracy" in h) ? $h["ema_test_accuracy"] : "-"}' "$d/metrics.csv")
    echo "RESULT decay=$decay seed=$seed seconds=$(sed -n 's/^trained .* in \([0-9.]*\) s;.*/\1/p' <<<"$out") $row"
  done
done | tee "$WORK/results" | sed 's/^RESULT //'
/usr/bin/python3 - "$WORK/results" <<'PY'
import collections, statistics as st, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    kv = dict(f.split("=", 1) for f in line.split()[1:])
    runs[kv["decay"]].append(kv)
print("\n| ema_decay | training s, median (range) | optimizer ms a step, median (range) | test accuracy, mean (range) |")
print("| --- | --- | --- | --- |")
for decay, v in sorted(runs.items()):
    s = [float(k["seconds"]) for k in v]
    o = [float(k["optimizer_ms"]) for k in v]
    a = [float(k["ema_test"] if k["ema_test"] != "-" else k["test"]) for k in v]
    print("| %s | %.2f (%.2f-%.2f) | %.3f (%.3f-%.3f) | %.4f (%.4f-%.4f)%s |" % (
        decay, st.median(s), min(s), max(s), st.median(o), min(o), max(o), st.mean(a), min(a), max(a),
        " (the average)" if decay != "0" else ""))
PY
/usr/bin/python3 - <<'PY'
import time
try:
    import torch
except ImportError:
    print("PyTorch not installed: no comparison (apt-get install python3-torch)")
    raise SystemExit(0)
torch.set_num_threads(1)
nn = torch.nn
model = nn.Sequential(nn.Linear(784, 256), nn.BatchNorm1d(256), nn.ReLU(), nn.Linear(256, 128), nn.BatchNorm1d(128),
                      nn.ReLU(), nn.Linear(128, 10))
swa = torch.optim.swa_utils
if hasattr(swa, "get_ema_multi_avg_fn"):
    avg = swa.AveragedModel(model, multi_avg_fn=swa.get_ema_multi_avg_fn(0.999), use_buffers=True)
else:
    avg = swa.AveragedModel(model, avg_fn=lambda a, p, n: 0.999 * a + 0.001 * p, use_buffers=True)
times = []
for i in range(2000):
    t = time.perf_counter()
    avg.update_parameters(model)
    times.append(time.perf_counter() - t)
times = sorted(times[100:])
print("PyTorch %s, one thread: AveragedModel.update_parameters on the same network %.3f ms a call (median; "
      "%.3f-%.3f ms, 10th-90th percentile)" % (torch.__version__, 1e3 * times[len(times) // 2],
                                              1e3 * times[len(times) // 10], 1e3 * times[9 * len(times) // 10]))
PY
