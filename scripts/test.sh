#!/bin/bash
# Builds trainer and runs the whole test suite (CTest). Extra arguments go to ctest,
# e.g. scripts/test.sh -L unit   or   scripts/test.sh -R config
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --test
scripts/build.sh
# Open MPI refuses to start as root without these; CI and containers run as root.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
ctest --test-dir build --output-on-failure -j"$(nproc)" "$@"
