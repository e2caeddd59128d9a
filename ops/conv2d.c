/* conv2d.c - 2-D convolution (cross-correlation, as every framework computes it).
 *
 * Input [C, H, W] -> output [F, OH, OW], OH = (H + pad_top + pad_bottom - kh) / sh + 1.
 * Weight [F, C, kh, kw] (PyTorch layout), bias [F]. He init, fan_in = C * kh * kw.
 *
 * How: im2col + GEMM. Per sample, the input patches are unrolled into
 * col [K = C*kh*kw, P = OH*OW], then out[F, P] = W[F, K] * col + b. Samples run in
 * parallel (OpenMP); lp_sgemm itself is single-threaded, so there is one level of
 * parallelism. Scratch per sample (planned by the graph, so no malloc per step):
 *   col [K*P]      written by forward, read (never changed) by backward, so
 *                  backward can run again after one forward (another seed);
 *   part [F*K + F] the weight and bias gradient partial of thread number `slot`;
 *   dcol [R*P]     thread `slot`'s input-gradient rows for a chunk of channels
 *                  (R ~ 64 rows: a useful GEMM, a fraction of col's memory).
 * Only the first T slots' part and dcol are used (T <= N threads).
 * Backward sums the T partials in thread order, so a result is the same for the
 * same thread count (and differs from another count only by float rounding).
 *
 * padding: an int, [h, w], or `same` (output ceil(H / stride); the odd pixel of
 * padding goes to the bottom/right, as TensorFlow does). bias: true/false.
 */
#include "compute.h"
#include "loupe_op.h"
#include "shape.h"

#include <stdio.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

typedef struct conv_state {
    int C, H, W;        /* input */
    int F, kh, kw;      /* filters and kernel */
    int sh, sw;         /* stride */
    int pt, pl;         /* padding top and left (bottom/right only change OH, OW) */
    int OH, OW;
    int K, P;           /* K = C*kh*kw rows of col, P = OH*OW columns */
    int bias;
    int chunk;          /* channels per dcol chunk */
    size_t part_off, dcol_off, slot; /* floats: offsets in a sample's scratch, its size */
} conv_state;

/* `bias` is read as a word so YAML's `bias: false` works: true/false, yes/no, 1/0. */
static lp_status read_bias(lp_node *n, int *out)
{
    const char *s;
    lp_status st = lp_attr_string(n, "bias", "true", &s);
    if (st) return st;
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "yes") || !strcmp(s, "1")) *out = 1;
    else if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "no") || !strcmp(s, "0")) *out = 0;
    else return lp_node_fail_attr(n, "bias", "bias must be true or false, got '%s'", s);
    return LP_OK;
}

static int is_int_text(const char *s)
{
    if (*s == '-' || *s == '+') s++;
    if (!*s) return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9') return 0;
    return 1;
}

/* padding -> pad[4] = top, bottom, left, right; *same set when written as `same`. */
static lp_status read_padding(lp_node *n, int pad[4], int *same)
{
    int p[2] = {0, 0};
    *same = 0;
    if (lp_attr_present(n, "padding") && !lp_attr_is_list(n, "padding")) {
        const char *s;
        lp_status st = lp_attr_string(n, "padding", "0", &s);
        if (st) return st;
        if (!strcmp(s, "same")) { *same = 1; return LP_OK; }
        if (!strcmp(s, "valid")) { memset(pad, 0, 4 * sizeof *pad); return LP_OK; }
        if (!is_int_text(s))
            return lp_node_fail_attr(n, "padding",
                                     "padding must be an integer, [h, w], 'same' or 'valid', got '%s'", s);
    }
    lp_status st = lp_attr_pair(n, "padding", 0, p);
    if (st) return st;
    if (p[0] < 0 || p[1] < 0)
        return lp_node_fail_attr(n, "padding", "padding must not be negative, got [%d, %d]", p[0], p[1]);
    pad[0] = pad[1] = p[0];
    pad[2] = pad[3] = p[1];
    return LP_OK;
}

/* "0", "1x2" or "same (0 top, 1 bottom, ...)" for messages. */
static const char *pad_str(const int pad[4], int same, char *buf, size_t size)
{
    if (pad[0] == pad[1] && pad[2] == pad[3] && pad[0] == pad[2])
        snprintf(buf, size, "%s%d", same ? "same = " : "", pad[0]);
    else
        snprintf(buf, size, "%stop %d, bottom %d, left %d, right %d", same ? "same = " : "", pad[0],
                 pad[1], pad[2], pad[3]);
    return buf;
}

