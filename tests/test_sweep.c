/* test_sweep.c - the `sweep:` section (experiments/sweep/): grid order, random
 * sampling (reproducible from the seed, inside its ranges), and every kind of
 * mistake with its exact file:line:col - in the spec itself, and in a trial's
 * config (unknown path, wrong type) before any trial runs; and the runs-database
 * queries of a sweep (experiments/store/sweeps.c). */
#include "test_params.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include "config.h"
#include "sweep.h"
#include "sweeps.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MODEL "name: t\n"                              \
              "model:\n"                               \
              "  input: [1, 28, 28]\n"                 \
              "  layers:\n"                            \
              "    - {op: flatten}\n"                  \
              "    - {op: dense, units: 10}\n"         \
              "  loss: softmax_cross_entropy\n"
/* MODEL is 7 lines: what follows starts on line 8. */

static void assert_prefix(const char *msg, const char *prefix)
{
    cr_assert(strncmp(msg, prefix, strlen(prefix)) == 0, "message '%s'\n  should start with '%s'", msg, prefix);
}

static void assert_contains(const char *msg, const char *part)
{
    cr_assert(strstr(msg, part) != NULL, "message '%s'\n  should contain '%s'", msg, part);
}

/* Load text (must be a valid config) and read its sweep spec and trials. */
typedef struct loaded {
    lp_experiment_config cfg;
    lp_sweep_spec spec;
    lp_sweep_trial *trials;
    int n;
} loaded;

static lp_status load(const char *text, loaded *l, lp_error *err)
{
    memset(l, 0, sizeof *l);
    lp_status s = lp_config_load_string(text, strlen(text), "sw.yaml", NULL, 0, &l->cfg, err);
    if (s) return s;
    cr_assert_not_null(l->cfg.sweep, "the config reader keeps the sweep: section");
    s = lp_sweep_spec_read(l->cfg.sweep, &l->spec, err);
    if (!s) s = lp_sweep_expand(&l->spec, &l->trials, &l->n, err);
    if (!s) s = lp_sweep_check_trials(&l->cfg, NULL, 0, &l->spec, l->trials, l->n, err);
    return s;
}

static void load_ok(const char *text, loaded *l)
{
    lp_error err = {0};
    lp_status s = load(text, l, &err);
    cr_assert_eq(s, LP_OK, "unexpected error: %s", err.msg);
}

static void unload(loaded *l)
{
    lp_sweep_trials_free(l->trials, l->n);
    lp_sweep_spec_free(&l->spec);
    lp_config_free(&l->cfg);
}

/* ---- grid ------------------------------------------------------------------ */

Test(sweep, grid_first_key_varies_slowest)
{
    loaded l;
    load_ok(MODEL "sweep:\n  grid:\n    train.optimizer.lr: [0.01, 0.05, 0.1]\n    train.batch_size: [32, 64]\n", &l);
    cr_assert_eq(l.spec.mode, LP_SWEEP_GRID);
    cr_assert_eq(l.spec.n_params, 2);
    cr_assert_eq(l.n, 6);
    static const char *const want[6][2] = {
        {"train.optimizer.lr=0.01", "train.batch_size=32"}, {"train.optimizer.lr=0.01", "train.batch_size=64"},
        {"train.optimizer.lr=0.05", "train.batch_size=32"}, {"train.optimizer.lr=0.05", "train.batch_size=64"},
        {"train.optimizer.lr=0.1", "train.batch_size=32"},  {"train.optimizer.lr=0.1", "train.batch_size=64"},
    };
    for (int k = 0; k < 6; k++) {
        cr_assert_eq(l.trials[k].number, k + 1);
        cr_assert_eq(l.trials[k].n, 2);
        cr_assert_str_eq(l.trials[k].sets[0], want[k][0], "trial %d", k + 1);
        cr_assert_str_eq(l.trials[k].sets[1], want[k][1], "trial %d", k + 1);
    }
    cr_assert_str_eq(l.trials[4].values[0], "0.1");
    /* Each value's location is the list item it came from (line 10, "[32, 64]" items). */
    cr_assert_eq(l.trials[1].locs[1].line, 11);
    cr_assert_eq(l.trials[1].locs[1].col, 28);
    unload(&l);
}

