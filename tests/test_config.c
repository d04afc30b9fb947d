/* test_config.c - the INI config: a full config with every value checked,
 * the resolved text round trip, overrides, every class of error (with
 * file, line and key in the message), the lr schedules and the hash. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "mpicnn/config.h"

/* fmnist-ref plus one of every kind of key. */
static const char *full_ini =
    "# a full config\n"
    "[data]\n"
    "format = idx\n"
    "dir = /data/fmnist\n"
    "train_images = train-images-idx3-ubyte.gz\n"
    "train_labels = train-labels-idx1-ubyte.gz\n"
    "test_images = t10k-images-idx3-ubyte.gz\n"
    "test_labels = t10k-labels-idx1-ubyte.gz\n"
    "classes = T-shirt/top, 3,Ankle boot\n"
    "class_names = fashion-mnist\n"
    "validation = 5000\n"
    "normalize = no\n"
    "\n"
    "[net]\n"
    "layers = conv1, relu1, pool1, conv2, relu2, pool2, flat, fc1, bn, relu3, drop, fc2\n"
    "\n"
    "[conv1]\n"
    "type = conv\n"
    "filters = 32\n"
    "kernel = 3\n"
    "pad = 1\n"
    "[relu1]\n"
    "type = relu\n"
    "[pool1]\n"
    "type = maxpool\n"
    "size = 2\n"
    "[conv2]\n"
    "  type = conv    ; indented, with an inline comment\n"
    "  filters = 64\n"
    "  kernel = 3x5\n"
    "  stride = 2\n"
    "  pad = 1\n"
    "[relu2]\n"
    "type = relu\n"
    "[pool2]\n"
    "type = avgpool\n"
    "size = 3x2\n"
    "stride = 1\n"
    "[flat]\n"
    "type = flatten\n"
    "[fc1]\n"
    "type = dense\n"
    "units = 128\n"
    "[bn]\n"
    "type = batchnorm\n"
    "momentum = 0.2\n"
    "[relu3]\n"
    "type = relu\n"
    "[drop]\n"
    "type = dropout\n"
    "p = 0.25\n"
    "[fc2]\n"
    "type = dense\n"
    "units = 10\n"
    "\n"
    "[optimizer]\n"
    "type = nesterov\n"
    "lr = 0.01\n"
    "momentum = 0.95\n"
    "weight_decay = 5e-4\n"
    "lr_schedule = step\n"
    "lr_decay = 0.5\n"
    "lr_decay_every = 10\n"
    "\n"
    "[train]\r\n"
    "epochs = 30\r\n"
    "batch_size = 128\n"
    "seed = 18446744073709551615\n"
    "loss = hinge\n"
    "threads = 4\n"
    "validate_every = 100\n"
    "log_every = 10\n"
    "nan_policy = skip\n"
    "watchdog_seconds = 600\n"
    "\n"
    "[early_stopping]\n"
    "enabled = yes\n"
    "metric = val_loss\n"
    "patience = 3\n"
    "min_delta = 0.001\n"
    "\n"
    "[checkpoint]\n"
    "every_steps = 500\n"
    "every_minutes = 15.5\n"
    "\n"
    "[sweep]\n"
    "mode = halving\n"
    "ranks_per_trial = 2\n"
    "halving_epochs = 3\n"
    "halving_keep = 0.25\n"
    "optimizer.lr = 0.1, 0.01, 0.001\n"
    "conv1.filters = 16,32\n";

/* The smallest valid config; error cases edit it. Line numbers:
 * 1 [data] .. 6 test_labels, 7 [net], 8 layers, 9 [fc], 10 type,
 * 11 units, 12 [optimizer], 13 lr, 14 [train], 15 epochs. */
static const char *min_ini =
    "[data]\n"
    "format = idx\n"
    "train_images = tr-img.gz\n"
    "train_labels = tr-lab.gz\n"
    "test_images = te-img\n"
    "test_labels = te-lab\n"
    "[net]\n"
    "layers = fc\n"
    "[fc]\n"
    "type = dense\n"
    "units = 10\n"
    "[optimizer]\n"
    "lr = 0.1\n"
    "[train]\n"
    "epochs = 2\n";

static const char *cifar_ini =
    "[data]\n"
    "format = cifar100\n"
    "train_files = train.bin\n"
    "test_files = \n"
    "labels = coarse\n"
    "classes = vehicles_1, 19\n"
    "validation = 0.1\n"
    "[net]\n"
    "layers = c, g\n"
    "[c]\n"
    "type = conv\n"
    "filters = 8\n"
    "kernel = 5\n"
    "[g]\n"
    "type = gap\n"
    "[optimizer]\n"
    "type = adam\n"
    "lr = 1e-3\n"
    "lr_schedule = exponential\n"
    "lr_decay = 0.9\n"
    "lr_decay_every = 100\n"
    "lr_decay_unit = steps\n"
    "[train]\n"
    "epochs = 1\n";

/* ---- fixtures: the config is ~200 KB, so it lives on the heap */

static int setup(void **state)
{
    cnn_config_t *cfg = malloc(sizeof *cfg);
    if (!cfg) return -1;
    cnn_config_defaults(cfg);
    *state = cfg;
    return 0;
}

static int teardown(void **state)
{
    free(*state);
    return 0;
}

/* base with the first `from` replaced by `to`; from NULL appends, "^"
 * prepends. Caller frees. */
static char *edit(const char *base, const char *from, const char *to)
{
    size_t nb = strlen(base), nt = strlen(to);
    char *out = malloc(nb + nt + 1);
    assert_non_null(out);
    if (!from) {
        memcpy(out, base, nb);
        memcpy(out + nb, to, nt + 1);
    } else if (strcmp(from, "^") == 0) {
        memcpy(out, to, nt);
        memcpy(out + nt, base, nb + 1);
    } else {
        const char *at = strstr(base, from);
        assert_non_null(at);
        size_t pre = (size_t)(at - base), nf = strlen(from);
        memcpy(out, base, pre);
        memcpy(out + pre, to, nt);
        memcpy(out + pre + nt, at + nf, nb - pre - nf + 1);
    }
    return out;
}

static void assert_contains(const char *msg, const char *needle)
{
    if (!strstr(msg, needle)) fail_msg("message \"%s\" lacks \"%s\"", msg, needle);
}

/* ---- tests */

static void test_defaults(void **state)
{
    cnn_config_t *cfg = *state;
    assert_int_equal(cfg->data.format, CNN_FORMAT_UNSET);
    assert_string_equal(cfg->data.dir, "");
    assert_int_equal(cfg->data.labels, CNN_LABELS_FINE);
    assert_int_equal(cfg->data.nclasses, 0);
    assert_true(cfg->data.validation == 0 && !cfg->data.validation_is_fraction);
    assert_int_equal(cfg->data.normalize, 1);
    assert_int_equal(cfg->nlayers, 0);
    assert_int_equal(cfg->opt.type, CNN_OPT_SGD);
    assert_true(cfg->opt.lr == 0);
    assert_true(cfg->opt.momentum == 0.9 && cfg->opt.beta1 == 0.9);
    assert_true(cfg->opt.beta2 == 0.999 && cfg->opt.eps == 1e-8);
    assert_true(cfg->opt.weight_decay == 0 && cfg->opt.lr_decay == 1);
    assert_int_equal(cfg->opt.lr_schedule, CNN_LR_CONSTANT);
    assert_int_equal(cfg->opt.lr_decay_every, 1);
    assert_int_equal(cfg->opt.lr_decay_unit, CNN_LR_UNIT_EPOCHS);
    assert_int_equal(cfg->train.epochs, 0);
    assert_int_equal(cfg->train.batch_size, 64);
    assert_true(cfg->train.seed == 1);
    assert_int_equal(cfg->train.loss, CNN_LOSS_SOFTMAX_CE);
    assert_int_equal(cfg->train.threads, 0);
    assert_int_equal(cfg->train.validate_every, 0);
    assert_int_equal(cfg->train.log_every, 50);
    assert_int_equal(cfg->train.nan_policy, CNN_NAN_STOP);
    assert_true(cfg->train.watchdog_seconds == CNN_WATCHDOG_AUTO);
    assert_int_equal(cfg->early_stopping.enabled, 0);
    assert_int_equal(cfg->early_stopping.metric, CNN_METRIC_VAL_ACC);
    assert_int_equal(cfg->early_stopping.patience, 5);
    assert_true(cfg->early_stopping.min_delta == 0);
    assert_int_equal(cfg->checkpoint.every_steps, 0);
    assert_true(cfg->checkpoint.every_minutes == 0);
    assert_int_equal(cfg->sweep.mode, CNN_SWEEP_GRID);
    assert_int_equal(cfg->sweep.ranks_per_trial, 1);
    assert_int_equal(cfg->sweep.halving_epochs, 1);
    assert_true(cfg->sweep.halving_keep == 0.5);
    assert_int_equal(cfg->sweep.nparams, 0);
}

