/* maxpool.c - max over size x size windows, per channel.
 *
 * Input [C, H, W] -> [C, OH, OW], OH = (H - kh) / sh + 1 (floor: rows and columns
 * that do not fill a window are dropped). Stride defaults to the size.
 * Forward stores, per output element, the flat index (within its H x W plane) of
 * the window's maximum in scratch (int32); backward routes each gradient there
 * only. Ties go to the first maximum in row-major window order, and a NaN input
 * wins its window (so it propagates instead of hiding).
 *
 * 2x2 windows with stride 2 (every MNIST net) take a fast path: the argmax is one
 * byte (0..3, row-major in the window; 4: all zero after a folded ReLU), 16 outputs
 * per step with AVX-512, and backward writes every input of its windows (the
 * gradient or 0) instead of clearing the plane first, since such windows tile the
 * input exactly. Narrow planes (conv2's 11 x 11 in the two-conv net: 5 outputs a
 * row) put several output rows in one vector, through index tables built at setup,
 * instead of wasting 11 of 16 lanes: the forward two consecutive output rows of the
 * batch (or more of one plane), the backward a whole plane of up to 128 inputs.
 */
#include "batch_norm.h"
#include "compute.h"
#include "loupe_op.h"
#include "simd.h"

#include <stdint.h>
#include <string.h>
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#include <immintrin.h>
#define POOL_AVX512 1
#else
#define POOL_AVX512 0
#endif

/* Below this many outputs a parallel loop costs more than it saves. */
#define POOL_PARALLEL_MIN 16384

/* Several output rows per vector (2x2 stride 2, narrow planes): a group of `rows`
 * output rows reads input rows 2oy .. 2oy + 2 x rows - 1; the windows' top-left
 * inputs must lie within two vectors (32 floats) of the group's first input row. */
#define GROUP_SPAN 32

typedef struct pool2_group_plan {
    int rows;                 /* output rows per vector; 0: one row at a time */
    int32_t left[16];         /* lane j's window's top-left input, from the group's first row */
} pool2_group_plan;

/* Backward of a small plane (conv2's 11 x 11) as a whole: its outputs fill two
 * vectors, and each 16 of its inputs take their windows' gradients from them by one
 * two-source permute. Fewer, fuller vectors than by groups of rows, and the dropped
 * row and column come out as zeros on the way. */
#define SMALL_CHUNKS 8 /* inputs: at most 8 x 16; outputs: at most 32 */

typedef struct pool2_small_plan {
    int chunks;                      /* 16-float pieces of a plane; 0: not small */
    uint16_t used[SMALL_CHUNKS];     /* the piece's floats within the plane */
    int32_t lane[SMALL_CHUNKS][16];  /* input 16c + i takes output lane[c][i]'s gradient */
    int32_t pos[SMALL_CHUNKS][16];   /* when that output's arg is pos[c][i] (-1: never) */
} pool2_small_plan;

typedef struct maxpool_state {
    int kh, kw, sh, sw;
    int fast;   /* 2x2 stride 2: byte argmax */
    pool2_group_plan group;
    pool2_small_plan small;
} maxpool_state;

/* Output rows per vector: the most r that fit 16 lanes, where groups of 3 or more
 * must also keep their windows within the two-vector span; row pairs (r = 2) load
 * each row by itself, so any 2 OW <= 16 pairs. Tables for groups of 3 or more. */
static void plan_groups(pool2_group_plan *g, int W, int OW)
{
    memset(g, 0, sizeof *g);
    int r = 0;
    while ((r + 1) * OW <= 16 && 2 * W * r + 2 * OW <= GROUP_SPAN) r++;
    if (r < 2 && 2 * OW <= 16) r = 2;
    if (r < 2) return;
    g->rows = r;
    if (r > 2)
        for (int j = 0; j < r * OW; j++) g->left[j] = 2 * W * (j / OW) + 2 * (j % OW);
}

static void plan_small(pool2_small_plan *sp, int H, int W, int OH, int OW)
{
    memset(sp, 0, sizeof *sp);
    if (H * W > 16 * SMALL_CHUNKS) return; /* then OH x OW <= 32 too */
    sp->chunks = (H * W + 15) / 16;
    for (int q = 0; q < 16 * sp->chunks; q++) {
        const int row = q / W, col = q % W, in = row < 2 * OH && col < 2 * OW;
        sp->lane[q / 16][q % 16] = in ? (row / 2) * OW + col / 2 : 0;
        sp->pos[q / 16][q % 16] = in ? (row % 2) * 2 + col % 2 : -1;
        if (q < H * W) sp->used[q / 16] |= (uint16_t)(1u << (q % 16));
    }
}

/* The scratch: a block of input planes of floats (at least one, about 8 KB), used
 * when this max-pool applies the batch norm before it (lp_node_input_applied), then
 * the argmax per output. Blocks, not planes: conv2's 11 x 11 planes pooled one by
 * one cost 3 calls' set-up and 3 vectors each instead of 2.5 (measured: max-pool
 * 0.016 -> 0.045 s an epoch). */
#define APPLIED_BLOCK_FLOATS 2048
static long block_planes(int H, int W)
{
    long p = APPLIED_BLOCK_FLOATS / ((long)H * W);
    return p > 0 ? p : 1;
}
static size_t plane_bytes(int H, int W)
{
    return ((size_t)block_planes(H, W) * H * W * sizeof(float) + 63) / 64 * 64;
}
static float *plane_of(const lp_node *n) { return lp_node_scratch(n); }
static void *arg_of(const lp_node *n)
{
    lp_shape in = lp_node_in_shape(n, 0);
    return (char *)lp_node_scratch(n) + plane_bytes(in.dims[1], in.dims[2]);
}

