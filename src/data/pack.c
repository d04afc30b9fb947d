/* pack.c - `mpicnn pack` (see pack.h): each rank decodes a contiguous
 * range of the catalog, the ranks agree on the shape, the counts and the
 * statistics, and the parallel writer of datafile.h stores the slabs.
 *
 * Every decision that depends on more than one rank's images (the first
 * image's size, whether any image has colour, the image counts after
 * skipping, the sums behind /normalization) is made from integer
 * reductions, so the file does not depend on the number of ranks. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpicnn/dist.h"
#include "mpicnn/fault.h"
#include "mpicnn/jpeg.h"
#include "mpicnn/memlimit.h"
#include "mpicnn/png.h"
#include "mpicnn/resize.h"
#include "pack_impl.h"

/* One image this rank decoded: catalog index, size, channels (1 or 3),
 * and where its interleaved pixels (h, w, c) start in the hold. */
typedef struct {
    size_t item;
    int w, h, c;
    size_t off;
} held_t;

typedef struct {
    held_t *img;
    size_t n, cap;
    uint8_t *bytes;
    size_t used, bcap;
} hold_t;

static void hold_free(hold_t *h)
{
    free(h->img);
    free(h->bytes);
    memset(h, 0, sizeof *h);
}

static cnn_status_t hold_add(hold_t *h, size_t item, const uint8_t *px, int w, int hh, int c)
{
    const size_t sz = (size_t)w * (size_t)hh * (size_t)c;
    if (h->n == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 256;
        held_t *v = realloc(h->img, cap * sizeof *v);
        if (!v) return cnn_error_set(CNN_ENOMEM, "out of memory holding decoded images");
        h->img = v;
        h->cap = cap;
    }
    if (h->used + sz > h->bcap) {
        size_t cap = h->bcap ? 2 * h->bcap : (size_t)1 << 20;
        while (cap < h->used + sz) cap *= 2;
        uint8_t *b = realloc(h->bytes, cap);
        if (!b)
            return cnn_error_set(CNN_ENOMEM, "out of memory holding decoded images (%zu bytes)", cap);
        h->bytes = b;
        h->bcap = cap;
    }
    memcpy(h->bytes + h->used, px, sz);
    h->img[h->n++] = (held_t){.item = item, .w = w, .h = hh, .c = c, .off = h->used};
    h->used += sz;
    return CNN_OK;
}

/* ---- decoding ------------------------------------------------------------ */

/* Image file i of a folder, told PNG or JPEG by its first bytes. */
static cnn_status_t read_file(const cnn_pack_opts_t *o, const char *path, cnn_image_t *img)
{
    unsigned char head[8] = {0};
    FILE *f = fopen(path, "rb");
    if (!f)
        return cnn_error_set(CNN_EDATA, "%s: cannot open: %s", path,
                             errno == ELOOP ? "a symlink loop" : strerror(errno));
    size_t got = fread(head, 1, sizeof head, f);
    int err = ferror(f) ? errno : 0;
    fclose(f);
    if (err) return cnn_error_set(CNN_EDATA, "%s: cannot read: %s", path, strerror(err));
    if (got == 0) return cnn_error_set(CNN_EDATA, "%s: an empty file (0 bytes)", path);
    if (got == 8 && !memcmp(head, "\x89PNG\r\n\x1a\n", 8)) return cnn_png_read(path, img);
    if (cnn_jpeg_sniff(head, got)) return cnn_jpeg_read(path, o->resize_w, o->resize_h, img);
    return cnn_error_set(CNN_EDATA, "%s: neither a PNG nor a JPEG file (its first bytes are "
                         "not a PNG or JPEG signature)", path);
}

/* Image i of an IDX or CIFAR set, interleaved. */
static cnn_status_t copy_array(const cnn_dataset_t *ds, size_t i, cnn_image_t *img)
{
    const size_t hw = (size_t)ds->h * (size_t)ds->w, c = (size_t)ds->c;
    const uint8_t *src = ds->images + i * hw * c;
    memset(img, 0, sizeof *img);
    if (!(img->pixels = malloc(hw * c))) return cnn_error_set(CNN_ENOMEM, "out of memory");
    img->w = ds->w;
    img->h = ds->h;
    img->channels = ds->c;
    for (size_t p = 0; p < hw; p++)
        for (size_t k = 0; k < c; k++) img->pixels[p * c + k] = src[k * hw + p];
    return CNN_OK;
}

