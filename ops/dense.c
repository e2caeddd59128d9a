/* dense.c - fully connected layer: y = W x + b.
 *
 * Input [I] per sample, output [units]. Weight [units, I] (PyTorch layout, so a
 * checkpoint maps onto nn.Linear unchanged), bias [units]. He init with fan_in = I.
 * The batch is one product per pass, Y[N,U] = X[N,I] * W^T, dW += dY^T X, dX = dY W:
 * for a slice of up to DENSE_ROWS_MAX samples Y and dW are small kernels of ours,
 * otherwise GEMM calls.
 *
 * Threads: BLAS runs single-threaded (one level of parallelism), so a big enough
 * product is split here: rows of the batch for Y and dX, rows of dW (units) for dW.
 * Each output element is computed by one thread, whole: no partial sums to add.
 */
#include "compute.h"
#include "loupe_op.h"
#include "shape.h"
#include "simd.h"

#include <string.h>

#if defined(__AVX512F__) && defined(__AVX512VL__)
#include <immintrin.h>
#define DENSE_AVX512 1
#else
#define DENSE_AVX512 0
#endif

/* Up to this many samples (a slice) Y and dW are our kernels, not GEMM calls: a GEMM
 * packs its operands first, which at this size costs about as much as the
 * multiply-adds (two-conv fc1 forward, slices of 32: -20%, `loupe train --profile`).
 * dX stays a GEMM: OpenBLAS takes it unpacked, and a kernel like dW's was 5% slower. */
#define DENSE_ROWS_MAX 64

/* Below this many multiply-adds a split GEMM costs more than it saves (measured with
 * passive waits: the dense net at batch 16-64, 1.6M-6.4M a layer, ran slower split). */
#define DENSE_PARALLEL_MIN (1L << 23)

typedef struct dense_state {
    int units, inputs;
    int bias;   /* has a bias parameter */
} dense_state;

static lp_status dense_setup(lp_node *n)
{
    int units, bias = 1;
    lp_status s = lp_attr_int_required(n, "units", &units);
    if (!s) s = lp_attr_bool(n, "bias", 1, &bias);
    if (s) return s;
    if (units < 1) return lp_node_fail_attr(n, "units", "units must be at least 1, got %d", units);
    lp_shape in = lp_node_in_shape(n, 0);
    char buf[64];
    if (in.ndim != 1)
        return lp_node_fail(n, "expects a flat [features] input, got %s: add a `flatten` layer "
                               "before this dense layer",
                            lp_shape_str(in, buf, sizeof buf));
    dense_state *st = lp_node_alloc_state(n, sizeof *st);
    if (!st) return LP_ERR_NOMEM;
    *st = (dense_state){units, in.dims[0], bias};
    if (lp_node_add_param(n, "weight", (lp_shape){2, {units, in.dims[0]}}, LP_INIT_HE, in.dims[0]) < 0)
        return LP_ERR_SHAPE;
    if (bias && lp_node_add_param(n, "bias", (lp_shape){1, {units}}, LP_INIT_ZERO, 0) < 0)
        return LP_ERR_SHAPE;
    return lp_node_set_out_shape(n, (lp_shape){1, {units}});
}

/* Threads worth using for an N x U x I product. */
static int threads_for(const lp_node *n, int N, int U, int I)
{
    int t = lp_node_threads(n);
    if ((long)N * U * I < DENSE_PARALLEL_MIN || t < 1) return 1;
    return t < N ? t : N;
}

#if DENSE_AVX512
/* Lane k of the result: the sum of v[k]'s 16 lanes. A transpose-and-add tree: 45
 * shuffles and adds for 16 sums, where 16 separate reductions take ~130. */