static lp_status maxpool_setup(lp_node *n)
{
    int size[2], stride[2];
    lp_status s = lp_attr_pair_required(n, "size", size);
    if (s) return s;
    if (size[0] < 1 || size[1] < 1)
        return lp_node_fail_attr(n, "size", "size must be at least 1, got %dx%d", size[0], size[1]);
    if ((s = lp_attr_pair(n, "stride", 0, stride))) return s;
    if (!lp_attr_present(n, "stride")) { stride[0] = size[0]; stride[1] = size[1]; }
    if (stride[0] < 1 || stride[1] < 1)
        return lp_node_fail_attr(n, "stride", "stride must be at least 1, got %dx%d", stride[0],
                                 stride[1]);
    lp_shape in = lp_node_in_shape(n, 0);
    if (in.ndim != 3)
        return lp_node_fail(n, "expects a [C, H, W] input, got %d dimension%s", in.ndim,
                            in.ndim == 1 ? "" : "s");
    if (size[0] > in.dims[1] || size[1] > in.dims[2])
        return lp_node_fail_attr(n, "size", "window %dx%d is larger than the %dx%d input", size[0],
                                 size[1], in.dims[1], in.dims[2]);
    maxpool_state *st = lp_node_alloc_state(n, sizeof *st);
    if (!st) return LP_ERR_NOMEM;
    int fast = size[0] == 2 && size[1] == 2 && stride[0] == 2 && stride[1] == 2;
    *st = (maxpool_state){size[0], size[1], stride[0], stride[1], fast, {0}, {0}};
    lp_shape out = {3, {in.dims[0], (in.dims[1] - size[0]) / stride[0] + 1,
                        (in.dims[2] - size[1]) / stride[1] + 1}};
    size_t outs = (size_t)out.dims[0] * out.dims[1] * out.dims[2];
    if (fast && POOL_AVX512) {
        plan_groups(&st->group, in.dims[2], out.dims[2]);
        plan_small(&st->small, in.dims[1], in.dims[2], out.dims[1], out.dims[2]);
    }
    /* a plane to normalize into (lp_node_input_applied), then the argmax */
    lp_node_set_scratch(n, outs * (fast ? 1 : sizeof(int32_t)), plane_bytes(in.dims[1], in.dims[2]));
    return lp_node_set_out_shape(n, out);
}

/* v replaces the running max m: larger, or a NaN over a number (first max wins ties). */
static inline int takes_over(float v, float m) { return v > m || (v != v && m == m); }

/* ---- 2x2 stride 2 --------------------------------------------------------- */

/* Window (r0[2o], r0[2o+1], r1[2o], r1[2o+1]) -> max and its position 0..3, with
 * the general path's rules: strict > keeps the first maximum, a NaN wins once. */
static inline float max4(const float *r0, const float *r1, int o, uint8_t *arg, int relu)
{
    float v[4] = {r0[2 * o], r0[2 * o + 1], r1[2 * o], r1[2 * o + 1]};
    if (relu)
        for (int k = 0; k < 4; k++) v[k] = v[k] > 0.0f ? v[k] : 0.0f;
    float m = v[0];
    uint8_t a = 0;
    for (uint8_t k = 1; k < 4; k++)
        if (takes_over(v[k], m)) { m = v[k]; a = k; }
    *arg = relu && !(m > 0.0f) ? 4 : a; /* 4: the ReLU passes no gradient */
    return m;
}

#if POOL_AVX512
/* Even / odd lanes of the 32 floats lo:hi. */
static inline __m512 evens(__m512 lo, __m512 hi)
{
    const __m512i idx = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    return _mm512_permutex2var_ps(lo, idx, hi);
}
static inline __m512 odds(__m512 lo, __m512 hi)
{
    const __m512i idx = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    return _mm512_permutex2var_ps(lo, idx, hi);
}

/* m, a <- v, k where v beats m (v > m, or v is the first NaN). */
static inline void take(__m512 *m, __m512i *a, __m512 v, int k)
{
    __mmask16 t = _mm512_cmp_ps_mask(v, *m, _CMP_GT_OQ) |
                  (_mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q) & _mm512_cmp_ps_mask(*m, *m, _CMP_ORD_Q));
    *m = _mm512_mask_mov_ps(*m, t, v);
    *a = _mm512_mask_mov_epi32(*a, t, _mm512_set1_epi32(k));
}
#endif

#if POOL_AVX512
/* The windows (v0, v1 | v2, v3) -> their max, and in *at each one's position 0..3 as
 * a byte. relu: the input is max(x, 0) (a ReLU folded in, see lp_node_input_relu),
 * applied here exactly as a separate ReLU would (NaN -> 0); a window whose max is
 * not positive gets position 4, which backward matches with no input.
 * Inlined with relu a constant: each caller gets its own loop without the branch. */
