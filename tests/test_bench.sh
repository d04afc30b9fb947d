#!/bin/sh
# test_bench.sh - bench/mpicnn-bench runs every mode it offers, briefly,
# and prints its tables: `make bench` is not part of `make check`, so this
# keeps the benchmark from breaking unseen.
#   - --layers-only on the four default nets, fused and --no-fuse: a row per
#     layer, a sum per net; ResNet-20's ReLUs run inside the layer before
#     them ("in prev") only when fused; cifar-quick only when named, and
#     its steps with the columns forced (--algo 1);
#   - --steps-only on 1 and 2 ranks: an images/s line per net;
#   - --resnet-convs and --allreduce.
# Timings are not checked (speed is measured by `make bench`, not here).
set -u
MPIEXEC=${MPIEXEC:-mpirun}
top_builddir=${top_builddir:-.}
B=$top_builddir/bench/mpicnn-bench
d=$(mktemp -d /tmp/mpicnn-bench-XXXXXX) || exit 99
trap 'rm -rf "$d"' EXIT INT TERM
fail() {
    echo "FAIL: $*"
    for f in "$d"/*.out; do echo "--- $f"; cat "$f"; done
    exit 1
}
export OMP_NUM_THREADS=1
# run NAME ARGS...: the bench must exit 0
run() {
    n=$1
    shift
    "$@" >"$d/$n.out" 2>&1 || fail "$n: exit $? from $*"
}
run layers "$B" --threads 1 --layers-only --seconds 0.02
run nofuse "$B" --threads 1 --layers-only --no-fuse --seconds 0.02 --net resnet20-fmnist
run layers2 "$B" --threads 2 --layers-only --seconds 0.02 --net resnet20-cifar
for net in fmnist-ref cifar-3layer resnet20-fmnist resnet20-cifar; do
    grep -q "^$net, batch 64" "$d/layers.out" || fail "layers: no table for $net"
done
[ "$(grep -c '^sum ' "$d/layers.out")" -eq 4 ] || fail "layers: not 4 sums"
grep -q '^s1b1_relu  *relu  *in prev' "$d/layers.out" || fail "layers: s1b1_relu not in its add"
grep -q '^relu1  *relu  *in next' "$d/layers.out" || fail "layers: fmnist-ref relu1 not in its pool"
grep -q '^s1b1_relu  *relu  *[0-9]' "$d/nofuse.out" || fail "nofuse: s1b1_relu not timed"
grep -q 'in prev\|in next' "$d/nofuse.out" && fail "nofuse: a ReLU folded"
grep -q '^s3b3_c2 ' "$d/layers2.out" || fail "layers2: no s3b3_c2 row"
grep -q '^cifar-quick' "$d/layers.out" && fail "layers: cifar-quick not named, but run"
run quick "$B" --threads 1 --layers-only --seconds 0.02 --net cifar-quick
grep -q '^conv3  *conv  *[0-9]' "$d/quick.out" || fail "quick: no conv3 row"
run quick1 "$B" --threads 1 --steps-only --seconds 0.1 --net cifar-quick --algo 1
grep -q '^cifar-quick  *-np 1 .* [0-9][0-9]* images/s' "$d/quick1.out" || fail "quick1: no line"
run steps "$B" --threads 1 --steps-only --seconds 0.2
$MPIEXEC -np 2 "$B" --threads 1 --steps-only --seconds 0.2 --net resnet20 >"$d/steps2.out" 2>&1 ||
    fail "steps2: exit $?"
for net in fmnist-ref cifar-3layer resnet20-fmnist resnet20-cifar; do
    grep -q "^$net  *-np 1 .* [0-9][0-9]* images/s" "$d/steps.out" || fail "steps: no $net line"
done
for net in resnet20-fmnist resnet20-cifar; do
    grep -q "^$net  *-np 2 .* [0-9][0-9]* images/s" "$d/steps2.out" || fail "steps2: no $net line"
done
run convs "$B" --threads 1 --resnet-convs --seconds 0.01
grep -q 'fm s2' "$d/convs.out" || fail "convs: no fm s2 row"
$MPIEXEC -np 2 "$B" --allreduce >"$d/allreduce.out" 2>&1 || fail "allreduce: exit $?"
echo "PASS: bench/mpicnn-bench, every mode"
