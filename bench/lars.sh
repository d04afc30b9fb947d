#!/bin/sh
# LARS against momentum SGD at a large batch on Fashion-MNIST
# (docs/performance.md): jobs/fashion-mnist.ini (fmnist-ref) trained at a
# global batch of 2048 (RANKS ranks x 2048/RANKS images) for EPOCHS
# epochs, once with optimizer.type = lars and once with momentum, both at
# the rate of the linear scaling rule (the job's 0.01 for a batch of 64,
# so 0.32 for 2048: lr = 0.01 x the rank's batch / 64, times RANKS by
# lr_scaling = linear), a WARMUP-epoch warmup from 0.01 and a cosine
# schedule to 0, the same weight decay; early stopping off, so both train
# every epoch. LARS uses a trust coefficient of 0.1. Prints
# both test accuracies.
#   sh bench/lars.sh            from the build directory (make bench-lars)
# Environment: EPOCHS (12), RANKS (2), WARMUP (2), TRUST (0.1), WD
# (0.0005), FMNIST_DIR (the data directory; default the job's
# data/fashion-mnist), MPICNN (src/mpicnn).
set -eu
epochs=${EPOCHS:-12}
ranks=${RANKS:-2}
warmup=${WARMUP:-2}
trust=${TRUST:-0.1}
wd=${WD:-0.0005}
MPIEXEC=${MPIEXEC:-mpirun}
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
mpicnn=${MPICNN:-src/mpicnn}
[ $((2048 % ranks)) -eq 0 ] || { echo "RANKS must divide 2048" >&2; exit 2; }
batch=$((2048 / ranks))
lr=$(awk -v b="$batch" 'BEGIN { printf "%.6g", 0.01 * b / 64 }')
datadir=""
[ -n "${FMNIST_DIR:-}" ] && datadir="--set data.dir=$FMNIST_DIR"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# run NAME TYPE: trains and prints the test accuracy
run() {
  # shellcheck disable=SC2086
  "$MPIEXEC" -np "$ranks" -x OMP_NUM_THREADS=1 "$mpicnn" train "$top/jobs/fashion-mnist.ini" \
    --out "$out/$1" --progress none $datadir \
    --set optimizer.type="$2" --set optimizer.lr="$lr" --set optimizer.lr_scaling=linear \
    --set optimizer.lr_schedule=cosine --set optimizer.lr_min=0 \
    --set optimizer.lr_warmup_epochs="$warmup" --set optimizer.lr_warmup_start=0.01 \
    --set optimizer.weight_decay="$wd" --set optimizer.trust_coefficient="$trust" \
    --set train.batch_size="$batch" --set train.epochs="$epochs" --set train.threads=1 \
    --set early_stopping.enabled=false >"$out/$1.log" 2>&1 || {
    cat "$out/$1.log"
    echo "mpicnn train ($2) failed" >&2
    exit 1
  }
  acc=$(sed -n 's/^test accuracy: \([0-9.]*\).*/\1/p' "$out/$1.log")
  [ -n "$acc" ] || { cat "$out/$1.log"; echo "no test accuracy in the log" >&2; exit 1; }
  sed -n "s|^epoch $epochs/$epochs |  last epoch: |p" "$out/$1.log"
  echo "$2: test accuracy $acc"
}

echo "== fmnist-ref, global batch 2048 ($ranks ranks x $batch), $epochs epochs, lr $lr per" \
     "rank x $ranks, warmup $warmup epochs from 0.01, cosine to 0, weight decay $wd"
run lars lars
run momentum momentum
