/* test_ops.c - the seven built-in ops against naive float64 references.
 *
 * Every op runs through a real graph (spec -> build -> plan -> forward/backward),
 * and is compared with plain nested loops written here, independent of ops/:
 *   - the tutorial's worked examples, element by element;
 *   - forward on swept shapes (channels, stride, padding incl. same, non-square
 *     kernels, flooring pools, batch > 1): max relative error <= 1e-5;
 *   - backward (input and parameter gradients) against central differences of the
 *     float64 reference (tests/gradcheck.h), loss = sum(out * r), r the seed;
 *   - a deliberately wrong gradient that the checker must reject;
 *   - a branching graph and the two-conv MNIST net end to end;
 *   - bad specs as errors naming the node.
 * Tests run with 2 threads, so conv2d's per-thread partial sums are exercised.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include "compute.h"
#include "graph.h"
#include "rng.h"
#include "shape.h"
#include "value.h"

#include "gradcheck.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void suite_init(void) { lp_threads_init(2); }
TestSuite(ops, .init = suite_init);

/* ---- attribute maps ---------------------------------------------------- */

static const lp_loc NOLOC = {NULL, 0, 0};

static lp_value *attrs_new(void) { return lp_value_new_map(NOLOC); }

static void attr_s(lp_value *m, const char *key, const char *text)
{
    cr_assert_eq(lp_value_map_set(m, key, NOLOC, lp_value_new_scalar(text, NOLOC)), 0);
}

static void attr_i(lp_value *m, const char *key, int v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%d", v);
    attr_s(m, key, buf);
}

static void attr_pair(lp_value *m, const char *key, int a, int b)
{
    lp_value *list = lp_value_new_list(NOLOC);
    char buf[32];
    snprintf(buf, sizeof buf, "%d", a);
    lp_value_list_push(list, lp_value_new_scalar(buf, NOLOC));
    snprintf(buf, sizeof buf, "%d", b);
    lp_value_list_push(list, lp_value_new_scalar(buf, NOLOC));
    cr_assert_eq(lp_value_map_set(m, key, NOLOC, list), 0);
}

/* An int when both are equal (the common spelling), else [a, b]. */
static void attr_int_or_pair(lp_value *m, const char *key, int a, int b)
{
    if (a == b) attr_i(m, key, a);
    else attr_pair(m, key, a, b);
}

/* ---- graphs of one op -------------------------------------------------- */

/* Build "input -> op(input x n_inputs)"; returns the status, *g on success. */
static lp_status build_one(const char *name, const char *op, lp_value *attrs, lp_shape in,
                           int n_inputs, lp_graph **g, lp_error *err)
{
    lp_model_spec spec = {.input = in, .input_grad = true};
    const char *inputs[2] = {"input", "input"};
    cr_assert_eq(lp_model_spec_add(&spec, name, op, inputs, n_inputs, attrs), LP_OK);
    lp_status s = lp_graph_build(&spec, g, err);
    lp_model_spec_free(&spec);
    return s;
}

static lp_graph *build_ok(const char *op, lp_value *attrs, lp_shape in, int n_inputs, int batch)
{
    lp_error err = {0};
    lp_graph *g = NULL;
    lp_status s = build_one("node", op, attrs, in, n_inputs, &g, &err);
    cr_assert_eq(s, LP_OK, "build %s: %s", op, err.msg);
    cr_assert_eq(lp_graph_plan(g, batch, &err), LP_OK, "%s", err.msg);
    return g;
}

static long numel(lp_shape s) { return (long)lp_shape_numel(s); }

static long param_index(const lp_graph *g, const char *name)
{
    for (int k = 0; k < lp_graph_num_params(g); k++)
        if (!strcmp(lp_graph_param_name(g, k), name)) return k;
    cr_assert_fail("no parameter named %s", name);
    return -1;
}

static size_t param_off(const lp_graph *g, const char *name)
{
    return lp_graph_param_offset(g, (int)param_index(g, name));
}

/* ---- naive float64 references ------------------------------------------ */

typedef struct conv_geom {
    int C, H, W, F, kh, kw, sh, sw;
    int pt, pb, pl, pr; /* padding top, bottom, left, right */
    int OH, OW, bias;
} conv_geom;

/* y[n,f,oy,ox] = b[f] + sum_{c,ky,kx} w[f,c,ky,kx] x[n,c,oy*sh+ky-pt,ox*sw+kx-pl] */
static void ref_conv(const conv_geom *g, int N, const double *x, const double *w, const double *b,
                     double *y)
{
    for (int n = 0; n < N; n++)
        for (int f = 0; f < g->F; f++)
            for (int oy = 0; oy < g->OH; oy++)
                for (int ox = 0; ox < g->OW; ox++) {
                    double s = b ? b[f] : 0.0;
                    for (int c = 0; c < g->C; c++)
                        for (int ky = 0; ky < g->kh; ky++)
                            for (int kx = 0; kx < g->kw; kx++) {
                                int iy = oy * g->sh + ky - g->pt, ix = ox * g->sw + kx - g->pl;
                                if (iy < 0 || iy >= g->H || ix < 0 || ix >= g->W) continue;
                                s += w[((f * g->C + c) * g->kh + ky) * g->kw + kx] *
                                     x[((n * g->C + c) * g->H + iy) * g->W + ix];
                            }
                    y[((n * g->F + f) * g->OH + oy) * g->OW + ox] = s;
                }
}

typedef struct pool_geom {
    int C, H, W, kh, kw, sh, sw, OH, OW;
} pool_geom;

static void ref_maxpool(const pool_geom *g, int N, const double *x, double *y)
{
    for (int p = 0; p < N * g->C; p++)
        for (int oy = 0; oy < g->OH; oy++)
            for (int ox = 0; ox < g->OW; ox++) {
                double m = -INFINITY;
                for (int ky = 0; ky < g->kh; ky++)
                    for (int kx = 0; kx < g->kw; kx++)
                        m = fmax(m, x[(p * g->H + oy * g->sh + ky) * g->W + ox * g->sw + kx]);
                y[(p * g->OH + oy) * g->OW + ox] = m;
            }
}

static void ref_relu(long len, const double *x, double *y)
{
    for (long i = 0; i < len; i++) y[i] = x[i] > 0 ? x[i] : 0.0;
}

/* y[n,u] = b[u] + sum_i w[u,i] x[n,i] */
static void ref_dense(int N, int I, int U, const double *x, const double *w, const double *b,
                      double *y)
{
    for (int n = 0; n < N; n++)
        for (int u = 0; u < U; u++) {
            double s = b ? b[u] : 0.0;
            for (int i = 0; i < I; i++) s += w[u * I + i] * x[n * I + i];
            y[n * U + u] = s;
        }
}

