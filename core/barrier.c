/* barrier.c - see barrier.h. A generation counter: the last thread to arrive bumps
 * it (under the mutex, so a sleeper cannot miss the wake-up); the others spin on it
 * briefly, then sleep until it changes. */
#include "barrier.h"

#include "compute.h"

/* Short: lanes that arrive together meet within a few microseconds; past that the
 * other lane is usually descheduled, and spinning would hold the core it needs.
 * Measured on the shared 2-core machine (load ~25), two-conv BN net at 2 threads:
 * spin 5 ms: 760-990 images/s; 200 us: 2,600-2,900; 20 us: 14,000-22,000. */
#define BARRIER_SPIN_S 20e-6

static void relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

void lp_barrier_init(lp_barrier *b)
{
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    atomic_init(&b->arrived, 0);
    atomic_init(&b->generation, 0);
    b->count = 1;
}

void lp_barrier_destroy(lp_barrier *b)
{
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
}

void lp_barrier_reset(lp_barrier *b, int count)
{
    atomic_store(&b->arrived, 0);
    b->count = count;
}

void lp_barrier_wait(lp_barrier *b)
{
    if (b->count <= 1) return;
    unsigned gen = atomic_load_explicit(&b->generation, memory_order_acquire);
    if (atomic_fetch_add_explicit(&b->arrived, 1, memory_order_acq_rel) == b->count - 1) {
        atomic_store_explicit(&b->arrived, 0, memory_order_relaxed);
        pthread_mutex_lock(&b->mu);
        atomic_store_explicit(&b->generation, gen + 1, memory_order_release);
        pthread_cond_broadcast(&b->cv);
        pthread_mutex_unlock(&b->mu);
        return;
    }
    double t0 = lp_seconds();
    int spins = 0;
    while (atomic_load_explicit(&b->generation, memory_order_acquire) == gen) {
        relax();
        /* The clock is read now and then: it costs more than a pause. */
        if (++spins % 64 == 0 && lp_seconds() - t0 > BARRIER_SPIN_S) {
            pthread_mutex_lock(&b->mu);
            while (atomic_load_explicit(&b->generation, memory_order_acquire) == gen)
                pthread_cond_wait(&b->cv, &b->mu);
            pthread_mutex_unlock(&b->mu);
            break;
        }
    }
}