static inline __attribute__((always_inline)) __m512 sum16(const __m512 v[16])
{
    __m512 a[8], b[4], c[2];
#pragma GCC unroll 8
    for (int k = 0; k < 8; k++) /* per 128-bit lane: v2k, v2k+1, v2k, v2k+1 */
        a[k] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * k], v[2 * k + 1]), _mm512_unpackhi_ps(v[2 * k], v[2 * k + 1]));
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) /* per 128-bit lane: v4k .. v4k+3 */
        b[k] = _mm512_add_ps(_mm512_shuffle_ps(a[2 * k], a[2 * k + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_ps(a[2 * k], a[2 * k + 1], _MM_SHUFFLE(3, 2, 3, 2)));
#pragma GCC unroll 2
    for (int k = 0; k < 2; k++) /* 128-bit lanes: b2k halves summed, b2k+1 halves summed */
        c[k] = _mm512_add_ps(_mm512_shuffle_f32x4(b[2 * k], b[2 * k + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm512_shuffle_f32x4(b[2 * k], b[2 * k + 1], _MM_SHUFFLE(3, 1, 3, 1)));
    return _mm512_add_ps(_mm512_shuffle_f32x4(c[0], c[1], _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(c[0], c[1], _MM_SHUFFLE(3, 1, 3, 1)));
}

/* y[s][u] = b[u] + x[s] . w[u] for samples [s0, s1): blocks of 4 samples x 4 units as
 * 16 dot products along the inputs (x and w are both contiguous there: neither is
 * transposed), reduced together by sum16. A block's missing samples or units repeat
 * the last one and are not stored. */
static void dense_forward_rows(const float *x, const float *w, const float *b, float *y, int U, int I,
                               int s0, int s1)
{
    const __mmask16 tail = first_lanes(I % 16);
    const int body = I - I % 16;
    for (int s = s0; s < s1; s += 4) {
        const int ns = s1 - s < 4 ? s1 - s : 4;
        for (int u = 0; u < U; u += 4) {
            const int nu = U - u < 4 ? U - u : 4;
            const float *xr[4], *wr[4];
            __m512 acc[16];
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                xr[k] = x + (size_t)(s + (k < ns ? k : ns - 1)) * I;
                wr[k] = w + (size_t)(u + (k < nu ? k : nu - 1)) * I;
            }
#pragma GCC unroll 16
            for (int k = 0; k < 16; k++) acc[k] = _mm512_setzero_ps();
            for (int i = 0; i < I; i += 16) {
                const __mmask16 m = i < body ? 0xFFFF : tail; /* masked lanes never fault */
                __m512 xv[4], wv[4];
#pragma GCC unroll 4
                for (int k = 0; k < 4; k++) {
                    xv[k] = _mm512_maskz_loadu_ps(m, xr[k] + i);
                    wv[k] = _mm512_maskz_loadu_ps(m, wr[k] + i);
                }
#pragma GCC unroll 4
                for (int r = 0; r < 4; r++)
#pragma GCC unroll 4
                    for (int j = 0; j < 4; j++) acc[4 * r + j] = _mm512_fmadd_ps(xv[r], wv[j], acc[4 * r + j]);
            }
            float dots[16] __attribute__((aligned(64)));
            _mm512_store_ps(dots, sum16(acc)); /* dots[4r + j]: sample s + r, unit u + j */
            const __mmask8 mu = (__mmask8)((1u << nu) - 1);
            const __m128 bias = b ? _mm_maskz_loadu_ps(mu, b + u) : _mm_setzero_ps();
            for (int r = 0; r < ns; r++)
                _mm_mask_storeu_ps(y + (size_t)(s + r) * U + u, mu, _mm_add_ps(bias, _mm_load_ps(dots + 4 * r)));
        }
    }
}
#endif

static void dense_forward(lp_node *n)
{
    const dense_state *st = lp_node_state(n);
    int N = lp_node_batch(n), U = st->units, I = st->inputs;
    const float *x = lp_node_in(n, 0);   /* [N, I] */
    const float *w = lp_node_param(n, 0); /* [U, I] */
    const float *b = st->bias ? lp_node_param(n, 1) : NULL;
    float *y = lp_node_out(n);           /* [N, U] */
    const int own = DENSE_AVX512 && N <= DENSE_ROWS_MAX;
    if (b && !own)
        for (int i = 0; i < N; i++) memcpy(y + (size_t)i * U, b, (size_t)U * sizeof(float));
    const int T = threads_for(n, N, U, I);
#pragma omp parallel num_threads(T) if (T > 1)
    {
        int nt;
        long r0, r1;
        lp_thread_share(N, &nt, &r0, &r1);
#if DENSE_AVX512
        if (own) dense_forward_rows(x, w, b, y, U, I, r0, r1);
        else
#endif
        if (r1 > r0)
            lp_sgemm(false, true, r1 - r0, U, I, 1.0f, x + (size_t)r0 * I, I, w, I, b ? 1.0f : 0.0f,
                     y + (size_t)r0 * U, U);
    }
}

#if DENSE_AVX512
/* dW[u][i] += sum_n dY[n][u] X[n][i] for units [u0, u1), a slice of samples: blocks
 * of 4 units x 64 inputs in 16 accumulators, samples innermost. */
static void dense_dw_rows(const float *dy, const float *x, float *dw, int N, int U, int I, int u0, int u1)
{
    for (int u = u0; u < u1; u += 4) {
        const int nu = u1 - u < 4 ? u1 - u : 4;
        for (int i = 0; i < I; i += 64) {
            __mmask16 m[4];
            __m512 acc[4][4];
#pragma GCC unroll 4
            for (int v = 0; v < 4; v++) {
                m[v] = first_lanes(I - i - 16 * v);
#pragma GCC unroll 4
                for (int j = 0; j < 4; j++) acc[j][v] = _mm512_setzero_ps();
            }
            for (int s = 0; s < N; s++) {
                const float *xr = x + (size_t)s * I + i, *d = dy + (size_t)s * U + u;
                __m512 xv[4];
#pragma GCC unroll 4
                for (int v = 0; v < 4; v++) xv[v] = _mm512_maskz_loadu_ps(m[v], xr + 16 * v); /* masked lanes never fault */
#pragma GCC unroll 4
                for (int j = 0; j < 4; j++) {
                    const __m512 dj = _mm512_set1_ps(j < nu ? d[j] : 0.0f);
#pragma GCC unroll 4
                    for (int v = 0; v < 4; v++) acc[j][v] = _mm512_fmadd_ps(dj, xv[v], acc[j][v]);
                }
            }
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++)
                if (j < nu)
#pragma GCC unroll 4
                    for (int v = 0; v < 4; v++) {
                        float *o = dw + (size_t)(u + j) * I + i + 16 * v;
                        _mm512_mask_storeu_ps(o, m[v], _mm512_add_ps(_mm512_maskz_loadu_ps(m[v], o), acc[j][v]));
                    }
        }
    }
}
#endif

static void dense_backward(lp_node *n)
{
    const dense_state *st = lp_node_state(n);
    int N = lp_node_batch(n), U = st->units, I = st->inputs;
    const float *x = lp_node_in(n, 0);
    const float *w = lp_node_param(n, 0);
    const float *dy = lp_node_out_grad(n); /* [N, U] */
    float *dw = lp_node_param_grad(n, 0);
    float *dx = lp_node_in_grad(n, 0);
    const float beta = lp_node_in_grad_accumulate(n, 0) ? 1.0f : 0.0f;
    if (st->bias) {
        float *db = lp_node_param_grad(n, 1);
        for (int i = 0; i < N; i++)
            for (int u = 0; u < U; u++) db[u] += dy[(size_t)i * U + u];
    }
    const int T = threads_for(n, N, U, I);
#pragma omp parallel num_threads(T) if (T > 1)
    {
        int nt;
        long u0, u1, r0, r1;
        lp_thread_share(U, &nt, &u0, &u1);
        lp_thread_share(N, &nt, &r0, &r1);
        /* dW[U,I] += dY^T[U,N] X[N,I], units u0..u1 */
#if DENSE_AVX512
        if (u1 > u0 && N <= DENSE_ROWS_MAX) dense_dw_rows(dy, x, dw, N, U, I, u0, u1);
        else
#endif
        if (u1 > u0)
            lp_sgemm(true, false, u1 - u0, I, N, 1.0f, dy + u0, U, x, I, 1.0f, dw + (size_t)u0 * I, I);
        /* dX[N,I] = dY[N,U] W[U,I]; beta 0 overwrites what the graph left there. */
        if (dx && r1 > r0)
            lp_sgemm(false, false, r1 - r0, I, U, 1.0f, dy + (size_t)r0 * U, U, w, I, beta,
                     dx + (size_t)r0 * I, I);
    }
}

static const lp_attr_doc dense_attrs[] = {
    {"units", "int", NULL, "output features"},
    {"bias", "bool", "true", "add a learned bias (true/false)"},
    {NULL, NULL, NULL, NULL},
};

const lp_op lp_op_dense = {
    LP_OP_HEADER,
    .name = "dense",
    .summary = "fully connected: [I] -> [units], weight [units, I]",
    .min_inputs = 1,
    .max_inputs = 1,
    .attrs = dense_attrs,
    .setup = dense_setup,
    .forward = dense_forward,
    .backward = dense_backward,
};
