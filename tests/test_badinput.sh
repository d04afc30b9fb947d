#!/bin/bash
# test_badinput.sh - a corpus of bad inputs through the program. Each case
# runs `mpicnn train|eval|info|op ...` and must end with its exit code
# (docs/reliability.md) and an error line "mpicnn: rank R: ..." naming the
# file (or flag, or config key) and what was wrong, never with a signal
# (an exit code >= 128), a timeout or a sanitizer report. The bad files
# come from tests/make_badfiles (IDX, CIFAR, HDF5 models and checkpoints:
# also checksums, size limits, links, storage and overflowing weights)
# and from this script (configs, CSV). The cases run a few at a time.
# Needs $MPICNN, $MPIEXEC and $top_builddir (set by `make check`).
set -u
: "${MPICNN:?MPICNN must name the mpicnn program}"
MPIEXEC=${MPIEXEC:-mpirun}
builddir=${top_builddir:-.}
parallel=4 # cases at a time
limit=60   # seconds for any one case

d=$(mktemp -d "${TMPDIR:-/tmp}/mpicnn-badinput-XXXXXX") || exit 99
trap 'rm -rf "$d"' EXIT
trap 'exit 1' INT TERM
B=$d/bad
mkdir -p "$B" "$d/res"

fail() {
    echo "FAIL: $*"
    exit 1
}

# --- good data, model and checkpoint (one rank), then the bad files
. "${top_srcdir:-.}/tests/small_run.sh"
small_run "$d" || fail "cannot write the data set"
timeout -k 5 "$limit" "$MPICNN" train "$d/run.ini" --out "$d/good" --progress none \
    >"$d/good.log" 2>&1 || { cat "$d/good.log"; fail "the good run failed"; }
"$builddir/tests/make_badfiles" "$B" "$d" "$d/good/model.h5" "$d/good/checkpoint.h5" ||
    fail "make_badfiles failed"

