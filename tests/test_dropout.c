/* test_dropout.c - the built-in dropout op: inverted scaling, the identity in
 * evaluation, a backward that uses forward's mask, masks that depend only on
 * (seed, step, node, element) - the same whole or sliced on any number of lanes,
 * different from step to step - and bad rates refused at their location.
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

static void suite_init(void) { lp_threads_init(2); }
TestSuite(dropout, .init = suite_init);

static const lp_loc NOLOC = {NULL, 0, 0};

static lp_value *rate_attr(const char *rate)
{
    lp_value *m = lp_value_new_map(NOLOC);
    cr_assert_eq(lp_value_map_set(m, "rate", NOLOC, lp_value_new_scalar(rate, NOLOC)), 0);
    return m;
}

static lp_graph *build_dropout(const char *rate, lp_shape in, int batch)
{
    lp_model_spec spec = {.input = in, .input_grad = true};
    const char *inputs[] = {"input"};
    cr_assert_eq(lp_model_spec_add(&spec, "drop", "dropout", inputs, 1, rate_attr(rate)), LP_OK);
    lp_graph *g = NULL;
    lp_error err = {0};
    cr_assert_eq(lp_graph_build(&spec, &g, &err), LP_OK, "%s", err.msg);
    lp_model_spec_free(&spec);
    cr_assert_eq(lp_graph_plan(g, batch, &err), LP_OK, "%s", err.msg);
    return g;
}

enum { N = 8, LEN = N * 3 * 10 * 10 };

static void fill_nonzero(float *x, long n, uint64_t seed)
{
    lp_rng r;
    lp_rng_seed(&r, seed);
    for (long i = 0; i < n; i++) x[i] = (float)(1.0 + lp_rng_uniform(&r)); /* never 0 */
}

Test(dropout, training_keeps_and_scales_eval_is_identity)
{
    lp_graph *g = build_dropout("0.3", lp_shape3(3, 10, 10), N);
    static float x[LEN], dy[LEN];
    fill_nonzero(x, LEN, 1);
    fill_nonzero(dy, LEN, 2);
    lp_graph_set_step(g, 42, 7);
    lp_graph_forward(g, x, NULL, N, true);
    const float *y = lp_graph_final(g);
    long kept = 0;
    for (long i = 0; i < LEN; i++) {
        if (y[i] == 0.0f) continue;
        kept++;
        cr_assert_float_eq(y[i], x[i] / 0.7f, 1e-6f * y[i], "kept element %ld is x / (1 - rate)", i);
    }
    /* The mask is the documented hash of (run seed, step, node, element), written
     * out here again: a faster kernel must not change which elements a run drops
     * (resumed runs and reruns depend on it). */
    const uint64_t node_seed = lp_rng_derive(lp_rng_derive(42, 0xD50B), 7 * 1024u + 1);
    const uint64_t threshold = (uint64_t)((double)0.3f * 0x1.0p53);
    for (long i = 0; i < LEN; i++) {
        uint64_t z = node_seed + (uint64_t)i * 0x9E3779B97F4A7C15ULL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        z ^= z >> 31;
        cr_assert_eq(y[i] != 0.0f, (z >> 11) >= threshold, "element %ld: kept by the hash, and only then", i);
    }
    /* 2400 Bernoulli(0.7) draws: mean 1680, sd 22.4; 5 sd either way. */
    cr_assert(kept > 1680 - 112 && kept < 1680 + 112, "kept %ld of %d, expected about 1680", kept, LEN);
    lp_graph_backward(g, dy);
    const float *dx = lp_graph_input_grad(g);
    for (long i = 0; i < LEN; i++) {
        if (y[i] == 0.0f) cr_assert_eq(dx[i], 0.0f, "dx[%ld]: dropped in forward, no gradient", i);
        else cr_assert_float_eq(dx[i], dy[i] / 0.7f, 1e-6f * fabsf(dx[i]), "dx[%ld] = dy / (1 - rate)", i);
    }

    lp_graph_forward(g, x, NULL, N, false);
    cr_assert_eq(memcmp(lp_graph_final(g), x, sizeof x), 0, "evaluation is the identity");
    lp_graph_free(g);
}

/* dropout -> dense -> loss, the mask's effect seen in the logits: whole batch vs
 * 1-3 lanes and odd slices, all the same; another step, other masks. */
