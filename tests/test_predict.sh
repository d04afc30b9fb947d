#!/bin/sh
# test_predict.sh - `mpicnn predict` end to end: train a small model on
# synthetic 8x8 IDX data (tests/test_plot --synth), then classify
#   - the test IDX file (no labels): one row per image, and the same
#     predictions as `mpicnn eval --predictions`;
#   - single images as gray and as RGB PNGs: the same class and score as
#     their rows of the IDX file; as JPEGs: the same class;
#   - the IDX file under mpirun -np 2: the same output as one process;
#   - with a model trained on a data file packed with --resize (stretch and
#     crop): the original, larger PNG and JPEG files, with the classes and
#     scores eval gives their packed images; `info` shows resize, fit and
#     channels;
# and refuse bad inputs with their exit codes (2 usage, 3 data, 5 an
# output file that cannot be written), naming
# the file, with no output file left behind.
set -u
MPIEXEC=${MPIEXEC:-mpirun}
MPICNN=${MPICNN:-src/mpicnn}
top_builddir=${top_builddir:-.}
T=$top_builddir/tests/test_plot
d=$(mktemp -d /tmp/mpicnn-predict-XXXXXX) || exit 99
trap 'rm -rf "$d"' EXIT INT TERM
. "$(dirname "$0")/cli_lib.sh"

"$T" --synth "$d" >/dev/null || fail "cannot write the data"
"$MPICNN" train "$d/plot.ini" --out "$d/run" >"$d/log.train" 2>&1 || fail "train failed"
model=$d/run/model.h5

# --- the IDX test images, without their labels
"$MPICNN" predict "$model" "$d/test-images.idx" >"$d/pred.csv" 2>"$d/log.predict" ||
    fail "predict on the IDX file failed"
[ "$(head -n 1 "$d/pred.csv")" = "input,index,predicted,class,score" ] || fail "wrong CSV header"
[ "$(($(wc -l <"$d/pred.csv") - 1))" -eq 60 ] || fail "expected 60 rows"
"$MPICNN" eval "$model" --predictions "$d/eval.csv" >"$d/log.eval" 2>&1 || fail "eval failed"
cut -d, -f3 "$d/pred.csv" | tail -n +2 >"$d/p1"
cut -d, -f3 "$d/eval.csv" | tail -n +2 >"$d/p2"
cmp -s "$d/p1" "$d/p2" || fail "predict and eval --predictions disagree"
# the score is the softmax probability of the predicted class: in (0, 1]
awk -F, 'NR > 1 && !($5 > 0 && $5 <= 1) { exit 1 }' "$d/pred.csv" || fail "a score outside (0, 1]"
# and it is eval's probability of that class (column 4 + predicted)
paste -d, "$d/pred.csv" "$d/eval.csv" | awk -F, 'NR > 1 {
    p = $3; want = $(9 + p)
    if ((want - $5) > 1e-5 || ($5 - want) > 1e-5) { print "row " NR ": " $5 " vs " want; exit 1 } }' ||
    fail "predict's score is not eval's probability of the predicted class"
echo "ok: 60 IDX images, the same classes and probabilities as eval"

# --- --logits: every output, 9 significant digits; the softmax of them is
# the score and their argmax the predicted class
"$MPICNN" predict "$model" "$d/test-images.idx" --logits >"$d/logits.csv" 2>"$d/log.logits" ||
    fail "predict --logits failed"
K=$(head -n 1 "$d/logits.csv" | tr ',' '\n' | grep -c '^logit_')
[ "$K" -ge 2 ] && head -n 1 "$d/logits.csv" | grep -q ",score,logit_0,.*,logit_$((K - 1))\$" ||
    fail "wrong --logits header: $(head -n 1 "$d/logits.csv")"
cut -d, -f1-5 "$d/logits.csv" | cmp -s - "$d/pred.csv" || fail "--logits changes the other columns"
awk -F, -v K="$K" 'NR > 1 {
    if (NF != 5 + K) { print "row " NR ": " NF " fields"; exit 1 }
    b = 0; for (k = 1; k < K; k++) if ($(6 + k) > $(6 + b)) b = k
    if (b != $3) { print "row " NR ": argmax " b " but predicted " $3; exit 1 }
    z = 0; for (k = 0; k < K; k++) z += exp($(6 + k) - $(6 + b))
    if ((1 / z - $5) > 1e-5 || ($5 - 1 / z) > 1e-5) { print "row " NR ": softmax " 1 / z " vs " $5; exit 1 }
    for (k = 0; k < K; k++) if ($(6 + k) ~ /^-?[0-9]\.[0-9]{0,3}(e|$)/ && $(6 + k) != 0) short++
  } END { if (short > NR / 2) { print short " short logits"; exit 1 } }' "$d/logits.csv" ||
    fail "--logits columns are not the net's outputs"
