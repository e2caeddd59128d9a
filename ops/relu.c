/* relu.c - y = max(x, 0) elementwise; the smallest built-in op, a model for new ones.
 *
 * Backward passes the gradient where the input was positive (at exactly 0 the
 * gradient is 0, the usual subgradient choice; NaN counts as not positive).
 * Forward also keeps that decision as one bit per element in scratch, so
 * backward reads 1/32 of the input instead of all of it: on MNIST's first conv
 * layer the activations of a batch outgrow L2, and every pass over them counts.
 */
#include "loupe_op.h"

#include <stddef.h>
#include <stdint.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__AVX512F__)
#include <immintrin.h>
#define RELU_AVX512 1
#else
#define RELU_AVX512 0
#endif

/* Below this many elements a parallel loop costs more than it saves: ReLU is one
 * compare per element, far cheaper than waking a thread team on a busy machine. */
#define RELU_PARALLEL_MIN (1L << 20)

static lp_status relu_setup(lp_node *n)
{
    lp_shape s = lp_node_in_shape(n, 0);
    long long per = 1;
    for (int i = 0; i < s.ndim; i++) per *= s.dims[i];
    /* one bit per element, in 16-bit words: the batch as one flat array */
    lp_node_set_scratch(n, (size_t)(per + 15) / 16 * sizeof(uint16_t), sizeof(uint16_t));
    return lp_node_set_out_shape(n, s);
}

/* Elements of the output over the whole batch. */
static long count_of(const lp_node *n)
{
    lp_shape s = lp_node_out_shape(n);
    long c = lp_node_batch(n);
    for (int i = 0; i < s.ndim; i++) c *= s.dims[i];
    return c;
}

/* Elements [16*w0, 16*w1) of the batch, as 16-element words w. */
static void relu_words_forward(const float *x, float *y, uint16_t *bits, long w0, long w1, long c)
{
    for (long w = w0; w < w1; w++) {
        long i = 16 * w, end = i + 16 < c ? i + 16 : c;
#if RELU_AVX512
        __mmask16 m = (__mmask16)(end - i == 16 ? 0xFFFF : (1u << (end - i)) - 1);
        __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        __mmask16 pos = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GT_OQ);
        _mm512_mask_storeu_ps(y + i, m, _mm512_maskz_mov_ps(pos, v));
        bits[w] = (uint16_t)(pos & m);
#else
        uint16_t b = 0;
        for (long k = i; k < end; k++) {
            int pos = x[k] > 0.0f;
            y[k] = pos ? x[k] : 0.0f;
            b |= (uint16_t)(pos << (k - i));
        }
        bits[w] = b;
#endif
    }
}

static void relu_words_backward(const float *dy, float *dx, const uint16_t *bits, int acc, long w0,
                                long w1, long c)
{
    for (long w = w0; w < w1; w++) {
        long i = 16 * w, end = i + 16 < c ? i + 16 : c;
#if RELU_AVX512
        __mmask16 m = (__mmask16)(end - i == 16 ? 0xFFFF : (1u << (end - i)) - 1);
        __m512 g = _mm512_maskz_loadu_ps(bits[w] & m, dy + i);
        if (acc) g = _mm512_add_ps(g, _mm512_maskz_loadu_ps(m, dx + i));
        _mm512_mask_storeu_ps(dx + i, m, g);
#else
        for (long k = i; k < end; k++) lp_grad_put(&dx[k], acc, (bits[w] >> (k - i)) & 1 ? dy[k] : 0.0f);
#endif
    }
}

static void relu_forward(lp_node *n)
{
    const float *x = lp_node_in(n, 0); /* [N, ...] */
    float *y = lp_node_out(n);         /* [N, ...] */
    uint16_t *bits = lp_node_scratch(n);
    long c = count_of(n), words = (c + 15) / 16;
#pragma omp parallel num_threads(lp_node_threads(n)) if (lp_node_threads(n) > 1 && c >= RELU_PARALLEL_MIN)
    {
        int t = 0, nt = 1;
#ifdef _OPENMP
        t = omp_get_thread_num();
        nt = omp_get_num_threads();
#endif
        relu_words_forward(x, y, bits, words * t / nt, words * (t + 1) / nt, c);
    }
}

static void relu_backward(lp_node *n)
{
    float *dx = lp_node_in_grad(n, 0);
    if (!dx) return;
    const float *dy = lp_node_out_grad(n);
    const uint16_t *bits = lp_node_scratch(n);
    int acc = lp_node_in_grad_accumulate(n, 0);
    long c = count_of(n), words = (c + 15) / 16;
#pragma omp parallel num_threads(lp_node_threads(n)) if (lp_node_threads(n) > 1 && c >= RELU_PARALLEL_MIN)
    {
        int t = 0, nt = 1;
#ifdef _OPENMP
        t = omp_get_thread_num();
        nt = omp_get_num_threads();
#endif
        relu_words_backward(dy, dx, bits, acc, words * t / nt, words * (t + 1) / nt, c);
    }
}

const lp_op lp_op_relu = {
    LP_OP_HEADER,
    .name = "relu",
    .summary = "max(x, 0) elementwise, any shape",
    .min_inputs = 1,
    .max_inputs = 1,
    .attrs = NULL,
    .setup = relu_setup,
    .forward = relu_forward,
    .backward = relu_backward,
};
