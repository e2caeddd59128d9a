/* batch_norm.c - batch normalization (Ioffe & Szegedy 2015), as PyTorch's
 * BatchNorm1d/BatchNorm2d compute it.
 *
 * Per channel c of x [N, C, *] (a conv output [N, C, H, W]: per channel over N*H*W
 * values; a dense output [N, F]: per feature over N values):
 *
 *   training:  mean, var = batch mean and biased variance of channel c
 *              y = (x - mean) / sqrt(var + eps) * weight[c] + bias[c]
 *              running_mean = (1 - momentum) * running_mean + momentum * mean
 *              running_var  = (1 - momentum) * running_var + momentum * var * m / (m - 1)
 *   eval:      y = (x - running_mean) / sqrt(running_var + eps) * weight[c] + bias[c]
 *
 * m = values per channel in the whole batch; the running variance takes the
 * unbiased variance (PyTorch's convention, and its momentum convention too).
 * running_mean and running_var are buffers (persistent, not trained).
 *
 * The statistics cover the whole batch even when the graph runs it as slices on
 * several lanes: each lane sums its slice, lp_node_batch_sum adds the lanes' sums.
 * Forward: one pass for the sums, one for y = (x - mean) * scale + bias. Backward, with
 * xhat = (x - mean) * invstd and sums over the whole batch:
 *
 *   dbias   = sum dy                dweight = sum dy * xhat
 *   dx = weight * invstd * (dy - sum(dy) / m - xhat * sum(dy * xhat) / m)
 *
 * again one pass for the sums (of dy and dy * (x - mean), which is sum dy * xhat
 * / invstd) and one for dx = a * dy + b * (x - mean) + c per channel: loops a
 * compiler vectorizes. Sums are float along a row of H*W, double across rows.
 * Followed by a max-pool, batch norm is applied by the max-pool (lp_op_applies):
 * one pass over x forward and one backward, ops/maxpool.c says how.
 */
#include "batch_norm.h"
#include "loupe_op.h"

#include "compute.h"
#include "shape.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef struct bn_state {
    int C;            /* channels (features) */
    long inner;       /* values per channel per sample: H*W, or 1 */
    float momentum, eps;
    int affine;       /* weight and bias present */
    int two_pass;     /* LOUPE_BN_TWO_PASS=1: never channel by channel (to compare, in tests) */
} bn_state;

/* scratch (planned once, per lane): mean [C] and invstd [C] from forward to
 * backward, three per-channel coefficients [3C] for the passes, then
 * the per-channel sums [2C] (doubles) that forward and backward reduce. */
#define BN_FLOATS 5
static float *mean_of(const lp_node *n) { return lp_node_scratch(n); }
static float *invstd_of(const lp_node *n, int C) { return (float *)lp_node_scratch(n) + C; }
static float *coef_of(const lp_node *n, int C, int k) { return (float *)lp_node_scratch(n) + (2 + k) * C; }
static size_t floats_bytes(int C) { return ((size_t)BN_FLOATS * C * sizeof(float) + 7) / 8 * 8; }
static double *sums_of(const lp_node *n, int C)
{
    return (double *)((char *)lp_node_scratch(n) + floats_bytes(C));
}

