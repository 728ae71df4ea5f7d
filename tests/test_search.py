#!/usr/bin/python3
"""`trainer search`: many models in one job.

  - spaces: a grid axis times sampled keys gives grid points x trials, the last axis fastest;
    loguniform, uniform and choice values lie in their ranges; the same seed gives the same
    trials, another seed others; sobol draws its own;
  - successive halving on the two moons (45 trials, deterministic mode): trials.csv is the same
    at np=1, np=3 and np=4 with two ranks per trial; every decision in the table is Ray Tune's
    ASHA rule (numpy's percentile) applied to the lower-numbered trials' values at that rung;
  - cross-validation (--folds 5, np=2) on digits and breast cancer: folds.csv partitions the
    training pool, each fold holds each class's rows to one row; every fold's checkpoint has
    the bits of a separate `trainer train` with data.folds = 5, data.fold = k; the report's
    mean and standard deviation are numpy's over the folds' metrics;
  - a signal (the test hook at a step) stops every group with a checkpoint (status 75, the
    message says --resume); --resume finishes with the table of an uninterrupted search and
    does not train the units that had ended again;
  - a rank stopped in a group of two (kill -STOP) ends the search with the watchdog's message
    naming it (status 8); --resume keeps every unit that had ended and finishes; a rank stopped
    alone in its group is named by world rank 0 when its signs of life stop (status 8); a
    stopped world rank 0 is named by the groups when it takes none of their messages (status 8);
  - a trial that diverges fails alone (the search ends with status 0); refusals: a search
    directory in use, --resume of none or of another search, [data] keys in the space, a bad
    range, groups that do not divide the ranks, ASHA with folds, a trial's bad value (named).

    tests/test_search.py TRAINER_BINARY SOURCE_DIR
"""
import csv
import glob
import os
import signal
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np

import checks
from checks import check
from checkpoint_hash import fingerprint

TRAINER = os.path.abspath(sys.argv[1])
SRC = os.path.abspath(sys.argv[2])
CONFIGS = os.path.join(SRC, "datasets", "configs")
ENV = dict(checks.MPI_ENV)


def search(np_, config, space, out, *extra, env=None, group=None):
    cmd = checks.launch(np_) + ["search", os.path.join(CONFIGS, config), space, "--set", f"output.dir={out}"]
    cmd += list(extra)
    if group:
        cmd += ["--ranks-per-trial", str(group)]
    return subprocess.run(cmd, env=dict(ENV, **(env or {})), capture_output=True, text=True, timeout=600)


def table(out):
    with open(os.path.join(out, "trials.csv")) as f:
        return list(csv.DictReader(f))


def without_time(rows):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def rank_pid(out, rank):
    """The PID of the trainer process that is world rank `rank` of the search writing to out, or None."""
    for pid in subprocess.run(["pgrep", "-f", f"output.dir={out}"], capture_output=True, text=True).stdout.split():
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if f"OMPI_COMM_WORLD_RANK={rank}\0".encode() in f.read() and \
                        open(f"/proc/{pid}/comm").read().strip() == "trainer":
                    return int(pid)
        except OSError:
            pass
    return None


