/* sweep.h - a hyper-parameter sweep: the `sweep:` section of an experiment YAML
 * read into a spec, expanded into trials, and every trial's config checked.
 *
 *   lp_sweep_spec spec;
 *   lp_sweep_spec_read(cfg.sweep, &spec, &err);          // grid or random, checked
 *   lp_sweep_trial *trials; int n;
 *   lp_sweep_expand(&spec, &trials, &n, &err);           // pure: same spec, same trials
 *   lp_sweep_check_trials(&cfg, sets, n_sets, &spec, trials, n, &err);
 *   ... trials[i].sets are `--set` strings for `loupe train` ...
 *   lp_sweep_trials_free(trials, n); lp_sweep_spec_free(&spec);
 *
 * Syntax (docs/configs.md, "sweep"):
 *   sweep:
 *     grid: {train.optimizer.lr: [0.01, 0.05], train.batch_size: [32, 64]}
 * or
 *   sweep:
 *     random:
 *       trials: 8
 *       seed: 3
 *       space:
 *         train.optimizer.lr: {log_uniform: [1.0e-3, 1.0e-1]}
 *         train.optimizer.momentum: {uniform: [0.8, 0.99]}
 *         model.layers.1.units: {int: [32, 256]}
 *         train.batch_size: {choice: [32, 64, 128]}      # or just [32, 64, 128]
 *
 * Keys are config paths exactly as `--set` takes them. Grid order: the first key
 * varies slowest (nested loops in the order written). Random: trial i's values
 * come from its own stream lp_rng_derive(seed, i), drawn key by key in the order
 * written, so a trial's values depend only on the seed, its number and the space
 * (trials: 20 repeats the 10 trials of trials: 10, then adds 10).
 */
#ifndef LP_SWEEP_H
#define LP_SWEEP_H

#include "config.h"
#include "error.h"
#include "value.h"

#include <stdint.h>

#define LP_SWEEP_MAX_TRIALS 10000
#define LP_SWEEP_MAX_PARAMS 32

typedef enum lp_sweep_mode { LP_SWEEP_GRID, LP_SWEEP_RANDOM } lp_sweep_mode;

typedef enum lp_sweep_dist {
    LP_SWEEP_LIST,          /* grid: every value of a list, in order */
    LP_SWEEP_CHOICE,        /* random: one of a list, each equally likely */
    LP_SWEEP_UNIFORM,       /* random: a real in [lo, hi) */
    LP_SWEEP_LOG_UNIFORM,   /* random: exp of a uniform in [log lo, log hi), 0 < lo */
    LP_SWEEP_INT            /* random: an integer in [lo, hi], both ends included */
} lp_sweep_dist;

typedef struct lp_sweep_param {
    char *key;              /* "train.optimizer.lr" */
    lp_loc key_loc;         /* where the key is written */
    lp_loc loc;             /* where its values (list or distribution) are written */
    lp_sweep_dist dist;
    int n_values;           /* LIST, CHOICE: each value as YAML flow text ("0.05", "[1, 2]") */
    char **values;
    lp_loc *value_locs;
    double lo, hi;          /* UNIFORM, LOG_UNIFORM, INT (integers held exactly up to 2^53) */
} lp_sweep_param;

typedef struct lp_sweep_spec {
    lp_sweep_mode mode;
    lp_loc loc;             /* the sweep: section */
    int n_params;
    lp_sweep_param *params;
    int trials;             /* grid: the product of the list lengths; random: trials */
    uint64_t seed;          /* random only (default 1) */
} lp_sweep_spec;

/* Read a `sweep:` value (cfg.sweep). Every mistake is LP_ERR_CONFIG at its
 * file:line:col: not a map, neither or both of grid/random, an unknown key (with
 * did-you-mean), an empty list or space, trials < 1 or above LP_SWEEP_MAX_TRIALS
 * (a grid too), a distribution with lo >= hi (lo <= 0 for log_uniform), a key that
 * is not a config path, the same key twice. On failure out is left empty. */
lp_status lp_sweep_spec_read(const lp_value *sweep, lp_sweep_spec *out, lp_error *err);
void lp_sweep_spec_free(lp_sweep_spec *s);

/* "grid" or "random". */
const char *lp_sweep_mode_name(lp_sweep_mode m);

typedef struct lp_sweep_trial {
    int number;             /* 1-based */
    char **sets;            /* [n_params] "key=value", for --set */
    char **values;          /* [n_params] "value" as passed */
    lp_loc *locs;           /* [n_params] where each value comes from (list item or distribution) */
    int n;                  /* n_params */
} lp_sweep_trial;

/* Every trial of spec, in order (grid: first key slowest; random: trial 1..K).
 * Sampled reals are written with 6 significant digits ("%.6g"): that text is what
 * the trial trains with and what its run records. */
lp_status lp_sweep_expand(const lp_sweep_spec *spec, lp_sweep_trial **out, int *n, lp_error *err);
void lp_sweep_trials_free(lp_sweep_trial *t, int n);

/* Load the config of every trial: the text of base (as read, with its --set
 * overrides base_sets) plus the trial's sets, checked exactly as `loupe train`
 * checks a config, and build its graph (shapes, op attributes; the plugins the
 * config names must be loaded already). The first failure is LP_ERR_CONFIG at the file:line:col of the
 * sweep value responsible ("sweep trial 3 (train.batch_size=abc): ...") - of its
 * key for an unknown key or path. Nothing is kept. */
lp_status lp_sweep_check_trials(const lp_experiment_config *base, const char *const *base_sets, int n_base,
                                const lp_sweep_spec *spec, const lp_sweep_trial *trials, int n, lp_error *err);

/* The n_base + trial->n override strings for the trial (pointers into base_sets
 * and trial; free only the array). NULL when out of memory. */
const char **lp_sweep_trial_overrides(const char *const *base_sets, int n_base, const lp_sweep_trial *trial);

#endif
