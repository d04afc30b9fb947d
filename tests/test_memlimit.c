/* test_memlimit.c - the node's memory limits from made-up cgroup trees,
 * /proc/meminfo files and Slurm values, and the budgets made from them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "mpicnn/memlimit.h"

#define MB CNN_MB

typedef struct {
    char dir[64];
} tmp_t;

static void put_file(const tmp_t *t, const char *rel, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", t->dir, rel);
    /* make the parents */
    for (char *p = path + strlen(t->dir) + 1; (p = strchr(p, '/')); p++) {
        *p = '\0';
        mkdir(path, 0700);
        *p = '/';
    }
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static const char *path_of(const tmp_t *t, const char *rel, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", t->dir, rel);
    return buf;
}

static int setup(void **state)
{
    tmp_t *t = malloc(sizeof *t);
    snprintf(t->dir, sizeof t->dir, "/tmp/mpicnn-memlimit-XXXXXX");
    if (!mkdtemp(t->dir)) return -1;
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    tmp_t *t = *state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", t->dir);
    if (system(cmd) != 0) return -1;
    free(t);
    return 0;
}

static void test_cgroup_v2(void **state)
{
    const tmp_t *t = *state;
    char pc[256], root[256];
    uint64_t b = 0;
    put_file(t, "v2/proc_cgroup", "0::/job/step\n");
    put_file(t, "v2/fs/memory.max", "max\n");
    put_file(t, "v2/fs/job/memory.max", "2147483648\n");
    put_file(t, "v2/fs/job/step/memory.max", "max\n");
    assert_int_equal(cnn_memlimit_cgroup(path_of(t, "v2/proc_cgroup", pc, sizeof pc),
                                         path_of(t, "v2/fs", root, sizeof root), &b), 1);
    assert_int_equal(b, 2048 * MB); /* a parent's limit holds for its children */
    /* the tighter of the two levels */
    put_file(t, "v2/fs/job/step/memory.max", "1073741824\n");
    assert_int_equal(cnn_memlimit_cgroup(pc, root, &b), 1);
    assert_int_equal(b, 1024 * MB);
    /* no limit anywhere; no cgroup file at all */
    put_file(t, "v2/fs/job/memory.max", "max\n");
    put_file(t, "v2/fs/job/step/memory.max", "max\n");
    assert_int_equal(cnn_memlimit_cgroup(pc, root, &b), 0);
    assert_int_equal(cnn_memlimit_cgroup(pc, path_of(t, "none", root, sizeof root), &b), 0);
    assert_int_equal(cnn_memlimit_cgroup(NULL, NULL, &b), 0);
}

static void test_cgroup_v1(void **state)
{
    const tmp_t *t = *state;
    char pc[256], root[256];
    uint64_t b = 0;
    put_file(t, "v1/proc_cgroup", "5:cpu,cpuacct:/x\n4:memory:/slurm/job7\n0::/\n");
    put_file(t, "v1/fs/memory/memory.limit_in_bytes", "9223372036854771712\n");
    put_file(t, "v1/fs/memory/slurm/job7/memory.limit_in_bytes", "536870912\n");
    assert_int_equal(cnn_memlimit_cgroup(path_of(t, "v1/proc_cgroup", pc, sizeof pc),
                                         path_of(t, "v1/fs", root, sizeof root), &b), 1);
    assert_int_equal(b, 512 * MB);
    /* a container sees its own cgroup at the root: the path is not there */
    put_file(t, "v1c/proc_cgroup", "4:memory:/docker/abc\n");
    put_file(t, "v1c/fs/memory/memory.limit_in_bytes", "268435456\n");
    assert_int_equal(cnn_memlimit_cgroup(path_of(t, "v1c/proc_cgroup", pc, sizeof pc),
                                         path_of(t, "v1c/fs", root, sizeof root), &b), 1);
    assert_int_equal(b, 256 * MB);
    /* "unlimited" in v1 is a number near 2^63 */
    put_file(t, "v1c/fs/memory/memory.limit_in_bytes", "9223372036854771712\n");
    assert_int_equal(cnn_memlimit_cgroup(pc, root, &b), 0);
}

static void test_meminfo(void **state)
{
    const tmp_t *t = *state;
    char p[256];
    uint64_t b = 0;
    put_file(t, "meminfo", "MemTotal:       32000000 kB\nMemFree:  100 kB\n"
                           "MemAvailable:   24271712 kB\nBuffers: 1 kB\n");
    assert_int_equal(cnn_memlimit_meminfo(path_of(t, "meminfo", p, sizeof p), &b), 1);
    assert_int_equal(b, (uint64_t)24271712 * 1024);
    put_file(t, "meminfo_old", "MemTotal: 1000 kB\nMemFree: 100 kB\n");
    assert_int_equal(cnn_memlimit_meminfo(path_of(t, "meminfo_old", p, sizeof p), &b), 0);
    assert_int_equal(cnn_memlimit_meminfo(path_of(t, "nofile", p, sizeof p), &b), 0);
}