/* loss[n] = log(sum_k exp z[n,k]) - z[n,label], computed the textbook way in double. */
static void ref_sce(int N, int K, const double *z, const int32_t *labels, double *loss)
{
    for (int n = 0; n < N; n++) {
        double m = z[n * K];
        for (int k = 1; k < K; k++) m = fmax(m, z[n * K + k]);
        double s = 0;
        for (int k = 0; k < K; k++) s += exp(z[n * K + k] - m);
        loss[n] = m + log(s) - z[n * K + labels[n]];
    }
}

/* ---- one-op harness: forward vs reference, backward vs finite differences */

typedef void (*ref_fn)(const void *cfg, int N, const double *x, const double *p,
                       const int32_t *labels, double *out);

typedef struct op_harness {
    const void *cfg;
    ref_fn ref;
    int N;
    long in_len, out_len;
    double *x, *p, *r, *out;
    const int32_t *labels;
} op_harness;

static double harness_loss(void *ctx)
{
    op_harness *h = ctx;
    h->ref(h->cfg, h->N, h->x, h->p, h->labels, h->out);
    double s = 0;
    for (long i = 0; i < h->out_len; i++) s += h->out[i] * h->r[i];
    return s;
}

static void fill_normal(lp_rng *rng, float *v, long len, double scale)
{
    for (long i = 0; i < len; i++) v[i] = (float)(scale * lp_rng_normal(rng));
}

/* Run g (built and planned for N) on random data and check forward and backward
 * against ref. labels may be NULL. Frees g. */
static void check_op(lp_graph *g, int N, const void *cfg, ref_fn ref, const int32_t *labels,
                     uint64_t seed)
{
    lp_rng rng;
    lp_rng_seed(&rng, seed);
    lp_graph_init_params(g, seed);
    long in_len = numel(lp_graph_input_shape(g)) * N;
    long out_len = numel(lp_graph_final_shape(g)) * N;
    long p_len = (long)lp_graph_param_floats(g);
    float *pf = lp_graph_params(g);
    /* Zero-initialised biases get random values too, so their use is exercised. */
    for (long i = 0; i < p_len; i++)
        if (pf[i] == 0.0f) pf[i] = (float)(0.3 * lp_rng_normal(&rng));
    float *xf = malloc((size_t)in_len * sizeof *xf), *rf = malloc((size_t)out_len * sizeof *rf);
    fill_normal(&rng, xf, in_len, 1.0);
    fill_normal(&rng, rf, out_len, 1.0);

    op_harness h = {cfg, ref, N, in_len, out_len, calloc((size_t)in_len, sizeof(double)),
                    calloc((size_t)p_len + 1, sizeof(double)), calloc((size_t)out_len, sizeof(double)),
                    calloc((size_t)out_len, sizeof(double)), labels};
    gc_widen(xf, h.x, in_len);
    gc_widen(pf, h.p, p_len);
    gc_widen(rf, h.r, out_len);

    /* Forward: the float op against the double reference on the same values. */
    lp_graph_forward(g, xf, labels, N, true);
    ref(cfg, N, h.x, h.p, labels, h.out);
    double fwd = gc_max_rel_diff(lp_graph_final(g), h.out, out_len, 1.0);
    cr_expect(fwd <= 1e-5, "forward max relative error %.3g > 1e-5", fwd);

    /* Backward twice: input gradients are written, not added, so both runs agree
     * (an op that adds into the garbage the graph hands it would double). */
    lp_graph_backward(g, rf);
    double *gin = malloc((size_t)in_len * sizeof *gin), *gpar = malloc(((size_t)p_len + 1) * sizeof *gpar);
    gc_widen(lp_graph_input_grad(g), gin, in_len);
    gc_widen(lp_graph_grads(g), gpar, p_len);
    lp_graph_backward(g, rf);
    for (long i = 0; i < in_len; i++)
        cr_assert_eq((double)lp_graph_input_grad(g)[i], gin[i], "input grad [%ld] changed on a second backward", i);
    for (long i = 0; i < p_len; i++)
        cr_assert_eq((double)lp_graph_grads(g)[i], gpar[i], "param grad [%ld] changed on a second backward", i);

    gc_result r = gc_check(h.x, in_len, gin, harness_loss, &h, &GC_DEFAULTS);
    cr_expect(r.passed, "input grad: max rel err %.3g at %ld (analytic %.9g, numeric %.9g), %ld checked",
              r.max_err, r.worst, r.worst_analytic, r.worst_numeric, r.checked);
    cr_expect(r.skipped * 20 <= r.checked, "input grad: %ld kinks skipped of %ld", r.skipped, r.checked);
    for (int k = 0; k < lp_graph_num_params(g); k++) {
        size_t off = lp_graph_param_offset(g, k);
        long len = numel(lp_graph_param_shape(g, k));
        r = gc_check(h.p + off, len, gpar + off, harness_loss, &h, &GC_DEFAULTS);
        cr_expect(r.passed, "%s grad: max rel err %.3g at %ld (analytic %.9g, numeric %.9g)",
                  lp_graph_param_name(g, k), r.max_err, r.worst, r.worst_analytic, r.worst_numeric);
        cr_expect(r.skipped * 20 <= r.checked, "%s: %ld kinks skipped", lp_graph_param_name(g, k), r.skipped);
    }
    free(xf); free(rf); free(gin); free(gpar);
    free(h.x); free(h.p); free(h.r); free(h.out);
    lp_graph_free(g);
}

/* ---- 1. the tutorial's worked examples --------------------------------- */

/* A one-filter, bias-free conv on a 5x5 image with the given 3x3 kernel. */
static void conv5x5(const float img[25], const float kernel[9], float out[9])
{
    lp_value *a = attrs_new();
    attr_i(a, "filters", 1);
    attr_i(a, "kernel", 3);
    attr_s(a, "bias", "false");
    lp_graph *g = build_ok("conv2d", a, lp_shape3(1, 5, 5), 1, 1);
    cr_assert_eq(lp_graph_param_floats(g), 9, "bias: false leaves only the 3x3 weight");
    memcpy(lp_graph_params(g), kernel, 9 * sizeof(float));
    lp_graph_forward(g, img, NULL, 1, false);
    lp_shape s = lp_graph_final_shape(g);
    cr_assert(s.ndim == 3 && s.dims[0] == 1 && s.dims[1] == 3 && s.dims[2] == 3);
    memcpy(out, lp_graph_final(g), 9 * sizeof(float));
    lp_graph_free(g);
}

static void assert_grid(const float *got, const float *want, int n, const char *what)
{
    for (int i = 0; i < n; i++)
        cr_assert_float_eq(got[i], want[i], 1e-6, "%s: element (%d, %d) is %g, expected %g", what,
                           i / 3, i % 3, got[i], want[i]);
}

