#!/usr/bin/python3
"""`trainer data convert`: every input format to the mappable layout, and nothing half-written.

CSV with a header and a column of words (class names, sorted like scikit-learn's
LabelEncoder), IDX (gzip and plain) and HDF5 (float64 chunked and compressed, int32 labels)
become /X float32 contiguous and unfiltered with the values the trainer reads (IDX pixels / 255), /y int64 labels, the names as
attributes. Training on the converted file gives the bits of training on the CSV itself. A bad
cell is reported by line with status 3 and leaves no output; an input, or a file the command did
not write, is never replaced.

    tests/test_convert.py TRAINER_BINARY SOURCE_DIR
"""
import glob
import gzip
import os
import struct
import subprocess
import sys
import tempfile

import checks
from checks import check

import h5py
import numpy as np

from checkpoint_hash import fingerprint

TRAINER = os.path.abspath(sys.argv[1])


def trainer(*args):
    return subprocess.run([TRAINER] + list(args), capture_output=True, text=True, timeout=300)


def mappable(path):
    with h5py.File(path, "r") as f:
        x = f["X"]
        return x.dtype == np.float32 and x.chunks is None and x.compression is None and x.id.get_offset() is not None


work = tempfile.mkdtemp(prefix="trainer-convert.")
os.chdir(work)
try:
    rng = np.random.default_rng(3)
    # 1. CSV with words as labels
    species = np.array(["virginica", "setosa", "versicolor"])
    X = np.round(rng.normal(size=(300, 4)), 3)
    lab = rng.integers(0, 3, size=300)
    with open("iris.csv", "w") as f:
        f.write("sepal length,sepal width,petal length,petal width,species\n")
        for x, k in zip(X, lab):
            f.write(",".join(f"{v:.3f}" for v in x) + f",{species[k]}\n")
    p = trainer("data", "convert", "iris.csv", "iris.h5")
    check("CSV with word labels converts", p.returncode == 0, p.stderr)
    with h5py.File("iris.h5", "r") as f:
        names = f["y"].attrs.get("class_names", "")
        names = names.decode() if isinstance(names, bytes) else names
        order = sorted(species)
        check("class names are the sorted words", names == ", ".join(order), names)
        want = np.array([order.index(species[k]) for k in lab])
        check("labels are the words' indices", f["y"].dtype == np.int64 and (f["y"][()] == want).all())
        check("features equal the CSV's as float32", np.array_equal(f["X"][()], X.astype(np.float32)))
        cols = f["X"].attrs.get("columns", "")
        cols = cols.decode() if isinstance(cols, bytes) else cols
        check("feature names stored", cols == "sepal length, sepal width, petal length, petal width", cols)
    check("the output is mappable (contiguous float32, no filter)", mappable("iris.h5"))
    p = trainer("data", "convert", "iris.csv", "iris.h5")
    check("converting again replaces its own output", p.returncode == 0, p.stderr)

    # training on the converted file = training on the CSV (text labels, mapped features)
    ini = "[model]\nlayers = 4, 8, 3\ndropout = 0.1\n[data]\ntest_fraction = 0.2\nscale = standard\n" \
          "[train]\nloss = cross_entropy\noptimizer = adam\nepochs = 3\nbatch_size = 32\n"
    open("iris.ini", "w").write(ini)
    a = trainer("train", "iris.ini", "--set", "data.path=iris.csv", "--set", "output.dir=run-csv")
    b = trainer("train", "iris.ini", "--set", "data.path=iris.h5", "--set", "output.dir=run-h5")
    check("training on word labels works and reports the class names",
          a.returncode == 0 and "versicolor" in a.stdout, a.stderr[-500:])
    check("training on the converted file gives the CSV's bits",
          b.returncode == 0 and a.returncode == 0 and fingerprint("run-csv") == fingerprint("run-h5"), b.stderr[-500:])

    # 2. IDX, gzip and plain
    imgs = rng.integers(0, 256, size=(50, 5, 4), dtype=np.uint8)
    labels = rng.integers(0, 10, size=50, dtype=np.uint8)
    head_i = struct.pack(">IIII", 0x803, 50, 5, 4)
    head_l = struct.pack(">II", 0x801, 50)
    with gzip.open("img.gz", "wb") as f:
        f.write(head_i + imgs.tobytes())
    with gzip.open("lab.gz", "wb") as f:
        f.write(head_l + labels.tobytes())
    open("img-idx3-ubyte", "wb").write(head_i + imgs.tobytes())
    open("lab-idx1-ubyte", "wb").write(head_l + labels.tobytes())
    for src, lab_file in (("img.gz", "lab.gz"), ("img-idx3-ubyte", "lab-idx1-ubyte")):
        p = trainer("data", "convert", src, "idx.h5", "--labels", lab_file)
        ok = p.returncode == 0
        if ok:
            with h5py.File("idx.h5", "r") as f:
                # as the trainer reads IDX: pixels / 255
                ok = np.allclose(f["X"][()], imgs.reshape(50, 20) / 255.0, rtol=0, atol=1e-7) and \
                    np.array_equal(f["y"][()], labels.astype(np.int64))
        check(f"IDX {src} converts with the same pixels and labels", ok and mappable("idx.h5"), p.stderr)
    p = trainer("data", "convert", "img.gz", "nolab.h5")
    check("IDX without --labels is refused", p.returncode == 2 and "--labels" in p.stderr, p.stderr)

    # 3. HDF5, float64, chunked and compressed
    X64 = rng.normal(size=(400, 6))
    with h5py.File("packed.h5", "w") as f:
        f.create_dataset("data/features", data=X64, chunks=(64, 6), compression="gzip")
        f.create_dataset("data/labels", data=rng.integers(0, 2, size=400).astype(np.int32), chunks=(100,),
                         compression="gzip")
    p = trainer("data", "convert", "packed.h5", "flat.h5", "--features", "/data/features", "--targets", "/data/labels")
    ok = p.returncode == 0
    if ok:
        with h5py.File("flat.h5", "r") as f, h5py.File("packed.h5", "r") as g:
            ok = np.array_equal(f["X"][()], g["data/features"][()].astype(np.float32)) and \
                np.array_equal(f["y"][()], g["data/labels"][()].astype(np.int64))
    check("chunked, compressed float64 HDF5 converts to the mappable layout", ok and mappable("flat.h5"), p.stderr)

    # 4. bad input: named by line, nothing left behind
    with open("bad.csv", "w") as f:
        f.write("a,b,y\n1,2,0\n3,x,1\n")
    p = trainer("data", "convert", "bad.csv", "bad.h5")
    check("a bad cell: status 3 naming the line", p.returncode == 3 and "bad.csv:3" in p.stderr, p.stderr)
    check("  and no output, no temporary file", not glob.glob("bad.h5*"))
    p = trainer("data", "convert", "iris.csv", "iris.csv")
    check("the input is never the output", p.returncode != 0 and open("iris.csv").read().startswith("sepal"))
    trainer("data", "gen", "moons", "--out", "moons.h5")
    with h5py.File("other.h5", "w") as f:
        f.create_dataset("weights", data=np.zeros(3))
    before = open("other.h5", "rb").read()
    p = trainer("data", "convert", "iris.csv", "other.h5")
    check("a file the command did not write is not replaced", p.returncode == 2 and open("other.h5", "rb").read() == before,
          p.stderr)
finally:
    os.chdir("/")
checks.finish(work)