static void test_slurm(void **state)
{
    (void)state;
    uint64_t b = 0;
    cnn_memlimit_src_t s = {.slurm_mem_per_node = "4000"};
    assert_int_equal(cnn_memlimit_slurm(&s, &b), 1);
    assert_int_equal(b, 4000 * MB);
    s = (cnn_memlimit_src_t){.slurm_mem_per_node = "8G"};
    assert_int_equal(cnn_memlimit_slurm(&s, &b), 1);
    assert_int_equal(b, 8192 * MB);
    /* per CPU: times the CPUs on the node, else per task, else one */
    s = (cnn_memlimit_src_t){.slurm_mem_per_cpu = "1000", .slurm_cpus_on_node = "4",
                             .slurm_cpus_per_task = "2"};
    assert_int_equal(cnn_memlimit_slurm(&s, &b), 1);
    assert_int_equal(b, 4000 * MB);
    s.slurm_cpus_on_node = NULL;
    assert_int_equal(cnn_memlimit_slurm(&s, &b), 1);
    assert_int_equal(b, 2000 * MB);
    s.slurm_cpus_per_task = NULL;
    assert_int_equal(cnn_memlimit_slurm(&s, &b), 1);
    assert_int_equal(b, 1000 * MB);
    /* unset, 0 (all of the node's memory) and malformed values: no limit */
    s = (cnn_memlimit_src_t){0};
    assert_int_equal(cnn_memlimit_slurm(&s, &b), 0);
    s.slurm_mem_per_node = "0";
    assert_int_equal(cnn_memlimit_slurm(&s, &b), 0);
    s.slurm_mem_per_node = "lots";
    assert_int_equal(cnn_memlimit_slurm(&s, &b), 0);
}

/* The node allows the smallest limit; the automatic budget is 80% of it
 * over the ranks on the node; an explicit one is exact. */
static void test_budget(void **state)
{
    const tmp_t *t = *state;
    char pc[256], root[256], mi[256], why[128];
    uint64_t b = 0;
    put_file(t, "b/proc_cgroup", "0::/\n");
    put_file(t, "b/fs/memory.max", "4294967296\n"); /* 4096 MB */
    put_file(t, "b/meminfo", "MemAvailable: 2097152 kB\n"); /* 2048 MB */
    cnn_memlimit_src_t s = {.proc_cgroup = path_of(t, "b/proc_cgroup", pc, sizeof pc),
                            .cgroup_root = path_of(t, "b/fs", root, sizeof root),
                            .meminfo = path_of(t, "b/meminfo", mi, sizeof mi)};
    assert_int_equal(cnn_memlimit_node(&s, &b, why, sizeof why), 1);
    assert_int_equal(b, 2048 * MB);
    assert_string_equal(why, "MemAvailable 2048 MB");
    s.slurm_mem_per_node = "1000";
    assert_int_equal(cnn_memlimit_node(&s, &b, why, sizeof why), 1);
    assert_int_equal(b, 1000 * MB);
    assert_string_equal(why, "SLURM_MEM_PER_NODE 1000 MB");

    cnn_membudget_t bud;
    cnn_membudget_make(0, "[train] max_memory_mb", &s, 2, &bud);
    assert_int_equal(bud.bytes, 1000 * MB / 100 * 80 / 2);
    assert_non_null(strstr(bud.why, "80% of SLURM_MEM_PER_NODE 1000 MB"));
    assert_non_null(strstr(bud.why, "2 ranks"));
    assert_non_null(strstr(bud.why, "[train] max_memory_mb"));
    cnn_membudget_make(300, "--max-memory", &s, 2, &bud);
    assert_int_equal(bud.bytes, 300 * MB);
    assert_string_equal(bud.why, "--max-memory 300");
    /* nothing known: no limit */
    const cnn_memlimit_src_t none = {0};
    assert_int_equal(cnn_memlimit_node(&none, &b, why, sizeof why), 0);
    assert_int_equal(b, CNN_MEM_UNLIMITED);
    cnn_membudget_make(0, "--max-memory", &none, 1, &bud);
    assert_int_equal(bud.bytes, CNN_MEM_UNLIMITED);
    /* a plan of items against it */
    const cnn_mem_item_t items[] = {{"training set", 200 * MB}, {"search", 150 * MB}};
    cnn_membudget_make(350, "--max-memory", &none, 1, &bud);
    assert_int_equal(cnn_mem_check(items, 2, &bud), CNN_OK);
    cnn_membudget_make(349, "--max-memory", &none, 1, &bud);
    assert_int_equal(cnn_mem_check(items, 2, &bud), CNN_ENOMEM);
    assert_non_null(strstr(cnn_error_message(), "350.0 MB, over the budget of 349.0 MB"));
    assert_non_null(strstr(cnn_error_message(), "training set"));
}

static void test_mem_str(void **state)
{
    (void)state;
    char b[32];
    assert_string_equal(cnn_mem_str(512, b, sizeof b), "512 B");
    assert_string_equal(cnn_mem_str(3 * 1024, b, sizeof b), "3.0 KB");
    assert_string_equal(cnn_mem_str(1536 * MB, b, sizeof b), "1.5 GB");
    assert_string_equal(cnn_mem_str(CNN_MEM_UNLIMITED, b, sizeof b), "more than 16 EB");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cgroup_v2), cmocka_unit_test(test_cgroup_v1),
        cmocka_unit_test(test_meminfo),   cmocka_unit_test(test_slurm),
        cmocka_unit_test(test_budget),    cmocka_unit_test(test_mem_str),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
