#!/bin/sh
# The pack benchmark (docs/performance.md): `mpicnn pack` of a folder of
# 70,000 grey 28x28 PNGs and of a folder of colour JPEGs resized to 32x32,
# on 1 and 2 ranks. The folders are generated once (tests/make_images) and
# kept in BENCH_PACK_DIR, so the files are read from the page cache: the
# figures are decode + resize + write, not disk reads.
#   make bench-pack       (or: sh bench/run.sh pack, from the build directory)
#   BENCH_PACK_DIR=DIR    where the folders and data files go (default /tmp/mpicnn-bench-pack)
#   BENCH_PACK_PNG=N      PNG images (default 70000)
#   BENCH_PACK_JPEG=N     JPEG images (default 5000), BENCH_PACK_JPEG_SIZE=WxH (default 320x240)
# Prints, per run, the wall time of the mpirun command and mpicnn's own
# images/s line.
set -eu
MPIEXEC=${MPIEXEC:-mpirun}
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
mpicnn=${MPICNN:-src/mpicnn}
mk=${MAKE_IMAGES:-tests/make_images}
dir=${BENCH_PACK_DIR:-/tmp/mpicnn-bench-pack}
npng=${BENCH_PACK_PNG:-70000}
njpg=${BENCH_PACK_JPEG:-5000}
jsize=${BENCH_PACK_JPEG_SIZE:-320x240}
jw=${jsize%x*}
jh=${jsize#*x}
mkdir -p "$dir"

# make NAME N W H EXT: the folder, unless it is there with N images
make_folder() {
  if [ ! -f "$dir/$1.done" ] || [ "$(cat "$dir/$1.done")" != "$2 $3 $4 $5" ]; then
    echo "writing $2 ${3}x$4 $5 files into $dir/$1 (once)"
    rm -rf "${dir:?}/$1"
    "$mk" same "$dir/$1" "$2" "$3" "$4" "$5"
    echo "$2 $3 $4 $5" >"$dir/$1.done"
  fi
}

# run NP LABEL ARGS...: one pack, timed from outside
run() {
  np=$1 label=$2
  shift 2
  t0=$(date +%s.%N)
  "$MPIEXEC" -np "$np" "$mpicnn" pack "$@" >"$dir/log" 2>&1 || { cat "$dir/log"; exit 1; }
  t1=$(date +%s.%N)
  line=$(grep '^packed' "$dir/log")
  awk -v l="$label" -v np="$np" -v a="$t0" -v b="$t1" -v line="$line" \
    'BEGIN { printf "%-34s -np %d  wall %6.2f s   (%s)\n", l, np, b - a, line }'
}

make_folder png "$npng" 28 28 png
make_folder jpg "$njpg" "$jw" "$jh" jpg
echo "== mpicnn pack: $(nproc) cores"
for np in 1 2; do
  run "$np" "$npng PNG 28x28 grey" "$dir/png" --out "$dir/png.h5"
done
for np in 1 2; do
  run "$np" "$njpg JPEG ${jsize} colour -> 32x32" "$dir/jpg" --resize 32x32 --out "$dir/jpg.h5"
done
