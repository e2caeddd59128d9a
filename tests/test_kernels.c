/* test_kernels.c - the fast paths of conv2d (direct, stride 1), maxpool (2x2/2),
 * relu (bit mask) and dense (split over threads) against naive float64 loops, on
 * shapes that reach every tail: outputs wider than a 16-lane vector, tiles of 1, 2
 * and 3 vectors, filter and channel counts that are not multiples of 8, asymmetric
 * padding, odd pool inputs, ties and NaN, and input gradients that are written (one
 * consumer) or added (two).
 *
 * Each graph is `a = op(input)` or `a = op(input), b = op(input), s = add(a, b)`;
 * the gradient of sum(out * r) is checked against the loops directly (the finite
 * difference checks live in test_ops.c). Runs with 1 and with 3 threads.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include "compute.h"
#include "conv2d_winograd.h"
#include "graph.h"
#include "rng.h"
#include "shape.h"
#include "value.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const lp_loc NOLOC = {NULL, 0, 0};

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

/* One op on the input, or two (same attributes) added: the input gradient is then
 * written by one consumer and added by the other. pre: each op reads pre(input)
 * instead (a ReLU that a max-pool folds in), or NULL. */
static lp_graph *build_on(const char *pre, const char *op, lp_value *attrs, lp_shape in, int twice, int batch)
{
    lp_model_spec spec = {.input = in, .input_grad = true};
    const char *names[2][2] = {{"a", "b"}, {"pre_a", "pre_b"}}, *ab[2] = {"a", "b"};
    for (int k = 0; k <= twice; k++) {
        const char *x[1] = {"input"};
        if (pre) {
            cr_assert_eq(lp_model_spec_add(&spec, names[1][k], pre, x, 1, NULL), LP_OK);
            x[0] = names[1][k];
        }
        cr_assert_eq(lp_model_spec_add(&spec, names[0][k], op, x, 1, attrs ? lp_value_clone(attrs) : NULL), LP_OK);
    }
    if (twice) cr_assert_eq(lp_model_spec_add(&spec, "s", "add", ab, 2, NULL), LP_OK);
    lp_value_free(attrs);
    lp_error err = {0};
    lp_graph *g = NULL;
    cr_assert_eq(lp_graph_build(&spec, &g, &err), LP_OK, "%s", err.msg);
    lp_model_spec_free(&spec);
    cr_assert_eq(lp_graph_plan(g, batch, &err), LP_OK, "%s", err.msg);
    return g;
}

static lp_graph *build(const char *op, lp_value *attrs, lp_shape in, int twice, int batch)
{
    return build_on(NULL, op, attrs, in, twice, batch);
}

static void fill(lp_rng *rng, float *v, long n)
{
    for (long i = 0; i < n; i++) v[i] = (float)lp_rng_normal(rng);
}

/* |got - want| <= tol * max(1, max |want|) for every element. */
static void expect_close(const char *what, const float *got, const double *want, long n, double tol)
{
    double scale = 1.0;
    for (long i = 0; i < n; i++) scale = fmax(scale, fabs(want[i]));
    for (long i = 0; i < n; i++)
        cr_assert(fabs(got[i] - want[i]) <= tol * scale, "%s[%ld] = %.7g, expected %.7g", what, i,
                  (double)got[i], want[i]);
}

/* ---- conv2d, stride 1 ---------------------------------------------------- */

typedef struct conv_case {
    int N, C, H, W, F, kh, kw;
    int pt, pb, pl, pr; /* padding as it results (same: computed here too) */
    int same;           /* padding: same (params cross into the test process: no pointers) */
    int bias, twice, threads;
} conv_case;

