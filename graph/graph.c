/* graph.c - build a DAG of op nodes from a spec, plan its buffers, run it forward
 * and backward. The op API (loupe_op.h) is implemented here: an op sees its node
 * only through these accessors.
 *
 * Node 0 is the image ("input"): it has no op, its output is the caller's batch.
 * nodes[] is kept in topological order after build, so forward is one loop up and
 * backward one loop down.
 */
#include "graph.h"

#include "arena.h"
#include "barrier.h"
#include "compute.h"
#include "pool.h"
#include "registry.h"
#include "rng.h"
#include "shape.h"

#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct lp_param {
    char *name;        /* "conv1.weight" */
    lp_shape shape;
    lp_init init;
    int fan_in;
    size_t offset;     /* in floats, into params/grads */
    size_t numel;
} lp_param;

/* A buffer: persistent, not trained (lp_node_add_buffer). */
typedef struct lp_buffer {
    char *name;        /* "bn1.running_mean" */
    lp_shape shape;
    lp_init init;
    size_t offset;     /* in floats, into buffers */
    size_t numel;
} lp_buffer;

/* Where the lanes of a training step meet for whole-batch sums
 * (lp_node_batch_sum): two tables of one row of `width` doubles per lane, used in
 * turn, and a barrier. Two tables, so one barrier per sum suffices: a lane can
 * write a table again only after every lane has passed the next sum's barrier,
 * that is, has finished reading it. */
typedef struct lane_sync {
    lp_barrier barrier;
    int width, lanes;
    double *slots;     /* [2, lanes, width] */
} lane_sync;

struct lp_node {
    lp_graph *g;
    const lp_op *op;   /* NULL for the input node */
    char *name;
    lp_loc loc;
    lp_value *attrs;   /* owned clone of the spec's map (may be NULL) */
    int n_in;
    lp_node **in;
    int *in_accumulate;          /* per input slot: add into its gradient (1) or write (0) */
    lp_shape out_shape;          /* per sample */
    size_t out_numel;            /* per sample */
    int first_param, n_params;   /* into g->param_table */
    int first_buffer, n_buffers; /* into g->buffer_table */
    int batch_sums;              /* lp_node_set_batch_sums: values it reduces at most */
    size_t scratch_per_sample, scratch_fixed;
    bool needs_grad;             /* its output gradient is needed */
    bool folded;                 /* absorbed by its consumer: never run, no buffers */
    lp_node *absorbed;           /* the node folded into this one's input 0, or NULL */
    bool out_applied;            /* its consumer applies its output itself (lp_node_out_applied) */
    bool applies_input;          /* applies input 0's output from that node's input */
    bool grad_written;           /* build-time: some consumer already writes its gradient */
    int index;                   /* position in topological order */
    /* planned per batch */
    float *out, *out_grad;
    void *scratch;
    void *state;                 /* lp_node_alloc_state, owned */
    /* profile */
    double fwd_s, bwd_s;
};

struct lp_graph {
    lp_node **nodes;   /* topological order; nodes[0] is the input */
    int n_nodes;
    lp_node *output;   /* logits */
    lp_node *final;    /* loss node, or output */
    lp_error *err;     /* build-time error sink for the op API */

    lp_param *param_table;
    int n_params, cap_params;
    size_t param_floats;
    float *params, *grads;

    lp_buffer *buffer_table;
    int n_buffers, cap_buffers;
    size_t buffer_floats;
    float *buffers;    /* shared by the lanes, like params */
    int batch_sums;    /* most any node reduces over the batch; 0: none (slices are free) */

    lp_arena arena;
    int max_batch;
    int batch;
    const int32_t *labels;
    bool training;
    bool profile;
    bool profile_cpu;  /* LOUPE_PROFILE_CLOCK=cpu: the lane thread's CPU time, not the wall clock */
    uint64_t seed, step;
    int sample_base;   /* index in the whole batch of this run's first sample */
    int batch_offset;  /* index in the global batch of this process's first (MPI shard) */
    int batch_total;   /* samples in the whole batch of this step */
    int lane_rank;     /* this lane's number (0: the graph itself) */
    int sync_used;     /* lanes meeting in lp_node_batch_sum this step (<= 1: none) */
    unsigned sums_done;/* lp_node_batch_sum calls this step: picks the table */
    lane_sync *sync;   /* lanes[0]'s, shared; NULL until planned with lanes */
    int op_threads;    /* what lp_node_threads answers; 0: lp_threads() */
    int lane_threads;  /* lanes a sliced run may use at once */

    /* Sliced runs (lp_graph_plan_lanes): lanes[0] is this graph, the others are
     * copies of it with their own buffers and gradients, sharing its parameters. */
    lp_graph **lanes;  /* always at least lanes[0] == this graph (set at build) */
    int n_lanes;
    int slice, infer_slice;    /* samples per slice, at most, training and inference */
    int lanes_from;            /* training batches smaller than this run on one lane */
    int lane_max_batch;
    float *batch_logits;       /* [lane_max_batch, logits] of the last sliced run */
    bool shared_params;        /* params belong to lanes[0] of another graph */
};

/* ---- op API: setup time ------------------------------------------------ */

const char *lp_node_name(const lp_node *n) { return n->name; }
int lp_node_num_inputs(const lp_node *n) { return n->n_in; }

lp_shape lp_node_in_shape(const lp_node *n, int i)
{
    assert(i >= 0 && i < n->n_in);
    return n->in[i]->out_shape;
}

static lp_status node_vfail(lp_node *n, lp_loc loc, const char *fmt, va_list ap)
{
    char msg[LP_ERROR_MSG_MAX];
    vsnprintf(msg, sizeof msg, fmt, ap);
    return lp_error_at(n->g->err, LP_ERR_SHAPE, loc, "node '%s' (%s): %s", n->name,
                       n->op ? n->op->name : "input", msg);
}

lp_status lp_node_fail(lp_node *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    node_vfail(n, n->loc, fmt, ap);
    va_end(ap);
    return LP_ERR_SHAPE;
}

static lp_loc attr_loc(lp_node *n, const char *key)
{
    int i = lp_value_find(n->attrs, key);
    return i >= 0 ? n->attrs->items[i]->loc : n->loc;
}

lp_status lp_node_fail_attr(lp_node *n, const char *key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    node_vfail(n, attr_loc(n, key), fmt, ap);
    va_end(ap);
    return LP_ERR_SHAPE;
}

int lp_attr_present(lp_node *n, const char *key) { return lp_value_find(n->attrs, key) >= 0; }

int lp_attr_is_list(lp_node *n, const char *key)
{
    int i = lp_value_find(n->attrs, key);
    return i >= 0 && n->attrs->items[i]->kind == LP_VALUE_LIST;
}

static lp_status attr_what(lp_node *n, const char *key, char *buf, size_t size)
{
    snprintf(buf, size, "node '%s' (%s): attribute '%s'", n->name, n->op->name, key);
    return LP_OK;
}

static lp_status attr_missing(lp_node *n, const char *key)
{
    return lp_error_at(n->g->err, LP_ERR_CONFIG, n->loc,
                       "node '%s' (%s): missing required attribute '%s'", n->name, n->op->name,
                       key);
}

