/* test_sweep.c - the sweep: grid expansion (size, order, deduplication,
 * determinism, limits) and, on however many ranks mpirun gives (1, 2 and
 * 3 in `make check`), the runner: every grid point runs exactly once and
 * the trials spread over every group, a failing trial is recorded and the
 * sweep goes on, --resume runs only what the journal lacks (also one
 * written by a version with fewer config keys), successive halving keeps
 * the best, and a rank without a group idles correctly.
 *
 * `test_sweep --synth DIR` only writes the synthetic data set and a
 * sweep config DIR/sweep.ini, for tests/test_sweep_cli.sh. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <mpi.h>

#include "mpicnn.h"
#include "mpicnn/config.h"
#include "mpicnn/sweep.h"
#include "synth.h"

static char dir[64];
static int rank, size;

/* ------------------------------------------------------------------ */
/* grid expansion (every rank computes it; no MPI)                     */

static cnn_config_t *load(const char *sweep_lines, const char *train_extra)
{
    char text[8192], extra[4096];
    snprintf(extra, sizeof extra, "%s\n[sweep]\n%s", train_extra ? train_extra : "", sweep_lines);
    synth_config(text, sizeof text, dir[0] ? dir : "/nonexistent", 1, NULL, extra);
    cnn_config_t *cfg = malloc(sizeof *cfg);
    assert_non_null(cfg);
    if (cnn_config_parse_string(text, "sweep.ini", NULL, 0, cfg) != CNN_OK)
        fail_msg("config: %s", cnn_error_message());
    return cfg;
}

static void test_grid_cross_product_order(void **state)
{
    cnn_config_t *cfg = load("optimizer.lr = 0.1, 0.03, 0.01\nconv1.filters = 4, 8\n", NULL);
    cnn_sweep_grid_t *g;
    assert_int_equal(cnn_sweep_grid(cfg, &g), CNN_OK);
    assert_int_equal(g->nkeys, 2);
    assert_string_equal(g->key[0], "optimizer.lr");
    assert_string_equal(g->key[1], "conv1.filters");
    assert_int_equal(g->npoints, 6);
    /* nested loops in [sweep] order, the last key fastest */
    static const char *const want[6][2] = {{"0.1", "4"},  {"0.1", "8"},  {"0.03", "4"},
                                           {"0.03", "8"}, {"0.01", "4"}, {"0.01", "8"}};
    for (int p = 0; p < 6; p++)
        for (int k = 0; k < 2; k++) assert_string_equal(g->value[p * 2 + k], want[p][k]);
    char label[256];
    cnn_sweep_point_label(g, 3, label, sizeof label);
    assert_string_equal(label, "optimizer.lr=0.03 conv1.filters=8");
    /* a point applied to the config */
    cnn_config_t *c = malloc(sizeof *c);
    *c = *cfg;
    assert_int_equal(cnn_sweep_point_config(g, 3, c), CNN_OK);
    assert_true(c->opt.lr == 0.03);
    assert_int_equal(c->layers[0].filters, 8);
    /* distinct points have distinct hashes */
    for (int a = 0; a < 6; a++)
        for (int b = a + 1; b < 6; b++) assert_true(g->hash[a] != g->hash[b]);
    free(c);
    cnn_sweep_grid_free(g);
    free(cfg);
}

static void test_grid_dedup(void **state)
{
    /* 0.1 and 1e-1 are the same lr; 3 and 3x3 the same kernel */
    cnn_config_t *cfg =
        load("optimizer.lr = 0.1, 1e-1, 0.01, 0.10\nconv1.kernel = 3, 3x3, 5\n", NULL);
    cnn_sweep_grid_t *g;
    assert_int_equal(cnn_sweep_grid(cfg, &g), CNN_OK);
    assert_int_equal(g->npoints, 4);
    /* the first spelling is kept, in order */
    static const char *const want[4][2] = {{"0.1", "3"}, {"0.1", "5"}, {"0.01", "3"}, {"0.01", "5"}};
    for (int p = 0; p < 4; p++)
        for (int k = 0; k < 2; k++) assert_string_equal(g->value[p * 2 + k], want[p][k]);
    cnn_sweep_grid_free(g);
    free(cfg);
    /* a value equal to the base config's is still one point of its own */
    cfg = load("optimizer.lr = 0.01, 0.02\n", NULL);
    assert_int_equal(cnn_sweep_grid(cfg, &g), CNN_OK);
    assert_int_equal(g->npoints, 2);
    cnn_sweep_grid_free(g);
    free(cfg);
}

