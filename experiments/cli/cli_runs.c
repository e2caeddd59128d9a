/* cli_runs.c - `loupe runs list|show|compare|export|delete`: the runs database
 * from the command line (plain `sqlite3 runs.db` works too: docs/runs-db.md). */
#include "cli.h"

#include "cli_show.h"
#include "evaluation.h"
#include "runsdb.h"
#include "sweeps.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(void)
{
    printf("usage: loupe runs list [--name PATTERN] [--status S] [--param KEY=VALUE]...\n"
           "                       [--order-by FIELD] [--asc] [--limit N] [--db PATH] [--json]\n"
           "       loupe runs show RUN [--confusion [--epoch E] [--split test|val]] [--ascii] [--db PATH]\n"
           "       loupe runs compare RUN RUN... [--db PATH]\n"
           "       loupe runs compare --sweep SWEEP [--by SPLIT/METRIC] [--json] [--db PATH]\n"
           "       loupe runs export RUN (--csv | --json) [--db PATH]\n"
           "       loupe runs delete RUN [--db PATH]\n\n"
           "list: newest first. PATTERN is an SQL LIKE pattern (mnist%%); S is running,\n"
           "completed, failed, interrupted or crashed; --param keeps runs whose setting equals\n"
           "VALUE (e.g. train.optimizer.lr=0.05); FIELD is id, name, started, duration,\n"
           "best_test_acc, final_test_acc or SPLIT/METRIC (test/loss).\n"
           "show: config, settings, per-epoch metrics, learning curves (sparklines) and\n"
           "checkpoints of one run. --confusion prints instead the confusion matrix of the\n"
           "last evaluation (or of epoch E) with per-class recall, precision and F1, the\n"
           "most confused pairs and the worst misclassified images. Unicode characters when\n"
           "the locale is UTF-8 (LANG=C.UTF-8), ASCII otherwise or with --ascii.\n"
           "compare: settings that differ, then final metrics side by side; --sweep ranks\n"
           "a sweep's trials by their best SPLIT/METRIC (default test/acc), with the swept\n"
           "settings, status and duration of each.\n"
           "export: every metric row as CSV or JSON on stdout.\n");
}

static const char *pct(double v, char *buf, size_t size)
{
    if (isnan(v)) snprintf(buf, size, "-");
    else snprintf(buf, size, "%.2f%%", 100 * v);
    return buf;
}

static lp_status open_db(const cli_common *c, lp_runsdb **db, lp_error *err)
{
    return lp_runsdb_open_readonly(c->db ? c->db : "runs.db", db, err);
}

