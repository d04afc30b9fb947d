#!/bin/sh
# test_membudget.sh - the memory budget through the program, with small
# explicit budgets (never ulimit, which breaks sanitizers and Open MPI):
#   - train: a conv pad of 4096 over [train] max_memory_mb = 64 exits 8
#     with the plan per layer, before the output directory exists, on one
#     rank and on two; the same config with the default pad trains;
#   - eval, predict (also --dtype f64) and knn: --max-memory below the
#     plan exits 8 naming the flag, a larger one runs, a bad value is a
#     usage error (2);
#   - sweep: a trial over the budget is a failed trial ("out of memory")
#     and the others run; a sweep whose every trial is over exits 8.
# Needs $MPICNN, $MPIEXEC and $top_builddir (set by `make check`).
set -u
MPIEXEC=${MPIEXEC:-mpirun}
MPICNN=${MPICNN:-src/mpicnn}
builddir=${top_builddir:-.}
d=$(mktemp -d "${TMPDIR:-/tmp}/mpicnn-membudget-XXXXXX") || exit 99
trap 'rm -rf "$d"' EXIT
trap 'exit 1' INT TERM
fail() {
    echo "FAIL: $*"
    [ -f "$d/log" ] && cat "$d/log"
    exit 1
}
# expect CODE WHAT TEXT COMMAND...: COMMAND exits with CODE and says TEXT
expect() {
    code=$1 what=$2 text=$3
    shift 3
    timeout -k 5 120 "$@" >"$d/log" 2>&1
    rc=$?
    [ $rc -eq "$code" ] || fail "$what: exit code $rc, expected $code"
    grep -q -- "$text" "$d/log" || fail "$what: the message does not say '$text'"
    echo "ok: $what: exit $rc"
}

. "${top_srcdir:-.}/tests/small_run.sh"
small_run "$d" || fail "cannot write the data set"
run="$MPICNN train $d/run.ini --set train.max_memory_mb=64"

# --- train: refused before anything is written, with the table
expect 8 "train, pad 4096" "over the budget of 64.0 MB (\[train\] max_memory_mb 64)" \
    $run --set conv1.pad=4096 --out "$d/big"
for t in "conv1 (conv)" "pool1 (maxpool)" "fc1 (dense)" "gradient buffers" \
    "optimizer state" "data set" "params *grads *state *output *cache *work *total"; do
    grep -q -- "$t" "$d/log" || fail "the plan does not list '$t'"
done
# the run directory holds only its lock and the status of the refusal
for f in model.h5 checkpoint.h5 metrics.csv; do
    [ ! -e "$d/big/$f" ] || fail "a refused run wrote $f"
done
grep -q "^failed 8 " "$d/big/status" || fail "status does not record the refusal: $(cat "$d/big/status" 2>&1)"
expect 8 "train on 2 ranks, pad 4096" "rank 1: out of memory" \
    "$MPIEXEC" -np 2 $run --set conv1.pad=4096 --out "$d/big2"
grep -q "rank 0: out of memory" "$d/log" || fail "rank 0 did not refuse"
expect 0 "train within the budget" "test accuracy" $run --out "$d/ok"
# a wider model for eval and predict: about 2 MB at its batch of 8 in a
# forward-only plan (activation buffers reused)
expect 0 "train a wider model" "test accuracy" $run --set conv1.filters=512 --out "$d/wide"
model=$d/wide/model.h5

# --- eval, predict, knn
expect 8 "eval --max-memory 1" "over the budget of 1.0 MB (--max-memory 1)" \
    "$MPICNN" eval "$model" --max-memory 1
grep -q "conv1 (conv)" "$d/log" || fail "eval: the plan does not list conv1"
expect 0 "eval --max-memory 64" "accuracy:" "$MPICNN" eval "$model" --max-memory 64
expect 8 "eval on 2 ranks, --max-memory 1" "out of memory" \
    "$MPIEXEC" -np 2 "$MPICNN" eval "$model" --max-memory 1
expect 2 "eval --max-memory 0" "max-memory" "$MPICNN" eval "$model" --max-memory 0
expect 2 "eval --max-memory lots" "max-memory" "$MPICNN" eval "$model" --max-memory lots
expect 8 "predict --max-memory 1" "over the budget of 1.0 MB" \
    "$MPICNN" predict "$model" "$d/test-images.idx" --max-memory 1
expect 0 "predict --max-memory 64" "test-images.idx,0," \
    "$MPICNN" predict "$model" "$d/test-images.idx" --max-memory 64
# --dtype f64 keeps every layer's output and gradient in double beside the
# float net: over a budget the float net alone fits in
expect 8 "predict --dtype f64 --max-memory 4" "the double-precision net" \
    "$MPICNN" predict "$model" "$d/test-images.idx" --dtype f64 --max-memory 4
expect 0 "predict --dtype f64 --max-memory 64" "test-images.idx,0," \
    "$MPICNN" predict "$model" "$d/test-images.idx" --dtype f64 --max-memory 64
knn="$MPICNN knn --train-images $d/train-images.idx --train-labels $d/train-labels.idx
     --test-images $d/test-images.idx --test-labels $d/test-labels.idx"
expect 8 "knn --k 500 --max-memory 1" "k-NN candidates" $knn --k 500 --max-memory 1
expect 0 "knn --k 5 --max-memory 64" "accuracy:" $knn --k 5 --max-memory 64

# --- sweep: a failed trial, or a failed sweep when every trial is over
cp "$d/run.ini" "$d/sweep.ini"
printf '\n[sweep]\nconv1.pad = 1, 4096\n' >>"$d/sweep.ini"
expect 0 "sweep with a trial over the budget" "2 trials: 1 ok, 1 failed" \
    "$MPICNN" sweep "$d/sweep.ini" --set train.max_memory_mb=64 --out "$d/sweep"
grep -q "^trial=1.*status=failed.*reason=out of memory: .*over the budget of 64.0 MB" \
    "$d/sweep/sweep.journal" || fail "the journal does not record trial 1 as out of memory"
grep -q "^trial=0.*status=ok" "$d/sweep/sweep.journal" || fail "trial 0 did not run"
sed -i 's/^conv1.pad = 1, 4096$/conv1.pad = 4095, 4096/' "$d/sweep.ini"
expect 8 "sweep with every trial over the budget" "out of memory" \
    "$MPICNN" sweep "$d/sweep.ini" --set train.max_memory_mb=64 --out "$d/sweep2"
echo "PASS"