static lp_status scalar_int(lp_node *n, const char *key, const lp_value *v, int *out)
{
    char what[256];
    attr_what(n, key, what, sizeof what);
    long long x;
    if (lp_value_as_int(v, what, &x, n->g->err)) return LP_ERR_CONFIG;
    if (x < -2147483647LL || x > 2147483647LL)
        return lp_error_at(n->g->err, LP_ERR_CONFIG, v->loc, "%s: %lld does not fit in an int",
                           what, x);
    *out = (int)x;
    return LP_OK;
}

lp_status lp_attr_int(lp_node *n, const char *key, int def, int *out)
{
    lp_value *v = lp_value_get(n->attrs, key);
    if (!v) { *out = def; return LP_OK; }
    return scalar_int(n, key, v, out);
}

lp_status lp_attr_int_required(lp_node *n, const char *key, int *out)
{
    if (!lp_attr_present(n, key)) return attr_missing(n, key);
    return lp_attr_int(n, key, 0, out);
}

lp_status lp_attr_float(lp_node *n, const char *key, float def, float *out)
{
    lp_value *v = lp_value_get(n->attrs, key);
    if (!v) { *out = def; return LP_OK; }
    char what[256];
    attr_what(n, key, what, sizeof what);
    double x;
    if (lp_value_as_double(v, what, &x, n->g->err)) return LP_ERR_CONFIG;
    if (fabs(x) > 3.0e38)
        return lp_error_at(n->g->err, LP_ERR_CONFIG, v->loc, "%s: %g is out of float range",
                           what, x);
    *out = (float)x;
    return LP_OK;
}

lp_status lp_attr_pair(lp_node *n, const char *key, int def, int out[2])
{
    lp_value *v = lp_value_get(n->attrs, key);
    if (!v) { out[0] = out[1] = def; return LP_OK; }
    if (v->kind == LP_VALUE_SCALAR) {
        if (scalar_int(n, key, v, &out[0])) return LP_ERR_CONFIG;
        out[1] = out[0];
        return LP_OK;
    }
    if (v->kind != LP_VALUE_LIST || v->count != 2) {
        char what[256];
        attr_what(n, key, what, sizeof what);
        return lp_error_at(n->g->err, LP_ERR_CONFIG, v->loc,
                           "%s: expected an integer or a list [h, w]", what);
    }
    for (int i = 0; i < 2; i++)
        if (scalar_int(n, key, v->items[i], &out[i])) return LP_ERR_CONFIG;
    return LP_OK;
}

lp_status lp_attr_pair_required(lp_node *n, const char *key, int out[2])
{
    if (!lp_attr_present(n, key)) return attr_missing(n, key);
    return lp_attr_pair(n, key, 0, out);
}

lp_status lp_attr_string(lp_node *n, const char *key, const char *def, const char **out)
{
    lp_value *v = lp_value_get(n->attrs, key);
    if (!v) { *out = def; return LP_OK; }
    char what[256];
    attr_what(n, key, what, sizeof what);
    return lp_value_as_string(v, what, out, n->g->err);
}

lp_status lp_attr_bool(lp_node *n, const char *key, int def, int *out)
{
    lp_value *v = lp_value_get(n->attrs, key);
    if (!v) { *out = def; return LP_OK; }
    if (v->kind == LP_VALUE_SCALAR && !v->quoted && (!strcmp(v->text, "1") || !strcmp(v->text, "0"))) {
        *out = v->text[0] == '1';
        return LP_OK;
    }
    char what[256];
    attr_what(n, key, what, sizeof what);
    bool b;
    if (lp_value_as_bool(v, what, &b, n->g->err)) return LP_ERR_CONFIG;
    *out = b;
    return LP_OK;
}

lp_status lp_node_set_out_shape(lp_node *n, lp_shape s)
{
    char buf[64];
    long long numel = lp_shape_numel(s);
    if (numel < 0)
        return lp_node_fail(n, "output shape %s is empty or too large (more than %lld elements)",
                            lp_shape_str(s, buf, sizeof buf), LP_MAX_ELEMENTS);
    n->out_shape = s;
    n->out_numel = (size_t)numel;
    return LP_OK;
}

int lp_node_add_param(lp_node *n, const char *suffix, lp_shape shape, lp_init init, int fan_in)
{
    lp_graph *g = n->g;
    long long numel = lp_shape_numel(shape);
    char buf[64];
    if (numel < 0) {
        lp_node_fail(n, "parameter '%s' shape %s is empty or too large", suffix,
                     lp_shape_str(shape, buf, sizeof buf));
        return -1;
    }
    if (g->n_params == g->cap_params) {
        int cap = g->cap_params ? 2 * g->cap_params : 16;
        lp_param *t = realloc(g->param_table, (size_t)cap * sizeof *t);
        if (!t) { lp_error_set(g->err, LP_ERR_NOMEM, "out of memory declaring parameters"); return -1; }
        g->param_table = t;
        g->cap_params = cap;
    }
    lp_param *p = &g->param_table[g->n_params];
    size_t len = strlen(n->name) + strlen(suffix) + 2;
    p->name = malloc(len);
    if (!p->name) { lp_error_set(g->err, LP_ERR_NOMEM, "out of memory"); return -1; }
    snprintf(p->name, len, "%s.%s", n->name, suffix);
    p->shape = shape;
    p->init = init;
    p->fan_in = fan_in > 0 ? fan_in : 1;
    p->numel = (size_t)numel;
    p->offset = g->param_floats;
    if (g->param_floats + p->numel > (size_t)LP_MAX_ELEMENTS) {
        free(p->name);
        lp_node_fail(n, "the model has more than %lld parameters", LP_MAX_ELEMENTS);
        return -1;
    }
    g->param_floats += p->numel;
    if (n->n_params == 0) n->first_param = g->n_params;
    n->n_params++;
    g->n_params++;
    return n->n_params - 1;
}

int lp_node_add_buffer(lp_node *n, const char *suffix, lp_shape shape, lp_init init)
{
    lp_graph *g = n->g;
    long long numel = lp_shape_numel(shape);
    char buf[64];
    if (numel < 0) {
        lp_node_fail(n, "buffer '%s' shape %s is empty or too large", suffix,
                     lp_shape_str(shape, buf, sizeof buf));
        return -1;
    }
    if (g->n_buffers == g->cap_buffers) {
        int cap = g->cap_buffers ? 2 * g->cap_buffers : 8;
        lp_buffer *t = realloc(g->buffer_table, (size_t)cap * sizeof *t);
        if (!t) { lp_error_set(g->err, LP_ERR_NOMEM, "out of memory declaring buffers"); return -1; }
        g->buffer_table = t;
        g->cap_buffers = cap;
    }
    lp_buffer *b = &g->buffer_table[g->n_buffers];
    size_t len = strlen(n->name) + strlen(suffix) + 2;
    b->name = malloc(len);
    if (!b->name) { lp_error_set(g->err, LP_ERR_NOMEM, "out of memory"); return -1; }
    snprintf(b->name, len, "%s.%s", n->name, suffix);
    b->shape = shape;
    b->init = init;
    b->numel = (size_t)numel;
    b->offset = g->buffer_floats;
    if (g->buffer_floats + b->numel > (size_t)LP_MAX_ELEMENTS) {
        free(b->name);
        lp_node_fail(n, "the model has more than %lld buffer values", LP_MAX_ELEMENTS);
        return -1;
    }
    g->buffer_floats += b->numel;
    if (n->n_buffers == 0) n->first_buffer = g->n_buffers;
    n->n_buffers++;
    g->n_buffers++;
    return n->n_buffers - 1;
}

