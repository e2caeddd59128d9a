/* spec.c - the `model:` map of a config -> lp_model_spec (graph.h).
 *
 * Only the model's shape is read here: names, ops, wiring and the attribute maps.
 * Whether an op exists, whether its attributes make sense and whether the shapes
 * fit is for lp_graph_build, which knows the registry; an attribute map keeps the
 * locations of what was written, so those later errors still point into the file.
 */
#include "graph.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Limits that keep a hostile file from making name checks quadratic in a big way. */
#define SPEC_MAX_NODES 4096
#define SPEC_MAX_NAME 64
#define SPEC_MAX_DIM 65536
#define SPEC_MAX_INPUTS 16

static const char *const model_keys[] = {"input", "layers", "nodes", "output", "loss", NULL};

/* Append a node; takes over every pointer (all freed on failure). */
static lp_status spec_push(lp_model_spec *spec, lp_node_spec ns)
{
    lp_node_spec *nodes = realloc(spec->nodes, (size_t)(spec->n_nodes + 1) * sizeof *nodes);
    if (!nodes) {
        free(ns.name);
        free(ns.op);
        for (int i = 0; i < ns.n_inputs; i++) free(ns.inputs[i]);
        free(ns.inputs);
        lp_value_free(ns.attrs);
        return LP_ERR_NOMEM;
    }
    spec->nodes = nodes;
    spec->nodes[spec->n_nodes++] = ns;
    return LP_OK;
}

lp_status lp_model_spec_add(lp_model_spec *spec, const char *name, const char *op,
                            const char *const *inputs, int n_inputs, lp_value *attrs)
{
    assert(spec && name && op && n_inputs >= 0 && (n_inputs == 0 || inputs));
    lp_node_spec ns = {.name = strdup(name), .op = strdup(op), .attrs = attrs, .n_inputs = 0};
    bool ok = ns.name && ns.op;
    if (ok && n_inputs > 0) {
        ns.inputs = calloc((size_t)n_inputs, sizeof *ns.inputs);
        ok = ns.inputs != NULL;
        for (int i = 0; ok && i < n_inputs; i++) {
            ns.inputs[i] = strdup(inputs[i]);
            ok = ns.inputs[i] != NULL;
            ns.n_inputs = i + 1;
        }
    }
    if (!ok) {
        free(ns.name);
        free(ns.op);
        for (int i = 0; i < ns.n_inputs; i++) free(ns.inputs[i]);
        free(ns.inputs);
        lp_value_free(attrs);
        return LP_ERR_NOMEM;
    }
    return spec_push(spec, ns);
}

void lp_model_spec_free(lp_model_spec *spec)
{
    if (!spec) return;
    for (int i = 0; i < spec->n_nodes; i++) {
        lp_node_spec *ns = &spec->nodes[i];
        free(ns->name);
        free(ns->op);
        for (int k = 0; k < ns->n_inputs; k++) free(ns->inputs[k]);
        free(ns->inputs);
        lp_value_free(ns->attrs);
    }
    free(spec->nodes);
    free(spec->output);
    free(spec->loss);
    memset(spec, 0, sizeof *spec);
}

/* ---- reading the model map --------------------------------------------- */

static lp_status nomem(lp_error *err) { return lp_error_set(err, LP_ERR_NOMEM, "out of memory"); }

/* A non-empty string scalar. */
static lp_status read_word(const lp_value *v, const char *what, const char **out, lp_error *err)
{
    if (lp_value_as_string(v, what, out, err)) return LP_ERR_CONFIG;
    if (!**out) return lp_error_at(err, LP_ERR_CONFIG, v->loc, "%s: must not be empty", what);
    return LP_OK;
}

/* Node names become parameter names ("conv1.weight") and --set paths: keep them plain. */
static lp_status check_name(const lp_value *v, const char *what, const char *name, lp_error *err)
{
    size_t len = strlen(name);
    bool ok = len > 0 && len <= SPEC_MAX_NAME;
    for (const char *c = name; ok && *c; c++)
        ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
             *c == '_' || *c == '-';
    if (!ok)
        return lp_error_at(err, LP_ERR_CONFIG, v->loc,
                           "%s: '%s' is not a valid node name (1 to %d letters, digits, '_' or '-')",
                           what, name, SPEC_MAX_NAME);
    if (strcmp(name, "input") == 0)
        return lp_error_at(err, LP_ERR_CONFIG, v->loc,
                           "%s: the name 'input' is reserved for the model's image", what);
    return LP_OK;
}

