#!/bin/bash
# test_fault_inputs.sh - inputs that could block, and the default watchdog:
#   1. a FIFO as data.train_images, with SIGTERM sent while the run would
#      be blocked in open(): refused at once with exit 3, naming the FIFO
#   2. a FIFO as checkpoint.h5 for --resume, with SIGTERM sent: exit 3
#   3. the default train.watchdog_seconds (auto), a rank SIGSTOPped after
#      the first 10 steps (stop@12,1), auto's floor shortened to 2 s with
#      MPICNN_WATCHDOG_FLOOR: rank 0 names rank 1, exit 7
# Every run is bounded in time: a run that blocks fails the test.
# shellcheck source=tests/fault_lib.sh
. "${top_srcdir:-.}/tests/fault_lib.sh"

# catches PID SIG: 0 if process PID runs mpicnn (not the shell forked to
# start it, which has this script's traps) and has a handler for signal
# number SIG
catches() {
    local mask
    [ "$(cat "/proc/$1/comm" 2>/dev/null)" = mpicnn ] || return 1
    mask=$(awk '/^SigCgt:/ { print $2 }' "/proc/$1/status" 2>/dev/null) || return 1
    [ -n "$mask" ] && (((0x$mask >> ($2 - 1)) & 1))
}

# single NAME TEXT CODE ARGS...: `mpicnn train` as one process into
# $d/NAME, sent SIGTERM as soon as it handles it (unless it ended before);
# it must end within 20 s with exit CODE and TEXT in its output.
single() {
    local name=$1 text=$2 code=$3 i=0
    shift 3
    "$MPICNN" train "$d/run.ini" --out "$d/$name" --progress none "$@" >"$d/$name.log" 2>&1 &
    bg=$!
    while kill -0 "$bg" 2>/dev/null && ! catches "$bg" 15; do
        i=$((i + 1))
        [ $i -le 1000 ] || fail "$name: no SIGTERM handler after 20 s"
        sleep 0.02
    done
    sleep 0.2
    kill -TERM "$bg" 2>/dev/null
    i=0
    while kill -0 "$bg" 2>/dev/null; do
        i=$((i + 1))
        [ $i -le 1000 ] || fail "$name: still running 20 s after SIGTERM (blocked)"
        sleep 0.02
    done
    wait "$bg"
    rc=$?
    bg=""
    [ "$rc" -eq "$code" ] || fail "$name: exit code $rc, expected $code"
    has "$name" "$text"
}

# --- 1. a FIFO as the training images
mkfifo "$d/fifo.idx" || fail "mkfifo"
single fifo "$d/fifo.idx: is a FIFO, not an IDX file" 3 --set data.train_images="$d/fifo.idx"
echo "ok: a FIFO as data.train_images: refused, exit 3, not blocked"

# --- 2. a FIFO as the checkpoint of --resume
mkdir -p "$d/fifock" || fail "mkdir"
mkfifo "$d/fifock/checkpoint.h5" || fail "mkfifo"
single fifock "$d/fifock/checkpoint.h5: is a FIFO, not an HDF5 file" 3 --resume
echo "ok: a FIFO as checkpoint.h5 for --resume: refused, exit 3, not blocked"

# --- 3. the default watchdog names a stopped rank
export MPICNN_WATCHDOG_FLOOR=2
run auto stop@12,1
unset MPICNN_WATCHDOG_FLOOR
[ "$rc" -eq 7 ] || fail "auto: exit code $rc, expected 7"
has auto "mpicnn: rank 0: communication failure: watchdog: rank 1 did not reach the gradient all-reduce of epoch 1 step 12 (global step 12)"
has auto "train.watchdog_seconds = auto"
less "$secs" 15 || fail "auto: the job took ${secs}s to end after the SIGSTOP"
no_leftovers auto
echo "ok: default watchdog (auto, floor 2 s): rank 1 SIGSTOPped at step 12 named by rank 0, exit 7, ${secs}s after the stop"
exit 0
