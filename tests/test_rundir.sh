#!/bin/bash
# One run at a time per run directory, and DIR/status (docs/reliability.md,
# "The run directory"). Under mpirun -np 2, with MPICNN_FAULT=slow to keep
# the first run busy:
#   1. train + train, train + train --resume: the second exits 9 at once
#      naming the holder; the first finishes untouched
#   2. train --auto-resume --lock-wait: waits for the holder, then continues
#   3. sweep --resume + sweep --resume: the second exits 9
#   4. SIGTERM, SIGINT, SIGHUP to mpirun: every rank checkpoints, mpirun
#      exits 1 (Open MPI 4.1), DIR/status says stopped-resumable
#   5. a SIGKILLed run leaves "running HOST PID" with the PID gone
#   6. the O_EXCL fallback (MPICNN_LOCK=excl): refused while held, a stale
#      lock.held of a dead process on this host is replaced
# Needs $MPICNN, $MPIEXEC and $top_builddir (set by `make check`).
set -u
: "${MPICNN:?MPICNN must name the mpicnn program}"
MPIEXEC=${MPIEXEC:-mpirun}
builddir=${top_builddir:-.}
d=$(mktemp -d "${TMPDIR:-/tmp}/mpicnn-rundir-XXXXXX") || exit 99
bgs=""
# shellcheck disable=SC2317 # run by the trap
cleanup() {
    local p
    for p in $bgs; do
        if kill -0 "$p" 2>/dev/null; then
            # shellcheck disable=SC2046 # one pid per word
            kill -KILL $(ps -o pid= --ppid "$p") "$p" 2>/dev/null
        fi
    done
    rm -rf "$d"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
fail() {
    echo "FAIL: $*"
    local f
    for f in "$d"/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -n 20 "$f"; }; done
    exit 1
}

. "${top_srcdir:-.}/tests/small_run.sh"
small_run "$d" || fail "cannot write the data set"

# start NAME OUT [ARGS...]: `mpicnn train` on 2 ranks into OUT in the
# background (its pid in $bg), slowed to about 40 ms a step (32 steps an
# epoch; MPICNN_SLOW overrides), output in $d/NAME.log
start() {
    local name=$1 out=$2
    shift 2
    MPICNN_FAULT=slow:${MPICNN_SLOW:-40} "$MPIEXEC" -np 2 --oversubscribe "$MPICNN" train "$d/run.ini" \
        --out "$out" --progress none "$@" >"$d/$name.log" 2>&1 &
    bg=$!
    bgs="$bgs $bg"
}
# status_is DIR WORD: waits (60 s at most) until DIR/status starts with WORD
status_is() {
    local i
    for i in $(seq 1200); do
        grep -q "^$2" "$1/status" 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}
# second NAME [mpicnn ARGS...]: a 2-rank mpicnn run in the foreground; $rc
second() {
    local name=$1
    shift
    "$MPIEXEC" -np 2 --oversubscribe "$MPICNN" "$@" >"$d/$name.log" 2>&1
    rc=$?
}

# --- 1. two runs on one directory
MPICNN_SLOW=100 start first "$d/a" --set train.epochs=3
status_is "$d/a" running || fail "1: the first run did not write 'running' to its status"
read -r _ host pid _ <"$d/a/status"
t0=$(date +%s)
second second train "$d/run.ini" --out "$d/a" --progress none
[ "$rc" -eq 9 ] || fail "1: a second train on a busy directory exited $rc, expected 9"
grep -q "rank 0: run directory in use: $d/a is in use by another run: host $host, pid $pid" \
    "$d/second.log" || fail "1: the message does not name the holder ($host, $pid)"
grep -q "rank 1: run directory in use" "$d/second.log" || fail "1: rank 1 did not exit 9 too"
second resume train "$d/run.ini" --out "$d/a" --progress none --resume
[ "$rc" -eq 9 ] || fail "1: train --resume on a busy directory exited $rc, expected 9"
[ $(($(date +%s) - t0)) -le 20 ] || fail "1: the refusals took more than 20 s"
kill -0 "$bg" 2>/dev/null || fail "1: the first run ended before the refusals were done"
# --- 2. --lock-wait waits for the holder, then continues its finished run
# (--auto-resume as jobs/*.slurm: decided once the lock is held)
second wait train "$d/run.ini" --out "$d/a" --progress none --auto-resume --lock-wait 60
[ "$rc" -eq 0 ] || fail "2: --auto-resume --lock-wait exited $rc"
wait "$bg" || fail "1: the first run failed while others tried its directory"
grep -q "model: $d/a/model.h5" "$d/first.log" || fail "1: the first run did not finish"
grep -q "resuming a finished run (3 epochs)" "$d/wait.log" ||
    fail "2: the waiting run did not find the first one finished"