/* Drops an alpha channel in place: 2 -> 1, 4 -> 3 channels. */
static void drop_alpha(cnn_image_t *img)
{
    if (img->channels != 2 && img->channels != 4) return;
    const int ic = img->channels, oc = ic - 1;
    const size_t hw = (size_t)img->w * (size_t)img->h;
    for (size_t p = 0; p < hw; p++)
        for (int k = 0; k < oc; k++) img->pixels[p * (size_t)oc + (size_t)k] = img->pixels[p * (size_t)ic + (size_t)k];
    img->channels = oc;
}

/* Resizes (when asked) and keeps image `item`. */
/* This rank's images are held twice (decoded, then as the slab written):
 * CNN_ENOMEM when `bytes` of them would not fit in the budget. `known`:
 * the whole share's size, refused before decoding; else the share so far. */
static cnn_status_t check_budget(const cnn_pack_opts_t *o, uint64_t bytes, size_t nimages,
                                 int known)
{
    if (!o->max_bytes || o->max_bytes == CNN_MEM_UNLIMITED) return CNN_OK;
    const uint64_t need = bytes > UINT64_MAX / 2 ? UINT64_MAX : 2 * bytes;
    if (need <= o->max_bytes) return CNN_OK;
    char a[32], b[32];
    return cnn_error_set(CNN_ENOMEM, "pack: %s %zu images need %s (decoded, and again as the "
                         "slab written), over the budget of %s (%s): use more ranks or "
                         "--max-memory", known ? "this rank's" : "the first", nimages,
                         cnn_mem_str(need, a, sizeof a), cnn_mem_str(o->max_bytes, b, sizeof b),
                         o->max_why ? o->max_why : "--max-memory");
}

/* With --resize, or an IDX/CIFAR source, an image's size is known before
 * any is decoded (colour counted when --channels does not say): the whole
 * share is checked against the budget first. */
static cnn_status_t check_share(const cnn_pack_opts_t *o, const pack_catalog_t *cat, size_t n)
{
    uint64_t h = 0, w = 0, c = o->channels ? (uint64_t)o->channels : 3;
    if (o->resize_w) {
        h = (uint64_t)o->resize_h;
        w = (uint64_t)o->resize_w;
    } else if (cat->ds) {
        h = (uint64_t)cat->ds->h;
        w = (uint64_t)cat->ds->w;
    }
    if (cat->ds && !o->channels) c = (uint64_t)cat->ds->c;
    if (!h) return CNN_OK;
    return check_budget(o, cnn_mem_mul((size_t)(h * w * c), n), n, 1);
}

static cnn_status_t keep(const cnn_pack_opts_t *o, size_t item, cnn_image_t *img, hold_t *h)
{
    drop_alpha(img);
    const uint64_t held = o->resize_w ? (uint64_t)o->resize_w * (uint64_t)o->resize_h
                                      : (uint64_t)img->w * (uint64_t)img->h;
    CNN_TRY(check_budget(o, (uint64_t)h->used + held * (uint64_t)img->channels, h->n + 1, 0));
    if (!o->resize_w) return hold_add(h, item, img->pixels, img->w, img->h, img->channels);
    const int c = img->channels;
    cnn_rect_t r = {0, 0, img->w, img->h};
    if (o->fit == CNN_PACK_CROP) r = cnn_resize_crop_rect(img->w, img->h, o->resize_w, o->resize_h);
    uint8_t *out = malloc((size_t)o->resize_w * (size_t)o->resize_h * (size_t)c);
    if (!out) return cnn_error_set(CNN_ENOMEM, "out of memory resizing");
    cnn_status_t st = cnn_resize_u8(img->pixels, (size_t)img->w * (size_t)c, c, r, out,
                                    o->resize_w, o->resize_h);
    if (st == CNN_OK) st = hold_add(h, item, out, o->resize_w, o->resize_h, c);
    free(out);
    return st;
}

/* 1 if, without --resize, the newest held image's size differs from the
 * first one's: the pack will fail (agree_shape names the first odd file
 * over all ranks, which on this rank is this one), so decoding more of
 * them would only take memory. */