void lp_node_set_batch_sums(lp_node *n, int count)
{
    assert(count >= 0);
    n->batch_sums = count;
    if (count > n->g->batch_sums) n->g->batch_sums = count;
}

void *lp_node_alloc_state(lp_node *n, size_t bytes)
{
    free(n->state);
    n->state = calloc(1, bytes ? bytes : 1);
    if (!n->state) lp_error_set(n->g->err, LP_ERR_NOMEM, "out of memory in node '%s'", n->name);
    return n->state;
}

void *lp_node_state(const lp_node *n) { return n->state; }

void lp_node_set_scratch(lp_node *n, size_t bytes_per_sample, size_t bytes_fixed)
{
    n->scratch_per_sample = bytes_per_sample;
    n->scratch_fixed = bytes_fixed;
}

/* ---- op API: run time -------------------------------------------------- */

int lp_node_batch(const lp_node *n) { return n->g->batch; }
const float *lp_node_in(const lp_node *n, int i) { return n->in[i]->out; }
float *lp_node_in_grad(const lp_node *n, int i) { return n->in[i]->needs_grad ? n->in[i]->out_grad : NULL; }
int lp_node_in_grad_accumulate(const lp_node *n, int i) { return n->in_accumulate[i]; }
float *lp_node_out(const lp_node *n) { return n->out; }
const float *lp_node_out_grad(const lp_node *n) { return n->out_grad; }
lp_shape lp_node_out_shape(const lp_node *n) { return n->out_shape; }

float *lp_node_param(const lp_node *n, int k)
{
    assert(k >= 0 && k < n->n_params);
    return n->g->params + n->g->param_table[n->first_param + k].offset;
}

float *lp_node_param_grad(const lp_node *n, int k)
{
    assert(k >= 0 && k < n->n_params);
    return n->g->grads + n->g->param_table[n->first_param + k].offset;
}

void *lp_node_scratch(const lp_node *n) { return n->scratch; }
int lp_node_training(const lp_node *n) { return n->g->training; }
int lp_node_input_relu(const lp_node *n) { return n->absorbed != NULL; }
int lp_node_out_applied(const lp_node *n) { return n->out_applied; }
lp_node *lp_node_input_applied(const lp_node *n) { return n->applies_input ? n->in[0] : NULL; }
const int32_t *lp_node_labels(const lp_node *n) { return n->g->labels; }
int lp_node_threads(const lp_node *n) { return n->g->op_threads ? n->g->op_threads : lp_threads(); }
int lp_node_batch_total(const lp_node *n) { return n->g->batch_total; }
int lp_node_sample_offset(const lp_node *n) { return n->g->sample_base; }

uint64_t lp_node_batch_seed(const lp_node *n)
{
    return lp_rng_derive(lp_rng_derive(n->g->seed, 0xD50B), n->g->step * 1024u + (uint64_t)n->index);
}

float *lp_node_buffer(const lp_node *n, int k)
{
    assert(k >= 0 && k < n->n_buffers);
    return n->g->buffers + n->g->buffer_table[n->first_buffer + k].offset;
}

int lp_node_updates_buffers(const lp_node *n) { return n->g->training && n->g->lane_rank == 0; }

void lp_node_batch_sum(lp_node *n, double *v, int count)
{
    lp_graph *g = n->g;
    assert(count >= 0 && count <= n->batch_sums);
    if (g->sync_used <= 1) return;
    lane_sync *s = g->sync;
    double *table = s->slots + (size_t)(g->sums_done++ & 1) * s->lanes * s->width;
    memcpy(table + (size_t)g->lane_rank * s->width, v, (size_t)count * sizeof *v);
    lp_barrier_wait(&s->barrier);
    for (int i = 0; i < count; i++) {
        double t = 0;
        for (int r = 0; r < g->sync_used; r++) t += table[(size_t)r * s->width + i];
        v[i] = t;
    }
}

uint64_t lp_node_step_seed(const lp_node *n)
{
    /* Per slice too: the slices of one step must not draw the same numbers. */
    uint64_t s = lp_rng_derive(n->g->seed, n->g->step * 1024u + (uint64_t)n->index);
    return n->g->sample_base ? lp_rng_derive(s, (uint64_t)n->g->sample_base) : s;
}

/* ---- build ------------------------------------------------------------- */

static lp_node *node_new(lp_graph *g, const char *name, lp_loc loc)
{
    lp_node *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    n->g = g;
    n->name = strdup(name);
    n->loc = loc;
    if (!n->name) { free(n); return NULL; }
    return n;
}

static void node_free(lp_node *n)
{
    if (!n) return;
    free(n->name);
    lp_value_free(n->attrs);
    free(n->in);
    free(n->in_accumulate);
    free(n->state);
    free(n);
}

static lp_node *find_node(lp_node **nodes, int count, const char *name)
{
    for (int i = 0; i < count; i++)
        if (strcmp(nodes[i]->name, name) == 0) return nodes[i];
    return NULL;
}

/* Report an unknown input name with the closest existing node as a hint. */
static lp_status unknown_input(lp_graph *g, lp_node *n, const char *name, lp_node **all, int count)
{
    const char **names = calloc((size_t)count + 1, sizeof *names);
    const char *hint = NULL;
    if (names) {
        for (int i = 0; i < count; i++) names[i] = all[i]->name;
        hint = lp_did_you_mean(name, names);
    }
    lp_status s = lp_error_at(g->err, LP_ERR_CONFIG, n->loc, "node '%s': unknown input '%s'%s%s%s",
                              n->name, name, hint ? ": did you mean '" : "", hint ? hint : "",
                              hint ? "'?" : "");
    free(names);
    return s;
}

static lp_status unknown_op(lp_graph *g, lp_loc loc, const char *node, const char *op)
{
    const char *hint = lp_did_you_mean(op, lp_op_names());
    return lp_error_at(g->err, LP_ERR_CONFIG, loc,
                       "node '%s': unknown op '%s'%s%s%s (see `loupe ops` for the list)", node, op,
                       hint ? ": did you mean '" : "", hint ? hint : "", hint ? "'?" : "");
}

static lp_status check_unused_attrs(lp_graph *g, lp_node *n)
{
    if (!n->attrs) return LP_OK;
    for (int i = 0; i < n->attrs->count; i++) {
        if (n->attrs->items[i]->used) continue;
        const char *known[64];
        int k = 0;
        for (const lp_attr_doc *a = n->op->attrs; a && a->name && k < 63; a++) known[k++] = a->name;
        known[k] = NULL;
        const char *hint = lp_did_you_mean(n->attrs->keys[i], known);
        return lp_error_at(g->err, LP_ERR_CONFIG, n->attrs->key_locs[i],
                           "node '%s' (%s): unknown attribute '%s'%s%s%s", n->name, n->op->name,
                           n->attrs->keys[i], hint ? ": did you mean '" : "", hint ? hint : "",
                           hint ? "'?" : "");
    }
    return LP_OK;
}

