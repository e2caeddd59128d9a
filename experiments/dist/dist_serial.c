/* dist_serial.c - dist.h without MPI: one process, rank 0 of a world of 1. The
 * collectives are identities, so the training loop calls them unconditionally. */
#ifndef LOUPE_MPI
#include "dist.h"

bool lp_dist_built(void) { return false; }

lp_status lp_dist_init(lp_error *err)
{
    int n = lp_dist_launched_size();
    if (n > 1)
        return lp_error_set(err, LP_ERR_ARG,
                            "mpirun started this loupe as one of %d ranks, but it was built without MPI: "
                            "each rank would train alone and write the same runs database; build with "
                            "`make MPI=1` (needs libopenmpi-dev, which `make deps` installs)", n);
    return LP_OK;
}

void lp_dist_finalize(void) {}

double lp_dist_seconds(long long *calls)
{
    if (calls) *calls = 0;
    return 0;
}
int lp_dist_rank(void) { return 0; }
int lp_dist_size(void) { return 1; }
int lp_dist_local_size(void) { return 1; }
void lp_dist_sum_f32(float *buf, size_t n) { (void)buf; (void)n; }
void lp_dist_sum_f64(double *buf, size_t n) { (void)buf; (void)n; }
bool lp_dist_any(bool b) { return b; }

void lp_dist_minmax_u64(uint64_t v, uint64_t *min, uint64_t *max)
{
    *min = *max = v;
}

lp_status lp_dist_agree(lp_status s, lp_error *err) { (void)err; return s; }

lp_status lp_dist_share(lp_status s, void **data, size_t *size, lp_error *err)
{
    (void)data; (void)size; (void)err;
    return s;
}

lp_status lp_dist_watch_start(lp_dist_dead_fn on_dead, void *ctx, lp_error *err)
{
    (void)on_dead; (void)ctx; (void)err;
    return LP_OK;
}

void lp_dist_watch_stop(void) {}
#else
typedef int lp_dist_serial_unused; /* ISO C wants something in every file */
#endif
