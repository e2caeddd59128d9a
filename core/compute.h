/* compute.h - the two knobs of speed: GEMM and threads.
 *
 * One level of parallelism per call: loupe's own loops use OpenMP, and OpenBLAS is
 * held to one thread (its threads inside OpenMP threads oversubscribe the cores).
 */
#ifndef LP_COMPUTE_H
#define LP_COMPUTE_H

#include "error.h"

#include <stdbool.h>

/* C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C, row-major.
 * op(X) is X, or X transposed when the flag is set. With beta == 0, C is
 * written without being read (it may hold garbage). */
void lp_sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A,
              int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* Use n threads for loupe's loops (n <= 0: all cores, or OMP_NUM_THREADS if set);
 * keeps BLAS single-threaded. Returns the count in force. */
int lp_threads_init(int n);

/* Threads in force. */
int lp_threads(void);

/* Inside an OpenMP parallel region: this thread's number (0 outside one), the team's
 * size in *nt (1 outside), and the thread's contiguous share [*lo, *hi) of count
 * items. Which thread takes which items is fixed for a team size, so per-thread
 * partial sums add up the same way every time. */
int lp_thread_share(long count, int *nt, long *lo, long *hi);

/* Monotonic wall-clock time in seconds (profiles, progress, benchmarks). */
double lp_seconds(void);
/* CPU time of the calling thread (on a shared machine, what a piece of work cost). */
double lp_thread_seconds(void);

/* OpenBLAS (0.3.21, Debian 12) takes a 128 MB work buffer at the first GEMM and,
 * when that allocation fails, retries forever (OpenMathLib/OpenBLAS#5289): a
 * process short of address space would hang in its first training step, deaf to
 * SIGTERM. Call this once before allocating the data and the arena: it checks the
 * buffer can be had and makes OpenBLAS take it now, so running out of memory later
 * is one of loupe's own allocations failing with a message. LP_ERR_NOMEM if not. */
lp_status lp_compute_reserve(lp_error *err);

/* True once lp_compute_reserve found memory too short for OpenBLAS. Its worker
 * threads, started when the library loaded, may then be spinning on their own failed
 * allocation, and its exit handler joins them: the process would never exit. A
 * command that sees this ends with _exit() after flushing its output. */
bool lp_compute_blas_stuck(void);

#endif
