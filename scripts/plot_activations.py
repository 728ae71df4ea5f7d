#!/usr/bin/python3
"""Plot the activation functions and their derivatives as the trainer computes them: the
values come from `trainer activations`, which runs the trainer's own forward and backward
kernels on a grid, so the picture shows what training uses (not a textbook formula).

    scripts/plot_activations.py                                  # -> activations.png
    scripts/plot_activations.py --only relu,leaky_relu,elu --leaky-slope 0.1 --out act.png

One panel per activation: f(x) solid, f'(x) dashed, over x in [-6, 6] (--range to narrow it).
"""
import argparse
import csv
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import trainer_h5 as th  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    ap.add_argument("--only", help="comma-separated activations (default: all)")
    ap.add_argument("--range", default="-4,4", help="x range drawn, LO,HI within [-6, 6] (default -4,4)")
    ap.add_argument("--leaky-slope", type=float, help="leaky_relu's negative slope (default the trainer's 0.01)")
    ap.add_argument("--elu-alpha", type=float, help="elu's alpha (default 1)")
    th.picture_arguments(ap, "activations.png", "1200x800")
    args = ap.parse_args()
    size = th.figure_size(args.size)
    try:
        lo, hi = (float(v) for v in args.range.split(","))
        if not -6 <= lo < hi <= 6:
            raise ValueError
    except ValueError:
        th.fail(f"--range {args.range}: expected LO,HI with -6 <= LO < HI <= 6")
    trainer = th.find_trainer(args.trainer)
    sets = []
    if args.leaky_slope is not None:
        sets += ["--set", f"model.leaky_slope={args.leaky_slope}"]
    if args.elu_alpha is not None:
        sets += ["--set", f"model.elu_alpha={args.elu_alpha}"]
    with tempfile.TemporaryDirectory() as tmp:
        table = os.path.join(tmp, "activations.csv")
        r = subprocess.run([trainer, "activations", "--out", table] + sets, capture_output=True, text=True)
        if r.returncode != 0:
            th.fail(f"trainer activations failed (status {r.returncode}): {r.stderr.strip()}", r.returncode)
        with open(table, newline="") as f:
            rows = list(csv.reader(f))
    header, values = rows[0], np.array(rows[1:], dtype=np.float64)
    col = {name: values[:, i] for i, name in enumerate(header)}
    names = [n for n in header[1:] if not n.startswith("d_")]
    if args.only:
        wanted = [n.strip() for n in args.only.split(",")]
        unknown = [n for n in wanted if n not in names]
        if unknown:
            th.fail(f"--only: unknown activation {', '.join(unknown)} (choose from {', '.join(names)})")
        names = wanted
    ncols = min(4, len(names))
    nrows = (len(names) + ncols - 1) // ncols
    fig, axes = th.new_figure(size, nrows=nrows, ncols=ncols, squeeze=False)
    x = col["x"]
    shown = (x >= lo) & (x <= hi)
    for k, ax in enumerate(axes.ravel()):
        if k >= len(names):
            ax.axis("off")
            continue
        n = names[k]
        ax.axhline(0, color="0.8", lw=0.8)
        ax.axvline(0, color="0.8", lw=0.8)
        ax.plot(x[shown], col[n][shown], lw=2, label="f(x)")
        ax.plot(x[shown], col["d_" + n][shown], lw=1.5, ls="--", label="f'(x)")
        ax.set_title(n)
        if k == 0:
            ax.legend(fontsize="small")
    fig.suptitle(args.title or "activations and their derivatives, as the trainer's kernels compute them")
    fig.tight_layout()
    th.save_figure(fig, args.out or "activations.png")


if __name__ == "__main__":
    main()
