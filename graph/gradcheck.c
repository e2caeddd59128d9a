#include "gradcheck.h"

#include "registry.h"
#include "rng.h"
#include "shape.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GC_BATCH 2
#define GC_STEP 1e-2

typedef struct checker {
    lp_graph *g;
    const float *x;
    const int32_t *labels;
    const float *r;        /* weights of the scalar loss */
    size_t out_count;
} checker;

static double loss_of(checker *c)
{
    lp_graph_forward(c->g, c->x, c->labels, GC_BATCH, true);
    const float *out = lp_graph_final(c->g);
    double sum = 0;
    for (size_t i = 0; i < c->out_count; i++) sum += (double)out[i] * c->r[i];
    return sum;
}

/* The loss with value[i] = saved + delta (value[i] restored after). */
static double loss_at(checker *c, float *value, size_t i, float saved, double delta)
{
    value[i] = (float)(saved + delta);
    double l = loss_of(c);
    value[i] = saved;
    return l;
}

/* Check `count` entries of value[] (length len) against analytic[]. */
static void check_entries(checker *c, float *value, const float *analytic, size_t len,
                          int count, lp_rng *rng, const char *what, lp_gradcheck_result *res)
{
    size_t todo = (size_t)count < len ? (size_t)count : len;
    for (size_t k = 0; k < todo; k++) {
        size_t i = todo == len ? k : lp_rng_below(rng, (uint32_t)len);
        float saved = value[i];
        double h = GC_STEP * fmax(1.0, fabs(saved));
        double up = loss_at(c, value, i, saved, h), down = loss_at(c, value, i, saved, -h);
        double mid = loss_at(c, value, i, saved, 0);
        double right = (up - mid) / h, left = (mid - down) / h;
        if (fabs(right - left) > 0.1 * fmax(fmax(fabs(right), fabs(left)), 1e-2)) {
            res->skipped++;
            continue;
        }
        /* Five-point stencil: error O(h^4) where the central difference has O(h^2),
         * so a larger step can be used, and the float32 rounding of the forward (a
         * noise of ~1e-7 of each output that changes, divided by h) shrinks. Batch
         * norm, where a change of one input moves a whole channel, needs it. */
        double up2 = loss_at(c, value, i, saved, 2 * h), down2 = loss_at(c, value, i, saved, -2 * h);
        double numeric = (8 * (up - down) - (up2 - down2)) / (12 * h);
        if (fabs((up2 - up) - (up - mid)) > 0.1 * fmax(fmax(fabs(up2 - up), fabs(up - mid)), 1e-2 * h) ||
            fabs((down - down2) - (mid - down)) > 0.1 * fmax(fmax(fabs(down - down2), fabs(mid - down)), 1e-2 * h)) {
            res->skipped++; /* a kink between h and 2h */
            continue;
        }
        double a = analytic[i];
        double rel = fabs(a - numeric) / fmax(fmax(fabs(a), fabs(numeric)), 1e-2);
        res->checked++;
        if (rel > res->max_rel_err) {
            res->max_rel_err = rel;
            res->worst = what;
        }
    }
}

lp_status lp_gradcheck_op(const char *op, const lp_value *attrs, lp_shape input, uint64_t seed,
                          int max_entries, double tolerance, lp_gradcheck_result *res,
                          lp_error *err)
{
    memset(res, 0, sizeof *res);
    const lp_op *desc = lp_op_find(op);
    if (!desc) return lp_error_set(err, LP_ERR_ARG, "unknown op '%s' (see `loupe ops`)", op);
    lp_model_spec spec = {.input = input, .input_grad = true};
    const char *inputs[16];
    for (int i = 0; i < desc->min_inputs; i++) inputs[i] = "input";
    lp_value *a = attrs ? lp_value_clone(attrs) : NULL;
    lp_status s = lp_model_spec_add(&spec, op, op, inputs, desc->min_inputs, a);
    if (s) lp_error_set(err, s, "cannot make a graph for op '%s'", op);
    lp_graph *g = NULL;
    if (!s) s = lp_graph_build(&spec, &g, err);
    lp_model_spec_free(&spec);
    if (s) return s;
    long long in_numel = lp_shape_numel(input);
    size_t in_count = (size_t)in_numel * GC_BATCH;
    size_t out_count = (size_t)lp_shape_numel(lp_graph_final_shape(g)) * GC_BATCH;
    float *x = malloc(in_count * sizeof *x);
    float *r = malloc(out_count * sizeof *r);
    float *gin = malloc(in_count * sizeof *gin);
    float *gpar = malloc((lp_graph_param_floats(g) + 1) * sizeof *gpar);
    int32_t labels[GC_BATCH];
    if (!x || !r || !gin || !gpar) s = lp_error_set(err, LP_ERR_NOMEM, "out of memory");
    if (!s) s = lp_graph_plan(g, GC_BATCH, err);
    if (!s) {
        lp_rng rng;
        lp_rng_seed(&rng, seed);
        lp_graph_init_params(g, seed);
        /* Small random biases too, so zero-initialised parameters are exercised. */
        float *p = lp_graph_params(g);
        for (size_t i = 0; i < lp_graph_param_floats(g); i++)
            if (p[i] == 0.0f) p[i] = (float)(0.1 * lp_rng_normal(&rng));
        for (size_t i = 0; i < in_count; i++) x[i] = (float)lp_rng_normal(&rng);
        for (size_t i = 0; i < out_count; i++) r[i] = (float)lp_rng_normal(&rng);
        for (int i = 0; i < GC_BATCH; i++) labels[i] = (int32_t)lp_rng_below(&rng, (uint32_t)in_numel);
        checker c = {.g = g, .x = x, .labels = labels, .r = r, .out_count = out_count};
        lp_graph_forward(g, x, labels, GC_BATCH, true);
        lp_graph_backward(g, r);
        memcpy(gin, lp_graph_input_grad(g), in_count * sizeof *gin);
        memcpy(gpar, lp_graph_grads(g), lp_graph_param_floats(g) * sizeof *gpar);
        check_entries(&c, x, gin, in_count, max_entries, &rng, "input", res);
        for (int k = 0; k < lp_graph_num_params(g); k++) {
            size_t off = lp_graph_param_offset(g, k);
            size_t len = (size_t)lp_shape_numel(lp_graph_param_shape(g, k));
            check_entries(&c, p + off, gpar + off, len, max_entries, &rng,
                          lp_graph_param_name(g, k), res);
        }
        /* The name must outlive the graph: map it to a static string. */
        static char worst[128];
        if (res->worst) {
            snprintf(worst, sizeof worst, "%s", res->worst);
            res->worst = worst;
        }
        res->passed = res->checked > 0 && res->max_rel_err <= tolerance;
    }
    free(x);
    free(r);
    free(gin);
    free(gpar);
    lp_graph_free(g);
    return s;
}
