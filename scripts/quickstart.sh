#!/bin/bash
# Quick start on a fresh Debian 12 machine: install the packages, build, and train the
# built-in two-moons example on a single rank (no mpirun needed).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
build/trainer train datasets/configs/moons.ini "$@"
