/* dist.c - the parts of dist.h that are the same with and without MPI. */
#include "dist.h"

void lp_dist_shard(int n, int *lo, int *hi)
{
    long long r = lp_dist_rank(), size = lp_dist_size();
    *lo = (int)(n * r / size);
    *hi = (int)(n * (r + 1) / size);
}

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
