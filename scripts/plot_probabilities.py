#!/usr/bin/python3
"""Plot one sample's class probabilities as a bar chart (beside the sample's image when its
features form one), as a course shows what a classifier's softmax says about one input.

    scripts/plot_probabilities.py runs/digits/best.h5 digits.h5 --row 11   # -> runs/digits/probabilities.png

CHECKPOINT is a checkpoint of a classifier; DATA the samples: HDF5 (/X, /y), CSV (x0, ..., y)
or IDX images with --labels. The probabilities are `trainer predict`'s (softmax of the
logits, exp of a log_softmax output, or the sigmoid for one output unit: P(class 0) and
P(class 1) are drawn). The true class's bar is outlined, the predicted class's coloured.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import trainer_h5 as th  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    ap.add_argument("checkpoint", help="a checkpoint of a classifier")
    ap.add_argument("data", help="samples: HDF5 (/X, /y), CSV (x0, ..., y) or IDX images with --labels")
    ap.add_argument("--row", type=int, default=0, help="the sample's row in DATA (default 0)")
    ap.add_argument("--labels", help="IDX labels file for IDX images")
    ap.add_argument("--shape", help="image ROWSxCOLS when the features are an image that is not square")
    th.picture_arguments(ap, "probabilities.png beside the checkpoint", "900x450")
    args = ap.parse_args()
    size = th.figure_size(args.size)
    names, _, trainer, x, y, _ = th.classifier_and_points(args)
    if not 0 <= args.row < len(x):
        th.fail(f"--row {args.row}: the data have {len(x)} rows (0 to {len(x) - 1})")
    out = th.predict(trainer, args.checkpoint, x[args.row:args.row + 1])
    p = out["probabilities"].reshape(-1).astype(np.float64)
    if len(p) == 1:  # one sigmoid unit: P(class 1)
        p = np.array([1.0 - p[0], p[0]])
    pred, truth = int(out["class"].reshape(-1)[0]), int(y[args.row])
    side = int(round(x.shape[1] ** 0.5))
    image = args.shape or side * side == x.shape[1] and x.shape[1] >= 16
    fig, axes = th.new_figure(size, ncols=2 if image else 1, squeeze=False,
                              gridspec_kw={"width_ratios": [1, 2]} if image else None)
    ax = axes[0][-1]
    colors = ["tab:blue" if k == pred else "lightgray" for k in range(len(p))]
    bars = ax.bar(range(len(p)), p, color=colors, edgecolor=["k" if k == truth else "none" for k in range(len(p))],
                  linewidth=2)
    for b, v in zip(bars, p):
        ax.text(b.get_x() + b.get_width() / 2, v + 0.01, f"{v:.2f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(p)), names[:len(p)], rotation=45 if max(len(n) for n in names) > 3 else 0,
                  ha="right" if max(len(n) for n in names) > 3 else "center")
    ax.set(ylim=(0, 1.1), ylabel="probability", title=f"row {args.row}: true {names[truth]}, "
                                                      f"predicted {names[pred]} ({p[pred]:.2f})")
    if image:
        axes[0][0].imshow(x[args.row].reshape(th.image_shape(x.shape[1], args.shape)), cmap="gray_r",
                          interpolation="nearest")
        axes[0][0].axis("off")
    if args.title:
        fig.suptitle(args.title)
    fig.tight_layout()
    th.save_figure(fig, th.out_beside_checkpoint(args, "probabilities.png"))


if __name__ == "__main__":
    main()
