#!/bin/bash
# test_datafile.sh - training from DATA.h5 files (mpirun -np 2):
#   1. format = hdf5 trains to the same weights as format = idx on the
#      same images, bit for bit, with data.load = memory, shard and stream,
#      with and without [augment]
#   2. with [augment], a run killed mid-way and resumed (stream mode)
#      ends with the uninterrupted run's weights
#   3. damaged data files are refused: exit 3, naming the file and dataset;
#      a byte flipped in /images or /labels of a packed file fails its
#      checksum (memory mode; /labels in stream mode too); a file without
#      checksums trains with exactly one warning
#   4. stream mode's peak resident memory stays well below the data set's
#      size (a set of 40 MB with cache_mb = 1), where memory mode's grows
# Needs $MPICNN, $MPIEXEC and $top_builddir (set by `make check`).
set -u
: "${MPICNN:?MPICNN must name the mpicnn program}"
MPIEXEC=${MPIEXEC:-mpirun}
builddir=${top_builddir:-.}
limit=180

d=$(mktemp -d "${TMPDIR:-/tmp}/mpicnn-datafile-XXXXXX") || exit 99
trap 'rm -rf "$d"' EXIT

fail() {
    echo "FAIL: $*"
    for f in "$d"/*.log; do
        [ -f "$f" ] && { echo "--- $f"; tail -n 20 "$f"; }
    done
    exit 1
}

"$builddir/tests/test_resume_synth" "$d" 1400 200 10 || fail "cannot write the IDX data"
for s in train test; do
    "$builddir/tests/make_datafile" "$d/$s-images.idx" "$d/$s-labels.idx" "$d/$s.h5" ||
        fail "cannot write $s.h5"
done

body() {
    cat <<EOF
validation = 150

[net]
layers = conv1, bn1, relu1, pool1, drop, fc1

[conv1]
type = conv
filters = 4
kernel = 3
pad = 1

[bn1]
type = batchnorm

[relu1]
type = relu

[pool1]
type = maxpool
size = 2

[drop]
type = dropout
p = 0.2

[fc1]
type = dense
units = 4

[optimizer]
type = momentum
lr = 0.02

[train]
epochs = 2
batch_size = 8
seed = 5
log_every = 0
threads = 1
validate_every = 30

[checkpoint]
every_steps = 20
EOF
}
{
    printf '[data]\nformat = idx\ndir = %s\n' "$d"
    printf 'train_images = train-images.idx\ntrain_labels = train-labels.idx\n'
    printf 'test_images = test-images.idx\ntest_labels = test-labels.idx\n'
    body
} >"$d/idx.ini"
{
    printf '[data]\nformat = hdf5\ndir = %s\ntrain_file = train.h5\ntest_file = test.h5\n' "$d"
    body
} >"$d/h5.ini"

# np2 INI OUT [ARGS...]
np2() {
    local ini=$1 out=$2
    shift 2
    timeout -k 5 "$limit" "$MPIEXEC" -np 2 --oversubscribe "$MPICNN" train "$d/$ini" \
        --out "$d/$out" --progress none "$@" >>"$d/$out.log" 2>&1
}

# same A B: A's and B's models have the same weights and test accuracy
same() {
    h5diff -q "$d/$1/model.h5" "$d/$2/model.h5" /layers /layers ||
        fail "$2: model.h5 /layers differs from $1's"
    [ "$(grep '^test accuracy' "$d/$1.log")" = "$(grep '^test accuracy' "$d/$2.log")" ] ||
        fail "$2: another test accuracy than $1's"
    [ "$(cut -d, -f1-6 "$d/$1/metrics.csv")" = "$(cut -d, -f1-6 "$d/$2/metrics.csv")" ] ||
        fail "$2: metrics.csv's losses and accuracies differ from $1's"
}

# --- 1. hdf5 = idx in every load mode
aug="--set augment.crop_pad=2 --set augment.flip=true --set augment.cutout=3"
np2 idx.ini idx || fail "the idx run failed"
# shellcheck disable=SC2086 # $aug is a list of arguments
np2 idx.ini idx-aug $aug || fail "the augmented idx run failed"
h5diff -q "$d/idx/model.h5" "$d/idx-aug/model.h5" /layers /layers >/dev/null &&
    fail "[augment] changed nothing"
for load in memory shard stream; do
    np2 h5.ini "$load" --set data.load=$load || fail "load = $load failed"
    same idx "$load"
    # shellcheck disable=SC2086
    np2 h5.ini "$load-aug" --set data.load=$load $aug || fail "load = $load with [augment] failed"
    same idx-aug "$load-aug"
done
np2 idx.ini idx-stream --set data.load=stream || fail "idx with load = stream failed"
same idx idx-stream
echo "ok: hdf5 in memory, shard and stream mode and idx in stream mode train to idx's weights, with and without [augment]"

# --- 2. a resume with [augment] in stream mode: MPICNN_FAULT kills both
# ranks at global step 50, after the checkpoint of step 40
# shellcheck disable=SC2086
MPICNN_FAULT=kill@50 np2 h5.ini resume --set data.load=stream $aug &&
    fail "the run with MPICNN_FAULT=kill@50 finished"
[ -f "$d/resume/checkpoint.h5" ] || fail "the killed run left no checkpoint"
: >"$d/resume.log"
# shellcheck disable=SC2086
np2 h5.ini resume --set data.load=stream $aug --resume || fail "the resume failed"
grep -q "resuming at epoch" "$d/resume.log" || fail "the run did not resume"
same stream-aug resume
echo "ok: killed and resumed with [augment] in stream mode: the uninterrupted run's weights"

# --- 3. damaged files: exit 3 naming the file and the dataset
for bad in version:format_version images-type:/images images-rank:/images \
    labels-type:/labels labels-range:/labels labels-count:/labels no-classes:/classes; do
    what=${bad%%:*} obj=${bad#*:}
    "$builddir/tests/make_datafile" "$d/train-images.idx" "$d/train-labels.idx" \
        "$d/bad-$what.h5" --bad "$what" || fail "cannot write bad-$what.h5"
    for load in memory stream; do
        "$MPICNN" train "$d/h5.ini" --set data.train_file=bad-$what.h5 --set data.load=$load \
            --out "$d/bad-$what-$load" --progress none >"$d/bad.log" 2>&1
        rc=$?
        [ $rc -eq 3 ] || fail "bad-$what.h5 ($load): exit $rc, expected 3"
        grep -q "bad-$what.h5" "$d/bad.log" && grep -q -- "$obj" "$d/bad.log" ||
            fail "bad-$what.h5: the message does not name the file and $obj: $(cat "$d/bad.log")"
    done
done
echo "ok: damaged data files refused with exit 3, naming the file and the dataset"

# --- 3b. checksums of /images and /labels
# flip FILE OFFSET: xor the byte at OFFSET with 1
flip() {
    local b
    b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
    # shellcheck disable=SC2059 # the format is the byte to write
    printf "$(printf '\\%03o' $((b ^ 1)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
timeout -k 5 "$limit" "$MPIEXEC" -np 2 --oversubscribe "$MPICNN" pack "$d/train-images.idx" \
    --labels "$d/train-labels.idx" --out "$d/packed.h5" >"$d/pack.log" 2>&1 || fail "pack failed"
"$MPICNN" train "$d/h5.ini" --set data.train_file=packed.h5 --out "$d/packed" \
    --progress none >"$d/packed.log" 2>&1 || fail "training from the packed file failed"
grep -q "warning" "$d/packed.log" && fail "a packed file gives a warning: $(cat "$d/packed.log")"
# the first chunk of /images (h5ls's chunk table) and the contiguous /labels
ioff=$(h5ls -va "$d/packed.h5/images" | awk '$1 ~ /^0x/ { print $3; exit }')
loff=$(h5dump -p -H -d /labels "$d/packed.h5" | awk '$1 == "OFFSET" { print $2 }')
[ -n "$ioff" ] && [ -n "$loff" ] || fail "cannot find the data of /images and /labels"
cp "$d/packed.h5" "$d/flip-images.h5" && flip "$d/flip-images.h5" $((ioff + 500))
# a label's low byte xor 1 stays a valid class: only the checksum sees it
cp "$d/packed.h5" "$d/flip-labels.h5" && flip "$d/flip-labels.h5" $((loff + 40))
for c in images:memory labels:memory labels:stream; do
    obj=${c%%:*} load=${c#*:}
    "$MPICNN" train "$d/h5.ini" --set data.train_file=flip-$obj.h5 --set data.load=$load \
        --out "$d/flip-$obj-$load" --progress none >"$d/flip.log" 2>&1
    rc=$?
    [ $rc -eq 3 ] || fail "flip-$obj.h5 ($load): exit $rc, expected 3: $(cat "$d/flip.log")"
    grep -q "flip-$obj.h5: /$obj: checksum mismatch" "$d/flip.log" ||
        fail "flip-$obj.h5 ($load): no checksum mismatch on /$obj: $(cat "$d/flip.log")"
done
"$builddir/tests/make_datafile" "$d/train-images.idx" "$d/train-labels.idx" \
    "$d/nocrc.h5" --bad no-crc || fail "cannot write nocrc.h5"
np2 h5.ini nocrc --set data.train_file=nocrc.h5 || fail "training from a file without checksums failed"
n=$(grep -c "warning: .*nocrc.h5: .*no checksum" "$d/nocrc.log")
[ "$n" -eq 1 ] || fail "a file without checksums: $n warnings, expected 1: $(cat "$d/nocrc.log")"
grep -c "warning" "$d/nocrc.log" | grep -qx 1 || fail "other warnings: $(cat "$d/nocrc.log")"
echo "ok: flipped bytes in /images and /labels fail their checksums; a file without them warns once"

# --- 4. stream mode's memory does not grow with the data set
"$builddir/tests/test_resume_synth" "$d" 50000 100 28 || fail "cannot write the large IDX set"
for s in train test; do
    "$builddir/tests/make_datafile" "$d/$s-images.idx" "$d/$s-labels.idx" "$d/big-$s.h5" ||
        fail "cannot write big-$s.h5"
done
cat >"$d/big.ini" <<EOF
[data]
format = hdf5
dir = $d
train_file = big-train.h5
test_file = big-test.h5
cache_mb = 1

[net]
layers = fc1

[fc1]
type = dense
units = 4

[optimizer]
lr = 0.01

[train]
epochs = 1
batch_size = 256
log_every = 0
threads = 1
EOF
rss() { # LOAD: peak resident KB of a one-rank run, in $kb
    /usr/bin/time -f '%M' -o "$d/rss" "$MPICNN" train "$d/big.ini" --out "$d/big-$1" \
        --progress none --set data.load="$1" >"$d/big-$1.log" 2>&1 || fail "load = $1 failed"
    kb=$(cat "$d/rss")
}
rss memory
mem=$kb
rss stream
stream=$kb
echo "peak RSS: memory $mem KB, stream $stream KB (data set $(($(stat -c %s "$d/big-train.h5") / 1024)) KB)"
[ "$stream" -lt $((mem - 25000)) ] ||
    fail "stream mode's peak RSS ($stream KB) is not well below memory mode's ($mem KB)"
echo "ok: stream mode's peak resident memory does not hold the data set"
