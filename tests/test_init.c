/* test_init.c - the initialisers of conv and dense layers (the `init`,
 * `init_std`, `init_range` and `bias_init` keys).
 *
 * - the default (pytorch) is the formula every earlier model was trained
 *   from, bit for bit, and a spec built in code without the keys gets it;
 * - each init on a large layer: the weights' sample mean and standard
 *   deviation against the formula's, within 6 standard errors (mean:
 *   6 sigma / sqrt(n); std: a relative 6 / sqrt(2n)), the support of the
 *   uniform ones and the tails of the normal ones; the biases;
 * - determinism in the seed and the layer's index;
 * - config errors for bad values and for keys the chosen init does not use. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "mpicnn.h"
#include "mpicnn/rng.h"
#include "testutil.h"

/* A spec of `type`: the keys and values of kv (NULL-terminated pairs) in
 * order, then every other key's default. Returns the first failure. */
static cnn_status_t make_spec(const char *type, const char *const *kv, cnn_layer_spec_t *s)
{
    const cnn_layer_ops_t *t = cnn_layer_find(type);
    unsigned set = 0;
    assert_non_null(t);
    *s = (cnn_layer_spec_t){0};
    snprintf(s->name, sizeof s->name, "l_%s", type);
    snprintf(s->type, sizeof s->type, "%s", type);
    for (; kv[0]; kv += 2) {
        const cnn_layer_key_t *k = cnn_layer_key(t, kv[0]);
        if (!k) fail_msg("%s has no key %s", type, kv[0]);
        CNN_TRY(cnn_config_layer_set(s, k, kv[1], "test"));
        set |= 1u << (k - t->keys);
    }
    for (int j = 0; j < t->nkeys; j++)
        if (!(set & (1u << j))) CNN_TRY(cnn_config_layer_default(s, &t->keys[j]));
    return CNN_OK;
}

static cnn_layer_spec_t spec_ok(const char *type, const char *const *kv)
{
    cnn_layer_spec_t s;
    if (make_spec(type, kv, &s) != CNN_OK) fail_msg("%s: %s", type, cnn_error_message());
    return s;
}

static cnn_net_t *net_ok(const cnn_layer_spec_t *specs, int n, cnn_shape_t in, uint64_t seed)
{
    cnn_net_t *net = NULL;
    if (cnn_net_create(specs, n, in, 1, &net) != CNN_OK)
        fail_msg("create %s: %s", specs[0].name, cnn_error_message());
    cnn_net_init(net, seed);
    return net;
}

/* The large layers of the statistics: a conv of 32 -> 96 channels, 3x3
 * (fan_in 288, fan_out 864, 27648 weights), and a dense of 600 -> 150
 * (fan_in 600, fan_out 150, 90000 weights). */
typedef struct {
    const char *type;
    const char *req[7]; /* its required keys */
    cnn_shape_t in;
    double fan_in, fan_out;
    size_t nweights;
} layer_case_t;

static const layer_case_t cases[] = {
    {"conv", {"filters", "96", "kernel", "3", "pad", "1", NULL}, {1, 32, 6, 6}, 288, 864, 27648},
    {"dense", {"units", "150", NULL}, {1, 600, 1, 1}, 600, 150, 90000},
};

/* A spec of case c with the extra keys kv (NULL-terminated pairs). */
static cnn_layer_spec_t case_spec(const layer_case_t *c, const char *const *kv)
{
    const char *all[32];
    int n = 0;
    for (int i = 0; c->req[i]; i++) all[n++] = c->req[i];
    for (int i = 0; kv[i]; i++) all[n++] = kv[i];
    all[n] = NULL;
    return spec_ok(c->type, all);
}

/* ---- the default ----------------------------------------------------- */

/* The layer's params against the initialisation of every model trained
 * before the init key: U(+-1/sqrt(fan_in)) in float from the top 24 bits
 * of cnn_hash4(seed, index, i, 0), weights and biases alike. */
static void check_legacy(const cnn_layer_t *l, uint64_t seed, size_t fan_in)
{
    const float bound = 1.0f / sqrtf((float)fan_in);
    for (size_t i = 0; i < l->sz.params; i++) {
        const float want =
            bound * (2.0f * cnn_u01(cnn_hash4(seed, (uint64_t)l->index, i, 0)) - 1.0f);
        if (memcmp(&l->params[i], &want, sizeof want) != 0)
            fail_msg("%s (layer %d) param %zu: %.9g, the default gives %.9g", l->spec.name,
                     l->index, i, (double)l->params[i], (double)want);
    }
}

