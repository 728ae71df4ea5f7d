#!/usr/bin/python3
"""metrics.h5 can be read while a run is writing it (HDF5 single-writer/multiple-reader):
open it with h5py in SWMR mode during training and watch the rows grow.

usage: tests/test_swmr.py TRAINER_BINARY SOURCE_DIR
"""
import os
import subprocess
import sys
import tempfile
import time

import h5py

trainer = sys.argv[1]
tmp = tempfile.mkdtemp(prefix="trainer-swmr-")
config = os.path.join(tmp, "run.ini")
with open(config, "w") as f:
    f.write("[model]\nlayers = 2, 32, 32, 1\nactivations = tanh\noutput_activation = sigmoid\n"
            "[data]\ngenerator = moons\nn = 20000\ntest_fraction = 0.1\n"
            f"[train]\nloss = bce\noptimizer = adam\nepochs = 40\n[output]\ndir = {tmp}/run\n")
proc = subprocess.Popen([trainer, "train", config], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
path = os.path.join(tmp, "run", "metrics.h5")
seen = []
deadline = time.time() + 120
while proc.poll() is None and time.time() < deadline:
    if os.path.exists(path):
        try:
            with h5py.File(path, "r", libver="latest", swmr=True) as f:
                d = f["metrics/epoch"]
                for _ in range(200):
                    d.refresh()
                    if d.shape[0] and (not seen or d.shape[0] != seen[-1]):
                        seen.append(d.shape[0])
                        assert list(d[:]) == list(range(1, d.shape[0] + 1)), "epochs out of order"
                    if proc.poll() is not None:
                        break
                    time.sleep(0.01)
        except OSError:
            pass  # the file is being created
    time.sleep(0.01)
rc = proc.wait()
if rc != 0:
    print("training failed:", proc.stderr.read())
    sys.exit(1)
print("row counts seen while training:", seen)
with h5py.File(path, "r") as f:
    rows = f["metrics/epoch"].shape[0]
ok = rows == 40 and len(seen) >= 3 and seen[0] < 40
print(("ok   " if ok else "FAIL ") + f"metrics.h5 read {len(seen)} times while growing; {rows} rows at the end")
sys.exit(0 if ok else 1)
