/* simd.h - AVX-512 helpers shared by the built-in ops' kernels (conv2d, dense,
 * maxpool). Internal: static inline, nothing exported. */
#ifndef LP_OPS_SIMD_H
#define LP_OPS_SIMD_H

#if defined(__AVX512F__)
#include <immintrin.h>

/* The first n of 16 lanes (none for n <= 0, all for n >= 16): the mask of a row's
 * last, partial vector. */
static inline __mmask16 first_lanes(int n)
{
    return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

#endif

#endif
