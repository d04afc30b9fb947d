# small_run.sh - sourced by tests/fault_lib.sh and tests/test_badinput.sh:
# the small data set and training config they share.
# shellcheck shell=sh

# small_run DIR: writes DIR/{train,test}-{images,labels}.idx and
# DIR/run.ini; needs $builddir. Non-zero if the data cannot be written.
# 500 training images of 8x8 in 4 classes, 100 held out, 100 test: 32
# steps of a global batch of 16 per epoch on 2 ranks
small_run() {
    "$builddir/tests/test_resume_synth" "$1" 600 100 8 || return 1
    cat >"$1/run.ini" <<EOF
[data]
format = idx
dir = $1
train_images = train-images.idx
train_labels = train-labels.idx
test_images = test-images.idx
test_labels = test-labels.idx
validation = 100

[net]
layers = conv1, relu1, pool1, fc1

[conv1]
type = conv
filters = 4
kernel = 3
pad = 1

[relu1]
type = relu

[pool1]
type = maxpool
size = 2

[fc1]
type = dense
units = 4

[optimizer]
type = sgd
lr = 0.05

[train]
epochs = 1
batch_size = 8
seed = 3
log_every = 0
threads = 1

[checkpoint]
every_steps = 5
EOF
}
