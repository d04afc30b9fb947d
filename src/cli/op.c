/* op.c - `mpicnn op LAYER ...`: one layer's forward (and backward) on
 * CSV files, through the same layer code the trainer uses. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "mpicnn/csv.h"

static const char op_usage[] =
    "usage: mpicnn op LAYER FLAGS\n"
    "  conv      --x F --x-shape N,C,H,W --w F --w-shape K,C,KH,KW --b F --stride S --pad P --out F\n"
    "            [--dout F --dx F --dw F --db F]\n"
    "  maxpool   --x F --x-shape N,C,H,W --size PH,PW --stride S --out F [--dout F --dx F]\n"
    "  avgpool   (same flags as maxpool)\n"
    "  relu      --x F --x-shape ... --out F [--dout F --dx F]\n"
    "  dense     --x F --x-shape N,D --w F --w-shape D,M --b F --out F [--dout F --dx F --dw F --db F]\n"
    "  dropout   --x F --x-shape ... --p P --mode train|test --seed K --out F [--dout F --dx F]\n"
    "  batchnorm --x F --x-shape ... --gamma F --beta F --mode train|test [--mean F --var F] --eps E\n"
    "            --out F [--dout F --dx F --dgamma F --dbeta F]\n"
    "  softmax-ce --x F --x-shape N,K --labels F --out F [--dx F]\n"
    "  hinge      --x F --x-shape N,K --labels F --out F [--dx F]\n"
    "Arrays are C-order numbers separated by commas, spaces or newlines;\n"
    "outputs have one value per line with 9 significant digits.\n";

/* Reads the file named by `flag` and checks it holds exactly `want`
 * values; `shape` describes where `want` comes from for the message. */
static cnn_status_t read_exact(cli_args_t *a, const char *flag, size_t want,
                               const char *shape, float **out)
{
    const char *path;
    size_t n;
    *out = NULL;
    CNN_TRY(cli_need(a, flag, &path));
    CNN_TRY(cnn_csv_read(path, flag, out, &n));
    if (n != want) {
        free(*out);
        *out = NULL;
        return cnn_error_set(CNN_EDATA, "%s %s: has %zu values, but shape %s needs %zu",
                             flag, path, n, shape, want);
    }
    return CNN_OK;
}

/* Writes to the file named by `flag`, if that flag was given. */
static cnn_status_t write_opt(cli_args_t *a, const char *flag, const float *v, size_t n)
{
    const char *path = cli_get(a, flag);
    return path ? cnn_csv_write(path, v, n) : CNN_OK;
}

static void dims_str(const int *d, int nd, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    for (int i = 0; i < nd && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, i ? ",%d" : "(%d", d[i]);
    if (o < len) snprintf(buf + o, len - o, ")");
}

static size_t prod(const int *d, int nd)
{
    size_t p = 1;
    for (int i = 0; i < nd; i++) p *= (size_t)d[i];
    return p;
}

