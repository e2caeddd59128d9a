/* lifecycle.c - heartbeats, process identity and the sweep that marks runs whose
 * process is gone as 'crashed' (lifecycle.h). */
#include "lifecycle.h"
#include "runsdb_internal.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---------------- settings ---------------- */

static double env_seconds(const char *name, double dflt)
{
    const char *v = getenv(name);
    if (!v || !*v) return dflt;
    char *end;
    double x = strtod(v, &end);
    return (*end || !isfinite(x) || x < 0) ? dflt : x;
}

double lp_heartbeat_interval(void)
{
    double s = env_seconds("LOUPE_HEARTBEAT_SECONDS", 5);
    return s < 0.01 ? 0.01 : s;
}
double lp_stale_local_seconds(void) { return env_seconds("LOUPE_STALE_SECONDS", 30); }
double lp_stale_remote_seconds(void) { return env_seconds("LOUPE_STALE_REMOTE_SECONDS", 600); }

/* ---------------- processes ---------------- */

/* State letter and start time of pid from /proc/PID/stat; false if unreadable. */
static bool proc_stat(long pid, char *state, long long *start)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* "pid (comm) S ppid ...": comm may hold spaces and ')', so split after the last ')'. */
    char *p = strrchr(buf, ')');
    if (!p || p[1] != ' ') return false;
    p += 2;
    *state = *p;
    /* starttime is field 22; the state is field 3. */
    for (int field = 3; field < 22; field++) {
        p = strchr(p, ' ');
        if (!p) return false;
        p++;
    }
    *start = strtoll(p, NULL, 10);
    return true;
}

long long lp_proc_start_time(long pid)
{
    char state;
    long long start;
    return proc_stat(pid, &state, &start) ? start : -1;
}

bool lp_proc_alive(long pid, long long start_time)
{
    if (pid <= 0) return false;
    if (kill((pid_t)pid, 0) != 0 && errno == ESRCH) return false;
    char state;
    long long start;
    if (proc_stat(pid, &state, &start)) {
        if (state == 'Z' || state == 'X') return false;             /* killed, not yet reaped */
        if (start_time >= 0 && start != start_time) return false;    /* the pid was reused */
    }
    return true;
}

static void this_host(char *host, size_t cap)
{
    if (gethostname(host, cap - 1) != 0) host[0] = '\0';
    host[cap - 1] = '\0';
}

lp_run_liveness lp_run_process(const char *host, bool has_pid, long pid, long long start_time)
{
    char me[256];
    this_host(me, sizeof me);
    if (!has_pid || !host || !me[0] || strcmp(host, me) != 0) return LP_RUN_PROCESS_UNKNOWN;
    return lp_proc_alive(pid, start_time) ? LP_RUN_PROCESS_ALIVE : LP_RUN_PROCESS_GONE;
}

/* ---------------- the sweep ---------------- */

typedef struct stale_run {
    int64_t id;
    long pid;
    bool has_pid;
    char last[40];      /* heartbeat_at, or started_at without one */
    char why[400];
} stale_run;

#define MAX_STALE_PER_SWEEP 256

/* The running runs the rules in lifecycle.h call stale, into out[*n] (only
 * counted when out is NULL). */
