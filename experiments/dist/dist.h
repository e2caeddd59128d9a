/* dist.h - data-parallel training across processes, over MPI (Open MPI).
 *
 * `mpirun -np N loupe train CONFIG` starts N processes (ranks) of the same program.
 * Every rank builds the same graph from the same seed, takes the same shuffled
 * batches (the order comes from (seed, epoch): no communication needed) and trains
 * on its contiguous shard of each batch; one allreduce of the flat gradient block
 * (graph.h keeps all gradients in one buffer) sums the shards, each weighted by its
 * share n_r/n of the batch, so every rank applies the same averaged gradient to the
 * same weights. Rank 0 alone opens the runs database and prints.
 *
 * The API is the same with and without MPI: a build without it (dist_serial.c,
 * `make MPI=0`, or no mpicc found) is always one rank of size 1, and a build with it
 * (dist_mpi.c) starts MPI only when launched by mpirun, so `loupe train` without
 * mpirun runs exactly as a single process, with no MPI call at all. Only the main
 * thread calls these functions (MPI_THREAD_FUNNELED).
 *
 * Every collective here must be reached by every rank: a function that fails on
 * one rank still takes part, and lp_dist_agree() then tells all ranks.
 */
#ifndef LP_DIST_H
#define LP_DIST_H

#include "error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True when this loupe was built with MPI (make MPI=1, or mpicc found). */
bool lp_dist_built(void);

/* Start MPI if this process was launched by mpirun (its environment says so);
 * otherwise stay one process of rank 0 in a world of 1. A build without MPI
 * launched as one of several ranks is an error (each would train alone and all
 * would write the same database). Idempotent. */
lp_status lp_dist_init(lp_error *err);
/* How many ranks mpirun (Open MPI, or a PMI launcher) started with this process,
 * from its environment: 1 when not launched by one. Needs no lp_dist_init. */
int lp_dist_launched_size(void);
/* MPI_Finalize if lp_dist_init started MPI. */
void lp_dist_finalize(void);

int lp_dist_rank(void);
int lp_dist_size(void);
/* Ranks on this host (Open MPI's local size; 1 without MPI): the default thread
 * count divides the cores among them. */
int lp_dist_local_size(void);

/* Rank r's contiguous share [*lo, *hi) of n items among `size` ranks: n*r/size ..
 * n*(r+1)/size, so the shares cover n exactly once, differ by at most one and may be
 * empty (n < size). lp_dist_shard: this rank's. */
void lp_dist_shard_of(int n, int r, int size, int *lo, int *hi);
void lp_dist_shard(int n, int *lo, int *hi);

/* Sum buf[0..n) over all ranks, in place, every rank receiving the same sums. */
void lp_dist_sum_f32(float *buf, size_t n);
void lp_dist_sum_f64(double *buf, size_t n);

/* True on every rank when b is true on any rank. */
bool lp_dist_any(bool b);

/* Smallest and largest of v over all ranks. */
void lp_dist_minmax_u64(uint64_t v, uint64_t *min, uint64_t *max);

/* Agree on an outcome: every rank passes its own status (and err); every rank gets
 * the status and message of the lowest failing rank R (its message prefixed
 * "rank R: " when R > 0), or LP_OK when all succeeded. */
lp_status lp_dist_agree(lp_status s, lp_error *err);

/* Give every rank rank 0's bytes: rank 0 passes its status, *data and *size (kept);
 * the others receive a malloc'd copy in *data (NULL when size is 0). A failure of
 * rank 0 (s != LP_OK) reaches every rank as its status and message. */
lp_status lp_dist_share(lp_status s, void **data, size_t *size, lp_error *err);

/* Seconds this rank spent in the collectives above (waiting for slower ranks
 * included), and how many it made: the price of the world size (--profile). */
double lp_dist_seconds(long long *calls);

/* A hash of n bytes (64-bit FNV-1a): equal weights give equal hashes. */
uint64_t lp_dist_hash(const void *p, size_t n);

/* Rank 0's guard against a rank that dies: a thread that watches, while this rank
 * waits in one of the collectives above, whether a rank on this host has died
 * (its process gone or a zombie; mpirun then ends the job: SIGCONT, SIGTERM a
 * second later, SIGKILL a second after that). It calls on_dead(ctx, message) once, from that thread,
 * with a sentence naming the dead rank, then ends this process with exit status 1.
 * No-op for a world of 1 and on ranks other than 0. */
typedef void (*lp_dist_dead_fn)(void *ctx, const char *message);
lp_status lp_dist_watch_start(lp_dist_dead_fn on_dead, void *ctx, lp_error *err);
void lp_dist_watch_stop(void);

#endif
