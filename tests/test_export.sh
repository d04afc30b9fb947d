#!/bin/bash
# test_export.sh - `mpicnn export` end to end:
#   - usage errors (exit 2): no --out, an unknown --format, an extension
#     that names no format; an output directory that does not exist
#     (exit 5, nothing left behind);
#   - hostile model files (tests/make_badfiles): export ends with the exit
#     code and the error line `eval` gives for the same file;
#   - ONNX Runtime (npm's onnxruntime-node, run by tests/ort_run.js with
#     the machine's node) runs the exported models on 300 images, and
#     every logit matches `mpicnn predict --logits` within
#     1e-4 * (1 + |logit|): fmnist-ref (normalised input) trained briefly
#     on synthetic 28x28 data, and one net per layer type (the type alone
#     before flatten + dense), the largest difference printed per net.
# Without node or the package (jobs/quickstart.sh check installs it into
# ${MPICNN_ORT_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mpicnn/onnxruntime})
# the ONNX Runtime part is skipped (exit 77) after the other checks.
set -u
MPICNN=${MPICNN:-src/mpicnn}
top_srcdir=${top_srcdir:-.}
builddir=${top_builddir:-.}
ORT_DIR=${MPICNN_ORT_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mpicnn/onnxruntime}
NODE=${NODE:-/usr/bin/node}
d=$(mktemp -d "${TMPDIR:-/tmp}/mpicnn-export-XXXXXX") || exit 99
trap 'rm -rf "$d"' EXIT
trap 'exit 1' INT TERM

. "$(dirname "$0")/cli_lib.sh"

# --- a small model and the bad model files (as tests/test_badinput.sh)
. "$top_srcdir/tests/small_run.sh"
mkdir -p "$d/bad" "$d/small"
small_run "$d/small" || fail "cannot write the data set"
"$MPICNN" train "$d/small/run.ini" --out "$d/small/run" --progress none >"$d/log.small" 2>&1 ||
    fail "training the small model failed"
small=$d/small/run/model.h5
"$builddir/tests/make_badfiles" "$d/bad" "$d/small" "$small" "$d/small/run/checkpoint.h5" \
    >"$d/log.badfiles" 2>&1 || fail "make_badfiles failed"
rm -f "$d/log.small" "$d/log.badfiles"

# --- usage
expect 2 "no --out" "--out" "$MPICNN" export "$small"
expect 2 "an unknown --format" "--format tflite: expected onnx" \
    "$MPICNN" export "$small" --out "$d/m.tflite" --format tflite
expect 2 "an extension that names no format" "cannot tell the format" \
    "$MPICNN" export "$small" --out "$d/m.bin"
expect 2 "two models" "expected one MODEL.h5" "$MPICNN" export "$small" "$small" --out "$d/m.onnx"
expect 5 "a missing output directory" "$d/no/such/m.onnx" \
    "$MPICNN" export "$small" --out "$d/no/such/m.onnx"
expect 0 "--format onnx and any extension" "wrote" \
    "$MPICNN" export "$small" --out "$d/small.bin" --format onnx
ls -a "$d" | grep -q '\.tmp\.' && fail "a temp file was left behind"
rm -f "$d/small.bin"

# --- hostile model files: the exit code and error line of eval
for f in model-missing-dataset model-wrong-shape model-wrong-dtype model-absurd-dims \
    model-nan-weight model-inf-bias model-no-config model-bad-config model-wrong-format \
    model-input-shape model-truncated model-garbage model-empty model-bit-flip; do
    m=$d/bad/$f.h5
    "$MPICNN" eval "$m" >"$d/eval.out" 2>&1
    want=$?
    "$MPICNN" export "$m" --out "$d/bad.onnx" >"$d/export.out" 2>&1
    got=$?
    [ "$want" -ne 0 ] || fail "$f: eval accepts it"
    [ "$got" -eq "$want" ] || fail "$f: export exits $got, eval $want"
    e1=$(grep '^mpicnn: rank' "$d/eval.out" | grep -v ': warning: ' | head -n 1)
    e2=$(grep '^mpicnn: rank' "$d/export.out" | grep -v ': warning: ' | head -n 1)
    [ -n "$e2" ] && [ "$e1" = "$e2" ] || fail "$f: export says '$e2', eval '$e1'"
    [ -e "$d/bad.onnx" ] && fail "$f: an output file was written"
    echo "ok: $f: exit $got as eval: $e2"
