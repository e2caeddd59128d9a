/* test_db.h - a throw-away runs database for the Criterion suites that test the
 * store (test_runsdb.c, test_evaluation.c), and raw SQL on it behind loupe's back. */
#ifndef LOUPE_TEST_DB_H
#define LOUPE_TEST_DB_H

#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A path runs.db in a new directory under /tmp (malloc'd; rm_db frees it). */
static inline char *tmp_db(void)
{
    char dir[] = "/tmp/loupe-db-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    chmod(dir, 0755);   /* the read-only test drops to an unprivileged user */
    char *p = malloc(strlen(dir) + 16);
    sprintf(p, "%s/runs.db", dir);
    return p;
}

/* Remove the database, its WAL files and its directory. */
static inline void rm_db(char *path)
{
    const char *suffix[] = {"", "-wal", "-shm", "-journal"};
    char p[512];
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s%s", path, suffix[i]);
        unlink(p);
    }
    *strrchr(path, '/') = '\0';
    rmdir(path);
    free(path);
}

/* The first column of the first row of sql, read through a connection of its own. */
static inline long long q_int(const char *path, const char *sql)
{
    sqlite3 *h;
    cr_assert_eq(sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(h));
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW, "%s", sql);
    long long v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(h);
    return v;
}

static inline void q_exec(const char *path, const char *sql)
{
    sqlite3 *h;
    cr_assert_eq(sqlite3_open(path, &h), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(h));
    sqlite3_close(h);
}

#endif
