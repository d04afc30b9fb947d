#!/bin/bash
# test_resume.sh - an interrupted run continues bit for bit (mpirun -np 2):
#   1. SIGKILL of both ranks mid-run, then --resume
#   2. SIGUSR1 mid-epoch: exit 75 and a valid checkpoint, then --resume
#   3. SIGKILL inside a checkpoint write (MPICNN_FAULT=ckpt_kill): the
#      previous checkpoint still loads, the stale temp file is cleaned on
#      --resume, and the run continues from the previous checkpoint
#   4. a --resume with another config or world size is refused with a
#      message naming the difference, and a missing checkpoint is an error
#   5. SIGINT and SIGTERM to a run without a launcher: exit 75, checkpoint
#   6. with 3 ranks, a resume whose gradient sum adds in another order
#      (MPI_Allreduce, then shared memory) prints a note saying so
# After 1-3 the final weights must equal an uninterrupted run's exactly:
# h5diff (exact comparison) of model.h5 /layers and of checkpoint.h5
# /layers, /best, /optimizer (m, v and the step count t) and
# /train/counters. Timing values (/train/values, the history) may differ.
# Needs $MPICNN, $MPIEXEC and $top_builddir (set by `make check`).
set -u
: "${MPICNN:?MPICNN must name the mpicnn program}"
MPIEXEC=${MPIEXEC:-mpirun}
builddir=${top_builddir:-.}
limit=120 # seconds for any one run

