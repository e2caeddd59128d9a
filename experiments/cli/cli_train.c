/* cli_train.c - `loupe train`: config -> data -> graph -> epochs, each epoch's
 * metrics and checkpoint committed to the runs database in one transaction. */
#include "cli.h"

#include "cli_dist.h"
#include "compute.h"
#include "dist.h"
#include "dataset.h"
#include "evaluation.h"
#include "holdout.h"
#include "lifecycle.h"
#include "provenance.h"
#include "runsdb.h"
#include "safetensors.h"
#include "snapshot.h"
#include "train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- the effective config as YAML text (recorded, and read back on resume) ---- */

static bool needs_quotes(const lp_value *v)
{
    const char *s = v->text;
    if (v->quoted || !*s) return true;
    if (strchr("-?:,[]{}#&*!|>'\"%@` ", s[0])) {
        /* plain negative numbers are fine */
        char *end;
        strtod(s, &end);
        if (*end) return true;
    }
    return strstr(s, ": ") || strstr(s, " #") || strchr(s, '\n') || s[strlen(s) - 1] == ' ' ||
           s[strlen(s) - 1] == ':';
}

static void emit_scalar(FILE *f, const lp_value *v)
{
    if (!needs_quotes(v)) {
        fputs(v->text, f);
        return;
    }
    fputc('"', f);
    for (const char *p = v->text; *p; p++) {
        if (*p == '"' || *p == '\\') fputc('\\', f);
        if (*p == '\n') { fputs("\\n", f); continue; }
        fputc(*p, f);
    }
    fputc('"', f);
}

/* Flow style for anything inside a list item; block style for maps at the top. */
static void emit_flow(FILE *f, const lp_value *v)
{
    if (v->kind == LP_VALUE_SCALAR) { emit_scalar(f, v); return; }
    bool map = v->kind == LP_VALUE_MAP;
    fputc(map ? '{' : '[', f);
    for (int i = 0; i < v->count; i++) {
        if (i) fputs(", ", f);
        if (map) fprintf(f, "%s: ", v->keys[i]);
        emit_flow(f, v->items[i]);
    }
    fputc(map ? '}' : ']', f);
}

static void emit_block(FILE *f, const lp_value *v, int indent)
{
    for (int i = 0; i < v->count; i++) {
        const lp_value *item = v->items[i];
        fprintf(f, "%*s%s:", indent, "", v->keys[i]);
        if (item->kind == LP_VALUE_MAP && item->count) {
            fputc('\n', f);
            emit_block(f, item, indent + 2);
        } else if (item->kind == LP_VALUE_LIST && item->count) {
            fputc('\n', f);
            for (int k = 0; k < item->count; k++) {
                fprintf(f, "%*s- ", indent + 2, "");
                emit_flow(f, item->items[k]);
                fputc('\n', f);
            }
        } else {
            fputc(' ', f);
            emit_flow(f, item);
            fputc('\n', f);
        }
    }
}

/* The text recorded for a run: the file as written when nothing was overridden
 * (comments kept), else the tree after the overrides. malloc'd. */
static char *effective_yaml(const lp_experiment_config *cfg)
{
    if (cfg->n_overrides == 0) return strdup(cfg->yaml_text);
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    if (!f) return NULL;
    fprintf(f, "# %s with", cfg->path);
    for (int i = 0; i < cfg->n_overrides; i++) fprintf(f, " --set %s", cfg->overrides[i]);
    fputc('\n', f);
    emit_block(f, cfg->root, 0);
    fclose(f);
    return buf;
}

/* ---- recording each epoch ---- */

typedef struct recorder {
    lp_runsdb *db;
    int64_t run_id;
    lp_trainer *trainer;
    int checkpoint_every;
    int epochs;
    double best_acc;          /* highest test accuracy (runs.best_test_acc) */
    double selected_test_acc; /* test accuracy of the epoch flagged best */
    bool json;
} recorder;

