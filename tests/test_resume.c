/* test_resume.c - checkpoints and --resume, in process (run under mpirun
 * -np 2 by test_resume_np2.sh, and as a single process): a checkpoint
 * round trip restores every field exactly; resuming with another config,
 * optimizer or world size is refused with the difference named, safe keys
 * may change, a key an older checkpoint's config lacks counts as its
 * default; a run resumed with more epochs equals the longer
 * uninterrupted run bitwise, and so does a run cut short by a failed
 * checkpoint write and resumed, with warmup + cosine (momentum, adamw, a
 * residual net) and with lars + multistep + label smoothing + report_l2;
 * resuming a finished or early-stopped run
 * changes nothing; stale temp files are cleaned; a missing or corrupt
 * checkpoint is an error, never a fresh start. The signal and SIGKILL
 * cases need real processes: tests/test_resume.sh. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <hdf5.h>
#include <mpi.h>

#include "mpicnn.h"
#include "mpicnn/checkpoint.h"
#include "mpicnn/config.h"
#include "mpicnn/fs.h"
#include "mpicnn/kernels.h"
#include "mpicnn/model.h"
#include "mpicnn/net.h"
#include "mpicnn/optim.h"
#include "mpicnn/train.h"
#include "synth.h"

static char dir[64];
static int rank, size;

static int setup(void **state)
{
    (void)state;
    if (rank == 0) {
        snprintf(dir, sizeof dir, "/tmp/mpicnn-resume-XXXXXX");
        if (!mkdtemp(dir)) return -1;
        if (synth_write(dir, "train", 300, 8, 4, 1) || synth_write(dir, "test", 60, 8, 4, 2))
            return -1;
    }
    MPI_Bcast(dir, sizeof dir, MPI_CHAR, 0, MPI_COMM_WORLD);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0) return -1;
    }
    return 0;
}

static cnn_config_t *config(int epochs, const char *train_extra, const char *const *sets,
                            int nsets)
{
    char text[4096];
    synth_config(text, sizeof text, dir, epochs, NULL, train_extra);
    cnn_config_t *cfg = malloc(sizeof *cfg);
    assert_non_null(cfg);
    if (cnn_config_parse_string(text, "resume", sets, nsets, cfg) != CNN_OK)
        fail_msg("config: %s", cnn_error_message());
    return cfg;
}

/* Trains (or resumes) into dir/name on comm. */
static cnn_status_t train(MPI_Comm comm, const char *name, int epochs, const char *train_extra,
                          const char *const *sets, int nsets, int resume,
                          cnn_train_result_t *res)
{
    char out[256];
    cnn_config_t *cfg = config(epochs, train_extra, sets, nsets);
    snprintf(out, sizeof out, "%s/%s", dir, name);
    cnn_train_opts_t opts = {.comm = comm, .out_dir = out, .resume = resume, .quiet = 1};
    cnn_status_t st = cnn_train(cfg, &opts, res);
    free(cfg);
    return st;
}

static void train_ok(const char *name, int epochs, const char *extra, const char *const *sets,
                     int nsets, int resume, cnn_train_result_t *res)
{
    cnn_status_t st = train(MPI_COMM_WORLD, name, epochs, extra, sets, nsets, resume, res);
    if (st != CNN_OK) fail_msg("train %s: %s", name, cnn_error_message());
}

static int exists(const char *name)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

/* ------------------------------------------------------------------ */

static void fill(float *x, size_t n, float base)
{
    for (size_t i = 0; i < n; i++) x[i] = base + 0.001f * (float)i;
}

/* Every field of the state, the arenas, Adam's moments and step count,
 * and the best weights come back exactly. */
