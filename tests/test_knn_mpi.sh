#!/bin/sh
# test_knn_mpi.sh - `mpicnn knn` under mpirun -np 2 and -np 3 prints the
# same accuracy and per-class table as on one rank. The IDX files are
# generated here with few grey levels, so many distances tie exactly and
# the ties cross the shard boundaries (they are broken by the global
# training index). Needs $MPICNN and $MPIEXEC (set by `make check`).
set -eu
: "${MPICNN:?MPICNN must name the mpicnn program}"
MPIEXEC=${MPIEXEC:-mpirun}

d=$(mktemp -d /tmp/mpicnn-knn-mpi-XXXXXX)
trap 'rm -rf "$d"' EXIT INT TERM

# octal escapes of n pseudo-random values in [0, m), scaled by `step`
bytes() { # seed n m step
    awk -v s="$1" -v n="$2" -v m="$3" -v step="$4" \
        'BEGIN { srand(s); for (i = 0; i < n; i++) printf "\\%03o", int(rand() * m) * step }'
}
be32() {
    printf "\\$(printf %03o $(($1 >> 24 & 255)))\\$(printf %03o $(($1 >> 16 & 255)))"
    printf "\\$(printf %03o $(($1 >> 8 & 255)))\\$(printf %03o $(($1 & 255)))"
}
# idx NAME N H W SEED: images with 3 grey levels, labels 0..5
idx() {
    { printf '\000\000\010\003'; be32 "$2"; be32 "$3"; be32 "$4"
      printf "$(bytes "$5" $(($2 * $3 * $4)) 3 127)"; } >"$d/$1-images"
    { printf '\000\000\010\001'; be32 "$2"
      printf "$(bytes $(($5 + 1)) "$2" 6 1)"; } >"$d/$1-labels"
}
idx train 301 6 5 11
idx test 57 6 5 23

fail=0
for k in 1 4; do
    args="knn --train-images $d/train-images --train-labels $d/train-labels \
--test-images $d/test-images --test-labels $d/test-labels --k $k"
    # shellcheck disable=SC2086
    "$MPICNN" $args >"$d/np1.txt"
    grep -q '^accuracy: ' "$d/np1.txt" || { echo "k=$k: no accuracy line"; cat "$d/np1.txt"; exit 1; }
    for np in 2 3; do
        # shellcheck disable=SC2086
        "$MPIEXEC" -np $np --oversubscribe "$MPICNN" $args >"$d/np$np.txt"
        # all but the timing line must be identical
        if ! diff "$d/np1.txt" "$d/np$np.txt" | grep -v '^[<>] knn:' | grep -q '^[<>]'; then
            echo "k=$k -np $np: $(grep '^accuracy' "$d/np$np.txt") (same as 1 rank)"
        else
            echo "k=$k -np $np: output differs from the 1-rank run:"
            diff "$d/np1.txt" "$d/np$np.txt" || true
            fail=1
        fi
    done
done
# a failing rank takes the others down with it (and no hang)
if "$MPIEXEC" -np 2 --oversubscribe "$MPICNN" knn --train-images "$d/nope" \
    --train-labels "$d/train-labels" --test-images "$d/test-images" \
    --test-labels "$d/test-labels" --k 1 >/dev/null 2>"$d/err.txt"; then
    echo "a missing file did not fail"; fail=1
fi
grep -q nope "$d/err.txt" || { echo "the error does not name the file:"; cat "$d/err.txt"; fail=1; }
exit $fail