Test(ops, tutorial_checkerboard_x_filter)
{
    float img[25], out[9];
    for (int i = 0; i < 25; i++) img[i] = (i / 5 + i % 5) % 2 == 0 ? 1.0f : 0.0f;
    const float x_filter[9] = {1, 0, 1, 0, 1, 0, 1, 0, 1};
    const float want[9] = {5, 0, 5, 0, 5, 0, 5, 0, 5};
    conv5x5(img, x_filter, out);
    assert_grid(out, want, 9, "checkerboard * X");
}

Test(ops, tutorial_edge_kernels)
{
    float img[25] = {0}, out[9];
    for (int y = 1; y <= 3; y++)
        for (int x = 1; x <= 3; x++) img[y * 5 + x] = 1.0f;
    /* Cross-correlation: the right column minus the left one lights up where the
     * block's left edge is (+) and its right edge (-). */
    const float vertical[9] = {-1, 0, 1, -1, 0, 1, -1, 0, 1};
    const float want_v[9] = {2, 0, -2, 3, 0, -3, 2, 0, -2};
    conv5x5(img, vertical, out);
    assert_grid(out, want_v, 9, "vertical edges");
    /* Bottom row minus top row: + at the block's top edge, - at its bottom edge. */
    const float horizontal[9] = {-1, -1, -1, 0, 0, 0, 1, 1, 1};
    const float want_h[9] = {2, 3, 2, 0, 0, 0, -2, -3, -2};
    conv5x5(img, horizontal, out);
    assert_grid(out, want_h, 9, "horizontal edges");
}

static lp_shape conv_out_shape(int kernel, const char *padding, int stride)
{
    lp_value *a = attrs_new();
    attr_i(a, "filters", 4);
    attr_i(a, "kernel", kernel);
    if (padding) attr_s(a, "padding", padding);
    attr_i(a, "stride", stride);
    lp_graph *g = build_ok("conv2d", a, lp_shape3(1, 28, 28), 1, 1);
    lp_shape s = lp_graph_final_shape(g);
    lp_graph_free(g);
    return s;
}

Test(ops, tutorial_output_sizes_28x28_3x3)
{
    struct { const char *pad; int stride, want; } cases[] = {
        {NULL, 1, 26}, {"1", 1, 28}, {NULL, 2, 13}, {"1", 2, 14}, {"same", 1, 28}, {"same", 2, 14},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lp_shape s = conv_out_shape(3, cases[i].pad, cases[i].stride);
        cr_assert(s.ndim == 3 && s.dims[0] == 4, "filters give the channels");
        cr_assert(s.dims[1] == cases[i].want && s.dims[2] == cases[i].want,
                  "padding %s stride %d: got %dx%d, expected %dx%d", cases[i].pad ? cases[i].pad : "0",
                  cases[i].stride, s.dims[1], s.dims[2], cases[i].want, cases[i].want);
    }
}

Test(ops, tutorial_maxpool_2x2)
{
    const float x[16] = {1, 3, 2, 1, 4, 6, 5, 2, 3, 1, 7, 4, 8, 2, 3, 6};
    const float want[4] = {6, 5, 8, 7};
    lp_value *a = attrs_new();
    attr_i(a, "size", 2);
    attr_i(a, "stride", 2);
    lp_graph *g = build_ok("maxpool", a, lp_shape3(1, 4, 4), 1, 1);
    lp_graph_forward(g, x, NULL, 1, true);
    for (int i = 0; i < 4; i++) cr_assert_eq(lp_graph_final(g)[i], want[i], "element %d", i);
    /* Each gradient goes to its window's maximum only. */
    const float seed[4] = {10, 20, 30, 40};
    lp_graph_backward(g, seed);
    const float want_dx[16] = {0, 0, 0, 0, 0, 10, 20, 0, 0, 0, 40, 0, 30, 0, 0, 0};
    for (int i = 0; i < 16; i++) cr_assert_eq(lp_graph_input_grad(g)[i], want_dx[i], "dx %d", i);
    lp_graph_free(g);
}

Test(ops, maxpool_tie_goes_to_first_in_row_major_order)
{
    const float x[4] = {2, 5, 5, 5};
    lp_value *a = attrs_new();
    attr_i(a, "size", 2);
    lp_graph *g = build_ok("maxpool", a, lp_shape3(1, 2, 2), 1, 1);
    lp_graph_forward(g, x, NULL, 1, true);
    const float seed[1] = {1};
    lp_graph_backward(g, seed);
    const float *dx = lp_graph_input_grad(g);
    cr_assert(dx[0] == 0 && dx[1] == 1 && dx[2] == 0 && dx[3] == 0);
    lp_graph_free(g);
}

/* ---- 2/3. every op, forward and backward, on swept shapes --------------- */

typedef struct conv_case {
    int N, C, H, W, F, kh, kw, sh, sw;
    int ph, pw;  /* symmetric padding (ignored with same) */
    int same;    /* padding: same */
    int bias;
} conv_case;

/* Padding as TensorFlow defines `same`: output ceil(H/s), odd pixel bottom/right. */
static conv_geom geom_of(const conv_case *c)
{
    conv_geom g = {c->C, c->H, c->W, c->F, c->kh, c->kw, c->sh, c->sw,
                   c->ph, c->ph, c->pw, c->pw, 0, 0, c->bias};
    if (c->same) {
        int oh = (c->H + c->sh - 1) / c->sh, ow = (c->W + c->sw - 1) / c->sw;
        int th = (oh - 1) * c->sh + c->kh - c->H, tw = (ow - 1) * c->sw + c->kw - c->W;
        if (th < 0) th = 0;
        if (tw < 0) tw = 0;
        g.pt = th / 2; g.pb = th - g.pt; g.pl = tw / 2; g.pr = tw - g.pl;
    }
    g.OH = (c->H + g.pt + g.pb - c->kh) / c->sh + 1;
    g.OW = (c->W + g.pl + g.pr - c->kw) / c->sw + 1;
    return g;
}

static void conv_ref_fn(const void *cfg, int N, const double *x, const double *p,
                        const int32_t *labels, double *out)
{
    const conv_geom *g = cfg;
    const double *w = p, *b = g->bias ? p + g->F * g->C * g->kh * g->kw : NULL;
    ref_conv(g, N, x, w, b, out);
}

static lp_graph *build_conv(const conv_case *c)
{
    lp_value *a = attrs_new();
    attr_i(a, "filters", c->F);
    attr_int_or_pair(a, "kernel", c->kh, c->kw);
    if (c->sh != 1 || c->sw != 1) attr_int_or_pair(a, "stride", c->sh, c->sw);
    if (c->same) attr_s(a, "padding", "same");
    else if (c->ph || c->pw) attr_int_or_pair(a, "padding", c->ph, c->pw);
    if (!c->bias) attr_s(a, "bias", "false");
    return build_ok("conv2d", a, lp_shape3(c->C, c->H, c->W), 1, c->N);
}

