/* snapshot.h - a graph's parameters and an optimizer's state as named tensors,
 * for checkpoints and safetensors files.
 *
 * Parameter tensors keep the graph's names ("conv1.weight"), and the graph's
 * buffers follow them ("bn1.running_var": a model's whole state, as a PyTorch
 * state_dict holds it); optimizer state
 * tensors are named "<param>.<state>" ("conv1.weight.momentum"). The views point
 * into the graph's and the optimizer's blocks: nothing is copied.
 */
#ifndef LP_SNAPSHOT_H
#define LP_SNAPSHOT_H

#include "checkpoint.h"
#include "graph.h"
#include "optim.h"

typedef struct lp_snapshot {
    lp_tensor_ref *params;   /* the parameters, then the buffers ("bn1.running_mean") */
    int n_params;
    lp_tensor_ref *states;   /* NULL when made without an optimizer */
    int n_states;
    char *names;             /* storage for the state names */
} lp_snapshot;

/* Views of g's parameters, and of o's state when o is not NULL. */
lp_status lp_snapshot_make(lp_graph *g, lp_optimizer *o, lp_snapshot *s, lp_error *err);
void lp_snapshot_free(lp_snapshot *s);

/* Encode parameters, optimizer state and resume record into a checkpoint buffer (free()). */
lp_status lp_snapshot_encode(lp_graph *g, lp_optimizer *o, const lp_resume_state *resume,
                             void **buf, size_t *size, lp_error *err);

/* Decode buf and copy it into g (and o's state when o is not NULL), checking every
 * name and shape; *resume receives the resume record (may be NULL). */
lp_status lp_snapshot_restore(const void *buf, size_t size, lp_graph *g, lp_optimizer *o,
                              lp_resume_state *resume, const char *what, lp_error *err);

#endif
