#!/bin/bash
# Configures and builds trainer into build/ (Release with debug info unless BUILD_TYPE is set).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" > /dev/null
cmake --build build -j "$(nproc)"
