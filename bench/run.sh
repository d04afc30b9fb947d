#!/bin/sh
# The benchmark table (docs/performance.md): mpicnn and, when python3-torch
# is installed, PyTorch side by side in one run, on the same cores.
#   make bench            (or: sh bench/run.sh from the build directory)
#   sh bench/run.sh pack  the pack benchmark instead (bench/pack.sh, make bench-pack)
#   sh bench/run.sh steps the whole-step comparison alone
#   BENCH_SECONDS=S       seconds per measurement (default 5)
#   BENCH_ROUNDS=R        rounds of the whole-step and ResNet-20 conv comparisons (default 3)
#   BENCH_CONV_SECONDS=S  seconds per ResNet-20 conv layer and pass (default 0.6)
# (bench/mpicnn-bench --phases adds each rank's median and 90th-percentile
# compute, all-reduce and update time per step.)
# Whole training steps are measured in R rounds that alternate mpicnn and
# PyTorch, so both see the same load on a shared machine; the summary
# takes each one's best round (and its median) and the ratio of the two.
# On one thread both run pinned to the same core, core 0 in the first
# round, core 1 in the second and so on: on a virtual machine one core
# can run slower than the other for minutes, and a pair of runs on
# different cores would measure that.
#
# PyTorch allocates and frees its activations every step. Under glibc's
# default malloc settings blocks of this size are mmap'ed and unmapped
# each time, and the page faults cost PyTorch half its speed on these nets
# (a real training script usually escapes this by accident: freeing the
# data set's temporaries raises glibc's mmap threshold). PyTorch therefore
# runs with the threshold raised (BENCH_TORCH_MALLOC=default to measure
# it without). mpicnn allocates nothing per step and is not affected.
set -eu
MPIEXEC=${MPIEXEC:-mpirun}
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
here=$(cd "$(dirname "$0")" && pwd)
if [ "${1:-}" = pack ]; then exec sh "$here/pack.sh"; fi
only=${1:-all}
bench=${BENCH:-bench/mpicnn-bench}
secs=${BENCH_SECONDS:-5}
rounds=${BENCH_ROUNDS:-3}
cores=$(nproc)
torch=0
torchenv="MALLOC_MMAP_THRESHOLD_=67108864 MALLOC_TRIM_THRESHOLD_=268435456"
[ "${BENCH_TORCH_MALLOC:-}" = default ] && torchenv=""
/usr/bin/python3 -c "import torch" 2>/dev/null && torch=1
log=$(mktemp)
pc=$(mktemp)
trap 'rm -f "$log" "$log.out" "$pc" "$pc.out"' EXIT

if [ "$only" != steps ]; then
echo "== layers (1 thread, then $cores threads)"
OMP_NUM_THREADS=1 "$bench" --threads 1 --layers-only --seconds "$secs"
[ "$cores" -gt 1 ] && OMP_NUM_THREADS=$cores "$bench" --threads "$cores" --layers-only --seconds "$secs"
fi

# measure TAG COMMAND...: runs COMMAND, shows its output and keeps each
# of its "NET ... N images/s" lines in $log as "TAG NET N"
measure() {
  t=$1
  shift
  "$@" >"$log.out"
  cat "$log.out"
  sed -n "s/^\(pytorch \)\{0,1\}\([a-z0-9-]*\) .* \([0-9][0-9]*\) images\/s.*/$t \2 \3/p" "$log.out" >>"$log"
}

# ResNet-20's conv layers one by one, mpicnn and PyTorch alternating, by
# CPU time on one thread (a loaded machine inflates it less than the wall
# clock); the summary gives the median of the rounds' sums over the net
csecs=${BENCH_CONV_SECONDS:-0.6}
[ "$only" != steps ] && echo "== ResNet-20's conv layers, $rounds rounds (mpicnn, then PyTorch; 1 thread, ms of CPU time)"
r=1
[ "$only" = steps ] && r=$((rounds + 1))
while [ "$r" -le "$rounds" ]; do
  echo "-- round $r"
  OMP_NUM_THREADS=1 "$bench" --threads 1 --cpu-time --resnet-convs --seconds "$csecs" | tee "$pc.out"
  sed -n 's/^ResNet-20 convs, CIFAR: fwd \([0-9.]*\) ms, bwd \([0-9.]*\) ms a step; Fashion-MNIST: fwd \([0-9.]*\) ms, bwd \([0-9.]*\) ms/mpicnn \1 \2 \3 \4/p' "$pc.out" >>"$pc"
  if [ "$torch" -eq 1 ]; then
    env $torchenv /usr/bin/python3 "$here/torch_ref.py" convs --threads 1 --cpu-time --seconds "$csecs" | tee "$pc.out"
    sed -n 's/^pytorch ResNet-20 convs, CIFAR: fwd \([0-9.]*\) ms, bwd \([0-9.]*\) ms a step; Fashion-MNIST: fwd \([0-9.]*\) ms, bwd \([0-9.]*\) ms/pytorch \1 \2 \3 \4/p' "$pc.out" >>"$pc"
  fi
  r=$((r + 1))