done

# --- ONNX Runtime
if [ ! -x "$NODE" ]; then
    echo "SKIP: no node at $NODE (Debian package nodejs) to run ONNX Runtime"
    exit 77
fi
if [ ! -d "$ORT_DIR/node_modules/onnxruntime-node" ]; then
    echo "SKIP: onnxruntime-node is not installed in $ORT_DIR" \
        "(npm install --ignore-scripts onnxruntime-node@1.30.0 there, or jobs/quickstart.sh check)"
    exit 77
fi

"$builddir/tests/test_resume_synth" "$d" 600 300 28 || fail "cannot write the 28x28 data"
# net NAME NORMALIZE LAYERS SECTIONS: a training config on the 28x28 data
net() {
    cat >"$d/$1.ini" <<EOF
[data]
format = idx
dir = $d
train_images = train-images.idx
train_labels = train-labels.idx
test_images = test-images.idx
test_labels = test-labels.idx
validation = 100
normalize = $2

[net]
layers = $3

$4

[optimizer]
type = momentum
lr = 0.01
momentum = 0.9

[train]
epochs = 1
batch_size = 32
seed = 5
log_every = 0
threads = 1
EOF
}
# one type before flatten + dense: net NAME NORMALIZE "[t] type = ..."
one() {
    net "$1" "$2" "t, flat, fc" "[t]
$3

[flat]
type = flatten

[fc]
type = dense
units = 4"
}
net fmnist-ref true "conv1, relu1, pool1, conv2, relu2, pool2, flatten, fc1, relu3, fc2" "
[conv1]
type = conv
filters = 32
kernel = 3
pad = 1
[relu1]
type = relu
[pool1]
type = maxpool
size = 2
[conv2]
type = conv
filters = 64
kernel = 3
pad = 1
[relu2]
type = relu
[pool2]
type = maxpool
size = 2
[flatten]
type = flatten
[fc1]
type = dense
units = 128
[relu3]
type = relu
[fc2]
type = dense
units = 4"
one conv true "type = conv
filters = 6
kernel = 5x3
stride = 2
pad = 2"
one relu true "type = relu"
one maxpool true "type = maxpool
size = 3
stride = 2"
one avgpool true "type = avgpool
size = 2x4"
one gap true "type = gap"
one batchnorm true "type = batchnorm"
one dropout false "type = dropout
p = 0.3"
net dense false "fc" "[fc]
type = dense
units = 4"
# a batchnorm on the flat output of a dense layer, a conv on a flat input
net flat-bn true "fc1, bn, t, flat, fc" "[fc1]
type = dense
units = 12
[bn]
type = batchnorm
[t]
type = conv
filters = 3
kernel = 1
[flat]
type = flatten
[fc]
type = dense
units = 4"
# the activations, the pooling options and a residual + concat graph
one sigmoid true "type = sigmoid"
one tanh true "type = tanh"
one leaky_relu true "type = leaky_relu
slope = 0.2"
one elu true "type = elu
alpha = 0.5"
one gelu true "type = gelu"
one gelu-tanh true "type = gelu
approximate = tanh"
one maxpool-ceil true "type = maxpool
size = 3
stride = 2
pad = 1
ceil_mode = true"
one avgpool-ceil true "type = avgpool
size = 3
stride = 2
ceil_mode = true"
one avgpool-pad true "type = avgpool
size = 3
stride = 2
pad = 1
ceil_mode = true
count_pad = true"
one gap-sum true "type = gap
mode = sum"
net residual true "stem, relu0, c1, bn1, r1, c2, bn2, sum, r2, cat, gap, fc" "[stem]
type = conv
filters = 4
kernel = 3
pad = 1
[relu0]
type = relu
[c1]
type = conv
filters = 4
kernel = 3
pad = 1
[bn1]
type = batchnorm
[r1]
type = relu
[c2]
type = conv
filters = 4
kernel = 3
pad = 1
[bn2]
type = batchnorm
[sum]
type = add
inputs = bn2, relu0
[r2]
type = relu
[cat]
type = concat
inputs = r2, stem
[gap]
type = gap
[fc]
type = dense
units = 4"
# merges of a flat (N, D) dense output with a (N, C, 1, 1) gap output
net mix-add true "c, g, fl, fc0, s" "[c]
type = conv
filters = 4
kernel = 3
[g]
type = gap
[fl]
type = flatten
input = c
[fc0]
type = dense
units = 4
[s]
type = add
inputs = g, fc0"
net mix-concat true "c, g, fl, fc0, cat, fc" "[c]
type = conv
filters = 4
kernel = 3
[g]
type = gap
[fl]
type = flatten
input = c
[fc0]
type = dense
units = 3
[cat]
type = concat
inputs = fc0, g
[fc]
type = dense
units = 4"