static lp_status bn_setup(lp_node *n)
{
    lp_shape s = lp_node_in_shape(n, 0);
    bn_state *st = lp_node_alloc_state(n, sizeof *st);
    if (!st) return LP_ERR_NOMEM;
    lp_status e = lp_attr_float(n, "momentum", 0.1f, &st->momentum);
    if (!e) e = lp_attr_float(n, "epsilon", 1e-5f, &st->eps);
    if (!e) e = lp_attr_bool(n, "affine", 1, &st->affine);
    if (e) return e;
    if (!(st->momentum >= 0.0f && st->momentum < 1.0f))
        return lp_node_fail_attr(n, "momentum",
                                 "momentum must be in [0, 1) (the weight of the new batch in the "
                                 "running statistics, PyTorch's convention), got %g",
                                 st->momentum);
    if (!(st->eps >= 0.0f))
        return lp_node_fail_attr(n, "epsilon", "epsilon must be >= 0, got %g", st->eps);
    const char *two = getenv("LOUPE_BN_TWO_PASS");
    st->two_pass = two && *two && strcmp(two, "0") != 0;
    st->C = s.dims[0];
    st->inner = 1;
    for (int i = 1; i < s.ndim; i++) st->inner *= s.dims[i];
    lp_shape c = lp_shape1(st->C);
    if (st->affine) {
        if (lp_node_add_param(n, "weight", c, LP_INIT_ONE, 1) < 0) return LP_ERR_SHAPE;
        if (lp_node_add_param(n, "bias", c, LP_INIT_ZERO, 1) < 0) return LP_ERR_SHAPE;
    }
    if (lp_node_add_buffer(n, "running_mean", c, LP_INIT_ZERO) < 0) return LP_ERR_SHAPE;
    if (lp_node_add_buffer(n, "running_var", c, LP_INIT_ONE) < 0) return LP_ERR_SHAPE;
    lp_node_set_batch_sums(n, 2 * st->C);
    lp_node_set_scratch(n, 0, floats_bytes(st->C) + (size_t)2 * st->C * sizeof(double));
    return lp_node_set_out_shape(n, s);
}

/* For channels [c0, c1) of this slice: s1[c] = sum of (a - ka[c]) and
 * s2[c] = sum of (a - ka[c]) * (b - kb[c]), or of (a - ka[c])^2 when b is NULL.
 * Centring first keeps the float row sums exact enough when a channel's mean is
 * far from 0 (E[x^2] - mean^2 would cancel). ka == NULL: no centring of a. */
static void channel_sums(const float *a, const float *ka, const float *b, const float *kb, int N, int C,
                         long inner, int c0, int c1, double *s1, double *s2)
{
    for (int c = c0; c < c1; c++) s1[c] = s2[c] = 0;
    if (inner == 1) { /* features: vectorize across them */
        for (int i = 0; i < N; i++) {
            const float *ar = a + (size_t)i * C, *br = b ? b + (size_t)i * C : NULL;
#pragma omp simd
            for (int c = c0; c < c1; c++) {
                double u = ka ? (double)ar[c] - ka[c] : ar[c];
                double v = br ? (double)br[c] - kb[c] : u;
                s1[c] += u;
                s2[c] += u * v;
            }
        }
        return;
    }
    for (int c = c0; c < c1; c++) {
        const float ca = ka ? ka[c] : 0.0f, cb = kb ? kb[c] : 0.0f;
        for (int i = 0; i < N; i++) {
            const float *ar = a + ((size_t)i * C + c) * inner;
            const float *br = b ? b + ((size_t)i * C + c) * inner : ar;
            lp_batch_norm_row_sums(ar, ca, br, b ? cb : ca, inner, &s1[c], &s2[c]);
        }
    }
}

/* out = (x - mean) * scale + shift per channel (x, out [N, C, inner]). */
static void channel_affine(const float *x, const float *mean, const float *scale, const float *shift,
                           float *out, int N, int C, long inner, int c0, int c1)
{
    for (int i = 0; i < N; i++) {
        if (inner == 1) {
            const float *xr = x + (size_t)i * C;
            float *yr = out + (size_t)i * C;
#pragma omp simd
            for (int c = c0; c < c1; c++) yr[c] = (xr[c] - mean[c]) * scale[c] + shift[c];
            continue;
        }
        for (int c = c0; c < c1; c++) {
            const float *xr = x + ((size_t)i * C + c) * inner;
            float *yr = out + ((size_t)i * C + c) * inner;
            lp_batch_norm_row(xr, yr, inner, mean[c], scale[c], shift[c]);
        }
    }
}