static int odd_size(const cnn_pack_opts_t *o, const hold_t *h)
{
    if (o->resize_w || h->n < 2) return 0;
    const held_t *a = &h->img[0], *b = &h->img[h->n - 1];
    return a->w != b->w || a->h != b->h;
}

/* Decodes images lo .. hi-1 into h. A bad file (CNN_EDATA) is noted and
 * skipped with o->skip_bad and fails the range otherwise. */
static cnn_status_t decode_range(const cnn_pack_opts_t *o, const pack_catalog_t *cat, size_t lo,
                                 size_t hi, hold_t *h, pack_notes_t *bad)
{
    cnn_status_t st = CNN_OK;
    for (size_t i = lo; st == CNN_OK && i < hi && !odd_size(o, h); i++) {
        cnn_image_t img = {0};
        cnn_fault_step_hook((int64_t)i + 1);
        st = cat->ds ? copy_array(cat->ds, i, &img) : read_file(o, cat->paths[i], &img);
        if (st == CNN_OK) st = keep(o, i, &img, h);
        else if (st == CNN_EDATA && o->skip_bad) st = pack_note(bad, cnn_error_message());
        else if (st == CNN_EDATA) {
            char why[1024];
            snprintf(why, sizeof why, "%s", cnn_error_message());
            cnn_error_set(st, "%s (--on-bad skip would skip it)", why);
        }
        cnn_image_free(&img);
    }
    return st;
}

/* ---- agreeing on the shape ------------------------------------------------ */

typedef struct {
    int c, h, w;
    size_t n, first, count; /* file total, this rank's slab */
} shape_t;

/* The shape every image must have: --resize, else the first image's
 * (lowest catalog index over all ranks); C from --channels, else 3 when
 * any image has colour. The first image of another size is an error. */
static cnn_status_t agree_shape(MPI_Comm comm, const cnn_pack_opts_t *o, const pack_catalog_t *cat,
                                const hold_t *h, shape_t *s)
{
    cnn_status_t st = CNN_OK;
    int colour = 0, any_colour = 0, nranks;
    for (size_t j = 0; j < h->n; j++) colour |= h->img[j].c == 3;
    CNN_MPI_CHECK(st, MPI_Allreduce(&colour, &any_colour, 1, MPI_INT, MPI_MAX, comm), done);
    s->c = o->channels ? o->channels : any_colour ? 3 : 1;
    s->h = o->resize_h;
    s->w = o->resize_w;
    uint64_t mine[3] = {h->n ? h->img[0].item : UINT64_MAX, h->n ? h->img[0].h : 0,
                        h->n ? h->img[0].w : 0};
    CNN_MPI_CHECK(st, MPI_Comm_size(comm, &nranks), done);
    uint64_t *all = malloc(sizeof *all * 3 * (size_t)nranks);
    if (!all) return cnn_error_set(CNN_ENOMEM, "out of memory");
    st = CNN_OK;
    if (MPI_Allgather(mine, 3, MPI_UINT64_T, all, 3, MPI_UINT64_T, comm) != MPI_SUCCESS)
        st = cnn_error_set(CNN_ECOMM, "MPI_Allgather of the first image sizes failed");
    uint64_t best = UINT64_MAX;
    for (int r = 0; st == CNN_OK && r < nranks; r++)
        if (all[3 * r] < best) {
            best = all[3 * r];
            if (!o->resize_w) {
                s->h = (int)all[3 * r + 1];
                s->w = (int)all[3 * r + 2];
            }
        }
    free(all);
    if (st != CNN_OK || o->resize_w || best == UINT64_MAX) return st;
    size_t j = 0;
    while (j < h->n && h->img[j].h == s->h && h->img[j].w == s->w) j++;
    if (j < h->n)
        st = cnn_error_set(CNN_EDATA, "%s: %d x %d pixels (W x H), but the first image (%s) "
                           "is %d x %d: images of different sizes need --resize HxW",
                           cat->paths ? cat->paths[h->img[j].item] : "image", h->img[j].w,
                           h->img[j].h, cat->paths ? cat->paths[best] : "image 0", s->w, s->h);
done:
    return st;
}