static int runs_list(int argc, char **argv)
{
    cli_common c = {0};
    lp_run_filter f = {0};
    const char *keys[CLI_MAX_LIST], *values[CLI_MAX_LIST];
    char kv_store[CLI_MAX_LIST][256];
    for (int i = 2; i < argc; i++) {
        const char *s = argv[i];
        int r = cli_common_option("runs list", argc, argv, &i, &c);
        if (r < 0) return 2;
        if (r == 1) continue;
        if (!strcmp(s, "--asc")) { f.ascending = true; continue; }
        if (i + 1 >= argc) return cli_usage_error("runs", "unknown option '%s' (or it needs a value)", s);
        const char *v = argv[++i];
        if (!strcmp(s, "--name")) f.name_like = v;
        else if (!strcmp(s, "--status")) f.status = v;
        else if (!strcmp(s, "--order-by")) f.order_by = v;
        else if (!strcmp(s, "--limit")) {
            long long n;
            if (!cli_parse_int(v, 1, 1000000, &n)) return cli_usage_error("runs", "--limit expects a positive number");
            f.limit = (int)n;
        } else if (!strcmp(s, "--param")) {
            const char *eq = strchr(v, '=');
            if (!eq || f.n_params == CLI_MAX_LIST || strlen(v) >= 256)
                return cli_usage_error("runs", "--param expects KEY=VALUE, got '%s'", v);
            snprintf(kv_store[f.n_params], 256, "%.*s", (int)(eq - v), v);
            keys[f.n_params] = kv_store[f.n_params];
            values[f.n_params++] = eq + 1;
        } else return cli_usage_error("runs", "unknown option '%s'", s);
    }
    f.param_keys = keys;
    f.param_values = values;
    lp_error err = {0};
    lp_runsdb *db = NULL;
    lp_run_row *rows = NULL;
    int n = 0;
    lp_status s = open_db(&c, &db, &err);
    if (!s) s = lp_runsdb_list(db, &f, &rows, &n, &err);
    if (s) {
        lp_runsdb_close(db);
        return cli_fail(&err);
    }
    char b1[16], b2[16];
    if (c.json) printf("[");
    else printf("%5s  %-20s %-11s %6s %9s %9s %9s  %-24s  %s\n", "id", "name", "status", "epochs", "final", "best",
                "seconds", "started", "sweep");
    for (int i = 0; i < n; i++) {
        const lp_run_row *r = &rows[i];
        /* A sweep ("sweep (6 trials)") or a trial of one ("trial 3 of 12"): sweeps.h. */
        lp_sweep_role role;
        char sweep[48] = "";
        if (lp_sweeps_role(db, r->id, &role, &err) == LP_OK) {
            if (role.is_sweep) snprintf(sweep, sizeof sweep, "sweep (%d trials)", role.n_trials);
            else if (role.parent_run_id)
                snprintf(sweep, sizeof sweep, "trial %d of %lld", role.sweep_trial, (long long)role.parent_run_id);
        }
        lp_error_clear(&err);
        if (c.json)
            printf("%s{\"id\":%lld,\"name\":\"%s\",\"status\":\"%s\",\"epochs\":%d,\"final_test_acc\":%s%.6f%s,"
                   "\"best_test_acc\":%.6f,\"duration_s\":%.3f,\"started_at\":\"%s\",\"kind\":\"%s\","
                   "\"parent_run_id\":%lld,\"sweep_trial\":%d}",
                   i ? "," : "", (long long)r->id, r->name, r->status, r->epochs_done, "",
                   isnan(r->final_test_acc) ? 0 : r->final_test_acc, "",
                   isnan(r->best_test_acc) ? 0 : r->best_test_acc, isnan(r->duration_s) ? 0 : r->duration_s,
                   r->started_at ? r->started_at : "", role.is_sweep ? "sweep" : "train",
                   (long long)role.parent_run_id, role.sweep_trial);
        else
            printf("%5lld  %-20s %-11s %6d %9s %9s %9.1f  %-24s  %s\n", (long long)r->id, r->name, r->status,
                   r->epochs_done, pct(r->final_test_acc, b1, sizeof b1), pct(r->best_test_acc, b2, sizeof b2),
                   isnan(r->duration_s) ? 0.0 : r->duration_s, r->started_at ? r->started_at : "", sweep);
    }
    if (c.json) printf("]\n");
    else if (n == 0) printf("(no runs match)\n");
    lp_run_rows_free(rows, n);
    lp_runsdb_close(db);
    return 0;
}

/* Parse "RUN..." positional ids after the verb; returns count or -1. */
static int parse_ids(const char *verb, int argc, char **argv, cli_common *c, int64_t *ids, int max,
                     const char **flag)
{
    int n = 0;
    for (int i = 2; i < argc; i++) {
        int r = cli_common_option(verb, argc, argv, &i, c);
        if (r < 0) return -1;
        if (r == 1) continue;
        long long id;
        if (flag && (!strcmp(argv[i], "--csv"))) { *flag = argv[i]; continue; }
        if (!cli_parse_int(argv[i], 1, INT64_MAX, &id) || n == max) {
            cli_usage_error("runs", "%s: unexpected argument '%s' (run ids are numbers)", verb, argv[i]);
            return -1;
        }
        ids[n++] = id;
    }
    return n;
}

/* `runs show RUN --confusion`: the matrix of one evaluation. */
static int show_confusion(const cli_common *c, int64_t id, int epoch, const char *split, bool utf8);