/* dx (=|+=) a * dy + b * (x - mean) + c per channel, for channels [c0, c1). */
static void channel_input_grad(const float *dy, const float *x, const float *mean, const float *ka,
                               const float *kb, const float *kc, float *dx, int acc, int N, int C,
                               long inner, int c0, int c1)
{
    for (int i = 0; i < N; i++) {
        if (inner == 1) {
            const size_t r = (size_t)i * C;
            if (acc) {
#pragma omp simd
                for (int c = c0; c < c1; c++)
                    dx[r + c] += ka[c] * dy[r + c] + kb[c] * (x[r + c] - mean[c]) + kc[c];
            } else {
#pragma omp simd
                for (int c = c0; c < c1; c++)
                    dx[r + c] = ka[c] * dy[r + c] + kb[c] * (x[r + c] - mean[c]) + kc[c];
            }
            continue;
        }
        for (int c = c0; c < c1; c++) {
            const size_t r = ((size_t)i * C + c) * inner;
            const float a = ka[c], b = kb[c], k = kc[c], mu = mean[c];
            lp_batch_norm_row_grad(dy + r, x + r, dx + r, inner, acc, mu, a, b, k);
        }
    }
}

/* The team's threads for a node: lanes run ops on one thread; alone, split the
 * channels (each channel's sums stay on one thread: the same bits either way). */
static int team_for(const lp_node *n, const bn_state *st, int N)
{
    int t = lp_node_threads(n);
    if ((long)N * st->C * st->inner < 65536 || st->C < 2) return 1;
    return t < st->C ? t : st->C;
}

/* Channel c's pivot: the mean of its first row in this slice, within a few
 * standard deviations of the batch mean, so that the float sums of squares around
 * it do not cancel when the mean is far from 0. */
static float channel_pivot(const float *x, long inner, int c)
{
    return lp_batch_norm_pivot(x + (size_t)c * inner, inner);
}

/* Channel c's sums around its pivot (s1 = sum u, s2 = sum u^2, over `local`
 * values) -> the sum and M2 + n * mean^2 of the slice, which do not depend on the
 * pivot, so the lanes' can be added (Chan et al.'s parallel variance). */
static void channel_uncentre(double *sums, int C, int c, float pivot, double local)
{
    double u1 = sums[c], u2 = sums[C + c], slice_mean = pivot + u1 / local;
    sums[c] = local * slice_mean;
    sums[C + c] = (u2 - u1 * u1 / local) + local * slice_mean * slice_mean;
}

/* Channel c's mean, invstd and affine coefficients from the whole batch's sums
 * (training, m values) or the running statistics (eval); the running statistics
 * move when `update`. */
static void channel_coefs(lp_node *n, const bn_state *st, int c, const double *sums, double m, int training,
                          int update)
{
    const int C = st->C;
    const float *w = st->affine ? lp_node_param(n, 0) : NULL, *b = st->affine ? lp_node_param(n, 1) : NULL;
    float *rmean = lp_node_buffer(n, 0), *rvar = lp_node_buffer(n, 1);
    double mu, var;
    if (training) {
        mu = sums[c] / m;
        var = sums[C + c] / m - mu * mu;
        if (var < 0) var = 0; /* rounding */
    } else {
        mu = rmean[c];
        var = rvar[c];
    }
    double is = 1.0 / sqrt(var + (double)st->eps);
    mean_of(n)[c] = (float)mu;
    invstd_of(n, C)[c] = (float)is;
    coef_of(n, C, 0)[c] = (float)(w ? w[c] * is : is);
    coef_of(n, C, 1)[c] = b ? b[c] : 0.0f;
    if (update) {
        double unbiased = m > 1 ? var * m / (m - 1) : var;
        rmean[c] = (float)((1.0 - st->momentum) * rmean[c] + st->momentum * mu);
        rvar[c] = (float)((1.0 - st->momentum) * rvar[c] + st->momentum * unbiased);
    }
}

