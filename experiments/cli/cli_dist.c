/* cli_dist.c - see cli_dist.h. */
#include "cli_dist.h"

#include "dist.h"
#include "runsdb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cli_dist_threads(int requested)
{
    if (requested > 0) return requested;
    int local = lp_dist_local_size();
    const char *env = getenv("OMP_NUM_THREADS");
    if (local <= 1 || (env && atoi(env) > 0)) return 0;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    return cores / local > 1 ? (int)(cores / local) : 1;
}

static struct {
    char db_path[4096];
    int64_t run_id;
} watched;

/* From the watchdog thread, while the main thread waits in MPI: its own connection. */
static void mark_failed(void *ctx, const char *message)
{
    (void)ctx;
    lp_runsdb *db = NULL;
    lp_error err = {0};
    lp_status s = lp_runsdb_open(watched.db_path, &db, &err);
    if (!s) s = lp_runsdb_finish_run(db, watched.run_id, LP_RUN_FAILED, message, &err);
    lp_runsdb_close(db);
    if (s)
        fprintf(stderr, "loupe: %s; run %lld could not be marked failed: %s\n", message,
                (long long)watched.run_id, err.msg);
    else
        fprintf(stderr, "loupe: %s; run %lld is marked failed (continue it with: loupe train --resume %lld --db %s)\n",
                message, (long long)watched.run_id, (long long)watched.run_id, watched.db_path);
}

lp_status cli_dist_watch(const char *db_path, int64_t run_id, lp_error *err)
{
    if (lp_dist_size() == 1 || lp_dist_rank() != 0) return LP_OK;
    snprintf(watched.db_path, sizeof watched.db_path, "%s", db_path);
    watched.run_id = run_id;
    return lp_dist_watch_start(mark_failed, NULL, err);
}

const char *cli_dist_ranks_note(void)
{
    static char note[48];
    if (lp_dist_size() == 1) return "";
    snprintf(note, sizeof note, " on each of %d MPI ranks", lp_dist_size());
    return note;
}

lp_status cli_dist_same_data(const lp_data_fingerprint *data, lp_error *err)
{
    uint64_t lo, hi, h = lp_dist_hash(data->sha256, strlen(data->sha256));
    lp_dist_minmax_u64(h, &lo, &hi);
    if (lo == hi) return LP_OK;
    return lp_error_set(err, LP_ERR_DATA,
                        "the ranks read different data (this rank: %lld training + %lld test images of %s, "
                        "sha256 %.16s...): every rank must see the same data.dir",
                        data->train_count, data->test_count, data->shape, data->sha256);
}

void cli_dist_profile(void)
{
    long long calls;
    double s = lp_dist_seconds(&calls);
    if (lp_dist_size() > 1)
        fprintf(stderr, "  %-37s %21.3f   (%lld calls, %.1f us each, waits for slower ranks included)\n",
                "in MPI collectives (rank 0)", s, calls, calls ? 1e6 * s / calls : 0.0);
}
