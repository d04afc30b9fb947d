#!/bin/bash
# get-data.sh - download a seed data set, check it against its published
# checksums, and pack it into the data files the jobs train on.
#
#   jobs/get-data.sh cifar10    data/cifar10-train.h5, data/cifar10-test.h5
#                               (jobs/cifar10-3layer.ini, jobs/cifar2.ini)
#   jobs/get-data.sh cifar100   data/cifar100-coarse-train.h5, -test.h5
#                               (jobs/cifar100-coarse.ini)
#   jobs/get-data.sh mnist      data/mnist-train.h5, data/mnist-test.h5
#                               (jobs/mnist-01-hinge.ini)
#
# Options (before the set's name):
#   --dir DIR      where the downloads and the data files go (default data)
#   --np N         ranks for mpicnn pack (default 1; mpirun -np N)
#   --url URL      fetch from this base URL instead (a mirror, or file:///...)
#   --sums FILE    check against the MD5 sums in FILE ("md5  name" lines)
#                  instead of the published ones below
# Environment: MPICNN (the program; default src/mpicnn next to this
# script, else mpicnn on PATH), MPIEXEC (default mpirun).
#
# A download whose checksum does not match is removed and the script
# fails (exit 1) before anything is packed. Files already downloaded and
# matching are not fetched again. Packing writes each data file
# atomically: an interrupted run leaves no partial data file.
set -euo pipefail

usage() {
    echo "usage: $0 [--dir DIR] [--np N] [--url URL] [--sums FILE] cifar10|cifar100|mnist" >&2
    exit 2
}

dir=data np=1 url="" sums=""
while [ $# -gt 1 ]; do
    case "$1" in
    --dir) dir=$2; shift 2 ;;
    --np) np=$2; shift 2 ;;
    --url) url=$2; shift 2 ;;
    --sums) sums=$2; shift 2 ;;
    *) usage ;;
    esac
done
[ $# -eq 1 ] || usage
set_name=$1

here=$(cd "$(dirname "$0")" && pwd)
if [ -z "${MPICNN:-}" ]; then
    if [ -x "$here/../src/mpicnn" ]; then MPICNN=$here/../src/mpicnn; else MPICNN=mpicnn; fi
fi
MPIEXEC=${MPIEXEC:-mpirun}

# The published MD5 sums: the CIFAR page (https://www.cs.toronto.edu/~kriz/cifar.html)
# and the MNIST files as torchvision checks them.
published() {
    cat <<'SUMS'
c32a1d4ab5d03f1284b67883e8d87530  cifar-10-binary.tar.gz
03b5dce01913d631647c71ecec9e9cb8  cifar-100-binary.tar.gz
f68b3c2dcbeaaa9fbdd348bbdeb94873  train-images-idx3-ubyte.gz
d53e105ee54ea40749a09fcbcd1e9432  train-labels-idx1-ubyte.gz
9fb629c4189551a2d022fa330f9573f3  t10k-images-idx3-ubyte.gz
ec29112dd5afa0611ce80d1b7f02629c  t10k-labels-idx1-ubyte.gz
SUMS
}

case "$set_name" in
cifar10) base=${url:-https://www.cs.toronto.edu/~kriz}; files=(cifar-10-binary.tar.gz) ;;
cifar100) base=${url:-https://www.cs.toronto.edu/~kriz}; files=(cifar-100-binary.tar.gz) ;;
mnist)
    base=${url:-https://ossci-datasets.s3.amazonaws.com/mnist}
    files=(train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz
           t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz) ;;
*) usage ;;
esac

mkdir -p "$dir/downloads"

# expected NAME: the MD5 sum NAME must have
expected() {
    local table
    if [ -n "$sums" ]; then table=$(cat "$sums"); else table=$(published); fi
    awk -v n="$1" '$2 == n { print $1 }' <<<"$table"
}

# fetch NAME: downloads NAME (unless a matching copy is there) and checks it
fetch() {
    local name=$1 want got out=$dir/downloads/$1
    want=$(expected "$name")
    [ -n "$want" ] || { echo "get-data: no checksum known for $name" >&2; exit 1; }
    if [ -f "$out" ] && [ "$(md5sum <"$out" | cut -d' ' -f1)" = "$want" ]; then
        echo "get-data: $name: already here, checksum ok"
        return
    fi
    echo "get-data: downloading $base/$name"
    curl -fL --retry 3 -o "$out.part" "$base/$name" ||
        { rm -f "$out.part"; echo "get-data: cannot download $base/$name" >&2; exit 1; }
    got=$(md5sum <"$out.part" | cut -d' ' -f1)
    if [ "$got" != "$want" ]; then
        rm -f "$out.part"
        echo "get-data: $name: checksum mismatch (MD5 $got, expected $want): removed" >&2
        exit 1
    fi
    mv "$out.part" "$out"
    echo "get-data: $name: checksum ok"
}

pack() {
    "$MPIEXEC" -np "$np" "$MPICNN" pack "$@"
}

for f in "${files[@]}"; do fetch "$f"; done
d=$dir/downloads
case "$set_name" in
cifar10)
    tar -xzf "$d/cifar-10-binary.tar.gz" -C "$d"
    b=$d/cifar-10-batches-bin
    pack "$b"/data_batch_{1,2,3,4,5}.bin --format cifar10 --out "$dir/cifar10-train.h5"
    pack "$b/test_batch.bin" --format cifar10 --out "$dir/cifar10-test.h5" ;;
cifar100)
    tar -xzf "$d/cifar-100-binary.tar.gz" -C "$d"
    b=$d/cifar-100-binary
    pack "$b/train.bin" --format cifar100 --coarse --out "$dir/cifar100-coarse-train.h5"
    pack "$b/test.bin" --format cifar100 --coarse --out "$dir/cifar100-coarse-test.h5" ;;
mnist)
    pack "$d/train-images-idx3-ubyte.gz" --labels "$d/train-labels-idx1-ubyte.gz" \
        --out "$dir/mnist-train.h5"
    pack "$d/t10k-images-idx3-ubyte.gz" --labels "$d/t10k-labels-idx1-ubyte.gz" \
        --classes-from "$dir/mnist-train.h5" --out "$dir/mnist-test.h5" ;;
esac
echo "get-data: $set_name packed into $dir"
