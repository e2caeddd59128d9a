/* cli_sweep.c - `loupe sweep`: every trial of a config's `sweep:` section trained
 * as a child run of one parent run, J at a time, each in its own `loupe train`
 * process on one runs database; resumable after the sweep itself is killed.
 * Also `loupe runs compare --sweep PARENT` (the trials ranked). */
#include "cli.h"

#include "lifecycle.h"
#include "lp_yaml.h"
#include "registry.h"
#include "runsdb.h"
#include "sweep.h"
#include "sweeps.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_JOBS 256

static void usage(void)
{
    printf("usage: loupe sweep CONFIG.yaml [-j J] [--db PATH] [--set KEY=VALUE]... [options]\n"
           "       loupe sweep --resume SWEEP [-j J] [--db PATH] [options]\n\n"
           "Train every trial of the config's `sweep:` section (a grid, or random trials\n"
           "from a space: docs/configs.md) as a run of its own, J at a time, each in a\n"
           "separate `loupe train` process on one runs database. The sweep is a run too\n"
           "(kind 'sweep'); each trial records it as its parent, with its trial number.\n"
           "Every trial's config is checked before any trial starts. A trial that fails\n"
           "(a NaN loss, a crash) does not stop the others.\n\n"
           "The sweep ends 'completed' when every trial completed, else 'failed' with the\n"
           "failed trials in its error text ('interrupted' on Ctrl-C). After a kill, or to\n"
           "retry trials that crashed, --resume SWEEP continues it: trials that completed\n"
           "or failed are kept as they are, interrupted or crashed ones resume from their\n"
           "last checkpoint (loupe train --resume), the others start. The config file must\n"
           "still hold the text the sweep recorded.\n\n"
           "options:\n"
           "  -j, --jobs J           trials trained at once (default 1)\n"
           "  --db PATH              runs database (overrides tracking.db)\n"
           "  --set KEY=VALUE        override a config field of every trial (repeatable)\n"
           "  --threads N            threads per trial (default: the cores divided by J)\n"
           "  --plugin PATH          load an op plugin (repeatable; passed to every trial;\n"
           "                         give it again with --resume)\n"
           "  --by SPLIT/METRIC      metric shown and ranked (default test/acc; lower is\n"
           "                         better for a loss)\n"
           "  --resume SWEEP         continue sweep run SWEEP\n"
           "  --dry-run              check the config and list the trials; train nothing\n"
           "  --json                 the final ranking as one JSON object on stdout: {\"sweep\",\n"
           "                         \"status\", \"by\", \"trials\": [{\"rank\", \"run_id\", \"trial\",\n"
           "                         \"params\", \"best\", \"final\", \"status\", ...}]}\n\n"
           "exit status: 0 every trial completed; 130 interrupted; 2 a config or usage\n"
           "error (before any trial runs); otherwise that of the first trial that failed in\n"
           "this invocation (5 for a NaN loss), or 1 (a crash, or failed earlier).\n"
           "See the trials with: loupe runs compare --sweep SWEEP\n");
}

/* ---- a metric named on the command line ---- */

typedef struct metric_name {
    char split[8];
    char name[64];
} metric_name;

static bool parse_metric(const char *s, metric_name *m)
{
    const char *slash = strchr(s, '/');
    if (!slash || !slash[1] || (size_t)(slash - s) >= sizeof m->split || strlen(slash + 1) >= sizeof m->name)
        return false;
    snprintf(m->split, sizeof m->split, "%.*s", (int)(slash - s), s);
    snprintf(m->name, sizeof m->name, "%s", slash + 1);
    return !strcmp(m->split, "train") || !strcmp(m->split, "val") || !strcmp(m->split, "test");
}

/* Accuracies as percentages, the rest with 4 significant digits; "-" when missing. */
static const char *metric_text(const metric_name *m, double v, char *buf, size_t size)
{
    if (isnan(v)) snprintf(buf, size, "-");
    else if (!strcmp(m->name, "acc")) snprintf(buf, size, "%.2f%%", 100 * v);
    else snprintf(buf, size, "%.4g", v);
    return buf;
}

/* ---- ranking the trials (shared with `loupe runs compare --sweep`) ---- */

static const metric_name *rank_metric;   /* qsort has no context argument */

static int by_best(const void *pa, const void *pb)
{
    const lp_sweep_child *a = pa, *b = pb;
    bool na = isnan(a->best_value), nb = isnan(b->best_value);
    if (na != nb) return na ? 1 : -1;
    if (!na && a->best_value != b->best_value) {
        bool lower = lp_sweep_metric_lower_is_better(rank_metric->name);
        return (a->best_value < b->best_value) == lower ? -1 : 1;
    }
    return a->trial - b->trial;
}

/* The swept keys a parent recorded ("sweep.keys": comma-separated), split in place. */
static int split_keys(char *list, char **keys, int max)
{
    int n = 0;
    for (char *p = list; p && *p && n < max;) {
        char *comma = strchr(p, ',');
        if (comma) *comma = '\0';
        keys[n++] = p;
        p = comma ? comma + 1 : NULL;
    }
    return n;
}

