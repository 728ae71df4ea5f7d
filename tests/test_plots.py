#!/usr/bin/python3
"""The plotting scripts on tiny runs: each writes a non-empty PNG of the requested size, and
fails with a clear message and status 2 when the run lacks what it needs.

usage: tests/test_plots.py TRAINER_BINARY SOURCE_DIR
"""
import os
import struct
import subprocess
import sys
import tempfile

import checks
from checks import check

trainer, src = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
try:
    import h5py  # noqa: F401
    import matplotlib  # noqa: F401
except ImportError as e:
    print(f"SKIP: {e} (install python3-h5py and python3-matplotlib)")
    sys.exit(77)

tmp = tempfile.mkdtemp(prefix="trainer-plots-")


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, TRAINER=trainer), **kw)


def train(name, *sets):
    cmd = [trainer, "train", os.path.join(src, "datasets/configs/moons.ini"), "--set", f"output.dir={tmp}/{name}",
           "--set", "train.epochs=6", "--set", "train.eval_every=2"]
    for s in sets:
        cmd += ["--set", s]
    r = run(cmd)
    if r.returncode != 0:
        print(r.stdout, r.stderr)
        sys.exit(f"training {name} failed")
    return os.path.join(tmp, name)


def png_size(path):
    """(width, height) from the PNG header, or None when path is not a PNG."""
    with open(path, "rb") as f:
        head = f.read(24)
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", head[16:24])


def expect_png(cmd, path, size, what):
    r = run(cmd)
    if r.returncode != 0:
        check(f"{what}: exit {r.returncode}: {r.stderr.strip()}", False)
        return
    ok = os.path.exists(path) and os.path.getsize(path) > 5000 and png_size(path) == size
    check(f"{what}: {path} is a PNG of {size[0]}x{size[1]} "
              f"(got {png_size(path) if os.path.exists(path) else 'no file'})", ok)


def expect_error(cmd, needle, what):
    r = run(cmd)
    check(f"{what}: status 2 and '{needle}' (got {r.returncode}: "
                                                    f"{r.stderr.strip()[-200:]})", r.returncode == 2 and needle in r.stderr)


S = os.path.join(src, "scripts")
binary = train("binary", "data.class_names=upper, lower", "data.n=400")
blobs = train("blobs", "data.generator=blobs", "data.classes=3", "model.layers=2,16,3",
              "model.output_activation=identity", "train.loss=cross_entropy", "data.n=300")
regress = train("regress", "data.generator=inverse", "model.layers=1,16,1", "model.activations=tanh",
                "model.output_activation=identity", "train.loss=mse", "data.n=300")
for kind, extra in (("moons", []), ("blobs", ["--classes", "3"]), ("inverse", [])):
    out = os.path.join(tmp, f"{kind}.h5" if kind != "inverse" else "inverse.csv")
    r = run([trainer, "data", "gen", kind, "--out", out, "--n", "200"] + extra)
    assert r.returncode == 0, r.stderr

# plot_metrics: default place and size, custom size, log axis
expect_png([f"{S}/plot_metrics.py", binary], f"{binary}/metrics.png", (1000, 700), "plot_metrics default")
expect_png([f"{S}/plot_metrics.py", regress, "--log", "--size", "640x480", "--out", f"{tmp}/m.png"], f"{tmp}/m.png",
           (640, 480), "plot_metrics regression, --log, --size")
stepped = train("stepped", "output.log_every_steps=3")
expect_png([f"{S}/plot_metrics.py", stepped], f"{stepped}/metrics.png", (1000, 700),
           "plot_metrics with the per-step log (loss and gradient norm per step)")
# plot_decision: binary and 3-class regions, 1-D regression fit
expect_png([f"{S}/plot_decision.py", f"{binary}/best.h5", f"{tmp}/moons.h5", "--resolution", "60"],
           f"{binary}/decision.png", (800, 650), "plot_decision binary classifier")
expect_png([f"{S}/plot_decision.py", f"{blobs}/best.h5", f"{tmp}/blobs.h5", "--resolution", "60", "--size",
            "500x400", "--out", f"{tmp}/d3.png"], f"{tmp}/d3.png", (500, 400), "plot_decision 3 classes")
expect_png([f"{S}/plot_decision.py", f"{regress}/best.h5", f"{tmp}/inverse.csv"], f"{regress}/decision.png",
           (800, 650), "plot_decision 1-D regression")
