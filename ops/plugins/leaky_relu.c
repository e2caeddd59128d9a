/* leaky_relu.c - example plugin: y = x for x > 0, alpha * x otherwise.
 *
 * Build:  cc -std=c11 -O2 -fPIC -shared -I<loupe>/ops -I<loupe>/core -o leaky_relu.so leaky_relu.c
 * Use:    plugins: [leaky_relu.so]   then   - {op: leaky_relu, alpha: 0.1}
 */
#include "loupe_op.h"

#include <stddef.h>

typedef struct leaky_state {
    float alpha;
} leaky_state;

static lp_status leaky_setup(lp_node *n)
{
    float alpha;
    lp_status s = lp_attr_float(n, "alpha", 0.01f, &alpha);
    if (s) return s;
    if (!(alpha >= 0.0f && alpha < 1.0f))
        return lp_node_fail_attr(n, "alpha", "alpha must be in [0, 1), got %g", alpha);
    leaky_state *st = lp_node_alloc_state(n, sizeof *st);
    if (!st) return LP_ERR_NOMEM;
    st->alpha = alpha;
    return lp_node_set_out_shape(n, lp_node_in_shape(n, 0));
}

/* Elements in the whole batch of the output. */
static size_t count_of(const lp_node *n)
{
    lp_shape s = lp_node_out_shape(n);
    size_t c = (size_t)lp_node_batch(n);
    for (int i = 0; i < s.ndim; i++) c *= (size_t)s.dims[i];
    return c;
}

static void leaky_forward(lp_node *n)
{
    const float alpha = ((const leaky_state *)lp_node_state(n))->alpha;
    const float *x = lp_node_in(n, 0);
    float *y = lp_node_out(n);
    size_t c = count_of(n);
    for (size_t i = 0; i < c; i++) y[i] = x[i] > 0 ? x[i] : alpha * x[i];
}

static void leaky_backward(lp_node *n)
{
    const float alpha = ((const leaky_state *)lp_node_state(n))->alpha;
    const float *x = lp_node_in(n, 0);
    const float *dy = lp_node_out_grad(n);
    float *dx = lp_node_in_grad(n, 0);
    if (!dx) return;
    int acc = lp_node_in_grad_accumulate(n, 0);
    size_t c = count_of(n);
    for (size_t i = 0; i < c; i++) lp_grad_put(&dx[i], acc, x[i] > 0 ? dy[i] : alpha * dy[i]);
}

static const lp_attr_doc leaky_attrs[] = {
    {"alpha", "float", "0.01", "slope for negative inputs, in [0, 1)"},
    {NULL, NULL, NULL, NULL},
};

static const lp_op leaky_relu_op = {
    LP_OP_HEADER,
    .name = "leaky_relu",
    .summary = "max(x, alpha * x) elementwise (example plugin)",
    .min_inputs = 1,
    .max_inputs = 1,
    .attrs = leaky_attrs,
    .setup = leaky_setup,
    .forward = leaky_forward,
    .backward = leaky_backward,
};

lp_status loupe_plugin_init(lp_plugin_host *host)
{
    return host->register_op(host, &leaky_relu_op);
}