static void test_grid_deterministic(void **state)
{
    cnn_config_t *cfg = load("optimizer.lr = 0.3, 0.1\ntrain.batch_size = 8, 16, 4\n"
                             "conv1.filters = 2, 6\n", NULL);
    cnn_sweep_grid_t *a, *b;
    assert_int_equal(cnn_sweep_grid(cfg, &a), CNN_OK);
    assert_int_equal(cnn_sweep_grid(cfg, &b), CNN_OK);
    assert_int_equal(a->npoints, 12);
    assert_int_equal(b->npoints, 12);
    assert_memory_equal(a->hash, b->hash, sizeof(uint64_t) * 12);
    for (int i = 0; i < 12 * 3; i++) assert_string_equal(a->value[i], b->value[i]);
    /* and every rank has the same grid */
    uint64_t h0 = a->hash[11];
    MPI_Bcast(&h0, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    assert_true(h0 == a->hash[11]);
    cnn_sweep_grid_free(a);
    cnn_sweep_grid_free(b);
    free(cfg);
}

static void test_grid_no_keys_and_limit(void **state)
{
    cnn_config_t *cfg = load("", NULL);
    cnn_sweep_grid_t *g;
    assert_int_equal(cnn_sweep_grid(cfg, &g), CNN_OK);
    assert_int_equal(g->npoints, 1);
    assert_int_equal(g->nkeys, 0);
    char label[64];
    cnn_sweep_point_label(g, 0, label, sizeof label);
    assert_string_equal(label, "(base config)");
    cnn_sweep_grid_free(g);
    free(cfg);
    /* 10 x 10 x 10 x 11 = 11000 points: over the limit */
    const char *ten = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10";
    char lines[1024];
    snprintf(lines, sizeof lines,
             "conv1.filters = %s\ntrain.batch_size = %s\ntrain.seed = %s\n"
             "train.epochs = %s, 11\n", ten, ten, ten, ten);
    cfg = load(lines, NULL);
    assert_int_equal(cnn_sweep_grid(cfg, &g), CNN_ECONFIG);
    assert_non_null(strstr(cnn_error_message(), "10000"));
    free(cfg);
}

/* ------------------------------------------------------------------ */
/* the runner, on MPI_COMM_WORLD                                        */

static int setup(void **state)
{
    if (rank == 0) {
        snprintf(dir, sizeof dir, "/tmp/mpicnn-sweep-XXXXXX");
        if (!mkdtemp(dir)) return -1;
        if (synth_write(dir, "train", 233, 8, 4, 1) || synth_write(dir, "test", 60, 8, 4, 2))
            return -1;
    }
    MPI_Bcast(dir, sizeof dir, MPI_CHAR, 0, MPI_COMM_WORLD);
    return 0;
}

static int teardown(void **state)
{
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0 && !getenv("KEEP_SWEEP_DIR")) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0) return -1;
    }
    return 0;
}

static cnn_status_t sweep_set(const char *name, const char *sweep_lines,
                              const char *train_extra, const char *set, int resume,
                              cnn_sweep_result_t *res)
{
    char out[256];
    snprintf(out, sizeof out, "%s/%s", dir, name);
    cnn_config_t *cfg = load(sweep_lines, train_extra);
    if (set && cnn_config_set(cfg, set) != CNN_OK) fail_msg("%s: %s", set, cnn_error_message());
    cnn_sweep_opts_t o = {.comm = MPI_COMM_WORLD, .out_dir = out, .resume = resume, .quiet = 1};
    cnn_status_t st = cnn_sweep_run(cfg, &o, res);
    free(cfg);
    return st;
}

static cnn_status_t sweep(const char *name, const char *sweep_lines, const char *train_extra,
                          int resume, cnn_sweep_result_t *res)
{
    return sweep_set(name, sweep_lines, train_extra, NULL, resume, res);
}

/* One journal record, as far as the tests care. */
typedef struct {
    int trial, round, ok, group, epochs;
    double val;
    char reason[512];
} rec_t;