static inline __attribute__((always_inline)) __m512 window_max(__m512 v0, __m512 v1, __m512 v2,
                                                               __m512 v3, int relu, __m128i *at)
{
    const __m512 zero = _mm512_setzero_ps();
    if (relu) { /* max(v, +0) returns +0 for NaN and -0 too: exactly v > 0 ? v : 0 */
        v0 = _mm512_max_ps(v0, zero);
        v1 = _mm512_max_ps(v1, zero);
        v2 = _mm512_max_ps(v2, zero);
        v3 = _mm512_max_ps(v3, zero);
    } else if (_mm512_cmp_ps_mask(v0, v1, _CMP_UNORD_Q) | _mm512_cmp_ps_mask(v2, v3, _CMP_UNORD_Q)) {
        __m512 best = v0;
        __m512i at32 = _mm512_setzero_si512();
        take(&best, &at32, v1, 1);
        take(&best, &at32, v2, 2);
        take(&best, &at32, v3, 3);
        *at = _mm512_cvtepi32_epi8(at32);
        return best;
    }
    /* No NaN: each row's winner (the right one only if larger), then the bottom's
     * only if larger: the first maximum in row-major order; the masks give the
     * position bits. Blends, so the element itself comes out (-0 stays -0); after
     * the ReLU there is no -0, and max does not wait for the compares (a shorter
     * chain per vector: measured, the latency limited the row loop). */
    const __mmask16 right_top = _mm512_cmp_ps_mask(v1, v0, _CMP_GT_OQ),
                    right_bottom = _mm512_cmp_ps_mask(v3, v2, _CMP_GT_OQ);
    const __m512 top = relu ? _mm512_max_ps(v0, v1) : _mm512_mask_blend_ps(right_top, v0, v1),
                 bottom = relu ? _mm512_max_ps(v2, v3) : _mm512_mask_blend_ps(right_bottom, v2, v3);
    const __mmask16 lower = _mm512_cmp_ps_mask(bottom, top, _CMP_GT_OQ);
    const __m512 best = relu ? _mm512_max_ps(top, bottom) : _mm512_mask_blend_ps(lower, top, bottom);
    const __m128i pos_bottom = _mm_mask_blend_epi8(right_bottom, _mm_set1_epi8(2), _mm_set1_epi8(3));
    *at = _mm_mask_blend_epi8(lower, _mm_maskz_mov_epi8(right_top, _mm_set1_epi8(1)), pos_bottom);
    if (relu) *at = _mm_mask_mov_epi8(*at, _mm512_cmp_ps_mask(best, zero, _CMP_EQ_OQ), _mm_set1_epi8(4));
    return best;
}

/* y, arg <- the windows under mask m. The arg bytes are stored from a register:
 * vpmovdb straight to memory is slow on Zen 4 (measured: it was the top
 * instruction of the whole forward). */
static inline void store_windows(float *y, uint8_t *arg, __mmask16 m, __m512 best, __m128i at)
{
    _mm512_mask_storeu_ps(y, m, best);
    _mm_mask_storeu_epi8(arg, m, at);
}

/* The masks of a group of `rows` output rows (see pool2_group_plan): its inputs'
 * two 16-float pieces from the group's first row, and its outputs. */
static inline void group_masks(int W, int OW, int rows, __mmask16 *mlo, __mmask16 *mhi, __mmask16 *mout)
{
    const int span = 2 * W * (rows - 1) + 2 * OW;
    *mlo = first_lanes(span);
    *mhi = first_lanes(span - 16);
    *mout = first_lanes(rows * OW);
}

/* One plane by groups of output rows; masks and tables hoisted, recomputed only for
 * a short last group. */
static inline __attribute__((always_inline)) void pool2_plane_groups(const pool2_group_plan *g, const float *x,
                                                                     int W, int OH, int OW, float *y,
                                                                     uint8_t *arg, int relu)
{
    const __m512i left = _mm512_loadu_si512(g->left), right = _mm512_add_epi32(left, _mm512_set1_epi32(1));
    int rows = g->rows;
    __mmask16 mlo, mhi, mout;
    group_masks(W, OW, rows, &mlo, &mhi, &mout);
    for (int oy = 0; oy < OH; oy += rows) {
        if (OH - oy < rows) group_masks(W, OW, rows = OH - oy, &mlo, &mhi, &mout);
        const float *top = x + 2L * oy * W, *bottom = top + W;
        __m512 a0 = _mm512_maskz_loadu_ps(mlo, top), a1 = _mm512_maskz_loadu_ps(mhi, top + 16);
        __m512 b0 = _mm512_maskz_loadu_ps(mlo, bottom), b1 = _mm512_maskz_loadu_ps(mhi, bottom + 16);
        __m128i at;
        __m512 best = window_max(_mm512_permutex2var_ps(a0, left, a1), _mm512_permutex2var_ps(a0, right, a1),
                                 _mm512_permutex2var_ps(b0, left, b1), _mm512_permutex2var_ps(b0, right, b1),
                                 relu, &at);
        store_windows(y + oy * OW, arg + oy * OW, mout, best, at);
    }
}

/* Backward of a small plane (see pool2_small_plan): the gradients g of its outs
 * outputs -> all its inputs d (the gradient, or 0). */
static inline __attribute__((always_inline)) void unpool2_small(const pool2_small_plan *sp, const float *g,
                                                                const uint8_t *arg, float *d, int outs, int acc)
{
    const __mmask16 mlo = first_lanes(outs), mhi = first_lanes(outs - 16);
    const __m512 g0 = _mm512_maskz_loadu_ps(mlo, g), g1 = _mm512_maskz_loadu_ps(mhi, g + 16);
    const __m512i a0 = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(mlo, arg));
    const __m512i a1 = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(mhi, arg + 16));
    for (int c = 0; c < sp->chunks; c++) {
        const __mmask16 used = sp->used[c];
        const __m512i lane = _mm512_loadu_si512(sp->lane[c]);
        const __mmask16 hit = _mm512_cmpeq_epi32_mask(_mm512_permutex2var_epi32(a0, lane, a1),
                                                      _mm512_loadu_si512(sp->pos[c]));
        __m512 v = _mm512_maskz_permutex2var_ps(hit, g0, lane, g1);
        if (acc) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(used, d + 16 * c));
        _mm512_mask_storeu_ps(d + 16 * c, used, v);
    }
}
#endif

/* One plane, an output row at a time (relu: see window_max). With AVX-512, 16
 * columns of every row, then the next 16: the masks are the same down a plane. */
