/* runsdb.c - the runs database on SQLite: schema migrations, crash-safe epoch
 * commits, and the queries behind `loupe runs`. See docs/runs-db.md. */
#include "runsdb.h"
#include "checkpoint.h"   /* lp_crc32, lp_checkpoint_peek_version */
#include "evaluation.h"
#include "lifecycle.h"
#include "runsdb_internal.h"
#include "sha256.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define NOW_SQL LP_RUNSDB_NOW_SQL

/* ---------------- schema and migrations ---------------- */

/* Version 1. Each later version is one more entry in `migrations`: SQL that
 * turns version N-1 into N, applied in one transaction with the version bump. */
static const char SCHEMA_V1[] =
    "CREATE TABLE runs (\n"
    "  id             INTEGER PRIMARY KEY,\n"
    "  name           TEXT NOT NULL,\n"
    "  status         TEXT NOT NULL DEFAULT 'running'\n"
    "                 CHECK (status IN ('running','completed','failed','interrupted')),\n"
    "  config_yaml    TEXT NOT NULL,\n"
    "  config_hash    TEXT NOT NULL,\n"
    "  seed           INTEGER NOT NULL,\n"
    "  param_count    INTEGER NOT NULL,\n"
    "  host           TEXT,\n"
    "  threads        INTEGER,\n"
    "  started_at     TEXT NOT NULL,\n"
    "  finished_at    TEXT,\n"
    "  error          TEXT,\n"
    "  final_test_acc REAL,\n"
    "  best_test_acc  REAL,\n"
    "  epochs_done    INTEGER NOT NULL DEFAULT 0\n"
    ");\n"
    "CREATE INDEX runs_name ON runs(name);\n"
    "CREATE TABLE run_params (\n"
    "  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  key    TEXT NOT NULL,\n"
    "  value  TEXT NOT NULL,\n"
    "  PRIMARY KEY (run_id, key)\n"
    ") WITHOUT ROWID;\n"
    "CREATE INDEX run_params_key_value ON run_params(key, value);\n"
    "CREATE TABLE metrics (\n"
    "  run_id    INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  epoch     INTEGER NOT NULL,\n"
    "  step      INTEGER NOT NULL,\n"
    "  split     TEXT NOT NULL CHECK (split IN ('train','test')),\n"
    "  name      TEXT NOT NULL,\n"
    "  value     REAL,\n"
    "  is_nan    INTEGER NOT NULL DEFAULT 0 CHECK (is_nan IN (0,1)),\n"
    "  wall_time REAL NOT NULL,\n"
    "  CHECK ((value IS NULL) = (is_nan = 1)),\n"
    "  PRIMARY KEY (run_id, epoch, step, split, name)\n"
    ") WITHOUT ROWID;\n"
    "CREATE TABLE checkpoints (\n"
    "  run_id         INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  epoch          INTEGER NOT NULL,\n"
    "  step           INTEGER NOT NULL,\n"
    "  format_version INTEGER NOT NULL,\n"
    "  checksum       INTEGER NOT NULL,\n"
    "  size_bytes     INTEGER NOT NULL,\n"
    "  weights        BLOB NOT NULL,\n"
    "  is_best        INTEGER NOT NULL DEFAULT 0 CHECK (is_best IN (0,1)),\n"
    "  created_at     TEXT NOT NULL,\n"
    "  UNIQUE (run_id, epoch)\n"
    ");\n"
    "CREATE VIEW run_summary AS\n"
    "SELECT r.id, r.name, r.status, r.epochs_done AS epochs,\n"
    "  r.best_test_acc, r.final_test_acc,\n"
    "  (SELECT m.value FROM metrics m WHERE m.run_id = r.id AND m.split = 'test' AND m.name = 'loss'\n"
    "    ORDER BY m.epoch DESC, m.step DESC LIMIT 1) AS final_test_loss,\n"
    "  ROUND((julianday(COALESCE(r.finished_at, 'now')) - julianday(r.started_at)) * 86400.0, 3)\n"
    "    AS duration_s,\n"
    "  (SELECT value FROM run_params p WHERE p.run_id = r.id AND p.key = 'train.optimizer.type') AS optimizer,\n"
    "  (SELECT value FROM run_params p WHERE p.run_id = r.id AND p.key = 'train.optimizer.lr') AS lr,\n"
    "  (SELECT value FROM run_params p WHERE p.run_id = r.id AND p.key = 'train.batch_size') AS batch_size,\n"
    "  (SELECT value FROM run_params p WHERE p.run_id = r.id AND p.key = 'train.epochs') AS epochs_planned,\n"
    "  r.seed, r.param_count, r.threads, r.host, r.started_at, r.finished_at, r.config_hash, r.error\n"
    "FROM runs r;\n"
    "CREATE VIEW epoch_metrics AS\n"
    "SELECT run_id, epoch, MAX(step) AS step,\n"
    "  MAX(CASE WHEN split = 'train' AND name = 'loss' THEN value END) AS train_loss,\n"
    "  MAX(CASE WHEN split = 'train' AND name = 'acc'  THEN value END) AS train_acc,\n"
    "  MAX(CASE WHEN split = 'test'  AND name = 'loss' THEN value END) AS test_loss,\n"
    "  MAX(CASE WHEN split = 'test'  AND name = 'acc'  THEN value END) AS test_acc,\n"
    "  MAX(CASE WHEN split = 'train' AND name = 'lr'   THEN value END) AS lr,\n"
    "  MAX(is_nan) AS any_nan\n"
    "FROM metrics GROUP BY run_id, epoch;\n";

/* Version 2: a run's process and heartbeat (lifecycle.h), the status 'crashed',
 * and its provenance (data fingerprint, loupe version and commit, compiler and
 * flags). SQLite cannot alter a CHECK constraint, so runs is rebuilt (the 12 steps
 * of sqlite.org/lang_altertable.html; foreign keys are off while migrating, so
 * dropping the old table cascades nothing), and run_summary with it. */
static const char SCHEMA_V2[] =
    "DROP VIEW run_summary;\n"
    "CREATE TABLE runs_v2 (\n"
    "  id             INTEGER PRIMARY KEY,\n"
    "  name           TEXT NOT NULL,\n"
    "  status         TEXT NOT NULL DEFAULT 'running'\n"
    "                 CHECK (status IN ('running','completed','failed','interrupted','crashed')),\n"
    "  config_yaml    TEXT NOT NULL,\n"
    "  config_hash    TEXT NOT NULL,\n"
    "  seed           INTEGER NOT NULL,\n"
    "  param_count    INTEGER NOT NULL,\n"
    "  host           TEXT,\n"
    "  threads        INTEGER,\n"
    "  started_at     TEXT NOT NULL,\n"
    "  finished_at    TEXT,\n"
    "  error          TEXT,\n"
    "  final_test_acc REAL,\n"
    "  best_test_acc  REAL,\n"
    "  epochs_done    INTEGER NOT NULL DEFAULT 0,\n"
    "  pid            INTEGER,\n"
    "  proc_start     INTEGER,\n"
    "  heartbeat_at   TEXT,\n"
    "  data_sha256    TEXT,\n"
    "  data_train_count INTEGER,\n"
    "  data_test_count  INTEGER,\n"
    "  data_shape     TEXT,\n"
    "  loupe_version  TEXT,\n"
    "  loupe_commit   TEXT,\n"
    "  compiler       TEXT,\n"
    "  cflags         TEXT\n"
    ");\n"
    "INSERT INTO runs_v2 (id, name, status, config_yaml, config_hash, seed, param_count, host, threads,\n"
    "  started_at, finished_at, error, final_test_acc, best_test_acc, epochs_done)\n"
    "SELECT id, name, status, config_yaml, config_hash, seed, param_count, host, threads,\n"
    "  started_at, finished_at, error, final_test_acc, best_test_acc, epochs_done FROM runs;\n"
    "DROP TABLE runs;\n"
    "ALTER TABLE runs_v2 RENAME TO runs;\n"
    "CREATE INDEX runs_name ON runs(name);\n"
    "CREATE INDEX runs_status ON runs(status);\n"
    "CREATE VIEW run_summary AS\n"
    "SELECT r.id, r.name, r.status, r.epochs_done AS epochs,\n"
    "  r.best_test_acc, r.final_test_acc,\n"
    "  (SELECT m.value FROM metrics m WHERE m.run_id = r.id AND m.split = 'test' AND m.name = 'loss'\n"
    "    ORDER BY m.epoch DESC, m.step DESC LIMIT 1) AS final_test_loss,\n"
    "  ROUND((julianday(COALESCE(r.finished_at, 'now')) - julianday(r.started_at)) * 86400.0, 3)\n"
    "    AS duration_s,\n"
    "  (SELECT value FROM run_params p WHERE p.run_id = r.id AND p.key = 'train.optimizer.type') AS optimizer,\n"
    "  (SELECT value FROM run_params p WHERE p.run_id = r.id AND p.key = 'train.optimizer.lr') AS lr,\n"
    "  (SELECT value FROM run_params p WHERE p.run_id = r.id AND p.key = 'train.batch_size') AS batch_size,\n"
    "  (SELECT value FROM run_params p WHERE p.run_id = r.id AND p.key = 'train.epochs') AS epochs_planned,\n"
    "  r.seed, r.param_count, r.threads, r.host, r.started_at, r.finished_at, r.config_hash, r.error,\n"
    "  r.pid, r.heartbeat_at, r.data_sha256, r.loupe_version, r.loupe_commit\n"
    "FROM runs r;\n";