/* Kahn's algorithm over all[0..count); all[0] is the input. Writes g->nodes. */
static lp_status order_nodes(lp_graph *g, lp_node **all, int count)
{
    int *pending = calloc((size_t)count, sizeof *pending);
    g->nodes = calloc((size_t)count, sizeof *g->nodes);
    if (!pending || !g->nodes) { free(pending); return lp_error_set(g->err, LP_ERR_NOMEM, "out of memory"); }
    for (int i = 0; i < count; i++) {
        all[i]->index = i; /* temporarily: position in all[] */
        pending[i] = all[i]->n_in;
    }
    int done = 0;
    /* Repeatedly take the first ready node in config order: the order stays the
     * config's wherever the dependencies allow, which keeps summaries readable. */
    bool *taken = calloc((size_t)count, sizeof *taken);
    if (!taken) { free(pending); return lp_error_set(g->err, LP_ERR_NOMEM, "out of memory"); }
    while (done < count) {
        int pick = -1;
        for (int i = 0; i < count && pick < 0; i++)
            if (!taken[i] && pending[i] == 0) pick = i;
        if (pick < 0) break;
        taken[pick] = true;
        g->nodes[done++] = all[pick];
        for (int j = 0; j < count; j++)
            for (int k = 0; k < all[j]->n_in; k++)
                if (all[j]->in[k] == all[pick]) pending[j]--;
    }
    lp_status s = LP_OK;
    if (done < count) {
        /* Every node left waits on another left one: walk back until one repeats. */
        lp_node *n = NULL;
        for (int i = 0; i < count && !n; i++)
            if (!taken[i]) n = all[i];
        for (int steps = 0; steps < count; steps++) {
            lp_node *next = NULL;
            for (int k = 0; k < n->n_in && !next; k++)
                if (!taken[n->in[k]->index]) next = n->in[k];
            n = next;
        }
        char path[512];
        size_t len = (size_t)snprintf(path, sizeof path, "'%s'", n->name);
        lp_node *m = n;
        do {
            lp_node *next = NULL;
            for (int k = 0; k < m->n_in && !next; k++)
                if (!taken[m->in[k]->index]) next = m->in[k];
            m = next;
            if (len < sizeof path)
                len += (size_t)snprintf(path + len, sizeof path - len, " <- '%s'", m->name);
        } while (m != n);
        s = lp_error_at(g->err, LP_ERR_CONFIG, n->loc, "node '%s' is part of a cycle: %s",
                        n->name, path);
        /* g->nodes holds only the ordered part: hand the rest back for freeing. */
        for (int i = 0; i < count; i++)
            if (!taken[i]) g->nodes[done++] = all[i];
    }
    g->n_nodes = count;
    for (int i = 0; i < count; i++) g->nodes[i]->index = i;
    free(pending);
    free(taken);
    return s;
}

static lp_status wire_node(lp_graph *g, lp_node *n, const lp_node_spec *ns, lp_node **all,
                           int count)
{
    n->op = lp_op_find(ns->op);
    if (!n->op) return unknown_op(g, ns->loc, ns->name, ns->op);
    if (ns->n_inputs < n->op->min_inputs || ns->n_inputs > n->op->max_inputs) {
        if (n->op->min_inputs == n->op->max_inputs)
            return lp_error_at(g->err, LP_ERR_CONFIG, ns->loc,
                               "node '%s' (%s): takes %d input%s, %d given", ns->name, ns->op,
                               n->op->min_inputs, n->op->min_inputs == 1 ? "" : "s", ns->n_inputs);
        return lp_error_at(g->err, LP_ERR_CONFIG, ns->loc,
                           "node '%s' (%s): takes %d to %d inputs, %d given", ns->name, ns->op,
                           n->op->min_inputs, n->op->max_inputs, ns->n_inputs);
    }
    n->n_in = ns->n_inputs;
    n->in = calloc((size_t)n->n_in + 1, sizeof *n->in);
    n->in_accumulate = calloc((size_t)n->n_in + 1, sizeof *n->in_accumulate);
    if (!n->in || !n->in_accumulate) return lp_error_set(g->err, LP_ERR_NOMEM, "out of memory");
    for (int k = 0; k < n->n_in; k++) {
        n->in[k] = find_node(all, count, ns->inputs[k]);
        if (!n->in[k]) return unknown_input(g, n, ns->inputs[k], all, count);
    }
    if (ns->attrs) {
        n->attrs = lp_value_clone(ns->attrs);
        if (!n->attrs) return lp_error_set(g->err, LP_ERR_NOMEM, "out of memory");
    }
    return LP_OK;
}

/* Mark nodes from which `final` can be reached; any other is a dead branch. */
static lp_status check_reaches(lp_graph *g)
{
    bool *live = calloc((size_t)g->n_nodes, sizeof *live);
    if (!live) return lp_error_set(g->err, LP_ERR_NOMEM, "out of memory");
    live[g->final->index] = true;
    for (int i = g->n_nodes - 1; i >= 0; i--) {
        lp_node *n = g->nodes[i];
        if (!live[i]) continue;
        for (int k = 0; k < n->n_in; k++) live[n->in[k]->index] = true;
    }
    lp_status s = LP_OK;
    for (int i = 0; i < g->n_nodes && s == LP_OK; i++)
        if (!live[i])
            s = lp_error_at(g->err, LP_ERR_CONFIG, g->nodes[i]->loc,
                            "node '%s' does not lead to the output '%s': remove it or use it",
                            g->nodes[i]->name, g->final->name);
    free(live);
    return s;
}

/* Decide who needs a gradient and, per input slot, whether the consumer writes
 * or adds: backward runs in reverse order, so the last consumer in topological
 * order is the first to write. */
static void plan_gradients(lp_graph *g, bool input_grad)
{
    for (int i = 0; i < g->n_nodes; i++) {
        lp_node *n = g->nodes[i];
        n->needs_grad = i == 0 ? input_grad : n->n_params > 0;
        for (int k = 0; k < n->n_in; k++) n->needs_grad |= n->in[k]->needs_grad;
    }
    for (int i = g->n_nodes - 1; i > 0; i--) {
        lp_node *n = g->nodes[i];
        if (n->folded) continue;
        for (int k = 0; k < n->n_in; k++) {
            lp_node *p = n->in[k];
            n->in_accumulate[k] = p->grad_written;
            if (p->needs_grad) p->grad_written = true;
        }
    }
}

/* Let a consumer absorb its producer where the registry says it can (max-pool after
 * ReLU): the consumer reads the producer's input and applies the producer itself,
 * the producer's node is skipped. Only when the producer feeds nothing else and is
 * not an output. LOUPE_NO_FOLD=1 turns it off (to compare, in tests). */