# configs: one defect each
cfg() { # NAME SED-EXPRESSION [EXTRA LINE]
    sed -e "$2" "$d/run.ini" >"$B/$1"
    [ $# -lt 3 ] || printf '%s\n' "$3" >>"$B/$1"
}
cfg cfg-bad-value.ini 's/^batch_size = 8/batch_size = 12abc/'
cfg cfg-unknown-key.ini 's/^epochs = 1/epoch = 1/'
cfg cfg-unknown-section.ini '' '[bogus]'
cfg cfg-range.ini 's/^lr = 0.05/lr = -1/'
cfg cfg-duplicate.ini '' 'every_steps = 4'
cfg cfg-net-mismatch.ini 's/^units = 4/units = 5/'
cfg cfg-missing-data.ini 's/^train_images = .*/train_images = no-such-file.idx/'
{ cat "$d/run.ini"; printf 'x\0y\n'; } >"$B/cfg-nul.ini"
: >"$B/cfg-empty.ini"
cat >"$B/cifar.ini" <<EOF
[data]
format = cifar10
dir = $B
train_files = cifar-good.bin

[net]
layers = fc1

[fc1]
type = dense
units = 10

[optimizer]
lr = 0.01

[train]
epochs = 1
batch_size = 2
threads = 1
EOF
printf '1, 2, x, 4\n' >"$B/csv-token.csv"
printf '1 2 3\n' >"$B/csv-short.csv"
# checkpoints: each in the output directory of its own --resume
for f in "$B"/ckpt-*.h5; do
    n=$(basename "$f" .h5)
    mkdir -p "$d/$n"
    cp "$f" "$d/$n/checkpoint.h5"
done

# --- the cases
n=0
# shellcheck disable=SC2317 # run in the background by expect
check() { # N CODE TEXT CMD...
    local i=$1 code=$2 text=$3 rc
    shift 3
    timeout -k 5 "$limit" "$@" >"$d/res/$i.log" 2>&1
    rc=$?
    local what="[$*]"
    {
        if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
            echo "$what: timed out after ${limit}s"
        elif [ "$rc" -ge 128 ]; then
            echo "$what: killed by signal $((rc - 128))"
        elif [ "$rc" -ne "$code" ]; then
            echo "$what: exit code $rc, expected $code"
        elif ! grep -qF -- "$text" "$d/res/$i.log"; then
            echo "$what: the output lacks '$text'"
        elif [ "$code" -ne 0 ] && ! grep -q "^mpicnn: rank [0-9]*: " "$d/res/$i.log"; then
            echo "$what: no 'mpicnn: rank R:' error line"
        elif grep -q -e "AddressSanitizer" -e "runtime error:" -e "LeakSanitizer" \
            -e "Segmentation fault" -e "core dumped" "$d/res/$i.log"; then
            echo "$what: a crash or sanitizer report"
        fi
    } >"$d/res/$i.fail"
    [ -s "$d/res/$i.fail" ] || rm -f "$d/res/$i.fail"
}
# expect CODE TEXT CMD...: a case, run in the background
expect() {
    n=$((n + 1))
    while [ "$(jobs -rp | wc -l)" -ge "$parallel" ]; do wait -n; done
    check "$n" "$@" &
}
M=$MPICNN
train() { echo "$M" train "$d/run.ini" --progress none --out "$d/out$n" "$@"; }
np2() { echo "$MPIEXEC" -np 2 --oversubscribe; }

# IDX: through train, as the training images or labels
# shellcheck disable=SC2046 # train and np2 print words
{
expect 3 "$B/idx-magic.idx: not an IDX file (magic 0x12345678), expected 0x00000803" \
    $(train --set data.train_images="$B/idx-magic.idx")
expect 3 "$B/idx-float-type.idx: IDX element type 0x0d, expected 0x08 (unsigned byte)" \
    $(train --set data.train_images="$B/idx-float-type.idx")
expect 3 "$B/idx-labels-as-images.idx: IDX file with 1 dimension (magic 0x00000801), expected an IDX images file" \
    $(train --set data.train_images="$B/idx-labels-as-images.idx")
expect 3 "$B/idx-corrupt.idx.gz: corrupt gzip data" \
    $(train --set data.train_images="$B/idx-corrupt.idx.gz")
expect 3 "$B/idx-truncated.idx.gz: truncated gzip stream" \
    $(train --set data.train_images="$B/idx-truncated.idx.gz")
expect 3 "$B/idx-huge-dims.idx: images of 65535 x 65535 pixels, more than the limit" \
    $(train --set data.train_images="$B/idx-huge-dims.idx")
expect 3 "$B/idx-huge-count.idx: 4294967295 images, more than the limit" \
    $(train --set data.train_images="$B/idx-huge-count.idx")
expect 3 "$B/idx-huge-labels.idx: 4294967280 labels, but" \
    $(train --set data.train_labels="$B/idx-huge-labels.idx")
expect 3 "$B/idx-truncated-body.idx: truncated: 37771 bytes, but the header promises 600 images of 8 x 8" \
    $(train --set data.train_images="$B/idx-truncated-body.idx")
expect 3 "$B/idx-trailing.idx: 3 trailing bytes after 600 images" \
    $(train --set data.train_images="$B/idx-trailing.idx")
expect 3 "$B/idx-empty.idx: empty file, expected an IDX images file" \
    $(train --set data.train_images="$B/idx-empty.idx")
expect 3 "$B/idx-short-header.idx: truncated IDX header" \
    $(train --set data.train_images="$B/idx-short-header.idx")
expect 3 "$B/idx-labels-fewer.idx: 599 labels, but $d/train-images.idx has 600 images" \
    $(train --set data.train_labels="$B/idx-labels-fewer.idx")
expect 3 "$B/idx-magic.idx: not an IDX file (magic 0x12345678), expected 0x00000801 for an IDX labels file" \
    $(train --set data.test_labels="$B/idx-magic.idx")
expect 3 "$d/no-such-file.idx: cannot open: No such file or directory" \
    $(train --set data.train_images=no-such-file.idx)
# both ranks load the data and both name the file
expect 3 "mpicnn: rank 1: bad input: $B/idx-truncated-body.idx: truncated" \
    $(np2) $(train --set data.train_images="$B/idx-truncated-body.idx")
# a bad gradient-sum choice in the environment, on both ranks
expect 4 "mpicnn: rank 1: bad config: MPICNN_GRAD_SUM=nccl: expected 'auto' or 'mpi'" \
    env MPICNN_GRAD_SUM=nccl $(np2) -x MPICNN_GRAD_SUM $(train)
# the loader goes by content, not by name: gzip named .idx and raw named .gz load
expect 0 "accuracy: " "$M" eval "$d/good/model.h5" --set data.test_images="$B/idx-gzip-named-raw.idx" \
    --set data.test_labels="$d/train-labels.idx"
expect 0 "accuracy: " "$M" eval "$d/good/model.h5" --set data.test_images="$B/idx-raw-named-gz.idx.gz" \
    --set data.test_labels="$d/train-labels.idx"
expect 3 "$B/idx-magic.idx: not an IDX file" \
    "$M" eval "$d/good/model.h5" --set data.test_images="$B/idx-magic.idx"

# CIFAR
expect 3 "$B/cifar-size.bin: size 6246 bytes is not a multiple of the CIFAR-10 record size 3073" \
    "$M" train "$B/cifar.ini" --progress none --out "$d/c1" --set data.train_files=cifar-size.bin
expect 3 "$B/cifar-label.bin: record 2: label 10 is out of range, expected 0..9" \
    "$M" train "$B/cifar.ini" --progress none --out "$d/c2" --set data.train_files=cifar-label.bin
expect 3 "$B/cifar-empty.bin: empty file, expected a CIFAR-10 batch" \
    "$M" train "$B/cifar.ini" --progress none --out "$d/c3" --set data.train_files=cifar-empty.bin

# HDF5 models: through info, and some through eval (also on 2 ranks)
expect 3 "$B/model-missing-dataset.h5: /layers/conv1/weight: dataset missing" "$M" info "$B/model-missing-dataset.h5"
expect 3 "$B/model-extra-dataset.h5: /layers/conv1/extra: extra dataset" "$M" info "$B/model-extra-dataset.h5"
expect 3 "$B/model-extra-group.h5: /layers/ghost: extra layer group" "$M" info "$B/model-extra-group.h5"
expect 3 "$B/model-wrong-rank.h5: /layers/conv1/weight: shape (4,9) expected (4,1,3,3)" "$M" info "$B/model-wrong-rank.h5"
expect 3 "$B/model-wrong-shape.h5: /layers/fc1/weight: shape (4,63) expected (4,64)" "$M" info "$B/model-wrong-shape.h5"
expect 3 "$B/model-wrong-dtype.h5: /layers/conv1/bias: dtype int32, expected float32" "$M" info "$B/model-wrong-dtype.h5"
expect 3 "$B/model-absurd-dims.h5: /layers/fc1/weight: shape (1099511627776,1099511627776) expected (4,64)" "$M" info "$B/model-absurd-dims.h5"
expect 3 "$B/model-nan-weight.h5: /layers/conv1/weight: contains NaN at index 5" "$M" info "$B/model-nan-weight.h5"
expect 3 "$B/model-inf-bias.h5: /layers/fc1/bias: contains Inf at index 2" "$M" info "$B/model-inf-bias.h5"
expect 3 "$B/model-no-config.h5: the model has no config attribute" "$M" info "$B/model-no-config.h5"
expect 4 "$B/model-bad-config.h5:/config: [data] format: missing required key" "$M" info "$B/model-bad-config.h5"
expect 3 "$B/model-wrong-format.h5: / attribute 'format' is \"someone-elses-model\", expected \"mpicnn-model\"" "$M" info "$B/model-wrong-format.h5"
expect 3 "$B/model-input-shape.h5: /input_shape: value 1000000000 not in 1..1048576" "$M" info "$B/model-input-shape.h5"
expect 3 "$B/model-truncated.h5: not an HDF5 file, or truncated or damaged" "$M" info "$B/model-truncated.h5"
expect 3 "$B/model-header-only.h5: not an HDF5 file, or truncated or damaged" "$M" info "$B/model-header-only.h5"
expect 3 "$B/model-garbage.h5: not an HDF5 file, or truncated or damaged" "$M" info "$B/model-garbage.h5"
expect 3 "$B/model-empty.h5: not an HDF5 file, or truncated or damaged" "$M" info "$B/model-empty.h5"
expect 3 "$B/model-text.h5: not an HDF5 file, or truncated or damaged" "$M" info "$B/model-text.h5"
expect 3 "$B/no-such-model.h5: cannot open: No such file or directory" "$M" info "$B/no-such-model.h5"
expect 3 "$B: is a directory, not an HDF5 file" "$M" info "$B"
expect 3 "$B/model-nan-weight.h5: /layers/conv1/weight: contains NaN at index 5" "$M" eval "$B/model-nan-weight.h5"
expect 3 "mpicnn: rank 1: bad input: $B/model-truncated.h5: not an HDF5 file" $(np2) "$M" eval "$B/model-truncated.h5"

# checksums, limits, links and storage
expect 3 "$B/model-bit-flip.h5: /layers/fc1/weight: checksum mismatch" "$M" info "$B/model-bit-flip.h5"
expect 3 "$B/model-bit-flip.h5: /layers/fc1/weight: checksum mismatch" "$M" eval "$B/model-bit-flip.h5"
expect 0 "has no checksum ('mpicnn_crc32c')" "$M" info "$B/model-no-checksums.h5"
expect 6 "$B/model-huge-weights.h5: the scores of test image 0 are not finite" "$M" eval "$B/model-huge-weights.h5"
expect 6 "$B/model-huge-weights.h5: the scores of $d/train-images.idx (image 0) are not finite" \
    "$M" predict "$B/model-huge-weights.h5" "$d/train-images.idx"
expect 6 "mpicnn: rank 1: numerical failure: another rank failed" $(np2) "$M" eval "$B/model-huge-weights.h5"
expect 3 "$B/model-big-config.h5: / attribute 'config': strings of more than 16777216 bytes" \
    "$M" info "$B/model-big-config.h5"
expect 3 "$B/model-big-classes.h5: /classes: strings of more than 16777216 bytes" "$M" info "$B/model-big-classes.h5"
expect 3 "$B/model-external-link.h5: /layers/fc1/bias: an external link to $d/good/model.h5:/layers/fc1/bias, refused" \
    "$M" info "$B/model-external-link.h5"
expect 3 "$B/model-soft-link.h5: /layers/fc1/bias: a soft link to '/layers/conv1/bias', refused" \
    "$M" info "$B/model-soft-link.h5"
expect 3 "$B/model-external-storage.h5: /layers/fc1/bias: its data is stored in the external file 'fc1-bias.raw'" \
    "$M" info "$B/model-external-storage.h5"
expect 3 "$B/model-virtual.h5: /layers/fc1/bias: a virtual dataset" "$M" info "$B/model-virtual.h5"
expect 3 "$B/model-filter.h5: /layers/fc1/weight: stored through the HDF5 filter 'deflate'" \
    "$M" info "$B/model-filter.h5"

# HDF5 checkpoints: through train --resume
expect 3 "$d/ckpt-bit-flip/checkpoint.h5: /layers/conv1/weight: checksum mismatch" \
    "$M" train "$d/run.ini" --progress none --resume --out "$d/ckpt-bit-flip"
expect 3 "$d/ckpt-finite-garbage/checkpoint.h5: /layers/conv1/weight: checksum mismatch" \
    "$M" train "$d/run.ini" --progress none --resume --out "$d/ckpt-finite-garbage"
expect 3 "$d/ckpt-nan-weight/checkpoint.h5: /layers/fc1/weight: contains NaN at index 17" \
    "$M" train "$d/run.ini" --progress none --resume --out "$d/ckpt-nan-weight"
expect 3 "$d/ckpt-missing-counters/checkpoint.h5: /train/counters: dataset missing" \
    "$M" train "$d/run.ini" --progress none --resume --out "$d/ckpt-missing-counters"
expect 3 "$d/ckpt-bad-counters/checkpoint.h5: /train/counters holds impossible values: epoch -7" \
    "$M" train "$d/run.ini" --progress none --resume --out "$d/ckpt-bad-counters"
expect 3 "$d/ckpt-wrong-shape/checkpoint.h5: /layers/conv1/weight: shape (4,9) expected (4,1,3,3)" \
    "$M" train "$d/run.ini" --progress none --resume --out "$d/ckpt-wrong-shape"
expect 3 "$d/ckpt-is-model/checkpoint.h5: not an mpicnn checkpoint (format 'mpicnn-model')" \
    "$M" train "$d/run.ini" --progress none --resume --out "$d/ckpt-is-model"
expect 3 "$d/ckpt-truncated/checkpoint.h5: not an HDF5 file, or truncated or damaged" \
    "$M" train "$d/run.ini" --progress none --resume --out "$d/ckpt-truncated"
expect 3 "$d/ckpt-garbage/checkpoint.h5: not an HDF5 file, or truncated or damaged" \
    "$M" train "$d/run.ini" --progress none --resume --out "$d/ckpt-garbage"
# rank 0 reads it; rank 1's line names the file too (a copy of the
# directory: cases run in parallel, and a run directory admits one run)
cp -r "$d/ckpt-garbage" "$d/ckpt-garbage-np2"
expect 3 "mpicnn: rank 1: bad input: another rank failed (bad input): rank 0: $d/ckpt-garbage-np2/checkpoint.h5: not an HDF5 file" \
    $(np2) "$M" train "$d/run.ini" --progress none --resume --out "$d/ckpt-garbage-np2"

# configs
expect 4 "$B/cfg-bad-value.ini:36: [train] batch_size: '12abc' is not an integer (expected an integer in 1..65536)" \
    "$M" train "$B/cfg-bad-value.ini" --out "$d/x1"
expect 4 "$B/cfg-unknown-key.ini:35: [train] epoch: unknown key (expected one of: epochs," \
    "$M" train "$B/cfg-unknown-key.ini" --out "$d/x2"
expect 4 "$B/cfg-unknown-section.ini:43: [bogus]: unknown section" \
    "$M" train "$B/cfg-unknown-section.ini" --out "$d/x3"
expect 4 "$B/cfg-range.ini:32: [optimizer] lr: -1 is out of range (expected a number > 0)" \
    "$M" train "$B/cfg-range.ini" --out "$d/x4"
expect 4 "$B/cfg-duplicate.ini:43: [checkpoint] every_steps: duplicate key (first set at line 42)" \
    "$M" train "$B/cfg-duplicate.ini" --out "$d/x5"
expect 4 "$B/cfg-net-mismatch.ini: the last layer (fc1) gives (5,1,1) per image but the data has 4 classes" \
    "$M" train "$B/cfg-net-mismatch.ini" --out "$d/x6"
expect 3 "$d/no-such-file.idx: cannot open: No such file or directory" \
    "$M" train "$B/cfg-missing-data.ini" --out "$d/x7"
expect 4 "$B/cfg-nul.ini: config file contains a NUL byte" "$M" train "$B/cfg-nul.ini" --out "$d/x8"
expect 4 "$B/cfg-empty.ini: [data] format: missing required key" "$M" train "$B/cfg-empty.ini" --out "$d/x9"
expect 4 "$B/no-such.ini: cannot open: No such file or directory" "$M" train "$B/no-such.ini"
expect 4 "$B: is a directory, not a config file" "$M" train "$B"
expect 4 "--set train.nokey: [train] nokey: unknown key" $(train --set train.nokey=1)
expect 4 "--set trainepochs: malformed override (expected --set section.key=value)" $(train --set trainepochs)
expect 4 "--set train.watchdog_seconds: [train] watchdog_seconds: -1 is out of range (expected a number >= 0 or auto)" \
    $(train --set train.watchdog_seconds=-1)
expect 4 "--set train.nan_policy: [train] nan_policy: 'ignore' is not a valid choice (expected stop | skip)" \
    $(train --set train.nan_policy=ignore)
expect 4 "mpicnn: rank 1: bad config: $B/cfg-bad-value.ini:36: [train] batch_size" \
    $(np2) "$M" train "$B/cfg-bad-value.ini" --out "$d/x10"

# CSV and flags of mpicnn op
expect 3 "--x $B/csv-token.csv: line 1: 'x' is not a finite number" \
    "$M" op relu --x "$B/csv-token.csv" --x-shape 1,1,2,2 --out "$d/o1.csv"
expect 3 "--x $B/csv-short.csv: has 3 values, but shape (1,1,2,2) needs 4" \
    "$M" op relu --x "$B/csv-short.csv" --x-shape 1,1,2,2 --out "$d/o2.csv"
expect 3 "--x $B/no-such.csv: cannot open: No such file or directory" \
    "$M" op relu --x "$B/no-such.csv" --x-shape 1,1,2,2 --out "$d/o3.csv"
expect 2 "--x-shape: '1,x' is not a list of positive integers" \
    "$M" op relu --x "$B/csv-short.csv" --x-shape 1,x --out "$d/o4.csv"
expect 5 "$d/no-such-dir/o5.csv: cannot create: No such file or directory" \
    "$M" op relu --x "$B/csv-short.csv" --x-shape 1,1,1,3 --out "$d/no-such-dir/o5.csv"
expect 5 "$d/no-such-dir/p.csv: cannot create: No such file or directory" \
    "$M" eval "$d/good/model.h5" --predictions "$d/no-such-dir/p.csv"

# the command line and the environment
expect 2 "unknown command 'bogus'" "$M" bogus
expect 2 "train: expected one CONFIG file, got 0 arguments" "$M" train
expect 2 "MPICNN_FAULT=kill@x: 'x' after '@' is not a step number" \
    env MPICNN_FAULT=kill@x $(train)
}
wait

# a file without checksums (an older mpicnn's) warns once, on rank 0 only
"$M" info "$B/model-no-checksums.h5" >"$d/res/old1.log" 2>&1 ||
    fail "info of a file without checksums failed: $(cat "$d/res/old1.log")"
timeout -k 5 "$limit" $(np2) "$M" eval "$B/model-no-checksums.h5" >"$d/res/old2.log" 2>&1 ||
    fail "eval of a file without checksums failed: $(cat "$d/res/old2.log")"
for l in old1 old2; do
    w=$(grep -c "has no checksum" "$d/res/$l.log")
    [ "$w" -eq 1 ] || fail "$l: $w warnings about missing checksums, expected 1: $(cat "$d/res/$l.log")"
done
grep -q "^mpicnn: rank 0: warning: $B/model-no-checksums.h5: /[a-z_/0-9]* has no checksum" "$d/res/old2.log" ||
    fail "eval on 2 ranks: no rank 0 warning naming the file: $(cat "$d/res/old2.log")"

bad=0
for f in "$d"/res/*.fail; do
    [ -e "$f" ] || continue
    bad=$((bad + 1))
    i=$(basename "$f" .fail)
    echo "FAIL: $(cat "$f")"
    sed 's/^/    /' "$d/res/$i.log" | head -n 12
done
[ "$bad" -eq 0 ] || fail "$bad of $n cases"
echo "ok: $n bad inputs through the program: each gave its exit code and named the file, flag or key"
exit 0