Test(sweep, grid_trial_configs_carry_the_values)
{
    loaded l;
    load_ok(MODEL "sweep:\n  grid:\n    train.optimizer.type: [sgd, adam]\n    data.normalize: [[0.1, 0.3], [0, 1]]\n"
                  "    model.layers.1.units: [10]\n    name: [\"a b\", 'x: y']\n", &l);
    cr_assert_eq(l.n, 8);
    cr_assert_str_eq(l.trials[0].sets[1], "data.normalize=[0.1, 0.3]");
    cr_assert_str_eq(l.trials[0].sets[3], "name=\"a b\"");
    cr_assert_str_eq(l.trials[1].sets[3], "name=\"x: y\"");
    const char **all = lp_sweep_trial_overrides(NULL, 0, &l.trials[5]);
    lp_experiment_config cfg;
    lp_error err = {0};
    cr_assert_eq(lp_config_load_string(l.cfg.yaml_text, l.cfg.yaml_len, "sw.yaml", all, l.trials[5].n, &cfg, &err),
                 LP_OK, "%s", err.msg);
    /* trial 6 = (adam, [0.1, 0.3], 10, 'x: y') */
    cr_assert_eq(cfg.train.optim.type, LP_OPTIM_ADAM);
    cr_assert_float_eq(cfg.data.mean, 0.1f, 1e-7);
    cr_assert_float_eq(cfg.data.std, 0.3f, 1e-7);
    cr_assert_str_eq(cfg.name, "x: y");
    lp_config_free(&cfg);
    free(all);
    unload(&l);
}

Test(sweep, base_overrides_come_first_and_the_trial_wins)
{
    loaded l;
    load_ok(MODEL "train: {epochs: 2}\nsweep: {grid: {train.epochs: [3]}}\n", &l);
    const char *base[] = {"train.epochs=7", "train.batch_size=16"};
    const char **all = lp_sweep_trial_overrides(base, 2, &l.trials[0]);
    cr_assert_str_eq(all[0], "train.epochs=7");
    cr_assert_str_eq(all[2], "train.epochs=3");
    lp_experiment_config cfg;
    lp_error err = {0};
    cr_assert_eq(lp_config_load_string(l.cfg.yaml_text, l.cfg.yaml_len, "sw.yaml", all, 3, &cfg, &err), LP_OK);
    cr_assert_eq(cfg.train.epochs, 3);
    cr_assert_eq(cfg.train.batch_size, 16);
    lp_config_free(&cfg);
    free(all);
    unload(&l);
}

/* ---- random ------------------------------------------------------------------ */

#define SPACE "    space:\n"                                              \
              "      train.optimizer.lr: {log_uniform: [0.001, 0.1]}\n"    \
              "      train.optimizer.momentum: {uniform: [0.5, 0.9]}\n"    \
              "      model.layers.1.units: {int: [10, 13]}\n"              \
              "      train.batch_size: {choice: [16, 32, 64]}\n"           \
              "      train.epochs: [1, 2]\n"

static char *random_text(int trials, int seed)
{
    static char buf[2048];
    snprintf(buf, sizeof buf, MODEL "sweep:\n  random:\n    trials: %d\n    seed: %d\n" SPACE, trials, seed);
    return buf;
}

Test(sweep, random_is_reproducible_from_the_seed)
{
    loaded a, b, c, d;
    load_ok(random_text(10, 7), &a);
    load_ok(random_text(10, 7), &b);
    load_ok(random_text(10, 8), &c);
    load_ok(random_text(20, 7), &d);
    cr_assert_eq(a.spec.mode, LP_SWEEP_RANDOM);
    cr_assert_eq(a.n, 10);
    cr_assert_eq(d.n, 20);
    int same_as_c = 0;
    for (int k = 0; k < 10; k++)
        for (int i = 0; i < 5; i++) {
            cr_assert_str_eq(a.trials[k].sets[i], b.trials[k].sets[i], "same seed, same trial %d", k + 1);
            cr_assert_str_eq(a.trials[k].sets[i], d.trials[k].sets[i], "more trials keep the first ones");
            same_as_c += strcmp(a.trials[k].sets[i], c.trials[k].sets[i]) == 0;
        }
    cr_assert_lt(same_as_c, 30, "another seed gives other reals (%d of 50 equal)", same_as_c);
    cr_assert_str_neq(a.trials[0].values[0], c.trials[0].values[0]);
    /* Trials differ from each other. */
    cr_assert_str_neq(a.trials[0].values[0], a.trials[1].values[0]);
    unload(&a);
    unload(&b);
    unload(&c);
    unload(&d);
}

