/* memlimit.c - the node's memory limits (cgroup, /proc/meminfo, Slurm)
 * and the per-rank budget made from them. See mpicnn/memlimit.h. */
#include "mpicnn/memlimit.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpicnn/dist.h"

/* A v1 cgroup without a limit reports a number near 2^63. */
#define CGROUP_NO_LIMIT ((uint64_t)1 << 60)

/* The whole of s as a decimal number (blanks around it allowed), with
 * the characters of `suffixes` allowed right after it; *suffix gets the
 * one found or '\0'. 0 if malformed or out of range. */
static int parse_num(const char *s, const char *suffixes, uint64_t *v, char *suffix)
{
    if (!s) return 0;
    while (*s == ' ' || *s == '\t') s++;
    if (*s < '0' || *s > '9') return 0;
    errno = 0;
    char *end;
    const unsigned long long x = strtoull(s, &end, 10);
    if (errno) return 0;
    *suffix = *end && strchr(suffixes, *end) ? *end++ : '\0';
    while (*end == ' ' || *end == '\t' || *end == '\n') end++;
    if (*end) return 0;
    *v = x;
    return 1;
}

static int parse_u64(const char *s, uint64_t *v)
{
    char suffix;
    return parse_num(s, "", v, &suffix);
}

/* Slurm's memory value: MB, or a number with a K, M, G or T suffix. */
static int parse_mb(const char *s, uint64_t *mb)
{
    char u;
    uint64_t x;
    if (!parse_num(s, "KMGTkmgt", &x, &u)) return 0;
    const int shift = (u == 'G' || u == 'g') ? 10 : (u == 'T' || u == 't') ? 20 : 0;
    if (x > (UINT64_MAX / CNN_MB) >> shift) return 0;
    *mb = (u == 'K' || u == 'k') ? (x + 1023) / 1024 : x << shift;
    return 1;
}

/* The first line of a small file, trimmed of its newline; 0 if unreadable. */
static int read_line(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    const int ok = fgets(buf, (int)len, f) != NULL;
    fclose(f);
    if (ok) buf[strcspn(buf, "\n")] = '\0';
    return ok;
}

/* A limit file's value: a byte count; "max" or a v1 "no limit" is none. */
static int read_limit(const char *path, uint64_t *bytes)
{
    char line[64];
    uint64_t v;
    if (!read_line(path, line, sizeof line) || !strcmp(line, "max")) return 0;
    if (!parse_u64(line, &v) || v >= CGROUP_NO_LIMIT) return 0;
    *bytes = v;
    return 1;
}

/* 1 if the comma list `ctrls` names `name`. */
static int lists(const char *ctrls, const char *name)
{
    const size_t n = strlen(name);
    for (const char *p = ctrls; p && *p;) {
        const size_t k = strcspn(p, ",");
        if (k == n && !strncmp(p, name, n)) return 1;
        p = p[k] ? p + k + 1 : p + k;
    }
    return 0;
}

/* From proc_cgroup: the cgroup's directory under root (v2: root/PATH; v1:
 * root/memory/PATH) into dir, the base it must not walk above into base,
 * and the limit file's name. Without a usable file: v2, then v1, at "/". */
static void cgroup_dirs(const char *proc_cgroup, const char *root, int v1, char *dir,
                        size_t dlen, char *base, size_t blen)
{
    char line[1024], path[1024] = "/";
    FILE *f = proc_cgroup ? fopen(proc_cgroup, "r") : NULL;
    while (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2) continue;
        *c1 = *c2 = '\0';
        const int is_v2 = !strcmp(line, "0") && c1 + 1 == c2;
        if ((v1 && lists(c1 + 1, "memory")) || (!v1 && is_v2))
            snprintf(path, sizeof path, "%s", c2[1] ? c2 + 1 : "/");
    }
    if (f) fclose(f);
    snprintf(base, blen, "%s%s", root, v1 ? "/memory" : "");
    snprintf(dir, dlen, "%s%s", base, strcmp(path, "/") ? path : "");
}

