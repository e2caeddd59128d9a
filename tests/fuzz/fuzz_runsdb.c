/* fuzz_runsdb.c - libFuzzer target: a corrupted runs database file -> every reader
 * of experiments/store/runsdb.h (what `loupe runs`, `eval --run`, `export` and
 * `rerun` call), then the writers' open (migrations, the crash sweep).
 *
 * Two kinds of input:
 *   - bytes: the database file itself (seed: a small real loupe database), so the
 *     fuzzer corrupts pages, headers, the schema and records;
 *   - 'S' + SQL: the SQL is run on a fresh copy of that database first, so the
 *     fuzzer can write what a byte flip rarely reaches: NULLs and wrong types in
 *     every column, rows that refer to nothing, other schema versions, dropped
 *     views, a writable_schema rewrite (a line "-- reopen" starts a second
 *     connection, which sees the rewritten schema). ATTACH, VACUUM and
 *     load_extension are refused, values are capped at 1 MiB and each connection's
 *     SQL at 200,000 VM steps.
 * The file lives in a private directory under /dev/shm (or $TMPDIR).
 *
 * Invariants besides memory safety: every refusal carries its status and a message;
 * a row read successfully has its NOT NULL strings (name, status, config text and
 * hash, start time, metric split and name) non-NULL; a loaded checkpoint has the
 * size it says; an evaluation read back has a total and trace equal to its matrix's
 * and labels inside its classes; loaded curves have ascending epochs.
 */
#include "checkpoint.h"
#include "curves.h"
#include "evaluation.h"
#include "fuzz_model.h"
#include "lifecycle.h"
#include "runsdb.h"

#include <math.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef LP_FUZZ_ENTRY
#define LP_FUZZ_ENTRY LLVMFuzzerTestOneInput
#endif

static char fuzz_runsdb_path[512];
static unsigned char *fuzz_runsdb_template;
static size_t fuzz_runsdb_template_n;
static FILE *fuzz_runsdb_null;

static void fuzz_runsdb_fail(const char *what, const char *msg)
{
    fprintf(stderr, "fuzz_runsdb: %s%s%s\n", what, msg ? ": " : "", msg ? msg : "");
    abort();
}

static void fuzz_runsdb_contract(lp_status s, const lp_error *err, const char *what)
{
    if (s && (err->status != s || !err->msg[0])) fuzz_runsdb_fail(what, "a refusal without its status or message");
}

static void fuzz_runsdb_rm(void)
{
    const char *suffix[] = {"-wal", "-shm", "-journal"};
    char p[600];
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s%s", fuzz_runsdb_path, suffix[i]);
        unlink(p);
    }
}

static void fuzz_runsdb_put(const void *data, size_t n)
{
    fuzz_runsdb_rm();
    FILE *f = fopen(fuzz_runsdb_path, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f)) fuzz_runsdb_fail("cannot write the database file", NULL);
}

/* The seed database: two runs (one completed with two checkpoints, one left
 * running by a process that is gone), their settings and metrics, made by loupe
 * itself, then made self-contained (no -wal) with 512-byte pages. */
