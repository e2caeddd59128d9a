/* test_batch_norm.c - the batch_norm op against a naive float64 reference, finite
 * differences and PyTorch; its buffers; its whole-batch statistics across lanes.
 *
 *   - forward in training (batch statistics) and eval (running statistics) against
 *     plain loops in double, for conv outputs [C, H, W] and dense outputs [F];
 *   - backward (input, weight, bias) against central differences of the float64
 *     reference (tests/gradcheck.h), and against PyTorch's BatchNorm2d/BatchNorm1d
 *     numbers (tests/fixtures/gen_bn_ref.py -> bn_ref.h) to 1e-4 relative;
 *   - the running mean and (unbiased) variance update, with PyTorch's momentum;
 *   - buffers: names, initial values, the trainable / non-trainable split;
 *   - sliced training on 1, 2 and 3 lanes equals the whole batch (the statistics
 *     cover the whole batch, not a lane's slice), and repeats bit for bit;
 *   - bad attributes name the attribute.
 */
#include <criterion/criterion.h>

#include "compute.h"
#include "graph.h"
#include "rng.h"
#include "shape.h"
#include "value.h"

#include "fixtures/bn_ref.h"
#include "gradcheck.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void suite_init(void) { lp_threads_init(2); }
TestSuite(batch_norm, .init = suite_init);

static const lp_loc NOLOC = {NULL, 0, 0};

static lp_value *attrs_kv(const char *k1, const char *v1, const char *k2, const char *v2)
{
    lp_value *m = lp_value_new_map(NOLOC);
    if (k1) cr_assert_eq(lp_value_map_set(m, k1, NOLOC, lp_value_new_scalar(v1, NOLOC)), 0);
    if (k2) cr_assert_eq(lp_value_map_set(m, k2, NOLOC, lp_value_new_scalar(v2, NOLOC)), 0);
    return m;
}

static lp_graph *build_bn(lp_shape in, lp_value *attrs, int batch)
{
    lp_model_spec spec = {.input = in, .input_grad = true};
    const char *inputs[] = {"input"};
    cr_assert_eq(lp_model_spec_add(&spec, "bn", "batch_norm", inputs, 1, attrs), LP_OK);
    lp_graph *g = NULL;
    lp_error err = {0};
    cr_assert_eq(lp_graph_build(&spec, &g, &err), LP_OK, "%s", err.msg);
    lp_model_spec_free(&spec);
    cr_assert_eq(lp_graph_plan(g, batch, &err), LP_OK, "%s", err.msg);
    lp_graph_init_params(g, 1);
    return g;
}

/* ---- the reference ------------------------------------------------------ */

typedef struct bn_case {
    int N, C;
    long inner;
    double eps;
    const double *mean_run, *var_run; /* eval mode when not NULL */
} bn_case;

/* y = (x - mean) / sqrt(var + eps) * w + b per channel; batch statistics
 * (biased variance) or the running ones. Optionally the batch mean / var. */
static void ref_bn(const bn_case *k, const double *x, const double *w, const double *b, double *y,
                   double *mean_out, double *var_out)
{
    double m = (double)k->N * k->inner;
    for (int c = 0; c < k->C; c++) {
        double mean = 0, var = 0;
        if (k->mean_run) {
            mean = k->mean_run[c];
            var = k->var_run[c];
        } else {
            for (int n = 0; n < k->N; n++)
                for (long j = 0; j < k->inner; j++) mean += x[(n * k->C + c) * k->inner + j];
            mean /= m;
            for (int n = 0; n < k->N; n++)
                for (long j = 0; j < k->inner; j++) {
                    double d = x[(n * k->C + c) * k->inner + j] - mean;
                    var += d * d;
                }
            var /= m;
        }
        if (mean_out) mean_out[c] = mean;
        if (var_out) var_out[c] = var;
        for (int n = 0; n < k->N; n++)
            for (long j = 0; j < k->inner; j++) {
                long i = (n * k->C + c) * k->inner + j;
                y[i] = (x[i] - mean) / sqrt(var + k->eps) * w[c] + b[c];
            }
    }
}

typedef struct harness {
    const bn_case *k;
    long len;
    double *x, *p, *r, *y;
} harness;

