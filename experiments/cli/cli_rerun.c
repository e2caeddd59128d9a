/* cli_rerun.c - `loupe rerun RUN`: train a recorded run again from its stored
 * config text, seed and thread count, and say whether the new run's metrics and
 * final checkpoint match the original's bit for bit, or where they first differ. */
#include "cli.h"

#include "dist.h"
#include "runsdb.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(void)
{
    printf("usage: loupe rerun RUN [--db PATH] [--quiet] [--json]\n\n"
           "Train run RUN again, as a new run in the same database (its setting\n"
           "run.rerun_of says which), from the config text the original recorded, with\n"
           "the same seed and the same number of threads. Then compare, bit for bit:\n"
           "the data fingerprint, every per-epoch metric except the wall-clock ones\n"
           "(train/seconds, train/images_per_s), and the SHA-256 of the last checkpoint\n"
           "(weights, optimizer state, step). RUN must be completed.\n\n"
           "exit status: 0 identical; 1 they differ (the first difference is printed,\n"
           "with the loupe commit, compiler and flags of both runs); otherwise that of\n"
           "the training (2 config, 3 data, 4 database, 5 NaN, 130 interrupted).\n\n"
           "options:\n"
           "  --db PATH   runs database (default runs.db)\n"
           "  --quiet     no per-epoch lines while it trains\n"
           "  --json      one JSON object on stdout: {\"original\", \"rerun\", \"identical\",\n"
           "              \"difference\", \"weights_sha256\"}\n");
}

/* Metrics that measure the machine, not the computation. */
static bool wall_clock(const lp_metric_row *m)
{
    return !strcmp(m->name, "seconds") || !strcmp(m->name, "images_per_s");
}

static bool same_bits(double a, double b) { return memcmp(&a, &b, sizeof a) == 0; }

/* SHA-256 of a run's last checkpoint blob into hex[65]. */
static lp_status last_checkpoint_sha(lp_runsdb *db, int64_t id, char hex[65], int *epoch, lp_error *err)
{
    void *blob;
    size_t size;
    lp_status s = lp_runsdb_load_checkpoint(db, id, "last", &blob, &size, epoch, NULL, err);
    if (s) return s;
    lp_sha256_hex(blob, size, hex);
    free(blob);
    return LP_OK;
}

/* The first difference between the metrics of a and b (wall-clock ones skipped),
 * written to why; false when they are identical. */
static bool metrics_differ(const lp_metric_row *a, int na, const lp_metric_row *b, int nb, int64_t ida,
                           int64_t idb, char *why, size_t cap, int *compared)
{
    int i = 0, j = 0;
    *compared = 0;
    for (;;) {
        while (i < na && wall_clock(&a[i])) i++;
        while (j < nb && wall_clock(&b[j])) j++;
        if (i == na || j == nb) break;
        const lp_metric_row *x = &a[i], *y = &b[j];
        if (x->epoch != y->epoch || x->step != y->step || strcmp(x->split, y->split) || strcmp(x->name, y->name)) {
            snprintf(why, cap, "the metrics differ in kind: run %lld has epoch %d step %lld %s/%s where run %lld "
                     "has epoch %d step %lld %s/%s", (long long)ida, x->epoch, x->step, x->split, x->name,
                     (long long)idb, y->epoch, y->step, y->split, y->name);
            return true;
        }
        if (!same_bits(x->value, y->value)) {
            snprintf(why, cap, "first difference at epoch %d (step %lld), %s/%s: %.17g (run %lld) vs %.17g (run %lld)",
                     x->epoch, x->step, x->split, x->name, x->value, (long long)ida, y->value, (long long)idb);
            return true;
        }
        (*compared)++;
        i++;
        j++;
    }
    if (i < na || j < nb) {
        const lp_metric_row *extra = i < na ? &a[i] : &b[j];
        snprintf(why, cap, "run %lld has metrics the other lacks, from epoch %d %s/%s on",
                 (long long)(i < na ? ida : idb), extra->epoch, extra->split, extra->name);
        return true;
    }
    return false;
}

static void print_build(const char *label, const lp_run_details *d)
{
    fprintf(stderr, "  %-8s run %lld: %d threads, loupe %s, commit %s, %s, %s; data sha256 %.16s...\n", label,
            (long long)d->run.id, d->run.threads, d->loupe_version ? d->loupe_version : "?", d->loupe_commit ? d->loupe_commit : "?",
            d->compiler ? d->compiler : "?", d->cflags ? d->cflags : "?", d->data_sha256 ? d->data_sha256 : "?");
}

