#!/bin/bash
# Installs the Debian 12 packages trainer needs to build, test and run (as root or via sudo).
# Skips apt-get entirely when everything is already installed.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config
  libopenmpi-dev openmpi-bin
  libhdf5-dev hdf5-tools
  libopenblas-dev
  libinih-dev librandom123-dev zlib1g-dev
  libcriterion-dev
  dataset-fashion-mnist
)
# Optional extras (plots, interop, Fashion-MNIST) are listed in README.md.
if [[ "${TRAINER_EXTRA_PACKAGES:-}" != "" ]]; then
  read -r -a extra <<< "$TRAINER_EXTRA_PACKAGES"
  PACKAGES+=("${extra[@]}")
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if (( ${#missing[@]} == 0 )); then
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
