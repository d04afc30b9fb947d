#!/bin/bash
# valgrind.sh - `make valgrind`: every rank of two 2-rank runs under
# valgrind memcheck ($VALGRIND, with Open MPI's suppressions):
#   1. tests/test_train (replicas, early stopping, model round trip,
#      agreed errors)
#   2. `mpicnn train` on a small data set with the watchdog on and a
#      checkpoint every 5 steps (the watchdog thread, the arrival check,
#      the atomic HDF5 writer)
# Each rank writes valgrind-<run>.<pid>.log in the build directory; an
# error or a definite leak fails the target and the logs say where.
set -u
: "${VALGRIND:?}" "${MPICNN:?}"
MPIEXEC=${MPIEXEC:-mpirun}
builddir=${top_builddir:-.}
d=$(mktemp -d "${TMPDIR:-/tmp}/mpicnn-valgrind-XXXXXX") || exit 99
trap 'rm -rf "$d"' EXIT
rm -f "$builddir"/valgrind-*.log
status=0

run() { # NAME CMD...
    local name=$1 t0=$SECONDS
    shift
    # shellcheck disable=SC2086 # VALGRIND is a command with flags
    if "$MPIEXEC" -np 2 --oversubscribe $VALGRIND --log-file="$builddir/valgrind-$name.%p.log" \
        "$@" >"$d/$name.out" 2>&1; then
        echo "valgrind: $name: clean ($((SECONDS - t0)) s)"
    else
        echo "valgrind: $name: FAILED ($((SECONDS - t0)) s); see $builddir/valgrind-$name.*.log"
        tail -n 20 "$d/$name.out"
        status=1
    fi
    grep -h -E "ERROR SUMMARY|definitely lost|indirectly lost|possibly lost" \
        "$builddir"/valgrind-"$name".*.log | sed "s/^/  $name: /"
}

run test_train "$builddir/tests/test_train"

"$builddir/tests/test_resume_synth" "$d" 300 60 8 || exit 99
cat >"$d/run.ini" <<EOF2
[data]
format = idx
dir = $d
train_images = train-images.idx
train_labels = train-labels.idx
test_images = test-images.idx
test_labels = test-labels.idx
validation = 60

[net]
layers = conv1, bn1, relu1, pool1, fc1

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

[fc1]
type = dense
units = 4

[optimizer]
type = adam
lr = 0.01

[train]
epochs = 1
batch_size = 8
seed = 3
log_every = 0
threads = 2
watchdog_seconds = 600

[checkpoint]
every_steps = 5
EOF2
run train "$MPICNN" train "$d/run.ini" --out "$d/out" --progress none
exit $status
