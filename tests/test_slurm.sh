#!/bin/bash
# test_slurm.sh - jobs/train.slurm on a real SLURM: a one-node cluster
# (munged, slurmctld, slurmd) started here as root with everything under a
# temp dir, then
#   job A: a short training run, launched with srun --mpi=pmix, runs to
#          the end: its output and model.h5 are checked
#   job B: the same run launched with mpirun is signalled like a time limit
#          does (scancel --signal=USR1 --batch): it checkpoints, exits 75,
#          requeues itself, runs again with SLURM_RESTART_COUNT=1, resumes
#          and finishes, with bitwise the model of job A
#   jobs/sweep.slurm passes bash -n (`mpicnn sweep` has its own tests)
# The daemons are stopped by PID and the temp dir removed on any exit.
# Skips (exit 77) without slurm-wlm and munge or without root. Bounded:
# every wait has a timeout, the whole test gives up after 170 s.
# Needs $MPICNN, $top_srcdir and $top_builddir (set by `make check`).
# shellcheck disable=SC2317 # functions called by traps and wait_until
set -u
: "${MPICNN:?MPICNN must name the mpicnn program}"
srcdir=${top_srcdir:-.}
builddir=${top_builddir:-.}
start_time=$SECONDS
budget=170

for p in slurmctld slurmd sbatch scontrol scancel sinfo munged mungekey h5diff; do
    command -v "$p" >/dev/null 2>&1 || {
        echo "SKIP: $p not found: install slurm-wlm and munge (jobs/quickstart.sh check does)"
        exit 77
    }
done
[ "$(id -u)" -eq 0 ] || {
    echo "SKIP: starting slurmd needs root"
    exit 77
}

# nothing from an outer SLURM job may leak into ours
for v in $(env | sed -n 's/^\(SLURM_[A-Za-z0-9_]*\)=.*/\1/p'); do unset "$v"; done

t=$(mktemp -d "${TMPDIR:-/tmp}/mpicnn-slurm-XXXXXX") || exit 99
chmod 755 "$t" # munged wants every directory above its socket searchable
pids=()        # daemons started here, stopped by PID
jobs_submitted=()

