/* lifecycle.h - a run's status that cannot lie: 'running' means a process is
 * training it now.
 *
 * Every run records the host, pid and start time of the process that trains it
 * (begin_run, resume_run), and that process writes runs.heartbeat_at every few
 * seconds from a thread of its own (lp_heartbeat_start), so the training loop never
 * waits on the database for it. A run killed with SIGKILL, by the OOM killer or a
 * power cut cannot say it stopped; lp_runsdb_sweep_stale, which every open of a
 * runs database calls (so every command that opens one), finds such runs and marks
 * them 'crashed', like Optuna's fail_stale_trials:
 *
 *   - a run of this host whose heartbeat is older than LOUPE_STALE_SECONDS
 *     (default 30) and whose process is gone (no such pid, a zombie, or a pid
 *     reused by a process that started at another time);
 *   - a run of another host, or of an unknown pid (runs of schema version 1),
 *     whose heartbeat (or start, if it has none) is older than
 *     LOUPE_STALE_REMOTE_SECONDS (default 600): there the pid says nothing, so
 *     only the heartbeat can tell, with a margin for clocks that differ.
 *
 * The heartbeat interval is LOUPE_HEARTBEAT_SECONDS (default 5). A crashed run keeps
 * its committed epochs and resumes like an interrupted one.
 */
#ifndef LP_LIFECYCLE_H
#define LP_LIFECYCLE_H

#include "runsdb.h"

#include <stdbool.h>
#include <stdint.h>

/* Seconds, from the environment variables above (a bad value: the default). */
double lp_heartbeat_interval(void);
double lp_stale_local_seconds(void);
double lp_stale_remote_seconds(void);

/* When process pid started (clock ticks after boot, /proc/PID/stat), or -1 if unknown. */
long long lp_proc_start_time(long pid);

/* Is process pid (started at start_time, or -1 if unknown) still there? False for
 * no such process, a zombie, or a pid now used by a process that started later. */
bool lp_proc_alive(long pid, long long start_time);

/* What the database says about a running run's process, judged from this host. */
typedef enum lp_run_liveness {
    LP_RUN_PROCESS_ALIVE,     /* this host, the process is there */
    LP_RUN_PROCESS_GONE,      /* this host, the process is not */
    LP_RUN_PROCESS_UNKNOWN    /* another host, or no pid recorded */
} lp_run_liveness;

lp_run_liveness lp_run_process(const char *host, bool has_pid, long pid, long long start_time);

/* Mark the stale runs (above) 'crashed', with finished_at set to their last sign of
 * life and error saying what was found; *n_marked (may be NULL) counts them. A run
 * that beat or was resumed meanwhile is left alone (each update re-checks it). */
lp_status lp_runsdb_sweep_stale(lp_runsdb *db, int *n_marked, lp_error *err);

/* How many runs the sweep would mark, read only. */
int lp_runsdb_count_stale(lp_runsdb *db);

/* Write the heartbeat of a running run of this process (one short transaction). */
lp_status lp_runsdb_heartbeat(lp_runsdb *db, int64_t run_id, lp_error *err);

/* A thread with its own connection to db_path that beats for run_id every
 * lp_heartbeat_interval() seconds until stopped. A beat that fails (disk full,
 * locked for 10 s) is skipped and retried at the next one: the epoch commits report
 * such trouble. */
typedef struct lp_heartbeat lp_heartbeat;
lp_status lp_heartbeat_start(const char *db_path, int64_t run_id, lp_heartbeat **out, lp_error *err);
/* Stop and join the thread, close its connection (NULL is fine). */
void lp_heartbeat_stop(lp_heartbeat *hb);
/* Beats written so far. */
long long lp_heartbeat_beats(const lp_heartbeat *hb);

#endif
