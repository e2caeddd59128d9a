/* runsdb.h - the runs database: every run, its settings, per-epoch metrics and
 * checkpoints, in one SQLite file that `sqlite3` users can query directly
 * (schema and example queries: docs/runs-db.md).
 *
 *   lp_runsdb *db;
 *   lp_runsdb_open("runs.db", &db, &err);              // create or migrate, WAL
 *   lp_runsdb_begin_run(db, &new_run, &run_id, &err);  // status 'running'
 *   for each epoch:
 *       lp_runsdb_commit_epoch(db, run_id, epoch, step, metrics, n, blob, size, is_best, &err);
 *   lp_runsdb_finish_run(db, run_id, LP_RUN_COMPLETED, NULL, &err);
 *   lp_runsdb_close(db);
 *
 * Crash safety: an epoch's metrics and its checkpoint go in ONE transaction, so a
 * killed run has, for every epoch, both or neither; report an epoch done only
 * after lp_runsdb_commit_epoch returned LP_OK. Every write transaction is
 * BEGIN IMMEDIATE (several trainers may share one file; a deferred BEGIN that
 * upgrades to a write lock fails with "database is locked" instead of waiting).
 *
 * Checkpoint blobs are opaque here (LPCK bytes from checkpoint.h); the database
 * stores their CRC-32 and refuses a blob that no longer matches it.
 */
#ifndef LP_RUNSDB_H
#define LP_RUNSDB_H

#include "error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Schema version this loupe writes (PRAGMA user_version). */
#define LP_RUNSDB_SCHEMA_VERSION 3
/* PRAGMA application_id of a loupe runs database ("LPRB"). */
#define LP_RUNSDB_APP_ID 0x4C505242
/* Busy timeout: how long a writer waits for another process's transaction. */
#define LP_RUNSDB_BUSY_MS 10000

typedef struct lp_runsdb lp_runsdb;

typedef enum lp_run_status {
    LP_RUN_RUNNING,
    LP_RUN_COMPLETED,
    LP_RUN_FAILED,
    LP_RUN_INTERRUPTED,
    LP_RUN_CRASHED          /* was running, then its process vanished (lifecycle.h) */
} lp_run_status;

/* "running", "completed", "failed", "interrupted", "crashed". */
const char *lp_run_status_name(lp_run_status s);
/* Parse a status name; LP_ERR_ARG listing the valid names otherwise. */
lp_status lp_run_status_parse(const char *name, lp_run_status *out, lp_error *err);

/* Open (creating if absent) the database at path for recording runs: applies
 * schema migrations up to LP_RUNSDB_SCHEMA_VERSION, WAL, busy timeout,
 * foreign keys; then runs whose process is gone become 'crashed' (lifecycle.h).
 * Refused, with the file left untouched: a file that is not SQLite,
 * a SQLite file with other tables and no loupe schema, a newer schema version, a
 * read-only file or directory (said before anything is written). */
lp_status lp_runsdb_open(const char *path, lp_runsdb **out, lp_error *err);

/* Open an existing database for reading only (the `loupe runs` commands): never
 * creates or migrates; refuses a missing file or a schema other than the current.
 * If a run there is stale (lifecycle.h) and the file is writable, it is marked
 * 'crashed' through a short read-write connection first, so what is read is true. */
lp_status lp_runsdb_open_readonly(const char *path, lp_runsdb **out, lp_error *err);

void lp_runsdb_close(lp_runsdb *db);
const char *lp_runsdb_path(const lp_runsdb *db);

/* ---- recording ---- */

typedef struct lp_run_new {
    const char *name;             /* experiment name */
    const char *config_yaml;      /* the effective config text (hashed with SHA-256) */
    uint64_t seed;                /* stored as the same 64 bits in a signed INTEGER */
    long long param_count;
    int threads;
    int n_params;                 /* flattened settings, e.g. ("train.optimizer.lr", "0.05") */
    const char *const *keys;
    const char *const *values;
    /* Provenance (each may be NULL / 0: not recorded). */
    const char *data_sha256;      /* lp_dataset_fingerprint of train then test */
    long long data_train_count, data_test_count;
    const char *data_shape;       /* "1x28x28" */
    const char *loupe_version, *loupe_commit, *compiler, *cflags;
    /* Sweeps and scale-out (0 / NULL: the defaults). */
    int64_t parent_run_id;        /* the sweep this run is a trial of; 0: none */
    int sweep_trial;              /* its 1-based trial number in that sweep; 0: none */
    const char *kind;             /* "train" (NULL) or "sweep" (a sweep's parent row) */
    int world_size;               /* MPI ranks training it; 0 means 1 */
} lp_run_new;

