#include "compute.h"

#include <cblas.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

void openblas_set_num_threads(int num_threads);

static int threads_in_force = 1;

void lp_sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A,
              int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

int lp_threads_init(int n)
{
    if (n <= 0) {
        const char *env = getenv("OMP_NUM_THREADS");
        n = env ? atoi(env) : 0;
        if (n <= 0) n = (int)sysconf(_SC_NPROCESSORS_ONLN);
        if (n <= 0) n = 1;
    }
    openblas_set_num_threads(1);
#ifdef _OPENMP
    omp_set_num_threads(n);
    omp_set_max_active_levels(1); /* an op called inside a lane runs on that lane's thread */
#else
    n = 1;
#endif
    threads_in_force = n;
    return n;
}

int lp_threads(void) { return threads_in_force; }

int lp_thread_share(long count, int *nt, long *lo, long *hi)
{
    int t = 0;
    *nt = 1;
#ifdef _OPENMP
    t = omp_get_thread_num();
    *nt = omp_get_num_threads();
#endif
    *lo = count * t / *nt;
    *hi = count * (t + 1) / *nt;
    return t;
}

double lp_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

double lp_thread_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* OpenBLAS's BUFFER_SIZE on x86-64 (32 << 22), plus room for malloc's bookkeeping. */
#define BLAS_BUFFER_BYTES ((size_t)128 << 20)

static bool blas_stuck;

bool lp_compute_blas_stuck(void) { return blas_stuck; }

lp_status lp_compute_reserve(lp_error *err)
{
    static bool reserved;
    if (reserved) return LP_OK;
    void *probe = malloc(BLAS_BUFFER_BYTES + ((size_t)8 << 20));
    blas_stuck = probe == NULL;
    if (!probe)
        return lp_error_set(err, LP_ERR_NOMEM,
                            "cannot reserve the %zu MB work buffer OpenBLAS needs (address space "
                            "limit too low? see `ulimit -v`)",
                            BLAS_BUFFER_BYTES >> 20);
    free(probe);
    /* Big enough that OpenBLAS uses its buffer rather than a small-matrix path. */
    enum { D = 256 };
    float *a = calloc(2 * (size_t)D * D, sizeof *a);
    if (!a) return lp_error_set(err, LP_ERR_NOMEM, "out of memory");
    lp_sgemm(false, true, D, D, D, 1.0f, a, D, a, D, 0.0f, a + (size_t)D * D, D);
    free(a);
    reserved = true;
    return LP_OK;
}
