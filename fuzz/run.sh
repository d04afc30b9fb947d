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
seed idx; seed cifar; seed csv; seed config; seed model; seed image
# images 2x2x2 and labels for 2 images; first byte 181 puts the cut after the images
printf '\265\0\0\10\3\0\0\0\2\0\0\0\2\0\0\0\2\1\2\3\4\5\6\7\10\0\0\10\1\0\0\0\2\1\0' > "$out/idx/corpus/seed"
{ printf '\0\3'; head -c 3072 /dev/zero; } > "$out/cifar/corpus/seed10"
{ printf '\1\2\7'; head -c 3072 /dev/zero; } > "$out/cifar/corpus/seed100"
printf '1, 2.5, -3e-2\n4 5 6\n# comment\n7;8\n' > "$out/csv/corpus/seed"
cp "$srcdir/jobs/fashion-mnist.ini" "$out/config/corpus/seed"
# no edit (the valid model), and a few edits of each kind
printf '' > "$out/model/corpus/empty"
printf '\001\002\001\077\002\003\200\000\002\012\001\011\003\002\303\301' > "$out/model/corpus/edits"
# an 8x8 grey PNG (first byte 0: the PNG reader) and an 8x8 colour JPEG (1: JPEG)
printf '\000\211\120\116\107\015\012\032\012\000\000\000\015\111\110\104\122\000\000\000\010\000\000\000\010\010\000\000\000\000\341\144\341\127\000\000\000\074\111\104\101\124\010\231\055\306\061\016\300\060\010\003\100\100\110\030\060\371\377\143\333\044\103\173\323\251\364\307\003\131\115\362\317\210\005\262\372\310\262\100\326\346\250\005\362\155\312\362\100\172\237\121\013\074\265\051\353\002\303\242\010\011\226\167\320\114\000\000\000\000\111\105\116\104\256\102\140\202' \
  > "$out/image/corpus/png"
printf '\001\377\330\377\340\000\020\112\106\111\106\000\001\001\000\000\001\000\001\000\000\377\333\000\103\000\003\002\002\003\002\002\003\003\003\003\004\003\003\004\005\010\005\005\004\004\005\012\007\007\006\010\014\012\014\014\013\012\013\013\015\016\022\020\015\016\021\016\013\013\020\026\020\021\023\024\025\025\025\014\017\027\030\026\024\030\022\024\025\024\377\333\000\103\001\003\004\004\005\004\005\011\005\005\011\024\015\013\015\024\024\024\024\024\024\024\024\024\024\024\024\024\024\024\024\024\024\024\024\024\024\024\024\024\024\024\024\024\024\024\024\024\024\024\024\024\024\024\024\024\024\024\024\024\024\024\024\024\024\377\300\000\021\010\000\010\000\010\003\001\042\000\002\021\001\003\021\001\377\304\000\037\000\000\001\005\001\001\001\001\001\001\000\000\000\000\000\000\000\000\001\002\003\004\005\006\007\010\011\012\013\377\304\000\265\020\000\002\001\003\003\002\004\003\005\005\004\004\000\000\001\175\001\002\003\000\004\021\005\022\041\061\101\006\023\121\141\007\042\161\024\062\201\221\241\010\043\102\261\301\025\122\321\360\044\063\142\162\202\011\012\026\027\030\031\032\045\046\047\050\051\052\064\065\066\067\070\071\072\103\104\105\106\107\110\111\112\123\124\125\126\127\130\131\132\143\144\145\146\147\150\151\152\163\164\165\166\167\170\171\172\203\204\205\206\207\210\211\212\222\223\224\225\226\227\230\231\232\242\243\244\245\246\247\250\251\252\262\263\264\265\266\267\270\271\272\302\303\304\305\306\307\310\311\312\322\323\324\325\326\327\330\331\332\341\342\343\344\345\346\347\350\351\352\361\362\363\364\365\366\367\370\371\372\377\304\000\037\001\000\003\001\001\001\001\001\001\001\001\001\000\000\000\000\000\000\001\002\003\004\005\006\007\010\011\012\013\377\304\000\265\021\000\002\001\002\004\004\003\004\007\005\004\004\000\001\002\167\000\001\002\003\021\004\005\041\061\006\022\101\121\007\141\161\023\042\062\201\010\024\102\221\241\261\301\011\043\063\122\360\025\142\162\321\012\026\044\064\341\045\361\027\030\031\032\046\047\050\051\052\065\066\067\070\071\072\103\104\105\106\107\110\111\112\123\124\125\126\127\130\131\132\143\144\145\146\147\150\151\152\163\164\165\166\167\170\171\172\202\203\204\205\206\207\210\211\212\222\223\224\225\226\227\230\231\232\242\243\244\245\246\247\250\251\252\262\263\264\265\266\267\270\271\272\302\303\304\305\306\307\310\311\312\322\323\324\325\326\327\330\331\332\342\343\344\345\346\347\350\351\352\362\363\364\365\366\367\370\371\372\377\332\000\014\003\001\000\002\021\003\021\000\077\000\300\370\061\360\362\050\340\201\336\065\030\135\305\233\240\242\212\053\353\370\217\076\304\345\025\151\323\241\030\265\044\336\251\367\362\150\374\256\215\050\324\116\347\377\331' \
  > "$out/image/corpus/jpeg"
# model.c and gemm.c include the configure header: a stub does
mkdir -p "$out/stub" && : > "$out/stub/config.h"

status=0
for t in idx cifar csv config model image; do
  extra=""
  case $t in
    idx|cifar) src="$srcdir/src/data/idx.c $srcdir/src/data/cifar.c $srcdir/src/data/dataset.c $srcdir/src/data/sampler.c" ;;
    csv) src="$srcdir/src/util/csv.c" ;;
    image) src="$srcdir/src/io/png.c $srcdir/src/io/jpeg.c $srcdir/src/data/resize.c"
      extra="$(pkg-config --cflags --libs libpng16 libjpeg)" ;;
    config) # the layer keys come from the layer types' ops tables (which
      # also hold their ONNX mappings: the ONNX builder links with them)
      src="$srcdir/src/config/config.c $srcdir/src/layers/*.c $srcdir/src/kernels/*.c
           $srcdir/src/io/onnx.c $srcdir/src/io/pb.c"
      extra="-fopenmp -I$out/stub $(pkg-config --cflags --libs openblas)" ;;
    model)
      src="$srcdir/src/io/h5io.c $srcdir/src/io/model.c $srcdir/src/parallel/fault.c $srcdir/src/nn/net.c
           $srcdir/src/layers/*.c $srcdir/src/kernels/*.c $srcdir/src/io/onnx.c $srcdir/src/io/pb.c"
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
