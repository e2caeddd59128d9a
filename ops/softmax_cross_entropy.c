/* softmax_cross_entropy.c - fused softmax + negative log-likelihood.
 *
 * Input: logits [K] per sample; labels from the batch (lp_node_labels). Output:
 * the per-sample loss [1]; the graph averages it (and seeds dout = 1/N, so the
 * gradient is that of the batch mean). Fused because the gradient of the pair is
 * simply p - onehot, and log-sum-exp with the max subtracted stays finite for any
 * finite logits (exp never sees a positive argument).
 * Scratch: the probabilities p [K] per sample, from forward to backward.
 */
#include "loupe_op.h"
#include "shape.h"

#include <assert.h>
#include <math.h>

static lp_status sce_setup(lp_node *n)
{
    lp_shape in = lp_node_in_shape(n, 0);
    char buf[64];
    if (in.ndim != 1)
        return lp_node_fail(n, "expects flat logits [classes], got %s: add a `flatten` and a "
                               "`dense` layer before the loss",
                            lp_shape_str(in, buf, sizeof buf));
    if (in.dims[0] < 2)
        return lp_node_fail(n, "needs at least 2 classes, got %d logits", in.dims[0]);
    lp_node_set_scratch(n, (size_t)in.dims[0] * sizeof(float), 0);
    return lp_node_set_out_shape(n, (lp_shape){1, {1}});
}

static void sce_forward(lp_node *n)
{
    int N = lp_node_batch(n), K = lp_node_in_shape(n, 0).dims[0];
    const float *z = lp_node_in(n, 0);     /* [N, K] */
    const int32_t *labels = lp_node_labels(n);
    float *loss = lp_node_out(n);          /* [N, 1] */
    float *p = lp_node_scratch(n);         /* [N, K] */
    assert(labels && "softmax_cross_entropy needs labels: the graph must pass them");
    for (int i = 0; i < N; i++) {
        const float *zi = z + (size_t)i * K;
        float *pi = p + (size_t)i * K;
        int y = labels[i];
        assert(y >= 0 && y < K && "label outside [0, classes)");
        float m = zi[0];
        for (int k = 1; k < K; k++) m = zi[k] > m ? zi[k] : m;
        float sum = 0.0f;
        for (int k = 0; k < K; k++) sum += pi[k] = expf(zi[k] - m);
        float inv = 1.0f / sum;
        for (int k = 0; k < K; k++) pi[k] *= inv;
        /* -log softmax_y = log(sum) - (z_y - m): no log(0) even when p_y underflows. */
        loss[i] = logf(sum) - (zi[y] - m);
    }
}

static void sce_backward(lp_node *n)
{
    float *dz = lp_node_in_grad(n, 0);
    if (!dz) return;
    int N = lp_node_batch(n), K = lp_node_in_shape(n, 0).dims[0];
    int acc = lp_node_in_grad_accumulate(n, 0);
    const int32_t *labels = lp_node_labels(n);
    const float *p = lp_node_scratch(n);
    const float *dl = lp_node_out_grad(n); /* [N, 1] */
    for (int i = 0; i < N; i++)
        for (int k = 0; k < K; k++) {
            float g = (p[(size_t)i * K + k] - (k == labels[i] ? 1.0f : 0.0f)) * dl[i];
            lp_grad_put(&dz[(size_t)i * K + k], acc, g);
        }
}

const lp_op lp_op_softmax_cross_entropy = {
    LP_OP_HEADER,
    .name = "softmax_cross_entropy",
    .summary = "loss: softmax of logits [K] + cross-entropy with the labels, per sample",
    .min_inputs = 1,
    .max_inputs = 1,
    .attrs = NULL,
    .setup = sce_setup,
    .forward = sce_forward,
    .backward = sce_backward,
};