static void check_layer(const cnn_layer_spec_t *l, const char *name, const char *type,
                        int filters, int kh, int kw, int stride, int pad)
{
    assert_string_equal(l->name, name);
    assert_string_equal(l->type, type);
    assert_int_equal(l->filters, filters);
    assert_int_equal(l->kh, kh);
    assert_int_equal(l->kw, kw);
    assert_int_equal(l->stride, stride);
    assert_int_equal(l->pad, pad);
}

static void test_full(void **state)
{
    cnn_config_t *cfg = *state;
    cnn_status_t st = cnn_config_parse_string(full_ini, "full.ini", NULL, 0, cfg);
    if (st != CNN_OK) fail_msg("%s", cnn_error_message());
    assert_string_equal(cfg->source, "full.ini");
    const cnn_data_config_t *d = &cfg->data;
    assert_int_equal(d->format, CNN_FORMAT_IDX);
    assert_string_equal(d->dir, "/data/fmnist");
    assert_string_equal(d->train_images, "train-images-idx3-ubyte.gz");
    assert_string_equal(d->train_labels, "train-labels-idx1-ubyte.gz");
    assert_string_equal(d->test_images, "t10k-images-idx3-ubyte.gz");
    assert_string_equal(d->test_labels, "t10k-labels-idx1-ubyte.gz");
    assert_int_equal(d->ntrain_files, 0);
    assert_int_equal(d->nclasses, 3);
    assert_string_equal(d->classes[0], "T-shirt/top");
    assert_string_equal(d->classes[1], "3");
    assert_string_equal(d->classes[2], "Ankle boot");
    assert_int_equal(d->class_names, CNN_CLASSNAMES_FASHION_MNIST);
    assert_true(d->validation == 5000 && !d->validation_is_fraction);
    assert_int_equal(d->normalize, 0);

    assert_int_equal(cfg->nlayers, 12);
    check_layer(&cfg->layers[0], "conv1", "conv", 32, 3, 3, 1, 1);
    check_layer(&cfg->layers[1], "relu1", "relu", 0, 0, 0, 0, 0);
    check_layer(&cfg->layers[2], "pool1", "maxpool", 0, 2, 2, 2, 0);
    check_layer(&cfg->layers[3], "conv2", "conv", 64, 3, 5, 2, 1);
    check_layer(&cfg->layers[5], "pool2", "avgpool", 0, 3, 2, 1, 0);
    check_layer(&cfg->layers[6], "flat", "flatten", 0, 0, 0, 0, 0);
    check_layer(&cfg->layers[7], "fc1", "dense", 128, 0, 0, 0, 0);
    check_layer(&cfg->layers[8], "bn", "batchnorm", 0, 0, 0, 0, 0);
    assert_true(cfg->layers[8].eps == 1e-5f && cfg->layers[8].momentum == 0.2f);
    check_layer(&cfg->layers[10], "drop", "dropout", 0, 0, 0, 0, 0);
    assert_true(cfg->layers[10].p == 0.25f);
    assert_true(cfg->layers[10].eps == 0 && cfg->layers[0].p == 0);
    check_layer(&cfg->layers[11], "fc2", "dense", 10, 0, 0, 0, 0);

    const cnn_opt_config_t *o = &cfg->opt;
    assert_int_equal(o->type, CNN_OPT_NESTEROV);
    assert_true(o->lr == 0.01 && o->momentum == 0.95 && o->weight_decay == 5e-4);
    assert_true(o->beta1 == 0.9 && o->beta2 == 0.999 && o->eps == 1e-8);
    assert_int_equal(o->lr_schedule, CNN_LR_STEP);
    assert_true(o->lr_decay == 0.5);
    assert_int_equal(o->lr_decay_every, 10);
    assert_int_equal(o->lr_decay_unit, CNN_LR_UNIT_EPOCHS);

    const cnn_train_config_t *t = &cfg->train;
    assert_int_equal(t->epochs, 30);
    assert_int_equal(t->batch_size, 128);
    assert_true(t->seed == UINT64_MAX);
    assert_int_equal(t->loss, CNN_LOSS_HINGE);
    assert_int_equal(t->threads, 4);
    assert_int_equal(t->validate_every, 100);
    assert_int_equal(t->log_every, 10);
    assert_int_equal(t->nan_policy, CNN_NAN_SKIP);
    assert_true(t->watchdog_seconds == 600);

    assert_int_equal(cfg->early_stopping.enabled, 1);
    assert_int_equal(cfg->early_stopping.metric, CNN_METRIC_VAL_LOSS);
    assert_int_equal(cfg->early_stopping.mode, CNN_MODE_MIN); /* derived */
    assert_int_equal(cfg->early_stopping.patience, 3);
    assert_true(cfg->early_stopping.min_delta == 0.001);
    assert_int_equal(cfg->checkpoint.every_steps, 500);
    assert_true(cfg->checkpoint.every_minutes == 15.5);

    const cnn_sweep_config_t *s = &cfg->sweep;
    assert_int_equal(s->mode, CNN_SWEEP_HALVING);
    assert_int_equal(s->ranks_per_trial, 2);
    assert_int_equal(s->halving_epochs, 3);
    assert_true(s->halving_keep == 0.25);
    assert_int_equal(s->nparams, 2);
    assert_string_equal(s->params[0].key, "optimizer.lr");
    assert_string_equal(s->params[0].values, "0.1, 0.01, 0.001");
    assert_string_equal(s->params[1].key, "conv1.filters");
    assert_string_equal(s->params[1].values, "16,32");
}

static void test_cifar(void **state)
{
    cnn_config_t *cfg = *state;
    cnn_status_t st = cnn_config_parse_string(cifar_ini, "c.ini", NULL, 0, cfg);
    if (st != CNN_OK) fail_msg("%s", cnn_error_message());
    assert_int_equal(cfg->data.format, CNN_FORMAT_CIFAR100);
    assert_int_equal(cfg->data.ntrain_files, 1);
    assert_string_equal(cfg->data.train_files[0], "train.bin");
    assert_int_equal(cfg->data.ntest_files, 0);
    assert_int_equal(cfg->data.labels, CNN_LABELS_COARSE);
    assert_int_equal(cfg->data.class_names, CNN_CLASSNAMES_CIFAR100_COARSE);
    assert_true(cfg->data.validation == 0.1 && cfg->data.validation_is_fraction);
    assert_string_equal(cfg->data.train_images, "");
    check_layer(&cfg->layers[0], "c", "conv", 8, 5, 5, 1, 0);
    check_layer(&cfg->layers[1], "g", "gap", 0, 0, 0, 0, 0);
    assert_int_equal(cfg->opt.type, CNN_OPT_ADAM);
    assert_int_equal(cfg->early_stopping.mode, CNN_MODE_MAX);

    /* class_names defaults follow format and labels */
    st = cnn_config_parse_string(cifar_ini, "c.ini", (const char *[]){"data.labels=fine"}, 1,
                                 cfg);
    if (st != CNN_OK) fail_msg("%s", cnn_error_message());
    assert_int_equal(cfg->data.class_names, CNN_CLASSNAMES_CIFAR100_FINE);
    const char *c10[] = {"data.format=cifar10"};
    st = cnn_config_parse_string(cifar_ini, "c.ini", c10, 1, cfg);
    assert_int_equal(st, CNN_ECONFIG); /* labels is cifar100-only */
    assert_contains(cnn_error_message(), "c.ini:5: [data] labels: applies only to format = cifar100");
    char *text = edit(cifar_ini, "labels = coarse\n", "class_names = mnist\n");
    st = cnn_config_parse_string(text, "c.ini", NULL, 0, cfg);
    assert_int_equal(st, CNN_ECONFIG);
    assert_contains(cnn_error_message(), "c.ini:5: [data] class_names: mnist names 10 classes");
    free(text);
    text = edit(cifar_ini, "vehicles_1, 19", "20");
    st = cnn_config_parse_string(text, "c.ini", NULL, 0, cfg);
    assert_int_equal(st, CNN_ECONFIG);
    assert_contains(cnn_error_message(), "c.ini:6: [data] classes: class index 20 is out of range");
    free(text);
}

