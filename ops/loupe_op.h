/* loupe_op.h - the one way to be an op in loupe (built-in or plugin).
 *
 * An op is a const lp_op descriptor: a name, how many inputs it takes, the
 * attributes it reads, and three functions:
 *
 *   setup(n)     once, when the graph is built: read attributes, check input
 *                shapes, set the output shape, declare parameters and scratch.
 *   forward(n)   every step: read inputs (and parameters), write the output.
 *   backward(n)  every training step, in reverse order: read the output
 *                gradient, write or add the input gradients, ADD the
 *                parameter gradients.
 *
 * Shapes seen in setup are per sample (C,H,W or units); at run time every
 * tensor has the batch dimension N in front (NCHW, row-major, float32).
 *
 * Input gradients: a node's input may feed several consumers. The graph tells
 * each consumer whether it is the first to write that gradient this step
 * (lp_node_in_grad_accumulate(n, i) == 0: overwrite, the buffer holds garbage)
 * or must add to what is there (== 1). Use lp_grad_put() when in doubt.
 * lp_node_in_grad(n, i) is NULL when input i needs no gradient (the image).
 * Parameter gradients are zeroed once per step by the graph: always add.
 *
 * A plugin is a shared object exporting
 *     lp_status loupe_plugin_init(lp_plugin_host *host);
 * which calls host->register_op(host, &my_op) for each op it provides. The
 * loupe binary exports the lp_* functions below, so a plugin needs only this
 * header (and lp_base.h) to build:  cc -shared -fPIC -o my.so my.c
 *
 * State: an op that keeps tensors across steps which are not trained (batch
 * norm's running mean and variance) declares them as buffers
 * (lp_node_add_buffer). They are named like parameters ("bn1.running_mean"),
 * saved in checkpoints, exported to safetensors and counted as non-trainable,
 * and shared by the graph's lanes like parameters.
 *
 * Whole-batch numbers: a training step may run a batch as slices on several
 * threads ("lanes"). An op whose output depends on the whole batch (batch
 * statistics) declares that in setup (lp_node_set_batch_sums) and gets the
 * sums over the whole batch from lp_node_batch_sum, identical in every lane.
 *
 * Example: see ops/relu.c (smallest), ops/batch_norm.c (buffers, batch sums)
 * and ops/plugins/leaky_relu.c.
 */
#ifndef LOUPE_OP_H
#define LOUPE_OP_H

#include "lp_base.h"
#include <stdint.h>

/* Bumped whenever lp_op, lp_plugin_host or the functions below change. */
#define LP_OP_ABI_VERSION 2

typedef struct lp_node lp_node; /* opaque: one node of a graph */

/* One attribute an op reads, for `loupe ops` and for unknown-attribute hints. */
typedef struct lp_attr_doc {
    const char *name;          /* as written in YAML */
    const char *type;          /* "int", "float", "int or [h, w]", "string" */
    const char *default_value; /* NULL: required */
    const char *help;
} lp_attr_doc;

typedef struct lp_op {
    int abi_version;           /* LP_OP_ABI_VERSION */
    unsigned struct_size;      /* sizeof(lp_op) as the op was compiled */
    const char *name;          /* "conv2d", as written in YAML */
    const char *summary;       /* one line for `loupe ops` */
    int min_inputs, max_inputs;
    const lp_attr_doc *attrs;  /* terminated by an entry with name == NULL; may be NULL */
    lp_status (*setup)(lp_node *n);
    void (*forward)(lp_node *n);
    void (*backward)(lp_node *n);
} lp_op;

/* Descriptor prologue: `static const lp_op op = { LP_OP_HEADER, .name = ... };` */
#define LP_OP_HEADER .abi_version = LP_OP_ABI_VERSION, .struct_size = sizeof(lp_op)

/* ---- setup time ------------------------------------------------------- */

const char *lp_node_name(const lp_node *n);
int lp_node_num_inputs(const lp_node *n);
lp_shape lp_node_in_shape(const lp_node *n, int i);   /* per sample */

/* Attribute readers: absent -> *out = def and LP_OK. Present but wrong (type,
 * range) -> an error naming the node and the attribute's file:line:col.
 * Use the _required variants when there is no sensible default. Reading marks
 * the attribute used; attributes nobody read are reported as unknown. */
lp_status lp_attr_int(lp_node *n, const char *key, int def, int *out);
lp_status lp_attr_int_required(lp_node *n, const char *key, int *out);
lp_status lp_attr_float(lp_node *n, const char *key, float def, float *out);
/* "3" -> {3,3}; "[3, 5]" -> {3,5}. */
lp_status lp_attr_pair(lp_node *n, const char *key, int def, int out[2]);
lp_status lp_attr_pair_required(lp_node *n, const char *key, int out[2]);
/* String attribute; *out stays valid for the graph's life. */
lp_status lp_attr_string(lp_node *n, const char *key, const char *def, const char **out);
/* true/false (also yes/no, 1/0) -> 1/0. */
lp_status lp_attr_bool(lp_node *n, const char *key, int def, int *out);
int lp_attr_present(lp_node *n, const char *key);
/* 1 when the attribute is present and written as a list ("[3, 5]"), else 0. Lets an
 * op accept a word or a pair in one attribute (conv2d padding: same | 1 | [1, 2])
 * without a failed typed read recording an error. */
int lp_attr_is_list(lp_node *n, const char *key);

/* Report a setup failure: "<file:line:col>: node 'conv1' (conv2d): <message>".
 * Returns LP_ERR_SHAPE so `return lp_node_fail(n, ...)` reads well. The _attr
 * form points at the attribute's own location. */
