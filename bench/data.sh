#!/bin/sh
# Data loading (docs/performance.md, "Data loading"): fmnist-ref
# (jobs/fashion-mnist.ini) trained from packed Fashion-MNIST files.
#   make bench-data      (or: sh bench/data.sh from the build directory)
#   BENCH_ROUNDS=R       alternating rounds of memory / stream (default 3)
#   BENCH_DATA=DIR       the Fashion-MNIST IDX files
#                        (default /usr/share/datasets/fashion-mnist)
#   BENCH_REPEAT=K       the large set is the training set K times
#                        (default 9: 540,000 images, 423 MB)
#   BENCH_STEPS=S        steps of each peak-memory run (default 300)
# 1. Images/s of one epoch at -np 2, data.load = memory and stream, in R
#    rounds that alternate the two (and which goes first); the median of
#    each and their ratio.
# 2. Peak resident memory (GNU time's %M) per rank on the large set:
#    stream on one rank (cache_mb = 64), then memory and shard at -np 2.
#    These runs end at global step S (MPICNN_FAULT=kill@S): memory mode
#    has loaded everything by then, shard mode has read its first epoch,
#    and stream mode's ring is full.
set -eu
MPIEXEC=${MPIEXEC:-mpirun}
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
here=$(cd "$(dirname "$0")" && pwd)
mpicnn=${MPICNN:-src/mpicnn}
mk=${MAKE_DATAFILE:-tests/make_datafile}
rounds=${BENCH_ROUNDS:-3}
data=${BENCH_DATA:-/usr/share/datasets/fashion-mnist}
repeat=${BENCH_REPEAT:-9}
steps=${BENCH_STEPS:-300}
w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT

"$mk" "$data/train-images-idx3-ubyte.gz" "$data/train-labels-idx1-ubyte.gz" "$w/train.h5" \
  --names fashion-mnist
"$mk" "$data/t10k-images-idx3-ubyte.gz" "$data/t10k-labels-idx1-ubyte.gz" "$w/test.h5" \
  --names fashion-mnist
"$mk" "$data/train-images-idx3-ubyte.gz" "$data/train-labels-idx1-ubyte.gz" "$w/big.h5" \
  --names fashion-mnist --repeat "$repeat"

# config TRAINFILE: fmnist-ref reading the data files
config() {
  printf '[data]\nformat = hdf5\ndir = %s\ntrain_file = %s\ntest_file = test.h5\n' "$w" "$1"
  printf 'validation = 5000\nnormalize = true\n\n'
  awk '/^\[net\]/ { p = 1 } p' "$here/../jobs/fashion-mnist.ini"
}
config train.h5 >"$w/fm.ini"
config big.h5 >"$w/big.ini"

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

echo "== fmnist-ref, -np 2, one epoch: images/s by data.load ($rounds rounds)"
for r in $(seq "$rounds"); do
  # odd rounds run memory first, even rounds stream first
  order="memory stream"
  [ $((r % 2)) -eq 0 ] && order="stream memory"
  for load in $order; do
    rm -rf "$w/run"
    "$MPIEXEC" -np 2 "$mpicnn" train "$w/fm.ini" --out "$w/run" --progress none \
      --set train.epochs=1 --set data.load=$load >/dev/null
    ips=$(awk -F, 'NR == 2 { print $8 }' "$w/run/metrics.csv")
    echo "round $r $load $ips images/s"
    echo "$ips" >>"$w/ips.$load"
  done
done
m=$(median <"$w/ips.memory")
s=$(median <"$w/ips.stream")
echo "median: memory $m, stream $s images/s; stream/memory $(echo "$s $m" | awk '{ printf "%.3f", $1 / $2 }')"

echo "== peak resident memory per rank, $(($(stat -c %s "$w/big.h5") / 1048576)) MB training file"
rm -rf "$w/run"
MPICNN_FAULT=kill@$steps /usr/bin/time -f '%M' -o "$w/rss.stream" "$mpicnn" train "$w/big.ini" \
  --out "$w/run" --progress none --set data.load=stream >/dev/null 2>&1 || true
echo "stream, 1 rank: $(($(tail -n 1 "$w/rss.stream") / 1024)) MB"
for load in memory shard; do
  rm -rf "$w/run" "$w"/rss.np2.*
  # each rank under GNU time, its output named by the rank
  MPICNN_FAULT=kill@$steps "$MPIEXEC" -np 2 sh -c 'exec /usr/bin/time -f "%M" -o "$0.$OMPI_COMM_WORLD_RANK" "$@"' \
    "$w/rss.np2" "$mpicnn" train "$w/big.ini" --out "$w/run" --progress none \
    --set data.load=$load >/dev/null 2>&1 || true
  kb=$(cat "$w"/rss.np2.* | grep -h '^[0-9]' | sort -n | tail -n 1)
  echo "$load, -np 2: $((kb / 1024)) MB (the larger rank)"
  echo "$kb" >"$w/rss.$load"
done
echo "shard/memory: $(echo "$(cat "$w/rss.shard") $(cat "$w/rss.memory")" | awk '{ printf "%.3f", $1 / $2 }')"
