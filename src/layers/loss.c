/* loss.c - softmax cross-entropy and multiclass hinge (SVM) losses. */
#include <math.h>
#include <string.h>

#include "mpicnn/loss.h"

int cnn_argmax(const float *v, int k)
{
    int best = 0;
    for (int j = 1; j < k; j++)
        if (v[j] > v[best]) best = j;
    return best;
}

/* logits (n,k); numerically stable: log-sum-exp after subtracting the max.
 * With smoothing e > 0 the target is (1-e) onehot + e/k: the loss is
 * (1-e) (lse - z_y) + e (lse - mean_j z_j) and its gradient softmax - target. */
void cnn_loss_softmax_ce_smooth(const float *logits, const int *labels, int n, int k,
                                double smoothing, float scale, double *sum, float *dlogits)
{
    const double e = smoothing, ek = smoothing / k;
    double total = 0.0;
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * k;
        const float zmax = z[cnn_argmax(z, k)];
        double se = 0.0;
        for (int j = 0; j < k; j++) se += exp((double)z[j] - zmax);
        const double lse = zmax + log(se);
        if (e > 0.0) {
            double zsum = 0.0;
            for (int j = 0; j < k; j++) zsum += z[j];
            total += (1.0 - e) * (lse - z[labels[i]]) + e * (lse - zsum / k);
        } else {
            total += lse - z[labels[i]];
        }
        if (!dlogits) continue;
        float *d = dlogits + (size_t)i * k;
        if (e > 0.0) {
            for (int j = 0; j < k; j++) {
                const double t = ek + (j == labels[i] ? 1.0 - e : 0.0);
                d[j] = scale * (float)(exp((double)z[j] - lse) - t);
            }
        } else {
            for (int j = 0; j < k; j++) d[j] = scale * (float)exp((double)z[j] - lse);
            d[labels[i]] -= scale;
        }
    }
    *sum = total;
}

static void softmax_ce(const float *logits, const int *labels, int n, int k,
                       float scale, double *sum, float *dlogits)
{
    cnn_loss_softmax_ce_smooth(logits, labels, n, k, 0.0, scale, sum, dlogits);
}

/* sum over j != y of max(0, z_j - z_y + 1) */
static void hinge(const float *logits, const int *labels, int n, int k,
                  float scale, double *sum, float *dlogits)
{
    double total = 0.0;
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * k;
        const int y = labels[i];
        float *d = dlogits ? dlogits + (size_t)i * k : NULL;
        int active = 0;
        for (int j = 0; j < k; j++) {
            if (d) d[j] = 0.0f;
            if (j == y) continue;
            const double margin = (double)z[j] - z[y] + 1.0;
            if (margin > 0.0) {
                total += margin;
                active++;
                if (d) d[j] = scale;
            }
        }
        if (d) d[y] = -scale * (float)active;
    }
    *sum = total;
}

const cnn_loss_t cnn_loss_softmax_ce = {"softmax_ce", softmax_ce};
const cnn_loss_t cnn_loss_hinge = {"hinge", hinge};

const cnn_loss_t *cnn_loss_find(const char *name)
{
    if (strcmp(name, cnn_loss_softmax_ce.name) == 0) return &cnn_loss_softmax_ce;
    if (strcmp(name, cnn_loss_hinge.name) == 0) return &cnn_loss_hinge;
    return NULL;
}