/* Lines longer than inih's 200-byte buffer keep their full value. */
static void test_long_lines(void **state)
{
    cnn_config_t *cfg = *state;
    char dir[1200], line[1300];
    memset(dir, 'a', sizeof dir - 1);
    dir[0] = '/';
    dir[sizeof dir - 1] = '\0';
    snprintf(line, sizeof line, "dir = %s ; comment\n[net]\n", dir);
    char *text = edit(min_ini, "[net]\n", line);
    cnn_status_t st = cnn_config_parse_string(text, "t.ini", NULL, 0, cfg);
    if (st != CNN_OK) fail_msg("%s", cnn_error_message());
    assert_string_equal(cfg->data.dir, dir);
    assert_int_equal(cfg->train.epochs, 2); /* later lines keep their numbers */
    free(text);

    /* a long line still gets its error at the right line */
    snprintf(line, sizeof line, "dir = %s\n[net]\nbogus = 1\n", dir);
    text = edit(min_ini, "[net]\n", line);
    st = cnn_config_parse_string(text, "t.ini", NULL, 0, cfg);
    assert_int_equal(st, CNN_ECONFIG);
    assert_contains(cnn_error_message(), "t.ini:9: [net] bogus: unknown key");
    free(text);
}

static void test_round_trip(void **state)
{
    cnn_config_t *a = *state;
    cnn_config_t *b = malloc(sizeof *b);
    assert_non_null(b);
    const char *texts[] = {full_ini, cifar_ini, min_ini};
    for (int i = 0; i < 3; i++) {
        cnn_status_t st = cnn_config_parse_string(texts[i], "rt.ini", NULL, 0, a);
        if (st != CNN_OK) fail_msg("%s", cnn_error_message());
        char *s1 = cnn_config_to_string(a);
        assert_non_null(s1);
        st = cnn_config_parse_string(s1, "rt.ini", NULL, 0, b);
        if (st != CNN_OK) fail_msg("%s\n%s", cnn_error_message(), s1);
        char *s2 = cnn_config_to_string(b);
        assert_non_null(s2);
        assert_string_equal(s1, s2);
        assert_memory_equal(a->layers, b->layers, sizeof a->layers);
        assert_memory_equal(&a->data, &b->data, sizeof a->data);
        assert_memory_equal(&a->opt, &b->opt, sizeof a->opt);
        assert_memory_equal(&a->train, &b->train, sizeof a->train);
        assert_memory_equal(&a->sweep, &b->sweep, sizeof a->sweep);
        assert_true(a->early_stopping.mode == b->early_stopping.mode);
        assert_true(cnn_config_hash(s1) == cnn_config_hash(s2));
        free(s1);
        free(s2);
    }
    /* the resolved text names every key, defaults included */
    char *s = cnn_config_to_string(a);
    assert_contains(s, "[train]\nepochs = 2\nbatch_size = 64\nseed = 1\n");
    assert_contains(s, "[fc]\ntype = dense\nunits = 10\n");
    assert_contains(s, "eps = 1e-08\n");
    assert_contains(s, "[sweep]\nmode = grid\n");
    free(s);
    free(b);
}

/* A residual block and a concat: input/inputs parse into the specs, an
 * input naming the default is the default, the resolved text prints them
 * only where they differ from it and round trips; each graph error names
 * the layer, the key and the line. */
static const char *graph_ini =
    "[data]\nformat = idx\ntrain_images = a\ntrain_labels = b\ntest_images = c\n"
    "test_labels = d\n[optimizer]\nlr = 0.1\n[train]\nepochs = 1\n"
    "[net]\nlayers = stem, c1, r1, sum, cat, fc\n"
    "[stem]\ntype = conv\nfilters = 4\nkernel = 3\npad = 1\n"
    "[c1]\ntype = conv\nfilters = 4\nkernel = 3\npad = 1\ninput = stem\n"
    "[r1]\ntype = relu\n"
    "[sum]\ntype = add\ninputs = r1, stem\n"
    "[cat]\ntype = concat\ninputs = sum, input\n"
    "[fc]\ntype = dense\nunits = 10\n";

static void test_graph(void **state)
{
    cnn_config_t *a = *state;
    cnn_config_t *b = malloc(sizeof *b);
    assert_non_null(b);
    if (cnn_config_parse_string(graph_ini, "g.ini", NULL, 0, a) != CNN_OK)
        fail_msg("%s", cnn_error_message());
    assert_int_equal(a->layers[0].ninputs, 0);
    assert_int_equal(a->layers[1].ninputs, 0); /* input = stem: the default */
    assert_int_equal(a->layers[3].ninputs, 2);
    assert_string_equal(a->layers[3].inputs[0], "r1");
    assert_string_equal(a->layers[3].inputs[1], "stem");
    assert_string_equal(a->layers[4].inputs[1], "input");
    char *s1 = cnn_config_to_string(a);
    assert_non_null(s1);
    assert_contains(s1, "[c1]\ntype = conv\nfilters = 4\n");
    assert_contains(s1, "[sum]\ntype = add\ninputs = r1, stem\n");
    assert_contains(s1, "[cat]\ntype = concat\ninputs = sum, input\n");
    assert_null(strstr(s1, "input = "));
    if (cnn_config_parse_string(s1, "g.ini", NULL, 0, b) != CNN_OK)
        fail_msg("%s", cnn_error_message());
    assert_memory_equal(a->layers, b->layers, sizeof a->layers);
    free(s1);
    char v[64];
    assert_int_equal(cnn_config_get_string(a, "sum.inputs", v, sizeof v), CNN_OK);
    assert_string_equal(v, "r1, stem");
    assert_int_equal(cnn_config_get_string(a, "c1.input", v, sizeof v), CNN_OK);
    assert_string_equal(v, "stem");
    assert_int_equal(cnn_config_get_string(a, "stem.input", v, sizeof v), CNN_OK);
    assert_string_equal(v, "input");
    /* an input that is not the default prints (the net, not the config,
     * refuses cat's output then going unused) */
    const char *ovr[] = {"fc.input=sum"};
    if (cnn_config_parse_string(graph_ini, "g.ini", ovr, 1, b) != CNN_OK)
        fail_msg("%s", cnn_error_message());
    s1 = cnn_config_to_string(b);
    assert_contains(s1, "[fc]\ntype = dense\ninput = sum\nunits = 10\n");
    free(s1);
    free(b);
}

static const struct {
    const char *from, *to, *want[2];
} graph_errs[] = {
    {"input = stem", "input = nope", {"g.ini:23: [c1] input: 'nope' is not a layer", NULL}},
    {"input = stem", "input = c1", {"[c1] input: 'c1' is the layer itself", NULL}},
    {"input = stem", "input = fc", {"[c1] input: 'fc' is a later layer", "cycle"}},
    {"input = stem", "input = stem, r1", {"[c1] input: more than 1 items", NULL}},
    {"input = stem", "inputs = stem", {"[c1] inputs: does not apply to a conv layer", NULL}},
    {"inputs = r1, stem", "inputs = r1", {"[sum] inputs: one input", NULL}},
    {"inputs = r1, stem", "input = r1", {"[sum] input: does not apply to an add layer", NULL}},
    {"inputs = r1, stem\n", "", {"[sum] inputs: missing required key for a merge layer (add",
                                  NULL}},
    {"inputs = r1, stem", "inputs = r1, r1", {"[sum] inputs: 'r1' is listed twice", NULL}},
    {"inputs = r1, stem", "inputs = r1, stem, c1, input, cat",
     {"[sum] inputs: more than 4 items", NULL}},
    {"layers = stem,", "layers = input, stem,", {"[net] layers: 'input' names the net's input",
                                                  NULL}},
};

static void test_graph_errors(void **state)
{
    cnn_config_t *cfg = *state;
    for (size_t i = 0; i < sizeof graph_errs / sizeof graph_errs[0]; i++) {
        char *text = edit(graph_ini, graph_errs[i].from, graph_errs[i].to);
        if (cnn_config_parse_string(text, "g.ini", NULL, 0, cfg) != CNN_ECONFIG)
            fail_msg("case %zu: accepted\n%s", i, text);
        for (int j = 0; j < 2 && graph_errs[i].want[j]; j++)
            if (!strstr(cnn_error_message(), graph_errs[i].want[j]))
                fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, cnn_error_message(),
                         graph_errs[i].want[j]);
        free(text);
    }
}