static double harness_loss(void *ctx)
{
    harness *h = ctx;
    ref_bn(h->k, h->x, h->p, h->p + h->k->C, h->y, NULL, NULL);
    double s = 0;
    for (long i = 0; i < h->len; i++) s += h->y[i] * h->r[i];
    return s;
}

static void fill(lp_rng *rng, float *v, long n, double scale, double shift)
{
    for (long i = 0; i < n; i++) v[i] = (float)(shift + scale * lp_rng_normal(rng));
}

/* Forward (training) against the reference, then backward against central
 * differences of the reference in double. */
static void check_training_at(lp_shape in, int N, uint64_t seed, double spread, double shift)
{
    /* x = shift + spread * normal. Tolerances scale with shift / spread: float32
     * holds x and the mean to 6e-8 of |shift|, which is that much of the spread. */
    double ratio = fmax(1.0, fabs(shift) / spread);
    lp_graph *g = build_bn(in, NULL, N);
    int C = in.dims[0];
    long inner = (long)lp_shape_numel(in) / C, len = (long)N * C * inner;
    lp_rng rng;
    lp_rng_seed(&rng, seed);
    float *p = lp_graph_params(g);
    fill(&rng, p, 2 * C, 0.5, 1.0); /* weight around 1, bias around 1 */
    float *x = malloc((size_t)len * sizeof *x), *r = malloc((size_t)len * sizeof *r);
    fill(&rng, x, len, spread, shift);
    fill(&rng, r, len, 1.0, 0.0);
    bn_case k = {N, C, inner, 1e-5, NULL, NULL};
    harness h = {&k, len, malloc((size_t)len * sizeof(double)), malloc((size_t)2 * C * sizeof(double)),
                 malloc((size_t)len * sizeof(double)), malloc((size_t)len * sizeof(double))};
    gc_widen(x, h.x, len);
    gc_widen(p, h.p, 2 * C);
    gc_widen(r, h.r, len);

    lp_graph_forward(g, x, NULL, N, true);
    ref_bn(&k, h.x, h.p, h.p + C, h.y, NULL, NULL);
    double fwd = gc_max_rel_diff(lp_graph_final(g), h.y, len, 1.0);
    cr_expect(fwd <= 1e-5 * fmax(1.0, ratio / 100), "%s forward: max relative error %.3g",
              inner > 1 ? "conv" : "dense", fwd);

    lp_graph_backward(g, r);
    double *gin = malloc((size_t)len * sizeof *gin), *gpar = malloc((size_t)2 * C * sizeof *gpar);
    gc_widen(lp_graph_input_grad(g), gin, len);
    gc_widen(lp_graph_grads(g), gpar, 2 * C);
    gc_options o = GC_DEFAULTS;
    o.max_entries = 300; /* each check is a pass of the reference: spread them */
    /* dx = a * dy + b * (x - mean) + c adds terms of the size of a = weight * invstd
     * that largely cancel: its float32 rounding is ~1e-6 of a, whatever the entry's
     * size. Measure errors against that scale, not the floor of 1e-2. */
    o.floor = 0.05;
    o.step = 1e-6 / ratio; /* steps well inside the spread (curvature ~ invstd^2) */
    o.tol = 1e-4 * fmax(1.0, ratio / 100);
    gc_result res = gc_check(h.x, len, gin, harness_loss, &h, &o);
    cr_expect(res.passed, "input grad: max rel err %.3g at %ld (analytic %.9g, numeric %.9g)", res.max_err,
              res.worst, res.worst_analytic, res.worst_numeric);
    cr_expect(res.skipped * 100 <= res.checked, "batch norm is smooth: %ld kinks skipped", res.skipped);
    res = gc_check(h.p, 2 * C, gpar, harness_loss, &h, &o);
    cr_expect(res.passed, "weight/bias grad: max rel err %.3g at %ld (analytic %.9g, numeric %.9g)",
              res.max_err, res.worst, res.worst_analytic, res.worst_numeric);
    free(x); free(r); free(gin); free(gpar);
    free(h.x); free(h.p); free(h.r); free(h.y);
    lp_graph_free(g);
}

/* A mean away from 0 (3, spread 2): the sums must cope. */
static void check_training(lp_shape in, int N, uint64_t seed) { check_training_at(in, N, seed, 2.0, 3.0); }