/* The smallest limit file `name` in dir and its parents down to base. */
static int walk_up(char *dir, const char *base, const char *name, uint64_t *bytes)
{
    const size_t blen = strlen(base);
    int found = 0;
    char file[2200];
    for (;;) {
        uint64_t v = 0;
        snprintf(file, sizeof file, "%s/%s", dir, name);
        if (read_limit(file, &v) && (!found || v < *bytes)) {
            *bytes = v;
            found = 1;
        }
        char *slash = strrchr(dir, '/');
        if (strlen(dir) <= blen || !slash || (size_t)(slash - dir) < blen) break;
        *slash = '\0';
    }
    return found;
}

int cnn_memlimit_cgroup(const char *proc_cgroup, const char *root, uint64_t *bytes)
{
    if (!root) return 0;
    int found = 0;
    for (int v1 = 0; v1 <= 1; v1++) {
        char dir[2048], base[1100];
        uint64_t v = 0;
        cgroup_dirs(proc_cgroup, root, v1, dir, sizeof dir, base, sizeof base);
        if (walk_up(dir, base, v1 ? "memory.limit_in_bytes" : "memory.max", &v) &&
            (!found || v < *bytes)) {
            *bytes = v;
            found = 1;
        }
    }
    return found;
}

int cnn_memlimit_meminfo(const char *path, uint64_t *bytes)
{
    char line[256];
    FILE *f = path ? fopen(path, "r") : NULL;
    int found = 0;
    while (f && !found && fgets(line, sizeof line, f)) {
        unsigned long long kb;
        char unit[8] = "";
        if (sscanf(line, "MemAvailable: %llu %7s", &kb, unit) >= 1 &&
            kb <= UINT64_MAX / 1024) {
            *bytes = (uint64_t)kb * (strcmp(unit, "kB") && unit[0] ? 1 : 1024);
            found = 1;
        }
    }
    if (f) fclose(f);
    return found;
}

/* Slurm's limit and the variable it came from. */
static int slurm_limit(const cnn_memlimit_src_t *src, uint64_t *bytes, const char **name)
{
    uint64_t mb, cpus;
    /* 0 asks Slurm for all of a node's memory: no limit of its own */
    if (parse_mb(src->slurm_mem_per_node, &mb) && mb > 0) {
        *bytes = mb * CNN_MB;
        *name = "SLURM_MEM_PER_NODE";
        return 1;
    }
    *name = "SLURM_MEM_PER_CPU x CPUs";
    if (!parse_mb(src->slurm_mem_per_cpu, &mb) || mb == 0) return 0;
    if (!(parse_u64(src->slurm_cpus_on_node, &cpus) && cpus > 0) &&
        !(parse_u64(src->slurm_cpus_per_task, &cpus) && cpus > 0))
        cpus = 1;
    if (mb > UINT64_MAX / CNN_MB / cpus) return 0;
    *bytes = mb * CNN_MB * cpus;
    return 1;
}

int cnn_memlimit_slurm(const cnn_memlimit_src_t *src, uint64_t *bytes)
{
    const char *name;
    return slurm_limit(src, bytes, &name);
}

cnn_memlimit_src_t cnn_memlimit_system(void)
{
    return (cnn_memlimit_src_t){
        .proc_cgroup = "/proc/self/cgroup",
        .cgroup_root = "/sys/fs/cgroup",
        .meminfo = "/proc/meminfo",
        .slurm_mem_per_node = getenv("SLURM_MEM_PER_NODE"),
        .slurm_mem_per_cpu = getenv("SLURM_MEM_PER_CPU"),
        .slurm_cpus_on_node = getenv("SLURM_CPUS_ON_NODE"),
        .slurm_cpus_per_task = getenv("SLURM_CPUS_PER_TASK"),
    };
}