static void test_round_trip(void **state)
{
    (void)state;
    if (rank != 0) return;
    cnn_config_t *cfg = config(5, NULL, NULL, 0);
    const cnn_shape_t in = {cfg->train.batch_size, 1, 8, 8};
    cnn_net_t *a = NULL, *b = NULL;
    cnn_optim_t *oa = NULL, *ob = NULL;
    assert_int_equal(cnn_net_create(cfg->layers, cfg->nlayers, in, 1, &a), CNN_OK);
    assert_int_equal(cnn_net_create(cfg->layers, cfg->nlayers, in, 1, &b), CNN_OK);
    assert_true(a->nstate > 0); /* the batchnorm running statistics */
    cnn_net_init(a, 7);
    cnn_net_init(b, 8);
    fill(a->state, a->nstate, 0.5f);
    assert_int_equal(cnn_optim_create(CNN_ADAM, a->nparams, &oa), CNN_OK);
    assert_int_equal(cnn_optim_create(CNN_ADAM, b->nparams, &ob), CNN_OK);
    fill(oa->m, oa->n, -1.0f);
    fill(oa->v, oa->n, 2.0f);
    oa->t = 123;
    float *best_p = malloc(sizeof(float) * a->nparams), *best_s = malloc(sizeof(float) * a->nstate);
    float *got_p = calloc(a->nparams, sizeof(float)), *got_s = calloc(a->nstate, sizeof(float));
    assert_true(best_p && best_s && got_p && got_s);
    fill(best_p, a->nparams, 3.0f);
    fill(best_s, a->nstate, 4.0f);
    double hist[2 * CNN_HISTORY_COLS];
    for (int i = 0; i < 2 * CNN_HISTORY_COLS; i++) hist[i] = 0.1 * i + 1.0 / 3.0;
    cnn_train_state_t ts = {.epoch = 2, .step = 7, .global_step = 45, .skipped_steps = 1,
                            .evals = 6, .has_best = 1, .best_metric = 0.123456789012345,
                            .best_epoch = 2, .bad_evals = 3, .stopped_early = 1,
                            .lr = 0.0123456789, .acc_loss = 1.0 / 7.0, .acc_correct = 33,
                            .acc_seen = 56, .epoch_seconds = 2.5, .val_loss = 0.4,
                            .val_acc = 0.75, .nhistory = 2, .history = hist};
    char *text = cnn_config_to_string(cfg);
    cnn_model_meta_t meta = {.config = text, .c = 1, .h = 8, .w = 8, .nclasses = 4};
    cnn_checkpoint_t ck = {.net = a, .opt = oa, .ts = &ts, .best_params = best_p,
                           .best_state = best_s, .meta = &meta, .world_size = 1, .threads = 3,
                           .sum_ranks_per_node = 1};
    char path[256];
    snprintf(path, sizeof path, "%s/round-trip.h5", dir);
    if (cnn_checkpoint_save(path, &ck) != CNN_OK) fail_msg("save: %s", cnn_error_message());

    cnn_train_state_t got = {.nhistory = 0};
    int threads = 0, sum_rpn = 0;
    if (cnn_checkpoint_load(path, cfg, 1, b, ob, &got, got_p, got_s, &threads, &sum_rpn) != CNN_OK)
        fail_msg("load: %s", cnn_error_message());
    assert_memory_equal(a->params, b->params, sizeof(float) * a->nparams);
    assert_memory_equal(a->state, b->state, sizeof(float) * a->nstate);
    assert_memory_equal(oa->m, ob->m, sizeof(float) * oa->n);
    assert_memory_equal(oa->v, ob->v, sizeof(float) * oa->n);
    assert_int_equal(ob->t, 123);
    assert_memory_equal(best_p, got_p, sizeof(float) * a->nparams);
    assert_memory_equal(best_s, got_s, sizeof(float) * a->nstate);
    assert_int_equal(threads, 3);
    assert_int_equal(sum_rpn, 1);
    assert_int_equal(got.epoch, 2);
    assert_int_equal(got.step, 7);
    assert_int_equal(got.global_step, 45);
    assert_int_equal(got.skipped_steps, 1);
    assert_int_equal(got.evals, 6);
    assert_int_equal(got.has_best, 1);
    assert_int_equal(got.best_epoch, 2);
    assert_int_equal(got.bad_evals, 3);
    assert_int_equal(got.stopped_early, 1);
    /* doubles bit for bit */
    assert_memory_equal(&got.best_metric, &ts.best_metric, sizeof(double));
    assert_memory_equal(&got.lr, &ts.lr, sizeof(double));
    assert_memory_equal(&got.acc_loss, &ts.acc_loss, sizeof(double));
    assert_true(got.acc_correct == ts.acc_correct && got.acc_seen == ts.acc_seen);
    assert_true(got.val_loss == ts.val_loss && got.val_acc == ts.val_acc);
    assert_int_equal(got.nhistory, 2);
    assert_memory_equal(got.history, hist, sizeof hist);

    /* another world size or optimizer is refused, naming both */
    assert_int_equal(cnn_checkpoint_load(path, cfg, 3, b, ob, &got, got_p, got_s, NULL, NULL),
                     CNN_ECONFIG);
    assert_non_null(strstr(cnn_error_message(), "made with 1 rank, this run has 3"));
    cnn_optim_t *om = NULL;
    assert_int_equal(cnn_optim_create(CNN_MOMENTUM, b->nparams, &om), CNN_OK);
    assert_int_equal(cnn_checkpoint_load(path, cfg, 1, b, om, &got, got_p, got_s, NULL, NULL),
                     CNN_ECONFIG);
    assert_non_null(strstr(cnn_error_message(), "optimizer is adam, this run's is momentum"));

    /* the gradient sum's ranks per node: recorded as written, and
     * refused when it cannot be (more than the world size) */
    ck.world_size = 4;
    ck.sum_ranks_per_node = 2;
    if (cnn_checkpoint_save(path, &ck) != CNN_OK) fail_msg("save: %s", cnn_error_message());
    sum_rpn = 0;
    assert_int_equal(cnn_checkpoint_load(path, cfg, 4, b, ob, &got, got_p, got_s, NULL, &sum_rpn),
                     CNN_OK);
    assert_int_equal(sum_rpn, 2);
    ck.sum_ranks_per_node = 5;
    if (cnn_checkpoint_save(path, &ck) != CNN_OK) fail_msg("save: %s", cnn_error_message());
    assert_int_equal(cnn_checkpoint_load(path, cfg, 4, b, ob, &got, got_p, got_s, NULL, &sum_rpn),
                     CNN_EDATA);
    assert_non_null(strstr(cnn_error_message(), "grad_sum_ranks_per_node is 5, expected 1..4"));

    cnn_optim_free(om);
    cnn_train_state_free(&got);
    free(text);
    free(best_p);
    free(best_s);
    free(got_p);
    free(got_s);
    cnn_optim_free(oa);
    cnn_optim_free(ob);
    cnn_net_free(a);
    cnn_net_free(b);
    free(cfg);
}