/* Channel c's backward coefficients: dx = ka * dy + kb * (x - mean) + kc. */
static void channel_grad_coefs(lp_node *n, const bn_state *st, int c, const double *sums, double m)
{
    const int C = st->C;
    const float *w = st->affine ? lp_node_param(n, 0) : NULL;
    double is = invstd_of(n, C)[c], a = (w ? w[c] : 1.0) * is;
    /* sum dy * xhat = invstd * sum dy * (x - mean) */
    coef_of(n, C, 0)[c] = (float)a;
    coef_of(n, C, 1)[c] = (float)(-a * is * is * sums[C + c] / m);
    coef_of(n, C, 2)[c] = (float)(-a * sums[c] / m);
}

/* This slice's share of channel c's parameter gradients (the graph adds the lanes'). */
static void channel_param_grads(lp_node *n, const bn_state *st, int c, const double *sums)
{
    if (!st->affine) return;
    const int C = st->C;
    lp_node_param_grad(n, 0)[c] += (float)(invstd_of(n, C)[c] * sums[C + c]);
    lp_node_param_grad(n, 1)[c] += (float)sums[c];
}

/* Past this many bytes read by a first pass, a second whole pass would find them
 * evicted from L2 (1-2 MiB per core on current x86; 2 MiB on the machine measured). */
#define BN_CACHE_BYTES (2L << 20)

/* Does this lane hold the whole batch, and would a whole pass over `tensors`
 * tensors of it outgrow the cache? Then each channel's first pass (statistics or
 * backward sums) and second (normalization or input gradient) run together, channel
 * by channel: the second reads a channel's N * inner values (173 KB for MNIST's
 * conv1 at batch 64) from the cache the first left them in, instead of the whole
 * tensors again (2.8 MB of dy and x for conv1's backward). The same operations in
 * the same order as the two whole passes: the same bits. Not when it fits: channel by
 * channel, the second pass strides across samples (measured slower for conv2's
 * 11 x 11 rows, 0.5 MB). Not with lanes: they meet between the passes. */
static int channel_by_channel(const lp_node *n, const bn_state *st, int N, int tensors)
{
    const long bytes = (long)tensors * N * st->C * st->inner * (long)sizeof(float);
    return !st->two_pass && st->inner > 1 && lp_node_batch_total(n) == N && bytes > BN_CACHE_BYTES;
}

/* Training statistics from this slice's sums around the pivots (channel_sums): the
 * lanes' added, then each channel's coefficients; the running statistics move. */
static void stats_done(lp_node *n, const bn_state *st, int N)
{
    const int C = st->C;
    double *sums = sums_of(n, C);
    const float *pivot = coef_of(n, C, 2);
    for (int c = 0; c < C; c++) channel_uncentre(sums, C, c, pivot[c], (double)N * (double)st->inner);
    lp_node_batch_sum(n, sums, 2 * C);
    const double m = (double)lp_node_batch_total(n) * (double)st->inner;
    const int update = lp_node_updates_buffers(n);
    for (int c = 0; c < C; c++) channel_coefs(n, st, c, sums, m, 1, update);
}

/* Training statistics of x, and the coefficients. Channel by channel (when the
 * whole batch is here and outgrows the cache), y (unless NULL) is written in the
 * same sweep, and 1 is returned; else 0 and y is still to be written. */
