/* sweep.c - the `sweep:` section -> a spec -> trials (pure: no files, no database),
 * and the check of every trial's config before any trial runs (sweep.h). */
#include "sweep.h"

#include "graph.h"
#include "rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static lp_status nomem(lp_error *err) { return lp_error_set(err, LP_ERR_NOMEM, "out of memory"); }

const char *lp_sweep_mode_name(lp_sweep_mode m) { return m == LP_SWEEP_GRID ? "grid" : "random"; }

/* ---- values as YAML flow text (what --set parses back) ------------------- */

static bool needs_quotes(const lp_value *v)
{
    const char *s = v->text;
    if (v->quoted || !*s) return true;
    if (strchr("-?:,[]{}#&*!|>'\"%@` ", s[0])) {
        char *end;
        strtod(s, &end);   /* plain negative numbers need none */
        if (*end) return true;
    }
    size_t n = strlen(s);
    return strpbrk(s, ",[]{}#\n\"") || strstr(s, ": ") || s[n - 1] == ' ' || s[n - 1] == ':';
}

static void emit_flow(FILE *f, const lp_value *v)
{
    if (v->kind == LP_VALUE_SCALAR) {
        if (!needs_quotes(v)) {
            fputs(v->text, f);
            return;
        }
        fputc('"', f);
        for (const char *p = v->text; *p; p++) {
            if (*p == '\n') { fputs("\\n", f); continue; }
            if (*p == '"' || *p == '\\') fputc('\\', f);
            fputc(*p, f);
        }
        fputc('"', f);
        return;
    }
    bool map = v->kind == LP_VALUE_MAP;
    fputc(map ? '{' : '[', f);
    for (int i = 0; i < v->count; i++) {
        if (i) fputs(", ", f);
        if (map) fprintf(f, "%s: ", v->keys[i]);
        emit_flow(f, v->items[i]);
    }
    fputc(map ? '}' : ']', f);
}

static char *flow_text(const lp_value *v)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    if (!f) return NULL;
    emit_flow(f, v);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* ---- reading the spec ------------------------------------------------------ */

static lp_status check_keys(const lp_value *map, const char *prefix, const char *const *known, lp_error *err)
{
    for (int i = 0; i < map->count; i++) {
        bool ok = false;
        for (int k = 0; known[k] && !ok; k++) ok = strcmp(map->keys[i], known[k]) == 0;
        if (ok) continue;
        const char *hint = lp_did_you_mean(map->keys[i], known);
        return lp_error_at(err, LP_ERR_CONFIG, map->key_locs[i], "unknown key '%s.%s'%s%s%s", prefix,
                           map->keys[i], hint ? ": did you mean '" : "", hint ? hint : "", hint ? "'?" : "");
    }
    return LP_OK;
}

static const lp_value *entry(const lp_value *map, const char *key)
{
    int i = lp_value_find(map, key);
    return i < 0 ? NULL : map->items[i];
}

