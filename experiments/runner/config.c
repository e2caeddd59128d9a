/* config.c - read an experiment YAML into lp_experiment_config.
 *
 * Order of work: parse (lp_yaml), apply --set overrides to the tree, then read each
 * section. Every section first marks the keys it knows and reports any other key as
 * unknown (with a did-you-mean), so a typo is reported as a typo and not as the
 * missing key it hides. Defaults live in one place each, in the readers below, and
 * are listed in docs/configs.md: keep the two in step.
 */
#include "config.h"

#include "lp_yaml.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CFG_MAX_EPOCHS 100000
#define CFG_MAX_BATCH 65536
#define CFG_MAX_THREADS 1024
#define CFG_MAX_SHIFT 8
#define CFG_MAX_LIMIT 1000000000LL
#define CFG_MAX_PLUGINS 64

static lp_status nomem(lp_error *err) { return lp_error_set(err, LP_ERR_NOMEM, "out of memory"); }

/* ---- typed readers: absent -> default, present -> checked --------------- */

/* "prefix.key" for messages. */
static const char *key_path(char *buf, size_t size, const char *prefix, const char *key)
{
    snprintf(buf, size, "%s%s%s", prefix, *prefix ? "." : "", key);
    return buf;
}

static lp_status read_int(lp_value *map, const char *prefix, const char *key, long long lo,
                          long long hi, long long def, long long *out, lp_error *err)
{
    char what[128];
    key_path(what, sizeof what, prefix, key);
    lp_value *v = lp_value_get(map, key);
    *out = def;
    if (!v) return LP_OK;
    if (lp_value_as_int(v, what, out, err)) return LP_ERR_CONFIG;
    if (*out < lo || *out > hi) {
        if (hi == LLONG_MAX)
            return lp_error_at(err, LP_ERR_CONFIG, v->loc,
                               "%s: expected an integer of at least %lld, found %lld", what, lo, *out);
        return lp_error_at(err, LP_ERR_CONFIG, v->loc,
                           "%s: expected an integer from %lld to %lld, found %lld", what, lo, hi,
                           *out);
    }
    return LP_OK;
}

/* Narrowing helper: every int field is range-checked to fit before this. */
static lp_status read_int32(lp_value *map, const char *prefix, const char *key, int lo, int hi,
                            int def, int *out, lp_error *err)
{
    long long x;
    lp_status s = read_int(map, prefix, key, lo, hi, def, &x, err);
    if (!s) *out = (int)x;
    return s;
}

enum { OPEN_LO = 1, OPEN_HI = 2 };

/* A number in [lo, hi] (or open at either end, by flags). */
static lp_status read_num(lp_value *map, const char *prefix, const char *key, double lo, double hi,
                          int open, double def, float *out, lp_error *err)
{
    char what[128];
    key_path(what, sizeof what, prefix, key);
    lp_value *v = lp_value_get(map, key);
    *out = (float)def;
    if (!v) return LP_OK;
    double x;
    if (lp_value_as_double(v, what, &x, err)) return LP_ERR_CONFIG;
    bool ok = ((open & OPEN_LO) ? x > lo : x >= lo) && ((open & OPEN_HI) ? x < hi : x <= hi);
    if (!ok) {
        char range[96];
        if (isinf(hi))
            snprintf(range, sizeof range, "a number %s %g", (open & OPEN_LO) ? ">" : ">=", lo);
        else
            snprintf(range, sizeof range, "a number in %c%g, %g%c", (open & OPEN_LO) ? '(' : '[',
                     lo, hi, (open & OPEN_HI) ? ')' : ']');
        return lp_error_at(err, LP_ERR_CONFIG, v->loc, "%s: expected %s, found %s", what, range,
                           v->text);
    }
    *out = (float)x;
    return LP_OK;
}

static lp_status read_bool(lp_value *map, const char *prefix, const char *key, bool def, bool *out,
                           lp_error *err)
{
    char what[128];
    key_path(what, sizeof what, prefix, key);
    lp_value *v = lp_value_get(map, key);
    *out = def;
    return v ? lp_value_as_bool(v, what, out, err) : LP_OK;
}

/* A non-empty string, copied; def may be NULL (then *out stays NULL when absent). */
static lp_status read_string(lp_value *map, const char *prefix, const char *key, const char *def,
                             char **out, lp_error *err)
{
    char what[128];
    key_path(what, sizeof what, prefix, key);
    lp_value *v = lp_value_get(map, key);
    const char *s = def;
    if (v) {
        if (lp_value_as_string(v, what, &s, err)) return LP_ERR_CONFIG;
        if (!*s) return lp_error_at(err, LP_ERR_CONFIG, v->loc, "%s: must not be empty", what);
    }
    if (s && !(*out = strdup(s))) return nomem(err);
    return LP_OK;
}

/* One of choices (NULL-terminated); *out is its index. */
static lp_status read_enum(lp_value *map, const char *prefix, const char *key,
                           const char *const *choices, int def, int *out, lp_error *err)
{
    char what[128];
    key_path(what, sizeof what, prefix, key);
    lp_value *v = lp_value_get(map, key);
    *out = def;
    if (!v) return LP_OK;
    const char *s;
    if (lp_value_as_string(v, what, &s, err)) return LP_ERR_CONFIG;
    for (int i = 0; choices[i]; i++)
        if (strcmp(s, choices[i]) == 0) {
            *out = i;
            return LP_OK;
        }
    char list[256] = "";
    size_t n = 0;
    for (int i = 0; choices[i] && n < sizeof list; i++)
        n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", i ? ", " : "", choices[i]);
    const char *hint = lp_did_you_mean(s, choices);
    return lp_error_at(err, LP_ERR_CONFIG, v->loc, "%s: unknown value '%s'%s%s%s (expected one of: %s)",
                       what, s, hint ? ": did you mean '" : "", hint ? hint : "", hint ? "'?" : "",
                       list);
}

