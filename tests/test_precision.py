#!/usr/bin/python3
"""bf16 trains as well as fp32 on real data: Fashion-MNIST (datasets/configs/fashion_mnist.ini,
784-256-128-10, Adam, batch 128) for 5 epochs with seeds 1-5, each seed in fp32 (gemm =
onednn) and in bf16: the mean test accuracy of bf16 lies within 0.3 points of fp32's. The
runs are otherwise identical (same initial weights and data order per seed), and each bf16
run's final weights differ from its fp32 twin's (bf16 was on). Skips (77) without the data set
or without native bf16 products.

    tests/test_precision.py TRAINER_BINARY SOURCE_DIR
"""
import os
import re
import shutil
import statistics
import sys
import tempfile

import checkpoint_hash
import checks

SRC = os.path.abspath(sys.argv[2])
CONFIG = os.path.join(SRC, "datasets", "configs", "fashion_mnist.ini")
SEEDS, EPOCHS = (1, 2, 3, 4, 5), 5

if not os.path.exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"):
    print("SKIP: no Fashion-MNIST (apt-get install dataset-fashion-mnist)")
    sys.exit(77)
work = tempfile.mkdtemp(prefix="trainer-precision.")
probe = checks.trainer("train", os.path.join(SRC, "datasets", "configs", "moons.ini"), "--set", "train.epochs=1",
                       "--set", "train.precision=bf16", "--set", f"output.dir={work}/probe")
if probe.returncode != 0:
    print("SKIP: bf16 is not available here: " + (probe.stderr.strip().splitlines() or ["?"])[-1])
    shutil.rmtree(work, ignore_errors=True)
    sys.exit(77)

accuracy = {"fp32": [], "bf16": []}
for seed in SEEDS:
    weights = {}
    for prec in ("fp32", "bf16"):
        d = os.path.join(work, f"{prec}-{seed}")
        p = checks.trainer("train", CONFIG, "--set", f"train.seed={seed}", "--set", f"train.epochs={EPOCHS}",
                           "--set", f"train.eval_every={EPOCHS}", "--set", "train.gemm=onednn",
                           "--set", f"train.precision={prec}", "--set", f"output.dir={d}", "--set", "train.threads=1")
        if not checks.check(f"seed {seed} {prec} trains", p.returncode == 0, p.stderr[-1500:]):
            continue
        acc = [float(m.group(1)) for m in re.finditer(r"test_acc ([0-9.]+)", p.stdout)]
        accuracy[prec].append(acc[-1])
        weights[prec] = checkpoint_hash.fingerprint(d)
        print(f"     seed {seed} {prec}: test accuracy {acc[-1]:.4f}", flush=True)
    if len(weights) == 2:
        checks.check(f"seed {seed}: the bf16 run's checkpoint differs from the fp32 one", weights["fp32"] != weights["bf16"])

if len(accuracy["fp32"]) == len(accuracy["bf16"]) == len(SEEDS):
    m32, m16 = statistics.mean(accuracy["fp32"]), statistics.mean(accuracy["bf16"])
    s32, s16 = statistics.stdev(accuracy["fp32"]), statistics.stdev(accuracy["bf16"])
    print(f"     fp32 {m32:.4f} +- {s32:.4f}, bf16 {m16:.4f} +- {s16:.4f} (mean +- sd of {len(SEEDS)} seeds)")
    checks.check(f"bf16's mean test accuracy is within 0.3 points of fp32's ({100 * (m16 - m32):+.2f} points)",
                 abs(m16 - m32) <= 0.003)
shutil.rmtree(work, ignore_errors=True)
checks.finish()