static lp_status read_input_shape(lp_value *model, lp_model_spec *spec, lp_error *err)
{
    lp_value *v = lp_value_get(model, "input");
    if (!v)
        return lp_error_at(err, LP_ERR_CONFIG, model->loc,
                           "model: missing 'input' (the per-sample shape, e.g. [1, 28, 28])");
    spec->input_loc = v->loc;
    if (v->kind != LP_VALUE_LIST || v->count < 1 || v->count > 3)
        return lp_error_at(err, LP_ERR_CONFIG, v->loc,
                           "model.input: expected a list of 1 to 3 positive integers like "
                           "[1, 28, 28], found %s%s",
                           v->kind == LP_VALUE_LIST ? "a list of " : lp_value_kind_name(v->kind),
                           v->kind == LP_VALUE_LIST ? (v->count ? "more than 3" : "none") : "");
    spec->input.ndim = v->count;
    for (int i = 0; i < v->count; i++) {
        long long x;
        if (lp_value_as_int(v->items[i], "model.input", &x, err)) return LP_ERR_CONFIG;
        if (x < 1 || x > SPEC_MAX_DIM)
            return lp_error_at(err, LP_ERR_CONFIG, v->items[i]->loc,
                               "model.input: size %lld must be between 1 and %d", x, SPEC_MAX_DIM);
        spec->input.dims[i] = (int)x;
    }
    return LP_OK;
}

/* The entries of item other than `skip` keys, cloned into a fresh map (NULL if none). */
static lp_status clone_attrs(const lp_value *item, const char *const *skip, lp_value **out,
                             lp_error *err)
{
    *out = NULL;
    lp_value *attrs = NULL;
    for (int i = 0; i < item->count; i++) {
        bool skipped = false;
        for (int k = 0; skip[k] && !skipped; k++) skipped = strcmp(item->keys[i], skip[k]) == 0;
        if (skipped) continue;
        if (!attrs && !(attrs = lp_value_new_map(item->loc))) return nomem(err);
        if (lp_value_map_set(attrs, item->keys[i], item->key_locs[i],
                             lp_value_clone(item->items[i]))) {
            lp_value_free(attrs);
            return nomem(err);
        }
    }
    *out = attrs;
    return LP_OK;
}

/* The per-node items of `layers:` or `nodes:`: name (or NULL), op, and the map. */
typedef struct raw_node {
    lp_value *map;
    const char *name;
    const lp_value *name_v;
    const char *op;
} raw_node;

static lp_status read_raw_nodes(lp_value *list, const char *key, raw_node *raw, bool name_required,
                                lp_error *err)
{
    char what[96];
    for (int i = 0; i < list->count; i++) {
        lp_value *item = list->items[i];
        raw[i] = (raw_node){.map = item};
        snprintf(what, sizeof what, "model.%s[%d]", key, i);
        if (item->kind != LP_VALUE_MAP)
            return lp_error_at(err, LP_ERR_CONFIG, item->loc,
                               "%s: expected a map like {op: relu%s}, found %s", what,
                               name_required ? ", name: r1, inputs: [c1]" : "",
                               lp_value_kind_name(item->kind));
        lp_value *op = lp_value_get(item, "op");
        if (!op)
            return lp_error_at(err, LP_ERR_CONFIG, item->loc,
                               "%s: missing 'op' (the op's name, e.g. conv2d; see `loupe ops`)", what);
        snprintf(what, sizeof what, "model.%s[%d].op", key, i);
        if (read_word(op, what, &raw[i].op, err)) return LP_ERR_CONFIG;
        lp_value *name = lp_value_get(item, "name");
        snprintf(what, sizeof what, "model.%s[%d].name", key, i);
        if (!name && name_required)
            return lp_error_at(err, LP_ERR_CONFIG, item->loc,
                               "model.%s[%d]: missing 'name' (every node of a `nodes:` model "
                               "is named so others can use it as an input)", key, i);
        if (name) {
            if (lp_value_as_string(name, what, &raw[i].name, err)) return LP_ERR_CONFIG;
            if (check_name(name, what, raw[i].name, err)) return LP_ERR_CONFIG;
            raw[i].name_v = name;
            for (int k = 0; k < i; k++)
                if (raw[k].name && strcmp(raw[k].name, raw[i].name) == 0)
                    return lp_error_at(err, LP_ERR_CONFIG, name->loc,
                                       "%s: node name '%s' is already used at line %d", what,
                                       raw[i].name, raw[k].name_v->loc.line);
        }
    }
    return LP_OK;
}