static void fuzz_runsdb_make_template(const char *path)
{
    lp_runsdb *db;
    lp_error err = {0};
    if (lp_runsdb_open(path, &db, &err)) fuzz_runsdb_fail("template: open", err.msg);
    const char *keys[] = {"train.optimizer.lr", "train.epochs", "config.path"};
    const char *values[] = {"0.05", "2", "t.yaml"};
    lp_run_new r = {.name = "fuzz", .config_yaml = "name: fuzz\ntrain: {epochs: 2}\n", .seed = 7,
                    .param_count = 37, .threads = 1, .n_params = 3, .keys = keys, .values = values,
                    .data_sha256 = "00", .data_train_count = 2, .data_test_count = 1, .data_shape = "1x2x2",
                    .loupe_version = "0.1", .loupe_commit = "x", .compiler = "cc", .cflags = "-O2"};
    lp_tensor_ref params[FUZZ_MODEL_N], states[FUZZ_MODEL_N];
    fuzz_model_refs(0, params);
    fuzz_model_refs(1, states);
    void *blob;
    size_t size;
    if (lp_checkpoint_encode(params, FUZZ_MODEL_N, states, FUZZ_MODEL_N, NULL, &blob, &size, &err))
        fuzz_runsdb_fail("template: checkpoint", err.msg);
    /* An evaluation of 3 classes: 4 images, 2 wrong (one class never predicted). */
    lp_evaluation ev;
    if (lp_evaluation_init(&ev, 3, 2, "test", &err)) fuzz_runsdb_fail("template: evaluation", err.msg);
    const long long cells[9] = {1, 1, 0, 0, 1, 0, 1, 0, 0};
    memcpy(ev.confusion, cells, sizeof cells);
    const double prf[3][3] = {{0.5, 0.5, 0.5}, {0.5, 1, 2.0 / 3}, {NAN, 0, NAN}};
    for (int c = 0; c < 3; c++)
        ev.classes[c] = (lp_class_metrics){.cls = c, .support = c == 1 ? 1 : 2, .precision = prf[c][0],
                                           .recall = prf[c][1], .f1 = prf[c][2]};
    ev.misclassified[0] = (lp_misclassified){.image_index = 1, .true_label = 0, .pred_label = 1,
                                             .pred_prob = 0.7, .true_prob = 0.2};
    ev.misclassified[1] = (lp_misclassified){.image_index = 3, .true_label = 2, .pred_label = 0,
                                             .pred_prob = 0.5, .true_prob = 0.1};
    ev.n_misclassified = 2;
    int64_t id;
    for (int run = 0; run < 2; run++) {
        if (lp_runsdb_begin_run(db, &r, &id, &err)) fuzz_runsdb_fail("template: begin", err.msg);
        for (int e = 1; e <= 2 - run; e++) {
            lp_metric m[] = {{"train", "loss", 1.0 / e}, {"test", "acc", 0.5 + 0.1 * e}, {"test", "loss", NAN}};
            if (lp_runsdb_commit_epoch_eval(db, id, e, 10 * e, m, 3, blob, size, e == 2, &ev, &err))
                fuzz_runsdb_fail("template: commit", err.msg);
        }
    }
    lp_evaluation_free(&ev);
    if (lp_runsdb_finish_run(db, 1, LP_RUN_COMPLETED, NULL, &err)) fuzz_runsdb_fail("template: finish", err.msg);
    free(blob);
    lp_runsdb_close(db);
    sqlite3 *h;
    if (sqlite3_open(path, &h) != SQLITE_OK ||
        sqlite3_exec(h, "UPDATE runs SET pid = 999999999 WHERE id = 2; PRAGMA journal_mode=DELETE; "
                        "PRAGMA page_size=512; VACUUM;", NULL, NULL, NULL) != SQLITE_OK)
        fuzz_runsdb_fail("template: compact", sqlite3_errmsg(h));
    sqlite3_close(h);
}