Test(batch_norm, conv_output_forward_backward) { check_training(lp_shape3(3, 5, 4), 4, 11); }
Test(batch_norm, dense_output_forward_backward) { check_training(lp_shape1(7), 5, 12); }
Test(batch_norm, two_samples_of_features) { check_training(lp_shape1(3), 2, 13); }
/* Above the op's threading threshold: channels split over two threads. */
Test(batch_norm, large_conv_output_on_two_threads) { check_training(lp_shape3(4, 40, 40), 12, 14); }
/* One training step of a lone batch norm on x with output gradient r: its output,
 * input gradient, parameter gradients and running statistics, concatenated. */
static float *bn_step(lp_shape in, int N, const float *x, const float *r, long *count)
{
    lp_graph *g = build_bn(in, NULL, N);
    const int C = in.dims[0];
    const long len = (long)N * (long)lp_shape_numel(in);
    lp_rng rng;
    lp_rng_seed(&rng, 21);
    fill(&rng, lp_graph_params(g), 2 * C, 0.5, 1.0);
    *count = 2 * len + 4L * C;
    float *out = malloc((size_t)*count * sizeof *out);
    lp_graph_forward(g, x, NULL, N, true);
    lp_graph_backward(g, r);
    memcpy(out, lp_graph_final(g), (size_t)len * sizeof *out);
    memcpy(out + len, lp_graph_input_grad(g), (size_t)len * sizeof *out);
    memcpy(out + 2 * len, lp_graph_grads(g), (size_t)2 * C * sizeof *out);
    memcpy(out + 2 * len + 2 * C, lp_graph_buffers(g), (size_t)2 * C * sizeof *out);
    lp_graph_free(g);
    return out;
}

/* Past 2 MiB a tensor (2.4 MB here), forward and backward run channel by channel,
 * each channel's second pass straight after its first (see channel_by_channel):
 * the same operations in the same order as the two whole passes, so the same bits.
 * (The two-pass path is checked against the references above.) */
Test(batch_norm, channel_by_channel_matches_two_passes_bit_for_bit)
{
    const lp_shape in = lp_shape3(3, 64, 64);
    const int N = 48;
    const long len = N * 3L * 64 * 64;
    float *x = malloc((size_t)len * sizeof *x), *r = malloc((size_t)len * sizeof *r);
    lp_rng rng;
    lp_rng_seed(&rng, 16);
    fill(&rng, x, len, 2.0, 3.0);
    fill(&rng, r, len, 1.0, 0.0);
    long n1, n2;
    float *fused = bn_step(in, N, x, r, &n1);
    setenv("LOUPE_BN_TWO_PASS", "1", 1);
    float *passes = bn_step(in, N, x, r, &n2);
    unsetenv("LOUPE_BN_TWO_PASS");
    cr_assert_eq(n1, n2);
    long differ = 0, first = -1;
    for (long i = 0; i < n1; i++)
        if (memcmp(&fused[i], &passes[i], sizeof(float)) != 0) {
            if (first < 0) first = i;
            differ++;
        }
    cr_expect_eq(differ, 0, "%ld of %ld values differ, the first at %ld (%.9g vs %.9g)", differ, n1, first,
                 first >= 0 ? fused[first] : 0.0, first >= 0 ? passes[first] : 0.0);
    free(x); free(r); free(fused); free(passes);
}

/* A mean 1000 times its spread: centring keeps the variance right. */
Test(batch_norm, far_from_zero_mean) { check_training_at(lp_shape3(2, 6, 6), 4, 15, 0.01, 10.0); }

