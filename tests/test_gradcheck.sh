#!/bin/sh
# test_gradcheck.sh - `mpicnn gradcheck` on the synthetic set's net
# (tests/test_plot --synth): in float32 it passes its default tolerance;
# with --dtype f64 every checked layer (conv, batchnorm, dropout, dense,
# and the smooth activations in the ReLU's place, avgpool in the max
# pool's) agrees with finite differences of its double reference to
# 1e-8; and an impossible tolerance fails with exit 6.
set -u
MPICNN=${MPICNN:-src/mpicnn}
top_builddir=${top_builddir:-.}
d=$(mktemp -d /tmp/mpicnn-gradcheck-XXXXXX) || exit 99
trap 'rm -rf "$d"' EXIT INT TERM
fail() {
    echo "FAIL: $*"
    cat "$d/log" 2>/dev/null
    exit 1
}
"$top_builddir/tests/test_plot" --synth "$d" >/dev/null || fail "cannot write the data"
"$MPICNN" gradcheck "$d/plot.ini" >"$d/log" 2>&1 || fail "gradcheck (f32) failed"
echo "ok: f32: $(tail -n 1 "$d/log")"
for act in relu tanh sigmoid gelu elu; do
    "$MPICNN" gradcheck "$d/plot.ini" --dtype f64 --tolerance 1e-8 --directions 6 \
        --set relu1.type=$act --set pool1.type=avgpool >"$d/log" 2>&1 ||
        fail "gradcheck --dtype f64 with $act failed"
    grep -q "in double precision" "$d/log" || fail "no double precision header"
    echo "ok: f64 with $act: $(tail -n 1 "$d/log")"
done
"$MPICNN" gradcheck "$d/plot.ini" --dtype f64 --tolerance 1e-30 >"$d/log" 2>&1
rc=$?
[ $rc -eq 6 ] || fail "an impossible tolerance: exit $rc, expected 6"
echo "ok: an impossible tolerance fails (exit 6)"
exit 0
