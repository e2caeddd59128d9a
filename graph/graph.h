/* graph.h - a model as a DAG of op nodes: build, plan, forward, backward.
 *
 *   lp_model_spec spec;            // from YAML (lp_model_spec_from_value) or by hand
 *   lp_graph *g;
 *   lp_graph_build(&spec, &g, &err);  // topological order, shapes, parameters
 *   lp_graph_init_params(g, seed);    // He init, deterministic
 *   lp_graph_plan(g, 64, &err);       // one arena for batch size 64
 *   float loss = lp_graph_forward(g, x, labels, n, true);
 *   lp_graph_backward(g, NULL);       // parameter gradients in lp_graph_grads(g)
 *
 * Parameters and their gradients are each one contiguous float block, in the
 * order of declaration, with stable names ("conv1.weight").
 */
#ifndef LP_GRAPH_H
#define LP_GRAPH_H

#include "error.h"
#include "value.h"
#include <stdbool.h>

/* One node as written in a config. */
typedef struct lp_node_spec {
    char *name;        /* unique; generated ("relu2": op + count per op) when the config gives none */
    char *op;          /* registered op name */
    char **inputs;     /* names of producer nodes; "input" is the image */
    int n_inputs;
    lp_value *attrs;   /* map of the op's attributes (owned); may be NULL */
    lp_loc loc;        /* where the node was written */
} lp_node_spec;

typedef struct lp_model_spec {
    lp_shape input;          /* per sample, e.g. [1, 28, 28] */
    lp_loc input_loc;
    lp_node_spec *nodes;
    int n_nodes;
    char *output;            /* node whose output are the logits (default: last) */
    char *loss;              /* loss op applied to output and labels, or NULL */
    lp_loc loss_loc;
    bool input_grad;         /* compute d loss / d input (gradient checks) */
} lp_model_spec;

/* Read the `model:` map (input, layers or nodes, output, loss). Unknown keys and
 * malformed entries are LP_ERR_CONFIG errors at their file:line:col. */
lp_status lp_model_spec_from_value(lp_value *model, lp_model_spec *spec, lp_error *err);

/* Append a node to a spec by hand (tests, tools). attrs is taken over (may be NULL). */
lp_status lp_model_spec_add(lp_model_spec *spec, const char *name, const char *op,
                            const char *const *inputs, int n_inputs, lp_value *attrs);
void lp_model_spec_free(lp_model_spec *spec);

typedef struct lp_graph lp_graph;

/* Build: resolve ops and inputs, order topologically (a cycle is an error naming
 * a node on it), run every op's setup (shape inference, parameters), check that
 * every node leads to the output. Errors name the node and its config location. */
lp_status lp_graph_build(const lp_model_spec *spec, lp_graph **out, lp_error *err);
void lp_graph_free(lp_graph *g);

/* Fill parameters: He-normal weights, zero biases, from seed; buffers with their
 * initial values. */
void lp_graph_init_params(lp_graph *g, uint64_t seed);

/* Plan buffers for batches of up to max_batch samples (one arena; reallocated
 * only when max_batch grows). */
lp_status lp_graph_plan(lp_graph *g, int max_batch, lp_error *err);

/* Forward x [n, input] (labels [n] needed when the graph has a loss).
 * Returns the mean loss over the batch, or 0 without a loss. */
float lp_graph_forward(lp_graph *g, const float *x, const int32_t *labels, int n, bool training);

/* Backward after a training forward. seed_grad: gradient of the final node's
 * output [n, out_shape]; NULL means "mean of the loss" (1/n per sample).
 * Parameter gradients are zeroed first, then accumulated. */
void lp_graph_backward(lp_graph *g, const float *seed_grad);

/* Sliced runs, what training and evaluation use. A batch is cut into slices small
 * enough that a slice's activations stay in the core's L2 cache; with more than one
 * thread, each thread ("lane") runs whole slices forward and backward on its own copy
 * of the buffers and gradients (one parallel region per step, ops single-threaded
 * inside it), and the lanes' gradients are summed in lane order. Results are the
 * same for the same inputs and thread count.
 *
 *   lp_graph_plan_lanes(g, 64, lp_threads(), &err);   // batches up to 64
 *   float loss = lp_graph_train_step(g, x, labels, n); // grads in lp_graph_grads(g)
 *   float loss = lp_graph_infer(g, x, labels, n);      // no gradients
 *   lp_graph_batch_logits(g);                          // [n, logits] of either
 *
 * labels may be NULL for lp_graph_infer only when the graph has no loss. */
