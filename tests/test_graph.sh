#!/bin/sh
# test_graph.sh - a net that is a graph, end to end: a residual block
# (conv-bn-relu-conv-bn, add with the block's input, relu), then the
# pooled block concatenated with the pooled net input, on synthetic 8x8
# images:
#   - mpicnn gradcheck checks every layer, each input of add and concat;
#   - mpicnn train, info (each layer's inputs), eval; a resumed run gives
#     the same metrics; 2 ranks train it;
#   - PyTorch rebuilds the net from model.h5 with the loader of
#     docs/model-format.md (the code block after its marker line): on the
#     60 test images its logits equal those of `mpicnn predict --logits`
#     within 1e-4 (1 + the largest |logit|).
# The PyTorch part prints SKIP (exit 77) when python3, h5py, numpy or
# torch is missing.
set -u
MPIEXEC=${MPIEXEC:-mpirun}
MPICNN=${MPICNN:-src/mpicnn}
top_builddir=${top_builddir:-.}
top_srcdir=${top_srcdir:-.}
PYTHON=${PYTHON:-/usr/bin/python3}
T=$top_builddir/tests/test_plot
d=$(mktemp -d /tmp/mpicnn-torch-XXXXXX) || exit 99
trap 'rm -rf "$d"' EXIT INT TERM
fail() {
    echo "FAIL: $*"
    for f in "$d"/log.*; do echo "--- $f"; cat "$f"; done
    exit 1
}
"$T" --synth "$d" >/dev/null || fail "cannot write the data"
cat >"$d/res.ini" <<EOT
[data]
format = idx
dir = $d
train_images = train-images.idx
train_labels = train-labels.idx
test_images = test-images.idx
test_labels = test-labels.idx
validation = 40
[net]
layers = stem, b0, r0, c1, b1, r1, c2, b2, sum, r2, pool, pool_in, cat, fc
[stem]
type = conv
filters = 4
kernel = 3
pad = 1
[b0]
type = batchnorm
[r0]
type = relu
[c1]
type = conv
filters = 4
kernel = 3
pad = 1
[b1]
type = batchnorm
[r1]
type = relu
[c2]
type = conv
filters = 4
kernel = 3
pad = 1
[b2]
type = batchnorm
[sum]
type = add
inputs = b2, r0
[r2]
type = relu
[pool]
type = maxpool
size = 2
[pool_in]
type = avgpool
size = 2
input = input
[cat]
type = concat
inputs = pool, pool_in
[fc]
type = dense
units = 4
[optimizer]
type = adam
lr = 0.01
[train]
epochs = 2
batch_size = 8
seed = 3
log_every = 0
threads = 1
EOT
# batchnorm on 4 channels of 4 tiny images reaches about 2e-3 in a chain
# as well: the tolerance is the kind of check, not its precision
"$MPICNN" gradcheck "$d/res.ini" --tolerance 0.01 >"$d/log.gradcheck" 2>&1 ||
    fail "gradcheck failed"
grep -q "^cat .*concat" "$d/log.gradcheck" || fail "gradcheck did not check cat"
echo "ok: gradcheck of the graph"
"$MPICNN" train "$d/res.ini" --out "$d/run" >"$d/log.train" 2>&1 || fail "train failed"
"$MPICNN" info "$d/run/model.h5" >"$d/log.info" 2>&1 || fail "info failed"
grep -q "^sum .*b2, r0$" "$d/log.info" || fail "info does not show sum's inputs"
"$MPICNN" eval "$d/run/model.h5" --predictions "$d/eval.csv" >"$d/log.eval" 2>&1 ||
    fail "eval failed"
echo "ok: trained; info shows the graph; eval ran"
# a resumed run trains to the same metrics (the graph round trips through
# the checkpoint's config), and 2 ranks train it too
"$MPICNN" train "$d/res.ini" --set train.epochs=1 --out "$d/part" >"$d/log.part" 2>&1 ||
    fail "train of 1 epoch failed"
"$MPICNN" train "$d/res.ini" --out "$d/part" --resume >"$d/log.resume" 2>&1 ||
    fail "resume failed"
cut -d, -f1-6 "$d/run/metrics.csv" >"$d/m1"
cut -d, -f1-6 "$d/part/metrics.csv" >"$d/m2"
cmp -s "$d/m1" "$d/m2" || fail "the resumed run's metrics differ"
"$MPIEXEC" -np 2 "$MPICNN" train "$d/res.ini" --out "$d/np2" >"$d/log.np2" 2>&1 ||
    fail "train on 2 ranks failed"
echo "ok: resumed to the same metrics; trained on 2 ranks"
if ! "$PYTHON" -c 'import h5py, numpy, torch' 2>/dev/null; then
    echo "SKIP: PyTorch comparison: $PYTHON cannot import h5py, numpy and torch"
    exit 77
fi
# the loader: the python block after the marker line of docs/model-format.md
awk '/<!-- mpicnn-torch-loader -->/ { on = 1; next }
     on && /^```python/ { inblk = 1; next }
     inblk && /^```/ { exit }
     inblk { print }' "$top_srcdir/docs/model-format.md" >"$d/loader.py"
[ -s "$d/loader.py" ] || fail "no loader code in docs/model-format.md"
cat >"$d/check.py" <<'EOT'
import sys
import numpy as np
import h5py
import torch
exec(open(sys.argv[1]).read())
model, images, csv = sys.argv[2:5]
torch.set_num_threads(1)
net, classes = load_mpicnn(model)
raw = open(images, "rb").read()
n, h, w = (int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(3))
x = np.frombuffer(raw[16:], dtype=np.uint8).reshape(n, 1, h, w).astype(np.float32) / 255
with h5py.File(model, "r") as f:
    if "normalization" in f:
        mean, std = f["normalization/mean"][()], f["normalization/std"][()]
        x = (x - mean[None, :, None, None]) / std[None, :, None, None]
with torch.no_grad():
    z = net(torch.from_numpy(x.astype(np.float32))).double().numpy()
# predict --logits: input,index,predicted,class,score,logit_0,...
want = np.array([[float(v) for v in line.strip().split(",")[5:]]
                 for line in open(csv).readlines()[1:]])
worst = np.abs(z - want).max()
print(f"{n} images, {want.size} logits, worst difference {worst:.3g}")
if want.shape != z.shape or worst > 1e-4 * (1 + np.abs(want).max()):
    sys.exit(1)
EOT
"$MPICNN" predict "$d/run/model.h5" "$d/test-images.idx" --logits >"$d/logits.csv" \
    2>"$d/log.logits" || fail "predict --logits failed"
"$PYTHON" "$d/check.py" "$d/loader.py" "$d/run/model.h5" "$d/test-images.idx" "$d/logits.csv" \
    >"$d/log.python" 2>&1 || fail "PyTorch's logits disagree with mpicnn's"
echo "ok: PyTorch from model.h5: $(cat "$d/log.python")"
