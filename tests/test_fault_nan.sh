#!/bin/bash
# test_fault_nan.sh - NaN on one rank: every rank takes the same branch,
# and non-finite weights are never written (mpirun -np 2, MPICNN_FAULT):
#   1. nan@8,1 with train.nan_policy = skip: both ranks report the skipped
#      step 8, the run completes, the checkpoint counts one skipped step
#   2. nan@8,1 with stop: both ranks exit 6 naming step 8; the checkpoint
#      of step 5 stays
#   3. nan_weights@10: the weights of step 10 are NaN when its checkpoint
#      is due: not written, exit 6 naming the file; the checkpoint of step
#      5 stays, equal to the one of run 2
# shellcheck source=tests/fault_lib.sh
. "${top_srcdir:-.}/tests/fault_lib.sh"

# --- 1. skip
run skip nan@8,1 --set train.nan_policy=skip
[ "$rc" -eq 0 ] || fail "skip: exit code $rc, expected 0"
has skip "MPICNN_FAULT=nan@8,1: NaN in this rank's gradient of global step 8"
for r in 0 1; do
    has skip "mpicnn: rank $r: warning: non-finite gradient at epoch 1 step 8 (global step 8): step skipped on every rank"
done
[ "$(grep -c "step skipped" "$d/skip.log")" -eq 2 ] || fail "skip: more than one step skipped"
c=$(counters "$d/skip/checkpoint.h5")
[ "$(echo "$c" | cut -d, -f3,4)" = "32,1" ] ||
    fail "skip: the final checkpoint should count 32 steps, 1 skipped: $c"
"$MPICNN" info "$d/skip/model.h5" >"$d/skip-info.log" 2>&1 || fail "skip: model.h5 does not load"
echo "ok: NaN in rank 1's gradient, policy skip: both ranks skipped step 8, the run completed"

# --- 2. stop
run stop nan@8,1
[ "$rc" -eq 6 ] || fail "stop: exit code $rc, expected 6"
for r in 0 1; do
    has stop "mpicnn: rank $r: numerical failure: non-finite gradient (summed over all ranks) at epoch 1 step 8 (global step 8); train.nan_policy = stop"
done
[ "$(counters "$d/stop/checkpoint.h5" | cut -d, -f3)" = 5 ] ||
    fail "stop: the checkpoint of step 5 should remain"
echo "ok: NaN in rank 1's gradient, policy stop: both ranks exit 6 naming step 8"

# --- 3. non-finite weights are not written
run weights nan_weights@10
[ "$rc" -eq 6 ] || fail "weights: exit code $rc, expected 6"
has weights "mpicnn: rank 0: numerical failure: $d/weights/checkpoint.h5: not written: the weights contain NaN or Inf"
has weights "mpicnn: rank 1: numerical failure: another rank failed (numerical failure): rank 0: $d/weights/checkpoint.h5: not written"
same_ckpt "$d/stop/checkpoint.h5" "$d/weights/checkpoint.h5"
no_temp "$d/weights"
echo "ok: NaN weights at the checkpoint of step 10: not written, exit 6, the step-5 checkpoint intact"
exit 0