int cli_rerun(int argc, char **argv)
{
    cli_common c = {0};
    long long id = 0;
    bool quiet = false;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            usage();
            return 0;
        }
        int r = cli_common_option("rerun", argc, argv, &i, &c);
        if (r < 0) return 2;
        if (r == 1) continue;
        if (!strcmp(argv[i], "--quiet")) quiet = true;
        else if (argv[i][0] == '-') return cli_usage_error("rerun", "unknown option '%s'", argv[i]);
        else if (id) return cli_usage_error("rerun", "one run at a time");
        else if (!cli_parse_int(argv[i], 1, INT64_MAX, &id))
            return cli_usage_error("rerun", "expected a run id, got '%s'", argv[i]);
    }
    if (!id) return cli_usage_error("rerun", "give the id of the run to train again");
    if (c.n_sets || c.n_plugins || c.threads)
        return cli_usage_error("rerun", "--set, --plugin and --threads are not allowed: a rerun uses what the run "
                               "recorded");
    /* One process compares with one process: under mpirun each rank would retrain alone. */
    if (lp_dist_launched_size() > 1)
        return cli_usage_error("rerun", "run it without mpirun: a rerun is one process (a run trained on "
                               "several ranks reruns as one, equal up to the last bits, docs/scaling.md)");
    const char *path = c.db ? c.db : "runs.db";

    /* The original, read before training (its config, threads, checkpoint hash). */
    lp_error err = {0};
    lp_runsdb *db = NULL;
    lp_run_details orig = {0}, again = {0};
    lp_metric_row *ma = NULL, *mb = NULL;
    int na = 0, nb = 0, epoch_a = 0, epoch_b = 0;
    char sha_a[65] = "", sha_b[65] = "";
    const char *config_name = "rerun.yaml";
    lp_status s = lp_runsdb_open_readonly(path, &db, &err);
    if (!s) s = lp_runsdb_show(db, id, &orig, &err);
    if (!s && strcmp(orig.run.status, "completed"))
        s = lp_error_set(&err, LP_ERR_ARG, "run %lld is %s: only a completed run can be compared (resume it first: "
                         "loupe train --resume %lld)", id, orig.run.status, id);
    if (!s) s = lp_runsdb_metrics(db, id, &ma, &na, &err);
    if (!s) s = last_checkpoint_sha(db, id, sha_a, &epoch_a, &err);
    for (int i = 0; !s && i < orig.n_params; i++)
        if (!strcmp(orig.keys[i], "config.path")) config_name = orig.values[i];
    lp_runsdb_close(db);
    db = NULL;
    int code = 0;
    if (s) {
        code = cli_fail(&err);
        goto done;
    }
    if (!quiet)
        fprintf(stderr, "rerun of run %lld (%s): seed %llu, %d threads, config sha256 %.16s...\n", id, orig.run.name,
                (unsigned long long)orig.run.seed, orig.run.threads, orig.run.config_hash);
    cli_rerun_request req = {.db = path, .config_yaml = orig.config_yaml, .config_name = config_name,
                             .threads = orig.run.threads > 0 ? orig.run.threads : 0, .original = id, .quiet = true};
    int64_t new_id = 0;
    code = cli_train_rerun(&req, &new_id);
    if (code) {
        fprintf(stderr, "loupe: rerun of run %lld did not complete (exit %d)\n", id, code);
        goto done;
    }

    s = lp_runsdb_open_readonly(path, &db, &err);
    if (!s) s = lp_runsdb_show(db, new_id, &again, &err);
    if (!s) s = lp_runsdb_metrics(db, new_id, &mb, &nb, &err);
    if (!s) s = last_checkpoint_sha(db, new_id, sha_b, &epoch_b, &err);
    if (s) {
        code = cli_fail(&err);
        goto done;
    }
    char why[1024] = "";
    int compared = 0;
    bool differ = false;
    if (orig.data_sha256 && again.data_sha256 && strcmp(orig.data_sha256, again.data_sha256)) {
        snprintf(why, sizeof why, "the data differ: run %lld saw %lld + %lld images of %s (sha256 %.16s...), run "
                 "%lld saw %lld + %lld of %s (sha256 %.16s...)", id, orig.data_train_count, orig.data_test_count,
                 orig.data_shape ? orig.data_shape : "?", orig.data_sha256, (long long)new_id,
                 again.data_train_count, again.data_test_count, again.data_shape ? again.data_shape : "?",
                 again.data_sha256);
        differ = true;
    }
    if (!differ) differ = metrics_differ(ma, na, mb, nb, id, new_id, why, sizeof why, &compared);
    if (!differ && (epoch_a != epoch_b || strcmp(sha_a, sha_b))) {
        snprintf(why, sizeof why, "the metrics match, but the last checkpoints differ: epoch %d sha256 %.16s... (run "
                 "%lld) vs epoch %d sha256 %.16s... (run %lld)", epoch_a, sha_a, id, epoch_b, sha_b,
                 (long long)new_id);
        differ = true;
    }
    code = differ ? 1 : 0;
    if (c.json) {
        printf("{\"original\":%lld,\"rerun\":%lld,\"identical\":%s,\"difference\":\"", id, (long long)new_id,
               differ ? "false" : "true");
        for (const char *p = why; *p; p++) {
            if (*p == '"' || *p == '\\') putchar('\\');
            putchar(*p);
        }
        printf("\",\"weights_sha256\":\"%s\",\"metrics_compared\":%d}\n", sha_b, compared);
    } else if (!differ) {
        printf("rerun of run %lld as run %lld: identical: %d metrics of %d epochs and the last checkpoint (sha256 "
               "%.16s...) match bit for bit\n", id, (long long)new_id, compared, again.run.epochs_done, sha_b);
    } else {
        printf("rerun of run %lld as run %lld differs: %s\n", id, (long long)new_id, why);
    }
    if (differ) {
        print_build("original", &orig);
        print_build("rerun", &again);
    }
done:
    lp_runsdb_close(db);
    lp_metric_rows_free(ma, na);
    lp_metric_rows_free(mb, nb);
    lp_run_details_free(&orig);
    lp_run_details_free(&again);
    return code;
}