/* The trainer's per-epoch state into a checkpoint's resume record, and back. */
static void save_trainer_state(const lp_trainer *t, lp_resume_state *rs)
{
    rs->plateau_lr = t->plateau.lr;
    rs->plateau_best = t->plateau.best;
    rs->plateau_bad_epochs = t->plateau.num_bad_epochs;
    rs->plateau_cooldown = t->plateau.cooldown_counter;
    rs->select_best = t->select.best;
    rs->select_best_epoch = t->select.best_epoch;
    rs->select_bad_epochs = t->select.bad_epochs;
}

static void restore_trainer_state(lp_trainer *t, const lp_resume_state *rs)
{
    t->plateau.lr = rs->plateau_lr;
    t->plateau.best = rs->plateau_best;
    t->plateau.num_bad_epochs = rs->plateau_bad_epochs;
    t->plateau.cooldown_counter = rs->plateau_cooldown;
    t->select.best = rs->select_best;
    t->select.best_epoch = rs->select_best_epoch;
    t->select.bad_epochs = rs->select_bad_epochs;
}

static lp_status record_epoch(void *ctx, const lp_epoch_result *r, lp_error *err)
{
    recorder *rec = ctx;
    lp_metric m[] = {
        {"train", "loss", r->train_loss},   {"train", "acc", r->train_acc},
        {"test", "loss", r->test_loss},     {"test", "acc", r->test_acc},
        {"train", "lr", r->lr},             {"train", "seconds", r->seconds},
        {"train", "images_per_s", r->images_per_s},
        {"val", "loss", r->val_loss},       {"val", "acc", r->val_acc},
    };
    int n_metrics = (int)(sizeof m / sizeof m[0]) - (rec->trainer->val ? 0 : 2);
    bool is_best = r->is_best;
    void *blob = NULL;
    size_t size = 0;
    bool save = is_best || r->epoch % rec->checkpoint_every == 0 || r->epoch == rec->epochs;
    if (save) {
        lp_resume_state resume = {.epoch = r->epoch, .step = r->step, .lr = r->lr,
                                  .schedule_pos = r->epoch};
        save_trainer_state(rec->trainer, &resume);
        lp_status s = lp_snapshot_encode(rec->trainer->graph, &rec->trainer->optim, &resume, &blob,
                                         &size, err);
        if (s) return s;
    }
    /* The test pass's confusion matrix etc. go in the epoch's transaction too. */
    lp_status s = lp_runsdb_commit_epoch_eval(rec->db, rec->run_id, r->epoch, r->step, m, n_metrics, blob,
                                              size, is_best, r->evaluation, err);
    free(blob);
    if (s) return s;
    if (r->test_acc > rec->best_acc) rec->best_acc = r->test_acc;
    if (is_best) rec->selected_test_acc = r->test_acc;
    return LP_OK;
}

/* ---- the command ---- */

static void usage(void)
{
    printf("usage: loupe train CONFIG.yaml [options]\n"
           "       loupe train --resume RUN [--db PATH] [options]\n\n"
           "Train the model a config declares, evaluating on the test set after every\n"
           "epoch. Every run is recorded in the runs database (tracking.db, default\n"
           "runs.db): its config, settings, per-epoch metrics and checkpoints. An epoch's\n"
           "metrics and checkpoint are committed together, so a killed run keeps every\n"
           "finished epoch; --resume RUN continues it from its last checkpoint.\n\n"
           "options:\n"
           "  --set KEY=VALUE        override a config field (repeatable), e.g. train.epochs=3\n"
           "  --db PATH              runs database (overrides tracking.db)\n"
           "  --threads N            threads (overrides train.threads; default all cores)\n"
           "  --plugin PATH          load an op plugin (repeatable)\n"
           "  --init-weights FILE    start from a .safetensors file's weights\n"
           "  --resume RUN           continue run RUN from its last checkpoint\n"
           "  --profile              print time per op (forward/backward) at the end\n"
           "  --quiet                no per-epoch lines\n"
           "  --json                 print the final summary as one JSON object on stdout\n"
           "  --parent-run ID --sweep-trial N\n"
           "                         internal (loupe sweep): record the run as trial N of sweep ID\n");
    printf("\n%s\n", lp_dist_built()
               ? "MPI: built with MPI. `mpirun -np N loupe train CONFIG` trains on N ranks, each on its\n"
                 "share of every batch (docs/scaling.md); rank 0 alone writes the database."
               : "MPI: built without MPI (make MPI=1 with libopenmpi-dev to train across processes).");
}

