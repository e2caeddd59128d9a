/* dist.c - the parts of dist.h that are the same with and without MPI. */
#include "dist.h"

#include <stdlib.h>

int lp_dist_launched_size(void)
{
    const char *names[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *v = getenv(names[i]);
        if (v && atoi(v) > 0) return atoi(v);
    }
    return 1;
}

void lp_dist_shard_of(int n, int r, int size, int *lo, int *hi)
{
    *lo = (int)((long long)n * r / size);
    *hi = (int)((long long)n * (r + 1) / size);
}

void lp_dist_shard(int n, int *lo, int *hi) { lp_dist_shard_of(n, lp_dist_rank(), lp_dist_size(), lo, hi); }

uint64_t lp_dist_hash(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    return h;
}
