/* flatten.c - [C, H, W] (any shape) -> [C*H*W], the bridge from images to dense.
 *
 * Row-major NCHW is already flat per sample, so forward and backward are copies.
 */
#include "loupe_op.h"

#include <string.h>

static lp_status flatten_setup(lp_node *n)
{
    lp_shape in = lp_node_in_shape(n, 0);
    long long c = 1;
    for (int i = 0; i < in.ndim; i++) c *= in.dims[i];
    /* The input shape was checked for overflow when it was set: c fits an int. */
    return lp_node_set_out_shape(n, (lp_shape){1, {(int)c}});
}

static size_t count_of(const lp_node *n)
{
    return (size_t)lp_node_batch(n) * (size_t)lp_node_out_shape(n).dims[0];
}

static void flatten_forward(lp_node *n)
{
    memcpy(lp_node_out(n), lp_node_in(n, 0), count_of(n) * sizeof(float));
}

static void flatten_backward(lp_node *n)
{
    float *dx = lp_node_in_grad(n, 0);
    if (!dx) return;
    const float *dy = lp_node_out_grad(n);
    size_t c = count_of(n);
    if (lp_node_in_grad_accumulate(n, 0))
        for (size_t i = 0; i < c; i++) dx[i] += dy[i];
    else
        memcpy(dx, dy, c * sizeof(float));
}

const lp_op lp_op_flatten = {
    LP_OP_HEADER,
    .name = "flatten",
    .summary = "[C, H, W] -> [C*H*W], the bridge to dense layers",
    .min_inputs = 1,
    .max_inputs = 1,
    .attrs = NULL,
    .setup = flatten_setup,
    .forward = flatten_forward,
    .backward = flatten_backward,
};
