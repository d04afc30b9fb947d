# cli_lib.sh - sourced by the shell tests of subcommands (test_predict.sh,
# test_predict_f64.sh, test_export.sh) after they make their scratch
# directory $d: a failure report and an exit-code-and-message check.
# shellcheck shell=sh

# fail WHY: says so, shows every $d/log.* and exits 1
fail() {
    echo "FAIL: $*"
    for f in "$d"/log.*; do [ -f "$f" ] && { echo "--- $f"; cat "$f"; }; done
    exit 1
}

# expect CODE WHAT TEXT COMMAND...: COMMAND exits with CODE and its output
# (stdout and stderr, kept in $d/log.err) says TEXT (a grep pattern)
expect() {
    code=$1 what=$2 text=$3
    shift 3
    "$@" >"$d/log.err" 2>&1
    rc=$?
    [ $rc -eq "$code" ] || fail "$what: exit code $rc, expected $code"
    grep -q -- "$text" "$d/log.err" || fail "$what: the message does not say '$text'"
    echo "ok: $what: exit $rc: $(head -n 1 "$d/log.err")"
}
