/* add.c - y = a + b elementwise, same shapes: lets a graph branch and rejoin.
 *
 * add(x, x) is legal: both slots point at the same gradient buffer, and the graph
 * marks slot 0 "write" and slot 1 "add", so slots are processed in increasing order.
 */
#include "loupe_op.h"
#include "shape.h"

#include <string.h>

static lp_status add_setup(lp_node *n)
{
    lp_shape a = lp_node_in_shape(n, 0), b = lp_node_in_shape(n, 1);
    if (!lp_shape_equal(a, b)) {
        char sa[64], sb[64];
        return lp_node_fail(n, "inputs must have the same shape, got %s and %s",
                            lp_shape_str(a, sa, sizeof sa), lp_shape_str(b, sb, sizeof sb));
    }
    return lp_node_set_out_shape(n, a);
}

static size_t count_of(const lp_node *n)
{
    lp_shape s = lp_node_out_shape(n);
    size_t c = (size_t)lp_node_batch(n);
    for (int i = 0; i < s.ndim; i++) c *= (size_t)s.dims[i];
    return c;
}

static void add_forward(lp_node *n)
{
    const float *a = lp_node_in(n, 0), *b = lp_node_in(n, 1);
    float *y = lp_node_out(n);
    size_t c = count_of(n);
    for (size_t i = 0; i < c; i++) y[i] = a[i] + b[i];
}

static void add_backward(lp_node *n)
{
    const float *dy = lp_node_out_grad(n);
    size_t c = count_of(n);
    for (int k = 0; k < 2; k++) { /* increasing slot order: see the file comment */
        float *dx = lp_node_in_grad(n, k);
        if (!dx) continue;
        if (lp_node_in_grad_accumulate(n, k))
            for (size_t i = 0; i < c; i++) dx[i] += dy[i];
        else
            memcpy(dx, dy, c * sizeof(float));
    }
}

const lp_op lp_op_add = {
    LP_OP_HEADER,
    .name = "add",
    .summary = "a + b elementwise (two inputs of the same shape)",
    .min_inputs = 2,
    .max_inputs = 2,
    .attrs = NULL,
    .setup = add_setup,
    .forward = add_forward,
    .backward = add_backward,
};