/* A hand-made case: channel 0 holds 1, 2, 3, 4 over two samples of 2 values. */
Test(batch_norm, worked_example)
{
    lp_graph *g = build_bn(lp_shape3(1, 1, 2), NULL, 2);
    const float x[4] = {1, 2, 3, 4};
    lp_graph_forward(g, x, NULL, 2, true);
    const float *y = lp_graph_final(g);
    /* mean 2.5, biased variance 1.25 */
    for (int i = 0; i < 4; i++) {
        float want = (float)((x[i] - 2.5) / sqrt(1.25 + 1e-5));
        cr_assert_float_eq(y[i], want, 1e-6f, "y[%d] = %g, want %g", i, y[i], want);
    }
    /* running_mean = 0.9 * 0 + 0.1 * 2.5; running_var = 0.9 * 1 + 0.1 * 1.25 * 4/3 */
    const float *buf = lp_graph_buffers(g);
    cr_assert_float_eq(buf[0], 0.25f, 1e-7f, "running_mean %g", buf[0]);
    cr_assert_float_eq(buf[1], (float)(0.9 + 0.1 * 1.25 * 4.0 / 3.0), 1e-7f, "running_var %g", buf[1]);
    lp_graph_free(g);
}

Test(batch_norm, buffers_are_named_initialised_and_not_trained)
{
    lp_graph *g = build_bn(lp_shape3(3, 4, 4), NULL, 2);
    cr_assert_eq(lp_graph_num_params(g), 2);
    cr_assert_str_eq(lp_graph_param_name(g, 0), "bn.weight");
    cr_assert_str_eq(lp_graph_param_name(g, 1), "bn.bias");
    cr_assert_eq(lp_graph_num_buffers(g), 2);
    cr_assert_str_eq(lp_graph_buffer_name(g, 0), "bn.running_mean");
    cr_assert_str_eq(lp_graph_buffer_name(g, 1), "bn.running_var");
    cr_assert_eq(lp_graph_buffer_floats(g), 6);
    cr_assert_eq(lp_graph_node_params(g, 1), 6);
    cr_assert_eq(lp_graph_node_buffers(g, 1), 6);
    cr_assert(lp_graph_uses_batch_stats(g));
    const float *p = lp_graph_params(g), *b = lp_graph_buffers(g);
    for (int c = 0; c < 3; c++) {
        cr_assert_eq(p[c], 1.0f, "weight starts at 1");
        cr_assert_eq(p[3 + c], 0.0f, "bias starts at 0");
        cr_assert_eq(b[c], 0.0f, "running mean starts at 0");
        cr_assert_eq(b[3 + c], 1.0f, "running var starts at 1");
    }
    lp_graph_free(g);
    g = build_bn(lp_shape1(5), attrs_kv("affine", "false", NULL, NULL), 2);
    cr_assert_eq(lp_graph_num_params(g), 0, "affine: false has no weight and bias");
    cr_assert_eq(lp_graph_num_buffers(g), 2);
    lp_graph_free(g);
}

/* Eval mode uses the running statistics, which training updated. */
Test(batch_norm, eval_uses_running_statistics)
{
    lp_shape in = lp_shape3(2, 3, 3);
    const int N = 3, C = 2;
    const long inner = 9, len = N * C * inner;
    lp_graph *g = build_bn(in, attrs_kv("momentum", "0.3", "epsilon", "0.01"), N);
    lp_rng rng;
    lp_rng_seed(&rng, 5);
    float x[3 * 2 * 9], x2[3 * 2 * 9];
    fill(&rng, x, len, 1.5, -2.0);
    fill(&rng, x2, len, 0.5, 4.0);
    double xd[3 * 2 * 9], yd[3 * 2 * 9], mean1[2], var1[2], mean2[2], var2[2], w[2] = {1, 1}, b[2] = {0, 0};
    bn_case k = {N, C, inner, 0.01, NULL, NULL};
    gc_widen(x, xd, len);
    ref_bn(&k, xd, w, b, yd, mean1, var1);
    gc_widen(x2, xd, len);
    ref_bn(&k, xd, w, b, yd, mean2, var2);
    lp_graph_forward(g, x, NULL, N, true);
    lp_graph_forward(g, x2, NULL, N, true);
    double rm[2], rv[2], m = N * inner;
    for (int c = 0; c < C; c++) {
        rm[c] = 0.7 * (0.7 * 0 + 0.3 * mean1[c]) + 0.3 * mean2[c];
        rv[c] = 0.7 * (0.7 * 1 + 0.3 * var1[c] * m / (m - 1)) + 0.3 * var2[c] * m / (m - 1);
        cr_assert_float_eq(lp_graph_buffers(g)[c], rm[c], 1e-5 * fabs(rm[c]) + 1e-6, "running_mean[%d]", c);
        cr_assert_float_eq(lp_graph_buffers(g)[C + c], rv[c], 1e-5 * rv[c], "running_var[%d]", c);
    }
    /* Evaluation reads them and changes nothing. */
    float before[4];
    memcpy(before, lp_graph_buffers(g), sizeof before);
    lp_graph_forward(g, x, NULL, N, false);
    cr_assert_eq(memcmp(before, lp_graph_buffers(g), sizeof before), 0, "eval must not move the running stats");
    bn_case ke = {N, C, inner, 0.01, rm, rv};
    gc_widen(x, xd, len);
    ref_bn(&ke, xd, w, b, yd, NULL, NULL);
    double e = gc_max_rel_diff(lp_graph_final(g), yd, len, 1.0);
    cr_assert(e <= 1e-5, "eval forward: max relative error %.3g", e);
    lp_graph_free(g);
}