static inline __attribute__((always_inline)) void pool2_plane_rows(const float *x, int W, int OH, int OW,
                                                                   float *y, uint8_t *arg, int relu)
{
    int o = 0;
#if POOL_AVX512
    for (; o < OW; o += 16) {
        const int cols = OW - o < 16 ? OW - o : 16;
        const __mmask16 mlo = first_lanes(2 * cols), mhi = first_lanes(2 * cols - 16), mout = first_lanes(cols);
        for (int oy = 0; oy < OH; oy++) {
            const float *r0 = x + 2L * oy * W + 2 * o, *r1 = r0 + W;
            __m512 a0 = _mm512_maskz_loadu_ps(mlo, r0), a1 = _mm512_maskz_loadu_ps(mhi, r0 + 16);
            __m512 b0 = _mm512_maskz_loadu_ps(mlo, r1), b1 = _mm512_maskz_loadu_ps(mhi, r1 + 16);
            __m128i at;
            __m512 best = window_max(evens(a0, a1), odds(a0, a1), evens(b0, b1), odds(b0, b1), relu, &at);
            store_windows(y + oy * OW + o, arg + oy * OW + o, mout, best, at);
        }
    }
#endif
    for (int oy = 0; oy < OH; oy++)
        for (int ox = o; ox < OW; ox++) {
            const float *r0 = x + 2L * oy * W;
            y[oy * OW + ox] = max4(r0, r0 + W, ox, &arg[oy * OW + ox], relu);
        }
}

#if POOL_AVX512
/* The first input row of output row oy + 1 (oy updated), from that of oy: two rows
 * down, past the dropped row at the end of a plane. */
static inline const float *next_top(const float *top, int *oy, int H, int W, int OH)
{
    if (++*oy < OH) return top + 2 * W;
    *oy = 0;
    return top + (2 + H - 2 * OH) * W;
}

/* Output rows [from, to) of the whole batch (one run: [N, C, OH] rows of OW), two a
 * vector, each loading its own inputs: a pair may span two planes. Used whenever two
 * rows share a vector: with an odd OH (conv2's 11 x 11: 5 rows), groups within a
 * plane would leave every third vector a third full. */
static inline __attribute__((always_inline)) void pool2_row_pairs(const float *x, long from, long to, int H, int W,
                                                                  int OH, int OW, float *y, uint8_t *arg, int relu)
{
    /* lanes 0..OW-1: the first row's windows (in the first source), then the second's */
    int32_t pick[16] = {0};
    for (int j = 0; j < 2 * OW; j++) pick[j] = j < OW ? 2 * j : 16 + 2 * (j - OW);
    const __m512i left = _mm512_loadu_si512(pick), right = _mm512_add_epi32(left, _mm512_set1_epi32(1));
    const __mmask16 in_row = first_lanes(2 * OW);
    int oy = (int)(from % OH);
    const float *top = x + from / OH * H * W + 2L * oy * W;
    for (long k = from; k < to; k += 2) {
        const float *t0 = top, *t1 = t0; /* a last row alone pairs with itself */
        if (k + 1 < to) t1 = top = next_top(top, &oy, H, W, OH);
        if (k + 2 < to) top = next_top(top, &oy, H, W, OH); /* never past the batch */
        __m512 a0 = _mm512_maskz_loadu_ps(in_row, t0), a1 = _mm512_maskz_loadu_ps(in_row, t1);
        __m512 b0 = _mm512_maskz_loadu_ps(in_row, t0 + W), b1 = _mm512_maskz_loadu_ps(in_row, t1 + W);
        __m128i at;
        __m512 best = window_max(_mm512_permutex2var_ps(a0, left, a1), _mm512_permutex2var_ps(a0, right, a1),
                                 _mm512_permutex2var_ps(b0, left, b1), _mm512_permutex2var_ps(b0, right, b1),
                                 relu, &at);
        store_windows(y + k * OW, arg + k * OW, first_lanes((k + 1 < to ? 2 : 1) * OW), best, at);
    }
}
#endif

static inline __attribute__((always_inline)) void pool2_plane(const pool2_group_plan *g, const float *x, int W,
                                                              int OH, int OW, float *y, uint8_t *arg, int relu)
{
#if POOL_AVX512
    if (g->rows) { pool2_plane_groups(g, x, W, OH, OW, y, arg, relu); return; }
#endif
    pool2_plane_rows(x, W, OH, OW, y, arg, relu);
}

#if POOL_AVX512
/* row[0..32) (+)= lo:hi under the masks of the row's two halves. */
static inline void unpool2_store(float *row, __m512 lo, __m512 hi, __mmask16 mlo, __mmask16 mhi, int acc)
{
    if (acc) {
        lo = _mm512_add_ps(lo, _mm512_maskz_loadu_ps(mlo, row));
        hi = _mm512_add_ps(hi, _mm512_maskz_loadu_ps(mhi, row + 16));
    }
    _mm512_mask_storeu_ps(row, mlo, lo);
    _mm512_mask_storeu_ps(row + 16, mhi, hi);
}
#endif

/* Backward of a plane, an output row at a time: the gradients g of its OH x OW
 * outputs -> the inputs of their windows in d (the gradient, or 0). */
