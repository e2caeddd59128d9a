/* batch_norm.h - what max-pool needs to apply a batch norm's output itself
 * (lp_op_applies): batch norm then writes no output, max-pool pools its input and
 * normalizes the windows' maxima, and in training takes batch norm's statistics in
 * the same pass (ops/maxpool.c says how). */
#ifndef LOUPE_BATCH_NORM_H
#define LOUPE_BATCH_NORM_H

#include "loupe_op.h"
#include "simd.h"

/* Training, when max-pool applies bn: bn's forward leaves its statistics to the
 * max-pool. lp_batch_norm_stat_sums zeroes the sums [2C] and gives the pivots [C];
 * max-pool sets pivot[c] = lp_batch_norm_pivot of channel c's plane of the slice's
 * first sample, adds every plane of x with lp_batch_norm_row_sums(x, pivot[c], x,
 * pivot[c]) sample by sample (bn's own order: the same bits), and calls
 * lp_batch_norm_stats_done, which sets the coefficients (lp_batch_norm_coefs) and
 * moves the running statistics. Or lp_batch_norm_stats has bn compute them itself. */
double *lp_batch_norm_stat_sums(const lp_node *bn, float **pivot);
void lp_batch_norm_stats_done(lp_node *bn);
void lp_batch_norm_stats(lp_node *bn);

/* 1 when no channel's scale is negative (no weight < 0): normalizing then keeps
 * the order of a channel's values, so a window's maximum of bn's output is the
 * normalized maximum of its input. */
int lp_batch_norm_monotone(const lp_node *bn);

/* The mean of a row, in double: the pivot around which a channel's values are
 * summed, so that the float sums of squares do not cancel when its mean is far
 * from 0. */
static inline float lp_batch_norm_pivot(const float *row, long n)
{
    double t = 0;
    for (long k = 0; k < n; k++) t += row[k];
    return (float)(t / (double)n);
}

/* After bn's statistics: per channel, y = (x - mean[c]) * scale[c] + shift[c]. */
void lp_batch_norm_coefs(const lp_node *bn, const float **mean, const float **scale, const float **shift);

/* y[0..n) = (x - mean) * scale + shift: one row of a channel, the same expression
 * (and so the same bits) wherever it is computed. */
static inline void lp_batch_norm_row(const float *x, float *y, long n, float mean, float scale, float shift)
{
#pragma omp simd
    for (long k = 0; k < n; k++) y[k] = (x[k] - mean) * scale + shift;
}

/* Backward, when max-pool applies bn (it runs first and writes no gradient for
 * bn's output): lp_batch_norm_grad_sums zeroes the sums [2C] of bn's output gradient
 * dy and of dy * (x - mean[c]) per channel, which max-pool adds up from its pooled
 * gradients, sample by sample; lp_batch_norm_sums_done then takes the parameter
 * gradients, adds the lanes' sums and returns 0 if bn's input needs no gradient,
 * else 1 and the coefficients for lp_batch_norm_row_grad. */
double *lp_batch_norm_grad_sums(const lp_node *bn, const float **mean);
int lp_batch_norm_sums_done(lp_node *bn, const float **ka, const float **kb, const float **kc);

/* s1 += sum of (a - ka), s2 += sum of (a - ka) * (b - kb) over a row of n: float
 * along the row (plenty for H*W values), double across rows. Vectors of our own
 * (two accumulators, a masked last vector, a tree to finish): an `omp simd
 * reduction` ended each call with GCC's 64-element scalar sum and one dependent
 * chain, which cost more than a short row (conv2's 121 values). */
static inline void lp_batch_norm_row_sums(const float *a, float ka, const float *b, float kb, long n, double *s1,
                                          double *s2)
{
#if defined(__AVX512F__)
    const __m512 vka = _mm512_set1_ps(ka), vkb = _mm512_set1_ps(kb);
    __m512 r1 = _mm512_setzero_ps(), r2 = _mm512_setzero_ps(), q1 = r1, q2 = r2;
    long k = 0;
    for (; k + 32 <= n; k += 32) {
        __m512 u = _mm512_sub_ps(_mm512_loadu_ps(a + k), vka);
        r1 = _mm512_add_ps(r1, u);
        r2 = _mm512_add_ps(r2, _mm512_mul_ps(u, _mm512_sub_ps(_mm512_loadu_ps(b + k), vkb)));
        u = _mm512_sub_ps(_mm512_loadu_ps(a + k + 16), vka);
        q1 = _mm512_add_ps(q1, u);
        q2 = _mm512_add_ps(q2, _mm512_mul_ps(u, _mm512_sub_ps(_mm512_loadu_ps(b + k + 16), vkb)));
    }
    for (; k < n; k += 16) {
        const __mmask16 m = first_lanes((int)(n - k < 16 ? n - k : 16));
        const __m512 u = _mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, a + k), vka);
        r1 = _mm512_add_ps(r1, u);
        r2 = _mm512_add_ps(r2, _mm512_mul_ps(u, _mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, b + k), vkb)));
    }
    *s1 += _mm512_reduce_add_ps(_mm512_add_ps(r1, q1));
    *s2 += _mm512_reduce_add_ps(_mm512_add_ps(r2, q2));
#else
    float r1[16] = {0}, r2[16] = {0};
    long k = 0;
    for (; k + 16 <= n; k += 16)
#pragma omp simd
        for (int j = 0; j < 16; j++) {
            const float u = a[k + j] - ka;
            r1[j] += u;
            r2[j] += u * (b[k + j] - kb);
        }
    for (int j = 0; k + j < n; j++) {
        const float u = a[k + j] - ka;
        r1[j] += u;
        r2[j] += u * (b[k + j] - kb);
    }
    for (int w = 8; w > 0; w /= 2)
        for (int j = 0; j < w; j++) {
            r1[j] += r1[j + w];
            r2[j] += r2[j + w];
        }
    *s1 += r1[0];
    *s2 += r2[0];
#endif
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
