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

#endif