/* Column header of a swept key: its last segment, unless another key shares it. */
static const char *short_key(char **keys, int n, int i)
{
    const char *dot = strrchr(keys[i], '.');
    const char *last = dot ? dot + 1 : keys[i];
    for (int k = 0; k < n; k++) {
        if (k == i) continue;
        const char *d = strrchr(keys[k], '.');
        if (!strcmp(d ? d + 1 : keys[k], last)) return keys[i];
    }
    /* A list index alone ("units" of model.layers.1.units is fine, "1" is not). */
    return (*last >= '0' && *last <= '9') ? keys[i] : last;
}

static void json_str(const char *v)
{
    if (!v) {
        fputs("null", stdout);
        return;
    }
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p == '"' || *p == '\\') printf("\\%c", *p);
        else if (*p < 0x20) printf("\\u%04x", *p);
        else putchar(*p);
    }
    putchar('"');
}

static void json_num(double v)
{
    if (isfinite(v)) printf("%.17g", v);
    else fputs("null", stdout);
}

/* The ranking as one JSON object (--json). */
static void print_ranking_json(lp_runsdb *db, int64_t parent, const metric_name *m, const lp_sweep_child *c, int n,
                               char **keys, int nk, char **vals)
{
    lp_run_details d;
    lp_error ignored = {0};
    bool have = lp_runsdb_show(db, parent, &d, &ignored) == LP_OK;
    printf("{\"sweep\":%lld,\"status\":", (long long)parent);
    json_str(have ? d.run.status : NULL);
    printf(",\"by\":\"%s/%s\",\"lower_is_better\":%s,\"trials\":[", m->split, m->name,
           lp_sweep_metric_lower_is_better(m->name) ? "true" : "false");
    for (int i = 0; i < n; i++) {
        printf("%s{\"rank\":%d,\"run_id\":%lld,\"trial\":%d,\"params\":{", i ? "," : "", i + 1,
               (long long)c[i].run_id, c[i].trial);
        for (int k = 0; k < nk; k++) {
            printf("%s", k ? "," : "");
            json_str(keys[k]);
            putchar(':');
            json_str(vals[i * nk + k]);
        }
        printf("},\"best\":");
        json_num(c[i].best_value);
        printf(",\"final\":");
        json_num(c[i].final_value);
        printf(",\"status\":");
        json_str(c[i].status);
        printf(",\"epochs\":%d,\"duration_s\":", c[i].epochs_done);
        json_num(c[i].duration_s);
        printf(",\"error\":");
        json_str(c[i].error);
        putchar('}');
    }
    printf("]}\n");
    if (have) lp_run_details_free(&d);
}

/* Print sweep parent's trials on stdout, best first by metric m, with the swept
 * settings of each, then the errors of those that did not complete (or all of it
 * as one JSON object). */
static lp_status print_ranking(lp_runsdb *db, int64_t parent, const metric_name *m, bool json, lp_error *err)
{
    lp_sweep_child *c = NULL;
    int n = 0;
    char *keylist = NULL;
    lp_status s = lp_sweeps_children(db, parent, m->split, m->name, &c, &n, err);
    if (!s) s = lp_sweeps_param(db, parent, "sweep.keys", &keylist, err);
    if (s) {
        lp_sweep_children_free(c, n);
        return s;
    }
    char *keys[LP_SWEEP_MAX_PARAMS];
    int nk = split_keys(keylist, keys, LP_SWEEP_MAX_PARAMS);
    int width[LP_SWEEP_MAX_PARAMS];
    char **vals = calloc((size_t)(n * (nk ? nk : 1)) + 1, sizeof *vals);
    if (!vals) s = lp_error_set(err, LP_ERR_NOMEM, "out of memory");
    rank_metric = m;
    if (!s) qsort(c, (size_t)n, sizeof *c, by_best);
    for (int k = 0; !s && k < nk; k++) {
        width[k] = (int)strlen(short_key(keys, nk, k));
        for (int i = 0; !s && i < n; i++) {
            s = lp_sweeps_param(db, c[i].run_id, keys[k], &vals[i * nk + k], err);
            int w = vals[i * nk + k] ? (int)strlen(vals[i * nk + k]) : 1;
            if (w > width[k]) width[k] = w;
        }
        if (width[k] > 24) width[k] = 24;
    }
    if (!s && json) {
        print_ranking_json(db, parent, m, c, n, keys, nk, vals);
    } else if (!s) {
        char by[80];
        snprintf(by, sizeof by, "%s/%s", m->split, m->name);
        printf("%4s %6s %5s", "rank", "run", "trial");
        for (int k = 0; k < nk; k++) printf("  %-*s", width[k], short_key(keys, nk, k));
        printf("  %10s %10s  %-11s %6s %8s\n", "best", "final", "status", "epochs", "seconds");
        for (int i = 0; i < n; i++) {
            char b1[32], b2[32];
            printf("%4d %6lld %5d", i + 1, (long long)c[i].run_id, c[i].trial);
            for (int k = 0; k < nk; k++) {
                const char *v = vals[i * nk + k];
                printf("  %-*.*s", width[k], width[k], v ? v : "-");
            }
            printf("  %10s %10s  %-11s %6d %8.1f\n", metric_text(m, c[i].best_value, b1, sizeof b1),
                   metric_text(m, c[i].final_value, b2, sizeof b2), c[i].status, c[i].epochs_done,
                   isnan(c[i].duration_s) ? 0 : c[i].duration_s);
        }
        if (n == 0) printf("(no trials recorded yet)\n");
        printf("(ranked by the best %s of each trial; %s is better)\n", by,
               lp_sweep_metric_lower_is_better(m->name) ? "lower" : "higher");
        for (int i = 0; i < n; i++)
            if (c[i].error && strcmp(c[i].status, "completed"))
                printf("trial %d (run %lld) %s: %s\n", c[i].trial, (long long)c[i].run_id, c[i].status, c[i].error);
    }
    for (int i = 0; vals && i < n * nk; i++) free(vals[i]);
    free(vals);
    free(keylist);
    lp_sweep_children_free(c, n);
    return s;
}

