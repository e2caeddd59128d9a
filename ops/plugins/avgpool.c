/* avgpool.c - example plugin: average pooling over size x size windows.
 *
 * Input [C, H, W] -> [C, OH, OW], OH = (H - kh) / stride + 1 (floor).
 * Backward spreads each output gradient evenly over its window.
 */
#include "loupe_op.h"

typedef struct avgpool_state {
    int kh, kw, sh, sw;
} avgpool_state;

static lp_status avgpool_setup(lp_node *n)
{
    int size[2], stride[2];
    lp_status s = lp_attr_pair_required(n, "size", size);
    if (!s) s = lp_attr_pair(n, "stride", 0, stride);
    if (s) return s;
    if (stride[0] == 0 && stride[1] == 0) { stride[0] = size[0]; stride[1] = size[1]; }
    if (size[0] < 1 || size[1] < 1) return lp_node_fail_attr(n, "size", "size must be at least 1");
    if (stride[0] < 1 || stride[1] < 1) return lp_node_fail_attr(n, "stride", "stride must be at least 1");
    lp_shape in = lp_node_in_shape(n, 0);
    if (in.ndim != 3) return lp_node_fail(n, "expects a [C, H, W] input, got %d dimensions", in.ndim);
    if (size[0] > in.dims[1] || size[1] > in.dims[2])
        return lp_node_fail_attr(n, "size", "window %dx%d is larger than the %dx%d input", size[0],
                                 size[1], in.dims[1], in.dims[2]);
    avgpool_state *st = lp_node_alloc_state(n, sizeof *st);
    if (!st) return LP_ERR_NOMEM;
    *st = (avgpool_state){size[0], size[1], stride[0], stride[1]};
    lp_shape out = {3, {in.dims[0], (in.dims[1] - size[0]) / stride[0] + 1,
                        (in.dims[2] - size[1]) / stride[1] + 1}};
    return lp_node_set_out_shape(n, out);
}

static void avgpool_forward(lp_node *n)
{
    const avgpool_state *st = lp_node_state(n);
    lp_shape in = lp_node_in_shape(n, 0), out = lp_node_out_shape(n);
    int planes = lp_node_batch(n) * in.dims[0];
    int H = in.dims[1], W = in.dims[2], OH = out.dims[1], OW = out.dims[2];
    const float scale = 1.0f / (float)(st->kh * st->kw);
    const float *x = lp_node_in(n, 0);
    float *y = lp_node_out(n);
    for (int p = 0; p < planes; p++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                float sum = 0;
                for (int ky = 0; ky < st->kh; ky++)
                    for (int kx = 0; kx < st->kw; kx++)
                        sum += x[((long)p * H + oy * st->sh + ky) * W + ox * st->sw + kx];
                y[((long)p * OH + oy) * OW + ox] = sum * scale;
            }
}

static void avgpool_backward(lp_node *n)
{
    float *dx = lp_node_in_grad(n, 0);
    if (!dx) return;
    const avgpool_state *st = lp_node_state(n);
    lp_shape in = lp_node_in_shape(n, 0), out = lp_node_out_shape(n);
    int planes = lp_node_batch(n) * in.dims[0];
    int H = in.dims[1], W = in.dims[2], OH = out.dims[1], OW = out.dims[2];
    const float scale = 1.0f / (float)(st->kh * st->kw);
    const float *dy = lp_node_out_grad(n);
    /* Windows may overlap (stride < size), so build the gradient by adding:
     * zero it first unless the graph asked us to add to what is there. */
    if (!lp_node_in_grad_accumulate(n, 0))
        for (long i = 0; i < (long)planes * H * W; i++) dx[i] = 0.0f;
    for (int p = 0; p < planes; p++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                float g = dy[((long)p * OH + oy) * OW + ox] * scale;
                for (int ky = 0; ky < st->kh; ky++)
                    for (int kx = 0; kx < st->kw; kx++)
                        dx[((long)p * H + oy * st->sh + ky) * W + ox * st->sw + kx] += g;
            }
}

static const lp_attr_doc avgpool_attrs[] = {
    {"size", "int or [h, w]", NULL, "window size"},
    {"stride", "int or [h, w]", "size", "step between windows"},
    {NULL, NULL, NULL, NULL},
};

static const lp_op avgpool_op = {
    LP_OP_HEADER,
    .name = "avgpool",
    .summary = "average pooling, floor output size (example plugin)",
    .min_inputs = 1,
    .max_inputs = 1,
    .attrs = avgpool_attrs,
    .setup = avgpool_setup,
    .forward = avgpool_forward,
    .backward = avgpool_backward,
};

lp_status loupe_plugin_init(lp_plugin_host *host)
{
    return host->register_op(host, &avgpool_op);
}
