#!/usr/bin/python3
"""Plot a run's learning curves: losses, accuracy (or R2), learning rate and throughput.

    scripts/plot_metrics.py runs/moons                      # -> runs/moons/metrics.png
    scripts/plot_metrics.py runs/moons --log --out curves.png --size 1200x800

Reads RUN/metrics.csv (the twin of metrics.h5 that every run writes) and draws four panels
against the epoch: train/validation/test loss (log scale with --log), accuracy and macro F1
for classifiers or R2 for regressors, the learning rate, and training samples/s. When the run
kept the per-step log (`[output] log_every_steps`, RUN/steps.csv), two more panels follow
against the optimizer step, as a course plots them: the loss of each logged step with the
epoch's running mean, and the gradient's global norm before clipping (log scale: exploding
gradients show as a climb of decades).
"""
import argparse
import csv
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import trainer_h5 as th  # noqa: E402

# (column, label) in drawing order; columns a run did not log are skipped
LOSSES = [("train_loss", "train (running mean)"), ("train_eval_loss", "train"), ("val_loss", "validation"),
          ("test_loss", "test")]
QUALITY = [("train_accuracy", "train accuracy (running)"), ("train_eval_accuracy", "train accuracy"),
           ("val_accuracy", "validation accuracy"), ("test_accuracy", "test accuracy"),
           ("test_macro_f1", "test macro F1"), ("train_eval_r2", "train R2"), ("val_r2", "validation R2"),
           ("test_r2", "test R2")]


def read_metrics(run_dir):
    path = th.require_file(os.path.join(run_dir, "metrics.csv"), "the metric log a trainer run writes")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        th.fail(f"{path}: no epoch logged yet")
    if "epoch" not in rows[0]:
        th.fail(f"{path}: no epoch column: not a trainer metric log")

    def col(name):
        out = []
        for r in rows:
            try:
                out.append(float(r.get(name, "")))
            except ValueError:
                out.append(math.nan)
        return out

    present = {k for k in rows[0] if any(r.get(k) not in ("", None, "nan") for r in rows)}
    return col, present


def read_steps(run_dir):
    """The per-step log's columns as lists, or None when the run did not keep one."""
    path = os.path.join(run_dir, "steps.csv")
    if not os.path.isfile(path):
        return None
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or "grad_norm" not in rows[0]:
        return None
    return {k: [float(r[k]) if r[k] not in ("", None) else math.nan for r in rows] for k in rows[0]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="run directory (with metrics.csv)")
    ap.add_argument("--out", help="PNG to write (default RUN/metrics.png)")
    ap.add_argument("--log", action="store_true", help="logarithmic loss axis")
    ap.add_argument("--size", default="1000x700", help="image size in pixels, WIDTHxHEIGHT (default 1000x700)")
    ap.add_argument("--title", help="figure title (default: the run directory's name)")
    args = ap.parse_args()
    if not os.path.isdir(args.run):
        th.fail(f"{args.run}: not a run directory")
    size = th.figure_size(args.size)
    col, present = read_metrics(args.run)
    epoch = col("epoch")
    steps = read_steps(args.run)

    fig, axes = th.new_figure(size, nrows=3 if steps else 2, ncols=2)
    ax = axes[0][0]
    for name, label in LOSSES:
        if name in present:
            ax.plot(epoch, col(name), marker="." if len(epoch) < 30 else None, label=label)
    if args.log:
        ax.set_yscale("log")
    ax.set(title="loss", xlabel="epoch")
    ax.legend(fontsize="small")

    ax = axes[0][1]
    drawn = False
    for name, label in QUALITY:
        if name in present:
            ax.plot(epoch, col(name), marker="." if len(epoch) < 30 else None, label=label)
            drawn = True
    ax.set(title="accuracy" if any(n in present for n, _ in QUALITY[:5]) else "R2", xlabel="epoch")
    if drawn:
        ax.legend(fontsize="small")
    else:
        ax.text(0.5, 0.5, "no evaluation metrics logged", ha="center", va="center", transform=ax.transAxes)

    ax = axes[1][0]
    ax.plot(epoch, col("lr"), color="tab:purple")
    ax.set(title="learning rate", xlabel="epoch")
    lrs = [v for v in col("lr") if not math.isnan(v)]
    if lrs and min(lrs) > 0 and max(lrs) / min(lrs) > 100:
        ax.set_yscale("log")
    else:
        ax.set_ylim(bottom=0, top=1.1 * max(lrs) if lrs and max(lrs) > 0 else None)

    ax = axes[1][1]
    ax.plot(epoch, col("samples_per_s"), color="tab:green")
    ax.set(title="training throughput (samples/s)", xlabel="epoch")
    ax.set_ylim(bottom=0)

    if steps:
        ax = axes[2][0]
        ax.plot(steps["step"], steps["loss"], lw=0.8, alpha=0.7, label="step loss")
        ax.plot(steps["step"], steps["running_loss"], lw=1.5, label="epoch running mean")
        if args.log:
            ax.set_yscale("log")
        ax.set(title="training loss per step", xlabel="step")
        ax.legend(fontsize="small")
        ax = axes[2][1]
        norms = [v for v in steps["grad_norm"] if v > 0 and not math.isnan(v)]
        ax.plot(steps["step"], steps["grad_norm"], color="tab:red", lw=0.8)
        if norms:
            ax.set_yscale("log")
        ax.set(title="gradient norm (before clipping)", xlabel="step")

    fig.suptitle(args.title or os.path.basename(os.path.abspath(args.run)))
    fig.tight_layout()
    th.save_figure(fig, args.out or os.path.join(args.run, "metrics.png"))


if __name__ == "__main__":
    main()