/* run_summary as of version 3 (the version 2 columns, then the new ones). */
#define RUN_SUMMARY_V3 \
    "CREATE VIEW run_summary AS\n" \
    "SELECT r.id, r.name, r.status, r.epochs_done AS epochs,\n" \
    "  r.best_test_acc, r.final_test_acc,\n" \
    "  (SELECT m.value FROM metrics m WHERE m.run_id = r.id AND m.split = 'test' AND m.name = 'loss'\n" \
    "    ORDER BY m.epoch DESC, m.step DESC LIMIT 1) AS final_test_loss,\n" \
    "  ROUND((julianday(COALESCE(r.finished_at, 'now')) - julianday(r.started_at)) * 86400.0, 3)\n" \
    "    AS duration_s,\n" \
    "  (SELECT value FROM run_params p WHERE p.run_id = r.id AND p.key = 'train.optimizer.type') AS optimizer,\n" \
    "  (SELECT value FROM run_params p WHERE p.run_id = r.id AND p.key = 'train.optimizer.lr') AS lr,\n" \
    "  (SELECT value FROM run_params p WHERE p.run_id = r.id AND p.key = 'train.batch_size') AS batch_size,\n" \
    "  (SELECT value FROM run_params p WHERE p.run_id = r.id AND p.key = 'train.epochs') AS epochs_planned,\n" \
    "  r.seed, r.param_count, r.threads, r.host, r.started_at, r.finished_at, r.config_hash, r.error,\n" \
    "  r.pid, r.heartbeat_at, r.data_sha256, r.loupe_version, r.loupe_commit,\n" \
    "  r.stop_reason, r.kind, r.parent_run_id, r.sweep_trial, r.world_size\n" \
    "FROM runs r;\n"

/* Version 3: what the pictures, the tutorial's page 4 and sweeps need.
 * - runs: why training stopped (stop_reason), a sweep's parent and trial number
 *   (parent_run_id, sweep_trial; kind 'sweep' for the parent row) and the MPI
 *   world size. Added columns only, so no rebuild of runs.
 * - metrics: the split 'val' (a held-out part of the training set). SQLite cannot
 *   alter a CHECK, so metrics is rebuilt as runs was in version 2.
 * - confusion, class_metrics, misclassified: each evaluation's confusion matrix
 *   (every cell), per-class precision/recall/F1 (NULL where 0/0) and the images it
 *   got wrong, with the softmax probabilities of the predicted and the true class.
 * - the views gain the new columns. */
static const char SCHEMA_V3[] =
    "DROP VIEW run_summary;\n"
    "DROP VIEW epoch_metrics;\n"
    "ALTER TABLE runs ADD COLUMN stop_reason TEXT;\n"
    "ALTER TABLE runs ADD COLUMN parent_run_id INTEGER REFERENCES runs(id) ON DELETE CASCADE;\n"
    "ALTER TABLE runs ADD COLUMN sweep_trial INTEGER CHECK (sweep_trial >= 1);\n"
    "ALTER TABLE runs ADD COLUMN kind TEXT NOT NULL DEFAULT 'train' CHECK (kind IN ('train','sweep'));\n"
    "ALTER TABLE runs ADD COLUMN world_size INTEGER NOT NULL DEFAULT 1 CHECK (world_size >= 1);\n"
    "CREATE INDEX runs_parent ON runs(parent_run_id);\n"
    "CREATE UNIQUE INDEX runs_sweep_trial ON runs(parent_run_id, sweep_trial)\n"
    "  WHERE parent_run_id IS NOT NULL AND sweep_trial IS NOT NULL;\n"
    "CREATE TABLE metrics_v3 (\n"
    "  run_id    INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  epoch     INTEGER NOT NULL,\n"
    "  step      INTEGER NOT NULL,\n"
    "  split     TEXT NOT NULL CHECK (split IN ('train','val','test')),\n"
    "  name      TEXT NOT NULL,\n"
    "  value     REAL,\n"
    "  is_nan    INTEGER NOT NULL DEFAULT 0 CHECK (is_nan IN (0,1)),\n"
    "  wall_time REAL NOT NULL,\n"
    "  CHECK ((value IS NULL) = (is_nan = 1)),\n"
    "  PRIMARY KEY (run_id, epoch, step, split, name)\n"
    ") WITHOUT ROWID;\n"
    "INSERT INTO metrics_v3 (run_id, epoch, step, split, name, value, is_nan, wall_time)\n"
    "SELECT run_id, epoch, step, split, name, value, is_nan, wall_time FROM metrics;\n"
    "DROP TABLE metrics;\n"
    "ALTER TABLE metrics_v3 RENAME TO metrics;\n";

/* The rest of version 3 (one string would pass the 4095 characters C11 promises). */
static const char SCHEMA_V3_EVALUATIONS[] =
    "CREATE TABLE confusion (\n"
    "  run_id     INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  epoch      INTEGER NOT NULL,\n"
    "  split      TEXT NOT NULL CHECK (split IN ('val','test')),\n"
    "  true_label INTEGER NOT NULL CHECK (true_label >= 0),\n"
    "  pred_label INTEGER NOT NULL CHECK (pred_label >= 0),\n"
    "  count      INTEGER NOT NULL CHECK (count >= 0),\n"
    "  PRIMARY KEY (run_id, epoch, split, true_label, pred_label)\n"
    ") WITHOUT ROWID;\n"
    "CREATE TABLE class_metrics (\n"
    "  run_id    INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  epoch     INTEGER NOT NULL,\n"
    "  split     TEXT NOT NULL CHECK (split IN ('val','test')),\n"
    "  class     INTEGER NOT NULL CHECK (class >= 0),\n"
    "  support   INTEGER NOT NULL CHECK (support >= 0),\n"
    "  precision REAL,\n"
    "  recall    REAL,\n"
    "  f1        REAL,\n"
    "  PRIMARY KEY (run_id, epoch, split, class)\n"
    ") WITHOUT ROWID;\n"
    "CREATE TABLE misclassified (\n"
    "  run_id      INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  epoch       INTEGER NOT NULL,\n"
    "  split       TEXT NOT NULL CHECK (split IN ('val','test')),\n"
    "  image_index INTEGER NOT NULL CHECK (image_index >= 0),\n"
    "  true_label  INTEGER NOT NULL,\n"
    "  pred_label  INTEGER NOT NULL,\n"
    "  pred_prob   REAL NOT NULL,\n"
    "  true_prob   REAL NOT NULL,\n"
    "  PRIMARY KEY (run_id, epoch, split, image_index)\n"
    ") WITHOUT ROWID;\n"
    RUN_SUMMARY_V3
    "CREATE VIEW epoch_metrics AS\n"
    "SELECT run_id, epoch, MAX(step) AS step,\n"
    "  MAX(CASE WHEN split = 'train' AND name = 'loss' THEN value END) AS train_loss,\n"
    "  MAX(CASE WHEN split = 'train' AND name = 'acc'  THEN value END) AS train_acc,\n"
    "  MAX(CASE WHEN split = 'test'  AND name = 'loss' THEN value END) AS test_loss,\n"
    "  MAX(CASE WHEN split = 'test'  AND name = 'acc'  THEN value END) AS test_acc,\n"
    "  MAX(CASE WHEN split = 'train' AND name = 'lr'   THEN value END) AS lr,\n"
    "  MAX(is_nan) AS any_nan,\n"
    "  MAX(CASE WHEN split = 'val'   AND name = 'loss' THEN value END) AS val_loss,\n"
    "  MAX(CASE WHEN split = 'val'   AND name = 'acc'  THEN value END) AS val_acc\n"
    "FROM metrics GROUP BY run_id, epoch;\n";

typedef struct migration {
    int version;          /* user_version after this step */
    const char *what;
    const char *sql[2];   /* run in order in the step's transaction; [1] may be NULL */
} migration;

static const migration migrations[] = {
    {1, "initial schema", {SCHEMA_V1, NULL}},
    {2, "process, heartbeat, 'crashed' and provenance of runs", {SCHEMA_V2, NULL}},
    {3, "stop reason, sweeps, world size, the 'val' split and evaluations", {SCHEMA_V3, SCHEMA_V3_EVALUATIONS}},
};
#define N_MIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))
_Static_assert(sizeof migrations / sizeof migrations[0] == LP_RUNSDB_SCHEMA_VERSION,
               "one migration step per schema version");

/* ---------------- errors ---------------- */

/* When SQLite lost the OS errno (it does for short writes), look for the usual
 * causes ourselves: a file that can no longer be written (made read-only or
 * immutable, `chattr +i`, under the open descriptors: access() says EPERM/EROFS
 * even to root), a file at the process's size limit, or a nearly full disk. */
