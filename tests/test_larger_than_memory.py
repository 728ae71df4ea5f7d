#!/usr/bin/python3
"""A data set several times larger than the memory the run may use trains, with the same bits.

A 600 MB mappable HDF5 file (trainer data convert's layout) is trained on at np=2 inside a
cgroup v1 memory limit of 160 MB for the whole job (mpirun included), with `shuffle = block`
(the setting for data on disk: a global shuffle reads one row per page fault, which the
benchmark measures) and a window of 4 blocks (16 MB of the file: the window is the working set
and must fit in what the limit leaves after the ranks' own memory, about 80 MB at np=2); then
the same run without the limit. The 5% test set is scattered over the file: its evaluation
reads the file front to back. Then `trainer predict` on the whole file at np=2 inside the
limit (it streams its input by chunks) must write what one rank writes without it, and a NaN in
the last chunk must be named by row with exit status 3 and no output left behind. The file is
evicted from the page cache first, so the limited run really reads it from disk through the
mapping (its pages are charged to the cgroup and reclaimed as it goes). The checkpoints must be
byte-identical to the unlimited run's. Skipped (status 77) where the memory cgroup cannot be
used (not root, no cgroup v1 memory controller).

    tests/test_larger_than_memory.py TRAINER_BINARY SOURCE_DIR
"""
import glob
import os
import shutil
import subprocess
import sys
import tempfile

import checks
from checks import check

import h5py
import numpy as np

from checkpoint_hash import fingerprint

TRAINER = os.path.abspath(sys.argv[1])
CGROOT = "/sys/fs/cgroup/memory"
LIMIT = 160 << 20
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")


def evict(path):
    fd = os.open(path, os.O_RDONLY)
    os.fsync(fd)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)


if os.geteuid() != 0 or not os.path.isdir(CGROOT):
    print(f"skip: needs root and the cgroup v1 memory controller at {CGROOT}")
    sys.exit(77)
