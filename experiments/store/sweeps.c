/* sweeps.c - the SQL of sweeps: a parent run and its trial runs (sweeps.h). */
#include "sweeps.h"

#include "runsdb_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool lp_sweep_metric_lower_is_better(const char *name) { return strstr(name, "loss") != NULL; }

static char *col_strdup(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? strdup((const char *)t) : NULL;
}

static double col_double(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
}

/* ?1 parent, ?2 split, ?3 metric name; best is MAX or MIN (spliced in: not a value). */
#define CHILD_SQL(best, where)                                                                                  \
    "SELECT r.id, r.sweep_trial, r.status, r.error, r.epochs_done, "                                           \
    "  (julianday(COALESCE(r.finished_at, 'now')) - julianday(r.started_at)) * 86400.0, "                     \
    "  (SELECT m.value FROM metrics m WHERE m.run_id = r.id AND m.split = ?2 AND m.name = ?3 "                 \
    "     ORDER BY m.epoch DESC, m.step DESC LIMIT 1), "                                                       \
    "  (SELECT " best "(m.value) FROM metrics m WHERE m.run_id = r.id AND m.split = ?2 AND m.name = ?3), "     \
    "  COALESCE(r.pid, -1), COALESCE(r.proc_start, -1) "                                                       \
    "FROM runs r WHERE r.parent_run_id = ?1 " where " ORDER BY r.sweep_trial, r.id"

static lp_status read_child(lp_runsdb *db, sqlite3_stmt *st, lp_sweep_child *c, lp_error *err)
{
    memset(c, 0, sizeof *c);
    c->run_id = sqlite3_column_int64(st, 0);
    c->trial = sqlite3_column_int(st, 1);
    c->status = col_strdup(st, 2);
    c->error = col_strdup(st, 3);
    c->epochs_done = sqlite3_column_int(st, 4);
    c->duration_s = col_double(st, 5);
    c->final_value = col_double(st, 6);
    c->best_value = col_double(st, 7);
    c->pid = sqlite3_column_int64(st, 8);
    c->proc_start = sqlite3_column_int64(st, 9);
    if (!c->status) return lp_error_set(err, LP_ERR_DB, "%s: run %lld is damaged: its status is missing",
                                        lp_runsdb_path(db), (long long)c->run_id);
    return LP_OK;
}

static lp_status check_parent(lp_runsdb *db, int64_t parent_id, lp_error *err)
{
    sqlite3_stmt *st;
    lp_status s = lp_rdb_prepare(db, "SELECT kind FROM runs WHERE id = ?", &st, "cannot read a sweep", err);
    if (s) return s;
    sqlite3_bind_int64(st, 1, parent_id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        s = lp_error_set(err, LP_ERR_ARG, "no run %lld in %s", (long long)parent_id, lp_runsdb_path(db));
    else if (rc != SQLITE_ROW)
        s = lp_rdb_fail(db, err, "cannot read a sweep");
    else if (!sqlite3_column_text(st, 0) || strcmp((const char *)sqlite3_column_text(st, 0), "sweep"))
        s = lp_error_set(err, LP_ERR_ARG, "run %lld is not a sweep (its kind is '%s'; `loupe runs list` marks "
                         "sweeps)", (long long)parent_id,
                         sqlite3_column_text(st, 0) ? (const char *)sqlite3_column_text(st, 0) : "?");
    sqlite3_finalize(st);
    return s;
}

static void bind_child(sqlite3_stmt *st, int64_t parent_id, const char *split, const char *name)
{
    sqlite3_bind_int64(st, 1, parent_id);
    sqlite3_bind_text(st, 2, split, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
}

lp_status lp_sweeps_children(lp_runsdb *db, int64_t parent_id, const char *split, const char *name,
                             lp_sweep_child **out, int *n, lp_error *err)
{
    *out = NULL;
    *n = 0;
    lp_status s = check_parent(db, parent_id, err);
    if (s) return s;
    sqlite3_stmt *st;
    s = lp_rdb_prepare(db, lp_sweep_metric_lower_is_better(name) ? CHILD_SQL("MIN", "") : CHILD_SQL("MAX", ""),
                       &st, "cannot read a sweep's trials", err);
    if (s) return s;
    bind_child(st, parent_id, split, name);
    int cap = 0, rc;
    lp_sweep_child *c = NULL;
    while (!s && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            lp_sweep_child *grown = realloc(c, (size_t)cap * sizeof *c);
            if (!grown) {
                s = lp_error_set(err, LP_ERR_NOMEM, "out of memory");
                break;
            }
            c = grown;
        }
        s = read_child(db, st, &c[*n], err);
        (*n)++;
    }
    if (!s && rc != SQLITE_DONE) s = lp_rdb_fail(db, err, "cannot read a sweep's trials");
    sqlite3_finalize(st);
    if (s) {
        lp_sweep_children_free(c, *n);
        *n = 0;
        return s;
    }
    *out = c;
    return LP_OK;
}

void lp_sweep_children_free(lp_sweep_child *c, int n)
{
    for (int i = 0; c && i < n; i++) {
        free(c[i].status);
        free(c[i].error);
    }
    free(c);
}

lp_status lp_sweeps_child(lp_runsdb *db, int64_t parent_id, int trial, const char *split, const char *name,
                          lp_sweep_child *out, bool *found, lp_error *err)
{
    *found = false;
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st;
    lp_status s = lp_rdb_prepare(db, lp_sweep_metric_lower_is_better(name) ? CHILD_SQL("MIN", "AND r.sweep_trial = ?4")
                                                                          : CHILD_SQL("MAX", "AND r.sweep_trial = ?4"),
                                 &st, "cannot read a sweep's trial", err);
    if (s) return s;
    bind_child(st, parent_id, split, name);
    sqlite3_bind_int(st, 4, trial);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        s = read_child(db, st, out, err);
        *found = !s;
    } else if (rc != SQLITE_DONE) {
        s = lp_rdb_fail(db, err, "cannot read a sweep's trial");
    }
    sqlite3_finalize(st);
    if (s) {
        free(out->status);
        free(out->error);
        memset(out, 0, sizeof *out);
        *found = false;
    }
    return s;
}