static void fuzz_runsdb_cleanup(void)
{
    fuzz_runsdb_rm();
    unlink(fuzz_runsdb_path);
    char dir[512];
    snprintf(dir, sizeof dir, "%s", fuzz_runsdb_path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    rmdir(dir);
}

static void fuzz_runsdb_init(void)
{
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char dir[400];
    snprintf(dir, sizeof dir, "%s/loupe-fuzz-runsdb-XXXXXX", base);
    if (!mkdtemp(dir)) fuzz_runsdb_fail("mkdtemp failed", NULL);
    snprintf(fuzz_runsdb_path, sizeof fuzz_runsdb_path, "%s/runs.db", dir);
    atexit(fuzz_runsdb_cleanup);
    fuzz_runsdb_make_template(fuzz_runsdb_path);
    FILE *f = fopen(fuzz_runsdb_path, "rb");
    if (!f) fuzz_runsdb_fail("template: reopen", NULL);
    fseek(f, 0, SEEK_END);
    fuzz_runsdb_template_n = (size_t)ftell(f);
    rewind(f);
    fuzz_runsdb_template = malloc(fuzz_runsdb_template_n);
    if (!fuzz_runsdb_template || fread(fuzz_runsdb_template, 1, fuzz_runsdb_template_n, f) != fuzz_runsdb_template_n)
        fuzz_runsdb_fail("template: read", NULL);
    fclose(f);
    fuzz_runsdb_null = fopen("/dev/null", "w");
    /* The sweep must judge the template's second run (pid 999999999: gone). */
    setenv("LOUPE_STALE_SECONDS", "0", 1);
}

/* Only what stays inside the one file, and in bounded time and memory. */
static int fuzz_runsdb_authorize(void *ctx, int action, const char *a, const char *b, const char *c, const char *d)
{
    (void)ctx, (void)a, (void)b, (void)c, (void)d;
    return action == SQLITE_ATTACH || action == SQLITE_DETACH ? SQLITE_DENY : SQLITE_OK;
}

static int fuzz_runsdb_progress(void *steps)
{
    return ++*(int *)steps > 200;   /* called every 1000 VM steps */
}

static void fuzz_runsdb_apply_sql(const uint8_t *sql, size_t n)
{
    char *text = malloc(n + 1);
    if (!text) return;
    memcpy(text, sql, n);
    text[n] = '\0';
    for (char *p = text; *p; p++)
        if (!strncasecmp(p, "vacuum", 6) || !strncasecmp(p, "load_extension", 14)) {
            free(text);
            return;
        }
    char *second = strstr(text, "\n-- reopen\n");
    if (second) {
        *second = '\0';
        second += strlen("\n-- reopen\n");
    }
    for (const char *part = text; part; part = part == text ? second : NULL) {
        sqlite3 *h;
        if (sqlite3_open(fuzz_runsdb_path, &h) == SQLITE_OK) {
            int steps = 0;
            sqlite3_limit(h, SQLITE_LIMIT_LENGTH, 1 << 20);
            sqlite3_set_authorizer(h, fuzz_runsdb_authorize, NULL);
            sqlite3_progress_handler(h, 1000, fuzz_runsdb_progress, &steps);
            sqlite3_exec(h, part, NULL, NULL, NULL);
        }
        sqlite3_close(h);
    }
    free(text);
}

static void fuzz_runsdb_check_row(const lp_run_row *r)
{
    if (!r->name || !r->status || !r->config_hash || !r->started_at)
        fuzz_runsdb_fail("a run row with a NULL name, status, config hash or start time", NULL);
}

/* Everything `loupe runs show`, `eval --run`, `export`, `rerun` read about one run. */
static void fuzz_runsdb_one_run(lp_runsdb *db, int64_t id)
{
    lp_error err = {0};
    lp_run_details d;
    lp_status s = lp_runsdb_show(db, id, &d, &err);
    fuzz_runsdb_contract(s, &err, "show");
    if (!s) {
        fuzz_runsdb_check_row(&d.run);
        if (!d.config_yaml) fuzz_runsdb_fail("show: NULL config text", NULL);
        for (int i = 0; i < d.n_params; i++)
            if (!d.keys[i] || !d.values[i]) fuzz_runsdb_fail("show: a NULL setting", NULL);
        lp_run_details_free(&d);
    }
    lp_metric_row *m;
    int n;
    lp_error_clear(&err);
    s = lp_runsdb_metrics(db, id, &m, &n, &err);
    fuzz_runsdb_contract(s, &err, "metrics");
    if (!s) {
        for (int i = 0; i < n; i++)
            if (!m[i].name || !m[i].split[0]) fuzz_runsdb_fail("metrics: a NULL name or split", NULL);
        lp_metric_rows_free(m, n);
    }
    const char *which[] = {"last", "best", "1"};
    for (int k = 0; k < 3; k++) {
        void *blob;
        size_t size;
        int epoch;
        lp_error_clear(&err);
        s = lp_runsdb_load_checkpoint(db, id, which[k], &blob, &size, &epoch, NULL, &err);
        fuzz_runsdb_contract(s, &err, "load_checkpoint");
        if (!s) {
            volatile unsigned char sum = 0;
            for (size_t i = 0; i < size; i++) sum += ((unsigned char *)blob)[i];   /* ASan checks the extent */
            lp_checkpoint ck;
            lp_error e2 = {0};
            if (lp_checkpoint_decode(blob, size, &ck, &e2) == LP_OK) lp_checkpoint_free(&ck);
            free(blob);
        }
    }
    for (int f = 0; f < 2; f++) {
        lp_error_clear(&err);
        s = lp_runsdb_export_metrics(db, id, f ? LP_EXPORT_JSON : LP_EXPORT_CSV, fuzz_runsdb_null, &err);
        fuzz_runsdb_contract(s, &err, "export");
    }
    /* `runs show --confusion`, `loupe report`: the evaluation of the last epoch and of epoch 1. */
    for (int epoch = 0; epoch < 2; epoch++) {
        lp_evaluation ev;
        lp_error_clear(&err);
        s = lp_runsdb_read_evaluation(db, id, epoch, "test", &ev, &err);
        fuzz_runsdb_contract(s, &err, "read_evaluation");
        if (s) continue;
        int k = ev.n_classes;
        long long total = 0, trace = 0;
        for (int t = 0; t < k; t++)
            for (int p = 0; p < k; p++) {
                total += ev.confusion[(size_t)t * k + p];
                if (t == p) trace += ev.confusion[(size_t)t * k + p];
            }
        if (k < 1 || total != ev.total || trace != ev.correct)
            fuzz_runsdb_fail("read_evaluation: totals differ from the matrix", NULL);
        for (int i = 0; i < ev.n_misclassified; i++) {
            const lp_misclassified *m2 = &ev.misclassified[i];
            if (m2->true_label < 0 || m2->true_label >= k || m2->pred_label < 0 || m2->pred_label >= k ||
                m2->image_index < 0)
                fuzz_runsdb_fail("read_evaluation: a misclassified label outside the classes", NULL);
        }
        lp_evaluation_free(&ev);
    }
    /* `viz curves`. */
    lp_curve_run cr;
    lp_error_clear(&err);
    s = lp_curve_run_load(db, id, &cr, &err);
    fuzz_runsdb_contract(s, &err, "curve_run_load");
    if (!s) {
        for (int e = 1; e < cr.n_epochs; e++)
            if (cr.epochs[e] <= cr.epochs[e - 1]) fuzz_runsdb_fail("curve_run_load: epochs not ascending", NULL);
        if (cr.n_epochs > 0) {
            lp_error_clear(&err);
            s = lp_svg_curves_write(fuzz_runsdb_null, &cr, 1, &err);
            fuzz_runsdb_contract(s, &err, "svg_curves_write");
        }
        lp_curve_run_free(&cr);
    }
}

static void fuzz_runsdb_readers(void)
{
    lp_runsdb *db;
    lp_error err = {0};
    lp_status s = lp_runsdb_open_readonly(fuzz_runsdb_path, &db, &err);
    fuzz_runsdb_contract(s, &err, "open_readonly");
    if (s) return;
    const char *pk[] = {"train.optimizer.lr"}, *pv[] = {"0.05"};
    lp_run_filter filters[] = {
        {0},
        {.name_like = "f%", .status = "completed", .order_by = "test/loss", .ascending = true, .limit = 2},
        {.n_params = 1, .param_keys = pk, .param_values = pv, .order_by = "duration"},
    };
    int64_t ids[8];
    int n_ids = 0;
    for (int f = 0; f < 3; f++) {
        lp_run_row *rows;
        int n;
        lp_error_clear(&err);
        s = lp_runsdb_list(db, &filters[f], &rows, &n, &err);
        fuzz_runsdb_contract(s, &err, "list");
        if (s) continue;
        for (int i = 0; i < n; i++) {
            fuzz_runsdb_check_row(&rows[i]);
            if (n_ids < 8) ids[n_ids++] = rows[i].id;
        }
        lp_run_rows_free(rows, n);
    }
    for (int i = 0; i < n_ids && i < 4; i++) fuzz_runsdb_one_run(db, ids[i]);
    fuzz_runsdb_one_run(db, 1);
    if (n_ids > 0) {
        lp_param_cmp_row *rows;
        int n;
        lp_error_clear(&err);
        s = lp_runsdb_compare_params(db, ids, n_ids, &rows, &n, &err);
        fuzz_runsdb_contract(s, &err, "compare_params");
        if (!s) lp_param_cmp_rows_free(rows, n, n_ids);
    }
    (void)lp_runsdb_count_stale(db);
    lp_runsdb_close(db);
}

int LP_FUZZ_ENTRY(const uint8_t *data, size_t size);
int LP_FUZZ_ENTRY(const uint8_t *data, size_t size)
{
    if (!fuzz_runsdb_template) fuzz_runsdb_init();
    if (size > 0 && data[0] == 'S') {
        fuzz_runsdb_put(fuzz_runsdb_template, fuzz_runsdb_template_n);
        fuzz_runsdb_apply_sql(data + 1, size - 1);
    } else {
        fuzz_runsdb_put(data, size);
    }
    fuzz_runsdb_readers();
    /* The writers' open of the same file: migrations, WAL, the crash sweep, then a resume. */
    lp_runsdb *db;
    lp_error err = {0};
    lp_status s = lp_runsdb_open(fuzz_runsdb_path, &db, &err);
    fuzz_runsdb_contract(s, &err, "open");
    if (!s) {
        lp_error_clear(&err);
        s = lp_runsdb_resume_run(db, 2, 1, &err);
        fuzz_runsdb_contract(s, &err, "resume_run");
        lp_runsdb_close(db);
    }
    return 0;
}
