#!/usr/bin/python3
"""The layout matrix: any number of ranks, any data size, gives the single-rank result.

For np in {2, 3, 5} (oversubscribed) and training sets of 1, 2, 41 and 1001 rows (empty
and ragged rank shares), four variants each cover batch norm (synchronised, per rank,
none), dropout, gradient accumulation, drop_last, and a test set from a fraction (with a
validation set), a CSV file, an HDF5 file, or a file with non-finite rows that are dropped
(CSV and HDF5); the factors rotate with np so every np meets every level. For each case:

  train   every command ends within its time limit (a hang fails the case), with the exit
          status of the single-rank run; when that succeeded, the metric log equals the
          single-rank log to rounding (the float sum of gradients is the only difference;
          rank-local batch norm legitimately differs and is compared only for status);
  eval    the single-rank run's checkpoint evaluated on np ranks prints exactly what one
          rank prints;
  predict the same checkpoint predicts the test file on np ranks into a file byte-identical
          to the single-rank output.

    tests/test_layouts.py TRAINER_BINARY SOURCE_DIR [--quick]
"""
import csv
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile

import h5py
import numpy as np

TRAINER = os.path.abspath(sys.argv[1])
SRC = os.path.abspath(sys.argv[2])
QUICK = "--quick" in sys.argv
MOONS = os.path.join(SRC, "datasets", "configs", "moons.ini")
LIMIT = 90  # seconds per command: a hang shows as a time-out
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_rmaps_base_oversubscribe="1")

NPS = [2, 3, 5]
SIZES = [1, 2, 41, 1001]
TEST_SOURCES = ["fraction", "csv", "hdf5", "dropped"]
BN = ["sync", "local", "none"]

failures = []
cases = 0


