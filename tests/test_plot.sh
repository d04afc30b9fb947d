#!/bin/sh
# test_plot.sh - `mpicnn plot` end to end: train a tiny model on synthetic
# data (tests/test_plot --synth), then plot the run and check every PNG
# (read back with libpng by `test_plot --png`: width, height, RGB, not
# blank). Without gnuplot: exit code 69, the pictures that need no gnuplot
# still drawn; the gnuplot charts are then a SKIP (exit 77).
#
# Expected sizes follow the layouts of include/mpicnn/plot.h (margin 8,
# title line 14, caption line 10, gap 2) for 8x8 images in 4 classes:
#   filters.png        6 tiles of 3x3 at S=16 (6*48 + 5*2 = 298) under a
#                      54-character title (323 px): 16+323 x 16+14+48
#   misclassified.png  --misclassified 6: one row of 6 cells of 64 x 64+20,
#                      8 apart: 16+424 x 16+14+84
#   activations_relu1  3 blocks of (caption 10 + 40): 6 maps of 8x8 at S=5
#                      beside the input at Si=5 (298 px) under a 63-character
#                      title (377 px): 16+377 x 16+14+3*50+2*8
#   activations_fc1    2 blocks of (10 + 40); 4 maps 1x1 at S=16 under a
#                      62-character title (371 px): 16+371 x 16+14+2*50+8
#   learning_curves    960 x 400;  confusion.png  480 x 480 (4 classes)
set -u
MPIEXEC=${MPIEXEC:-mpirun}
MPICNN=${MPICNN:-src/mpicnn}
top_builddir=${top_builddir:-.}
T=$top_builddir/tests/test_plot
d=$(mktemp -d /tmp/mpicnn-plot-XXXXXX) || exit 99
trap 'rm -rf "$d"' EXIT INT TERM
fail() {
    echo "FAIL: $*"
    for f in "$d"/log.*; do echo "--- $f"; cat "$f"; done
    exit 1
}
# png FILE W H: exists, is W x H RGB(A) and not blank
png() {
    info=$("$T" --png "$1") || fail "$1: $info"
    set -- "$1" "$2" "$3" $info
    [ "$4" -eq "$2" ] && [ "$5" -eq "$3" ] || fail "$1 is $4 x $5, expected $2 x $3"
    [ "$6" -eq 3 ] || [ "$6" -eq 4 ] || fail "$1 has $6 channels, expected RGB(A)"
}

"$T" --synth "$d" || fail "cannot write the data"
# a weak model (a low learning rate) so that there are misclassified images
run=$d/run
"$MPICNN" train "$d/plot.ini" --out "$run" --set optimizer.lr=0.0001 >"$d/log.train" 2>&1 ||
    fail "train failed"
right=$(sed -n 's|^test accuracy: [0-9.]* (\([0-9]*\)/60)$|\1|p' "$d/log.train")
[ -n "$right" ] && [ "$right" -le 54 ] || fail "expected at least 6 of 60 test images wrong"
plots=$run/plots

# --- usage and input errors
"$MPICNN" plot >"$d/log.err" 2>&1
[ $? -eq 2 ] || fail "plot without RUN_DIR did not exit with 2"
"$MPICNN" plot "$run" --images 3 >"$d/log.err" 2>&1
[ $? -eq 2 ] || fail "--images without --activations did not exit with 2"
"$MPICNN" plot "$run" --activations nope >"$d/log.err" 2>&1
[ $? -eq 2 ] || fail "an unknown layer did not exit with 2"
grep -q "no layer 'nope' (its layers: conv1, bn1, relu1" "$d/log.err" ||
    fail "the message does not list the layers"
"$MPICNN" plot "$d/nothing-here" >"$d/log.err" 2>&1
[ $? -eq 3 ] || fail "a directory without model.h5 did not exit with 3"
grep -q "nothing-here/model.h5" "$d/log.err" || fail "the message does not name model.h5"
rm -f "$d/log.err"

# --- without gnuplot: exit 69, the direct pictures anyway
MPICNN_GNUPLOT=$d/no/gnuplot "$MPICNN" plot "$run" --misclassified 6 >"$d/log.nognuplot" 2>&1
rc=$?
[ $rc -eq 69 ] || fail "plot without gnuplot exited with $rc, expected 69"
grep -q "gnuplot not found" "$d/log.nognuplot" || fail "no 'gnuplot not found' message"
grep -q "apt-get install gnuplot-nox" "$d/log.nognuplot" || fail "the message does not say what to install"
png "$plots/filters.png" 339 78
png "$plots/misclassified.png" 440 114
[ ! -e "$plots/learning_curves.png" ] && [ ! -e "$plots/confusion.png" ] ||
    fail "gnuplot charts appeared without gnuplot"

# --- activation maps (no gnuplot needed)
"$MPICNN" plot "$run" --activations relu1 --images 3 >"$d/log.act" 2>&1 || fail "--activations relu1 failed"
png "$plots/activations_relu1.png" 393 196
"$MPICNN" plot "$run" --activations fc1 --images 2 >"$d/log.act" 2>&1 || fail "--activations fc1 failed"
png "$plots/activations_fc1.png" 387 138

if ! command -v gnuplot >/dev/null 2>&1; then
    echo "SKIP: gnuplot is not installed (Debian: gnuplot-nox): the learning curves and the"
    echo "      confusion matrix are not tested; everything else passed"
    exit 77
fi

# --- everything, under mpirun -np 2 (rank 0 draws); the confusion matrix
# is computed from the test set
rm -rf "$plots"
$MPIEXEC -np 2 --oversubscribe "$MPICNN" plot "$run" >"$d/log.plot" 2>&1 || fail "plot failed"
png "$plots/learning_curves.png" 960 400
png "$plots/confusion.png" 480 480
png "$plots/filters.png" 339 78
[ -s "$plots/misclassified.png" ] || fail "no misclassified.png"
grep -q "confusion.png (480 x 480) from the test set" "$d/log.plot" ||
    fail "the confusion matrix was not computed from the test set"
[ "$(grep -c '^plot: wrote' "$d/log.plot")" -eq 4 ] || fail "rank 1 drew too, or a picture is missing"
ls -a "$plots" | grep -q gnuplot && fail "gnuplot's work files were left in $plots"

# --- confusion.csv from mpicnn eval is used when present
"$MPICNN" eval "$run/model.h5" --confusion "$run/confusion.csv" >"$d/log.eval" 2>&1 || fail "eval failed"
rm -f "$plots/confusion.png"
"$MPICNN" plot "$run" >"$d/log.plot2" 2>&1 || fail "plot with confusion.csv failed"
grep -q "confusion.png (480 x 480) from $run/confusion.csv" "$d/log.plot2" ||
    fail "confusion.csv was not used"
png "$plots/confusion.png" 480 480

# --- a bad metrics.csv is an input error naming the line
sed -i '2s/^1,/one,/' "$run/metrics.csv"
"$MPICNN" plot "$run" >"$d/log.bad" 2>&1
[ $? -eq 3 ] || fail "a bad metrics.csv did not exit with 3"
grep -q "metrics.csv: line 2: epoch 'one' is not a number" "$d/log.bad" || fail "the message does not name the line"
echo "ok"
exit 0
