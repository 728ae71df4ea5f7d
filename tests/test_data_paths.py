#!/usr/bin/python3
"""Every data path gives the bits of reading the data into each rank's memory.

1. Mapped HDF5 (dataset.h views over mapping.h) against [data] mmap = false, at np 1, 2, 3:
   byte-identical /model and /optimizer, with standard scaling and shuffled splits, with
   minmax scaling, an unshuffled split and a separate test file, and with non-finite rows
   dropped (on_nonfinite = drop) and divide scaling.
2. The node-shared copy (data_node.h) of CSV and generated data against one copy per rank
   (TRAINER_TEST_RANKS_PER_NODE=1 makes every rank its own node), in deterministic mode so the
   layouts can be compared bit for bit, also with np=1.
3. A mapped file truncated while training: exit status 3, a message naming the file, no core
   dump, and the last checkpoint still loads.
4. A resume whose training data differ from the checkpoint's (its fingerprint) is refused
   (status 3) unless --new-data is given.

    tests/test_data_paths.py TRAINER_BINARY SOURCE_DIR
"""
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time

import checks
from checks import check

import h5py
import numpy as np

from checkpoint_hash import fingerprint

TRAINER = os.path.abspath(sys.argv[1])
SRC = os.path.abspath(sys.argv[2])
ENV = checks.MPI_ENV


