/* conv2d_winograd.c - Winograd F(4x4, 3x3) for conv2d (3x3, stride 1, AVX-512).
 *
 * Outputs in tiles of 4x4 (OH x OW -> ceil(OH/4) x ceil(OW/4) tiles over a zero-padded
 * output), each from a 6x6 input tile d (stride 4, overlapping), with
 *   V = B^T d B,  U = G g G^T,  M = U (.) V summed over channels,  Y = A^T M A
 * so the 36 points of a tile cost one multiply-add per (channel, filter) instead of
 * the direct 144 per 4x4 outputs: 4x fewer (F(2x2, 3x3): 2.25x; on MNIST's conv2,
 * 11x11 -> 9 tiles of 36 points against 36 of 16, and the whole conv 25-30% less CPU
 * time). The price is precision: the transforms' larger coefficients (up to 8) leave
 * errors of a few 1e-6 relative to the largest output, against under 1e-6 for
 * F(2x2, 3x3) (tests/test_kernels.c checks 1e-5). Backward in the same domain:
 *   dM = A dY A^T,  dU = sum over tiles and samples of V (.) dM,  dg = G^T dU G,
 *   dV = sum over filters of U (.) dM,  dd = B dV B^T added into dx (tiles overlap).
 *
 * Layouts (8-float vectors: on Zen 4 a 512-bit FMA is two 256-bit halves, so
 * 256-bit vectors cost nothing and fit 8 channels or 8 filters exactly):
 *   xt [C8/8][Hq][Wq8][8]  the padded input, channels of a group last (8x8 transposes)
 *   V  [TC][C8/8][36][8]   input transform of a chunk of tiles: a tile's 36 points
 *                          of 8 channels are 288 consecutive floats, so every offset
 *                          inside a tile is a constant (no address registers). Forward
 *                          writes a sample's chunks one after another into the node's
 *                          per-sample scratch, and backward reads them there for dU
 *                          (recomputing them cost 17% of the conv); dV has its own chunk
 *   M  [TC][F8/8][36][8]   products; in backward dM
 *   U  [36][C8][F8]    transformed weights (U^T [36][F8][C8] for dx)
 *   yt [F8/8][P][8]    outputs of a sample by filter groups of 8 (then transposed
 *                      to y [F][P]); in backward dY in the same layout
 * Each point's product is a small GEMM: [TC x C8] x [C8 x F8] with U's rows held in
 * registers and a tile's inputs broadcast (nn_*), or for dU the accumulators held
 * (tn_*). Channels and filters past C and F are zeros in every buffer, so the
 * kernels run over whole groups of 8 and the results past C and F are never stored.
 * A chunk is a few whole tile rows (about WINO_CHUNK = 12 tiles), so V and M stay
 * near L1.
 */
#include "conv2d_winograd.h"
#include "conv2d_simd.h"

#include <stdint.h>
#include <string.h>

int lp_wino_mode = -1; /* defined without AVX-512 too: tests set it */

#if CONV_WINOGRAD
#include <immintrin.h>

#define AI inline __attribute__((always_inline))

#define WINO_M 4         /* outputs per tile side */
#define WINO_NP LP_WINO_POINTS /* points of a tile: (WINO_M + 2)^2 */
#define WINO_TS (8 * WINO_NP) /* floats of a tile's group of 8 channels or filters */
#define WINO_Q5 (WINO_NP - WINO_M - 2) /* the first point of a tile's last row */

#ifndef WINO_CHUNK
#define WINO_CHUNK 12
#endif

static size_t round16(size_t n) { return (n + 15) / 16 * 16; }
static int round8(int n) { return (n + 7) / 8 * 8; }

int lp_wino_applies(int C, int F, int kh, int kw, int sh, int sw)
{
    if (lp_wino_mode == 0 || kh != 3 || kw != 3 || sh != 1 || sw != 1) return 0;
    if (lp_wino_mode == 1) return 1;
    /* Where it measured faster than the direct path (bench/convbench.c, batch 64, CPU
     * time; docs/performance.md): whole groups of 8 channels up to 24, and 4 to 16
     * filters. With fewer or odd channels (MNIST's conv1 has 1, C = 2..4, 9, 12) the
     * channel groups are mostly padding and it is up to 1.8x slower; with 32 filters
     * or 32 channels its forward is slower (buffers leave L1). Measured with
     * F(2x2, 3x3); F(4x4, 3x3) is 20-32% faster again on the shapes inside. */
    return C % 8 == 0 && C >= 8 && C <= 24 && F >= 4 && F <= 16;
}

