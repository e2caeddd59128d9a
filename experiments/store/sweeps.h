/* sweeps.h - a sweep in the runs database: one parent row (runs.kind = 'sweep')
 * and its trials, runs of their own with parent_run_id and sweep_trial set
 * (schema 3, docs/runs-db.md "Sweeps"). The parent is created with
 * lp_runsdb_begin_run (kind "sweep") and each trial by `loupe train` as a child;
 * these are the queries over the two.
 */
#ifndef LP_SWEEPS_H
#define LP_SWEEPS_H

#include "runsdb.h"

#include <stdbool.h>
#include <stdint.h>

/* One trial of a sweep as recorded. Strings owned; numbers NaN when missing. */
typedef struct lp_sweep_child {
    int64_t run_id;
    int trial;
    char *status;             /* running, completed, failed, interrupted, crashed */
    char *error;              /* or NULL */
    int epochs_done;
    double duration_s;
    double final_value;       /* the metric at the run's last epoch */
    double best_value;        /* its best over the epochs (max, or min for a loss) */
    long long pid;            /* process training it (-1 unknown) and its start time */
    long long proc_start;
} lp_sweep_child;

/* Lower is better for metric names containing "loss"; higher for the rest. */
bool lp_sweep_metric_lower_is_better(const char *name);

/* The trials of sweep parent_id ordered by trial number, with the metric split/name
 * (e.g. "test", "acc") read from each. LP_ERR_ARG if parent_id is no sweep. */
lp_status lp_sweeps_children(lp_runsdb *db, int64_t parent_id, const char *split, const char *name,
                             lp_sweep_child **out, int *n, lp_error *err);
void lp_sweep_children_free(lp_sweep_child *c, int n);

/* The trial `trial` of parent_id, or *found = false. */
lp_status lp_sweeps_child(lp_runsdb *db, int64_t parent_id, int trial, const char *split, const char *name,
                          lp_sweep_child *out, bool *found, lp_error *err);

/* A run's setting (run_params) as a malloc'd string, or *value = NULL when it has none. */
lp_status lp_sweeps_param(lp_runsdb *db, int64_t run_id, const char *key, char **value, lp_error *err);

/* Mark a trial whose process ended without closing its run (killed by a signal):
 * 'crashed' with why, only if it is still 'running'. */
lp_status lp_sweeps_mark_crashed(lp_runsdb *db, int64_t run_id, const char *why, lp_error *err);

/* What a run is in a sweep, for listings: kind 'sweep' with its number of trials,
 * or a trial (parent and number), or neither. */
typedef struct lp_sweep_role {
    bool is_sweep;
    int n_trials;             /* recorded trials of a sweep */
    int64_t parent_run_id;    /* 0: not a trial */
    int sweep_trial;
} lp_sweep_role;

lp_status lp_sweeps_role(lp_runsdb *db, int64_t run_id, lp_sweep_role *out, lp_error *err);

#endif
