/* test_train.c - data-parallel training, run under mpirun -np 2 (and as a
 * single process): the replicas stay identical, uneven shards and an empty
 * shard neither hang nor diverge, early stopping keeps the best weights,
 * and a saved model reproduces the run's test predictions exactly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <mpi.h>

#include "mpicnn.h"
#include "mpicnn/config.h"
#include "mpicnn/dataprep.h"
#include "mpicnn/evaluate.h"
#include "mpicnn/h5io.h"
#include "mpicnn/model.h"
#include "mpicnn/train.h"
#include "synth.h"

static char dir[64];
static int rank, size;

/* rank 0 makes the directory and the data; everyone learns its name */
static int setup(void **state)
{
    if (rank == 0) {
        snprintf(dir, sizeof dir, "/tmp/mpicnn-train-XXXXXX");
        if (!mkdtemp(dir)) return -1;
        /* 233 training images: 193 after the 40 held out, so with 2 ranks
         * x batch 8 the last global batch has 1 image and rank 1 none */
        if (synth_write(dir, "train", 233, 8, 4, 1) || synth_write(dir, "test", 60, 8, 4, 2))
            return -1;
    }
    MPI_Bcast(dir, sizeof dir, MPI_CHAR, 0, MPI_COMM_WORLD);
    return 0;
}

static int teardown(void **state)
{
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0) return -1;
    }
    return 0;
}

static cnn_status_t train(const char *name, int epochs, const char *net_extra,
                          const char *train_extra, const char *const *sets, int nsets,
                          cnn_train_result_t *res)
{
    char text[4096], out[256];
    synth_config(text, sizeof text, dir, epochs, net_extra, train_extra);
    cnn_config_t *cfg = malloc(sizeof *cfg);
    assert_non_null(cfg);
    cnn_status_t st = cnn_config_parse_string(text, name, sets, nsets, cfg);
    if (st != CNN_OK) fail_msg("config: %s", cnn_error_message());
    snprintf(out, sizeof out, "%s/%s", dir, name);
    cnn_train_opts_t opts = {.comm = MPI_COMM_WORLD, .out_dir = out, .quiet = 1};
    st = cnn_train(cfg, &opts, res);
    free(cfg);
    return st;
}

static void test_replicas_identical(void **state)
{
    cnn_train_result_t res;
    cnn_status_t st = train("replicas", 3, NULL, "threads = 1", NULL, 0, &res);
    if (st != CNN_OK) fail_msg("train: %s", cnn_error_message());
    uint64_t all[64];
    MPI_Allgather(&res.params_hash, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, MPI_COMM_WORLD);
    for (int r = 1; r < size; r++)
        if (all[r] != all[0])
            fail_msg("rank %d's weights differ from rank 0's after training (hash %016llx vs "
                     "%016llx)", r, (unsigned long long)all[r], (unsigned long long)all[0]);
    /* it learned something: 4 balanced classes, chance is 0.25 */
    assert_true(res.test_acc > 0.6);
    assert_int_equal(res.epochs_run, 3);
}

static void test_same_run_same_result(void **state)
{
    /* reproducible: a second identical run gives bitwise the same weights;
     * more threads change the order of sums, not the result's quality */
    cnn_train_result_t a, b;
    assert_int_equal(train("repro_a", 2, NULL, "threads = 1", NULL, 0, &a), CNN_OK);
    assert_int_equal(train("repro_b", 2, NULL, "threads = 1", NULL, 0, &b), CNN_OK);
    assert_true(a.params_hash == b.params_hash);
    assert_true(a.test_acc == b.test_acc);
}

static void test_lr_scaling(void **state)
{
    /* lr_scaling = linear trains exactly as lr times the rank count does
     * (the synthetic config's lr is 0.01), and differently from lr */
    char lr[64];
    snprintf(lr, sizeof lr, "optimizer.lr=%.17g", 0.01 * size);
    const char *scaled[] = {"optimizer.lr_scaling=linear"};
    const char *explicit[] = {lr};
    cnn_train_result_t a, b, c;
    assert_int_equal(train("lr_scaled", 1, NULL, "threads = 1", scaled, 1, &a), CNN_OK);
    assert_int_equal(train("lr_explicit", 1, NULL, "threads = 1", explicit, 1, &b), CNN_OK);
    assert_int_equal(train("lr_plain", 1, NULL, "threads = 1", NULL, 0, &c), CNN_OK);
    assert_true(a.params_hash == b.params_hash);
    if (size > 1) assert_true(a.params_hash != c.params_hash);
    else assert_true(a.params_hash == c.params_hash);
}