/* ---- PyTorch ------------------------------------------------------------ */

static void check_torch(const bn_ref_case *t)
{
    lp_shape in = t->H ? lp_shape3(t->C, t->H, t->W) : lp_shape1(t->C);
    char mom[32], eps[32];
    snprintf(mom, sizeof mom, "%.9g", t->momentum);
    snprintf(eps, sizeof eps, "%.9g", t->eps);
    lp_graph *g = build_bn(in, attrs_kv("momentum", mom, "epsilon", eps), t->N);
    long len = (long)lp_shape_numel(in) * t->N;
    memcpy(lp_graph_params(g), t->weight, (size_t)t->C * sizeof(float));
    memcpy(lp_graph_params(g) + t->C, t->bias, (size_t)t->C * sizeof(float));
    lp_graph_forward(g, t->x, NULL, t->N, true);
    lp_graph_backward(g, t->dy);
    /* Relative to the tensor's largest entry (at least 1e-2, the gradient checks'
     * floor: two samples leave dx near 0, all rounding): 1e-4 of it, entry by entry. */
    struct { const char *what; const float *got, *want; long n; } cmp[] = {
        {"y", lp_graph_final(g), t->y, len},
        {"dx", lp_graph_input_grad(g), t->dx, len},
        {"dweight", lp_graph_grads(g), t->dweight, t->C},
        {"dbias", lp_graph_grads(g) + t->C, t->dbias, t->C},
        {"running_mean", lp_graph_buffers(g), t->running_mean, t->C},
        {"running_var", lp_graph_buffers(g) + t->C, t->running_var, t->C},
    };
    for (size_t k = 0; k < sizeof cmp / sizeof cmp[0]; k++) {
        double scale = 1e-2;
        for (long i = 0; i < cmp[k].n; i++) scale = fmax(scale, fabs(cmp[k].want[i]));
        for (long i = 0; i < cmp[k].n; i++) {
            double d = fabs((double)cmp[k].got[i] - cmp[k].want[i]);
            cr_assert(d <= 1e-4 * scale, "%s: %s[%ld] = %.9g, PyTorch %.9g (scale %.3g)", t->name, cmp[k].what,
                      i, cmp[k].got[i], cmp[k].want[i], scale);
        }
    }
    lp_graph_free(g);
}

Test(batch_norm, matches_pytorch_training_mode)
{
    for (size_t i = 0; i < sizeof bn_ref_cases / sizeof bn_ref_cases[0]; i++) check_torch(&bn_ref_cases[i]);
}

/* Node `name` of op `op` reading `from`, appended to the spec. */
static void add_node(lp_model_spec *s, const char *name, const char *op, const char *from, lp_value *a)
{
    const char *in[1] = {from};
    cr_assert_eq(lp_model_spec_add(s, name, op, in, 1, a), LP_OK);
}

/* ---- max-pool applying batch norm (lp_op_applies) --------------------------- */

/* Each max-pool kernel after a batch norm: conv1's 26 x 26 planes (2x2 windows, with
 * a folded ReLU), conv2's 11 x 11 (row pairs spanning planes, no ReLU), and general
 * windows (2x2 stride 1, with a ReLU). */