void lp_wino_plan_init(lp_wino_plan *p, int C, int H, int W, int F, int pt, int pl, int OH, int OW)
{
    memset(p, 0, sizeof *p);
    p->C = C; p->H = H; p->W = W; p->F = F; p->pt = pt; p->pl = pl; p->OH = OH; p->OW = OW;
    p->P = OH * OW;
    p->TH = (OH + WINO_M - 1) / WINO_M;
    p->TW = (OW + WINO_M - 1) / WINO_M;
    p->Hq = WINO_M * p->TH + 2;
    int wq = WINO_M * p->TW + 2, wr = round8(W) + pl; /* dx's transposes read up to round8(W) + pl */
    p->Wq8 = round8(wq > wr ? wq : wr);
    p->C8 = round8(C);
    p->F8 = round8(F);
    /* chunks of whole tile rows, about WINO_CHUNK tiles each, as even as can be */
    int chunks = (p->TH * p->TW + WINO_CHUNK - 1) / WINO_CHUNK;
    chunks = chunks < 1 ? 1 : chunks > p->TH ? p->TH : chunks;
    p->rpc = (p->TH + chunks - 1) / chunks;
    p->TC = p->rpc * p->TW;
    p->u_size = round16((size_t)WINO_NP * p->C8 * p->F8);
    size_t xt = round16((size_t)p->Hq * p->Wq8 * p->C8);
    size_t v = round16((size_t)WINO_NP * p->TC * p->C8), m = round16((size_t)WINO_NP * p->TC * p->F8);
    size_t yt = round16((size_t)p->F8 * p->P);
    p->vs_size = round16((size_t)WINO_NP * p->TH * p->TW * p->C8);
    p->part_size = round16((size_t)WINO_NP * p->C8 * p->F8 + p->F8);
    p->xt_at = p->dxt_at = 0; /* forward's xt, backward's dxt */
    p->dv_at = xt;
    p->m_at = p->dv_at + v;
    p->yt_at = p->m_at + m;
    p->part_at = p->yt_at + yt;
    p->thread_size = p->part_at + p->part_size;
}

/* F(4x4, 3x3) over the points 0, 1, -1, 2, -2, infinity (Lavin and Gray):
 *   B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
 *   G   = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
 *   A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
 * Each 2-D transform is its 1-D one along a tile's rows, then along its columns. */

static AI __m256 vmul(float k, __m256 a) { return _mm256_mul_ps(_mm256_set1_ps(k), a); }
static AI __m256 vfma(float k, __m256 a, __m256 b) { return _mm256_fmadd_ps(_mm256_set1_ps(k), a, b); }

/* o = rows [3h, 3h + 3) of B^T d: the halves share no terms, and a 2-D transform
 * that keeps only half of its first pass in registers does not spill. */
static AI void bt_1d_half(const __m256 d[6], int h, __m256 o[3])
{
    if (h == 0) {
        __m256 a = vfma(-4.0f, d[2], d[4]), b = vfma(-4.0f, d[1], d[3]);
        o[0] = vfma(-5.0f, d[2], vfma(4.0f, d[0], d[4]));
        o[1] = _mm256_add_ps(a, b);
        o[2] = _mm256_sub_ps(a, b);
    } else {
        __m256 c = _mm256_sub_ps(d[4], d[2]), e = _mm256_sub_ps(d[3], d[1]);
        o[0] = vfma(2.0f, e, c);
        o[1] = vfma(-2.0f, e, c);
        o[2] = vfma(-5.0f, d[3], vfma(4.0f, d[1], d[5]));
    }
}

/* o = B^T d */
static AI void bt_1d(const __m256 d[6], __m256 o[6])
{
    bt_1d_half(d, 0, o);
    bt_1d_half(d, 1, o + 3);
}

/* o = rows h, h + 2, h + 4 of B z: the even rows take sums, the odd differences, so
 * the halves share no terms (as bt_1d_half). */
static AI void b_1d_half(const __m256 z[6], int h, __m256 o[3])
{
    if (h == 0) {
        __m256 s12 = _mm256_add_ps(z[1], z[2]), s34 = _mm256_add_ps(z[3], z[4]);
        o[0] = vmul(4.0f, z[0]);
        o[1] = _mm256_sub_ps(vfma(-4.0f, s12, vmul(-5.0f, z[0])), s34);
        o[2] = _mm256_add_ps(_mm256_add_ps(z[0], s12), s34);
    } else {
        __m256 d12 = _mm256_sub_ps(z[2], z[1]), d34 = _mm256_sub_ps(z[4], z[3]);
        o[0] = vfma(4.0f, _mm256_add_ps(d12, z[5]), _mm256_add_ps(d34, d34));
        o[1] = _mm256_sub_ps(vfma(-2.0f, d34, vmul(-5.0f, z[5])), d12);
        o[2] = z[5];
    }
}

/* o = B z (the transpose of bt_1d) */
static AI void b_1d(const __m256 z[6], __m256 o[6])
{
    __m256 e[3], d[3];
    b_1d_half(z, 0, e);
    b_1d_half(z, 1, d);
#pragma GCC unroll 3
    for (int j = 0; j < 3; j++) {
        o[2 * j] = e[j];
        o[2 * j + 1] = d[j];
    }
}

/* o = A^T m */
static AI void at_1d(const __m256 m[6], __m256 o[4])
{
    __m256 s12 = _mm256_add_ps(m[1], m[2]), d12 = _mm256_sub_ps(m[1], m[2]);
    __m256 s34 = _mm256_add_ps(m[3], m[4]), d34 = _mm256_sub_ps(m[3], m[4]);
    o[0] = _mm256_add_ps(_mm256_add_ps(m[0], s12), s34);
    o[1] = vfma(2.0f, d34, d12);
    o[2] = vfma(4.0f, s34, s12);
    o[3] = _mm256_add_ps(vfma(8.0f, d34, d12), m[5]);
}

