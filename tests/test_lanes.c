/* test_lanes.c - sliced runs (lp_graph_train_step, lp_graph_infer) against one
 * whole-batch forward and backward (lp_graph_forward, lp_graph_backward) of the
 * same net and parameters: the same loss, logits and parameter gradients up to
 * float rounding, for 1, 2 and 3 lanes, slices of 1, 3 and the default size, and
 * batches smaller than the lane count, not divisible by the slice, or of one sample.
 * And the same numbers twice for the same thread count.
 */
#include <criterion/criterion.h>

#include "compute.h"
#include "graph.h"
#include "rng.h"
#include "shape.h"
#include "value.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const lp_loc NOLOC = {NULL, 0, 0};
enum { C = 2, H = 9, W = 9, CLASSES = 5, MAX_N = 13 };

static lp_value *attrs(const char *k1, const char *v1, const char *k2, const char *v2)
{
    lp_value *m = lp_value_new_map(NOLOC);
    cr_assert_not_null(m);
    if (k1) cr_assert_eq(lp_value_map_set(m, k1, NOLOC, lp_value_new_scalar(v1, NOLOC)), 0);
    if (k2) cr_assert_eq(lp_value_map_set(m, k2, NOLOC, lp_value_new_scalar(v2, NOLOC)), 0);
    return m;
}

static void add(lp_model_spec *s, const char *name, const char *op, const char *in, lp_value *a)
{
    const char *inputs[] = {in};
    cr_assert_eq(lp_model_spec_add(s, name, op, inputs, 1, a), LP_OK);
}

/* Append dense(5) + softmax cross-entropy after "flat", build, free the spec and
 * initialise the parameters from seed. */
static lp_graph *build_with_head(lp_model_spec *s, uint64_t seed)
{
    add(s, "fc", "dense", "flat", attrs("units", "5", NULL, NULL));
    s->loss = strdup("softmax_cross_entropy");
    lp_graph *g = NULL;
    lp_error err = {0};
    cr_assert_eq(lp_graph_build(s, &g, &err), LP_OK, "%s", err.msg);
    lp_model_spec_free(s);
    lp_graph_init_params(g, seed);
    return g;
}

/* conv (stride 1: the direct kernel) -> relu -> maxpool -> conv (stride 2: im2col)
 * -> flatten -> dense -> softmax cross-entropy: every built-in that holds
 * per-sample state or parameter gradients. */
static lp_graph *build_net(void)
{
    lp_model_spec s = {.input = lp_shape3(C, H, W)};
    add(&s, "conv1", "conv2d", "input", attrs("filters", "4", "kernel", "3"));
    add(&s, "relu1", "relu", "conv1", NULL);
    add(&s, "pool1", "maxpool", "relu1", attrs("size", "2", NULL, NULL));
    add(&s, "conv2", "conv2d", "pool1", attrs("filters", "3", "stride", "2"));
    lp_value_map_set(s.nodes[3].attrs, "kernel", NOLOC, lp_value_new_scalar("2", NOLOC));
    add(&s, "flat", "flatten", "conv2", NULL);
    return build_with_head(&s, 7);
}

static float x[MAX_N * C * H * W];
static int32_t y[MAX_N];

static void make_batch(void)
{
    lp_rng r;
    lp_rng_seed(&r, 99);
    for (size_t i = 0; i < sizeof x / sizeof x[0]; i++) x[i] = (float)lp_rng_normal(&r);
    for (int i = 0; i < MAX_N; i++) y[i] = i % CLASSES;
}

static void expect_close(const float *got, const float *want, size_t count, const char *what)
{
    float scale = 1e-6f;
    for (size_t i = 0; i < count; i++) scale = fmaxf(scale, fabsf(want[i]));
    for (size_t i = 0; i < count; i++)
        cr_assert_leq(fabsf(got[i] - want[i]), 2e-6f * scale, "%s[%zu]: %g, want %g", what, i,
                      got[i], want[i]);
}

/* One sliced step vs the whole batch, for n samples, `lanes` threads and slices
 * of `slice` samples (0: the graph's own choice). */
static void compare(int n, int lanes, int slice)
{
    char buf[16];
    snprintf(buf, sizeof buf, "%d", slice);
    if (slice) setenv("LOUPE_SLICE", buf, 1), setenv("LOUPE_INFER_SLICE", buf, 1);
    else unsetenv("LOUPE_SLICE"), unsetenv("LOUPE_INFER_SLICE");
    lp_graph *ref = build_net(), *g = build_net();
    lp_error err = {0};
    cr_assert_eq(lp_graph_plan(ref, n, &err), LP_OK);
    cr_assert_eq(lp_graph_plan_lanes(g, MAX_N, lanes, &err), LP_OK, "%s", err.msg);
    if (slice) cr_assert_eq(lp_graph_slice(g, true), slice < MAX_N ? slice : MAX_N);

    size_t P = lp_graph_param_floats(g);
    float want_loss = lp_graph_forward(ref, x, y, n, true);
    lp_graph_backward(ref, NULL);
    float loss = lp_graph_train_step(g, x, y, n);
    cr_assert_float_eq(loss, want_loss, 1e-5f * fabsf(want_loss), "n %d lanes %d slice %d: loss %g, want %g",
                       n, lanes, slice, loss, want_loss);
    expect_close(lp_graph_batch_logits(g), lp_graph_logits(ref), (size_t)n * CLASSES, "logits");
    expect_close(lp_graph_grads(g), lp_graph_grads(ref), P, "grads");

    /* The same step again: bit for bit. */
    float *first = malloc(P * sizeof *first);
    memcpy(first, lp_graph_grads(g), P * sizeof *first);
    cr_assert_eq(lp_graph_train_step(g, x, y, n), loss);
    cr_assert_eq(memcmp(first, lp_graph_grads(g), P * sizeof *first), 0, "gradients differ between runs");
    free(first);

    /* Inference: the evaluation-mode forward. */
    want_loss = lp_graph_forward(ref, x, y, n, false);
    loss = lp_graph_infer(g, x, y, n);
    cr_assert_float_eq(loss, want_loss, 1e-5f * fabsf(want_loss));
    expect_close(lp_graph_batch_logits(g), lp_graph_logits(ref), (size_t)n * CLASSES, "infer logits");
    lp_graph_free(ref);
    lp_graph_free(g);
}