static int guess_write_errno(const lp_runsdb *db)
{
    const char *files[] = {"", "-wal"};
    for (int i = 0; i < 2; i++) {
        char p[4096];
        snprintf(p, sizeof p, "%s%s", db->path, files[i]);
        if (access(p, F_OK) == 0 && access(p, W_OK) != 0 && errno != ENOENT) return errno;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_FSIZE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        const char *suffix[] = {"", "-wal", "-journal"};
        char p[4096];
        for (int i = 0; i < 3; i++) {
            struct stat st;
            snprintf(p, sizeof p, "%s%s", db->path, suffix[i]);
            /* within a page or so of the limit: the next write could not fit */
            if (stat(p, &st) == 0 && (rlim_t)st.st_size + 65536 + 4096 > rl.rlim_cur) return EFBIG;
        }
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", db->path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    struct statvfs vfs;
    if (statvfs(slash ? (dir[0] ? dir : "/") : ".", &vfs) == 0 && (double)vfs.f_bavail * vfs.f_frsize < 1 << 20)
        return ENOSPC;
    return 0;
}

/* SQLite's generic messages hide the cause ("disk I/O error" for a full disk):
 * say what the extended code and the OS errno mean, and name the file. */
static lp_status db_fail(lp_runsdb *db, lp_error *err, const char *what)
{
    int ext = sqlite3_extended_errcode(db->h);
    int sys = sqlite3_system_errno(db->h);
    bool guessed = false;
    if (sys == 0 && ((ext & 0xFF) == SQLITE_IOERR || (ext & 0xFF) == SQLITE_FULL)) {
        sys = guess_write_errno(db);
        guessed = sys != 0;
    }
    const char *why = NULL;
    bool show_errno = false;
    switch (ext & 0xFF) {
    case SQLITE_FULL:
        why = sys == EFBIG ? "the file is too big for the file system or the process limit" : "the disk is full";
        break;
    case SQLITE_READONLY: why = "the database is read-only"; break;
    case SQLITE_BUSY:
    case SQLITE_LOCKED: why = "the database stayed locked by another process for 10 s"; break;
    case SQLITE_CORRUPT: why = "the database file is corrupt"; break;
    case SQLITE_NOTADB: why = "the file is not a SQLite database"; break;
    case SQLITE_CANTOPEN: why = "the file cannot be opened"; show_errno = true; break;
    case SQLITE_PERM: why = "permission denied"; show_errno = true; break;
    case SQLITE_TOOBIG: why = "a value is too big for SQLite"; break;
    case SQLITE_NOMEM: why = "out of memory"; break;
    case SQLITE_IOERR:
        show_errno = true;
        if (sys == ENOSPC || sys == EDQUOT) why = "the disk is full";
        else if (sys == EFBIG) why = "the file is too big for the file system or the process limit";
        else if (sys == EROFS) why = "the file system is read-only";
        else if (sys == EACCES || sys == EPERM) why = "the file cannot be written (read-only, immutable or permission denied)";
        else why = "an I/O error";
        break;
    default: break;
    }
    char sysbuf[128] = "";
    if (show_errno && sys && guessed) snprintf(sysbuf, sizeof sysbuf, "; inferred cause: %s", strerror(sys));
    else if (show_errno && sys) snprintf(sysbuf, sizeof sysbuf, "; errno %d: %s", sys, strerror(sys));
    return lp_error_set(err, LP_ERR_DB, "runs database '%s': %s: %s%s(%s, code %d%s)", db->path, what,
                        why ? why : "", why ? " " : "", sqlite3_errmsg(db->h), ext, sysbuf);
}

static lp_status exec(lp_runsdb *db, const char *sql, const char *what, lp_error *err)
{
    if (sqlite3_exec(db->h, sql, NULL, NULL, NULL) != SQLITE_OK) return db_fail(db, err, what);
    return LP_OK;
}

static lp_status prepare(lp_runsdb *db, const char *sql, sqlite3_stmt **st, const char *what, lp_error *err)
{
    if (sqlite3_prepare_v2(db->h, sql, -1, st, NULL) != SQLITE_OK) {
        *st = NULL;
        return db_fail(db, err, what);
    }
    return LP_OK;
}

/* Write transactions take the write lock up front: a deferred BEGIN that
 * upgrades later fails with SQLITE_BUSY at once instead of waiting. */
static lp_status tx_begin(lp_runsdb *db, const char *what, lp_error *err)
{
    if (db->readonly)
        return lp_error_set(err, LP_ERR_DB, "runs database '%s': %s: it was opened read-only", db->path, what);
    return exec(db, "BEGIN IMMEDIATE", what, err);
}

static lp_status tx_commit(lp_runsdb *db, const char *what, lp_error *err)
{
    if (sqlite3_exec(db->h, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        lp_status s = db_fail(db, err, what);
        sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
        return s;
    }
    return LP_OK;
}

/* After an error (already recorded): undo whatever the transaction did. */
static lp_status tx_abort(lp_runsdb *db, lp_status s)
{
    if (!sqlite3_get_autocommit(db->h)) sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
    return s;
}

/* For the store's other files (runsdb_internal.h). */
lp_status lp_rdb_fail(lp_runsdb *db, lp_error *err, const char *what) { return db_fail(db, err, what); }
lp_status lp_rdb_prepare(lp_runsdb *db, const char *sql, sqlite3_stmt **st, const char *what, lp_error *err)
{
    return prepare(db, sql, st, what, err);
}
lp_status lp_rdb_tx_begin(lp_runsdb *db, const char *what, lp_error *err) { return tx_begin(db, what, err); }
lp_status lp_rdb_tx_commit(lp_runsdb *db, const char *what, lp_error *err) { return tx_commit(db, what, err); }
lp_status lp_rdb_tx_abort(lp_runsdb *db, lp_status s) { return tx_abort(db, s); }

/* ---------------- open / close ---------------- */

static lp_status read_int(lp_runsdb *db, const char *sql, long long *out, lp_error *err)
{
    sqlite3_stmt *st;
    lp_status s = prepare(db, sql, &st, "cannot read the database header", err);
    if (s) return s;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) *out = sqlite3_column_int64(st, 0);
    else s = db_fail(db, err, "cannot read the database header");
    sqlite3_finalize(st);
    return s;
}

typedef struct db_header {
    long long version, app_id, objects;
} db_header;

static lp_status read_header(lp_runsdb *db, db_header *h, lp_error *err)
{
    lp_status s = read_int(db, "SELECT count(*) FROM sqlite_master", &h->objects, err);
    if (!s) s = read_int(db, "PRAGMA user_version", &h->version, err);
    if (!s) s = read_int(db, "PRAGMA application_id", &h->app_id, err);
    return s;
}

/* Is this file ours (or empty, so it can become ours)? */
static lp_status check_header(lp_runsdb *db, const db_header *h, lp_error *err)
{
    if (h->app_id != 0 && h->app_id != LP_RUNSDB_APP_ID)
        return lp_error_set(err, LP_ERR_DB, "runs database '%s': belongs to another application "
                            "(application_id %lld); refusing to touch it", db->path, h->app_id);
    if (h->version > LP_RUNSDB_SCHEMA_VERSION)
        return lp_error_set(err, LP_ERR_DB, "runs database '%s': schema version %lld is newer than this "
                            "loupe knows (%d); upgrade loupe to use it", db->path, h->version,
                            LP_RUNSDB_SCHEMA_VERSION);
    if (h->version == 0 && h->objects > 0)
        return lp_error_set(err, LP_ERR_DB, "runs database '%s': is a SQLite database with %lld other "
                            "tables/indexes and no loupe schema; refusing to add to it (use another file)",
                            db->path, h->objects);
    if (h->version > 0 && h->app_id != LP_RUNSDB_APP_ID)
        return lp_error_set(err, LP_ERR_DB, "runs database '%s': has schema version %lld but is not "
                            "a loupe runs database (application_id %lld)", db->path, h->version, h->app_id);
    return LP_OK;
}

static lp_status migrate(lp_runsdb *db, lp_error *err)
{
    /* A step may rebuild a table: with foreign keys on, dropping the old one would
     * delete every row that refers to it. (A no-op inside a transaction: before it.) */
    lp_status s = exec(db, "PRAGMA foreign_keys=OFF", "cannot prepare the migration", err);
    if (!s) s = tx_begin(db, "cannot create the schema", err);
    if (s) return s;
    /* Read again under the write lock: another process may have migrated meanwhile. */
    db_header h;
    s = read_header(db, &h, err);
    if (!s) s = check_header(db, &h, err);
    for (int i = 0; !s && i < N_MIGRATIONS; i++) {
        if (migrations[i].version <= h.version) continue;
        char what[128], sql[96];
        snprintf(what, sizeof what, "cannot migrate to schema version %d (%s)", migrations[i].version,
                 migrations[i].what);
        for (int k = 0; !s && k < 2 && migrations[i].sql[k]; k++) s = exec(db, migrations[i].sql[k], what, err);
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d", migrations[i].version);
        if (!s) s = exec(db, sql, what, err);
    }
    if (!s && h.app_id != LP_RUNSDB_APP_ID) {
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA application_id = %d", LP_RUNSDB_APP_ID);
        s = exec(db, sql, "cannot mark the database as loupe's", err);
    }
    if (s) return tx_abort(db, s);
    return tx_commit(db, "cannot commit the schema", err);
}

static lp_status db_new(const char *path, lp_runsdb **out, lp_error *err)
{
    *out = NULL;
    if (!path || !*path) return lp_error_set(err, LP_ERR_ARG, "runs database: empty path");
    lp_runsdb *db = calloc(1, sizeof *db);
    if (db) db->path = strdup(path);
    if (!db || !db->path) {
        free(db);
        return lp_error_set(err, LP_ERR_NOMEM, "out of memory");
    }
    *out = db;
    return LP_OK;
}

static lp_status open_fail(lp_runsdb *db, lp_status s)
{
    lp_runsdb_close(db);
    return s;
}

lp_status lp_runsdb_open(const char *path, lp_runsdb **out, lp_error *err)
{
    lp_runsdb *db;
    lp_status s = db_new(path, &db, err);
    if (s) return s;
    int rc = sqlite3_open_v2(path, &db->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        if (!db->h) return open_fail(db, lp_error_set(err, LP_ERR_NOMEM, "out of memory opening %s", path));
        return open_fail(db, db_fail(db, err, "cannot open"));
    }
    sqlite3_extended_result_codes(db->h, 1);
    sqlite3_busy_timeout(db->h, LP_RUNSDB_BUSY_MS);
    /* SQLite silently falls back to read-only when the file is write-protected:
     * say so now, not after the first epoch has been trained. */
    if (sqlite3_db_readonly(db->h, "main") == 1)
        return open_fail(db, lp_error_set(err, LP_ERR_DB, "runs database '%s': the file is read-only "
                                          "(permissions or file system); cannot record runs in it", path));
    db_header h;
    s = read_header(db, &h, err);
    if (!s) s = check_header(db, &h, err);
    if (s) return open_fail(db, s);
    /* Only now that the file is known to be ours (or empty) may it change. */
    for (int tries = 0;; tries++) {
        sqlite3_stmt *st;
        s = prepare(db, "PRAGMA journal_mode=WAL", &st, "cannot switch to WAL", err);
        if (s) return open_fail(db, s);
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (rc == SQLITE_ROW || rc == SQLITE_DONE) break;
        /* Changing the journal mode wants the file to itself; wait out other openers. */
        if ((rc & 0xFF) == SQLITE_BUSY && tries < 200) {
            sqlite3_sleep(50);
            continue;
        }
        return open_fail(db, db_fail(db, err, "cannot switch to WAL"));
    }
    if (h.version < LP_RUNSDB_SCHEMA_VERSION) {
        s = migrate(db, err);
        if (s) return open_fail(db, s);
    }
    s = exec(db, "PRAGMA foreign_keys=ON", "cannot enable foreign keys", err);
    if (s) return open_fail(db, s);
    /* Runs whose process died unannounced become 'crashed' (lifecycle.h). Best
     * effort: a database that cannot take the write (full disk) still opens. */
    lp_error ignored = {0};
    lp_runsdb_sweep_stale(db, NULL, &ignored);
    *out = db;
    return LP_OK;
}

/* "file:PATH?immutable=1" with PATH percent-encoded as a URI path; malloc'd or NULL. */
static char *immutable_uri(const char *path)
{
    size_t n = strlen(path);
    char *u = malloc(3 * n + 32), *p = u;
    if (!u) return NULL;
    p += sprintf(p, "file:");
    for (const unsigned char *c = (const unsigned char *)path; *c; c++) {
        if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
            strchr("/-._~", *c))
            *p++ = (char)*c;
        else p += sprintf(p, "%%%02X", *c);
    }
    strcpy(p, "?immutable=1");
    return u;
}