/* train.watchdog_seconds: auto (the default) parses, prints and round
 * trips as auto; a number and 0 keep their meaning; other numbers do not
 * take auto. */
static void test_watchdog_auto(void **state)
{
    cnn_config_t *cfg = *state;
    const char *auto_set[] = {"train.watchdog_seconds=auto"};
    const char *num_set[] = {"train.watchdog_seconds=2.5"};
    const char *off_set[] = {"train.watchdog_seconds=0"};
    const char *bad_set[] = {"train.watchdog_seconds=automatic"};
    const char *lr_set[] = {"optimizer.lr=auto"};
    if (cnn_config_parse_string(min_ini, "t.ini", NULL, 0, cfg) != CNN_OK)
        fail_msg("%s", cnn_error_message());
    assert_true(cfg->train.watchdog_seconds == CNN_WATCHDOG_AUTO);
    char *s = cnn_config_to_string(cfg);
    assert_contains(s, "\nwatchdog_seconds = auto\n");
    free(s);

    char *text = edit(min_ini, NULL, "watchdog_seconds = auto\n");
    if (cnn_config_parse_string(text, "t.ini", NULL, 0, cfg) != CNN_OK)
        fail_msg("%s", cnn_error_message());
    free(text);
    assert_true(cfg->train.watchdog_seconds == CNN_WATCHDOG_AUTO);
    s = cnn_config_to_string(cfg);
    cnn_config_t *b = malloc(sizeof *b);
    assert_non_null(b);
    if (cnn_config_parse_string(s, "rt.ini", NULL, 0, b) != CNN_OK)
        fail_msg("%s", cnn_error_message());
    assert_true(b->train.watchdog_seconds == CNN_WATCHDOG_AUTO);
    free(b);
    free(s);

    assert_int_equal(cnn_config_parse_string(min_ini, "t.ini", num_set, 1, cfg), CNN_OK);
    assert_true(cfg->train.watchdog_seconds == 2.5);
    s = cnn_config_to_string(cfg);
    assert_contains(s, "\nwatchdog_seconds = 2.5\n");
    free(s);
    assert_int_equal(cnn_config_parse_string(min_ini, "t.ini", off_set, 1, cfg), CNN_OK);
    assert_true(cfg->train.watchdog_seconds == 0);
    assert_int_equal(cnn_config_parse_string(min_ini, "t.ini", auto_set, 1, cfg), CNN_OK);
    assert_true(cfg->train.watchdog_seconds == CNN_WATCHDOG_AUTO);

    assert_int_equal(cnn_config_parse_string(min_ini, "t.ini", bad_set, 1, cfg), CNN_ECONFIG);
    assert_contains(cnn_error_message(), "'automatic' is not a number (expected a number >= 0 or auto)");
    assert_int_equal(cnn_config_parse_string(min_ini, "t.ini", lr_set, 1, cfg), CNN_ECONFIG);
    assert_contains(cnn_error_message(), "[optimizer] lr: 'auto' is not a number");
}

static void test_overrides(void **state)
{
    cnn_config_t *cfg = *state;
    const char *ovr[] = {
        "optimizer.lr=0.5",
        " train.batch_size = 32 ",
        "conv1.filters=16",
        "pool1.size=3",              /* the derived stride follows */
        "early_stopping.enabled=on", /* a key the file does not set */
        "train.batch_size=16",       /* later wins */
        "sweep.train.seed=1,2,3",
        "data.dir=/x=y",             /* '=' in the value */
    };
    cnn_status_t st = cnn_config_parse_string(full_ini, "full.ini", ovr, 8, cfg);
    if (st != CNN_OK) fail_msg("%s", cnn_error_message());
    assert_true(cfg->opt.lr == 0.5);
    assert_int_equal(cfg->train.batch_size, 16);
    assert_int_equal(cfg->layers[0].filters, 16);
    assert_int_equal(cfg->layers[2].kh, 3);
    assert_int_equal(cfg->layers[2].stride, 3);
    assert_int_equal(cfg->early_stopping.enabled, 1);
    assert_int_equal(cfg->sweep.nparams, 3);
    assert_string_equal(cfg->sweep.params[2].key, "train.seed");
    assert_string_equal(cfg->sweep.params[2].values, "1,2,3");
    assert_string_equal(cfg->data.dir, "/x=y");
}

static void test_set(void **state)
{
    cnn_config_t *cfg = *state;
    cnn_status_t st = cnn_config_parse_string(full_ini, "full.ini", NULL, 0, cfg);
    if (st != CNN_OK) fail_msg("%s", cnn_error_message());
    assert_int_equal(cnn_config_set(cfg, "conv2.filters=48"), CNN_OK);
    assert_int_equal(cfg->layers[3].filters, 48);
    assert_int_equal(cnn_config_set(cfg, "optimizer.lr=0.2"), CNN_OK);
    assert_true(cfg->opt.lr == 0.2);
    assert_string_equal(cfg->source, "full.ini");
    /* resolved: pool1's stride stays 2 when its size changes */
    assert_int_equal(cnn_config_set(cfg, "pool1.size=3"), CNN_OK);
    assert_int_equal(cfg->layers[2].kh, 3);
    assert_int_equal(cfg->layers[2].stride, 2);

    char *before = cnn_config_to_string(cfg);
    assert_int_equal(cnn_config_set(cfg, "train.epochs=0"), CNN_ECONFIG);
    assert_contains(cnn_error_message(), "--set train.epochs: [train] epochs: 0 is out of range");
    assert_int_equal(cnn_config_set(cfg, "conv1.type=relu"), CNN_ECONFIG);
    assert_contains(cnn_error_message(), "[conv1] filters: does not apply to a relu layer");
    assert_contains(cnn_error_message(), "type set by --set conv1.type");
    char *after = cnn_config_to_string(cfg);
    assert_string_equal(before, after); /* unchanged by the failures */
    free(before);
    free(after);
}

typedef struct {
    const char *from, *to; /* edit of min_ini (see edit()) */
    const char *ovr;       /* one override or NULL */
    const char *want[3];   /* substrings of the message */
} err_case_t;