/* An optional section: NULL when absent, an error when it is not a map. */
static lp_status section(lp_value *parent, const char *key, const char *what, lp_value **out,
                         lp_error *err)
{
    *out = lp_value_get(parent, key);
    if (*out && (*out)->kind != LP_VALUE_MAP) {
        /* `train:` with nothing after it is an empty section, not a mistake. */
        if ((*out)->kind == LP_VALUE_SCALAR && !(*out)->quoted && !(*out)->text[0]) {
            *out = NULL;
            return LP_OK;
        }
        return lp_error_at(err, LP_ERR_CONFIG, (*out)->loc, "%s: expected a map, found %s", what,
                           lp_value_kind_name((*out)->kind));
    }
    return LP_OK;
}

/* Mark known keys of map, then report the first other one. */
static lp_status check_keys(lp_value *map, const char *prefix, const char *const *known,
                            lp_error *err)
{
    if (!map) return LP_OK;
    for (int i = 0; known[i]; i++) lp_value_get(map, known[i]);
    return lp_value_check_used(map, prefix, known, err);
}

/* A key that only some variant reads (momentum for sgd): a precise error. */
static lp_status not_for(lp_value *map, const char *prefix, const char *key, const char *type_key,
                         const char *type, lp_error *err)
{
    int i = lp_value_find(map, key);
    if (i < 0) return LP_OK;
    return lp_error_at(err, LP_ERR_CONFIG, map->key_locs[i], "%s.%s: does not apply when %s is '%s'",
                       prefix, key, type_key, type);
}

/* ---- sections ---------------------------------------------------------- */

const char *lp_config_default_data_dir(const char *dataset)
{
    return strcmp(dataset, "fashion") == 0 ? "/usr/share/datasets/fashion-mnist" : "data/mnist";
}

static lp_status read_data(lp_value *root, lp_data_config *d, lp_error *err)
{
    static const char *const keys[] = {"dataset", "dir", "train_limit", "test_limit", "normalize",
                                       "shuffle", "augment", "validation", NULL};
    static const char *const datasets[] = {"mnist", "fashion", NULL};
    static const char *const augment_keys[] = {"shift", NULL};
    lp_value *m, *aug = NULL;
    lp_status s = section(root, "data", "data", &m, err);
    if (!s) s = check_keys(m, "data", keys, err);
    int which = 0;
    if (!s) s = read_enum(m, "data", "dataset", datasets, 0, &which, err);
    if (!s && !(d->dataset = strdup(datasets[which]))) s = nomem(err);
    if (!s) s = read_string(m, "data", "dir", lp_config_default_data_dir(d->dataset), &d->dir, err);
    if (!s) s = read_int(m, "data", "train_limit", 0, CFG_MAX_LIMIT, 0, &d->train_limit, err);
    if (!s) s = read_int(m, "data", "test_limit", 0, CFG_MAX_LIMIT, 0, &d->test_limit, err);
    if (!s) s = read_int(m, "data", "validation", 0, CFG_MAX_LIMIT, 0, &d->validation, err);
    if (!s && d->train_limit > 0 && d->validation >= d->train_limit)
        s = lp_error_at(err, LP_ERR_CONFIG, lp_value_get(m, "validation")->loc,
                        "data.validation: %lld held-out images leave none of the %lld of data.train_limit "
                        "to train on", d->validation, d->train_limit);
    if (!s) s = read_bool(m, "data", "shuffle", true, &d->shuffle, err);
    d->mean = 0.0f;
    d->std = 1.0f;
    lp_value *norm = s ? NULL : lp_value_get(m, "normalize");
    if (norm) {
        if (norm->kind != LP_VALUE_LIST || norm->count != 2)
            s = lp_error_at(err, LP_ERR_CONFIG, norm->loc,
                            "data.normalize: expected [mean, std], e.g. [0.1307, 0.3081]");
        double x[2];
        for (int i = 0; !s && i < 2; i++)
            s = lp_value_as_double(norm->items[i], "data.normalize", &x[i], err);
        if (!s && !(x[1] > 0))
            s = lp_error_at(err, LP_ERR_CONFIG, norm->items[1]->loc,
                            "data.normalize: std must be > 0, found %s", norm->items[1]->text);
        if (!s) {
            d->normalize = true;
            d->mean = (float)x[0];
            d->std = (float)x[1];
        }
    }
    if (!s) s = section(m, "augment", "data.augment", &aug, err);
    if (!s) s = check_keys(aug, "data.augment", augment_keys, err);
    if (!s)
        s = read_int32(aug, "data.augment", "shift", 0, CFG_MAX_SHIFT, 0, &d->augment_shift, err);
    return s;
}

/* The keys each optimizer reads; any other key of train.optimizer is refused
 * with "does not apply when train.optimizer.type is ...". Defaults are PyTorch's. */