lp_status lp_runsdb_open_readonly(const char *path, lp_runsdb **out, lp_error *err)
{
    lp_runsdb *db;
    lp_status s = db_new(path, &db, err);
    if (s) return s;
    db->readonly = true;
    if (access(path, F_OK) != 0)
        return open_fail(db, lp_error_set(err, LP_ERR_IO, "runs database '%s' does not exist", path));
    /* On a read-only file system SQLite cannot create the -shm file a WAL database
     * needs even to be read ("unable to open database file"). Nobody can write the
     * file there, so it is safe to open it as immutable: no locks, no -shm. */
    struct statvfs vfs;
    char *uri = NULL;
    if (statvfs(path, &vfs) == 0 && (vfs.f_flag & ST_RDONLY) && !(uri = immutable_uri(path)))
        return open_fail(db, lp_error_set(err, LP_ERR_NOMEM, "out of memory opening %s", path));
    int rc = sqlite3_open_v2(uri ? uri : path, &db->h, SQLITE_OPEN_READONLY | (uri ? SQLITE_OPEN_URI : 0), NULL);
    db->immutable = uri != NULL;
    free(uri);
    if (rc != SQLITE_OK) {
        if (!db->h) return open_fail(db, lp_error_set(err, LP_ERR_NOMEM, "out of memory opening %s", path));
        return open_fail(db, db_fail(db, err, "cannot open"));
    }
    sqlite3_extended_result_codes(db->h, 1);
    sqlite3_busy_timeout(db->h, LP_RUNSDB_BUSY_MS);
    db_header h;
    s = read_header(db, &h, err);
    if (!s) s = check_header(db, &h, err);
    if (!s && h.version < LP_RUNSDB_SCHEMA_VERSION)
        s = lp_error_set(err, LP_ERR_DB, "runs database '%s': %s", path,
                         h.version == 0 ? "has no loupe schema yet (no run was recorded in it)"
                                        : "has an older schema; open it for training once to migrate it");
    if (s) return open_fail(db, s);
    /* A reader must not show a dead run as running: if one is stale and the file
     * can be written, a read-write open (which sweeps) marks it first. */
    if (!db->immutable && access(path, W_OK) == 0 && lp_runsdb_count_stale(db) > 0) {
        lp_runsdb *rw;
        lp_error ignored = {0};
        if (lp_runsdb_open(path, &rw, &ignored) == LP_OK) lp_runsdb_close(rw);
    }
    *out = db;
    return LP_OK;
}

void lp_runsdb_close(lp_runsdb *db)
{
    if (!db) return;
    if (db->h) sqlite3_close_v2(db->h);
    free(db->path);
    free(db);
}

const char *lp_runsdb_path(const lp_runsdb *db) { return db->path; }

/* ---------------- statuses ---------------- */

static const char *const status_names[] = {"running", "completed", "failed", "interrupted", "crashed"};
#define N_STATUSES ((int)(sizeof status_names / sizeof status_names[0]))
_Static_assert(sizeof status_names / sizeof status_names[0] == LP_RUN_CRASHED + 1, "a name per status");

const char *lp_run_status_name(lp_run_status s)
{
    assert((unsigned)s < (unsigned)N_STATUSES);
    return status_names[s];
}

lp_status lp_run_status_parse(const char *name, lp_run_status *out, lp_error *err)
{
    for (int i = 0; i < N_STATUSES; i++)
        if (name && strcmp(name, status_names[i]) == 0) {
            *out = (lp_run_status)i;
            return LP_OK;
        }
    return lp_error_set(err, LP_ERR_ARG, "unknown run status '%s' (expected running, completed, failed, "
                        "interrupted or crashed)", name ? name : "(null)");
}

/* ---------------- recording ---------------- */

static double unix_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* A row whose NOT NULL column reads NULL (a damaged or hand-edited file): refused,
 * so no reader hands a NULL string where the schema promises text. */
static lp_status damaged(lp_runsdb *db, int64_t run_id, const char *what, lp_error *err)
{
    return lp_error_set(err, LP_ERR_DB, "runs database '%s': run %lld is damaged: its %s is missing (NULL)",
                        db->path, (long long)run_id, what);
}

/* LP_OK if the run exists (and *status set if asked), LP_ERR_ARG otherwise. */
static lp_status run_status(lp_runsdb *db, int64_t run_id, char *status, size_t cap, lp_error *err)
{
    sqlite3_stmt *st;
    lp_status s = prepare(db, "SELECT status FROM runs WHERE id = ?", &st, "cannot read run", err);
    if (s) return s;
    sqlite3_bind_int64(st, 1, run_id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const char *text = (const char *)sqlite3_column_text(st, 0);
        if (!text) s = damaged(db, run_id, "status", err);
        else if (status) snprintf(status, cap, "%s", text);
    } else if (rc == SQLITE_DONE) {
        s = lp_error_set(err, LP_ERR_ARG, "no run %lld in '%s'", (long long)run_id, db->path);
    } else {
        s = db_fail(db, err, "cannot read run");
    }
    sqlite3_finalize(st);
    return s;
}

lp_status lp_runsdb_begin_run(lp_runsdb *db, const lp_run_new *run, int64_t *run_id, lp_error *err)
{
    assert(db && run && run_id);
    *run_id = 0;
    if (!run->name || !run->config_yaml)
        return lp_error_set(err, LP_ERR_ARG, "runs database: a run needs a name and its config text");
    for (int i = 0; i < run->n_params; i++)
        if (!run->keys[i] || !run->values[i])
            return lp_error_set(err, LP_ERR_ARG, "runs database: setting %d of run '%s' is NULL", i, run->name);
    char hash[65], host[256] = "";
    lp_sha256_hex(run->config_yaml, strlen(run->config_yaml), hash);
    if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';

    const char *what = "cannot record a new run";
    lp_status s = tx_begin(db, what, err);
    if (s) return s;
    sqlite3_stmt *st = NULL;
    s = prepare(db,
                "INSERT INTO runs (name, status, config_yaml, config_hash, seed, param_count, host, threads, "
                "started_at, pid, proc_start, heartbeat_at, data_sha256, data_train_count, data_test_count, "
                "data_shape, loupe_version, loupe_commit, compiler, cflags, parent_run_id, sweep_trial, kind, "
                "world_size) "
                "VALUES (?, 'running', ?, ?, ?, ?, ?, ?, " NOW_SQL ", ?, ?, " NOW_SQL ", ?, ?, ?, ?, ?, ?, ?, ?, "
                "?, ?, ?, ?)",
                &st, what, err);
    if (!s) {
        sqlite3_bind_text(st, 1, run->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, run->config_yaml, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, hash, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, (sqlite3_int64)run->seed);
        sqlite3_bind_int64(st, 5, run->param_count);
        if (host[0]) sqlite3_bind_text(st, 6, host, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 7, run->threads);
        sqlite3_bind_int64(st, 8, (sqlite3_int64)getpid());
        sqlite3_bind_int64(st, 9, lp_proc_start_time((long)getpid()));
        const char *text[] = {run->data_sha256, NULL, NULL, run->data_shape, run->loupe_version,
                              run->loupe_commit, run->compiler, run->cflags};
        for (int i = 0; i < 8; i++)
            if (text[i]) sqlite3_bind_text(st, 10 + i, text[i], -1, SQLITE_STATIC);
        if (run->data_sha256) {
            sqlite3_bind_int64(st, 11, run->data_train_count);
            sqlite3_bind_int64(st, 12, run->data_test_count);
        }
        if (run->parent_run_id > 0) sqlite3_bind_int64(st, 18, run->parent_run_id);
        if (run->sweep_trial > 0) sqlite3_bind_int(st, 19, run->sweep_trial);
        sqlite3_bind_text(st, 20, run->kind ? run->kind : "train", -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 21, run->world_size > 0 ? run->world_size : 1);
        if (sqlite3_step(st) != SQLITE_DONE) s = db_fail(db, err, what);
        sqlite3_finalize(st);
    }
    int64_t id = sqlite3_last_insert_rowid(db->h);
    if (!s) s = prepare(db, "INSERT INTO run_params (run_id, key, value) VALUES (?, ?, ?)", &st, what, err);
    if (!s) {
        for (int i = 0; !s && i < run->n_params; i++) {
            sqlite3_reset(st);
            sqlite3_bind_int64(st, 1, id);
            sqlite3_bind_text(st, 2, run->keys[i], -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 3, run->values[i], -1, SQLITE_STATIC);
            if (sqlite3_step(st) != SQLITE_DONE) {
                char w[320];
                snprintf(w, sizeof w, "cannot record setting '%.200s' of the new run", run->keys[i]);
                s = db_fail(db, err, w);
            }
        }
        sqlite3_finalize(st);
    }
    if (s) return tx_abort(db, s);
    s = tx_commit(db, what, err);
    if (!s) *run_id = id;
    return s;
}

/* The checksum column: CRC-32 of the blob, without the 4-byte CRC-32 trailer an
 * LPCK checkpoint ends with. A CRC over data followed by its own CRC is the same
 * constant (0x2144df1c) for every input, which would make the column useless for
 * telling checkpoints apart; the trailer itself is checked by lp_checkpoint_decode. */
static uint32_t blob_checksum(const void *blob, size_t size)
{
    bool lpck = lp_checkpoint_peek_version(blob, size) >= 1 && size >= 4;
    return lp_crc32(blob, lpck ? size - 4 : size);
}