static lp_graph *build_pooled_net(int fold)
{
    if (fold) unsetenv("LOUPE_NO_FOLD");
    else setenv("LOUPE_NO_FOLD", "1", 1);
    lp_model_spec s = {.input = lp_shape3(1, 28, 28)};
    add_node(&s, "conv1", "conv2d", "input", attrs_kv("filters", "4", "kernel", "3"));
    add_node(&s, "bn1", "batch_norm", "conv1", NULL);
    add_node(&s, "relu1", "relu", "bn1", NULL);
    add_node(&s, "pool1", "maxpool", "relu1", attrs_kv("size", "2", NULL, NULL));
    add_node(&s, "conv2", "conv2d", "pool1", attrs_kv("filters", "3", "kernel", "3"));
    add_node(&s, "bn2", "batch_norm", "conv2", NULL);
    add_node(&s, "pool2", "maxpool", "bn2", attrs_kv("size", "2", NULL, NULL));
    add_node(&s, "conv3", "conv2d", "pool2", attrs_kv("filters", "2", "kernel", "2"));
    add_node(&s, "bn3", "batch_norm", "conv3", NULL);
    add_node(&s, "relu3", "relu", "bn3", NULL);
    add_node(&s, "pool3", "maxpool", "relu3", attrs_kv("size", "2", "stride", "1"));
    add_node(&s, "flat", "flatten", "pool3", NULL);
    add_node(&s, "fc", "dense", "flat", attrs_kv("units", "5", NULL, NULL));
    s.loss = strdup("softmax_cross_entropy");
    lp_graph *g = NULL;
    lp_error err = {0};
    cr_assert_eq(lp_graph_build(&s, &g, &err), LP_OK, "%s", err.msg);
    unsetenv("LOUPE_NO_FOLD");
    lp_model_spec_free(&s);
    lp_graph_init_params(g, 4);
    return g;
}

static void expect_close(const float *got, const float *want, size_t count, float tol, const char *what)
{
    float scale = 1e-6f;
    for (size_t i = 0; i < count; i++) scale = fmaxf(scale, fabsf(want[i]));
    for (size_t i = 0; i < count; i++)
        cr_assert_leq(fabsf(got[i] - want[i]), tol * scale, "%s[%zu]: %g, want %g", what, i, got[i], want[i]);
}

/* Each parameter's gradient of a against b's, to tol of that parameter's largest
 * (at least 1e-2 of the largest of all: a conv bias before a batch norm has a
 * gradient of 0 up to rounding). */
static void expect_close_grads(lp_graph *a, lp_graph *b, float tol, int step)
{
    const float *ga = lp_graph_grads(a), *gb = lp_graph_grads(b);
    float all = 0;
    for (size_t i = 0; i < lp_graph_param_floats(b); i++) all = fmaxf(all, fabsf(gb[i]));
    for (int k = 0; k < lp_graph_num_params(a); k++) {
        const size_t off = lp_graph_param_offset(a, k), count = lp_shape_numel(lp_graph_param_shape(a, k));
        float scale = 1e-2f * all;
        for (size_t i = 0; i < count; i++) scale = fmaxf(scale, fabsf(gb[off + i]));
        for (size_t i = 0; i < count; i++)
            cr_assert_leq(fabsf(ga[off + i] - gb[off + i]), tol * scale, "step %d: gradient of %s[%zu]: %g, want %g",
                          step, lp_graph_param_name(a, k), i, ga[off + i], gb[off + i]);
    }
}

/* Max-pool pooling batch norm's input and normalizing the maxima (taking batch
 * norm's statistics in the same pass) against batch norm writing its output and
 * max-pool reading it (LOUPE_NO_FOLD=1), at the same parameters each step: the
 * same loss and running statistics bit for bit, the same gradients but for the
 * order of batch norm's gradient sums, and the same evaluation. negative: some
 * batch norm weights below 0, where max-pool normalizes before pooling instead. */
