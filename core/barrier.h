/* barrier.h - a reusable barrier for the graph's lanes, which must meet mid-step
 * when an op needs whole-batch numbers (batch norm's mean and variance).
 *
 *   lp_barrier b;
 *   lp_barrier_init(&b);
 *   lp_barrier_reset(&b, 2);     // before the threads start: 2 will meet
 *   lp_barrier_wait(&b);         // in each thread: returns when all have arrived
 *
 * Like the worker pool (pool.h) it spins, then sleeps on a condition variable,
 * but it spins for only ~20 microseconds: lanes meet within microseconds when both
 * run, but on a loaded machine one may be descheduled for milliseconds, and
 * spinning then would take the core it needs (barrier.c has the measurements). All threads that wait must be running at once (a pool that
 * ran its workers one after another would deadlock here: see lp_pool_reserve).
 */
#ifndef LP_BARRIER_H
#define LP_BARRIER_H

#include <pthread.h>
#include <stdatomic.h>

typedef struct lp_barrier {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_int arrived;
    atomic_uint generation;
    int count;          /* threads that meet */
} lp_barrier;

void lp_barrier_init(lp_barrier *b);
void lp_barrier_destroy(lp_barrier *b);
/* Set how many threads meet; only while none is waiting. */
void lp_barrier_reset(lp_barrier *b, int count);
/* Wait until `count` threads have called this since the last release. Memory
 * written before the call by any of them is visible to all after it. */
void lp_barrier_wait(lp_barrier *b);

#endif