static lp_status find_stale(lp_runsdb *db, stale_run *out, int cap, int *n, lp_error *err)
{
    *n = 0;
    sqlite3_stmt *st;
    lp_status s = lp_rdb_prepare(db,
                                 "SELECT id, host, pid, COALESCE(proc_start, -1), "
                                 "COALESCE(heartbeat_at, started_at), "
                                 "(julianday('now') - julianday(COALESCE(heartbeat_at, started_at))) * 86400.0 "
                                 "FROM runs WHERE status = 'running' ORDER BY id",
                                 &st, "cannot look for crashed runs", err);
    if (s) return s;
    double local = lp_stale_local_seconds(), remote = lp_stale_remote_seconds();
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && *n < cap) {
        const char *host = (const char *)sqlite3_column_text(st, 1);
        bool has_pid = sqlite3_column_type(st, 2) != SQLITE_NULL;
        long pid = (long)sqlite3_column_int64(st, 2);
        long long start = sqlite3_column_int64(st, 3);
        const char *last = (const char *)sqlite3_column_text(st, 4);
        double age = sqlite3_column_double(st, 5);
        lp_run_liveness l = lp_run_process(host, has_pid, pid, start);
        stale_run tmp, *r = out ? &out[*n] : &tmp;
        if (l == LP_RUN_PROCESS_GONE && age > local)
            snprintf(r->why, sizeof r->why, "crashed: its process %ld on %s is gone (last heartbeat %s, "
                     "%.0f s before process %ld looked)", pid, host, last ? last : "?", age, (long)getpid());
        else if (l == LP_RUN_PROCESS_UNKNOWN && age > remote)
            snprintf(r->why, sizeof r->why, "crashed: no sign of life from %s%s%s for %.0f s (since %s; more "
                     "than LOUPE_STALE_REMOTE_SECONDS = %g)", has_pid ? "host " : "its unrecorded process on ",
                     host ? host : "an unknown host", has_pid ? "" : "", age, last ? last : "?", remote);
        else
            continue;
        r->id = sqlite3_column_int64(st, 0);
        r->pid = pid;
        r->has_pid = has_pid;
        snprintf(r->last, sizeof r->last, "%s", last ? last : "");
        (*n)++;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) s = lp_rdb_fail(db, err, "cannot look for crashed runs");
    sqlite3_finalize(st);
    return s;
}

int lp_runsdb_count_stale(lp_runsdb *db)
{
    int n = 0;
    lp_error err = {0};
    return find_stale(db, NULL, MAX_STALE_PER_SWEEP, &n, &err) ? 0 : n;
}

lp_status lp_runsdb_sweep_stale(lp_runsdb *db, int *n_marked, lp_error *err)
{
    if (n_marked) *n_marked = 0;
    stale_run *found = malloc(MAX_STALE_PER_SWEEP * sizeof *found);
    if (!found) return lp_error_set(err, LP_ERR_NOMEM, "out of memory looking for crashed runs");
    int n = 0;
    lp_status s = find_stale(db, found, MAX_STALE_PER_SWEEP, &n, err);
    if (s || n == 0 || db->readonly) {
        free(found);
        return s;
    }
    const char *what = "cannot mark crashed runs";
    s = lp_rdb_tx_begin(db, what, err);
    sqlite3_stmt *st = NULL;
    /* Under the write lock, only a run still in the state that was judged: a resume
     * or a late heartbeat in between changes heartbeat_at or pid. */
    if (!s) s = lp_rdb_prepare(db, "UPDATE runs SET status = 'crashed', error = ?2, "
                                   "finished_at = COALESCE(heartbeat_at, started_at) "
                                   "WHERE id = ?1 AND status = 'running' "
                                   "AND COALESCE(heartbeat_at, started_at) = ?3 AND pid IS ?4",
                               &st, what, err);
    int marked = 0;
    for (int i = 0; !s && i < n; i++) {
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, found[i].id);
        sqlite3_bind_text(st, 2, found[i].why, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, found[i].last, -1, SQLITE_STATIC);
        if (found[i].has_pid) sqlite3_bind_int64(st, 4, found[i].pid);
        else sqlite3_bind_null(st, 4);
        if (sqlite3_step(st) != SQLITE_DONE) s = lp_rdb_fail(db, err, what);
        else marked += sqlite3_changes(db->h);
    }
    sqlite3_finalize(st);
    free(found);
    if (s) return lp_rdb_tx_abort(db, s);
    s = lp_rdb_tx_commit(db, what, err);
    if (!s && n_marked) *n_marked = marked;
    return s;
}

