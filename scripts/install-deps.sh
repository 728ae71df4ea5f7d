#!/bin/bash
# Installs the Debian 12 packages trainer needs (as root or via sudo); skips apt-get when
# everything is there already.
#   scripts/install-deps.sh          build and run: compiler, CMake, MPI, HDF5, OpenBLAS, oneDNN, ...
#   scripts/install-deps.sh --test   also what the tests use: Criterion, Fashion-MNIST, the
#                                    python3-sklearn data sets (its data files; scikit-learn
#                                    itself checks the reports), Python
#                                    with h5py, matplotlib and PyTorch (interop tests), SLURM and
#                                    munge (the test clusters of tests/test_slurm.sh and
#                                    tests/test_multinode.sh), iproute2 and util-linux (the
#                                    namespace nodes' network)
#   scripts/install-deps.sh --fuzz   also clang-14 and its libFuzzer runtime (scripts/fuzz.sh)
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config
  libopenmpi-dev openmpi-bin
  libhdf5-dev hdf5-tools
  libopenblas-dev libdnnl-dev
  libinih-dev librandom123-dev zlib1g-dev libsleef-dev libgsl-dev
  libcriterion-dev
)
if [[ "${1:-}" == "--test" ]]; then
  PACKAGES+=(
    dataset-fashion-mnist
    python3 python3-numpy python3-h5py python3-matplotlib python3-torch python3-sklearn
    slurm-wlm munge valgrind procps iproute2 util-linux
  )
fi
if [[ "${1:-}" == "--fuzz" ]]; then
  PACKAGES+=(clang-14 libclang-rt-14-dev)
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