static lp_status read_optimizer(lp_value *train, lp_optim_config *o, lp_error *err)
{
    static const char *const keys[] = {"type", "lr", "momentum", "nesterov", "weight_decay", "beta1",
                                       "beta2", "alpha", "eps", NULL};
    static const char *const types[] = {"sgd", "adam", "adamw", "rmsprop", NULL};
    static const lp_optim_type type_of[] = {LP_OPTIM_SGD, LP_OPTIM_ADAM, LP_OPTIM_ADAMW, LP_OPTIM_RMSPROP};
    /* the keys besides type, lr and weight_decay that each of types[] reads */
    static const char *const reads[][4] = {
        {"momentum", "nesterov"}, {"beta1", "beta2", "eps"}, {"beta1", "beta2", "eps"},
        {"momentum", "alpha", "eps"}};
    const char *p = "train.optimizer";
    lp_value *m;
    lp_status s = section(train, "optimizer", p, &m, err);
    if (!s) s = check_keys(m, p, keys, err);
    int type = 0;
    if (!s) s = read_enum(m, p, "type", types, 0, &type, err);
    for (int k = 2; !s && keys[k]; k++) {
        if (strcmp(keys[k], "weight_decay") == 0) continue;
        bool applies = false;
        for (int j = 0; j < 4 && reads[type][j]; j++) applies |= strcmp(reads[type][j], keys[k]) == 0;
        if (!applies) s = not_for(m, p, keys[k], "train.optimizer.type", types[type], err);
    }
    if (s) return s;
    memset(o, 0, sizeof *o);
    o->type = type_of[type];
    const bool adam = o->type == LP_OPTIM_ADAM || o->type == LP_OPTIM_ADAMW;
    s = read_num(m, p, "lr", 0, INFINITY, OPEN_LO, adam ? 0.001 : 0.01, &o->lr, err);
    if (!s && o->type == LP_OPTIM_SGD) {
        s = read_num(m, p, "momentum", 0, 1, OPEN_HI, 0.9, &o->momentum, err);
        if (!s) s = read_bool(m, p, "nesterov", false, &o->nesterov, err);
        if (!s && o->nesterov && o->momentum == 0)
            return lp_error_at(err, LP_ERR_CONFIG, m->key_locs[lp_value_find(m, "nesterov")],
                               "train.optimizer.nesterov: needs momentum > 0");
    }
    if (!s && o->type == LP_OPTIM_RMSPROP) {
        s = read_num(m, p, "momentum", 0, 1, OPEN_HI, 0.0, &o->momentum, err);
        if (!s) s = read_num(m, p, "alpha", 0, 1, OPEN_HI, 0.99, &o->alpha, err);
    }
    if (!s && adam) {
        s = read_num(m, p, "beta1", 0, 1, OPEN_HI, 0.9, &o->beta1, err);
        if (!s) s = read_num(m, p, "beta2", 0, 1, OPEN_HI, 0.999, &o->beta2, err);
    }
    if (!s && (adam || o->type == LP_OPTIM_RMSPROP))
        s = read_num(m, p, "eps", 0, INFINITY, OPEN_LO, 1e-8, &o->eps, err);
    if (!s)
        s = read_num(m, p, "weight_decay", 0, INFINITY, 0, o->type == LP_OPTIM_ADAMW ? 0.01 : 0.0,
                     &o->weight_decay, err);
    return s;
}

/* multistep's milestones: a list of increasing epochs in 1..train.epochs. */
static lp_status read_milestones(lp_value *m, int epochs, lp_schedule_config *sc, lp_error *err)
{
    lp_value *v = lp_value_get(m, "milestones");
    if (!v)
        return lp_error_at(err, LP_ERR_CONFIG, m->loc,
                           "train.schedule: type 'multistep' needs milestones (epochs at which lr *= gamma)");
    if (v->kind != LP_VALUE_LIST || v->count < 1 || v->count > LP_SCHEDULE_MAX_MILESTONES)
        return lp_error_at(err, LP_ERR_CONFIG, v->loc,
                           "train.schedule.milestones: expected a list of 1 to %d epochs, e.g. [5, 10]",
                           LP_SCHEDULE_MAX_MILESTONES);
    for (int i = 0; i < v->count; i++) {
        long long e;
        if (lp_value_as_int(v->items[i], "train.schedule.milestones", &e, err)) return LP_ERR_CONFIG;
        if (e < 1 || e > epochs || (i > 0 && e <= sc->milestones[i - 1]))
            return lp_error_at(err, LP_ERR_CONFIG, v->items[i]->loc,
                               "train.schedule.milestones: expected increasing epochs from 1 to %d (train.epochs), "
                               "found %lld",
                               epochs, e);
        sc->milestones[i] = (int)e;
    }
    sc->n_milestones = v->count;
    return LP_OK;
}

/* ---- what watches a metric: the plateau schedule and early stopping ----- */

/* `metric` (default val/loss) and `mode` (auto: from the metric) of map m. */
static lp_status read_watched(lp_value *m, const char *p, lp_metric_id *metric, bool *maximize,
                              lp_error *err)
{
    static const char *const names[] = {"train/loss", "train/acc", "val/loss", "val/acc",
                                        "test/loss",  "test/acc",  NULL};
    static const char *const modes[] = {"auto", "min", "max", NULL};
    int which = LP_METRIC_VAL_LOSS, mode = 0;
    lp_status s = read_enum(m, p, "metric", names, LP_METRIC_VAL_LOSS, &which, err);
    if (!s) s = read_enum(m, p, "mode", modes, 0, &mode, err);
    if (s) return s;
    *metric = (lp_metric_id)which;   /* names[] is in lp_metric_id's order */
    *maximize = mode == 0 ? lp_metric_higher_is_better(*metric) : mode == 2;
    return LP_OK;
}

/* ReduceLROnPlateau's arguments, with its defaults. */
static lp_status read_plateau(lp_value *m, lp_plateau_config *pc, lp_error *err)
{
    static const char *const threshold_modes[] = {"rel", "abs", NULL};
    const char *p = "train.schedule";
    int tm = 0;
    memset(pc, 0, sizeof *pc);
    lp_status s = read_watched(m, p, &pc->metric, &pc->maximize, err);
    if (!s) s = read_num(m, p, "factor", 0, 1, OPEN_LO | OPEN_HI, 0.1, &pc->factor, err);
    if (!s) s = read_int32(m, p, "patience", 0, CFG_MAX_EPOCHS, 10, &pc->patience, err);
    if (!s) s = read_num(m, p, "threshold", 0, INFINITY, 0, 1e-4, &pc->threshold, err);
    if (!s) s = read_enum(m, p, "threshold_mode", threshold_modes, 0, &tm, err);
    if (!s) s = read_int32(m, p, "cooldown", 0, CFG_MAX_EPOCHS, 0, &pc->cooldown, err);
    if (!s) s = read_num(m, p, "eps", 0, INFINITY, 0, 1e-8, &pc->eps, err);
    pc->threshold_abs = tm == 1;
    return s;
}