static const err_case_t err_cases[] = {
    /* ';' where the resolved text would read a comment: it would not round trip */
    {"test_images = te-img\n", "test_images =;te-img\n", NULL,
     {"t.ini:5: [data] test_images: a value may not start with ';'"}},
    {"units = 10\n", "units = 10\n", "data.dir=;x", {"--set data.dir: a value may not hold ';'"}},
    {"units = 10\n", "units = 10\n", "data.dir=a ;b", {"--set data.dir: a value may not hold ';'"}},
    /* unknown section */
    {NULL, "[foo]\nx = 1\n", NULL, {"t.ini:16: [foo]: unknown section"}},
    /* unknown key */
    {NULL, "bogus = 1\n", NULL, {"t.ini:16: [train] bogus: unknown key", "epochs"}},
    {"lr = 0.1\n", "lr = 0.1\nlearning_rate = 1\n", NULL,
     {"t.ini:14: [optimizer] learning_rate: unknown key"}},
    {"units = 10\n", "units = 10\nstrides = 1\n", NULL,
     {"t.ini:12: [fc] strides: unknown key", "dense takes: type, units"}},
    /* key not valid for the layer type */
    {"units = 10\n", "units = 10\nkernel = 3\n", NULL,
     {"t.ini:12: [fc] kernel: does not apply to a dense layer"}},
    {"layers = fc", "layers = r, fc", NULL, {"t.ini:18: [r] filters: does not apply to a relu"}},
    {"units = 10\n", "units = 10\n", "fc.type=relu",
     {"t.ini:11: [fc] units: does not apply to a relu layer", "type set by --set fc.type"}},
    /* missing required keys */
    {"epochs = 2\n", "", NULL, {"t.ini:14: [train] epochs: missing required key", "1..100000"}},
    {"units = 10\n", "", NULL, {"t.ini:9: [fc] units: missing required key for a dense layer"}},
    {"type = dense\n", "", NULL, {"t.ini:9: [fc] type: missing required key"}},
    {"format = idx\n", "", NULL, {"t.ini:1: [data] format: missing required key",
                                  "idx | cifar10 | cifar100"}},
    {"test_labels = te-lab\n", "", NULL,
     {"t.ini:1: [data] test_labels: missing required key for format = idx"}},
    {"[optimizer]\nlr = 0.1\n", "", NULL, {"t.ini: [optimizer] lr: missing required key"}},
    /* bad numbers */
    {NULL, "batch_size = 12abc\n", NULL,
     {"t.ini:16: [train] batch_size: '12abc' is not an integer", "1..65536"}},
    {NULL, "batch_size = 1.5\n", NULL, {"t.ini:16: [train] batch_size: '1.5' is not an integer"}},
    {NULL, "batch_size =\n", NULL, {"t.ini:16: [train] batch_size: '' is not an integer"}},
    {NULL, "seed = -1\n", NULL, {"t.ini:16: [train] seed: '-1' is not an unsigned integer"}},
    {NULL, "seed = 18446744073709551616\n", NULL, {"t.ini:16: [train] seed:", "out of range"}},
    {"lr = 0.1", "lr = 0.1x", NULL, {"t.ini:13: [optimizer] lr: '0.1x' is not a number"}},
    {"epochs = 2", "epochs = 2 # two", NULL, {"t.ini:15: [train] epochs: '2 # two' is not"}},
    /* out of range */
    {NULL, "batch_size = 0\n", NULL, {"t.ini:16: [train] batch_size: 0 is out of range"}},
    {NULL, "batch_size = 99999999999999999999\n", NULL, {"t.ini:16: [train] batch_size:",
                                                         "out of range"}},
    {"epochs = 2", "epochs = 100001", NULL, {"t.ini:15: [train] epochs: 100001 is out of range"}},
    {"lr = 0.1", "lr = 0", NULL, {"t.ini:13: [optimizer] lr: 0 is out of range", "> 0"}},
    {"lr = 0.1", "lr = nan", NULL, {"t.ini:13: [optimizer] lr: nan is out of range"}},
    {"lr = 0.1", "lr = 1e999", NULL, {"t.ini:13: [optimizer] lr: 1e999 is out of range"}},
    {"lr = 0.1", "lr = 0.1\nmomentum = 1", NULL, {"t.ini:14: [optimizer] momentum: 1 is out",
                                                  "[0, 1)"}},
    {"layers = fc", "layers = d, fc", NULL, {"t.ini:18: [d] p: 1 is out of range", "[0, 1)"}},
    {"layers = fc", "layers = d, fc", "d.p=0.99999999", {"--set d.p: [d] p: 0.99999999 is out"}},
    {"units = 10", "units = 10000001", NULL, {"t.ini:11: [fc] units: 10000001 is out of range"}},
    {"test_labels = te-lab\n", "test_labels = te-lab\nvalidation = 1.5\n", NULL,
     {"t.ini:7: [data] validation: 1.5 is out of range"}},
    {"test_labels = te-lab\n", "test_labels = te-lab\nvalidation = -3\n", NULL,
     {"t.ini:7: [data] validation: -3 is out of range"}},
    /* bad bool, bad choice, bad size */
    {NULL, "[early_stopping]\nenabled = maybe\n", NULL,
     {"t.ini:17: [early_stopping] enabled: 'maybe' is not a boolean"}},
    {NULL, "loss = mse\n", NULL, {"t.ini:16: [train] loss: 'mse' is not a valid choice",
                                  "softmax_ce | hinge"}},
    {"type = dense", "type = dens", NULL, {"t.ini:10: [fc] type: 'dens' is not a layer type"}},
    {"layers = fc", "layers = k, fc", NULL, {"t.ini:18: [k] kernel: '3y3' is not a size"}},
    /* duplicates */
    {NULL, "epochs = 3\n", NULL, {"t.ini:16: [train] epochs: duplicate key (first set at line 15)"}},
    {NULL, "[train]\n", NULL, {"t.ini:16: [train]: duplicate section (first at line 14)"}},
    {"layers = fc", "layers = fc, fc", NULL, {"t.ini:8: [net] layers: 'fc' is listed twice"}},
    /* net.layers and layer sections */
    {"layers = fc", "layers = fc, fc2", NULL,
     {"t.ini:8: [net] layers: layer 'fc2' has no [fc2] section"}},
    {NULL, "[fc2]\ntype = relu\n", NULL, {"t.ini:16: [fc2]: unknown section"}},
    {"layers = fc", "layers = fc, data", NULL, {"t.ini:8: [net] layers: 'data' is the name"}},
    {"layers = fc", "layers = fc, a b", NULL, {"t.ini:8: [net] layers: 'a b' is not a valid"}},
    {"layers = fc", "layers = fc,", NULL, {"t.ini:8: [net] layers: empty item"}},
    /* data keys of another format */
    {"[net]", "train_files = a.bin\n[net]", NULL,
     {"t.ini:7: [data] train_files: applies only to format = cifar10 or cifar100"}},
    {"format = idx", "format = idx", "data.format=cifar10",
     {"t.ini:3: [data] train_images: applies only to format = idx (format is cifar10)"}},
    {"[net]", "classes = cat\n[net]", NULL,
     {"t.ini:7: [data] classes: 'cat' is not a class index and class_names = none"}},
    /* syntax */
    {NULL, "just words\n", NULL, {"t.ini:16: syntax error in 'just words'"}},
    {NULL, "[unclosed\n", NULL, {"t.ini:16: syntax error"}},
    {NULL, "[checkpoint] x\n", NULL, {"t.ini:16: [checkpoint]: text after the section header"}},
    {"^", "x = 1\n", NULL, {"t.ini:1: [] x: key outside any section"}},
    /* [sweep] */
    {NULL, "[sweep]\noptimizer.lrr = 1, 2\n", NULL,
     {"t.ini:17: [sweep] optimizer.lrr: 'optimizer.lrr' names no config key"}},
    {NULL, "[sweep]\noptimizer.lr = 0.1, abc\n", NULL,
     {"t.ini:17: [sweep] optimizer.lr: 'abc' is not a number"}},
    {NULL, "[sweep]\nfc.filters = 1, 2\n", NULL,
     {"t.ini:17: [sweep] fc.filters: 'filters' is not a key of fc, a dense layer"}},
    {NULL, "[sweep]\nfc.units = 1,,2\n", NULL, {"t.ini:17: [sweep] fc.units: empty value"}},
    {NULL, "[sweep]\nnet.layers = a, b\n", NULL, {"t.ini:17: [sweep] net.layers: a list-valued"}},
    {NULL, "[sweep]\nhalving = 2\n", NULL, {"t.ini:17: [sweep] halving: unknown key"}},
    /* overrides */
    {NULL, "", "train.epoch=3", {"--set train.epoch: [train] epoch: unknown key"}},
    {NULL, "", "conv1.filters=16", {"--set conv1.filters: [conv1] filters: no such section",
                                    "cannot add a section"}},
    {NULL, "", "optimizer.lr=-1", {"--set optimizer.lr: [optimizer] lr: -1 is out of range"}},
    {NULL, "", "fc.units=ten", {"--set fc.units: [fc] units: 'ten' is not an integer"}},
    {NULL, "", "train.epochs", {"--set train.epochs: malformed override",
                                "section.key=value"}},
    {NULL, "", "epochs=3", {"--set epochs=3: malformed override"}},
    {NULL, "", ".epochs=3", {"--set .epochs=3: malformed override"}},
};

static void test_errors(void **state)
{
    cnn_config_t *cfg = *state;
    /* a valid config first, to show that a failure leaves it unchanged */
    assert_int_equal(cnn_config_parse_string(min_ini, "ok.ini", NULL, 0, cfg), CNN_OK);
    for (size_t i = 0; i < sizeof err_cases / sizeof err_cases[0]; i++) {
        const err_case_t *c = &err_cases[i];
        char *text = edit(min_ini, c->from, c->to);
        char *extra = NULL;
        if (c->from && strcmp(c->from, "layers = fc") == 0 && strstr(c->to, "r, fc"))
            extra = edit(text, NULL, "[r]\ntype = relu\nfilters = 3\n");
        else if (c->from && strcmp(c->from, "layers = fc") == 0 && strstr(c->to, "d, fc"))
            extra = edit(text, NULL, "[d]\ntype = dropout\np = 1\n");
        else if (c->from && strcmp(c->from, "layers = fc") == 0 && strstr(c->to, "k, fc"))
            extra = edit(text, NULL, "[k]\ntype = conv\nkernel = 3y3\n");
        if (extra) {
            free(text);
            text = extra;
        }
        if (c->ovr && strcmp(c->ovr, "d.p=0.99999999") == 0) {
            /* the file value is valid here; the override is not */
            char *fixed = edit(text, "p = 1\n", "p = 0.5\n");
            free(text);
            text = fixed;
        }
        const char *ovr[1] = {c->ovr};
        cnn_status_t st = cnn_config_parse_string(text, "t.ini", ovr, c->ovr ? 1 : 0, cfg);
        if (st != CNN_ECONFIG)
            fail_msg("case %zu: status %d (want CNN_ECONFIG), message \"%s\"\n%s", i, (int)st,
                     cnn_error_message(), text);
        for (int j = 0; j < 3 && c->want[j]; j++) {
            if (!strstr(cnn_error_message(), c->want[j]))
                fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, cnn_error_message(),
                         c->want[j]);
        }
        free(text);
    }
    assert_string_equal(cfg->source, "ok.ini");
    assert_int_equal(cfg->train.epochs, 2);
}