echo "ok: --logits gives every output; their argmax and softmax are the prediction and score"

# --- single PNG images, gray and RGB
for i in 0 7 31; do
    "$T" --idx-png "$d/test-images.idx" "$d/test-labels.idx" $i 1 "$d/g$i.png" >/dev/null ||
        fail "cannot write a PNG"
    "$T" --idx-png-rgb "$d/test-images.idx" "$d/test-labels.idx" $i 1 "$d/c$i.png" >/dev/null ||
        fail "cannot write an RGB PNG"
done
"$MPICNN" predict "$model" "$d/g0.png" "$d/c0.png" "$d/g7.png" "$d/c7.png" "$d/g31.png" \
    "$d/c31.png" --out "$d/png.csv" >"$d/log.png" 2>&1 || fail "predict on PNGs failed"
for i in 0 7 31; do
    want=$(awk -F, -v r=$((i + 2)) 'NR == r { print $3 "," $4 "," $5 }' "$d/pred.csv")
    for k in g c; do
        got=$(awk -F, -v f="$d/$k$i.png" '$1 == f { print $3 "," $4 "," $5 }' "$d/png.csv")
        [ "$got" = "$want" ] || fail "$k$i.png: '$got', its IDX row says '$want'"
    done
done
echo "ok: gray and RGB PNGs: the classes and scores of their IDX rows"

# --- the same images as JPEG (quality 100): read, and classified as the PNGs
MK=$top_builddir/tests/make_images
for i in 0 7 31; do
    "$MK" jpeg "$d/g$i.png" "$d/g$i.jpg" && "$MK" jpeg "$d/c$i.png" "$d/c$i.jpg" ||
        fail "cannot write a JPEG"
done
"$MPICNN" predict "$model" "$d/g0.jpg" "$d/c0.jpg" "$d/g7.jpg" "$d/c7.jpg" "$d/g31.jpg" \
    "$d/c31.jpg" --out "$d/jpg.csv" >"$d/log.jpg" 2>&1 || fail "predict on JPEGs failed"
for i in 0 7 31; do
    for k in g c; do
        want=$(awk -F, -v f="$d/$k$i.png" '$1 == f { print $3 }' "$d/png.csv")
        got=$(awk -F, -v f="$d/$k$i.jpg" '$1 == f { print $3 }' "$d/jpg.csv")
        [ "$got" = "$want" ] || fail "$k$i.jpg: class '$got', the PNG's is '$want'"
    done
done
echo "ok: gray and RGB JPEGs: the classes of the PNGs"

# --- a model that records a resize (as one trained on a packed, resized data
# file does) resizes its inputs: image 0 drawn at twice the size, area-averaged
# back to 8x8, is image 0 again
"$T" --idx-png "$d/test-images.idx" "$d/test-labels.idx" 0 2 "$d/big.png" >/dev/null
cp "$model" "$d/resized.h5"
"$MK" attr "$d/resized.h5" resize 8x8 && "$MK" attr "$d/resized.h5" fit stretch ||
    fail "cannot record the resize"
"$MPICNN" predict "$d/resized.h5" "$d/big.png" >"$d/big.csv" 2>"$d/log.big" ||
    fail "predict with a recorded resize failed"
[ "$(tail -n 1 "$d/big.csv" | cut -d, -f3-)" = "$(awk -F, -v f="$d/g0.png" '$1 == f { print $3 "," $4 "," $5 }' "$d/png.csv")" ] ||
    fail "the resized image is not classified as the 8x8 one"
echo "ok: a model's recorded resize applies to predict's images"

# --- a model trained on a data file packed with --resize records how the
# images were made (resize, fit, channels), and predict prepares the original,
# larger PNG and JPEG files the same way: the same pixels as in the data file,
# so the same classes and scores as eval on the packed images
"$MK" good "$d/photos" || fail "cannot write the image folder"
# the data file's rows, in order (classes and files sorted)
photos="cat/a01.png cat/a02.png cat/a03.jpg cat/a04.PNG dog/b01.jpeg dog/b02.png dog/b03.png
dog/b04.jpg emu/c01.png emu/c02.jpg emu/c03.png"
for fit in stretch crop; do
    "$MPICNN" pack "$d/photos" --resize 8x8 --fit $fit --channels 3 --out "$d/photos-$fit.h5" \
        >"$d/log.pack-$fit" 2>&1 || fail "pack --fit $fit failed"
    cat >"$d/photos-$fit.ini" <<EOF
[data]
format = hdf5
dir = $d
train_file = photos-$fit.h5
test_file = photos-$fit.h5