static void test_default_unchanged(void **state)
{
    (void)state;
    cnn_layer_spec_t specs[2] = {
        spec_ok("conv", (const char *[]){"filters", "4", "kernel", "3", "pad", "1", NULL}),
        spec_ok("dense", (const char *[]){"units", "10", NULL}),
    };
    const cnn_layer_key_t *k = cnn_layer_key(cnn_layer_find("conv"), "init");
    assert_non_null(k);
    assert_string_equal(k->def, "pytorch");
    assert_string_equal(k->choices[specs[0].init], "pytorch");
    assert_string_equal(cnn_layer_key(cnn_layer_find("dense"), "init")->def, "pytorch");
    cnn_net_t *net = net_ok(specs, 2, (cnn_shape_t){2, 3, 8, 8}, 42);
    check_legacy(&net->layers[0], 42, 3 * 3 * 3);
    check_legacy(&net->layers[1], 42, 4 * 8 * 8);
    cnn_net_free(net);
    /* a spec built in code, with the init fields 0, starts alike */
    cnn_layer_spec_t bare[2] = {
        {.name = "c", .type = "conv", .filters = 4, .kh = 3, .kw = 3, .stride = 1, .pad = 1},
        {.name = "d", .type = "dense", .filters = 10},
    };
    net = net_ok(bare, 2, (cnn_shape_t){2, 3, 8, 8}, 42);
    check_legacy(&net->layers[0], 42, 3 * 3 * 3);
    check_legacy(&net->layers[1], 42, 4 * 8 * 8);
    cnn_net_free(net);
}

/* ---- the distributions ----------------------------------------------- */

typedef struct {
    const char *init;
    const char *extra[5];  /* more keys */
    int normal;            /* 1: normal, 0: uniform */
    double (*scale)(double fan_in, double fan_out, const char *const *extra);
    int draws_biases;      /* pytorch */
} init_case_t;

static double he_normal(double fi, double fo, const char *const *e) { (void)fo; (void)e; return sqrt(2 / fi); }
static double he_uniform(double fi, double fo, const char *const *e) { (void)fo; (void)e; return sqrt(6 / fi); }
static double xavier_normal(double fi, double fo, const char *const *e) { (void)e; return sqrt(2 / (fi + fo)); }
static double xavier_uniform(double fi, double fo, const char *const *e) { (void)e; return sqrt(6 / (fi + fo)); }
static double pytorch(double fi, double fo, const char *const *e) { (void)fo; (void)e; return 1 / sqrt(fi); }
static double given(double fi, double fo, const char *const *e) { (void)fi; (void)fo; return atof(e[1]); }

static const init_case_t inits[] = {
    {"he_normal", {"bias_init", "0.25", NULL}, 1, he_normal, 0},
    {"he_uniform", {"bias_init", "-0.5", NULL}, 0, he_uniform, 0},
    {"xavier_normal", {NULL}, 1, xavier_normal, 0},
    {"xavier_uniform", {"bias_init", "0.125", NULL}, 0, xavier_uniform, 0},
    {"normal", {"init_std", "0.02", NULL}, 1, given, 0},
    {"normal", {"init_std", "0.02", "bias_init", "0.1", NULL}, 1, given, 0},
    {"uniform", {"init_range", "0.1", "bias_init", "1", NULL}, 0, given, 0},
    {"pytorch", {NULL}, 0, pytorch, 1},
};

/* The weights' mean, std and extremes against the init's scale s: the
 * half-width of a uniform init, the std of a normal one. */