lp_status lp_sweeps_param(lp_runsdb *db, int64_t run_id, const char *key, char **value, lp_error *err)
{
    *value = NULL;
    sqlite3_stmt *st;
    lp_status s = lp_rdb_prepare(db, "SELECT value FROM run_params WHERE run_id = ? AND key = ?", &st,
                                 "cannot read a run's settings", err);
    if (s) return s;
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        if (sqlite3_column_type(st, 0) != SQLITE_NULL && !(*value = col_strdup(st, 0)))
            s = lp_error_set(err, LP_ERR_NOMEM, "out of memory");
    } else if (rc != SQLITE_DONE) {
        s = lp_rdb_fail(db, err, "cannot read a run's settings");
    }
    sqlite3_finalize(st);
    return s;
}

lp_status lp_sweeps_mark_crashed(lp_runsdb *db, int64_t run_id, const char *why, lp_error *err)
{
    char what[96];
    snprintf(what, sizeof what, "cannot mark run %lld crashed", (long long)run_id);
    lp_status s = lp_rdb_tx_begin(db, what, err);
    if (s) return s;
    sqlite3_stmt *st;
    s = lp_rdb_prepare(db, "UPDATE runs SET status = 'crashed', error = ?2, finished_at = " LP_RUNSDB_NOW_SQL
                           " WHERE id = ?1 AND status = 'running'", &st, what, err);
    if (!s) {
        sqlite3_bind_int64(st, 1, run_id);
        sqlite3_bind_text(st, 2, why, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE) s = lp_rdb_fail(db, err, what);
        sqlite3_finalize(st);
    }
    if (s) return lp_rdb_tx_abort(db, s);
    return lp_rdb_tx_commit(db, what, err);
}

lp_status lp_sweeps_role(lp_runsdb *db, int64_t run_id, lp_sweep_role *out, lp_error *err)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st;
    lp_status s = lp_rdb_prepare(db, "SELECT kind = 'sweep', COALESCE(parent_run_id, 0), COALESCE(sweep_trial, 0), "
                                     "(SELECT count(*) FROM runs c WHERE c.parent_run_id = r.id) "
                                     "FROM runs r WHERE r.id = ?", &st, "cannot read a run", err);
    if (s) return s;
    sqlite3_bind_int64(st, 1, run_id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        out->is_sweep = sqlite3_column_int(st, 0) != 0;
        out->parent_run_id = sqlite3_column_int64(st, 1);
        out->sweep_trial = sqlite3_column_int(st, 2);
        out->n_trials = sqlite3_column_int(st, 3);
    } else if (rc != SQLITE_DONE) {
        s = lp_rdb_fail(db, err, "cannot read a run");
    }
    sqlite3_finalize(st);
    return s;
}
