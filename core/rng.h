/* rng.h - a seeded generator that gives the same numbers on every machine.
 *
 * xoshiro256** seeded through splitmix64; normals by Box-Muller in double, so a
 * seed fixes initial weights, shuffles and augmentation bit for bit. The state is
 * a plain struct: checkpoints store it to resume exactly.
 */
#ifndef LP_RNG_H
#define LP_RNG_H

#include <stdint.h>

typedef struct lp_rng {
    uint64_t s[4];
} lp_rng;

void lp_rng_seed(lp_rng *r, uint64_t seed);
uint64_t lp_rng_u64(lp_rng *r);
/* Uniform in [0, 1). */
double lp_rng_uniform(lp_rng *r);
/* Uniform integer in [0, n), n > 0, without modulo bias. */
uint32_t lp_rng_below(lp_rng *r, uint32_t n);
/* Standard normal. */
double lp_rng_normal(lp_rng *r);
/* Fisher-Yates shuffle of idx[0..n). */
void lp_rng_shuffle(lp_rng *r, int *idx, int n);
/* A seed derived from (seed, stream): independent streams for independent uses. */
uint64_t lp_rng_derive(uint64_t seed, uint64_t stream);

#endif
