#!/usr/bin/python3
"""Writes a synthetic table in the layout of the UCI "Electrical Grid Stability Simulated
Data" set (4-node star grid, Arzamasov et al. 2018): 12 features and the stability target,
';'-separated, as used in MLP course material.

  tau1..tau4  reaction times of the participants, U(0.5, 10)
  p1..p4      nominal power; p2..p4 ~ U(-2, -0.5) (consumers), p1 = -(p2 + p3 + p4) (producer)
  g1..g4      price elasticity, U(0.05, 1)
  stab        a stability margin: positive = unstable (synthetic formula, see below)
  stability   1 if stable (stab < 0), else 0
  stabf       the same as a word, stable or unstable (the original's text label column)

The margin is NOT the original simulation: it is a smooth function in which slow reactions
(large tau) combined with strong price elasticity (large g) destabilise the grid, plus noise,
chosen so that about 40% of the rows are stable, as in the original. It exists so the
trainer's CSV path can be exercised and demonstrated without downloading anything.

usage: scripts/make_grid_stability.py [--rows N] [--seed S] [--out FILE]
"""
import argparse
import sys

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=100)
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--out", default="-", help="output file (default: standard output)")
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    n = a.rows
    tau = rng.uniform(0.5, 10.0, (n, 4))
    p = np.empty((n, 4))
    p[:, 1:] = rng.uniform(-2.0, -0.5, (n, 3))
    p[:, 0] = -p[:, 1:].sum(axis=1)
    g = rng.uniform(0.05, 1.0, (n, 4))
    drive = (tau * g).mean(axis=1)                  # slow, elastic participants
    load = np.abs(p[:, 1:]).std(axis=1)             # unbalanced consumers
    stab = 0.012 * (drive - 2.5) + 0.01 * load + 0.006 * rng.standard_normal(n)
    stability = (stab < 0).astype(int)
    out = sys.stdout if a.out == "-" else open(a.out, "w")
    cols = [f"tau{i}" for i in range(1, 5)] + [f"p{i}" for i in range(1, 5)] + [f"g{i}" for i in range(1, 5)]
    out.write(";".join(cols + ["stab", "stability", "stabf"]) + "\n")
    for r in range(n):
        vals = [f"{v:.4f}" for v in np.concatenate([tau[r], p[r], g[r]])]
        words = "stable" if stability[r] else "unstable"
        out.write(";".join(vals + [f"{stab[r]:.5f}", str(stability[r]), words]) + "\n")
    if out is not sys.stdout:
        out.close()
    print(f"{n} rows, {stability.mean():.0%} stable", file=sys.stderr)


if __name__ == "__main__":
    main()