static lp_status conv_setup(lp_node *n)
{
    int F, k[2], s[2], pad[4] = {0, 0, 0, 0}, same = 0, bias = 1;
    lp_status st = lp_attr_int_required(n, "filters", &F);
    if (!st) st = lp_attr_pair_required(n, "kernel", k);
    if (!st) st = lp_attr_pair(n, "stride", 1, s);
    if (!st) st = read_padding(n, pad, &same);
    if (!st) st = read_bias(n, &bias);
    if (st) return st;
    if (F < 1) return lp_node_fail_attr(n, "filters", "filters must be at least 1, got %d", F);
    if (k[0] < 1 || k[1] < 1)
        return lp_node_fail_attr(n, "kernel", "kernel must be at least 1x1, got %dx%d", k[0], k[1]);
    if (s[0] < 1 || s[1] < 1)
        return lp_node_fail_attr(n, "stride", "stride must be at least 1, got %dx%d", s[0], s[1]);
    lp_shape in = lp_node_in_shape(n, 0);
    char buf[96];
    if (in.ndim != 3)
        return lp_node_fail(n, "expects a [C, H, W] input, got %s",
                            lp_shape_str(in, buf, sizeof buf));
    int C = in.dims[0], H = in.dims[1], W = in.dims[2];
    if (same) {
        /* Output ceil(H / s); the padding that takes, the odd pixel at the end. */
        int oh = (H + s[0] - 1) / s[0], ow = (W + s[1] - 1) / s[1];
        int th = (oh - 1) * s[0] + k[0] - H, tw = (ow - 1) * s[1] + k[1] - W;
        th = th > 0 ? th : 0;
        tw = tw > 0 ? tw : 0;
        pad[0] = th / 2; pad[1] = th - th / 2;
        pad[2] = tw / 2; pad[3] = tw - tw / 2;
    }
    long long ph = (long long)H + pad[0] + pad[1], pw = (long long)W + pad[2] + pad[3];
    if (k[0] > ph || k[1] > pw)
        return lp_node_fail_attr(n, "kernel", "kernel %dx%d is larger than the %dx%d input (padding %s)",
                                 k[0], k[1], H, W, pad_str(pad, same, buf, sizeof buf));
    int OH = (int)((ph - k[0]) / s[0] + 1), OW = (int)((pw - k[1]) / s[1] + 1);
    long long K = (long long)C * k[0] * k[1], P = (long long)OH * OW;
    if (K * P > LP_MAX_ELEMENTS || K * F > LP_MAX_ELEMENTS)
        return lp_node_fail(n, "the unrolled input (%lld x %lld) is too large", K, P);
    conv_state *cs = lp_node_alloc_state(n, sizeof *cs);
    if (!cs) return LP_ERR_NOMEM;
    int chunk = (64 + k[0] * k[1] - 1) / (k[0] * k[1]);
    chunk = chunk < C ? chunk : C;
    /* Regions rounded to 16 floats: every GEMM operand starts 64-byte aligned. */
    size_t part_off = (size_t)(K * P + 15) / 16 * 16;
    size_t dcol_off = part_off + (size_t)(K * F + F + 15) / 16 * 16;
    size_t slot = dcol_off + ((size_t)chunk * k[0] * k[1] * P + 15) / 16 * 16;
    *cs = (conv_state){C, H, W, F, k[0], k[1], s[0], s[1], pad[0], pad[2], OH, OW,
                       (int)K, (int)P, bias, chunk, part_off, dcol_off, slot};
    if (lp_node_add_param(n, "weight", lp_shape4(F, C, k[0], k[1]), LP_INIT_HE, (int)K) < 0)
        return LP_ERR_SHAPE;
    if (bias && lp_node_add_param(n, "bias", lp_shape1(F), LP_INIT_ZERO, 0) < 0) return LP_ERR_SHAPE;
    lp_node_set_scratch(n, slot * sizeof(float), 0);
    return lp_node_set_out_shape(n, lp_shape3(F, OH, OW));
}