static lp_status read_early_stop(lp_value *train, lp_early_stop_config *es, lp_error *err)
{
    static const char *const keys[] = {"metric", "mode", "patience", "min_delta", NULL};
    const char *p = "train.early_stop";
    lp_value *m;
    memset(es, 0, sizeof *es);
    lp_status s = section(train, "early_stop", p, &m, err);
    if (s || !m) return s;
    es->enabled = true;
    s = check_keys(m, p, keys, err);
    if (!s) s = read_watched(m, p, &es->metric, &es->maximize, err);
    if (!s) s = read_int32(m, p, "patience", 1, CFG_MAX_EPOCHS, 5, &es->patience, err);
    if (!s) s = read_num(m, p, "min_delta", 0, INFINITY, 0, 0.0, &es->min_delta, err);
    return s;
}

/* A val/ metric needs a validation split: name where it was asked for. */
static lp_status needs_validation(lp_value *root, const char *section_key, lp_metric_id metric,
                                  const lp_data_config *d, lp_error *err)
{
    if (!lp_metric_is_val(metric) || d->validation > 0) return LP_OK;
    lp_value *sec = lp_value_get(lp_value_get(root, "train"), section_key);
    lp_value *v = lp_value_get(sec, "metric");
    return lp_error_at(err, LP_ERR_CONFIG, v ? v->loc : sec->loc,
                       "train.%s%s: %s needs a validation split (data.validation: N), or watch "
                       "another metric (e.g. metric: test/acc)", section_key, v ? ".metric" : "",
                       lp_metric_name(metric));
}

static lp_status read_schedule(lp_value *train, const lp_train_config *t, lp_schedule_config *sc,
                               lp_error *err)
{
    static const char *const keys[] = {"type", "step_size", "gamma", "min_lr", "warmup_epochs",
                                       "warmup_start_factor", "milestones", "metric", "mode", "factor",
                                       "patience", "threshold", "threshold_mode", "cooldown", "eps", NULL};
    static const char *const types[] = {"constant", "step", "cosine", "exponential", "multistep",
                                        "plateau", NULL};
    static const lp_schedule_type type_of[] = {LP_SCHEDULE_CONSTANT, LP_SCHEDULE_STEP, LP_SCHEDULE_COSINE,
                                               LP_SCHEDULE_EXPONENTIAL, LP_SCHEDULE_MULTISTEP,
                                               LP_SCHEDULE_PLATEAU};
    const char *p = "train.schedule";
    const char *tk = "train.schedule.type";
    lp_value *m;
    lp_status s = section(train, "schedule", p, &m, err);
    if (!s) s = check_keys(m, p, keys, err);
    int type = 0;
    if (!s) s = read_enum(m, p, "type", types, 0, &type, err);
    if (s) return s;
    memset(sc, 0, sizeof *sc);
    sc->type = type_of[type];
    sc->gamma = 1.0f;
    if (sc->type != LP_SCHEDULE_STEP) s = not_for(m, p, "step_size", tk, types[type], err);
    const bool decays = sc->type == LP_SCHEDULE_STEP || sc->type == LP_SCHEDULE_EXPONENTIAL ||
                        sc->type == LP_SCHEDULE_MULTISTEP;
    if (!s && !decays) s = not_for(m, p, "gamma", tk, types[type], err);
    if (!s && sc->type != LP_SCHEDULE_MULTISTEP) s = not_for(m, p, "milestones", tk, types[type], err);
    const bool plateau = sc->type == LP_SCHEDULE_PLATEAU;
    if (!s && sc->type != LP_SCHEDULE_COSINE && !plateau) s = not_for(m, p, "min_lr", tk, types[type], err);
    static const char *const plateau_keys[] = {"metric", "mode", "factor", "patience", "threshold",
                                               "threshold_mode", "cooldown", "eps", NULL};
    for (int k = 0; !s && !plateau && plateau_keys[k]; k++) s = not_for(m, p, plateau_keys[k], tk, types[type], err);
    if (!s && plateau) s = not_for(m, p, "warmup_epochs", tk, types[type], err);
    if (!s && sc->type == LP_SCHEDULE_STEP) {
        if (!lp_value_get(m, "step_size"))
            return lp_error_at(err, LP_ERR_CONFIG, m->loc,
                               "train.schedule: type 'step' needs step_size (epochs between decays)");
        s = read_int32(m, p, "step_size", 1, CFG_MAX_EPOCHS, 1, &sc->step_size, err);
        if (!s) s = read_num(m, p, "gamma", 0, 1, OPEN_LO, 0.1, &sc->gamma, err);
    }
    if (!s && sc->type == LP_SCHEDULE_MULTISTEP) {
        s = read_milestones(m, t->epochs, sc, err);
        if (!s) s = read_num(m, p, "gamma", 0, 1, OPEN_LO, 0.1, &sc->gamma, err);
    }
    if (!s && sc->type == LP_SCHEDULE_EXPONENTIAL) {
        if (!lp_value_get(m, "gamma"))
            return lp_error_at(err, LP_ERR_CONFIG, m->loc,
                               "train.schedule: type 'exponential' needs gamma (factor per epoch)");
        s = read_num(m, p, "gamma", 0, 1, OPEN_LO, 0.9, &sc->gamma, err);
    }
    if (!s && plateau) s = read_plateau(m, &sc->plateau, err);
    if (!s && (sc->type == LP_SCHEDULE_COSINE || plateau)) {
        s = read_num(m, p, "min_lr", 0, INFINITY, 0, 0.0, &sc->min_lr, err);
        if (!s && sc->min_lr > t->optim.lr)
            return lp_error_at(err, LP_ERR_CONFIG, lp_value_get(m, "min_lr")->loc,
                               "train.schedule.min_lr: %g is above the learning rate %g",
                               sc->min_lr, t->optim.lr);
    }
    if (!s) s = read_num(m, p, "warmup_epochs", 0, t->epochs, 0, 0.0, &sc->warmup_epochs, err);
    if (!s && sc->warmup_epochs == 0 && lp_value_find(m, "warmup_start_factor") >= 0)
        return lp_error_at(err, LP_ERR_CONFIG, m->key_locs[lp_value_find(m, "warmup_start_factor")],
                           "train.schedule.warmup_start_factor: does not apply without warmup_epochs");
    if (!s) s = read_num(m, p, "warmup_start_factor", 0, 1, OPEN_LO, 0.001, &sc->warmup_start_factor, err);
    return s;
}

