/* evaluation.c - the tables confusion, class_metrics and misclassified: written inside
 * an epoch's commit (runsdb.c calls lp_rdb_write_evaluation in its transaction), read
 * back as one lp_evaluation. */
#include "evaluation.h"
#include "runsdb_internal.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

lp_status lp_evaluation_init(lp_evaluation *ev, int n_classes, int max_misclassified, const char *split,
                             lp_error *err)
{
    memset(ev, 0, sizeof *ev);
    if (n_classes < 1 || n_classes > 65536 || max_misclassified < 0)
        return lp_error_set(err, LP_ERR_ARG, "evaluation: %d classes and room for %d misclassified images",
                            n_classes, max_misclassified);
    snprintf(ev->split, sizeof ev->split, "%s", split ? split : "test");
    ev->n_classes = n_classes;
    ev->confusion = calloc((size_t)n_classes * n_classes, sizeof *ev->confusion);
    ev->classes = calloc((size_t)n_classes, sizeof *ev->classes);
    ev->misclassified = calloc(max_misclassified > 0 ? (size_t)max_misclassified : 1, sizeof *ev->misclassified);
    ev->cap_misclassified = max_misclassified;
    if (!ev->confusion || !ev->classes || !ev->misclassified) {
        lp_evaluation_free(ev);
        return lp_error_set(err, LP_ERR_NOMEM, "out of memory for an evaluation of %d classes", n_classes);
    }
    for (int c = 0; c < n_classes; c++)
        ev->classes[c] = (lp_class_metrics){.cls = c, .precision = NAN, .recall = NAN, .f1 = NAN};
    return LP_OK;
}

void lp_evaluation_free(lp_evaluation *ev)
{
    if (!ev) return;
    free(ev->confusion);
    free(ev->classes);
    free(ev->misclassified);
    memset(ev, 0, sizeof *ev);
}

static int worst_first(const void *pa, const void *pb)
{
    const lp_misclassified *a = pa, *b = pb;
    if (a->true_prob != b->true_prob) return a->true_prob < b->true_prob ? -1 : 1;
    return (a->image_index > b->image_index) - (a->image_index < b->image_index);
}

void lp_evaluation_sort_misclassified(lp_evaluation *ev)
{
    if (ev->n_misclassified > 1)
        qsort(ev->misclassified, (size_t)ev->n_misclassified, sizeof *ev->misclassified, worst_first);
}

static bool valid_split(const char *split) { return !strcmp(split, "test") || !strcmp(split, "val"); }

/* ---- writing (inside lp_runsdb_commit_epoch_eval's transaction) ---- */

static void bind_maybe(sqlite3_stmt *st, int i, double v)
{
    if (isnan(v)) sqlite3_bind_null(st, i);
    else sqlite3_bind_double(st, i, v);
}

lp_status lp_rdb_check_evaluation(const lp_evaluation *ev, lp_error *err)
{
    int k = ev->n_classes;
    if (!valid_split(ev->split))
        return lp_error_set(err, LP_ERR_ARG, "runs database: evaluation has split '%s' (expected test or val)",
                            ev->split);
    if (k < 1 || !ev->confusion || !ev->classes || ev->n_misclassified < 0 ||
        (ev->n_misclassified > 0 && !ev->misclassified))
        return lp_error_set(err, LP_ERR_ARG, "runs database: evaluation is empty (%d classes)", k);
    for (int i = 0; i < ev->n_misclassified; i++) {
        const lp_misclassified *m = &ev->misclassified[i];
        if (m->true_label < 0 || m->true_label >= k || m->pred_label < 0 || m->pred_label >= k ||
            m->true_label == m->pred_label || m->image_index < 0 || isnan(m->pred_prob) || isnan(m->true_prob))
            return lp_error_set(err, LP_ERR_ARG, "runs database: misclassified entry %d (image %d, true %d, "
                                "predicted %d) is not one of %d classes' mistakes", i, m->image_index,
                                m->true_label, m->pred_label, k);
    }
    return LP_OK;
}

