#!/bin/bash
# Regenerates the pictures datasets/README.md shows (scripts/plots/*.png) with the plotting scripts:
# the two-moons decision regions and learning curves, and the Fashion-MNIST confusion matrix
# (needs the dataset-fashion-mnist package). About a minute on 2 cores.
#   scripts/make_readme_plots.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
export TRAINER=$PWD/$build/trainer
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
out=scripts/plots

"$TRAINER" train datasets/configs/moons.ini --set output.dir="$work/moons" --set train.eval_every=1 >/dev/null
"$TRAINER" data gen moons --out "$work/moons.h5" --n 1000 --noise 0.1 --seed 0 >/dev/null
scripts/plot_decision.py "$work/moons/best.h5" "$work/moons.h5" --out $out/moons_decision.png --size 700x560 \
    --title "two moons: 2-20-20-1 tanh MLP, decision regions"
scripts/plot_metrics.py "$work/moons" --log --out $out/moons_metrics.png --size 900x600

"$TRAINER" train datasets/configs/fashion_mnist.ini --set output.dir="$work/fmnist" >/dev/null
scripts/plot_confusion.py "$work/fmnist" --normalize --out $out/fashion_mnist_confusion.png --size 760x660
ls -l $out