[ "$(cat "$d/a/status")" = finished ] || fail "2: status '$(cat "$d/a/status")', expected finished"
echo "ok 1: a second train or train --resume exits 9 naming $host $pid; the first finishes"
echo "ok 2: --auto-resume --lock-wait waited for it, then resumed its finished run"

# --- 3. two sweeps on one directory
cp "$d/run.ini" "$d/sweep.ini"
printf '\n[sweep]\nranks_per_trial = 2\noptimizer.lr = 0.05, 0.02\n' >>"$d/sweep.ini"
MPICNN_FAULT=slow:40 "$MPIEXEC" -np 2 --oversubscribe "$MPICNN" sweep "$d/sweep.ini" \
    --out "$d/s" --quiet >"$d/sweep1.log" 2>&1 &
bg=$!
bgs="$bgs $bg"
status_is "$d/s" running || fail "3: the sweep did not write 'running' to its status"
second sweep2 sweep "$d/sweep.ini" --out "$d/s" --resume --quiet
[ "$rc" -eq 9 ] || fail "3: a second sweep --resume exited $rc, expected 9"
grep -q "$d/s is in use by another run" "$d/sweep2.log" || fail "3: no holder named"
wait "$bg" || fail "3: the first sweep failed"
[ "$(grep -c '^trial=' "$d/s/sweep.journal")" -eq 2 ] || fail "3: the journal is not 2 trials"
[ "$(cat "$d/s/status")" = finished ] || fail "3: sweep status '$(cat "$d/s/status")'"
echo "ok 3: a second sweep --resume exits 9; the first journals each trial once"

# --- 4. a signal to mpirun itself
for sig in TERM INT HUP; do
    rm -rf "$d/b"
    start "sig$sig" "$d/b" --set train.epochs=5
    status_is "$d/b" running || fail "4: no 'running' status"
    sleep 0.5
    kill -"$sig" "$bg"
    wait "$bg"
    rc=$?
    [ "$(cat "$d/b/status")" = stopped-resumable ] ||
        fail "4: SIG$sig: status '$(cat "$d/b/status")', expected stopped-resumable"
    [ "$(grep -c "stopped by signal (checkpointed)" "$d/sig$sig.log")" -eq 2 ] ||
        fail "4: SIG$sig: not every rank stopped with a checkpoint"
    echo "ok 4: SIG$sig to mpirun: mpirun exits $rc, status stopped-resumable"
done
second sigresume train "$d/run.ini" --out "$d/b" --progress none --resume --set train.epochs=5
[ "$rc" -eq 0 ] && [ "$(cat "$d/b/status")" = finished ] || fail "4: --resume exited $rc"

# --- 5. a run that dies hard leaves "running" with its process gone
MPICNN_FAULT=kill@5 "$MPICNN" train "$d/run.ini" --out "$d/k" --progress none >"$d/kill.log" 2>&1
rc=$?
[ "$rc" -eq 137 ] || fail "5: the killed run exited $rc, expected 137"
read -r word _ pid _ <"$d/k/status"
[ "$word" = running ] || fail "5: status '$word', expected running"
kill -0 "$pid" 2>/dev/null && fail "5: pid $pid still runs"
echo "ok 5: a SIGKILLed run leaves 'running ... $pid' and pid $pid is gone"

# --- 6. the O_EXCL fallback
rm -rf "$d/e"
MPICNN_LOCK=excl start excl1 "$d/e" --set train.epochs=2
status_is "$d/e" running || fail "6: no 'running' status"
[ -f "$d/e/lock.held" ] || fail "6: no lock.held"
MPICNN_LOCK=excl second excl2 train "$d/run.ini" --out "$d/e" --progress none --force
[ "$rc" -eq 9 ] || fail "6: a second run exited $rc, expected 9"
grep -q "(${d}/e/lock.held)" "$d/excl2.log" || fail "6: the message does not name lock.held"
wait "$bg" || fail "6: the holder failed"
[ -e "$d/e/lock.held" ] && fail "6: lock.held left after the run"
rm -rf "$d/e"
MPICNN_LOCK=excl MPICNN_FAULT=kill@8 "$MPICNN" train "$d/run.ini" --out "$d/e" \
    --progress none >"$d/excl3.log" 2>&1
[ -f "$d/e/lock.held" ] || fail "6: a killed run left no lock.held"
MPICNN_LOCK=excl "$MPICNN" train "$d/run.ini" --out "$d/e" --progress none --resume \
    >"$d/excl4.log" 2>&1 || fail "6: a stale lock.held was not replaced"
[ -e "$d/e/lock.held" ] && fail "6: lock.held left after the resumed run"
MPICNN_LOCK=bogus "$MPICNN" train "$d/run.ini" --out "$d/e" --resume >"$d/excl5.log" 2>&1
[ $? -eq 2 ] || fail "6: MPICNN_LOCK=bogus was accepted"
echo "ok 6: MPICNN_LOCK=excl: refused while held (9), a dead holder's lock.held replaced"
exit 0