lp_status lp_rdb_write_evaluation(lp_runsdb *db, int64_t run_id, int epoch, const lp_evaluation *ev,
                                  const char *what, lp_error *err)
{
    int k = ev->n_classes;
    sqlite3_stmt *st = NULL;
    lp_status s = lp_rdb_prepare(db, "INSERT INTO confusion (run_id, epoch, split, true_label, pred_label, count) "
                                     "VALUES (?, ?, ?, ?, ?, ?)", &st, what, err);
    for (int t = 0; !s && t < k; t++)
        for (int p = 0; !s && p < k; p++) {
            sqlite3_reset(st);
            sqlite3_bind_int64(st, 1, run_id);
            sqlite3_bind_int(st, 2, epoch);
            sqlite3_bind_text(st, 3, ev->split, -1, SQLITE_STATIC);
            sqlite3_bind_int(st, 4, t);
            sqlite3_bind_int(st, 5, p);
            sqlite3_bind_int64(st, 6, ev->confusion[(size_t)t * k + p]);
            if (sqlite3_step(st) != SQLITE_DONE) s = lp_rdb_fail(db, err, what);
        }
    sqlite3_finalize(st);
    st = NULL;
    if (!s) s = lp_rdb_prepare(db, "INSERT INTO class_metrics (run_id, epoch, split, class, support, precision, "
                                    "recall, f1) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", &st, what, err);
    for (int c = 0; !s && c < k; c++) {
        const lp_class_metrics *m = &ev->classes[c];
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, run_id);
        sqlite3_bind_int(st, 2, epoch);
        sqlite3_bind_text(st, 3, ev->split, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 4, c);
        sqlite3_bind_int64(st, 5, m->support);
        bind_maybe(st, 6, m->precision);
        bind_maybe(st, 7, m->recall);
        bind_maybe(st, 8, m->f1);
        if (sqlite3_step(st) != SQLITE_DONE) s = lp_rdb_fail(db, err, what);
    }
    sqlite3_finalize(st);
    st = NULL;
    if (!s) s = lp_rdb_prepare(db, "INSERT INTO misclassified (run_id, epoch, split, image_index, true_label, "
                                    "pred_label, pred_prob, true_prob) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                               &st, what, err);
    for (int i = 0; !s && i < ev->n_misclassified; i++) {
        const lp_misclassified *m = &ev->misclassified[i];
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, run_id);
        sqlite3_bind_int(st, 2, epoch);
        sqlite3_bind_text(st, 3, ev->split, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 4, m->image_index);
        sqlite3_bind_int(st, 5, m->true_label);
        sqlite3_bind_int(st, 6, m->pred_label);
        sqlite3_bind_double(st, 7, m->pred_prob);
        sqlite3_bind_double(st, 8, m->true_prob);
        if (sqlite3_step(st) != SQLITE_DONE) s = lp_rdb_fail(db, err, what);
    }
    sqlite3_finalize(st);
    return s;
}

lp_status lp_rdb_delete_evaluations_after(lp_runsdb *db, int64_t run_id, int epoch, const char *what,
                                          lp_error *err)
{
    static const char *const sql[] = {
        "DELETE FROM confusion WHERE run_id = ?1 AND epoch > ?2",
        "DELETE FROM class_metrics WHERE run_id = ?1 AND epoch > ?2",
        "DELETE FROM misclassified WHERE run_id = ?1 AND epoch > ?2",
    };
    lp_status s = LP_OK;
    for (int i = 0; !s && i < 3; i++) {
        sqlite3_stmt *st;
        s = lp_rdb_prepare(db, sql[i], &st, what, err);
        if (s) break;
        sqlite3_bind_int64(st, 1, run_id);
        sqlite3_bind_int(st, 2, epoch);
        if (sqlite3_step(st) != SQLITE_DONE) s = lp_rdb_fail(db, err, what);
        sqlite3_finalize(st);
    }
    return s;
}

/* ---- reading ---- */

static const char *what_read = "cannot read the evaluation";

/* One integer from a query with ?1 = run_id, ?2 = split, ?3 = epoch; *found false when
 * no row or NULL. */
static lp_status query_int(lp_runsdb *db, const char *sql, int64_t run_id, const char *split, int epoch,
                           long long *out, bool *found, lp_error *err)
{
    sqlite3_stmt *st;
    lp_status s = lp_rdb_prepare(db, sql, &st, what_read, err);
    if (s) return s;
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_text(st, 2, split, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, epoch);
    int rc = sqlite3_step(st);
    *found = rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL;
    if (*found) *out = sqlite3_column_int64(st, 0);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) s = lp_rdb_fail(db, err, what_read);
    sqlite3_finalize(st);
    return s;
}