static inline __attribute__((always_inline)) void unpool2_plane_rows(const float *g, const uint8_t *arg, float *d,
                                                                     int W, int OH, int OW, int acc)
{
    int o = 0;
#if POOL_AVX512
    const __m512i ilo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i ihi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    for (; o < OW; o += 16) {
        const int cols = OW - o < 16 ? OW - o : 16;
        const __mmask16 m = first_lanes(cols), mlo = first_lanes(2 * cols), mhi = first_lanes(2 * cols - 16);
        for (int oy = 0; oy < OH; oy++) {
            float *d0 = d + 2L * oy * W + 2 * o, *d1 = d0 + W;
            __m512 gv = _mm512_maskz_loadu_ps(m, g + oy * OW + o);
            __m128i a = _mm_maskz_loadu_epi8(m, arg + oy * OW + o);
            /* Named vectors, not an array: gcc keeps an array indexed in a loop on the
             * stack (measured: half of this function's time in spills). */
            __m512 v0 = _mm512_maskz_mov_ps(_mm_cmpeq_epi8_mask(a, _mm_setzero_si128()), gv);
            __m512 v1 = _mm512_maskz_mov_ps(_mm_cmpeq_epi8_mask(a, _mm_set1_epi8(1)), gv);
            __m512 v2 = _mm512_maskz_mov_ps(_mm_cmpeq_epi8_mask(a, _mm_set1_epi8(2)), gv);
            __m512 v3 = _mm512_maskz_mov_ps(_mm_cmpeq_epi8_mask(a, _mm_set1_epi8(3)), gv);
            unpool2_store(d0, _mm512_permutex2var_ps(v0, ilo, v1), _mm512_permutex2var_ps(v0, ihi, v1), mlo, mhi, acc);
            unpool2_store(d1, _mm512_permutex2var_ps(v2, ilo, v3), _mm512_permutex2var_ps(v2, ihi, v3), mlo, mhi, acc);
        }
    }
#endif
    for (int oy = 0; oy < OH; oy++)
        for (int ox = o; ox < OW; ox++)
            for (int k = 0; k < 4; k++) {
                float *dk = d + (2L * oy + k / 2) * W + 2 * ox + (k & 1);
                lp_grad_put(dk, acc, arg[oy * OW + ox] == k ? g[oy * OW + ox] : 0.0f);
            }
}

/* Backward of a plane: every input written (the gradient, or 0) unless acc. */
static inline __attribute__((always_inline)) void unpool2_plane(const pool2_small_plan *sp, const float *g,
                                                                const uint8_t *arg, float *d, int H, int W,
                                                                int OH, int OW, int acc)
{
#if POOL_AVX512
    if (sp->chunks) { unpool2_small(sp, g, arg, d, OH * OW, acc); return; }
#endif
    unpool2_plane_rows(g, arg, d, W, OH, OW, acc);
    if (!acc && W > 2 * OW) /* the dropped column */
        for (int y = 0; y < 2 * OH; y++) d[(long)y * W + W - 1] = 0.0f;
    if (!acc && H > 2 * OH) memset(d + (long)2 * OH * W, 0, (size_t)W * sizeof(float));
}

static void pool2_forward(lp_node *n, long planes, int H, int W, int OH, int OW)
{
    const pool2_group_plan *g = &((const maxpool_state *)lp_node_state(n))->group;
    const int relu = lp_node_input_relu(n);
    const float *x = lp_node_in(n, 0); /* [N, C, H, W] */
    float *y = lp_node_out(n);         /* [N, C, OH, OW] */
    uint8_t *arg = arg_of(n); /* [N, C, OH, OW]: 0..3 in the window, 4: none */
    const int threads = lp_node_threads(n) > 1 && planes * OH * OW >= POOL_PARALLEL_MIN ? lp_node_threads(n) : 1;
#if POOL_AVX512
    if (g->rows == 2) {
        const long pairs = (planes * OH + 1) / 2;
#pragma omp parallel num_threads(threads) if (threads > 1)
        {
            int nt;
            long p0, p1;
            lp_thread_share(pairs, &nt, &p0, &p1);
            const long from = 2 * p0, end = 2 * p1 < planes * OH ? 2 * p1 : planes * OH;
            if (relu) pool2_row_pairs(x, from, end, H, W, OH, OW, y, arg, 1); /* two copies, relu a constant */
            else pool2_row_pairs(x, from, end, H, W, OH, OW, y, arg, 0);
        }
        return;
    }
#endif
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (long p = 0; p < planes; p++) {
        const float *xp = x + p * H * W;
        const long o = p * OH * OW;
        if (relu) pool2_plane(g, xp, W, OH, OW, y + o, arg + o, 1); /* two copies, relu a constant */
        else pool2_plane(g, xp, W, OH, OW, y + o, arg + o, 0);
    }
}

static void pool2_backward(lp_node *n, float *dx, long planes, int H, int W, int OH, int OW)
{
    const pool2_small_plan *sp = &((const maxpool_state *)lp_node_state(n))->small;
    const int acc = lp_node_in_grad_accumulate(n, 0);
    const float *dy = lp_node_out_grad(n);
    const uint8_t *arg = arg_of(n);
#pragma omp parallel for schedule(static) num_threads(lp_node_threads(n)) if (lp_node_threads(n) > 1 && planes * OH * OW >= POOL_PARALLEL_MIN)
    for (long p = 0; p < planes; p++) {
        const long o = p * OH * OW;
        float *dxp = dx + p * H * W;
        if (acc) unpool2_plane(sp, dy + o, arg + o, dxp, H, W, OH, OW, 1); /* two copies, acc a constant */
        else unpool2_plane(sp, dy + o, arg + o, dxp, H, W, OH, OW, 0);
    }
}

/* Any window: one plane, arg the max's index in it (-1: none after a folded ReLU). */
static void pool_plane(const maxpool_state *st, const float *xp, int W, int OH, int OW, float *yp, int32_t *ap,
                       int relu)
{
    const int kh = st->kh, kw = st->kw, sh = st->sh, sw = st->sw;
    for (int oy = 0; oy < OH; oy++)
        for (int ox = 0; ox < OW; ox++) {
            int best = oy * sh * W + ox * sw;
            float m = xp[best];
            if (relu) m = m > 0.0f ? m : 0.0f;
            for (int ky = 0; ky < kh; ky++) {
                const int row = (oy * sh + ky) * W + ox * sw;
                for (int kx = 0; kx < kw; kx++) {
                    float v = xp[row + kx];
                    if (relu) v = v > 0.0f ? v : 0.0f;
                    if (takes_over(v, m)) { m = v; best = row + kx; }
                }
            }
            yp[oy * OW + ox] = m;
            ap[oy * OW + ox] = relu && !(m > 0.0f) ? -1 : best;
        }
}