def run(np_, args, env=None, expect=0, wait=True):
    cmd = checks.launch(np_)
    p = subprocess.Popen(cmd + args, env=dict(ENV, **(env or {})), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    if not wait:
        return p
    out, errs = p.communicate(timeout=300)
    if p.returncode != expect:
        raise SystemExit(f"FAIL: {' '.join(args)} at np={np_}: status {p.returncode} (want {expect})\n{errs[-2000:]}")
    return out + errs


def write_h5(path, X, y):
    with h5py.File(path, "w") as f:
        f.create_dataset("X", data=X.astype(np.float32))  # contiguous, no filter: mappable
        f.create_dataset("y", data=y)


work = tempfile.mkdtemp(prefix="trainer-paths.")
try:
    rng = np.random.default_rng(7)
    n, F, K = 1501, 7, 3
    X = rng.normal(size=(n, F)) * rng.uniform(0.5, 20, size=F) + rng.uniform(-5, 5, size=F)
    y = (X[:, 0] + 0.3 * X[:, 1] > np.median(X[:, 0] + 0.3 * X[:, 1])).astype(np.int64) + (X[:, 2] > 3)
    write_h5(f"{work}/train.h5", X, y)
    write_h5(f"{work}/test.h5", X[:300] * 1.1, y[:300])
    Xn = X.copy()
    Xn[[5, 77, 1000], [1, 0, 6]] = [np.nan, np.inf, -np.inf]
    write_h5(f"{work}/nan.h5", Xn, y)
    with open(f"{work}/base.ini", "w") as f:
        f.write(f"[model]\nlayers = {F}, 16, {K}\nbatchnorm = true\ndropout = 0.1\n[data]\npath = {work}/train.h5\n"
                "[train]\nloss = cross_entropy\noptimizer = adam\nepochs = 3\nbatch_size = 64\n"
                "[output]\ncheckpoint_every = 0\n")
    cases = {
        "standard scaling, shuffled test and validation splits": ["--set", "data.scale=standard", "--set",
                                                                  "data.test_fraction=0.2", "--set",
                                                                  "data.val_fraction=0.1"],
        "minmax, unshuffled split, a separate test file": ["--set", "data.scale=minmax", "--set",
                                                           "data.split_shuffle=false", "--set", "data.val_fraction=0.2",
                                                           "--set", f"data.test_path={work}/test.h5"],
        "block shuffle over a shuffled split": ["--set", "train.shuffle=block", "--set", "train.shuffle_block=50",
                                                "--set", "train.shuffle_window=3", "--set", "data.test_fraction=0.2"],
        "non-finite rows dropped, divide scaling": ["--set", f"data.path={work}/nan.h5", "--set",
                                                    "data.on_nonfinite=drop", "--set", "data.scale=divide:7",
                                                    "--set", "data.test_fraction=0.25"],
    }
    for name, args in cases.items():
        for np_ in (1, 2, 3):
            prints = []
            for mmap in ("true", "false"):
                d = f"{work}/{abs(hash(name))}-{np_}-{mmap}"
                run(np_, ["train", f"{work}/base.ini", "--set", f"data.mmap={mmap}", "--set", f"output.dir={d}"] + args)
                prints.append(fingerprint(d))
            check(f"mapped = read, np={np_}, {name}: {prints[0]}", prints[0] == prints[1])

    # 2. node-shared vs one copy per rank (deterministic: layouts compare bit for bit)
    rows = ["a,b,c,label"] + [f"{(i * 37) % 101 / 10},{(i * 13) % 29 - 14},{(i % 7) * 0.25},{i % 3}"
                              for i in range(900)]
    with open(f"{work}/t.csv", "w") as f:
        f.write("\n".join(rows) + "\n")
    det = ["--set", "train.deterministic=true", "--set", "train.chunk_rows=16", "--set", "output.checkpoint_every=0"]
    sources = {
        "CSV": [f"{work}/base.ini", "--set", "model.layers=3, 16, 3", "--set", f"data.path={work}/t.csv",
                "--set", "data.scale=standard", "--set", "data.test_fraction=0.2"],
        "generated moons": [os.path.join(SRC, "datasets", "configs", "moons.ini"), "--set", "data.n=900",
                            "--set", "train.epochs=2"],
    }
    for name, args in sources.items():
        prints = {}
        for np_, per_node in ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1)):
            d = f"{work}/{name.split()[0]}-{np_}-{per_node}"
            env = {"TRAINER_TEST_RANKS_PER_NODE": str(per_node)} if per_node else {}
            run(np_, ["train"] + args + det + ["--set", f"output.dir={d}"], env=env)
            prints[(np_, per_node)] = fingerprint(d)
        check(f"{name}: node-shared = one copy per rank = np 1 ({len(prints)} layouts: {prints[(1, 0)]})",
              len(set(prints.values())) == 1)

    # 3. the mapped file truncated while training
    big = f"{work}/big.h5"
    rb = rng.normal(size=(300000, 32)).astype(np.float32)
    write_h5(big, rb, (rb[:, 0] > 0).astype(np.int64))
    with open(f"{work}/big.ini", "w") as f:
        f.write(f"[model]\nlayers = 32, 32, 2\n[data]\npath = {big}\n[train]\nloss = cross_entropy\nepochs = 100\n"
                "batch_size = 32\n[output]\ncheckpoint_every_steps = 500\n")
    for np_ in (1, 2):
        d = f"{work}/trunc{np_}"
        shutil.copy(big, f"{big}.bak")
        p = run(np_, ["train", f"{work}/big.ini", "--set", f"output.dir={d}"], wait=False)
        for _ in range(600):
            if glob.glob(f"{d}/ckpt-*.h5"):
                break
            time.sleep(0.05)
        time.sleep(0.5)
        os.truncate(big, 4096)
        try:
            out, errs = p.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            p.kill()
            out, errs = p.communicate()
        shutil.move(f"{big}.bak", big)
        named = f"{big}: a mapped page of the data could not be read" in errs
        check(f"np={np_}: truncated while training: status {p.returncode} (want 3), the file named: {named}",
              p.returncode == 3 and named and "Bus error" not in errs and not glob.glob(f"{d}/core*"))
        last = sorted(glob.glob(f"{d}/ckpt-*.h5"))[-1]
        loads = subprocess.run([TRAINER, "eval", f"{work}/big.ini", "--checkpoint", last, "--set",
                                "train.eval_train=true"], env=ENV, capture_output=True, text=True, timeout=300)
        check(f"np={np_}: the last checkpoint ({os.path.basename(last)}) loads", loads.returncode == 0)
    # 4. a resume on other data is refused unless asked for
    d = f"{work}/resume"
    run(1, ["train", f"{work}/base.ini", "--set", "train.epochs=1", "--set", f"output.dir={d}"])
    write_h5(f"{work}/train.h5", X + 0.5, y)
    p = run(1, ["train", f"{work}/base.ini", "--set", "train.epochs=2", "--set", f"output.dir={d}", "--resume", d],
            expect=3)
    check("resume on changed data: refused with status 3, naming --new-data", "--new-data" in p and "fingerprint" in p)
    p = run(1, ["train", f"{work}/base.ini", "--set", "train.epochs=2", "--set", f"output.dir={d}", "--resume", d,
                "--new-data"])
    check("  and continues with --new-data", "resumed from" in p)
except BaseException:  # a crash keeps the files for a look
    print(f"files kept in {work}")
    raise
checks.finish(work)