/* Columns ox with 0 <= ox*sw + kx - pl < W: [*lo, *hi). */
static void valid_cols(const conv_state *cs, int kx, int *lo, int *hi)
{
    int off = kx - cs->pl; /* ix = ox*sw + off */
    int a = off >= 0 ? 0 : (-off + cs->sw - 1) / cs->sw;
    int b = cs->W - off <= 0 ? 0 : (cs->W - off + cs->sw - 1) / cs->sw;
    if (b > cs->OW) b = cs->OW;
    if (a > b) a = b;
    *lo = a;
    *hi = b;
}

/* x [C, H, W] -> col [K, P]; padding reads as 0. */
static void im2col(const conv_state *cs, const float *x, float *col)
{
    const int OW = cs->OW;
    for (int c = 0; c < cs->C; c++)
        for (int ky = 0; ky < cs->kh; ky++)
            for (int kx = 0; kx < cs->kw; kx++) {
                float *row = col + (size_t)((c * cs->kh + ky) * cs->kw + kx) * cs->P;
                int lo, hi;
                valid_cols(cs, kx, &lo, &hi);
                for (int oy = 0; oy < cs->OH; oy++) {
                    float *r = row + (size_t)oy * OW;
                    int iy = oy * cs->sh + ky - cs->pt;
                    if (iy < 0 || iy >= cs->H || lo == hi) {
                        memset(r, 0, (size_t)OW * sizeof(float));
                        continue;
                    }
                    const float *xr = x + ((size_t)c * cs->H + iy) * cs->W + kx - cs->pl;
                    for (int ox = 0; ox < lo; ox++) r[ox] = 0.0f;
                    if (cs->sw == 1) memcpy(r + lo, xr + lo, (size_t)(hi - lo) * sizeof(float));
                    else
                        for (int ox = lo; ox < hi; ox++) r[ox] = xr[ox * cs->sw];
                    for (int ox = hi; ox < OW; ox++) r[ox] = 0.0f;
                }
            }
}

/* dx [C, H, W] += col2im(dcol) for channels [c0, c0 + nc): dcol holds their rows
 * [nc*kh*kw, P]; padding positions are dropped. */
static void col2im_add(const conv_state *cs, const float *dcol, int c0, int nc, float *dx)
{
    const int OW = cs->OW;
    for (int c = c0; c < c0 + nc; c++)
        for (int ky = 0; ky < cs->kh; ky++)
            for (int kx = 0; kx < cs->kw; kx++) {
                const float *row = dcol + (size_t)(((c - c0) * cs->kh + ky) * cs->kw + kx) * cs->P;
                int lo, hi;
                valid_cols(cs, kx, &lo, &hi);
                for (int oy = 0; oy < cs->OH; oy++) {
                    int iy = oy * cs->sh + ky - cs->pt;
                    if (iy < 0 || iy >= cs->H) continue;
                    const float *r = row + (size_t)oy * OW;
                    float *xr = dx + ((size_t)c * cs->H + iy) * cs->W + kx - cs->pl;
                    for (int ox = lo; ox < hi; ox++) xr[ox * cs->sw] += r[ox];
                }
            }
}

static int threads_for(const lp_node *n, int N)
{
    int t = lp_node_threads(n);
    return t < 1 ? 1 : t > N ? N : t;
}

static void conv_forward(lp_node *n)
{
    const conv_state *cs = lp_node_state(n);
    const int N = lp_node_batch(n), F = cs->F, K = cs->K, P = cs->P;
    const float *x = lp_node_in(n, 0);    /* [N, C, H, W] */
    const float *w = lp_node_param(n, 0); /* [F, K] */
    const float *b = cs->bias ? lp_node_param(n, 1) : NULL;
    float *y = lp_node_out(n);            /* [N, F, P] */
    float *scratch = lp_node_scratch(n);
    const size_t in_sz = (size_t)cs->C * cs->H * cs->W;
    int T = threads_for(n, N);
#pragma omp parallel for schedule(static) num_threads(T) if (T > 1)
    for (int s = 0; s < N; s++) {
        float *col = scratch + (size_t)s * cs->slot;
        float *ys = y + (size_t)s * F * P;
        im2col(cs, x + (size_t)s * in_sz, col);
        if (b)
            for (int f = 0; f < F; f++)
                for (int p = 0; p < P; p++) ys[(size_t)f * P + p] = b[f];
        lp_sgemm(false, false, F, P, K, 1.0f, w, K, col, P, b ? 1.0f : 0.0f, ys, P);
    }
}