/* lp_runsdb_commit_epoch, and lp_runsdb_commit_epoch_eval (evaluation.h) when ev is not NULL. */
static lp_status commit_epoch(lp_runsdb *db, int64_t run_id, int epoch, long long step,
                              const lp_metric *metrics, int n_metrics, const void *ckpt, size_t ckpt_size,
                              bool is_best, const lp_evaluation *ev, lp_error *err)
{
    assert(db && n_metrics >= 0 && (n_metrics == 0 || metrics));
    if (epoch < 1) return lp_error_set(err, LP_ERR_ARG, "runs database: epoch %d is not >= 1", epoch);
    if (ckpt && ckpt_size > (size_t)INT32_MAX)
        return lp_error_set(err, LP_ERR_ARG, "runs database: checkpoint of %zu bytes exceeds SQLite's "
                            "2 GiB BLOB limit", ckpt_size);
    for (int i = 0; i < n_metrics; i++)
        if (!metrics[i].split || (strcmp(metrics[i].split, "train") && strcmp(metrics[i].split, "val") &&
                                  strcmp(metrics[i].split, "test")))
            return lp_error_set(err, LP_ERR_ARG, "runs database: metric %d has split '%s' (expected train, val "
                                "or test)", i, metrics[i].split ? metrics[i].split : "(null)");
    lp_status bad_ev = ev ? lp_rdb_check_evaluation(ev, err) : LP_OK;
    if (bad_ev) return bad_ev;
    char what[96];
    snprintf(what, sizeof what, "cannot record epoch %d of run %lld", epoch, (long long)run_id);

    lp_status s = tx_begin(db, what, err);
    if (s) return s;
    char status[32];
    s = run_status(db, run_id, status, sizeof status, err);
    if (!s && strcmp(status, "running") != 0)
        s = lp_error_set(err, LP_ERR_ARG, "runs database '%s': run %lld is %s; it records no more epochs",
                         db->path, (long long)run_id, status);
    double now = unix_now(), acc = NAN;
    sqlite3_stmt *st = NULL;
    if (!s) s = prepare(db, "INSERT INTO metrics (run_id, epoch, step, split, name, value, is_nan, wall_time) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", &st, what, err);
    for (int i = 0; !s && i < n_metrics; i++) {
        const lp_metric *m = &metrics[i];
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, run_id);
        sqlite3_bind_int(st, 2, epoch);
        sqlite3_bind_int64(st, 3, step);
        sqlite3_bind_text(st, 4, m->split, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, m->name, -1, SQLITE_STATIC);   /* NULL name: NOT NULL refuses it */
        if (isnan(m->value)) sqlite3_bind_null(st, 6);
        else sqlite3_bind_double(st, 6, m->value);
        sqlite3_bind_int(st, 7, isnan(m->value) ? 1 : 0);
        sqlite3_bind_double(st, 8, now);
        if (sqlite3_step(st) != SQLITE_DONE) s = db_fail(db, err, what);
        if (!s && m->name && strcmp(m->split, "test") == 0 && strcmp(m->name, "acc") == 0) acc = m->value;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (!s && ckpt && is_best) {
        s = prepare(db, "UPDATE checkpoints SET is_best = 0 WHERE run_id = ? AND is_best = 1", &st, what, err);
        if (!s) {
            sqlite3_bind_int64(st, 1, run_id);
            if (sqlite3_step(st) != SQLITE_DONE) s = db_fail(db, err, what);
            sqlite3_finalize(st);
        }
    }
    if (!s && ckpt) {
        s = prepare(db, "INSERT INTO checkpoints (run_id, epoch, step, format_version, checksum, size_bytes, "
                        "weights, is_best, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, " NOW_SQL ")",
                    &st, what, err);
        if (!s) {
            sqlite3_bind_int64(st, 1, run_id);
            sqlite3_bind_int(st, 2, epoch);
            sqlite3_bind_int64(st, 3, step);
            sqlite3_bind_int(st, 4, lp_checkpoint_peek_version(ckpt, ckpt_size));
            sqlite3_bind_int64(st, 5, (sqlite3_int64)blob_checksum(ckpt, ckpt_size));
            sqlite3_bind_int64(st, 6, (sqlite3_int64)ckpt_size);
            sqlite3_bind_blob(st, 7, ckpt, (int)ckpt_size, SQLITE_STATIC);
            sqlite3_bind_int(st, 8, is_best ? 1 : 0);
            if (sqlite3_step(st) != SQLITE_DONE) s = db_fail(db, err, what);
            sqlite3_finalize(st);
        }
    }
    if (!s) {
        s = prepare(db, "UPDATE runs SET epochs_done = MAX(epochs_done, ?2), "
                        "final_test_acc = COALESCE(?3, final_test_acc), "
                        "best_test_acc = CASE WHEN ?3 IS NULL THEN best_test_acc "
                        "  WHEN best_test_acc IS NULL OR ?3 > best_test_acc THEN ?3 ELSE best_test_acc END "
                        "WHERE id = ?1", &st, what, err);
        if (!s) {
            sqlite3_bind_int64(st, 1, run_id);
            sqlite3_bind_int(st, 2, epoch);
            if (isfinite(acc)) sqlite3_bind_double(st, 3, acc);
            else sqlite3_bind_null(st, 3);
            if (sqlite3_step(st) != SQLITE_DONE) s = db_fail(db, err, what);
            sqlite3_finalize(st);
        }
    }
    if (!s && ev) s = lp_rdb_write_evaluation(db, run_id, epoch, ev, what, err);
    if (s) return tx_abort(db, s);
    return tx_commit(db, what, err);
}

lp_status lp_runsdb_commit_epoch(lp_runsdb *db, int64_t run_id, int epoch, long long step,
                                 const lp_metric *metrics, int n_metrics, const void *ckpt, size_t ckpt_size,
                                 bool is_best, lp_error *err)
{
    return commit_epoch(db, run_id, epoch, step, metrics, n_metrics, ckpt, ckpt_size, is_best, NULL, err);
}

lp_status lp_runsdb_commit_epoch_eval(lp_runsdb *db, int64_t run_id, int epoch, long long step,
                                      const lp_metric *metrics, int n_metrics, const void *ckpt,
                                      size_t ckpt_size, bool is_best, const lp_evaluation *ev,
                                      lp_error *err)
{
    return commit_epoch(db, run_id, epoch, step, metrics, n_metrics, ckpt, ckpt_size, is_best, ev, err);
}

/* Run one UPDATE/DELETE with a run id (and optional int) bound; rows changed in *changes. */
static lp_status run_write(lp_runsdb *db, const char *sql, int64_t run_id, const char *text, int num,
                           int *changes, const char *what, lp_error *err)
{
    sqlite3_stmt *st;
    lp_status s = prepare(db, sql, &st, what, err);
    if (s) return s;
    sqlite3_bind_int64(st, 1, run_id);
    if (sqlite3_bind_parameter_count(st) >= 2) sqlite3_bind_text(st, 2, text, -1, SQLITE_STATIC);
    if (sqlite3_bind_parameter_count(st) >= 3) sqlite3_bind_int(st, 3, num);
    if (sqlite3_step(st) != SQLITE_DONE) s = db_fail(db, err, what);
    if (changes) *changes = sqlite3_changes(db->h);
    sqlite3_finalize(st);
    return s;
}

lp_status lp_runsdb_finish_run(lp_runsdb *db, int64_t run_id, lp_run_status status, const char *error_text,
                               lp_error *err)
{
    assert(status != LP_RUN_RUNNING);
    char what[96];
    snprintf(what, sizeof what, "cannot finish run %lld", (long long)run_id);
    lp_status s = tx_begin(db, what, err);
    if (s) return s;
    s = run_status(db, run_id, NULL, 0, err);
    sqlite3_stmt *st;
    if (!s) s = prepare(db, "UPDATE runs SET status = ?2, error = ?3, finished_at = " NOW_SQL " WHERE id = ?1",
                        &st, what, err);
    if (!s) {
        sqlite3_bind_int64(st, 1, run_id);
        sqlite3_bind_text(st, 2, lp_run_status_name(status), -1, SQLITE_STATIC);
        if (error_text) sqlite3_bind_text(st, 3, error_text, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE) s = db_fail(db, err, what);
        sqlite3_finalize(st);
    }
    if (s) return tx_abort(db, s);
    return tx_commit(db, what, err);
}

lp_status lp_runsdb_set_stop_reason(lp_runsdb *db, int64_t run_id, const char *reason, lp_error *err)
{
    char what[96];
    snprintf(what, sizeof what, "cannot record why run %lld stopped", (long long)run_id);
    lp_status s = tx_begin(db, what, err);
    if (s) return s;
    s = run_status(db, run_id, NULL, 0, err);
    sqlite3_stmt *st;
    if (!s) s = prepare(db, "UPDATE runs SET stop_reason = ?2 WHERE id = ?1", &st, what, err);
    if (!s) {
        sqlite3_bind_int64(st, 1, run_id);
        if (reason) sqlite3_bind_text(st, 2, reason, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE) s = db_fail(db, err, what);
        sqlite3_finalize(st);
    }
    if (s) return tx_abort(db, s);
    return tx_commit(db, what, err);
}

/* A run may be resumed unless a process is still training it: status running
 * and a live process on this host, or a recent heartbeat from another host. */
static lp_status check_not_alive(lp_runsdb *db, int64_t run_id, lp_error *err)
{
    sqlite3_stmt *st;
    lp_status s = prepare(db, "SELECT status, host, pid, COALESCE(proc_start, -1), "
                              "(julianday('now') - julianday(COALESCE(heartbeat_at, started_at))) * 86400.0 "
                              "FROM runs WHERE id = ?", &st, "cannot read run", err);
    if (s) return s;
    sqlite3_bind_int64(st, 1, run_id);
    const char *status = sqlite3_step(st) == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
    if (status && strcmp(status, "running") == 0) {
        const char *host = (const char *)sqlite3_column_text(st, 1);
        long pid = (long)sqlite3_column_int64(st, 2);
        double age = sqlite3_column_double(st, 4);
        lp_run_liveness l = lp_run_process(host, sqlite3_column_type(st, 2) != SQLITE_NULL, pid,
                                           sqlite3_column_int64(st, 3));
        if (l == LP_RUN_PROCESS_ALIVE)
            s = lp_error_set(err, LP_ERR_ARG, "run %lld is still being trained by process %ld on this host; "
                             "stop it first", (long long)run_id, pid);
        else if (l == LP_RUN_PROCESS_UNKNOWN && age <= lp_stale_remote_seconds())
            s = lp_error_set(err, LP_ERR_ARG, "run %lld is running on host %s (last heartbeat %.0f s ago); it "
                             "can be resumed once it stops, or %g s after its last heartbeat "
                             "(LOUPE_STALE_REMOTE_SECONDS)", (long long)run_id, host ? host : "?", age,
                             lp_stale_remote_seconds());
    }
    sqlite3_finalize(st);
    return s;
}

