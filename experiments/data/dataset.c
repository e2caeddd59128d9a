/* dataset.c - MNIST / Fashion-MNIST from IDX files, kept as bytes; batch gather (bytes to
 * floats) and shift. */
#include "dataset.h"
#include "idx.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LP_DATASET_CLASSES 10

/* What we know about each dataset: where it lives and how to get it. */
typedef struct dataset_info {
    const char *name;
    const char *title;
    const char *default_dir;
    const char *how_to_get;
} dataset_info;

static const dataset_info datasets[] = {
    {"mnist", "MNIST", "data/mnist", "run `make data` or `loupe data mnist`"},
    {"fashion", "Fashion-MNIST", "/usr/share/datasets/fashion-mnist",
     "install it with `apt-get install dataset-fashion-mnist`"},
};

/* dir/stem, or dir/stem.gz when only that exists. false when neither does. */
static bool find_file(const char *dir, const char *stem, char *path, size_t size)
{
    snprintf(path, size, "%s/%s", dir, stem);
    if (access(path, F_OK) == 0) return true;
    snprintf(path, size, "%s/%s.gz", dir, stem);
    if (access(path, F_OK) == 0) return true;
    snprintf(path, size, "%s/%s", dir, stem);   /* name the plain file in the message */
    return false;
}

lp_status lp_dataset_load(const char *dataset, const char *dir, bool train_split, int limit,
                          lp_dataset *out, lp_error *err)
{
    assert(dataset && out);
    memset(out, 0, sizeof *out);
    const dataset_info *info = NULL;
    for (size_t i = 0; i < sizeof datasets / sizeof *datasets; i++)
        if (strcmp(dataset, datasets[i].name) == 0) info = &datasets[i];
    if (!info)
        return lp_error_set(err, LP_ERR_ARG, "unknown dataset '%s' (expected mnist or fashion)",
                            dataset);
    if (limit < 0) return lp_error_set(err, LP_ERR_ARG, "data limit %d is negative", limit);
    if (!dir) dir = info->default_dir;

    const char *split = train_split ? "train" : "t10k";
    char stem[64], img_path[4096], lab_path[4096];
    snprintf(stem, sizeof stem, "%s-images-idx3-ubyte", split);
    bool have_img = find_file(dir, stem, img_path, sizeof img_path);
    snprintf(stem, sizeof stem, "%s-labels-idx1-ubyte", split);
    bool have_lab = find_file(dir, stem, lab_path, sizeof lab_path);
    if (!have_img || !have_lab)
        return lp_error_set(err, LP_ERR_IO, "%s not found: no %s (or .gz): %s", info->title,
                            have_img ? lab_path : img_path, info->how_to_get);

    uint8_t *px = NULL, *lab = NULL;
    int n_img = 0, rows = 0, cols = 0, n_lab = 0;
    lp_status s = lp_idx_read_images(img_path, &px, &n_img, &rows, &cols, err);
    if (!s) s = lp_idx_read_labels(lab_path, LP_DATASET_CLASSES, &lab, &n_lab, err);
    if (!s && n_img != n_lab)
        s = lp_error_set(err, LP_ERR_DATA, "%s has %d images but %s has %d labels", img_path,
                         n_img, lab_path, n_lab);
    int n = limit > 0 && limit < n_img ? limit : n_img;
    size_t per = (size_t)rows * (size_t)cols;
    if (!s) {
        out->labels = malloc((size_t)(n ? n : 1) * sizeof(int32_t));
        if (!out->labels)
            s = lp_error_set(err, LP_ERR_NOMEM, "out of memory for %d labels", n);
    }
    if (!s) {
        /* Keep the file's bytes as they are: 1 byte a pixel instead of 4 (MNIST train:
         * 47 MB, not 188). With a limit, give the tail back. */
        if (n < n_img && n > 0) {
            uint8_t *shrunk = realloc(px, (size_t)n * per);
            if (shrunk) px = shrunk;
        }
        out->pixels = px;
        px = NULL;
        /* value = pixel * (1/255): the reciprocal, so x/255 is the same on every machine */
        out->scale = 1.0f / 255.0f;
        out->offset = 0.0f;
        for (int i = 0; i < n; i++) out->labels[i] = lab[i];
        out->n = n;
        out->c = 1;
        out->h = rows;
        out->w = cols;
        out->classes = LP_DATASET_CLASSES;
    }
    free(px);
    free(lab);
    if (s) lp_dataset_free(out);
    return s;
}