/* n, first and count from the ranks' counts (an exclusive prefix sum). */
static cnn_status_t agree_counts(MPI_Comm comm, const hold_t *h, shape_t *s)
{
    cnn_status_t st = CNN_OK;
    uint64_t mine = h->n, before = 0, total = 0;
    int rank;
    CNN_MPI_CHECK(st, MPI_Comm_rank(comm, &rank), done);
    CNN_MPI_CHECK(st, MPI_Exscan(&mine, &before, 1, MPI_UINT64_T, MPI_SUM, comm), done);
    CNN_MPI_CHECK(st, MPI_Allreduce(&mine, &total, 1, MPI_UINT64_T, MPI_SUM, comm), done);
    s->first = rank == 0 ? 0 : before; /* MPI_Exscan leaves rank 0's undefined */
    s->count = mine;
    s->n = total;
done:
    return st;
}

/* ---- the slab and its statistics ------------------------------------------ */

typedef struct {
    uint8_t *images;  /* (count, c, h, w) */
    int32_t *labels;  /* (count) */
    uint64_t sums[7]; /* over every rank: sum per channel, then the label sum,
                         then the sum of squares per channel */
} slab_t;

/* Converts the held images into the slab (CHW, s->c channels) and sums
 * them, then sums over the ranks (integers: exact in any order). */
static cnn_status_t make_slab(MPI_Comm comm, const pack_catalog_t *cat, const hold_t *h,
                              const shape_t *s, slab_t *sl)
{
    cnn_status_t st = CNN_OK;
    const size_t hw = (size_t)s->h * (size_t)s->w, chw = hw * (size_t)s->c;
    uint64_t local[7] = {0};
    sl->images = malloc(h->n * chw + 1);
    sl->labels = malloc(h->n * sizeof *sl->labels + 1);
    if (!sl->images || !sl->labels) return cnn_error_set(CNN_ENOMEM, "out of memory for %zu images", h->n);
    for (size_t j = 0; j < h->n; j++) {
        const held_t *im = &h->img[j];
        uint8_t *dst = sl->images + j * chw;
        cnn_image_to_chw(h->bytes + im->off, im->w, im->h, im->c, s->c, dst);
        sl->labels[j] = cat->labels[im->item];
        local[s->c] += (uint64_t)sl->labels[j];
        for (int k = 0; k < s->c; k++)
            for (size_t p = 0; p < hw; p++) {
                const uint64_t v = dst[(size_t)k * hw + p];
                local[k] += v;
                local[s->c + 1 + k] += v * v;
            }
    }
    CNN_MPI_CHECK(st, MPI_Allreduce(local, sl->sums, 7, MPI_UINT64_T, MPI_SUM, comm), done);
done:
    return st;
}

/* Mean and population std of pixel/255 per channel (std 1 for a constant
 * channel), as cnn_dataset_channel_stats computes them. */
static void channel_stats(const slab_t *sl, const shape_t *s, float *mean, float *std)
{
    const double cnt = (double)s->n * (double)s->h * (double)s->w;
    for (int k = 0; k < s->c; k++) {
        const double m = (double)sl->sums[k] / cnt;
        const double var = (double)sl->sums[s->c + 1 + k] / cnt - m * m;
        mean[k] = (float)(m / 255.0);
        std[k] = var <= 0.0 ? 1.0f : (float)(sqrt(var) / 255.0);
    }
}

/* ---- notes, output file, report --------------------------------------------- */

/* Rank 0 gets every rank's notes after its own listing notes, in rank
 * (hence source) order; every rank learns the total count. */
static cnn_status_t gather_notes(MPI_Comm comm, int rank, int nranks, pack_notes_t *listing,
                                 const pack_notes_t *bad, cnn_pack_report_t *rep)
{
    cnn_status_t st = CNN_OK;
    int len = (int)bad->len, *lens = NULL, *displs = NULL;
    uint64_t mine = bad->lines + (rank == 0 ? listing->lines : 0), total = 0;
    CNN_MPI_CHECK(st, MPI_Allreduce(&mine, &total, 1, MPI_UINT64_T, MPI_SUM, comm), done);
    rep->nskipped = total;
    if (rank == 0 && (!(lens = calloc((size_t)nranks, sizeof *lens)) ||
                      !(displs = calloc((size_t)nranks, sizeof *displs))))
        st = cnn_error_set(CNN_ENOMEM, "out of memory");
    if ((st = cnn_dist_agree(comm, st)) != CNN_OK) goto done;
    CNN_MPI_CHECK(st, MPI_Gather(&len, 1, MPI_INT, lens, 1, MPI_INT, 0, comm), done);
    size_t all = 0;
    for (int r = 0; rank == 0 && r < nranks; r++) {
        displs[r] = (int)all;
        all += (size_t)lens[r];
    }
    char *text = NULL;
    if (rank == 0 && !(text = malloc(listing->len + all + 1)))
        st = cnn_error_set(CNN_ENOMEM, "out of memory");
    if ((st = cnn_dist_agree(comm, st)) != CNN_OK) goto done;
    if (rank == 0 && listing->len) memcpy(text, listing->text, listing->len);
    CNN_MPI_CHECK(st, MPI_Gatherv(bad->text ? bad->text : "", len, MPI_CHAR,
                                  text ? text + listing->len : NULL, lens, displs, MPI_CHAR, 0, comm),
                  done);
    if (rank == 0) {
        text[listing->len + all] = '\0';
        if (listing->len + all) rep->skipped = text;
        else free(text);
    }
done:
    free(lens);
    free(displs);
    return st;
}