lp_status lp_runsdb_heartbeat(lp_runsdb *db, int64_t run_id, lp_error *err)
{
    const char *what = "cannot write the heartbeat";
    lp_status s = lp_rdb_tx_begin(db, what, err);
    if (s) return s;
    sqlite3_stmt *st;
    s = lp_rdb_prepare(db, "UPDATE runs SET heartbeat_at = " LP_RUNSDB_NOW_SQL
                           " WHERE id = ?1 AND status = 'running' AND pid = ?2", &st, what, err);
    if (!s) {
        sqlite3_bind_int64(st, 1, run_id);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)getpid());
        if (sqlite3_step(st) != SQLITE_DONE) s = lp_rdb_fail(db, err, what);
        sqlite3_finalize(st);
    }
    if (s) return lp_rdb_tx_abort(db, s);
    return lp_rdb_tx_commit(db, what, err);
}

/* ---------------- the heartbeat thread ---------------- */

struct lp_heartbeat {
    lp_runsdb *db;
    int64_t run_id;
    double interval;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    bool stop;
    long long beats;
};

static void *beat_loop(void *arg)
{
    lp_heartbeat *hb = arg;
    pthread_mutex_lock(&hb->mu);
    while (!hb->stop) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        double t = until.tv_sec + until.tv_nsec * 1e-9 + hb->interval;
        until.tv_sec = (time_t)t;
        until.tv_nsec = (long)((t - (double)until.tv_sec) * 1e9);
        int rc = 0;
        while (!hb->stop && rc != ETIMEDOUT) rc = pthread_cond_timedwait(&hb->wake, &hb->mu, &until);
        if (hb->stop) break;
        pthread_mutex_unlock(&hb->mu);
        lp_error err = {0};
        bool ok = lp_runsdb_heartbeat(hb->db, hb->run_id, &err) == LP_OK;
        pthread_mutex_lock(&hb->mu);
        if (ok) hb->beats++;
    }
    pthread_mutex_unlock(&hb->mu);
    return NULL;
}

lp_status lp_heartbeat_start(const char *db_path, int64_t run_id, lp_heartbeat **out, lp_error *err)
{
    *out = NULL;
    lp_heartbeat *hb = calloc(1, sizeof *hb);
    if (!hb) return lp_error_set(err, LP_ERR_NOMEM, "out of memory for the heartbeat");
    hb->run_id = run_id;
    hb->interval = lp_heartbeat_interval();
    lp_status s = lp_runsdb_open(db_path, &hb->db, err);
    if (s) {
        free(hb);
        return s;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&hb->wake, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&hb->mu, NULL);
    /* Ctrl-C and SIGTERM stay with the main thread, which polls for them. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&hb->thread, NULL, beat_loop, hb);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        pthread_cond_destroy(&hb->wake);
        pthread_mutex_destroy(&hb->mu);
        lp_runsdb_close(hb->db);
        free(hb);
        return lp_error_set(err, LP_ERR_NOMEM, "cannot start the heartbeat thread: %s", strerror(rc));
    }
    *out = hb;
    return LP_OK;
}

void lp_heartbeat_stop(lp_heartbeat *hb)
{
    if (!hb) return;
    pthread_mutex_lock(&hb->mu);
    hb->stop = true;
    pthread_cond_signal(&hb->wake);
    pthread_mutex_unlock(&hb->mu);
    pthread_join(hb->thread, NULL);
    pthread_cond_destroy(&hb->wake);
    pthread_mutex_destroy(&hb->mu);
    lp_runsdb_close(hb->db);
    free(hb);
}

long long lp_heartbeat_beats(const lp_heartbeat *hb)
{
    lp_heartbeat *h = (lp_heartbeat *)hb;
    pthread_mutex_lock(&h->mu);
    long long n = h->beats;
    pthread_mutex_unlock(&h->mu);
    return n;
}