lp_status lp_runsdb_evaluation_epochs(lp_runsdb *db, int64_t run_id, const char *split, int **epochs,
                                      int *n, lp_error *err)
{
    *epochs = NULL;
    *n = 0;
    sqlite3_stmt *st;
    lp_status s = lp_rdb_prepare(db, "SELECT DISTINCT epoch FROM class_metrics WHERE run_id = ?1 AND split = ?2 "
                                     "ORDER BY epoch", &st, what_read, err);
    if (s) return s;
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_text(st, 2, split ? split : "test", -1, SQLITE_STATIC);
    int cap = 0, rc = SQLITE_DONE;
    while (!s && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            int *grown = realloc(*epochs, (size_t)cap * sizeof **epochs);
            if (!grown) {
                s = lp_error_set(err, LP_ERR_NOMEM, "out of memory");
                break;
            }
            *epochs = grown;
        }
        (*epochs)[(*n)++] = sqlite3_column_int(st, 0);
    }
    if (!s && rc != SQLITE_DONE) s = lp_rdb_fail(db, err, what_read);
    sqlite3_finalize(st);
    if (s) {
        free(*epochs);
        *epochs = NULL;
        *n = 0;
    }
    return s;
}

/* "1, 2, 5" or "none", into buf. */
static void list_epochs(const int *e, int n, char *buf, size_t size)
{
    size_t at = 0;
    if (n == 0) snprintf(buf, size, "none");
    for (int i = 0; i < n && at < size; i++) {
        if (i >= 12 && i < n - 2) {   /* long runs: the first dozen, ..., the last two */
            at += (size_t)snprintf(buf + at, size - at, ", ...");
            i = n - 3;
            continue;
        }
        at += (size_t)snprintf(buf + at, size - at, "%s%d", i ? ", " : "", e[i]);
    }
}

static lp_status damaged(lp_runsdb *db, int64_t run_id, int epoch, const char *split, const char *why, lp_error *err)
{
    return lp_error_set(err, LP_ERR_DB, "runs database '%s': the %s evaluation of run %lld at epoch %d is "
                        "damaged: %s", lp_runsdb_path(db), split, (long long)run_id, epoch, why);
}