static lp_value *conv_attrs(const conv_case *c)
{
    lp_value *a = lp_value_new_map(NOLOC);
    attr_i(a, "filters", c->F);
    lp_value *k = lp_value_new_list(NOLOC);
    char buf[16];
    snprintf(buf, sizeof buf, "%d", c->kh);
    lp_value_list_push(k, lp_value_new_scalar(buf, NOLOC));
    snprintf(buf, sizeof buf, "%d", c->kw);
    lp_value_list_push(k, lp_value_new_scalar(buf, NOLOC));
    cr_assert_eq(lp_value_map_set(a, "kernel", NOLOC, k), 0);
    if (c->same) attr_s(a, "padding", "same");
    else if (c->pt || c->pl) {
        lp_value *p = lp_value_new_list(NOLOC);
        snprintf(buf, sizeof buf, "%d", c->pt);
        lp_value_list_push(p, lp_value_new_scalar(buf, NOLOC));
        snprintf(buf, sizeof buf, "%d", c->pl);
        lp_value_list_push(p, lp_value_new_scalar(buf, NOLOC));
        cr_assert_eq(lp_value_map_set(a, "padding", NOLOC, p), 0);
    }
    if (!c->bias) attr_s(a, "bias", "false");
    return a;
}

ParameterizedTestParameters(kernels, conv_direct)
{
    static conv_case cases[] = {
        /* N  C   H   W   F kh kw pt pb pl pr same bias twice threads */
        {3, 1, 28, 28, 8, 3, 3, 0, 0, 0, 0, 0, 1, 0, 1},    /* MNIST conv1 */
        {3, 8, 13, 13, 16, 3, 3, 0, 0, 0, 0, 0, 1, 1, 3},   /* MNIST conv2, dx added */
        {2, 3, 9, 40, 5, 3, 3, 0, 0, 0, 0, 0, 1, 1, 1},     /* rows wider than a vector, F % 8 */
        {4, 9, 7, 6, 17, 2, 3, 1, 1, 2, 2, 0, 0, 0, 3},     /* padding [1, 2], no bias */
        {2, 2, 5, 6, 3, 2, 2, 3, 3, 3, 3, 0, 1, 1, 1},      /* padding wider than the kernel */
        {2, 2, 10, 11, 12, 4, 4, 0, 0, 0, 0, 1, 1, 1, 3},   /* same, even kernel: 1 top, 2 bottom */
        {1, 5, 6, 5, 3, 1, 1, 0, 0, 0, 0, 0, 1, 1, 1},      /* 1x1 */
        {5, 3, 12, 12, 24, 5, 5, 2, 2, 2, 2, 0, 1, 1, 3},   /* 5x5, 3 groups of 8 */
        {2, 2, 3, 20, 9, 3, 1, 0, 0, 0, 0, 0, 1, 0, 1},     /* one output row */
        /* the row kernels: one channel, 3x3, unpadded, 16 < OW <= 32 */
        {3, 1, 5, 19, 5, 3, 3, 0, 0, 0, 0, 0, 1, 1, 1},     /* OW 17, odd F (a lone filter), dx added */
        {4, 1, 9, 34, 9, 3, 3, 0, 0, 0, 0, 0, 0, 0, 3},     /* OW 32, 2 groups (one of 1), no bias, 3 threads */
        {2, 1, 28, 28, 16, 3, 3, 0, 0, 0, 0, 0, 1, 1, 2},   /* conv1 with 16 filters, dx added, 2 threads */
        {3, 1, 3, 24, 3, 3, 3, 0, 0, 0, 0, 0, 1, 0, 1},     /* one output row: each input row reaches it alone */
        {2, 1, 4, 30, 4, 3, 3, 0, 0, 0, 0, 0, 1, 0, 2},     /* two output rows: no middle rows, OW 28 */
    };
    return cr_make_param_array(conv_case, cases, sizeof cases / sizeof cases[0]);
}

