#!/usr/bin/python3
"""Plot a classifier run's confusion matrix as a heatmap with class names.

    scripts/plot_confusion.py runs/fashion_mnist                 # -> runs/fashion_mnist/confusion.png
    scripts/plot_confusion.py runs/moons --split val --epoch 20 --normalize

Reads /metrics/<split>_confusion from RUN/metrics.h5 (rows: true class, columns: predicted
class; one matrix per evaluated epoch, the last by default) and the class names from the
run's configuration ([data] class_names in RUN/config.ini, or RUN/effective-config.ini) unless --class-names gives them.
--normalize shows each row as fractions of the true class (recall on the diagonal).
"""
import argparse
import os
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import trainer_h5 as th  # noqa: E402

SPLITS = {"test": "test", "val": "val", "train": "train_eval"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="run directory of a classifier (with metrics.h5)")
    ap.add_argument("--split", choices=sorted(SPLITS), default="test",
                    help="which evaluation (default test; train needs train.eval_train = true)")
    ap.add_argument("--epoch", type=int, help="the epoch to show (default: the last evaluated)")
    ap.add_argument("--normalize", action="store_true", help="rows as fractions of the true class")
    ap.add_argument("--class-names", help="comma-separated names (default: [data] class_names of the run)")
    ap.add_argument("--out", help="PNG to write (default RUN/confusion.png)")
    ap.add_argument("--size", default="800x700", help="image size in pixels, WIDTHxHEIGHT (default 800x700)")
    ap.add_argument("--title", help="figure title")
    args = ap.parse_args()
    if not os.path.isdir(args.run):
        th.fail(f"{args.run}: not a run directory")
    size = th.figure_size(args.size)
    path = th.require_file(os.path.join(args.run, "metrics.h5"), "the metric log a trainer run writes")
    name = f"{SPLITS[args.split]}_confusion"
    try:
        f = h5py.File(path, "r", swmr=True)  # readable while the run is still writing it
    except OSError as e:
        th.fail(f"{path}: not a readable HDF5 file ({e})")
    with f:
        if "metrics" not in f:
            th.fail(f"{path}: no /metrics group: not a trainer metric log")
        m = f["metrics"]
        if name not in m:
            have = sorted(k[:-len("_confusion")] for k in m if k.endswith("_confusion"))
            if not have:
                th.fail(f"{path}: no confusion matrices: the run is not a classifier (or evaluated nothing yet)")
            th.fail(f"{path}: no /metrics/{name}; this run has: {', '.join(have)}"
                    + ("" if args.split != "train" else " (set train.eval_train = true for train)"))
        conf = np.array(m[name])
        epochs = np.array(m["epoch"]).astype(np.int64)
    if conf.shape[0] == 0:
        th.fail(f"{path}: no epoch evaluated yet")
    if args.epoch is None:
        row = conf.shape[0] - 1
    else:
        hits = np.nonzero(epochs == args.epoch)[0]
        if len(hits) == 0:
            th.fail(f"{path}: epoch {args.epoch} was not evaluated; evaluated epochs: "
                    f"{', '.join(str(e) for e in epochs)}")
        row = int(hits[-1])
    cm = conf[row].astype(np.int64)
    k = cm.shape[0]
    names_src = args.class_names if args.class_names is not None else \
        th.read_run_config(args.run).get("data.class_names", "")
    names = th.class_names(names_src, k)
    if args.class_names is not None and len(args.class_names.split(",")) != k:
        th.fail(f"--class-names has {len(args.class_names.split(','))} names for {k} classes")

    shown = cm.astype(np.float64)
    if args.normalize:
        shown = shown / np.maximum(shown.sum(axis=1, keepdims=True), 1)
    fig, ax = th.new_figure(size)
    im = ax.imshow(shown, cmap="Blues", vmin=0)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class" if args.normalize else
                 "count")
    if k <= 30:
        threshold = shown.max() / 2
        for i in range(k):
            for j in range(k):
                txt = f"{shown[i, j]:.2f}" if args.normalize else str(cm[i, j])
                ax.text(j, i, txt, ha="center", va="center", fontsize=max(5, 11 - k // 3),
                        color="white" if shown[i, j] > threshold else "black")
    ax.set_xticks(range(k), names, rotation=45 if max(len(n) for n in names) > 3 else 0, ha="right"
                  if max(len(n) for n in names) > 3 else "center")
    ax.set_yticks(range(k), names)
    ax.set(xlabel="predicted class", ylabel="true class")
    acc = np.trace(cm) / max(cm.sum(), 1)
    ax.set_title(args.title or f"{args.split} confusion matrix, epoch {epochs[row]}: accuracy {acc:.4f} "
                               f"({cm.sum()} rows)")
    fig.tight_layout()
    th.save_figure(fig, args.out or os.path.join(args.run, "confusion.png"))


if __name__ == "__main__":
    main()