Test(sweep, random_values_stay_in_their_ranges)
{
    loaded l;
    load_ok(random_text(2000, 1), &l);
    int units[4] = {0}, bs[3] = {0}, ep[2] = {0}, below_geo = 0;
    for (int k = 0; k < l.n; k++) {
        const lp_sweep_trial *t = &l.trials[k];
        double lr = strtod(t->values[0], NULL), m = strtod(t->values[1], NULL);
        cr_assert(lr >= 0.001 && lr <= 0.1, "lr %g", lr);
        cr_assert(m >= 0.5 && m <= 0.9, "momentum %g", m);
        below_geo += lr < 0.01;   /* the geometric middle of [0.001, 0.1] */
        char *end;
        long u = strtol(t->values[2], &end, 10);
        cr_assert(*end == '\0' && u >= 10 && u <= 13, "units '%s' is an integer in [10, 13]", t->values[2]);
        units[u - 10]++;
        int b = atoi(t->values[3]);
        cr_assert(b == 16 || b == 32 || b == 64, "batch size %d", b);
        bs[b == 16 ? 0 : b == 32 ? 1 : 2]++;
        ep[atoi(t->values[4]) - 1]++;
        cr_assert_leq(strlen(t->values[0]), 12, "6 significant digits: '%s'", t->values[0]);
    }
    for (int i = 0; i < 4; i++) cr_assert(units[i] > 400 && units[i] < 600, "both ends included: %d", units[i]);
    for (int i = 0; i < 3; i++) cr_assert(bs[i] > 560 && bs[i] < 780, "choice %d: %d", i, bs[i]);
    cr_assert(ep[0] > 880 && ep[0] < 1120, "a plain list is a choice: %d", ep[0]);
    cr_assert(below_geo > 880 && below_geo < 1120, "log-uniform: half below the geometric mean (%d)", below_geo);
    unload(&l);
}

/* ---- mistakes ------------------------------------------------------------------ */

typedef struct bad_case {
    const char *text;
    const char *prefix;     /* exact start of the message */
    const char *part;       /* and something it must say */
} bad_case;