# plot_confusion: names from the run's config, explicit names, normalized
expect_png([f"{S}/plot_confusion.py", binary], f"{binary}/confusion.png", (800, 700), "plot_confusion")
expect_png([f"{S}/plot_confusion.py", blobs, "--normalize", "--class-names", "a,b,c", "--epoch", "4", "--out",
            f"{tmp}/c3.png"], f"{tmp}/c3.png", (800, 700), "plot_confusion --normalize --epoch")

# the course's pictures: image samples, one sample's probabilities, a scatter by predicted
# class (features, PCA, a hidden layer), the activations as the trainer's kernels compute them
digits_h5 = os.path.join(tmp, "digits.h5")
have_digits = run([trainer, "data", "gen", "digits", "--out", digits_h5]).returncode == 0
if have_digits:
    r = run([trainer, "train", os.path.join(src, "datasets/configs/digits.ini"), "--set", f"output.dir={tmp}/digits",
             "--set", "train.epochs=5"])
    assert r.returncode == 0, r.stderr
    dig = f"{tmp}/digits/best.h5"
    expect_png([f"{S}/plot_samples.py", dig, digits_h5], f"{tmp}/digits/samples.png", (1000, 600), "plot_samples")
    expect_png([f"{S}/plot_samples.py", dig, digits_h5, "--errors", "--rows", "2", "--cols", "5", "--size", "600x300",
                "--out", f"{tmp}/err.png"], f"{tmp}/err.png", (600, 300), "plot_samples --errors")
    expect_png([f"{S}/plot_probabilities.py", dig, digits_h5, "--row", "7"], f"{tmp}/digits/probabilities.png",
               (900, 450), "plot_probabilities of an image")
    expect_png([f"{S}/plot_probabilities.py", f"{binary}/best.h5", f"{tmp}/moons.h5", "--out", f"{tmp}/pb.png"],
               f"{tmp}/pb.png", (900, 450), "plot_probabilities of a one-unit binary classifier")
    expect_png([f"{S}/plot_scatter.py", dig, digits_h5], f"{tmp}/digits/scatter.png", (800, 650),
               "plot_scatter, principal components")
    expect_png([f"{S}/plot_scatter.py", dig, digits_h5, "--layer", "0", "--out", f"{tmp}/sl.png"], f"{tmp}/sl.png",
               (800, 650), "plot_scatter of a hidden layer's activations")
    expect_png([f"{S}/plot_scatter.py", f"{blobs}/best.h5", f"{tmp}/blobs.h5", "--features", "1,0", "--out",
                f"{tmp}/sf.png"], f"{tmp}/sf.png", (800, 650), "plot_scatter of two features")
    expect_error([f"{S}/plot_samples.py", f"{regress}/best.h5", f"{tmp}/inverse.csv"], "not a classifier",
                 "plot_samples of a regression")
    expect_error([f"{S}/plot_probabilities.py", dig, digits_h5, "--row", "5000"], "--row 5000",
                 "plot_probabilities beyond the data")
    expect_error([f"{S}/plot_scatter.py", dig, digits_h5, "--layer", "3"], "weight layers 0 to 1",
                 "plot_scatter of a layer the model lacks")
    expect_error([f"{S}/plot_samples.py", f"{blobs}/best.h5", f"{tmp}/blobs.h5"], "not a square image",
                 "plot_samples of data that are not images")
    # predict --layer: the hidden layer's activations are relu(x W^T + b) of the checkpoint's tensors
    import h5py
    import numpy as np
    r = run([trainer, "predict", "--checkpoint", dig, "--input", digits_h5, "--output", f"{tmp}/l0.csv",
             "--layer", "0"])
    with h5py.File(dig, "r") as f, h5py.File(digits_h5, "r") as g:
        w, b = f["model/0/weight"][...], f["model/0/bias"][...]
        x = g["X"][...].astype(np.float32) / 16
    want = np.maximum(x @ w.T + b, 0)
    got = np.genfromtxt(f"{tmp}/l0.csv", delimiter=",", skip_header=1) if r.returncode == 0 else None
    check(f"predict --layer 0 writes relu(x W^T + b) ({r.stderr.strip()})", got is not None and got.shape == want.shape and np.abs(got - want).max() < 1e-4)
    head = open(f"{tmp}/l0.csv").readline().strip().split(",") if r.returncode == 0 else []
    check("predict --layer: columns a0..a63", head[:2] == ["a0", "a1"] and len(head) == 64)
expect_png([f"{S}/plot_activations.py", "--out", f"{tmp}/act.png"], f"{tmp}/act.png", (1200, 800),
           "plot_activations")
