# fault_lib.sh - sourced by tests/test_fault_*.sh: a small data set and
# config, runs of `mpicnn train` under mpirun -np 2 with MPICNN_FAULT set
# (bounded in time, timed from the fault, with the ranks' pids recorded to
# prove that none is left behind), and checks on the files left.
# Needs $MPICNN, $MPIEXEC and $top_builddir (set by `make check`).
# shellcheck shell=bash
set -u
: "${MPICNN:?MPICNN must name the mpicnn program}"
MPIEXEC=${MPIEXEC:-mpirun}
builddir=${top_builddir:-.}
limit=60 # seconds for any one run

d=$(mktemp -d "${TMPDIR:-/tmp}/mpicnn-fault-XXXXXX") || exit 99
bg=""
pids=""
mounts=""
# shellcheck disable=SC2317 # run by the trap
cleanup() {
    local p m
    # only what this script started: the launcher, its ranks, its mounts
    if [ -n "$bg" ] && kill -0 "$bg" 2>/dev/null; then
        # shellcheck disable=SC2046 # one pid per word
        kill -KILL $(ps -o pid= --ppid "$bg") "$bg" 2>/dev/null
    fi
    for p in $pids; do kill -KILL "$p" 2>/dev/null; done
    for m in $mounts; do umount "$m" 2>/dev/null; done
    rm -rf "$d"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fail() {
    echo "FAIL: $*"
    local f
    for f in "$d"/*.log; do
        [ -f "$f" ] && { echo "--- $f"; tail -n 25 "$f"; }
    done
    exit 1
}

now() { date +%s.%N; }
# seconds from $1 to $2, one decimal
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
# 1 if $1 < $2 (reals)
less() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }

# the data set and config (tests/small_run.sh)
. "${top_srcdir:-.}/tests/small_run.sh"
small_run "$d" || fail "cannot write the data set"

# run NAME FAULT [ARGS...]: `mpicnn train` on 2 ranks into $d/NAME (made
# afresh unless ARGS has --resume) with MPICNN_FAULT=FAULT (none if
# empty), output in $d/NAME.log. Waits at most
# $limit seconds. Sets $rc (the launcher's exit code), $secs (seconds from
# the fault's line in the log, or from the start, to the end of the job)
# and $pids (every rank pid seen).
run() {
    local name=$1 fault=$2 i=0 t0 tf="" p
    shift 2
    case " $* " in
    *" --resume "*) ;;
    *) rm -rf "${d:?}/$name" ;;
    esac
    t0=$(now)
    env ${fault:+MPICNN_FAULT=$fault} "$MPIEXEC" -np 2 --oversubscribe "$MPICNN" train \
        "$d/run.ini" --out "$d/$name" --progress none "$@" >"$d/$name.log" 2>&1 &
    bg=$!
    while kill -0 "$bg" 2>/dev/null; do
        for p in $(ps -o pid= --ppid "$bg"); do
            case " $pids " in *" $p "*) ;; *) pids="$pids $p" ;; esac
        done
        if [ -z "$tf" ] && grep -q "MPICNN_FAULT=$fault:" "$d/$name.log" 2>/dev/null; then
            tf=$(now)
        fi
        i=$((i + 1))
        [ $i -le $((limit * 50)) ] || fail "$name: the job did not end in ${limit}s"
        sleep 0.02
    done
    wait "$bg"
    rc=$?
    bg=""
    secs=$(elapsed "${tf:-$t0}" "$(now)")
    # exit codes >= 128 are a signal; 137 (SIGKILL) only where a test says so
    if grep -q -e "AddressSanitizer" -e "runtime error:" -e "LeakSanitizer" "$d/$name.log"; then
        fail "$name: a sanitizer report"
    fi
}

# no_leftovers NAME: none of the ranks seen by `run` is still alive
no_leftovers() {
    local p
    sleep 0.2
    for p in $pids; do
        if kill -0 "$p" 2>/dev/null && [ "$(ps -o stat= -p "$p" | cut -c1)" != Z ]; then
            fail "$1: rank process $p is still there after the job ended"
        fi
    done
    pids=""
}

# has NAME TEXT: the log of NAME has the fixed string TEXT
has() {
    grep -qF -- "$2" "$d/$1.log" || fail "$1: the output lacks '$2'"
}

# counters FILE: /train/counters of a checkpoint, "epoch,step,global_step,skipped,..."
counters() {
    h5dump -d /train/counters -y -w 0 "$1" 2>/dev/null | awk '/DATA \{/ { getline; print; exit }' |
        tr -d ' '
}

# same_ckpt A B: two checkpoints hold the same weights, optimizer state and counters
same_ckpt() {
    local obj
    for obj in /layers /optimizer /train/counters; do
        h5diff -q "$1" "$2" "$obj" "$obj" || fail "$1 and $2 differ in $obj"
    done
}

# no_temp DIR: no temporary file of an interrupted write is left in DIR
no_temp() {
    local f
    for f in "$1"/.*.tmp.*; do
        [ -e "$f" ] && fail "a temporary file is left behind: $f"
    done
    return 0
}