done
[ "$only" != steps ] && awk '{ n[$1]++; c[$1, n[$1]] = $2 + $3; f[$1, n[$1]] = $4 + $5 }
     function median(a, who, m,   i, j, t, v) {
       for (i = 1; i <= m; i++) v[i] = a[who, i]
       for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
       return m % 2 ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2 }
     END {
       for (w in n) printf "%-8s ResNet-20 convs, forward + backward, median of %d rounds: CIFAR %.1f ms, Fashion-MNIST %.1f ms\n", w, n[w], median(c, w, n[w]), median(f, w, n[w])
       if (n["mpicnn"] && n["pytorch"])
         printf "PyTorch / mpicnn: CIFAR %.2fx, Fashion-MNIST %.2fx\n",
                median(c, "pytorch", n["pytorch"]) / median(c, "mpicnn", n["mpicnn"]),
                median(f, "pytorch", n["pytorch"]) / median(f, "mpicnn", n["mpicnn"]) }' "$pc"
: >"$pc"

echo "== whole training steps, $rounds rounds (mpicnn, then PyTorch, on the same cores)"
[ -n "$torchenv" ] && echo "   (PyTorch runs with $torchenv)"
[ "$torch" -eq 1 ] || echo "   (python3-torch is not installed: apt-get install python3-torch; no comparison)"
r=1
while [ "$r" -le "$rounds" ]; do
  core=$(((r - 1) % cores))
  echo "-- round $r (one thread: core $core)"
  measure 1x1 "$MPIEXEC" -np 1 --bind-to none -x OMP_NUM_THREADS=1 taskset -c "$core" "$bench" --threads 1 --steps-only --seconds "$secs"
  [ "$torch" -eq 1 ] && measure 1x1-torch env $torchenv taskset -c "$core" /usr/bin/python3 "$here/torch_ref.py" steps --threads 1 --seconds "$secs"
  if [ "$cores" -gt 1 ]; then
    measure 1x2 "$MPIEXEC" -np 1 --bind-to none -x OMP_NUM_THREADS=2 "$bench" --threads 2 --steps-only --seconds "$secs"
    [ "$torch" -eq 1 ] && measure 1x2-torch env $torchenv /usr/bin/python3 "$here/torch_ref.py" steps --threads 2 --seconds "$secs"
    measure 2x1 "$MPIEXEC" -np 2 -x OMP_NUM_THREADS=1 "$bench" --threads 1 --steps-only --seconds "$secs"
    [ "$torch" -eq 1 ] && measure 2x1-torch env $torchenv /usr/bin/python3 "$here/torch_ref.py" ddp --seconds "$secs"
  fi
  r=$((r + 1))
done

echo "== summary: images/s, best of $rounds rounds (median in brackets)"
awk -v torch="$torch" '
  { key = $1 " " $2; v[key, ++n[key]] = $3 }
  function best(k,   i, b) { b = 0; for (i = 1; i <= n[k]; i++) if (v[k, i] > b) b = v[k, i]; return b }
  function median(k,   i, j, t, a, m) {
    m = n[k]; for (i = 1; i <= m; i++) a[i] = v[k, i]
    for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2 }
  END {
    split("1x1 1x2 2x1", cfg, " ")
    name["1x1"] = "-np 1 x 1 thread "; name["1x2"] = "-np 1 x 2 threads"; name["2x1"] = "-np 2 x 1 thread "
    tname["1x1"] = "1 thread"; tname["1x2"] = "2 threads"; tname["2x1"] = "DDP 2 x 1"
    printf "%-15s %-18s %16s %18s %14s\n", "net", "run", "mpicnn", "pytorch", "ratio (best)"
    nn = split("fmnist-ref cifar-3layer resnet20-fmnist resnet20-cifar", nets, " ")
    for (a = 1; a <= nn; a++) for (c = 1; c <= 3; c++) {
      k = cfg[c] " " nets[a]; t = cfg[c] "-torch " nets[a]
      if (!n[k]) continue
      if (torch && n[t])
        printf "%-15s %-18s %7d (%6d) %9d (%6d) %13.2fx\n", nets[a], name[cfg[c]], best(k), median(k),
               best(t), median(t), best(k) / best(t)
      else
        printf "%-15s %-18s %7d (%6d)\n", nets[a], name[cfg[c]], best(k), median(k)
    }
    for (a = 1; a <= nn; a++) {
      k1 = "1x1 " nets[a]; k2 = "2x1 " nets[a]
      if (n[k1] && n[k2]) printf "%-15s -np 2 / -np 1 (same batch per rank): %.2fx\n", nets[a], best(k2) / best(k1)
    }
  }' "$log"

