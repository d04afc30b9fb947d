#!/bin/sh
# test_predict_f64.sh - `mpicnn predict --dtype f64 --tensor --tensor-labels`
# reproduces, within 1e-12 relative, the scores and the mean loss of a
# small model with float64 weights (tests/make_model64) that numpy computed
# in float64 outside mpicnn (tests/model64_reference.py, its output below);
# the float32 path agrees to float precision, from the float64 and the
# float32 tensor; and bad tensor flags are refused (2 usage, 3 data).
set -u
MPICNN=${MPICNN:-src/mpicnn}
top_builddir=${top_builddir:-.}
d=$(mktemp -d /tmp/mpicnn-predict64-XXXXXX) || exit 99
trap 'rm -rf "$d"' EXIT INT TERM
. "$(dirname "$0")/cli_lib.sh"

# tests/model64_reference.py: the logits of the 3 images, then the loss
cat >"$d/want" <<'END'
-0.34607585720003209 -1.1393002418004117 -0.54780566429088839 0.35505399210298971 0.26385022160733235
-0.44036552820226538 -1.0595484967712328 -0.42113600901074277 0.32673135931403863 0.12568130190256788
-0.35004259933981352 -0.99496393272985406 -0.48523697661716708 0.23612117887347528 0.15299365482713456
loss 1.8911942257103223
END

"$top_builddir/tests/make_model64" "$d/model.h5" "$d/t.h5" >"$d/log.make" 2>&1 ||
    fail "make_model64 failed"

# compare OUT TOL: the logits (columns 6..10 of the CSV rows) and the
# loss line of OUT against want, each within TOL relative
compare() {
    tail -n +2 "$1" | grep -v '^loss,' | cut -d, -f6- | tr , ' ' >"$d/got"
    sed -n 's/^loss,3,//p' "$1" | sed 's/^/loss /' >>"$d/got"
    [ "$(wc -l <"$d/got")" -eq 4 ] || fail "$1: expected 3 rows and a loss line"
    paste -d' ' "$d/got" "$d/want" | awk -v tol="$2" '{
        n = NF / 2
        for (i = 1; i <= n; i++) {
            if ($i == "loss") continue
            g = $i + 0; w = $(i + n) + 0; e = g - w; if (e < 0) e = -e
            a = w < 0 ? -w : w
            if (e > tol * a) { print "line " NR " value " i ": " g " vs " w; exit 1 }
        } }' || fail "$1 differs from the float64 reference by more than $2"
}

"$MPICNN" predict "$d/model.h5" --tensor "$d/t.h5" --tensor-labels "$d/t.h5" --dtype f64 \
    --logits --out "$d/p64.csv" >"$d/p64.loss" 2>"$d/log.p64" || fail "predict --dtype f64 failed"
cat "$d/p64.loss" >>"$d/p64.csv"
compare "$d/p64.csv" 1e-12
grep -q -- '-0.346075857200032' "$d/p64.csv" || fail "f64 logits not written with 17 digits"
echo "ok: f64 scores and loss within 1e-12 of the float64 reference"

# the same with explicit datasets; the float path from float64 and float32 tensors
"$MPICNN" predict "$d/model.h5" --tensor "$d/t.h5:x" --tensor-labels "$d/t.h5:/y" --logits \
    --out "$d/p32.csv" >"$d/p32.loss" 2>"$d/log.p32" || fail "predict (f32) failed"
cat "$d/p32.loss" >>"$d/p32.csv"
compare "$d/p32.csv" 1e-5
"$MPICNN" predict "$d/model.h5" --tensor "$d/t.h5:x32" --tensor-labels "$d/t.h5" --dtype f32 \
    --logits --out "$d/p32b.csv" >"$d/p32b.loss" 2>"$d/log.p32b" || fail "predict x32 failed"
cat "$d/p32b.loss" >>"$d/p32b.csv"
compare "$d/p32b.csv" 1e-5
echo "ok: the float32 path within 1e-5, from float64 and float32 tensors"

# without the CSV file, the loss goes to standard error and the CSV stays clean
"$MPICNN" predict "$d/model.h5" --tensor "$d/t.h5" --tensor-labels "$d/t.h5" --dtype f64 \
    >"$d/p.csv" 2>"$d/p.err" || fail "predict to standard output failed"
grep -q '^loss,3,1.89119422571032' "$d/p.err" || fail "no loss line on standard error"
grep -q '^loss' "$d/p.csv" && fail "the loss line went into the CSV"
# --no-normalize feeds the values as they are: other scores
"$MPICNN" predict "$d/model.h5" --tensor "$d/t.h5" --no-normalize --dtype f64 --logits \
    --out "$d/raw.csv" 2>"$d/log.raw" || fail "predict --no-normalize failed"
cmp -s "$d/raw.csv" "$d/p64.csv" && fail "--no-normalize changed nothing"
echo "ok: the loss line, --no-normalize"

expect 2 "labels without a tensor" "needs --tensor" \
    "$MPICNN" predict "$d/model.h5" "$d/x.png" --tensor-labels "$d/t.h5"
expect 2 "a bad dtype" "--dtype" "$MPICNN" predict "$d/model.h5" --tensor "$d/t.h5" --dtype f16
expect 3 "labels as the tensor" "the model takes" \
    "$MPICNN" predict "$d/model.h5" --tensor "$d/t.h5:y"
expect 3 "a missing dataset" "nope" "$MPICNN" predict "$d/model.h5" --tensor "$d/t.h5:nope"
expect 3 "float labels" "expected int64" \
    "$MPICNN" predict "$d/model.h5" --tensor "$d/t.h5" --tensor-labels "$d/t.h5:x"
exit 0