static bool name_taken(const raw_node *raw, int n, char *const *generated, const char *name)
{
    for (int i = 0; i < n; i++) {
        if (raw[i].name && strcmp(raw[i].name, name) == 0) return true;
        if (generated[i] && strcmp(generated[i], name) == 0) return true;
    }
    return false;
}

/* Names for unnamed layers: the op and a running count per op ("relu1", "relu2"),
 * skipping any name the config uses elsewhere. */
static lp_status generate_names(raw_node *raw, int n, char **names, lp_error *err)
{
    for (int i = 0; i < n; i++) {
        if (raw[i].name) {
            if (!(names[i] = strdup(raw[i].name))) return nomem(err);
            continue;
        }
        int count = 0;
        for (int k = 0; k < i; k++)
            if (!raw[k].name && strcmp(raw[k].op, raw[i].op) == 0) count++;
        char buf[SPEC_MAX_NAME + 32];
        do snprintf(buf, sizeof buf, "%.*s%d", SPEC_MAX_NAME, raw[i].op, ++count);
        while (name_taken(raw, n, names, buf));
        if (!(names[i] = strdup(buf))) return nomem(err);
    }
    return LP_OK;
}

/* `inputs:` of a `nodes:` entry: one name or a list of names. */
static lp_status read_inputs(lp_value *item, int index, char ***out, int *n, lp_error *err)
{
    char what[96];
    snprintf(what, sizeof what, "model.nodes[%d].inputs", index);
    lp_value *v = lp_value_get(item, "inputs");
    if (!v)
        return lp_error_at(err, LP_ERR_CONFIG, item->loc,
                           "model.nodes[%d]: missing 'inputs' (a node name, 'input' for the "
                           "image, or a list of names)", index);
    int count = v->kind == LP_VALUE_SCALAR ? 1 : v->count;
    if (v->kind == LP_VALUE_MAP || count < 1 || count > SPEC_MAX_INPUTS)
        return lp_error_at(err, LP_ERR_CONFIG, v->loc,
                           "%s: expected a node name or a list of 1 to %d names", what,
                           SPEC_MAX_INPUTS);
    char **names = calloc((size_t)count, sizeof *names);
    if (!names) return nomem(err);
    *out = names;
    for (int k = 0; k < count; k++) {
        const lp_value *iv = v->kind == LP_VALUE_SCALAR ? v : v->items[k];
        const char *s;
        if (read_word(iv, what, &s, err)) return LP_ERR_CONFIG;
        if (!(names[k] = strdup(s))) return nomem(err);
        *n = k + 1;
    }
    return LP_OK;
}

static lp_status read_nodes(lp_value *list, const char *key, bool is_graph, lp_model_spec *spec,
                            lp_error *err)
{
    if (list->kind != LP_VALUE_LIST || list->count == 0)
        return lp_error_at(err, LP_ERR_CONFIG, list->loc, "model.%s: expected a non-empty list of "
                           "maps like {op: relu}, found %s", key,
                           list->kind == LP_VALUE_LIST ? "an empty list" : lp_value_kind_name(list->kind));
    if (list->count > SPEC_MAX_NODES)
        return lp_error_at(err, LP_ERR_CONFIG, list->loc, "model.%s: %d nodes, more than the "
                           "limit of %d", key, list->count, SPEC_MAX_NODES);
    int n = list->count;
    raw_node *raw = calloc((size_t)n, sizeof *raw);
    char **names = calloc((size_t)n, sizeof *names);
    lp_status s = raw && names ? LP_OK : nomem(err);
    if (!s) s = read_raw_nodes(list, key, raw, is_graph, err);
    if (!s) s = generate_names(raw, n, names, err);
    static const char *const layer_skip[] = {"op", "name", NULL};
    static const char *const node_skip[] = {"op", "name", "inputs", NULL};
    for (int i = 0; !s && i < n; i++) {
        lp_value *item = raw[i].map;
        lp_node_spec ns = {.loc = item->loc};
        if (is_graph) {
            s = read_inputs(item, i, &ns.inputs, &ns.n_inputs, err);
        } else {
            int at = lp_value_find(item, "inputs");
            if (at >= 0)
                s = lp_error_at(err, LP_ERR_CONFIG, item->key_locs[at],
                                "model.layers[%d]: 'inputs' belongs to `nodes:` models; in "
                                "`layers:` each layer reads the previous one", i);
            const char *prev = i == 0 ? "input" : spec->nodes[spec->n_nodes - 1].name;
            if (!s && (!(ns.inputs = calloc(1, sizeof *ns.inputs)) ||
                       !(ns.inputs[0] = strdup(prev))))
                s = nomem(err);
            if (ns.inputs && ns.inputs[0]) ns.n_inputs = 1;
        }
        if (!s) s = clone_attrs(item, is_graph ? node_skip : layer_skip, &ns.attrs, err);
        if (!s && !(ns.op = strdup(raw[i].op))) s = nomem(err);
        if (!s) {
            ns.name = names[i];
            names[i] = NULL;
            if (spec_push(spec, ns)) s = nomem(err);
        } else {
            for (int k = 0; k < ns.n_inputs; k++) free(ns.inputs[k]);
            free(ns.inputs);
            free(ns.op);
            lp_value_free(ns.attrs);
        }
    }
    for (int i = 0; names && i < n; i++) free(names[i]);
    free(names);
    free(raw);
    return s;
}