int cli_runs_compare_sweep(int argc, char **argv)
{
    cli_common c = {0};
    long long parent = 0;
    metric_name m = {"test", "acc"};
    for (int i = 2; i < argc; i++) {
        int r = cli_common_option("runs compare", argc, argv, &i, &c);
        if (r < 0) return 2;
        if (r == 1) continue;
        if (!strcmp(argv[i], "--sweep") && i + 1 < argc) {
            if (!cli_parse_int(argv[++i], 1, INT64_MAX, &parent))
                return cli_usage_error("runs", "--sweep expects a run id, got '%s'", argv[i]);
        } else if (!strcmp(argv[i], "--by") && i + 1 < argc) {
            if (!parse_metric(argv[++i], &m))
                return cli_usage_error("runs", "--by expects SPLIT/METRIC (split train, val or test), e.g. "
                                       "test/acc, got '%s'", argv[i]);
        } else {
            return cli_usage_error("runs", "compare --sweep: unexpected argument '%s'", argv[i]);
        }
    }
    if (!parent) return cli_usage_error("runs", "compare --sweep takes a sweep's run id");
    lp_error err = {0};
    lp_runsdb *db = NULL;
    lp_status s = lp_runsdb_open_readonly(c.db ? c.db : "runs.db", &db, &err);
    if (!s) s = print_ranking(db, parent, &m, c.json, &err);
    lp_runsdb_close(db);
    return s ? cli_fail(&err) : 0;
}

/* ---- arguments ---- */

typedef struct sweep_args {
    cli_common c;
    const char *config;
    long long resume;
    int jobs;
    bool dry_run;
    metric_name by;
} sweep_args;

static int parse_args(int argc, char **argv, sweep_args *a)
{
    memset(a, 0, sizeof *a);
    a->jobs = 1;
    snprintf(a->by.split, sizeof a->by.split, "test");
    snprintf(a->by.name, sizeof a->by.name, "acc");
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (cli_is_help(s)) { usage(); return -1; }
        int r = cli_common_option("sweep", argc, argv, &i, &a->c);
        if (r < 0) return 2;
        if (r == 1) continue;
        long long v;
        if (!strcmp(s, "--dry-run")) a->dry_run = true;
        else if ((!strcmp(s, "-j") || !strcmp(s, "--jobs")) && i + 1 < argc) {
            if (!cli_parse_int(argv[++i], 1, MAX_JOBS, &v))
                return cli_usage_error("sweep", "%s expects a number of trials from 1 to %d, got '%s'", s, MAX_JOBS,
                                       argv[i]);
            a->jobs = (int)v;
        } else if (!strncmp(s, "-j", 2) && s[2]) {
            if (!cli_parse_int(s + 2, 1, MAX_JOBS, &v))
                return cli_usage_error("sweep", "-j expects a number from 1 to %d, got '%s'", MAX_JOBS, s + 2);
            a->jobs = (int)v;
        } else if (!strcmp(s, "--resume") && i + 1 < argc) {
            if (!cli_parse_int(argv[++i], 1, INT64_MAX, &a->resume))
                return cli_usage_error("sweep", "--resume expects a sweep's run id, got '%s'", argv[i]);
        } else if (!strcmp(s, "--by") && i + 1 < argc) {
            if (!parse_metric(argv[++i], &a->by))
                return cli_usage_error("sweep", "--by expects SPLIT/METRIC (split train, val or test), e.g. test/acc, "
                                       "got '%s'", argv[i]);
        } else if (s[0] == '-') return cli_usage_error("sweep", "unknown option '%s'", s);
        else if (a->config) return cli_usage_error("sweep", "one config at a time ('%s' and '%s')", a->config, s);
        else a->config = s;
    }
    if (!a->config == !a->resume) return cli_usage_error("sweep", "give a CONFIG.yaml or --resume SWEEP (one of them)");
    if (a->resume && a->c.n_sets)
        return cli_usage_error("sweep", "--set cannot change a sweep being resumed (it keeps the overrides it "
                               "started with)");
    if (a->resume && a->dry_run) return cli_usage_error("sweep", "--dry-run is for a new sweep");
    return 0;
}

/* ---- the plan: base config, spec, trials ---- */

typedef struct plan {
    lp_experiment_config cfg;      /* the base config (with the base --set) */
    bool cfg_loaded;
    lp_sweep_spec spec;
    lp_sweep_trial *trials;
    int n;
    const char **base_sets;        /* the --set applied to every trial */
    int n_base;
    char **owned;                  /* base sets read back from the database (resume) */
    const char *path;              /* the config file */
    char *path_owned;
    const char *db_path;
    int64_t parent;
} plan;