[net]
layers = conv1, relu1, fc1

[conv1]
type = conv
filters = 4
kernel = 3

[relu1]
type = relu

[fc1]
type = dense
units = 3

[optimizer]
lr = 0.05

[train]
epochs = 3
batch_size = 4
seed = 3
log_every = 0
threads = 1
EOF
    pm=$d/photos-$fit/model.h5
    "$MPICNN" train "$d/photos-$fit.ini" --out "$d/photos-$fit" --progress none \
        >"$d/log.train-$fit" 2>&1 || fail "training on the $fit data file failed"
    "$MPICNN" info "$pm" >"$d/log.info-$fit" 2>&1 || fail "info on the $fit model failed"
    for want in "resize: 8x8" "fit: $fit" "channels: 3"; do
        grep -qx "$want" "$d/log.info-$fit" || fail "info on the $fit model does not say '$want'"
    done
    "$MPICNN" eval "$pm" --predictions "$d/photos-$fit-eval.csv" >"$d/log.peval-$fit" 2>&1 ||
        fail "eval of the $fit model failed"
    set --
    for f in $photos; do set -- "$@" "$d/photos/$f"; done
    "$MPICNN" predict "$pm" "$@" --out "$d/photos-$fit-pred.csv" >"$d/log.ppred-$fit" 2>&1 ||
        fail "predict on the original images failed ($fit)"
    [ "$(($(wc -l <"$d/photos-$fit-pred.csv") - 1))" -eq 11 ] || fail "$fit: expected 11 rows"
    # the predicted class and its score: eval's row, column 4 + class
    paste -d, "$d/photos-$fit-pred.csv" "$d/photos-$fit-eval.csv" | awk -F, 'NR > 1 {
        p = $3; want = $(9 + p)
        if (p != $8) { print "row " NR ": class " p " vs " $8; exit 1 }
        if ((want - $5) > 1e-5 || ($5 - want) > 1e-5) { print "row " NR ": " $5 " vs " want; exit 1 } }' \
        >"$d/log.cmp-$fit" ||
        fail "$fit: predict on the files disagrees with eval on the packed images: $(cat "$d/log.cmp-$fit")"
    echo "ok: --fit $fit: the model records resize, fit and channels; predict on the original images = eval on the packed ones"
done
! "$MPICNN" info "$model" 2>&1 | grep -q '^resize:' || fail "a model trained on IDX files shows a resize"

# --- two ranks: the same output
"$MPIEXEC" -np 2 --oversubscribe "$MPICNN" predict "$model" "$d/test-images.idx" \
    >"$d/pred2.csv" 2>"$d/log.np2" || fail "predict under mpirun -np 2 failed"
cmp -s "$d/pred.csv" "$d/pred2.csv" || fail "-np 2 printed something else than one process"
echo "ok: mpirun -np 2: the same output"

# --- bad inputs
expect 2 "no INPUT" "at least one INPUT" "$MPICNN" predict "$model"
expect 2 "an unknown flag" "--top" "$MPICNN" predict "$model" "$d/g0.png" --top 3
expect 3 "a missing input" "$d/none.png" "$MPICNN" predict "$model" "$d/none.png"
"$T" --idx-png "$d/test-images.idx" "$d/test-labels.idx" 0 2 "$d/big.png" >/dev/null
expect 3 "a PNG of the wrong size" "16x16 image, but the model takes 8x8" \
    "$MPICNN" predict "$model" "$d/big.png"
printf 'not an image at all\n' >"$d/junk.bin"
expect 3 "neither PNG nor IDX" "$d/junk.bin" "$MPICNN" predict "$model" "$d/junk.bin"
expect 3 "a labels file" "$d/test-labels.idx" "$MPICNN" predict "$model" "$d/test-labels.idx"
head -c 100 "$d/test-images.idx" >"$d/cut.idx"
expect 3 "a truncated IDX file" "truncated" "$MPICNN" predict "$model" "$d/cut.idx"
expect 3 "a model that is not one" "$d/junk.bin" "$MPICNN" predict "$d/junk.bin" "$d/g0.png"
expect 3 "one bad input among good ones, --out" "$d/big.png" \
    "$MPICNN" predict "$model" "$d/g0.png" "$d/big.png" --out "$d/bad.csv"
[ ! -e "$d/bad.csv" ] && ! ls -A "$d" | grep -q '^\.bad\.csv\.tmp\.' ||
    fail "a failed predict left a file behind"
expect 5 "--out in a missing directory" "$d/no/such/dir/p.csv" \
    "$MPICNN" predict "$model" "$d/g0.png" --out "$d/no/such/dir/p.csv"
echo "ok: every bad input refused"
