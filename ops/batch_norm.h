/* batch_norm.h - what max-pool needs to apply a batch norm's output itself
 * (lp_op_applies): batch norm then computes only its statistics, and max-pool
 * normalizes each plane into a cache-sized buffer before taking its windows,
 * instead of batch norm writing the whole activation and max-pool reading it back. */
#ifndef LOUPE_BATCH_NORM_H
#define LOUPE_BATCH_NORM_H

#include "loupe_op.h"

/* After bn's forward: per channel, y = (x - mean[c]) * scale[c] + shift[c]. */
void lp_batch_norm_coefs(const lp_node *bn, const float **mean, const float **scale, const float **shift);

/* y[0..n) = (x - mean) * scale + shift: one row of a channel, the same expression
 * (and so the same bits) wherever it is computed. */
static inline void lp_batch_norm_row(const float *x, float *y, long n, float mean, float scale, float shift)
{
#pragma omp simd
    for (long k = 0; k < n; k++) y[k] = (x[k] - mean) * scale + shift;
}

/* Backward, when max-pool applies bn (it runs first and writes no gradient for
 * bn's output): lp_batch_norm_grad_sums zeroes the sums [2C] max-pool adds each row
 * of bn's output gradient dy into with lp_batch_norm_row_sums(dy, 0, x, mean[c]), in
 * the order of the rows (sample by sample); lp_batch_norm_sums_done then takes the
 * parameter gradients, adds the lanes' sums and returns 0 if bn's input needs no
 * gradient, else 1 and the coefficients for lp_batch_norm_row_grad. */
double *lp_batch_norm_grad_sums(const lp_node *bn, const float **mean);
int lp_batch_norm_sums_done(lp_node *bn, const float **ka, const float **kb, const float **kc);

/* s1 += sum of (a - ka), s2 += sum of (a - ka) * (b - kb) over a row of n: float
 * along the row (plenty for H*W values), double across rows. */
static inline void lp_batch_norm_row_sums(const float *a, float ka, const float *b, float kb, long n, double *s1,
                                          double *s2)
{
    float r1 = 0, r2 = 0;
#pragma omp simd reduction(+ : r1, r2)
    for (long k = 0; k < n; k++) {
        float u = a[k] - ka;
        r1 += u;
        r2 += u * (b[k] - kb);
    }
    *s1 += r1;
    *s2 += r2;
}

/* dx (=|+=) ka * dy + kb * (x - mean) + kc over a row of n. */
static inline void lp_batch_norm_row_grad(const float *dy, const float *x, float *dx, long n, int acc, float mean,
                                          float ka, float kb, float kc)
{
    if (acc) {
#pragma omp simd
        for (long j = 0; j < n; j++) dx[j] += ka * dy[j] + kb * (x[j] - mean) + kc;
    } else {
#pragma omp simd
        for (long j = 0; j < n; j++) dx[j] = ka * dy[j] + kb * (x[j] - mean) + kc;
    }
}

#endif