static void test_load(void **state)
{
    cnn_config_t *cfg = *state;
    char path[] = "/tmp/test_config_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    fputs("\xEF\xBB\xBF", f); /* a UTF-8 byte order mark is allowed */
    fputs(full_ini, f);
    fclose(f);
    const char *ovr[] = {"train.epochs=7"};
    cnn_status_t st = cnn_config_load(path, ovr, 1, cfg);
    if (st != CNN_OK) fail_msg("%s", cnn_error_message());
    assert_string_equal(cfg->source, path);
    assert_int_equal(cfg->train.epochs, 7);
    assert_int_equal(cfg->nlayers, 12);

    f = fopen(path, "w");
    assert_non_null(f);
    fputs(min_ini, f);
    fputs("threads = 2000\n", f);
    fclose(f);
    assert_int_equal(cnn_config_load(path, NULL, 0, cfg), CNN_ECONFIG);
    char want[128];
    snprintf(want, sizeof want, "%s:16: [train] threads: 2000 is out of range", path);
    assert_contains(cnn_error_message(), want);
    unlink(path);

    assert_int_equal(cnn_config_load("/nonexistent/dir/x.ini", NULL, 0, cfg), CNN_ECONFIG);
    assert_contains(cnn_error_message(), "/nonexistent/dir/x.ini");
    assert_contains(cnn_error_message(), "No such file or directory");
    assert_string_equal(cfg->source, path); /* unchanged */
}

static void assert_close(double got, double want, double tol)
{
    if (!(fabs(got - want) <= tol)) fail_msg("got %.17g, want %.17g", got, want);
}

static void test_lr(void **state)
{
    cnn_config_t *cfg = *state;
    assert_int_equal(cnn_config_parse_string(min_ini, "t.ini", NULL, 0, cfg), CNN_OK);
    assert_true(cnn_config_lr(cfg, 0, 0, 100, 1) == 0.1);
    assert_true(cnn_config_lr(cfg, 57.5, 100000, 100, 1) == 0.1); /* constant */

    const char *step[] = {"optimizer.lr_schedule=step", "optimizer.lr_decay=0.5",
                          "optimizer.lr_decay_every=10"};
    assert_int_equal(cnn_config_parse_string(min_ini, "t.ini", step, 3, cfg), CNN_OK);
    assert_true(cnn_config_lr(cfg, 0, 0, 100, 1) == 0.1);
    assert_true(cnn_config_lr(cfg, 9.99, 5000, 100, 1) == 0.1);
    assert_true(cnn_config_lr(cfg, 10, 0, 100, 1) == 0.05);
    assert_true(cnn_config_lr(cfg, 25.5, 0, 100, 1) == 0.025);

    const char *expo[] = {"optimizer.lr_schedule=exponential", "optimizer.lr_decay=0.5",
                          "optimizer.lr_decay_every=100", "optimizer.lr_decay_unit=steps"};
    assert_int_equal(cnn_config_parse_string(min_ini, "t.ini", expo, 4, cfg), CNN_OK);
    assert_close(cnn_config_lr(cfg, 3, 0, 100, 1), 0.1, 1e-15);
    assert_close(cnn_config_lr(cfg, 0, 50, 100, 1), 0.1 * pow(0.5, 0.5), 1e-15);
    assert_close(cnn_config_lr(cfg, 0, 200, 100, 1), 0.025, 1e-15);

    const char *stepsteps[] = {"optimizer.lr_schedule=step", "optimizer.lr_decay=0.1",
                               "optimizer.lr_decay_every=3", "optimizer.lr_decay_unit=steps"};
    assert_int_equal(cnn_config_parse_string(min_ini, "t.ini", stepsteps, 4, cfg), CNN_OK);
    assert_close(cnn_config_lr(cfg, 99, 2, 100, 1), 0.1, 1e-15);
    assert_close(cnn_config_lr(cfg, 0, 7, 100, 1), 0.001, 1e-15);
    /* without lr_scaling the rank count changes nothing */
    assert_close(cnn_config_lr(cfg, 0, 7, 100, 8), 0.001, 1e-15);

    /* linear scaling: lr times the ranks, after the schedule */
    const char *lin[] = {"optimizer.lr_scaling=linear", "optimizer.lr_schedule=step",
                         "optimizer.lr_decay=0.5", "optimizer.lr_decay_every=10"};
    assert_int_equal(cnn_config_parse_string(min_ini, "t.ini", lin, 4, cfg), CNN_OK);
    assert_close(cnn_config_lr(cfg, 0, 0, 100, 1), 0.1, 1e-15);
    assert_close(cnn_config_lr(cfg, 0, 0, 100, 2), 0.2, 1e-15);
    assert_close(cnn_config_lr(cfg, 12, 0, 100, 4), 0.2, 1e-15);

    /* with a warmup the factor grows from 1 to the rank count */
    const char *warm[] = {"optimizer.lr_scaling=linear", "optimizer.lr_warmup_epochs=2"};
    assert_int_equal(cnn_config_parse_string(min_ini, "t.ini", warm, 2, cfg), CNN_OK);
    assert_close(cnn_config_lr(cfg, 0, 0, 100, 5), 0.1, 1e-15);
    assert_close(cnn_config_lr(cfg, 1, 0, 100, 5), 0.3, 1e-15);
    assert_close(cnn_config_lr(cfg, 1.5, 0, 100, 5), 0.4, 1e-15);
    assert_close(cnn_config_lr(cfg, 2, 0, 100, 5), 0.5, 1e-15);
    assert_close(cnn_config_lr(cfg, 7, 0, 100, 5), 0.5, 1e-15);

    const char *bad[] = {"optimizer.lr_scaling=sqrt"};
    assert_int_equal(cnn_config_parse_string(min_ini, "t.ini", bad, 1, cfg), CNN_ECONFIG);
    assert_contains(cnn_error_message(), "lr_scaling");
    const char *neg[] = {"optimizer.lr_warmup_epochs=-1"};
    assert_int_equal(cnn_config_parse_string(min_ini, "t.ini", neg, 1, cfg), CNN_ECONFIG);
    assert_contains(cnn_error_message(), "lr_warmup_epochs");
}

/* cosine, multistep and the warmup of every schedule, at chosen steps,
 * against the formulas of docs/config.md */
