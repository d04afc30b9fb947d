#!/bin/sh
# test_jobs.sh - the seed data sets' jobs without the network:
#   - jobs/get-data.sh on local files (--url file://...): small generated
#     stand-ins for the CIFAR-10, CIFAR-100 and MNIST downloads, checked
#     against their own MD5 sums (--sums) and packed to the file names the
#     jobs use; against the published sums they are refused (exit 1, the
#     download removed, nothing packed);
#   - every jobs/*.ini that trains on those files runs one epoch on them.
# The job runs are skipped (exit 77) by a program that does not read
# format = hdf5.
set -u
MPIEXEC=${MPIEXEC:-mpirun}
MPICNN=${MPICNN:-src/mpicnn}
top_srcdir=${top_srcdir:-.}
top_builddir=${top_builddir:-.}
MK=$top_builddir/tests/make_images
GET=$top_srcdir/jobs/get-data.sh
case $MPICNN in /*) ;; *) MPICNN=$(pwd)/$MPICNN ;; esac
case $GET in /*) ;; *) GET=$(pwd)/$GET ;; esac
export MPICNN MPIEXEC
d=$(mktemp -d /tmp/mpicnn-jobs-XXXXXX) || exit 99
trap 'rm -rf "$d"' EXIT INT TERM
fail() {
    echo "FAIL: $*"
    for f in "$d"/log.*; do echo "--- $f"; tail -n 30 "$f"; done
    exit 1
}

# --- stand-ins for the downloads
"$MK" idx "$d/arr" >/dev/null || fail "make_images idx"
s=$d/src
mkdir -p "$s/cifar-10-batches-bin" "$s/cifar-100-binary"
for i in 1 2 3 4 5; do cp "$d/arr/data_batch_1.bin" "$s/cifar-10-batches-bin/data_batch_$i.bin"; done
cp "$d/arr/data_batch_1.bin" "$s/cifar-10-batches-bin/test_batch.bin"
cp "$d/arr/train.bin" "$s/cifar-100-binary/train.bin"
cp "$d/arr/train.bin" "$s/cifar-100-binary/test.bin"
tar -czf "$s/cifar-10-binary.tar.gz" -C "$s" cifar-10-batches-bin
tar -czf "$s/cifar-100-binary.tar.gz" -C "$s" cifar-100-binary
for p in train t10k; do
    gzip -c "$d/arr/images.idx" >"$s/$p-images-idx3-ubyte.gz"
    gzip -c "$d/arr/labels.idx" >"$s/$p-labels-idx1-ubyte.gz"
done
(cd "$s" && md5sum *.gz) >"$d/sums"

# --- the published sums refuse the stand-ins
"$GET" --dir "$d/refused" --url "file://$s" cifar10 >"$d/log.refused" 2>&1
[ $? -eq 1 ] || fail "get-data accepted a file whose checksum is not the published one"
grep -q "cifar-10-binary.tar.gz: checksum mismatch" "$d/log.refused" || fail "no mismatch message"
[ -z "$(ls "$d/refused/downloads")" ] || fail "a refused download was kept"
ls "$d/refused"/*.h5 >/dev/null 2>&1 && fail "a refused download was packed"
echo "ok: a checksum mismatch is refused"

# --- with their own sums they are fetched, checked and packed
for set in cifar10 cifar100 mnist; do
    (cd "$d" && "$GET" --np 2 --url "file://$s" --sums "$d/sums" $set) >"$d/log.get-$set" 2>&1 ||
        fail "get-data $set failed"
    grep -q "checksum ok" "$d/log.get-$set" || fail "get-data $set: no checksum line"
done
for f in cifar10-train cifar10-test cifar100-coarse-train cifar100-coarse-test mnist-train mnist-test; do
    [ -f "$d/data/$f.h5" ] || fail "get-data did not make data/$f.h5"
done
(cd "$d" && "$GET" --url "file://$s" --sums "$d/sums" mnist) >"$d/log.again" 2>&1 || fail "second get-data"
grep -q "already here, checksum ok" "$d/log.again" || fail "a checked download was fetched again"
echo "ok: get-data fetched, checked and packed every set"

# --- every job on those files, one epoch
for job in cifar10-3layer cifar100-coarse cifar2 mnist-01-hinge cifar10-resnet20; do
    (cd "$d" && "$MPIEXEC" -np 2 "$MPICNN" train "$top_srcdir/jobs/$job.ini" --out "runs/$job" \
        --set train.epochs=1 --set data.validation=2 --set train.log_every=0) >"$d/log.$job" 2>&1
    rc=$?
    if [ $rc -eq 4 ] && grep -q "hdf5" "$d/log.$job"; then
        echo "SKIP: this mpicnn does not read format = hdf5: jobs not run"
        exit 77
    fi
    [ $rc -eq 0 ] || fail "jobs/$job.ini: exit $rc"
    [ -f "$d/runs/$job/model.h5" ] || fail "jobs/$job.ini: no model"
    echo "ok: jobs/$job.ini trains on its data files"
done
exit 0