static const bad_case bad_cases[] = {
    {MODEL "sweep: [1]\n", "sw.yaml:8:8: sweep: ", "expected a map"},
    {MODEL "sweep: {}\n", "sw.yaml:8:8: sweep: ", "either grid:"},
    {MODEL "sweep: {grdi: {a: [1]}}\n", "sw.yaml:8:9: unknown key 'sweep.grdi'", "did you mean 'grid'?"},
    {MODEL "sweep:\n  grid: {train.epochs: [1]}\n  random: {trials: 1, space: {train.epochs: [1]}}\n",
     "sw.yaml:9:3: sweep: ", "not both"},
    {MODEL "sweep:\n  grid: {}\n", "sw.yaml:9:9: sweep.grid: ", "empty"},
    {MODEL "sweep:\n  grid:\n    train.optimizer.lr: []\n", "sw.yaml:10:25: sweep.grid.train.optimizer.lr: ",
     "empty list"},
    {MODEL "sweep:\n  grid:\n    train.optimizer.lr: 0.1\n", "sw.yaml:10:25: sweep.grid.train.optimizer.lr: ",
     "expected a list of values, found a scalar"},
    {MODEL "sweep:\n  grid:\n    train..lr: [1]\n", "sw.yaml:10:5: sweep.grid: ", "not a config path"},
    {MODEL "sweep:\n  grid:\n    sweep.grid: [1]\n", "sw.yaml:10:5: sweep.grid: ", "cannot sweep"},
    {MODEL "sweep:\n  random: {trials: 0, space: {train.epochs: [1]}}\n", "sw.yaml:9:20: sweep.random.trials: ",
     "from 1 to 10000, found 0"},
    {MODEL "sweep:\n  random: {trials: two, space: {train.epochs: [1]}}\n", "sw.yaml:9:20: sweep.random.trials: ",
     "expected an integer"},
    {MODEL "sweep:\n  random: {space: {train.epochs: [1]}}\n", "sw.yaml:9:11: sweep.random: ", "missing 'trials'"},
    {MODEL "sweep:\n  random: {trials: 2}\n", "sw.yaml:9:11: sweep.random: ", "missing 'space'"},
    {MODEL "sweep:\n  random: {trials: 2, seed: -1, space: {train.epochs: [1]}}\n",
     "sw.yaml:9:29: sweep.random.seed: ", "at least 0"},
    {MODEL "sweep:\n  random: {trials: 2, space: {}}\n", "sw.yaml:9:30: sweep.random.space: ", "empty"},
    {MODEL "sweep:\n  random:\n    trials: 2\n    space:\n      train.optimizer.lr: {log_uniform: [0, 0.1]}\n",
     "sw.yaml:12:42: sweep.random.space.train.optimizer.lr.log_uniform: ", "lo must be > 0"},
    {MODEL "sweep:\n  random:\n    trials: 2\n    space:\n      train.optimizer.lr: {uniform: [0.1, 0.1]}\n",
     "sw.yaml:12:43: sweep.random.space.train.optimizer.lr.uniform: ", "hi must be > lo"},
    {MODEL "sweep:\n  random:\n    trials: 2\n    space:\n      train.epochs: {int: [3, 2]}\n",
     "sw.yaml:12:31: sweep.random.space.train.epochs.int: ", "hi must be >= lo"},
    {MODEL "sweep:\n  random:\n    trials: 2\n    space:\n      train.epochs: {int: [1.5, 2]}\n",
     "sw.yaml:12:28: sweep.random.space.train.epochs.int: ", "expected an integer"},
    {MODEL "sweep:\n  random:\n    trials: 2\n    space:\n      train.epochs: {uniform: 3}\n",
     "sw.yaml:12:31: sweep.random.space.train.epochs.uniform: ", "expected [lo, hi]"},
    {MODEL "sweep:\n  random:\n    trials: 2\n    space:\n      train.epochs: {normal: [0, 1]}\n",
     "sw.yaml:12:22: unknown key 'sweep.random.space.train.epochs.normal'", ""},
    {MODEL "sweep:\n  random:\n    trials: 2\n    space:\n      train.epochs: {choice: []}\n",
     "sw.yaml:12:30: sweep.random.space.train.epochs.choice: ", "empty list"},
    {MODEL "sweep:\n  random:\n    trials: 2\n    space:\n      train.epochs: 3\n",
     "sw.yaml:12:21: sweep.random.space.train.epochs: ", "expected one of {uniform"},
    {MODEL "sweep:\n  grid:\n    a: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n    b: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n"
           "    c: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n    d: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n    e: [1, 2]\n",
     "sw.yaml:10:5: sweep.grid: ", "20000 combinations is more than 10000 trials"},
    /* A trial's config: checked before anything runs, blamed on the sweep value. */
    {MODEL "sweep:\n  grid:\n    train.optimizer.lrr: [0.1]\n",
     "sw.yaml:10:5: sweep trial 1 (train.optimizer.lrr=0.1): unknown key 'train.optimizer.lrr'", "did you mean 'lr'?"},
    {MODEL "sweep:\n  grid:\n    train.batch_size: [32, fast]\n",
     "sw.yaml:10:28: sweep trial 2 (train.batch_size=fast): train.batch_size: ", "expected an integer"},
    {MODEL "sweep:\n  grid:\n    train.batch_size: [32, 0]\n",
     "sw.yaml:10:28: sweep trial 2 (train.batch_size=0): train.batch_size: ", "from 1 to 65536, found 0"},
    {MODEL "sweep:\n  grid:\n    model.layers.5.units: [3]\n",
     "sw.yaml:10:5: sweep trial 1 (model.layers.5.units=3): '5' is not an index of a list of 2 items", ""},
    {MODEL "sweep:\n  grid:\n    name.first: [x]\n",
     "sw.yaml:10:5: sweep trial 1 (name.first=x): cannot set 'first' inside a scalar", ""},
    {MODEL "sweep:\n  random:\n    trials: 3\n    space:\n      train.batch_size: {uniform: [16, 64]}\n",
     "sw.yaml:12:25: sweep trial 1 (train.batch_size=", "expected an integer"},
    {MODEL "sweep:\n  grid:\n    model.layers.1.units: [10, 0]\n",
     "sw.yaml:10:32: sweep trial 2 (model.layers.1.units=0): ", "units"},
    {MODEL "sweep:\n  grid:\n    model.layers.1.op: [dense, dnese]\n",
     "sw.yaml:6:7: node 'dnese1': unknown op 'dnese': did you mean 'dense'?", "(in sweep trial 2: model.layers.1.op=dnese)"},
    {MODEL "sweep:\n  grid:\n    train.optimizer.type: [sgd, adam]\n    train.optimizer.momentum: [0.9]\n",
     "sw.yaml:11:32: sweep trial 2 (train.optimizer.momentum=0.9): ", "does not apply when train.optimizer.type is 'adam'"},
};