/* The run is now this process's: host, pid, process start time and a first heartbeat. */
static lp_status claim_run(lp_runsdb *db, int64_t run_id, const char *what, lp_error *err)
{
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
    sqlite3_stmt *st;
    lp_status s = prepare(db, "UPDATE runs SET host = ?2, pid = ?3, proc_start = ?4, heartbeat_at = " NOW_SQL
                              " WHERE id = ?1", &st, what, err);
    if (s) return s;
    sqlite3_bind_int64(st, 1, run_id);
    if (host[0]) sqlite3_bind_text(st, 2, host, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)getpid());
    sqlite3_bind_int64(st, 4, lp_proc_start_time((long)getpid()));
    if (sqlite3_step(st) != SQLITE_DONE) s = db_fail(db, err, what);
    sqlite3_finalize(st);
    return s;
}

lp_status lp_runsdb_resume_run(lp_runsdb *db, int64_t run_id, int epoch, lp_error *err)
{
    char what[96];
    snprintf(what, sizeof what, "cannot resume run %lld after epoch %d", (long long)run_id, epoch);
    if (epoch < 0) return lp_error_set(err, LP_ERR_ARG, "runs database: %s: negative epoch", what);
    lp_status s = tx_begin(db, what, err);
    if (s) return s;
    s = run_status(db, run_id, NULL, 0, err);
    if (!s) s = check_not_alive(db, run_id, err);
    if (!s) s = run_write(db, "DELETE FROM metrics WHERE run_id = ?1 AND epoch > ?3", run_id,
                          NULL, epoch, NULL, what, err);
    if (!s) s = run_write(db, "DELETE FROM checkpoints WHERE run_id = ?1 AND epoch > ?3",
                          run_id, NULL, epoch, NULL, what, err);
    if (!s) s = lp_rdb_delete_evaluations_after(db, run_id, epoch, what, err);
    if (!s)
        s = run_write(db,
                      "UPDATE runs SET status = 'running', finished_at = NULL, error = NULL, "
                      "epochs_done = ?3, "
                      "final_test_acc = (SELECT value FROM metrics m WHERE m.run_id = ?1 AND m.split = 'test' "
                      "  AND m.name = 'acc' ORDER BY m.epoch DESC, m.step DESC LIMIT 1), "
                      "best_test_acc = (SELECT MAX(value) FROM metrics m WHERE m.run_id = ?1 "
                      "  AND m.split = 'test' AND m.name = 'acc') WHERE id = ?1",
                      run_id, NULL, epoch, NULL, what, err);
    if (!s) s = claim_run(db, run_id, what, err);
    if (s) return tx_abort(db, s);
    return tx_commit(db, what, err);
}

lp_status lp_runsdb_delete_run(lp_runsdb *db, int64_t run_id, lp_error *err)
{
    char what[64];
    snprintf(what, sizeof what, "cannot delete run %lld", (long long)run_id);
    lp_status s = tx_begin(db, what, err);
    if (s) return s;
    s = run_status(db, run_id, NULL, 0, err);
    if (!s) s = run_write(db, "DELETE FROM runs WHERE id = ?1", run_id, NULL, 0, NULL, what, err);
    if (s) return tx_abort(db, s);
    return tx_commit(db, what, err);
}

/* ---------------- reading ---------------- */

/* Read transactions: one consistent snapshot across the statements of a call. */
static lp_status rtx_begin(lp_runsdb *db, lp_error *err) { return exec(db, "BEGIN", "cannot read", err); }
static void rtx_end(lp_runsdb *db) { sqlite3_exec(db->h, "COMMIT", NULL, NULL, NULL); }

lp_status lp_runsdb_load_checkpoint(lp_runsdb *db, int64_t run_id, const char *which, void **blob,
                                    size_t *size, int *epoch, long long *step, lp_error *err)
{
    assert(db && blob && size);
    *blob = NULL;
    *size = 0;
    const char *sql;
    long long want = 0;
    if (!which || strcmp(which, "last") == 0) {
        which = "last";
        sql = "SELECT epoch, step, checksum, weights FROM checkpoints WHERE run_id = ?1 "
              "ORDER BY epoch DESC LIMIT 1";
    } else if (strcmp(which, "best") == 0) {
        sql = "SELECT epoch, step, checksum, weights FROM checkpoints WHERE run_id = ?1 AND is_best = 1 "
              "ORDER BY epoch DESC LIMIT 1";
    } else {
        char *end;
        errno = 0;
        want = strtoll(which, &end, 10);
        if (errno || end == which || *end || want < 1 || want > INT32_MAX)
            return lp_error_set(err, LP_ERR_ARG, "checkpoint '%s': expected last, best or an epoch number",
                                which);
        sql = "SELECT epoch, step, checksum, weights FROM checkpoints WHERE run_id = ?1 AND epoch = ?2";
    }
    lp_status s = rtx_begin(db, err);
    if (s) return s;
    s = run_status(db, run_id, NULL, 0, err);
    sqlite3_stmt *st = NULL;
    if (!s) s = prepare(db, sql, &st, "cannot read a checkpoint", err);
    if (!s) {
        sqlite3_bind_int64(st, 1, run_id);
        if (want) sqlite3_bind_int64(st, 2, want);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE) {
            if (want)
                s = lp_error_set(err, LP_ERR_ARG, "run %lld has no checkpoint of epoch %lld", (long long)run_id,
                                 want);
            else
                s = lp_error_set(err, LP_ERR_ARG, "run %lld has no %s checkpoint", (long long)run_id, which);
        } else if (rc != SQLITE_ROW) {
            s = db_fail(db, err, "cannot read a checkpoint");
        } else {
            int e = sqlite3_column_int(st, 0);
            long long stp = sqlite3_column_int64(st, 1);
            uint32_t stored = (uint32_t)sqlite3_column_int64(st, 2);
            const void *p = sqlite3_column_blob(st, 3);
            size_t n = (size_t)sqlite3_column_bytes(st, 3);
            if (blob_checksum(p, n) != stored) {
                s = lp_error_set(err, LP_ERR_DATA, "checkpoint of run %lld epoch %d: checksum mismatch "
                                 "(the stored blob is damaged)", (long long)run_id, e);
            } else if (!(*blob = malloc(n ? n : 1))) {
                s = lp_error_set(err, LP_ERR_NOMEM, "cannot allocate %zu bytes for a checkpoint", n);
            } else {
                if (n) memcpy(*blob, p, n);
                *size = n;
                if (epoch) *epoch = e;
                if (step) *step = stp;
            }
        }
        sqlite3_finalize(st);
    }
    rtx_end(db);
    return s;
}

static char *col_strdup(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? strdup((const char *)t) : NULL;
}

static double col_double(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
}

#define RUN_COLUMNS                                                                                        \
    "r.id, r.name, r.status, r.config_hash, r.host, r.started_at, r.finished_at, r.error, r.seed, "        \
    "r.param_count, r.threads, r.epochs_done, r.best_test_acc, r.final_test_acc, "                         \
    "(julianday(COALESCE(r.finished_at, 'now')) - julianday(r.started_at)) * 86400.0"

/* Fills *r; returns the name of a NOT NULL column that read NULL, or NULL. */
static const char *read_run_row(sqlite3_stmt *st, lp_run_row *r)
{
    r->id = sqlite3_column_int64(st, 0);
    r->name = col_strdup(st, 1);
    r->status = col_strdup(st, 2);
    r->config_hash = col_strdup(st, 3);
    r->host = col_strdup(st, 4);
    r->started_at = col_strdup(st, 5);
    r->finished_at = col_strdup(st, 6);
    r->error = col_strdup(st, 7);
    r->seed = (uint64_t)sqlite3_column_int64(st, 8);
    r->param_count = sqlite3_column_int64(st, 9);
    r->threads = sqlite3_column_int(st, 10);
    r->epochs_done = sqlite3_column_int(st, 11);
    r->best_test_acc = col_double(st, 12);
    r->final_test_acc = col_double(st, 13);
    r->duration_s = col_double(st, 14);
    r->sort_value = NAN;
    return !r->name ? "name" : !r->status ? "status" : !r->config_hash ? "config_hash"
         : !r->started_at ? "started_at" : NULL;
}

static void run_row_clear(lp_run_row *r)
{
    free(r->name);
    free(r->status);
    free(r->config_hash);
    free(r->host);
    free(r->started_at);
    free(r->finished_at);
    free(r->error);
}

void lp_run_rows_free(lp_run_row *rows, int n)
{
    for (int i = 0; rows && i < n; i++) run_row_clear(&rows[i]);
    free(rows);
}

/* Append to a growable SQL string (fixed cap: the filter adds little). */
static bool sql_add(char *sql, size_t cap, const char *piece)
{
    size_t n = strlen(sql), m = strlen(piece);
    if (n + m + 1 > cap) return false;
    memcpy(sql + n, piece, m + 1);
    return true;
}

