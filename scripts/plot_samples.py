#!/usr/bin/python3
"""Plot a grid of sample images with their true and predicted labels (the course's first look
at an image classifier's mistakes).

    scripts/plot_samples.py runs/digits/best.h5 digits.h5               # -> runs/digits/samples.png
    scripts/plot_samples.py runs/fashion/best.h5 \\
        /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz \\
        --labels /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz --errors

CHECKPOINT is a checkpoint of an image classifier (best.h5, ckpt-<step>.h5); DATA its images:
HDF5 (/X, /y, as `trainer data gen digits` writes), CSV (x0, ..., y) or IDX with --labels. The
predictions come from `trainer predict` itself. Each image is titled "true / predicted", in
red when they differ; --errors shows only mistakes. The image shape is the square root of the
feature count unless --shape gives it.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import trainer_h5 as th  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    ap.add_argument("checkpoint", help="a checkpoint of an image classifier")
    ap.add_argument("data", help="images: HDF5 (/X, /y), CSV (x0, ..., y) or IDX images with --labels")
    ap.add_argument("--labels", help="IDX labels file for IDX images")
    ap.add_argument("--rows", type=int, default=4, help="rows of images (default 4)")
    ap.add_argument("--cols", type=int, default=8, help="columns of images (default 8)")
    ap.add_argument("--first", type=int, default=0, help="first data row shown (default 0)")
    ap.add_argument("--errors", action="store_true", help="only misclassified images")
    ap.add_argument("--shape", help="image ROWSxCOLS (default: a square)")
    th.picture_arguments(ap, "samples.png beside the checkpoint", "1000x600")
    args = ap.parse_args()
    size = th.figure_size(args.size)
    if not (1 <= args.rows <= 20 and 1 <= args.cols <= 20):
        th.fail("--rows and --cols must be 1 to 20")
    names, _, trainer, x, y, _ = th.classifier_and_points(args)
    shape = th.image_shape(x.shape[1], args.shape)
    if not 0 <= args.first < len(x):
        th.fail(f"--first {args.first}: the data have {len(x)} rows")
    n = args.rows * args.cols
    # enough rows to find n mistakes at a plausible error rate, or just the n shown
    pick = np.arange(args.first, min(len(x), args.first + (n * 50 if args.errors else n)))
    pred = th.predict(trainer, args.checkpoint, x[pick])["class"].reshape(-1)
    truth = y[pick].astype(np.int64).reshape(-1)
    if args.errors:
        wrong = np.nonzero(pred != truth)[0][:n]
        pick, pred, truth = pick[wrong], pred[wrong], truth[wrong]
    fig, axes = th.new_figure(size, nrows=args.rows, ncols=args.cols, squeeze=False)
    for k, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if k >= len(pick):
            continue
        ax.imshow(x[pick[k]].reshape(shape), cmap="gray_r", interpolation="nearest")
        ok = pred[k] == truth[k]
        ax.set_title(f"{names[truth[k]]} / {names[pred[k]]}", fontsize=8, color="black" if ok else "tab:red")
    acc = float(np.mean(pred == truth)) if len(pick) else float("nan")
    what = "misclassified samples" if args.errors else f"samples {pick[0]}..{pick[-1]}, accuracy {acc:.3f}" \
        if len(pick) else "no samples"
    fig.suptitle(args.title or f"true / predicted: {what}")
    fig.tight_layout()
    th.save_figure(fig, th.out_beside_checkpoint(args, "samples.png"))


if __name__ == "__main__":
    main()
