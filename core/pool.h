/* pool.h - a few worker threads that run one function on each of them at once,
 * for the graph's lanes (one run per training step).
 *
 *   static void work(void *ctx, int worker) { ... worker in [0, workers) ... }
 *   lp_pool_run(2, work, ctx);   // worker 0 on this thread, 1 on a pool thread
 *
 * Why not an OpenMP team: libgomp's default waiting spins for a long time, and on
 * a 2-core machine with anything else running a 2-thread team then collapses (a
 * two-conv epoch went from 1 s to 3-14 s here); OMP_WAIT_POLICY=passive fixes that
 * only if the user sets it before the program starts. These workers spin for 300
 * microseconds (longer than the gap between two steps: measured, with 100 a worker
 * slept in 99% of the steps, with 300 in 2%) and then sleep on a condition variable.
 *
 * One run at a time (runs do not nest). If a thread cannot be started, the calling
 * thread runs the remaining workers' parts itself, one after another.
 */
#ifndef LP_POOL_H
#define LP_POOL_H

typedef void (*lp_pool_fn)(void *ctx, int worker);

/* Run fn(ctx, w) for every w in [0, workers) and return when all have returned. */
void lp_pool_run(int workers, lp_pool_fn fn, void *ctx);

/* Start threads for up to `workers` workers now; returns how many of them a run
 * would run at once (workers, unless threads could not be started). A run whose
 * workers wait for each other (lp_barrier) must use no more than that. */
int lp_pool_reserve(int workers);

#endif