lp_status lp_runsdb_list(lp_runsdb *db, const lp_run_filter *f, lp_run_row **rows, int *n, lp_error *err)
{
    assert(db && rows && n);
    *rows = NULL;
    *n = 0;
    lp_run_filter none = {0};
    if (!f) f = &none;
    if (f->n_params < 0 || f->n_params > 64)
        return lp_error_set(err, LP_ERR_ARG, "runs list: at most 64 setting filters");
    if (f->status) {
        lp_run_status tmp;
        lp_status s = lp_run_status_parse(f->status, &tmp, err);
        if (s) return s;
    }
    /* The sort key is chosen from a fixed list (never pasted from the user). */
    const char *ob = f->order_by ? f->order_by : "id";
    const char *sort_expr;
    char split[16] = "", metric[128] = "";
    const char *slash = strchr(ob, '/');
    if (strcmp(ob, "id") == 0) sort_expr = "r.id";
    else if (strcmp(ob, "name") == 0) sort_expr = "r.name";
    else if (strcmp(ob, "started") == 0) sort_expr = "r.started_at";
    else if (strcmp(ob, "duration") == 0) sort_expr = "(julianday(COALESCE(r.finished_at, 'now')) - julianday(r.started_at)) * 86400.0";
    else if (strcmp(ob, "best_test_acc") == 0) sort_expr = "r.best_test_acc";
    else if (strcmp(ob, "final_test_acc") == 0) sort_expr = "r.final_test_acc";
    else if (slash && (size_t)(slash - ob) < sizeof split && strlen(slash + 1) < sizeof metric && slash[1]) {
        memcpy(split, ob, (size_t)(slash - ob));
        split[slash - ob] = '\0';
        snprintf(metric, sizeof metric, "%s", slash + 1);
        if (strcmp(split, "train") && strcmp(split, "val") && strcmp(split, "test"))
            return lp_error_set(err, LP_ERR_ARG,
                                "runs list: cannot order by '%s' (split must be train, val or test)", ob);
        sort_expr = "(SELECT m.value FROM metrics m WHERE m.run_id = r.id AND m.split = ? AND m.name = ? "
                    "ORDER BY m.epoch DESC, m.step DESC LIMIT 1)";
    } else {
        return lp_error_set(err, LP_ERR_ARG, "runs list: cannot order by '%s' (expected id, name, started, "
                            "duration, best_test_acc, final_test_acc or SPLIT/METRIC such as test/loss)", ob);
    }
    char sql[8192] = "SELECT " RUN_COLUMNS ", ";
    bool ok = sql_add(sql, sizeof sql, sort_expr) && sql_add(sql, sizeof sql, " AS sort_value FROM runs r WHERE 1");
    if (f->name_like) ok = ok && sql_add(sql, sizeof sql, " AND r.name LIKE ?");
    if (f->status) ok = ok && sql_add(sql, sizeof sql, " AND r.status = ?");
    for (int i = 0; i < f->n_params; i++)
        ok = ok && sql_add(sql, sizeof sql, " AND EXISTS (SELECT 1 FROM run_params p WHERE p.run_id = r.id "
                                            "AND p.key = ? AND p.value = ?)");
    ok = ok && sql_add(sql, sizeof sql, f->ascending ? " ORDER BY sort_value ASC NULLS LAST, r.id ASC"
                                                     : " ORDER BY sort_value DESC NULLS LAST, r.id DESC");
    if (f->limit > 0) ok = ok && sql_add(sql, sizeof sql, " LIMIT ?");
    assert(ok);

    lp_status s = rtx_begin(db, err);
    if (s) return s;
    sqlite3_stmt *st;
    s = prepare(db, sql, &st, "cannot list runs", err);
    if (s) {
        rtx_end(db);
        return s;
    }
    int b = 1;
    if (split[0]) {
        sqlite3_bind_text(st, b++, split, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, b++, metric, -1, SQLITE_STATIC);
    }
    if (f->name_like) sqlite3_bind_text(st, b++, f->name_like, -1, SQLITE_STATIC);
    if (f->status) sqlite3_bind_text(st, b++, f->status, -1, SQLITE_STATIC);
    for (int i = 0; i < f->n_params; i++) {
        sqlite3_bind_text(st, b++, f->param_keys[i], -1, SQLITE_STATIC);
        sqlite3_bind_text(st, b++, f->param_values[i], -1, SQLITE_STATIC);
    }
    if (f->limit > 0) sqlite3_bind_int(st, b++, f->limit);
    lp_run_row *out = NULL;
    int count = 0, cap = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (count == cap) {
            cap = cap ? 2 * cap : 16;
            lp_run_row *p = realloc(out, (size_t)cap * sizeof *p);
            if (!p) {
                s = lp_error_set(err, LP_ERR_NOMEM, "out of memory listing runs");
                break;
            }
            out = p;
        }
        const char *missing = read_run_row(st, &out[count]);
        out[count].sort_value = col_double(st, 15);
        count++;
        if (missing) {
            s = damaged(db, out[count - 1].id, missing, err);
            break;
        }
    }
    if (!s && rc != SQLITE_DONE) s = db_fail(db, err, "cannot list runs");
    sqlite3_finalize(st);
    rtx_end(db);
    if (s) {
        lp_run_rows_free(out, count);
        return s;
    }
    *rows = out;
    *n = count;
    return LP_OK;
}

void lp_run_details_free(lp_run_details *d)
{
    if (!d) return;
    run_row_clear(&d->run);
    free(d->config_yaml);
    free(d->heartbeat_at);
    free(d->data_sha256);
    free(d->data_shape);
    free(d->loupe_version);
    free(d->loupe_commit);
    free(d->compiler);
    free(d->cflags);
    free(d->stop_reason);
    free(d->kind);
    for (int i = 0; i < d->n_params; i++) {
        free(d->keys[i]);
        free(d->values[i]);
    }
    free(d->keys);
    free(d->values);
    for (int i = 0; i < d->n_checkpoints; i++) free(d->checkpoints[i].created_at);
    free(d->checkpoints);
    memset(d, 0, sizeof *d);
}

/* Rows of a one-run query, counted first so arrays are allocated once. */
static lp_status count_rows(lp_runsdb *db, const char *sql, int64_t run_id, int *n, lp_error *err)
{
    sqlite3_stmt *st;
    lp_status s = prepare(db, sql, &st, "cannot read run", err);
    if (s) return s;
    sqlite3_bind_int64(st, 1, run_id);
    if (sqlite3_step(st) == SQLITE_ROW) *n = sqlite3_column_int(st, 0);
    else s = db_fail(db, err, "cannot read run");
    sqlite3_finalize(st);
    return s;
}

lp_status lp_runsdb_show(lp_runsdb *db, int64_t run_id, lp_run_details *d, lp_error *err)
{
    assert(db && d);
    memset(d, 0, sizeof *d);
    lp_status s = rtx_begin(db, err);
    if (s) return s;
    s = run_status(db, run_id, NULL, 0, err);
    sqlite3_stmt *st = NULL;
    if (!s) s = prepare(db, "SELECT " RUN_COLUMNS ", r.config_yaml, r.pid, r.heartbeat_at, r.data_sha256, "
                            "r.data_shape, r.data_train_count, r.data_test_count, r.loupe_version, "
                            "r.loupe_commit, r.compiler, r.cflags, r.stop_reason, r.kind, r.parent_run_id, "
                            "r.sweep_trial, r.world_size FROM runs r WHERE r.id = ?", &st,
                        "cannot read run", err);
    if (!s) {
        sqlite3_bind_int64(st, 1, run_id);
        if (sqlite3_step(st) == SQLITE_ROW) {
            const char *missing = read_run_row(st, &d->run);
            d->config_yaml = col_strdup(st, 15);
            if (!missing && !d->config_yaml) missing = "config_yaml";
            if (missing) s = damaged(db, run_id, missing, err);
            d->pid = sqlite3_column_type(st, 16) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 16);
            d->heartbeat_at = col_strdup(st, 17);
            d->data_sha256 = col_strdup(st, 18);
            d->data_shape = col_strdup(st, 19);
            d->data_train_count = sqlite3_column_type(st, 20) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 20);
            d->data_test_count = sqlite3_column_type(st, 21) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 21);
            d->loupe_version = col_strdup(st, 22);
            d->loupe_commit = col_strdup(st, 23);
            d->compiler = col_strdup(st, 24);
            d->cflags = col_strdup(st, 25);
            d->stop_reason = col_strdup(st, 26);
            d->kind = col_strdup(st, 27);
            d->parent_run_id = sqlite3_column_int64(st, 28);
            d->sweep_trial = sqlite3_column_int(st, 29);
            d->world_size = sqlite3_column_int(st, 30);
            if (!s && !d->kind) s = damaged(db, run_id, "kind", err);
        } else {
            s = db_fail(db, err, "cannot read run");
        }
        sqlite3_finalize(st);
    }
    int np = 0, nc = 0;
    if (!s) s = count_rows(db, "SELECT count(*) FROM run_params WHERE run_id = ?", run_id, &np, err);
    if (!s) s = count_rows(db, "SELECT count(*) FROM checkpoints WHERE run_id = ?", run_id, &nc, err);
    if (!s) {
        d->keys = calloc((size_t)np + 1, sizeof *d->keys);
        d->values = calloc((size_t)np + 1, sizeof *d->values);
        d->checkpoints = calloc((size_t)nc + 1, sizeof *d->checkpoints);
        if (!d->keys || !d->values || !d->checkpoints) s = lp_error_set(err, LP_ERR_NOMEM, "out of memory");
    }
    if (!s) s = prepare(db, "SELECT key, value FROM run_params WHERE run_id = ? ORDER BY key", &st,
                        "cannot read run settings", err);
    if (!s) {
        sqlite3_bind_int64(st, 1, run_id);
        int rc;
        while (!s && d->n_params < np && (rc = sqlite3_step(st)) == SQLITE_ROW) {
            d->keys[d->n_params] = col_strdup(st, 0);
            d->values[d->n_params] = col_strdup(st, 1);
            if (!d->keys[d->n_params] || !d->values[d->n_params]) s = damaged(db, run_id, "setting", err);
            d->n_params++;
        }
        if (!s && d->n_params < np) s = db_fail(db, err, "cannot read run settings");
        sqlite3_finalize(st);
    }
    if (!s) s = prepare(db, "SELECT epoch, step, format_version, checksum, size_bytes, is_best, created_at "
                            "FROM checkpoints WHERE run_id = ? ORDER BY epoch", &st, "cannot read checkpoints", err);
    if (!s) {
        sqlite3_bind_int64(st, 1, run_id);
        int rc;
        while (d->n_checkpoints < nc && (rc = sqlite3_step(st)) == SQLITE_ROW) {
            lp_ckpt_info *c = &d->checkpoints[d->n_checkpoints++];
            c->epoch = sqlite3_column_int(st, 0);
            c->step = sqlite3_column_int64(st, 1);
            c->format_version = sqlite3_column_int(st, 2);
            c->checksum = (uint32_t)sqlite3_column_int64(st, 3);
            c->size_bytes = sqlite3_column_int64(st, 4);
            c->is_best = sqlite3_column_int(st, 5) != 0;
            c->created_at = col_strdup(st, 6);
        }
        if (d->n_checkpoints < nc) s = db_fail(db, err, "cannot read checkpoints");
        sqlite3_finalize(st);
    }
    rtx_end(db);
    if (s) lp_run_details_free(d);
    return s;
}