stop_all() {
    local p
    if [ ${#jobs_submitted[@]} -gt 0 ]; then
        timeout 10 scancel "${jobs_submitted[@]}" 2>/dev/null
        for _ in $(seq 100); do
            [ -z "$(timeout 5 squeue -h -o %i 2>/dev/null)" ] && break
            sleep 0.1
        done
    fi
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for _ in $(seq 100); do
        local alive=0
        for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ "$alive" -eq 0 ] && break
        sleep 0.1
    done
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
    pids=()
    rm -rf "$t"
}
trap stop_all EXIT
trap 'exit 1' INT TERM

fail() {
    echo "FAIL: $*"
    local f
    for f in "$t"/*.out "$t"/log/*.log; do
        [ -f "$f" ] && { echo "--- $f"; tail -n 40 "$f"; }
    done
    exit 1
}
left() { echo $((budget - (SECONDS - start_time))); }

# wait_until SECONDS WHAT COMMAND...: polls COMMAND every 0.2 s
wait_until() {
    local limit=$1 what=$2 end
    shift 2
    end=$((SECONDS + limit))
    [ "$(left)" -lt "$limit" ] && end=$((SECONDS + $(left)))
    until "$@"; do
        [ $SECONDS -lt $end ] || fail "timed out waiting for $what"
        sleep 0.2
    done
}

# --- munge: a key, a socket, logs and pid file of our own
mkdir -p "$t/munge" "$t/log" "$t/state" "$t/spool"
chmod 755 "$t/munge"
mungekey -c -k "$t/munge/munge.key" 2>/dev/null ||
    dd if=/dev/urandom of="$t/munge/munge.key" bs=128 count=1 2>/dev/null
chmod 400 "$t/munge/munge.key"
sock="$t/munge/munge.socket"
munged -F --key-file="$t/munge/munge.key" --socket="$sock" \
    --pid-file="$t/munge/munged.pid" --log-file="$t/log/munged.log" \
    --seed-file="$t/munge/munged.seed" >"$t/log/munged.out.log" 2>&1 &
pids+=($!)
wait_until 10 "munged's socket" test -S "$sock"

# --- two free TCP ports next to each other
port_free() { ! ss -Htan 2>/dev/null | awk '{print $4}' | grep -q ":$1\$"; }
port=""
for _ in $(seq 50); do
    p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
    if port_free "$p" && port_free $((p + 1)); then
        port=$p
        break
    fi
done
[ -n "$port" ] || fail "no free port pair found"

# --- slurm.conf: this host with its real CPUs and memory
nodeline=$(slurmd -C | head -n 1)
node=$(echo "$nodeline" | sed -n 's/^NodeName=\([^ ]*\) .*/\1/p')
[ -n "$node" ] || fail "slurmd -C gave no NodeName: $nodeline"
export SLURM_CONF="$t/slurm.conf"
cat >"$SLURM_CONF" <<EOF
ClusterName=mpicnntest
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$port
SlurmdPort=$((port + 1))
AuthType=auth/munge
CredType=cred/munge
# cred_expire is also how long a requeued job waits before it may start
AuthInfo=socket=$sock,cred_expire=5
StateSaveLocation=$t/state
SlurmdSpoolDir=$t/spool
SlurmctldPidFile=$t/slurmctld.pid
SlurmdPidFile=$t/slurmd.pid
SlurmctldLogFile=$t/log/slurmctld.log
SlurmdLogFile=$t/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/builtin
SchedulerParameters=sched_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MailProg=/bin/true
ReturnToService=2
JobRequeue=1
KillWait=5
MinJobAge=600
InactiveLimit=0
$nodeline NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=test Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
slurmctld -D -f "$SLURM_CONF" >"$t/log/slurmctld.out.log" 2>&1 &
pids+=($!)
slurmd -D -f "$SLURM_CONF" -N "$node" >"$t/log/slurmd.out.log" 2>&1 &
pids+=($!)
node_idle() { [ "$(sinfo -h -N -n "$node" -o %T 2>/dev/null)" = idle ]; }
wait_until 40 "node $node to be idle" node_idle
echo "ok: one-node cluster up: $node, ports $port and $((port + 1)), $(nproc) CPUs"

# --- the data and a config that trains in a few seconds
"$builddir/tests/test_resume_synth" "$t" 2400 200 12 || fail "cannot write the data set"
cat >"$t/run.ini" <<EOF
[data]
format = idx
dir = $t
train_images = train-images.idx
train_labels = train-labels.idx
test_images = test-images.idx
test_labels = test-labels.idx
validation = 200

[net]
layers = conv1, relu1, pool1, drop, fc1

[conv1]
type = conv
filters = 6
kernel = 3
pad = 1

[relu1]
type = relu

[pool1]
type = maxpool
size = 2

[drop]
type = dropout
p = 0.2

[fc1]
type = dense
units = 4

[optimizer]
type = adam
lr = 0.01

[train]
epochs = 4
batch_size = 8
seed = 5
threads = 1
log_every = 40

[checkpoint]
every_steps = 20
EOF

# submit NAME LAUNCHER: jobs/train.slurm with 2 ranks x 1 thread; job id in $job
submit() {
    job=$(MPICNN_CONFIG="$t/run.ini" MPICNN_OUT="$t/$1" MPICNN="$MPICNN" MPICNN_LAUNCHER=$2 \
        timeout 20 sbatch --parsable --nodes=1 --ntasks-per-node=2 --cpus-per-task=1 \
        --time=10 --output="$t/$1.out" "$srcdir/jobs/train.slurm") ||
        fail "sbatch $1 failed"
    job=${job%%;*}
    jobs_submitted+=("$job")
}
field() { scontrol show job "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1; }
job_ended() {
    case "$(field "$1" JobState)" in
    COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL) return 0 ;;
    esac
    return 1
}
expect() { # FILE PATTERN WHAT
    grep -q -- "$2" "$1" || fail "$3: no '$2' in $(basename "$1")"
}

# --- job A: to the end, under srun --mpi=pmix
submit a srun
a=$job
wait_until 90 "job $a to end" job_ended "$a"
[ "$(field "$a" JobState)" = COMPLETED ] || fail "job $a: $(field "$a" JobState)"
expect "$t/a.out" "running on $node as job $a (restart 0)" "job A"
expect "$t/a.out" "^test accuracy: " "job A"
expect "$t/a.out" "finished: $t/a/model.h5" "job A"
"$MPICNN" info "$t/a/model.h5" >"$t/a-info.out" 2>&1 || fail "job A: model.h5 does not load"
echo "ok: job $a (srun) finished: $(grep '^test accuracy' "$t/a.out")"

# --- job B: signalled mid-run, checkpoints, requeues, resumes, finishes.
# MPICNN_FAULT=slow:5 (passed on by sbatch) makes each step 5 ms longer,
# so that the signal lands in the middle of the run however fast the
# machine is (sleeping changes no number).
MPICNN_FAULT=slow:5 submit b mpirun
b=$job
wait_until 60 "job $b to write its first checkpoint" test -e "$t/b/checkpoint.h5"
scancel --signal=USR1 --batch "$b" || fail "scancel --signal=USR1 --batch $b failed"
wait_until 90 "job $b to be requeued and end" job_ended "$b"
state=$(field "$b" JobState) restarts=$(field "$b" Restarts)
[ "$state" = COMPLETED ] || fail "job $b: $state"
[ "${restarts:-0}" -ge 1 ] || fail "job $b finished without a restart: the signal came too late?"
expect "$t/b.out" "restart 0 (SLURM_RESTART_COUNT=0)" "job B, first run"
expect "$t/b.out" "SIGUSR1: asking mpicnn to checkpoint" "job B, first run"
expect "$t/b.out" "stopped by a signal at epoch" "job B, first run"
expect "$t/b.out" "checkpointed (exit 75): requeueing" "job B, first run"
expect "$t/b.out" "restart 1 (SLURM_RESTART_COUNT=1)" "job B, second run"
expect "$t/b.out" "running on $node as job $b (restart 1)" "job B, second run"
expect "$t/b.out" "resuming at epoch" "job B, second run"
expect "$t/b.out" "finished: $t/b/model.h5" "job B, second run"
h5diff -q "$t/a/model.h5" "$t/b/model.h5" /layers /layers ||
    fail "job B's model differs from job A's: the resume was not exact"
echo "ok: job $b (mpirun) signalled, checkpointed (exit 75), requeued (Restarts=$restarts)," \
    "resumed, finished with bitwise job A's model"

bash -n "$srcdir/jobs/sweep.slurm" || fail "jobs/sweep.slurm has a syntax error"
echo "ok: $((SECONDS - start_time)) s"
exit 0