static lp_status read_output_and_loss(lp_value *model, lp_model_spec *spec, lp_error *err)
{
    const char *s;
    lp_value *out = lp_value_get(model, "output");
    if (out) {
        if (read_word(out, "model.output", &s, err)) return LP_ERR_CONFIG;
        bool found = false;
        const char *names[SPEC_MAX_NODES + 1];
        for (int i = 0; i < spec->n_nodes; i++) {
            names[i] = spec->nodes[i].name;
            found |= strcmp(s, names[i]) == 0;
        }
        names[spec->n_nodes] = NULL;
        if (!found) {
            const char *hint = lp_did_you_mean(s, names);
            return lp_error_at(err, LP_ERR_CONFIG, out->loc, "model.output: no node is named '%s'%s%s%s",
                               s, hint ? ": did you mean '" : "", hint ? hint : "", hint ? "'?" : "");
        }
        if (!(spec->output = strdup(s))) return nomem(err);
    }
    lp_value *loss = lp_value_get(model, "loss");
    if (loss) {
        if (read_word(loss, "model.loss", &s, err)) return LP_ERR_CONFIG;
        if (!(spec->loss = strdup(s))) return nomem(err);
        spec->loss_loc = loss->loc;
    }
    return LP_OK;
}

lp_status lp_model_spec_from_value(lp_value *model, lp_model_spec *spec, lp_error *err)
{
    memset(spec, 0, sizeof *spec);
    if (!model || model->kind != LP_VALUE_MAP)
        return lp_error_at(err, LP_ERR_CONFIG, model ? model->loc : (lp_loc){0},
                           "model: expected a map with input, layers (or nodes) and loss, found %s",
                           model ? lp_value_kind_name(model->kind) : "nothing");
    /* Mark every known key first, so a misspelt `layer:` is reported as the typo it
     * is rather than as "no layers". */
    for (int i = 0; model_keys[i]; i++) lp_value_get(model, model_keys[i]);
    lp_status s = lp_value_check_used(model, "model", model_keys, err);
    int li = lp_value_find(model, "layers"), ni = lp_value_find(model, "nodes");
    if (!s && li >= 0 && ni >= 0)
        s = lp_error_at(err, LP_ERR_CONFIG, model->key_locs[li > ni ? li : ni],
                        "model: give either 'layers' (a chain) or 'nodes' (a graph), not both");
    if (!s && li < 0 && ni < 0)
        s = lp_error_at(err, LP_ERR_CONFIG, model->loc,
                        "model: missing 'layers' (a list of layers, each reading the previous "
                        "one) or 'nodes' (named nodes with explicit inputs)");
    if (!s) s = read_input_shape(model, spec, err);
    if (!s)
        s = li >= 0 ? read_nodes(model->items[li], "layers", false, spec, err)
                    : read_nodes(model->items[ni], "nodes", true, spec, err);
    if (!s) s = read_output_and_loss(model, spec, err);
    if (s) lp_model_spec_free(spec);
    return s;
}