static void fold_nodes(lp_graph *g)
{
    const char *off = getenv("LOUPE_NO_FOLD");
    if (off && *off && strcmp(off, "0") != 0) return;
    for (int i = 1; i < g->n_nodes; i++) {
        lp_node *m = g->nodes[i];
        lp_node *r = m->n_in == 1 ? m->in[0] : NULL;
        if (!r || !r->op || r->n_in != 1 || r->folded || r == g->output || r == g->final ||
            !lp_op_absorbs(m->op, r->op))
            continue;
        int consumers = 0;
        for (int j = 1; j < g->n_nodes; j++)
            for (int k = 0; k < g->nodes[j]->n_in; k++) consumers += g->nodes[j]->in[k] == r;
        if (consumers != 1) continue;
        r->folded = true;
        m->absorbed = r;
        m->in[0] = r->in[0];
    }
    /* Then let a consumer apply its producer's output from the producer's input
     * (max-pool after batch norm, ReLU folded or not): the producer still runs (its
     * statistics, its backward) but writes no output. */
    for (int i = 1; i < g->n_nodes; i++) {
        lp_node *m = g->nodes[i];
        lp_node *p = m->n_in == 1 ? m->in[0] : NULL;
        if (!p || !p->op || p->n_in != 1 || p->folded || p == g->output || p == g->final ||
            !lp_op_applies(m->op, p->op))
            continue;
        int consumers = 0;
        for (int j = 1; j < g->n_nodes; j++)
            if (!g->nodes[j]->folded)
                for (int k = 0; k < g->nodes[j]->n_in; k++) consumers += g->nodes[j]->in[k] == p;
        if (consumers != 1) continue;
        p->out_applied = true;
        m->applies_input = true;
    }
}

static lp_status setup_nodes(lp_graph *g)
{
    for (int i = 1; i < g->n_nodes; i++) {
        lp_node *n = g->nodes[i];
        lp_status s = n->op->setup(n);
        if (s != LP_OK || g->err->status != LP_OK) {
            if (g->err->status == LP_OK) lp_node_fail(n, "setup failed");
            return g->err->status;
        }
        if (n->out_numel == 0) return lp_node_fail(n, "op '%s' set no output shape", n->op->name);
        if ((s = check_unused_attrs(g, n))) return s;
    }
    return LP_OK;
}

lp_status lp_graph_build(const lp_model_spec *spec, lp_graph **out, lp_error *err)
{
    *out = NULL;
    lp_registry_init();
    lp_graph *g = calloc(1, sizeof *g);
    if (!g) return lp_error_set(err, LP_ERR_NOMEM, "out of memory");
    g->err = err;
    int count = spec->n_nodes + 1 + (spec->loss ? 1 : 0);
    lp_node **all = calloc((size_t)count, sizeof *all);
    lp_status s = all ? LP_OK : lp_error_set(err, LP_ERR_NOMEM, "out of memory");
    int made = 0;

    if (!s && spec->n_nodes == 0)
        s = lp_error_at(err, LP_ERR_CONFIG, spec->input_loc, "the model has no layers");
    if (!s) {
        all[made] = node_new(g, "input", spec->input_loc);
        if (!all[made]) s = lp_error_set(err, LP_ERR_NOMEM, "out of memory");
        else made++;
    }
    if (!s) {
        long long numel = lp_shape_numel(spec->input);
        if (numel < 0)
            s = lp_error_at(err, LP_ERR_SHAPE, spec->input_loc,
                            "model input shape must have positive sizes (and at most %lld elements)",
                            LP_MAX_ELEMENTS);
        all[0]->out_shape = spec->input;
        all[0]->out_numel = (size_t)(numel > 0 ? numel : 0);
    }
    for (int i = 0; !s && i < spec->n_nodes; i++) {
        const lp_node_spec *ns = &spec->nodes[i];
        if (find_node(all, made, ns->name)) {
            s = lp_error_at(err, LP_ERR_CONFIG, ns->loc, "node name '%s' is used twice", ns->name);
            break;
        }
        all[made] = node_new(g, ns->name, ns->loc);
        if (!all[made]) s = lp_error_set(err, LP_ERR_NOMEM, "out of memory");
        else made++;
    }
    for (int i = 0; !s && i < spec->n_nodes; i++)
        s = wire_node(g, all[i + 1], &spec->nodes[i], all, made);

    lp_node *output = NULL;
    if (!s) {
        const char *oname = spec->output ? spec->output : spec->nodes[spec->n_nodes - 1].name;
        output = find_node(all, made, oname);
        if (!output || output == all[0])
            s = lp_error_at(err, LP_ERR_CONFIG, spec->input_loc, "output node '%s' not found", oname);
    }
    if (!s && spec->loss) {
        lp_node_spec ls = {.name = "loss", .op = spec->loss, .inputs = (char *[]){output->name},
                           .n_inputs = 1, .loc = spec->loss_loc};
        if (find_node(all, made, "loss"))
            s = lp_error_at(err, LP_ERR_CONFIG, spec->loss_loc,
                            "node name 'loss' is reserved for the loss when `loss:` is given");
        if (!s) {
            lp_node *loss = node_new(g, "loss", spec->loss_loc);
            if (!loss) s = lp_error_set(err, LP_ERR_NOMEM, "out of memory");
            else {
                all[made++] = loss;
                s = wire_node(g, loss, &ls, all, made);
            }
        }
    }
    if (!s) {
        s = order_nodes(g, all, made);
        g->output = output;
        g->final = spec->loss ? all[made - 1] : output;
    } else {
        for (int i = 0; i < made; i++) node_free(all[i]);
    }
    free(all);
    if (!s) s = setup_nodes(g);
    if (!s) s = check_reaches(g);
    if (!s) {
        fold_nodes(g);
        plan_gradients(g, spec->input_grad);
        g->params = aligned_alloc(64, lp_arena_round((g->param_floats + 1) * sizeof(float)));
        g->grads = aligned_alloc(64, lp_arena_round((g->param_floats + 1) * sizeof(float)));
        g->buffers = aligned_alloc(64, lp_arena_round((g->buffer_floats + 1) * sizeof(float)));
        g->lanes = malloc(sizeof *g->lanes);
        if (g->lanes) g->lanes[g->n_lanes++] = g;
        if (!g->params || !g->grads || !g->buffers || !g->lanes)
            s = lp_error_set(err, LP_ERR_NOMEM, "out of memory for parameters");
        else {
            memset(g->buffers, 0, g->buffer_floats * sizeof(float));
            memset(g->params, 0, g->param_floats * sizeof(float));
            memset(g->grads, 0, g->param_floats * sizeof(float));
        }
    }
    g->err = NULL;
    if (s) {
        lp_graph_free(g);
        return s;
    }
    *out = g;
    return LP_OK;
}

void lp_graph_free(lp_graph *g)
{
    if (!g) return;
    for (int i = 0; i < g->n_nodes; i++) node_free(g->nodes[i]);
    free(g->nodes);
    for (int i = 0; i < g->n_params; i++) free(g->param_table[i].name);
    free(g->param_table);
    for (int i = 0; i < g->n_buffers; i++) free(g->buffer_table[i].name);
    free(g->buffer_table);
    if (g->sync && g->lane_rank == 0) {
        lp_barrier_destroy(&g->sync->barrier);
        free(g->sync->slots);
        free(g->sync);
    }
    for (int i = 1; i < g->n_lanes; i++) lp_graph_free(g->lanes[i]);
    free(g->lanes);
    free(g->batch_logits);
    if (!g->shared_params) free(g->params), free(g->buffers);
    free(g->grads);
    lp_arena_free(&g->arena);
    free(g);
}