if [ "$cores" -gt 1 ] && [ "$only" != steps ]; then
  # mpirun binds -np 1 to core 0 and -np 2's ranks to cores 0 and 1, and
  # a step of -np 2 lasts as long as its slower rank. On a virtual machine
  # the cores need not be equally fast: one rank per core, then each
  # rank's step broken into its phases, show how far they differ.
  echo "== one rank on each core (fmnist-ref), then -np 2's phases per rank, $rounds rounds"
  r=1
  while [ "$r" -le "$rounds" ]; do
    c=0
    while [ "$c" -lt "$cores" ]; do
      echo "-- round $r, core $c"
      "$MPIEXEC" -np 1 --bind-to none -x OMP_NUM_THREADS=1 taskset -c "$c" "$bench" --threads 1 \
        --steps-only --net fmnist-ref --seconds "$secs" --phases | tee "$pc.out"
      sed -n "s/^fmnist-ref .* \([0-9][0-9]*\) images\/s.*/$r core$c \1/p" "$pc.out" >>"$pc"
      c=$((c + 1))
    done
    echo "-- round $r, -np 2"
    "$MPIEXEC" -np 2 -x OMP_NUM_THREADS=1 "$bench" --threads 1 --steps-only --net fmnist-ref \
      --seconds "$secs" --phases | tee "$pc.out"
    sed -n "s/^fmnist-ref .* \([0-9][0-9]*\) images\/s.*/$r np2 \1/p" "$pc.out" >>"$pc"
    r=$((r + 1))
  done
  # -np 2 against what its cores do alone in the same minute, round by
  # round: against core 0 (where mpirun puts -np 1); against the mean of
  # cores 0 and 1, the scaling that does not depend on which core is the
  # faster one in that minute; and against twice the slower core, the
  # most a step that waits for its slower rank can reach
  awk '{ v[$1, $2] = $3; if ($1 > n) n = $1 }
       function median(a, m,   i, j, t) {
         for (i = 1; i <= m; i++)
           for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
         return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2 }
       END {
         print "round  core 0  core 1   -np 2  -np 2 / core 0  / mean of both  / 2 x slower"
         for (r = 1; r <= n; r++) {
           if (!v[r, "core0"] || !v[r, "core1"] || !v[r, "np2"]) continue
           m++
           a[m] = v[r, "np2"] / v[r, "core0"]
           b[m] = 2 * v[r, "np2"] / (v[r, "core0"] + v[r, "core1"])
           slow = v[r, "core0"] < v[r, "core1"] ? v[r, "core0"] : v[r, "core1"]
           c[m] = v[r, "np2"] / (2 * slow)
           printf "%5d %7d %7d %7d %14.2fx %14.2fx %12.1f%%\n", r, v[r, "core0"], v[r, "core1"],
                  v[r, "np2"], a[m], b[m], 100 * c[m]
         }
         if (m) printf "median of %d rounds: -np 2 / core 0 %.2fx, / mean of both cores %.2fx, " \
                       "/ 2 x slower core %.1f%%\n", m, median(a, m), median(b, m), 100 * median(c, m) }' "$pc"
  echo "-- -np 2, gradients summed by MPI_Allreduce (MPICNN_GRAD_SUM=mpi), for comparison"
  "$MPIEXEC" -np 2 -x OMP_NUM_THREADS=1 -x MPICNN_GRAD_SUM=mpi "$bench" --threads 1 --steps-only \
    --net fmnist-ref --seconds "$secs" --phases
  echo "== all-reduce"
  "$MPIEXEC" -np 2 "$bench" --allreduce
fi
