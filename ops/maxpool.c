/* maxpool.c - max over size x size windows, per channel.
 *
 * Input [C, H, W] -> [C, OH, OW], OH = (H - kh) / sh + 1 (floor: rows and columns
 * that do not fill a window are dropped). Stride defaults to the size.
 * Forward stores, per output element, the flat index (within its H x W plane) of
 * the window's maximum in scratch (int32); backward routes each gradient there
 * only. Ties go to the first maximum in row-major window order, and a NaN input
 * wins its window (so it propagates instead of hiding).
 */
#include "loupe_op.h"

#include <stdint.h>
#include <string.h>

typedef struct maxpool_state {
    int kh, kw, sh, sw;
} maxpool_state;

static lp_status maxpool_setup(lp_node *n)
{
    int size[2], stride[2];
    lp_status s = lp_attr_pair_required(n, "size", size);
    if (s) return s;
    if (size[0] < 1 || size[1] < 1)
        return lp_node_fail_attr(n, "size", "size must be at least 1, got %dx%d", size[0], size[1]);
    if ((s = lp_attr_pair(n, "stride", 0, stride))) return s;
    if (!lp_attr_present(n, "stride")) { stride[0] = size[0]; stride[1] = size[1]; }
    if (stride[0] < 1 || stride[1] < 1)
        return lp_node_fail_attr(n, "stride", "stride must be at least 1, got %dx%d", stride[0],
                                 stride[1]);
    lp_shape in = lp_node_in_shape(n, 0);
    if (in.ndim != 3)
        return lp_node_fail(n, "expects a [C, H, W] input, got %d dimension%s", in.ndim,
                            in.ndim == 1 ? "" : "s");
    if (size[0] > in.dims[1] || size[1] > in.dims[2])
        return lp_node_fail_attr(n, "size", "window %dx%d is larger than the %dx%d input", size[0],
                                 size[1], in.dims[1], in.dims[2]);
    maxpool_state *st = lp_node_alloc_state(n, sizeof *st);
    if (!st) return LP_ERR_NOMEM;
    *st = (maxpool_state){size[0], size[1], stride[0], stride[1]};
    lp_shape out = {3, {in.dims[0], (in.dims[1] - size[0]) / stride[0] + 1,
                        (in.dims[2] - size[1]) / stride[1] + 1}};
    lp_node_set_scratch(n, (size_t)out.dims[0] * out.dims[1] * out.dims[2] * sizeof(int32_t), 0);
    return lp_node_set_out_shape(n, out);
}

/* v replaces the running max m: larger, or a NaN over a number (first max wins ties). */
static inline int takes_over(float v, float m) { return v > m || (v != v && m == m); }

/* The common 2x2 window, stride 2, unrolled: same result as the general loop. */
static void pool2x2(const float *xp, int W, int OH, int OW, float *yp, int32_t *ap)
{
    for (int oy = 0; oy < OH; oy++) {
        const float *r0 = xp + (long)2 * oy * W, *r1 = r0 + W;
        for (int ox = 0; ox < OW; ox++) {
            int i = 2 * ox;
            float m = r0[i];
            int best = i;
            if (takes_over(r0[i + 1], m)) { m = r0[i + 1]; best = i + 1; }
            if (takes_over(r1[i], m)) { m = r1[i]; best = W + i; }
            if (takes_over(r1[i + 1], m)) { m = r1[i + 1]; best = W + i + 1; }
            yp[oy * OW + ox] = m;
            ap[oy * OW + ox] = 2 * oy * W + best;
        }
    }
}

static void maxpool_forward(lp_node *n)
{
    const maxpool_state *st = lp_node_state(n);
    lp_shape in = lp_node_in_shape(n, 0), out = lp_node_out_shape(n);
    const int H = in.dims[1], W = in.dims[2], OH = out.dims[1], OW = out.dims[2];
    const int kh = st->kh, kw = st->kw, sh = st->sh, sw = st->sw;
    const long planes = (long)lp_node_batch(n) * in.dims[0];
    const float *x = lp_node_in(n, 0); /* [N, C, H, W] */
    float *y = lp_node_out(n);         /* [N, C, OH, OW] */
    int32_t *arg = lp_node_scratch(n); /* [N, C, OH, OW]: index into the H x W plane */
#pragma omp parallel for schedule(static) if (planes * OH * OW >= 16384)
    for (long p = 0; p < planes; p++) {
        const float *xp = x + p * H * W;
        float *yp = y + p * OH * OW;
        int32_t *ap = arg + p * OH * OW;
        if (kh == 2 && kw == 2 && sh == 2 && sw == 2) {
            pool2x2(xp, W, OH, OW, yp, ap);
            continue;
        }
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                int best = oy * sh * W + ox * sw;
                float m = xp[best];
                for (int ky = 0; ky < kh; ky++) {
                    const int row = (oy * sh + ky) * W + ox * sw;
                    for (int kx = 0; kx < kw; kx++) {
                        float v = xp[row + kx];
                        if (takes_over(v, m)) { m = v; best = row + kx; }
                    }
                }
                yp[oy * OW + ox] = m;
                ap[oy * OW + ox] = best;
            }
    }
}

static void maxpool_backward(lp_node *n)
{
    float *dx = lp_node_in_grad(n, 0);
    if (!dx) return;
    lp_shape in = lp_node_in_shape(n, 0), out = lp_node_out_shape(n);
    const long HW = (long)in.dims[1] * in.dims[2], OHW = (long)out.dims[1] * out.dims[2];
    const long planes = (long)lp_node_batch(n) * in.dims[0];
    const int acc = lp_node_in_grad_accumulate(n, 0);
    const float *dy = lp_node_out_grad(n);
    const int32_t *arg = lp_node_scratch(n);
#pragma omp parallel for schedule(static) if (planes * OHW >= 16384)
    for (long p = 0; p < planes; p++) {
        float *dxp = dx + p * HW;
        /* Overlapping windows (stride < size) may share a maximum: always add, after
         * clearing the plane when the graph asked us to write. */
        if (!acc) memset(dxp, 0, (size_t)HW * sizeof(float));
        const float *dyp = dy + p * OHW;
        const int32_t *ap = arg + p * OHW;
        for (long o = 0; o < OHW; o++) dxp[ap[o]] += dyp[o];
    }
}

static const lp_attr_doc maxpool_attrs[] = {
    {"size", "int or [h, w]", NULL, "window size"},
    {"stride", "int or [h, w]", "size", "step between windows"},
    {NULL, NULL, NULL, NULL},
};

const lp_op lp_op_maxpool = {
    LP_OP_HEADER,
    .name = "maxpool",
    .summary = "max over windows per channel, floor output size: [C, H, W] -> [C, OH, OW]",
    .min_inputs = 1,
    .max_inputs = 1,
    .attrs = maxpool_attrs,
    .setup = maxpool_setup,
    .forward = maxpool_forward,
    .backward = maxpool_backward,
};