/* rows h and h + 2 of A^T m (the even rows take the sums, the odd the differences) */
static AI void at_1d_half(const __m256 m[6], int h, __m256 o[2])
{
    __m256 o4[4];
    at_1d(m, o4); /* the other half's terms are dead code */
    o[0] = o4[h];
    o[1] = o4[h + 2];
}

/* o = A y (the transpose of at_1d) */
static AI void a_1d(const __m256 y[4], __m256 o[6])
{
    __m256 e = _mm256_add_ps(y[0], y[2]), od = _mm256_add_ps(y[1], y[3]);
    __m256 e4 = vfma(4.0f, y[2], y[0]), o4 = vmul(2.0f, vfma(4.0f, y[3], y[1]));
    o[0] = y[0];
    o[1] = _mm256_add_ps(e, od);
    o[2] = _mm256_sub_ps(e, od);
    o[3] = _mm256_add_ps(e4, o4);
    o[4] = _mm256_sub_ps(e4, o4);
    o[5] = y[3];
}

/* o = G g */
static AI void g_1d(const __m256 g[3], __m256 o[6])
{
    __m256 s = _mm256_add_ps(g[0], g[2]), q = vfma(0.25f, g[0], g[2]);
    o[0] = vmul(0.25f, g[0]);
    o[1] = vmul(-1.0f / 6, _mm256_add_ps(s, g[1]));
    o[2] = vmul(-1.0f / 6, _mm256_sub_ps(s, g[1]));
    o[3] = vmul(1.0f / 6, vfma(0.5f, g[1], q));
    o[4] = vmul(1.0f / 6, vfma(-0.5f, g[1], q));
    o[5] = g[2];
}

/* o = G^T z, in double (see lp_wino_weight_grad) */
static AI void gt_1d(const __m512d z[6], __m512d o[3])
{
    const __m512d s12 = _mm512_add_pd(z[1], z[2]), d12 = _mm512_sub_pd(z[2], z[1]);
    const __m512d s34 = _mm512_add_pd(z[3], z[4]), d34 = _mm512_sub_pd(z[3], z[4]);
    const __m512d k6 = _mm512_set1_pd(1.0 / 6), k12 = _mm512_set1_pd(1.0 / 12), k24 = _mm512_set1_pd(1.0 / 24);
    o[0] = _mm512_fmadd_pd(k24, s34, _mm512_fmsub_pd(_mm512_set1_pd(0.25), z[0], _mm512_mul_pd(k6, s12)));
    o[1] = _mm512_fmadd_pd(k6, d12, _mm512_mul_pd(k12, d34));
    o[2] = _mm512_add_pd(_mm512_mul_pd(k6, _mm512_sub_pd(s34, s12)), z[5]);
}

/* dst + q*qs [8 lanes] = (G g G^T)[q] for the 3x3 kernels g of 8 lanes, lane l's at
 * src + l*ls (lanes past live are 0). */
static void g_transform8(const float *src, size_t ls, int live, float *dst, size_t qs)
{
    float k[9][8] __attribute__((aligned(32)));
    for (int l = 0; l < 8; l++)
        for (int j = 0; j < 9; j++) k[j][l] = l < live ? src[(size_t)l * ls + j] : 0.0f;
    __m256 r[3][6], g[3], o[6];
    for (int j = 0; j < 3; j++) { /* along each kernel row, then down each column */
        for (int x = 0; x < 3; x++) g[x] = _mm256_load_ps(k[3 * j + x]);
        g_1d(g, r[j]);
    }
    for (int b = 0; b < 6; b++) {
        for (int j = 0; j < 3; j++) g[j] = r[j][b];
        g_1d(g, o);
        for (int a = 0; a < 6; a++) _mm256_storeu_ps(dst + (size_t)(6 * a + b) * qs, o[a]);
    }
}

void lp_wino_pack_u(const lp_wino_plan *p, const float *w, float *u)
{
    const int C = p->C, F = p->F, C8 = p->C8, F8 = p->F8;
    for (int c = 0; c < C8; c++) /* 8 filters a vector */
        for (int f0 = 0; f0 < F8; f0 += 8)
            g_transform8(w + ((size_t)f0 * C + c) * 9, (size_t)C * 9, c < C ? F - f0 : 0, u + (size_t)c * F8 + f0,
                         (size_t)C8 * F8);
}

void lp_wino_pack_ut(const lp_wino_plan *p, const float *w, float *ut)
{
    const int C = p->C, F = p->F, C8 = p->C8, F8 = p->F8;
    for (int f = 0; f < F8; f++) /* 8 channels a vector */
        for (int c0 = 0; c0 < C8; c0 += 8)
            g_transform8(w + ((size_t)f * C + c0) * 9, 9, f < F ? C - c0 : 0, ut + (size_t)f * C8 + c0,
                         (size_t)F8 * C8);
}

