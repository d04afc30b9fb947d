#!/bin/sh
# test_pack.sh - `mpicnn pack` end to end (tests/make_images writes the inputs):
#   - a folder of PNG and JPEG files of mixed sizes and modes, resized:
#     -np 1 and -np 2 give the same /images, /labels, /classes and
#     /normalization bytes and checksum attributes; without --resize the
#     first odd file is named;
#   - a folder holding every bad case (truncated JPEG and PNG, zero bytes,
#     text named .jpg, CMYK, a 60000 x 60000 header, an empty class
#     folder, a non-image file, a folder in a class, an unreadable file, a
#     symlink loop): --on-bad fail names the first, skip lists them all;
#   - IDX and CIFAR sources, --channels, --fit crop, --classes-from;
#   - `mpicnn info` of a data file;
#   - a rank killed during the pack (MPICNN_FAULT=kill@K): no file under the
#     final name, and the next pack removes the dead one's temp file;
#   - usage errors.
set -u
MPIEXEC=${MPIEXEC:-mpirun}
MPICNN=${MPICNN:-src/mpicnn}
top_builddir=${top_builddir:-.}
MK=$top_builddir/tests/make_images
d=$(mktemp -d /tmp/mpicnn-pack-XXXXXX) || exit 99
trap 'chmod -R u+rwx "$d" 2>/dev/null; rm -rf "$d"' EXIT INT TERM
fail() {
    echo "FAIL: $*"
    for f in "$d"/log.*; do echo "--- $f"; cat "$f"; done
    exit 1
}
# expect CODE WHAT TEXT COMMAND...: COMMAND exits with CODE and says TEXT
expect() {
    code=$1 what=$2 text=$3
    shift 3
    "$@" >"$d/log.out" 2>&1
    rc=$?
    [ $rc -eq "$code" ] || fail "$what: exit code $rc, expected $code"
    grep -q -- "$text" "$d/log.out" || fail "$what: the output does not say '$text'"
    echo "ok: $what: exit $rc"
}
# dump FILE OBJECT: the raw bytes of a dataset (h5dump -b), to compare
dump() {
    h5dump -d "$2" -b LE -o "$d/dump.bin" "$1" >/dev/null 2>&1 || fail "h5dump $2 of $1"
    od -An -tx1 -v "$d/dump.bin"
}
same_data() {
    for obj in /images /labels /normalization/mean /normalization/std; do
        [ "$(dump "$1" $obj)" = "$(dump "$2" $obj)" ] || fail "$obj differs between $1 and $2"
    done
    [ "$(h5dump -d /classes "$1" | grep -A2 'DATA {')" = \
      "$(h5dump -d /classes "$2" | grep -A2 'DATA {')" ] || fail "/classes differ"
    for obj in /images /labels /classes /normalization/mean /normalization/std; do
        c1=$(h5dump -a "$obj/mpicnn_crc32c" "$1" | grep '(0):')
        [ -n "$c1" ] || fail "$obj of $1 has no checksum attribute"
        [ "$c1" = "$(h5dump -a "$obj/mpicnn_crc32c" "$2" | grep '(0):')" ] ||
            fail "the checksums of $obj differ between $1 and $2"
    done
}

"$MK" good "$d/good" && "$MK" bad "$d/bad" && "$MK" idx "$d/arr" || fail "make_images failed"

# --- mixed folder, 1 and 2 ranks
expect 0 "mixed folder, np 1" "packed 11 images (3 x 24 x 32" \
    "$MPIEXEC" -np 1 "$MPICNN" pack "$d/good" --resize 24x32 --out "$d/g1.h5"
expect 0 "mixed folder, np 2" "packed 11 images (3 x 24 x 32" \
    "$MPIEXEC" -np 2 "$MPICNN" pack "$d/good" --resize 24x32 --out "$d/g2.h5"
same_data "$d/g1.h5" "$d/g2.h5"
echo "ok: -np 1 and -np 2 store the same data"
h5dump -A "$d/g1.h5" | grep -q '"mpicnn-data"' || fail "no format attribute"
h5dump -p -d /images -H "$d/g1.h5" | grep -q "CHUNKED ( 11, 3, 24, 32 )" || fail "chunking"
[ "$(h5dump -d /labels -A 0 "$d/g1.h5" | grep '(0):')" = "   (0): 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2" ] ||
    fail "labels are not in sorted class order"
expect 0 "crop, grey, np 2" "packed 11 images (1 x 16 x 16" \
    "$MPIEXEC" -np 2 "$MPICNN" pack "$d/good" --resize 16x16 --fit crop --channels 1 --out "$d/c2.h5"
