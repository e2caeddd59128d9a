/* runsdb_internal.h - what the store's other files that speak SQL to the runs
 * database (lifecycle.c) share with runsdb.c. Not a public header: the rest of
 * loupe goes through runsdb.h. */
#ifndef LP_RUNSDB_INTERNAL_H
#define LP_RUNSDB_INTERNAL_H

#include "runsdb.h"

#include <sqlite3.h>

struct lp_runsdb {
    sqlite3 *h;
    char *path;
    bool readonly;
    bool immutable;     /* opened read-only on a read-only file system */
};

/* ISO-8601 UTC with milliseconds: how every time column is written. */
#define LP_RUNSDB_NOW_SQL "strftime('%Y-%m-%dT%H:%M:%fZ','now')"

/* LP_ERR_DB naming the database, `what` failed and SQLite's reason (disk full,
 * locked, read-only, ...). */
lp_status lp_rdb_fail(lp_runsdb *db, lp_error *err, const char *what);
lp_status lp_rdb_prepare(lp_runsdb *db, const char *sql, sqlite3_stmt **st, const char *what, lp_error *err);
/* BEGIN IMMEDIATE / COMMIT (rolled back if it fails) / ROLLBACK after an error. */
lp_status lp_rdb_tx_begin(lp_runsdb *db, const char *what, lp_error *err);
lp_status lp_rdb_tx_commit(lp_runsdb *db, const char *what, lp_error *err);
lp_status lp_rdb_tx_abort(lp_runsdb *db, lp_status s);

/* evaluation.c: an epoch's evaluation rows, inside the caller's transaction; checked
 * before the transaction begins; deleted past an epoch when a run resumes. */
struct lp_evaluation;
lp_status lp_rdb_check_evaluation(const struct lp_evaluation *ev, lp_error *err);
lp_status lp_rdb_write_evaluation(lp_runsdb *db, int64_t run_id, int epoch, const struct lp_evaluation *ev,
                                  const char *what, lp_error *err);
lp_status lp_rdb_delete_evaluations_after(lp_runsdb *db, int64_t run_id, int epoch, const char *what,
                                          lp_error *err);

#endif
