/* dropout.c - example plugin: inverted dropout, registered as `plugin_dropout`
 * (loupe has a built-in `dropout`, ops/dropout.c, whose masks do not depend on
 * how a batch is sliced; this one stays as the smallest example of a seeded op).
 *
 * Training: each element is kept with probability 1 - rate and scaled by
 * 1 / (1 - rate); the mask comes from lp_node_step_seed(), so a seed fixes it.
 * Evaluation: the identity.
 */
#include "loupe_op.h"

#include <stdint.h>

typedef struct dropout_state {
    float rate;
} dropout_state;

static size_t per_sample(const lp_node *n)
{
    lp_shape s = lp_node_out_shape(n);
    size_t c = 1;
    for (int i = 0; i < s.ndim; i++) c *= (size_t)s.dims[i];
    return c;
}

static lp_status dropout_setup(lp_node *n)
{
    float rate;
    lp_status s = lp_attr_float(n, "rate", 0.5f, &rate);
    if (s) return s;
    if (!(rate >= 0.0f && rate < 1.0f))
        return lp_node_fail_attr(n, "rate", "rate must be in [0, 1), got %g", rate);
    dropout_state *st = lp_node_alloc_state(n, sizeof *st);
    if (!st) return LP_ERR_NOMEM;
    st->rate = rate;
    s = lp_node_set_out_shape(n, lp_node_in_shape(n, 0));
    if (s) return s;
    lp_node_set_scratch(n, per_sample(n) * sizeof(float), 0); /* the scaled mask */
    return LP_OK;
}

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static void dropout_forward(lp_node *n)
{
    const dropout_state *st = lp_node_state(n);
    const float *x = lp_node_in(n, 0);
    float *y = lp_node_out(n);
    float *mask = lp_node_scratch(n);
    size_t count = per_sample(n) * (size_t)lp_node_batch(n);
    if (!lp_node_training(n) || st->rate == 0.0f) {
        for (size_t i = 0; i < count; i++) { y[i] = x[i]; mask[i] = 1.0f; }
        return;
    }
    uint64_t seed = lp_node_step_seed(n);
    const float keep_scale = 1.0f / (1.0f - st->rate);
    for (size_t i = 0; i < count; i++) {
        double u = (double)(splitmix(&seed) >> 11) * 0x1.0p-53;
        mask[i] = u >= st->rate ? keep_scale : 0.0f;
        y[i] = x[i] * mask[i];
    }
}

static void dropout_backward(lp_node *n)
{
    float *dx = lp_node_in_grad(n, 0);
    if (!dx) return;
    const float *dy = lp_node_out_grad(n);
    const float *mask = lp_node_scratch(n);
    int acc = lp_node_in_grad_accumulate(n, 0);
    size_t count = per_sample(n) * (size_t)lp_node_batch(n);
    for (size_t i = 0; i < count; i++) lp_grad_put(&dx[i], acc, dy[i] * mask[i]);
}

static const lp_attr_doc dropout_attrs[] = {
    {"rate", "float", "0.5", "probability of zeroing an element while training, in [0, 1)"},
    {NULL, NULL, NULL, NULL},
};

static const lp_op dropout_op = {
    LP_OP_HEADER,
    .name = "plugin_dropout",
    .summary = "inverted dropout, seeded; identity in evaluation (example plugin)",
    .min_inputs = 1,
    .max_inputs = 1,
    .attrs = dropout_attrs,
    .setup = dropout_setup,
    .forward = dropout_forward,
    .backward = dropout_backward,
};

lp_status loupe_plugin_init(lp_plugin_host *host)
{
    return host->register_op(host, &dropout_op);
}