/* Reads DIR/name/sweep.journal (rank 0); returns the number of records. */
static int read_journal(const char *name, rec_t *recs, int max)
{
    char path[256], line[2048];
    snprintf(path, sizeof path, "%s/%s/sweep.journal", dir, name);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    int n = 0;
    assert_non_null(fgets(line, sizeof line, f));
    assert_true(strncmp(line, "# mpicnn sweep journal", 22) == 0);
    while (fgets(line, sizeof line, f)) {
        assert_true(n < max);
        rec_t *r = &recs[n++];
        char status[16];
        unsigned long long point;
        int code, best, stopped, ranks;
        double loss, secs;
        int got = sscanf(line,
                         "trial=%d\tround=%d\tpoint=%llx\tstatus=%15[a-z]\tcode=%d\tval_acc=%lf\t"
                         "val_loss=%lf\tbest_epoch=%d\tepochs=%d\tstopped_early=%d\tseconds=%lf\t"
                         "group=%d\tranks=%d\t",
                         &r->trial, &r->round, &point, status, &code, &r->val, &loss, &best,
                         &r->epochs, &stopped, &secs, &r->group, &ranks);
        if (got != 13) fail_msg("bad journal line (%d fields): %s", got, line);
        r->ok = strcmp(status, "ok") == 0;
        const char *reason = strstr(line, "reason=");
        assert_non_null(reason);
        snprintf(r->reason, sizeof r->reason, "%s", reason + 7);
    }
    fclose(f);
    return n;
}

/* Lines of DIR/name/sweep.csv without the header. */
static int csv_rows(const char *name)
{
    char path[256], line[2048];
    snprintf(path, sizeof path, "%s/%s/sweep.csv", dir, name);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    int n = -1;
    while (fgets(line, sizeof line, f)) n++;
    fclose(f);
    return n;
}

static int file_exists(const char *name, const char *rel)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s/%s", dir, name, rel);
    return access(path, F_OK) == 0;
}

static void test_every_point_once_spread(void **state)
{
    /* 6 trials; every leader draws once before any trial ends, so with up
     * to 6 groups every group trains at least one */
    cnn_sweep_result_t res;
    cnn_status_t st = sweep("grid", "optimizer.lr = 0.02, 0.01, 0.005\nconv1.filters = 4, 6\n",
                            "threads = 1", 0, &res);
    if (st != CNN_OK) fail_msg("sweep: %s", cnn_error_message());
    assert_int_equal(res.ntrials, 6);
    assert_int_equal(res.nrun, 6);
    assert_int_equal(res.nskipped, 0);
    assert_int_equal(res.nok, 6);
    assert_int_equal(res.nfailed, 0);
    assert_true(res.best >= 0 && res.best < 6);
    assert_true(res.best_val_acc > 0.4);
    assert_true(isfinite(res.test_acc) && res.test_total == 60);
    if (rank != 0) return;
    rec_t recs[32];
    int n = read_journal("grid", recs, 32), seen[6] = {0}, groups[8] = {0};
    assert_int_equal(n, 6);
    for (int i = 0; i < n; i++) {
        assert_true(recs[i].trial >= 0 && recs[i].trial < 6);
        seen[recs[i].trial]++;
        assert_true(recs[i].ok);
        assert_int_equal(recs[i].epochs, 1);
        assert_true(recs[i].group >= 0 && recs[i].group < size);
        groups[recs[i].group]++;
    }
    for (int t = 0; t < 6; t++) assert_int_equal(seen[t], 1);
    for (int g = 0; g < size && g < 6; g++)
        if (!groups[g]) fail_msg("group %d trained no trial", g);
    assert_int_equal(csv_rows("grid"), 6);
    assert_true(file_exists("grid", "best/model.h5"));
    char rel[64];
    snprintf(rel, sizeof rel, "trials/%d/model.h5", res.best);
    assert_true(file_exists("grid", rel));
    /* the best is the one with the highest val_acc */
    for (int i = 0; i < n; i++) assert_true(recs[i].val <= res.best_val_acc + 1e-6);
}