def run(cmd, cwd):
    """(status, stdout, stderr); status "timeout" when the command hung (its whole process
    group, mpirun and every rank, is then killed)."""
    p = subprocess.Popen(cmd, cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        out, err = p.communicate(timeout=LIMIT)
        return p.returncode, out, err
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        return "timeout", out, err


def mpirun(np_, args):
    if np_ == 1:
        return [TRAINER] + args
    return ["mpirun", "-np", str(np_), "--oversubscribe", "--bind-to", "none", TRAINER] + args


def fail(name, why):
    failures.append(f"{name}: {why}")
    print(f"FAIL {name}: {why}", flush=True)


def write_data(w):
    """Training files of every size (CSV and HDF5) and the test files."""
    for n in SIZES:
        subprocess.run([TRAINER, "data", "gen", "moons", "--n", str(n), "--noise", "0.2", "--seed", "3",
                        "--out", f"{w}/train{n}.csv"], check=True, capture_output=True)
        subprocess.run([TRAINER, "data", "gen", "moons", "--n", str(n), "--noise", "0.2", "--seed", "3",
                        "--out", f"{w}/train{n}.h5"], check=True, capture_output=True)
    for ext in ("csv", "h5"):
        subprocess.run([TRAINER, "data", "gen", "moons", "--n", "37", "--noise", "0.2", "--seed", "9",
                        "--out", f"{w}/test.{ext}"], check=True, capture_output=True)
    # the same test rows with non-finite rows among them (dropped with on_nonfinite = drop)
    with open(f"{w}/test.csv") as f:
        rows = list(csv.reader(f))
    bad = [["nan", "0.5", "1"], ["0.1", "inf", "0"]]
    with open(f"{w}/test_nan.csv", "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(rows[0])
        for i, r in enumerate(rows[1:]):
            out.writerow(r)
            if i % 9 == 4:
                out.writerow(bad[i % 2])
    with h5py.File(f"{w}/test.h5", "r") as src, h5py.File(f"{w}/test_nan.h5", "w") as dst:
        X = src["X"][...].copy()
        X[[3, 17, 30], 0] = np.nan
        dst["X"] = X
        dst["y"] = src["y"][...]


def variant(p, v):
    """The factor levels of variant v for the np at index p (rotated so each np sees all)."""
    return {
        "test": TEST_SOURCES[(v + p) % 4],
        "bn": BN[(v + 2 * p) % 3],
        "dropout": (v + p) % 2 == 1,
        "accumulate": 3 if (v // 2 + p) % 2 else 1,
        "drop_last": (v + p // 2) % 2 == 1,
        "h5_dropped": (v + p) % 3 == 0,
    }


def config_args(w, n, f, out_dir):
    fmt = "h5" if f["test"] == "hdf5" or (f["test"] == "dropped" and f["h5_dropped"]) else "csv"
    a = ["--set", "data.generator=", "--set", f"data.path={w}/train{n}.{fmt}",
         "--set", "train.epochs=3", "--set", "train.eval_every=1", "--set", "train.batch_size=8",
         # SGD: Adam turns the rounding noise of the (mathematically zero) gradient of a bias
         # in front of batch norm into +-lr steps, which hides layout bugs behind noise
         "--set", "train.optimizer=sgd", "--set", "train.lr=0.1", "--set", "train.momentum=0.9",
         "--set", "train.eval_batch_size=4", "--set", f"train.accumulate={f['accumulate']}",
         "--set", f"train.drop_last={'true' if f['drop_last'] else 'false'}",
         "--set", f"model.dropout={'0.2' if f['dropout'] else '0'}",
         "--set", f"model.batchnorm={'false' if f['bn'] == 'none' else 'true'}",
         "--set", f"train.sync_bn={'false' if f['bn'] == 'local' else 'true'}",
         "--set", f"output.dir={out_dir}"]
    if f["test"] == "fraction":
        a += ["--set", "data.test_fraction=0.2", "--set", "data.val_fraction=0.2"]
    elif f["test"] in ("csv", "hdf5"):
        a += ["--set", "data.test_fraction=0", "--set", f"data.test_path={w}/test.{fmt}"]
    else:
        a += ["--set", "data.test_fraction=0", "--set", f"data.test_path={w}/test_nan.{fmt}",
              "--set", "data.on_nonfinite=drop"]
    return a, fmt


def read_log(path):
    with open(path) as f:
        rows = list(csv.DictReader(f))
    skip = ("time_s", "samples_per_s")
    return [{k: float(v) for k, v in r.items() if k not in skip and not k.endswith("_ms")} for r in rows]


def logs_equal(a, b):
    if len(a) != len(b):
        return f"{len(a)} rows vs {len(b)}"
    for i, (ra, rb) in enumerate(zip(a, b)):
        if ra.keys() != rb.keys():
            return f"columns differ: {sorted(ra)} vs {sorted(rb)}"
        for k in ra:
            x, y = ra[k], rb[k]
            if math.isnan(x) and math.isnan(y):
                continue
            if not abs(x - y) <= 1e-4 * max(1.0, abs(x), abs(y)):
                return f"row {i} {k}: {x} vs {y}"
    return None


def main():
    global cases
    w = tempfile.mkdtemp(prefix="trainer-layouts-")
    try:
        write_data(w)
        refs = {}
        nps = NPS[:1] if QUICK else NPS
        for p, np_ in enumerate(NPS):
            if np_ not in nps:
                continue
            for n in SIZES:
                for v in range(4):
                    f = variant(p, v)
                    key = (n, tuple(sorted(f.items())))
                    name = f"np={np_} n={n} " + " ".join(f"{k}={f[k]}" for k in sorted(f))
                    if key not in refs:
                        ref_dir = f"{w}/ref{len(refs)}"
                        args, fmt = config_args(w, n, f, ref_dir)
                        rc, out, err = run(mpirun(1, ["train", MOONS] + args), w)
                        ev = pr = None
                        ckpt = f"{ref_dir}/best.h5"
                        if rc == 0:
                            ev = run(mpirun(1, ["eval", MOONS, "--checkpoint", ckpt] + args), w)
                            pr = run(mpirun(1, ["predict", "--checkpoint", ckpt, "--input", f"{w}/test.{fmt}",
                                                "--output", f"{ref_dir}/pred.csv"]), w)
                        refs[key] = (ref_dir, rc, err, ev, pr)
                    ref_dir, ref_rc, ref_err, ref_ev, ref_pr = refs[key]
                    cases += 1
                    out_dir = f"{w}/np{np_}_n{n}_v{v}"
                    args, fmt = config_args(w, n, f, out_dir)
                    rc, out, err = run(mpirun(np_, ["train", MOONS] + args), w)
                    if rc == "timeout":
                        fail(name, "train: still running after %d s (a hang)" % LIMIT)
                        continue
                    if rc != ref_rc:
                        fail(name, f"train: exit status {rc}, one rank gave {ref_rc}; stderr: {err[-400:]} "
                                   f"/ one rank: {ref_err[-300:]}")
                        continue
                    if rc != 0:
                        print(f"ok   {name}: both fail with status {rc}", flush=True)
                        continue
                    if f["bn"] != "local":
                        why = logs_equal(read_log(f"{ref_dir}/metrics.csv"), read_log(f"{out_dir}/metrics.csv"))
                        if why:
                            fail(name, "train: metric log differs from one rank's: " + why)
                            continue
                    ckpt = f"{ref_dir}/best.h5"
                    ev = run(mpirun(np_, ["eval", MOONS, "--checkpoint", ckpt] + args), w)
                    if ev[0] == "timeout" or ev[0] != ref_ev[0] or ev[1] != ref_ev[1]:
                        fail(name, f"eval: status {ev[0]} (one rank {ref_ev[0]}), output differs: {ev[1][-300:]}"
                                   f"{ev[2][-300:]}")
                        continue
                    pred = f"{out_dir}/pred.csv"
                    pr = run(mpirun(np_, ["predict", "--checkpoint", ckpt, "--input", f"{w}/test.{fmt}",
                                          "--output", pred]), w)
                    if pr[0] == "timeout" or pr[0] != ref_pr[0]:
                        fail(name, f"predict: status {pr[0]} (one rank {ref_pr[0]}): {pr[2][-300:]}")
                        continue
                    with open(pred, "rb") as a, open(f"{ref_dir}/pred.csv", "rb") as b:
                        if a.read() != b.read():
                            fail(name, "predict: output differs from one rank's")
                            continue
                    print(f"ok   {name}", flush=True)
    finally:
        if not failures:
            shutil.rmtree(w, ignore_errors=True)
        else:
            print(f"files kept in {w}")
    print(f"{cases - len(failures)} passed, {len(failures)} failed")
    return 1 if failures or cases == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
