#!/bin/sh
# Time to a test accuracy on Fashion-MNIST, mpicnn and PyTorch side by side
# (docs/performance.md). mpicnn trains jobs/fashion-mnist.ini one epoch at a
# time (--resume with one more epoch, which continues bitwise as one run)
# and scores the test set after each; PyTorch trains the same net and
# optimizer (bench/torch_ref.py fmnist-to-91) with as many threads as
# mpicnn has ranks. The job scales its learning rate with the rank count
# (lr_scaling = linear: 0.01 per rank's batch of 64, as PyTorch's 0.01 for
# its batch of 64). Training time counts the epochs only (mpicnn's epoch
# time includes its validation pass; PyTorch's has none), not loading or
# scoring.
#   sh bench/time_to_acc.sh [TARGET [RANKS [MAX_EPOCHS]]]   from the build directory
#   defaults: 0.91, 2 ranks, 12 epochs
set -eu
target=${1:-0.91}
ranks=${2:-2}
max=${3:-12}
MPIEXEC=${MPIEXEC:-mpirun}
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
mpicnn=${MPICNN:-src/mpicnn}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "== mpicnn: $ranks ranks x 1 thread, $top/jobs/fashion-mnist.ini, one epoch at a time"
total=0
e=1
reached=""
while [ "$e" -le "$max" ]; do
  resume=""
  [ "$e" -gt 1 ] && resume=--resume
  "$MPIEXEC" -np "$ranks" -x OMP_NUM_THREADS=1 "$mpicnn" train "$top/jobs/fashion-mnist.ini" \
    --out "$out/run" $resume --progress none --set train.epochs="$e" \
    --set early_stopping.enabled=false --set train.threads=1 >"$out/log" 2>&1 || {
    cat "$out/log"
    echo "mpicnn train failed" >&2
    exit 1
  }
  # "epoch E/N  train loss ... lr L  12.3s  4567 img/s": this epoch's time
  secs=$(sed -n "s|^epoch $e/$e .* \([0-9.][0-9.]*\)s  *[0-9]* img/s.*|\1|p" "$out/log")
  acc=$(sed -n 's/^test accuracy: \([0-9.]*\).*/\1/p' "$out/log")
  [ -n "$secs" ] && [ -n "$acc" ] || {
    cat "$out/log"
    echo "no epoch time or test accuracy in the log" >&2
    exit 1
  }
  total=$(awk -v a="$total" -v b="$secs" 'BEGIN { printf "%.1f", a + b }')
  echo "mpicnn epoch $e: test accuracy $acc, training time so far $total s"
  if awk -v a="$acc" -v t="$target" 'BEGIN { exit !(a >= t) }'; then
    reached="$e $total"
    break
  fi
  e=$((e + 1))
done
if [ -n "$reached" ]; then
  set -- $reached
  echo "mpicnn: $target reached after $1 epochs, $2 s of training"
else
  echo "mpicnn: $target not reached in $max epochs ($total s)"
fi

if /usr/bin/python3 -c "import torch" 2>/dev/null; then
  echo "== PyTorch: 1 process x $ranks threads, the same net and optimizer"
  MALLOC_MMAP_THRESHOLD_=67108864 MALLOC_TRIM_THRESHOLD_=268435456 \
    /usr/bin/python3 "$here/torch_ref.py" fmnist-to-91 --threads "$ranks" --epochs "$max"
else
  echo "== PyTorch: python3-torch is not installed; no comparison"
fi