static int training_stats(lp_node *n, const bn_state *st, int N, float *y)
{
    const int C = st->C;
    const long inner = st->inner;
    const float *x = lp_node_in(n, 0); /* [N, C, inner] */
    float *mean = mean_of(n), *scale = coef_of(n, C, 0), *shift = coef_of(n, C, 1), *pivot = coef_of(n, C, 2);
    double *sums = sums_of(n, C);      /* [2C]: sum x, sum x^2 (centred, then combined) */
    const int team = team_for(n, st, N);
    if (channel_by_channel(n, st, N, 1)) {
        const double local = (double)N * (double)inner;
        const int update = lp_node_updates_buffers(n);
#pragma omp parallel num_threads(team) if (team > 1)
        {
            int nt;
            long c0, c1;
            lp_thread_share(C, &nt, &c0, &c1);
            for (int c = (int)c0; c < (int)c1; c++) {
                pivot[c] = channel_pivot(x, inner, c);
                channel_sums(x, pivot, NULL, NULL, N, C, inner, c, c + 1, sums, sums + C);
                channel_uncentre(sums, C, c, pivot[c], local);
                channel_coefs(n, st, c, sums, local, 1, update);
                if (y) channel_affine(x, mean, scale, shift, y, N, C, inner, c, c + 1);
            }
        }
        return 1;
    }
    for (int c = 0; c < C; c++) pivot[c] = channel_pivot(x, inner, c);
#pragma omp parallel num_threads(team) if (team > 1)
    {
        int nt;
        long c0, c1;
        lp_thread_share(C, &nt, &c0, &c1);
        channel_sums(x, pivot, NULL, NULL, N, C, inner, (int)c0, (int)c1, sums, sums + C);
    }
    stats_done(n, st, N);
    return 0;
}

static void bn_forward(lp_node *n)
{
    const bn_state *st = lp_node_state(n);
    const int N = lp_node_batch(n), C = st->C;
    const float *x = lp_node_in(n, 0); /* [N, C, inner] */
    float *y = lp_node_out(n);         /* [N, C, inner] */
    const int applied = lp_node_out_applied(n);

    if (lp_node_training(n)) {
        /* Applied: the max-pool takes the statistics in its own pass over x
         * (lp_batch_norm_stat_sums) or asks for them (lp_batch_norm_stats). */
        if (applied || training_stats(n, st, N, y)) return;
    } else {
        for (int c = 0; c < C; c++) channel_coefs(n, st, c, NULL, 0, 0, 0);
        if (applied) return; /* the consumer normalizes as it reads (lp_node_out_applied) */
    }
    const int team = team_for(n, st, N);
    const float *mean = mean_of(n), *scale = coef_of(n, C, 0), *shift = coef_of(n, C, 1);
#pragma omp parallel num_threads(team) if (team > 1)
    {
        int nt;
        long c0, c1;
        lp_thread_share(C, &nt, &c0, &c1);
        channel_affine(x, mean, scale, shift, y, N, C, st->inner, (int)c0, (int)c1);
    }
}

static void bn_backward(lp_node *n)
{
    const bn_state *st = lp_node_state(n);
    const int N = lp_node_batch(n), C = st->C;
    const long inner = st->inner;
    const float *x = lp_node_in(n, 0);
    const float *dy = lp_node_out_grad(n);
    float *dx = lp_node_in_grad(n, 0);
    const float *mean = mean_of(n);
    float *ka = coef_of(n, C, 0), *kb = coef_of(n, C, 1), *kc = coef_of(n, C, 2);
    double *sums = sums_of(n, C); /* [2C]: sum dy, sum dy * (x - mean) */
    const int team = team_for(n, st, N);
    const int acc = dx ? lp_node_in_grad_accumulate(n, 0) : 0;
    const double m = (double)lp_node_batch_total(n) * (double)inner;

    if (lp_node_out_applied(n)) return; /* the max-pool after it did all (lp_batch_norm_sums_done) */
    if (channel_by_channel(n, st, N, 2)) {
#pragma omp parallel num_threads(team) if (team > 1)
        {
            int nt;
            long c0, c1;
            lp_thread_share(C, &nt, &c0, &c1);
            for (int c = (int)c0; c < (int)c1; c++) {
                channel_sums(dy, NULL, x, mean, N, C, inner, c, c + 1, sums, sums + C);
                channel_param_grads(n, st, c, sums);
                if (!dx) continue;
                channel_grad_coefs(n, st, c, sums, m);
                channel_input_grad(dy, x, mean, ka, kb, kc, dx, acc, N, C, inner, c, c + 1);
            }
        }
        return;
    }
#pragma omp parallel num_threads(team) if (team > 1)
    {
        int nt;
        long c0, c1;
        lp_thread_share(C, &nt, &c0, &c1);
        channel_sums(dy, NULL, x, mean, N, C, inner, (int)c0, (int)c1, sums, sums + C);
    }
    for (int c = 0; c < C; c++) channel_param_grads(n, st, c, sums);
    lp_node_batch_sum(n, sums, 2 * C);
    if (!dx) return;
    for (int c = 0; c < C; c++) channel_grad_coefs(n, st, c, sums, m);
#pragma omp parallel num_threads(team) if (team > 1)
    {
        int nt;
        long c0, c1;
        lp_thread_share(C, &nt, &c0, &c1);
        channel_input_grad(dy, x, mean, ka, kb, kc, dx, acc, N, C, inner, (int)c0, (int)c1);
    }
}