void lp_graph_init_params(lp_graph *g, uint64_t seed)
{
    lp_rng rng;
    lp_rng_seed(&rng, lp_rng_derive(seed, 0x1417));
    for (int k = 0; k < g->n_params; k++) {
        const lp_param *p = &g->param_table[k];
        float *w = g->params + p->offset;
        double std = sqrt(2.0 / p->fan_in);
        for (size_t i = 0; i < p->numel; i++)
            w[i] = p->init == LP_INIT_HE ? (float)(std * lp_rng_normal(&rng))
                   : p->init == LP_INIT_ONE ? 1.0f : 0.0f;
    }
    for (int k = 0; k < g->n_buffers; k++) {
        const lp_buffer *b = &g->buffer_table[k];
        for (size_t i = 0; i < b->numel; i++)
            g->buffers[b->offset + i] = b->init == LP_INIT_ONE ? 1.0f : 0.0f;
    }
}

/* ---- plan and run ------------------------------------------------------- */

/* The profile's clock: wall time, or with LOUPE_PROFILE_CLOCK=cpu the lane thread's
 * CPU time (OpenMP workers not counted), which a busy machine distorts less. */
static double profile_now(const lp_graph *g) { return g->profile_cpu ? lp_thread_seconds() : lp_seconds(); }

static size_t node_bytes(const lp_node *n, int batch, bool is_input)
{
    if (n->folded) return 0;
    size_t floats = n->out_numel * (size_t)batch;
    size_t bytes = 0;
    if (!is_input) bytes += lp_arena_round(floats * sizeof(float));
    if (n->needs_grad) bytes += lp_arena_round(floats * sizeof(float));
    if (n->scratch_per_sample || n->scratch_fixed)
        bytes += lp_arena_round(n->scratch_per_sample * (size_t)batch + n->scratch_fixed);
    return bytes;
}

/* lp_graph_plan; `what` names max_batch in the out-of-memory message. */
static lp_status plan_arena(lp_graph *g, int max_batch, const char *what, lp_error *err)
{
    if (max_batch <= g->max_batch) return LP_OK;
    size_t total = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        size_t b = node_bytes(g->nodes[i], max_batch, i == 0);
        if (total > SIZE_MAX - b)
            return lp_error_set(err, LP_ERR_NOMEM, "batch %d needs more memory than can be addressed", max_batch);
        total += b;
    }
    lp_arena_free(&g->arena);
    if (lp_arena_init(&g->arena, total))
        return lp_error_set(err, LP_ERR_NOMEM, "cannot allocate %.1f MB of activations for %s",
                            total / 1e6, what);
    for (int i = 0; i < g->n_nodes; i++) {
        lp_node *n = g->nodes[i];
        size_t floats = n->out_numel * (size_t)max_batch;
        if (n->folded) {
            n->out = n->out_grad = NULL;
            n->scratch = NULL;
            continue;
        }
        n->out = i == 0 ? NULL : lp_arena_take(&g->arena, floats * sizeof(float));
        n->out_grad = n->needs_grad ? lp_arena_take(&g->arena, floats * sizeof(float)) : NULL;
        n->scratch = n->scratch_per_sample || n->scratch_fixed
                         ? lp_arena_take(&g->arena, n->scratch_per_sample * (size_t)max_batch + n->scratch_fixed)
                         : NULL;
    }
    g->max_batch = max_batch;
    return LP_OK;
}

lp_status lp_graph_plan(lp_graph *g, int max_batch, lp_error *err)
{
    if (max_batch < 1) return lp_error_set(err, LP_ERR_ARG, "batch size must be at least 1");
    char what[64];
    snprintf(what, sizeof what, "batch %d", max_batch);
    return plan_arena(g, max_batch, what, err);
}

/* Forward over n samples; returns the sum of the loss over them (0 without a loss). */
static double forward_sum(lp_graph *g, const float *x, const int32_t *labels, int n, bool training)
{
    assert(n >= 1 && n <= g->max_batch);
    g->batch = n;
    g->labels = labels;
    g->training = training;
    g->nodes[0]->out = (float *)x; /* read-only by contract: no op writes its inputs */
    for (int i = 1; i < g->n_nodes; i++) {
        lp_node *nd = g->nodes[i];
        if (nd->folded) continue;
        double t0 = g->profile ? profile_now(g) : 0;
        nd->op->forward(nd);
        if (g->profile) nd->fwd_s += profile_now(g) - t0;
    }
    if (g->final == g->output) return 0.0;
    double sum = 0;
    const float *loss = g->final->out;
    for (int i = 0; i < n * (int)g->final->out_numel; i++) sum += loss[i];
    return sum;
}

float lp_graph_forward(lp_graph *g, const float *x, const int32_t *labels, int n, bool training)
{
    g->sample_base = g->batch_offset;
    g->batch_total = n;
    g->sync_used = 1;
    return (float)(forward_sum(g, x, labels, n, training) / n);
}

/* Backward from seed_grad, or from seed_value in every element of the final
 * output's gradient; parameter gradients are added to what g->grads holds. */
static void backward_from(lp_graph *g, const float *seed_grad, float seed_value)
{
    lp_node *f = g->final;
    if (!f->needs_grad) return;
    size_t count = f->out_numel * (size_t)g->batch;
    if (seed_grad) memcpy(f->out_grad, seed_grad, count * sizeof(float));
    else
        for (size_t i = 0; i < count; i++) f->out_grad[i] = seed_value;
    for (int i = g->n_nodes - 1; i > 0; i--) {
        lp_node *nd = g->nodes[i];
        if (!nd->needs_grad || nd->folded) continue;
        double t0 = g->profile ? profile_now(g) : 0;
        nd->op->backward(nd);
        if (g->profile) nd->bwd_s += profile_now(g) - t0;
    }
}

void lp_graph_backward(lp_graph *g, const float *seed_grad)
{
    memset(g->grads, 0, g->param_floats * sizeof(float));
    backward_from(g, seed_grad, 1.0f / (float)g->batch);
}

/* ---- sliced runs over lanes ------------------------------------------------- */

/* A copy of g for one more thread: the same nodes (ops set up afresh), its own
 * buffers and gradients, g's parameters. */
static lp_status lane_new(lp_graph *g, lp_graph **out, lp_error *err)
{
    lp_model_spec spec = {.input = g->nodes[0]->out_shape, .input_loc = g->nodes[0]->loc,
                          .input_grad = g->nodes[0]->needs_grad};
    bool has_loss = g->final != g->output;
    lp_status s = LP_OK;
    for (int i = 1; i < g->n_nodes && !s; i++) {
        lp_node *n = g->nodes[i];
        if (has_loss && n == g->final) continue;
        const char **inputs = calloc((size_t)n->n_in + 1, sizeof *inputs);
        lp_value *attrs = n->attrs ? lp_value_clone(n->attrs) : NULL;
        if (!inputs || (n->attrs && !attrs)) {
            free(inputs);
            lp_value_free(attrs);
            s = LP_ERR_NOMEM;
            break;
        }
        for (int k = 0; k < n->n_in; k++) inputs[k] = n->in[k]->name;
        if (n->absorbed) inputs[0] = n->absorbed->name; /* as written: the lane folds it again */
        s = lp_model_spec_add(&spec, n->name, n->op->name, inputs, n->n_in, attrs);
        if (!s) spec.nodes[spec.n_nodes - 1].loc = n->loc;
        free(inputs);
    }
    if (!s) {
        spec.output = strdup(g->output->name);
        spec.loss = has_loss ? strdup(g->final->op->name) : NULL;
        spec.loss_loc = g->final->loc;
        if (!spec.output || (has_loss && !spec.loss)) s = LP_ERR_NOMEM;
    }
    if (s == LP_ERR_NOMEM) s = lp_error_set(err, LP_ERR_NOMEM, "out of memory copying the graph for a thread");
    lp_graph *lane = NULL;
    if (!s) s = lp_graph_build(&spec, &lane, err);
    lp_model_spec_free(&spec);
    if (s) return s;
    assert(lane->n_nodes == g->n_nodes && lane->param_floats == g->param_floats);
    free(lane->params);
    free(lane->buffers);
    lane->params = g->params;
    lane->buffers = g->buffers;
    lane->shared_params = true;
    lane->profile = g->profile;
    lane->profile_cpu = g->profile_cpu;
    lane->seed = g->seed;
    lane->step = g->step;
    *out = lane;
    return LP_OK;
}

