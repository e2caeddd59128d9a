/* The runs database: schema creation and refusals (newer schema, not SQLite,
 * foreign tables, read-only), exact read-back of metrics (NaN included) and
 * checkpoints, atomic epoch commits, corruption detection, queries and exports,
 * several processes writing one file at once, the upgrade of a version 1 file, and
 * the run lifecycle (heartbeats, crashed runs, resumes refused while alive). */
#include "checkpoint.h"
#include "lifecycle.h"
#include "runsdb.h"
#include "sha256.h"

#include "test_db.h"

#include <criterion/criterion.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- helpers ---- */

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n + 1);
    cr_assert_eq(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

static bool exists(const char *path, const char *suffix)
{
    char p[512];
    snprintf(p, sizeof p, "%s%s", path, suffix);
    return access(p, F_OK) == 0;
}

static lp_runsdb *open_ok(const char *path)
{
    lp_runsdb *db;
    lp_error err = {0};
    cr_assert_eq(lp_runsdb_open(path, &db, &err), LP_OK, "%s", err.msg);
    return db;
}

static int64_t new_run(lp_runsdb *db, const char *name, const char *lr)
{
    const char *keys[] = {"train.optimizer.lr", "train.epochs", "name"};
    const char *values[] = {lr, "3", name};
    lp_run_new r = {.name = name, .config_yaml = "name: x\ntrain: {epochs: 3}\n", .seed = 0xFFFFFFFFFFFFFFF1ull,
                    .param_count = 28938, .threads = 2, .n_params = 3, .keys = keys, .values = values};
    int64_t id;
    lp_error err = {0};
    cr_assert_eq(lp_runsdb_begin_run(db, &r, &id, &err), LP_OK, "%s", err.msg);
    return id;
}

/* A small real checkpoint whose bytes depend on tag. */
static void *make_blob(int tag, size_t *size)
{
    float w[6];
    for (int i = 0; i < 6; i++) w[i] = (float)(tag * 10 + i);
    lp_tensor_ref t[] = {{"fc.weight", (lp_shape){2, {2, 3}}, w}};
    void *buf;
    lp_error err = {0};
    cr_assert_eq(lp_checkpoint_encode(t, 1, NULL, 0, NULL, &buf, size, &err), LP_OK, "%s", err.msg);
    return buf;
}

static lp_status commit(lp_runsdb *db, int64_t run, int epoch, double test_acc, bool ckpt, bool best,
                        lp_error *err)
{
    lp_metric m[] = {{"train", "loss", 1.0 / epoch}, {"test", "acc", test_acc}, {"test", "loss", 0.5 / epoch}};
    size_t size = 0;
    void *blob = ckpt ? make_blob(epoch, &size) : NULL;
    lp_status s = lp_runsdb_commit_epoch(db, run, epoch, 100LL * epoch, m, 3, blob, size, best, err);
    free(blob);
    return s;
}

/* ---- schema ---- */

Test(runsdb, empty_file_gets_the_schema)
{
    char *path = tmp_db();
    FILE *f = fopen(path, "w");
    fclose(f);
    lp_runsdb *db = open_ok(path);
    lp_runsdb_close(db);
    cr_assert_eq(q_int(path, "PRAGMA user_version"), LP_RUNSDB_SCHEMA_VERSION);
    cr_assert_eq(q_int(path, "PRAGMA application_id"), LP_RUNSDB_APP_ID);
    cr_assert_eq(q_int(path, "SELECT count(*) FROM sqlite_master WHERE name IN ('runs','run_params','metrics',"
                             "'checkpoints','run_summary','epoch_metrics')"), 6);
    cr_assert_eq(q_int(path, "SELECT journal_mode = 'wal' FROM pragma_journal_mode"), 1);
    rm_db(path);
}

Test(runsdb, reopen_is_idempotent)
{
    char *path = tmp_db();
    lp_runsdb *db = open_ok(path);
    int64_t id = new_run(db, "a", "0.05");
    lp_runsdb_close(db);
    long long objects = q_int(path, "SELECT count(*) FROM sqlite_master");
    db = open_ok(path);
    lp_runsdb_close(db);
    db = open_ok(path);
    lp_runsdb_close(db);
    cr_assert_eq(q_int(path, "SELECT count(*) FROM sqlite_master"), objects);
    cr_assert_eq(q_int(path, "SELECT count(*) FROM runs"), 1);
    cr_assert_eq(q_int(path, "SELECT id FROM runs"), id);
    rm_db(path);
}

Test(runsdb, newer_schema_is_refused)
{
    char *path = tmp_db();
    lp_runsdb_close(open_ok(path));
    q_exec(path, "PRAGMA user_version = 99");
    size_t n1, n2;
    unsigned char *before = slurp(path, &n1);
    lp_runsdb *db;
    lp_error err = {0};
    cr_assert_eq(lp_runsdb_open(path, &db, &err), LP_ERR_DB);
    cr_assert(strstr(err.msg, "schema version 99 is newer"), "%s", err.msg);
    cr_assert(strstr(err.msg, path), "%s", err.msg);
    unsigned char *after = slurp(path, &n2);
    cr_assert(n1 == n2 && memcmp(before, after, n1) == 0);
    lp_error_clear(&err);
    cr_assert_eq(lp_runsdb_open_readonly(path, &db, &err), LP_ERR_DB);
    cr_assert(strstr(err.msg, "newer"), "%s", err.msg);
    free(before);
    free(after);
    rm_db(path);
}

Test(runsdb, a_file_that_is_not_sqlite_is_refused_and_untouched)
{
    char *path = tmp_db();
    FILE *f = fopen(path, "wb");
    for (int i = 0; i < 5000; i++) fputc("loupe is not a database\n"[i % 24], f);
    fclose(f);
    size_t n1, n2;
    unsigned char *before = slurp(path, &n1);
    lp_runsdb *db;
    lp_error err = {0};
    cr_assert_eq(lp_runsdb_open(path, &db, &err), LP_ERR_DB);
    cr_assert(strstr(err.msg, "not a SQLite database"), "%s", err.msg);
    unsigned char *after = slurp(path, &n2);
    cr_assert(n1 == n2 && memcmp(before, after, n1) == 0, "the file was modified");
    cr_assert(!exists(path, "-wal") && !exists(path, "-shm") && !exists(path, "-journal"));
    free(before);
    free(after);
    rm_db(path);
}

Test(runsdb, a_foreign_sqlite_database_is_refused_and_untouched)
{
    char *path = tmp_db();
    q_exec(path, "CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL); INSERT INTO invoices VALUES (1, 9.5);");
    size_t n1, n2;
    unsigned char *before = slurp(path, &n1);
    lp_runsdb *db;
    lp_error err = {0};
    cr_assert_eq(lp_runsdb_open(path, &db, &err), LP_ERR_DB);
    cr_assert(strstr(err.msg, "no loupe schema"), "%s", err.msg);
    unsigned char *after = slurp(path, &n2);
    cr_assert(n1 == n2 && memcmp(before, after, n1) == 0, "the file was modified");
    cr_assert_eq(q_int(path, "SELECT journal_mode = 'delete' FROM pragma_journal_mode"), 1, "must stay out of WAL");
    cr_assert_eq(q_int(path, "SELECT count(*) FROM sqlite_master"), 1);
    /* Another application's id is refused even on an empty schema. */
    char *p2 = tmp_db();
    q_exec(p2, "PRAGMA application_id = 1234");
    lp_error_clear(&err);
    cr_assert_eq(lp_runsdb_open(p2, &db, &err), LP_ERR_DB);
    cr_assert(strstr(err.msg, "another application"), "%s", err.msg);
    free(before);
    free(after);
    rm_db(path);
    rm_db(p2);
}

/* Root ignores file permissions, so the honest test drops to user nobody in a
 * child process: there chmod 0444 really makes the file read-only. */
Test(runsdb, a_read_only_file_is_refused_before_any_change)
{
    char *path = tmp_db();
    lp_runsdb *db = open_ok(path);
    new_run(db, "a", "0.1");
    lp_runsdb_close(db);
    cr_assert_eq(chmod(path, 0444), 0);
    size_t n1, n2;
    unsigned char *before = slurp(path, &n1);
    pid_t pid = fork();
    if (pid == 0) {
        if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0)) _exit(10);
        lp_runsdb *d;
        lp_error e = {0};
        lp_status s = lp_runsdb_open(path, &d, &e);
        if (s == LP_OK) _exit(11);
        if (!strstr(e.msg, "read-only") || !strstr(e.msg, path)) {
            fprintf(stderr, "unexpected message: %s\n", e.msg);
            _exit(12);
        }
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    cr_assert(WIFEXITED(status));
    cr_assert_neq(WEXITSTATUS(status), 10, "could not drop privileges to test read-only");
    cr_assert_eq(WEXITSTATUS(status), 0, "child failed with %d", WEXITSTATUS(status));
    unsigned char *after = slurp(path, &n2);
    cr_assert(n1 == n2 && memcmp(before, after, n1) == 0, "the file was modified");
    free(before);
    free(after);
    rm_db(path);
}