cg = os.path.join(CGROOT, f"trainer-test-{os.getpid()}")
work = tempfile.mkdtemp(prefix="trainer-big.", dir="/var/tmp")  # a disk, not a tmpfs
try:
    try:
        os.mkdir(cg)
        with open(os.path.join(cg, "memory.limit_in_bytes"), "w") as f:
            f.write(str(LIMIT))
        if os.path.exists(os.path.join(cg, "memory.memsw.limit_in_bytes")):  # no escape to swap
            with open(os.path.join(cg, "memory.memsw.limit_in_bytes"), "w") as f:
                f.write(str(LIMIT))
    except OSError as e:
        print(f"skip: cannot set up a memory cgroup ({e})")
        sys.exit(77)
    rows, cols = 600_000, 250  # 600 MB of float32 features
    path = os.path.join(work, "big.h5")
    rng = np.random.default_rng(5)
    w = rng.normal(size=cols).astype(np.float32)
    with h5py.File(path, "w") as f:
        X = f.create_dataset("X", shape=(rows, cols), dtype=np.float32)  # contiguous: mappable
        y = np.empty(rows, dtype=np.int64)
        for r0 in range(0, rows, 50_000):
            block = rng.normal(size=(min(50_000, rows - r0), cols)).astype(np.float32)
            X[r0:r0 + len(block)] = block
            y[r0:r0 + len(block)] = block @ w > 0
        f.create_dataset("y", data=y)
    size = os.path.getsize(path)
    with open(os.path.join(work, "big.ini"), "w") as f:
        f.write(f"[model]\nlayers = {cols}, 32, 2\n[data]\npath = {path}\ntest_fraction = 0.05\n"
                "[train]\nloss = cross_entropy\noptimizer = adam\nepochs = 1\nbatch_size = 512\n"
                "eval_batch_size = 4096\n[output]\ncheckpoint_every = 1\n")
    for shuffle in ("block",):  # a global shuffle of such a file is measured in scripts/bench/larger.sh
        sets = ["--set", f"train.shuffle={shuffle}", "--set", "train.shuffle_window=4"]
        limited, free = os.path.join(work, f"limited-{shuffle}"), os.path.join(work, f"free-{shuffle}")
        evict(path)
        with open(os.path.join(cg, "memory.stat")) as f:
            charged_before = int(dict(line.split() for line in f)["pgpgin"]) * 4096
        cmd = ["mpirun", "-np", "2", "--bind-to", "none", TRAINER, "train", os.path.join(work, "big.ini")] + sets
        # the job joins the cgroup before it starts: everything it maps or allocates is charged there
        p = subprocess.run(["sh", "-c", f'echo $$ > {cg}/cgroup.procs && exec "$@"', "sh"] + cmd +
                           ["--set", f"output.dir={limited}"], env=ENV, capture_output=True, text=True, timeout=600)
        with open(os.path.join(cg, "memory.max_usage_in_bytes")) as f:
            peak = int(f.read())
        with open(os.path.join(cg, "memory.stat")) as f:  # pages charged in all (this run only)
            charged = dict(line.split() for line in f)
        charged = int(charged["pgpgin"]) * 4096 - charged_before
        print(f"     shuffle={shuffle}: file {size >> 20} MiB, limit {LIMIT >> 20} MiB, peak charged "
              f"{peak >> 20} MiB, charged in all {charged >> 20} MiB, status {p.returncode}", flush=True)
        check(f"shuffle={shuffle}: a {size >> 20} MiB file trains at np=2 within {LIMIT >> 20} MiB",
              p.returncode == 0, p.stderr[-2000:])
        check(f"shuffle={shuffle}: more was charged than the limit holds (the file streamed through it)",
              charged > LIMIT)
        q = subprocess.run(cmd + ["--set", f"output.dir={free}"], env=ENV, capture_output=True, text=True,
                           timeout=1200)
        check(f"shuffle={shuffle}: the same bits as without the limit",
              p.returncode == 0 and q.returncode == 0 and fingerprint(limited) == fingerprint(free), q.stderr[-1000:])
        with open(os.path.join(cg, "memory.max_usage_in_bytes"), "w") as f:
            f.write("0")
    # trainer predict streams its input: the whole file predicted at np=2 within the limit,
    # byte-identical to one rank without it
    ckpt = sorted(glob.glob(os.path.join(work, "free-block", "ckpt-*.h5")))[-1]
    evict(path)
    outs = {}
    for name, np_, limited in (("limited", 2, True), ("free", 1, False)):
        outs[name] = os.path.join(work, f"pred-{name}.h5")
        cmd = ["mpirun", "-np", str(np_), "--bind-to", "none", TRAINER, "predict", "--checkpoint", ckpt,
               "--input", path, "--output", outs[name]]
        if limited:
            cmd = ["sh", "-c", f'echo $$ > {cg}/cgroup.procs && exec "$@"', "sh"] + cmd
        p = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=600)
        check(f"predict ({name}, np={np_}): {size >> 20} MiB of input", p.returncode == 0, p.stderr[-2000:])
    with open(os.path.join(cg, "memory.max_usage_in_bytes")) as f:
        peak = int(f.read())
    print(f"     predict: peak charged {peak >> 20} MiB", flush=True)
    with h5py.File(outs["limited"], "r") as a, h5py.File(outs["free"], "r") as b:
        same = all(np.array_equal(a[k][()], b[k][()]) for k in ("probabilities", "class"))
        check("predict: every row, byte-identical to one rank without the limit",
              same and a["class"].shape == (rows,))
    # a non-finite feature in a late chunk, on the second rank: named, and no output left
    with h5py.File(path, "r+") as f:
        f["X"][rows - 3, 7] = np.nan
    bad = os.path.join(work, "pred-bad.csv")
    p = subprocess.run(["mpirun", "-np", "2", "--bind-to", "none", TRAINER, "predict", "--checkpoint", ckpt,
                        "--input", path, "--output", bad], env=ENV, capture_output=True, text=True, timeout=600)
    check("predict: a NaN in the last chunk is named, exit 3, no output",
          p.returncode == 3 and f"row {rows - 3} (0-based) has a non-finite feature" in p.stderr
          and not os.path.exists(bad) and not glob.glob(bad + ".tmp*"), p.stderr[-1500:])
finally:
    shutil.rmtree(work, ignore_errors=True)
    try:
        os.rmdir(cg)
    except OSError:
        pass
checks.finish()