double *lp_batch_norm_stat_sums(const lp_node *bn, float **pivot)
{
    const bn_state *st = lp_node_state(bn);
    double *sums = sums_of(bn, st->C);
    for (int c = 0; c < 2 * st->C; c++) sums[c] = 0;
    *pivot = coef_of(bn, st->C, 2);
    return sums;
}

void lp_batch_norm_stats_done(lp_node *bn) { stats_done(bn, lp_node_state(bn), lp_node_batch(bn)); }

void lp_batch_norm_stats(lp_node *bn)
{
    training_stats(bn, lp_node_state(bn), lp_node_batch(bn), NULL);
}

int lp_batch_norm_monotone(const lp_node *bn)
{
    const bn_state *st = lp_node_state(bn);
    if (!st->affine) return 1;
    const float *w = lp_node_param(bn, 0);
    for (int c = 0; c < st->C; c++)
        if (!(w[c] >= 0.0f)) return 0;
    return 1;
}

double *lp_batch_norm_grad_sums(const lp_node *bn, const float **mean)
{
    const bn_state *st = lp_node_state(bn);
    double *sums = sums_of(bn, st->C);
    for (int c = 0; c < 2 * st->C; c++) sums[c] = 0;
    *mean = mean_of(bn);
    return sums;
}

int lp_batch_norm_sums_done(lp_node *bn, const float **ka, const float **kb, const float **kc)
{
    const bn_state *st = lp_node_state(bn);
    const int C = st->C;
    double *sums = sums_of(bn, C);
    for (int c = 0; c < C; c++) channel_param_grads(bn, st, c, sums);
    lp_node_batch_sum(bn, sums, 2 * C);
    if (!lp_node_in_grad(bn, 0)) return 0;
    const double m = (double)lp_node_batch_total(bn) * (double)st->inner;
    for (int c = 0; c < C; c++) channel_grad_coefs(bn, st, c, sums, m);
    *ka = coef_of(bn, C, 0);
    *kb = coef_of(bn, C, 1);
    *kc = coef_of(bn, C, 2);
    return 1;
}

void lp_batch_norm_coefs(const lp_node *bn, const float **mean, const float **scale, const float **shift)
{
    const bn_state *st = lp_node_state(bn);
    *mean = mean_of(bn);
    *scale = coef_of(bn, st->C, 0);
    *shift = coef_of(bn, st->C, 1);
}

static const lp_attr_doc bn_attrs[] = {
    {"momentum", "float", "0.1",
     "weight of each training batch in the running mean/variance, in [0, 1) (PyTorch's convention)"},
    {"epsilon", "float", "1e-5", "added to the variance before its square root, >= 0"},
    {"affine", "bool", "true", "learn a per-channel weight (gamma) and bias (beta)"},
    {NULL, NULL, NULL, NULL},
};

const lp_op lp_op_batch_norm = {
    LP_OP_HEADER,
    .name = "batch_norm",
    .summary = "batch normalization per channel ([C,H,W]) or feature ([F]); running stats in eval",
    .min_inputs = 1,
    .max_inputs = 1,
    .attrs = bn_attrs,
    .setup = bn_setup,
    .forward = bn_forward,
    .backward = bn_backward,
};