typedef struct train_args {
    cli_common c;
    const char *config;
    const char *init_weights;
    long long resume;
    bool profile, quiet;
    /* `loupe rerun`: the recorded config text (named config_name) instead of a file */
    const char *config_text, *config_name;
    long long rerun_of;
    long long parent_run, sweep_trial;   /* `loupe sweep` starts each trial as a child run */
} train_args;

static int parse_args(int argc, char **argv, train_args *a)
{
    memset(a, 0, sizeof *a);
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (cli_is_help(s)) { usage(); return -1; }
        int r = cli_common_option("train", argc, argv, &i, &a->c);
        if (r < 0) return 2;
        if (r == 1) continue;
        if (!strcmp(s, "--profile")) a->profile = true;
        else if (!strcmp(s, "--quiet")) a->quiet = true;
        else if (!strcmp(s, "--init-weights") && i + 1 < argc) a->init_weights = argv[++i];
        else if (!strcmp(s, "--resume") && i + 1 < argc) {
            if (!cli_parse_int(argv[++i], 1, INT64_MAX, &a->resume))
                return cli_usage_error("train", "--resume expects a run id, got '%s'", argv[i]);
        } else if ((!strcmp(s, "--parent-run") || !strcmp(s, "--sweep-trial")) && i + 1 < argc) {
            if (!cli_parse_int(argv[++i], 1, s[2] == 'p' ? INT64_MAX : INT32_MAX,
                               s[2] == 'p' ? &a->parent_run : &a->sweep_trial))
                return cli_usage_error("train", "%s expects a positive number, got '%s'", s, argv[i]);
        } else if (s[0] == '-') return cli_usage_error("train", "unknown option '%s'", s);
        else if (a->config) return cli_usage_error("train", "one config at a time ('%s' and '%s')", a->config, s);
        else a->config = s;
    }
    if (!a->config && !a->resume) return cli_usage_error("train", "give a CONFIG.yaml (or --resume RUN)");
    if (a->config && a->resume) return cli_usage_error("train", "give either a config or --resume RUN, not both");
    if (!a->parent_run != !a->sweep_trial || (a->parent_run && !a->config))
        return cli_usage_error("train", "--parent-run and --sweep-trial go together, with a CONFIG (loupe sweep uses them)");
    return 0;
}

typedef struct train_session {
    lp_experiment_config cfg;
    lp_dataset train, test;
    lp_dataset val;         /* data.validation's held-out images (n = 0 without) */
    lp_graph *graph;
    lp_trainer trainer;
    lp_runsdb *db;
    int64_t run_id;
    bool cfg_loaded, trainer_ready;
    bool resume_has_ckpt;   /* false: the run died before its first commit */
    char *resume_data_sha256;   /* the fingerprint the resumed run recorded, or NULL */
    lp_data_fingerprint data;
} train_session;

/* For --resume: the recorded config text and its original path, read by rank 0
 * (the only one that opens the database) into *text as "PATH\0YAML". */