lp_status lp_node_fail(lp_node *n, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
lp_status lp_node_fail_attr(lp_node *n, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Set the per-sample output shape (checked for overflow by the graph). */
lp_status lp_node_set_out_shape(lp_node *n, lp_shape s);

typedef enum lp_init {
    LP_INIT_ZERO,      /* all zeros (biases) */
    LP_INIT_HE,        /* normal, std sqrt(2 / fan_in) (weights before ReLU) */
    LP_INIT_ONE        /* all ones */
} lp_init;

/* Declare a parameter named "<node>.<suffix>" ("conv1.weight"). Returns its
 * index for lp_node_param(), or -1 after recording an error. */
int lp_node_add_param(lp_node *n, const char *suffix, lp_shape shape, lp_init init, int fan_in);

/* Declare a buffer: a float tensor named "<node>.<suffix>" ("bn1.running_mean")
 * that persists across steps but is not trained (no gradient, no optimizer),
 * like PyTorch's register_buffer. Initialised with `init` (zeros or ones), saved
 * in checkpoints, exported, counted as non-trainable. Returns its index for
 * lp_node_buffer(), or -1 after recording an error. */
int lp_node_add_buffer(lp_node *n, const char *suffix, lp_shape shape, lp_init init);

/* This op will call lp_node_batch_sum with up to `count` values in training:
 * the graph then runs each training batch as one slice per lane, so that the
 * lanes can meet mid-step. */
void lp_node_set_batch_sums(lp_node *n, int count);

/* Per-node memory that lives as long as the graph, zeroed: keep here what setup
 * read (stride, padding, alpha) for forward and backward to use. A descriptor is
 * shared by all nodes of its op, so per-node settings cannot live in statics.
 * Returns NULL (after recording an error) when out of memory. */
void *lp_node_alloc_state(lp_node *n, size_t bytes);
void *lp_node_state(const lp_node *n);

/* Scratch kept from forward to backward (argmax, probabilities) or used as
 * workspace: bytes_per_sample * N + bytes_fixed, 64-byte aligned. */
void lp_node_set_scratch(lp_node *n, size_t bytes_per_sample, size_t bytes_fixed);

/* ---- run time ---------------------------------------------------------- */

int lp_node_batch(const lp_node *n);                 /* N of this step */
const float *lp_node_in(const lp_node *n, int i);    /* [N, in_shape(i)] */
float *lp_node_in_grad(const lp_node *n, int i);     /* NULL: not needed */
int lp_node_in_grad_accumulate(const lp_node *n, int i);
float *lp_node_out(const lp_node *n);                /* [N, out_shape] */
const float *lp_node_out_grad(const lp_node *n);     /* [N, out_shape] */
lp_shape lp_node_out_shape(const lp_node *n);        /* per sample */
float *lp_node_param(const lp_node *n, int k);
float *lp_node_param_grad(const lp_node *n, int k);
void *lp_node_scratch(const lp_node *n);
int lp_node_training(const lp_node *n);              /* 1 in training, 0 in eval */
/* 1 when the graph folded a ReLU feeding input 0 into this node (built-ins that
 * the registry lists in lp_op_absorbs only): input 0 is then the ReLU's input x,
 * and the op must read max(x, 0) and pass a gradient only where x > 0. */
int lp_node_input_relu(const lp_node *n);
/* Built-in pairs the registry lists in lp_op_applies (max-pool after batch norm):
 * lp_node_out_applied(producer) is 1 when its only consumer computes the producer's
 * output itself, from the producer's input, so the producer need not write it, and
 * runs the producer's backward within its own (the producer's backward does nothing);
 * lp_node_input_applied(consumer) is then that producer (else NULL). */
int lp_node_out_applied(const lp_node *n);
lp_node *lp_node_input_applied(const lp_node *n);
const int32_t *lp_node_labels(const lp_node *n);     /* [N] class labels, or NULL */
/* A seed unique to this node and step, for seeded randomness (dropout). */
uint64_t lp_node_step_seed(const lp_node *n);
int lp_node_threads(const lp_node *n);

/* Samples in the whole batch of this step (lp_node_batch is this slice's share),
 * and the index in it of this slice's first sample. */
int lp_node_batch_total(const lp_node *n);
int lp_node_sample_offset(const lp_node *n);
/* A seed unique to this node and step but the same in every slice: with
 * lp_node_sample_offset, randomness per sample that does not depend on how the
 * batch was cut (counter-based: hash(seed, global element index)). */
uint64_t lp_node_batch_seed(const lp_node *n);

/* Buffer k of this node (lp_node_add_buffer): [shape], shared by all lanes. */
float *lp_node_buffer(const lp_node *n, int k);
/* 1 when this call of forward should update the node's buffers: in a training
 * forward, on exactly one lane of the step (the others read them only). */
int lp_node_updates_buffers(const lp_node *n);
/* Replace v[0..count) (this slice's partial sums) by their sum over the whole
 * batch: every lane of the step calls it at the same point and gets the same
 * values (lanes added in lane order, so the result is fixed for a thread
 * count). Declared in setup with lp_node_set_batch_sums; a no-op on one lane. */
void lp_node_batch_sum(lp_node *n, double *v, int count);

/* Write or add v into an input gradient element, as the graph asked. */
static inline void lp_grad_put(float *g, int accumulate, float v)
{
    if (accumulate) *g += v; else *g = v;
}

/* ---- plugins ----------------------------------------------------------- */

typedef struct lp_plugin_host {
    int abi_version;   /* the host's LP_OP_ABI_VERSION */
    /* Register one op; LP_OK or an error the host reports with the plugin path. */
    lp_status (*register_op)(struct lp_plugin_host *host, const lp_op *op);
    void *impl;        /* host's private state */
} lp_plugin_host;

#define LP_PLUGIN_ENTRY "loupe_plugin_init"
typedef lp_status (*lp_plugin_init_fn)(lp_plugin_host *host);

#endif
