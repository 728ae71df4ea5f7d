#!/usr/bin/python3
"""The real data sets of Debian's python3-sklearn, read by the trainer in C (issue 16).

Each set written by `trainer data gen NAME` has the shape, feature names, class names and every
value scikit-learn's own loader gives (Boston, whose loader scikit-learn removed, against its
CSV file read with NumPy); each example config in datasets/configs reaches the result
datasets/README.md documents; a missing package gives a message naming it (status 3).

    tests/test_real_data.py TRAINER_BINARY SOURCE_DIR
"""
import os
import re
import sys
import tempfile

import h5py
import numpy as np

import checks
from checks import check, trainer

SOURCE = os.path.abspath(sys.argv[2])
DATA_DIR = "/usr/lib/python3/dist-packages/sklearn/datasets/data"


def text(v):
    """An HDF5 string attribute as str (h5py gives fixed-length ones as bytes)."""
    return v.decode() if isinstance(v, (bytes, np.bytes_)) else v


def sklearn_sets():
    from sklearn import datasets as d
    sets = {
        "iris": d.load_iris(), "wine": d.load_wine(), "breast_cancer": d.load_breast_cancer(),
        "digits": d.load_digits(), "diabetes": d.load_diabetes(scaled=False),
    }
    out = {}
    for name, b in sets.items():
        classes = list(b.target_names) if "target_names" in b and name != "digits" else None
        out[name] = (b.data, b.target, list(b.feature_names), classes)
    raw = np.genfromtxt(os.path.join(DATA_DIR, "boston_house_prices.csv"), delimiter=",", skip_header=2)
    with open(os.path.join(DATA_DIR, "boston_house_prices.csv")) as f:
        f.readline()
        names = [n.strip().strip('"') for n in f.readline().strip().split(",")]
    out["boston"] = (raw[:, :13], raw[:, 13], names[:13], None)
    return out


def main():
    if not os.path.isdir(DATA_DIR):
        print(f"SKIP: {DATA_DIR} missing (apt-get install python3-sklearn)")
        return 77
    tmp = tempfile.mkdtemp(prefix="real_data.")
    expected = sklearn_sets()

    # 1. every set, value for value, with its names
    for name, (X, y, features, classes) in expected.items():
        out = os.path.join(tmp, name + ".h5")
        r = trainer("data", "gen", name, "--out", out)
        if not check(f"data gen {name}", r.returncode == 0, r.stderr.strip()):
            continue
        with h5py.File(out, "r") as f:
            gx, gy = f["X"][...], f["y"][...]
            got_features = [s.strip() for s in text(f["X"].attrs.get("columns", "")).split(", ")]
            got_classes = text(f["y"].attrs.get("class_names"))
        check(f"{name}: shape {X.shape}", gx.shape == X.shape, f"{gx.shape}")
        check(f"{name}: first row", np.array_equal(gx[0], X[0].astype(np.float32)), f"{gx[0][:5]} vs {X[0][:5]}")
        check(f"{name}: every value", np.array_equal(gx, X.astype(np.float32)))
        check(f"{name}: targets", np.array_equal(gy.reshape(-1).astype(np.float64), y.astype(np.float32)))
        check(f"{name}: feature names", got_features == features, f"{got_features[:3]} vs {features[:3]}")
        if classes is not None:
            check(f"{name}: class names", got_classes == ", ".join(classes), f"{got_classes!r}")
        check(f"{name}: labels are int64" if classes or name == "digits" else f"{name}: targets are float",
              (gy.dtype == np.int64) == (classes is not None or name == "digits"), str(gy.dtype))

    # 2. the example configs reach what datasets/README.md says
    goals = {"digits": ("test_acc", 0.95), "breast_cancer": ("test_acc", 0.95), "iris": ("test_acc", 0.90),
             "wine": ("test_acc", 0.90), "boston": ("test_r2", 0.80), "diabetes": ("test_r2", 0.45)}
    for name, (metric, goal) in goals.items():
        r = trainer("train", os.path.join(SOURCE, "datasets/configs", name + ".ini"),
                    "--set", f"output.dir={tmp}/run_{name}")
        values = re.findall(metric + r" ([0-9.eE+-]+)", r.stdout)
        got = float(values[-1]) if values else float("nan")
        check(f"{name}.ini: {metric} {got:.4f} >= {goal}", r.returncode == 0 and got >= goal,
              r.stderr.strip()[-300:])
        if name == "breast_cancer":  # the class names reach the report
            check("breast_cancer report names the classes", "malignant" in r.stdout and "benign" in r.stdout)

    # 3. a missing package is named
    r = trainer("train", os.path.join(SOURCE, "datasets/configs/digits.ini"), "--set", "data.builtin_dir=/nonexistent",
                "--set", f"output.dir={tmp}/missing")
    check("missing files: status 3 naming python3-sklearn and the file",
          r.returncode == 3 and "python3-sklearn" in r.stderr and "/nonexistent/digits.csv.gz" in r.stderr,
          f"{r.returncode} {r.stderr.strip()}")
    # a malformed file names its line
    bad = os.path.join(tmp, "bad")
    os.makedirs(bad)
    with open(os.path.join(DATA_DIR, "iris.csv")) as f:
        lines = f.readlines()
    lines[5] = lines[5].replace("1.4", "x1.4", 1)
    with open(os.path.join(bad, "iris.csv"), "w") as f:
        f.writelines(lines)
    r = trainer("data", "gen", "iris", "--out", os.path.join(tmp, "bad.h5"), "--builtin_dir", bad)
    check("malformed file: status 3 naming file:line", r.returncode == 3 and "iris.csv:6:" in r.stderr,
          f"{r.returncode} {r.stderr.strip()}")
    check("malformed file: nothing written", not os.path.exists(os.path.join(tmp, "bad.h5")))
    # a source is one of generator, builtin, files
    r = trainer("train", os.path.join(SOURCE, "datasets/configs/digits.ini"), "--set", "data.generator=moons",
                "--set", f"output.dir={tmp}/two")
    check("two sources: status 2 naming them", r.returncode == 2 and "one source" in r.stderr, r.stderr.strip())

    print("all passed" if not checks.failures else f"{checks.failures} FAILED")
    return 1 if checks.failures else 0


if __name__ == "__main__":
    sys.exit(main())