/* Rank 0 starts the atomic write of o->out (removing temp files that dead
 * packs of the same name on this host left) and every rank gets the temp
 * file's path in tmp. */
static cnn_status_t begin_output(MPI_Comm comm, int rank, const char *out, cnn_afile_t **af,
                                 char *tmp, size_t len)
{
    cnn_status_t st = CNN_OK;
    int n = 0;
    *af = NULL;
    if (rank == 0) {
        st = cnn_afile_clean_stale(out, NULL);
        if (st == CNN_OK) st = cnn_afile_begin(out, af);
        if (st == CNN_OK) n = snprintf(tmp, len, "%s", cnn_afile_tmp_path(*af));
        if (st == CNN_OK && (size_t)n >= len)
            st = cnn_error_set(CNN_EUSAGE, "%s: the path is too long", out);
    }
    if ((st = cnn_dist_agree(comm, st)) != CNN_OK) return st;
    CNN_MPI_CHECK(st, MPI_Bcast(&n, 1, MPI_INT, 0, comm), done);
    CNN_MPI_CHECK(st, MPI_Bcast(tmp, n + 1, MPI_CHAR, 0, comm), done);
done:
    return st;
}

/* Writes the file from the agreed shape and this rank's slab. */
static cnn_status_t write_file(MPI_Comm comm, const cnn_pack_opts_t *o, const pack_catalog_t *cat,
                               const shape_t *s, const slab_t *sl, const char *tmp,
                               cnn_afile_t *af, cnn_pack_report_t *rep)
{
    char resize[64], channels[8];
    static const char *const fits[] = {"stretch", "crop"};
    uint64_t sums[4];
    for (int k = 0; k < s->c; k++) sums[k] = sl->sums[k];
    sums[s->c] = sl->sums[s->c];
    if (o->resize_w) snprintf(resize, sizeof resize, "%dx%d", o->resize_h, o->resize_w);
    else snprintf(resize, sizeof resize, "none");
    snprintf(channels, sizeof channels, "%d", s->c);
    const cnn_datafile_t d = {
        .n = s->n, .c = s->c, .h = s->h, .w = s->w, .first = s->first, .count = s->count,
        .images = sl->images, .labels = sl->labels, .sums = sums,
        .nclasses = cat->nclasses, .classes = (const char *const *)cat->classes,
        .mean = rep->mean, .std = rep->std, .source = cat->source,
        .options = o->options ? o->options : "", .resize = resize, .fit = fits[o->fit],
        .channels = channels, .skipped = (int64_t)rep->nskipped};
    return cnn_datafile_write(comm, tmp, af, &d);
}

static cnn_status_t check_opts(const cnn_pack_opts_t *o)
{
    if (!o->out || !*o->out) return cnn_error_set(CNN_EUSAGE, "pack: no --out file");
    if (o->ninputs < 1) return cnn_error_set(CNN_EUSAGE, "pack: no input");
    if ((o->resize_w > 0) != (o->resize_h > 0) || o->resize_w < 0 || o->resize_h < 0)
        return cnn_error_set(CNN_EUSAGE, "pack: --resize needs a height and a width >= 1");
    if (o->channels != 0 && o->channels != 1 && o->channels != 3)
        return cnn_error_set(CNN_EUSAGE, "pack: --channels must be 1 or 3");
    if (o->source == CNN_PACK_IDX && !o->labels)
        return cnn_error_set(CNN_EUSAGE, "pack: IDX images need --labels LABELS.idx");
    if (o->source != CNN_PACK_CIFAR10 && o->source != CNN_PACK_CIFAR100 && o->ninputs != 1)
        return cnn_error_set(CNN_EUSAGE, "pack: expected one input (%d given); several are "
                             "CIFAR batches, which need --format", o->ninputs);
    return CNN_OK;
}