/* ---- max-pool applying the batch norm before it (lp_node_input_applied) ------
 *
 * Batch norm's output is y = (x - mean) * scale + shift per channel, never written.
 * When no scale is negative (lp_batch_norm_monotone) that keeps the order within a
 * channel, so a window's max of y is the normalized window max of x: the windows
 * are taken on x itself, each window's max of x is kept (in batch norm's output
 * buffer, which is otherwise unused), and only those maxima are normalized (and
 * ReLU'd). In training, the same pass sums each plane of x, while it is in L1, for
 * batch norm's statistics: x is read once forward. Backward, batch norm's sums (of
 * dy and of dy * (x - mean), dy nonzero only at the windows' maxima) come from the
 * pooled gradients and the kept maxima, and one pass over x writes its gradient.
 * Same values as batch norm then max-pool, except which of two inputs that
 * normalize to the same float takes the gradient; the gradient sums go in another
 * order (tests/test_batch_norm.c compares with LOUPE_NO_FOLD=1). With a negative
 * scale, batch norm computes its statistics itself and blocks of x are normalized
 * into the scratch, then pooled; the maxima of x are kept for backward all the same.
 * One thread: the block is shared (lanes run ops on one thread anyway). */

/* The windows of count contiguous planes src -> y and arg (relu: see window_max). */
static void pool_block(const maxpool_state *st, const float *src, long count, int H, int W, int OH, int OW,
                       float *y, void *arg, int relu)
{
    const long HW = (long)H * W, OHW = (long)OH * OW;
    if (!st->fast) {
        for (long q = 0; q < count; q++)
            pool_plane(st, src + q * HW, W, OH, OW, y + q * OHW, (int32_t *)arg + q * OHW, relu);
        return;
    }
#if POOL_AVX512
    if (st->group.rows == 2) { /* the block's rows, in pairs (which may span planes) */
        if (relu) pool2_row_pairs(src, 0, count * OH, H, W, OH, OW, y, arg, 1);
        else pool2_row_pairs(src, 0, count * OH, H, W, OH, OW, y, arg, 0);
        return;
    }
#endif
    for (long q = 0; q < count; q++) {
        uint8_t *a = (uint8_t *)arg + q * OHW;
        if (relu) pool2_plane(&st->group, src + q * HW, W, OH, OW, y + q * OHW, a, 1);
        else pool2_plane(&st->group, src + q * HW, W, OH, OW, y + q * OHW, a, 0);
    }
}

/* xm = x at each window's maximum (0 where the ReLU passes nothing), count planes. */
static void keep_maxima(const maxpool_state *st, const float *x, long count, int H, int W, int OH, int OW,
                        const void *arg, float *xm)
{
    const long HW = (long)H * W, OHW = (long)OH * OW;
    for (long q = 0; q < count; q++) {
        const float *xp = x + q * HW;
        float *mp = xm + q * OHW;
        if (!st->fast) {
            const int32_t *ap = (const int32_t *)arg + q * OHW;
            for (long o = 0; o < OHW; o++) mp[o] = ap[o] >= 0 ? xp[ap[o]] : 0.0f;
            continue;
        }
        const uint8_t *ap = (const uint8_t *)arg + q * OHW;
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                const int a = ap[oy * OW + ox];
                mp[oy * OW + ox] = a < 4 ? xp[(2 * oy + (a >> 1)) * W + 2 * ox + (a & 1)] : 0.0f;
            }
    }
}

/* y = the normalized maxima xm of each plane, then (relu) max(y, 0), a window with
 * nothing positive passing no gradient (arg 4 or -1), as window_max does. */
static void normalize_maxima(const maxpool_state *st, const float *xm, float *y, void *arg, long planes, int C,
                             long OHW, int relu, const float *mean, const float *scale, const float *shift)
{
    for (long p = 0; p < planes; p++) {
        const int c = (int)(p % C);
        float *yp = y + p * OHW;
#if POOL_AVX512 /* one masked pass: GCC leaves the byte stores scalar, and OHW is short */
        if (st->fast && relu) {
            uint8_t *ap = (uint8_t *)arg + p * OHW;
            const __m512 km = _mm512_set1_ps(mean[c]), ks = _mm512_set1_ps(scale[c]), kt = _mm512_set1_ps(shift[c]);
            for (long o = 0; o < OHW; o += 16) {
                const __mmask16 in = first_lanes((int)(OHW - o < 16 ? OHW - o : 16));
                /* lp_batch_norm_row's expression: the same bits */
                const __m512 v = _mm512_add_ps(
                    _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(in, xm + p * OHW + o), km), ks), kt);
                const __mmask16 on = _mm512_mask_cmp_ps_mask(in, v, _mm512_setzero_ps(), _CMP_GT_OQ);
                _mm512_mask_storeu_ps(yp + o, in, _mm512_maskz_mov_ps(on, v));
                _mm_mask_storeu_epi8(ap + o, in & (__mmask16)~on, _mm_set1_epi8(4));
            }
            continue;
        }