ParameterizedTestParameters(ops, conv_sweep)
{
    static conv_case cases[] = {
        /* N  C  H  W  F kh kw sh sw ph pw same bias */
        {2, 3, 7, 6, 4, 3, 3, 1, 1, 0, 0, 0, 1},  /* multi-channel, plain */
        {3, 2, 8, 7, 3, 3, 2, 2, 2, 1, 1, 0, 1},  /* non-square kernel, stride 2, padding 1 */
        {2, 3, 7, 9, 2, 3, 3, 2, 2, 0, 0, 1, 1},  /* same, stride 2, odd sizes */
        {2, 2, 6, 6, 3, 4, 4, 1, 1, 0, 0, 1, 1},  /* same with an even kernel: 1 top, 2 bottom */
        {3, 2, 7, 8, 2, 2, 2, 2, 2, 0, 0, 1, 0},  /* same, even kernel, stride 2, no bias */
        {1, 4, 5, 4, 2, 1, 1, 1, 1, 0, 0, 0, 0},  /* 1x1, batch 1 */
        {3, 2, 9, 8, 3, 2, 3, 2, 1, 0, 2, 0, 1},  /* stride [2, 1], padding [0, 2] */
        {5, 1, 6, 5, 2, 3, 3, 3, 3, 1, 1, 0, 1},  /* stride 3, batch 5 over 2 threads */
    };
    return cr_make_param_array(conv_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(conv_case *c, ops, conv_sweep)
{
    conv_geom g = geom_of(c);
    lp_graph *graph = build_conv(c);
    lp_shape s = lp_graph_final_shape(graph);
    cr_assert(s.dims[0] == c->F && s.dims[1] == g.OH && s.dims[2] == g.OW,
              "output [%d, %d, %d], expected [%d, %d, %d]", s.dims[0], s.dims[1], s.dims[2], c->F,
              g.OH, g.OW);
    cr_assert_eq((long)lp_graph_param_floats(graph),
                 (long)c->F * c->C * c->kh * c->kw + (c->bias ? c->F : 0));
    check_op(graph, c->N, &g, conv_ref_fn, NULL, 1000 + (uint64_t)c->kh * 10 + c->sh);
}

typedef struct pool_case {
    int N, C, H, W, kh, kw, sh, sw; /* sh == 0: stride omitted (= size) */
} pool_case;

static void pool_ref_fn(const void *cfg, int N, const double *x, const double *p,
                        const int32_t *labels, double *out)
{
    ref_maxpool(cfg, N, x, out);
}

ParameterizedTestParameters(ops, maxpool_sweep)
{
    static pool_case cases[] = {
        {2, 3, 7, 9, 2, 2, 0, 0},  /* default stride, odd sizes floor to 3x4 */
        {2, 2, 7, 7, 3, 3, 2, 2},  /* overlapping windows: a max may feed two outputs */
        {3, 2, 6, 9, 2, 3, 1, 2},  /* non-square window and stride */
        {1, 1, 8, 8, 3, 3, 3, 3},  /* floor drops 2 rows and columns */
    };
    return cr_make_param_array(pool_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(pool_case *c, ops, maxpool_sweep)
{
    int sh = c->sh ? c->sh : c->kh, sw = c->sw ? c->sw : c->kw;
    pool_geom g = {c->C, c->H, c->W, c->kh, c->kw, sh, sw, (c->H - c->kh) / sh + 1,
                   (c->W - c->kw) / sw + 1};
    lp_value *a = attrs_new();
    attr_int_or_pair(a, "size", c->kh, c->kw);
    if (c->sh) attr_int_or_pair(a, "stride", c->sh, c->sw);
    lp_graph *graph = build_ok("maxpool", a, lp_shape3(c->C, c->H, c->W), 1, c->N);
    lp_shape s = lp_graph_final_shape(graph);
    cr_assert(s.dims[0] == c->C && s.dims[1] == g.OH && s.dims[2] == g.OW);
    check_op(graph, c->N, &g, pool_ref_fn, NULL, 77 + (uint64_t)c->kh);
}

static void relu_ref_fn(const void *cfg, int N, const double *x, const double *p,
                        const int32_t *labels, double *out)
{
    ref_relu(*(const long *)cfg * N, x, out);
}

Test(ops, relu_forward_backward)
{
    long per = 3 * 4 * 5;
    check_op(build_ok("relu", NULL, lp_shape3(3, 4, 5), 1, 2), 2, &per, relu_ref_fn, NULL, 5);
}

static void copy_ref_fn(const void *cfg, int N, const double *x, const double *p,
                        const int32_t *labels, double *out)
{
    memcpy(out, x, (size_t)(*(const long *)cfg * N) * sizeof *out);
}

Test(ops, flatten_forward_backward)
{
    long per = 3 * 4 * 5;
    lp_graph *g = build_ok("flatten", NULL, lp_shape3(3, 4, 5), 1, 2);
    lp_shape s = lp_graph_final_shape(g);
    cr_assert(s.ndim == 1 && s.dims[0] == 60, "flatten gives [C*H*W]");
    check_op(g, 2, &per, copy_ref_fn, NULL, 6);
}

static void double_ref_fn(const void *cfg, int N, const double *x, const double *p,
                          const int32_t *labels, double *out)
{
    for (long i = 0; i < *(const long *)cfg * N; i++) out[i] = 2.0 * x[i];
}

Test(ops, add_same_input_twice)
{
    /* add(x, x): slot 0 writes the gradient, slot 1 adds to it: dx = 2 r. */
    long per = 2 * 3 * 3;
    check_op(build_ok("add", NULL, lp_shape3(2, 3, 3), 2, 2), 2, &per, double_ref_fn, NULL, 7);
}

typedef struct dense_cfg {
    int I, U, bias;
} dense_cfg;

static void dense_ref_fn(const void *cfg, int N, const double *x, const double *p,
                         const int32_t *labels, double *out)
{
    const dense_cfg *d = cfg;
    ref_dense(N, d->I, d->U, x, p, d->bias ? p + d->I * d->U : NULL, out);
}

Test(ops, dense_forward_backward)
{
    for (int bias = 0; bias <= 1; bias++)
        for (int N = 1; N <= 3; N += 2) {
            dense_cfg d = {7, 5, bias};
            lp_value *a = attrs_new();
            attr_i(a, "units", 5);
            if (!bias) attr_s(a, "bias", "false");
            lp_graph *g = build_ok("dense", a, lp_shape1(7), 1, N);
            cr_assert_str_eq(lp_graph_param_name(g, 0), "node.weight");
            lp_shape ws = lp_graph_param_shape(g, 0);
            cr_assert(ws.ndim == 2 && ws.dims[0] == 5 && ws.dims[1] == 7, "weight is [units, inputs]");
            cr_assert_eq(lp_graph_num_params(g), bias ? 2 : 1);
            check_op(g, N, &d, dense_ref_fn, NULL, 8 + (uint64_t)N);
        }
}

static void sce_ref_fn(const void *cfg, int N, const double *x, const double *p,
                       const int32_t *labels, double *out)
{
    ref_sce(N, *(const int *)cfg, x, labels, out);
}

Test(ops, softmax_cross_entropy_forward_backward)
{
    int K = 10;
    const int32_t labels[4] = {3, 0, 9, 3};
    lp_graph *g = build_ok("softmax_cross_entropy", NULL, lp_shape1(K), 1, 4);
    lp_shape s = lp_graph_final_shape(g);
    cr_assert(s.ndim == 1 && s.dims[0] == 1, "one loss per sample");
    check_op(g, 4, &K, sce_ref_fn, labels, 9);
}

Test(ops, softmax_cross_entropy_is_stable_for_huge_logits)
{
    const float z[2 * 3] = {1e4f, -1e4f, 0.0f, -1e4f, -1e4f, -1e4f};
    const int32_t labels[2] = {1, 2};
    lp_graph *g = build_ok("softmax_cross_entropy", NULL, lp_shape1(3), 1, 2);
    lp_graph_forward(g, z, labels, 2, true);
    const float *loss = lp_graph_final(g);
    cr_assert_float_eq(loss[0], 2e4f, 1e-3f, "-log softmax of a 2e4 gap is 2e4, got %g", loss[0]);
    cr_assert_float_eq(loss[1], logf(3.0f), 1e-6f, "equal logits: log 3, got %g", loss[1]);
    const float seed[2] = {1, 1};
    lp_graph_backward(g, seed);
    const float *dz = lp_graph_input_grad(g);
    const float want[6] = {1, -1, 0, 1.0f / 3, 1.0f / 3, 1.0f / 3 - 1};
    for (int i = 0; i < 6; i++) {
        cr_assert(isfinite(dz[i]), "gradient %d is not finite", i);
        cr_assert_float_eq(dz[i], want[i], 1e-6f, "dz[%d] = %g, expected %g", i, dz[i], want[i]);
    }
    lp_graph_free(g);
}

/* ---- 4. the checker can fail -------------------------------------------- */

Test(ops, gradcheck_rejects_a_wrong_gradient)
{
    conv_case c = {2, 2, 6, 5, 3, 3, 3, 1, 1, 1, 1, 0, 1};
    conv_geom geom = geom_of(&c);
    lp_graph *g = build_conv(&c);
    lp_graph_init_params(g, 3);
    lp_rng rng;
    lp_rng_seed(&rng, 3);
    long in_len = numel(lp_graph_input_shape(g)) * c.N, out_len = numel(lp_graph_final_shape(g)) * c.N;
    long p_len = (long)lp_graph_param_floats(g);
    float *xf = malloc((size_t)in_len * sizeof *xf), *rf = malloc((size_t)out_len * sizeof *rf);
    fill_normal(&rng, xf, in_len, 1.0);
    fill_normal(&rng, rf, out_len, 1.0);
    op_harness h = {&geom, conv_ref_fn, c.N, in_len, out_len, malloc((size_t)in_len * sizeof(double)),
                    malloc((size_t)p_len * sizeof(double)), malloc((size_t)out_len * sizeof(double)),
                    malloc((size_t)out_len * sizeof(double)), NULL};
    gc_widen(xf, h.x, in_len);
    gc_widen(lp_graph_params(g), h.p, p_len);
    gc_widen(rf, h.r, out_len);
    lp_graph_forward(g, xf, NULL, c.N, true);
    lp_graph_backward(g, rf);
    double *gw = malloc((size_t)p_len * sizeof *gw);
    gc_widen(lp_graph_grads(g), gw, p_len);

    gc_result ok = gc_check(h.p, p_len, gw, harness_loss, &h, &GC_DEFAULTS);
    cr_assert(ok.passed, "the true gradient passes (max err %.3g)", ok.max_err);
    cr_assert(ok.max_err < 1e-5, "and with room to spare: %.3g", ok.max_err);

    /* One entry off by 1% relative must fail; so must 1e-3 (10x the tolerance). */
    long i = 0;
    while (fabs(gw[i]) < 0.1) i++;
    double saved = gw[i];
    gw[i] = saved * (1 + 1e-2);
    gc_result bad = gc_check(h.p, p_len, gw, harness_loss, &h, &GC_DEFAULTS);
    cr_assert_not(bad.passed, "a 1%% error in entry %ld went unnoticed", i);
    cr_assert_eq(bad.worst, i, "the checker points at the wrong entry");
    gw[i] = saved * (1 + 1e-3);
    bad = gc_check(h.p, p_len, gw, harness_loss, &h, &GC_DEFAULTS);
    cr_assert_not(bad.passed, "a 0.1%% error in entry %ld went unnoticed", i);
    free(xf); free(rf); free(gw);
    free(h.x); free(h.p); free(h.r); free(h.out);
    lp_graph_free(g);
}

/* ---- conv2d's threaded backward is reproducible -------------------------- */

Test(ops, conv_backward_is_deterministic_per_thread_count)
{
    conv_case c = {5, 3, 9, 9, 4, 3, 3, 1, 1, 1, 1, 0, 1};
    lp_graph *g = build_conv(&c);
    lp_graph_init_params(g, 11);
    lp_rng rng;
    lp_rng_seed(&rng, 11);
    long in_len = numel(lp_graph_input_shape(g)) * c.N, out_len = numel(lp_graph_final_shape(g)) * c.N;
    size_t p_len = lp_graph_param_floats(g);
    float *x = malloc((size_t)in_len * sizeof *x), *r = malloc((size_t)out_len * sizeof *r);
    float *g1 = malloc(p_len * sizeof *g1), *g2 = malloc(p_len * sizeof *g2);
    fill_normal(&rng, x, in_len, 1.0);
    fill_normal(&rng, r, out_len, 1.0);
    cr_assert_eq(lp_threads_init(2), 2);
    lp_graph_forward(g, x, NULL, c.N, true);
    lp_graph_backward(g, r);
    memcpy(g1, lp_graph_grads(g), p_len * sizeof *g1);
    lp_graph_forward(g, x, NULL, c.N, true);
    lp_graph_backward(g, r);
    cr_assert_eq(memcmp(g1, lp_graph_grads(g), p_len * sizeof *g1), 0, "same threads, same bits");
    lp_threads_init(1);
    lp_graph_forward(g, x, NULL, c.N, true);
    lp_graph_backward(g, r);
    memcpy(g2, lp_graph_grads(g), p_len * sizeof *g2);
    for (size_t i = 0; i < p_len; i++)
        cr_assert(fabsf(g1[i] - g2[i]) <= 1e-5f * fmaxf(fabsf(g1[i]), 1.0f),
                  "1 vs 2 threads differ beyond rounding at %zu: %g vs %g", i, g1[i], g2[i]);
    free(x); free(r); free(g1); free(g2);
    lp_graph_free(g);
}

/* ---- 5. graphs: branching with fan-out, and the two-conv MNIST net ------- */

/* x [2,6,6] -> a = conv(x) 3x3 pad 1, b = conv(x) 3x1 same, s = a + relu(b),
 * d = x + x, out = s + d: the image's gradient gathers from four input slots. */
typedef struct branch_ctx {
    conv_geom ga, gb;
    size_t wa, ba, wb, bb; /* parameter offsets */
    int N;
    long in_len, out_len;
    double *x, *p, *r, *ya, *yb;
} branch_ctx;

static double branch_loss(void *ctx)
{
    branch_ctx *c = ctx;
    ref_conv(&c->ga, c->N, c->x, c->p + c->wa, c->p + c->ba, c->ya);
    ref_conv(&c->gb, c->N, c->x, c->p + c->wb, c->p + c->bb, c->yb);
    double s = 0;
    for (long i = 0; i < c->out_len; i++)
        s += (c->ya[i] + (c->yb[i] > 0 ? c->yb[i] : 0.0) + 2.0 * c->x[i]) * c->r[i];
    return s;
}

Test(ops, branching_graph_accumulates_gradients)
{
    const int N = 2;
    lp_model_spec spec = {.input = lp_shape3(2, 6, 6), .input_grad = true};
    lp_value *a = attrs_new();
    attr_i(a, "filters", 2); attr_i(a, "kernel", 3); attr_i(a, "padding", 1);
    lp_value *b = attrs_new();
    attr_i(b, "filters", 2); attr_pair(b, "kernel", 3, 1); attr_s(b, "padding", "same");
    const char *in[] = {"input"}, *rb[] = {"b"}, *ab[] = {"a", "rb"}, *xx[] = {"input", "input"},
               *sd[] = {"s", "d"};
    cr_assert_eq(lp_model_spec_add(&spec, "a", "conv2d", in, 1, a), LP_OK);
    cr_assert_eq(lp_model_spec_add(&spec, "b", "conv2d", in, 1, b), LP_OK);
    cr_assert_eq(lp_model_spec_add(&spec, "rb", "relu", rb, 1, NULL), LP_OK);
    cr_assert_eq(lp_model_spec_add(&spec, "s", "add", ab, 2, NULL), LP_OK);
    cr_assert_eq(lp_model_spec_add(&spec, "d", "add", xx, 2, NULL), LP_OK);
    cr_assert_eq(lp_model_spec_add(&spec, "out", "add", sd, 2, NULL), LP_OK);
    lp_error err = {0};
    lp_graph *g = NULL;
    cr_assert_eq(lp_graph_build(&spec, &g, &err), LP_OK, "%s", err.msg);
    lp_model_spec_free(&spec);
    cr_assert_eq(lp_graph_plan(g, N, &err), LP_OK);
    lp_graph_init_params(g, 21);

    conv_case ca = {N, 2, 6, 6, 2, 3, 3, 1, 1, 1, 1, 0, 1}, cb = {N, 2, 6, 6, 2, 3, 1, 1, 1, 0, 0, 1, 1};
    branch_ctx c = {geom_of(&ca), geom_of(&cb), param_off(g, "a.weight"), param_off(g, "a.bias"),
                    param_off(g, "b.weight"), param_off(g, "b.bias"), N, 2 * 36 * N, 2 * 36 * N,
                    NULL, NULL, NULL, NULL, NULL};
    long p_len = (long)lp_graph_param_floats(g);
    lp_rng rng;
    lp_rng_seed(&rng, 21);
    float *pf = lp_graph_params(g);
    for (long i = 0; i < p_len; i++)
        if (pf[i] == 0.0f) pf[i] = (float)(0.3 * lp_rng_normal(&rng));
    float *xf = malloc((size_t)c.in_len * sizeof *xf), *rf = malloc((size_t)c.out_len * sizeof *rf);
    fill_normal(&rng, xf, c.in_len, 1.0);
    fill_normal(&rng, rf, c.out_len, 1.0);
    c.x = malloc((size_t)c.in_len * sizeof(double));
    c.p = malloc((size_t)p_len * sizeof(double));
    c.r = malloc((size_t)c.out_len * sizeof(double));
    c.ya = malloc((size_t)c.out_len * sizeof(double));
    c.yb = malloc((size_t)c.out_len * sizeof(double));
    gc_widen(xf, c.x, c.in_len);
    gc_widen(pf, c.p, p_len);
    gc_widen(rf, c.r, c.out_len);

    lp_graph_forward(g, xf, NULL, N, true);
    branch_loss(&c);
    for (long i = 0; i < c.out_len; i++) {
        double want = c.ya[i] + (c.yb[i] > 0 ? c.yb[i] : 0.0) + 2.0 * c.x[i];
        cr_assert(fabs(lp_graph_final(g)[i] - want) <= 1e-5 * fmax(fabs(want), 1.0), "out[%ld]", i);
    }
    lp_graph_backward(g, rf);
    double *gin = malloc((size_t)c.in_len * sizeof *gin), *gp = malloc((size_t)p_len * sizeof *gp);
    gc_widen(lp_graph_input_grad(g), gin, c.in_len);
    gc_widen(lp_graph_grads(g), gp, p_len);
    gc_result r = gc_check(c.x, c.in_len, gin, branch_loss, &c, &GC_DEFAULTS);
    cr_assert(r.passed, "input grad: err %.3g at %ld (%.9g vs %.9g)", r.max_err, r.worst,
              r.worst_analytic, r.worst_numeric);
    cr_assert(r.skipped * 20 <= r.checked);
    r = gc_check(c.p, p_len, gp, branch_loss, &c, &GC_DEFAULTS);
    cr_assert(r.passed, "param grad: err %.3g at %ld (%.9g vs %.9g)", r.max_err, r.worst,
              r.worst_analytic, r.worst_numeric);
    free(xf); free(rf); free(gin); free(gp);
    free(c.x); free(c.p); free(c.r); free(c.ya); free(c.yb);
    lp_graph_free(g);
}

/* The two-conv net of configs/mnist_two_conv.yaml, built by hand. */
static lp_graph *build_mnist(lp_error *err)
{
    lp_model_spec spec = {.input = lp_shape3(1, 28, 28), .input_grad = true};
    spec.loss = strdup("softmax_cross_entropy");
    struct { const char *name, *op; const char *k1; int v1; const char *k2; int v2; } layers[] = {
        {"conv1", "conv2d", "filters", 8, "kernel", 3}, {"relu1", "relu", NULL, 0, NULL, 0},
        {"pool1", "maxpool", "size", 2, "stride", 2},   {"conv2", "conv2d", "filters", 16, "kernel", 3},
        {"relu2", "relu", NULL, 0, NULL, 0},            {"pool2", "maxpool", "size", 2, NULL, 0},
        {"flat", "flatten", NULL, 0, NULL, 0},          {"fc1", "dense", "units", 64, NULL, 0},
        {"relu3", "relu", NULL, 0, NULL, 0},            {"fc2", "dense", "units", 10, NULL, 0},
    };
    const char *prev = "input";
    for (size_t i = 0; i < sizeof layers / sizeof layers[0]; i++) {
        lp_value *a = NULL;
        if (layers[i].k1) { a = attrs_new(); attr_i(a, layers[i].k1, layers[i].v1); }
        if (layers[i].k2) attr_i(a, layers[i].k2, layers[i].v2);
        cr_assert_eq(lp_model_spec_add(&spec, layers[i].name, layers[i].op, &prev, 1, a), LP_OK);
        prev = layers[i].name;
    }
    lp_graph *g = NULL;
    lp_status s = lp_graph_build(&spec, &g, err);
    lp_model_spec_free(&spec);
    cr_assert_eq(s, LP_OK, "%s", err->msg);
    return g;
}

typedef struct mnist_ctx {
    int N;
    const int32_t *labels;
    double *x, *p;
    size_t off[8]; /* conv1.w, conv1.b, conv2.w, conv2.b, fc1.w, fc1.b, fc2.w, fc2.b */
    double *c1, *p1, *c2, *p2, *h1, *z, *loss;
} mnist_ctx;

/* Mean cross-entropy of the two-conv net, all in double with the naive functions. */
static double mnist_loss(void *ctx)
{
    mnist_ctx *m = ctx;
    const int N = m->N;
    conv_geom g1 = {1, 28, 28, 8, 3, 3, 1, 1, 0, 0, 0, 0, 26, 26, 1};
    conv_geom g2 = {8, 13, 13, 16, 3, 3, 1, 1, 0, 0, 0, 0, 11, 11, 1};
    pool_geom q1 = {8, 26, 26, 2, 2, 2, 2, 13, 13}, q2 = {16, 11, 11, 2, 2, 2, 2, 5, 5};
    const double *p = m->p;
    ref_conv(&g1, N, m->x, p + m->off[0], p + m->off[1], m->c1);
    ref_relu((long)N * 8 * 26 * 26, m->c1, m->c1);
    ref_maxpool(&q1, N, m->c1, m->p1);
    ref_conv(&g2, N, m->p1, p + m->off[2], p + m->off[3], m->c2);
    ref_relu((long)N * 16 * 11 * 11, m->c2, m->c2);
    ref_maxpool(&q2, N, m->c2, m->p2); /* [N, 400]: flatten is free in NCHW */
    ref_dense(N, 400, 64, m->p2, p + m->off[4], p + m->off[5], m->h1);
    ref_relu((long)N * 64, m->h1, m->h1);
    ref_dense(N, 64, 10, m->h1, p + m->off[6], p + m->off[7], m->z);
    ref_sce(N, 10, m->z, m->labels, m->loss);
    double s = 0;
    for (int n = 0; n < N; n++) s += m->loss[n];
    return s / N;
}

Test(ops, mnist_two_conv_counts_27562_params)
{
    lp_error err = {0};
    lp_graph *g = build_mnist(&err);
    cr_assert_eq(lp_graph_param_floats(g), 27562);
    cr_assert_eq(lp_graph_num_params(g), 8);
    lp_shape s = lp_graph_logits_shape(g);
    cr_assert(s.ndim == 1 && s.dims[0] == 10);
    lp_graph_free(g);
}

Test(ops, mnist_two_conv_gradients_end_to_end, .timeout = 120)
{
    const int N = 2;
    const int32_t labels[2] = {7, 2};
    lp_error err = {0};
    lp_graph *g = build_mnist(&err);
    cr_assert_eq(lp_graph_plan(g, N, &err), LP_OK);
    lp_graph_init_params(g, 42);
    long p_len = (long)lp_graph_param_floats(g);
    lp_rng rng;
    lp_rng_seed(&rng, 42);
    float *pf = lp_graph_params(g);
    for (long i = 0; i < p_len; i++)
        if (pf[i] == 0.0f) pf[i] = (float)(0.1 * lp_rng_normal(&rng));
    float x[2 * 784];
    for (int i = 0; i < 2 * 784; i++) x[i] = (float)lp_rng_uniform(&rng);

    const char *names[8] = {"conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias",
                            "fc1.weight",   "fc1.bias",   "fc2.weight",   "fc2.bias"};
    mnist_ctx m = {.N = N, .labels = labels};
    for (int k = 0; k < 8; k++) {
        cr_assert_str_eq(lp_graph_param_name(g, k), names[k], "parameters in declaration order");
        m.off[k] = lp_graph_param_offset(g, k);
    }
    m.x = malloc(2 * 784 * sizeof(double));
    m.p = malloc((size_t)p_len * sizeof(double));
    m.c1 = malloc((size_t)N * 8 * 26 * 26 * sizeof(double));
    m.p1 = malloc((size_t)N * 8 * 13 * 13 * sizeof(double));
    m.c2 = malloc((size_t)N * 16 * 11 * 11 * sizeof(double));
    m.p2 = malloc((size_t)N * 400 * sizeof(double));
    m.h1 = malloc((size_t)N * 64 * sizeof(double));
    m.z = malloc((size_t)N * 10 * sizeof(double));
    m.loss = malloc((size_t)N * sizeof(double));
    gc_widen(x, m.x, 2 * 784);
    gc_widen(pf, m.p, p_len);

    float loss = lp_graph_forward(g, x, labels, N, true);
    double ref = mnist_loss(&m);
    cr_assert(fabs(loss - ref) <= 1e-5 * fmax(fabs(ref), 1.0), "loss %.9g vs reference %.9g", loss, ref);
    for (int i = 0; i < N * 10; i++)
        cr_assert(fabs(lp_graph_logits(g)[i] - m.z[i]) <= 1e-5 * fmax(fabs(m.z[i]), 1.0), "logit %d", i);
    lp_graph_backward(g, NULL); /* mean loss: dout = 1/N */

    double *gin = malloc(2 * 784 * sizeof(double)), *gp = malloc((size_t)p_len * sizeof(double));
    gc_widen(lp_graph_input_grad(g), gin, 2 * 784);
    gc_widen(lp_graph_grads(g), gp, p_len);
    gc_options o = GC_DEFAULTS;
    o.max_entries = 150; /* the double net costs ~1 MFLOP per evaluation */
    gc_result r = gc_check(m.x, 2 * 784, gin, mnist_loss, &m, &o);
    cr_expect(r.passed, "input: err %.3g at %ld (%.9g vs %.9g)", r.max_err, r.worst, r.worst_analytic,
              r.worst_numeric);
    cr_expect(r.skipped * 10 <= r.checked, "input: %ld skipped", r.skipped);
    for (int k = 0; k < 8; k++) {
        long len = numel(lp_graph_param_shape(g, k));
        r = gc_check(m.p + m.off[k], len, gp + m.off[k], mnist_loss, &m, &o);
        cr_expect(r.passed, "%s: err %.3g at %ld (%.9g vs %.9g), %ld checked", names[k], r.max_err,
                  r.worst, r.worst_analytic, r.worst_numeric, r.checked);
        cr_expect(r.skipped * 10 <= r.checked, "%s: %ld skipped", names[k], r.skipped);
    }
    free(m.x); free(m.p); free(m.c1); free(m.p1); free(m.c2); free(m.p2); free(m.h1); free(m.z);
    free(m.loss); free(gin); free(gp);
    lp_graph_free(g);
}

/* ---- 6. bad specs are errors that name the node ------------------------- */

static void expect_error(const char *op, lp_value *attrs, lp_shape in, int n_inputs,
                         lp_status want, const char *const *fragments)
{
    lp_error err = {0};
    lp_graph *g = NULL;
    lp_status s = build_one("bad1", op, attrs, in, n_inputs, &g, &err);
    cr_assert_eq(s, want, "status %s, expected %s (%s)", lp_status_name(s), lp_status_name(want), err.msg);
    cr_assert_null(g);
    cr_assert(strstr(err.msg, "'bad1'"), "message names the node: %s", err.msg);
    for (int i = 0; fragments[i]; i++)
        cr_assert(strstr(err.msg, fragments[i]), "message lacks '%s': %s", fragments[i], err.msg);
}

Test(ops, missing_required_attributes)
{
    lp_value *a = attrs_new();
    attr_i(a, "kernel", 3);
    expect_error("conv2d", a, lp_shape3(1, 8, 8), 1, LP_ERR_CONFIG,
                 (const char *[]){"filters", "missing", NULL});
    a = attrs_new();
    attr_i(a, "filters", 3);
    expect_error("conv2d", a, lp_shape3(1, 8, 8), 1, LP_ERR_CONFIG, (const char *[]){"kernel", NULL});
    expect_error("dense", NULL, lp_shape1(8), 1, LP_ERR_CONFIG, (const char *[]){"units", NULL});
    expect_error("maxpool", NULL, lp_shape3(1, 8, 8), 1, LP_ERR_CONFIG, (const char *[]){"size", NULL});
}

Test(ops, kernel_larger_than_input)
{
    lp_value *a = attrs_new();
    attr_i(a, "filters", 2);
    attr_i(a, "kernel", 5);
    expect_error("conv2d", a, lp_shape3(1, 3, 3), 1, LP_ERR_SHAPE,
                 (const char *[]){"kernel 5x5 is larger than the 3x3 input (padding 0)", NULL});
    /* Padding 1 makes the 3x3 input 5x5: then it fits. */
    a = attrs_new();
    attr_i(a, "filters", 2);
    attr_i(a, "kernel", 5);
    attr_i(a, "padding", 1);
    lp_graph *g = build_ok("conv2d", a, lp_shape3(1, 3, 3), 1, 1);
    cr_assert_eq(lp_graph_final_shape(g).dims[1], 1);
    lp_graph_free(g);
    a = attrs_new();
    attr_i(a, "size", 4);
    expect_error("maxpool", a, lp_shape3(2, 3, 5), 1, LP_ERR_SHAPE,
                 (const char *[]){"4x4", "3x5", NULL});
}

Test(ops, bad_attribute_values)
{
    struct { const char *key, *text, *fragment; lp_status want; } bad[] = {
        {"filters", "0", "filters must be at least 1", LP_ERR_SHAPE},
        {"stride", "0", "stride must be at least 1", LP_ERR_SHAPE},
        {"padding", "-1", "negative", LP_ERR_SHAPE},
        {"padding", "full", "'same'", LP_ERR_SHAPE},
        {"bias", "maybe", "true or false", LP_ERR_CONFIG},   /* a wrong type, like any typed read */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lp_value *a = attrs_new();
        attr_i(a, "filters", 2);
        attr_i(a, "kernel", 3);
        attr_s(a, bad[i].key, bad[i].text);
        expect_error("conv2d", a, lp_shape3(1, 8, 8), 1, bad[i].want,
                     (const char *[]){bad[i].fragment, NULL});
    }
    lp_value *a = attrs_new();
    attr_i(a, "filters", 2);
    attr_i(a, "kernel", 3);
    expect_error("conv2d", a, lp_shape1(64), 1, LP_ERR_SHAPE, (const char *[]){"[C, H, W]", NULL});
}

Test(ops, dense_on_unflattened_input_says_add_flatten)
{
    lp_value *a = attrs_new();
    attr_i(a, "units", 10);
    expect_error("dense", a, lp_shape3(16, 5, 5), 1, LP_ERR_SHAPE,
                 (const char *[]){"[16, 5, 5]", "flatten", NULL});
}

Test(ops, add_of_mismatched_shapes_names_both)
{
    lp_model_spec spec = {.input = lp_shape3(2, 4, 4)};
    lp_value *a = attrs_new();
    attr_i(a, "filters", 3);
    attr_i(a, "kernel", 1);
    const char *in[] = {"input"}, *two[] = {"input", "c"};
    cr_assert_eq(lp_model_spec_add(&spec, "c", "conv2d", in, 1, a), LP_OK);
    cr_assert_eq(lp_model_spec_add(&spec, "sum1", "add", two, 2, NULL), LP_OK);
    lp_error err = {0};
    lp_graph *g = NULL;
    cr_assert_eq(lp_graph_build(&spec, &g, &err), LP_ERR_SHAPE, "%s", err.msg);
    lp_model_spec_free(&spec);
    cr_assert(strstr(err.msg, "'sum1'") && strstr(err.msg, "[2, 4, 4]") && strstr(err.msg, "[3, 4, 4]"),
              "message: %s", err.msg);
}