static void test_failing_trial_recorded(void **state)
{
    /* fc1.units = 3 does not match the 4 classes (a config failure);
     * lr = 1e30 with plain SGD blows up (a numerical failure) */
    cnn_sweep_result_t res;
    cnn_status_t st = sweep_set("fail", "fc1.units = 4, 3\noptimizer.lr = 0.01, 1e30\n",
                                "threads = 1\nnan_policy = stop", "optimizer.type=sgd", 0, &res);
    if (st != CNN_OK) fail_msg("sweep: %s", cnn_error_message());
    assert_int_equal(res.ntrials, 4);
    assert_int_equal(res.nok, 1);
    assert_int_equal(res.nfailed, 3);
    assert_int_equal(res.best, 0);
    if (rank != 0) return;
    rec_t recs[16];
    int n = read_journal("fail", recs, 16);
    assert_int_equal(n, 4);
    for (int i = 0; i < n; i++) {
        const rec_t *r = &recs[i];
        if (r->trial == 0) {
            assert_true(r->ok);
        } else if (r->trial == 1) {
            assert_false(r->ok);
            if (!strstr(r->reason, "numerical failure"))
                fail_msg("trial 1's reason: %s", r->reason);
        } else {
            assert_false(r->ok);
            if (!strstr(r->reason, "bad config") || !strstr(r->reason, "classes"))
                fail_msg("trial %d's reason: %s", r->trial, r->reason);
        }
    }
    assert_int_equal(csv_rows("fail"), 4);
    /* the CSV says failed, with the reason */
    char path[256], line[2048];
    snprintf(path, sizeof path, "%s/fail/sweep.csv", dir);
    FILE *f = fopen(path, "r");
    int failed = 0;
    while (fgets(line, sizeof line, f)) failed += strstr(line, ",failed,") != NULL;
    fclose(f);
    assert_int_equal(failed, 3);
}

/* Cuts the journal to its header and first `keep` records (rank 0). */
static void cut_journal(const char *name, int keep)
{
    char path[256], line[2048], tmp[272];
    snprintf(path, sizeof path, "%s/%s/sweep.journal", dir, name);
    snprintf(tmp, sizeof tmp, "%s.cut", path);
    FILE *in = fopen(path, "r"), *out = fopen(tmp, "w");
    assert_non_null(in);
    assert_non_null(out);
    for (int i = 0; i <= keep && fgets(line, sizeof line, in); i++) fputs(line, out);
    /* and a torn line, as a crash in the middle of a write leaves */
    fputs("trial=5\tround=0\tpoi", out);
    fclose(in);
    fclose(out);
    assert_int_equal(rename(tmp, path), 0);
}