static lp_status read_resumed_config(train_args *a, train_session *t, char **text, size_t *size,
                                     lp_error *err)
{
    const char *db_path = a->c.db ? a->c.db : "runs.db";
    lp_status s = lp_runsdb_open(db_path, &t->db, err);
    if (s) return s;
    lp_run_details d;
    s = lp_runsdb_show(t->db, a->resume, &d, err);
    if (s) return s;
    const char *path = "resumed.yaml";
    for (int i = 0; i < d.n_params; i++)
        if (!strcmp(d.keys[i], "config.path")) path = d.values[i];
    if (!strcmp(d.run.status, "completed"))
        s = lp_error_set(err, LP_ERR_ARG, "run %lld is already completed (%d epoch%s)",
                         (long long)a->resume, d.run.epochs_done, d.run.epochs_done == 1 ? "" : "s");
    if (!s) {
        size_t np = strlen(path) + 1, ny = strlen(d.config_yaml) + 1;
        if (!(*text = malloc(np + ny))) s = lp_error_set(err, LP_ERR_NOMEM, "out of memory");
        else {
            memcpy(*text, path, np);
            memcpy(*text + np, d.config_yaml, ny);
            *size = np + ny;
        }
    }
    t->resume_has_ckpt = d.n_checkpoints > 0;
    if (d.data_sha256 && !(t->resume_data_sha256 = strdup(d.data_sha256)))
        s = lp_error_set(err, LP_ERR_NOMEM, "out of memory");
    lp_run_details_free(&d);
    return s;
}

static lp_status load_resumed_config(train_args *a, train_session *t, lp_error *err)
{
    char *text = NULL;
    size_t size = 0;
    lp_status s = lp_dist_rank() == 0 ? read_resumed_config(a, t, &text, &size, err) : LP_OK;
    s = lp_dist_share(s, (void **)&text, &size, err);   /* to the other ranks (dist.h) */
    if (!s) {
        const char *yaml = text + strlen(text) + 1;
        s = lp_config_load_string(yaml, strlen(yaml), text, a->c.sets, a->c.n_sets, &t->cfg, err);
    }
    free(text);
    t->cfg_loaded = s == LP_OK;
    t->run_id = a->resume;
    return s;
}

/* A resumed run must see the data it started with, or it is not the same run. */
static lp_status check_resumed_data(const train_session *t, lp_error *err)
{
    if (!t->resume_data_sha256 || !strcmp(t->resume_data_sha256, t->data.sha256)) return LP_OK;
    return lp_error_set(err, LP_ERR_DATA, "run %lld was trained on data with sha256 %.16s..., but the data "
                        "found now (%lld training + %lld test images of %s) give %.16s...: resuming on other "
                        "data would not continue the same run", (long long)t->run_id, t->resume_data_sha256,
                        t->data.train_count, t->data.test_count, t->data.shape, t->data.sha256);
}

static lp_status begin_run(train_args *a, train_session *t, lp_error *err)
{
    lp_status s = lp_runsdb_open(a->c.db ? a->c.db : t->cfg.tracking.db, &t->db, err);
    if (s) return a->c.db ? s : cli_blame_key(&t->cfg, "tracking.db", err);
    lp_config_kvs kvs = {0};
    s = lp_config_flatten(&t->cfg, &kvs, err);
    char *yaml = s ? NULL : effective_yaml(&t->cfg);
    if (!s && !yaml) s = lp_error_set(err, LP_ERR_NOMEM, "out of memory");
    int n = kvs.count + 2 + (a->rerun_of > 0);
    const char **keys = calloc((size_t)n, sizeof *keys), **values = calloc((size_t)n, sizeof *values);
    if (!s && (!keys || !values)) s = lp_error_set(err, LP_ERR_NOMEM, "out of memory");
    if (!s) {
        for (int i = 0; i < kvs.count; i++) {
            keys[i] = kvs.items[i].key;
            values[i] = kvs.items[i].value;
        }
        char threads[16];
        snprintf(threads, sizeof threads, "%d", lp_threads());
        keys[kvs.count] = "config.path";
        values[kvs.count] = t->cfg.path;
        keys[kvs.count + 1] = "run.threads";
        values[kvs.count + 1] = threads;
        char of[24];
        snprintf(of, sizeof of, "%lld", a->rerun_of);
        if (a->rerun_of > 0) {
            keys[kvs.count + 2] = "run.rerun_of";
            values[kvs.count + 2] = of;
        }
        lp_run_new run = {.name = t->cfg.name, .config_yaml = yaml, .seed = t->cfg.train.seed,
                          .param_count = (long long)lp_graph_param_floats(t->graph),
                          .threads = lp_threads(), .n_params = n, .keys = keys, .values = values,
                          .data_sha256 = t->data.sha256, .data_train_count = t->data.train_count,
                          .data_test_count = t->data.test_count, .data_shape = t->data.shape,
                          .loupe_version = lp_loupe_version(), .loupe_commit = lp_loupe_commit(),
                          .compiler = lp_compiler(), .cflags = lp_cflags(),
                          .parent_run_id = a->parent_run, .sweep_trial = (int)a->sweep_trial,
                          .world_size = lp_dist_size()};
        s = lp_runsdb_begin_run(t->db, &run, &t->run_id, err);
    }
    free(keys);
    free(values);
    free(yaml);
    lp_config_kvs_free(&kvs);
    return s;
}