/* text without its line `line` (which must be there); malloc'd. */
static char *without_line(const char *text, const char *line)
{
    char *out = strdup(text), *at = NULL;
    assert_non_null(out);
    const size_t n = strlen(line);
    for (char *p = out; (p = strstr(p, line)) != NULL; p++)
        if ((p == out || p[-1] == '\n') && p[n] == '\n') {
            at = p;
            break;
        }
    if (!at) fail_msg("no line '%s' in the config", line);
    memmove(at, at + n + 1, strlen(at + n + 1) + 1);
    return out;
}

/* cnn_checkpoint_compatible: the documented safe keys may change, any
 * other difference names the key and both values. */
static void test_compatible(void **state)
{
    (void)state;
    if (rank != 0) return;
    cnn_config_t *cfg = config(5, NULL, NULL, 0);
    char *saved = cnn_config_to_string(cfg);
    assert_non_null(saved);
    free(cfg);
    static const struct {
        const char *set, *want; /* want NULL: accepted */
    } cases[] = {
        {"train.epochs=9", NULL},
        {"train.threads=2", NULL},
        {"train.log_every=5", NULL},
        {"early_stopping.patience=9", NULL},
        {"checkpoint.every_steps=3", NULL},
        {"checkpoint.every_minutes=2", NULL},
        {"optimizer.lr=0.02", "[optimizer] lr differs: checkpoint has 0.01, this run has 0.02"},
        {"optimizer.type=momentum", "[optimizer] type differs: checkpoint has adam"},
        {"train.seed=4", "[train] seed differs: checkpoint has 3, this run has 4"},
        {"train.batch_size=16", "[train] batch_size differs"},
        {"conv1.filters=7", "[conv1] filters differs: checkpoint has 6, this run has 7"},
        {"drop.p=0.3", "[drop] p differs"},
        {"optimizer.type=lars", "[optimizer] type differs: checkpoint has adam, this run has lars"},
        {"optimizer.lr_schedule=cosine", "[optimizer] lr_schedule differs"},
        {"optimizer.lr_warmup_start=0", "[optimizer] lr_warmup_start differs: checkpoint has "
                                        "auto, this run has 0"},
        {"train.label_smoothing=0.1", "[train] label_smoothing differs"},
        {"train.report_l2=true", "[train] report_l2 differs"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *sets[1] = {cases[i].set};
        cfg = config(5, NULL, sets, 1);
        cnn_status_t st = cnn_checkpoint_compatible("ck.h5", saved, cfg);
        if (!cases[i].want && st != CNN_OK)
            fail_msg("%s must be a safe change: %s", cases[i].set, cnn_error_message());
        if (cases[i].want && (st != CNN_ECONFIG || !strstr(cnn_error_message(), cases[i].want)))
            fail_msg("%s: expected '%s', got '%s'", cases[i].set, cases[i].want,
                     st == CNN_OK ? "accepted" : cnn_error_message());
        free(cfg);
    }

    /* a key the saved config lacks (added to mpicnn after the checkpoint
     * was written) counts as its default */
    char *older = without_line(saved, "nan_policy = stop");
    cfg = config(5, NULL, NULL, 0);
    if (cnn_checkpoint_compatible("ck.h5", older, cfg) != CNN_OK)
        fail_msg("a missing key at its default must be accepted: %s", cnn_error_message());
    free(cfg);
    const char *skip[1] = {"train.nan_policy=skip"};
    cfg = config(5, NULL, skip, 1);
    assert_int_equal(cnn_checkpoint_compatible("ck.h5", older, cfg), CNN_ECONFIG);
    if (!strstr(cnn_error_message(), "[train] nan_policy differs: checkpoint has stop, this run "
                                     "has skip"))
        fail_msg("a missing key is its default: got '%s'", cnn_error_message());
    free(cfg);
    free(older);

    /* a checkpoint from before the schedule, lars and loss keys resumes
     * with them at their defaults */
    static const char *const added[] = {"lr_warmup_start = auto", "lr_min = 0", "milestones = ",
                                        "trust_coefficient = 0.001", "label_smoothing = 0",
                                        "report_l2 = false"};
    char *before = strdup(saved);
    for (size_t i = 0; i < sizeof added / sizeof added[0]; i++) {
        assert_non_null(strstr(before, added[i]));
        char *t = without_line(before, added[i]);
        free(before);
        before = t;
    }
    cfg = config(5, NULL, NULL, 0);
    if (cnn_checkpoint_compatible("ck.h5", before, cfg) != CNN_OK)
        fail_msg("a checkpoint without the new keys must resume: %s", cnn_error_message());
    free(cfg);
    free(before);
    free(saved);
}

/* Replaces the "config" attribute of an HDF5 file (a variable-length
 * UTF-8 string, as mpicnn writes it). */
static void rewrite_config(const char *path, const char *text)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t t = H5Tcopy(H5T_C_S1);
    assert_true(t >= 0);
    assert_true(H5Tset_size(t, H5T_VARIABLE) >= 0 && H5Tset_cset(t, H5T_CSET_UTF8) >= 0);
    hid_t sp = H5Screate(H5S_SCALAR);
    assert_true(sp >= 0);
    assert_true(H5Adelete(f, "config") >= 0);
    hid_t a = H5Acreate2(f, "config", t, sp, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(a >= 0);
    assert_true(H5Awrite(a, t, &text) >= 0);
    H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
    assert_true(H5Fclose(f) >= 0);
}

/* A checkpoint whose config lacks a key (written before the key was
 * added to mpicnn) resumes when this run has the key at its default, and
 * is refused, naming the key, when it has another value. */
static void test_resume_older_config(void **state)
{
    (void)state;
    cnn_train_result_t res;
    train_ok("older", 1, NULL, NULL, 0, 0, &res);
    if (rank == 0) {
        char path[256];
        snprintf(path, sizeof path, "%s/older/checkpoint.h5", dir);
        cnn_h5r_t *r = NULL;
        char *text = NULL;
        assert_int_equal(cnn_h5r_open(path, &r), CNN_OK);
        assert_int_equal(cnn_h5r_attr_str(r, "/", "config", &text), CNN_OK);
        cnn_h5r_close(r);
        char *older = without_line(text, "nan_policy = stop");
        rewrite_config(path, older);
        free(older);
        free(text);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    const char *skip[1] = {"train.nan_policy=skip"};
    assert_int_equal(train(MPI_COMM_WORLD, "older", 2, NULL, skip, 1, 1, &res), CNN_ECONFIG);
    if (rank == 0 && !strstr(cnn_error_message(), "[train] nan_policy differs: checkpoint has "
                                                  "stop, this run has skip"))
        fail_msg("a missing key at another value than its default: got '%s'",
                 cnn_error_message());
    train_ok("older", 2, NULL, NULL, 0, 1, &res);
    assert_int_equal(res.epochs_run, 2);
}

/* Two epochs, then a resume with train.epochs = 3, equal three epochs in
 * one go bit for bit (the best weights, their test accuracy, the final
 * checkpoint). Two threads: the reductions stay in a fixed order. */
static void test_more_epochs_bitwise(void **state)
{
    (void)state;
    const char *extra = "threads = 2\nvalidate_every = 7\n[checkpoint]\nevery_steps = 5\n";
    const char *three[1] = {"train.epochs=3"};
    cnn_train_result_t a, b, c;
    train_ok("more_a", 2, extra, NULL, 0, 0, &a);
    train_ok("more_a", 2, extra, three, 1, 1, &b);
    train_ok("more_b", 3, extra, NULL, 0, 0, &c);
    assert_int_equal(b.epochs_run, 3);
    if (b.params_hash != c.params_hash)
        fail_msg("2 epochs + a resume to 3 differ from 3 epochs: hash %016llx vs %016llx",
                 (unsigned long long)b.params_hash, (unsigned long long)c.params_hash);
    assert_true(b.test_acc == c.test_acc);
    assert_int_equal(b.best_epoch, c.best_epoch);
    if (rank == 0) {
        /* the final checkpoints hold the same current weights too */
        char pa[256], pb[256];
        snprintf(pa, sizeof pa, "%s/more_a/checkpoint.h5", dir);
        snprintf(pb, sizeof pb, "%s/more_b/checkpoint.h5", dir);
        cnn_config_t *cfg = config(3, extra, NULL, 0);
        const cnn_shape_t in = {cfg->train.batch_size, 1, 8, 8};
        cnn_net_t *na = NULL, *nb = NULL;
        cnn_optim_t *oa = NULL, *ob = NULL;
        assert_int_equal(cnn_net_create(cfg->layers, cfg->nlayers, in, 1, &na), CNN_OK);
        assert_int_equal(cnn_net_create(cfg->layers, cfg->nlayers, in, 1, &nb), CNN_OK);
        assert_int_equal(cnn_optim_create(CNN_ADAM, na->nparams, &oa), CNN_OK);
        assert_int_equal(cnn_optim_create(CNN_ADAM, nb->nparams, &ob), CNN_OK);
        float *bp = malloc(sizeof(float) * (na->nparams + na->nstate + 2));
        assert_non_null(bp);
        cnn_train_state_t ta = {.nhistory = 0}, tb = {.nhistory = 0};
        assert_int_equal(cnn_checkpoint_load(pa, cfg, size, na, oa, &ta, bp, bp + na->nparams + 1,
                                             NULL, NULL), CNN_OK);
        assert_int_equal(cnn_checkpoint_load(pb, cfg, size, nb, ob, &tb, bp, bp + na->nparams + 1,
                                             NULL, NULL), CNN_OK);
        assert_memory_equal(na->params, nb->params, sizeof(float) * na->nparams);
        assert_memory_equal(na->state, nb->state, sizeof(float) * na->nstate);
        assert_memory_equal(oa->m, ob->m, sizeof(float) * oa->n);
        assert_memory_equal(oa->v, ob->v, sizeof(float) * oa->n);
        assert_int_equal(oa->t, ob->t);
        assert_int_equal(ta.global_step, tb.global_step);
        assert_int_equal(ta.evals, tb.evals);
        assert_int_equal(ta.nhistory, 3);
        assert_int_equal(tb.nhistory, 3);
        /* the lr column: the schedule's value at the last step of each epoch */
        for (int e = 0; e < 3; e++)
            assert_true(ta.history[e * CNN_HISTORY_COLS + 5] == tb.history[e * CNN_HISTORY_COLS + 5]);
        cnn_train_state_free(&ta);
        cnn_train_state_free(&tb);
        free(bp);
        cnn_optim_free(oa);
        cnn_optim_free(ob);
        cnn_net_free(na);
        cnn_net_free(nb);
        free(cfg);
    }
}

/* The final checkpoints of two runs hold the same weights, optimizer
 * state and history (train loss and lr columns included). */
static void same_checkpoints(const char *a, const char *b, const char *extra,
                             const char *const *sets, int nsets)
{
    char pa[256], pb[256];
    snprintf(pa, sizeof pa, "%s/%s/checkpoint.h5", dir, a);
    snprintf(pb, sizeof pb, "%s/%s/checkpoint.h5", dir, b);
    cnn_config_t *cfg = config(3, extra, sets, nsets);
    const cnn_shape_t in = {cfg->train.batch_size, 1, 8, 8};
    const cnn_optim_kind_t kind = (cnn_optim_kind_t)cfg->opt.type;
    cnn_net_t *na = NULL, *nb = NULL;
    cnn_optim_t *oa = NULL, *ob = NULL;
    assert_int_equal(cnn_net_create(cfg->layers, cfg->nlayers, in, 1, &na), CNN_OK);
    assert_int_equal(cnn_net_create(cfg->layers, cfg->nlayers, in, 1, &nb), CNN_OK);
    assert_int_equal(cnn_optim_create(kind, na->nparams, &oa), CNN_OK);
    assert_int_equal(cnn_optim_create(kind, nb->nparams, &ob), CNN_OK);
    float *bp = malloc(sizeof(float) * (na->nparams + na->nstate + 2));
    assert_non_null(bp);
    cnn_train_state_t ta = {.nhistory = 0}, tb = {.nhistory = 0};
    /* the config the runs trained with (extra: its [train] keys and sections) */
    cnn_config_t *ca = config(3, extra, sets, nsets);
    if (cnn_checkpoint_load(pa, ca, size, na, oa, &ta, bp, bp + na->nparams + 1, NULL, NULL) !=
            CNN_OK ||
        cnn_checkpoint_load(pb, ca, size, nb, ob, &tb, bp, bp + na->nparams + 1, NULL, NULL) !=
            CNN_OK)
        fail_msg("load: %s", cnn_error_message());
    assert_memory_equal(na->params, nb->params, sizeof(float) * na->nparams);
    assert_memory_equal(na->state, nb->state, sizeof(float) * na->nstate);
    if (oa->m) assert_memory_equal(oa->m, ob->m, sizeof(float) * oa->n);
    if (oa->v) assert_memory_equal(oa->v, ob->v, sizeof(float) * oa->n);
    assert_int_equal(oa->t, ob->t);
    assert_int_equal(ta.global_step, tb.global_step);
    assert_int_equal(ta.nhistory, 3);
    assert_int_equal(tb.nhistory, 3);
    /* epoch, train loss and accuracy, val loss and accuracy, lr: all but
     * the times */
    for (int e = 0; e < 3; e++)
        assert_memory_equal(ta.history + e * CNN_HISTORY_COLS, tb.history + e * CNN_HISTORY_COLS,
                            6 * sizeof(double));
    cnn_train_state_free(&ta);
    cnn_train_state_free(&tb);
    free(bp);
    cnn_optim_free(oa);
    cnn_optim_free(ob);
    cnn_net_free(na);
    cnn_net_free(nb);
    free(ca);
    free(cfg);
}

/* Three epochs in one go equal a run whose checkpoint write fails after
 * 22 steps (MPICNN_FAULT=write_fail@22: the run ends with an error, the
 * checkpoint of step 20 stays) resumed to the end, bit for bit. `sections`
 * adds config sections (layers a --set cannot add). */
static void check_cut_and_resumed_with(const char *name, const char *sections,
                                       const char *const *sets, int nsets)
{
    char extra[512];
    snprintf(extra, sizeof extra,
             "threads = 2\nvalidate_every = 7\n[checkpoint]\nevery_steps = 5\n%s", sections);
    char full[64], cut[64];
    snprintf(full, sizeof full, "%s_full", name);
    snprintf(cut, sizeof cut, "%s_cut", name);
    cnn_train_result_t a, b;
    train_ok(full, 3, extra, sets, nsets, 0, &a);
    setenv("MPICNN_FAULT", "write_fail@22", 1);
    const cnn_status_t st = train(MPI_COMM_WORLD, cut, 3, extra, sets, nsets, 0, &b);
    unsetenv("MPICNN_FAULT");
    if (st == CNN_OK) fail_msg("%s: write_fail@22 did not end the run", name);
    train_ok(cut, 3, extra, sets, nsets, 1, &b);
    assert_int_equal(b.epochs_run, 3);
    if (a.params_hash != b.params_hash)
        fail_msg("%s: cut and resumed differs from one run: hash %016llx vs %016llx", name,
                 (unsigned long long)b.params_hash, (unsigned long long)a.params_hash);
    assert_true(a.train_loss == b.train_loss);
    assert_true(a.test_acc == b.test_acc);
    assert_int_equal(a.best_epoch, b.best_epoch);
    if (rank == 0) same_checkpoints(full, cut, extra, sets, nsets);
}

static void check_cut_and_resumed(const char *name, const char *const *sets, int nsets)
{
    check_cut_and_resumed_with(name, "", sets, nsets);
}

/* warmup from lr_warmup_start + linear scaling + cosine, with momentum */
static void test_resume_warmup_cosine(void **state)
{
    (void)state;
    const char *sets[] = {"optimizer.type=momentum", "optimizer.lr=0.02",
                          "optimizer.lr_schedule=cosine", "optimizer.lr_min=0.001",
                          "optimizer.lr_warmup_epochs=1.5", "optimizer.lr_warmup_start=0.002",
                          "optimizer.lr_scaling=linear"};
    check_cut_and_resumed("cosine", sets, 7);
}

/* a residual net (conv1 -> bn1 -> relu1 -> c2, plus relu1, then the pool)
 * with warmup + cosine */
static void test_resume_residual(void **state)
{
    (void)state;
    const char *sets[] = {"net.layers=conv1, bn1, relu1, c2, sum, pool1, drop, fc1",
                          "optimizer.type=momentum", "optimizer.lr=0.02",
                          "optimizer.lr_schedule=cosine", "optimizer.lr_warmup_epochs=1"};
    check_cut_and_resumed_with("residual",
                               "[c2]\ntype = conv\nfilters = 6\nkernel = 3\npad = 1\n"
                               "[sum]\ntype = add\ninputs = c2, relu1\n",
                               sets, 5);
}

/* adamw with a warmup from 0 and cosine */
static void test_resume_adamw(void **state)
{
    (void)state;
    const char *sets[] = {"optimizer.type=adamw", "optimizer.weight_decay=0.01",
                          "optimizer.lr_schedule=cosine", "optimizer.lr_warmup_epochs=1",
                          "optimizer.lr_warmup_start=0"};
    check_cut_and_resumed("adamw", sets, 5);
}

/* lars with multistep, label smoothing and the L2 term in the loss */
static void test_resume_lars(void **state)
{
    (void)state;
    const char *sets[] = {"optimizer.type=lars", "optimizer.lr=0.5",
                          "optimizer.trust_coefficient=0.02", "optimizer.lr_schedule=multistep",
                          "optimizer.milestones=1, 2", "optimizer.lr_decay=0.5",
                          "train.label_smoothing=0.1", "train.report_l2=true"};
    check_cut_and_resumed("lars", sets, 8);
}

/* train.report_l2 changes the logged loss, never the weights: the same
 * run with it reports a larger train loss; without weight decay the same */
static void test_report_l2(void **state)
{
    (void)state;
    const char *off[] = {"optimizer.type=lars", "optimizer.weight_decay=0.01"};
    const char *on[] = {"optimizer.type=lars", "optimizer.weight_decay=0.01",
                        "train.report_l2=true"};
    const char *nowd[] = {"optimizer.type=lars", "optimizer.weight_decay=0",
                          "train.report_l2=true"};
    const char *nowd_off[] = {"optimizer.type=lars", "optimizer.weight_decay=0"};
    cnn_train_result_t a, b, c, d;
    train_ok("l2_off", 1, NULL, off, 2, 0, &a);
    train_ok("l2_on", 1, NULL, on, 3, 0, &b);
    train_ok("l2_nowd", 1, NULL, nowd, 3, 0, &c);
    train_ok("l2_nowd_off", 1, NULL, nowd_off, 2, 0, &d);
    assert_true(a.params_hash == b.params_hash);
    assert_true(b.train_loss > a.train_loss);
    assert_true(c.params_hash == d.params_hash);
    assert_true(c.train_loss == d.train_loss);
}

/* Resuming a run that early stopping ended trains no further epoch. */
static void test_resume_early_stopped(void **state)
{
    (void)state;
    /* no later epoch can beat the first by 0.9: stop after 1 + patience */
    const char *extra = "[early_stopping]\nenabled = true\nmin_delta = 0.9\npatience = 1\n";
    cnn_train_result_t a, b;
    train_ok("early", 5, extra, NULL, 0, 0, &a);
    assert_int_equal(a.stopped_early, 1);
    assert_int_equal(a.epochs_run, 2);
    train_ok("early", 5, extra, NULL, 0, 1, &b);
    assert_int_equal(b.stopped_early, 1);
    assert_int_equal(b.epochs_run, 2);
    assert_true(a.params_hash == b.params_hash);
    assert_true(a.test_acc == b.test_acc);
    assert_true(a.train_loss == b.train_loss);
}

/* Leaves in dir/sub the temp files of writers that died in the middle of
 * writing the run's three files: a child process starts the atomic
 * writes (whatever the writer names its temp files) and exits. */
static void leave_stale_temps(const char *sub)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        static const char *const files[] = {"checkpoint.h5", "model.h5", "metrics.csv"};
        for (int i = 0; i < 3; i++) {
            char p[256];
            cnn_afile_t *f = NULL;
            snprintf(p, sizeof p, "%s/%s/%s", dir, sub, files[i]);
            if (cnn_afile_begin(p, &f) != CNN_OK || cnn_afile_write(f, "half a file", 11) != CNN_OK)
                _exit(1);
        }
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* Files in dir/sub named like temp files (".NAME.tmp.*"). */
static int count_temps(const char *sub)
{
    char p[256];
    int n = 0;
    snprintf(p, sizeof p, "%s/%s", dir, sub);
    DIR *d = opendir(p);
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += e->d_name[0] == '.' && strstr(e->d_name, ".tmp.") != NULL;
    closedir(d);
    return n;
}

/* Stale temp files of a crashed writer go; the resume still works. */
static void test_stale_temp_cleaned(void **state)
{
    (void)state;
    cnn_train_result_t a, b;
    train_ok("clean", 1, NULL, NULL, 0, 0, &a);
    if (rank == 0) {
        leave_stale_temps("clean");
        assert_int_equal(count_temps("clean"), 3);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    train_ok("clean", 1, NULL, NULL, 0, 1, &b);
    assert_true(a.params_hash == b.params_hash);
    if (rank == 0) assert_int_equal(count_temps("clean"), 0);
}

/* --resume never falls back to a fresh start. */
static void test_no_silent_restart(void **state)
{
    (void)state;
    cnn_train_result_t res;
    assert_int_equal(train(MPI_COMM_WORLD, "missing", 1, NULL, NULL, 0, 1, &res), CNN_EUSAGE);
    if (rank == 0) {
        assert_non_null(strstr(cnn_error_message(), "checkpoint.h5 does not exist"));
        assert_false(exists("missing/checkpoint.h5"));
        /* a corrupt checkpoint */
        char p[256];
        snprintf(p, sizeof p, "%s/corrupt", dir);
        assert_int_equal(mkdir(p, 0777), 0);
        snprintf(p, sizeof p, "%s/corrupt/checkpoint.h5", dir);
        FILE *f = fopen(p, "w");
        assert_non_null(f);
        fputs("not an HDF5 file", f);
        fclose(f);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    assert_int_equal(train(MPI_COMM_WORLD, "corrupt", 1, NULL, NULL, 0, 1, &res), CNN_EDATA);
    if (rank == 0) assert_non_null(strstr(cnn_error_message(), "corrupt/checkpoint.h5"));
    /* another config through cnn_train: refused before any step */
    const char *lr[1] = {"optimizer.lr=0.5"};
    train_ok("changed", 1, NULL, NULL, 0, 0, &res);
    assert_int_equal(train(MPI_COMM_WORLD, "changed", 1, NULL, lr, 1, 1, &res), CNN_ECONFIG);
    if (rank == 0) assert_non_null(strstr(cnn_error_message(), "[optimizer] lr differs"));
}

/* Under mpirun -np 2: a 2-rank checkpoint resumed by one rank is refused. */
static void test_world_size(void **state)
{
    (void)state;
    if (size < 2) skip();
    cnn_train_result_t res;
    train_ok("world", 1, NULL, NULL, 0, 0, &res);
    MPI_Comm self;
    MPI_Comm_split(MPI_COMM_WORLD, rank == 0 ? 0 : MPI_UNDEFINED, 0, &self);
    if (rank == 0) {
        assert_int_equal(train(self, "world", 2, NULL, NULL, 0, 1, &res), CNN_ECONFIG);
        char want[64];
        snprintf(want, sizeof want, "made with %d ranks, this run has 1", size);
        if (!strstr(cnn_error_message(), want))
            fail_msg("expected '%s' in '%s'", want, cnn_error_message());
        MPI_Comm_free(&self);
    }
    MPI_Barrier(MPI_COMM_WORLD);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    cnn_blas_single_thread();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_compatible),
        cmocka_unit_test(test_resume_older_config),
        cmocka_unit_test(test_more_epochs_bitwise),
        cmocka_unit_test(test_resume_warmup_cosine),
        cmocka_unit_test(test_resume_residual),
        cmocka_unit_test(test_resume_adamw),
        cmocka_unit_test(test_resume_lars),
        cmocka_unit_test(test_report_l2),
        cmocka_unit_test(test_resume_early_stopped),
        cmocka_unit_test(test_stale_temp_cleaned),
        cmocka_unit_test(test_no_silent_restart),
        cmocka_unit_test(test_world_size),
    };
    int failed = cmocka_run_group_tests(tests, setup, teardown);
    /* one rank's failure fails the run */
    int any = 0;
    MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    MPI_Finalize();
    return any;
}
