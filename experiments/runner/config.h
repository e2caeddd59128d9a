/* config.h - one experiment file (YAML) -> a plain struct with every default filled.
 *
 *   lp_experiment_config cfg;
 *   const char *sets[] = {"train.epochs=3"};
 *   if (lp_config_load("configs/mnist_two_conv.yaml", sets, 1, &cfg, &err)) ... err.msg ...
 *   ... lp_graph_build(&cfg.model, &g, &err); cfg.train.optim.lr ...
 *   lp_config_free(&cfg);
 *
 * The keys, their types, defaults and limits are documented in docs/configs.md.
 * Every mistake (wrong type, impossible size, unknown key, bad enum value, malformed
 * --set) is an error whose message starts with the file:line:col where it was
 * written (or "--set k=v: " when the value came from the command line).
 */
#ifndef LP_CONFIG_H
#define LP_CONFIG_H

#include "early_stop.h"
#include "error.h"
#include "graph.h"
#include "optim.h"
#include "value.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct lp_data_config {
    char *dataset;            /* "mnist" or "fashion" */
    char *dir;                /* where its IDX files are (as written, relative to the cwd) */
    long long train_limit;    /* first N training images (0 = all) */
    long long test_limit;     /* first N test images (0 = all) */
    bool normalize;           /* normalize: was given */
    float mean, std;          /* x = (pixel/255 - mean) / std; 0 and 1 when not given */
    bool shuffle;             /* reshuffle the training set every epoch */
    int augment_shift;        /* random translation of up to N pixels (0 = off) */
    long long validation;     /* hold out the last N training images for model selection (0 = none) */
} lp_data_config;

typedef struct lp_train_config {
    int epochs;
    int batch_size;
    uint64_t seed;
    int threads;              /* 0 = all cores */
    lp_optim_config optim;
    lp_schedule_config schedule;
    lp_early_stop_config early_stop;   /* enabled when train.early_stop is given */
} lp_train_config;

typedef struct lp_tracking_config {
    char *db;                 /* SQLite runs database path */
    int checkpoint_every;     /* save a checkpoint every N epochs (the last one always) */
} lp_tracking_config;

typedef struct lp_experiment_config {
    char *name;
    char *description;        /* optional free text, or NULL */
    lp_model_spec model;
    lp_data_config data;
    lp_train_config train;
    lp_tracking_config tracking;
    char **plugins;           /* as written in `plugins:` */
    char **plugin_paths;      /* resolved against the YAML file's directory */
    int n_plugins;

    char *path;               /* the YAML file as given */
    char *yaml_text;          /* its exact text (for the runs DB), NUL-terminated */
    size_t yaml_len;
    char **overrides;         /* the --set strings applied, in order */
    int n_overrides;
    lp_value *root;           /* the tree after overrides (locations valid) */
    lp_value *sweep;          /* the `sweep:` section in root, or NULL: `loupe sweep` reads it
                                 (sweep.h); `loupe train` refuses a config that has one */
} lp_experiment_config;

/* Read the experiment file at path, apply the overrides ("train.epochs=3",
 * "data.normalize=[0.1307, 0.3081]": a dotted path through maps, or list indexes
 * like "model.layers.3.units=128"; the value is YAML: a scalar, flow list or flow
 * map), then read and check everything. On success cfg owns all it points to
 * (free with lp_config_free); on failure cfg is left empty (lp_config_free is still
 * safe) and err names file:line:col and what was expected. A malformed override is
 * LP_ERR_ARG naming it; everything else LP_ERR_CONFIG (or LP_ERR_IO / LP_ERR_NOMEM). */
lp_status lp_config_load(const char *path, const char *const *overrides, int n_overrides,
                         lp_experiment_config *cfg, lp_error *err);

/* Same from text in memory; name is used in messages and to resolve plugin paths
 * (a file name: its directory is the base). */
lp_status lp_config_load_string(const char *text, size_t len, const char *name,
                                const char *const *overrides, int n_overrides,
                                lp_experiment_config *cfg, lp_error *err);

/* Apply one "a.b.c=value" override to a config tree (creating missing maps). */
lp_status lp_config_apply_override(lp_value *root, const char *override, lp_error *err);

void lp_config_free(lp_experiment_config *cfg);

/* Flat (key, value) pairs, e.g. ("train.optimizer.lr", "0.05"). */
typedef struct lp_config_kv {
    char *key;
    char *value;
} lp_config_kv;

typedef struct lp_config_kvs {
    lp_config_kv *items;
    int count, capacity;
} lp_config_kvs;

/* Every setting of cfg for the runs DB: all effective values (defaults included)
 * of name, data.*, train.*, tracking.*, plugins, then model.* as written
 * (model.input, model.layers.0.op, model.layers.0.filters, ...). Lists of scalars
 * become one value in flow style ("[1, 28, 28]"); floats are written with the
 * fewest digits that read back to the same float. out must be {0} or hold an
 * earlier result (it is freed and reset first). */
lp_status lp_config_flatten(const lp_experiment_config *cfg, lp_config_kvs *out, lp_error *err);

/* Flatten any tree under prefix (NULL or "" for none) into out (appended). */
lp_status lp_config_flatten_value(const lp_value *v, const char *prefix, lp_config_kvs *out,
                                  lp_error *err);

/* The value for key in kvs, or NULL. */
const char *lp_config_kvs_get(const lp_config_kvs *kvs, const char *key);

void lp_config_kvs_free(lp_config_kvs *kvs);

/* Default data directory of a dataset ("data/mnist", "/usr/share/datasets/fashion-mnist"). */
const char *lp_config_default_data_dir(const char *dataset);

#endif