/* A config path as --set takes it: letters, digits, _ and -, joined by single dots. */
static bool is_key_path(const char *k)
{
    size_t n = strlen(k);
    if (n == 0 || n >= 256) return false;
    for (size_t i = 0; i < n; i++) {
        char c = k[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                  c == '-' || (c == '.' && i > 0 && i + 1 < n && k[i + 1] != '.');
        if (!ok) return false;
    }
    return true;
}

/* The values of a list (grid values, choice): each kept as flow text with its location. */
static lp_status read_list(const lp_value *list, const char *what, lp_sweep_param *p, lp_error *err)
{
    if (list->kind != LP_VALUE_LIST)
        return lp_error_at(err, LP_ERR_CONFIG, list->loc, "%s: expected a list of values, found %s", what,
                           lp_value_kind_name(list->kind));
    if (list->count == 0)
        return lp_error_at(err, LP_ERR_CONFIG, list->loc, "%s: empty list (give at least one value)", what);
    if (list->count > LP_SWEEP_MAX_TRIALS)
        return lp_error_at(err, LP_ERR_CONFIG, list->loc, "%s: %d values is more than %d", what, list->count,
                           LP_SWEEP_MAX_TRIALS);
    p->values = calloc((size_t)list->count, sizeof *p->values);
    p->value_locs = calloc((size_t)list->count, sizeof *p->value_locs);
    if (!p->values || !p->value_locs) return nomem(err);
    for (int i = 0; i < list->count; i++) {
        if (!(p->values[i] = flow_text(list->items[i]))) return nomem(err);
        p->value_locs[i] = list->items[i]->loc;
        p->n_values = i + 1;
    }
    return LP_OK;
}

/* {uniform: [lo, hi]}, {log_uniform: [lo, hi]}, {int: [lo, hi]}, {choice: [...]}, or a list (choice). */
static lp_status read_dist(const lp_value *v, const char *what, lp_sweep_param *p, lp_error *err)
{
    static const char *const kinds[] = {"uniform", "log_uniform", "int", "choice", NULL};
    if (v->kind == LP_VALUE_LIST) {
        p->dist = LP_SWEEP_CHOICE;
        return read_list(v, what, p, err);
    }
    if (v->kind != LP_VALUE_MAP || v->count != 1)
        return lp_error_at(err, LP_ERR_CONFIG, v->loc, "%s: expected one of {uniform: [lo, hi]}, {log_uniform: "
                           "[lo, hi]}, {int: [lo, hi]}, {choice: [a, b, ...]} or a list of values", what);
    char sub[640];   /* what (up to ~300) and a distribution name */
    snprintf(sub, sizeof sub, "sweep.random.space.%s", p->key);
    lp_status s = check_keys(v, sub, kinds, err);
    if (s) return s;
    const char *kind = v->keys[0];
    const lp_value *arg = v->items[0];
    snprintf(sub, sizeof sub, "%.300s.%.16s", what, kind);
    if (!strcmp(kind, "choice")) {
        p->dist = LP_SWEEP_CHOICE;
        return read_list(arg, sub, p, err);
    }
    p->dist = !strcmp(kind, "uniform") ? LP_SWEEP_UNIFORM : !strcmp(kind, "int") ? LP_SWEEP_INT
                                                                                  : LP_SWEEP_LOG_UNIFORM;
    if (arg->kind != LP_VALUE_LIST || arg->count != 2)
        return lp_error_at(err, LP_ERR_CONFIG, arg->loc, "%s: expected [lo, hi]", sub);
    double x[2];
    for (int i = 0; i < 2; i++) {
        if (p->dist == LP_SWEEP_INT) {
            long long k;
            if ((s = lp_value_as_int(arg->items[i], sub, &k, err))) return s;
            if (k < -(1LL << 53) || k > (1LL << 53))
                return lp_error_at(err, LP_ERR_CONFIG, arg->items[i]->loc, "%s: %lld is too large", sub, k);
            x[i] = (double)k;
        } else if ((s = lp_value_as_double(arg->items[i], sub, &x[i], err))) {
            return s;
        }
    }
    if (p->dist == LP_SWEEP_LOG_UNIFORM && !(x[0] > 0))
        return lp_error_at(err, LP_ERR_CONFIG, arg->items[0]->loc, "%s: lo must be > 0, found %s", sub,
                           arg->items[0]->text);
    if (p->dist == LP_SWEEP_INT ? x[0] > x[1] : !(x[0] < x[1]))
        return lp_error_at(err, LP_ERR_CONFIG, arg->items[1]->loc, "%s: hi must be %s lo, found [%s, %s]", sub,
                           p->dist == LP_SWEEP_INT ? ">=" : ">", arg->items[0]->text, arg->items[1]->text);
    if (p->dist == LP_SWEEP_INT && x[1] - x[0] >= 4294967295.0)
        return lp_error_at(err, LP_ERR_CONFIG, arg->loc, "%s: a range of more than 2^32 integers", sub);
    p->lo = x[0];
    p->hi = x[1];
    return LP_OK;
}

/* The params of a grid or a random space: a map of config path -> list / distribution. */
static lp_status read_params(const lp_value *map, const char *what, bool grid, lp_sweep_spec *out, lp_error *err)
{
    if (map->kind != LP_VALUE_MAP)
        return lp_error_at(err, LP_ERR_CONFIG, map->loc, "%s: expected a map of config paths (as --set takes "
                           "them, e.g. train.optimizer.lr) to %s, found %s", what,
                           grid ? "lists of values" : "distributions", lp_value_kind_name(map->kind));
    if (map->count == 0)
        return lp_error_at(err, LP_ERR_CONFIG, map->loc, "%s: empty (give at least one config path)", what);
    if (map->count > LP_SWEEP_MAX_PARAMS)
        return lp_error_at(err, LP_ERR_CONFIG, map->loc, "%s: %d keys is more than %d", what, map->count,
                           LP_SWEEP_MAX_PARAMS);
    out->params = calloc((size_t)map->count, sizeof *out->params);
    if (!out->params) return nomem(err);
    for (int i = 0; i < map->count; i++) {
        const char *key = map->keys[i];
        lp_sweep_param *p = &out->params[i];
        out->n_params = i + 1;
        if (!(p->key = strdup(key))) return nomem(err);
        p->key_loc = map->key_locs[i];
        p->loc = map->items[i]->loc;
        if (!is_key_path(key))
            return lp_error_at(err, LP_ERR_CONFIG, map->key_locs[i], "%s: '%s' is not a config path like "
                               "train.optimizer.lr", what, key);
        if (!strcmp(key, "sweep") || !strncmp(key, "sweep.", 6))
            return lp_error_at(err, LP_ERR_CONFIG, map->key_locs[i], "%s: a sweep cannot sweep '%s'", what, key);
        char sub[300];
        snprintf(sub, sizeof sub, "%s.%s", what, key);
        lp_status s;
        if (grid) {
            p->dist = LP_SWEEP_LIST;
            s = read_list(map->items[i], sub, p, err);
        } else {
            s = read_dist(map->items[i], sub, p, err);
        }
        if (s) return s;
    }
    return LP_OK;
}

static lp_status read_random(const lp_value *r, lp_sweep_spec *out, lp_error *err)
{
    static const char *const keys[] = {"trials", "seed", "space", NULL};
    if (r->kind != LP_VALUE_MAP)
        return lp_error_at(err, LP_ERR_CONFIG, r->loc, "sweep.random: expected a map with trials, seed and "
                           "space, found %s", lp_value_kind_name(r->kind));
    lp_status s = check_keys(r, "sweep.random", keys, err);
    if (s) return s;
    const lp_value *trials = entry(r, "trials"), *seed = entry(r, "seed"), *space = entry(r, "space");
    if (!trials) return lp_error_at(err, LP_ERR_CONFIG, r->loc, "sweep.random: missing 'trials' (how many)");
    if (!space)
        return lp_error_at(err, LP_ERR_CONFIG, r->loc, "sweep.random: missing 'space' (config path -> "
                           "distribution)");
    long long k;
    if ((s = lp_value_as_int(trials, "sweep.random.trials", &k, err))) return s;
    if (k < 1 || k > LP_SWEEP_MAX_TRIALS)
        return lp_error_at(err, LP_ERR_CONFIG, trials->loc, "sweep.random.trials: expected an integer from 1 to "
                           "%d, found %lld", LP_SWEEP_MAX_TRIALS, k);
    out->trials = (int)k;
    long long sd = 1;
    if (seed && (s = lp_value_as_int(seed, "sweep.random.seed", &sd, err))) return s;
    if (sd < 0)
        return lp_error_at(err, LP_ERR_CONFIG, seed->loc, "sweep.random.seed: expected an integer of at least "
                           "0, found %lld", sd);
    out->seed = (uint64_t)sd;
    return read_params(space, "sweep.random.space", false, out, err);
}

lp_status lp_sweep_spec_read(const lp_value *sweep, lp_sweep_spec *out, lp_error *err)
{
    static const char *const keys[] = {"grid", "random", NULL};
    memset(out, 0, sizeof *out);
    out->loc = sweep->loc;
    out->seed = 1;
    lp_status s = LP_OK;
    if (sweep->kind != LP_VALUE_MAP)
        s = lp_error_at(err, LP_ERR_CONFIG, sweep->loc, "sweep: expected a map with grid: or random:, found %s",
                        lp_value_kind_name(sweep->kind));
    if (!s) s = check_keys(sweep, "sweep", keys, err);
    const lp_value *grid = s ? NULL : entry(sweep, "grid"), *random = s ? NULL : entry(sweep, "random");
    if (!s && !grid == !random)
        s = lp_error_at(err, LP_ERR_CONFIG, sweep->loc, "sweep: give either grid: (every combination of "
                        "lists) or random: (trials sampled from a space)%s", grid ? ", not both" : "");
    if (!s && grid) {
        out->mode = LP_SWEEP_GRID;
        s = read_params(grid, "sweep.grid", true, out, err);
        double total = 1;
        for (int i = 0; !s && i < out->n_params; i++) total *= out->params[i].n_values;
        if (!s && total > LP_SWEEP_MAX_TRIALS)
            s = lp_error_at(err, LP_ERR_CONFIG, grid->loc, "sweep.grid: %.0f combinations is more than %d trials",
                            total, LP_SWEEP_MAX_TRIALS);
        if (!s) out->trials = (int)total;
    } else if (!s) {
        out->mode = LP_SWEEP_RANDOM;
        s = read_random(random, out, err);
    }
    for (int i = 0; !s && i < out->n_params; i++)
        for (int j = 0; j < i; j++)
            if (!strcmp(out->params[i].key, out->params[j].key))
                s = lp_error_at(err, LP_ERR_CONFIG, out->params[i].key_loc, "sweep: '%s' is swept twice (first "
                                "at line %d)", out->params[i].key, out->params[j].key_loc.line);
    if (s) lp_sweep_spec_free(out);
    return s;
}

void lp_sweep_spec_free(lp_sweep_spec *s)
{
    if (!s) return;
    for (int i = 0; i < s->n_params; i++) {
        lp_sweep_param *p = &s->params[i];
        free(p->key);
        for (int k = 0; k < p->n_values; k++) free(p->values[k]);
        free(p->values);
        free(p->value_locs);
    }
    free(s->params);
    memset(s, 0, sizeof *s);
}

/* ---- expansion ----------------------------------------------------------------- */

/* Trial t's value of param p as text: grid index, or a draw from rng. */
static char *draw(const lp_sweep_param *p, lp_rng *rng, int grid_index, lp_loc *loc)
{
    char buf[64];
    *loc = p->loc;
    switch (p->dist) {
    case LP_SWEEP_LIST:
        *loc = p->value_locs[grid_index];
        return strdup(p->values[grid_index]);
    case LP_SWEEP_CHOICE: {
        int i = (int)lp_rng_below(rng, (uint32_t)p->n_values);
        *loc = p->value_locs[i];
        return strdup(p->values[i]);
    }
    case LP_SWEEP_UNIFORM:
        snprintf(buf, sizeof buf, "%.6g", p->lo + (p->hi - p->lo) * lp_rng_uniform(rng));
        break;
    case LP_SWEEP_LOG_UNIFORM:
        snprintf(buf, sizeof buf, "%.6g", exp(log(p->lo) + (log(p->hi) - log(p->lo)) * lp_rng_uniform(rng)));
        break;
    case LP_SWEEP_INT:
        snprintf(buf, sizeof buf, "%.0f", p->lo + (double)lp_rng_below(rng, (uint32_t)(p->hi - p->lo + 1)));
        break;
    }
    return strdup(buf);
}

lp_status lp_sweep_expand(const lp_sweep_spec *spec, lp_sweep_trial **out, int *n, lp_error *err)
{
    *out = NULL;
    *n = 0;
    lp_sweep_trial *t = calloc((size_t)spec->trials, sizeof *t);
    if (!t) return nomem(err);
    lp_status s = LP_OK;
    for (int k = 0; !s && k < spec->trials; k++) {
        lp_sweep_trial *tr = &t[k];
        tr->number = k + 1;
        tr->sets = calloc((size_t)spec->n_params, sizeof *tr->sets);
        tr->values = calloc((size_t)spec->n_params, sizeof *tr->values);
        tr->locs = calloc((size_t)spec->n_params, sizeof *tr->locs);
        if (!tr->sets || !tr->values || !tr->locs) s = nomem(err);
        lp_rng rng;
        lp_rng_seed(&rng, lp_rng_derive(spec->seed, (uint64_t)tr->number));
        /* Grid: k in mixed radix, the last key the fastest digit. */
        int rest = k;
        int digit[LP_SWEEP_MAX_PARAMS] = {0};
        for (int i = spec->n_params - 1; spec->mode == LP_SWEEP_GRID && i >= 0; i--) {
            digit[i] = rest % spec->params[i].n_values;
            rest /= spec->params[i].n_values;
        }
        for (int i = 0; !s && i < spec->n_params; i++) {
            const lp_sweep_param *p = &spec->params[i];
            tr->n = i + 1;
            tr->values[i] = draw(p, &rng, digit[i], &tr->locs[i]);
            size_t len = strlen(p->key) + (tr->values[i] ? strlen(tr->values[i]) : 0) + 2;
            if (tr->values[i] && (tr->sets[i] = malloc(len))) snprintf(tr->sets[i], len, "%s=%s", p->key, tr->values[i]);
            if (!tr->values[i] || !tr->sets[i]) s = nomem(err);
        }
        *n = k + 1;
    }
    if (s) {
        lp_sweep_trials_free(t, *n);
        *n = 0;
        return s;
    }
    *out = t;
    return LP_OK;
}

void lp_sweep_trials_free(lp_sweep_trial *t, int n)
{
    for (int k = 0; t && k < n; k++) {
        for (int i = 0; i < t[k].n; i++) {
            if (t[k].sets) free(t[k].sets[i]);
            if (t[k].values) free(t[k].values[i]);
        }
        free(t[k].sets);
        free(t[k].values);
        free(t[k].locs);
    }
    free(t);
}

/* ---- checking every trial's config ------------------------------------------- */

const char **lp_sweep_trial_overrides(const char *const *base_sets, int n_base, const lp_sweep_trial *trial)
{
    const char **all = calloc((size_t)(n_base + trial->n) + 1, sizeof *all);
    if (!all) return NULL;
    for (int i = 0; i < n_base; i++) all[i] = base_sets[i];
    for (int i = 0; i < trial->n; i++) all[n_base + i] = trial->sets[i];
    return all;
}

/* The config reader names an override's mistakes "--set k=v: ..."; the sweep names
 * where k or v is written in the YAML instead. */
static lp_status blame_trial(const char *path, const lp_sweep_spec *spec, const lp_sweep_trial *t, const lp_error *e,
                             lp_error *err)
{
    for (int i = 0; i < t->n; i++) {
        char prefix[600];
        int n = snprintf(prefix, sizeof prefix, "--set %s: ", t->sets[i]);
        if (n <= 0 || (size_t)n >= sizeof prefix || strncmp(e->msg, prefix, (size_t)n) != 0) continue;
        /* The path itself is wrong (unknown key, not an index): point at the key. */
        bool key = e->status == LP_ERR_ARG || strstr(e->msg + n, "unknown key");
        lp_loc loc = key ? spec->params[i].key_loc : t->locs[i];
        return lp_error_at(err, LP_ERR_CONFIG, loc, "sweep trial %d (%s): %s", t->number, t->sets[i], e->msg + n);
    }
    /* A check across keys (min_lr above lr), a node the trial changed (an unknown op),
     * a base --set: the trial as a whole, after the location the reader gave if any. */
    if (e->status == LP_ERR_NOMEM) return nomem(err);
    lp_status st = e->status == LP_ERR_ARG ? LP_ERR_ARG : LP_ERR_CONFIG;
    char sets[512] = "";
    for (int i = 0, n = 0; i < t->n && n < (int)sizeof sets; i++)
        n += snprintf(sets + n, sizeof sets - (size_t)n, "%s%s", i ? " " : "", t->sets[i]);
    size_t plen = strlen(path);
    if (!strncmp(e->msg, path, plen) && e->msg[plen] == ':')
        return lp_error_set(err, st, "%s (in sweep trial %d: %s)", e->msg, t->number, sets);
    return lp_error_at(err, st, spec->loc, "sweep trial %d (%s): %s", t->number, sets, e->msg);
}

lp_status lp_sweep_check_trials(const lp_experiment_config *base, const char *const *base_sets, int n_base,
                                const lp_sweep_spec *spec, const lp_sweep_trial *trials, int n, lp_error *err)
{
    for (int k = 0; k < n; k++) {
        const char **all = lp_sweep_trial_overrides(base_sets, n_base, &trials[k]);
        if (!all) return nomem(err);
        lp_experiment_config cfg;
        lp_error e = {0};
        lp_status s = lp_config_load_string(base->yaml_text, base->yaml_len, base->path, all, n_base + trials[k].n,
                                            &cfg, &e);
        free(all);
        if (!s) {
            /* Shapes too: a swept kernel larger than its input fails here, not in trial k's process. */
            lp_graph *g = NULL;
            s = lp_graph_build(&cfg.model, &g, &e);
            lp_graph_free(g);
            lp_config_free(&cfg);
        }
        if (s) return blame_trial(base->path, spec, &trials[k], &e, err);
    }
    return LP_OK;
}