def kill_quietly(pid):
    """SIGKILL to a rank the launcher may have ended already."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def stop_rank(cmd, out, rank, env=None):
    """Starts the search `cmd` (writing to out), stops world rank `rank` (SIGSTOP) once the third
    group of one rank trains its first unit, and returns (status, stderr, seconds from the stop
    to the end), or None when the rank was not found."""
    job = subprocess.Popen(cmd, env=dict(ENV, **(env or {})), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    victim = None
    for _ in range(300):
        time.sleep(0.1)
        victim = rank_pid(out, rank)
        if victim and os.path.exists(os.path.join(out, "trials", "0002", "config.ini")):
            break
    if victim is None:
        job.kill()
        job.communicate()
        return None
    t0 = time.monotonic()
    os.kill(victim, signal.SIGSTOP)
    try:
        _, err = job.communicate(timeout=60)
    finally:
        kill_quietly(victim)
    return job.returncode, err, time.monotonic() - t0


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


work = tempfile.mkdtemp(prefix="trainer-search.")
try:
    # ---------------------------------------------------------------- spaces
    space = write(os.path.join(work, "mixed.space"),
                  "model.activations = relu tanh   # grid\n"
                  "train.lr = loguniform 1e-3 1e-1\n"
                  "train.momentum = uniform 0.5 0.9\n"
                  "train.batch_size = choice 16 32 64\n"
                  "search.trials = 4\n")
    runs = {}
    for name, extra in (("a", []), ("b", []), ("seed2", ["--set", "search.seed=2"]),
                        ("sobol", ["--set", "search.sampler=sobol"])):
        out = os.path.join(work, "space-" + name)
        p = search(1, "moons.ini", space, out, "--set", "train.epochs=2", "--set", "train.optimizer=momentum", *extra)
        check(f"space {name}: the search runs (status 0)", p.returncode == 0, p.stderr[-600:])
        runs[name] = table(out) if p.returncode == 0 else []
    rows = runs["a"]
    check("2 grid points x 4 samples = 8 trials, the grid axis slowest",
          [r["model.activations"] for r in rows] == ["relu"] * 4 + ["tanh"] * 4, [r.get("model.activations") for r in rows])
    check("the samples repeat at each grid point", [r["train.lr"] for r in rows[:4]] == [r["train.lr"] for r in rows[4:]])
    lrs = [float(r["train.lr"]) for r in rows]
    check("loguniform values in [1e-3, 1e-1]", all(1e-3 <= v <= 1e-1 for v in lrs) and len(set(lrs)) == 4, lrs)
    check("uniform values in [0.5, 0.9]", all(0.5 <= float(r["train.momentum"]) <= 0.9 for r in rows))
    check("choice values among 16 32 64", all(r["train.batch_size"] in ("16", "32", "64") for r in rows))
    check("the same seed gives the same trials and results", without_time(runs["a"]) == without_time(runs["b"]))
    check("another seed gives other trials", [r["train.lr"] for r in runs["seed2"]] != [r["train.lr"] for r in rows])
    check("sobol draws its own trials in range",
          [r["train.lr"] for r in runs["sobol"]] != [r["train.lr"] for r in rows]
          and all(1e-3 <= float(r["train.lr"]) <= 1e-1 for r in runs["sobol"]))
    with open(os.path.join(work, "space-a", "trials", "0005", "config.ini")) as f:
        cfg = f.read()
    check("a trial's run directory holds its configuration with the trial's values",
          f"lr = {rows[5]['train.lr']}" in cfg and "activations = tanh" in cfg)

    # ---------------------------------------------------------------- ASHA, any layout
    asha = write(os.path.join(work, "asha.space"),
                 "train.lr = 0.1 0.03 0.01 0.003 0.001\n"
                 "train.optimizer = sgd momentum adam\n"
                 "model.activations = relu tanh sigmoid\n"
                 "search.asha = true\nsearch.min_epochs = 5\nsearch.eta = 3\nsearch.metric = val_accuracy\n")
    common = ["--set", "data.val_fraction=0.2", "--set", "train.deterministic=true"]
    tables = {}
    for np_, group in ((1, None), (3, None), (4, 2)):
        out = os.path.join(work, f"asha-np{np_}")
        p = search(np_, "moons.ini", asha, out, *common, group=group)
        check(f"ASHA at np={np_}{f' x {group} per trial' if group else ''}: status 0", p.returncode == 0, p.stderr[-600:])
        tables[np_] = table(out) if p.returncode == 0 else []
    ref = tables[1]
    check("np=3 and np=4 (2 ranks per trial) give np=1's table", without_time(tables[3]) == without_time(ref)
          and without_time(tables[4]) == without_time(ref))
    with h5py.File(os.path.join(work, "asha-np1", "trials.h5"), "r") as f:
        rung_values = f["units/rung_values"][()]
        status = [s.decode() for s in f["status"][()]]
    rungs = [int(r["rungs"]) for r in ref]
    stopped = sum(s == "stopped" for s in status)
    check(f"some trials stopped at a rung ({stopped} of {len(ref)}), some finished",
          0 < stopped < len(ref) and "done" in status)
    wrong = []
    for i, r in enumerate(ref):
        for k in range(rungs[i]):
            earlier = [rung_values[j][k] for j in range(i) if rungs[j] > k]
            passes = True if not earlier else rung_values[i][k] >= np.percentile(earlier, (1 - 1 / 3) * 100)
            went_on = rungs[i] > k + 1 or status[i] == "done"
            if passes != went_on:
                wrong.append((i, k))
    check("every decision is ASHA's rule on the lower-numbered trials' values", not wrong, wrong[:5])
    epochs = sum(int(r["epochs"]) for r in ref)
    check(f"ASHA trains a fraction of the grid's epochs ({epochs} of {100 * len(ref)})", epochs < 100 * len(ref) / 2)
    with open(os.path.join(work, "asha-np1", "report.md")) as f:
        report = f.read()
    check("report.md ranks the best trials by the metric", "ranked by val_accuracy" in report and "| 1 |" in report)

    # a unit that ends by itself (stop_at) at or before a rung is done there, not decided at the rung
    out = os.path.join(work, "asha-stop-at")
    p = search(2, "moons.ini", asha, out, *common, "--set", "train.stop_at=test_accuracy >= 0.99",
               "--set", "train.eval_every=1")
    rows = table(out) if p.returncode == 0 else []
    early = [r for r in rows if r["status"] == "done" and int(r["epochs"]) < 100]
    rung_epochs = [5, 15, 45]
    check(f"with stop_at, trials that met it end done ({len(early)}), with no rung at or after their end",
          early and all(float(r["test_accuracy"]) >= 0.99 and
                        all(rung_epochs[k] < int(r["epochs"]) for k in range(int(r["rungs"]))) for r in early),
          p.stderr[-300:])

    # ---------------------------------------------------------------- K-fold reports
    one = write(os.path.join(work, "one.space"), "train.lr = 0.001\n")
    for config, epochs_ in (("digits.ini", 10), ("breast_cancer.ini", 20)):
        name = config.split(".")[0]
        out = os.path.join(work, f"cv-{name}")
        sets = ["--set", "train.deterministic=true", "--set", f"train.epochs={epochs_}"]
        p = search(2, config, one, out, "--folds", "5", *sets)
        if not check(f"{name}: --folds 5 at np=2 runs", p.returncode == 0, p.stderr[-600:]):
            continue
        with open(os.path.join(out, "folds.csv")) as f:
            folds = list(csv.DictReader(f))
        key = "line" if "line" in folds[0] else "row"
        lines = [int(r[key]) for r in folds]
        check(f"{name}: folds.csv lists each training-pool row once", len(lines) == len(set(lines)))
        same = []
        for k in range(5):
            d = os.path.join(work, f"sep-{name}-{k}")
            q = subprocess.run([TRAINER, "train", os.path.join(CONFIGS, config), "--set", "data.folds=5", "--set",
                                f"data.fold={k}", "--set", "train.lr=0.001", "--set", f"output.dir={d}"] + sets,
                               env=ENV, capture_output=True, text=True, timeout=300)
            same.append(q.returncode == 0 and fingerprint(d) == fingerprint(os.path.join(out, "trials", "0000",
                                                                                       f"fold-{k}")))
            if k == 0 and q.returncode == 0:
                with open(os.path.join(d, "folds.csv")) as f:
                    check(f"{name}: the stored folds are the ones trainer train uses",
                          [r for r in csv.DictReader(f)] == folds)
        check(f"{name}: every fold's checkpoint has the bits of a separate trainer train run", all(same), same)
        with h5py.File(os.path.join(out, "trials.h5"), "r") as f:
            cols = f["units/metrics"].attrs["columns"]
            cols = (cols.decode() if isinstance(cols, bytes) else cols).split(",")
            units = f["units/metrics"][()]
            mean = f["metrics/val_loss"][()][0]
            std = f["metrics_std/val_loss"][()][0]
        v = units[:, cols.index("val_loss")]
        check(f"{name}: the report's val_loss is the folds' mean and standard deviation",
              np.isclose(mean, v.mean(), rtol=1e-12) and np.isclose(std, v.std(), rtol=1e-12), (mean, std, v))
    # stratified: each fold holds each class's rows to one row (digits' labels from scikit-learn's copy)
    try:
        from sklearn.datasets import load_digits
        y = load_digits().target
        with open(os.path.join(work, "cv-digits", "folds.csv")) as f:
            folds = list(csv.DictReader(f))
        key = "line" if "line" in folds[0] else "row"
        counts = np.zeros((5, 10), int)
        for r in folds:  # a text file's line (1-based, no header in digits.csv.gz), or a row
            counts[int(r["fold"]), y[int(r[key]) - (key == "line")]] += 1
        check("digits: stratified folds (each class's rows per fold differ by at most one)",
              all(c.max() - c.min() <= 1 for c in counts.T), str(counts))
    except ImportError:
        print("skip the stratification check: no python3-sklearn")

    # ---------------------------------------------------------------- stop and resume
    out = os.path.join(work, "stopped")
    p = search(2, "moons.ini", asha, out, *common, env={"TRAINER_TEST_SIGNAL_AT_STEP": "0:300"})
    check("a signal stops the search with status 75", p.returncode == 75, (p.returncode, p.stderr[-600:]))
    check("the message says how to continue", "--resume" in p.stderr, p.stderr[-400:])
    with open(os.path.join(out, "search.state")) as f:
        state = f.read()
    check("the state file holds the interrupted units", " interrupted " in state)
    ended_before = {ln.split()[0] for ln in state.splitlines()[2:] if ln.split()[1] in ("done", "stopped")}
    mtimes = {u: os.path.getmtime(sorted(glob.glob(os.path.join(out, "trials", f"{int(u):04d}", "ckpt-*.h5")))[-1])
              for u in ended_before}
    p = search(2, "moons.ini", asha, out, *common, "--resume")
    check("--resume finishes (status 0)", p.returncode == 0, p.stderr[-600:])
    check("with the table of an uninterrupted search", p.returncode == 0 and without_time(table(out)) == without_time(ref))
    check("units that had ended were not trained again",
          all(os.path.getmtime(sorted(glob.glob(os.path.join(out, "trials", f"{int(u):04d}", "ckpt-*.h5")))[-1]) == t
              for u, t in mtimes.items()))

    # ---------------------------------------------------------------- a stopped rank
    slow = write(os.path.join(work, "slow.space"), "train.lr = 0.01 0.003 0.001 0.0003 0.0001 0.00003\n")
    out = os.path.join(work, "stall")
    cmd = checks.launch(4) + ["search", os.path.join(CONFIGS, "digits.ini"), slow, "--ranks-per-trial", "2",
                              "--set", f"output.dir={out}", "--set", "train.watchdog=4", "--set",
                              "train.deterministic=true", "--set", "train.epochs=40"]
    job = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(300):  # a unit of group 1 (world ranks 2, 3) has started
        time.sleep(0.1)
        if os.path.exists(os.path.join(out, "search.state")):
            with open(os.path.join(out, "search.state")) as f:
                if any(ln.split()[1:2] == ["done"] for ln in f.read().splitlines()[2:]):
                    break
    victim = rank_pid(out, 3)
    with open(os.path.join(out, "search.state")) as f:
        done_before = [ln.split()[:6] for ln in f.read().splitlines()[2:] if ln.split()[1] == "done"]
    if check("found world rank 3 while the search ran", victim is not None):
        os.kill(victim, signal.SIGSTOP)
        try:
            _, err = job.communicate(timeout=60)
        finally:
            kill_quietly(victim)
        check("a stopped rank ends the search with status 8", job.returncode == 8, (job.returncode, err[-600:]))
        # the group's watchdog names rank 1 of the group when the stop finds the group inside an
        # exchange; between units (its watchdog off) world rank 0 names the silent group
        check("the watchdog's message names rank 1 of its group, or the group",
              "watchdog: rank 1 on" in err or "watchdog: group 1 (ranks 2-3" in err, err[:1200])
        with open(os.path.join(out, "search.state")) as f:
            after = {ln.split()[0]: ln.split()[:6] for ln in f.read().splitlines()[2:]}
        check(f"the {len(done_before)} units done before are still done", all(after[u[0]] == u for u in done_before))
        p = subprocess.run(checks.launch(2) + cmd[cmd.index("search"):] + ["--resume"], env=ENV, capture_output=True,
                           text=True, timeout=300)
        check("--resume at np=2 finishes the search", p.returncode == 0, p.stderr[-600:])
        rows = table(out) if p.returncode == 0 else []
        check("every trial done", rows and all(r["status"] == "done" for r in rows), [r.get("status") for r in rows])
    else:
        job.kill()
        job.communicate()

    # ---------------------------------------------------------------- a stopped rank alone in its group
    out = os.path.join(work, "alone")
    cmd = checks.launch(3) + ["search", os.path.join(CONFIGS, "moons.ini"), slow, "--set", f"output.dir={out}",
                              "--set", "train.watchdog=2", "--set", "train.epochs=100", "--set", "data.n=40000",
                              "--set", "model.layers=2,128,128,1", "--set", "train.deterministic=true"]
    stopped = stop_rank(cmd, out, 2)  # world rank 2, a group of its own
    if check("found world rank 2 training its unit", stopped is not None):
        status, err, took = stopped
        check(f"a stopped rank alone in its group ends the search with status 8 ({took:.1f} s; deadline 3 x 2 s)",
              status == 8 and took < 20, (status, err[-600:]))
        check("the message names rank 2", "watchdog: rank 2 (a group of its own" in err, err[:1200])
        p = subprocess.run(checks.launch(2) + cmd[cmd.index("search"):] + ["--resume"], env=ENV, capture_output=True,
                           text=True, timeout=300)
        rows = table(out) if p.returncode == 0 else []
        check("--resume at np=2 finishes every trial", rows and all(r["status"] == "done" for r in rows),
              p.stderr[-400:])

    # ---------------------------------------------------------------- world rank 0 stopped
    # the groups' rank 0 find their signs of life untaken and end the search (they would wait for
    # world rank 0's answers forever otherwise)
    out = os.path.join(work, "server")
    cmd = [f"output.dir={out}" if a.startswith("output.dir=") else a for a in cmd]  # the search above, anew
    verdicts = os.path.join(work, "verdicts")  # as scripts/mpirun.sh reads them
    stopped = stop_rank(cmd, out, 0, env={"TRAINER_STATUS_FILE": verdicts})
    if check("found world rank 0 while the groups train", stopped is not None):
        status, err, took = stopped
        check(f"a stopped world rank 0 ends the search with status 8 ({took:.1f} s; deadline 3 x 2 s)",
              status == 8 and took < 20, (status, err[-600:]))
        check("the message names world rank 0", "watchdog: world rank 0 (it keeps the search's unit table) took no "
              "message from rank" in err, err[:1200])
        lines = open(verdicts).read().splitlines() if os.path.exists(verdicts) else []
        check("the ranks that ended it wrote the watchdog's verdict for scripts/mpirun.sh",
              lines and all(ln.startswith("8 watchdog rank ") for ln in lines), lines)

    # ---------------------------------------------------------------- failures and refusals
    lrs = write(os.path.join(work, "diverge.space"), "train.lr = 0.01 1e10\n")
    out = os.path.join(work, "diverge")
    p = search(1, "linear.ini", lrs, out, "--set", "train.epochs=3")
    rows = table(out) if p.returncode == 0 else []
    check("a diverging trial fails alone: the search ends with status 0", p.returncode == 0, p.stderr[-400:])
    check("its row says failed, the other done", [r["status"] for r in rows] == ["done", "failed"], rows)
    with open(os.path.join(out, "report.md")) as f:
        check("report.md gives the failure's message", "diverged" in f.read())
    p = search(1, "linear.ini", lrs, out, "--set", "train.epochs=3")
    check("a search directory in use is refused (status 2, naming search.state)",
          p.returncode == 2 and "search.state" in p.stderr and "--resume" in p.stderr, p.stderr[-300:])
    p = search(1, "linear.ini", lrs, out, "--set", "train.epochs=3", "--overwrite")
    check("--overwrite replaces it", p.returncode == 0, p.stderr[-300:])
    p = search(1, "linear.ini", write(os.path.join(work, "other.space"), "train.lr = 0.02 1e10\n"), out, "--resume",
               "--set", "train.epochs=3")
    check("--resume of another search (a value changed) is refused (status 2)",
          p.returncode == 2 and "another search" in p.stderr, p.stderr[-300:])
    p = search(1, "linear.ini", lrs, out, "--resume", "--set", "train.epochs=3")
    check("--resume of the same search is accepted (nothing left to train)", p.returncode == 0, p.stderr[-300:])
    p = search(1, "moons.ini", lrs, os.path.join(work, "none"), "--resume")
    check("--resume of no search is refused (status 2)", p.returncode == 2 and "no search" in p.stderr, p.stderr[-300:])
    for text, words in (("data.n = 100 200\n", "data.n"), ("train.lr = loguniform 0 1\n", ":1:"),
                        ("train.lr = uniform 1\n", "LO < HI"), ("train.lr 0.1\n", ":1:"),
                        ("search.eta = 1\n", "search.eta"), ("model.activations = relu nosuch\n", "trial 1")):
        bad = write(os.path.join(work, "bad.space"), text)
        p = search(1, "moons.ini", bad, os.path.join(work, "bad"))
        check(f"refused: {text.strip()} (status 2, naming {words})", p.returncode == 2 and words in p.stderr,
              (p.returncode, p.stderr[-300:]))
    for metric, words in (("val_accuracy", "no validation rows"), ("test_r2", "not a metric of a classification"),
                          ("ema_test_loss", "moving average"), ("nope", "not a metric's name")):
        p = search(1, "moons.ini", one, os.path.join(work, "bad"), "--set", f"search.metric={metric}")
        check(f"refused: search.metric = {metric} (status 2, '{words}')", p.returncode == 2 and words in p.stderr,
              (p.returncode, p.stderr[-300:]))
    p = search(3, "moons.ini", one, os.path.join(work, "bad"), group=2)
    check("groups that do not divide the ranks are refused", p.returncode == 2 and "divide" in p.stderr, p.stderr[-300:])
    p = search(1, "digits.ini", asha, os.path.join(work, "bad"), "--folds", "3")
    check("ASHA with folds is refused", p.returncode == 2 and "folds" in p.stderr, p.stderr[-300:])
except Exception:  # an exception is a failure, never "all passed"
    import traceback
    traceback.print_exc()
    check("the test ran to its end", False)
checks.finish(work)
