#!/bin/bash
# Quick start for a fresh Debian 12 machine.
#
#   jobs/quickstart.sh          install, build, then train on Fashion-MNIST
#   jobs/quickstart.sh check    install, build, then run the test suite
#
# Missing Debian packages are installed with apt-get (needs root; nothing
# is installed when everything is already there). Then the project is
# built with autoreconf -fi && ./configure && make.
set -euo pipefail

mode=${1:-train}
case "$mode" in
  train|check) ;;
  *) echo "usage: $0 [check]" >&2; exit 2 ;;
esac

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

packages=(gcc make autoconf automake libtool pkg-config
          libopenmpi-dev openmpi-bin libhdf5-openmpi-dev hdf5-tools
          libopenblas-dev zlib1g-dev libinih-dev libcmocka-dev libpng-dev
          libjpeg62-turbo-dev gnuplot-nox dataset-fashion-mnist help2man)
# the test suite also builds the fuzz targets (clang, libFuzzer), runs the
# SLURM job scripts on a one-node cluster of its own (slurm-wlm, munge) and
# kills ranks by pid (procps), compares layers and networks with PyTorch
# (python3-torch, python3-h5py), and runs exported ONNX models with ONNX
# Runtime under node (nodejs, and npm unless the nodejs package brings it)
if [ "$mode" = check ]; then
  packages+=(clang libclang-rt-14-dev llvm slurm-wlm munge procps python3-torch python3-h5py nodejs)
  command -v npm >/dev/null 2>&1 || packages+=(npm)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "quickstart: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

jobs=$(nproc)
autoreconf -fi
./configure
make -j"$jobs"

# Open MPI refuses to run as root unless told it is wanted.
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi

if [ "$mode" = check ]; then
  # ONNX Runtime for tests/test_export.sh, from npm into a cache folder
  # (its prebuilt CPU library is in the package: no install scripts run)
  ort=${MPICNN_ORT_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mpicnn/onnxruntime}
  if ! grep -qs '"version": "1.30.0"' "$ort/node_modules/onnxruntime-node/package.json"; then
    echo "quickstart: installing onnxruntime-node 1.30.0 into $ort"
    mkdir -p "$ort"
    (cd "$ort" && npm install --ignore-scripts --no-audit --no-fund onnxruntime-node@1.30.0)
  fi
  make check -j"$jobs" VERBOSE=1
  exit 0
fi

ranks=${MPICNN_RANKS:-2}
out=${MPICNN_OUT:-runs/fashion-mnist-$(date +%Y%m%d-%H%M%S)}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
exec mpirun -np "$ranks" --oversubscribe src/mpicnn train jobs/fashion-mnist.ini --out "$out"
