#!/bin/sh
# The benchmark table (docs/performance.md): mpicnn and, when python3-torch
# is installed, PyTorch side by side in one run, on the same cores.
#   make bench            (or: sh bench/run.sh from the build directory)
set -eu
MPIEXEC=${MPIEXEC:-mpirun}
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
here=$(cd "$(dirname "$0")" && pwd)
bench=${BENCH:-bench/mpicnn-bench}
secs=${BENCH_SECONDS:-5}
cores=$(nproc)

echo "== layers (1 thread, then $cores threads)"
OMP_NUM_THREADS=1 "$bench" --threads 1 --layers-only --seconds "$secs"
[ "$cores" -gt 1 ] && OMP_NUM_THREADS=$cores "$bench" --threads "$cores" --layers-only --seconds "$secs"

echo "== whole training steps"
"$MPIEXEC" -np 1 -x OMP_NUM_THREADS=1 "$bench" --threads 1 --steps-only --seconds "$secs"
if [ "$cores" -gt 1 ]; then
  "$MPIEXEC" -np 1 --bind-to none -x OMP_NUM_THREADS=2 "$bench" --threads 2 --steps-only --seconds "$secs"
  "$MPIEXEC" -np 2 -x OMP_NUM_THREADS=1 "$bench" --threads 1 --steps-only --seconds "$secs"
fi

if [ "$cores" -gt 1 ]; then
  echo "== all-reduce"
  "$MPIEXEC" -np 2 "$bench" --allreduce
fi

if /usr/bin/python3 -c "import torch" 2>/dev/null; then
  echo "== PyTorch on the same cores"
  /usr/bin/python3 "$here/torch_ref.py" steps --threads 1 --seconds "$secs"
  [ "$cores" -gt 1 ] && /usr/bin/python3 "$here/torch_ref.py" steps --threads 2 --seconds "$secs"
  [ "$cores" -gt 1 ] && /usr/bin/python3 "$here/torch_ref.py" ddp --seconds "$secs"
else
  echo "== PyTorch: python3-torch is not installed (apt-get install python3-torch); no comparison"
fi
