#!/bin/bash
# Exit codes and messages that docs/reliability.md promises, for the
# cases that once disagreed with it: each runs `mpicnn train` or `sweep`
# (one rank, or two where a rank count matters) and checks the exit code
# and the message. Needs $MPICNN, $MPIEXEC and $top_builddir.
set -u
: "${MPICNN:?MPICNN must name the mpicnn program}"
MPIEXEC=${MPIEXEC:-mpirun}
builddir=${top_builddir:-.}
d=$(mktemp -d "${TMPDIR:-/tmp}/mpicnn-exitcodes-XXXXXX") || exit 99
trap 'rm -rf "$d"' EXIT
fail() {
    echo "FAIL: $*"
    [ -f "$d/log" ] && { echo "--- log"; tail -n 20 "$d/log"; }
    exit 1
}
. "${top_srcdir:-.}/tests/small_run.sh"
small_run "$d" || fail "cannot write the data set"
cfg=$d/run.ini
cp "$cfg" "$d/sweep.ini"
printf '\n[sweep]\noptimizer.lr = 0.05, 0.02\n' >>"$d/sweep.ini"

# expect CODE PATTERN CMD...: runs CMD (output in $d/log), requires exit
# CODE and a line matching PATTERN
expect() {
    local code=$1 pat=$2 rc
    shift 2
    "$@" >"$d/log" 2>&1
    rc=$?
    [ "$rc" -eq "$code" ] || fail "'$*' exited $rc, expected $code"
    [ -z "$pat" ] || grep -q -- "$pat" "$d/log" || fail "'$*': no line matching '$pat'"
    echo "ok: exit $code: $*"
}

# --- the command line
expect 2 'usage error: --out: the directory name is empty' "$MPICNN" train "$cfg" --out ""
expect 2 'usage error: --out: the directory name is empty' "$MPICNN" sweep "$d/sweep.ini" --out ""
expect 2 'usage error: unknown or unused flag --frobnicate' "$MPICNN" train "$cfg" --frobnicate
expect 2 'usage error: unknown or unused flag --frobnicate' "$MPICNN" sweep "$d/sweep.ini" \
    --out "$d/s0" --frobnicate
expect 2 'usage error: --out needs a value' "$MPICNN" train "$cfg" --out
expect 2 'usage error: --lock-wait' "$MPICNN" train "$cfg" --out "$d/x" --lock-wait -1
expect 2 'exclude each other' "$MPICNN" train "$cfg" --out "$d/x" --resume --force
expect 2 'exclude each other' "$MPICNN" sweep "$d/sweep.ini" --out "$d/x" --resume --auto-resume
[ -e "$d/x" ] && fail "a refused command line created its --out"

# --- --resume into a missing directory: refused, and not created
expect 2 "usage error: --resume: $d/none/checkpoint.h5 does not exist: there is no directory" \
    "$MPICNN" train "$cfg" --out "$d/none" --resume
[ -e "$d/none" ] && fail "train --resume created $d/none"
expect 2 "usage error: --resume: $d/none/sweep.journal does not exist: there is no directory" \
    "$MPICNN" sweep "$d/sweep.ini" --out "$d/none" --resume
[ -e "$d/none" ] && fail "sweep --resume created $d/none"

# --- a directory holding a run: refused without --resume, --force moves it
expect 0 'model:' "$MPICNN" train "$cfg" --out "$d/r" --progress none
rm "$d/r/checkpoint.h5"
cp "$d/r/model.h5" "$d/model.before"
expect 2 "$d/r already holds a run (model.h5, metrics.csv): add --resume" \
    "$MPICNN" train "$cfg" --out "$d/r" --progress none
cmp -s "$d/r/model.h5" "$d/model.before" || fail "the refused run changed model.h5"
expect 0 "--force: moved the previous run's files to $d/r/old-" \
    "$MPICNN" train "$cfg" --out "$d/r" --progress none --force
old=$(ls -d "$d"/r/old-*) || fail "no old-* directory"
cmp -s "$old/model.h5" "$d/model.before" || fail "--force did not keep the old model.h5"
[ -f "$old/metrics.csv" ] && [ -f "$d/r/checkpoint.h5" ] || fail "--force: files missing"

# --- --auto-resume: a fresh start where there is no run, a resume where there is
expect 0 'model:' "$MPICNN" train "$cfg" --out "$d/auto" --progress none --auto-resume
expect 0 'resuming a finished run' "$MPICNN" train "$cfg" --out "$d/auto" --progress none \
    --auto-resume

# --- sweep --resume with a changed config: 4, as train's
expect 0 '' "$MPICNN" sweep "$d/sweep.ini" --out "$d/s" --quiet
expect 2 "$d/s already holds a run (sweep.journal" "$MPICNN" sweep "$d/sweep.ini" --out "$d/s"
expect 4 'bad config: .*written by a different sweep' "$MPICNN" sweep "$d/sweep.ini" --out "$d/s" \
    --resume --quiet --set train.seed=4
expect 4 'bad config' "$MPICNN" train "$cfg" --out "$d/r" --resume --set train.seed=4

# --- a journal that is a directory: the reason is given
mkdir -p "$d/j" && mkdir "$d/j/sweep.journal"
expect 5 "$d/j/sweep.journal: read failed: Is a directory" \
    "$MPICNN" sweep "$d/sweep.ini" --out "$d/j" --resume --quiet

# --- MPICNN_FAULT that could never fire
expect 2 'MPICNN_FAULT=kill@0: .0. after .@. is not a step number' \
    env MPICNN_FAULT=kill@0 "$MPICNN" train "$cfg" --out "$d/f0" --progress none
expect 2 'MPICNN_FAULT=kill@5,7: there is no rank 7: the run has 2 ranks' \
    env MPICNN_FAULT=kill@5,7 "$MPIEXEC" -np 2 --oversubscribe "$MPICNN" train "$cfg" \
    --out "$d/f1" --progress none

# --- a label beyond the class names names the labels file
cp "$cfg" "$d/names.ini"
sed -i 's/^format = idx$/format = idx\nclass_names = mnist/' "$d/names.ini"
{ printf '\000\000\010\001\000\000\002\130'; head -c 600 /dev/zero | tr '\0' '\014'; } \
    >"$d/train-labels.idx"
expect 3 "bad input: $d/train-labels.idx (\[data\] class_names = mnist): label 12 of image 0" \
    "$MPICNN" train "$d/names.ini" --out "$d/n" --progress none
small_run "$d" || fail "cannot write the data set again"

# --- stdout closed early: the run goes on, one note on stderr
"$MPICNN" train "$cfg" --out "$d/p" --progress lines 2>"$d/log" | head -1 >/dev/null
rc=${PIPESTATUS[0]}
[ "$rc" -eq 0 ] || fail "train | head -1 exited $rc, expected 0"
[ "$(grep -c 'note: standard output was closed (broken pipe)' "$d/log")" -eq 1 ] ||
    fail "train | head -1: not one note on stderr"
[ -f "$d/p/model.h5" ] && [ "$(cat "$d/p/status")" = finished ] || fail "train | head -1: no model"
echo "ok: exit 0: train | head -1, one note on stderr, the model written"
exit 0