/* Build, run forward and backward (twice), check against the float64 loops. */
static void run_conv_case(const conv_case *c)
{
    lp_threads_init(c->threads);
    int pt = c->pt, pb = c->pb, pl = c->pl, pr = c->pr;
    if (c->same) {
        int th = c->kh - 1, tw = c->kw - 1;
        pt = th / 2; pb = th - pt; pl = tw / 2; pr = tw - pl;
    }
    const int OH = c->H + pt + pb - c->kh + 1, OW = c->W + pl + pr - c->kw + 1;
    const int N = c->N, C = c->C, H = c->H, W = c->W, F = c->F, kh = c->kh, kw = c->kw;
    lp_graph *g = build("conv2d", conv_attrs(c), lp_shape3(C, H, W), c->twice, N);
    lp_shape os = lp_graph_final_shape(g);
    cr_assert(os.dims[0] == F && os.dims[1] == OH && os.dims[2] == OW, "output shape");
    lp_graph_init_params(g, 7);
    float *p = lp_graph_params(g);
    const long nw = (long)F * C * kh * kw, per_op = nw + (c->bias ? F : 0);
    lp_rng rng;
    lp_rng_seed(&rng, 99);
    fill(&rng, p, per_op * (c->twice ? 2 : 1)); /* biases non-zero too */
    const long nx = (long)N * C * H * W, ny = (long)N * F * OH * OW;
    float *x = malloc(nx * sizeof *x), *r = malloc(ny * sizeof *r);
    fill(&rng, x, nx);
    fill(&rng, r, ny);
    double *y = calloc(ny, sizeof *y), *dx = calloc(nx, sizeof *dx);
    double *dw = calloc((size_t)per_op * 2, sizeof *dw);
    for (int op = 0; op < (c->twice ? 2 : 1); op++) {
        const float *w = p + op * per_op, *b = c->bias ? w + nw : NULL;
        double *gw = dw + op * per_op;
        for (int n = 0; n < N; n++)
            for (int f = 0; f < F; f++)
                for (int oy = 0; oy < OH; oy++)
                    for (int ox = 0; ox < OW; ox++) {
                        long o = (((long)n * F + f) * OH + oy) * OW + ox;
                        double s = b ? b[f] : 0.0;
                        if (b) gw[nw + f] += r[o];
                        for (int ch = 0; ch < C; ch++)
                            for (int ky = 0; ky < kh; ky++)
                                for (int kx = 0; kx < kw; kx++) {
                                    int iy = oy + ky - pt, ix = ox + kx - pl;
                                    if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                                    long wi = (((long)f * C + ch) * kh + ky) * kw + kx;
                                    long xi = (((long)n * C + ch) * H + iy) * W + ix;
                                    s += (double)w[wi] * x[xi];
                                    gw[wi] += (double)r[o] * x[xi];
                                    dx[xi] += (double)r[o] * w[wi];
                                }
                        y[o] += s;
                    }
    }
    lp_graph_forward(g, x, NULL, N, true);
    expect_close("y", lp_graph_final(g), y, ny, 1e-5);
    const long ng = per_op * (c->twice ? 2 : 1);
    float *first = malloc(ng * sizeof *first);
    for (int round = 0; round < 2; round++) { /* backward twice: forward's copies are intact */
        lp_graph_backward(g, r);
        expect_close("dW", lp_graph_grads(g), dw, ng, 1e-5);
        expect_close("dx", lp_graph_input_grad(g), dx, nx, 1e-5);
        if (round == 0) memcpy(first, lp_graph_grads(g), ng * sizeof *first);
        else /* the same thread count sums the same partials in the same order */
            cr_assert(!memcmp(first, lp_graph_grads(g), ng * sizeof *first), "dW differs between two runs");
    }
    free(first);
    free(x); free(r); free(y); free(dx); free(dw);
    lp_graph_free(g);
}

ParameterizedTest(conv_case *c, kernels, conv_direct)
{
    lp_wino_mode = 0; /* the direct path, even for the 3x3 shapes Winograd would take */
    run_conv_case(c);
}

/* Winograd F(4x4, 3x3), forced on every 3x3 stride-1 conv here so that its tails are
 * reached even where the automatic choice keeps the direct path: outputs not a
 * multiple of 4 (the last tile row / column with 1, 2 or 3 of its 4 inside), one
 * output row or pixel, channels and filters that are not multiples of 8 (padded
 * groups), more than one group, more than one chunk of tile rows and rows wider than
 * a chunk, padding 0, 1, asymmetric and same, batch 1 and 3 over 1 and 3 threads, dx
 * written and added; and batch 64, where F(4x4)'s float32 error in the weight gradient
 * (summed over the batch) comes closest to the tolerance. */
