#!/usr/bin/python3
"""PyTorch interop: a checkpoint exported with scripts/to_torch.py predicts what `trainer
predict` predicts (to 1e-5), and weights imported with scripts/from_torch.py start a run
from exactly those parameters. Exits 77 (skipped) when PyTorch is not installed.

usage: tests/test_interop.py TRAINER_BINARY SOURCE_DIR
"""
import os
import subprocess
import sys
import tempfile

try:
    import torch
except ImportError:
    print("SKIP: PyTorch is not installed (apt-get install python3-torch)")
    sys.exit(77)
import h5py
import numpy as np

trainer, source = sys.argv[1], sys.argv[2]
scripts = os.path.join(source, "scripts")
sys.path.insert(0, scripts)
tmp = tempfile.mkdtemp(prefix="trainer-interop-")
failures = 0


def run(*args):
    r = subprocess.run(list(args), capture_output=True, text=True)
    if r.returncode != 0:
        print(" ".join(args), "failed:", r.stdout, r.stderr, sep="\n")
        sys.exit(1)
    return r.stdout


def check(ok, msg):
    global failures
    print(("ok   " if ok else "FAIL ") + msg)
    failures += not ok


CASES = {
    # name: (model and data overrides, how torch's output becomes trainer's prediction)
    "binary": (["--set", "data.generator=moons", "--set", "model.layers=2,16,16,1", "--set", "model.activations=tanh",
                "--set", "model.output_activation=sigmoid", "--set", "train.loss=bce"], "sigmoid_out"),
    "multiclass": (["--set", "data.generator=blobs", "--set", "data.classes=4", "--set", "model.layers=2,16,4",
                    "--set", "model.activations=gelu", "--set", "model.output_activation=identity",
                    "--set", "train.loss=cross_entropy"], "softmax"),
    "regression": (["--set", "data.generator=inverse", "--set", "model.layers=1,8,8,1", "--set",
                    "model.activations=elu", "--set", "model.output_activation=identity", "--set", "train.loss=mse"],
                   "identity"),
}

config = os.path.join(tmp, "base.ini")
with open(config, "w") as f:
    f.write("[model]\nlayers = 2, 4, 1\n[data]\ngenerator = moons\nn = 400\nscale = standard\ntest_fraction = 0.2\n"
            "[train]\nloss = mse\noptimizer = adam\nlr = 0.01\nepochs = 5\n")

for name, (sets, kind) in CASES.items():
    run_dir = os.path.join(tmp, name)
    run(trainer, "train", config, "--set", f"output.dir={run_dir}", *sets)
    ckpt = os.path.join(run_dir, "best.h5")
    features = 1 if name == "regression" else 2
    gen = {"binary": "moons", "multiclass": "blobs", "regression": "inverse"}[name]
    inp = os.path.join(tmp, f"{name}-in.h5")
    run(trainer, "data", "gen", gen, "--out", inp, "--n", "300", "--seed", "7",
        *(["--classes", "4"] if name == "multiclass" else []))
    pred = os.path.join(tmp, f"{name}-pred.h5")
    run(trainer, "predict", "--checkpoint", ckpt, "--input", inp, "--output", pred)
    with h5py.File(pred, "r") as f:
        want = np.array(f["probabilities" if kind != "identity" else "predictions"])
    # export and predict with PyTorch
    pt = os.path.join(tmp, f"{name}.pt")
    run("/usr/bin/python3", os.path.join(scripts, "to_torch.py"), ckpt, pt)
    saved = torch.load(pt)
    model, scaler = saved["model"], saved["scaler"]
    with h5py.File(inp, "r") as f:
        x = torch.from_numpy(np.array(f["X"], dtype=np.float32))
    x = (x - scaler["center"]) / scaler["scale"]
    with torch.no_grad():
        y = model(x)
    if kind == "softmax":
        y = torch.softmax(y, dim=1)
    got = y.numpy()
    diff = float(np.max(np.abs(got - want)))
    check(got.shape == want.shape and diff < 1e-5, f"{name}: PyTorch predictions match trainer predict ({diff:.2e})")
    # import into a new run: --init-from with 0 epochs keeps the parameters exactly
    init = os.path.join(tmp, f"{name}-init.h5")
    run("/usr/bin/python3", os.path.join(scripts, "from_torch.py"), pt, init)
    again = os.path.join(tmp, f"{name}-again")
    run(trainer, "train", config, "--set", f"output.dir={again}", *sets, "--set", "train.epochs=0",
        "--init-from", init)
    last = sorted(p for p in os.listdir(again) if p.startswith("ckpt-"))[-1]
    with h5py.File(ckpt, "r") as a, h5py.File(os.path.join(again, last), "r") as b:
        same = all(np.array_equal(a["model"][i][k], b["model"][i][k]) for i in a["model"] for k in a["model"][i])
    check(same, f"{name}: from_torch.py + --init-from restore the parameters bit for bit")

sys.exit(1 if failures else 0)
