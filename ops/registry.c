/* registry.c - the table of ops by name, and the plugin loader.
 *
 * Built-ins are one line each in builtin_ops[]; plugins go through the same
 * lp_op_register() checks. Ops are found by name only (never by index), so
 * reordering this table changes nothing saved anywhere.
 */
#include "registry.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

extern const lp_op lp_op_conv2d, lp_op_maxpool, lp_op_relu, lp_op_flatten, lp_op_dense,
    lp_op_add, lp_op_softmax_cross_entropy, lp_op_batch_norm, lp_op_dropout;

static const lp_op *const builtin_ops[] = {
    &lp_op_conv2d, &lp_op_maxpool, &lp_op_relu, &lp_op_flatten,
    &lp_op_dense,  &lp_op_add,     &lp_op_softmax_cross_entropy, &lp_op_batch_norm,
    &lp_op_dropout,
};

#define LP_MAX_OPS 256

typedef struct op_entry {
    const lp_op *op;
    char *origin;
} op_entry;

static op_entry entries[LP_MAX_OPS];
static int n_entries;
static const char *names[LP_MAX_OPS + 1];
static char *loaded_paths[LP_MAX_OPS];
static int n_loaded;

lp_status lp_op_register(const lp_op *op, const char *origin, lp_error *err)
{
    if (!op) return lp_error_set(err, LP_ERR_PLUGIN, "%s: registered a NULL op", origin);
    if (op->abi_version != LP_OP_ABI_VERSION)
        return lp_error_set(err, LP_ERR_PLUGIN,
                            "%s: op ABI version %d, but this loupe has ABI version %d: rebuild "
                            "the plugin against this loupe's loupe_op.h",
                            origin, op->abi_version, LP_OP_ABI_VERSION);
    if (op->struct_size != sizeof(lp_op))
        return lp_error_set(err, LP_ERR_PLUGIN,
                            "%s: op descriptor is %u bytes, this loupe expects %zu: rebuild the "
                            "plugin against this loupe's loupe_op.h",
                            origin, op->struct_size, sizeof(lp_op));
    if (!op->name || !op->name[0])
        return lp_error_set(err, LP_ERR_PLUGIN, "%s: op has no name", origin);
    for (const char *c = op->name; *c; c++)
        if (!(*c == '_' || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9')))
            return lp_error_set(err, LP_ERR_PLUGIN,
                                "%s: op name '%s' must use only a-z, 0-9 and _", origin, op->name);
    if (!op->setup || !op->forward || !op->backward)
        return lp_error_set(err, LP_ERR_PLUGIN, "%s: op '%s' has no %s function", origin,
                            op->name, !op->setup ? "setup" : !op->forward ? "forward" : "backward");
    if (op->min_inputs < 1 || op->max_inputs < op->min_inputs || op->max_inputs > 16)
        return lp_error_set(err, LP_ERR_PLUGIN, "%s: op '%s' declares %d to %d inputs (1 to 16 allowed)",
                            origin, op->name, op->min_inputs, op->max_inputs);
    for (int i = 0; i < n_entries; i++)
        if (strcmp(entries[i].op->name, op->name) == 0)
            return lp_error_set(err, LP_ERR_PLUGIN, "%s: op '%s' is already registered (by %s)",
                                origin, op->name, entries[i].origin);
    if (n_entries == LP_MAX_OPS)
        return lp_error_set(err, LP_ERR_PLUGIN, "%s: too many ops (at most %d)", origin, LP_MAX_OPS);
    char *o = strdup(origin);
    if (!o) return lp_error_set(err, LP_ERR_NOMEM, "out of memory");
    entries[n_entries].op = op;
    entries[n_entries].origin = o;
    names[n_entries++] = op->name;
    names[n_entries] = NULL;
    return LP_OK;
}

void lp_registry_init(void)
{
    static int done;
    if (done) return;
    done = 1;
    for (size_t i = 0; i < sizeof builtin_ops / sizeof builtin_ops[0]; i++) {
        lp_error err = {0};
        lp_status s = lp_op_register(builtin_ops[i], "built-in", &err);
        (void)s;
        if (s != LP_OK) abort(); /* a built-in that fails its own checks is a build bug */
    }
}

const lp_op *lp_op_find(const char *name)
{
    lp_registry_init();
    for (int i = 0; i < n_entries; i++)
        if (strcmp(entries[i].op->name, name) == 0) return entries[i].op;
    return NULL;
}

int lp_op_absorbs(const lp_op *consumer, const lp_op *producer)
{
    return consumer == &lp_op_maxpool && producer == &lp_op_relu;
}

int lp_op_applies(const lp_op *consumer, const lp_op *producer)
{
    return consumer == &lp_op_maxpool && producer == &lp_op_batch_norm;
}

int lp_op_count(void)
{
    lp_registry_init();
    return n_entries;
}

const lp_op *lp_op_at(int i, const char **origin)
{
    lp_registry_init();
    if (i < 0 || i >= n_entries) return NULL;
    if (origin) *origin = entries[i].origin;
    return entries[i].op;
}

const char *const *lp_op_names(void)
{
    lp_registry_init();
    return names;
}

typedef struct plugin_state {
    const char *path;
    lp_error *err;
    int registered;
} plugin_state;

static lp_status host_register(lp_plugin_host *host, const lp_op *op)
{
    plugin_state *st = host->impl;
    lp_status s = lp_op_register(op, st->path, st->err);
    if (s == LP_OK) st->registered++;
    return s;
}

lp_status lp_plugin_load(const char *path, lp_error *err)
{
    lp_registry_init();
    char *real = realpath(path, NULL);
    if (!real) return lp_error_set(err, LP_ERR_PLUGIN, "plugin %s: file not found", path);
    for (int i = 0; i < n_loaded; i++)
        if (strcmp(loaded_paths[i], real) == 0) { free(real); return LP_OK; }
    if (n_loaded == LP_MAX_OPS) {
        free(real);
        return lp_error_set(err, LP_ERR_PLUGIN, "plugin %s: too many plugins", path);
    }
    /* RTLD_NOW: a missing symbol fails here, not mid-training. RTLD_LOCAL: two
     * plugins' private symbols cannot collide. Never dlclose: graphs use its ops. */
    dlerror();
    void *handle = dlopen(real, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        const char *why = dlerror();
        free(real);
        return lp_error_set(err, LP_ERR_PLUGIN, "plugin %s: cannot load: %s", path,
                            why ? why : "not a shared object");
    }
    lp_plugin_init_fn init;
    *(void **)&init = dlsym(handle, LP_PLUGIN_ENTRY);
    if (!init) {
        free(real);
        return lp_error_set(err, LP_ERR_PLUGIN,
                            "plugin %s: no function %s() found: a loupe plugin must export it",
                            path, LP_PLUGIN_ENTRY);
    }
    plugin_state st = {.path = path, .err = err};
    lp_plugin_host host = {.abi_version = LP_OP_ABI_VERSION, .register_op = host_register, .impl = &st};
    lp_status s = init(&host);
    if (s == LP_OK && err && err->status != LP_OK) s = err->status;
    if (s != LP_OK) {
        free(real);
        return lp_error_set(err, LP_ERR_PLUGIN, "plugin %s: %s() failed (status %d)", path,
                            LP_PLUGIN_ENTRY, (int)s);
    }
    if (st.registered == 0) {
        free(real);
        return lp_error_set(err, LP_ERR_PLUGIN, "plugin %s: registered no op", path);
    }
    loaded_paths[n_loaded++] = real;
    return LP_OK;
}
