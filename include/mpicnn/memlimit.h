/* memlimit.h - how much memory one rank may plan for.
 *
 * A run computes its memory plan before it allocates anything big (the
 * net's arenas: cnn_net_plan in net.h; the optimizer state, the data set)
 * and refuses with CNN_ENOMEM when the plan is over its budget, so that a
 * config that asks for too much stops with a message instead of starting
 * the kernel's OOM killer.
 *
 * The budget is given in MB (2^20 bytes) by [train] max_memory_mb or a
 * command's --max-memory. When it is not given (0), it is 80% of what the
 * node allows divided by the ranks on the node, where the node allows the
 * smallest of:
 *   - the memory cgroup's limit: cgroup v2 memory.max or v1
 *     memory.limit_in_bytes of the process's cgroup and its parents;
 *   - MemAvailable in /proc/meminfo;
 *   - SLURM_MEM_PER_NODE (MB), or SLURM_MEM_PER_CPU (MB) times the CPUs
 *     of the job on the node (SLURM_CPUS_ON_NODE, else
 *     SLURM_CPUS_PER_TASK), when set.
 * With none of them known there is no limit.
 *
 * The readers take their paths and values as arguments, so that tests
 * feed them made-up files; cnn_memlimit_system() gives the real ones. */
#ifndef MPICNN_MEMLIMIT_H
#define MPICNN_MEMLIMIT_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "mpicnn/status.h"
#include "mpicnn/str.h"

#define CNN_MB ((uint64_t)1 << 20)
#define CNN_MEM_UNLIMITED UINT64_MAX
#define CNN_MEM_AUTO_PERCENT 80 /* of the node's limit, when no budget is given */

/* Where the node's limits are read from. A NULL path or value: not known. */
typedef struct {
    const char *proc_cgroup;        /* /proc/self/cgroup */
    const char *cgroup_root;        /* /sys/fs/cgroup */
    const char *meminfo;            /* /proc/meminfo */
    const char *slurm_mem_per_node; /* $SLURM_MEM_PER_NODE, MB */
    const char *slurm_mem_per_cpu;  /* $SLURM_MEM_PER_CPU, MB */
    const char *slurm_cpus_on_node; /* $SLURM_CPUS_ON_NODE */
    const char *slurm_cpus_per_task;/* $SLURM_CPUS_PER_TASK */
} cnn_memlimit_src_t;

/* What one rank may allocate. */
typedef struct {
    uint64_t bytes; /* CNN_MEM_UNLIMITED: no limit known */
    char why[256];  /* where it comes from, for messages */
} cnn_membudget_t;

/* The real sources: the files above and the environment (getenv's
 * strings, valid until the environment changes). */
cnn_memlimit_src_t cnn_memlimit_system(void);

/* Each reader returns 1 and the limit in *bytes, or 0 when it finds none
 * (a missing or unreadable file, "max", an unset or malformed value).
 *
 * cgroup: the smallest memory.max (v2, the "0::PATH" line of proc_cgroup)
 * or memory.limit_in_bytes (v1, the line listing the memory controller,
 * under ROOT/memory) of ROOT/PATH and each parent up to ROOT; a v1 value
 * of 2^60 or more means no limit. Without proc_cgroup, PATH is "/". */
int cnn_memlimit_cgroup(const char *proc_cgroup, const char *root, uint64_t *bytes);
/* MemAvailable of a /proc/meminfo file. */
int cnn_memlimit_meminfo(const char *path, uint64_t *bytes);
/* Slurm's limit for this job on the node from the variables' values. */
int cnn_memlimit_slurm(const cnn_memlimit_src_t *src, uint64_t *bytes);

/* The smallest of the three; 0 (and *bytes = CNN_MEM_UNLIMITED) when none
 * is known. why gets which one it was and its size ("MemAvailable
 * 23703 MB"), or "no limit found". */
int cnn_memlimit_node(const cnn_memlimit_src_t *src, uint64_t *bytes, char *why, size_t len);

/* The budget: max_mb MB when max_mb > 0 (`setting` names where it was
 * given, "[train] max_memory_mb = 100"), else CNN_MEM_AUTO_PERCENT% of the
 * node's limit over ranks_on_node (>= 1); `setting` then names how to
 * give another ("[train] max_memory_mb"). Pure; never fails. */
void cnn_membudget_make(long max_mb, const char *setting, const cnn_memlimit_src_t *src,
                        int ranks_on_node, cnn_membudget_t *b);

/* Collective over comm when max_mb is 0 (every rank passes the same
 * max_mb): counts the ranks on this rank's node (MPI_COMM_TYPE_SHARED)
 * and makes the budget from the system's limits. Not collective when
 * max_mb > 0. CNN_ECOMM if MPI fails. */
cnn_status_t cnn_membudget_get(MPI_Comm comm, long max_mb, const char *setting,
                               cnn_membudget_t *b);

/* One item of a memory plan, for the budget check's message. */
typedef struct {
    const char *what; /* "optimizer state", "test set"; borrowed */
    size_t bytes;     /* SIZE_MAX: does not fit in size_t */
} cnn_mem_item_t;

/* CNN_OK when the n items (a plan without a net, such as knn's) fit in
 * the budget; else CNN_ENOMEM with a message giving the total, the budget
 * and where it comes from, and each item. A sum that overflows is over
 * every budget. */
cnn_status_t cnn_mem_check(const cnn_mem_item_t *items, int n, const cnn_membudget_t *budget);

/* cnn_mem_str, the size as text, is in str.h. */

/* Saturating size arithmetic for plans: SIZE_MAX stands for "does not
 * fit", and stays SIZE_MAX, so an overflow is over every budget. */
static inline size_t cnn_mem_add(size_t a, size_t b)
{
    size_t r;
    return __builtin_add_overflow(a, b, &r) ? SIZE_MAX : r;
}
static inline size_t cnn_mem_mul(size_t a, size_t b)
{
    size_t r;
    if (a == SIZE_MAX && b) return SIZE_MAX;
    if (b == SIZE_MAX && a) return SIZE_MAX;
    return __builtin_mul_overflow(a, b, &r) ? SIZE_MAX : r;
}

#endif