static lp_status read_train(lp_value *root, lp_train_config *t, lp_error *err)
{
    static const char *const keys[] = {"epochs", "batch_size", "seed", "threads", "optimizer",
                                       "schedule", "early_stop", NULL};
    lp_value *m;
    long long seed = 1;
    lp_status s = section(root, "train", "train", &m, err);
    if (!s) s = check_keys(m, "train", keys, err);
    if (!s) s = read_int32(m, "train", "epochs", 1, CFG_MAX_EPOCHS, 10, &t->epochs, err);
    if (!s) s = read_int32(m, "train", "batch_size", 1, CFG_MAX_BATCH, 64, &t->batch_size, err);
    if (!s) s = read_int(m, "train", "seed", 0, LLONG_MAX, 1, &seed, err);
    t->seed = (uint64_t)seed;
    if (!s) s = read_int32(m, "train", "threads", 0, CFG_MAX_THREADS, 0, &t->threads, err);
    if (!s) s = read_optimizer(m, &t->optim, err);
    if (!s) s = read_schedule(m, t, &t->schedule, err);
    if (!s) s = read_early_stop(m, &t->early_stop, err);
    return s;
}

static lp_status read_tracking(lp_value *root, lp_tracking_config *t, lp_error *err)
{
    static const char *const keys[] = {"db", "checkpoint_every", NULL};
    lp_value *m;
    lp_status s = section(root, "tracking", "tracking", &m, err);
    if (!s) s = check_keys(m, "tracking", keys, err);
    if (!s) s = read_string(m, "tracking", "db", "runs.db", &t->db, err);
    if (!s)
        s = read_int32(m, "tracking", "checkpoint_every", 1, CFG_MAX_EPOCHS, 1, &t->checkpoint_every,
                       err);
    return s;
}

/* Plugin paths are relative to the YAML file, so a config and its plugin travel together. */
static lp_status read_plugins(lp_value *root, const char *path, lp_experiment_config *cfg,
                              lp_error *err)
{
    lp_value *v = lp_value_get(root, "plugins");
    if (!v) return LP_OK;
    if (v->kind != LP_VALUE_LIST || v->count > CFG_MAX_PLUGINS)
        return lp_error_at(err, LP_ERR_CONFIG, v->loc,
                           "plugins: expected a list of up to %d shared-object paths", CFG_MAX_PLUGINS);
    cfg->plugins = calloc((size_t)v->count + 1, sizeof *cfg->plugins);
    cfg->plugin_paths = calloc((size_t)v->count + 1, sizeof *cfg->plugin_paths);
    if (!cfg->plugins || !cfg->plugin_paths) return nomem(err);
    const char *slash = strrchr(path, '/');
    int dir_len = slash ? (int)(slash - path) : 0;
    for (int i = 0; i < v->count; i++) {
        const char *p;
        if (lp_value_as_string(v->items[i], "plugins", &p, err)) return LP_ERR_CONFIG;
        if (!*p) return lp_error_at(err, LP_ERR_CONFIG, v->items[i]->loc, "plugins: empty path");
        cfg->plugins[i] = strdup(p);
        size_t size = strlen(p) + (size_t)dir_len + 3;
        cfg->plugin_paths[i] = malloc(size);
        if (!cfg->plugins[i] || !cfg->plugin_paths[i]) return nomem(err);
        cfg->n_plugins = i + 1;
        /* Always with a '/': dlopen("x.so") would search the library path, not here. */
        if (p[0] == '/')
            snprintf(cfg->plugin_paths[i], size, "%s", p);
        else if (!slash)
            snprintf(cfg->plugin_paths[i], size, "./%s", p);
        else
            snprintf(cfg->plugin_paths[i], size, "%.*s/%s", dir_len, path, p);
    }
    return LP_OK;
}

/* ---- overrides ----------------------------------------------------------- */

static void relocate(lp_value *v, lp_loc loc)
{
    v->loc = loc;
    for (int i = 0; i < v->count; i++) {
        if (v->key_locs) v->key_locs[i] = loc;
        relocate(v->items[i], loc);
    }
}

/* A list index segment ("3"), or -1. */
static int list_index(const char *seg)
{
    char *end;
    long i = strtol(seg, &end, 10);
    return (*seg >= '0' && *seg <= '9' && *end == '\0' && i < INT_MAX) ? (int)i : -1;
}