static lp_status read_body(lp_runsdb *db, int64_t run_id, int epoch, const char *split, lp_evaluation *out,
                           lp_error *err)
{
    long long v;
    bool found;
    lp_status s = query_int(db, "SELECT 1 FROM runs WHERE id = ?1", run_id, split, epoch, &v, &found, err);
    if (s) return s;
    if (!found) return lp_error_set(err, LP_ERR_ARG, "no run %lld in '%s'", (long long)run_id, lp_runsdb_path(db));
    if (epoch == 0) {
        s = query_int(db, "SELECT MAX(epoch) FROM class_metrics WHERE run_id = ?1 AND split = ?2", run_id, split,
                      epoch, &v, &found, err);
        if (s) return s;
        if (!found)
            return lp_error_set(err, LP_ERR_ARG, "run %lld has no %s evaluation yet (it is recorded after each "
                                "epoch by loupe train; runs recorded before schema 3 have none)",
                                (long long)run_id, split);
        epoch = (int)v;
    }
    /* The classes: 0 .. k-1, one row each (a count that differs from MAX + 1 means rows
     * are missing or out of range, and keeps a damaged number from sizing the matrix). */
    long long rows = 0;
    s = query_int(db, "SELECT count(*) FROM class_metrics WHERE run_id = ?1 AND split = ?2 AND epoch = ?3",
                  run_id, split, epoch, &rows, &found, err);
    if (!s) s = query_int(db, "SELECT MAX(class) + 1 FROM class_metrics WHERE run_id = ?1 AND split = ?2 "
                              "AND epoch = ?3", run_id, split, epoch, &v, &found, err);
    if (s) return s;
    if (found && v != rows) return damaged(db, run_id, epoch, split, "class rows are missing or out of range", err);
    if (!found) {
        int *e, n;
        s = lp_runsdb_evaluation_epochs(db, run_id, split, &e, &n, err);
        if (s) return s;
        char list[160];
        list_epochs(e, n, list, sizeof list);
        free(e);
        return lp_error_set(err, LP_ERR_ARG, "run %lld has no %s evaluation at epoch %d (epochs with one: %s)",
                            (long long)run_id, split, epoch, list);
    }
    if (v < 1 || v > 65536) return damaged(db, run_id, epoch, split, "class numbers out of range", err);
    int k = (int)v;
    long long n_miss = 0;
    s = query_int(db, "SELECT count(*) FROM misclassified WHERE run_id = ?1 AND split = ?2 AND epoch = ?3",
                  run_id, split, epoch, &n_miss, &found, err);
    if (s) return s;
    if (n_miss > INT32_MAX) return damaged(db, run_id, epoch, split, "too many misclassified rows", err);
    s = lp_evaluation_init(out, k, (int)n_miss, split, err);
    if (s) return s;
    out->epoch = epoch;
    for (int c = 0; c < k; c++) out->classes[c].support = -1;   /* marks a missing row */

    sqlite3_stmt *st;
    s = lp_rdb_prepare(db, "SELECT class, support, precision, recall, f1 FROM class_metrics "
                           "WHERE run_id = ?1 AND split = ?2 AND epoch = ?3", &st, what_read, err);
    if (s) return s;
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_text(st, 2, split, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, epoch);
    int rc = SQLITE_DONE;
    while (!s && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        long long c = sqlite3_column_int64(st, 0);
        if (c < 0 || c >= k) { s = damaged(db, run_id, epoch, split, "a class number out of range", err); break; }
        lp_class_metrics *m = &out->classes[c];
        m->cls = (int)c;
        m->support = sqlite3_column_int64(st, 1);
        m->precision = sqlite3_column_type(st, 2) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 2);
        m->recall = sqlite3_column_type(st, 3) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 3);
        m->f1 = sqlite3_column_type(st, 4) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 4);
    }
    if (!s && rc != SQLITE_DONE) s = lp_rdb_fail(db, err, what_read);
    sqlite3_finalize(st);
    for (int c = 0; !s && c < k; c++)
        if (out->classes[c].support < 0) s = damaged(db, run_id, epoch, split, "a class has no row", err);
    if (s) return s;

    s = lp_rdb_prepare(db, "SELECT true_label, pred_label, count FROM confusion "
                           "WHERE run_id = ?1 AND split = ?2 AND epoch = ?3", &st, what_read, err);
    if (s) return s;
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_text(st, 2, split, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, epoch);
    long long cells = 0;
    while (!s && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        long long t = sqlite3_column_int64(st, 0), p = sqlite3_column_int64(st, 1), n = sqlite3_column_int64(st, 2);
        if (t < 0 || t >= k || p < 0 || p >= k || n < 0) {
            s = damaged(db, run_id, epoch, split, "a confusion cell out of range", err);
            break;
        }
        out->confusion[t * k + p] = n;
        cells++;
    }
    if (!s && rc != SQLITE_DONE) s = lp_rdb_fail(db, err, what_read);
    sqlite3_finalize(st);
    if (!s && cells != (long long)k * k) s = damaged(db, run_id, epoch, split, "confusion cells are missing", err);
    if (s) return s;
    for (int t = 0; t < k; t++)
        for (int p = 0; p < k; p++) {
            long long n = out->confusion[(size_t)t * k + p];
            out->total += n;
            if (t == p) out->correct += n;
            out->classes[p].predicted += n;
        }

    s = lp_rdb_prepare(db, "SELECT image_index, true_label, pred_label, pred_prob, true_prob FROM misclassified "
                           "WHERE run_id = ?1 AND split = ?2 AND epoch = ?3 ORDER BY true_prob, image_index",
                       &st, what_read, err);
    if (s) return s;
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_text(st, 2, split, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, epoch);
    while (!s && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (out->n_misclassified == out->cap_misclassified) break;   /* rows appeared: the snapshot forbids it */
        lp_misclassified *m = &out->misclassified[out->n_misclassified];
        long long idx = sqlite3_column_int64(st, 0), t = sqlite3_column_int64(st, 1), p = sqlite3_column_int64(st, 2);
        if (idx < 0 || idx > INT32_MAX || t < 0 || t >= k || p < 0 || p >= k) {
            s = damaged(db, run_id, epoch, split, "a misclassified row out of range", err);
            break;
        }
        *m = (lp_misclassified){.image_index = (int)idx, .true_label = (int)t, .pred_label = (int)p,
                                .pred_prob = sqlite3_column_double(st, 3), .true_prob = sqlite3_column_double(st, 4)};
        out->n_misclassified++;
    }
    if (!s && rc != SQLITE_DONE && rc != SQLITE_ROW) s = lp_rdb_fail(db, err, what_read);
    sqlite3_finalize(st);
    return s;
}

lp_status lp_runsdb_read_evaluation(lp_runsdb *db, int64_t run_id, int epoch, const char *split,
                                    lp_evaluation *out, lp_error *err)
{
    assert(db && out);
    memset(out, 0, sizeof *out);
    if (!split) split = "test";
    if (!valid_split(split))
        return lp_error_set(err, LP_ERR_ARG, "evaluation split '%s' (expected test or val)", split);
    if (epoch < 0) return lp_error_set(err, LP_ERR_ARG, "evaluation epoch %d (expected >= 1, or 0 for the last)", epoch);
    /* One read transaction: the matrix, the rows and the list come from one snapshot. */
    if (sqlite3_exec(db->h, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) return lp_rdb_fail(db, err, what_read);
    lp_status s = read_body(db, run_id, epoch, split, out, err);
    sqlite3_exec(db->h, "COMMIT", NULL, NULL, NULL);
    if (s) lp_evaluation_free(out);
    return s;
}