ParameterizedTestParameters(sweep, bad)
{
    return cr_make_param_array(int, index_params(COUNT(bad_cases)), COUNT(bad_cases));
}

ParameterizedTest(int *index, sweep, bad)
{
    const bad_case *c = &bad_cases[*index];
    loaded l;
    lp_error err = {0};
    lp_status s = load(c->text, &l, &err);
    cr_assert_eq(s, LP_ERR_CONFIG, "status %d: %s", s, err.msg);
    assert_prefix(err.msg, c->prefix);
    assert_contains(err.msg, c->part);
    unload(&l);
}

/* ---- the sweep in the runs database (sweeps.h) ------------------------------------ */

static int64_t new_run(lp_runsdb *db, int64_t parent, int trial, const char *kind)
{
    const char *keys[] = {"train.optimizer.lr"};
    char lr[16];
    snprintf(lr, sizeof lr, "0.0%d", trial);
    const char *values[] = {lr};
    lp_run_new r = {.name = "t", .config_yaml = "name: t\n", .seed = 1, .threads = 1, .n_params = 1, .keys = keys,
                    .values = values, .parent_run_id = parent, .sweep_trial = trial, .kind = kind};
    int64_t id;
    lp_error err = {0};
    cr_assert_eq(lp_runsdb_begin_run(db, &r, &id, &err), LP_OK, "%s", err.msg);
    return id;
}

static void epoch(lp_runsdb *db, int64_t run, int e, double acc, double loss)
{
    lp_metric m[] = {{"test", "acc", acc}, {"test", "loss", loss}};
    lp_error err = {0};
    cr_assert_eq(lp_runsdb_commit_epoch(db, run, e, e * 10, m, 2, NULL, 0, false, &err), LP_OK, "%s", err.msg);
}