static void test_resume_runs_only_unfinished(void **state)
{
    const char *grid = "optimizer.lr = 0.02, 0.01, 0.005\nconv1.filters = 4, 6\n";
    cnn_sweep_result_t res;
    assert_int_equal(sweep("resume", grid, "threads = 1", 0, &res), CNN_OK);
    /* a second run without --resume refuses to mix two sweeps */
    assert_int_equal(sweep("resume", grid, "threads = 1", 0, &res), CNN_EUSAGE);
    if (rank == 0) assert_non_null(strstr(cnn_error_message(), "--resume"));
    /* --resume elsewhere needs a journal */
    assert_int_equal(sweep("nothing", grid, "threads = 1", 1, &res), CNN_EUSAGE);
    /* "kill" it after two trials: the journal keeps two records; the
     * unfinished trials' directories keep their checkpoints, and one loses
     * it (restarts from scratch) */
    rec_t before[16];
    int kept[2] = {-1, -1};
    if (rank == 0) {
        assert_int_equal(read_journal("resume", before, 16), 6);
        kept[0] = before[0].trial;
        kept[1] = before[1].trial;
        cut_journal("resume", 2);
        char path[256];
        int victim = 0;
        while (victim == kept[0] || victim == kept[1]) victim++;
        snprintf(path, sizeof path, "%s/resume/trials/%d/checkpoint.h5", dir, victim);
        assert_int_equal(remove(path), 0);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    cnn_status_t st = sweep("resume", grid, "threads = 1", 1, &res);
    if (st != CNN_OK) fail_msg("resume: %s", cnn_error_message());
    assert_int_equal(res.nskipped, 2);
    assert_int_equal(res.nrun, 4);
    assert_int_equal(res.nok, 6);
    if (rank != 0) return;
    rec_t recs[16];
    int n = read_journal("resume", recs, 16), seen[6] = {0};
    assert_int_equal(n, 6);
    for (int i = 0; i < n; i++) seen[recs[i].trial]++;
    for (int t = 0; t < 6; t++) assert_int_equal(seen[t], 1);
    /* the two journaled trials are the first two records, untouched */
    assert_int_equal(recs[0].trial, kept[0]);
    assert_int_equal(recs[1].trial, kept[1]);
    /* a resumed trial gives the result of the uninterrupted run */
    for (int i = 2; i < n; i++)
        for (int j = 0; j < 6; j++)
            if (before[j].trial == recs[i].trial) assert_true(fabs(before[j].val - recs[i].val) < 1e-6);
    assert_int_equal(csv_rows("resume"), 6);
}

static void test_resume_finished_runs_nothing(void **state)
{
    const char *grid = "optimizer.lr = 0.02, 0.01, 0.005\nconv1.filters = 4, 6\n";
    cnn_sweep_result_t res;
    cnn_status_t st = sweep("resume", grid, "threads = 1", 1, &res);
    if (st != CNN_OK) fail_msg("resume: %s", cnn_error_message());
    assert_int_equal(res.nrun, 0);
    assert_int_equal(res.nskipped, 6);
    /* a changed grid is refused */
    assert_int_equal(sweep("resume", "optimizer.lr = 0.02, 0.01\nconv1.filters = 4, 6\n",
                           "threads = 1", 1, &res), CNN_ECONFIG);
}

/* ------------------------------------------------------------------ */
/* --resume after a version of mpicnn that adds a config key            */

/* text without the first occurrence of cut (malloc'd). */
static char *without(const char *text, const char *cut)
{
    const char *at = strstr(text, cut);
    assert_non_null(at);
    char *out = malloc(strlen(text) + 1);
    assert_non_null(out);
    snprintf(out, strlen(text) + 1, "%.*s%s", (int)(at - text), text, at + strlen(cut));
    return out;
}

/* The hashes an older version, whose resolved configs lack `cut`, gives
 * the trials of the grid (cnn_config_hash of each point's text), and the
 * grid hash of its journal (FNV-1a over each hash, low byte first). */
static int older_hashes(const char *sweep_lines, const char *cut, uint64_t *hash, int max,
                        uint64_t *grid_hash)
{
    cnn_config_t *cfg = load(sweep_lines, "threads = 1"), *work = malloc(sizeof *work);
    cnn_sweep_grid_t *g = NULL;
    assert_non_null(work);
    assert_int_equal(cnn_sweep_grid(cfg, &g), CNN_OK);
    assert_true(g->npoints <= max);
    *grid_hash = 14695981039346656037ULL;
    for (int p = 0; p < g->npoints; p++) {
        *work = *cfg;
        assert_int_equal(cnn_sweep_point_config(g, p, work), CNN_OK);
        char *text = cnn_config_to_string(work), *old = without(text, cut);
        hash[p] = cnn_config_hash(old);
        for (int b = 0; b < 64; b += 8)
            *grid_hash = (*grid_hash ^ ((hash[p] >> b) & 0xff)) * 1099511628211ULL;
        free(text);
        free(old);
    }
    const int n = g->npoints;
    cnn_sweep_grid_free(g);
    free(work);
    free(cfg);
    return n;
}

/* Rewrites DIR/name/rel with the text `text`. */
static void put_file(const char *name, const char *rel, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s/%s", dir, name, rel);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

/* DIR/name/rel into a malloc'd string. */
static char *get_file(const char *name, const char *rel)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s/%s", dir, name, rel);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *buf = calloc(1, 1 << 20);
    assert_non_null(buf);
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* Makes the sweep in DIR/name look journaled by a version of mpicnn
 * whose resolved configs lack `cut`: its sweep.ini, its header and every
 * record's point hash. */
static void make_older(const char *name, const char *sweep_lines, const char *cut,
                       uint64_t *hash, int *n)
{
    uint64_t grid;
    *n = older_hashes(sweep_lines, cut, hash, 16, &grid);
    char *ini = get_file(name, "sweep.ini"), *old_ini = without(ini, cut);
    put_file(name, "sweep.ini", old_ini);
    char *j = get_file(name, "sweep.journal"), *out = calloc(1, strlen(j) + 256), *o = out;
    assert_non_null(out);
    o += sprintf(o, "# mpicnn sweep journal v1\ttrials=%d\tgrid=%016llx\n", *n,
                 (unsigned long long)grid);
    for (char *line = strchr(j, '\n') + 1; *line; line = strchr(line, '\n') + 1) {
        int t = -1;
        char *pt = strstr(line, "\tpoint=");
        assert_true(sscanf(line, "trial=%d\t", &t) == 1 && t >= 0 && t < *n && pt);
        o += sprintf(o, "%.*s\tpoint=%016llx%.*s", (int)(pt - line), line,
                     (unsigned long long)hash[t], (int)(strchr(line, '\n') + 1 - (pt + 23)),
                     pt + 23);
    }
    put_file(name, "sweep.journal", out);
    free(ini);
    free(old_ini);
    free(j);
    free(out);
}

/* Every record of DIR/name's journal carries hash[trial]. */
static void check_points(const char *name, const uint64_t *hash, int n)
{
    char *j = get_file(name, "sweep.journal");
    int records = 0;
    for (char *line = strchr(j, '\n') + 1; *line; line = strchr(line, '\n') + 1) {
        int t = -1;
        unsigned long long point = 0;
        assert_int_equal(sscanf(line, "trial=%d\tround=%*d\tpoint=%llx", &t, &point), 2);
        assert_true(t >= 0 && t < n);
        assert_true(point == hash[t]);
        records++;
    }
    assert_int_equal(records, n);
    free(j);
}

static void test_resume_after_new_key(void **state)
{
    /* what an older version lacked: one key, then a whole section */
    const char *grid = "optimizer.lr = 0.02, 0.01\nconv1.filters = 4, 6\n";
    const char *cuts[2] = {"every_minutes = 0\n",
                           "\n[checkpoint]\nevery_steps = 0\nevery_minutes = 0\n"};
    for (int c = 0; c < 2; c++) {
        char name[32];
        snprintf(name, sizeof name, "newkey%d", c);
        cnn_sweep_result_t res;
        assert_int_equal(sweep(name, grid, "threads = 1", 0, &res), CNN_OK);
        uint64_t hash[16];
        int n = 0;
        if (rank == 0) {
            make_older(name, grid, cuts[c], hash, &n);
            cut_journal(name, 2);
        }
        MPI_Barrier(MPI_COMM_WORLD);
        cnn_status_t st = sweep(name, grid, "threads = 1", 1, &res);
        if (st != CNN_OK) fail_msg("resume of an older journal: %s", cnn_error_message());
        assert_int_equal(res.nskipped, 2);
        assert_int_equal(res.nrun, 2);
        assert_int_equal(res.nok, 4);
        if (rank != 0) continue;
        /* the records appended carry the older hashes too; sweep.ini stays */
        check_points(name, hash, n);
        char *ini = get_file(name, "sweep.ini");
        assert_null(strstr(ini, cuts[c]));
        free(ini);
    }
    /* a value that differs is still another config */
    if (rank == 0) {
        char *ini = get_file("newkey0", "sweep.ini"), *seed = strstr(ini, "seed = 3\n");
        assert_non_null(seed);
        seed[7] = '4';
        put_file("newkey0", "sweep.ini", ini);
        free(ini);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    cnn_sweep_result_t res;
    assert_int_equal(sweep("newkey0", grid, "threads = 1", 1, &res), CNN_ECONFIG);
    if (rank == 0) assert_non_null(strstr(cnn_error_message(), "different sweep"));
    /* a sweep journaled before sweep.ini existed: a changed grid is refused
     * as before, the same grid resumes and gets its sweep.ini */
    if (rank == 0) {
        char path[256];
        snprintf(path, sizeof path, "%s/resume/sweep.ini", dir);
        assert_int_equal(remove(path), 0);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    assert_int_equal(sweep("resume", grid, "threads = 1", 1, &res), CNN_ECONFIG);
    const char *grid6 = "optimizer.lr = 0.02, 0.01, 0.005\nconv1.filters = 4, 6\n";
    assert_int_equal(sweep("resume", grid6, "threads = 1", 1, &res), CNN_OK);
    if (rank == 0) assert_true(file_exists("resume", "sweep.ini"));
}

static void test_halving(void **state)
{
    /* 4 trials: 4 to 1 epoch, the best 2 to 2 epochs, the best 1 to 3 */
    cnn_sweep_result_t res;
    cnn_status_t st = sweep_set("halving",
                                "mode = halving\nhalving_epochs = 1\nhalving_keep = 0.5\n"
                                "optimizer.lr = 0.02, 0.0001, 0.01, 0.00003\n",
                                "threads = 1", "train.epochs=3", 0, &res);
    if (st != CNN_OK) fail_msg("sweep: %s", cnn_error_message());
    assert_int_equal(res.nrun, 4 + 2 + 1);
    if (rank != 0) return;
    rec_t recs[16];
    int n = read_journal("halving", recs, 16), per_round[3] = {0};
    assert_int_equal(n, 7);
    double r0[4] = {0};
    int in1[4] = {0}, in2 = -1;
    for (int i = 0; i < n; i++) {
        assert_true(recs[i].ok);
        assert_true(recs[i].round >= 0 && recs[i].round < 3);
        per_round[recs[i].round]++;
        assert_int_equal(recs[i].epochs, recs[i].round + 1);
        if (recs[i].round == 0) r0[recs[i].trial] = recs[i].val;
        if (recs[i].round == 1) in1[recs[i].trial] = 1;
        if (recs[i].round == 2) in2 = recs[i].trial;
    }
    assert_int_equal(per_round[0], 4);
    assert_int_equal(per_round[1], 2);
    assert_int_equal(per_round[2], 1);
    /* round 1 has the two best of round 0 (ties to the lower index) */
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++)
            if (in1[a] && !in1[b])
                assert_true(r0[a] > r0[b] || (r0[a] == r0[b] && a < b));
    assert_true(in2 >= 0 && in1[in2]);
    assert_int_equal(res.best, in2);
    assert_true(file_exists("halving", "best/model.h5"));
}

static void test_groups_of_two(void **state)
{
    /* ranks_per_trial = 2: with 3 ranks one rank has no group and idles */
    if (size < 2) skip();
    cnn_sweep_result_t res;
    cnn_status_t st = sweep("pairs", "ranks_per_trial = 2\noptimizer.lr = 0.02, 0.01, 0.005\n",
                            "threads = 1", 0, &res);
    if (st != CNN_OK) fail_msg("sweep: %s", cnn_error_message());
    assert_int_equal(res.nok, 3);
    if (rank != 0) return;
    rec_t recs[8];
    assert_int_equal(read_journal("pairs", recs, 8), 3);
    for (int i = 0; i < 3; i++) assert_true(recs[i].group < size / 2);
}

static void test_too_few_ranks(void **state)
{
    cnn_sweep_result_t res;
    char lines[128];
    snprintf(lines, sizeof lines, "ranks_per_trial = %d\noptimizer.lr = 0.02\n", size + 1);
    assert_int_equal(sweep("few", lines, NULL, 0, &res), CNN_ECONFIG);
    assert_non_null(strstr(cnn_error_message(), "ranks_per_trial"));
}

/* --synth DIR: data and a config for the command-line test */
static int write_synth(const char *d, int side, int ntrain)
{
    if (synth_write(d, "train", ntrain, side, 4, 1) || synth_write(d, "test", 60, side, 4, 2))
        return 1;
    char text[8192], path[512];
    synth_config(text, sizeof text, d, 6, NULL,
                 "threads = 1\n\n[sweep]\noptimizer.lr = 0.02, 0.01, 0.005, 0.002\n"
                 "conv1.filters = 4, 8\n");
    snprintf(path, sizeof path, "%s/sweep.ini", d);
    FILE *f = fopen(path, "w");
    if (!f) return 1;
    fputs(text, f);
    return fclose(f) != 0;
}

int main(int argc, char **argv)
{
    if (argc == 5 && !strcmp(argv[1], "--synth"))
        return write_synth(argv[2], atoi(argv[3]), atoi(argv[4]));
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    cnn_blas_single_thread();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grid_cross_product_order),
        cmocka_unit_test(test_grid_dedup),
        cmocka_unit_test(test_grid_deterministic),
        cmocka_unit_test(test_grid_no_keys_and_limit),
        cmocka_unit_test(test_every_point_once_spread),
        cmocka_unit_test(test_failing_trial_recorded),
        cmocka_unit_test(test_resume_runs_only_unfinished),
        cmocka_unit_test(test_resume_finished_runs_nothing),
        cmocka_unit_test(test_resume_after_new_key),
        cmocka_unit_test(test_halving),
        cmocka_unit_test(test_groups_of_two),
        cmocka_unit_test(test_too_few_ranks),
    };
    int failed = cmocka_run_group_tests(tests, setup, teardown);
    int any = 0;
    MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    MPI_Finalize();
    return any;
}