for n in fmnist-ref conv relu maxpool avgpool gap batchnorm dropout dense flat-bn \
    sigmoid tanh leaky_relu elu gelu gelu-tanh maxpool-ceil avgpool-ceil avgpool-pad gap-sum \
    residual mix-add mix-concat; do
    "$MPICNN" train "$d/$n.ini" --out "$d/$n" --progress none >"$d/log.train" 2>&1 ||
        fail "$n: training failed"
    "$MPICNN" export "$d/$n/model.h5" --out "$d/$n.onnx" >"$d/log.export" 2>&1 ||
        fail "$n: export failed"
    "$MPICNN" predict "$d/$n/model.h5" "$d/test-images.idx" --logits >"$d/$n.csv" \
        2>"$d/log.predict" || fail "$n: predict failed"
    "$NODE" "$top_srcdir/tests/ort_run.js" "$d/$n.onnx" "$d/test-images.idx" >"$d/$n.ort" \
        2>"$d/log.ort" || fail "$n: ONNX Runtime failed"
    # every logit: |ort - mpicnn| <= 1e-4 (1 + |mpicnn|); the largest difference
    tail -n +2 "$d/$n.csv" | cut -d, -f6- | paste -d';' - "$d/$n.ort" | awk -F';' -v net="$n" '
        function abs(v) { return v < 0 ? -v : v }
        { k = split($1, a, ","); if (split($2, b, ",") != k) { bad = "row " NR ": widths differ"; exit }
          for (j = 1; j <= k; j++) {
              diff = abs(b[j] - a[j]); rel = diff / (1 + abs(a[j])); count++
              if (diff > maxd) maxd = diff
              if (rel > maxr) maxr = rel
              if (rel > 1e-4 && bad == "") bad = "row " NR " logit " j - 1 ": " b[j] " vs " a[j] } }
        END { if (bad != "") { print "FAIL: " net ": " bad; exit 1 }
              if (NR != 300) { print "FAIL: " net ": " NR " rows"; exit 1 }
              printf "ok: %s: %d logits, largest |ort - mpicnn| %.3g (relative %.3g)\n", net, count, maxd, maxr }' ||
        fail "$n: ONNX Runtime's logits differ from predict's"
done

# the metadata: producer and class names (a JSON array)
grep -aq 'mpicnn' "$d/fmnist-ref.onnx" || fail "no producer name"
grep -aqF 'class_names' "$d/fmnist-ref.onnx" && grep -aqF '["0","1","2","3"]' "$d/fmnist-ref.onnx" ||
    fail "no class_names metadata"
echo "ok: producer and class_names metadata"