static void test_early_stopping_restores_best(void **state)
{
    /* no later epoch can beat the first by 0.9: stop after 1 + patience */
    cnn_train_result_t res;
    const char *sets[] = {"early_stopping.enabled=true", "early_stopping.patience=2",
                          "early_stopping.min_delta=0.9"};
    cnn_status_t st = train("early", 10, NULL, "threads = 1", sets, 3, &res);
    if (st != CNN_OK) fail_msg("train: %s", cnn_error_message());
    assert_int_equal(res.epochs_run, 3);
    assert_int_equal(res.stopped_early, 1);
    assert_int_equal(res.best_epoch, 1);
    if (rank != 0) return;
    /* model.h5 holds epoch 1's weights (the checkpoint's /best), not the
     * latest (the checkpoint's /layers) */
    char mpath[256], cpath[256];
    snprintf(mpath, sizeof mpath, "%s/early/model.h5", dir);
    snprintf(cpath, sizeof cpath, "%s/early/checkpoint.h5", dir);
    cnn_model_meta_t meta;
    assert_int_equal(cnn_model_load_meta(mpath, &meta), CNN_OK);
    cnn_config_t *cfg = malloc(sizeof *cfg);
    assert_int_equal(cnn_config_parse_string(meta.config, "model", NULL, 0, cfg), CNN_OK);
    cnn_net_t *m, *best, *last;
    cnn_shape_t in = {8, 1, 8, 8};
    assert_int_equal(cnn_net_create(cfg->layers, cfg->nlayers, in, 1, &m), CNN_OK);
    assert_int_equal(cnn_net_create(cfg->layers, cfg->nlayers, in, 1, &best), CNN_OK);
    assert_int_equal(cnn_net_create(cfg->layers, cfg->nlayers, in, 1, &last), CNN_OK);
    assert_int_equal(cnn_model_load_weights(mpath, m), CNN_OK);
    cnn_h5r_t *r;
    assert_int_equal(cnn_h5r_open(cpath, &r), CNN_OK);
    assert_int_equal(cnn_model_read_layers(r, cpath, "/best/layers", best, best->params, best->state), CNN_OK);
    assert_int_equal(cnn_model_read_layers(r, cpath, "/layers", last, last->params, last->state), CNN_OK);
    cnn_h5r_close(r);
    assert_memory_equal(m->params, best->params, sizeof(float) * m->nparams);
    assert_memory_equal(m->state, best->state, sizeof(float) * m->nstate);
    assert_true(memcmp(m->params, last->params, sizeof(float) * m->nparams) != 0);
    assert_int_equal(meta.nhistory, 3);
    cnn_net_free(m);
    cnn_net_free(best);
    cnn_net_free(last);
    cnn_model_meta_free(&meta);
    free(cfg);
}

static void test_model_round_trip(void **state)
{
    cnn_train_result_t res;
    assert_int_equal(train("roundtrip", 2, NULL, "threads = 1", NULL, 0, &res), CNN_OK);
    /* load model.h5 on every rank and score the test set with the same
     * ranks: the loss and the predictions are the run's, exactly */
    char mpath[256];
    snprintf(mpath, sizeof mpath, "%s/roundtrip/model.h5", dir);
    cnn_model_meta_t meta;
    assert_int_equal(cnn_model_load_meta(mpath, &meta), CNN_OK);
    cnn_config_t *cfg = malloc(sizeof *cfg);
    assert_int_equal(cnn_config_parse_string(meta.config, "model", NULL, 0, cfg), CNN_OK);
    cnn_net_t *net;
    cnn_shape_t in = {cfg->train.batch_size, meta.c, meta.h, meta.w};
    assert_int_equal(cnn_net_create(cfg->layers, cfg->nlayers, in, 1, &net), CNN_OK);
    assert_int_equal(cnn_model_load_weights(mpath, net), CNN_OK);
    cnn_data_t d;
    assert_int_equal(cnn_data_prepare(cfg, 0, &d), CNN_OK);
    float *scores = malloc(sizeof(float) * d.test->n * 4), *again = malloc(sizeof(float) * d.test->n * 4);
    cnn_eval_t ev, ev2;
    assert_int_equal(cnn_evaluate(MPI_COMM_WORLD, net, d.test, meta.mean, meta.std,
                                  &cnn_loss_softmax_ce, 1, scores, &ev), CNN_OK);
    assert_true(ev.acc == res.test_acc);
    assert_true(ev.loss == res.test_loss);
    /* a second net from the same file predicts the same scores bit for bit */
    cnn_net_t *net2;
    assert_int_equal(cnn_net_create(cfg->layers, cfg->nlayers, in, 1, &net2), CNN_OK);
    assert_int_equal(cnn_model_load_weights(mpath, net2), CNN_OK);
    assert_int_equal(cnn_evaluate(MPI_COMM_WORLD, net2, d.test, meta.mean, meta.std,
                                  &cnn_loss_softmax_ce, 1, again, &ev2), CNN_OK);
    if (rank == 0) assert_memory_equal(scores, again, sizeof(float) * d.test->n * 4);
    cnn_net_free(net);
    cnn_net_free(net2);
    cnn_data_free(&d);
    cnn_model_meta_free(&meta);
    free(scores);
    free(again);
    free(cfg);
}

static void test_errors_agreed(void **state)
{
    /* a net whose output does not match the classes: every rank fails with
     * the same status, nobody hangs */
    cnn_train_result_t res;
    const char *sets[] = {"fc1.units=3"};
    assert_int_equal(train("bad", 1, NULL, NULL, sets, 1, &res), CNN_ECONFIG);
    assert_non_null(strstr(cnn_error_message(), "classes"));
    /* an existing checkpoint is not overwritten without --resume */
    assert_int_equal(train("replicas", 1, NULL, NULL, NULL, 0, &res), CNN_EUSAGE);
    if (rank == 0) assert_non_null(strstr(cnn_error_message(), "--resume"));
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    cnn_blas_single_thread();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replicas_identical),
        cmocka_unit_test(test_same_run_same_result),
        cmocka_unit_test(test_lr_scaling),
        cmocka_unit_test(test_early_stopping_restores_best),
        cmocka_unit_test(test_model_round_trip),
        cmocka_unit_test(test_errors_agreed),
    };
    int failed = cmocka_run_group_tests(tests, setup, teardown);
    /* one rank's failure fails the run */
    int any = 0;
    MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    MPI_Finalize();
    return any;
}