expect 0 "crop, grey, np 1" "packed 11 images (1 x 16 x 16" \
    "$MPICNN" pack "$d/good" --resize 16x16 --fit crop --channels 1 --out "$d/c1.h5"
same_data "$d/c1.h5" "$d/c2.h5"
expect 3 "mixed sizes without --resize" "good/cat/a02.png: 40 x 30 pixels (W x H), but the first image (.*good/cat/a01.png) is 20 x 16" \
    "$MPIEXEC" -np 2 "$MPICNN" pack "$d/good" --out "$d/odd.h5"
[ ! -e "$d/odd.h5" ] || fail "a failed pack left odd.h5"
expect 0 "info of a data file" "images: 11 of 3 x 24 x 32 (channels x height x width), 11 images per chunk" \
    "$MPICNN" info "$d/g1.h5"
grep -q "dog .* 4 images" "$d/log.out" || fail "info does not count the images per class"

# --- every bad case
chmod 000 "$d/bad/b/02-good.png"                 # unreadable (unless we are root)
ln -s 03-loop.png "$d/bad/b/03-loop.png"         # a symlink loop
echo "not an image" >"$d/bad/b/04-notes.txt"     # a non-image file
mkdir "$d/bad/b/05-sub" "$d/bad/c-empty"          # a folder in a class; an empty class
mkdir "$d/badimg" && ln -s "$d/bad/a" "$d/badimg/a"  # a class folder by symlink
# the entries the listing refuses come first, then the images that fail to decode
expect 3 "bad folder, --on-bad fail" "bad/b/03-loop.png: a symlink loop" \
    "$MPIEXEC" -np 2 "$MPICNN" pack "$d/bad" --out "$d/bad.h5"
expect 3 "bad images, --on-bad fail" "badimg/a/02-truncated.jpg: truncated JPEG.*--on-bad skip" \
    "$MPIEXEC" -np 2 "$MPICNN" pack "$d/badimg" --out "$d/bad.h5"
[ ! -e "$d/bad.h5" ] || fail "a failed pack left bad.h5"
ngood=3 nbad=11
if [ "$(id -u)" != 0 ]; then ngood=2 nbad=12; fi
expect 0 "bad folder, --on-bad skip" "skipped $nbad bad entries" \
    "$MPIEXEC" -np 2 "$MPICNN" pack "$d/bad" --on-bad skip --resize 8x8 --out "$d/bad.h5"
for t in "02-truncated.jpg: truncated JPEG" "03-truncated.png: truncated or corrupt PNG" \
         "04-empty.png: an empty file" "05-text.jpg: neither a PNG nor a JPEG" \
         "06-cmyk.jpg: a CMYK JPEG" "07-bomb.jpg: the JPEG header claims 60000 x 60000" \
         "08-bomb.png: the PNG header claims 60000 x 60000" "03-loop.png: a symlink loop" \
         "04-notes.txt: not an image file name" "05-sub: a folder inside a class folder" \
         "c-empty: empty class folder"; do
    grep -q -- "$t" "$d/log.out" || fail "the skip report lacks '$t'"
done
grep -q "packed $ngood images" "$d/log.out" || fail "expected $ngood good images"
h5dump -a /skipped "$d/bad.h5" | grep -q "(0): $nbad" || fail "skipped attribute"
cp "$d/log.out" "$d/skip2.txt"
expect 0 "bad folder, --on-bad skip, np 1" "skipped $nbad bad entries" \
    "$MPICNN" pack "$d/bad" --on-bad skip --resize 8x8 --out "$d/bad1.h5"
same_data "$d/bad1.h5" "$d/bad.h5"
grep -v '^packed' "$d/log.out" >"$d/skip1.lst" && grep -v '^packed' "$d/skip2.txt" | grep -v '^$' >"$d/skip2.lst"
cmp -s "$d/skip1.lst" "$d/skip2.lst" || fail "1 and 2 ranks list the skipped files differently"
echo "ok: every bad case is named"

# --- IDX and CIFAR sources
expect 0 "IDX pair" "packed 20 images (1 x 28 x 28, channels x height x width) of 10 classes" \
    "$MPIEXEC" -np 2 "$MPICNN" pack "$d/arr/images.idx" --labels "$d/arr/labels.idx" --out "$d/i.h5"
expect 0 "CIFAR-10 batches" "packed 30 images (3 x 32 x 32, channels x height x width) of 10" \
    "$MPIEXEC" -np 2 "$MPICNN" pack "$d/arr/data_batch_1.bin" "$d/arr/data_batch_2.bin" \
    --format cifar10 --out "$d/c10.h5"