void lp_wino_weight_grad(const lp_wino_plan *p, const float *part0, size_t stride, int nt, int f0, int c,
                         float *dw)
{
    /* 8 filters at a time, in double: once per batch, and G^T dU G cancels large
     * terms (a small weight gradient is a difference of dU entries many times its
     * size). The thread partials are added in thread order. */
    __m512d z[6], r[6][3], o[3];
    for (int a = 0; a < 6; a++) { /* along each row of dU, then down each column */
        for (int b = 0; b < 6; b++) {
            const float *src = part0 + ((size_t)(6 * a + b) * p->C8 + c) * p->F8 + f0;
            __m512d s = _mm512_cvtps_pd(_mm256_loadu_ps(src));
            for (int u = 1; u < nt; u++) s = _mm512_add_pd(s, _mm512_cvtps_pd(_mm256_loadu_ps(src + (size_t)u * stride)));
            z[b] = s;
        }
        gt_1d(z, r[a]);
    }
    float out[9][8] __attribute__((aligned(32)));
    for (int k = 0; k < 3; k++) {
        for (int a = 0; a < 6; a++) z[a] = r[a][k];
        gt_1d(z, o);
        for (int j = 0; j < 3; j++) _mm256_store_ps(out[3 * j + k], _mm512_cvtpd_ps(o[j]));
    }
    for (int l = 0; l < 8 && f0 + l < p->F; l++)
        for (int j = 0; j < 9; j++) dw[((size_t)(f0 + l) * p->C + c) * 9 + j] += out[j][l];
}

/* ---- 8x8 transposes between [C][H][W]-style planes and channel-last ---------- */

static inline __mmask8 lanes(int lo, int hi) /* lanes [lo, hi) of 8 */
{
    lo = lo < 0 ? 0 : lo;
    hi = hi > 8 ? 8 : hi;
    return hi > lo ? (__mmask8)(((1u << (hi - lo)) - 1) << lo) : 0;
}

/* Column i < ni of the 8x8 block whose rows j < nj are src + j*ss (lanes lm; rows
 * past nj read 0) stored to dst + i*ds (lanes sm), or added there (add). Callers
 * pass constants for whole blocks, so those run without a test per row. */
static AI void transpose_block(const float *src, size_t ss, __mmask8 lm, int nj, float *dst, size_t ds, __mmask8 sm,
                               int ni, int add)
{
    __m256 r[8], o[8];
#pragma GCC unroll 8
    for (int j = 0; j < 8; j++) r[j] = j < nj ? _mm256_maskz_loadu_ps(lm, src + (size_t)j * ss) : _mm256_setzero_ps();
    transpose8(r, o);
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++)
        if (i < ni) {
            float *d = dst + (size_t)i * ds;
            _mm256_mask_storeu_ps(d, sm, add ? _mm256_add_ps(o[i], _mm256_maskz_loadu_ps(sm, d)) : o[i]);
        }
}

/* x [C][H][W] -> xt [Hq][Wq8][C8], padding (and everything outside x) as zeros. */
static void to_xt(const lp_wino_plan *p, const float *x, float *xt)
{
    const int C = p->C, H = p->H, W = p->W, C8 = p->C8, W8 = p->Wq8;
    const size_t gs = (size_t)p->Hq * W8 * 8; /* one channel group */
    for (int q0 = 0; q0 < W8; q0 += 8) {
        const __mmask8 m = lanes(p->pl - q0, p->pl - q0 + W); /* ix = q0 + j - pl in [0, W) */
        for (int r = 0; r < p->Hq; r++) {
            const int iy = r - p->pt;
            float *o = xt + ((size_t)r * W8 + q0) * 8;
            if (iy < 0 || iy >= H || !m) {
                for (int cg = 0; cg < C8; cg += 8)
                    for (int j = 0; j < 8; j++) _mm256_storeu_ps(o + cg / 8 * gs + 8 * j, _mm256_setzero_ps());
                continue;
            }
            for (int cg = 0; cg < C8; cg += 8) {
                const float *src = x + ((size_t)cg * H + iy) * W + q0 - p->pl; /* masked lanes never fault */
                if (C - cg >= 8) transpose_block(src, (size_t)H * W, m, 8, o + cg / 8 * gs, 8, 0xff, 8, 0);
                else transpose_block(src, (size_t)H * W, m, C - cg, o + cg / 8 * gs, 8, 0xff, 8, 0);
            }
        }
    }
}

/* dyt [F8/8][P][8] from dy [F][P] (filters past F read 0). */
static void to_dyt(const float *dy, int F, int P, float *dyt)
{
    for (int g = 0; g * 8 < F; g++)
        for (int p0 = 0; p0 < P; p0 += 8) {
            const float *src = dy + (size_t)8 * g * P + p0;
            float *dst = dyt + ((size_t)g * P + p0) * 8;
            if (F - 8 * g >= 8 && P - p0 >= 8) transpose_block(src, P, 0xff, 8, dst, 8, 0xff, 8, 0);
            else transpose_block(src, P, lanes(0, P - p0), F - 8 * g, dst, 8, 0xff, P - p0, 0);
        }
}

/* y [F][P] from yt [F8/8][P][8]. */
static void from_yt(const float *yt, int F, int P, float *y)
{
    for (int g = 0; g * 8 < F; g++)
        for (int p0 = 0; p0 < P; p0 += 8) {
            const float *src = yt + ((size_t)g * P + p0) * 8;
            float *dst = y + (size_t)8 * g * P + p0;
            if (F - 8 * g >= 8 && P - p0 >= 8) transpose_block(src, 8, 0xff, 8, dst, P, 0xff, 8, 0);
            else transpose_block(src, 8, 0xff, P - p0, dst, P, lanes(0, P - p0), F - 8 * g, 0);
        }
}