static void check_weights(const char *what, const float *w, size_t n, double s, int normal)
{
    double sum = 0, sq = 0, lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        sum += w[i];
        lo = fmin(lo, w[i]);
        hi = fmax(hi, w[i]);
    }
    const double mean = sum / (double)n;
    for (size_t i = 0; i < n; i++) sq += (w[i] - mean) * (w[i] - mean);
    const double sd = sqrt(sq / (double)(n - 1)), want_sd = normal ? s : s / sqrt(3.0);
    const double tol_mean = 6 * want_sd / sqrt((double)n), tol_sd = 6 / sqrt(2.0 * (double)n);
    if (fabs(mean) > tol_mean || fabs(sd / want_sd - 1) > tol_sd)
        fail_msg("%s: %zu weights have mean %.6g (want 0 +- %.3g) and std %.6g (want %.6g, "
                 "relative tolerance %.3g)",
                 what, n, mean, tol_mean, sd, want_sd, tol_sd);
    if (normal && fmax(-lo, hi) < 3 * s)
        fail_msg("%s: no weight beyond 3 std (%.6g) in %zu normal draws", what, 3 * s, n);
    if (!normal && (lo < -s || hi >= s || lo > -0.999 * s || hi < 0.999 * s))
        fail_msg("%s: weights in [%.9g, %.9g], want them to fill [-%.9g, %.9g)", what, lo, hi,
                 s, s);
}

static void check_biases(const char *what, const float *b, size_t n, const init_case_t *ic,
                         double s)
{
    float want = 0.0f;
    for (int i = 0; ic->extra[i]; i += 2)
        if (!strcmp(ic->extra[i], "bias_init")) want = (float)atof(ic->extra[i + 1]);
    for (size_t i = 0; i < n; i++) {
        if (ic->draws_biases ? fabs(b[i]) > s : b[i] != want)
            fail_msg("%s: bias %zu is %.9g, want %s %.9g", what, i, (double)b[i],
                     ic->draws_biases ? "|b| <=" : "", ic->draws_biases ? s : (double)want);
    }
    if (ic->draws_biases && n > 1 && b[0] == b[1]) fail_msg("%s: biases not drawn", what);
}

static void test_distributions(void **state)
{
    (void)state;
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++)
        for (size_t j = 0; j < sizeof inits / sizeof *inits; j++) {
            const layer_case_t *lc = &cases[c];
            const init_case_t *ic = &inits[j];
            const char *kv[8] = {"init", ic->init};
            for (int i = 0; ic->extra[i]; i++) kv[2 + i] = ic->extra[i];
            cnn_layer_spec_t s = case_spec(lc, kv);
            cnn_net_t *net = net_ok(&s, 1, lc->in, 1234);
            const cnn_layer_t *l = &net->layers[0];
            const size_t nb = (size_t)l->out.c, nw = l->sz.params - nb;
            const double scale = ic->scale(lc->fan_in, lc->fan_out, ic->extra);
            char what[96];
            snprintf(what, sizeof what, "%s init = %s (%s)", lc->type, ic->init,
                     ic->extra[0] ? ic->extra[0] : "");
            assert_int_equal(nw, lc->nweights);
            check_weights(what, l->params, nw, scale, ic->normal);
            check_biases(what, l->params + nw, nb, ic, scale);
            cnn_net_free(net);
        }
}

/* ---- determinism ----------------------------------------------------- */

/* Floats at which a and b differ. */
static size_t ndiff(const float *a, const float *b, size_t n)
{
    size_t d = 0;
    for (size_t i = 0; i < n; i++) d += memcmp(&a[i], &b[i], sizeof *a) != 0;
    return d;
}

static void test_determinism(void **state)
{
    (void)state;
    const char *names[] = {"pytorch", "he_normal", "xavier_uniform", "normal", "uniform"};
    for (size_t j = 0; j < sizeof names / sizeof *names; j++) {
        const char *kv[] = {"filters", "8", "kernel", "3", "pad", "1", "init", names[j], NULL};
        cnn_layer_spec_t two[2] = {spec_ok("conv", kv), spec_ok("conv", kv)};
        snprintf(two[1].name, sizeof two[1].name, "second");
        const cnn_shape_t in = {1, 8, 5, 5};
        cnn_net_t *a = net_ok(two, 2, in, 7), *b = net_ok(two, 2, in, 7), *c = net_ok(two, 2, in, 8);
        const size_t np = a->layers[0].sz.params, nw = np - 8;
        assert_int_equal(a->nparams, 2 * np);
        if (ndiff(a->params, b->params, a->nparams))
            fail_msg("init = %s: the same seed gives other weights", names[j]);
        /* another seed, and another layer index, give another stream */
        if (ndiff(a->params, c->params, nw) < nw * 99 / 100)
            fail_msg("init = %s: seeds 7 and 8 give alike weights", names[j]);
        if (ndiff(a->layers[0].params, a->layers[1].params, nw) < nw * 99 / 100)
            fail_msg("init = %s: layers 0 and 1 have alike weights", names[j]);
        cnn_net_free(a);
        cnn_net_free(b);
        cnn_net_free(c);
    }
}