expect 0 "CIFAR-100 coarse" "of 20 classes" \
    "$MPICNN" pack "$d/arr/train.bin" --format cifar100 --coarse --out "$d/c100.h5"

# --- --classes-from: a test folder numbered as the training file
mkdir -p "$d/test/emu" "$d/test/cat"
cp "$d/good/emu/c03.png" "$d/test/emu/" && cp "$d/good/cat/a01.png" "$d/test/cat/"
expect 0 "--classes-from" "of 3 classes" \
    "$MPICNN" pack "$d/test" --resize 24x32 --classes-from "$d/g1.h5" --out "$d/t.h5"
[ "$(h5dump -d /labels -A 0 "$d/t.h5" | grep '(0):')" = "   (0): 0, 2" ] ||
    fail "--classes-from: labels are not the training file's numbers"
mkdir "$d/test/yak" && cp "$d/good/cat/a01.png" "$d/test/yak/"
expect 3 "--classes-from, a class it lacks" "class 'yak' is not one of the 3 classes" \
    "$MPICNN" pack "$d/test" --resize 24x32 --classes-from "$d/g1.h5" --out "$d/t2.h5"

# --- a rank killed during the pack leaves no file under the final name
"$MK" same "$d/many" 40 8 8 png || fail "make_images same"
MPICNN_FAULT=kill@30 "$MPIEXEC" -np 2 "$MPICNN" pack "$d/many" --out "$d/k.h5" \
    >"$d/log.kill" 2>&1 && fail "the killed pack succeeded"
[ ! -e "$d/k.h5" ] || fail "a killed pack left k.h5"
ls -a "$d" | grep -q '^\.k\.h5\.tmp\.' || fail "the killed pack left no temp file (was it killed while writing?)"
echo "ok: killed pack: no k.h5, only its temp file"
# the dead writer's temp file goes once its process is gone (a zombie still counts as alive)
tmpf=$(ls -a "$d" | grep '^\.k\.h5\.tmp\.' | head -n 1)
pid=${tmpf##*.}
i=0
while [ $i -lt 50 ] && ps -p "$pid" >/dev/null 2>&1; do sleep 0.2; i=$((i + 1)); done
expect 0 "pack after a kill" "packed 40 images" "$MPICNN" pack "$d/many" --out "$d/k.h5"
if ps -p "$pid" >/dev/null 2>&1; then
    echo "note: the killed rank ($pid) is not reaped yet: its temp file stays"
elif ls -a "$d" | grep -q '^\.k\.h5\.tmp\.'; then
    fail "the dead pack's temp file was not removed"
fi

# --- the memory budget (--max-memory, MB per rank): refused before any
# decoding when the share's size is known (--resize), else as soon as the
# images held pass it; no file either way, and a budget that fits packs
expect 8 "a known share over --max-memory" "this rank's 11 images need" \
    "$MPICNN" pack "$d/good" --resize 512x512 --max-memory 1 --out "$d/mem.h5"
[ ! -e "$d/mem.h5" ] || fail "a pack over its budget left mem.h5"
"$MK" same "$d/big" 12 400 300 png || fail "make_images same failed"
expect 8 "decoded images over --max-memory" "the first .* images need" \
    "$MPICNN" pack "$d/big" --max-memory 1 --out "$d/mem.h5"
[ ! -e "$d/mem.h5" ] || fail "a pack over its budget left mem.h5"
expect 0 "a pack within --max-memory" "packed 11 images" \
    "$MPICNN" pack "$d/good" --resize 24x32 --max-memory 64 --out "$d/mem.h5"
h5dump -a /options "$d/mem.h5" | grep -q -- "--max-memory" &&
    fail "the options attribute records --max-memory"
expect 2 "bad --max-memory" "--max-memory" "$MPICNN" pack "$d/good" --max-memory 0 --out "$d/x.h5"

# --- usage errors
expect 2 "no --out" "--out" "$MPICNN" pack "$d/good"
expect 2 "bad --resize" "expected HxW" "$MPICNN" pack "$d/good" --resize 32 --out "$d/x.h5"
expect 2 "bad --fit" "stretch or crop" "$MPICNN" pack "$d/good" --fit zoom --out "$d/x.h5"
expect 2 "bad --channels" "--channels" "$MPICNN" pack "$d/good" --channels 2 --out "$d/x.h5"
expect 2 "bad --on-bad" "skip or fail" "$MPICNN" pack "$d/good" --on-bad ignore --out "$d/x.h5"
expect 3 "IDX without --labels is a folder" "not a folder" "$MPICNN" pack "$d/arr/images.idx" --out "$d/x.h5"
exit 0