static void print_profile(lp_graph *g)
{
    double total = 0;
    for (int i = 1; i < lp_graph_num_nodes(g); i++) {
        double f, b;
        lp_graph_node_times(g, i, &f, &b);
        total += f + b;
    }
    fprintf(stderr, "\nprofile (training steps and evaluation):\n  %-14s %-22s %10s %10s %7s\n",
            "node", "op", "forward s", "backward s", "share");
    for (int i = 1; i < lp_graph_num_nodes(g); i++) {
        double f, b;
        lp_graph_node_times(g, i, &f, &b);
        fprintf(stderr, "  %-14s %-22s %10.3f %10.3f %6.1f%%\n", lp_graph_node_name(g, i),
                lp_graph_node_op(g, i), f, b, total > 0 ? 100 * (f + b) / total : 0);
    }
    fprintf(stderr, "  %-37s %21.3f\n", "total in ops", total);
    cli_dist_profile();
}

static void free_session(train_session *t)
{
    if (t->trainer_ready) lp_trainer_free(&t->trainer);
    lp_graph_free(t->graph);
    lp_dataset_free(&t->train);
    lp_dataset_free(&t->test);
    lp_dataset_free(&t->val);
    if (t->cfg_loaded) lp_config_free(&t->cfg);
    lp_runsdb_close(t->db);
    free(t->resume_data_sha256);
}

/* The recorded test accuracy of an epoch (for a resumed run's summary), or dflt. */
static double test_acc_at(lp_runsdb *db, int64_t run_id, long long epoch, double dflt)
{
    lp_metric_row *rows = NULL;
    int n = 0;
    lp_error e = {0};
    if (epoch < 1 || lp_runsdb_metrics(db, run_id, &rows, &n, &e) != LP_OK) return dflt;
    for (int i = 0; i < n; i++)
        if (rows[i].epoch == epoch && !strcmp(rows[i].split, "test") && !strcmp(rows[i].name, "acc"))
            dflt = rows[i].value;
    lp_metric_rows_free(rows, n);
    return dflt;
}

/* The metric that picked the best epoch (train.h's rule). */
static const char *selected_by(const train_session *t)
{
    if (t->cfg.train.early_stop.enabled) return lp_metric_name(t->cfg.train.early_stop.metric);
    return t->val.n > 0 ? "val/acc" : "test/acc";
}

/* Batch norm estimates each channel's mean and variance from the training batch:
 * one sample gives no variance (PyTorch refuses it for features). A batch of 1,
 * configured or left over at the end of an epoch, is a config error. */
static lp_status check_batch_stats(const lp_experiment_config *cfg, const lp_graph *g, int n_train,
                                   lp_error *err)
{
    int b = cfg->train.batch_size;
    if (!lp_graph_uses_batch_stats(g) || (b >= 2 && n_train % b != 1)) return LP_OK;
    if (b < 2)
        lp_error_set(err, LP_ERR_CONFIG, "batch size 1 with batch_norm: its batch statistics need at "
                     "least 2 samples per training batch");
    else
        lp_error_set(err, LP_ERR_CONFIG, "%d training images in batches of %d leave a last batch of 1, "
                     "too few for batch_norm's batch statistics: change train.batch_size or "
                     "data.train_limit", n_train, b);
    return cli_blame_key(cfg, "train.batch_size", err);
}

/* Everything after the arguments: load, build, train, record. *run_out (may be
 * NULL) receives the run's id once it is recorded. Returns the exit code. */
