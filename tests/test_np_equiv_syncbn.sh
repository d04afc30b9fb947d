#!/bin/sh
# test_np_equiv_syncbn.sh - synchronised batchnorm makes data parallelism
# change nothing but the rounding for a net with batchnorm: 20 steps of a
# small conv net with three batchnorm layers (two after convolutions, one
# after a dense layer) at a global batch of 64 on one rank (batch_size 64)
# and on two (batch_size 32 each) end with the same weights and running
# statistics within 1e-5 when the layers have sync = true. The control
# run, -np 2 with the default per-rank statistics (each rank normalises
# its 32 images alone), must fail the same comparison.
# Needs $MPICNN, $MPIEXEC and $top_builddir (set by `make check`).
set -u
. "$(dirname "$0")/np_equiv_lib.sh"
cat >"$d/bn.ini" <<EOF || exit 99
[data]
format = idx
dir = $d
train_images = train-images.idx
train_labels = train-labels.idx
test_images = test-images.idx
test_labels = test-labels.idx
validation = 100
normalize = true

[net]
layers = conv1, bn1, relu1, pool1, conv2, bn2, relu2, pool2, flatten, fc1, bn3, relu3, fc2

[conv1]
type = conv
filters = 8
kernel = 3
pad = 1

[bn1]
type = batchnorm
sync = true

[relu1]
type = relu

[pool1]
type = maxpool
size = 2

[conv2]
type = conv
filters = 16
kernel = 3
pad = 1

[bn2]
type = batchnorm
sync = true

[relu2]
type = relu

[pool2]
type = maxpool
size = 2

[flatten]
type = flatten

[fc1]
type = dense
units = 32

[bn3]
type = batchnorm
sync = true

[relu3]
type = relu

[fc2]
type = dense
units = 4

[optimizer]
type = momentum
lr = 0.01
momentum = 0.9
lr_scaling = none

[train]
epochs = 1
seed = 1
loss = softmax_ce
threads = 1
log_every = 0

[early_stopping]
enabled = false

[checkpoint]
every_minutes = 0
EOF

run() { # NAME NP BATCH [more --set ...]
    name=$1 np=$2 batch=$3
    shift 3
    $MPIEXEC -np "$np" --oversubscribe "$MPICNN" train "$d/bn.ini" --out "$d/$name" \
        --set train.batch_size="$batch" "$@" --progress none >"$d/$name.log" 2>&1 ||
        fail "the run $name (-np $np) exited $?"
    [ "$(grep -c '^[0-9]' "$d/$name/metrics.csv")" -ge 1 ] || fail "$name: no epoch in metrics.csv"
}

run np1 1 64
run np2 2 32
m=$(maxdiff np1 np2) || fail "cannot read the weights of the runs"
echo "largest difference of weights and running statistics, -np 1 against -np 2 (sync): $m"
awk -v m="$m" 'BEGIN { exit !(m <= 1e-5) }' ||
    fail "with sync = true, -np 2 at batch 32 and -np 1 at batch 64 differ by $m > 1e-5"
# the comparison can fail: per-rank statistics over 32 images are not
# those of the 64
run np2local 2 32 --set bn1.sync=false --set bn2.sync=false --set bn3.sync=false
m=$(maxdiff np1 np2local) || fail "cannot read the weights of the runs"
echo "largest difference, -np 1 against -np 2 with per-rank statistics: $m"
awk -v m="$m" 'BEGIN { exit !(m > 1e-3) }' ||
    fail "-np 2 with per-rank statistics is within $m of -np 1: the comparison cannot fail"
echo "PASS: with synchronised batchnorm, -np 2 equals -np 1 at a global batch of 64 within 1e-5 after 20 steps"
exit 0