static void plan_free(plan *p)
{
    lp_sweep_trials_free(p->trials, p->n);
    lp_sweep_spec_free(&p->spec);
    if (p->cfg_loaded) lp_config_free(&p->cfg);
    for (int i = 0; p->owned && i < p->n_base; i++) free(p->owned[i]);
    free(p->owned);
    if (p->owned) free(p->base_sets);
    free(p->path_owned);
}

/* Load path with the base sets, read its sweep and expand and check every trial. */
static lp_status plan_load(plan *p, lp_error *err)
{
    lp_status s = lp_config_load(p->path, p->base_sets, p->n_base, &p->cfg, err);
    p->cfg_loaded = s == LP_OK;
    if (!s && !p->cfg.sweep)
        s = lp_error_set(err, LP_ERR_CONFIG, "%s: no `sweep:` section (docs/configs.md, \"sweep\"); train one config "
                         "with `loupe train %s`", p->path, p->path);
    /* The ops of the config's plugins, so every trial's graph can be built below. */
    for (int i = 0; !s && i < p->cfg.n_plugins; i++) {
        s = lp_plugin_load(p->cfg.plugin_paths[i], err);
        if (s) s = cli_blame_key(&p->cfg, "plugins", err);
    }
    if (!s) s = lp_sweep_spec_read(p->cfg.sweep, &p->spec, err);
    if (!s) s = lp_sweep_expand(&p->spec, &p->trials, &p->n, err);
    if (!s) s = lp_sweep_check_trials(&p->cfg, p->base_sets, p->n_base, &p->spec, p->trials, p->n, err);
    return s;
}

static void print_trial_values(FILE *f, const lp_sweep_trial *t)
{
    for (int i = 0; i < t->n; i++) fprintf(f, "%s%s", i ? " " : "", t->sets[i]);
}

/* ---- the parent run ---- */

static lp_status begin_parent(plan *p, const sweep_args *a, lp_runsdb *db, lp_error *err)
{
    enum { FIXED = 6 };
    int n = FIXED + p->n_base;
    const char **keys = calloc((size_t)n, sizeof *keys), **values = calloc((size_t)n, sizeof *values);
    char (*setkeys)[24] = calloc((size_t)p->n_base + 1, sizeof *setkeys);
    char trials[16], jobs[16], seed[24];
    size_t klen = 1;
    for (int i = 0; i < p->spec.n_params; i++) klen += strlen(p->spec.params[i].key) + 1;
    char *keylist = calloc(klen, 1);
    lp_status s = (keys && values && setkeys && keylist) ? LP_OK : lp_error_set(err, LP_ERR_NOMEM, "out of memory");
    if (!s) {
        for (int i = 0; i < p->spec.n_params; i++) {
            if (i) strcat(keylist, ",");
            strcat(keylist, p->spec.params[i].key);
        }
        snprintf(trials, sizeof trials, "%d", p->n);
        snprintf(jobs, sizeof jobs, "%d", a->jobs);
        snprintf(seed, sizeof seed, "%llu", (unsigned long long)p->spec.seed);
        const char *k[FIXED] = {"config.path", "sweep.mode", "sweep.trials", "sweep.keys", "sweep.jobs", "sweep.seed"};
        const char *v[FIXED] = {p->path, lp_sweep_mode_name(p->spec.mode), trials, keylist, jobs, seed};
        int m = p->spec.mode == LP_SWEEP_RANDOM ? FIXED : FIXED - 1;
        for (int i = 0; i < m; i++) {
            keys[i] = k[i];
            values[i] = v[i];
        }
        for (int i = 0; i < p->n_base; i++) {
            snprintf(setkeys[i], sizeof setkeys[i], "sweep.set.%d", i + 1);
            keys[m + i] = setkeys[i];
            values[m + i] = p->base_sets[i];
        }
        /* The file's own text: a resume checks the file still holds it. */
        lp_run_new run = {.name = p->cfg.name, .config_yaml = p->cfg.yaml_text, .seed = p->cfg.train.seed,
                          .threads = a->c.threads, .n_params = m + p->n_base, .keys = keys, .values = values,
                          .kind = "sweep"};
        s = lp_runsdb_begin_run(db, &run, &p->parent, err);
    }
    free(keys);
    free(values);
    free(setkeys);
    free(keylist);
    return s;
}

