#!/usr/bin/python3
"""Plot what a model learned: the decision regions of a 2-feature classifier over its data,
or the fitted curve of a 1-feature regression.

    scripts/plot_decision.py runs/moons/best.h5 moons.h5          # -> runs/moons/decision.png
    scripts/plot_decision.py runs/inverse/best.h5 inverse.csv --out fit.png

CHECKPOINT is any checkpoint of a run (best.h5, ckpt-<step>.h5); DATA the points to draw, an
HDF5 file (/X features, /y labels or values: what `trainer data gen` writes) or a CSV file
with columns x0, x1, ..., y. The model is evaluated with `trainer predict` itself (so feature
scaling, batch norm and the output activation are exactly the trainer's) on a grid over the
data's range; classifiers get colour regions by predicted class (binary: shaded by P(class
1) with the 0.5 contour), regressors the predicted curve over the data.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import trainer_h5 as th  # noqa: E402


def predict(trainer, checkpoint, grid, points):
    """`trainer predict` once on the rows of grid and points: the output's datasets for each."""
    result = th.predict(trainer, checkpoint, np.vstack([grid, points]))
    n = len(grid)
    return {k: v[:n] for k, v in result.items()}, {k: v[n:] for k, v in result.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    ap.add_argument("checkpoint", help="a checkpoint of the run (best.h5, ckpt-<step>.h5)")
    ap.add_argument("data", help="points to draw: HDF5 (/X, /y) or CSV (x0, ..., y)")
    th.picture_arguments(ap, "decision.png beside the checkpoint", "800x650")
    ap.add_argument("--resolution", type=int, default=300, help="grid points per axis (default 300)")
    args = ap.parse_args()
    size = th.figure_size(args.size)
    if not 10 <= args.resolution <= 2000:
        th.fail("--resolution must be 10 to 2000")
    ck = th.read_checkpoint(args.checkpoint)
    trainer = th.find_trainer(args.trainer)
    x, y, _ = th.read_points(args.data)
    widths = [int(w) for w in ck["layers"].split(",")] if ck["layers"] else []
    features = widths[0] if widths else x.shape[1]
    if x.shape[1] != features:
        th.fail(f"{args.data}: {x.shape[1]} features, but the model takes {features}")
    classifier, names, _ = th.model_classes(ck)
    out = th.out_beside_checkpoint(args, "decision.png")

    fig, ax = th.new_figure(size)
    if classifier and features == 2:
        pad = 0.1 * (x.max(axis=0) - x.min(axis=0)) + 1e-6
        lo, hi = x.min(axis=0) - pad, x.max(axis=0) + pad
        g0, g1 = np.meshgrid(np.linspace(lo[0], hi[0], args.resolution), np.linspace(lo[1], hi[1], args.resolution))
        p, at_points = predict(trainer, args.checkpoint, np.column_stack([g0.ravel(), g1.ravel()]), x)
        cls = p["class"].reshape(g0.shape)
        probs = p["probabilities"]
        labels = y.astype(np.int64)
        acc = float(np.mean(at_points["class"].reshape(-1) == labels))
        k = len(names)
        if probs.ndim == 1 or probs.shape[-1] == 1:  # binary: P(class 1)
            p1 = probs.reshape(g0.shape)
            cs = ax.contourf(g0, g1, p1, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.6)
            ax.contour(g0, g1, p1, levels=[0.5], colors="k", linewidths=1.5)
            fig.colorbar(cs, ax=ax, label=f"P({names[1]})")
        else:
            ax.contourf(g0, g1, cls, levels=np.arange(k + 1) - 0.5, cmap="tab10", vmin=-0.5, vmax=9.5, alpha=0.35)
        cmap = "RdBu_r" if k == 2 else "tab10"
        for c in range(k):
            m = labels == c
            if m.any():
                color = ("tab:blue", "tab:red")[c] if k == 2 else None
                ax.scatter(x[m, 0], x[m, 1], s=12, edgecolors="k", linewidths=0.3, label=names[c],
                           c=color if color else [c] * int(m.sum()), cmap=None if color else cmap,
                           vmin=None if color else -0.5, vmax=None if color else 9.5)
        ax.legend(fontsize="small", loc="best")
        ax.set(xlabel="x0", ylabel="x1", xlim=(lo[0], hi[0]), ylim=(lo[1], hi[1]))
        ax.set_title(args.title or f"decision regions, accuracy {acc:.3f} on {len(x)} points")
    elif not classifier and features == 1:
        lo, hi = x.min(), x.max()
        pad = 0.05 * (hi - lo) + 1e-6
        grid = np.linspace(lo - pad, hi + pad, args.resolution)[:, None]
        on_grid, at_points = predict(trainer, args.checkpoint, grid, x)
        pred = on_grid["predictions"].reshape(len(grid), -1)[:, 0]
        fit = at_points["predictions"].reshape(len(x), -1)[:, 0]
        yv = y.astype(np.float64)
        r2 = 1.0 - np.sum((yv - fit) ** 2) / max(np.sum((yv - yv.mean()) ** 2), 1e-300)
        ax.scatter(x[:, 0], yv, s=10, alpha=0.5, label="data")
        ax.plot(grid[:, 0], pred, color="tab:red", linewidth=2, label="model")
        ax.legend()
        ax.set(xlabel="x", ylabel="y")
        ax.set_title(args.title or f"regression fit, R2 {r2:.4f} on {len(x)} points")
    else:
        kind = "classifier" if classifier else "regression model"
        th.fail(f"{args.checkpoint}: a {kind} with {features} input features; plot_decision draws classifiers with "
                "2 features and regressions with 1")
    fig.tight_layout()
    th.save_figure(fig, out)


if __name__ == "__main__":
    main()
