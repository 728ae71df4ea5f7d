#!/usr/bin/python3
"""Gradient compression ([train] grad_compression = bf16 | fp16) on the paths it changes.

On the two-moons network (Adam, 3 epochs, fp32 products from openblas), for bf16 and fp16:
  - two ranks with comm = allreduce and two one-rank "nodes" (TRAINER_TEST_RANKS_PER_NODE=1,
    the node-shared step's sum across nodes) give the same bits: each rounds its own gradient
    and one compressed sum of two is the same in either order;
  - the compressed runs differ from fp32 sums (control: the compression happened), and
    bf16 from fp16;
  - where no gradient crosses a node (one rank; two ranks on one node with comm = shared)
    compression changes nothing, bit for bit;
  - 2 nodes x 2 ranks (differing from its fp32 sums), 3 ranks over allreduce (a tree of three) and 3 one-rank nodes train
    to the uncompressed test accuracy within 2 points, every replica equal (the trainer
    checks the replicas at every epoch's end);
  - fp16 sums past 65504 end the run as diverged (status 5) with a message naming bf16,
    where bf16 trains on;
  - deterministic mode refuses compression (status 2, naming both keys).

    tests/test_compression.py TRAINER_BINARY SOURCE_DIR
"""
import os
import subprocess
import sys
import tempfile

import checks
from checks import check

import checkpoint_hash

TRAINER = os.path.abspath(sys.argv[1])
SRC = os.path.abspath(sys.argv[2])
MOONS = os.path.join(SRC, "datasets", "configs", "moons.ini")
BOSTON = os.path.join(SRC, "datasets", "configs", "boston.ini")
ENV = checks.MPI_ENV
COMMON = ["--set", "data.n=1000", "--set", "train.epochs=3", "--set", "train.eval_every=3",
          "--set", "train.gemm=openblas", "--set", "output.checkpoint_every=0", "--set", "train.threads=1"]


def run(np_, config, args, per_node=0, expect=0):
    cmd = checks.launch(np_)
    env = dict(ENV, TRAINER_TEST_RANKS_PER_NODE=str(per_node)) if per_node else ENV
    p = subprocess.run(cmd + ["train", config] + args, env=env, capture_output=True, text=True, timeout=300)
    if p.returncode != expect:
        raise SystemExit(f"FAIL: {' '.join(args)} at np={np_}: status {p.returncode} (want {expect})\n"
                         f"{p.stdout[-1000:]}{p.stderr[-2000:]}")
    return p


def train(work, name, np_, compression, comm="auto", per_node=0):
    d = os.path.join(work, name)
    p = run(np_, MOONS, COMMON + ["--set", f"train.grad_compression={compression}", "--set", f"train.comm={comm}",
                                  "--set", f"output.dir={d}"], per_node=per_node)
    accuracy = [float(line.split("accuracy")[1].split()[0]) for line in p.stdout.splitlines()
                if line.strip().startswith("accuracy")]
    return checkpoint_hash.fingerprint(d), accuracy[-1] if accuracy else None


work = tempfile.mkdtemp(prefix="trainer-compression.")
try:
    reference = train(work, "np1-none", 1, "none")
    fp32_np2 = train(work, "np2-allreduce-none", 2, "none", comm="allreduce")
    print(f"     np 1: {reference}, np 2 fp32 sums: {fp32_np2}", flush=True)
    fp32_2x2 = train(work, "2x2-none", 4, "none", per_node=2)
    compressed = {}
    for kind in ("bf16", "fp16"):
        a = train(work, f"np2-allreduce-{kind}", 2, kind, comm="allreduce")
        n = train(work, f"np2-nodes-{kind}", 2, kind, per_node=1)
        compressed[kind] = a
        print(f"     {kind}: allreduce {a}, two nodes {n}", flush=True)
        check(f"{kind}: two ranks over allreduce and two one-rank nodes give the same bits", a[0] == n[0])
        check(f"{kind}: differs from the fp32 sums (control)", a[0] != fp32_np2[0])
        one = train(work, f"np1-{kind}", 1, kind)
        check(f"{kind}: one rank is unchanged, bit for bit", one[0] == reference[0])
        shared = train(work, f"np2-shared-{kind}", 2, kind, comm="shared")
        shared_none = train(work, f"np2-shared-none-{kind}", 2, "none", comm="shared")
        check(f"{kind}: two ranks on one node (comm = shared, no sum across nodes) are unchanged",
              shared[0] == shared_none[0])
        for name, np_, comm, per_node in (("2 nodes x 2 ranks", 4, "auto", 2), ("3 ranks over allreduce", 3,
                                                                                "allreduce", 0),
                                          ("3 one-rank nodes", 3, "auto", 1)):
            r = train(work, f"{kind}-{np_}-{comm}-{per_node}", np_, kind, comm=comm, per_node=per_node)
            check(f"{kind}, {name}: test accuracy {r[1]} within 2 points of fp32's {reference[1]}",
                  r[1] is not None and abs(r[1] - reference[1]) <= 0.02)
            if per_node == 2:
                check(f"{kind}, {name}: differs from fp32 sums (control: the sum across nodes is compressed)",
                      r[0] != fp32_2x2[0])
    check("bf16 and fp16 differ (control)", compressed["bf16"][0] != compressed["fp16"][0])

    # gradients past fp16's range: a sum loss over 400 unscaled rows
    big = ["--set", "train.reduction=sum", "--set", "train.batch_size=400", "--set", "data.scale=none",
           "--set", "train.epochs=1", "--set", "train.comm=allreduce", "--set", "output.checkpoint_every=0"]
    p = run(2, BOSTON, big + ["--set", "train.grad_compression=fp16", "--set", f"output.dir={work}/fp16-big"],
            expect=5)
    check("fp16 past 65504: diverged (status 5), the message names grad_compression = bf16",
          "grad_compression = bf16" in p.stderr, p.stderr[-300:])
    run(2, BOSTON, big + ["--set", "train.grad_compression=bf16", "--set", f"output.dir={work}/bf16-big"])
    check("the same gradients in bf16 train on", True)

    p = run(1, MOONS, COMMON + ["--set", "train.deterministic=true", "--set", "train.grad_compression=bf16",
                                "--set", f"output.dir={work}/det"], expect=2)
    check("deterministic mode refuses grad_compression (status 2, both keys named)",
          "grad_compression" in p.stderr and "deterministic" in p.stderr, p.stderr)
except BaseException:  # a crash keeps the files for a look
    print(f"files kept in {work}")
    raise
checks.finish(work)