TestSuite(lanes, .init = make_batch);

Test(lanes, one_lane_matches_the_whole_batch)
{
    for (int n = 1; n <= MAX_N; n += 3) {
        compare(n, 1, 0);
        compare(n, 1, 3);
        compare(n, 1, 1);
    }
}

Test(lanes, two_and_three_lanes_match_the_whole_batch)
{
    lp_threads_init(3);
    const int sizes[] = {1, 2, 3, 7, 13};
    for (int k = 0; k < 5; k++)
        for (int lanes = 2; lanes <= 3; lanes++) {
            compare(sizes[k], lanes, 0);
            compare(sizes[k], lanes, 3);
            compare(sizes[k], lanes, 1);
        }
}

Test(lanes, parameters_are_shared_and_profile_sums_lanes)
{
    unsetenv("LOUPE_SLICE");
    lp_graph *g = build_net();
    lp_error err = {0};
    cr_assert_eq(lp_graph_plan_lanes(g, MAX_N, 2, &err), LP_OK);
    lp_graph_set_profile(g, true);
    lp_graph_train_step(g, x, y, MAX_N);
    /* An update of the parameters is seen by every lane: the loss changes. */
    float before = lp_graph_infer(g, x, y, MAX_N);
    lp_graph_params(g)[0] += 1.0f;
    float after = lp_graph_infer(g, x, y, MAX_N);
    cr_assert_neq(before, after);
    double f, b;
    lp_graph_node_times(g, 1, &f, &b);
    cr_assert_gt(f, 0.0);
    cr_assert_gt(b, 0.0);
    lp_graph_free(g);
}

/* ---- a ReLU folded into the max-pool that reads it ------------------------------ */

/* conv -> relu -> maxpool 2x2 (the fast path, odd input: a column dropped) -> conv ->
 * relu -> maxpool 2/1 (the general path) -> dense -> loss, built with or without
 * folding. A conv, not a ReLU, after each pool: its gradient is not zero where the
 * pool's output is, so a gradient let through a non-positive window shows. */
static lp_graph *build_folding_net(int fold)
{
    if (fold) unsetenv("LOUPE_NO_FOLD");
    else setenv("LOUPE_NO_FOLD", "1", 1);
    lp_model_spec s = {.input = lp_shape3(C, H, W)};
    add(&s, "conv1", "conv2d", "input", attrs("filters", "4", "kernel", "3"));
    lp_value_map_set(s.nodes[0].attrs, "padding", NOLOC, lp_value_new_scalar("1", NOLOC));
    add(&s, "relu1", "relu", "conv1", NULL);
    add(&s, "pool1", "maxpool", "relu1", attrs("size", "2", NULL, NULL));
    add(&s, "conv2", "conv2d", "pool1", attrs("filters", "3", "kernel", "2"));
    add(&s, "relu2", "relu", "conv2", NULL);
    add(&s, "pool2", "maxpool", "relu2", attrs("size", "2", "stride", "1"));
    add(&s, "flat", "flatten", "pool2", NULL);
    lp_graph *g = build_with_head(&s, 11);
    unsetenv("LOUPE_NO_FOLD");
    return g;
}

Test(lanes, folded_relu_gives_the_same_numbers_bit_for_bit)
{
    lp_graph *a = build_folding_net(1), *b = build_folding_net(0);
    lp_error err = {0};
    cr_assert_eq(lp_graph_plan(a, MAX_N, &err), LP_OK);
    cr_assert_eq(lp_graph_plan(b, MAX_N, &err), LP_OK);
    lp_graph_set_profile(a, true);
    lp_graph_set_profile(b, true);
    for (int n = 1; n <= MAX_N; n += 4) {
        float la = lp_graph_forward(a, x, y, n, true), lb = lp_graph_forward(b, x, y, n, true);
        cr_assert_eq(la, lb, "n %d: loss %.9g folded, %.9g not", n, la, lb);
        lp_graph_backward(a, NULL);
        lp_graph_backward(b, NULL);
        size_t P = lp_graph_param_floats(a);
        cr_assert_eq(memcmp(lp_graph_grads(a), lp_graph_grads(b), P * sizeof(float)), 0,
                     "n %d: parameter gradients differ", n);
        cr_assert_eq(memcmp(lp_graph_logits(a), lp_graph_logits(b), (size_t)n * CLASSES * sizeof(float)), 0);
    }
    /* Folded means not run: the ReLU nodes (2 and 5; 0 is the input) took no time in a, some in b. */
    double f, bw;
    for (int i = 2; i <= 5; i += 3) {
        cr_assert_str_eq(lp_graph_node_op(a, i), "relu");
        lp_graph_node_times(a, i, &f, &bw);
        cr_assert(f == 0.0 && bw == 0.0, "node %d ran although folded", i);
        lp_graph_node_times(b, i, &f, &bw);
        cr_assert(f > 0.0, "node %d did not run unfolded", i);
    }
    lp_graph_free(a);
    lp_graph_free(b);
}