/* dx [C][H][W] (+)= dxt [Hq][Wq8][C8] at rows iy + pt, columns ix + pl. */
static void from_dxt(const lp_wino_plan *p, const float *dxt, float *dx, int acc)
{
    const int C = p->C, H = p->H, W = p->W, C8 = p->C8, W8 = p->Wq8;
    for (int cg = 0; cg < C8; cg += 8)
        for (int iy = 0; iy < H; iy++)
            for (int ix0 = 0; ix0 < W; ix0 += 8) {
                const float *src = dxt + (((size_t)cg / 8 * p->Hq + iy + p->pt) * W8 + p->pl + ix0) * 8;
                float *dst = dx + ((size_t)cg * H + iy) * W + ix0;
                const __mmask8 m = lanes(0, W - ix0);
                if (C - cg >= 8 && !acc) transpose_block(src, 8, 0xff, 8, dst, (size_t)H * W, m, 8, 0);
                else if (C - cg >= 8) transpose_block(src, 8, 0xff, 8, dst, (size_t)H * W, m, 8, 1);
                else transpose_block(src, 8, 0xff, 8, dst, (size_t)H * W, m, C - cg, acc);
            }
}

/* ---- the 2-D transforms of a chunk of tiles ----------------------------------- */

/* v [TC][C8/8][NP][8] = B^T d B of tile rows [ty0, ty0 + nty). */
static void input_tf(const lp_wino_plan *p, const float *xt, int ty0, int nty, float *v)
{
    const int C8 = p->C8, W8 = p->Wq8;
    for (int cg = 0; cg < C8; cg += 8) {
        int i = 0;
        for (int ty = ty0; ty < ty0 + nty; ty++)
            for (int tx = 0; tx < p->TW; tx++, i++) {
                const float *s = xt + (((size_t)cg / 8 * p->Hq + WINO_M * ty) * W8 + WINO_M * tx) * 8;
                float *out = v + (size_t)i * C8 * WINO_NP + cg * WINO_NP;
#pragma GCC unroll 2
                for (int h = 0; h < 2; h++) { /* columns [3h, 3h + 3) of the result */
                    __m256 r[6][3], d[6], o[6];
#pragma GCC unroll 6
                    for (int a = 0; a < 6; a++) { /* along each row, then down each column */
#pragma GCC unroll 6
                        for (int b = 0; b < 6; b++) d[b] = _mm256_loadu_ps(s + (size_t)a * W8 * 8 + 8 * b);
                        bt_1d_half(d, h, r[a]);
                    }
#pragma GCC unroll 3
                    for (int j = 0; j < 3; j++) {
#pragma GCC unroll 6
                        for (int a = 0; a < 6; a++) d[a] = r[a][j];
                        bt_1d(d, o);
#pragma GCC unroll 6
                        for (int a = 0; a < 6; a++) _mm256_storeu_ps(out + 8 * (6 * a + 3 * h + j), o[a]);
                    }
                }
            }
    }
}

/* out [rows][cols] (rows of OW positions of 8) = A^T M A + bv of one tile's M at s;
 * whole tiles pass constants and run without a test per output. */
static AI void output_tile(const float *s, __m256 bv, float *out, int OW, int rows, int cols)
{
    __m256 r[6][4], d[6], o[4];
#pragma GCC unroll 6
    for (int a = 0; a < 6; a++) {
#pragma GCC unroll 6
        for (int b = 0; b < 6; b++) d[b] = _mm256_loadu_ps(s + 8 * (6 * a + b));
        at_1d(d, r[a]);
    }
#pragma GCC unroll 4
    for (int b = 0; b < 4; b++) {
        if (b >= cols) break;
#pragma GCC unroll 6
        for (int a = 0; a < 6; a++) d[a] = r[a][b];
        at_1d(d, o);
#pragma GCC unroll 4
        for (int a = 0; a < 4; a++)
            if (a < rows) _mm256_storeu_ps(out + ((size_t)a * OW + b) * 8, _mm256_add_ps(o[a], bv));
    }
}

/* yt (positions of tile rows [ty0, ty0 + nty)) = A^T M A + bias; outputs past OH, OW
 * are not stored. */
static void output_tf(const lp_wino_plan *p, const float *m, const float *bias, int ty0, int nty, float *yt)
{
    const int F8 = p->F8, OW = p->OW, OH = p->OH, P = p->P;
    for (int g = 0; 8 * g < F8; g++) {
        const __m256 bv = bias ? _mm256_maskz_loadu_ps(lanes(0, p->F - 8 * g), bias + 8 * g) : _mm256_setzero_ps();
        float *yg = yt + (size_t)g * P * 8;
        int i = 0;
        for (int ty = ty0; ty < ty0 + nty; ty++)
            for (int tx = 0; tx < p->TW; tx++, i++) {
                const float *s = m + (size_t)i * F8 * WINO_NP + WINO_TS * g;
                const int oy = WINO_M * ty, ox = WINO_M * tx;
                const int rows = OH - oy < WINO_M ? OH - oy : WINO_M, cols = OW - ox < WINO_M ? OW - ox : WINO_M;
                float *out = yg + ((size_t)oy * OW + ox) * 8;
                if (rows == WINO_M && cols == WINO_M) output_tile(s, bv, out, OW, WINO_M, WINO_M);
                else output_tile(s, bv, out, OW, rows, cols);
            }
    }
}