/* Bytes of activations (and, in training, their gradients) plus per-sample scratch
 * that one sample needs: a proxy for its work too. */
static size_t sample_bytes(const lp_graph *g, bool train)
{
    size_t per = 1;
    for (int i = 0; i < g->n_nodes; i++) {
        const lp_node *n = g->nodes[i];
        if (n->folded) continue;
        per += n->out_numel * sizeof(float) * ((i > 0) + (train && n->needs_grad)) + n->scratch_per_sample;
    }
    return per;
}

/* Samples per slice: as many as keep one slice's activations (and, in training,
 * their gradients) plus the ops' per-sample scratch within about 4 MiB, a multiple
 * of 8 and at least 8, at most max_batch. Measured on the two-conv net at batch 64
 * (1 MiB L2 per core): slices of 8-32 train 10-20% faster than whole batches, and
 * infer 1.5x faster than batches of 1000; GEMM-bound nets get whole batches.
 * LOUPE_SLICE and LOUPE_INFER_SLICE override it (for measuring). */
static int choose_slice(const lp_graph *g, int max_batch, bool train)
{
    /* Whole-batch statistics: one slice per lane, so the lanes can meet mid-step. */
    if (train && g->batch_sums) return (max_batch + g->lane_threads - 1) / g->lane_threads;
    const char *env = getenv(train ? "LOUPE_SLICE" : "LOUPE_INFER_SLICE");
    long forced = env ? strtol(env, NULL, 10) : 0;
    size_t slice = (4u << 20) / sample_bytes(g, train) / 8 * 8;
    if (slice < 8) slice = 8;
    if (forced > 0) slice = (size_t)forced;
    return slice < (size_t)max_batch ? (int)slice : max_batch;
}

lp_status lp_graph_plan_lanes(lp_graph *g, int max_batch, int threads, lp_error *err)
{
    if (max_batch < 1) return lp_error_set(err, LP_ERR_ARG, "batch size must be at least 1");
    if (threads < 1) threads = 1;
    if (threads > LP_MAX_LANES) threads = LP_MAX_LANES;
    int want = threads < max_batch ? threads : max_batch;
    if (want > g->n_lanes) {
        lp_graph **lanes = realloc(g->lanes, (size_t)want * sizeof *lanes);
        if (!lanes) return lp_error_set(err, LP_ERR_NOMEM, "out of memory");
        g->lanes = lanes;
        while (g->n_lanes < want) {
            lp_status s = lane_new(g, &g->lanes[g->n_lanes], err);
            if (s) return s;
            g->n_lanes++;
        }
    }
    /* Lanes that meet mid-step must all run at once. */
    if (g->batch_sums) want = lp_pool_reserve(want);
    bool threads_changed = want != g->lane_threads;
    g->lane_threads = want;
    if (g->batch_sums && g->n_lanes > 1 && (!g->sync || g->sync->lanes < g->n_lanes)) {
        if (g->sync) {
            lp_barrier_destroy(&g->sync->barrier);
            free(g->sync->slots);
            free(g->sync);
            g->sync = NULL;
        }
        lane_sync *sync = calloc(1, sizeof *sync);
        double *slots = calloc(2 * (size_t)g->n_lanes * (size_t)g->batch_sums, sizeof *slots);
        if (!sync || !slots) {
            free(sync);
            free(slots);
            return lp_error_set(err, LP_ERR_NOMEM, "out of memory");
        }
        lp_barrier_init(&sync->barrier);
        sync->width = g->batch_sums;
        sync->lanes = g->n_lanes;
        sync->slots = slots;
        g->sync = sync;
        for (int r = 0; r < g->n_lanes; r++) {
            g->lanes[r]->sync = sync;
            g->lanes[r]->lane_rank = r;
        }
    }
    if (max_batch > g->lane_max_batch || (g->batch_sums && threads_changed)) {
        size_t k = g->output->out_numel;
        float *logits = realloc(g->batch_logits, (size_t)max_batch * k * sizeof *logits);
        if (!logits) return lp_error_set(err, LP_ERR_NOMEM, "out of memory for logits");
        g->batch_logits = logits;
        g->lane_max_batch = max_batch;
        g->slice = choose_slice(g, max_batch, true);
        g->infer_slice = choose_slice(g, max_batch, false);
        /* A training step on several lanes ends with a serial sum of their gradients
         * (a pass over the parameters per lane): below a batch whose activations
         * outweigh the parameters it costs more than it saves (measured: the dense
         * net, 109k parameters, 2 KB a sample, ran 1.6x slower on 2 lanes at batch 16). */
        size_t min = g->param_floats * sizeof(float) / sample_bytes(g, true) + 1;
        g->lanes_from = min < (size_t)INT32_MAX ? (int)min : INT32_MAX;
        if (g->batch_sums) g->lanes_from = 1; /* one slice per lane, always */
    }
    int most = g->slice > g->infer_slice ? g->slice : g->infer_slice;
    char what[96];
    snprintf(what, sizeof what, "slices of %d samples (batch %d, %d thread%s)", most, max_batch,
             g->lane_threads, g->lane_threads == 1 ? "" : "s");
    for (int r = 0; r < g->n_lanes; r++) {
        lp_status s = plan_arena(g->lanes[r], most, what, err);
        if (s) return s;
    }
    return LP_OK;
}

/* Lane r's share of the slices of a batch of n: forward (and backward) slice by
 * slice, logits copied out, parameter gradients accumulated in the lane's block. */
static double run_lane(lp_graph *g, int r, int used, const float *x, const int32_t *labels,
                       int n, int count, bool train)
{
    lp_graph *lane = g->lanes[r];
    const size_t per = g->nodes[0]->out_numel, k = g->output->out_numel;
    if (train) memset(lane->grads, 0, lane->param_floats * sizeof(float));
    double loss = 0;
    lane->batch_total = n;
    lane->sync_used = used;
    lane->sums_done = 0;
    /* Batch statistics see the whole batch only if no lane runs two slices. */
    assert(!(train && g->batch_sums) || count == used);
    for (int j = count * r / used; j < count * (r + 1) / used; j++) {
        int a = (int)((long)n * j / count), b = (int)((long)n * (j + 1) / count);
        lane->sample_base = lane->batch_offset + a;
        loss += forward_sum(lane, x + (size_t)a * per, labels ? labels + a : NULL, b - a, train);
        memcpy(g->batch_logits + (size_t)a * k, lane->output->out, (size_t)(b - a) * k * sizeof(float));
        /* d mean / d loss_i is 1/n for the whole batch, whatever the slice. */
        if (train) backward_from(lane, NULL, 1.0f / (float)n);
    }
    return loss;
}