static int runs_show(int argc, char **argv)
{
    cli_common c = {0};
    int64_t id = 0;
    int n_ids = 0;
    bool confusion = false, ascii = false;
    long long epoch = 0;
    const char *split = "test";
    for (int i = 2; i < argc; i++) {
        int r = cli_common_option("runs show", argc, argv, &i, &c);
        if (r < 0) return 2;
        if (r == 1) continue;
        const char *s = argv[i];
        long long v;
        if (!strcmp(s, "--confusion")) confusion = true;
        else if (!strcmp(s, "--ascii")) ascii = true;
        else if (!strcmp(s, "--epoch") && i + 1 < argc) {
            if (!cli_parse_int(argv[++i], 1, INT32_MAX, &epoch))
                return cli_usage_error("runs", "--epoch expects an epoch number (1, 2, ...), got '%s'", argv[i]);
        } else if (!strcmp(s, "--split") && i + 1 < argc) {
            split = argv[++i];
            if (strcmp(split, "test") && strcmp(split, "val"))
                return cli_usage_error("runs", "--split expects test or val, got '%s'", split);
        } else if (s[0] != '-' && cli_parse_int(s, 1, INT64_MAX, &v) && n_ids == 0) {
            id = v;
            n_ids++;
        } else return cli_usage_error("runs", "show: unexpected argument '%s'", s);
    }
    if (n_ids != 1) return cli_usage_error("runs", "show takes one run id");
    if (epoch && !confusion) return cli_usage_error("runs", "--epoch goes with --confusion");
    bool utf8 = !ascii && cli_locale_is_utf8();
    if (confusion) return show_confusion(&c, id, (int)epoch, split, utf8);
    lp_error err = {0};
    lp_runsdb *db = NULL;
    lp_run_details d;
    lp_metric_row *m = NULL;
    int nm = 0;
    lp_status s = open_db(&c, &db, &err);
    if (!s) s = lp_runsdb_show(db, id, &d, &err);
    if (!s) s = lp_runsdb_metrics(db, id, &m, &nm, &err);
    if (s) {
        lp_runsdb_close(db);
        return cli_fail(&err);
    }
    char b1[16], b2[16];
    const lp_run_row *r = &d.run;
    printf("run %lld: %s  [%s]\n  started %s, finished %s, %.1f s, %d epochs, %lld parameters, seed %llu, %d threads, host %s\n",
           (long long)r->id, r->name, r->status, r->started_at ? r->started_at : "-",
           r->finished_at ? r->finished_at : "-", isnan(r->duration_s) ? 0 : r->duration_s, r->epochs_done,
           r->param_count, (unsigned long long)r->seed, r->threads, r->host ? r->host : "-");
    printf("  final test accuracy %s, best %s, config sha256 %.16s...\n", pct(r->final_test_acc, b1, sizeof b1),
           pct(r->best_test_acc, b2, sizeof b2), r->config_hash ? r->config_hash : "");
    if (r->error) printf("  error: %s\n", r->error);
    if (d.stop_reason) printf("  stopped: %s\n", d.stop_reason);
    if (d.kind && strcmp(d.kind, "train")) printf("  kind: %s\n", d.kind);
    if (d.parent_run_id > 0) printf("  trial %d of sweep run %lld\n", d.sweep_trial, (long long)d.parent_run_id);
    if (d.kind && !strcmp(d.kind, "sweep")) printf("  its trials: loupe runs compare --sweep %lld\n", (long long)id);
    if (d.world_size > 1) printf("  trained on %d MPI ranks\n", d.world_size);
    if (d.pid >= 0) printf("  process %lld on %s, last heartbeat %s\n", d.pid, r->host ? r->host : "-",
                           d.heartbeat_at ? d.heartbeat_at : "-");
    if (d.data_sha256)
        printf("  data: %lld training + %lld test images of %s, sha256 %s\n", d.data_train_count,
               d.data_test_count, d.data_shape ? d.data_shape : "?", d.data_sha256);
    if (d.loupe_version || d.loupe_commit)
        printf("  built: loupe %s (commit %s), %s, %s\n", d.loupe_version ? d.loupe_version : "?",
               d.loupe_commit ? d.loupe_commit : "?", d.compiler ? d.compiler : "?", d.cflags ? d.cflags : "?");
    printf("\nsettings:\n");
    for (int i = 0; i < d.n_params; i++) printf("  %-32s %s\n", d.keys[i], d.values[i]);
    /* Validation columns only for runs with a validation split (data.validation). */
    bool has_val = false;
    for (int i = 0; i < nm; i++) has_val |= !strcmp(m[i].split, "val");
    printf("\n%6s %10s %10s ", "epoch", "train loss", "train acc");
    if (has_val) printf("%10s %10s ", "val loss", "val acc");
    printf("%10s %10s %10s %8s\n", "test loss", "test acc", "lr", "seconds");
    /* Rows come ordered by epoch: gather one line per epoch. */
    for (int i = 0; i < nm;) {
        int e = m[i].epoch;
        double loss[3] = {NAN, NAN, NAN}, acc[3] = {NAN, NAN, NAN}, lr = NAN, sec = NAN;   /* train, val, test */
        for (; i < nm && m[i].epoch == e; i++) {
            int k = !strcmp(m[i].split, "train") ? 0 : !strcmp(m[i].split, "val") ? 1 : 2;
            const char *nme = m[i].name;
            if (!strcmp(nme, "loss")) loss[k] = m[i].value;
            else if (!strcmp(nme, "acc")) acc[k] = m[i].value;
            else if (!strcmp(nme, "lr")) lr = m[i].value;
            else if (!strcmp(nme, "seconds")) sec = m[i].value;
        }
        printf("%6d %10.4f %9.2f%% ", e, loss[0], 100 * acc[0]);
        if (has_val) printf("%10.4f %9.2f%% ", loss[1], 100 * acc[1]);
        printf("%10.4f %9.2f%% %10.4g %8.2f\n", loss[2], 100 * acc[2], lr, sec);
    }
    cli_print_curves(stdout, m, nm, utf8);
    int *ev_epochs = NULL, n_ev = 0;
    if (lp_runsdb_evaluation_epochs(db, id, "test", &ev_epochs, &n_ev, &err) == LP_OK && n_ev > 0) {
        char which[48];
        if (n_ev == 1) snprintf(which, sizeof which, "epoch %d", ev_epochs[0]);
        else snprintf(which, sizeof which, "%d epochs from %d to %d", n_ev, ev_epochs[0], ev_epochs[n_ev - 1]);
        printf("\nconfusion matrices of the test set: %s (loupe runs show %lld --confusion [--epoch E])\n", which,
               (long long)id);
    }
    lp_error_clear(&err);
    free(ev_epochs);
    printf("\ncheckpoints:\n");
    for (int i = 0; i < d.n_checkpoints; i++) {
        const lp_ckpt_info *k = &d.checkpoints[i];
        printf("  epoch %3d  step %7lld  %8lld bytes  crc32 %08x%s\n", k->epoch, k->step, k->size_bytes,
               k->checksum, k->is_best ? "  best" : "");
    }
    printf("\nconfig:\n%s\n", d.config_yaml);
    lp_metric_rows_free(m, nm);
    lp_run_details_free(&d);
    lp_runsdb_close(db);
    return 0;
}