/* --resume: the parent's recorded path and base sets; the file must be unchanged. */
static lp_status plan_from_parent(plan *p, lp_runsdb *db, int64_t parent, lp_error *err)
{
    lp_run_details d;
    lp_status s = lp_runsdb_show(db, parent, &d, err);
    if (s) return s;
    p->parent = parent;
    if (!d.kind || strcmp(d.kind, "sweep"))
        s = lp_error_set(err, LP_ERR_ARG, "run %lld is not a sweep (a trial of sweep %lld?); resume a training run "
                         "with `loupe train --resume %lld`", (long long)parent, (long long)d.parent_run_id,
                         (long long)parent);
    int n_sets = 0;
    for (int i = 0; !s && i < d.n_params; i++) {
        if (!strcmp(d.keys[i], "config.path") && !(p->path = p->path_owned = strdup(d.values[i])))
            s = lp_error_set(err, LP_ERR_NOMEM, "out of memory");
        n_sets += !strncmp(d.keys[i], "sweep.set.", 10);
    }
    if (!s && !p->path) s = lp_error_set(err, LP_ERR_DB, "sweep %lld has no config.path setting", (long long)parent);
    if (!s) {
        p->owned = calloc((size_t)n_sets + 1, sizeof *p->owned);
        p->base_sets = calloc((size_t)n_sets + 1, sizeof *p->base_sets);
        if (!p->owned || !p->base_sets) s = lp_error_set(err, LP_ERR_NOMEM, "out of memory");
    }
    for (int k = 1; !s && k <= n_sets; k++) {
        char key[32];
        snprintf(key, sizeof key, "sweep.set.%d", k);
        for (int i = 0; i < d.n_params; i++)
            if (!strcmp(d.keys[i], key)) p->owned[p->n_base] = strdup(d.values[i]);
        if (!p->owned[p->n_base]) s = lp_error_set(err, LP_ERR_DB, "sweep %lld lacks setting %s", (long long)parent, key);
        else p->base_sets[p->n_base] = p->owned[p->n_base];
        if (!s) p->n_base++;
    }
    /* The file first: a changed file is reported as changed, whatever it now says. */
    char *text = NULL;
    size_t len = 0;
    if (!s) s = lp_yaml_read_text(p->path, LP_YAML_MAX_FILE, &text, &len, err);
    if (!s && (len != strlen(d.config_yaml) || memcmp(text, d.config_yaml, len)))
        s = lp_error_set(err, LP_ERR_CONFIG, "%s has changed since sweep %lld started: its trials must train the "
                         "config it recorded (shown by `loupe runs show %lld`); restore the file, or start a new "
                         "sweep", p->path, (long long)parent, (long long)parent);
    free(text);
    if (!s) s = plan_load(p, err);
    if (s == LP_ERR_IO && p->path[0] != '/') {
        char msg[LP_ERROR_MSG_MAX];
        snprintf(msg, sizeof msg, "%s", err->msg);
        lp_error_clear(err);
        lp_error_set(err, LP_ERR_IO, "%s (sweep %lld recorded its config path as given: resume it from the directory "
                     "it was started in)", msg, (long long)parent);
    }
    char *recorded = NULL;
    if (!s) s = lp_sweeps_param(db, parent, "sweep.trials", &recorded, err);
    if (!s && (!recorded || atoi(recorded) != p->n))
        s = lp_error_set(err, LP_ERR_DB, "sweep %lld recorded %s trials, its config now gives %d", (long long)parent,
                         recorded ? recorded : "no number of", p->n);
    free(recorded);
    lp_run_details_free(&d);
    return s;
}

/* ---- trial processes ---- */

static volatile sig_atomic_t stop_requested;
static void on_signal(int sig) { (void)sig; stop_requested = 1; }

typedef struct slot {
    pid_t pid;
    int trial;                 /* index into plan trials */
    FILE *log;                 /* the child's stderr (an unlinked temp file) */
    double t0;
} slot;

/* What became of each trial in this invocation. */
typedef struct outcome {
    bool ran;
    int exit_code;
} outcome;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* fork + exec `loupe train` for trial t (or --resume run); 0 and *pid, or an error. */
static lp_status launch(const plan *p, const sweep_args *a, const char *self, int t, int64_t resume_run, int threads,
                        slot *sl, lp_error *err)
{
    const lp_sweep_trial *tr = &p->trials[t];
    int max = 16 + 2 * (p->n_base + tr->n + a->c.n_plugins);
    const char **argv = calloc((size_t)max, sizeof *argv);
    if (!argv) return lp_error_set(err, LP_ERR_NOMEM, "out of memory");
    char run[24], parent[24], trial[16], thr[16];
    int n = 0;
    argv[n++] = self;
    argv[n++] = "train";
    if (resume_run) {
        snprintf(run, sizeof run, "%lld", (long long)resume_run);
        argv[n++] = "--resume";
        argv[n++] = run;
    } else {
        argv[n++] = p->path;
        for (int i = 0; i < p->n_base; i++) {
            argv[n++] = "--set";
            argv[n++] = p->base_sets[i];
        }
        for (int i = 0; i < tr->n; i++) {
            argv[n++] = "--set";
            argv[n++] = tr->sets[i];
        }
        snprintf(parent, sizeof parent, "%lld", (long long)p->parent);
        snprintf(trial, sizeof trial, "%d", tr->number);
        argv[n++] = "--parent-run";
        argv[n++] = parent;
        argv[n++] = "--sweep-trial";
        argv[n++] = trial;
    }
    for (int i = 0; i < a->c.n_plugins; i++) {
        argv[n++] = "--plugin";
        argv[n++] = a->c.plugins[i];
    }
    argv[n++] = "--db";
    argv[n++] = p->db_path;
    if (threads > 0) {
        snprintf(thr, sizeof thr, "%d", threads);
        argv[n++] = "--threads";
        argv[n++] = thr;
    }
    argv[n++] = "--quiet";
    argv[n] = NULL;

    sl->log = tmpfile();
    /* Only this trial's process gets it (dup2 onto its stderr clears the flag). */
    if (sl->log) fcntl(fileno(sl->log), F_SETFD, FD_CLOEXEC);
    if (!sl->log) {
        free(argv);
        return lp_error_set(err, LP_ERR_IO, "cannot create a temporary file for trial %d's messages: %s", tr->number,
                            strerror(errno));
    }
    fflush(stdout);
    fflush(stderr);
    pid_t me = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        /* The trial stops (SIGTERM: 'interrupted', resumable) if the sweep dies. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != me) _exit(130);
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) dup2(devnull, STDOUT_FILENO);
        dup2(fileno(sl->log), STDERR_FILENO);
        execv(self, (char *const *)argv);
        fprintf(stderr, "loupe sweep: cannot run %s: %s\n", self, strerror(errno));
        _exit(127);
    }
    free(argv);
    if (pid < 0) {
        fclose(sl->log);
        sl->log = NULL;
        return lp_error_set(err, LP_ERR_IO, "cannot start trial %d: fork: %s", tr->number, strerror(errno));
    }
    sl->pid = pid;
    sl->trial = t;
    sl->t0 = now_s();
    return LP_OK;
}

/* The last non-empty line a trial wrote on stderr, into buf. */
static void last_line(FILE *f, char *buf, size_t size)
{
    buf[0] = '\0';
    if (!f || fseek(f, 0, SEEK_SET) != 0) return;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (line[0]) snprintf(buf, size, "%.*s", (int)size - 1, line);
    }
}

