#!/usr/bin/python3
"""Gather the final metrics of every run of a sweep into one table, sorted by a metric.

    scripts/sweep_report.py runs/sweep-1234                     # auto metric
    scripts/sweep_report.py runs/sweep-1234 --metric val_loss --csv out.csv --md out.md

SWEEP is a directory whose subdirectories are run directories (slurm/sweep.sbatch makes one
per array task, with sweep.txt listing the point's `section.key=value` overrides). From each
run's metrics.csv the last row gives the final values, and the best value of the chosen
metric over all evaluated epochs is added. The table is written as CSV and Markdown (by
default SWEEP/sweep_report.csv and SWEEP/sweep_report.md) and the Markdown is printed.
Runs without a metric log are listed last with their status.
"""
import argparse
import configparser
import csv
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import trainer_h5 as th  # noqa: E402

AUTO_ORDER = ["test_accuracy", "val_accuracy", "test_r2", "val_r2", "test_loss", "val_loss", "train_loss"]
HIGHER_IS_BETTER = ("accuracy", "f1", "r2")
SHOWN = ["train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_r2", "test_loss", "test_accuracy",
         "test_macro_f1", "test_r2", "time_s"]


def fail(msg):
    print(f"sweep_report.py: error: {msg}", file=sys.stderr)
    sys.exit(2)


def number(s):
    try:
        return float(s)
    except (TypeError, ValueError):
        return math.nan


def read_run(path):
    """One row of the report: the point's overrides, the status and the metric log."""
    run = {"run": os.path.basename(path), "point": {}, "rows": [], "status": "no metrics.csv"}
    sweep_txt = os.path.join(path, "sweep.txt")
    if os.path.exists(sweep_txt):
        with open(sweep_txt) as f:
            for line in f:
                if "=" in line:
                    k, v = line.strip().split("=", 1)
                    run["point"][k] = v
    metrics = os.path.join(path, "metrics.csv")
    if not os.path.exists(metrics):
        return run
    with open(metrics, newline="") as f:
        run["rows"] = list(csv.DictReader(f))
    if not run["rows"]:
        run["status"] = "no epoch logged"
        return run
    epochs = None
    cfg_path = th.run_config_path(path)
    if cfg_path:
        cfg = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=("#", ";"))
        try:
            cfg.read(cfg_path)
            epochs = int(cfg.get("train", "epochs", fallback="0")) or None
        except (configparser.Error, ValueError):
            epochs = None
    last = int(number(run["rows"][-1].get("epoch")))
    run["epoch"] = last
    run["status"] = "done" if epochs is None or last >= epochs else f"at epoch {last}/{epochs}"
    return run


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="Metrics: any column of metrics.csv, e.g. test_accuracy, val_loss, "
                                        "test_r2. auto = the first present of " + ", ".join(AUTO_ORDER) + ".")
    ap.add_argument("sweep", help="directory holding one run directory per sweep point")
    ap.add_argument("--metric", default="auto", help="metric to sort by (default: auto)")
    ap.add_argument("--mode", choices=["auto", "min", "max"], default="auto",
                    help="whether lower or higher is better (auto: max for accuracy, f1 and r2)")
    ap.add_argument("--csv", help="CSV output (default SWEEP/sweep_report.csv)")
    ap.add_argument("--md", help="Markdown output (default SWEEP/sweep_report.md)")
    args = ap.parse_args()

    if not os.path.isdir(args.sweep):
        fail(f"{args.sweep}: not a directory")
    runs = [read_run(os.path.join(args.sweep, d)) for d in sorted(os.listdir(args.sweep))
            if os.path.isdir(os.path.join(args.sweep, d))]
    if not runs:
        fail(f"{args.sweep}: no run directories in it")
    logged = [r for r in runs if r["rows"]]
    if not logged:
        fail(f"{args.sweep}: none of its {len(runs)} run directories has a metrics.csv with an epoch")

    columns_present = set().union(*(r["rows"][-1].keys() for r in logged))
    metric = args.metric
    if metric == "auto":
        metric = next((m for m in AUTO_ORDER if m in columns_present), None)
        if metric is None:
            fail("no known metric in the logs; choose one with --metric")
    elif metric not in columns_present:
        fail(f"no run logged {metric}; the logs have: {', '.join(sorted(columns_present))}")
    mode = args.mode if args.mode != "auto" else ("max" if metric.endswith(HIGHER_IS_BETTER) else "min")
    better = max if mode == "max" else min

    keys = []
    for r in runs:
        keys += [k for k in r["point"] if k not in keys]
    shown = [c for c in SHOWN if c in columns_present and c != metric]
    header = ["run"] + keys + ["status", "epoch", metric, f"best_{metric}"] + shown

    table = []
    for r in runs:
        row = {"run": r["run"], "status": r["status"], **r["point"]}
        if r["rows"]:
            last = r["rows"][-1]
            row["epoch"] = r["epoch"]
            for c in [metric] + shown:
                row[c] = number(last.get(c))
            values = [number(x.get(metric)) for x in r["rows"]]
            values = [v for v in values if not math.isnan(v)]
            row[f"best_{metric}"] = better(values) if values else math.nan
        table.append(row)

    def sort_key(row):
        v = row.get(metric, math.nan)
        missing = not isinstance(v, float) or math.isnan(v)
        return (missing, 0.0 if missing else (-v if mode == "max" else v), row["run"])

    table.sort(key=sort_key)

    def fmt(v):
        if isinstance(v, float):
            return "" if math.isnan(v) else f"{v:.6g}"
        return "" if v is None else str(v)

    csv_path = args.csv or os.path.join(args.sweep, "sweep_report.csv")
    md_path = args.md or os.path.join(args.sweep, "sweep_report.md")
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for row in table:
            w.writerow([fmt(row.get(c)) for c in header])
    lines = [f"Sweep {os.path.basename(os.path.abspath(args.sweep))}: {len(runs)} runs, sorted by final {metric} "
             f"({'higher' if mode == 'max' else 'lower'} is better)", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(row.get(c)) for c in header) + " |" for row in table]
    with open(md_path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"\nwritten: {csv_path}, {md_path}", file=sys.stderr)


if __name__ == "__main__":
    main()
