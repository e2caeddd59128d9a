/* cli.h - the `loupe` command: one function per subcommand, shared helpers.
 *
 * Exit codes (lp_status_exit_code): 0 ok, 1 internal/OOM, 2 usage/config/shape/
 * plugin, 3 data or I/O, 4 database, 5 NaN/Inf loss, 130 interrupted.
 */
#ifndef LP_CLI_H
#define LP_CLI_H

#include "config.h"
#include "dataset.h"
#include "error.h"
#include "graph.h"
#include <stdbool.h>
#include <stdint.h>

int cli_train(int argc, char **argv);
int cli_eval(int argc, char **argv);
int cli_predict(int argc, char **argv);
int cli_summary(int argc, char **argv);
int cli_runs(int argc, char **argv);
int cli_export(int argc, char **argv);
int cli_ops(int argc, char **argv);
int cli_gradcheck(int argc, char **argv);
int cli_data(int argc, char **argv);
int cli_bench(int argc, char **argv);
int cli_rerun(int argc, char **argv);
int cli_viz(int argc, char **argv);
int cli_report(int argc, char **argv);
int cli_sweep(int argc, char **argv);
/* `loupe runs compare --sweep SWEEP [--by SPLIT/METRIC]` (cli_sweep.c). */
int cli_runs_compare_sweep(int argc, char **argv);
/* `loupe viz curves` (argv[0] = "curves"): dispatched by `loupe viz`. */
int cli_viz_curves(int argc, char **argv);

/* `loupe rerun`: train a new run from a recorded config text, as `loupe train`
 * would (recorded in db with run.rerun_of = original). Returns the exit code;
 * *run_out receives the new run's id once it is recorded (0 before). */
typedef struct cli_rerun_request {
    const char *db;
    const char *config_yaml, *config_name;
    int threads;
    int64_t original;
    bool quiet;
} cli_rerun_request;
int cli_train_rerun(const cli_rerun_request *r, int64_t *run_out);

/* Print "loupe: <status name>: <message>" on stderr; return the exit code. */
int cli_fail(const lp_error *err);
/* Print a usage error and a pointer to --help; returns 2. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool cli_is_help(const char *arg);

/* The config's data: the test set, and the training set too when train is not NULL,
 * normalised as configured. A model.input that does not fit the images is a config
 * error at model.input's file:line:col. On failure nothing is left loaded. */
lp_status cli_load_data(const lp_experiment_config *cfg, lp_dataset *train, lp_dataset *test, lp_error *err);
/* If err holds an error and the config file sets `dotted` (e.g. "data.dir"), prefix
 * the message with that value's file:line:col and the key: the failure was caused by
 * what is written there. Returns err's status (LP_OK when there is none). */
lp_status cli_blame_key(const lp_experiment_config *cfg, const char *dotted, lp_error *err);
/* 27562 -> "27,562" (summary, report). */
const char *cli_with_commas(long long v, char *buf, size_t size);
/* Parse a whole decimal integer in [lo, hi]; false if it is not one. */
bool cli_parse_int(const char *s, long long lo, long long hi, long long *out);

/* Options most commands share. */
#define CLI_MAX_LIST 64
typedef struct cli_common {
    const char *sets[CLI_MAX_LIST];    /* --set k=v */
    int n_sets;
    const char *plugins[CLI_MAX_LIST]; /* --plugin PATH */
    int n_plugins;
    const char *db;                    /* --db PATH */
    int threads;                       /* --threads N (0: config / all cores) */
    bool json;                         /* --json */
} cli_common;

/* If argv[*i] is a shared option, consume it (and its value) and return 1; 0 if
 * not one; -1 on a malformed one (message printed). */
int cli_common_option(const char *cmd, int argc, char **argv, int *i, cli_common *c);

/* Load the plugins a config names, then build its graph. */
lp_status cli_build_from_config(lp_experiment_config *cfg, lp_graph **g, lp_error *err);

/* A trained model of a recorded run: its config (as recorded, with c->sets applied)
 * and graph with the weights of checkpoint `which` (best | last | EPOCH) restored.
 * The caller loads --plugin paths first (cli_load_plugins). Shared by eval, predict,
 * export, viz and report. */
typedef struct cli_model {
    lp_experiment_config cfg;
    bool cfg_loaded;
    lp_graph *graph;
    int epoch;                /* checkpoint epoch, 0 when from a file */
} cli_model;
lp_status cli_load_run_model(const cli_common *c, int64_t run, const char *which, cli_model *m, lp_error *err);
void cli_free_model(cli_model *m);

/* Load --plugin paths; LP_OK or the first failure. */
lp_status cli_load_plugins(const cli_common *c, lp_error *err);

#endif