d=$(mktemp -d "${TMPDIR:-/tmp}/mpicnn-resume-XXXXXX") || exit 99
bg=""
# shellcheck disable=SC2317 # run by the trap
cleanup() {
    # only what this script started: the background launcher and its ranks
    if [ -n "$bg" ] && kill -0 "$bg" 2>/dev/null; then
        # shellcheck disable=SC2046 # one pid per word
        kill -KILL $(ps -o pid= --ppid "$bg") "$bg" 2>/dev/null
    fi
    rm -rf "$d"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fail() {
    echo "FAIL: $*"
    for f in "$d"/*.log; do
        [ -f "$f" ] && { echo "--- $f"; tail -n 30 "$f"; }
    done
    exit 1
}

# 2200 training images of 12x12 in 4 classes; 200 held out; 200 test
"$builddir/tests/test_resume_synth" "$d" 2400 200 12 || fail "cannot write the data set"
cat >"$d/run.ini" <<EOF
[data]
format = idx
dir = $d
train_images = train-images.idx
train_labels = train-labels.idx
test_images = test-images.idx
test_labels = test-labels.idx
validation = 200

[net]
layers = conv1, bn1, relu1, pool1, drop, fc1

[conv1]
type = conv
filters = 6
kernel = 3
pad = 1

[bn1]
type = batchnorm

[relu1]
type = relu

[pool1]
type = maxpool
size = 2

[drop]
type = dropout
p = 0.2

[fc1]
type = dense
units = 4

[optimizer]
type = adam
lr = 0.01
weight_decay = 0.0001
lr_schedule = step
lr_decay = 0.5
lr_decay_every = 1
lr_decay_unit = epochs

[train]
epochs = 3
batch_size = 8
seed = 3
log_every = 0
threads = 1
validate_every = 40

[checkpoint]
every_steps = 15
EOF

# np2 OUT [ARGS...]: a run in the foreground, bounded in time
np2() {
    local out=$1
    shift
    timeout -k 5 "$limit" "$MPIEXEC" -np 2 --oversubscribe "$MPICNN" train "$d/run.ini" \
        --out "$d/$out" --progress none "$@" >>"$d/$out.log" 2>&1
}

# start OUT [ARGS...]: the same in the background (with MPICNN_FAULT=$fault
# if that is set); its pid in $bg
fault=""
start() {
    local out=$1
    shift
    env ${fault:+MPICNN_FAULT=$fault} "$MPIEXEC" -np 2 --oversubscribe "$MPICNN" train "$d/run.ini" --out "$d/$out" \
        --progress none "$@" >>"$d/$out.log" 2>&1 &
    bg=$!
}

# finish: waits (bounded) for the background launcher; its status in $rc
finish() {
    local i=0
    while kill -0 "$bg" 2>/dev/null; do
        i=$((i + 1))
        [ $i -le $((limit * 20)) ] || fail "the background run did not end in ${limit}s"
        sleep 0.05
    done
    wait "$bg"
    rc=$?
    bg=""
}

# wait_for FILE: until it exists (bounded), or the background run ended
wait_for() {
    local i=0
    until [ -e "$1" ]; do
        kill -0 "$bg" 2>/dev/null || fail "the run ended before $1 appeared"
        i=$((i + 1))
        [ $i -le $((limit * 20)) ] || fail "$1 did not appear in ${limit}s"
        sleep 0.05
    done
}

# counters FILE: /train/counters of a checkpoint, "epoch, step, global_step, ..."
counters() {
    h5dump -d /train/counters -y -w 0 "$1" 2>/dev/null | awk '/DATA \{/ { getline; print; exit }' |
        tr -d ' '
}

# stale_temp: a temp file of a checkpoint write is left in $d/ckpt
stale_temp() {
    local f
    for f in "$d"/ckpt/.checkpoint.h5.tmp.*; do
        [ -e "$f" ] && return 0
    done
    return 1
}

# same OUT: OUT's final weights and state equal the uninterrupted run's
same() {
    local obj
    for obj in /layers /optimizer /train/counters; do
        h5diff -q "$d/ref/checkpoint.h5" "$d/$1/checkpoint.h5" "$obj" "$obj" ||
            fail "$1: checkpoint.h5 $obj differs from the uninterrupted run's"
    done
    if h5dump -H -g /best "$d/ref/checkpoint.h5" >/dev/null 2>&1; then
        h5diff -q "$d/ref/checkpoint.h5" "$d/$1/checkpoint.h5" /best /best ||
            fail "$1: checkpoint.h5 /best differs from the uninterrupted run's"
    fi
    h5diff -q "$d/ref/model.h5" "$d/$1/model.h5" /layers /layers ||
        fail "$1: model.h5 /layers differs from the uninterrupted run's"
    # the test accuracy is printed from the same weights
    [ "$(grep '^test accuracy' "$d/ref.log")" = "$(grep '^test accuracy' "$d/$1.log")" ] ||
        fail "$1: a different test accuracy than the uninterrupted run's"
}

# --- the uninterrupted run
np2 ref || fail "the uninterrupted run failed"
grep -q '^test accuracy' "$d/ref.log" || fail "the uninterrupted run printed no test accuracy"
echo "ok: uninterrupted run: $(grep '^test accuracy' "$d/ref.log")"

# --- 1. SIGKILL both ranks mid-run, then --resume. MPICNN_FAULT=slow:10
# makes each step 10 ms longer, so that the signal lands in the middle of
# the run however fast the machine is (sleeping changes no number).
fault=slow:10
start kill
fault=""
wait_for "$d/kill/checkpoint.h5"
ranks=$(ps -o pid= --ppid "$bg")
[ -n "$ranks" ] || fail "no ranks under the launcher (pid $bg)"
# shellcheck disable=SC2086 # one pid per word
kill -KILL $ranks
finish
[ "$rc" -ne 0 ] || fail "the killed run exited 0: it finished before the kill"
c=$(counters "$d/kill/checkpoint.h5")
[ -n "$c" ] || fail "the checkpoint left by the killed run does not load"
echo "ok: killed both ranks (launcher exit $rc); checkpoint at epoch,step,global_step $(echo "$c" | cut -d, -f1-3)"
np2 kill --resume || fail "the resume after SIGKILL failed"
grep -q "resuming at epoch" "$d/kill.log" || fail "the run after SIGKILL did not resume"
same kill
echo "ok: resumed after SIGKILL: bitwise the uninterrupted run's weights"

# --- 2. SIGUSR1 mid-epoch: exit 75, a valid checkpoint, resume
fault=slow:10
start usr1
fault=""
wait_for "$d/usr1/checkpoint.h5"
sleep 0.3
kill -USR1 "$bg"
finish
[ "$rc" -eq 75 ] || fail "SIGUSR1: exit code $rc, expected 75"
grep -q "stopped by a signal at epoch" "$d/usr1.log" || fail "SIGUSR1: no stop message"
c=$(counters "$d/usr1/checkpoint.h5")
step=$(echo "$c" | cut -d, -f2)
if [ -z "$c" ] || [ "$step" -lt 1 ]; then
    fail "SIGUSR1: the checkpoint is not at a step inside an epoch ($c)"
fi
echo "ok: SIGUSR1: exit 75, checkpoint at epoch $(echo "$c" | cut -d, -f1) + step $step"
np2 usr1 --resume || fail "the resume after SIGUSR1 failed"
same usr1
echo "ok: resumed after SIGUSR1: bitwise the uninterrupted run's weights"

# --- 3. SIGKILL while the checkpoint of global step >= 30 is written: the
# one of step 15 stays
fault=ckpt_kill@30
start ckpt
fault=""
finish
[ "$rc" -ne 0 ] || fail "MPICNN_FAULT=ckpt_kill: the run was not killed"
grep -q "killed while writing the checkpoint" "$d/ckpt.log" ||
    fail "MPICNN_FAULT=ckpt_kill: the hook did not fire"
stale_temp || fail "MPICNN_FAULT=ckpt_kill: no temporary file left behind"
c=$(counters "$d/ckpt/checkpoint.h5")
[ "$(echo "$c" | cut -d, -f3)" = 15 ] ||
    fail "after a kill during the write the previous checkpoint (global step 15) must load; got '$c'"
echo "ok: killed inside a checkpoint write: the previous checkpoint (global step 15) loads"
np2 ckpt --resume || fail "the resume after a kill during a checkpoint write failed"
stale_temp && fail "the stale temporary file was not removed"
same ckpt
echo "ok: resumed after a kill during a write: stale temp file removed, bitwise equal"

# --- 4. refusals
np2 ckpt --resume --set optimizer.lr=0.02
rc=$?
[ "$rc" -eq 4 ] || fail "a resume with another lr: exit $rc, expected 4"
grep -q "\[optimizer\] lr differs: checkpoint has 0.01, this run has 0.02" "$d/ckpt.log" ||
    fail "a resume with another lr: the message does not name the key and both values"
np2 ckpt --resume --set optimizer.type=momentum
grep -q "\[optimizer\] type differs: checkpoint has adam, this run has momentum" "$d/ckpt.log" ||
    fail "a resume with another optimizer: the message does not say so"
timeout -k 5 "$limit" "$MPIEXEC" -np 1 "$MPICNN" train "$d/run.ini" --out "$d/ckpt" --resume \
    >>"$d/ckpt.log" 2>&1
rc=$?
[ "$rc" -eq 4 ] || fail "a resume on 1 rank of a 2-rank checkpoint: exit $rc, expected 4"
grep -q "made with 2 ranks, this run has 1" "$d/ckpt.log" ||
    fail "a resume with another world size: the message does not say so"
np2 none --resume
rc=$?
if [ "$rc" -ne 2 ] || ! grep -q "checkpoint.h5 does not exist" "$d/none.log"; then
    fail "--resume without a checkpoint must be an error, not a fresh start (exit $rc)"
fi
[ -e "$d/none/checkpoint.h5" ] && fail "--resume without a checkpoint started from scratch"
# a safe change: more epochs continue the finished run
np2 ckpt --resume --set train.epochs=4 --set checkpoint.every_steps=0 ||
    fail "a resume with more epochs (a safe change) was refused"
grep -q "^epoch 4/4" "$d/ckpt.log" || fail "a resume with train.epochs = 4 did not train epoch 4"
echo "ok: changed config, optimizer and world size refused with the difference named"

# --- 5. SIGINT and SIGTERM without a launcher
for sig in INT TERM; do
    "$MPICNN" train "$d/run.ini" --out "$d/single$sig" --progress none \
        --set train.epochs=50 >>"$d/single$sig.log" 2>&1 &
    bg=$!
    wait_for "$d/single$sig/checkpoint.h5"
    kill -"$sig" "$bg"
    finish
    [ "$rc" -eq 75 ] || fail "SIG$sig to a single process: exit $rc, expected 75"
    [ -n "$(counters "$d/single$sig/checkpoint.h5")" ] || fail "SIG$sig: no valid checkpoint"
done
echo "ok: SIGINT and SIGTERM to a process without mpirun: exit 75 and a checkpoint"

# --- 6. the gradient sum's layout is recorded: with 3 ranks, a resume
# that sums in another order says the result is not bitwise
# np3 OUT SUM [ARGS...]: 3 ranks, MPICNN_GRAD_SUM=SUM
np3() {
    local out=$1 sum=$2
    shift 2
    timeout -k 5 "$limit" "$MPIEXEC" -np 3 --oversubscribe -x MPICNN_GRAD_SUM="$sum" "$MPICNN" \
        train "$d/run.ini" --out "$d/$out" --progress none --set train.epochs=1 "$@" \
        >>"$d/$out.log" 2>&1
}
np3 sum3 mpi || fail "the 3-rank run with MPICNN_GRAD_SUM=mpi failed"
h5dump -a /grad_sum_ranks_per_node "$d/sum3/checkpoint.h5" | grep -q "(0): 1$" ||
    fail "the checkpoint does not record grad_sum_ranks_per_node = 1"
np3 sum3 mpi --resume || fail "the resume with the same sum failed"
grep -q "gradients were summed" "$d/sum3.log" && fail "a resume with the same sum printed a note"
np3 sum3 auto --resume --set train.epochs=2 || fail "the resume in shared memory failed"
if grep -q "no shared memory for the gradient sum" "$d/sum3.log"; then
    echo "skip: /dev/shm has no room here, so the sum fell back to MPI_Allreduce"
    exit 0
fi
grep -q "note: the checkpoint's gradients were summed by MPI_Allreduce, this run's in shared memory by 3 ranks per node" "$d/sum3.log" ||
    fail "a resume that sums in another order did not say so"
h5dump -a /grad_sum_ranks_per_node "$d/sum3/checkpoint.h5" | grep -q "(0): 3$" ||
    fail "the resumed run's checkpoint does not record grad_sum_ranks_per_node = 3"
echo "ok: the gradient sum's layout recorded, and a resume in another order noted"
exit 0