/* Insert a run with status 'running', its host, process (pid and start time),
 * start time and first heartbeat, its settings and provenance (one transaction).
 * *run_id receives its id. */
lp_status lp_runsdb_begin_run(lp_runsdb *db, const lp_run_new *run, int64_t *run_id, lp_error *err);

/* One metric of an epoch. split is "train" or "test"; value may be NaN or Inf
 * (NaN is stored as NULL with is_nan = 1: SQLite turns NaN into NULL). A test
 * metric named "acc" also updates runs.final_test_acc / best_test_acc. */
typedef struct lp_metric {
    const char *split;
    const char *name;
    double value;
} lp_metric;

/* Record epoch `epoch` (1-based) of a running run: its metrics and, if ckpt is
 * not NULL, its checkpoint blob (CRC-32 computed here), in ONE transaction, and
 * advance runs.epochs_done. is_best moves the run's best flag to this
 * checkpoint. On any failure nothing of the epoch is stored. */
lp_status lp_runsdb_commit_epoch(lp_runsdb *db, int64_t run_id, int epoch, long long step,
                                 const lp_metric *metrics, int n_metrics, const void *ckpt, size_t ckpt_size,
                                 bool is_best, lp_error *err);

/* Close a run: status (not running), finish time, error text (may be NULL). */
lp_status lp_runsdb_finish_run(lp_runsdb *db, int64_t run_id, lp_run_status status, const char *error_text,
                               lp_error *err);

/* Say why a run's training ended ("epochs", "early_stop: ...", ...), shown by
 * `loupe runs show`; NULL clears it. LP_ERR_ARG if there is no such run. */
lp_status lp_runsdb_set_stop_reason(lp_runsdb *db, int64_t run_id, const char *reason, lp_error *err);

/* Prepare a run to continue after `epoch` (its last checkpoint): status back to
 * running under this process (host, pid, heartbeat), and metrics/checkpoints of
 * later epochs (those of the epochs that will be trained again) deleted, in one
 * transaction. Refused (LP_ERR_ARG) while the run is still alive elsewhere: status
 * running with a live process on this host, or a fresh heartbeat from another. */
lp_status lp_runsdb_resume_run(lp_runsdb *db, int64_t run_id, int epoch, lp_error *err);

/* Delete a run and everything it owns. LP_ERR_ARG if there is no such run. */
lp_status lp_runsdb_delete_run(lp_runsdb *db, int64_t run_id, lp_error *err);

/* ---- reading ---- */

/* The checkpoint of run_id chosen by which: "last", "best", or an epoch number.
 * *blob is malloc'd (free it); *epoch and *step (may be NULL) say which one.
 * A blob whose CRC-32 differs from the stored one is refused with
 * "checkpoint of run R epoch E: checksum mismatch". */
lp_status lp_runsdb_load_checkpoint(lp_runsdb *db, int64_t run_id, const char *which, void **blob,
                                    size_t *size, int *epoch, long long *step, lp_error *err);

/* One run as the CLI shows it. Strings are owned by the row; missing numbers are NaN. */
typedef struct lp_run_row {
    int64_t id;
    char *name, *status, *config_hash, *host, *started_at, *finished_at, *error;
    uint64_t seed;
    long long param_count;
    int threads;
    int epochs_done;
    double best_test_acc, final_test_acc;
    double duration_s;      /* finished (or now, while running) minus started */
    double sort_value;      /* value of the order_by metric (NaN if none) */
} lp_run_row;

