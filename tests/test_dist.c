/* test_dist.c - the parts of experiments/dist/ that need no mpirun: shards, the
 * weights' hash, and a world of one (what every process outside mpirun is).
 * Several ranks are tested end to end by tests/e2e_mpi.sh. */
#include <criterion/criterion.h>

#include "dist.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

Test(dist, shards_cover_each_item_once_and_differ_by_at_most_one)
{
    for (int size = 1; size <= 9; size++)
        for (int n = 0; n <= 70; n++) {
            int next = 0, smallest = n, largest = 0;
            for (int r = 0; r < size; r++) {
                int lo, hi;
                lp_dist_shard_of(n, r, size, &lo, &hi);
                cr_assert_eq(lo, next, "n %d size %d rank %d starts at %d, not %d", n, size, r, lo, next);
                cr_assert_geq(hi, lo);
                next = hi;
                if (hi - lo < smallest) smallest = hi - lo;
                if (hi - lo > largest) largest = hi - lo;
            }
            cr_assert_eq(next, n, "n %d size %d: shards end at %d", n, size, next);
            cr_assert_leq(largest - smallest, 1, "n %d size %d: shards of %d and %d", n, size, smallest, largest);
        }
    /* the e2e test's last batch: 3 samples on 4 ranks leave rank 0 none */
    int lo, hi;
    lp_dist_shard_of(3, 0, 4, &lo, &hi);
    cr_assert_eq(hi - lo, 0);
}

Test(dist, hash_is_fnv1a_and_sees_one_bit)
{
    /* FNV-1a 64 reference values */
    cr_assert_eq(lp_dist_hash("", 0), 0xcbf29ce484222325ull);
    cr_assert_eq(lp_dist_hash("a", 1), 0xaf63dc4c8601ec8cull);
    cr_assert_eq(lp_dist_hash("foobar", 6), 0x85944171f73967e8ull);
    float w[64];
    for (int i = 0; i < 64; i++) w[i] = 0.01f * (float)i;
    uint64_t h = lp_dist_hash(w, sizeof w);
    w[37] = nextafterf(w[37], 1.0f);
    cr_assert_neq(lp_dist_hash(w, sizeof w), h, "one ulp in one weight must change the hash");
}

Test(dist, a_world_of_one_without_mpirun)
{
    lp_error err = {0};
    cr_assert_eq(lp_dist_init(&err), LP_OK, "%s", err.msg);
    cr_assert_eq(lp_dist_rank(), 0);
    cr_assert_eq(lp_dist_size(), 1);
    cr_assert_eq(lp_dist_local_size(), 1);
    int lo, hi;
    lp_dist_shard(64, &lo, &hi);
    cr_assert(lo == 0 && hi == 64);
    float f[3] = {1.5f, -2, 3};
    lp_dist_sum_f32(f, 3);
    cr_assert(f[0] == 1.5f && f[1] == -2 && f[2] == 3);
    cr_assert(lp_dist_any(true) && !lp_dist_any(false));
    uint64_t mn, mx;
    lp_dist_minmax_u64(42, &mn, &mx);
    cr_assert(mn == 42 && mx == 42);
    lp_error e2 = {0};
    lp_error_set(&e2, LP_ERR_DATA, "mine");
    cr_assert_eq(lp_dist_agree(LP_ERR_DATA, &e2), LP_ERR_DATA);
    cr_assert_str_eq(e2.msg, "mine");
    void *data = "x";
    size_t size = 1;
    cr_assert_eq(lp_dist_share(LP_OK, &data, &size, &err), LP_OK);
    cr_assert(size == 1 && !strcmp(data, "x"), "rank 0 keeps its own bytes");
    long long calls;
    cr_assert_eq(lp_dist_seconds(&calls), 0.0);
    cr_assert_eq(calls, 0);
    lp_dist_finalize();
}