static void test_lr_schedules(void **state)
{
    cnn_config_t *cfg = *state;
    const double pi = 3.14159265358979323846;
    /* min_ini trains 1 epoch; 4 epochs of 50 steps: T = 200 */
    const char *cosine[] = {"optimizer.lr_schedule=cosine", "optimizer.lr_min=0.001",
                            "train.epochs=4"};
    assert_int_equal(cnn_config_parse_string(min_ini, "t.ini", cosine, 3, cfg), CNN_OK);
    assert_close(cnn_config_lr(cfg, 0, 0, 50, 1), 0.1, 1e-15);
    for (long s = 1; s <= 200; s += 37) {
        const double want = 0.001 + (0.1 - 0.001) * (1 + cos(pi * s / 200.0)) / 2;
        assert_close(cnn_config_lr(cfg, s / 50.0, s, 50, 1), want, 1e-15);
    }
    assert_close(cnn_config_lr(cfg, 2, 100, 50, 1), 0.0505, 1e-15); /* half way */
    assert_close(cnn_config_lr(cfg, 4, 200, 50, 1), 0.001, 1e-15);
    assert_close(cnn_config_lr(cfg, 5, 250, 50, 1), 0.001, 1e-15); /* past the end */
    /* smooth within an epoch: step 1 and step 2 differ */
    assert_true(cnn_config_lr(cfg, 0.02, 1, 50, 1) > cnn_config_lr(cfg, 0.04, 2, 50, 1));
    /* with linear scaling from the scaled rate L = 3 lr down to lr_min */
    const char *cos3[] = {"optimizer.lr_schedule=cosine", "optimizer.lr_min=0.001",
                          "train.epochs=4", "optimizer.lr_scaling=linear"};
    assert_int_equal(cnn_config_parse_string(min_ini, "t.ini", cos3, 4, cfg), CNN_OK);
    assert_close(cnn_config_lr(cfg, 0, 0, 50, 3), 0.3, 1e-15);
    assert_close(cnn_config_lr(cfg, 1, 50, 50, 3),
                 0.001 + (0.3 - 0.001) * (1 + cos(pi * 0.25)) / 2, 1e-15);
    assert_close(cnn_config_lr(cfg, 4, 200, 50, 3), 0.001, 1e-15);

    /* multistep: times lr_decay at each milestone passed */
    const char *multi[] = {"optimizer.lr_schedule=multistep", "optimizer.milestones=2, 5",
                           "optimizer.lr_decay=0.1"};
    assert_int_equal(cnn_config_parse_string(min_ini, "t.ini", multi, 3, cfg), CNN_OK);
    assert_int_equal(cfg->opt.nmilestones, 2);
    assert_int_equal(cfg->opt.milestones[1], 5);
    assert_close(cnn_config_lr(cfg, 0, 0, 50, 1), 0.1, 1e-15);
    assert_close(cnn_config_lr(cfg, 1.98, 99, 50, 1), 0.1, 1e-15);
    assert_close(cnn_config_lr(cfg, 2, 100, 50, 1), 0.01, 1e-15);
    assert_close(cnn_config_lr(cfg, 4.5, 225, 50, 1), 0.01, 1e-15);
    assert_close(cnn_config_lr(cfg, 5, 250, 50, 1), 0.001, 1e-15);
    assert_close(cnn_config_lr(cfg, 60, 3000, 50, 1), 0.001, 1e-15);

    /* a warmup without scaling, from lr_warmup_start to the schedule */
    const char *warm[] = {"optimizer.lr_warmup_epochs=2", "optimizer.lr_warmup_start=0.02"};
    assert_int_equal(cnn_config_parse_string(min_ini, "t.ini", warm, 2, cfg), CNN_OK);
    assert_close(cnn_config_lr(cfg, 0, 0, 50, 1), 0.02, 1e-15);
    assert_close(cnn_config_lr(cfg, 1, 50, 50, 1), 0.06, 1e-15);
    assert_close(cnn_config_lr(cfg, 2, 100, 50, 1), 0.1, 1e-15);
    assert_close(cnn_config_lr(cfg, 3, 150, 50, 1), 0.1, 1e-15);
    /* the default start (auto) is the unscaled rate: no change alone */
    const char *warm0[] = {"optimizer.lr_warmup_epochs=2"};
    assert_int_equal(cnn_config_parse_string(min_ini, "t.ini", warm0, 1, cfg), CNN_OK);
    assert_true(cfg->opt.lr_warmup_start == CNN_LR_WARMUP_START_AUTO);
    assert_true(cnn_config_lr(cfg, 0.5, 25, 50, 1) == 0.1);

    /* warmup x scaling x step schedule: (a + (1 - a) e / w) L d^floor(e / 1),
     * a = start / L */
    const char *wss[] = {"optimizer.lr_warmup_epochs=2", "optimizer.lr_warmup_start=0",
                         "optimizer.lr_scaling=linear", "optimizer.lr_schedule=step",
                         "optimizer.lr_decay=0.5"};
    assert_int_equal(cnn_config_parse_string(min_ini, "t.ini", wss, 5, cfg), CNN_OK);
    assert_close(cnn_config_lr(cfg, 0, 0, 50, 4), 0.0, 1e-15);
    assert_close(cnn_config_lr(cfg, 0.5, 25, 50, 4), 0.25 * 0.4, 1e-15);
    assert_close(cnn_config_lr(cfg, 1.5, 75, 50, 4), 0.75 * 0.4 * 0.5, 1e-15);
    assert_close(cnn_config_lr(cfg, 2, 100, 50, 4), 0.4 * 0.25, 1e-15);

    /* warmup x scaling x cosine, the example of docs/config.md: lr 0.1,
     * 4 ranks, from 0.1 over 1 epoch, cosine to 0 over 10 epochs of 100 */
    const char *wc[] = {"optimizer.lr_warmup_epochs=1", "optimizer.lr_scaling=linear",
                        "optimizer.lr_schedule=cosine", "train.epochs=10"};
    assert_int_equal(cnn_config_parse_string(min_ini, "t.ini", wc, 4, cfg), CNN_OK);
    assert_close(cnn_config_lr(cfg, 0, 0, 100, 4), 0.1, 1e-15);
    const double c50 = 0.4 * (1 + cos(pi * 50 / 1000.0)) / 2;
    assert_close(cnn_config_lr(cfg, 0.5, 50, 100, 4), c50 * (0.25 + 0.75 * 0.5), 1e-15);
    assert_close(cnn_config_lr(cfg, 1, 100, 100, 4), 0.4 * (1 + cos(pi * 0.1)) / 2, 1e-15);

    const char *bad1[] = {"optimizer.lr_schedule=multistep"};
    assert_int_equal(cnn_config_parse_string(min_ini, "t.ini", bad1, 1, cfg), CNN_ECONFIG);
    assert_contains(cnn_error_message(), "multistep needs [optimizer] milestones");
    const char *bad2[] = {"optimizer.milestones=5, 3"};
    assert_int_equal(cnn_config_parse_string(min_ini, "t.ini", bad2, 1, cfg), CNN_ECONFIG);
    assert_contains(cnn_error_message(), "3 follows 5");
    const char *bad3[] = {"optimizer.milestones=2, x"};
    assert_int_equal(cnn_config_parse_string(min_ini, "t.ini", bad3, 1, cfg), CNN_ECONFIG);
    assert_contains(cnn_error_message(), "'x' is not an epoch");
    const char *bad4[] = {"optimizer.lr_warmup_start=-1"};
    assert_int_equal(cnn_config_parse_string(min_ini, "t.ini", bad4, 1, cfg), CNN_ECONFIG);
    const char *bad5[] = {"optimizer.trust_coefficient=0"};
    assert_int_equal(cnn_config_parse_string(min_ini, "t.ini", bad5, 1, cfg), CNN_ECONFIG);
    const char *bad6[] = {"optimizer.lr_min=-0.1"};
    assert_int_equal(cnn_config_parse_string(min_ini, "t.ini", bad6, 1, cfg), CNN_ECONFIG);
}

/* The new keys' defaults and checks, and that they print back. */
static void test_optim_keys(void **state)
{
    cnn_config_t *cfg = *state;
    assert_int_equal(cnn_config_parse_string(min_ini, "t.ini", NULL, 0, cfg), CNN_OK);
    assert_true(cfg->opt.lr_min == 0.0);
    assert_true(cfg->opt.trust_coefficient == 0.001);
    assert_int_equal(cfg->opt.nmilestones, 0);
    assert_true(cfg->train.label_smoothing == 0.0);
    assert_int_equal(cfg->train.report_l2, 0);
    const char *sets[] = {"optimizer.type=lars", "optimizer.trust_coefficient=0.02",
                          "optimizer.milestones=3,7 , 9", "train.label_smoothing=0.1",
                          "train.report_l2=yes", "optimizer.lr_warmup_start=0.005"};
    assert_int_equal(cnn_config_parse_string(min_ini, "t.ini", sets, 6, cfg), CNN_OK);
    assert_int_equal(cfg->opt.type, CNN_OPT_LARS);
    char *text = cnn_config_to_string(cfg);
    assert_non_null(text);
    assert_contains(text, "type = lars\n");
    assert_contains(text, "milestones = 3, 7, 9\n");
    assert_contains(text, "lr_warmup_start = 0.005\n");
    assert_contains(text, "label_smoothing = 0.1\n");
    assert_contains(text, "report_l2 = true\n");
    cnn_config_t *back = malloc(sizeof *back);
    assert_non_null(back);
    assert_int_equal(cnn_config_parse_string(text, "t.ini", NULL, 0, back), CNN_OK);
    assert_int_equal(back->opt.milestones[2], 9);
    assert_true(back->opt.trust_coefficient == 0.02);
    free(back);
    free(text);
    const char *adamw[] = {"optimizer.type=adamw"};
    assert_int_equal(cnn_config_parse_string(min_ini, "t.ini", adamw, 1, cfg), CNN_OK);
    assert_int_equal(cfg->opt.type, CNN_OPT_ADAMW);
    const char *ls1[] = {"train.label_smoothing=1"};
    assert_int_equal(cnn_config_parse_string(min_ini, "t.ini", ls1, 1, cfg), CNN_ECONFIG);
    assert_contains(cnn_error_message(), "label_smoothing");
    const char *ls2[] = {"train.loss=hinge", "train.label_smoothing=0.1"};
    assert_int_equal(cnn_config_parse_string(min_ini, "t.ini", ls2, 2, cfg), CNN_ECONFIG);
    assert_contains(cnn_error_message(), "applies only to loss = softmax_ce");
}