static int train_main(train_args a, int64_t *run_out)
{
    double t0 = lp_seconds();
    /* Under mpirun rank 0 alone opens the database and prints (dist.h). */
    bool rank0 = lp_dist_rank() == 0;
    if (!rank0) a.quiet = true;
    /* Before the run is recorded: a Ctrl-C from here on ends it as 'interrupted'. */
    lp_train_catch_signals();
    train_session t;
    memset(&t, 0, sizeof t);
    lp_error err = {0};
    lp_status s = cli_load_plugins(&a.c, &err);
    if (!s && a.resume) s = load_resumed_config(&a, &t, &err);
    else if (!s && a.config_text) {
        s = lp_config_load_string(a.config_text, strlen(a.config_text), a.config_name, NULL, 0, &t.cfg, &err);
        t.cfg_loaded = s == LP_OK;
    } else if (!s) {
        s = lp_config_load(a.config, a.c.sets, a.c.n_sets, &t.cfg, &err);
        t.cfg_loaded = s == LP_OK;
        if (!s && t.cfg.sweep && !a.sweep_trial)
            s = lp_error_at(&err, LP_ERR_CONFIG, t.cfg.root->key_locs[lp_value_find(t.cfg.root, "sweep")],
                            "this config declares a sweep: run it with `loupe sweep %s` (loupe train trains one "
                            "config; a sweep trains one per trial)", a.config);
    }
    if (!s) lp_threads_init(cli_dist_threads(a.c.threads ? a.c.threads : t.cfg.train.threads));
    if (!s) s = lp_compute_reserve(&err);
    if (!s) s = cli_build_from_config(&t.cfg, &t.graph, &err);
    if (!s) s = cli_load_data(&t.cfg, &t.train, &t.test, &err);
    if (!s && t.cfg.data.validation > 0) {
        s = lp_dataset_hold_out(&t.train, t.cfg.data.validation, &t.val, &err);
        if (s == LP_ERR_ARG) err.status = s = LP_ERR_CONFIG;
        if (s) s = cli_blame_key(&t.cfg, "data.validation", &err);
    }
    /* after the hold-out: what batch norm sees is what is trained on */
    if (!s) s = check_batch_stats(&t.cfg, t.graph, t.train.n, &err);
    if (!s) lp_data_fingerprint_of(&t.train, &t.val, &t.test, &t.data);
    if (!s && a.resume) s = check_resumed_data(&t, &err);
    if (!s) lp_graph_init_params(t.graph, t.cfg.train.seed);
    if (!s && a.init_weights) {
        lp_snapshot snap;
        s = lp_snapshot_make(t.graph, NULL, &snap, &err);
        if (!s) s = lp_safetensors_read(a.init_weights, snap.params, snap.n_params, &err);
        lp_snapshot_free(&snap);
    }
    const lp_train_config *tc = &t.cfg.train;
    lp_train_options opt = {
        .epochs = tc->epochs, .batch_size = tc->batch_size, .seed = tc->seed,
        .shuffle = t.cfg.data.shuffle, .augment_shift = t.cfg.data.augment_shift,
        .augment_fill = t.cfg.data.normalize ? -t.cfg.data.mean / t.cfg.data.std : 0.0f,
        .optim = tc->optim, .schedule = tc->schedule, .early_stop = tc->early_stop,
        .progress = isatty(STDERR_FILENO) && !a.quiet, .quiet = a.quiet,
    };
    if (!s) {
        s = lp_trainer_init(&t.trainer, t.graph, &t.train, &t.test, &opt, &err);
        t.trainer_ready = s == LP_OK;
        if (t.val.n > 0) t.trainer.val = &t.val;
    }
    /* Under mpirun: all ranks set up alike, or all stop with the first failure. */
    s = lp_dist_agree(s, &err);
    if (!s) s = cli_dist_same_data(&t.data, &err);
    recorder rec = {.trainer = &t.trainer, .checkpoint_every = t.cfg.tracking.checkpoint_every,
                    .epochs = tc->epochs, .best_acc = -1, .selected_test_acc = NAN, .json = a.c.json};
    if (!s && a.resume) {
        void *blob = NULL;
        size_t size = 0;
        int epoch = 0;
        lp_resume_state resume = {0};
        /* A run killed or interrupted before its first epoch was committed has
         * nothing to load: it starts again from epoch 1 (same seed, same init).
         * Rank 0 alone reads the database; the checkpoint goes to every rank. */
        if (t.resume_has_ckpt)
            s = lp_runsdb_load_checkpoint(t.db, t.run_id, "last", &blob, &size, &epoch, NULL, &err);
        s = lp_dist_share(s, &blob, &size, &err);
        if (!s && size) s = lp_snapshot_restore(blob, size, t.graph, &t.trainer.optim, &resume, "checkpoint", &err);
        free(blob);
        if (!s && t.db) s = lp_runsdb_resume_run(t.db, t.run_id, epoch, &err);
        if (!s && t.db) s = lp_runsdb_set_stop_reason(t.db, t.run_id, NULL, &err);
        s = lp_dist_agree(s, &err);
        if (!s) {
            t.trainer.start_epoch = (int)resume.epoch;
            t.trainer.optim.t = resume.step;
            if (resume.has_v2_state) restore_trainer_state(&t.trainer, &resume);
            lp_run_details d;
            if (t.db && lp_runsdb_show(t.db, t.run_id, &d, &err) == LP_OK) {
                rec.best_acc = isnan(d.run.best_test_acc) ? -1 : d.run.best_test_acc;
                /* A version 1 checkpoint has no selection state: it picked on test/acc. */
                if (!resume.has_v2_state && t.trainer.start_epoch > 0) {
                    t.trainer.select.best = d.run.best_test_acc;
                    rec.selected_test_acc = d.run.best_test_acc;
                }
                lp_run_details_free(&d);
            }
            if (t.db) {
                rec.selected_test_acc = test_acc_at(t.db, t.run_id, t.trainer.select.best_epoch,
                                                    rec.selected_test_acc);
                fprintf(stderr, "resuming run %lld after epoch %d of %d%s\n", (long long)t.run_id, epoch,
                        tc->epochs, lp_dist_size() > 1 ? " (checkpoint sent to every rank)" : "");
            }
        }
    } else if (!s) {
        /* Stopped while loading (e.g. its sweep died): record no run that never trained. */
        if (lp_train_stop_requested()) s = lp_error_set(&err, LP_ERR_INTERRUPTED, "interrupted before the run started");
        else if (rank0) s = begin_run(&a, &t, &err);
        s = lp_dist_agree(s, &err);
    }
    if (s) {
        int code = rank0 ? cli_fail(&err) : lp_status_exit_code(err.status);
        free_session(&t);
        return code;
    }
    rec.db = t.db;
    rec.run_id = t.run_id;
    if (run_out) *run_out = t.run_id;
    char val_count[48] = "";
    if (t.val.n > 0) snprintf(val_count, sizeof val_count, "%d validation / ", t.val.n);
    if (!a.quiet)
        fprintf(stderr, "run %lld: %s, %zu parameters, %d training / %s%d test images, %d threads%s, db %s\n",
                (long long)t.run_id, t.cfg.name, lp_graph_param_floats(t.graph), t.train.n, val_count,
                t.test.n, lp_threads(), cli_dist_ranks_note(), lp_runsdb_path(t.db));
    lp_graph_set_profile(t.graph, a.profile);
    lp_epoch_result last = {0};
    /* The heartbeat says the run is alive (lifecycle.h); without it the run still
     * trains, and a later command judges it by its process alone. */
    lp_heartbeat *hb = NULL;
    lp_error hb_err = {0};
    if (rank0 && lp_heartbeat_start(lp_runsdb_path(t.db), t.run_id, &hb, &hb_err) != LP_OK)
        fprintf(stderr, "loupe: warning: no heartbeat for run %lld: %s\n", (long long)t.run_id, hb_err.msg);
    s = rank0 ? cli_dist_watch(lp_runsdb_path(t.db), t.run_id, &err) : LP_OK;
    s = lp_dist_agree(s, &err);
    if (!s) s = lp_trainer_run(&t.trainer, record_epoch, &rec, &last, &err);
    lp_dist_watch_stop();
    lp_heartbeat_stop(hb);
    lp_run_status status = s == LP_OK ? LP_RUN_COMPLETED
                           : s == LP_ERR_INTERRUPTED ? LP_RUN_INTERRUPTED : LP_RUN_FAILED;
    lp_error finish_err = {0};
    /* Why training ended, before the run is closed (runs.stop_reason). */
    const char *reason = s == LP_OK ? t.trainer.stop_reason
                         : s == LP_ERR_INTERRUPTED ? "interrupted"
                         : s == LP_ERR_NUMERIC ? "nan" : "error";
    if (rank0) {
        lp_runsdb_set_stop_reason(t.db, t.run_id, reason, &finish_err);
        lp_runsdb_finish_run(t.db, t.run_id, status, s ? err.msg : NULL, &finish_err);
    }
    if (a.profile && rank0) print_profile(t.graph);
    double wall = lp_seconds() - t0;
    int code = 0;
    if (s && !rank0) {
        code = lp_status_exit_code(s);   /* rank 0 says why */
    } else if (s) {
        code = cli_fail(&err);
        if (s == LP_ERR_INTERRUPTED || s == LP_ERR_NUMERIC)
            fprintf(stderr, "loupe: run %lld kept its committed epochs; continue with: loupe train --resume %lld%s%s\n",
                    (long long)t.run_id, (long long)t.run_id, a.c.db ? " --db " : "", a.c.db ? a.c.db : "");
    } else if (finish_err.status) {
        code = cli_fail(&finish_err);
    }
    if (!rank0) {
    } else if (a.c.json) {
        printf("{\"run_id\":%lld,\"name\":\"%s\",\"status\":\"%s\",\"epochs\":%d,\"final_test_acc\":%.6f,"
               "\"best_test_acc\":%.6f,\"best_epoch\":%lld,\"best_epoch_test_acc\":%.6f,\"selected_by\":\"%s\","
               "\"stop_reason\":\"%s\",\"final_test_loss\":%.6f,\"params\":%zu,"
               "\"threads\":%d,\"wall_s\":%.3f,\"db\":\"%s\"}\n",
               (long long)t.run_id, t.cfg.name, lp_run_status_name(status), last.epoch, last.test_acc,
               rec.best_acc < 0 ? 0 : rec.best_acc, t.trainer.select.best_epoch,
               isnan(rec.selected_test_acc) ? 0 : rec.selected_test_acc, selected_by(&t), reason,
               last.test_loss, lp_graph_param_floats(t.graph), lp_threads(), wall, lp_runsdb_path(t.db));
    } else if (!s) {
        printf("run %lld: %s, %d epochs%s%s, final test acc %.2f%%, best epoch %lld by %s (test acc %.2f%%), %.1f s\n",
               (long long)t.run_id, t.cfg.name, last.epoch, strcmp(reason, "epochs") ? ", " : "",
               strcmp(reason, "epochs") ? reason : "", 100 * last.test_acc, t.trainer.select.best_epoch,
               selected_by(&t), 100 * rec.selected_test_acc, wall);
    }
    free_session(&t);
    return code;
}

int cli_train(int argc, char **argv)
{
    train_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc < 0 ? 0 : rc;
    lp_error err = {0};
    if (lp_dist_init(&err)) return cli_fail(&err);
    rc = train_main(a, NULL);
    lp_dist_finalize();
    return rc;
}

int cli_train_rerun(const cli_rerun_request *r, int64_t *run_out)
{
    train_args a;
    memset(&a, 0, sizeof a);
    a.c.db = r->db;
    a.c.threads = r->threads;
    a.quiet = r->quiet;
    a.config_text = r->config_yaml;
    a.config_name = r->config_name;
    a.rerun_of = r->original;
    return train_main(a, run_out);
}