void lp_dataset_normalize(lp_dataset *d, float mean, float std)
{
    assert(d && std > 0);
    /* (p * scale + offset - mean) / std = p * (scale / std) + (offset - mean) / std:
     * only the map changes, the bytes stay. */
    d->scale = d->scale / std;
    d->offset = (d->offset - mean) / std;
}

void lp_dataset_free(lp_dataset *d)
{
    if (!d) return;
    free(d->pixels);
    free(d->labels);
    memset(d, 0, sizeof *d);
}

/* dst[i] = src[i] * scale + offset, one rounding (fmaf): the same floats on every
 * machine. A plain loop, vectorised: zero-extend the bytes, convert, FMA (16 pixels an
 * instruction with AVX-512). `omp simd` because GCC 12's -O2 cost model ("very cheap")
 * will not vectorise a loop whose count needs an epilogue: scalar, a gather took 1.7x
 * the time of the memcpy of floats it replaced; vectorised, 0.6x (a quarter of the
 * bytes to fetch). */
static void bytes_to_floats(const uint8_t *restrict src, float *restrict dst, size_t n,
                            float scale, float offset)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++) dst[i] = fmaf((float)src[i], scale, offset);
}

#define GATHER_AHEAD 4

void lp_dataset_gather(const lp_dataset *d, const int *idx, int n, float *x_out, int32_t *y_out)
{
    assert(d && idx && x_out && n >= 0);
    size_t per = (size_t)d->c * d->h * d->w;
    for (int i = 0; i < n; i++) {
        int k = idx[i];
        assert(k >= 0 && k < d->n);
        /* Shuffled images come from all over a block larger than L3: ask for one a
         * few ahead now, so its cache misses overlap this one's conversion (the
         * loads of the current image were 70% of the gather's time). */
        if (i + GATHER_AHEAD < n) {
            const char *next = (const char *)(d->pixels + (size_t)idx[i + GATHER_AHEAD] * per);
            for (size_t b = 0; b < per; b += 64) __builtin_prefetch(next + b);
            __builtin_prefetch(next + per - 1); /* an unaligned image's last line */
        }
        bytes_to_floats(d->pixels + (size_t)k * per, x_out + (size_t)i * per, per, d->scale,
                        d->offset);
        if (y_out) y_out[i] = d->labels[k];
    }
}

void lp_dataset_gather_range(const lp_dataset *d, int start, int n, float *x_out,
                             int32_t *y_out)
{
    assert(d && x_out && n >= 0 && start >= 0 && start <= d->n - n);
    size_t per = (size_t)d->c * d->h * d->w;
    bytes_to_floats(d->pixels + (size_t)start * per, x_out, (size_t)n * per, d->scale,
                    d->offset);
    if (y_out && n > 0) memcpy(y_out, d->labels + start, (size_t)n * sizeof *y_out);
}

/* Shift one h x w plane by (dy, dx) in place. Rows are visited so that a source row
 * is read before it is overwritten (bottom-up when moving down); within a row memmove
 * handles the overlap. */
static void shift_plane(float *p, int h, int w, int dy, int dx, float fill)
{
    int adx = dx < 0 ? -dx : dx;
    int keep = w - adx;   /* columns that survive in each row */
    for (int k = 0; k < h; k++) {
        int y = dy > 0 ? h - 1 - k : k;
        int sy = y - dy;
        float *dst = p + (size_t)y * w;
        if (sy < 0 || sy >= h || keep <= 0) {
            for (int x = 0; x < w; x++) dst[x] = fill;
            continue;
        }
        const float *src = p + (size_t)sy * w;
        if (dx >= 0) {
            memmove(dst + dx, src, (size_t)keep * sizeof(float));
            for (int x = 0; x < dx; x++) dst[x] = fill;
        } else {
            memmove(dst, src + adx, (size_t)keep * sizeof(float));
            for (int x = keep; x < w; x++) dst[x] = fill;
        }
    }
}

void lp_augment_shift(float *x, int n, int c, int h, int w, int max_shift, lp_rng *rng,
                      float fill)
{
    assert(x && rng && n >= 0 && c >= 1 && h >= 1 && w >= 1 && max_shift >= 0);
    if (max_shift == 0) return;
    uint32_t span = 2u * (uint32_t)max_shift + 1u;
    size_t plane = (size_t)h * w;
    for (int i = 0; i < n; i++) {
        int dy = (int)lp_rng_below(rng, span) - max_shift;
        int dx = (int)lp_rng_below(rng, span) - max_shift;
        if (dy == 0 && dx == 0) continue;
        for (int ch = 0; ch < c; ch++)
            shift_plane(x + ((size_t)i * c + ch) * plane, h, w, dy, dx, fill);
    }
}