/* ---- config errors --------------------------------------------------- */

static void assert_contains(const char *msg, const char *needle)
{
    if (!strstr(msg, needle)) fail_msg("message '%s' lacks '%s'", msg, needle);
}

/* Values outside a key's range are errors of the config parser. */
static void test_bad_values(void **state)
{
    (void)state;
    static const struct {
        const char *key, *value, *msg;
    } bad[] = {
        {"init", "he", "pytorch | he_normal | he_uniform | xavier_normal | xavier_uniform | "
                       "normal | uniform"},
        {"init", "", "init"},
        {"init", "Normal", "init"},
        {"init_std", "0", "out of range"},
        {"init_std", "-0.1", "out of range"},
        {"init_std", "1e-50", "out of range"}, /* 0 as a float */
        {"init_std", "inf", "init_std"},
        {"init_range", "0", "out of range"},
        {"init_range", "x", "init_range"},
        {"bias_init", "nan", "bias_init"},
        {"bias_init", "1001", "out of range"},
        {"bias_init", "-1e4", "out of range"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
            const char *kv[10];
            int n = 0;
            for (int j = 0; cases[c].req[j]; j++) kv[n++] = cases[c].req[j];
            kv[n++] = bad[i].key;
            kv[n++] = bad[i].value;
            kv[n] = NULL;
            cnn_layer_spec_t s;
            if (make_spec(cases[c].type, kv, &s) != CNN_ECONFIG)
                fail_msg("%s: %s = '%s' is accepted", cases[c].type, bad[i].key, bad[i].value);
            assert_contains(cnn_error_message(), bad[i].msg);
        }
}

/* A key the chosen init does not use is an error when the net is built:
 * init_std (init_range) away from its default without init = normal
 * (uniform), and bias_init away from 0 with pytorch. */
static void test_unused_keys(void **state)
{
    (void)state;
    static const struct {
        const char *kv[7];
        const char *msg; /* NULL: accepted */
    } cases_[] = {
        {{"init", "he_normal", "init_std", "0.02", NULL},
         "layer l_dense (dense): init_std = 0.02 applies only to init = normal, not to init = "
         "he_normal"},
        {{"init_std", "0.02", NULL}, "init_std = 0.02 applies only to init = normal, not to "
                                     "init = pytorch"},
        {{"init", "normal", "init_range", "0.2", NULL},
         "init_range = 0.2 applies only to init = uniform, not to init = normal"},
        {{"init", "xavier_uniform", "init_range", "1", NULL}, "applies only to init = uniform"},
        {{"bias_init", "0.5", NULL}, "bias_init = 0.5 does not apply to init = pytorch"},
        {{"init", "pytorch", "bias_init", "-1", NULL}, "does not apply to init = pytorch"},
        /* a key at its default is indistinguishable from a key left out */
        {{"init", "he_normal", "init_std", "0.01", "init_range", "0.05", NULL}, NULL},
        {{"init", "pytorch", "bias_init", "0", NULL}, NULL},
        {{"init", "normal", "init_std", "0.02", "bias_init", "0", NULL}, NULL},
        {{"init", "uniform", "init_range", "0.3", "bias_init", "0.1", NULL}, NULL},
        {{"init", "he_uniform", "bias_init", "0.1", NULL}, NULL},
    };
    for (size_t i = 0; i < sizeof cases_ / sizeof *cases_; i++) {
        const char *kv[10] = {"units", "3"};
        for (int j = 0; cases_[i].kv[j]; j++) kv[2 + j] = cases_[i].kv[j];
        cnn_layer_spec_t s = spec_ok("dense", kv);
        cnn_net_t *net = NULL;
        cnn_status_t st = cnn_net_create(&s, 1, (cnn_shape_t){1, 5, 1, 1}, 1, &net);
        if (!cases_[i].msg) {
            if (st != CNN_OK) fail_msg("case %zu: %s", i, cnn_error_message());
        } else {
            if (st != CNN_ECONFIG) fail_msg("case %zu (%s) is accepted", i, cases_[i].msg);
            assert_contains(cnn_error_message(), cases_[i].msg);
        }
        cnn_net_free(net);
    }
    /* conv checks them too; a spec built in code names an unknown init */
    cnn_layer_spec_t s = spec_ok("conv", (const char *[]){"filters", "2", "kernel", "1", "init",
                                                          "uniform", "init_std", "0.5", NULL});
    cnn_net_t *net = NULL;
    assert_int_equal(cnn_net_create(&s, 1, (cnn_shape_t){1, 1, 2, 2}, 1, &net), CNN_ECONFIG);
    assert_contains(cnn_error_message(), "layer l_conv (conv): init_std = 0.5");
    s.init_std = 0.01f;
    s.init = 99;
    assert_int_equal(cnn_net_create(&s, 1, (cnn_shape_t){1, 1, 2, 2}, 1, &net), CNN_ECONFIG);
    assert_contains(cnn_error_message(), "unknown init 99");
    s.init = 5; /* normal, from code without its std */
    s.init_std = 0.0f;
    assert_string_equal(cnn_layer_key(cnn_layer_find("conv"), "init")->choices[5], "normal");
    assert_int_equal(cnn_net_create(&s, 1, (cnn_shape_t){1, 1, 2, 2}, 1, &net), CNN_ECONFIG);
    assert_contains(cnn_error_message(), "init = normal needs init_std > 0");
    assert_null(net);
}

/* The keys in a config file, the resolved text and back. */
static const char *ini =
    "[data]\nformat = idx\ntrain_images = a\ntrain_labels = b\ntest_images = c\n"
    "test_labels = d\n[net]\nlayers = c1, fc\n"
    "[c1]\ntype = conv\nfilters = 4\nkernel = 3\ninit = he_normal\nbias_init = 0.1\n"
    "[fc]\ntype = dense\nunits = 10\n%s"
    "[optimizer]\nlr = 0.1\n[train]\nepochs = 1\n";

static void test_config_text(void **state)
{
    (void)state;
    char text[1024];
    cnn_config_t *cfg = malloc(sizeof *cfg), *again = malloc(sizeof *again);
    snprintf(text, sizeof text, ini, "init = normal\ninit_std = 0.02\n");
    if (cnn_config_parse_string(text, "t.ini", NULL, 0, cfg) != CNN_OK)
        fail_msg("%s", cnn_error_message());
    char *s = cnn_config_to_string(cfg);
    assert_contains(s, "[c1]\ntype = conv\nfilters = 4\nkernel = 3\nstride = 1\npad = 0\n"
                       "init = he_normal\ninit_std = 0.01\ninit_range = 0.05\nbias_init = 0.1\n");
    assert_contains(s, "[fc]\ntype = dense\nunits = 10\n"
                       "init = normal\ninit_std = 0.02\ninit_range = 0.05\nbias_init = 0\n");
    assert_int_equal(cnn_config_parse_string(s, "resolved", NULL, 0, again), CNN_OK);
    char *s2 = cnn_config_to_string(again);
    assert_string_equal(s, s2);
    free(s2);
    free(s);
    /* the seeds' forms, and --set */
    assert_int_equal(cnn_config_set(cfg, "fc.init=xavier_uniform"), CNN_OK);
    assert_string_equal(cnn_layer_find("dense")->keys[1].choices[cfg->layers[1].init],
                        "xavier_uniform");
    snprintf(text, sizeof text, ini, "init = glorot\n");
    assert_int_equal(cnn_config_parse_string(text, "t.ini", NULL, 0, cfg), CNN_ECONFIG);
    assert_contains(cnn_error_message(), "t.ini:18: [fc] init:");
    snprintf(text, sizeof text, ini, "init_range = -1\n");
    assert_int_equal(cnn_config_parse_string(text, "t.ini", NULL, 0, cfg), CNN_ECONFIG);
    assert_contains(cnn_error_message(), "t.ini:18: [fc] init_range:");
    snprintf(text, sizeof text, ini, "");
    assert_int_equal(cnn_config_parse_string(text, "t.ini", NULL, 0, cfg), CNN_OK);
    assert_string_equal(cnn_layer_find("dense")->keys[1].choices[cfg->layers[1].init], "pytorch");
    free(cfg);
    free(again);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_unchanged), cmocka_unit_test(test_distributions),
        cmocka_unit_test(test_determinism),       cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_unused_keys),       cmocka_unit_test(test_config_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