Test(runsdb, readonly_open_reads_and_refuses_writes)
{
    char *path = tmp_db();
    lp_runsdb *db = open_ok(path);
    int64_t id = new_run(db, "a", "0.1");
    lp_runsdb_close(db);
    lp_error err = {0};
    cr_assert_eq(lp_runsdb_open_readonly(path, &db, &err), LP_OK, "%s", err.msg);
    lp_run_row *rows;
    int n;
    cr_assert_eq(lp_runsdb_list(db, NULL, &rows, &n, &err), LP_OK, "%s", err.msg);
    cr_assert_eq(n, 1);
    cr_assert_eq(rows[0].id, id);
    lp_run_rows_free(rows, n);
    cr_assert_eq(lp_runsdb_finish_run(db, id, LP_RUN_FAILED, "x", &err), LP_ERR_DB);
    cr_assert(strstr(err.msg, "read-only"), "%s", err.msg);
    lp_runsdb_close(db);
    lp_error_clear(&err);
    char *missing = tmp_db();
    cr_assert_eq(lp_runsdb_open_readonly(missing, &db, &err), LP_ERR_IO);
    cr_assert(!exists(missing, ""), "a read-only open must not create the file");
    rm_db(missing);
    rm_db(path);
}

/* ---- recording and reading back ---- */