static lp_graph *build_net(void)
{
    lp_model_spec s = {.input = lp_shape1(40)};
    const char *in[1] = {"input"};
    cr_assert_eq(lp_model_spec_add(&s, "drop", "dropout", in, 1, rate_attr("0.5")), LP_OK);
    in[0] = "drop";
    lp_value *u = lp_value_new_map(NOLOC);
    cr_assert_eq(lp_value_map_set(u, "units", NOLOC, lp_value_new_scalar("3", NOLOC)), 0);
    cr_assert_eq(lp_model_spec_add(&s, "fc", "dense", in, 1, u), LP_OK);
    s.loss = strdup("softmax_cross_entropy");
    lp_graph *g = NULL;
    lp_error err = {0};
    cr_assert_eq(lp_graph_build(&s, &g, &err), LP_OK, "%s", err.msg);
    lp_model_spec_free(&s);
    lp_graph_init_params(g, 5);
    return g;
}

Test(dropout, masks_do_not_depend_on_slices_or_lanes)
{
    enum { B = 13 };
    static float x[B * 40];
    int32_t y[B];
    fill_nonzero(x, B * 40, 3);
    for (int i = 0; i < B; i++) y[i] = i % 3;
    lp_graph *ref = build_net();
    lp_error err = {0};
    cr_assert_eq(lp_graph_plan(ref, B, &err), LP_OK);
    lp_graph_set_step(ref, 9, 100);
    lp_graph_forward(ref, x, y, B, true);
    float want[B * 3];
    memcpy(want, lp_graph_logits(ref), sizeof want);
    const char *slices[] = {"1", "3", "5", NULL};
    for (int lanes = 1; lanes <= 3; lanes++)
        for (int k = 0; slices[k]; k++) {
            setenv("LOUPE_SLICE", slices[k], 1);
            lp_graph *g = build_net();
            cr_assert_eq(lp_graph_plan_lanes(g, B, lanes, &err), LP_OK, "%s", err.msg);
            lp_graph_set_step(g, 9, 100);
            lp_graph_train_step(g, x, y, B);
            const float *got = lp_graph_batch_logits(g);
            for (int i = 0; i < B * 3; i++)
                cr_assert_float_eq(got[i], want[i], 1e-5f * fmaxf(1.0f, fabsf(want[i])),
                                   "lanes %d slice %s: logit %d differs: another mask", lanes, slices[k], i);
            lp_graph_free(g);
        }
    unsetenv("LOUPE_SLICE");
    /* The next step draws other masks; the same step again the same ones. */
    lp_graph_set_step(ref, 9, 101);
    lp_graph_forward(ref, x, y, B, true);
    cr_assert_neq(memcmp(want, lp_graph_logits(ref), sizeof want), 0, "step 101 reused step 100's masks");
    lp_graph_set_step(ref, 9, 100);
    lp_graph_forward(ref, x, y, B, true);
    cr_assert_eq(memcmp(want, lp_graph_logits(ref), sizeof want), 0, "step 100 again: the same masks");
    lp_graph_set_step(ref, 10, 100);
    lp_graph_forward(ref, x, y, B, true);
    cr_assert_neq(memcmp(want, lp_graph_logits(ref), sizeof want), 0, "another seed: other masks");
    lp_graph_free(ref);
}

Test(dropout, rate_zero_is_the_identity_in_training)
{
    lp_graph *g = build_dropout("0", lp_shape1(50), 4);
    float x[200], dy[200];
    fill_nonzero(x, 200, 4);
    fill_nonzero(dy, 200, 5);
    lp_graph_forward(g, x, NULL, 4, true);
    cr_assert_eq(memcmp(lp_graph_final(g), x, sizeof x), 0);
    lp_graph_backward(g, dy);
    cr_assert_eq(memcmp(lp_graph_input_grad(g), dy, sizeof dy), 0);
    lp_graph_free(g);
}

static void expect_refused(const char *rate)
{
    lp_model_spec spec = {.input = lp_shape1(4)};
    const char *inputs[] = {"input"};
    lp_value *a = lp_value_new_map(NOLOC);
    lp_loc at = {"model.yaml", 9, 30};
    cr_assert_eq(lp_value_map_set(a, "rate", at, lp_value_new_scalar(rate, at)), 0);
    cr_assert_eq(lp_model_spec_add(&spec, "drop", "dropout", inputs, 1, a), LP_OK);
    lp_graph *g = NULL;
    lp_error err = {0};
    cr_assert_neq(lp_graph_build(&spec, &g, &err), LP_OK, "rate %s accepted", rate);
    cr_assert(strstr(err.msg, "model.yaml:9:30") && strstr(err.msg, "rate"), "rate %s: %s", rate, err.msg);
    lp_model_spec_free(&spec);
}

Test(dropout, bad_rates_are_refused_at_their_location)
{
    expect_refused("1");
    expect_refused("1.5");
    expect_refused("-0.1");
    expect_refused("half");
}