#define LP_MAX_LANES 256
lp_status lp_graph_plan_lanes(lp_graph *g, int max_batch, int threads, lp_error *err);
float lp_graph_train_step(lp_graph *g, const float *x, const int32_t *labels, int n);
float lp_graph_infer(lp_graph *g, const float *x, const int32_t *labels, int n);
const float *lp_graph_batch_logits(const lp_graph *g);
/* Samples per slice chosen by the last lp_graph_plan_lanes (training or inference). */
int lp_graph_slice(const lp_graph *g, bool train);

/* Outputs of the last forward: the logits node (`output`) and the final node. */
const float *lp_graph_logits(const lp_graph *g);
lp_shape lp_graph_logits_shape(const lp_graph *g);
const float *lp_graph_final(const lp_graph *g);
lp_shape lp_graph_final_shape(const lp_graph *g);
/* d loss / d input of the last backward (only with spec.input_grad). */
const float *lp_graph_input_grad(const lp_graph *g);
lp_shape lp_graph_input_shape(const lp_graph *g);

/* Parameters: count of tensors, total floats, the blocks, and each tensor's view. */
int lp_graph_num_params(const lp_graph *g);
size_t lp_graph_param_floats(const lp_graph *g);
float *lp_graph_params(lp_graph *g);
float *lp_graph_grads(lp_graph *g);
const char *lp_graph_param_name(const lp_graph *g, int k);
lp_shape lp_graph_param_shape(const lp_graph *g, int k);
size_t lp_graph_param_offset(const lp_graph *g, int k);   /* in floats */

/* Buffers: tensors kept across steps but not trained (batch norm's running mean
 * and variance), in one block of their own with stable names ("bn1.running_var").
 * Checkpoints and exports save them with the parameters; summaries count them as
 * non-trainable. lp_graph_init_params fills them too (zeros or ones). */
int lp_graph_num_buffers(const lp_graph *g);
size_t lp_graph_buffer_floats(const lp_graph *g);
float *lp_graph_buffers(lp_graph *g);
const char *lp_graph_buffer_name(const lp_graph *g, int k);
lp_shape lp_graph_buffer_shape(const lp_graph *g, int k);
size_t lp_graph_buffer_offset(const lp_graph *g, int k);   /* in floats */

/* True when some op computes statistics over the whole training batch (batch
 * norm): a training batch then needs at least 2 samples, and runs as one slice
 * per lane. */
bool lp_graph_uses_batch_stats(const lp_graph *g);

/* Nodes in topological order (for summaries and profiles). */
int lp_graph_num_nodes(const lp_graph *g);
const char *lp_graph_node_name(const lp_graph *g, int i);
const char *lp_graph_node_op(const lp_graph *g, int i);
lp_shape lp_graph_node_shape(const lp_graph *g, int i);
long long lp_graph_node_params(const lp_graph *g, int i);  /* parameter count */
long long lp_graph_node_buffers(const lp_graph *g, int i); /* buffer values (non-trainable) */
/* Node i's output for the samples of the last lp_graph_forward, [n, shape] (what
 * `loupe viz maps` draws); NULL for a node folded into its consumer (a ReLU before a
 * max-pool) or whose output its consumer computes itself (a batch norm before a
 * max-pool): build with LOUPE_NO_FOLD=1 set to keep every node's output. */
const float *lp_graph_node_output(const lp_graph *g, int i);

/* Per-node time of forward and backward, accumulated while profiling is on. */
void lp_graph_set_profile(lp_graph *g, bool on);
void lp_graph_node_times(const lp_graph *g, int i, double *fwd_s, double *bwd_s);

/* Where the next batches start in a larger one (0 by default): under MPI, a rank's
 * shard of the global batch, so per-sample randomness (lp_node_sample_offset:
 * dropout's masks) is the one a single process would draw for those samples. */
void lp_graph_set_batch_offset(lp_graph *g, int offset);

/* Step counter feeding lp_node_step_seed (dropout); the runner sets it. */
void lp_graph_set_step(lp_graph *g, uint64_t seed, uint64_t step);

#endif