typedef struct lp_run_filter {
    const char *name_like;          /* SQL LIKE pattern on name ("mnist%"); NULL: any */
    const char *status;             /* NULL: any */
    int n_params;                   /* settings that must all equal (text compare) */
    const char *const *param_keys;
    const char *const *param_values;
    /* NULL or "id": newest first. Also "name", "started", "duration",
     * "best_test_acc", "final_test_acc", or "SPLIT/METRIC" (e.g. "test/loss"):
     * that metric's value at the run's last epoch. */
    const char *order_by;
    bool ascending;
    int limit;                      /* 0: all */
} lp_run_filter;

/* Runs matching f (NULL: all, newest first) into *rows[*n]; free with lp_run_rows_free. */
lp_status lp_runsdb_list(lp_runsdb *db, const lp_run_filter *f, lp_run_row **rows, int *n, lp_error *err);
void lp_run_rows_free(lp_run_row *rows, int n);

/* Everything about one run. Owned strings/arrays; free with lp_run_details_free. */
typedef struct lp_ckpt_info {
    int epoch;
    long long step;
    int format_version;
    uint32_t checksum;
    long long size_bytes;
    bool is_best;
    char *created_at;
} lp_ckpt_info;

typedef struct lp_run_details {
    lp_run_row run;
    char *config_yaml;
    /* Process and provenance (NULL / -1 when not recorded, e.g. runs of schema 1). */
    long long pid;
    char *heartbeat_at;
    char *data_sha256, *data_shape;
    long long data_train_count, data_test_count;
    char *loupe_version, *loupe_commit, *compiler, *cflags;
    /* Schema 3 (NULL / 0 when not recorded). kind is "train" or "sweep". */
    char *stop_reason, *kind;
    int64_t parent_run_id;
    int sweep_trial, world_size;
    int n_params;
    char **keys, **values;          /* sorted by key */
    int n_checkpoints;
    lp_ckpt_info *checkpoints;      /* by epoch */
} lp_run_details;

/* LP_ERR_ARG "no run N in PATH" if absent. */
lp_status lp_runsdb_show(lp_runsdb *db, int64_t run_id, lp_run_details *out, lp_error *err);
void lp_run_details_free(lp_run_details *d);

/* A metric row as stored (value NaN when is_nan). */
typedef struct lp_metric_row {
    int epoch;
    long long step;
    char split[8];
    char *name;
    double value;
    double wall_time;               /* unix seconds of the commit */
} lp_metric_row;

/* All metrics of a run ordered by epoch, step, split, name. */
lp_status lp_runsdb_metrics(lp_runsdb *db, int64_t run_id, lp_metric_row **rows, int *n, lp_error *err);
void lp_metric_rows_free(lp_metric_row *rows, int n);

/* Settings of runs ids[n] side by side: one row per key in any of them (sorted),
 * values[i] NULL where run i lacks it; differs is true where they disagree. */
typedef struct lp_param_cmp_row {
    char *key;
    char **values;                  /* [n_runs] */
    bool differs;
} lp_param_cmp_row;

lp_status lp_runsdb_compare_params(lp_runsdb *db, const int64_t *ids, int n_runs, lp_param_cmp_row **rows,
                                   int *n_rows, lp_error *err);
void lp_param_cmp_rows_free(lp_param_cmp_row *rows, int n_rows, int n_runs);

typedef enum lp_export_format { LP_EXPORT_CSV, LP_EXPORT_JSON } lp_export_format;

/* Write a run's metrics to out. CSV: header "run_id,epoch,step,split,name,value,
 * wall_time", NaN/Inf as nan/inf/-inf. JSON: {"run": {...}, "params": {...},
 * "metrics": [{"epoch":..,"step":..,"split":..,"name":..,"value":..,"wall_time":..}]}
 * with non-finite values as the strings "nan", "inf", "-inf". */
lp_status lp_runsdb_export_metrics(lp_runsdb *db, int64_t run_id, lp_export_format fmt, FILE *out,
                                   lp_error *err);

/* SHA-256 of text as 64 lowercase hex digits + NUL (the config_hash column). */
void lp_sha256_hex(const void *data, size_t len, char out[65]);

#endif