#endif
        lp_batch_norm_row(xm + p * OHW, yp, OHW, mean[c], scale[c], shift[c]);
        if (!relu) continue;
        if (st->fast) {
            uint8_t *ap = (uint8_t *)arg + p * OHW;
            for (long o = 0; o < OHW; o++)
                if (!(yp[o] > 0.0f)) { yp[o] = 0.0f; ap[o] = 4; }
        } else {
            int32_t *ap = (int32_t *)arg + p * OHW;
            for (long o = 0; o < OHW; o++)
                if (!(yp[o] > 0.0f)) { yp[o] = 0.0f; ap[o] = -1; }
        }
    }
}

static void pool_applied(lp_node *n, lp_node *bn, long planes, int C, int H, int W, int OH, int OW)
{
    const maxpool_state *st = lp_node_state(n);
    const int relu = lp_node_input_relu(n), training = lp_node_training(bn);
    const float *x = lp_node_in(bn, 0), *mean, *scale, *shift;
    float *y = lp_node_out(n), *xm = lp_node_out(bn);
    char *arg = arg_of(n);
    const size_t arg_size = st->fast ? 1 : sizeof(int32_t);
    const long HW = (long)H * W, OHW = (long)OH * OW, per = block_planes(H, W);
    if (lp_batch_norm_monotone(bn)) {
        float *pivot = NULL;
        double *sums = training ? lp_batch_norm_stat_sums(bn, &pivot) : NULL;
        for (long p0 = 0; p0 < planes; p0 += per) {
            const long count = planes - p0 < per ? planes - p0 : per;
            for (long q = 0; sums && q < count; q++) {
                const long p = p0 + q;
                const int c = (int)(p % C);
                const float *xp = x + p * HW;
                if (p < C) pivot[c] = lp_batch_norm_pivot(xp, HW);
                lp_batch_norm_row_sums(xp, pivot[c], xp, pivot[c], HW, &sums[c], &sums[C + c]);
            }
            pool_block(st, x + p0 * HW, count, H, W, OH, OW, xm + p0 * OHW, arg + p0 * OHW * arg_size, 0);
        }
        if (sums) lp_batch_norm_stats_done(bn);
        lp_batch_norm_coefs(bn, &mean, &scale, &shift);
        normalize_maxima(st, xm, y, arg, planes, C, OHW, relu, mean, scale, shift);
        return;
    }
    if (training) lp_batch_norm_stats(bn);
    lp_batch_norm_coefs(bn, &mean, &scale, &shift);
    float *block = plane_of(n);
    for (long p0 = 0; p0 < planes; p0 += per) {
        const long count = planes - p0 < per ? planes - p0 : per;
        for (long q = 0; q < count; q++) {
            const int c = (int)((p0 + q) % C);
            lp_batch_norm_row(x + (p0 + q) * HW, block + q * HW, HW, mean[c], scale[c], shift[c]);
        }
        void *a = arg + p0 * OHW * arg_size;
        pool_block(st, block, count, H, W, OH, OW, y + p0 * OHW, a, relu);
        keep_maxima(st, x + p0 * HW, count, H, W, OH, OW, a, xm + p0 * OHW);
    }
}

static void maxpool_forward(lp_node *n)
{
    const maxpool_state *st = lp_node_state(n);
    lp_shape in = lp_node_in_shape(n, 0), out = lp_node_out_shape(n);
    const int H = in.dims[1], W = in.dims[2], OH = out.dims[1], OW = out.dims[2];
    const long planes = (long)lp_node_batch(n) * in.dims[0];
    lp_node *bn = lp_node_input_applied(n);
    if (bn) { pool_applied(n, bn, planes, in.dims[0], H, W, OH, OW); return; }
    if (st->fast) { pool2_forward(n, planes, H, W, OH, OW); return; }
    const float *x = lp_node_in(n, 0); /* [N, C, H, W] */
    float *y = lp_node_out(n);         /* [N, C, OH, OW] */
    int32_t *arg = arg_of(n); /* [N, C, OH, OW]: index into the H x W plane, -1: none */
    const int relu = lp_node_input_relu(n); /* see window_max */
#pragma omp parallel for schedule(static) num_threads(lp_node_threads(n)) if (lp_node_threads(n) > 1 && planes * OH * OW >= POOL_PARALLEL_MIN)
    for (long p = 0; p < planes; p++)
        pool_plane(st, x + p * H * W, W, OH, OW, y + p * OH * OW, arg + p * OH * OW, relu);
}

/* dy of a block of count planes (all their inputs written: the gradient or 0) from
 * the outputs' gradients g and the argmax. */
static void unpool_block(const maxpool_state *st, const float *g, const void *arg, float *block, long count,
                         int H, int W, int OH, int OW)
{
    const long HW = (long)H * W, OHW = (long)OH * OW;
    for (long q = 0; q < count; q++) {
        float *d = block + q * HW;
        if (st->fast) {
            unpool2_plane(&st->small, g + q * OHW, (const uint8_t *)arg + q * OHW, d, H, W, OH, OW, 0);
            continue;
        }
        const int32_t *ap = (const int32_t *)arg + q * OHW;
        memset(d, 0, (size_t)HW * sizeof(float));
        for (long o = 0; o < OHW; o++)
            if (ap[o] >= 0) d[ap[o]] += g[q * OHW + o];
    }
}

/* Backward of max-pool and of the batch norm it applied (see above): batch norm's
 * sums from the pooled gradients g and the maxima xm kept forward, sample by sample
 * (dy is g at each window's maximum, 0 elsewhere); then blocks of dy are rebuilt in
 * the scratch (in L1) from g and the argmax for one pass over x writing its gradient. */
