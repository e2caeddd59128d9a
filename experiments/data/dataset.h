/* dataset.h - a labelled image set in memory, and the batching helpers of a step.
 *
 *   lp_dataset train;
 *   if (lp_dataset_load("mnist", "data/mnist", true, 0, &train, &err)) ... err.msg ...
 *   lp_dataset_normalize(&train, 0.1307f, 0.3081f);
 *   ... per step, into buffers planned once:
 *   lp_dataset_gather(&train, order + start, n, x, y);
 *   lp_augment_shift(x, n, train.c, train.h, train.w, 2, &rng, train.offset);
 *   ... evaluation, contiguous samples:
 *   lp_dataset_gather_range(&test, start, n, x, y);
 *   lp_dataset_free(&train);
 *
 * The whole set is held as the file's bytes, uint8 [n, c, h, w] (MNIST train: 47 MB;
 * as floats it would be 188 MB), with an affine map to floats:
 * value = pixel * scale + offset. Normalising only changes the map; gather converts
 * while it copies (one FMA a pixel, vectorised), so a step allocates nothing and the
 * floats exist only for the batch in hand.
 */
#ifndef LP_DATASET_H
#define LP_DATASET_H

#include "error.h"
#include "rng.h"
#include <stdbool.h>
#include <stdint.h>

typedef struct lp_dataset {
    int n, c, h, w;     /* samples, channels, height, width */
    int classes;        /* labels are in [0, classes) */
    uint8_t *pixels;    /* [n, c, h, w], the raw bytes of the file */
    float scale;        /* a pixel's value is fmaf(pixel, scale, offset): after load */
    float offset;       /* 1/255 and 0 (value in [0, 1]); normalize updates both */
    int32_t *labels;    /* [n] */
} lp_dataset;

/* Load a split of a dataset: "mnist" (DIR holds train-images-idx3-ubyte etc., raw or
 * .gz; `make data` fetches them) or "fashion" (Fashion-MNIST, same names, from the
 * Debian package dataset-fashion-mnist). dir NULL means the default: "data/mnist" or
 * "/usr/share/datasets/fashion-mnist". train_split picks train-* or t10k-*. limit > 0
 * keeps the first `limit` samples (all if there are fewer); 0 keeps all.
 * Errors: LP_ERR_ARG for an unknown dataset name or a negative limit; LP_ERR_IO when
 * the files are missing (the message says how to get them); LP_ERR_DATA for a corrupt
 * file (see idx.h) or image and label counts that differ; LP_ERR_NOMEM.
 * On error *out is left empty (lp_dataset_free is safe on it). */
lp_status lp_dataset_load(const char *dataset, const char *dir, bool train_split, int limit,
                          lp_dataset *out, lp_error *err);

/* Make every value (x - mean) / std, x being the value before the call: updates scale
 * and offset only (no pass over the pixels; calls compose). std > 0. The floats equal
 * the former in-place (pixel / 255 - mean) / std on floats up to rounding (one rounding
 * instead of three; for MNIST's mean and std at most 2.4e-7 apart). */
void lp_dataset_normalize(lp_dataset *d, float mean, float std);

/* Free what load allocated and zero *d (safe on a zeroed or already freed dataset). */
void lp_dataset_free(lp_dataset *d);

/* Copy samples idx[0..n) into contiguous batch buffers, converting bytes to floats:
 * x_out [n, c, h, w] gets fmaf(pixel, scale, offset), y_out [n] the labels (y_out may
 * be NULL). Each idx[i] must be in [0, d->n). No allocation. */
void lp_dataset_gather(const lp_dataset *d, const int *idx, int n, float *x_out, int32_t *y_out);

/* The same for the contiguous samples start .. start+n-1 (evaluation): equal to
 * lp_dataset_gather of those indices, in one pass. 0 <= start, start + n <= d->n.
 * No allocation. */
void lp_dataset_gather_range(const lp_dataset *d, int start, int n, float *x_out,
                             int32_t *y_out);

/* Random translation of each sample of x [n, c, h, w], in place: one (dy, dx) per
 * sample, each uniform in [-max_shift, max_shift], the same for all its channels;
 * pixels shifted out are lost and exposed ones get `fill` (what a 0 pixel becomes:
 * the dataset's offset). Draws exactly two numbers from rng per sample, so a seed fixes the
 * result. max_shift >= 0 (0: no change, no draws). No allocation. */
void lp_augment_shift(float *x, int n, int c, int h, int w, int max_shift, lp_rng *rng,
                      float fill);

#endif
