#!/usr/bin/python3
"""Plot the data as points coloured by the class the model predicts, the misclassified ones
marked: any number of features, seen through two of them or their first two principal
components (or those of a hidden layer's activations, what the network has made of them).

    scripts/plot_scatter.py runs/iris/best.h5 iris.h5                   # 2 principal components
    scripts/plot_scatter.py runs/iris/best.h5 iris.h5 --features 2,3    # petal length, petal width
    scripts/plot_scatter.py runs/digits/best.h5 digits.h5 --layer 0     # the hidden layer's view

CHECKPOINT is a checkpoint of a classifier; DATA HDF5 (/X, /y), CSV (x0, ..., y) or IDX images
with --labels. Predictions (and with --layer K the activations of weight layer K) come from
`trainer predict`. Axes: the two --features (numbers or names from the file), else, for more
than two columns, the first two principal components (PCA by SVD of the centred data).
Marker colour = predicted class; a black ring = the true class differs.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import trainer_h5 as th  # noqa: E402


def pick_features(spec, columns, width):
    """Two column indices from "i,j" (indices or names)."""
    parts = [p.strip() for p in spec.split(",")]
    if len(parts) != 2:
        th.fail(f"--features {spec}: give two columns, e.g. 0,1")
    out = []
    for p in parts:
        if p.isdigit() and int(p) < width:
            out.append(int(p))
        elif columns and p in columns:
            out.append(columns.index(p))
        else:
            th.fail(f"--features {spec}: '{p}' is not a column (0 to {width - 1}"
                    + (f", or one of {', '.join(columns[:8])}...)" if columns else ")"))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    ap.add_argument("checkpoint", help="a checkpoint of a classifier")
    ap.add_argument("data", help="points: HDF5 (/X, /y), CSV (x0, ..., y) or IDX images with --labels")
    ap.add_argument("--labels", help="IDX labels file for IDX images")
    ap.add_argument("--features", help="two columns to plot, by index or name (default: PCA beyond 2 columns)")
    ap.add_argument("--layer", type=int, help="plot the activations of weight layer K (0 = first hidden layer)")
    ap.add_argument("--max-points", type=int, default=5000, help="at most this many points (default 5000)")
    th.picture_arguments(ap, "scatter.png beside the checkpoint", "800x650")
    args = ap.parse_args()
    size = th.figure_size(args.size)
    names, widths, trainer, x, y, columns = th.classifier_and_points(args)
    if args.layer is not None and not 0 <= args.layer < len(widths) - 1:
        th.fail(f"--layer {args.layer}: the model has weight layers 0 to {len(widths) - 2}")
    if len(x) > args.max_points:
        keep = np.random.default_rng(0).choice(len(x), args.max_points, replace=False)
        x, y = x[np.sort(keep)], y[np.sort(keep)]
    pred = th.predict(trainer, args.checkpoint, x)["class"].reshape(-1)
    truth = y.astype(np.int64).reshape(-1)
    view, labels = x, columns
    if args.layer is not None:
        view = th.predict(trainer, args.checkpoint, x, layer=args.layer)["activations"].astype(np.float64)
        labels = None
    where = f"layer {args.layer} activations" if args.layer is not None else "features"
    if args.features:
        i, j = pick_features(args.features, labels, view.shape[1])
        xy = view[:, [i, j]]
        axis = [labels[i] if labels else f"{where} {i}", labels[j] if labels else f"{where} {j}"]
    elif view.shape[1] == 2:
        xy, axis = view, [labels[0] if labels else "x0", labels[1] if labels else "x1"]
    else:
        centred = view - view.mean(axis=0)
        _, s, vt = np.linalg.svd(centred, full_matrices=False)
        xy = centred @ vt[:2].T
        share = s[:2] ** 2 / max(np.sum(s ** 2), 1e-300)
        axis = [f"PC1 of the {where} ({share[0]:.0%} of the variance)",
                f"PC2 of the {where} ({share[1]:.0%} of the variance)"]
    fig, ax = th.new_figure(size)
    cmap = "tab10" if len(names) <= 10 else "tab20"
    for c in range(len(names)):
        m = pred == c
        if m.any():
            ax.scatter(xy[m, 0], xy[m, 1], s=14, c=[c] * int(m.sum()), cmap=cmap, vmin=-0.5,
                       vmax=(9.5 if len(names) <= 10 else 19.5), label=f"predicted {names[c]}", alpha=0.8)
    wrong = pred != truth
    if wrong.any():
        ax.scatter(xy[wrong, 0], xy[wrong, 1], s=60, facecolors="none", edgecolors="k", linewidths=1,
                   label=f"misclassified ({int(wrong.sum())})")
    ax.legend(fontsize="small", loc="best")
    ax.set(xlabel=axis[0], ylabel=axis[1])
    ax.set_title(args.title or f"predicted classes, accuracy {float(np.mean(~wrong)):.3f} on {len(x)} points")
    fig.tight_layout()
    th.save_figure(fig, th.out_beside_checkpoint(args, "scatter.png"))


if __name__ == "__main__":
    main()
