#!/bin/bash
# test_fault_disk.sh - a failed write keeps the previous files and gives a
# clear error naming the file (mpirun -np 2):
#   1. write_fail@10 (MPICNN_FAULT): the checkpoint of step 10 fails as on
#      a full disk: exit 5 naming the file on both ranks; the checkpoint of
#      step 5 stays, no temporary file is left, and --resume continues
#   2. a real full disk: the output on a tmpfs with room for one
#      checkpoint but not two: exit 5, "disk full"; the same step-5
#      checkpoint as in 1
#   3. a read-only output directory (a tmpfs remounted read-only): exit 5
#      naming the file and the cause
# 2 and 3 need root and mount(2); without them they are skipped (the
# fault hook of 1 is the portable test).
# shellcheck source=tests/fault_lib.sh
. "${top_srcdir:-.}/tests/fault_lib.sh"

# --- 1. the fault hook
run wf write_fail@10
[ "$rc" -eq 5 ] || fail "write_fail: exit code $rc, expected 5"
has wf "mpicnn: rank 0: I/O error: cannot write $d/wf/checkpoint.h5: fsync: disk full"
has wf "mpicnn: rank 1: I/O error: another rank failed (I/O error): rank 0: cannot write $d/wf/checkpoint.h5"
[ "$(counters "$d/wf/checkpoint.h5" | cut -d, -f3)" = 5 ] ||
    fail "write_fail: the checkpoint of step 5 should remain"
no_temp "$d/wf"
cp "$d/wf/checkpoint.h5" "$d/step5.h5"
echo "ok: a write failing at step 10: exit 5 naming the file; the step-5 checkpoint intact"
run wf "" --resume
[ "$rc" -eq 0 ] || fail "resume after write_fail: exit code $rc"
has wf "resuming at epoch 1, step 5 (global step 5)"
echo "ok: --resume after the failed write continues from step 5"

# --- 2. and 3. on a tmpfs
m="$d/mnt"
mkdir -p "$m"
if [ "$(id -u)" -ne 0 ] || ! mount -t tmpfs -o size=1m tmpfs "$m" 2>/dev/null; then
    echo "skip: a real full disk and a read-only directory (need root and mount)"
    exit 0
fi
mounts="$m"
umount "$m"
# room for one checkpoint and a half: the second write runs out of space
size=$(stat -c %s "$d/step5.h5")
kb=$(((size * 3 / 2 + 4095) / 4096 * 4))
mount -t tmpfs -o size=${kb}k tmpfs "$m" || fail "cannot mount a ${kb}k tmpfs"
run full "" --out "$m/out"
[ "$rc" -eq 5 ] || fail "full disk: exit code $rc, expected 5"
has full "mpicnn: rank 0: I/O error: cannot write $m/out/checkpoint.h5: write: disk full (No space left on device)"
same_ckpt "$d/step5.h5" "$m/out/checkpoint.h5"
no_temp "$m/out"
echo "ok: a full disk (${kb} KiB tmpfs) at the checkpoint of step 10: exit 5; the step-5 checkpoint intact"
umount "$m"

mount -t tmpfs -o size=1m tmpfs "$m" && mkdir "$m/out" && mount -o remount,ro "$m" ||
    fail "cannot make a read-only tmpfs"
run ro "" --out "$m/out"
[ "$rc" -eq 5 ] || fail "read-only: exit code $rc, expected 5"
# refused before training: the directory's lock file cannot be made
has ro "mpicnn: rank 0: I/O error: cannot write $m/out/lock: Read-only file system"
umount "$m"
mounts=""
echo "ok: a read-only output directory: exit 5 naming the file"
exit 0