lp_status lp_config_apply_override(lp_value *root, const char *ov, lp_error *err)
{
    const char *eq = strchr(ov, '=');
    if (!eq || eq == ov)
        return lp_error_set(err, LP_ERR_ARG, "--set %s: expected key.path=value, e.g. "
                            "train.epochs=3", ov);
    if (!eq[1])
        return lp_error_set(err, LP_ERR_ARG, "--set %s: no value after '='", ov);
    size_t klen = (size_t)(eq - ov);
    if (klen >= 256) return lp_error_set(err, LP_ERR_ARG, "--set: key path is too long");
    char key[256];
    memcpy(key, ov, klen);
    key[klen] = '\0';
    for (size_t i = 0; i < klen; i++) {
        char c = key[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-' || (c == '.' && i > 0 && i + 1 < klen && key[i + 1] != '.');
        if (!ok)
            return lp_error_set(err, LP_ERR_ARG, "--set %s: '%s' is not a key path like "
                                "train.optimizer.lr", ov, key);
    }

    char name[320];
    snprintf(name, sizeof name, "--set %s", ov);
    lp_loc loc = {lp_yaml_intern_name(name), 0, 0};
    if (!loc.file) return nomem(err);
    lp_error local = {0};
    lp_value *value;
    if (lp_yaml_load_string(eq + 1, strlen(eq + 1), name, &value, &local)) {
        if (local.status == LP_ERR_NOMEM) return nomem(err);
        return lp_error_set(err, LP_ERR_ARG, "%s", local.msg);
    }
    relocate(value, loc);

    lp_value *cur = root;
    char *seg = key;
    for (;;) {
        char *dot = strchr(seg, '.');
        if (dot) *dot = '\0';
        bool last = dot == NULL;
        if (cur->kind == LP_VALUE_LIST) {
            int i = list_index(seg);
            if (i < 0 || i >= cur->count) {
                lp_value_free(value);
                return lp_error_set(err, LP_ERR_ARG, "--set %s: '%s' is not an index of a list "
                                    "of %d items", ov, seg, cur->count);
            }
            if (last) {
                lp_value_free(cur->items[i]);
                cur->items[i] = value;
                return LP_OK;
            }
            cur = cur->items[i];
        } else if (cur->kind == LP_VALUE_MAP) {
            if (last) {
                if (lp_value_map_set(cur, seg, loc, value)) return nomem(err);
                return LP_OK;
            }
            int i = lp_value_find(cur, seg);
            if (i < 0) {
                lp_value *m = lp_value_new_map(loc);
                if (lp_value_map_set(cur, seg, loc, m)) {
                    lp_value_free(value);
                    return nomem(err);
                }
                i = cur->count - 1;
            }
            cur = cur->items[i];
        } else {
            lp_value_free(value);
            return lp_error_set(err, LP_ERR_ARG, "--set %s: cannot set '%s' inside a scalar "
                                "(written at %s:%d:%d)", ov, seg, cur->loc.file ? cur->loc.file : "?",
                                cur->loc.line, cur->loc.col);
        }
        seg = dot + 1;
    }
}

/* ---- loading ------------------------------------------------------------ */

static const char *const root_keys[] = {"name", "description", "model", "data", "train",
                                        "tracking", "plugins", "sweep", NULL};

static lp_status read_all(lp_experiment_config *cfg, const char *path, lp_error *err)
{
    lp_value *root = cfg->root;
    if (root->kind != LP_VALUE_MAP)
        return lp_error_at(err, LP_ERR_CONFIG, root->loc,
                           "expected a map with name, model, data, train and tracking, found %s",
                           lp_value_kind_name(root->kind));
    lp_status s = check_keys(root, "", root_keys, err);
    if (s) return s;
    lp_value *name = lp_value_get(root, "name");
    if (!name)
        return lp_error_at(err, LP_ERR_CONFIG, root->loc,
                           "missing 'name' (a short name for the experiment, e.g. mnist_two_conv)");
    if ((s = read_string(root, "", "name", NULL, &cfg->name, err))) return s;
    if ((s = read_string(root, "", "description", NULL, &cfg->description, err))) return s;
    lp_value *model = lp_value_get(root, "model");
    if (!model)
        return lp_error_at(err, LP_ERR_CONFIG, root->loc,
                           "missing 'model' (input, layers or nodes, and loss)");
    if ((s = lp_model_spec_from_value(model, &cfg->model, err))) return s;
    if ((s = read_data(root, &cfg->data, err))) return s;
    if ((s = read_train(root, &cfg->train, err))) return s;
    if (cfg->train.schedule.type == LP_SCHEDULE_PLATEAU &&
        (s = needs_validation(root, "schedule", cfg->train.schedule.plateau.metric, &cfg->data, err)))
        return s;
    if (cfg->train.early_stop.enabled &&
        (s = needs_validation(root, "early_stop", cfg->train.early_stop.metric, &cfg->data, err)))
        return s;
    if ((s = read_tracking(root, &cfg->tracking, err))) return s;
    cfg->sweep = lp_value_get(root, "sweep");   /* read by `loupe sweep` (experiments/sweep/) */
    return read_plugins(root, path, cfg, err);
}

static lp_status load_text(char *text, size_t len, const char *name, const char *const *overrides,
                           int n_overrides, lp_experiment_config *cfg, lp_error *err)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->yaml_text = text;   /* owned from here on, freed by lp_config_free */
    cfg->yaml_len = len;
    lp_status s = (cfg->path = strdup(name)) ? LP_OK : nomem(err);
    if (!s) s = lp_yaml_load_string(text, len, name, &cfg->root, err);
    if (!s && n_overrides > 0) {
        cfg->overrides = calloc((size_t)n_overrides, sizeof *cfg->overrides);
        if (!cfg->overrides) s = nomem(err);
    }
    for (int i = 0; !s && i < n_overrides; i++) {
        s = lp_config_apply_override(cfg->root, overrides[i], err);
        if (!s && !(cfg->overrides[i] = strdup(overrides[i]))) s = nomem(err);
        if (!s) cfg->n_overrides = i + 1;
    }
    if (!s) s = read_all(cfg, name, err);
    if (s) lp_config_free(cfg);
    return s;
}

lp_status lp_config_load(const char *path, const char *const *overrides, int n_overrides,
                         lp_experiment_config *cfg, lp_error *err)
{
    memset(cfg, 0, sizeof *cfg);
    char *text;
    size_t len;
    lp_status s = lp_yaml_read_text(path, LP_YAML_MAX_FILE, &text, &len, err);
    if (s) return s;
    return load_text(text, len, path, overrides, n_overrides, cfg, err);
}

