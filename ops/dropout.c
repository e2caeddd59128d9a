/* dropout.c - inverted dropout (Srivastava et al. 2014), any shape.
 *
 * Training: element e of the batch is kept with probability 1 - rate and then
 * scaled by 1 / (1 - rate), so evaluation, the identity, needs no rescaling.
 *
 * The mask is a pure function of (run seed, step, node, element): a counter-based
 * hash of the element's index in the whole batch, not a generator's stream. So a
 * run resumed from a checkpoint draws the masks the uninterrupted run drew, and
 * the masks are the same however the batch is cut into slices and lanes (the
 * plugin example ops/plugins/dropout.c streams from a per-slice seed instead).
 * Forward keeps the decision as one bit per element for backward (like relu.c).
 */
#include "loupe_op.h"
#include "shape.h"

#include <stddef.h>
#include <stdint.h>

typedef struct dropout_state {
    float rate;
    uint64_t threshold;   /* drop when the element's 53-bit hash < rate * 2^53 */
} dropout_state;

static size_t per_sample(const lp_node *n) { return (size_t)lp_shape_numel(lp_node_out_shape(n)); }

static lp_status dropout_setup(lp_node *n)
{
    float rate;
    lp_status s = lp_attr_float(n, "rate", 0.5f, &rate);
    if (s) return s;
    if (!(rate >= 0.0f && rate < 1.0f))
        return lp_node_fail_attr(n, "rate",
                                 "rate must be in [0, 1) (the probability of dropping an element; "
                                 "1 would drop everything), got %g",
                                 rate);
    dropout_state *st = lp_node_alloc_state(n, sizeof *st);
    if (!st) return LP_ERR_NOMEM;
    st->rate = rate;
    st->threshold = (uint64_t)((double)rate * 0x1.0p53);
    s = lp_node_set_out_shape(n, lp_node_in_shape(n, 0));
    if (s) return s;
    /* one bit per element: the batch as one flat array of 64-bit words */
    lp_node_set_scratch(n, (per_sample(n) + 63) / 64 * sizeof(uint64_t), sizeof(uint64_t));
    return LP_OK;
}

/* splitmix64's finalizer: a bijection that mixes every input bit into every output
 * bit, so hash(seed + e) over consecutive e is a good counter-based generator. */
static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* 1 when element e (index in the whole batch) is kept this step. */
static inline int kept(uint64_t seed, uint64_t e, uint64_t threshold)
{
    return (mix64(seed + e * 0x9E3779B97F4A7C15ULL) >> 11) >= threshold;
}

static void dropout_forward(lp_node *n)
{
    const dropout_state *st = lp_node_state(n);
    const float *x = lp_node_in(n, 0);
    float *y = lp_node_out(n);
    uint64_t *bits = lp_node_scratch(n);
    const size_t count = per_sample(n) * (size_t)lp_node_batch(n);
    if (!lp_node_training(n) || st->rate == 0.0f) {
        for (size_t i = 0; i < count; i++) y[i] = x[i];
        for (size_t w = 0; w < (count + 63) / 64; w++) bits[w] = ~0ULL;
        return;
    }
    const uint64_t seed = lp_node_batch_seed(n);
    const uint64_t first = (uint64_t)lp_node_sample_offset(n) * per_sample(n);
    const float scale = 1.0f / (1.0f - st->rate);
    const uint64_t threshold = st->threshold;
    for (size_t w = 0; w < (count + 63) / 64; w++) {
        size_t i0 = 64 * w, i1 = i0 + 64 < count ? i0 + 64 : count;
        /* the hashes a vector at a time (64-bit multiplies: AVX-512DQ), then the word */
        const int len = (int)(i1 - i0);
        const uint64_t e0 = first + i0;
        const float *xw = x + i0;
        float *yw = y + i0;
        uint64_t keep[64];
#pragma omp simd
        for (int j = 0; j < len; j++) {
            keep[j] = (uint64_t)kept(seed, e0 + (uint64_t)j, threshold);
            yw[j] = keep[j] ? xw[j] * scale : 0.0f;
        }
        uint64_t word = 0;
        for (int j = 0; j < len; j++) word |= keep[j] << j;
        bits[w] = word;
    }
}

static void dropout_backward(lp_node *n)
{
    float *dx = lp_node_in_grad(n, 0);
    if (!dx) return;
    const dropout_state *st = lp_node_state(n);
    const float *dy = lp_node_out_grad(n);
    const uint64_t *bits = lp_node_scratch(n);
    const int acc = lp_node_in_grad_accumulate(n, 0);
    const size_t count = per_sample(n) * (size_t)lp_node_batch(n);
    const float scale = 1.0f / (1.0f - st->rate);
    for (size_t w = 0; w < (count + 63) / 64; w++) {
        const size_t i0 = 64 * w, i1 = i0 + 64 < count ? i0 + 64 : count;
        const uint64_t word = bits[w];
#pragma omp simd
        for (size_t i = i0; i < i1; i++) {
            float g = (word >> (i - i0)) & 1 ? dy[i] * scale : 0.0f;
            lp_grad_put(&dx[i], acc, g);
        }
    }
}

static const lp_attr_doc dropout_attrs[] = {
    {"rate", "float", "0.5", "probability of zeroing an element while training, in [0, 1)"},
    {NULL, NULL, NULL, NULL},
};

const lp_op lp_op_dropout = {
    LP_OP_HEADER,
    .name = "dropout",
    .summary = "inverted dropout; mask from (seed, step, element), identity in evaluation",
    .min_inputs = 1,
    .max_inputs = 1,
    .attrs = dropout_attrs,
    .setup = dropout_setup,
    .forward = dropout_forward,
    .backward = dropout_backward,
};
