#!/bin/bash
# Builds trainer with AddressSanitizer and UndefinedBehaviorSanitizer (build-asan/) and runs
# the unit, MPI, fuzz-corpus and reliability tests under them (CI runs this after
# scripts/test.sh). Leak reports from Open MPI's and Criterion's own state are suppressed in
# tests/lsan.supp, which says why for each. Extra arguments go to ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --test
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DTRAINER_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$(nproc)"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
ctest --test-dir build-asan --output-on-failure -j"$(nproc)" -L "unit|reliability" "$@"
