#!/bin/sh
# test_install.sh - `make install DESTDIR=...` from the build directory
# installs a consistent set:
#   - the program, which runs (--version);
#   - the man page mpicnn.1;
#   - every document of docs/ (*.md) and docs/img/ into the doc directory;
#   - every file of jobs/ into share/mpicnn/jobs, the scripts executable;
#   - no header and no library (the library is a convenience library);
# and `make uninstall` removes all of it. When the build made its man page
# with help2man, the copy kept in docs/mpicnn.1 (installed where help2man
# is missing) must say the same: `make update-man` refreshes it.
set -u
top_srcdir=${top_srcdir:-.}
top_builddir=${top_builddir:-.}
d=$(mktemp -d /tmp/mpicnn-install-XXXXXX) || exit 99
trap 'rm -rf "$d"' EXIT INT TERM
fail() {
    echo "FAIL: $*"
    exit 1
}
# the make of the test harness passes its job server and command-line
# variables through the environment; this make is a separate one
submake() {
    env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL "${MAKE:-make}" -C "$top_builddir" "$@"
}

dest=$d/root
submake install DESTDIR="$dest" >"$d/install.log" 2>&1 || {
    cat "$d/install.log"
    fail "make install DESTDIR=$dest failed"
}
# one path below $dest matching a find -path pattern, or nothing
find_one() {
    find "$dest" -path "$1" | head -n 1
}

prog=$(find_one '*/bin/mpicnn')
[ -n "$prog" ] && [ -x "$prog" ] || fail "no executable bin/mpicnn"
"$prog" --version | grep -q '^mpicnn [0-9]' || fail "$prog --version"

man=$(find_one '*/man1/mpicnn.1')
[ -n "$man" ] || fail "no man1/mpicnn.1"
grep -q '^\.TH MPICNN' "$man" || fail "$man is not a man page"
grep -q 'train a net from a config file' "$man" || fail "$man lacks the commands of --help"

docdir=$(dirname "$(find_one '*/doc/mpicnn/architecture.md')")
[ "$docdir" != . ] || fail "no doc/mpicnn/architecture.md"
for f in "$top_srcdir"/docs/*.md "$top_srcdir"/docs/img/*; do
    case $f in */img/*) rel=img/${f##*/} ;; *) rel=${f##*/} ;; esac
    cmp -s "$f" "$docdir/$rel" || fail "docs: $rel not installed in $docdir (doc_DATA, docimg_DATA)"
done

jobsdir=$(dirname "$(find_one '*/mpicnn/jobs/fashion-mnist.ini')")
[ "$jobsdir" != . ] || fail "no share/mpicnn/jobs/fashion-mnist.ini"
for f in "$top_srcdir"/jobs/*; do
    rel=${f##*/}
    cmp -s "$f" "$jobsdir/$rel" || fail "jobs: $rel not installed in $jobsdir (jobs_DATA, jobs_SCRIPTS)"
    if [ -x "$f" ] && [ ! -x "$jobsdir/$rel" ]; then
        fail "jobs: $rel is installed without its execute bit"
    fi
done

ndocs=$(ls "$docdir"/*.md | wc -l)
extra=$(find "$dest" -name '*.h' -o -name '*.la' -o -name '*.a' -o -name '*.so*' -o -type d -name include)
[ -z "$extra" ] || fail "installed what is not meant to be: $extra"

submake uninstall DESTDIR="$dest" >"$d/uninstall.log" 2>&1 || {
    cat "$d/uninstall.log"
    fail "make uninstall failed"
}
left=$(find "$dest" -type f)
[ -z "$left" ] || fail "make uninstall left: $left"

# the kept copy of the man page against the one help2man made, less the
# lines that name the date and help2man's version
if [ -n "$(sed -n 's/^HELP2MAN = //p' "$top_builddir/Makefile")" ]; then
    man_body() { grep -v '^\.TH \|^\.\\" DO NOT MODIFY' "$1"; }
    man_body "$top_builddir/mpicnn.1" >"$d/built.1"
    man_body "$top_srcdir/docs/mpicnn.1" >"$d/kept.1"
    diff -u "$d/kept.1" "$d/built.1" ||
        fail "docs/mpicnn.1 is out of date with mpicnn --help: run make update-man and commit it"
fi
echo "PASS: make install: program, man page, $ndocs documents, jobs; no headers"
