#!/usr/bin/python3
"""Deterministic mode is invariant by construction: the same bits on any layout.

On a ragged data set (1001 two-moons rows, 96 rows per optimizer step, so every epoch ends in
a short step), Adam, dropout, 3 epochs: np in {1, 2, 3, 4, 7} x threads in {1, 2} x
accumulate in {1, 3} (batch_size 96 or 32) must give byte-identical /model and /optimizer
tensors in the final checkpoint; so must simulated multi-node layouts (the sum across nodes)
and comm = allreduce (no node-shared memory); with batch norm the running statistics and the
weights' moving average (ema_decay) as well;
with LAMB and LARS under clip_norm (norms over whole tensors cut among the ranks) too. A run
stopped by a signal in mid-epoch at np=3 and resumed
at np=2 must end with the same bits too. Every GEMM engine and precision keeps the invariance
(onednn fp32 and bf16, auto bf16, over np x threads x accumulation), and a resume with another
engine or precision is refused. Controls show the comparison can fail: another chunk_rows,
bf16 against fp32, and the default (float) mode on two ranks, differ.

    tests/test_deterministic.py TRAINER_BINARY SOURCE_DIR
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
ENV = checks.MPI_ENV
COMMON = ["--set", "data.n=1251", "--set", "data.test_fraction=0.2", "--set", "train.epochs=3",
          "--set", "train.eval_every=3", "--set", "model.dropout=0.1", "--set", "train.deterministic=true",
          "--set", "train.chunk_rows=16", "--set", "output.checkpoint_every=0"]


def run(np_, args, env=None, expect=0):
    cmd = checks.launch(np_)
    p = subprocess.run(cmd + ["train", MOONS] + COMMON + args, env=dict(ENV, **(env or {})),
                       capture_output=True, text=True, timeout=300)
    if p.returncode != expect:
        raise SystemExit(f"FAIL: {' '.join(args)} at np={np_}: status {p.returncode} (want {expect})\n{p.stderr[-2000:]}")
    return p


def fingerprint(run_dir):
    """The checkpoint hash and the newest checkpoint's name (its step)."""
    return checkpoint_hash.fingerprint(run_dir), os.path.basename(checkpoint_hash.newest_checkpoint(run_dir))