/* The steps after the catalog: decode this rank's range, agree, write. */
static cnn_status_t pack_images(MPI_Comm comm, int rank, int nranks, const cnn_pack_opts_t *o,
                                const pack_catalog_t *cat, pack_notes_t *listing,
                                const char *tmp, cnn_afile_t *af, cnn_pack_report_t *rep)
{
    hold_t h = {0};
    pack_notes_t bad = {0};
    slab_t sl = {0};
    shape_t s = {0};
    const size_t lo = cat->n * (size_t)rank / (size_t)nranks;
    const size_t hi = cat->n * ((size_t)rank + 1) / (size_t)nranks;
    cnn_status_t st = cnn_dist_agree(comm, check_share(o, cat, hi - lo));
    if (st == CNN_OK) st = cnn_dist_agree(comm, decode_range(o, cat, lo, hi, &h, &bad));
    if (st == CNN_OK) st = cnn_dist_agree(comm, agree_shape(comm, o, cat, &h, &s));
    if (st == CNN_OK) st = cnn_dist_agree(comm, agree_counts(comm, &h, &s));
    if (st == CNN_OK && s.n == 0)
        st = cnn_error_set(CNN_EDATA, "%s: no images to pack (%s)", o->inputs[0],
                           cat->n ? "every image was skipped" : "none found");
    if (st == CNN_OK) st = cnn_dist_agree(comm, make_slab(comm, cat, &h, &s, &sl));
    hold_free(&h);
    if (st == CNN_OK) st = gather_notes(comm, rank, nranks, listing, &bad, rep);
    if (st == CNN_OK) {
        *rep = (cnn_pack_report_t){.n = s.n, .c = s.c, .h = s.h, .w = s.w,
                                   .nclasses = cat->nclasses, .nskipped = rep->nskipped,
                                   .skipped = rep->skipped};
        channel_stats(&sl, &s, rep->mean, rep->std);
        st = write_file(comm, o, cat, &s, &sl, tmp, af, rep);
    }
    free(sl.images);
    free(sl.labels);
    pack_notes_free(&bad);
    return st;
}

cnn_status_t cnn_pack(MPI_Comm comm, const cnn_pack_opts_t *o, cnn_pack_report_t *rep)
{
    int rank = 0, nranks = 1;
    pack_catalog_t cat = {0};
    pack_notes_t listing = {0};
    cnn_afile_t *af = NULL;
    char tmp[4096];
    memset(rep, 0, sizeof *rep);
    cnn_status_t st = cnn_dist_prepare(comm);
    if (st == CNN_OK) CNN_MPI_CHECK(st, MPI_Comm_rank(comm, &rank), done);
    if (st == CNN_OK) CNN_MPI_CHECK(st, MPI_Comm_size(comm, &nranks), done);
    if (st == CNN_OK) st = check_opts(o);
    if (st == CNN_OK) st = cnn_fault_init(rank, nranks);
    if ((st = cnn_dist_agree(comm, st)) != CNN_OK) goto done;
    if ((st = begin_output(comm, rank, o->out, &af, tmp, sizeof tmp)) != CNN_OK) goto done;
    if ((st = pack_catalog_make(comm, o, &cat, &listing)) != CNN_OK) goto done;
    st = pack_images(comm, rank, nranks, o, &cat, &listing, tmp, af, rep);
    if (st == CNN_OK && af) {
        st = cnn_afile_commit(af); /* fsync, rename over o->out, fsync of the directory */
        af = NULL;
    }
    st = cnn_dist_agree(comm, st);
done:
    cnn_afile_abort(af);
    pack_catalog_free(&cat);
    pack_notes_free(&listing);
    if (st != CNN_OK) cnn_pack_report_free(rep);
    return st;
}

void cnn_pack_report_free(cnn_pack_report_t *rep)
{
    if (!rep) return;
    free(rep->skipped);
    memset(rep, 0, sizeof *rep);
}