typedef struct sliced_run {
    lp_graph *g;
    const float *x;
    const int32_t *labels;
    int n, count, used;
    bool train;
    double loss[LP_MAX_LANES];
} sliced_run;

static void lane_task(void *ctx, int r)
{
    sliced_run *run = ctx;
    run->loss[r] = run_lane(run->g, r, run->used, run->x, run->labels, run->n, run->count, run->train);
}

static double run_sliced(lp_graph *g, const float *x, const int32_t *labels, int n, bool train)
{
    assert(g->n_lanes >= 1 && n >= 1 && n <= g->lane_max_batch);
    int slice = train ? g->slice : g->infer_slice;
    int count = (n + slice - 1) / slice;
    int threads = train && n < g->lanes_from ? 1 : g->lane_threads;
    int spread = threads < n ? threads : n;
    if (count < spread) count = spread; /* one slice at least per thread */
    int used = threads < count ? threads : count;
    count = (count + used - 1) / used * used; /* as many slices for every lane */
    if (count > n) count = n;
    if (used == 1) {
        g->op_threads = 0; /* one lane: the ops may use every thread */
        return run_lane(g, 0, 1, x, labels, n, count, train);
    }
    sliced_run run = {.g = g, .x = x, .labels = labels, .n = n, .count = count, .used = used,
                      .train = train};
    if (g->sync) lp_barrier_reset(&g->sync->barrier, used);
    for (int r = 0; r < used; r++) g->lanes[r]->op_threads = 1;
    lp_pool_run(used, lane_task, &run);
    g->op_threads = 0; /* lanes[0] is g: its whole-batch calls may use every thread again */
    if (train) {
        /* Lanes' gradients summed in lane order: fixed for a fixed thread count. */
        float *grads = g->grads;
        for (int u = 1; u < used; u++) {
            const float *add = g->lanes[u]->grads;
#pragma omp simd /* gcc 12 at -O2 leaves it scalar otherwise */
            for (size_t e = 0; e < g->param_floats; e++) grads[e] += add[e];
        }
    }
    double total = 0;
    for (int r = 0; r < used; r++) total += run.loss[r];
    return total;
}

float lp_graph_train_step(lp_graph *g, const float *x, const int32_t *labels, int n)
{
    return (float)(run_sliced(g, x, labels, n, true) / n);
}

float lp_graph_infer(lp_graph *g, const float *x, const int32_t *labels, int n)
{
    return (float)(run_sliced(g, x, labels, n, false) / n);
}

const float *lp_graph_batch_logits(const lp_graph *g) { return g->batch_logits; }
int lp_graph_slice(const lp_graph *g, bool train) { return train ? g->slice : g->infer_slice; }

const float *lp_graph_logits(const lp_graph *g) { return g->output->out; }
lp_shape lp_graph_logits_shape(const lp_graph *g) { return g->output->out_shape; }
const float *lp_graph_final(const lp_graph *g) { return g->final->out; }
lp_shape lp_graph_final_shape(const lp_graph *g) { return g->final->out_shape; }
const float *lp_graph_input_grad(const lp_graph *g) { return g->nodes[0]->out_grad; }
lp_shape lp_graph_input_shape(const lp_graph *g) { return g->nodes[0]->out_shape; }

int lp_graph_num_params(const lp_graph *g) { return g->n_params; }
size_t lp_graph_param_floats(const lp_graph *g) { return g->param_floats; }
float *lp_graph_params(lp_graph *g) { return g->params; }
float *lp_graph_grads(lp_graph *g) { return g->grads; }
const char *lp_graph_param_name(const lp_graph *g, int k) { return g->param_table[k].name; }

int lp_graph_num_buffers(const lp_graph *g) { return g->n_buffers; }
size_t lp_graph_buffer_floats(const lp_graph *g) { return g->buffer_floats; }
float *lp_graph_buffers(lp_graph *g) { return g->buffers; }
const char *lp_graph_buffer_name(const lp_graph *g, int k) { return g->buffer_table[k].name; }
lp_shape lp_graph_buffer_shape(const lp_graph *g, int k) { return g->buffer_table[k].shape; }
size_t lp_graph_buffer_offset(const lp_graph *g, int k) { return g->buffer_table[k].offset; }
bool lp_graph_uses_batch_stats(const lp_graph *g) { return g->batch_sums > 0; }

long long lp_graph_node_buffers(const lp_graph *g, int i)
{
    const lp_node *n = g->nodes[i];
    long long total = 0;
    for (int k = 0; k < n->n_buffers; k++) total += (long long)g->buffer_table[n->first_buffer + k].numel;
    return total;
}
lp_shape lp_graph_param_shape(const lp_graph *g, int k) { return g->param_table[k].shape; }
size_t lp_graph_param_offset(const lp_graph *g, int k) { return g->param_table[k].offset; }

int lp_graph_num_nodes(const lp_graph *g) { return g->n_nodes; }
const char *lp_graph_node_name(const lp_graph *g, int i) { return g->nodes[i]->name; }
const float *lp_graph_node_output(const lp_graph *g, int i)
{
    const lp_node *n = g->nodes[i];
    return n->folded || n->out_applied ? NULL : n->out;
}
const char *lp_graph_node_op(const lp_graph *g, int i) { return g->nodes[i]->op ? g->nodes[i]->op->name : "input"; }
lp_shape lp_graph_node_shape(const lp_graph *g, int i) { return g->nodes[i]->out_shape; }

long long lp_graph_node_params(const lp_graph *g, int i)
{
    const lp_node *n = g->nodes[i];
    long long total = 0;
    for (int k = 0; k < n->n_params; k++) total += (long long)g->param_table[n->first_param + k].numel;
    return total;
}

void lp_graph_set_profile(lp_graph *g, bool on)
{
    const char *clock = getenv("LOUPE_PROFILE_CLOCK");
    for (int r = 0; r < g->n_lanes; r++) {
        lp_graph *lane = g->lanes[r];
        lane->profile = on;
        lane->profile_cpu = clock && strcmp(clock, "cpu") == 0;
        for (int i = 0; i < lane->n_nodes; i++) lane->nodes[i]->fwd_s = lane->nodes[i]->bwd_s = 0;
    }
}

void lp_graph_node_times(const lp_graph *g, int i, double *fwd_s, double *bwd_s)
{
    *fwd_s = *bwd_s = 0;
    for (int r = 0; r < g->n_lanes; r++) {
        const lp_graph *lane = g->lanes[r];
        *fwd_s += lane->nodes[i]->fwd_s;
        *bwd_s += lane->nodes[i]->bwd_s;
    }
}

void lp_graph_set_batch_offset(lp_graph *g, int offset)
{
    g->batch_offset = offset;
    for (int r = 0; r < g->n_lanes; r++) g->lanes[r]->batch_offset = offset;
}

void lp_graph_set_step(lp_graph *g, uint64_t seed, uint64_t step)
{
    for (int r = 0; r < g->n_lanes; r++) {
        lp_graph *lane = g->lanes[r];
        lane->seed = seed;
        lane->step = step;
    }
}