work = tempfile.mkdtemp(prefix="trainer-det.")
try:
    results = {}
    for np_ in (1, 2, 3, 4, 7):
        for threads in (1, 2):
            for acc in (1, 3):
                d = os.path.join(work, f"np{np_}-t{threads}-a{acc}")
                run(np_, ["--set", f"train.batch_size={96 // acc}", "--set", f"train.accumulate={acc}",
                          "--set", f"train.threads={threads}", "--set", f"output.dir={d}"])
                results[(np_, threads, acc)] = fingerprint(d)
                print(f"     np {np_} threads {threads} accumulate {acc}: {results[(np_, threads, acc)]}", flush=True)
    # the exact sum's other paths: several "nodes" (the sum across nodes: 2 x 2, 3 x 1,
    # 4 x 1 with accumulation) and no node group at all (comm = allreduce, uneven 2 + 1)
    for np_, per_node, comm in ((4, 2, "auto"), (3, 1, "auto"), (4, 1, "auto"), (3, 0, "allreduce"), (3, 2, "auto")):
        d = os.path.join(work, f"np{np_}-nodes{per_node}-{comm}")
        env = {"TRAINER_TEST_RANKS_PER_NODE": str(per_node)} if per_node else {}
        run(np_, ["--set", "train.batch_size=32", "--set", "train.accumulate=3", "--set", f"train.comm={comm}",
                  "--set", f"output.dir={d}"], env=env)
        results[(np_, per_node, comm)] = fingerprint(d)
        print(f"     np {np_} ranks per node {per_node or 'all'} comm {comm}: {results[(np_, per_node, comm)]}",
              flush=True)
    reference = results[(1, 1, 1)]
    check(f"all {len(results)} layouts give the same bits", all(v == reference for v in results.values()))

    # batch norm: its running statistics (in /model) too, applied in chunk order on every rank
    bn = {}
    for np_, per_node in ((1, 0), (2, 0), (3, 0), (3, 1)):
        d = os.path.join(work, f"bn-np{np_}-{per_node}")
        env = {"TRAINER_TEST_RANKS_PER_NODE": str(per_node)} if per_node else {}
        run(np_, ["--set", "model.batchnorm=true", "--set", "train.batch_size=96", "--set", "train.ema_decay=0.9",
                  "--set", f"output.dir={d}"], env=env)
        bn[(np_, per_node)] = fingerprint(d)
    check("batch norm, running statistics and the weights' moving average included: np 1, 2, 3 and 3 nodes give "
          f"the same bits ({bn[(1, 0)][0]})", len({v[0] for v in bn.values()}) == 1)

    # the norms over whole tensors (clip_norm's, and LAMB's and LARS's per tensor) while the
    # ranks own pieces of tensors: a 4481-parameter network (9 cells of the norms' grid) cut
    # among 1, 2, 3, 7 ranks and 2 x 2 nodes
    for opt in ("lamb", "lars"):
        wide = {}
        for np_, per_node in ((1, 0), (2, 0), (3, 0), (7, 0), (4, 2)):
            d = os.path.join(work, f"{opt}-np{np_}-{per_node}")
            env = {"TRAINER_TEST_RANKS_PER_NODE": str(per_node)} if per_node else {}
            run(np_, ["--set", "model.layers=2,64,64,1", "--set", f"train.optimizer={opt}", "--set", "train.lr=auto",
                      "--set", "train.clip_norm=0.5", "--set", "train.batch_size=96", "--set", f"output.dir={d}"],
                env=env)
            wide[(np_, per_node)] = fingerprint(d)
        check(f"{opt} with clip_norm: np 1, 2, 3, 7 and 2 x 2 nodes give the same bits ({wide[(1, 0)][0]})",
              len({v[0] for v in wide.values()}) == 1)

    # stopped in mid-epoch at np=3 (after step 13 of 11 per epoch: in epoch 2), resumed at np=2
    d = os.path.join(work, "resumed")
    run(3, ["--set", "train.batch_size=96", "--set", f"output.dir={d}"],
        env={"TRAINER_TEST_SIGNAL_AT_STEP": "0:13"}, expect=75)
    run(2, ["--set", "train.batch_size=32", "--set", "train.accumulate=3", "--set", f"output.dir={d}",
            "--resume", d])
    check("stopped at np=3 in mid-epoch, resumed at np=2: the same bits", fingerprint(d) == reference)

    # controls: the comparison sees a difference where there is one
    d = os.path.join(work, "chunk32")
    run(2, ["--set", "train.batch_size=96", "--set", "train.chunk_rows=32", "--set", f"output.dir={d}"])
    check("control: chunk_rows 32 differs from 16", fingerprint(d)[0] != reference[0])
    for np_ in (1, 2):
        d = os.path.join(work, f"float{np_}")
        run(np_, ["--set", "train.batch_size=96", "--set", "train.deterministic=false", "--set", f"output.dir={d}"])
        results[("float", np_)] = fingerprint(d)
    check("control: the default (float) mode differs between np 1 and 2",
          results[("float", 1)][0] != results[("float", 2)][0])

    # every engine and precision (bf16 where the CPU has it): the same bits on every layout
    probe = subprocess.run([TRAINER, "train", MOONS, "--set", "train.precision=bf16", "--set", "train.epochs=1",
                            "--set", f"output.dir={work}/probe"], env=ENV, capture_output=True, text=True)
    bf16 = probe.returncode == 0
    if not bf16:
        print("skip bf16 variants: " + (probe.stderr.strip().splitlines() or ["?"])[-1], flush=True)
    variants = {}
    for gemm, prec in (("onednn", "fp32"), ("onednn", "bf16"), ("auto", "bf16")):
        if prec == "bf16" and not bf16:
            continue
        fps = set()
        for np_, threads, acc in ((1, 1, 1), (2, 2, 3), (3, 1, 1), (4, 2, 3)):
            d = os.path.join(work, f"{gemm}-{prec}-np{np_}-t{threads}-a{acc}")
            run(np_, ["--set", f"train.batch_size={96 // acc}", "--set", f"train.accumulate={acc}",
                      "--set", f"train.threads={threads}", "--set", f"train.gemm={gemm}",
                      "--set", f"train.precision={prec}", "--set", f"output.dir={d}"])
            fps.add(fingerprint(d))
        variants[(gemm, prec)] = fps
        check(f"gemm {gemm}, precision {prec}: np 1-4 x threads x accumulation give the same bits ({fps})",
              len(fps) == 1)
    if bf16:
        check("control: bf16 differs from fp32 (onednn)",
              variants[("onednn", "bf16")] != variants[("onednn", "fp32")])
        check("auto in deterministic mode takes onednn for bf16: the same bits",
              variants[("auto", "bf16")] == variants[("onednn", "bf16")])
    # a deterministic resume with another engine is refused, naming both
    d = os.path.join(work, "np1-t1-a1")
    p = run(1, ["--set", "train.batch_size=96", "--set", "train.epochs=4", "--set", "train.gemm=onednn",
                "--set", f"output.dir={d}", "--resume", d], expect=2)
    check("a deterministic resume with gemm = onednn from an openblas run is refused",
          "gemm = openblas" in p.stderr and "onednn" in p.stderr and "deterministic" in p.stderr)

except BaseException:  # a crash keeps the files for a look
    print(f"files kept in {work}")
    raise
checks.finish(work)