static const char *signal_name(int sig)
{
    const char *s = strsignal(sig);
    return s ? s : "?";
}

/* A trial process ended: make its run row tell the truth, print what became of it. */
static void trial_ended(const plan *p, lp_runsdb *db, const metric_name *m, slot *sl, int wstatus, outcome *out)
{
    const lp_sweep_trial *tr = &p->trials[sl->trial];
    char why[600] = "", line[512];
    last_line(sl->log, line, sizeof line);
    fclose(sl->log);
    sl->log = NULL;
    int code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 1;
    if (WIFSIGNALED(wstatus))
        snprintf(why, sizeof why, "its process was killed by signal %d (%s)", WTERMSIG(wstatus),
                 signal_name(WTERMSIG(wstatus)));
    else if (code != 0)
        snprintf(why, sizeof why, "exit status %d%s%s", code, line[0] ? ": " : "", line);
    out[sl->trial].ran = true;
    out[sl->trial].exit_code = code;

    lp_error err = {0};
    lp_sweep_child c;
    bool found = false;
    lp_status s = lp_sweeps_child(db, p->parent, tr->number, m->split, m->name, &c, &found, &err);
    if (!s && found && !strcmp(c.status, "running") && c.pid == (long long)sl->pid) {
        /* Our process is gone without closing its run (SIGKILL, a segfault): say so
         * now. A run still held by another live process (not ours) is left alone. */
        s = lp_sweeps_mark_crashed(db, c.run_id, why[0] ? why : "its process ended without closing the run", &err);
        free(c.status);
        free(c.error);
        if (!s) s = lp_sweeps_child(db, p->parent, tr->number, m->split, m->name, &c, &found, &err);
    }
    double secs = now_s() - sl->t0;
    if (s) {
        fprintf(stderr, "[%d/%d] ended (exit %d); cannot read its run: %s\n", tr->number, p->n, code, err.msg);
        return;
    }
    if (!found) {
        fprintf(stderr, "[%d/%d] failed before its run was recorded: %s\n", tr->number, p->n,
                why[0] ? why : "no message");
        return;
    }
    char b1[32], b2[32];
    if (!strcmp(c.status, "completed"))
        fprintf(stderr, "[%d/%d] completed: run %lld, %s/%s %s (best %s), %d epoch%s, %.1f s\n", tr->number, p->n,
                (long long)c.run_id, m->split, m->name, metric_text(m, c.final_value, b1, sizeof b1),
                metric_text(m, c.best_value, b2, sizeof b2), c.epochs_done, c.epochs_done == 1 ? "" : "s", secs);
    else
        fprintf(stderr, "[%d/%d] %s: run %lld after %d epoch%s: %s\n", tr->number, p->n, c.status,
                (long long)c.run_id, c.epochs_done, c.epochs_done == 1 ? "" : "s",
                c.error ? c.error : why[0] ? why : "no message");
    free(c.status);
    free(c.error);
}

/* A trial's run still 'running' under a live process (a sweep killed a moment
 * ago: its trials are stopping): wait up to 30 s for it to let go. */
static void wait_for_trial_process(lp_runsdb *db, const plan *p, const metric_name *m, int trial)
{
    for (int k = 0; k < 300 && !stop_requested; k++) {
        lp_sweep_child c;
        bool found;
        lp_error err = {0};
        if (lp_sweeps_child(db, p->parent, trial, m->split, m->name, &c, &found, &err) || !found) return;
        bool busy = !strcmp(c.status, "running") && c.pid > 0 && lp_proc_alive((long)c.pid, c.proc_start);
        free(c.status);
        free(c.error);
        if (!busy) return;
        if (k == 0) fprintf(stderr, "[%d/%d] waiting for process %lld to stop training it\n", trial, p->n, c.pid);
        usleep(100000);
    }
}