int cnn_memlimit_node(const cnn_memlimit_src_t *src, uint64_t *bytes, char *why, size_t len)
{
    uint64_t v[3];
    const char *name[3] = {"the cgroup limit", "MemAvailable", NULL};
    const int has[3] = {cnn_memlimit_cgroup(src->proc_cgroup, src->cgroup_root, &v[0]),
                        cnn_memlimit_meminfo(src->meminfo, &v[1]),
                        slurm_limit(src, &v[2], &name[2])};
    int best = -1;
    for (int i = 0; i < 3; i++)
        if (has[i] && (best < 0 || v[i] < v[best])) best = i;
    *bytes = best < 0 ? CNN_MEM_UNLIMITED : v[best];
    if (best < 0) snprintf(why, len, "no limit found");
    else snprintf(why, len, "%s %llu MB", name[best], (unsigned long long)(v[best] / CNN_MB));
    return best >= 0;
}

void cnn_membudget_make(long max_mb, const char *setting, const cnn_memlimit_src_t *src,
                        int ranks_on_node, cnn_membudget_t *b)
{
    if (max_mb > 0) {
        b->bytes = (uint64_t)max_mb > UINT64_MAX / CNN_MB ? CNN_MEM_UNLIMITED
                                                          : (uint64_t)max_mb * CNN_MB;
        snprintf(b->why, sizeof b->why, "%s %ld", setting, max_mb);
        return;
    }
    char node[128];
    uint64_t limit;
    if (ranks_on_node < 1) ranks_on_node = 1;
    if (!cnn_memlimit_node(src, &limit, node, sizeof node)) {
        b->bytes = CNN_MEM_UNLIMITED;
        snprintf(b->why, sizeof b->why, "%s", node);
        return;
    }
    b->bytes = limit / 100 * CNN_MEM_AUTO_PERCENT / (uint64_t)ranks_on_node;
    snprintf(b->why, sizeof b->why, "%d%% of %s, over %d rank%s on the node; %s sets another",
             CNN_MEM_AUTO_PERCENT, node, ranks_on_node, ranks_on_node == 1 ? "" : "s", setting);
}

cnn_status_t cnn_membudget_get(MPI_Comm comm, long max_mb, const char *setting,
                               cnn_membudget_t *b)
{
    cnn_status_t st = CNN_OK;
    MPI_Comm node = MPI_COMM_NULL;
    int ranks = 1, rank = 0;
    const cnn_memlimit_src_t src = cnn_memlimit_system();
    if (max_mb <= 0) {
        CNN_MPI_CHECK(st, MPI_Comm_rank(comm, &rank), error);
        CNN_MPI_CHECK(st, MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL,
                                              &node), error);
        CNN_MPI_CHECK(st, MPI_Comm_size(node, &ranks), error);
    }
    cnn_membudget_make(max_mb, setting, &src, ranks, b);
error:
    if (node != MPI_COMM_NULL) MPI_Comm_free(&node);
    return st;
}

cnn_status_t cnn_mem_check(const cnn_mem_item_t *items, int n, const cnn_membudget_t *budget)
{
    size_t total = 0;
    for (int i = 0; i < n; i++) total = cnn_mem_add(total, items[i].bytes);
    if (total != SIZE_MAX && (uint64_t)total <= budget->bytes) return CNN_OK;
    char text[2048], t[32], b[32];
    int used = snprintf(text, sizeof text, "the memory plan needs %s, over the budget of %s (%s):",
                        total == SIZE_MAX ? "more than the address space"
                                          : cnn_mem_str(total, t, sizeof t),
                        cnn_mem_str(budget->bytes, b, sizeof b), budget->why);
    for (int i = 0; i < n && used > 0 && (size_t)used < sizeof text; i++)
        used += snprintf(text + used, sizeof text - (size_t)used, "\n  %-24.24s %9s",
                         items[i].what, cnn_mem_str(items[i].bytes, t, sizeof t));
    return cnn_error_set(CNN_ENOMEM, "%s", text);
}
