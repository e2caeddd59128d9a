/* cli_dist.h - what `loupe train` adds under mpirun (dist.h): threads per rank, and
 * rank 0's verdict on a rank that dies. */
#ifndef LP_CLI_DIST_H
#define LP_CLI_DIST_H

#include "error.h"
#include "provenance.h"

#include <stdint.h>

/* The thread count for this rank: `requested` when positive (--threads or
 * train.threads); otherwise, with several ranks on this host and no OMP_NUM_THREADS,
 * the cores divided among them (at least 1); else 0 (lp_threads_init's default). */
int cli_dist_threads(int requested);

/* On rank 0 of several: watch the other ranks (lp_dist_watch_start); if one dies,
 * mark run_id of the database at db_path 'failed' with a message naming it, say so
 * on stderr and exit 1. No-op for one process. */
lp_status cli_dist_watch(const char *db_path, int64_t run_id, lp_error *err);

/* " on each of N MPI ranks" for the run line, "" for one process. */
const char *cli_dist_ranks_note(void);

/* Every rank must read the same data: compares the fingerprints' hashes (a
 * collective; LP_ERR_DATA on every rank when they differ). */
lp_status cli_dist_same_data(const lp_data_fingerprint *data, lp_error *err);

/* For --profile: rank 0's time in MPI collectives (nothing for one process). */
void cli_dist_profile(void);

#endif