static int show_confusion(const cli_common *c, int64_t id, int epoch, const char *split, bool utf8)
{
    lp_error err = {0};
    lp_runsdb *db = NULL;
    lp_run_details d;
    lp_evaluation ev;
    lp_status s = open_db(c, &db, &err);
    bool have_details = false;
    if (!s) have_details = !(s = lp_runsdb_show(db, id, &d, &err));
    if (!s) s = lp_runsdb_read_evaluation(db, id, epoch, split, &ev, &err);
    if (s) {
        if (have_details) lp_run_details_free(&d);
        lp_runsdb_close(db);
        return cli_fail(&err);
    }
    printf("run %lld: %s  [%s, %d epoch%s]\n", (long long)id, d.run.name, d.run.status, d.run.epochs_done,
           d.run.epochs_done == 1 ? "" : "s");
    cli_print_confusion(stdout, &ev, 10, utf8);
    lp_evaluation_free(&ev);
    lp_run_details_free(&d);
    lp_runsdb_close(db);
    return 0;
}

#define MAX_COMPARE 16

static int runs_compare(int argc, char **argv)
{
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "--sweep")) return cli_runs_compare_sweep(argc, argv);
    cli_common c = {0};
    int64_t ids[MAX_COMPARE];
    int n = parse_ids("compare", argc, argv, &c, ids, MAX_COMPARE, NULL);
    if (n < 2) return n < 0 ? 2 : cli_usage_error("runs", "compare takes two or more run ids");
    lp_error err = {0};
    lp_runsdb *db = NULL;
    lp_param_cmp_row *rows = NULL;
    int nr = 0;
    lp_status s = open_db(&c, &db, &err);
    if (!s) s = lp_runsdb_compare_params(db, ids, n, &rows, &nr, &err);
    lp_run_details d[MAX_COMPARE];
    int loaded = 0;
    for (; !s && loaded < n; loaded++) {
        s = lp_runsdb_show(db, ids[loaded], &d[loaded], &err);
        if (s) break;
    }
    if (s) {
        for (int i = 0; i < loaded; i++) lp_run_details_free(&d[i]);
        lp_param_cmp_rows_free(rows, nr, n);
        lp_runsdb_close(db);
        return cli_fail(&err);
    }
    printf("%-32s", "setting");
    for (int i = 0; i < n; i++) printf(" %16lld", (long long)ids[i]);
    printf("\n");
    int differing = 0;
    for (int k = 0; k < nr; k++) {
        if (!rows[k].differs) continue;
        differing++;
        printf("%-32s", rows[k].key);
        for (int i = 0; i < n; i++) printf(" %16.16s", rows[k].values[i] ? rows[k].values[i] : "-");
        printf("\n");
    }
    if (!differing) printf("(all settings equal)\n");
    char b[16];
    const char *labels[] = {"status", "epochs", "final test acc", "best test acc", "seconds"};
    for (int l = 0; l < 5; l++) {
        printf("%-32s", labels[l]);
        for (int i = 0; i < n; i++) {
            const lp_run_row *r = &d[i].run;
            if (l == 0) printf(" %16s", r->status);
            else if (l == 1) printf(" %16d", r->epochs_done);
            else if (l == 2) printf(" %16s", pct(r->final_test_acc, b, sizeof b));
            else if (l == 3) printf(" %16s", pct(r->best_test_acc, b, sizeof b));
            else printf(" %16.1f", isnan(r->duration_s) ? 0 : r->duration_s);
        }
        printf("\n");
    }
    for (int i = 0; i < n; i++) lp_run_details_free(&d[i]);
    lp_param_cmp_rows_free(rows, nr, n);
    lp_runsdb_close(db);
    return 0;
}