static void conv_backward(lp_node *n)
{
    const conv_state *cs = lp_node_state(n);
    const int N = lp_node_batch(n), F = cs->F, K = cs->K, P = cs->P;
    const float *w = lp_node_param(n, 0);
    float *dw = lp_node_param_grad(n, 0);
    float *db = cs->bias ? lp_node_param_grad(n, 1) : NULL;
    const float *dy = lp_node_out_grad(n); /* [N, F, P] */
    float *dx = lp_node_in_grad(n, 0);     /* [N, C, H, W] or NULL (the image) */
    const int acc = lp_node_in_grad_accumulate(n, 0);
    float *scratch = lp_node_scratch(n);
    const size_t in_sz = (size_t)cs->C * cs->H * cs->W;
    const size_t part_off = cs->part_off;
    const int khw = cs->kh * cs->kw;
    int T = threads_for(n, N);
#pragma omp parallel num_threads(T) if (T > 1)
    {
        int t = 0, nt = 1;
#ifdef _OPENMP
        t = omp_get_thread_num();
        nt = omp_get_num_threads();
#endif
        /* Contiguous samples per thread: which thread adds which sample is fixed. */
        int s0 = (int)((long)N * t / nt), s1 = (int)((long)N * (t + 1) / nt);
        float *pw = scratch + (size_t)t * cs->slot + part_off; /* [F, K] */
        float *pb = pw + (size_t)F * K;                          /* [F] */
        float *dcol = scratch + (size_t)t * cs->slot + cs->dcol_off;
        for (int s = s0; s < s1; s++) {
            float *col = scratch + (size_t)s * cs->slot;
            const float *dys = dy + (size_t)s * F * P;
            /* dW[F,K] (+)= dY[F,P] col^T[P,K] */
            lp_sgemm(false, true, F, K, P, 1.0f, dys, P, col, P, s == s0 ? 0.0f : 1.0f, pw, K);
            if (db)
                for (int f = 0; f < F; f++) {
                    float sum = 0.0f;
                    for (int p = 0; p < P; p++) sum += dys[(size_t)f * P + p];
                    pb[f] = s == s0 ? sum : pb[f] + sum;
                }
            if (dx) {
                float *dxs = dx + (size_t)s * in_sz;
                if (!acc) memset(dxs, 0, in_sz * sizeof(float));
                /* dcol[K,P] = W^T[K,F] dY[F,P], a chunk of channels at a time. */
                for (int c0 = 0; c0 < cs->C; c0 += cs->chunk) {
                    int nc = cs->C - c0 < cs->chunk ? cs->C - c0 : cs->chunk;
                    lp_sgemm(true, false, nc * khw, P, F, 1.0f, w + (size_t)c0 * khw, K, dys, P,
                             0.0f, dcol, P);
                    col2im_add(cs, dcol, c0, nc, dxs);
                }
            }
        }
        if (s0 == s1) { /* an empty share still owns a slot that the sum below reads */
            memset(pw, 0, ((size_t)F * K + F) * sizeof(float));
        }
#pragma omp barrier
        /* Sum the partials in thread order: fixed for a fixed thread count. */
#pragma omp for schedule(static)
        for (int e = 0; e < F * K + F; e++) {
            if (e >= F * K && !db) continue;
            float sum = 0.0f;
            for (int u = 0; u < nt; u++) sum += scratch[(size_t)u * cs->slot + part_off + e];
            if (e < F * K) dw[e] += sum;
            else db[e - F * K] += sum;
        }
    }
}

static const lp_attr_doc conv_attrs[] = {
    {"filters", "int", NULL, "output channels"},
    {"kernel", "int or [h, w]", NULL, "kernel size"},
    {"stride", "int or [h, w]", "1", "step between windows"},
    {"padding", "int, pair, same", "0", "zeros around the input; same: output ceil(H / stride)"},
    {"bias", "bool", "true", "add a learned bias per filter (true/false)"},
    {NULL, NULL, NULL, NULL},
};

const lp_op lp_op_conv2d = {
    LP_OP_HEADER,
    .name = "conv2d",
    .summary = "2-D convolution [C, H, W] -> [filters, OH, OW], weight [filters, C, kh, kw]",
    .min_inputs = 1,
    .max_inputs = 1,
    .attrs = conv_attrs,
    .setup = conv_setup,
    .forward = conv_forward,
    .backward = conv_backward,
};
