/* relu.c - y = max(x, 0) elementwise; the smallest built-in op, a model for new ones.
 *
 * Backward passes the gradient where the input was positive (at exactly 0 the
 * gradient is 0, the usual subgradient choice).
 */
#include "loupe_op.h"

#include <stddef.h>

/* Below this many elements a parallel loop costs more than it saves: ReLU is one
 * compare per element, far cheaper than waking a thread team on a busy machine. */
#define RELU_PARALLEL_MIN (1L << 20)

static lp_status relu_setup(lp_node *n)
{
    return lp_node_set_out_shape(n, lp_node_in_shape(n, 0));
}

/* Elements of the output over the whole batch. */
static long count_of(const lp_node *n)
{
    lp_shape s = lp_node_out_shape(n);
    long c = lp_node_batch(n);
    for (int i = 0; i < s.ndim; i++) c *= s.dims[i];
    return c;
}

static void relu_forward(lp_node *n)
{
    const float *x = lp_node_in(n, 0); /* [N, ...] */
    float *y = lp_node_out(n);         /* [N, ...] */
    long c = count_of(n);
#pragma omp parallel for schedule(static) if (c >= RELU_PARALLEL_MIN)
    for (long i = 0; i < c; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

static void relu_backward(lp_node *n)
{
    float *dx = lp_node_in_grad(n, 0);
    if (!dx) return;
    const float *x = lp_node_in(n, 0);
    const float *dy = lp_node_out_grad(n);
    long c = count_of(n);
    if (lp_node_in_grad_accumulate(n, 0)) {
#pragma omp parallel for schedule(static) if (c >= RELU_PARALLEL_MIN)
        for (long i = 0; i < c; i++) dx[i] += x[i] > 0.0f ? dy[i] : 0.0f;
    } else {
#pragma omp parallel for schedule(static) if (c >= RELU_PARALLEL_MIN)
        for (long i = 0; i < c; i++) dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
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