static void compare_applied(int negative)
{
    enum { NB = 6 };
    static float x[NB * 28 * 28];
    int32_t y[NB];
    lp_rng rng;
    lp_rng_seed(&rng, 31);
    fill(&rng, x, NB * 28 * 28, 1.0, 0.3);
    for (int i = 0; i < NB; i++) y[i] = i % 5;
    lp_graph *a = build_pooled_net(1), *b = build_pooled_net(0);
    lp_error err = {0};
    cr_assert_eq(lp_graph_plan(a, NB, &err), LP_OK, "%s", err.msg);
    cr_assert_eq(lp_graph_plan(b, NB, &err), LP_OK, "%s", err.msg);
    const size_t P = lp_graph_param_floats(a), B = lp_graph_buffer_floats(a);
    float *pa = lp_graph_params(a), *pb = lp_graph_params(b);
    for (int k = 0; negative && k < lp_graph_num_params(a); k++)
        if (strstr(lp_graph_param_name(a, k), "weight") && !strncmp(lp_graph_param_name(a, k), "bn", 2))
            pa[lp_graph_param_offset(a, k)] = -0.7f; /* channel 0 of each batch norm */
    for (int step = 0; step < 3; step++) {
        memcpy(pb, pa, P * sizeof(float));
        float la = lp_graph_forward(a, x, y, NB, true), lb = lp_graph_forward(b, x, y, NB, true);
        cr_assert_eq(memcmp(&la, &lb, sizeof la), 0, "step %d: loss %.9g applied, %.9g not", step, la, lb);
        cr_assert_eq(memcmp(lp_graph_buffers(a), lp_graph_buffers(b), B * sizeof(float)), 0,
                     "step %d: running statistics differ", step);
        memset(lp_graph_grads(a), 0, P * sizeof(float));
        memset(lp_graph_grads(b), 0, P * sizeof(float));
        lp_graph_backward(a, NULL);
        lp_graph_backward(b, NULL);
        expect_close_grads(a, b, 1e-4f, step);
        for (size_t i = 0; i < P; i++) pa[i] -= 0.1f * lp_graph_grads(a)[i]; /* other statistics next step */
    }
    memcpy(pb, pa, P * sizeof(float));
    float la = lp_graph_forward(a, x, y, NB, false), lb = lp_graph_forward(b, x, y, NB, false);
    cr_assert_eq(memcmp(&la, &lb, sizeof la), 0, "evaluation: loss %.9g applied, %.9g not", la, lb);
    cr_assert_eq(memcmp(lp_graph_logits(a), lp_graph_logits(b), NB * 5 * sizeof(float)), 0, "evaluation logits");
    lp_graph_free(a);
    lp_graph_free(b);
}

Test(batch_norm, maxpool_applying_batch_norm_matches_the_two_ops) { compare_applied(0); }
Test(batch_norm, maxpool_applying_batch_norm_with_negative_weights) { compare_applied(1); }

/* ---- lanes ---------------------------------------------------------------- */

/* conv -> batch_norm -> relu -> maxpool -> flatten -> dense -> batch_norm -> dense
 * + loss: both kinds of statistics inside a net. */
static lp_graph *build_net(void)
{
    lp_model_spec s = {.input = lp_shape3(1, 8, 8)};
    add_node(&s, "conv1", "conv2d", "input", attrs_kv("filters", "3", "kernel", "3"));
    add_node(&s, "bn1", "batch_norm", "conv1", NULL);
    add_node(&s, "relu1", "relu", "bn1", NULL);
    add_node(&s, "pool1", "maxpool", "relu1", attrs_kv("size", "2", NULL, NULL));
    add_node(&s, "flat", "flatten", "pool1", NULL);
    add_node(&s, "fc1", "dense", "flat", attrs_kv("units", "6", NULL, NULL));
    add_node(&s, "bn2", "batch_norm", "fc1", attrs_kv("momentum", "0.2", NULL, NULL));
    add_node(&s, "fc2", "dense", "bn2", attrs_kv("units", "4", NULL, NULL));
    s.loss = strdup("softmax_cross_entropy");
    lp_graph *g = NULL;
    lp_error err = {0};
    cr_assert_eq(lp_graph_build(&s, &g, &err), LP_OK, "%s", err.msg);
    lp_model_spec_free(&s);
    lp_graph_init_params(g, 3);
    return g;
}

enum { MAX_N = 11 };