void lp_metric_rows_free(lp_metric_row *rows, int n)
{
    for (int i = 0; rows && i < n; i++) free(rows[i].name);
    free(rows);
}

lp_status lp_runsdb_metrics(lp_runsdb *db, int64_t run_id, lp_metric_row **rows, int *n, lp_error *err)
{
    assert(db && rows && n);
    *rows = NULL;
    *n = 0;
    lp_status s = rtx_begin(db, err);
    if (s) return s;
    int count = 0;
    s = run_status(db, run_id, NULL, 0, err);
    if (!s) s = count_rows(db, "SELECT count(*) FROM metrics WHERE run_id = ?", run_id, &count, err);
    lp_metric_row *out = NULL;
    int got = 0;
    if (!s && !(out = calloc((size_t)count + 1, sizeof *out)))
        s = lp_error_set(err, LP_ERR_NOMEM, "out of memory reading metrics");
    sqlite3_stmt *st;
    if (!s) s = prepare(db, "SELECT epoch, step, split, name, value, is_nan, wall_time FROM metrics "
                            "WHERE run_id = ? ORDER BY epoch, step, split, name", &st, "cannot read metrics", err);
    if (!s) {
        sqlite3_bind_int64(st, 1, run_id);
        int rc;
        while (!s && got < count && (rc = sqlite3_step(st)) == SQLITE_ROW) {
            lp_metric_row *m = &out[got++];
            m->epoch = sqlite3_column_int(st, 0);
            m->step = sqlite3_column_int64(st, 1);
            const char *split = (const char *)sqlite3_column_text(st, 2);
            snprintf(m->split, sizeof m->split, "%s", split ? split : "");
            m->name = col_strdup(st, 3);
            m->value = sqlite3_column_int(st, 5) ? NAN : sqlite3_column_double(st, 4);
            m->wall_time = sqlite3_column_double(st, 6);
            if (!split || !m->name) s = damaged(db, run_id, "metric split or name", err);
        }
        if (!s && got < count) s = db_fail(db, err, "cannot read metrics");
        sqlite3_finalize(st);
    }
    rtx_end(db);
    if (s) {
        lp_metric_rows_free(out, got);
        return s;
    }
    *rows = out;
    *n = got;
    return LP_OK;
}

void lp_param_cmp_rows_free(lp_param_cmp_row *rows, int n_rows, int n_runs)
{
    for (int i = 0; rows && i < n_rows; i++) {
        free(rows[i].key);
        for (int j = 0; rows[i].values && j < n_runs; j++) free(rows[i].values[j]);
        free(rows[i].values);
    }
    free(rows);
}

lp_status lp_runsdb_compare_params(lp_runsdb *db, const int64_t *ids, int n_runs, lp_param_cmp_row **rows,
                                   int *n_rows, lp_error *err)
{
    assert(db && ids && rows && n_rows && n_runs >= 1);
    *rows = NULL;
    *n_rows = 0;
    lp_status s = rtx_begin(db, err);
    if (s) return s;
    for (int i = 0; !s && i < n_runs; i++) s = run_status(db, ids[i], NULL, 0, err);
    /* Keys of all runs, sorted and distinct; SQLite does the union. */
    sqlite3_stmt *keys = NULL, *val = NULL;
    if (!s) s = prepare(db, "SELECT DISTINCT key FROM run_params WHERE run_id IN (SELECT value FROM json_each(?)) "
                            "ORDER BY key", &keys, "cannot compare runs", err);
    if (!s) s = prepare(db, "SELECT value FROM run_params WHERE run_id = ? AND key = ?", &val,
                        "cannot compare runs", err);
    lp_param_cmp_row *out = NULL;
    int count = 0, cap = 0;
    if (!s) {
        char idlist[4096] = "[";
        for (int i = 0; i < n_runs; i++) {
            size_t len = strlen(idlist);
            snprintf(idlist + len, sizeof idlist - len, "%s%lld", i ? "," : "", (long long)ids[i]);
        }
        sql_add(idlist, sizeof idlist, "]");
        sqlite3_bind_text(keys, 1, idlist, -1, SQLITE_TRANSIENT);
        while (!s && sqlite3_step(keys) == SQLITE_ROW) {
            if (count == cap) {
                cap = cap ? 2 * cap : 64;
                lp_param_cmp_row *p = realloc(out, (size_t)cap * sizeof *p);
                if (!p) {
                    s = lp_error_set(err, LP_ERR_NOMEM, "out of memory comparing runs");
                    break;
                }
                out = p;
            }
            lp_param_cmp_row *r = &out[count++];
            r->key = col_strdup(keys, 0);
            r->values = calloc((size_t)n_runs, sizeof *r->values);
            r->differs = false;
            if (!r->key && r->values) {
                s = damaged(db, ids[0], "setting key", err);
                break;
            }
            if (!r->key || !r->values) {
                s = lp_error_set(err, LP_ERR_NOMEM, "out of memory comparing runs");
                break;
            }
            for (int i = 0; i < n_runs; i++) {
                sqlite3_reset(val);
                sqlite3_bind_int64(val, 1, ids[i]);
                sqlite3_bind_text(val, 2, r->key, -1, SQLITE_STATIC);
                if (sqlite3_step(val) == SQLITE_ROW) r->values[i] = col_strdup(val, 0);
                const char *a = r->values[0], *b = r->values[i];
                if ((a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0)) r->differs = true;
            }
        }
    }
    sqlite3_finalize(keys);
    sqlite3_finalize(val);
    rtx_end(db);
    if (s) {
        lp_param_cmp_rows_free(out, count, n_runs);
        return s;
    }
    *rows = out;
    *n_rows = count;
    return LP_OK;
}

/* ---------------- export ---------------- */

/* The shortest decimal that reads back as the same double. */
static void fmt_double(char *buf, size_t cap, double v)
{
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) return;
    }
}

static const char *nonfinite(double v)
{
    return isnan(v) ? "nan" : v > 0 ? "inf" : "-inf";
}

static void json_str(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(out, "\\%c", *p);
        else if (*p < 0x20) fprintf(out, "\\u%04x", *p);
        else fputc(*p, out);
    }
    fputc('"', out);
}

static void json_num(FILE *out, double v)
{
    char b[40];
    if (!isfinite(v)) {
        fprintf(out, "\"%s\"", nonfinite(v));
        return;
    }
    fmt_double(b, sizeof b, v);
    fputs(b, out);
}

/* CSV field: quoted when it holds a comma, quote or newline. */
static void csv_str(FILE *out, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"') fputc('"', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

lp_status lp_runsdb_export_metrics(lp_runsdb *db, int64_t run_id, lp_export_format fmt, FILE *out,
                                   lp_error *err)
{
    lp_metric_row *m;
    int n;
    lp_status s = lp_runsdb_metrics(db, run_id, &m, &n, err);
    if (s) return s;
    char b[40], t[40];
    if (fmt == LP_EXPORT_CSV) {
        fputs("run_id,epoch,step,split,name,value,wall_time\n", out);
        for (int i = 0; i < n; i++) {
            if (isfinite(m[i].value)) fmt_double(b, sizeof b, m[i].value);
            else snprintf(b, sizeof b, "%s", nonfinite(m[i].value));
            snprintf(t, sizeof t, "%.3f", m[i].wall_time);
            fprintf(out, "%lld,%d,%lld,%s,", (long long)run_id, m[i].epoch, m[i].step, m[i].split);
            csv_str(out, m[i].name);
            fprintf(out, ",%s,%s\n", b, t);
        }
    } else {
        lp_run_details d;
        s = lp_runsdb_show(db, run_id, &d, err);
        if (s) {
            lp_metric_rows_free(m, n);
            return s;
        }
        fprintf(out, "{\"run\": {\"id\": %lld, \"name\": ", (long long)run_id);
        json_str(out, d.run.name);
        fputs(", \"status\": ", out);
        json_str(out, d.run.status);
        fprintf(out, ", \"seed\": %llu, \"param_count\": %lld, \"epochs_done\": %d, \"best_test_acc\": ",
                (unsigned long long)d.run.seed, d.run.param_count, d.run.epochs_done);
        if (isnan(d.run.best_test_acc)) fputs("null", out);
        else json_num(out, d.run.best_test_acc);
        fputs(", \"final_test_acc\": ", out);
        if (isnan(d.run.final_test_acc)) fputs("null", out);
        else json_num(out, d.run.final_test_acc);
        fputs(", \"started_at\": ", out);
        json_str(out, d.run.started_at);
        fputs(", \"finished_at\": ", out);
        if (d.run.finished_at) json_str(out, d.run.finished_at);
        else fputs("null", out);
        fputs(", \"config_hash\": ", out);
        json_str(out, d.run.config_hash);
        fputs("},\n \"params\": {", out);
        for (int i = 0; i < d.n_params; i++) {
            fputs(i ? ", " : "", out);
            json_str(out, d.keys[i]);
            fputs(": ", out);
            json_str(out, d.values[i]);
        }
        fputs("},\n \"metrics\": [", out);
        for (int i = 0; i < n; i++) {
            fprintf(out, "%s\n  {\"epoch\": %d, \"step\": %lld, \"split\": \"%s\", \"name\": ", i ? "," : "",
                    m[i].epoch, m[i].step, m[i].split);
            json_str(out, m[i].name);
            fputs(", \"value\": ", out);
            json_num(out, m[i].value);
            fprintf(out, ", \"wall_time\": %.3f}", m[i].wall_time);
        }
        fputs("\n]}\n", out);
        lp_run_details_free(&d);
    }
    lp_metric_rows_free(m, n);
    if (fflush(out) != 0 || ferror(out))
        return lp_error_set(err, LP_ERR_IO, "cannot write the export of run %lld: %s", (long long)run_id,
                            strerror(errno));
    return LP_OK;
}

/* ---------------- SHA-256 ---------------- */

void lp_sha256_hex(const void *data, size_t len, char out[65])
{
    lp_sha256 h;
    lp_sha256_init(&h);
    lp_sha256_update(&h, data, len);
    lp_sha256_final_hex(&h, out);
}
