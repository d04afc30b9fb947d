#!/bin/sh
# test_np_equiv.sh - data parallelism changes nothing but the rounding:
# 20 steps of fmnist-ref's net, and of a residual net with warmup and
# cosine, at a global batch of 64 on one rank (batch_size 64) and on two
# (batch_size 32 each) end with the same weights within 1e-5. Each
# rank's loss is scaled by the global batch, so the summed gradient is
# the one-rank gradient; a loss scaled by the local batch would double it
# at -np 2, and the control run (-np 2 at twice the rate, which is what
# that would look like) must fail the same comparison.
# Needs $MPICNN, $MPIEXEC and $top_builddir (set by `make check`).
set -u
. "$(dirname "$0")/np_equiv_lib.sh"
# fmnist-ref's net and optimizer, on this data, one epoch, no scaling
sed -e "s|^dir = .*|dir = $d|" \
    -e 's|^train_images = .*|train_images = train-images.idx|' \
    -e 's|^train_labels = .*|train_labels = train-labels.idx|' \
    -e 's|^test_images = .*|test_images = test-images.idx|' \
    -e 's|^test_labels = .*|test_labels = test-labels.idx|' \
    -e 's|^class_names = .*||' \
    "$(dirname "$0")/../jobs/fashion-mnist.ini" >"$d/ref.ini" || exit 99
common="--set data.validation=100 --set fc2.units=4 --set train.epochs=1
        --set optimizer.lr_scaling=none --set early_stopping.enabled=false
        --set train.threads=1 --set train.log_every=0 --set checkpoint.every_minutes=0"

run() { # NAME NP BATCH [more --set ...]
    name=$1 np=$2 batch=$3
    shift 3
    # shellcheck disable=SC2086 # $common is a list of words
    $MPIEXEC -np "$np" --oversubscribe "$MPICNN" train "$d/ref.ini" --out "$d/$name" \
        $common --set train.batch_size="$batch" "$@" --progress none >"$d/$name.log" 2>&1 ||
        fail "the run $name (-np $np) exited $?"
    [ "$(grep -c '^[0-9]' "$d/$name/metrics.csv")" -ge 1 ] || fail "$name: no epoch in metrics.csv"
}

run np1 1 64
run np2 2 32
m=$(maxdiff np1 np2) || fail "cannot read the weights of the runs"
echo "largest weight difference, -np 1 against -np 2: $m"
awk -v m="$m" 'BEGIN { exit !(m <= 1e-5) }' ||
    fail "-np 2 at batch 32 and -np 1 at batch 64 differ by $m > 1e-5"
# the comparison can fail: twice the rate (as a gradient scaled by the
# local batch would give) is far off
run np2x 2 32 --set optimizer.lr=0.02
m=$(maxdiff np1 np2x) || fail "cannot read the weights of the runs"
echo "largest weight difference, -np 1 against -np 2 at twice the rate: $m"
awk -v m="$m" 'BEGIN { exit !(m > 1e-3) }' ||
    fail "-np 2 at twice the rate is within $m of -np 1: the comparison cannot fail"
# a residual net without batchnorm (a batchnorm's statistics are per rank
# unless sync = true: tests/test_np_equiv_syncbn.sh), warmup and cosine
cat >"$d/res.ini" <<EOF
[data]
format = idx
dir = $d
train_images = train-images.idx
train_labels = train-labels.idx
test_images = test-images.idx
test_labels = test-labels.idx
normalize = true
[net]
layers = stem, relu0, c1, relu1, c2, sum, relu2, pool, fc
[stem]
type = conv
filters = 8
kernel = 3
pad = 1
[relu0]
type = relu
[c1]
type = conv
filters = 8
kernel = 3
pad = 1
[relu1]
type = relu
[c2]
type = conv
filters = 8
kernel = 3
pad = 1
[sum]
type = add
inputs = c2, relu0
[relu2]
type = relu
[pool]
type = maxpool
size = 2
[fc]
type = dense
units = 4
[optimizer]
type = momentum
lr = 0.01
lr_schedule = cosine
lr_warmup_epochs = 0.5
[train]
epochs = 1
seed = 2
EOF
resrun() { # NAME NP BATCH
    $MPIEXEC -np "$2" --oversubscribe "$MPICNN" train "$d/res.ini" --out "$d/$1" \
        --set data.validation=100 --set train.threads=1 --set train.log_every=0 \
        --set train.batch_size="$3" --progress none >"$d/$1.log" 2>&1 ||
        fail "the run $1 (-np $2) exited $?"
}
resrun res1 1 64
resrun res2 2 32
m=$(maxdiff res1 res2) || fail "cannot read the weights of the residual runs"
echo "largest weight difference of the residual net, -np 1 against -np 2: $m"
awk -v m="$m" 'BEGIN { exit !(m <= 1e-5) }' ||
    fail "the residual net at -np 2 and -np 1 differs by $m > 1e-5"
echo "PASS: -np 2 equals -np 1 at a global batch of 64 within 1e-5 after 20 steps (fmnist-ref's net, a residual net)"
exit 0