ParameterizedTestParameters(kernels, conv_winograd)
{
    static conv_case cases[] = {
        /* N  C   H   W   F kh kw pt pb pl pr same bias twice threads */
        {1, 8, 13, 13, 16, 3, 3, 0, 0, 0, 0, 0, 1, 0, 1},   /* MNIST conv2 (11x11), batch 1 */
        {64, 8, 13, 13, 16, 3, 3, 0, 0, 0, 0, 0, 1, 0, 1},  /* batch 64: dW sums 64 samples' errors */
        {3, 8, 13, 13, 16, 3, 3, 0, 0, 0, 0, 0, 1, 1, 3},   /* the same, dx added, 3 threads */
        {3, 8, 7, 9, 5, 3, 3, 0, 0, 0, 0, 0, 1, 1, 1},      /* 5x7 output (1 and 3 of 4), F % 8 */
        {3, 3, 5, 7, 13, 3, 3, 1, 1, 1, 1, 0, 1, 0, 3},     /* 5x7, padding 1, C % 8 */
        {1, 11, 11, 11, 20, 3, 3, 1, 1, 1, 1, 0, 0, 1, 1},  /* 11x11 padded, 2 groups + 1 of F, no bias */
        {2, 16, 12, 10, 4, 3, 3, 0, 0, 0, 0, 0, 1, 0, 3},   /* 10x8 output (2 of 4), 2 channel groups */
        {3, 24, 6, 6, 16, 3, 3, 1, 1, 0, 0, 0, 1, 1, 1},    /* padding [1, 0] */
        {2, 5, 30, 30, 7, 3, 3, 0, 0, 0, 0, 1, 1, 1, 3},    /* same, 8 tiles a row: 2 rows a chunk */
        {2, 8, 9, 58, 8, 3, 3, 0, 0, 0, 0, 0, 1, 1, 1},     /* 14 tiles a row: 1 row a chunk */
        {2, 8, 3, 20, 9, 3, 3, 0, 0, 0, 0, 0, 1, 0, 1},     /* one output row */
        {3, 8, 3, 3, 8, 3, 3, 0, 0, 0, 0, 0, 1, 1, 3},      /* one output pixel */
        {2, 9, 4, 4, 3, 3, 3, 2, 2, 2, 2, 0, 1, 1, 1},      /* padding wider than the kernel's reach */
    };
    return cr_make_param_array(conv_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(conv_case *c, kernels, conv_winograd)
{
    lp_wino_mode = 1;
    run_conv_case(c);
}

/* ---- maxpool 2x2 stride 2 ------------------------------------------------- */

typedef struct pool_case {
    int N, C, H, W, twice, threads, relu; /* relu: a ReLU before, folded into the pool */
} pool_case;

ParameterizedTestParameters(kernels, maxpool_2x2)
{
    static pool_case cases[] = {
        {2, 3, 26, 26, 0, 1, 0}, {2, 16, 11, 11, 1, 3, 0}, {1, 2, 7, 9, 1, 1, 0},
        {2, 2, 40, 70, 1, 3, 0}, {3, 1, 33, 35, 0, 1, 0},  {1, 1, 2, 64, 1, 1, 0},
        /* several output rows per vector: 2 (11 x 11, 8 x 8, 13 wide: row pairs), 4 and
         * 3 (4 x 4, 5 x 5: one short group; 12 x 4, 14 x 5: a full group and a short
         * one), one output row a plane (pairs across planes only) */
        {3, 4, 11, 11, 0, 1, 0}, {2, 3, 8, 8, 0, 2, 0},   {2, 2, 4, 4, 0, 1, 0},
        {1, 3, 5, 5, 1, 1, 0},   {2, 2, 5, 13, 0, 1, 0},  {2, 2, 12, 4, 0, 1, 0},
        {1, 3, 14, 5, 1, 1, 0},  {2, 3, 2, 11, 0, 1, 0},
        /* two-row groups pair rows across planes: an odd count of rows (a last one
         * alone), and enough outputs (>= 16384) to split over threads */
        {1, 3, 11, 11, 0, 1, 0}, {41, 17, 11, 11, 1, 3, 0},
        /* the folded ReLU: rows (MNIST pool1), row pairs across planes (11 x 11; split
         * over threads), groups of 4, odd sizes */
        {2, 3, 26, 26, 0, 1, 1}, {2, 16, 11, 11, 1, 3, 1}, {41, 17, 11, 11, 1, 3, 1},
        {2, 2, 12, 4, 0, 1, 1},  {1, 2, 7, 9, 1, 1, 1},    {2, 2, 40, 70, 1, 1, 1},
    };
    return cr_make_param_array(pool_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(pool_case *c, kernels, maxpool_2x2)
{
    lp_threads_init(c->threads);
    lp_value *a = lp_value_new_map(NOLOC);
    attr_i(a, "size", 2);
    attr_i(a, "stride", 2);
    const int N = c->N, C = c->C, H = c->H, W = c->W, OH = H / 2, OW = W / 2;
    lp_graph *g = build_on(c->relu ? "relu" : NULL, "maxpool", a, lp_shape3(C, H, W), c->twice, N);
    const long nx = (long)N * C * H * W, ny = (long)N * C * OH * OW;
    float *x = malloc(nx * sizeof *x), *r = malloc(ny * sizeof *r);
    lp_rng rng;
    lp_rng_seed(&rng, 5);
    /* few distinct values: ties everywhere; a NaN now and then */
    for (long i = 0; i < nx; i++) x[i] = (float)(lp_rng_below(&rng, 4)) - 1.5f;
    for (long i = 0; i < nx; i += 37) x[i] = NAN;
    fill(&rng, r, ny);
    float *in = malloc(nx * sizeof *in); /* what the pool sees */
    for (long i = 0; i < nx; i++) in[i] = c->relu && !(x[i] > 0) ? 0.0f : x[i];
    double *y = malloc(ny * sizeof *y), *dx = calloc(nx, sizeof *dx);
    for (long pl = 0; pl < (long)N * C; pl++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                long best = -1;
                float m = 0;
                for (int k = 0; k < 4; k++) { /* row-major; first max wins; a NaN wins once */
                    long i = (pl * H + 2 * oy + k / 2) * W + 2 * ox + k % 2;
                    if (best < 0 || in[i] > m || (isnan(in[i]) && !isnan(m))) { best = i; m = in[i]; }
                }
                long o = (pl * OH + oy) * OW + ox;
                y[o] = (c->twice ? 2.0 : 1.0) * m;
                if (!c->relu || m > 0) dx[best] += (c->twice ? 2.0 : 1.0) * r[o]; /* ReLU' = 0 at 0 */
            }
    lp_graph_set_profile(g, true);
    lp_graph_forward(g, x, NULL, N, true);
    double fwd_s, bwd_s;
    lp_graph_node_times(g, 1, &fwd_s, &bwd_s); /* node 1: the first ReLU */
    cr_assert(!c->relu || fwd_s == 0.0, "the ReLU ran: the pool did not fold it in");
    const float *got = lp_graph_final(g);
    for (long i = 0; i < ny; i++)
        cr_assert(isnan(y[i]) ? isnan(got[i]) : got[i] == y[i], "y[%ld] = %g, expected %g", i, got[i], y[i]);
    lp_graph_backward(g, r);
    expect_close("dx", lp_graph_input_grad(g), dx, nx, 0.0);
    free(x); free(in); free(r); free(y); free(dx);
    lp_graph_free(g);
}

/* ---- relu ------------------------------------------------------------------ */

Test(kernels, relu_tails_nan_and_accumulate)
{
    const int sizes[] = {1, 15, 16, 17, 33, 1000};
    for (int twice = 0; twice <= 1; twice++)
        for (unsigned k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
            lp_threads_init(1 + twice);
            const int per = sizes[k], N = 3;
            lp_graph *g = build("relu", NULL, lp_shape1(per), twice, N);
            float *x = malloc((size_t)N * per * sizeof *x), *r = malloc((size_t)N * per * sizeof *r);
            lp_rng rng;
            lp_rng_seed(&rng, 11 + k);
            fill(&rng, x, (long)N * per);
            fill(&rng, r, (long)N * per);
            x[0] = 0.0f;
            if (N * per > 5) { x[3] = NAN; x[5] = -0.0f; }
            lp_graph_forward(g, x, NULL, N, true);
            lp_graph_backward(g, r);
            const float *y = lp_graph_final(g), *dx = lp_graph_input_grad(g);
            for (int i = 0; i < N * per; i++) {
                float m = twice ? 2.0f : 1.0f, want = x[i] > 0 ? m * x[i] : 0.0f;
                cr_assert(y[i] == want, "size %d: y[%d] = %g for x = %g", per, i, y[i], x[i]);
                cr_assert(dx[i] == (x[i] > 0 ? m * r[i] : 0.0f), "size %d: dx[%d] = %g", per, i, dx[i]);
            }
            free(x); free(r);
            lp_graph_free(g);
        }
}

/* ---- dense, split across threads ------------------------------------------------ */

Test(kernels, dense_split_gemms)
{
    /* N 33: under the split threshold (8.4M multiply-adds), dW by our kernel; N 64: split
     * over threads, dW by our kernel; N 70: split, dW by the GEMM. Inputs 600 = 9 x 64 +
     * 24 and 262 units leave tails in every block. */
    const int I = 600, U = 262;
    static const int sizes[] = {33, 64, 70};
    for (int k = 0, N; k < 3 && (N = sizes[k]); k++)
    for (int threads = 1; threads <= 3; threads += 2)
        for (int twice = 0; twice <= 1; twice++) {
            lp_threads_init(threads);
            lp_value *a = lp_value_new_map(NOLOC);
            attr_i(a, "units", U);
            lp_graph *g = build("dense", a, lp_shape1(I), twice, N);
            lp_rng rng;
            lp_rng_seed(&rng, 21);
            const long per_op = (long)U * I + U;
            float *p = lp_graph_params(g);
            fill(&rng, p, per_op * (twice ? 2 : 1));
            float *x = malloc((size_t)N * I * sizeof *x), *r = malloc((size_t)N * U * sizeof *r);
            fill(&rng, x, (long)N * I);
            fill(&rng, r, (long)N * U);
            double *y = calloc((size_t)N * U, sizeof *y), *dx = calloc((size_t)N * I, sizeof *dx);
            double *dw = calloc((size_t)per_op * 2, sizeof *dw);
            for (int op = 0; op <= twice; op++) {
                const float *w = p + op * per_op, *b = w + (long)U * I;
                double *gw = dw + op * per_op;
                for (int n = 0; n < N; n++)
                    for (int u = 0; u < U; u++) {
                        double s = b[u], gr = r[(long)n * U + u];
                        for (int i = 0; i < I; i++) {
                            s += (double)w[(long)u * I + i] * x[(long)n * I + i];
                            gw[(long)u * I + i] += gr * x[(long)n * I + i];
                            dx[(long)n * I + i] += gr * w[(long)u * I + i];
                        }
                        gw[(long)U * I + u] += gr;
                        y[(long)n * U + u] += s;
                    }
            }
            lp_graph_forward(g, x, NULL, N, true);
            expect_close("y", lp_graph_final(g), y, (long)N * U, 1e-5);
            lp_graph_backward(g, r);
            expect_close("dW", lp_graph_grads(g), dw, per_op * (twice ? 2 : 1), 1e-5);
            expect_close("dx", lp_graph_input_grad(g), dx, (long)N * I, 1e-5);
            free(x); free(r); free(y); free(dx); free(dw);
            lp_graph_free(g);
        }
}