Test(sweeps_db, children_best_final_role_and_crash_marking)
{
    char dir[] = "/tmp/loupe-sweep-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof path, "%s/runs.db", dir);
    lp_runsdb *db;
    lp_error err = {0};
    cr_assert_eq(lp_runsdb_open(path, &db, &err), LP_OK, "%s", err.msg);
    int64_t parent = new_run(db, 0, 0, "sweep");
    /* Trials recorded out of order: the query orders them by trial number. */
    int64_t t2 = new_run(db, parent, 2, NULL), t1 = new_run(db, parent, 1, NULL), t3 = new_run(db, parent, 3, NULL);
    epoch(db, t1, 1, 0.50, 1.0);
    epoch(db, t1, 2, 0.70, 0.6);
    epoch(db, t1, 3, 0.65, 0.7);   /* best acc 0.70 and loss 0.6 at epoch 2; final 0.65, 0.7 */
    epoch(db, t2, 1, 0.80, 0.4);
    cr_assert_eq(lp_runsdb_finish_run(db, t1, LP_RUN_COMPLETED, NULL, &err), LP_OK);
    cr_assert_eq(lp_runsdb_finish_run(db, t2, LP_RUN_FAILED, "loss became NaN", &err), LP_OK);
    int64_t other = new_run(db, 0, 0, NULL);

    lp_sweep_child *c;
    int n;
    cr_assert_eq(lp_sweeps_children(db, parent, "test", "acc", &c, &n, &err), LP_OK, "%s", err.msg);
    cr_assert_eq(n, 3);
    cr_assert_eq(c[0].trial, 1);
    cr_assert_eq(c[0].run_id, t1);
    cr_assert_float_eq(c[0].best_value, 0.70, 1e-12);
    cr_assert_float_eq(c[0].final_value, 0.65, 1e-12);
    cr_assert_eq(c[0].epochs_done, 3);
    cr_assert_str_eq(c[0].status, "completed");
    cr_assert_str_eq(c[1].status, "failed");
    cr_assert_str_eq(c[1].error, "loss became NaN");
    cr_assert(isnan(c[2].best_value) && isnan(c[2].final_value), "no epochs: no values");
    cr_assert_eq(c[2].pid, (long long)getpid());
    lp_sweep_children_free(c, n);
    cr_assert_eq(lp_sweeps_children(db, parent, "test", "loss", &c, &n, &err), LP_OK);
    cr_assert_float_eq(c[0].best_value, 0.6, 1e-12, "a loss: the lowest is the best");
    cr_assert_float_eq(c[0].final_value, 0.7, 1e-12);
    lp_sweep_children_free(c, n);
    cr_assert(lp_sweep_metric_lower_is_better("loss") && !lp_sweep_metric_lower_is_better("acc"));

    lp_error e2 = {0};
    cr_assert_eq(lp_sweeps_children(db, t1, "test", "acc", &c, &n, &e2), LP_ERR_ARG);
    assert_contains(e2.msg, "is not a sweep");
    lp_error_clear(&e2);
    cr_assert_eq(lp_sweeps_children(db, 999, "test", "acc", &c, &n, &e2), LP_ERR_ARG);
    assert_contains(e2.msg, "no run 999");

    lp_sweep_child one;
    bool found;
    cr_assert_eq(lp_sweeps_child(db, parent, 2, "test", "acc", &one, &found, &err), LP_OK);
    cr_assert(found);
    cr_assert_eq(one.run_id, t2);
    free(one.status);
    free(one.error);
    cr_assert_eq(lp_sweeps_child(db, parent, 4, "test", "acc", &one, &found, &err), LP_OK);
    cr_assert_not(found);

    /* Crash marking touches a running trial only. */
    cr_assert_eq(lp_sweeps_mark_crashed(db, t3, "killed by signal 9", &err), LP_OK, "%s", err.msg);
    cr_assert_eq(lp_sweeps_mark_crashed(db, t2, "killed by signal 9", &err), LP_OK);
    cr_assert_eq(lp_sweeps_children(db, parent, "test", "acc", &c, &n, &err), LP_OK);
    cr_assert_str_eq(c[2].status, "crashed");
    cr_assert_str_eq(c[2].error, "killed by signal 9");
    cr_assert_str_eq(c[1].status, "failed", "a finished trial keeps its status");
    lp_sweep_children_free(c, n);

    lp_sweep_role r;
    cr_assert_eq(lp_sweeps_role(db, parent, &r, &err), LP_OK);
    cr_assert(r.is_sweep);
    cr_assert_eq(r.n_trials, 3);
    cr_assert_eq(lp_sweeps_role(db, t3, &r, &err), LP_OK);
    cr_assert(!r.is_sweep);
    cr_assert_eq(r.parent_run_id, parent);
    cr_assert_eq(r.sweep_trial, 3);
    cr_assert_eq(lp_sweeps_role(db, other, &r, &err), LP_OK);
    cr_assert(!r.is_sweep && r.parent_run_id == 0);

    char *v;
    cr_assert_eq(lp_sweeps_param(db, t2, "train.optimizer.lr", &v, &err), LP_OK);
    cr_assert_str_eq(v, "0.02");
    free(v);
    cr_assert_eq(lp_sweeps_param(db, t2, "nope", &v, &err), LP_OK);
    cr_assert_null(v);

    /* A second trial 1 of the same sweep is refused by the database. */
    const char *k[] = {"x"}, *vv[] = {"y"};
    lp_run_new dup = {.name = "t", .config_yaml = "x", .n_params = 1, .keys = k, .values = vv, .parent_run_id = parent,
                      .sweep_trial = 1};
    int64_t id;
    lp_error e3 = {0};
    cr_assert_eq(lp_runsdb_begin_run(db, &dup, &id, &e3), LP_ERR_DB, "UNIQUE (parent_run_id, sweep_trial)");
    lp_runsdb_close(db);
    const char *suffix[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        char p[96];
        snprintf(p, sizeof p, "%s%s", path, suffix[i]);
        unlink(p);
    }
    rmdir(dir);
}