/* m [TC][F8/8][NP][8] = A dY A^T of tile rows [ty0, ty0 + nty), dY from dyt (0 past OH, OW);
 * db [F8] += the sum of dY, which is each tile's point (1, 1) (rows 1 of A and A^T are all 1s). */
static void dm_tf(const lp_wino_plan *p, const float *dyt, int ty0, int nty, float *m, float *db)
{
    const int F8 = p->F8, OW = p->OW, OH = p->OH, P = p->P;
    for (int g = 0; 8 * g < F8; g++) {
        const float *dg = dyt + (size_t)g * P * 8;
        __m256 dbg = _mm256_loadu_ps(db + 8 * g);
        int i = 0;
        for (int ty = ty0; ty < ty0 + nty; ty++)
            for (int tx = 0; tx < p->TW; tx++, i++) {
                const int oy = WINO_M * ty, ox = WINO_M * tx;
                const int rows = OH - oy < WINO_M ? OH - oy : WINO_M, cols = OW - ox < WINO_M ? OW - ox : WINO_M;
                const float *s = dg + ((size_t)oy * OW + ox) * 8;
                __m256 r[4][6], y[4], o[6];
#pragma GCC unroll 4
                for (int a = 0; a < 4; a++) {
#pragma GCC unroll 4
                    for (int b = 0; b < 4; b++)
                        y[b] = a < rows && b < cols ? _mm256_loadu_ps(s + ((size_t)a * OW + b) * 8) : _mm256_setzero_ps();
                    a_1d(y, r[a]);
                }
                float *out = m + (size_t)i * F8 * WINO_NP + WINO_TS * g;
#pragma GCC unroll 6
                for (int b = 0; b < 6; b++) {
#pragma GCC unroll 4
                    for (int a = 0; a < 4; a++) y[a] = r[a][b];
                    a_1d(y, o);
                    if (b == 1) dbg = _mm256_add_ps(dbg, o[1]);
#pragma GCC unroll 6
                    for (int a = 0; a < 6; a++) _mm256_storeu_ps(out + 8 * (6 * a + b), o[a]);
                }
            }
        _mm256_storeu_ps(db + 8 * g, dbg);
    }
}

/* dxt (+)= B dV B^T of tile rows [ty0, ty0 + nty) at (4ty, 4tx). The 6x6 tiles overlap
 * by two rows and columns: a tile adds into its first two rows (columns) where the
 * tile above (to the left) wrote them, and stores the rest, so dxt needs no zeroing.
 * Columns no tile reaches are left as they were (from_dxt only reads them into lanes
 * it does not store). */
static void dx_tf(const lp_wino_plan *p, const float *v, int ty0, int nty, float *dxt)
{
    const int C8 = p->C8, W8 = p->Wq8;
    for (int cg = 0; cg < C8; cg += 8) {
        int i = 0;
        for (int ty = ty0; ty < ty0 + nty; ty++) {
            const int row5 = ty < p->TH - 1 || p->OH % WINO_M == 0; /* dV's last row was computed: 0 if not */
            for (int tx = 0; tx < p->TW; tx++, i++) {
                const float *s = v + (size_t)i * C8 * WINO_NP + cg * WINO_NP;
                float *out = dxt + (((size_t)cg / 8 * p->Hq + WINO_M * ty) * W8 + WINO_M * tx) * 8;
                const __mmask8 above = ty > 0 ? 0xff : 0, left = tx > 0 ? 0xff : 0; /* lanes to add */
#pragma GCC unroll 2
                for (int h = 0; h < 2; h++) { /* columns h, h + 2, h + 4: half the first pass live */
                    __m256 r[6][3], z[6], o[6];
#pragma GCC unroll 6
                    for (int a = 0; a < 6; a++) {
#pragma GCC unroll 6
                        for (int b = 0; b < 6; b++)
                            z[b] = a < 5 || row5 ? _mm256_loadu_ps(s + 8 * (6 * a + b)) : _mm256_setzero_ps();
                        b_1d_half(z, h, r[a]);
                    }
#pragma GCC unroll 3
                    for (int j = 0; j < 3; j++) {
                        const int b = h + 2 * j;
#pragma GCC unroll 6
                        for (int a = 0; a < 6; a++) z[a] = r[a][j];
                        b_1d(z, o);
#pragma GCC unroll 6
                        for (int a = 0; a < 6; a++) {
                            float *at = out + ((size_t)a * W8 + b) * 8;
                            if (a >= 2 && b >= 2) _mm256_storeu_ps(at, o[a]);
                            else {
                                const __mmask8 k = (a < 2 ? above : 0) | (b < 2 ? left : 0);
                                _mm256_storeu_ps(at, _mm256_add_ps(_mm256_maskz_loadu_ps(k, at), o[a]));
                            }
                        }
                    }
                }
            }
        }
    }
}

/* ---- the products at the 36 points ---------------------------------------------- */

