/* gradcheck.h - compare an op's backward with finite differences of its forward.
 *
 * Works on any registered op (built-in or plugin) through the graph, so it needs
 * nothing from the op but its descriptor. The forward is float32, so the check
 * uses a five-point stencil (error O(h^4)) with a step of 1e-2 and a loss
 * accumulated in double, L = sum(out * r) for fixed random r; entries where the
 * slopes at h and 2h on either side disagree (a kink: ReLU at 0, a max-pool tie)
 * are skipped, as Caffe does. (With central differences and a step of 1e-3 the
 * float32 rounding of a whole channel, which batch norm moves with every input,
 * gave errors of 1-6%; the stencil brings them under 0.5%.)
 * The built-in ops get a stricter float64 check in tests/ against naive references.
 */
#ifndef LP_GRADCHECK_H
#define LP_GRADCHECK_H

#include "graph.h"

typedef struct lp_gradcheck_result {
    double max_rel_err;   /* max over checked entries of |a-b| / max(|a|, |b|, 1e-2) */
    const char *worst;    /* "input" or a parameter name */
    int checked;          /* entries compared */
    int skipped;          /* entries at kinks */
    int passed;           /* max_rel_err <= tolerance */
} lp_gradcheck_result;

/* Build a graph "input -> op(input, ...)" for one op (every input slot is fed the
 * image; a loss op gets random labels below its input size), random input and
 * parameters from seed, batch 2, and check up to max_entries entries of the input
 * gradient and of each parameter's gradient. attrs is a map (may be NULL; it is
 * cloned). tolerance: e.g. 1e-2. */
lp_status lp_gradcheck_op(const char *op, const lp_value *attrs, lp_shape input, uint64_t seed,
                          int max_entries, double tolerance, lp_gradcheck_result *res,
                          lp_error *err);

#endif