static int runs_export(int argc, char **argv)
{
    cli_common c = {0};
    int64_t id;
    const char *csv = NULL;
    if (parse_ids("export", argc, argv, &c, &id, 1, &csv) != 1) return cli_usage_error("runs", "export takes one run id");
    if (!csv == !c.json) return cli_usage_error("runs", "export needs --csv or --json");
    lp_error err = {0};
    lp_runsdb *db = NULL;
    lp_status s = open_db(&c, &db, &err);
    if (!s) s = lp_runsdb_export_metrics(db, id, csv ? LP_EXPORT_CSV : LP_EXPORT_JSON, stdout, &err);
    lp_runsdb_close(db);
    return s ? cli_fail(&err) : 0;
}

static int runs_delete(int argc, char **argv)
{
    cli_common c = {0};
    int64_t id;
    if (parse_ids("delete", argc, argv, &c, &id, 1, NULL) != 1) return cli_usage_error("runs", "delete takes one run id");
    lp_error err = {0};
    lp_runsdb *db = NULL;
    lp_status s = lp_runsdb_open(c.db ? c.db : "runs.db", &db, &err);
    if (!s) s = lp_runsdb_delete_run(db, id, &err);
    lp_runsdb_close(db);
    if (s) return cli_fail(&err);
    printf("deleted run %lld\n", (long long)id);
    return 0;
}

int cli_runs(int argc, char **argv)
{
    if (argc < 2 || cli_is_help(argv[1])) {
        usage();
        return argc < 2 ? 2 : 0;
    }
    for (int i = 2; i < argc; i++)
        if (cli_is_help(argv[i])) { usage(); return 0; }
    const char *verb = argv[1];
    if (!strcmp(verb, "list")) return runs_list(argc, argv);
    if (!strcmp(verb, "show")) return runs_show(argc, argv);
    if (!strcmp(verb, "compare")) return runs_compare(argc, argv);
    if (!strcmp(verb, "export")) return runs_export(argc, argv);
    if (!strcmp(verb, "delete")) return runs_delete(argc, argv);
    return cli_usage_error("runs", "unknown subcommand '%s' (list, show, compare, export, delete)", verb);
}
