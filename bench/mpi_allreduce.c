/* mpi_allreduce.c - the cost of loupe's per-step allreduce on this machine, alone:
 * MPI_Allreduce (sum, in place) of FLOATS floats (default 27,565: the two-conv net's
 * 27,562 gradients plus loss, correct and stop) and of 1 float (latency), ITERS times
 * each after a warm-up; prints the median and mean microseconds per call on rank 0.
 *
 *   mpicc -O2 -o build/mpi_allreduce bench/mpi_allreduce.c
 *   mpirun -np 2 build/mpi_allreduce [FLOATS [ITERS]]
 */
#include <mpi.h>

#include <stdio.h>
#include <stdlib.h>

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void measure(int rank, int size, int n, int iters)
{
    float *buf = malloc((size_t)n * sizeof *buf);
    double *t = malloc((size_t)iters * sizeof *t), sum = 0;
    if (!buf || !t) MPI_Abort(MPI_COMM_WORLD, 1);
    for (int i = 0; i < n; i++) buf[i] = 1e-3f * (float)(i % 97);
    for (int i = 0; i < iters / 10 + 1; i++)
        MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    for (int i = 0; i < iters; i++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        t[i] = MPI_Wtime() - t0;
        sum += t[i];
    }
    qsort(t, (size_t)iters, sizeof *t, by_value);
    if (rank == 0)
        printf("allreduce ranks=%d floats=%d bytes=%zu median_us=%.1f mean_us=%.1f\n", size, n,
               (size_t)n * sizeof(float), 1e6 * t[iters / 2], 1e6 * sum / iters);
    free(buf);
    free(t);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int n = argc > 1 ? atoi(argv[1]) : 27565, iters = argc > 2 ? atoi(argv[2]) : 2000;
    if (n < 1 || iters < 1) MPI_Abort(MPI_COMM_WORLD, 2);
    measure(rank, size, 1, iters);
    measure(rank, size, n, iters);
    MPI_Finalize();
    return 0;
}