Test(runsdb, metrics_and_checkpoints_read_back_exactly)
{
    char *path = tmp_db();
    lp_runsdb *db = open_ok(path);
    int64_t id = new_run(db, "two_conv", "0.05");
    lp_error err = {0};
    lp_metric m1[] = {{"train", "loss", NAN}, {"train", "acc", 0.1234567890123456789}, {"test", "acc", 0.97},
                      {"test", "loss", INFINITY}, {"train", "lr", 0.05}};
    size_t s1, s2;
    void *b1 = make_blob(1, &s1), *b2 = make_blob(2, &s2);
    cr_assert_eq(lp_runsdb_commit_epoch(db, id, 1, 938, m1, 5, b1, s1, true, &err), LP_OK, "%s", err.msg);
    lp_metric m2[] = {{"test", "acc", 0.96}, {"train", "loss", -0.0}};
    cr_assert_eq(lp_runsdb_commit_epoch(db, id, 2, 1876, m2, 2, b2, s2, false, &err), LP_OK, "%s", err.msg);

    lp_metric_row *rows;
    int n;
    cr_assert_eq(lp_runsdb_metrics(db, id, &rows, &n, &err), LP_OK, "%s", err.msg);
    cr_assert_eq(n, 7);
    /* order: epoch, step, split, name */
    cr_assert_str_eq(rows[0].name, "acc");
    cr_assert_str_eq(rows[0].split, "test");
    cr_assert_eq(rows[0].value, 0.97);
    cr_assert_str_eq(rows[1].name, "loss");
    cr_assert(isinf(rows[1].value) && rows[1].value > 0);
    cr_assert_str_eq(rows[2].name, "acc");
    cr_assert_eq(rows[2].value, 0.1234567890123456789);
    cr_assert_str_eq(rows[3].name, "loss");
    cr_assert(isnan(rows[3].value), "NaN must survive (stored as NULL + is_nan)");
    cr_assert_eq(rows[3].step, 938);
    cr_assert_eq(rows[5].epoch, 2);
    cr_assert(rows[6].value == 0.0);
    cr_assert(rows[0].wall_time > 1.6e9);
    lp_metric_rows_free(rows, n);
    cr_assert_eq(q_int(path, "SELECT count(*) FROM metrics WHERE is_nan = 1 AND value IS NULL"), 1);

    void *blob;
    size_t size;
    int epoch;
    long long step;
    cr_assert_eq(lp_runsdb_load_checkpoint(db, id, "last", &blob, &size, &epoch, &step, &err), LP_OK, "%s", err.msg);
    cr_assert(epoch == 2 && step == 1876 && size == s2 && memcmp(blob, b2, s2) == 0);
    free(blob);
    cr_assert_eq(lp_runsdb_load_checkpoint(db, id, "best", &blob, &size, &epoch, NULL, &err), LP_OK, "%s", err.msg);
    cr_assert(epoch == 1 && size == s1 && memcmp(blob, b1, s1) == 0);
    free(blob);
    cr_assert_eq(lp_runsdb_load_checkpoint(db, id, "2", &blob, &size, &epoch, NULL, &err), LP_OK, "%s", err.msg);
    cr_assert(epoch == 2 && memcmp(blob, b2, s2) == 0);
    free(blob);
    cr_assert_eq(lp_runsdb_load_checkpoint(db, id, "7", &blob, &size, &epoch, NULL, &err), LP_ERR_ARG);
    cr_assert(strstr(err.msg, "no checkpoint of epoch 7"), "%s", err.msg);
    lp_error_clear(&err);
    cr_assert_eq(lp_runsdb_load_checkpoint(db, id, "2x", &blob, &size, &epoch, NULL, &err), LP_ERR_ARG);
    lp_error_clear(&err);

    lp_run_details d;
    cr_assert_eq(lp_runsdb_show(db, id, &d, &err), LP_OK, "%s", err.msg);
    cr_assert_eq(d.run.epochs_done, 2);
    cr_assert_eq(d.run.best_test_acc, 0.97);
    cr_assert_eq(d.run.final_test_acc, 0.96);
    cr_assert_eq(d.run.seed, 0xFFFFFFFFFFFFFFF1ull);
    cr_assert_str_eq(d.run.status, "running");
    cr_assert_eq(d.n_params, 3);
    cr_assert_str_eq(d.keys[0], "name");   /* sorted */
    cr_assert_str_eq(d.values[1], "3");
    cr_assert_eq(d.n_checkpoints, 2);
    cr_assert(d.checkpoints[0].is_best && !d.checkpoints[1].is_best);
    /* CRC-32 of the blob without its own CRC trailer, so checkpoints differ. */
    cr_assert_eq(d.checkpoints[1].checksum, lp_crc32(b2, s2 - 4));
    cr_assert_neq(d.checkpoints[0].checksum, d.checkpoints[1].checksum);
    cr_assert_eq(d.checkpoints[1].format_version, LP_CHECKPOINT_VERSION);
    char hash[65];
    lp_sha256_hex(d.config_yaml, strlen(d.config_yaml), hash);
    cr_assert_str_eq(d.run.config_hash, hash);
    lp_run_details_free(&d);

    cr_assert_eq(lp_runsdb_finish_run(db, id, LP_RUN_COMPLETED, NULL, &err), LP_OK, "%s", err.msg);
    cr_assert_eq(commit(db, id, 3, 0.5, true, false, &err), LP_ERR_ARG);
    cr_assert(strstr(err.msg, "is completed"), "%s", err.msg);
    cr_assert_eq(q_int(path, "SELECT count(*) FROM run_summary WHERE status = 'completed' AND epochs = 2 "
                             "AND lr = '0.05' AND duration_s >= 0"), 1);
    free(b1);
    free(b2);
    lp_runsdb_close(db);
    rm_db(path);
}

Test(runsdb, best_flag_moves_to_the_new_best)
{
    char *path = tmp_db();
    lp_runsdb *db = open_ok(path);
    int64_t id = new_run(db, "a", "0.1");
    lp_error err = {0};
    cr_assert_eq(commit(db, id, 1, 0.9, true, true, &err), LP_OK, "%s", err.msg);
    cr_assert_eq(commit(db, id, 2, 0.95, true, true, &err), LP_OK, "%s", err.msg);
    cr_assert_eq(commit(db, id, 3, 0.93, true, false, &err), LP_OK, "%s", err.msg);
    cr_assert_eq(q_int(path, "SELECT group_concat(epoch) FROM checkpoints WHERE is_best = 1"), 2);
    lp_runsdb_close(db);
    rm_db(path);
}

Test(runsdb, commit_epoch_is_all_or_nothing)
{
    char *path = tmp_db();
    lp_runsdb *db = open_ok(path);
    int64_t id = new_run(db, "a", "0.1");
    lp_error err = {0};
    cr_assert_eq(commit(db, id, 1, 0.9, true, false, &err), LP_OK, "%s", err.msg);

    /* Metrics insert fine, then the checkpoint hits UNIQUE(run_id, epoch). */
    lp_metric extra[] = {{"test", "other", 1.0}, {"train", "other", 2.0}};
    size_t size;
    void *blob = make_blob(9, &size);
    cr_assert_eq(lp_runsdb_commit_epoch(db, id, 1, 5, extra, 2, blob, size, true, &err), LP_ERR_DB);
    cr_assert(strstr(err.msg, "UNIQUE"), "%s", err.msg);
    cr_assert(strstr(err.msg, "epoch 1 of run"), "%s", err.msg);
    cr_assert_eq(q_int(path, "SELECT count(*) FROM metrics WHERE name = 'other'"), 0);
    cr_assert_eq(q_int(path, "SELECT count(*) FROM checkpoints WHERE is_best = 1"), 0, "is_best update must roll back");

    /* A NULL metric name in the middle: the first metric is already inserted when it fails. */
    lp_error_clear(&err);
    lp_metric bad[] = {{"train", "loss", 0.3}, {"test", NULL, 0.4}, {"test", "acc", 0.99}};
    cr_assert_eq(lp_runsdb_commit_epoch(db, id, 2, 200, bad, 3, blob, size, true, &err), LP_ERR_DB);
    cr_assert(strstr(err.msg, "NOT NULL"), "%s", err.msg);
    cr_assert_eq(q_int(path, "SELECT count(*) FROM metrics WHERE epoch = 2"), 0);
    cr_assert_eq(q_int(path, "SELECT count(*) FROM checkpoints WHERE epoch = 2"), 0);
    cr_assert_eq(q_int(path, "SELECT epochs_done FROM runs"), 1);
    cr_assert_eq(q_int(path, "SELECT best_test_acc = 0.9 FROM runs"), 1);

    /* The database is still usable: the same epoch commits cleanly afterwards. */
    lp_error_clear(&err);
    cr_assert_eq(commit(db, id, 2, 0.91, true, false, &err), LP_OK, "%s", err.msg);
    cr_assert_eq(q_int(path, "SELECT epochs_done FROM runs"), 2);
    free(blob);
    lp_runsdb_close(db);
    rm_db(path);
}

