#!/usr/bin/python3
"""Plot a search (`trainer search`): the metric against each searched value, and every
trial's learning curve coloured by the rung it reached.

    scripts/plot_search.py runs/search                  # -> runs/search/search.png
    scripts/plot_search.py runs/search --metric test_accuracy --out s.png --size 1400x900

Reads SEARCH/trials.h5 (one row per trial: /values/<key>, /metrics/<name>, /status, /rungs)
and each unit's metric log (SEARCH/trials/NNNN/metrics.csv, or .../fold-F/ with folds). The
first row of panels has one panel per searched key: numbers on a logarithmic axis when they
span a factor of 100 or more (a learning rate), words as categories; trials that failed
are left out, trials stopped by successive halving are drawn hollow. The last panel holds the
learning curves: the metric at each evaluation against the epoch, one line per unit, its
colour the number of rungs the unit passed.
"""
import argparse
import csv
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import trainer_h5 as th  # noqa: E402


def read_search(path):
    import h5py
    th.require_file(path, "the table a trainer search writes")
    with h5py.File(path, "r") as f:
        if "values" not in f or "metrics" not in f:
            th.fail(f"{path}: not a search's trials.h5 (no /values or /metrics)")
        values = {k: [v.decode() if isinstance(v, bytes) else v for v in f["values"][k][()]] for k in f["values"]}
        metrics = {k: list(f["metrics"][k][()]) for k in f["metrics"]}
        status = [s.decode() if isinstance(s, bytes) else s for s in f["status"][()]]
        rungs = list(f["rungs"][()])
        metric = th.attr_str(f["/"], "metric", "val_loss")
        folds = int(f["/"].attrs.get("folds", 0))
        score = list(f["score"][()])
    return values, metrics, status, rungs, metric, folds, score


def curve(run_dir, metric):
    path = os.path.join(run_dir, "metrics.csv")
    if not os.path.exists(path):
        return [], []
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    xs, ys = [], []
    for r in rows:
        try:
            y = float(r.get(metric, ""))
        except ValueError:
            continue
        if not math.isnan(y):
            xs.append(float(r["epoch"]))
            ys.append(y)
    return xs, ys


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("search", help="search directory (with trials.h5)")
    ap.add_argument("--metric", help="metric to plot (default: the one the search ranked by)")
    ap.add_argument("--out", help="PNG to write (default SEARCH/search.png)")
    ap.add_argument("--size", default="1200x800", help="image size in pixels, WIDTHxHEIGHT (default 1200x800)")
    args = ap.parse_args()
    if not os.path.isdir(args.search):
        th.fail(f"{args.search}: not a search directory")
    size = th.figure_size(args.size)
    values, metrics, status, rungs, ranked_by, folds, score = read_search(os.path.join(args.search, "trials.h5"))
    metric = args.metric or ranked_by
    if metric == ranked_by:
        y = score
    elif metric in metrics:
        y = metrics[metric]
    else:
        th.fail(f"--metric {metric}: the search reports {', '.join([ranked_by] + sorted(metrics))}")
    keys = sorted(values)
    ncols = max(len(keys), 1)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig = plt.figure(figsize=(size[0] / 100, size[1] / 100), dpi=100)
    grid = fig.add_gridspec(2, ncols)
    cmap = plt.get_cmap("viridis")
    top = max(rungs) if rungs else 0
    colour = [cmap(r / top if top else 1.0) for r in rungs]
    shown = [i for i, s in enumerate(status) if s != "failed" and not math.isnan(y[i])]
    for c, key in enumerate(keys):
        ax = fig.add_subplot(grid[0, c])
        v = values[key]
        try:
            num = [float(x) for x in v]
        except ValueError:
            num = None
        if num is not None:
            xs = num
            pos = [x for x in num if x > 0]
            if pos and len(pos) == len(num) and max(pos) / min(pos) >= 100:
                ax.set_xscale("log")
        else:
            cats = sorted(set(v), key=v.index)
            xs = [cats.index(x) for x in v]
            ax.set_xticks(range(len(cats)))
            ax.set_xticklabels(cats, rotation=30, fontsize="small")
        for i in shown:
            hollow = status[i] == "stopped"
            ax.scatter(xs[i], y[i], s=28, facecolors="none" if hollow else colour[i], edgecolors=colour[i])
        ax.set(xlabel=key, ylabel=metric if c == 0 else None)
    ax = fig.add_subplot(grid[1, :])
    k = max(folds, 1)
    for i in range(len(status)):
        for f in range(k):
            d = os.path.join(args.search, "trials", f"{i:04d}", f"fold-{f}" if folds else "")
            xs, ys = curve(d, metric)
            if xs:
                ax.plot(xs, ys, color=colour[i], lw=0.9, alpha=0.8, marker=".", ms=3)
    ax.set(xlabel="epoch", ylabel=metric, title=f"learning curves, coloured by the rungs passed (0 to {top})")
    fig.suptitle(f"{os.path.basename(os.path.abspath(args.search))}: {len(status)} trials, {metric}")
    fig.tight_layout()
    th.save_figure(fig, args.out or os.path.join(args.search, "search.png"))


if __name__ == "__main__":
    main()