/* Run every trial not yet finished, J at a time. Returns false if interrupted. */
static bool run_trials(plan *p, const sweep_args *a, lp_runsdb *db, const char *self, outcome *out)
{
    int threads = a->c.threads;
    if (!threads && a->jobs > 1) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cores / a->jobs > 1 ? (int)(cores / a->jobs) : 1;
    }
    slot *slots = calloc((size_t)a->jobs, sizeof *slots);
    if (!slots) {
        for (int t = 0; t < p->n; t++) out[t] = (outcome){true, 1};
        fprintf(stderr, "loupe sweep: out of memory\n");
        return true;
    }
    int running = 0, next = 0;
    bool forwarded = false;
    for (;;) {
        while (!stop_requested && running < a->jobs && next < p->n) {
            int t = next++;
            const lp_sweep_trial *tr = &p->trials[t];
            lp_sweep_child c;
            bool found = false;
            lp_error err = {0};
            if (lp_sweeps_child(db, p->parent, tr->number, a->by.split, a->by.name, &c, &found, &err)) {
                fprintf(stderr, "[%d/%d] not started: %s\n", tr->number, p->n, err.msg);
                out[t].ran = true;
                out[t].exit_code = lp_status_exit_code(err.status);
                continue;
            }
            int64_t resume = 0;
            if (found) {
                bool done = !strcmp(c.status, "completed") || !strcmp(c.status, "failed");
                resume = done ? 0 : c.run_id;
                if (done) fprintf(stderr, "[%d/%d] already %s (run %lld): kept\n", tr->number, p->n, c.status,
                                  (long long)c.run_id);
                free(c.status);
                free(c.error);
                if (done) continue;
                wait_for_trial_process(db, p, &a->by, tr->number);
            }
            slot *sl = NULL;
            for (int i = 0; i < a->jobs && !sl; i++)
                if (!slots[i].pid) sl = &slots[i];
            if (launch(p, a, self, t, resume, threads, sl, &err)) {
                fprintf(stderr, "[%d/%d] not started: %s\n", tr->number, p->n, err.msg);
                out[t].ran = true;
                out[t].exit_code = lp_status_exit_code(err.status);
                continue;
            }
            running++;
            if (resume) fprintf(stderr, "[%d/%d] resuming run %lld\n", tr->number, p->n, (long long)resume);
            else {
                fprintf(stderr, "[%d/%d] started: ", tr->number, p->n);
                print_trial_values(stderr, tr);
                fputc('\n', stderr);
            }
        }
        if (running == 0) break;
        int wstatus;
        pid_t pid = waitpid(-1, &wstatus, 0);
        if (pid < 0) {
            if (errno != EINTR) break;
            /* Ctrl-C reached the trials too (one process group); a SIGTERM to the
             * sweep alone is passed on, so every trial stops at a clean point. */
            if (stop_requested && !forwarded) {
                for (int i = 0; i < a->jobs; i++)
                    if (slots[i].pid) kill(slots[i].pid, SIGTERM);
                forwarded = true;
            }
            continue;
        }
        for (int i = 0; i < a->jobs; i++)
            if (slots[i].pid == pid) {
                trial_ended(p, db, &a->by, &slots[i], wstatus, out);
                slots[i].pid = 0;
                running--;
            }
    }
    free(slots);
    return !stop_requested;
}

/* ---- the end: the parent's status and the summary ---- */

static int finish(plan *p, lp_runsdb *db, const sweep_args *a, bool interrupted, const outcome *out)
{
    lp_error err = {0};
    lp_sweep_child *c = NULL;
    int n = 0;
    lp_status s = lp_sweeps_children(db, p->parent, a->by.split, a->by.name, &c, &n, &err);
    if (s) return cli_fail(&err);
    int completed = 0, failed = 0, code = 0;
    char *why = NULL;
    size_t why_size = 0;
    FILE *w = open_memstream(&why, &why_size);
    for (int t = 0; t < p->n; t++) {
        const lp_sweep_child *ch = NULL;
        for (int i = 0; i < n; i++)
            if (c[i].trial == t + 1) ch = &c[i];
        if (ch && !strcmp(ch->status, "completed")) {
            completed++;
            continue;
        }
        if (!ch && !out[t].ran) continue;   /* never started (interrupted first) */
        if (ch && (!strcmp(ch->status, "running") || !strcmp(ch->status, "interrupted")) && interrupted) continue;
        failed++;
        if (!code) code = out[t].ran && out[t].exit_code ? out[t].exit_code : 1;
        if (w && failed <= 8) {
            if (ch)
                fprintf(w, "%strial %d (run %lld) %s: %.160s", failed > 1 ? "; " : "", t + 1, (long long)ch->run_id,
                        ch->status, ch->error ? ch->error : "no message");
            else
                fprintf(w, "%strial %d failed before its run was recorded", failed > 1 ? "; " : "", t + 1);
        } else if (w && failed == 9) {
            fprintf(w, "; ...");
        }
    }
    if (w) fclose(w);
    char error[2048] = "", reason[160];
    if (failed) snprintf(error, sizeof error, "%d of %d trials did not complete: %s", failed, p->n, why ? why : "");
    free(why);
    lp_run_status status = interrupted ? LP_RUN_INTERRUPTED : failed ? LP_RUN_FAILED : LP_RUN_COMPLETED;
    if (!interrupted && completed + failed < p->n) status = LP_RUN_FAILED;
    snprintf(reason, sizeof reason, "trials: %d completed, %d failed, %d not finished", completed, failed,
             p->n - completed - failed);
    s = lp_runsdb_set_stop_reason(db, p->parent, reason, &err);
    if (!s) s = lp_runsdb_finish_run(db, p->parent, status, failed ? error : NULL, &err);
    if (!a->c.json) printf("\n");
    if (!s) s = print_ranking(db, p->parent, &a->by, a->c.json, &err);
    lp_sweep_children_free(c, n);
    if (s) return cli_fail(&err);
    if (!a->c.json) printf("sweep %lld %s: %s\n", (long long)p->parent, lp_run_status_name(status), reason);
    if (interrupted) {
        fprintf(stderr, "loupe: sweep %lld interrupted; continue with: loupe sweep --resume %lld --db %s\n",
                (long long)p->parent, (long long)p->parent, p->db_path);
        return 130;
    }
    return failed ? code : 0;
}