/* The softmax-ce and hinge ops: x (N,K), labels (N). */
static cnn_status_t op_loss(cli_args_t *a, const cnn_loss_t *loss)
{
    const char *s;
    int d[4], nd;
    float *x = NULL, *lab = NULL, *dx = NULL;
    int *labels = NULL;
    cnn_status_t st;
    char shape[64];
    CNN_TRY(cli_need(a, "--x-shape", &s));
    CNN_TRY(cli_dims("--x-shape", s, 2, d, &nd));
    if (nd != 2) return cnn_error_set(CNN_EUSAGE, "--x-shape: %s needs N,K (2 dimensions)", loss->name);
    dims_str(d, nd, shape, sizeof shape);
    if ((st = read_exact(a, "--x", prod(d, 2), shape, &x)) != CNN_OK) goto done;
    if ((st = read_exact(a, "--labels", (size_t)d[0], "(N)", &lab)) != CNN_OK) goto done;
    labels = malloc(sizeof(int) * (size_t)d[0]);
    dx = malloc(sizeof(float) * prod(d, 2));
    if (!labels || !dx) {
        st = cnn_error_set(CNN_ENOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < d[0]; i++) {
        if (lab[i] != (float)(int)lab[i] || lab[i] < 0 || lab[i] >= (float)d[1]) {
            st = cnn_error_set(CNN_EDATA, "--labels: value %d is %g, not a class index in [0, %d)",
                               i, (double)lab[i], d[1]);
            goto done;
        }
        labels[i] = (int)lab[i];
    }
    double sum;
    loss->compute(x, labels, d[0], d[1], 1.0f / (float)d[0], &sum, dx);
    float mean = (float)(sum / d[0]);
    const char *out;
    if ((st = cli_need(a, "--out", &out)) != CNN_OK) goto done;
    (void)cli_get(a, "--dx"); /* the one optional flag */
    if ((st = cli_check_unused(a)) != CNN_OK) goto done;
    if ((st = cnn_csv_write(out, &mean, 1)) != CNN_OK) goto done;
    st = write_opt(a, "--dx", dx, prod(d, 2));
done:
    free(x);
    free(lab);
    free(dx);
    free(labels);
    return st;
}

/* Maps an --x-shape of 1 to 4 dims to NCHW; flat shapes become (N,D,1,1). */
static cnn_status_t x_shape(cli_args_t *a, int want4, cnn_shape_t *in, char *desc, size_t len)
{
    const char *s;
    int d[4], nd;
    CNN_TRY(cli_need(a, "--x-shape", &s));
    CNN_TRY(cli_dims("--x-shape", s, 4, d, &nd));
    if (want4 && nd != 4)
        return cnn_error_set(CNN_EUSAGE, "--x-shape: '%s' must be N,C,H,W", s);
    dims_str(d, nd, desc, len);
    if (nd == 4) *in = (cnn_shape_t){d[0], d[1], d[2], d[3]};
    else if (nd == 3) *in = (cnn_shape_t){d[0], d[1], d[2], 1};
    else *in = (cnn_shape_t){d[0], nd == 2 ? d[1] : 1, 1, 1};
    return CNN_OK;
}

cnn_status_t cli_op(int argc, char **argv, MPI_Comm comm)
{
    static const char *const sw[] = {"--help", NULL};
    cli_args_t a;
    CNN_TRY(cli_parse(argc, argv, sw, &a));
    if (cli_has(&a, "--help") || a.npos == 0) {
        fputs(op_usage, a.npos ? stdout : stderr);
        return a.npos || cli_has(&a, "--help") ? CNN_OK
                                               : cnn_error_set(CNN_EUSAGE, "op: which layer?");
    }
    if (a.npos != 1)
        return cnn_error_set(CNN_EUSAGE, "op: one layer name expected, got '%s' and '%s'",
                             a.pos[0], a.pos[1]);
    const char *op = a.pos[0];
    if (!strcmp(op, "softmax-ce")) return op_loss(&a, &cnn_loss_softmax_ce);
    if (!strcmp(op, "hinge")) return op_loss(&a, &cnn_loss_hinge);

    cnn_layer_spec_t spec = {.eps = 1e-5f, .momentum = 0.1f, .stride = 1};
    snprintf(spec.name, sizeof spec.name, "%s", op);
    cnn_shape_t in;
    char xdesc[64], wdesc[64] = "";
    const char *s;
    long v;
    double dv;
    int d[4], nd, train = 1;
    uint64_t seed = 0;

    if (!strcmp(op, "conv")) {
        CNN_TRY(x_shape(&a, 1, &in, xdesc, sizeof xdesc));
        CNN_TRY(cli_need(&a, "--w-shape", &s));
        CNN_TRY(cli_dims("--w-shape", s, 4, d, &nd));
        dims_str(d, nd, wdesc, sizeof wdesc);
        if (nd != 4 || d[1] != in.c)
            return cnn_error_set(CNN_EUSAGE,
                                 "--w-shape: %s must be K,C,KH,KW with C = %d (the channels of --x-shape %s)",
                                 wdesc, in.c, xdesc);
        spec.filters = d[0];
        spec.kh = d[2];
        spec.kw = d[3];
        CNN_TRY(cli_need(&a, "--stride", &s));
        CNN_TRY(cli_int("--stride", s, 1, 1 << 20, &v));
        spec.stride = (int)v;
        CNN_TRY(cli_need(&a, "--pad", &s));
        CNN_TRY(cli_int("--pad", s, 0, 1 << 20, &v));
        spec.pad = (int)v;
        snprintf(spec.type, sizeof spec.type, "conv");
    } else if (!strcmp(op, "maxpool") || !strcmp(op, "avgpool")) {
        CNN_TRY(x_shape(&a, 1, &in, xdesc, sizeof xdesc));
        CNN_TRY(cli_need(&a, "--size", &s));
        CNN_TRY(cli_dims("--size", s, 2, d, &nd));
        spec.kh = d[0];
        spec.kw = nd == 2 ? d[1] : d[0];
        CNN_TRY(cli_need(&a, "--stride", &s));
        CNN_TRY(cli_int("--stride", s, 1, 1 << 20, &v));
        spec.stride = (int)v;
        snprintf(spec.type, sizeof spec.type, "%s", op);
    } else if (!strcmp(op, "relu")) {
        CNN_TRY(x_shape(&a, 0, &in, xdesc, sizeof xdesc));
        snprintf(spec.type, sizeof spec.type, "relu");
    } else if (!strcmp(op, "dense")) {
        CNN_TRY(cli_need(&a, "--x-shape", &s));
        CNN_TRY(cli_dims("--x-shape", s, 2, d, &nd));
        if (nd != 2) return cnn_error_set(CNN_EUSAGE, "--x-shape: '%s' must be N,D", s);
        in = (cnn_shape_t){d[0], d[1], 1, 1};
        dims_str(d, nd, xdesc, sizeof xdesc);
        CNN_TRY(cli_need(&a, "--w-shape", &s));
        CNN_TRY(cli_dims("--w-shape", s, 2, d, &nd));
        dims_str(d, nd, wdesc, sizeof wdesc);
        if (nd != 2 || d[0] != in.c)
            return cnn_error_set(CNN_EUSAGE, "--w-shape: %s must be D,M with D = %d (from --x-shape %s)",
                                 wdesc, in.c, xdesc);
        spec.filters = d[1];
        snprintf(spec.type, sizeof spec.type, "dense");
    } else if (!strcmp(op, "dropout") || !strcmp(op, "batchnorm")) {
        CNN_TRY(x_shape(&a, 0, &in, xdesc, sizeof xdesc));
        CNN_TRY(cli_need(&a, "--mode", &s));
        if (strcmp(s, "train") && strcmp(s, "test"))
            return cnn_error_set(CNN_EUSAGE, "--mode: '%s' must be train or test", s);
        train = !strcmp(s, "train");
        snprintf(spec.type, sizeof spec.type, "%s", op);
        if (!strcmp(op, "dropout")) {
            CNN_TRY(cli_need(&a, "--p", &s));
            CNN_TRY(cli_float("--p", s, &dv));
            if (dv < 0 || dv >= 1)
                return cnn_error_set(CNN_EUSAGE, "--p: %g must be in [0, 1)", dv);
            spec.p = (float)dv;
            CNN_TRY(cli_need(&a, "--seed", &s));
            CNN_TRY(cli_int("--seed", s, 0, 0x7fffffffffffffffL, &v));
            seed = (uint64_t)v;
        } else {
            CNN_TRY(cli_need(&a, "--eps", &s));
            CNN_TRY(cli_float("--eps", s, &dv));
            if (dv <= 0) return cnn_error_set(CNN_EUSAGE, "--eps: %g must be > 0", dv);
            spec.eps = (float)dv;
        }
    } else {
        return cnn_error_set(CNN_EUSAGE,
                             "op: unknown layer '%s' (conv, maxpool, avgpool, relu, dense, "
                             "dropout, batchnorm, softmax-ce, hinge)", op);
    }

    cnn_net_t *net = NULL;
    float *buf = NULL, *dx = NULL, *dy = NULL;
    cnn_status_t st = cnn_net_create(&spec, 1, in, 0, &net);
    if (st != CNN_OK) {
        /* the shape check names the layer; here the culprit is the flags */
        cnn_error_prefix("op %s", op);
        return CNN_EUSAGE;
    }
    cnn_layer_t *l = &net->layers[0];
    const size_t nin = (size_t)in.n * cnn_shape_image(in);
    const size_t nout = (size_t)in.n * cnn_shape_image(l->out);
    char desc[96];

    if ((st = read_exact(&a, "--x", nin, xdesc, &buf)) != CNN_OK) goto done;
    memcpy(net->act[0], buf, nin * sizeof(float));
    free(buf);
    buf = NULL;

    if (!strcmp(op, "conv") || !strcmp(op, "dense")) {
        const size_t nw = l->sz.params - (size_t)spec.filters;
        if ((st = read_exact(&a, "--w", nw, wdesc, &buf)) != CNN_OK) goto done;
        if (!strcmp(op, "conv")) {
            memcpy(l->params, buf, nw * sizeof(float));
        } else { /* file is (D,M); the layer stores (M,D) as PyTorch */
            const int D = in.c, M = spec.filters;
            for (int i = 0; i < D; i++)
                for (int j = 0; j < M; j++)
                    l->params[(size_t)j * D + i] = buf[(size_t)i * M + j];
        }
        free(buf);
        buf = NULL;
        snprintf(desc, sizeof desc, "(%d)", spec.filters);
        if ((st = read_exact(&a, "--b", (size_t)spec.filters, desc, &buf)) != CNN_OK) goto done;
        memcpy(l->params + nw, buf, (size_t)spec.filters * sizeof(float));
    } else if (!strcmp(op, "batchnorm")) {
        const size_t C = (size_t)in.c;
        snprintf(desc, sizeof desc, "(%d) (the channels of --x-shape %s)", in.c, xdesc);
        const char *pf[2] = {"--gamma", "--beta"}, *sf[2] = {"--mean", "--var"};
        for (int k = 0; k < 2; k++) {
            if ((st = read_exact(&a, pf[k], C, desc, &buf)) != CNN_OK) goto done;
            memcpy(l->params + k * C, buf, C * sizeof(float));
            free(buf);
            buf = NULL;
        }
        l->state[0] = 0.0f;
        for (int k = 0; k < 2; k++) {
            for (size_t c = 0; c < C; c++) l->state[k * C + c] = (float)k;
            if (!train || cli_get(&a, sf[k])) {
                if ((st = read_exact(&a, sf[k], C, desc, &buf)) != CNN_OK) goto done;
                memcpy(l->state + k * C, buf, C * sizeof(float));
                free(buf);
                buf = NULL;
            }
        }
    }

    cnn_ctx_t ctx = cnn_net_ctx(net, train, seed, 0, 0);
    const float *y = cnn_net_forward(net, &ctx, in.n);
    const char *out;
    if ((st = cli_need(&a, "--out", &out)) != CNN_OK) goto done;
    const char *dout = cli_get(&a, "--dout");
    if (dout) {
        snprintf(desc, sizeof desc, "(output of %s on %s)", op, xdesc);
        if ((st = read_exact(&a, "--dout", nout, desc, &dy)) != CNN_OK) goto done;
        dx = malloc(sizeof(float) * nin);
        if (!dx) {
            st = cnn_error_set(CNN_ENOMEM, "out of memory");
            goto done;
        }
        cnn_net_zero_grad(net);
        l->ops->backward(l, &ctx, in.n, net->act[0], net->act[1], dy, dx);
    }
    /* every output flag needs --dout */
    static const char *const grads[] = {"--dx", "--dw", "--db", "--dgamma", "--dbeta", NULL};
    for (const char *const *g = grads; *g; g++)
        if (cli_get(&a, *g) && !dout) {
            st = cnn_error_set(CNN_EUSAGE, "%s needs --dout", *g);
            goto done;
        }
    if ((st = cli_check_unused(&a)) != CNN_OK) goto done;
    if ((st = cnn_csv_write(out, y, nout)) != CNN_OK) goto done;
    if (!dout) goto done;
    if ((st = write_opt(&a, "--dx", dx, nin)) != CNN_OK) goto done;
    if (!strcmp(op, "conv")) {
        const size_t nw = l->sz.params - (size_t)spec.filters;
        if ((st = write_opt(&a, "--dw", l->grads, nw)) != CNN_OK) goto done;
        st = write_opt(&a, "--db", l->grads + nw, (size_t)spec.filters);
    } else if (!strcmp(op, "dense")) {
        const int D = in.c, M = spec.filters;
        free(buf);
        buf = malloc(sizeof(float) * (size_t)D * M);
        if (!buf) {
            st = cnn_error_set(CNN_ENOMEM, "out of memory");
            goto done;
        }
        for (int i = 0; i < D; i++)
            for (int j = 0; j < M; j++) buf[(size_t)i * M + j] = l->grads[(size_t)j * D + i];
        if ((st = write_opt(&a, "--dw", buf, (size_t)D * M)) != CNN_OK) goto done;
        st = write_opt(&a, "--db", l->grads + (size_t)D * M, (size_t)M);
    } else if (!strcmp(op, "batchnorm")) {
        if ((st = write_opt(&a, "--dgamma", l->grads, (size_t)in.c)) != CNN_OK) goto done;
        st = write_opt(&a, "--dbeta", l->grads + in.c, (size_t)in.c);
    }
done:
    free(buf);
    free(dx);
    free(dy);
    cnn_net_free(net);
    return st;
}
