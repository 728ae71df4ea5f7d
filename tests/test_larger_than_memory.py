#!/usr/bin/python3
"""A data set several times larger than the memory the run may use trains, with the same bits.

A 600 MB mappable HDF5 file (trainer data convert's layout) is trained on at np=2 inside a
cgroup v1 memory limit of 160 MB for the whole job (mpirun included), with `shuffle = block`
(the setting for data on disk: a global shuffle reads one row per page fault, which the
benchmark measures); then the same run without the limit. The file is
evicted from the page cache first, so the limited run really reads it from disk through the
mapping (its pages are charged to the cgroup and reclaimed as it goes). The checkpoints must be
byte-identical to the unlimited run's. Skipped (status 77) where the memory cgroup cannot be
used (not root, no cgroup v1 memory controller).

    tests/test_larger_than_memory.py TRAINER_BINARY SOURCE_DIR
"""
import os
import shutil
import subprocess
import sys
import tempfile

import h5py
import numpy as np

from checkpoint_hash import fingerprint

TRAINER = os.path.abspath(sys.argv[1])
CGROOT = "/sys/fs/cgroup/memory"
LIMIT = 160 << 20
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
failures = 0


def check(name, ok, detail=""):
    global failures
    print(("ok   " if ok else "FAIL ") + name + (f"\n{detail}" if detail and not ok else ""), flush=True)
    failures += 0 if ok else 1


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
        sets = ["--set", f"train.shuffle={shuffle}"]
        limited, free = os.path.join(work, f"limited-{shuffle}"), os.path.join(work, f"free-{shuffle}")
        evict(path)
        cmd = ["mpirun", "-np", "2", "--bind-to", "none", TRAINER, "train", os.path.join(work, "big.ini")] + sets
        # the job joins the cgroup before it starts: everything it maps or allocates is charged there
        p = subprocess.run(["sh", "-c", f'echo $$ > {cg}/cgroup.procs && exec "$@"', "sh"] + cmd +
                           ["--set", f"output.dir={limited}"], env=ENV, capture_output=True, text=True, timeout=1200)
        with open(os.path.join(cg, "memory.max_usage_in_bytes")) as f:
            peak = int(f.read())
        with open(os.path.join(cg, "memory.failcnt")) as f:
            hits = int(f.read())
        print(f"     shuffle={shuffle}: file {size >> 20} MiB, limit {LIMIT >> 20} MiB, peak charged "
              f"{peak >> 20} MiB, limit reached {hits} times, status {p.returncode}", flush=True)
        check(f"shuffle={shuffle}: a {size >> 20} MiB file trains at np=2 within {LIMIT >> 20} MiB",
              p.returncode == 0 and peak <= LIMIT, p.stderr[-2000:])
        q = subprocess.run(cmd + ["--set", f"output.dir={free}"], env=ENV, capture_output=True, text=True,
                           timeout=1200)
        check(f"shuffle={shuffle}: the same bits as without the limit",
              p.returncode == 0 and q.returncode == 0 and fingerprint(limited) == fingerprint(free), q.stderr[-1000:])
        with open(os.path.join(cg, "memory.max_usage_in_bytes"), "w") as f:
            f.write("0")
finally:
    shutil.rmtree(work, ignore_errors=True)
    try:
        os.rmdir(cg)
    except OSError:
        pass
print(f"{failures} failed" if failures else "all larger-than-memory checks passed")
sys.exit(1 if failures else 0)