static void unpool_applied(lp_node *n, lp_node *bn, long planes, int C, int H, int W, int OH, int OW)
{
    const maxpool_state *st = lp_node_state(n);
    const float *g = lp_node_out_grad(n), *x = lp_node_in(bn, 0), *xm = lp_node_out(bn), *mean, *ka, *kb, *kc;
    const char *arg = arg_of(n);
    const size_t arg_size = st->fast ? 1 : sizeof(int32_t);
    double *sums = lp_batch_norm_grad_sums(bn, &mean);
    const long HW = (long)H * W, OHW = (long)OH * OW, per = block_planes(H, W);
    for (long p = 0; p < planes; p++) {
        const int c = (int)(p % C);
        const float *gp = g + p * OHW, *mp = xm + p * OHW, km = mean[c];
        float r1[16] = {0}, r2[16] = {0}; /* lanes of our own: see lp_batch_norm_row_sums */
        if (st->fast) {
            const uint8_t *ap = (const uint8_t *)arg + p * OHW;
#if POOL_AVX512 /* GCC leaves the byte test scalar */
            __m512 v1 = _mm512_setzero_ps(), v2 = _mm512_setzero_ps();
            const __m512 kmv = _mm512_set1_ps(km);
            for (long o = 0; o < OHW; o += 16) {
                const __mmask16 in = first_lanes((int)(OHW - o < 16 ? OHW - o : 16));
                const __mmask16 on = _mm_mask_cmplt_epu8_mask(in, _mm_maskz_loadu_epi8(in, ap + o), _mm_set1_epi8(4));
                const __m512 u = _mm512_maskz_loadu_ps(on, gp + o);
                v1 = _mm512_add_ps(v1, u);
                v2 = _mm512_add_ps(v2, _mm512_mul_ps(u, _mm512_sub_ps(_mm512_maskz_loadu_ps(on, mp + o), kmv)));
            }
            r1[0] = _mm512_reduce_add_ps(v1);
            r2[0] = _mm512_reduce_add_ps(v2);
#else
            for (long o = 0; o < OHW; o++) {
                const float u = ap[o] < 4 ? gp[o] : 0.0f;
                r1[o % 16] += u;
                r2[o % 16] += u * (mp[o] - km);
            }
#endif
        } else {
            const int32_t *ap = (const int32_t *)arg + p * OHW;
            for (long o = 0; o < OHW; o++)
                if (ap[o] >= 0) {
                    r1[o % 16] += gp[o];
                    r2[o % 16] += gp[o] * (mp[o] - km);
                }
        }
#if POOL_AVX512
        if (!st->fast)
#endif
            for (int w = 8; w > 0; w /= 2) /* a tree: 4 dependent steps, not 15 */
                for (int j = 0; j < w; j++) {
                    r1[j] += r1[j + w];
                    r2[j] += r2[j + w];
                }
        sums[c] += r1[0];
        sums[C + c] += r2[0];
    }
    if (!lp_batch_norm_sums_done(bn, &ka, &kb, &kc)) return;
    float *dx = lp_node_in_grad(bn, 0), *block = plane_of(n);
    const int acc = lp_node_in_grad_accumulate(bn, 0);
    for (long p0 = 0; p0 < planes; p0 += per) {
        const long count = planes - p0 < per ? planes - p0 : per;
        unpool_block(st, g + p0 * OHW, arg + p0 * OHW * arg_size, block, count, H, W, OH, OW);
        for (long q = 0; q < count; q++) {
            const long p = p0 + q;
            const int c = (int)(p % C);
            lp_batch_norm_row_grad(block + q * HW, x + p * HW, dx + p * HW, HW, acc, mean[c], ka[c], kb[c], kc[c]);
        }
    }
}

static void maxpool_backward(lp_node *n)
{
    lp_shape in = lp_node_in_shape(n, 0), out = lp_node_out_shape(n);
    const long HW = (long)in.dims[1] * in.dims[2], OHW = (long)out.dims[1] * out.dims[2];
    const long planes = (long)lp_node_batch(n) * in.dims[0];
    lp_node *bn = lp_node_input_applied(n);
    if (bn) {
        unpool_applied(n, bn, planes, in.dims[0], in.dims[1], in.dims[2], out.dims[1], out.dims[2]);
        return;
    }
    float *dx = lp_node_in_grad(n, 0);
    if (!dx) return;
    const maxpool_state *st = lp_node_state(n);
    if (st->fast) {
        pool2_backward(n, dx, planes, in.dims[1], in.dims[2], out.dims[1], out.dims[2]);
        return;
    }
    const int acc = lp_node_in_grad_accumulate(n, 0);
    const float *dy = lp_node_out_grad(n);
    const int32_t *arg = arg_of(n);
#pragma omp parallel for schedule(static) num_threads(lp_node_threads(n)) if (lp_node_threads(n) > 1 && planes * OHW >= POOL_PARALLEL_MIN)
    for (long p = 0; p < planes; p++) {
        float *dxp = dx + p * HW;
        /* Overlapping windows (stride < size) may share a maximum: always add, after
         * clearing the plane when the graph asked us to write. */
        if (!acc) memset(dxp, 0, (size_t)HW * sizeof(float));
        const float *dyp = dy + p * OHW;
        const int32_t *ap = arg + p * OHW;
        for (long o = 0; o < OHW; o++)
            if (ap[o] >= 0) dxp[ap[o]] += dyp[o];
    }
}

static const lp_attr_doc maxpool_attrs[] = {
    {"size", "int or [h, w]", NULL, "window size"},
    {"stride", "int or [h, w]", "size", "step between windows"},
    {NULL, NULL, NULL, NULL},
};

const lp_op lp_op_maxpool = {
    LP_OP_HEADER,
    .name = "maxpool",
    .summary = "max over windows per channel, floor output size: [C, H, W] -> [C, OH, OW]",
    .min_inputs = 1,
    .max_inputs = 1,
    .attrs = maxpool_attrs,
    .setup = maxpool_setup,
    .forward = maxpool_forward,
    .backward = maxpool_backward,
};