expect_png([f"{S}/plot_activations.py", "--only", "relu,leaky_relu", "--leaky-slope", "0.2", "--size", "600x300",
            "--out", f"{tmp}/act2.png"], f"{tmp}/act2.png", (600, 300), "plot_activations --only --leaky-slope")
expect_error([f"{S}/plot_activations.py", "--only", "swish"], "unknown activation swish",
             "plot_activations of an unknown activation")
r = run([trainer, "activations", "--out", f"{tmp}/acts.csv", "--set", "model.leaky_slope=0.2"])
if check(f"trainer activations ({r.stderr.strip()})", r.returncode == 0):
    import numpy as np
    t = np.genfromtxt(f"{tmp}/acts.csv", delimiter=",", names=True)
    x = t["x"]
    check("trainer activations: the kernels' derivatives are the functions' derivatives", np.abs(t["d_tanh"] - (1 - np.tanh(x) ** 2)).max() < 1e-6 and
          np.abs(t["d_sigmoid"] - t["sigmoid"] * (1 - t["sigmoid"])).max() < 1e-6 and
          np.abs(t["d_leaky_relu"][x < 0] - 0.2).max() < 1e-6 and np.all(t["d_relu"][x > 0] == 1))

# what each says when the run lacks what it needs
empty = os.path.join(tmp, "empty")
os.mkdir(empty)
expect_error([f"{S}/plot_metrics.py", empty], "metrics.csv: no such file", "plot_metrics on an empty directory")
expect_error([f"{S}/plot_metrics.py", f"{tmp}/nope"], "not a run directory", "plot_metrics on a missing directory")
expect_error([f"{S}/plot_confusion.py", empty], "metrics.h5: no such file", "plot_confusion on an empty directory")
expect_error([f"{S}/plot_confusion.py", regress], "not a classifier", "plot_confusion on a regression run")
expect_error([f"{S}/plot_confusion.py", binary, "--split", "val"], "no /metrics/val_confusion",
             "plot_confusion without a validation set")
expect_error([f"{S}/plot_confusion.py", binary, "--epoch", "3"], "epoch 3 was not evaluated",
             "plot_confusion at an epoch not evaluated")
expect_error([f"{S}/plot_decision.py", f"{empty}/best.h5", f"{tmp}/moons.h5"], "best.h5: no such file",
             "plot_decision without a checkpoint")
expect_error([f"{S}/plot_decision.py", f"{binary}/best.h5", f"{tmp}/inverse.csv"], "1 features, but the model takes 2",
             "plot_decision with data of the wrong width")
expect_error([f"{S}/plot_metrics.py", binary, "--size", "big"], "WIDTHxHEIGHT", "plot_metrics with a bad --size")
# plot_search: a small search with successive halving (hollow stopped trials, curves by rung)
space = os.path.join(tmp, "lr.space")
with open(space, "w") as f:
    f.write("train.lr = 0.1 0.01 0.001\nmodel.activations = relu tanh\nsearch.asha = true\nsearch.min_epochs = 2\n")
r = run([trainer, "search", os.path.join(src, "datasets/configs/moons.ini"), space, "--set", f"output.dir={tmp}/search",
         "--set", "train.epochs=6", "--set", "train.eval_every=2", "--set", "data.n=300"])
check(f"a search to plot (status {r.returncode})", r.returncode == 0, r.stderr[-300:])
expect_png([f"{S}/plot_search.py", f"{tmp}/search"], f"{tmp}/search/search.png", (1200, 800), "plot_search default")
expect_png([f"{S}/plot_search.py", f"{tmp}/search", "--metric", "train_loss", "--size", "800x600", "--out",
            f"{tmp}/s.png"], f"{tmp}/s.png", (800, 600), "plot_search --metric --size --out")
expect_error([f"{S}/plot_search.py", f"{tmp}/search", "--metric", "nope"], "--metric nope", "plot_search, unknown metric")
expect_error([f"{S}/plot_search.py", empty], "trials.h5: no such file", "plot_search on a directory without a search")
for script in ("plot_metrics.py", "plot_decision.py", "plot_confusion.py", "plot_samples.py",
               "plot_probabilities.py", "plot_scatter.py", "plot_activations.py", "plot_search.py"):
    r = run([f"{S}/{script}", "--help"])
    check(f"{script} --help", r.returncode == 0 and "usage:" in r.stdout)

checks.finish(tmp)
