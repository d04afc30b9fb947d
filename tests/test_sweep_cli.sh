#!/bin/sh
# mpicnn sweep from the command line under mpirun -np 2, on a synthetic
# data set: a sweep whose ranks are SIGKILLed halfway resumes with
# --resume and trains only the trials its journal lacks; a sweep stopped
# with SIGUSR1 exits with 75 and resumes; the files and the final report.
set -u
MPIEXEC=${MPIEXEC:-mpirun}
MPICNN=${MPICNN:-src/mpicnn}
top_builddir=${top_builddir:-.}
d=$(mktemp -d /tmp/mpicnn-sweepcli-XXXXXX) || exit 99
trap 'rm -rf "$d"' EXIT
fail() {
    echo "FAIL: $*"
    for f in "$d"/log*; do echo "--- $f"; cat "$f"; done
    exit 1
}
records() {
    if [ -f "$1/sweep.journal" ]; then grep -c '^trial=' "$1/sweep.journal"; else echo 0; fi
}

command -v pkill >/dev/null 2>&1 || { echo "SKIP: no pkill"; exit 77; }

# 8 trials of about half a second each
"$top_builddir/tests/test_sweep" --synth "$d" 16 2000 || fail "cannot write the data"
cfg=$d/sweep.ini

# waits until DIR's journal has N records or the job ends
wait_records() {
    i=0
    while [ "$i" -lt 600 ]; do
        [ "$(records "$1")" -ge "$2" ] && return 0
        kill -0 "$3" 2>/dev/null || return 1
        sleep 0.05
        i=$((i + 1))
    done
    return 1
}

# --- a hard kill of every rank after two trials
out=$d/killed
$MPIEXEC -np 2 --oversubscribe "$MPICNN" sweep "$cfg" --out "$out" >"$d/log1" 2>&1 &
job=$!
wait_records "$out" 2 "$job" || fail "the sweep ended before two trials were journaled"
pkill -KILL -P "$job" # the ranks: mpirun's children
wait "$job" && fail "the killed sweep exited with 0"
k=$(records "$out")
[ "$k" -ge 2 ] && [ "$k" -lt 8 ] || fail "$k trials journaled at the kill (expected 2..7)"

$MPIEXEC -np 2 --oversubscribe "$MPICNN" sweep "$cfg" --out "$out" --resume >"$d/log2" 2>&1 ||
    fail "--resume failed"
grep -q "resuming: $k of 8 trials already finished" "$d/log2" || fail "no skip message for $k trials"
ran=$(grep -c '^trial [0-9]*/8 ' "$d/log2")
[ "$ran" -eq $((8 - k)) ] || fail "--resume trained $ran trials, expected $((8 - k))"
[ "$(records "$out")" -eq 8 ] || fail "the journal has $(records "$out") records, expected 8"
dups=$(grep '^trial=' "$out/sweep.journal" | cut -f1 | sort | uniq -d)
[ -z "$dups" ] || fail "trials journaled twice: $dups"
[ "$(grep -c '^[0-9]*,[0-9]*,' "$out/sweep.csv")" -eq 8 ] || fail "sweep.csv does not have 8 rows"
[ -s "$out/best/model.h5" ] || fail "no best/model.h5"
grep -q "^best trial's test accuracy: [01]\.[0-9]* ([0-9]*/60)" "$d/log2" || fail "no test accuracy"
"$MPICNN" info "$out/best/model.h5" >/dev/null || fail "best/model.h5 does not load"

# --- SIGUSR1: the trials in flight checkpoint, exit code 75, then --resume
out=$d/stopped
$MPIEXEC -np 2 --oversubscribe "$MPICNN" sweep "$cfg" --out "$out" >"$d/log3" 2>&1 &
job=$!
wait_records "$out" 1 "$job" || fail "the sweep ended before a trial was journaled"
kill -USR1 "$job"
wait "$job"
rc=$?
[ "$rc" -eq 75 ] || fail "a stopped sweep exited with $rc, expected 75"
grep -q -- "--resume" "$d/log3" || fail "the stop message does not mention --resume"
k=$(records "$out")
$MPIEXEC -np 2 --oversubscribe "$MPICNN" sweep "$cfg" --out "$out" --resume >"$d/log4" 2>&1 ||
    fail "--resume after SIGUSR1 failed"
[ "$(records "$out")" -eq 8 ] || fail "the journal has $(records "$out") records after resume"
ran=$(grep -c '^trial [0-9]*/8 ' "$d/log4")
[ "$ran" -eq $((8 - k)) ] || fail "--resume trained $ran trials, expected $((8 - k))"

# --- without --resume an existing sweep is not overwritten
$MPIEXEC -np 2 --oversubscribe "$MPICNN" sweep "$cfg" --out "$out" >"$d/log5" 2>&1
[ $? -eq 2 ] || fail "a second sweep into the same directory did not fail with a usage error"
echo "ok"
exit 0
