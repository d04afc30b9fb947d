#!/bin/sh
# make fuzz: builds each libFuzzer target with clang (libFuzzer + ASan +
# UBSan) and runs it for FUZZ_SECONDS seconds (default 600) from a seed
# corpus. A finding stops the run with the crashing input saved under
# fuzz-out/<target>/. Needs clang and libclang-rt-14-dev (Debian);
# fuzz_config and fuzz_model also need OpenMP for clang and the openblas
# (fuzz_model: and hdf5-openmpi) pkg-config files (libopenblas-dev,
# libhdf5-openmpi-dev).
#   FUZZ_SECONDS=20 make fuzz        (the smoke run CI does)
set -eu
srcdir=$(cd "$(dirname "$0")/.." && pwd)
CC=${FUZZ_CC:-clang}
secs=${FUZZ_SECONDS:-600}
out=${FUZZ_OUT:-fuzz-out}
if ! command -v "$CC" >/dev/null 2>&1; then
  echo "fuzz: $CC not found (apt-get install clang libclang-rt-14-dev)" >&2
  exit 1
fi
mkdir -p "$out"
flags="-std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -g -O1 -Wno-unknown-pragmas
       -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -I$srcdir/include -I$srcdir/src $(pkg-config --cflags inih zlib)"
libs="$(pkg-config --libs inih zlib) -lm"
common="$srcdir/src/util/status.c $srcdir/src/util/rng.c $srcdir/src/util/fs.c $srcdir/src/util/str.c"

# seed corpora
seed() { mkdir -p "$out/$1/corpus"; }
seed idx; seed cifar; seed csv; seed config; seed model
# images 2x2x2 and labels for 2 images; first byte 181 puts the cut after the images
printf '\265\0\0\10\3\0\0\0\2\0\0\0\2\0\0\0\2\1\2\3\4\5\6\7\10\0\0\10\1\0\0\0\2\1\0' > "$out/idx/corpus/seed"
{ printf '\0\3'; head -c 3072 /dev/zero; } > "$out/cifar/corpus/seed10"
{ printf '\1\2\7'; head -c 3072 /dev/zero; } > "$out/cifar/corpus/seed100"
printf '1, 2.5, -3e-2\n4 5 6\n# comment\n7;8\n' > "$out/csv/corpus/seed"
cp "$srcdir/jobs/fashion-mnist.ini" "$out/config/corpus/seed"
# no edit (the valid model), and a few edits of each kind
printf '' > "$out/model/corpus/empty"
printf '\001\002\001\077\002\003\200\000\002\012\001\011\003\002\303\301' > "$out/model/corpus/edits"
# model.c and gemm.c include the configure header: a stub does
mkdir -p "$out/stub" && : > "$out/stub/config.h"

status=0
for t in idx cifar csv config model; do
  extra=""
  case $t in
    idx|cifar) src="$srcdir/src/data/idx.c $srcdir/src/data/cifar.c $srcdir/src/data/dataset.c $srcdir/src/data/sampler.c" ;;
    csv) src="$srcdir/src/util/csv.c" ;;
    config) # the layer keys come from the layer types' ops tables
      src="$srcdir/src/config/config.c $srcdir/src/layers/*.c $srcdir/src/kernels/*.c"
      extra="-fopenmp -I$out/stub $(pkg-config --cflags --libs openblas)" ;;
    model)
      src="$srcdir/src/io/h5io.c $srcdir/src/io/model.c $srcdir/src/parallel/fault.c $srcdir/src/nn/net.c
           $srcdir/src/layers/*.c $srcdir/src/kernels/*.c"
      extra="-fopenmp -I$out/stub $(pkg-config --cflags --libs hdf5-openmpi openblas)" ;;
  esac
  # shellcheck disable=SC2086
  $CC $flags "$srcdir/fuzz/fuzz_$t.c" $common $src $libs $extra -o "$out/fuzz_$t"
  echo "fuzz: $t for ${secs}s"
  if ! "$out/fuzz_$t" -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
       -artifact_prefix="$out/$t/" -print_final_stats=1 "$out/$t/corpus" \
       > "$out/$t.log" 2>&1; then
    echo "fuzz: $t FOUND A PROBLEM; see $out/$t.log and $out/$t/" >&2
    tail -40 "$out/$t.log" >&2
    status=1
  else
    grep -E "stat::number_of_executed_units|Done " "$out/$t.log" | tail -2
  fi
done
exit $status
