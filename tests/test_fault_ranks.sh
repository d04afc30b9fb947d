#!/bin/bash
# test_fault_ranks.sh - a rank that dies, stops or hangs ends the job
# promptly, with a report naming it (mpirun -np 2, MPICNN_FAULT):
#   1. kill@8,1: rank 1 is SIGKILLed; mpirun ends the job within seconds
#      with a non-zero code (no watchdog needed)
#   2. stop@8,1 + watchdog 2 s: rank 1 freezes (its watchdog too); rank 0
#      names it and the step, exit 7
#   3. hang@8,1 + watchdog 2 s: rank 1 is alive but stuck; its own
#      watchdog names itself and its phase, exit 7
#   4. slow:50,1 + watchdog 1 s: a slow rank within the deadline is no
#      stall: the run completes with the weights of a run without watchdog
# Every rank process must be gone when the launcher returns.
# shellcheck source=tests/fault_lib.sh
. "${top_srcdir:-.}/tests/fault_lib.sh"

# --- 1. SIGKILL of one rank
run kill kill@8,1
has kill "MPICNN_FAULT=kill@8,1: SIGKILL at global step 8"
[ "$rc" -ne 0 ] || fail "kill: the job exited 0"
less "$secs" 10 || fail "kill: the job took ${secs}s to end after the SIGKILL"
no_leftovers kill
echo "ok: rank 1 SIGKILLed at step 8: the job ended ${secs}s later, launcher exit $rc"

# --- 2. SIGSTOP of one rank: the other rank's watchdog names it
run stop stop@8,1 --set train.watchdog_seconds=2
[ "$rc" -eq 7 ] || fail "stop: exit code $rc, expected 7"
has stop "mpicnn: rank 0: communication failure: watchdog: rank 1 did not reach the gradient all-reduce of epoch 1 step 8 (global step 8)"
less "$secs" 10 || fail "stop: the job took ${secs}s to end after the SIGSTOP"
no_leftovers stop
echo "ok: rank 1 SIGSTOPped at step 8: rank 0's watchdog named it, exit 7, ${secs}s after the stop"

# --- 3. a rank stuck in its own computation names itself
run hang hang@8,1 --set train.watchdog_seconds=2
[ "$rc" -eq 7 ] || fail "hang: exit code $rc, expected 7"
has hang "mpicnn: rank 1: communication failure: watchdog: no progress for"
has hang "at epoch 1 step 8 (global step 8): this rank is stuck computing the step"
less "$secs" 10 || fail "hang: the job took ${secs}s to end after the hang"
no_leftovers hang
echo "ok: rank 1 hung at step 8: its own watchdog named it, exit 7, ${secs}s after the hang"

# --- 4. slow but alive: no false alarm, and the watchdog changes no number
run plain ""
[ "$rc" -eq 0 ] || fail "plain: a run without faults failed (exit $rc)"
run slow slow:50,1 --set train.watchdog_seconds=1
[ "$rc" -eq 0 ] || fail "slow: a slow rank within the deadline ended the run (exit $rc)"
grep -q watchdog "$d/slow.log" && fail "slow: the watchdog spoke up"
h5diff -q "$d/plain/model.h5" "$d/slow/model.h5" /layers /layers ||
    fail "slow: the weights differ from those of the run without watchdog"
no_leftovers slow
echo "ok: rank 1 50 ms slower per step, watchdog 1 s: no alarm, the same weights as without watchdog"
exit 0