int cli_sweep(int argc, char **argv)
{
    sweep_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc < 0 ? 0 : rc;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;   /* no SA_RESTART: waitpid returns to pass SIGTERM on */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    plan p;
    memset(&p, 0, sizeof p);
    lp_error err = {0};
    lp_runsdb *db = NULL;
    lp_status s = LP_OK;
    /* Trials run this very binary: `loupe train` of the same build. */
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0) s = lp_error_set(&err, LP_ERR_IO, "cannot find its own executable (/proc/self/exe): %s", strerror(errno));
    else self[len] = '\0';
    if (s) {
        /* reported below */
    } else if (a.resume) {
        p.db_path = a.c.db ? a.c.db : "runs.db";
        s = lp_runsdb_open(p.db_path, &db, &err);
        lp_run_details d;
        if (!s && !(s = lp_runsdb_show(db, a.resume, &d, &err))) {
            bool done = d.kind && !strcmp(d.kind, "sweep") && !strcmp(d.run.status, "completed");
            lp_run_details_free(&d);
            if (done) {
                if (!a.c.json) printf("sweep %lld is already completed\n\n", a.resume);
                s = print_ranking(db, a.resume, &a.by, a.c.json, &err);
                lp_runsdb_close(db);
                return s ? cli_fail(&err) : 0;
            }
        }
        if (!s) s = plan_from_parent(&p, db, a.resume, &err);
        if (!s) s = lp_runsdb_resume_run(db, p.parent, 0, &err);
    } else {
        p.path = a.config;
        p.base_sets = a.c.sets;
        p.n_base = a.c.n_sets;
        s = cli_load_plugins(&a.c, &err);
        if (!s) s = plan_load(&p, &err);
        if (!s && a.dry_run) {
            printf("%s: %s sweep of %d trial%s, every config checked\n", p.path, lp_sweep_mode_name(p.spec.mode), p.n,
                   p.n == 1 ? "" : "s");
            for (int t = 0; t < p.n; t++) {
                printf("  trial %d: ", t + 1);
                print_trial_values(stdout, &p.trials[t]);
                printf("\n");
            }
            plan_free(&p);
            return 0;
        }
        p.db_path = a.c.db ? a.c.db : p.cfg_loaded ? p.cfg.tracking.db : "runs.db";
        if (!s) {
            s = lp_runsdb_open(p.db_path, &db, &err);
            if (s && !a.c.db) s = cli_blame_key(&p.cfg, "tracking.db", &err);
        }
        if (!s && stop_requested) s = lp_error_set(&err, LP_ERR_INTERRUPTED, "interrupted before the sweep started");
        if (!s) s = begin_parent(&p, &a, db, &err);
    }
    if (s) {
        int code = cli_fail(&err);
        lp_runsdb_close(db);
        plan_free(&p);
        return code;
    }
    fprintf(stderr, "sweep %lld: %s, %s of %d trial%s over %d key%s, %d at a time, db %s\n", (long long)p.parent,
            p.cfg.name, lp_sweep_mode_name(p.spec.mode), p.n, p.n == 1 ? "" : "s", p.spec.n_params,
            p.spec.n_params == 1 ? "" : "s", a.jobs, p.db_path);
    lp_heartbeat *hb = NULL;
    lp_error hb_err = {0};
    if (lp_heartbeat_start(p.db_path, p.parent, &hb, &hb_err) != LP_OK)
        fprintf(stderr, "loupe: warning: no heartbeat for sweep %lld: %s\n", (long long)p.parent, hb_err.msg);
    outcome *out = calloc((size_t)p.n, sizeof *out);
    bool whole = out && run_trials(&p, &a, db, self, out);
    lp_heartbeat_stop(hb);
    int code = out ? finish(&p, db, &a, !whole, out) : 1;
    free(out);
    lp_runsdb_close(db);
    plan_free(&p);
    return code;
}
