/* pool.c - see pool.h. A run publishes (fn, ctx) and a new `ticket` (a run count
 * and the number of workers, read together so a thread left out of one run cannot
 * mistake the next run's count for its own); workers spin on it briefly, then
 * sleep on `start`. The last worker to finish
 * wakes the caller, which likewise spins briefly before sleeping on `done`. */
#include "pool.h"

#include "compute.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#define POOL_MAX 256
#define POOL_SPIN_S 300e-6 /* longer than a step's serial gap plus the lanes' imbalance */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t start = PTHREAD_COND_INITIALIZER, done = PTHREAD_COND_INITIALIZER;
static atomic_ulong ticket; /* run count << 16 | workers */
static atomic_int pending;
static int started;        /* pool threads running: workers 1..started */
static lp_pool_fn run_fn;
static void *run_ctx;
static unsigned long first_seen[POOL_MAX]; /* the ticket when worker i was started */

static void relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void *worker_main(void *arg)
{
    const int id = (int)(intptr_t)arg;
    /* Not the ticket now: the run that started this thread may already be posted. */
    unsigned long seen = first_seen[id];
    for (;;) {
        double t0 = lp_seconds();
        while (atomic_load_explicit(&ticket, memory_order_acquire) == seen &&
               lp_seconds() - t0 < POOL_SPIN_S)
            relax();
        if (atomic_load_explicit(&ticket, memory_order_acquire) == seen) {
            pthread_mutex_lock(&mu);
            while (atomic_load(&ticket) == seen) pthread_cond_wait(&start, &mu);
            pthread_mutex_unlock(&mu);
        }
        seen = atomic_load_explicit(&ticket, memory_order_acquire);
        if (id >= (int)(seen & 0xffff)) continue;
        run_fn(run_ctx, id);
        if (atomic_fetch_sub_explicit(&pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&mu);
            pthread_cond_signal(&done);
            pthread_mutex_unlock(&mu);
        }
    }
    return NULL;
}

/* Start pool threads up to `want` (workers 1..want); returns how many run. */
static int grow(int want)
{
    while (started < want && started < POOL_MAX - 1) {
        pthread_t t;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        first_seen[started + 1] = atomic_load(&ticket);
        int rc = pthread_create(&t, &at, worker_main, (void *)(intptr_t)(started + 1));
        pthread_attr_destroy(&at);
        if (rc) break;
        started++;
    }
    return started;
}

int lp_pool_reserve(int workers)
{
    if (workers <= 1) return workers < 1 ? 1 : workers;
    int helpers = grow(workers - 1);
    return helpers + 1 < workers ? helpers + 1 : workers;
}

void lp_pool_run(int workers, lp_pool_fn fn, void *ctx)
{
    if (workers <= 1) {
        if (workers == 1) fn(ctx, 0);
        return;
    }
    int helpers = grow(workers - 1);
    int parallel = helpers + 1 < workers ? helpers + 1 : workers;
    run_fn = fn;
    run_ctx = ctx;
    atomic_store(&pending, parallel - 1);
    unsigned long next = ((atomic_load(&ticket) >> 16) + 1) << 16 | (unsigned long)parallel;
    pthread_mutex_lock(&mu);
    atomic_store_explicit(&ticket, next, memory_order_release);
    pthread_cond_broadcast(&start);
    pthread_mutex_unlock(&mu);
    fn(ctx, 0);
    for (int w = parallel; w < workers; w++) fn(ctx, w); /* threads that could not start */
    double t0 = lp_seconds();
    while (atomic_load_explicit(&pending, memory_order_acquire) > 0 && lp_seconds() - t0 < POOL_SPIN_S)
        relax();
    if (atomic_load_explicit(&pending, memory_order_acquire) > 0) {
        pthread_mutex_lock(&mu);
        while (atomic_load(&pending) > 0) pthread_cond_wait(&done, &mu);
        pthread_mutex_unlock(&mu);
    }
}