Test(runsdb, a_damaged_checkpoint_blob_is_refused_naming_run_and_epoch)
{
    char *path = tmp_db();
    lp_runsdb *db = open_ok(path);
    int64_t id = new_run(db, "a", "0.1");
    lp_error err = {0};
    cr_assert_eq(commit(db, id, 1, 0.9, true, false, &err), LP_OK, "%s", err.msg);
    cr_assert_eq(commit(db, id, 2, 0.9, true, false, &err), LP_OK, "%s", err.msg);

    /* Flip one byte of epoch 2's blob from another connection. */
    sqlite3 *h;
    cr_assert_eq(sqlite3_open(path, &h), SQLITE_OK);
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(h, "SELECT weights FROM checkpoints WHERE epoch = 2", -1, &st, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    int n = sqlite3_column_bytes(st, 0);
    unsigned char *b = malloc((size_t)n);
    memcpy(b, sqlite3_column_blob(st, 0), (size_t)n);
    sqlite3_finalize(st);
    b[n / 2] ^= 0x10;
    cr_assert_eq(sqlite3_prepare_v2(h, "UPDATE checkpoints SET weights = ? WHERE epoch = 2", -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_blob(st, 1, b, n, SQLITE_STATIC);
    cr_assert_eq(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    sqlite3_close(h);

    void *blob;
    size_t size;
    int epoch;
    char want[96];
    snprintf(want, sizeof want, "checkpoint of run %lld epoch 2: checksum mismatch", (long long)id);
    cr_assert_eq(lp_runsdb_load_checkpoint(db, id, "last", &blob, &size, &epoch, NULL, &err), LP_ERR_DATA);
    cr_assert(strstr(err.msg, want), "%s", err.msg);
    lp_error_clear(&err);
    cr_assert_eq(lp_runsdb_load_checkpoint(db, id, "1", &blob, &size, &epoch, NULL, &err), LP_OK, "%s", err.msg);
    free(blob);
    free(b);
    lp_runsdb_close(db);
    rm_db(path);
}

Test(runsdb, resume_drops_epochs_after_the_checkpoint)
{
    char *path = tmp_db();
    lp_runsdb *db = open_ok(path);
    int64_t id = new_run(db, "a", "0.1");
    lp_error err = {0};
    cr_assert_eq(commit(db, id, 1, 0.90, true, false, &err), LP_OK, "%s", err.msg);
    cr_assert_eq(commit(db, id, 2, 0.92, true, true, &err), LP_OK, "%s", err.msg);
    cr_assert_eq(commit(db, id, 3, 0.95, false, false, &err), LP_OK, "%s", err.msg);
    cr_assert_eq(lp_runsdb_finish_run(db, id, LP_RUN_INTERRUPTED, "interrupted", &err), LP_OK);
    cr_assert_eq(lp_runsdb_resume_run(db, id, 2, &err), LP_OK, "%s", err.msg);
    cr_assert_eq(q_int(path, "SELECT count(*) FROM metrics WHERE epoch = 3"), 0);
    cr_assert_eq(q_int(path, "SELECT epochs_done = 2 AND status = 'running' AND error IS NULL AND "
                             "best_test_acc = 0.92 AND final_test_acc = 0.92 FROM runs"), 1);
    cr_assert_eq(commit(db, id, 3, 0.96, true, false, &err), LP_OK, "%s", err.msg);
    lp_runsdb_close(db);
    rm_db(path);
}

/* ---- queries ---- */

Test(runsdb, list_filters_and_orders)
{
    char *path = tmp_db();
    lp_runsdb *db = open_ok(path);
    lp_error err = {0};
    int64_t a = new_run(db, "mnist_dense", "0.05");
    int64_t b = new_run(db, "mnist_two_conv", "0.05");
    int64_t c = new_run(db, "fashion_two_conv", "0.1");
    cr_assert_eq(commit(db, a, 1, 0.97, false, false, &err), LP_OK);
    cr_assert_eq(commit(db, b, 1, 0.99, false, false, &err), LP_OK);
    cr_assert_eq(commit(db, c, 1, 0.89, false, false, &err), LP_OK);
    cr_assert_eq(lp_runsdb_finish_run(db, c, LP_RUN_FAILED, "NaN loss at epoch 1 step 3", &err), LP_OK);

    lp_run_row *rows;
    int n;
    cr_assert_eq(lp_runsdb_list(db, NULL, &rows, &n, &err), LP_OK, "%s", err.msg);
    cr_assert(n == 3 && rows[0].id == c && rows[2].id == a, "newest first");
    lp_run_rows_free(rows, n);

    const char *k[] = {"train.optimizer.lr"}, *v[] = {"0.05"};
    lp_run_filter f = {.n_params = 1, .param_keys = k, .param_values = v, .order_by = "test/acc"};
    cr_assert_eq(lp_runsdb_list(db, &f, &rows, &n, &err), LP_OK, "%s", err.msg);
    cr_assert(n == 2 && rows[0].id == b && rows[1].id == a);
    cr_assert_eq(rows[0].sort_value, 0.99);
    lp_run_rows_free(rows, n);

    lp_run_filter g = {.name_like = "%two_conv", .order_by = "best_test_acc", .ascending = true, .limit = 1};
    cr_assert_eq(lp_runsdb_list(db, &g, &rows, &n, &err), LP_OK, "%s", err.msg);
    cr_assert(n == 1 && rows[0].id == c);
    cr_assert_str_eq(rows[0].error, "NaN loss at epoch 1 step 3");
    lp_run_rows_free(rows, n);

    lp_run_filter h = {.status = "failed"};
    cr_assert_eq(lp_runsdb_list(db, &h, &rows, &n, &err), LP_OK, "%s", err.msg);
    cr_assert(n == 1 && rows[0].id == c && strcmp(rows[0].status, "failed") == 0);
    lp_run_rows_free(rows, n);

    lp_run_filter bad = {.order_by = "acc; DROP TABLE runs"};
    cr_assert_eq(lp_runsdb_list(db, &bad, &rows, &n, &err), LP_ERR_ARG);
    cr_assert(strstr(err.msg, "cannot order by"), "%s", err.msg);
    lp_error_clear(&err);
    lp_run_filter bad2 = {.status = "done"};
    cr_assert_eq(lp_runsdb_list(db, &bad2, &rows, &n, &err), LP_ERR_ARG);
    cr_assert(strstr(err.msg, "unknown run status 'done'"), "%s", err.msg);

    lp_param_cmp_row *cmp;
    int nr;
    int64_t ids[] = {a, c};
    lp_error_clear(&err);
    cr_assert_eq(lp_runsdb_compare_params(db, ids, 2, &cmp, &nr, &err), LP_OK, "%s", err.msg);
    cr_assert_eq(nr, 3);
    cr_assert_str_eq(cmp[0].key, "name");
    cr_assert(cmp[0].differs);
    cr_assert_str_eq(cmp[1].key, "train.epochs");
    cr_assert(!cmp[1].differs);
    cr_assert_str_eq(cmp[2].values[0], "0.05");
    cr_assert_str_eq(cmp[2].values[1], "0.1");
    cr_assert(cmp[2].differs);
    lp_param_cmp_rows_free(cmp, nr, 2);
    int64_t ghost[] = {a, 999};
    cr_assert_eq(lp_runsdb_compare_params(db, ghost, 2, &cmp, &nr, &err), LP_ERR_ARG);
    cr_assert(strstr(err.msg, "no run 999"), "%s", err.msg);
    lp_runsdb_close(db);
    rm_db(path);
}

Test(runsdb, export_csv_and_json)
{
    char *path = tmp_db();
    lp_runsdb *db = open_ok(path);
    int64_t id = new_run(db, "a,\"b\"", "0.05");
    lp_error err = {0};
    lp_metric m[] = {{"train", "loss", NAN}, {"test", "acc", 0.5}, {"train", "x,y", -INFINITY}};
    cr_assert_eq(lp_runsdb_commit_epoch(db, id, 1, 10, m, 3, NULL, 0, false, &err), LP_OK, "%s", err.msg);
    char *buf;
    size_t len;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_eq(lp_runsdb_export_metrics(db, id, LP_EXPORT_CSV, f, &err), LP_OK, "%s", err.msg);
    fclose(f);
    cr_assert(strncmp(buf, "run_id,epoch,step,split,name,value,wall_time\n", 45) == 0, "%s", buf);
    cr_assert(strstr(buf, "1,1,10,test,acc,0.5,"), "%s", buf);
    cr_assert(strstr(buf, "1,1,10,train,loss,nan,"), "%s", buf);
    cr_assert(strstr(buf, "1,1,10,train,\"x,y\",-inf,"), "%s", buf);
    free(buf);
    f = open_memstream(&buf, &len);
    cr_assert_eq(lp_runsdb_export_metrics(db, id, LP_EXPORT_JSON, f, &err), LP_OK, "%s", err.msg);
    fclose(f);
    cr_assert(strstr(buf, "\"name\": \"a,\\\"b\\\"\""), "%s", buf);
    cr_assert(strstr(buf, "\"name\": \"loss\", \"value\": \"nan\""), "%s", buf);
    cr_assert(strstr(buf, "\"train.optimizer.lr\": \"0.05\""), "%s", buf);
    cr_assert(strstr(buf, "\"final_test_acc\": 0.5"), "%s", buf);
    free(buf);
    lp_runsdb_close(db);
    rm_db(path);
}

Test(runsdb, delete_cascades)
{
    char *path = tmp_db();
    lp_runsdb *db = open_ok(path);
    int64_t a = new_run(db, "a", "0.1"), b = new_run(db, "b", "0.1");
    lp_error err = {0};
    cr_assert_eq(commit(db, a, 1, 0.9, true, true, &err), LP_OK);
    cr_assert_eq(commit(db, b, 1, 0.9, true, true, &err), LP_OK);
    cr_assert_eq(lp_runsdb_delete_run(db, a, &err), LP_OK, "%s", err.msg);
    cr_assert_eq(q_int(path, "SELECT count(*) FROM metrics"), 3);
    cr_assert_eq(q_int(path, "SELECT count(*) FROM checkpoints"), 1);
    cr_assert_eq(q_int(path, "SELECT count(*) FROM run_params"), 3);
    cr_assert_eq(lp_runsdb_delete_run(db, a, &err), LP_ERR_ARG);
    cr_assert(strstr(err.msg, "no run"), "%s", err.msg);
    lp_runsdb_close(db);
    rm_db(path);
}

Test(runsdb, sha256_known_answers)
{
    char h[65];
    lp_sha256_hex("", 0, h);
    cr_assert_str_eq(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    lp_sha256_hex("abc", 3, h);
    cr_assert_str_eq(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    lp_sha256_hex(m, strlen(m), h);
    cr_assert_str_eq(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    /* A million 'a' fed in uneven pieces (1, 2, ... 127 bytes): the streaming path. */
    static char a[1000000];
    memset(a, 'a', sizeof a);
    lp_sha256 st;
    lp_sha256_init(&st);
    for (size_t off = 0, k = 1; off < sizeof a; off += k, k = k % 127 + 1)
        lp_sha256_update(&st, a + off, off + k <= sizeof a ? k : sizeof a - off);
    lp_sha256_final_hex(&st, h);
    cr_assert_str_eq(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

/* ---- concurrency ---- */

Test(runsdb, three_processes_write_one_file, .timeout = 120)
{
    char *path = tmp_db();
    enum { PROCS = 3, RUNS = 50 };
    pid_t pids[PROCS];
    for (int p = 0; p < PROCS; p++) {
        pids[p] = fork();
        cr_assert_geq(pids[p], 0);
        if (pids[p] == 0) {
            /* All three also race to create the schema. */
            lp_runsdb *db;
            lp_error e = {0};
            if (lp_runsdb_open(path, &db, &e)) {
                fprintf(stderr, "open: %s\n", e.msg);
                _exit(1);
            }
            for (int r = 0; r < RUNS; r++) {
                char name[32];
                snprintf(name, sizeof name, "p%d_r%d", p, r);
                const char *k[] = {"proc"}, *v[] = {name};
                lp_run_new nr = {.name = name, .config_yaml = name, .seed = (uint64_t)r, .n_params = 1,
                                 .keys = k, .values = v};
                int64_t id;
                lp_metric m[] = {{"train", "loss", 0.5}, {"test", "acc", 0.9}};
                unsigned char blob[256];
                memset(blob, p * 16 + r, sizeof blob);
                if (lp_runsdb_begin_run(db, &nr, &id, &e) ||
                    lp_runsdb_commit_epoch(db, id, 1, 1, m, 2, blob, sizeof blob, true, &e) ||
                    lp_runsdb_finish_run(db, id, LP_RUN_COMPLETED, NULL, &e)) {
                    fprintf(stderr, "%s: %s\n", name, e.msg);
                    _exit(2);
                }
            }
            lp_runsdb_close(db);
            _exit(0);
        }
    }
    for (int p = 0; p < PROCS; p++) {
        int status;
        waitpid(pids[p], &status, 0);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writer %d failed", p);
    }
    cr_assert_eq(q_int(path, "SELECT count(*) FROM runs WHERE status = 'completed' AND epochs_done = 1"), PROCS * RUNS);
    cr_assert_eq(q_int(path, "SELECT count(*) FROM metrics"), 2 * PROCS * RUNS);
    cr_assert_eq(q_int(path, "SELECT count(*) FROM checkpoints WHERE is_best = 1"), PROCS * RUNS);
    cr_assert_eq(q_int(path, "SELECT count(DISTINCT value) FROM run_params"), PROCS * RUNS);
    rm_db(path);
}

/* ---- crashes and full files ---- */

/* Each epoch's metrics and checkpoint must be both present or both absent. */
static void check_epochs_paired(const char *path)
{
    cr_assert_eq(q_int(path, "SELECT count(*) FROM (SELECT DISTINCT run_id, epoch FROM metrics) m "
                             "WHERE NOT EXISTS (SELECT 1 FROM checkpoints c WHERE c.run_id = m.run_id "
                             "AND c.epoch = m.epoch)"), 0, "metrics without their checkpoint");
    cr_assert_eq(q_int(path, "SELECT count(*) FROM checkpoints c WHERE NOT EXISTS (SELECT 1 FROM metrics m "
                             "WHERE m.run_id = c.run_id AND m.epoch = c.epoch)"), 0, "checkpoint without metrics");
    cr_assert_eq(q_int(path, "SELECT count(*) FROM runs WHERE epochs_done != (SELECT count(*) FROM checkpoints c "
                             "WHERE c.run_id = runs.id)"), 0, "epochs_done disagrees with the commits");
    cr_assert_eq(q_int(path, "SELECT count(*) FROM pragma_integrity_check WHERE integrity_check != 'ok'"), 0);
}

Test(runsdb, kill_9_never_splits_an_epoch, .timeout = 120)
{
    char *path = tmp_db();
    lp_runsdb_close(open_ok(path));
    for (int k = 0; k < 12; k++) {
        pid_t pid = fork();
        if (pid == 0) {
            lp_runsdb *db;
            lp_error e = {0};
            if (lp_runsdb_open(path, &db, &e)) _exit(1);
            int64_t id = new_run(db, "victim", "0.1");
            static unsigned char blob[64 * 1024];   /* large enough for the kill to land mid-write */
            for (int ep = 1; ep < 100000; ep++) {
                memset(blob, ep, sizeof blob);
                lp_metric m[] = {{"train", "loss", 1.0 / ep}, {"test", "acc", 0.5}, {"test", "loss", 2.0}};
                if (lp_runsdb_commit_epoch(db, id, ep, ep, m, 3, blob, sizeof blob, ep % 2 == 0, &e)) _exit(2);
            }
            _exit(0);
        }
        usleep(20000 + 9973 * (k * 7 % 13));
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        cr_assert(WIFSIGNALED(status), "writer %d ended before the kill (status %d)", k, status);
    }
    check_epochs_paired(path);
    cr_assert_gt(q_int(path, "SELECT count(*) FROM checkpoints"), 12, "the writers should have committed epochs");
    rm_db(path);
}

/* A file size limit makes writes fail with EFBIG: the honest stand-in for a full
 * disk without a mount. The error must say why, and the database stay consistent. */
Test(runsdb, a_file_size_limit_is_reported_and_leaves_the_db_consistent, .timeout = 60)
{
    char *path = tmp_db();
    lp_runsdb *db = open_ok(path);
    int64_t id = new_run(db, "big", "0.1");
    lp_error err = {0};
    cr_assert_eq(commit(db, id, 1, 0.5, true, false, &err), LP_OK, "%s", err.msg);
    lp_runsdb_close(db);
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {2 << 20, 2 << 20};
        if (setrlimit(RLIMIT_FSIZE, &rl)) _exit(9);
        lp_runsdb *d;
        lp_error e = {0};
        if (lp_runsdb_open(path, &d, &e)) _exit(8);
        static unsigned char blob[512 * 1024];
        for (int ep = 2; ep < 100; ep++) {
            memset(blob, ep, sizeof blob);
            lp_metric m[] = {{"test", "acc", 0.5}};
            if (lp_runsdb_commit_epoch(d, id, ep, ep, m, 1, blob, sizeof blob, false, &e)) {
                fprintf(stderr, "%s\n", e.msg);
                _exit(strstr(e.msg, "too big") && strstr(e.msg, path) ? 0 : 3);
            }
        }
        _exit(4);
    }
    int status;
    waitpid(pid, &status, 0);
    cr_assert(WIFEXITED(status), "status %d", status);
    cr_assert_eq(WEXITSTATUS(status), 0, "child exit %d (3: wrong message, 4: never failed)", WEXITSTATUS(status));
    check_epochs_paired(path);
    rm_db(path);
}

/* ---- schema upgrades and the run lifecycle (lifecycle.h) ---- */

/* A database made by loupe at schema version 1 (tests/fixtures/runs_v1.sql: run 1
 * completed, run 2 left 'running' by a kill) opens, upgrades in place and keeps
 * every row: runs, settings, metrics, checkpoints that still load, cascades. */
Test(runsdb, a_version_1_database_upgrades_and_keeps_everything)
{
    setenv("LOUPE_STALE_REMOTE_SECONDS", "600", 1);
    char *path = tmp_db();
    size_t n;
    char *sql = (char *)slurp("tests/fixtures/runs_v1.sql", &n);
    sql[n] = '\0';
    q_exec(path, sql);
    free(sql);
    cr_assert_eq(q_int(path, "PRAGMA user_version"), 1);
    long long params = q_int(path, "SELECT count(*) FROM run_params"),
              metrics = q_int(path, "SELECT count(*) FROM metrics");
    lp_runsdb *db = open_ok(path);
    cr_assert_eq(q_int(path, "PRAGMA user_version"), LP_RUNSDB_SCHEMA_VERSION);
    cr_assert_eq(q_int(path, "SELECT count(*) FROM runs"), 2);
    cr_assert_eq(q_int(path, "SELECT count(*) FROM run_params"), params);
    cr_assert_eq(q_int(path, "SELECT count(*) FROM metrics"), metrics);
    cr_assert_eq(q_int(path, "SELECT count(*) FROM checkpoints"), 4);
    cr_assert_eq(q_int(path, "SELECT count(*) FROM pragma_integrity_check WHERE integrity_check = 'ok'"), 1);
    cr_assert_eq(q_int(path, "SELECT count(*) FROM pragma_foreign_key_check"), 0);
    cr_assert_eq(q_int(path, "SELECT count(*) FROM run_summary WHERE pid IS NULL"), 2, "the view was rebuilt");
    cr_assert_eq(q_int(path, "SELECT count(*) FROM run_summary WHERE kind = 'train' AND world_size = 1"), 2);
    cr_assert_eq(q_int(path, "SELECT count(*) FROM confusion") + q_int(path, "SELECT count(*) FROM misclassified"), 0);
    /* Run 2 has no pid (schema 1) and its start is long past: the open marked it. */
    lp_run_details d;
    lp_error err = {0};
    cr_assert_eq(lp_runsdb_show(db, 2, &d, &err), LP_OK, "%s", err.msg);
    cr_assert_str_eq(d.run.status, "crashed");
    cr_assert_not_null(strstr(d.run.error, "its unrecorded process"), "%s", d.run.error);
    cr_assert_eq(d.pid, -1);
    lp_run_details_free(&d);
    void *blob;
    size_t size;
    int epoch;
    cr_assert_eq(lp_runsdb_load_checkpoint(db, 1, "last", &blob, &size, &epoch, NULL, &err), LP_OK, "%s", err.msg);
    cr_assert_eq(epoch, 2);
    free(blob);
    cr_assert_eq(lp_runsdb_delete_run(db, 1, &err), LP_OK, "%s", err.msg);
    cr_assert_eq(q_int(path, "SELECT count(*) FROM metrics WHERE run_id = 1"), 0, "foreign keys still cascade");
    cr_assert_eq(q_int(path, "SELECT count(*) FROM checkpoints WHERE run_id = 1"), 0);
    int64_t id = new_run(db, "new", "0.1");
    cr_assert_eq(id, 3);
    lp_runsdb_close(db);
    rm_db(path);
}

/* Schema 3: a sweep's parent row and its trials, the world size, why a run
 * stopped, 'val' metrics in epoch_metrics, and one trial number per sweep. */
Test(runsdb, schema_3_records_sweeps_world_size_stop_reason_and_val)
{
    char *path = tmp_db();
    lp_runsdb *db = open_ok(path);
    lp_error err = {0};
    lp_run_new parent = {.name = "sweep", .config_yaml = "name: sweep\n", .kind = "sweep"};
    int64_t pid_, child;
    cr_assert_eq(lp_runsdb_begin_run(db, &parent, &pid_, &err), LP_OK, "%s", err.msg);
    lp_run_new trial = {.name = "t", .config_yaml = "name: t\n", .parent_run_id = pid_, .sweep_trial = 2,
                        .world_size = 4};
    cr_assert_eq(lp_runsdb_begin_run(db, &trial, &child, &err), LP_OK, "%s", err.msg);
    lp_metric m[] = {{"val", "acc", 0.5}, {"val", "loss", 1.5}, {"test", "acc", 0.25}};
    cr_assert_eq(lp_runsdb_commit_epoch(db, child, 1, 10, m, 3, NULL, 0, false, &err), LP_OK, "%s", err.msg);
    cr_assert_eq(lp_runsdb_set_stop_reason(db, child, "early_stop: val/acc", &err), LP_OK, "%s", err.msg);
    cr_assert_eq(lp_runsdb_set_stop_reason(db, 99, "x", &err), LP_ERR_ARG);

    lp_run_details d;
    cr_assert_eq(lp_runsdb_show(db, child, &d, &err), LP_OK, "%s", err.msg);
    cr_assert_str_eq(d.stop_reason, "early_stop: val/acc");
    cr_assert_str_eq(d.kind, "train");
    cr_assert_eq(d.parent_run_id, pid_);
    cr_assert_eq(d.sweep_trial, 2);
    cr_assert_eq(d.world_size, 4);
    lp_run_details_free(&d);
    cr_assert_eq(lp_runsdb_show(db, pid_, &d, &err), LP_OK, "%s", err.msg);
    cr_assert_str_eq(d.kind, "sweep");
    cr_assert_null(d.stop_reason);
    cr_assert_eq(d.parent_run_id, 0);
    cr_assert_eq(d.world_size, 1, "0 in lp_run_new means 1");
    lp_run_details_free(&d);

    int64_t again;
    cr_assert_neq(lp_runsdb_begin_run(db, &trial, &again, &err), LP_OK, "a sweep has one run per trial");
    cr_assert_eq(q_int(path, "SELECT val_acc * 100 FROM epoch_metrics WHERE run_id = 2"), 50);
    cr_assert_eq(q_int(path, "SELECT world_size FROM run_summary WHERE id = 2"), 4);
    cr_assert_eq(q_int(path, "SELECT count(*) FROM run_summary WHERE kind = 'sweep'"), 1);
    lp_runsdb_close(db);

    rm_db(path);
}

/* The pid of a child that has exited (reaped unless zombie is true). */
static pid_t dead_child(bool zombie)
{
    pid_t pid = fork();
    if (pid == 0) _exit(0);
    if (zombie) {
        /* Wait for the exit without reaping it (a sleep raced a loaded machine). */
        siginfo_t si;
        waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT);
        return pid;
    }
    waitpid(pid, NULL, 0);
    return pid;
}

Test(runsdb, process_identity_sees_exits_zombies_and_reused_pids)
{
    long me = (long)getpid();
    long long start = lp_proc_start_time(me);
    cr_assert_gt(start, 0);
    cr_assert(lp_proc_alive(me, start));
    cr_assert(lp_proc_alive(me, -1));
    cr_assert_not(lp_proc_alive(me, start + 1), "same pid, another start time: a reused pid");
    pid_t z = dead_child(true);
    cr_assert_not(lp_proc_alive(z, -1), "a zombie is dead");
    waitpid(z, NULL, 0);
    cr_assert_not(lp_proc_alive(z, -1), "a reaped child is dead");
    cr_assert_not(lp_proc_alive(0, -1));
}

static void set_run(const char *path, int64_t id, const char *assignments)
{
    char sql[512];
    snprintf(sql, sizeof sql, "UPDATE runs SET %s WHERE id = %lld", assignments, (long long)id);
    q_exec(path, sql);
}

static const char *status_of(const char *path, int64_t id)
{
    static char out[32];
    sqlite3 *h;
    cr_assert_eq(sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(h, "SELECT status FROM runs WHERE id = ?", -1, &st, NULL);
    sqlite3_bind_int64(st, 1, id);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    snprintf(out, sizeof out, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(h);
    return out;
}

/* The sweep's rules: this host by pid and heartbeat together, other hosts by the
 * heartbeat alone, against a longer threshold. */
Test(runsdb, stale_runs_become_crashed_and_live_ones_never)
{
    setenv("LOUPE_STALE_SECONDS", "30", 1);
    setenv("LOUPE_STALE_REMOTE_SECONDS", "600", 1);
    char *path = tmp_db();
    lp_runsdb *db = open_ok(path);
    int64_t alive = new_run(db, "alive", "0.1"), gone = new_run(db, "gone", "0.1"),
            fresh = new_run(db, "fresh", "0.1"), remote = new_run(db, "remote", "0.1"),
            remote_old = new_run(db, "remote_old", "0.1");
    char sql[256];
    const char *old = "heartbeat_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-60 seconds')";
    set_run(path, alive, old);                       /* our own pid: alive whatever the heartbeat */
    snprintf(sql, sizeof sql, "pid = %d, %s", (int)dead_child(false), old);
    set_run(path, gone, sql);
    snprintf(sql, sizeof sql, "pid = %d", (int)dead_child(false));
    set_run(path, fresh, sql);                       /* dead, but it beat just now */
    set_run(path, remote, "host = 'elsewhere', heartbeat_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-300 seconds')");
    set_run(path, remote_old, "host = 'elsewhere', heartbeat_at = '2020-01-01T00:00:00.000Z'");
    cr_assert_eq(lp_runsdb_count_stale(db), 2);
    int marked = -1;
    lp_error err = {0};
    cr_assert_eq(lp_runsdb_sweep_stale(db, &marked, &err), LP_OK, "%s", err.msg);
    cr_assert_eq(marked, 2);
    cr_assert_str_eq(status_of(path, alive), "running");
    cr_assert_str_eq(status_of(path, gone), "crashed");
    cr_assert_str_eq(status_of(path, fresh), "running");
    cr_assert_str_eq(status_of(path, remote), "running");
    cr_assert_str_eq(status_of(path, remote_old), "crashed");
    cr_assert_eq(q_int(path, "SELECT count(*) FROM runs WHERE status = 'crashed' AND finished_at = heartbeat_at"), 2,
                 "finished_at is the last sign of life");
    lp_run_details d;
    cr_assert_eq(lp_runsdb_show(db, gone, &d, &err), LP_OK);
    cr_assert_not_null(strstr(d.run.error, "is gone (last heartbeat"), "%s", d.run.error);
    lp_run_details_free(&d);
    cr_assert_eq(lp_runsdb_sweep_stale(db, &marked, &err), LP_OK);
    cr_assert_eq(marked, 0, "a second sweep finds nothing");
    /* A crashed run resumes under this process; a live one does not. */
    cr_assert_eq(lp_runsdb_resume_run(db, gone, 0, &err), LP_OK, "%s", err.msg);
    cr_assert_eq(q_int(path, "SELECT pid FROM runs WHERE status = 'running' AND name = 'gone'"), getpid());
    cr_assert_eq(lp_runsdb_resume_run(db, alive, 0, &err), LP_ERR_ARG);
    cr_assert_not_null(strstr(err.msg, "still being trained by process"), "%s", err.msg);
    lp_error_clear(&err);
    cr_assert_eq(lp_runsdb_resume_run(db, remote, 0, &err), LP_ERR_ARG);
    cr_assert_not_null(strstr(err.msg, "is running on host elsewhere"), "%s", err.msg);
    lp_runsdb_close(db);
    /* The readers' open marks a stale run too (the file is writable). */
    set_run(path, fresh, old);
    lp_runsdb *ro;
    lp_error_clear(&err);
    cr_assert_eq(lp_runsdb_open_readonly(path, &ro, &err), LP_OK, "%s", err.msg);
    cr_assert_str_eq(status_of(path, fresh), "crashed");
    lp_runsdb_close(ro);
    rm_db(path);
}

Test(runsdb, the_heartbeat_thread_beats_until_stopped, .timeout = 30)
{
    setenv("LOUPE_HEARTBEAT_SECONDS", "0.05", 1);
    char *path = tmp_db();
    lp_runsdb *db = open_ok(path);
    int64_t id = new_run(db, "beating", "0.1");
    set_run(path, id, "heartbeat_at = '2020-01-01T00:00:00.000Z'");
    lp_heartbeat *hb;
    lp_error err = {0};
    cr_assert_eq(lp_heartbeat_start(path, id, &hb, &err), LP_OK, "%s", err.msg);
    for (int i = 0; i < 200 && lp_heartbeat_beats(hb) < 3; i++) usleep(10000);
    long long beats = lp_heartbeat_beats(hb);
    lp_heartbeat_stop(hb);
    cr_assert_geq(beats, 3);
    cr_assert_eq(q_int(path, "SELECT heartbeat_at > '2026' FROM runs"), 1, "the beat reached the file");
    /* Only a running run of this process beats. */
    cr_assert_eq(lp_runsdb_finish_run(db, id, LP_RUN_COMPLETED, NULL, &err), LP_OK);
    set_run(path, id, "heartbeat_at = '2020-01-01T00:00:00.000Z'");
    cr_assert_eq(lp_runsdb_heartbeat(db, id, &err), LP_OK);
    cr_assert_eq(q_int(path, "SELECT heartbeat_at = '2020-01-01T00:00:00.000Z' FROM runs"), 1);
    lp_runsdb_close(db);
    unsetenv("LOUPE_HEARTBEAT_SECONDS");
    rm_db(path);
}