lp_status lp_config_load_string(const char *text, size_t len, const char *name,
                                const char *const *overrides, int n_overrides,
                                lp_experiment_config *cfg, lp_error *err)
{
    memset(cfg, 0, sizeof *cfg);
    /* Refuse by length before copying: a 100 MB text (a hostile runs-DB row read
     * back by --resume) would otherwise be duplicated first. */
    if (len > LP_YAML_MAX_FILE)
        return lp_error_set(err, LP_ERR_CONFIG, "%s: YAML text of %zu bytes is larger than the %u KiB limit",
                            name ? name : "<string>", len, LP_YAML_MAX_FILE >> 10);
    char *copy = malloc(len + 1);
    if (!copy) return nomem(err);
    memcpy(copy, text, len);
    copy[len] = '\0';
    return load_text(copy, len, name ? name : "<string>", overrides, n_overrides, cfg, err);
}

static void free_strings(char **v, int n)
{
    for (int i = 0; v && i < n; i++) free(v[i]);
    free(v);
}

void lp_config_free(lp_experiment_config *cfg)
{
    if (!cfg) return;
    free(cfg->name);
    free(cfg->description);
    lp_model_spec_free(&cfg->model);
    free(cfg->data.dataset);
    free(cfg->data.dir);
    free(cfg->tracking.db);
    free_strings(cfg->plugins, cfg->n_plugins);
    free_strings(cfg->plugin_paths, cfg->n_plugins);
    free(cfg->path);
    free(cfg->yaml_text);
    free_strings(cfg->overrides, cfg->n_overrides);
    lp_value_free(cfg->root);
    memset(cfg, 0, sizeof *cfg);
}

/* ---- flattening ---------------------------------------------------------- */

static lp_status kvs_add(lp_config_kvs *kv, const char *key, const char *value, lp_error *err)
{
    if (kv->count == kv->capacity) {
        int cap = kv->capacity ? kv->capacity * 2 : 32;
        lp_config_kv *items = realloc(kv->items, (size_t)cap * sizeof *items);
        if (!items) return nomem(err);
        kv->items = items;
        kv->capacity = cap;
    }
    char *k = strdup(key), *v = strdup(value);
    if (!k || !v) {
        free(k);
        free(v);
        return nomem(err);
    }
    kv->items[kv->count++] = (lp_config_kv){k, v};
    return LP_OK;
}

static lp_status kvs_int(lp_config_kvs *kv, const char *key, long long x, lp_error *err)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", x);
    return kvs_add(kv, key, buf, err);
}

/* Fewest digits that read back as the same float: 0.05f prints "0.05", not
 * "0.0500000007", so the runs DB shows what the user wrote. */
static const char *float_text(char *buf, size_t size, float x)
{
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, size, "%.*g", prec, (double)x);
        if (strtof(buf, NULL) == x) break;
    }
    return buf;
}

static lp_status kvs_float(lp_config_kvs *kv, const char *key, float x, lp_error *err)
{
    char buf[32];
    return kvs_add(kv, key, float_text(buf, sizeof buf, x), err);
}

lp_status lp_config_flatten_value(const lp_value *v, const char *prefix, lp_config_kvs *out,
                                  lp_error *err)
{
    char key[512];
    const char *p = prefix ? prefix : "";
    if (v->kind == LP_VALUE_SCALAR) return kvs_add(out, p, v->text, err);
    bool flat = v->kind == LP_VALUE_LIST;
    for (int i = 0; flat && i < v->count; i++) flat = v->items[i]->kind == LP_VALUE_SCALAR;
    if (flat) {
        /* A list of scalars is one setting ("[1, 28, 28]"), not three. */
        size_t size = 3;
        for (int i = 0; i < v->count; i++) size += strlen(v->items[i]->text) + 2;
        char *buf = malloc(size);
        if (!buf) return nomem(err);
        size_t n = 0;
        buf[n++] = '[';
        for (int i = 0; i < v->count; i++)
            n += (size_t)sprintf(buf + n, "%s%s", i ? ", " : "", v->items[i]->text);
        buf[n++] = ']';
        buf[n] = '\0';
        lp_status s = kvs_add(out, p, buf, err);
        free(buf);
        return s;
    }
    for (int i = 0; i < v->count; i++) {
        if (v->kind == LP_VALUE_MAP)
            snprintf(key, sizeof key, "%s%s%s", p, *p ? "." : "", v->keys[i]);
        else
            snprintf(key, sizeof key, "%s%s%d", p, *p ? "." : "", i);
        lp_status s = lp_config_flatten_value(v->items[i], key, out, err);
        if (s) return s;
    }
    return LP_OK;
}