static void test_hash(void **state)
{
    cnn_config_t *cfg = *state;
    /* FNV-1a 64 reference values */
    assert_true(cnn_config_hash("") == 0xcbf29ce484222325ULL);
    assert_true(cnn_config_hash("a") == 0xaf63dc4c8601ec8cULL);
    assert_true(cnn_config_hash("foobar") == 0x85944171f73967e8ULL);

    assert_int_equal(cnn_config_parse_string(full_ini, "h.ini", NULL, 0, cfg), CNN_OK);
    char *s1 = cnn_config_to_string(cfg);
    assert_int_equal(cnn_config_set(cfg, "drop.p=0.3"), CNN_OK);
    char *s2 = cnn_config_to_string(cfg);
    assert_int_equal(cnn_config_set(cfg, "drop.p=0.25"), CNN_OK);
    char *s3 = cnn_config_to_string(cfg);
    assert_true(cnn_config_hash(s1) != cnn_config_hash(s2));
    assert_true(cnn_config_hash(s1) == cnn_config_hash(s3));
    free(s1);
    free(s2);
    free(s3);
}

static void test_get_string(void **state)
{
    cnn_config_t *cfg = *state;
    char buf[64];
    assert_int_equal(cnn_config_parse_string(full_ini, "g.ini", NULL, 0, cfg), CNN_OK);
    struct { const char *key, *want; } ok[] = {
        {"optimizer.lr", "0.01"}, {"optimizer.type", "nesterov"},
        {"conv1.filters", "32"}, {"conv2.kernel", "3x5"}, {"pool1.stride", "2"},
        {"bn.eps", "1e-05"}, {"drop.p", "0.25"}, {"drop.type", "dropout"},
        {"train.seed", "18446744073709551615"}, {"data.validation", "5000"},
        {"data.normalize", "false"}, {"early_stopping.mode", "min"},
        {"data.classes", "T-shirt/top, 3, Ankle boot"}, {"sweep.optimizer.lr", "0.1, 0.01, 0.001"},
        {"checkpoint.every_minutes", "15.5"}, {"optimizer.weight_decay", "0.0005"},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        cnn_status_t st = cnn_config_get_string(cfg, ok[i].key, buf, sizeof buf);
        if (st != CNN_OK) fail_msg("%s: %s", ok[i].key, cnn_error_message());
        assert_string_equal(buf, ok[i].want);
    }
    assert_int_equal(cnn_config_get_string(cfg, "optimizer.nope", buf, sizeof buf), CNN_ECONFIG);
    assert_int_equal(cnn_config_get_string(cfg, "relu1.filters", buf, sizeof buf), CNN_ECONFIG);
    assert_int_equal(cnn_config_get_string(cfg, "data.train_files", buf, sizeof buf), CNN_ECONFIG);
    assert_int_equal(cnn_config_get_string(cfg, "nodot", buf, sizeof buf), CNN_ECONFIG);
    assert_int_equal(cnn_config_get_string(cfg, "data.dir", buf, 4), CNN_EINTERNAL);
    assert_int_equal(cnn_config_parse_string(cifar_ini, "g.ini", NULL, 0, cfg), CNN_OK);
    assert_int_equal(cnn_config_get_string(cfg, "data.test_files", buf, sizeof buf), CNN_OK);
    assert_string_equal(buf, "");
    assert_int_equal(cnn_config_get_string(cfg, "data.validation", buf, sizeof buf), CNN_OK);
    assert_string_equal(buf, "0.1");
}

/* The activations' keys: values and defaults, the resolved text, --set,
 * and bad values (CNN_ECONFIG naming the file, line, layer and key). */
static const char *act_ini =
    "[data]\nformat = idx\ntrain_images = a\ntrain_labels = b\ntest_images = c\n"
    "test_labels = d\n"
    "[net]\nlayers = s, t, lr, lr2, e, g, g2, fc\n"       /* lines 7-8 */
    "[s]\ntype = sigmoid\n[t]\ntype = tanh\n"              /* 9-12 */
    "[lr]\ntype = leaky_relu\nslope = 0.2\n"               /* 13-15 */
    "[lr2]\ntype = leaky_relu\n"                           /* 16-17 */
    "[e]\ntype = elu\nalpha = 0.5\n"                       /* 18-20 */
    "[g]\ntype = gelu\napproximate = tanh\n"               /* 21-23 */
    "[g2]\ntype = gelu\n"                                  /* 24-25 */
    "[fc]\ntype = dense\nunits = 10\n[optimizer]\nlr = 0.1\n[train]\nepochs = 2\n";

static void test_activation_keys(void **state)
{
    cnn_config_t *cfg = *state;
    if (cnn_config_parse_string(act_ini, "a.ini", NULL, 0, cfg) != CNN_OK)
        fail_msg("%s", cnn_error_message());
    assert_string_equal(cfg->layers[0].type, "sigmoid");
    assert_string_equal(cfg->layers[1].type, "tanh");
    assert_true(cfg->layers[2].slope == 0.2f);
    assert_true(cfg->layers[3].slope == 0.01f); /* the default */
    assert_true(cfg->layers[4].alpha == 0.5f);
    assert_int_equal(cfg->layers[5].approximate, 1);
    assert_int_equal(cfg->layers[6].approximate, 0);
    char *s = cnn_config_to_string(cfg);
    assert_contains(s, "[lr2]\ntype = leaky_relu\nslope = 0.01\n");
    assert_contains(s, "[e]\ntype = elu\nalpha = 0.5\n");
    assert_contains(s, "[g2]\ntype = gelu\napproximate = none\n");
    cnn_config_t *back = malloc(sizeof *back);
    assert_non_null(back);
    assert_int_equal(cnn_config_parse_string(s, "a.ini", NULL, 0, back), CNN_OK);
    assert_memory_equal(cfg->layers, back->layers, sizeof cfg->layers);
    free(back);
    free(s);
    assert_int_equal(cnn_config_set(cfg, "g2.approximate=tanh"), CNN_OK);
    assert_int_equal(cfg->layers[6].approximate, 1);
    assert_int_equal(cnn_config_set(cfg, "e.alpha=2"), CNN_OK);
    assert_true(cfg->layers[4].alpha == 2.0f);

    static const struct {
        const char *from, *to, *want;
    } bad[] = {
        {"slope = 0.2", "slope = -0.1",
         "a.ini:15: [lr] slope: -0.1 is out of range (expected a number >= 0)"},
        {"slope = 0.2", "slope = x", "a.ini:15: [lr] slope: 'x' is not a number"},
        {"alpha = 0.5", "alpha = 0", "a.ini:20: [e] alpha: 0 is out of range (expected a number > 0)"},
        {"approximate = tanh", "approximate = erf",
         "a.ini:23: [g] approximate: 'erf' is not a valid choice (expected none | tanh)"},
        {"type = sigmoid\n", "type = sigmoid\nslope = 0.1\n",
         "a.ini:11: [s] slope: does not apply to a sigmoid layer"},
        {"type = elu\n", "type = elu\napproximate = none\n",
         "[e] approximate: does not apply to"},
        {"type = elu\n", "type = elu\napproximate = none\n", "(elu takes: type, alpha, input)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *text = edit(act_ini, bad[i].from, bad[i].to);
        assert_int_equal(cnn_config_parse_string(text, "a.ini", NULL, 0, cfg), CNN_ECONFIG);
        assert_contains(cnn_error_message(), bad[i].want);
        free(text);
    }
    assert_int_equal(cnn_config_set(cfg, "g.approximate=fast"), CNN_ECONFIG);
    assert_contains(cnn_error_message(), "[g] approximate: 'fast' is not a valid choice");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cifar, setup, teardown),
        cmocka_unit_test_setup_teardown(test_graph, setup, teardown),
        cmocka_unit_test_setup_teardown(test_graph_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watchdog_auto, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overrides, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lr, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lr_schedules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_optim_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_string, setup, teardown),
        cmocka_unit_test_setup_teardown(test_activation_keys, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
