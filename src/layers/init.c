/* init.c - the initialisers of conv and dense layers (init.h). */
#include "init.h"

#include "mpicnn/rng.h"

const char *const cnn_init_choices[CNN_INIT_COUNT + 1] = {
    [CNN_INIT_PYTORCH] = "pytorch",
    [CNN_INIT_HE_NORMAL] = "he_normal",
    [CNN_INIT_HE_UNIFORM] = "he_uniform",
    [CNN_INIT_XAVIER_NORMAL] = "xavier_normal",
    [CNN_INIT_XAVIER_UNIFORM] = "xavier_uniform",
    [CNN_INIT_NORMAL] = "normal",
    [CNN_INIT_UNIFORM] = "uniform",
    [CNN_INIT_COUNT] = NULL,
};

/* 1: v is set (not 0, a spec built in code) and differs from def */
static int changed(float v, double def)
{
    return v != 0.0f && v != (float)def;
}

/* The error for key `key` = v, which only init `user` uses. */
static cnn_status_t unused_key(const cnn_layer_spec_t *s, const char *key, float v,
                               cnn_init_t user)
{
    const char *u = cnn_init_choices[user];
    return cnn_error_set(CNN_ECONFIG,
                         "layer %s (%s): %s = %g applies only to init = %s, not to init = %s "
                         "(leave %s out or set init = %s)",
                         s->name, s->type, key, (double)v, u, cnn_init_choices[s->init], key, u);
}

cnn_status_t cnn_init_check(const cnn_layer_spec_t *s)
{
    if (s->init < 0 || s->init >= CNN_INIT_COUNT)
        return cnn_error_set(CNN_ECONFIG, "layer %s (%s): unknown init %d", s->name, s->type,
                             s->init);
    if (s->init == CNN_INIT_NORMAL && !(s->init_std > 0.0f))
        return cnn_error_set(CNN_ECONFIG, "layer %s (%s): init = normal needs init_std > 0",
                             s->name, s->type);
    if (s->init == CNN_INIT_UNIFORM && !(s->init_range > 0.0f))
        return cnn_error_set(CNN_ECONFIG, "layer %s (%s): init = uniform needs init_range > 0",
                             s->name, s->type);
    if (s->init != CNN_INIT_NORMAL && changed(s->init_std, CNN_INIT_STD_DEFAULT))
        return unused_key(s, "init_std", s->init_std, CNN_INIT_NORMAL);
    if (s->init != CNN_INIT_UNIFORM && changed(s->init_range, CNN_INIT_RANGE_DEFAULT))
        return unused_key(s, "init_range", s->init_range, CNN_INIT_UNIFORM);
    if (s->init == CNN_INIT_PYTORCH && s->bias_init != 0.0f)
        return cnn_error_set(CNN_ECONFIG,
                             "layer %s (%s): bias_init = %g does not apply to init = pytorch, "
                             "which draws the biases from U(-1/sqrt(fan_in), 1/sqrt(fan_in)) "
                             "as PyTorch does (choose another init to set the biases)",
                             s->name, s->type, (double)s->bias_init);
    return CNN_OK;
}

/* The scale of the weights: the half-width of a uniform init, the
 * standard deviation of a normal one. */
static float weight_scale(const cnn_layer_spec_t *s, size_t fan_in, size_t fan_out)
{
    const double fi = (double)fan_in, fio = (double)fan_in + (double)fan_out;
    switch ((cnn_init_t)s->init) {
    case CNN_INIT_HE_NORMAL: return (float)sqrt(2.0 / fi);
    case CNN_INIT_HE_UNIFORM: return (float)sqrt(6.0 / fi);
    case CNN_INIT_XAVIER_NORMAL: return (float)sqrt(2.0 / fio);
    case CNN_INIT_XAVIER_UNIFORM: return (float)sqrt(6.0 / fio);
    case CNN_INIT_NORMAL: return s->init_std;
    case CNN_INIT_UNIFORM: return s->init_range;
    case CNN_INIT_PYTORCH:
    case CNN_INIT_COUNT: break;
    }
    /* pytorch: computed in float, as the models trained so far were */
    return 1.0f / sqrtf((float)fan_in);
}

static int is_normal(int init)
{
    return init == CNN_INIT_HE_NORMAL || init == CNN_INIT_XAVIER_NORMAL ||
           init == CNN_INIT_NORMAL;
}

/* Value i of the layer's stream, uniform in [-scale, scale) from the top
 * 24 bits of cnn_hash4(seed, index, i, 0), or normal with standard
 * deviation `scale` from cnn_randn(seed, index, i) */
static float draw(uint64_t seed, int index, size_t i, float scale, int normal)
{
    if (normal) return scale * cnn_randn(seed, (uint64_t)index, (uint64_t)i);
    return scale * (2.0f * cnn_u01(cnn_hash4(seed, (uint64_t)index, (uint64_t)i, 0)) - 1.0f);
}

void cnn_init_params(cnn_layer_t *l, uint64_t seed, size_t fan_in, size_t fan_out)
{
    const cnn_layer_spec_t *s = &l->spec;
    const size_t np = l->sz.params, nw = np - (size_t)l->out.c;
    const float scale = weight_scale(s, fan_in, fan_out);
    const int normal = is_normal(s->init);
    for (size_t i = 0; i < nw; i++) l->params[i] = draw(seed, l->index, i, scale, normal);
    /* pytorch draws the biases from the weights' uniform range, going on
     * with the same stream; the others set them to bias_init */
    for (size_t i = nw; i < np; i++)
        l->params[i] = s->init == CNN_INIT_PYTORCH ? draw(seed, l->index, i, scale, 0)
                                                   : s->bias_init;
}