/* A and the output of the point GEMMs are in the tile layout above: element (i, k)
 * at a[i*lda + (k/8)*WINO_TS + k%8] (a group's 36 points of 8). B (U) is plain
 * [K8][N8] per point. */

/* out[r][g] (=|+=) sum_(k < kc) a(r, k) * B[k][g] for r < rt, g < gb. With fewer than
 * 8 accumulators, even and odd k go to two sets: 8 chains keep both FMA pipes busy. */
static AI void nn_rows(const float *a, int lda, __m256 B[16][2], float *out, int ldo, const int rt, const int kc,
                       const int gb, int add)
{
    const int split = rt * gb < 8;
    __m256 acc[2][4][2];
#pragma GCC unroll 4
    for (int r = 0; r < rt; r++)
#pragma GCC unroll 2
        for (int g = 0; g < gb; g++) {
            acc[0][r][g] = add ? _mm256_loadu_ps(out + (size_t)r * ldo + WINO_TS * g) : _mm256_setzero_ps();
            acc[1][r][g] = _mm256_setzero_ps();
        }
#pragma GCC unroll 16
    for (int k = 0; k < kc; k++) {
        const int h = split ? (k & 1) : 0;
#pragma GCC unroll 4
        for (int r = 0; r < rt; r++) {
            __m256 av = _mm256_set1_ps(a[(size_t)r * lda + (k >> 3) * WINO_TS + (k & 7)]);
#pragma GCC unroll 2
            for (int g = 0; g < gb; g++) acc[h][r][g] = _mm256_fmadd_ps(av, B[k][g], acc[h][r][g]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < rt; r++)
#pragma GCC unroll 2
        for (int g = 0; g < gb; g++)
            _mm256_storeu_ps(out + (size_t)r * ldo + WINO_TS * g, split ? _mm256_add_ps(acc[0][r][g], acc[1][r][g]) : acc[0][r][g]);
}

/* out[nr][gb groups] (=|+=) a[nr][kc] b[kc][8*gb]: b's kc rows held in registers,
 * tiles 4 at a time. */
static AI void nn_panel(const float *a, int lda, const float *b, int ldb, float *out, int ldo, int nr, const int kc,
                        const int gb, int add)
{
    __m256 B[16][2];
#pragma GCC unroll 16
    for (int k = 0; k < kc; k++)
#pragma GCC unroll 2
        for (int g = 0; g < gb; g++) B[k][g] = _mm256_loadu_ps(b + (size_t)k * ldb + 8 * g);
    int r = 0;
    for (; r + 4 <= nr; r += 4) nn_rows(a + (size_t)r * lda, lda, B, out + (size_t)r * ldo, ldo, 4, kc, gb, add);
    if (nr - r >= 2) { nn_rows(a + (size_t)r * lda, lda, B, out + (size_t)r * ldo, ldo, 2, kc, gb, add); r += 2; }
    if (nr - r >= 1) nn_rows(a + (size_t)r * lda, lda, B, out + (size_t)r * ldo, ldo, 1, kc, gb, add);
}

/* For each of the 36 points q: out_q [nr][N8] = a_q [nr][K8] b_q [K8][N8]; a_q = a + 8q,
 * out_q = out + 8q (tile layout), b_q = b + q*bs; the last row's points (q >= WINO_Q5) only
 * for the first nr5 tiles (see tiles_full_rows). The shape is chosen once for all points. */
static void nn_gemm(const float *a, int lda, int K8, const float *b, size_t bs, int ldb, int N8, float *out, int ldo,
                    int nr, int nr5)
{
    for (int g = 0; 8 * g < N8; g += 2) {
        const int gb = N8 - 8 * g >= 16 ? 2 : 1;
        for (int k0 = 0; k0 < K8;) {
            const float *ak = a + (size_t)k0 / 8 * WINO_TS, *bk = b + (size_t)k0 * ldb + 8 * g;
            float *o = out + WINO_TS * g;
            const int add = k0 > 0;
            if (gb == 2) {
                for (int q = 0; q < WINO_NP; q++) nn_panel(ak + 8 * q, lda, bk + q * bs, ldb, o + 8 * q, ldo, q < WINO_Q5 ? nr : nr5, 8, 2, add);
                k0 += 8;
            } else if (K8 - k0 >= 16) {
                for (int q = 0; q < WINO_NP; q++) nn_panel(ak + 8 * q, lda, bk + q * bs, ldb, o + 8 * q, ldo, q < WINO_Q5 ? nr : nr5, 16, 1, add);
                k0 += 16;
            } else {
                for (int q = 0; q < WINO_NP; q++) nn_panel(ak + 8 * q, lda, bk + q * bs, ldb, o + 8 * q, ldo, q < WINO_Q5 ? nr : nr5, 8, 1, add);
                k0 += 8;
            }
        }
    }
}

/* out[c][8g + l] += sum_(i < n) a(i, c) b(i, g)[l] for c < 8, g < gb (a, b in the tile
 * layout, already at their group and point; out plain rows of ldo). */
static AI void tn_block(const float *a, int lda, const float *b, int ldb, int n, float *out, int ldo, const int gb)
{
    __m256 acc[8][2];
#pragma GCC unroll 8
    for (int c = 0; c < 8; c++)
#pragma GCC unroll 2
        for (int g = 0; g < gb; g++) acc[c][g] = _mm256_loadu_ps(out + (size_t)c * ldo + 8 * g);
    for (int i = 0; i < n; i++) {
        const float *ai = a + (size_t)i * lda;
        __m256 bv[2];
#pragma GCC unroll 2
        for (int g = 0; g < gb; g++) bv[g] = _mm256_loadu_ps(b + (size_t)i * ldb + WINO_TS * g);
#pragma GCC unroll 8
        for (int c = 0; c < 8; c++) {
            __m256 av = _mm256_set1_ps(ai[c]);
#pragma GCC unroll 2
            for (int g = 0; g < gb; g++) acc[c][g] = _mm256_fmadd_ps(av, bv[g], acc[c][g]);
        }
    }
#pragma GCC unroll 8
    for (int c = 0; c < 8; c++)
#pragma GCC unroll 2
        for (int g = 0; g < gb; g++) _mm256_storeu_ps(out + (size_t)c * ldo + 8 * g, acc[c][g]);
}

/* For each point q: out_q [M8][N8] += a_q^T b_q over n tiles (n5 for q >= WINO_Q5); a_q = a + 8q,
 * b_q = b + 8q (tile layout), out_q = out + q*os (plain [M8][N8] rows of ldo). */
static void tn_gemm(const float *a, int lda, int M8, const float *b, int ldb, int N8, int n, int n5, float *out,
                    size_t os, int ldo)
{
    for (int c = 0; c < M8; c += 8)
        for (int g = 0; 8 * g < N8; g += 2) {
            const float *ac = a + (size_t)c * WINO_NP, *bg = b + WINO_TS * g;
            float *o = out + (size_t)c * ldo + 8 * g;
            if (N8 - 8 * g >= 16)
                for (int q = 0; q < WINO_NP; q++) tn_block(ac + 8 * q, lda, bg + 8 * q, ldb, q < WINO_Q5 ? n : n5, o + q * os, ldo, 2);
            else
                for (int q = 0; q < WINO_NP; q++) tn_block(ac + 8 * q, lda, bg + 8 * q, ldb, q < WINO_Q5 ? n : n5, o + q * os, ldo, 1);
        }
}

/* ---- one sample ------------------------------------------------------------------- */

/* Tiles of tile rows [ty0, ty0 + nty) whose 4 output rows are all inside: only these
 * need the points of the last row (q >= WINO_Q5). A^T reads them for its last output
 * row alone, and where that row is past OH, dY is 0 there and so is A's last row of dM
 * (and of dV). The partial tile row is the last, so these tiles come first in a chunk. */
static int tiles_full_rows(const lp_wino_plan *p, int ty0, int nty)
{
    const int partial = ty0 + nty == p->TH && p->OH % WINO_M != 0;
    return (nty - partial) * p->TW;
}

void lp_wino_forward(const lp_wino_plan *p, const float *u, const float *bias, const float *x, float *y, float *vs,
                     float *ts)
{
    float *xt = ts + p->xt_at, *m = ts + p->m_at, *yt = ts + p->yt_at;
    const int C8 = p->C8, F8 = p->F8;
    to_xt(p, x, xt);
    for (int ty0 = 0; ty0 < p->TH; ty0 += p->rpc) {
        const int nty = p->TH - ty0 < p->rpc ? p->TH - ty0 : p->rpc, nt = nty * p->TW;
        float *v = vs + (size_t)ty0 * p->TW * C8 * WINO_NP;
        input_tf(p, xt, ty0, nty, v);
        nn_gemm(v, WINO_NP * C8, C8, u, (size_t)C8 * F8, F8, F8, m, WINO_NP * F8, nt, tiles_full_rows(p, ty0, nty));
        output_tf(p, m, bias, ty0, nty, yt);
    }
    from_yt(yt, p->F, p->P, y);
}

void lp_wino_backward(const lp_wino_plan *p, const float *ut, const float *vs, const float *dy, float *dx, int acc,
                      float *part, float *ts)
{
    float *dxt = ts + p->dxt_at, *dv = ts + p->dv_at, *m = ts + p->m_at, *dyt = ts + p->yt_at;
    const int C8 = p->C8, F8 = p->F8, P = p->P;
    to_dyt(dy, p->F, P, dyt);
    float *db = part + (size_t)WINO_NP * C8 * F8;
    for (int ty0 = 0; ty0 < p->TH; ty0 += p->rpc) {
        const int nty = p->TH - ty0 < p->rpc ? p->TH - ty0 : p->rpc, nt = nty * p->TW;
        dm_tf(p, dyt, ty0, nty, m, db);
        const int nt5 = tiles_full_rows(p, ty0, nty);
        tn_gemm(vs + (size_t)ty0 * p->TW * C8 * WINO_NP, WINO_NP * C8, C8, m, WINO_NP * F8, F8, nt, nt5, part,
                (size_t)C8 * F8, F8);
        if (dx) {
            nn_gemm(m, WINO_NP * F8, F8, ut, (size_t)F8 * C8, C8, C8, dv, WINO_NP * C8, nt, nt5);
            dx_tf(p, dv, ty0, nty, dxt);
        }
    }
    if (dx) from_dxt(p, dxt, dx, acc);
}

#endif
