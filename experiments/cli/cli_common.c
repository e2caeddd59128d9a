/* cli_common.c - helpers every subcommand shares. */
#include "cli.h"

#include "registry.h"
#include "shape.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_fail(const lp_error *err)
{
    fprintf(stderr, "loupe: %s: %s\n", lp_status_name(err->status), err->msg);
    return lp_status_exit_code(err->status);
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "loupe %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(see `loupe %s --help`)\n", cmd);
    va_end(ap);
    return 2;
}

bool cli_is_help(const char *arg) { return !strcmp(arg, "--help") || !strcmp(arg, "-h"); }

bool cli_parse_int(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

static int need_value(const char *cmd, int argc, char **argv, int i)
{
    if (i + 1 < argc) return 1;
    cli_usage_error(cmd, "option %s needs a value", argv[i]);
    return 0;
}

int cli_common_option(const char *cmd, int argc, char **argv, int *i, cli_common *c)
{
    const char *a = argv[*i];
    if (!strcmp(a, "--json")) {
        c->json = true;
        return 1;
    }
    if (!strcmp(a, "--set") || !strcmp(a, "--plugin") || !strcmp(a, "--db") || !strcmp(a, "--threads")) {
        if (!need_value(cmd, argc, argv, *i)) return -1;
        const char *v = argv[++*i];
        if (!strcmp(a, "--set") || !strcmp(a, "--plugin")) {
            bool set = !strcmp(a, "--set");
            int *n = set ? &c->n_sets : &c->n_plugins;
            if (*n == CLI_MAX_LIST) {
                cli_usage_error(cmd, "too many %s options (at most %d)", a, CLI_MAX_LIST);
                return -1;
            }
            if (set && !strchr(v, '=')) {
                cli_usage_error(cmd, "--set expects key.path=value, got '%s'", v);
                return -1;
            }
            (set ? c->sets : c->plugins)[(*n)++] = v;
        } else if (!strcmp(a, "--db")) {
            c->db = v;
        } else {
            long long t;
            if (!cli_parse_int(v, 1, 1024, &t)) {
                cli_usage_error(cmd, "--threads expects a whole number from 1 to 1024, got '%s'", v);
                return -1;
            }
            c->threads = (int)t;
        }
        return 1;
    }
    return 0;
}

lp_status cli_load_plugins(const cli_common *c, lp_error *err)
{
    for (int i = 0; i < c->n_plugins; i++) {
        lp_status s = lp_plugin_load(c->plugins[i], err);
        if (s) return s;
    }
    return LP_OK;
}

/* model.input must be the images' own [C, H, W] ([H, W] when C is 1), or their flat
 * size [C*H*W] (a dense model). An equal count in another shape ([28, 28, 1], [4, 14, 14]) would silently
 * read the pixels in a different order, so it is refused too. */
static lp_status check_input_fits(const lp_experiment_config *cfg, const lp_dataset *d, lp_error *err)
{
    const lp_shape *in = &cfg->model.input;
    long long want = lp_shape_numel(*in), have = (long long)d->c * d->h * d->w;
    bool same = (in->ndim == 3 && in->dims[0] == d->c && in->dims[1] == d->h && in->dims[2] == d->w) ||
                (in->ndim == 2 && d->c == 1 && in->dims[0] == d->h && in->dims[1] == d->w);
    if (same || (in->ndim == 1 && want == have)) return LP_OK;
    char shape[64];
    lp_shape_str(*in, shape, sizeof shape);
    if (want != have)
        return lp_error_at(err, LP_ERR_CONFIG, cfg->model.input_loc,
                           "model.input: %s is %lld values per image, but %s images are %d x %d x %d "
                           "(%lld values)", shape, want, cfg->data.dataset, d->c, d->h, d->w, have);
    return lp_error_at(err, LP_ERR_CONFIG, cfg->model.input_loc,
                       "model.input: %s has the %lld values of a %s image but not its shape: write "
                       "[%d, %d, %d] (C, H, W) or [%lld] (flat, for dense layers)",
                       shape, want, cfg->data.dataset, d->c, d->h, d->w, have);
}

/* The value at a dotted path of the config as written (NULL if absent); marks nothing. */
static const lp_value *config_value(const lp_experiment_config *cfg, const char *dotted)
{
    const lp_value *v = cfg->root;
    char key[128];
    for (const char *p = dotted; v && *p;) {
        size_t n = strcspn(p, ".");
        if (n >= sizeof key || v->kind != LP_VALUE_MAP) return NULL;
        memcpy(key, p, n);
        key[n] = '\0';
        int i = lp_value_find(v, key);
        v = i < 0 ? NULL : v->items[i];
        p += n + (p[n] == '.');
    }
    return v;
}

lp_status cli_blame_key(const lp_experiment_config *cfg, const char *dotted, lp_error *err)
{
    const lp_value *v = config_value(cfg, dotted);
    if (!err || !err->status || !v) return err ? err->status : LP_OK;
    lp_status s = err->status;
    char msg[LP_ERROR_MSG_MAX];
    snprintf(msg, sizeof msg, "%s", err->msg);
    lp_error_clear(err);
    return lp_error_at(err, s, v->loc, "%s: %s", dotted, msg);
}

lp_status cli_load_data(const lp_experiment_config *cfg, lp_dataset *train, lp_dataset *test, lp_error *err)
{
    const lp_data_config *dc = &cfg->data;
    memset(test, 0, sizeof *test);
    lp_status s = LP_OK;
    if (train) s = lp_dataset_load(dc->dataset, dc->dir, true, (int)dc->train_limit, train, err);
    if (!s && train) s = check_input_fits(cfg, train, err);
    if (!s) s = lp_dataset_load(dc->dataset, dc->dir, false, (int)dc->test_limit, test, err);
    /* Missing or corrupt files in a data.dir the config names: point at it. */
    if (s && s != LP_ERR_CONFIG) s = cli_blame_key(cfg, "data.dir", err);
    if (!s && !train) s = check_input_fits(cfg, test, err);
    if (s) {
        if (train) lp_dataset_free(train);
        lp_dataset_free(test);
        return s;
    }
    if (dc->normalize) {
        if (train) lp_dataset_normalize(train, dc->mean, dc->std);
        lp_dataset_normalize(test, dc->mean, dc->std);
    }
    return LP_OK;
}