lp_status lp_config_flatten(const lp_experiment_config *cfg, lp_config_kvs *out, lp_error *err)
{
    lp_config_kvs_free(out);
    const lp_data_config *d = &cfg->data;
    const lp_train_config *t = &cfg->train;
    const lp_optim_config *o = &t->optim;
    const lp_schedule_config *sc = &t->schedule;
    char buf[96], a[32], b[32];
    lp_status s = kvs_add(out, "name", cfg->name, err);
    if (!s && cfg->description) s = kvs_add(out, "description", cfg->description, err);
    if (!s) s = kvs_add(out, "data.dataset", d->dataset, err);
    if (!s) s = kvs_add(out, "data.dir", d->dir, err);
    if (!s) s = kvs_int(out, "data.train_limit", d->train_limit, err);
    if (!s) s = kvs_int(out, "data.test_limit", d->test_limit, err);
    if (!s && d->normalize) {
        snprintf(buf, sizeof buf, "[%s, %s]", float_text(a, sizeof a, d->mean),
                 float_text(b, sizeof b, d->std));
        s = kvs_add(out, "data.normalize", buf, err);
    }
    if (!s) s = kvs_add(out, "data.shuffle", d->shuffle ? "true" : "false", err);
    if (!s) s = kvs_int(out, "data.augment.shift", d->augment_shift, err);
    if (!s) s = kvs_int(out, "data.validation", d->validation, err);
    if (!s) s = kvs_int(out, "train.epochs", t->epochs, err);
    if (!s) s = kvs_int(out, "train.batch_size", t->batch_size, err);
    if (!s) s = kvs_int(out, "train.seed", (long long)t->seed, err);
    if (!s) s = kvs_int(out, "train.threads", t->threads, err);
    const bool adam = o->type == LP_OPTIM_ADAM || o->type == LP_OPTIM_ADAMW;
    if (!s) s = kvs_add(out, "train.optimizer.type", lp_optim_type_name(o->type), err);
    if (!s) s = kvs_float(out, "train.optimizer.lr", o->lr, err);
    if (!s && !adam) s = kvs_float(out, "train.optimizer.momentum", o->momentum, err);
    if (!s && o->type == LP_OPTIM_SGD) s = kvs_add(out, "train.optimizer.nesterov", o->nesterov ? "true" : "false", err);
    if (!s && o->type == LP_OPTIM_RMSPROP) s = kvs_float(out, "train.optimizer.alpha", o->alpha, err);
    if (!s && adam) {
        s = kvs_float(out, "train.optimizer.beta1", o->beta1, err);
        if (!s) s = kvs_float(out, "train.optimizer.beta2", o->beta2, err);
    }
    if (!s && o->type != LP_OPTIM_SGD) s = kvs_float(out, "train.optimizer.eps", o->eps, err);
    if (!s) s = kvs_float(out, "train.optimizer.weight_decay", o->weight_decay, err);
    if (!s) s = kvs_add(out, "train.schedule.type", lp_schedule_type_name(sc->type), err);
    if (!s && sc->type == LP_SCHEDULE_STEP) s = kvs_int(out, "train.schedule.step_size", sc->step_size, err);
    if (!s && sc->type != LP_SCHEDULE_CONSTANT && sc->type != LP_SCHEDULE_COSINE)
        s = kvs_float(out, "train.schedule.gamma", sc->gamma, err);
    if (!s && sc->type == LP_SCHEDULE_MULTISTEP) {
        char list[LP_SCHEDULE_MAX_MILESTONES * 8 + 4];   /* epochs <= 100000: 6 digits + ", " */
        int len = snprintf(list, sizeof list, "[");
        for (int i = 0; i < sc->n_milestones; i++)
            len += snprintf(list + len, sizeof list - (size_t)len, "%s%d", i ? ", " : "", sc->milestones[i]);
        snprintf(list + len, sizeof list - (size_t)len, "]");
        s = kvs_add(out, "train.schedule.milestones", list, err);
    }
    if (!s && (sc->type == LP_SCHEDULE_COSINE || sc->type == LP_SCHEDULE_PLATEAU))
        s = kvs_float(out, "train.schedule.min_lr", sc->min_lr, err);
    if (!s && sc->type == LP_SCHEDULE_PLATEAU) {
        const lp_plateau_config *pc = &sc->plateau;
        s = kvs_add(out, "train.schedule.metric", lp_metric_name(pc->metric), err);
        if (!s) s = kvs_add(out, "train.schedule.mode", pc->maximize ? "max" : "min", err);
        if (!s) s = kvs_float(out, "train.schedule.factor", pc->factor, err);
        if (!s) s = kvs_int(out, "train.schedule.patience", pc->patience, err);
        if (!s) s = kvs_float(out, "train.schedule.threshold", pc->threshold, err);
        if (!s) s = kvs_add(out, "train.schedule.threshold_mode", pc->threshold_abs ? "abs" : "rel", err);
        if (!s) s = kvs_int(out, "train.schedule.cooldown", pc->cooldown, err);
        if (!s) s = kvs_float(out, "train.schedule.eps", pc->eps, err);
    }
    if (!s && sc->type != LP_SCHEDULE_PLATEAU) s = kvs_float(out, "train.schedule.warmup_epochs", sc->warmup_epochs, err);
    if (!s && sc->warmup_epochs > 0)
        s = kvs_float(out, "train.schedule.warmup_start_factor", sc->warmup_start_factor, err);
    const lp_early_stop_config *es = &t->early_stop;
    if (!s && es->enabled) {
        s = kvs_add(out, "train.early_stop.metric", lp_metric_name(es->metric), err);
        if (!s) s = kvs_add(out, "train.early_stop.mode", es->maximize ? "max" : "min", err);
        if (!s) s = kvs_int(out, "train.early_stop.patience", es->patience, err);
        if (!s) s = kvs_float(out, "train.early_stop.min_delta", es->min_delta, err);
    }
    if (!s) s = kvs_add(out, "tracking.db", cfg->tracking.db, err);
    if (!s) s = kvs_int(out, "tracking.checkpoint_every", cfg->tracking.checkpoint_every, err);
    if (!s && cfg->n_plugins > 0) {
        /* Same flow style as a list written in the tree. */
        size_t size = 3;
        for (int i = 0; i < cfg->n_plugins; i++) size += strlen(cfg->plugins[i]) + 2;
        char *list = malloc(size);
        if (!list) s = nomem(err);
        size_t n = 0;
        if (list) list[n++] = '[';
        for (int i = 0; list && i < cfg->n_plugins; i++)
            n += (size_t)sprintf(list + n, "%s%s", i ? ", " : "", cfg->plugins[i]);
        if (list) {
            strcpy(list + n, "]");
            s = kvs_add(out, "plugins", list, err);
        }
        free(list);
    }
    int mi = cfg->root ? lp_value_find(cfg->root, "model") : -1;
    if (!s && mi >= 0) s = lp_config_flatten_value(cfg->root->items[mi], "model", out, err);
    if (s) lp_config_kvs_free(out);
    return s;
}

const char *lp_config_kvs_get(const lp_config_kvs *kvs, const char *key)
{
    for (int i = 0; i < kvs->count; i++)
        if (strcmp(kvs->items[i].key, key) == 0) return kvs->items[i].value;
    return NULL;
}

void lp_config_kvs_free(lp_config_kvs *kvs)
{
    for (int i = 0; i < kvs->count; i++) {
        free(kvs->items[i].key);
        free(kvs->items[i].value);
    }
    free(kvs->items);
    memset(kvs, 0, sizeof *kvs);
}