static void compare_lanes(int n, int lanes)
{
    float x[MAX_N * 64];
    int32_t y[MAX_N];
    lp_rng rng;
    lp_rng_seed(&rng, 21);
    fill(&rng, x, MAX_N * 64, 1.0, 0.5);
    for (int i = 0; i < MAX_N; i++) y[i] = i % 4;
    lp_graph *ref = build_net(), *g = build_net();
    lp_error err = {0};
    cr_assert_eq(lp_graph_plan(ref, n, &err), LP_OK);
    cr_assert_eq(lp_graph_plan_lanes(g, MAX_N, lanes, &err), LP_OK, "%s", err.msg);
    size_t P = lp_graph_param_floats(g), B = lp_graph_buffer_floats(g);
    float want_loss = lp_graph_forward(ref, x, y, n, true);
    lp_graph_backward(ref, NULL);
    float loss = lp_graph_train_step(g, x, y, n);
    cr_assert_float_eq(loss, want_loss, 1e-5f * fabsf(want_loss), "n %d lanes %d: loss %g, want %g", n, lanes,
                       loss, want_loss);
    expect_close(lp_graph_batch_logits(g), lp_graph_logits(ref), (size_t)n * 4, 1e-5f, "logits");
    expect_close(lp_graph_grads(g), lp_graph_grads(ref), P, 1e-5f, "grads");
    expect_close(lp_graph_buffers(g), lp_graph_buffers(ref), B, 1e-5f, "running stats");

    /* The same step again on a fresh copy: bit for bit, running stats included. */
    float *grads = malloc(P * sizeof *grads), *bufs = malloc(B * sizeof *bufs);
    memcpy(grads, lp_graph_grads(g), P * sizeof *grads);
    memcpy(bufs, lp_graph_buffers(g), B * sizeof *bufs);
    lp_graph *again = build_net();
    cr_assert_eq(lp_graph_plan_lanes(again, MAX_N, lanes, &err), LP_OK, "%s", err.msg);
    cr_assert_eq(lp_graph_train_step(again, x, y, n), loss);
    cr_assert_eq(memcmp(grads, lp_graph_grads(again), P * sizeof *grads), 0, "gradients differ between runs");
    cr_assert_eq(memcmp(bufs, lp_graph_buffers(again), B * sizeof *bufs), 0, "running stats differ");

    /* Evaluation: running statistics, sliced as the graph likes. */
    want_loss = lp_graph_forward(ref, x, y, n, false);
    loss = lp_graph_infer(g, x, y, n);
    cr_assert_float_eq(loss, want_loss, 1e-5f * fabsf(want_loss), "eval n %d lanes %d", n, lanes);
    free(grads);
    free(bufs);
    lp_graph_free(again);
    lp_graph_free(ref);
    lp_graph_free(g);
}

Test(batch_norm, lanes_see_the_whole_batch)
{
    setenv("LOUPE_SLICE", "2", 1); /* would cut the batch into slices: batch norm must refuse */
    int sizes[] = {2, 3, 7, MAX_N};
    for (int lanes = 1; lanes <= 3; lanes++)
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) compare_lanes(sizes[i], lanes);
    unsetenv("LOUPE_SLICE");
}

/* ---- bad attributes ------------------------------------------------------- */

static void expect_refused(const char *key, const char *value, const char *says)
{
    lp_model_spec spec = {.input = lp_shape1(4)};
    const char *inputs[] = {"input"};
    lp_value *a = lp_value_new_map(NOLOC);
    lp_loc at = {"model.yaml", 7, 21};
    cr_assert_eq(lp_value_map_set(a, key, at, lp_value_new_scalar(value, at)), 0);
    cr_assert_eq(lp_model_spec_add(&spec, "bn1", "batch_norm", inputs, 1, a), LP_OK);
    lp_graph *g = NULL;
    lp_error err = {0};
    cr_assert_neq(lp_graph_build(&spec, &g, &err), LP_OK, "%s: %s accepted", key, value);
    cr_assert(strstr(err.msg, "model.yaml:7:21") && strstr(err.msg, says), "%s=%s: %s", key, value, err.msg);
    lp_model_spec_free(&spec);
}

Test(batch_norm, bad_attributes_are_refused_at_their_location)
{
    expect_refused("momentum", "1", "momentum must be in [0, 1)");
    expect_refused("momentum", "-0.1", "momentum must be in [0, 1)");
    expect_refused("epsilon", "-1e-5", "epsilon must be >= 0");
    expect_refused("momentum", "fast", "momentum");
}
