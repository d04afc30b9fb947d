# np_equiv_lib.sh - sourced by tests/test_np_equiv.sh and
# tests/test_np_equiv_syncbn.sh: a scratch directory $d with 20 steps of
# synthetic data, and the comparison of two runs' model files.
# Needs $MPICNN (set by `make check`); sets MPIEXEC, builddir and d.
# shellcheck shell=sh
: "${MPICNN:?MPICNN must name the mpicnn program}"
MPIEXEC=${MPIEXEC:-mpirun}
builddir=${top_builddir:-.}

d=$(mktemp -d "${TMPDIR:-/tmp}/mpicnn-npequiv-XXXXXX") || exit 99
trap 'rm -rf "$d"' EXIT
fail() {
    echo "FAIL: $*"
    for f in "$d"/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -20 "$f"; }; done
    exit 1
}

# 1380 images of 28x28 in 4 classes; 100 held out: 1280 = 20 steps of 64
"$builddir/tests/test_resume_synth" "$d" 1380 100 28 || exit 99

# The values of every dataset under /layers of model file $1, one a line
# (weights and running statistics)
values() {
    h5dump -A 0 -y -w 0 -m %.9g -g /layers "$1" | sed -n 's/^ *\(-\{0,1\}[0-9][0-9.e+-]*\),\{0,1\}$/\1/p'
}
# Prints the largest |a - b| over the values of runs $1 and $2 (their
# model.h5 in $d); fails on a count mismatch or no values
maxdiff() {
    values "$d/$1/model.h5" >"$d/$1.txt" && values "$d/$2/model.h5" >"$d/$2.txt" || return 1
    [ -s "$d/$1.txt" ] && [ "$(wc -l <"$d/$1.txt")" -eq "$(wc -l <"$d/$2.txt")" ] || return 1
    paste "$d/$1.txt" "$d/$2.txt" |
        awk '{ e = $1 - $2; if (e < 0) e = -e; if (e > m) m = e } END { printf "%.3g\n", m }'
}
