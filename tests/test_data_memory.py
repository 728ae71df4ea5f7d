#!/usr/bin/python3
"""The data are held once per node, not once per rank.

Runs the same training at np=1 and np=4 (--oversubscribe) and samples every rank's private
anonymous memory (RssAnon in /proc/PID/status) while it runs. Each added rank may cost the
model, its workspace, OpenBLAS and MPI, but not a copy of the data: the growth per added rank
with a large data set must stay within a quarter of the data's size of the growth with a tiny
data set (the same network). Cases: Fashion-MNIST (gzip IDX, 220 MB as floats, decoded once per
node; and converted to HDF5, mapped by every rank; skipped when Debian's dataset-fashion-mnist
is missing) and a generated CSV file, trained and searched (`trainer search`, four groups of one
rank training at once).

    tests/test_data_memory.py TRAINER_BINARY SOURCE_DIR
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

import checks
from checks import check

TRAINER = os.path.abspath(sys.argv[1])
SRC = os.path.abspath(sys.argv[2])
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_rmaps_base_oversubscribe="1")
FASHION = "/usr/share/datasets/fashion-mnist"


def descendants(root):
    """Pids of the processes below root (by parent links in /proc)."""
    parent = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat") as f:
                    parent[int(p)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                pass
    out, frontier = [], [root]
    while frontier:
        kids = [p for p, pp in parent.items() if pp in frontier]
        out += kids
        frontier = kids
    return out


def rss_anon_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        if os.path.basename(fields["Name"].strip()) != "trainer":
            return None
        return int(fields["RssAnon"].split()[0])
    except (OSError, KeyError, ValueError):
        return None


def peak_anon_mb(np_, args, command="train"):
    """The largest sum over the ranks of RssAnon while the run lasts, in MiB."""
    cmd = ["mpirun", "-np", str(np_), "--oversubscribe", "--bind-to", "none", TRAINER, command, "--overwrite"] + args
    p = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = 0
    while p.poll() is None:
        per_rank = [v for v in (rss_anon_kb(q) for q in descendants(p.pid)) if v is not None]
        if len(per_rank) == np_:
            peak = max(peak, sum(per_rank))
        time.sleep(0.02)
    if p.returncode != 0:
        raise SystemExit(f"FAIL: {' '.join(cmd)}: status {p.returncode}\n{p.stderr.read()[-2000:]}")
    return peak / 1024.0


def growth_per_rank(args, command):
    one, four = peak_anon_mb(1, args, command), peak_anon_mb(4, args, command)
    return one, four, (four - one) / 3.0


def compare(name, big_args, small_args, data_mb, command="train"):
    b1, b4, big = growth_per_rank(big_args, command)
    s1, s4, small = growth_per_rank(small_args, command)
    print(f"     {name}: data {data_mb:.0f} MiB; RssAnon summed over ranks np=1 {b1:.0f} MiB, np=4 {b4:.0f} MiB "
          f"({big:.0f} MiB per added rank); tiny data: np=1 {s1:.0f}, np=4 {s4:.0f} ({small:.0f} per added rank)",
          flush=True)
    check(f"{name}: an added rank costs no copy of the data ({big:.0f} MiB vs {small:.0f} MiB with tiny data, "
          f"limit + {data_mb / 4:.0f})", big - small < data_mb / 4)


work = tempfile.mkdtemp(prefix="trainer-mem.")
try:
    common = ["--set", "train.epochs=1", "--set", "train.eval_every=1", "--set", "output.checkpoint_every=0",
              "--set", "train.threads=1"]
    # 1. Fashion-MNIST, gzip IDX: decoded once per node
    if all(os.path.exists(os.path.join(FASHION, f)) for f in ("train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz")):
        cfg = os.path.join(SRC, "datasets", "configs", "fashion_mnist.ini")
        tiny = ["--set", "data.format=auto", "--set", "data.images=", "--set", "data.labels=", "--set",
                "data.test_images=", "--set", "data.test_labels=", "--set", "data.generator=blobs", "--set",
                "data.n=2000", "--set", "data.n_features=784", "--set", "data.classes=10", "--set",
                "data.test_fraction=0.2", "--set", "data.class_names="]
        compare("Fashion-MNIST (IDX)", [cfg] + common + ["--set", f"output.dir={work}/f"],
                [cfg] + common + tiny + ["--set", f"output.dir={work}/t"], 70000 * 785 * 4 / 2**20)
        # converted to HDF5: mapped in place by every rank
        for part, images, labels in (("train", "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                                     ("test", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")):
            subprocess.run([TRAINER, "data", "convert", os.path.join(FASHION, images), f"{work}/{part}.h5",
                            "--labels", os.path.join(FASHION, labels)], check=True, stdout=subprocess.DEVNULL)
        h5 = ["--set", "data.format=auto", "--set", "data.images=", "--set", "data.labels=", "--set",
              "data.test_images=", "--set", "data.test_labels=", "--set", f"data.path={work}/train.h5", "--set",
              f"data.test_path={work}/test.h5"]
        compare("Fashion-MNIST (converted, mapped)", [cfg] + common + h5 + ["--set", f"output.dir={work}/m"],
                [cfg] + common + tiny + ["--set", f"output.dir={work}/t"], 70000 * 785 * 4 / 2**20)
    else:
        print(f"skip Fashion-MNIST: {FASHION} is missing (apt-get install dataset-fashion-mnist)")
    # 2. a CSV file: parsed once per node
    rows, cols = 40000, 200
    csv = os.path.join(work, "wide.csv")
    with open(csv, "w") as f:
        f.write(",".join(f"x{j}" for j in range(cols)) + ",y\n")
        line = ",".join(f"{(j % 7) * 0.125:.3f}" for j in range(cols))
        for i in range(rows):
            f.write(f"{line},{i % 3}\n")
    ini = os.path.join(work, "wide.ini")
    with open(ini, "w") as f:
        f.write(f"[model]\nlayers = {cols}, 16, 3\n[data]\npath = {csv}\ntest_fraction = 0.1\n"
                "[train]\nloss = cross_entropy\nbatch_size = 256\n")
    small_csv = os.path.join(work, "small.csv")
    with open(csv) as f, open(small_csv, "w") as g:
        for _ in range(501):
            g.write(f.readline())
    compare("CSV", [ini] + common + ["--set", f"output.dir={work}/c"],
            [ini] + common + ["--set", f"data.path={small_csv}", "--set", f"output.dir={work}/s"],
            rows * (cols + 1) * 4 / 2**20)
    # 3. a search: four groups of one rank train at once, on one copy of the data per node
    space = os.path.join(work, "four.space")
    with open(space, "w") as f:
        f.write("train.lr = 0.01 0.02 0.03 0.04\n")
    compare("CSV, trainer search (4 groups of 1 rank)", [ini, space] + common + ["--set", f"output.dir={work}/sc"],
            [ini, space] + common + ["--set", f"data.path={small_csv}", "--set", f"output.dir={work}/ss"],
            rows * (cols + 1) * 4 / 2**20, command="search")
finally:
    shutil.rmtree(work, ignore_errors=True)
checks.finish()
