/* synth.h - small learnable data sets written as IDX files, for the
 * training tests: class k lights up a distinct block of the image, with
 * deterministic noise. */
#ifndef MPICNN_TEST_SYNTH_H
#define MPICNN_TEST_SYNTH_H

#include <stdint.h>
#include <stdio.h>

static inline void synth_be32(FILE *f, uint32_t v)
{
    unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};
    fwrite(b, 1, 4, f);
}

/* Writes DIR/PREFIX-images.idx and DIR/PREFIX-labels.idx with n images of
 * side x side pixels in k classes. Returns 0 on success. */
static inline int synth_write(const char *dir, const char *prefix, int n, int side, int k,
                              uint64_t seed)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s-images.idx", dir, prefix);
    FILE *fi = fopen(p, "wb");
    snprintf(p, sizeof p, "%s/%s-labels.idx", dir, prefix);
    FILE *fl = fopen(p, "wb");
    if (!fi || !fl) return -1;
    synth_be32(fi, 0x803);
    synth_be32(fi, (uint32_t)n);
    synth_be32(fi, (uint32_t)side);
    synth_be32(fi, (uint32_t)side);
    synth_be32(fl, 0x801);
    synth_be32(fl, (uint32_t)n);
    uint64_t s = seed * 2654435761u + 1;
    for (int i = 0; i < n; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        int label = (int)(s % (uint64_t)k);
        fputc(label, fl);
        for (int y = 0; y < side; y++)
            for (int x = 0; x < side; x++) {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                int block = (y * 2 / side) * 2 + (x * 2 / side); /* quadrant 0..3 */
                int v = (int)(s % 90);
                if (block == label % 4) v += 120;
                if (label >= 4 && (x + y) % 2 == 0) v += 40;
                fputc(v > 255 ? 255 : v, fi);
            }
    }
    int bad = ferror(fi) || ferror(fl);
    fclose(fi);
    fclose(fl);
    return bad ? -1 : 0;
}

/* A config for the synthetic set in dir; extra lines are appended to
 * [train]. Returns the text in buf. */
static inline const char *synth_config(char *buf, size_t len, const char *dir, int epochs,
                                       const char *extra_net, const char *extra_train)
{
    snprintf(buf, len,
             "[data]\nformat = idx\ndir = %s\n"
             "train_images = train-images.idx\ntrain_labels = train-labels.idx\n"
             "test_images = test-images.idx\ntest_labels = test-labels.idx\n"
             "validation = 40\n\n"
             "[net]\nlayers = conv1, bn1, relu1, pool1, drop, fc1\n\n"
             "[conv1]\ntype = conv\nfilters = 6\nkernel = 3\npad = 1\n\n"
             "[bn1]\ntype = batchnorm\n\n[relu1]\ntype = relu\n\n"
             "[pool1]\ntype = maxpool\nsize = 2\n\n"
             "[drop]\ntype = dropout\np = 0.2\n\n"
             "[fc1]\ntype = dense\nunits = 4\n%s\n"
             "[optimizer]\ntype = adam\nlr = 0.01\nweight_decay = 0.0001\n\n"
             "[train]\nepochs = %d\nbatch_size = 8\nseed = 3\nlog_every = 0\n%s\n",
             dir, extra_net ? extra_net : "", epochs, extra_train ? extra_train : "");
    return buf;
}

#endif
