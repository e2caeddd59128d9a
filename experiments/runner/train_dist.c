/* train_dist.c - see train_dist.h. */
#include "train_dist.h"

#include "dist.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { EXTRA = 3 };   /* loss * n_r, correct, stop after the gradients */

lp_status lp_train_dist_init(lp_trainer *t, lp_error *err)
{
    if (lp_dist_size() == 1) return LP_OK;
    t->reduce = malloc((lp_graph_param_floats(t->graph) + EXTRA) * sizeof *t->reduce);
    if (!t->reduce) return lp_error_set(err, LP_ERR_NOMEM, "out of memory for the gradient sum");
    return LP_OK;
}

float lp_train_dist_step(lp_trainer *t, float loss, int n_local, int n, int *correct, bool *stop)
{
    size_t p = lp_graph_param_floats(t->graph);
    float *grads = lp_graph_grads(t->graph), *buf = t->reduce;
    /* The graph's gradient is the mean over this rank's n_local samples: weighted by
     * n_local/n, the ranks' sum is the mean over the batch (a short last batch too). */
    float w = (float)n_local / (float)n;
    if (n_local > 0)
        for (size_t i = 0; i < p; i++) buf[i] = grads[i] * w;
    else
        memset(buf, 0, p * sizeof *buf);
    buf[p] = n_local > 0 ? loss * (float)n_local : 0.0f;
    buf[p + 1] = (float)*correct;   /* exact: at most a batch */
    buf[p + 2] = *stop ? 1.0f : 0.0f;
    lp_dist_sum_f32(buf, p + EXTRA);
    memcpy(grads, buf, p * sizeof *grads);
    *correct = (int)buf[p + 1];
    *stop = buf[p + 2] > 0;
    return buf[p] / (float)n;   /* NaN on any rank is NaN on all */
}

lp_status lp_train_dist_check_weights(lp_trainer *t, int epoch, lp_error *err)
{
    if (lp_dist_size() == 1) return LP_OK;
    /* For tests/e2e_mpi.sh: LOUPE_TEST_SKEW_RANK=r nudges one weight of rank r by one
     * ulp, to show that this check stops such a run. */
    const char *skew = getenv("LOUPE_TEST_SKEW_RANK");
    if (skew && atoi(skew) == lp_dist_rank()) {
        float *w0 = lp_graph_params(t->graph);
        w0[0] = nextafterf(w0[0], INFINITY);
    }
    uint64_t h = lp_dist_hash(lp_graph_params(t->graph), lp_graph_param_floats(t->graph) * sizeof(float));
    uint64_t lo, hi;
    lp_dist_minmax_u64(h, &lo, &hi);
    if (lo == hi) return LP_OK;
    return lp_error_set(err, LP_ERR_NUMERIC,
                        "the weights differ across the %d ranks after epoch %d (hashes %016llx .. "
                        "%016llx, this rank %016llx): they must stay identical; epoch %d is not recorded",
                        lp_dist_size(), epoch, (unsigned long long)lo, (unsigned long long)hi,
                        (unsigned long long)h, epoch);
}
