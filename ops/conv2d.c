/* conv2d.c - 2-D convolution (cross-correlation, as every framework computes it).
 *
 * Input [C, H, W] -> output [F, OH, OW], OH = (H + pad_top + pad_bottom - kh) / sh + 1.
 * Weight [F, C, kh, kw] (PyTorch layout), bias [F]. He init, fan_in = C * kh * kw.
 *
 * Three ways, chosen at setup. 3x3 stride 1 with whole groups of 8 channels (8-24)
 * and 4-16 filters, on a CPU with AVX-512, takes Winograd F(4x4, 3x3)
 * (conv2d_winograd.c: 4x fewer multiply-adds; MNIST's conv2). Other stride-1
 * convs with AVX-512 take the direct path (see "the direct path" below): no column
 * matrix, and on MNIST's tiny layers several times faster than a GEMM per sample
 * (docs/performance.md); within it, one input channel, 3x3, unpadded (MNIST's conv1)
 * runs the row kernels (forward and weight gradient). Everything else takes im2col + GEMM:
 * Per sample, the input patches are unrolled into
 * col [K = C*kh*kw, P = OH*OW], then out[F, P] = W[F, K] * col + b. Samples run in
 * parallel (OpenMP); lp_sgemm itself is single-threaded, so there is one level of
 * parallelism. Scratch per sample (planned by the graph, so no malloc per step):
 *   col [K*P]      written by forward, read (never changed) by backward, so
 *                  backward can run again after one forward (another seed);
 *   part [F*K + F] the weight and bias gradient partial of thread number `slot`;
 *   dcol [R*P]     thread `slot`'s input-gradient rows for a chunk of channels
 *                  (R ~ 64 rows: a useful GEMM, a fraction of col's memory).
 * Only the first T slots' part and dcol are used (T <= N threads).
 * Backward sums the T partials in thread order, so a result is the same for the
 * same thread count (and differs from another count only by float rounding). The
 * direct path keeps all three properties (parallel samples, partials summed in
 * thread order, forward's scratch left intact by backward).
 *
 * padding: an int, [h, w], or `same` (output ceil(H / stride); the odd pixel of
 * padding goes to the bottom/right, as TensorFlow does). bias: true/false.
 */
#include "compute.h"
#include "conv2d_simd.h"
#include "conv2d_winograd.h"
#include "loupe_op.h"
#include "shape.h"
#include "simd.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* ---- the direct path (stride 1, AVX-512) ----------------------------------
 *
 * MNIST's convs are tiny (conv1: 8 filters, K = 9; conv2: 16 filters, K = 72), so
 * a GEMM per sample spends more time packing than multiplying, and im2col moves
 * K copies of the image. The direct path keeps every output position p = oy*OW+ox
 * in 16-wide vectors and gets each tap's inputs with one contiguous load, from
 * kw shifted copies of the padded image:
 *   xk[c][kx][r][ox] = xpad[c][r][ox + kx],  r < Hp = OH + kh - 1,
 * so tap (c, ky, kx) for positions p.. is xk[c][kx] + ky*OW + p.. (ky*OW shifts
 * whole rows). The copies are kw times the image (conv2: 14 KB a sample, not the
 * 35 KB of col) and live in a per-thread buffer: backward makes them again rather
 * than keep them per sample for the largest (evaluation) batch.
 *   forward   y[f][p] = b[f] + sum_(c,ky,kx) w[f][c][ky][kx] xk[c][kx][ky*OW + p]
 *   dX        the adjoint, in the same layout: g[c][kx][q] = sum_(f,ky) w[f][c][ky][kx]
 *             dY[f][q - ky*OW] (dY zero-padded by kh-1 rows each side, a plain copy),
 *             then dX[c][iy][ix] = sum_kx g[c][kx][(iy+pt)*OW + ix + pl - kx], row by row
 *   dW        along the filters, see direct_weight_grad.
 * forward and g are one kernel: a tile of 8 output channels x 3 vectors (24
 * accumulators) over all taps, weights packed [tap][8] so each is one broadcast.
 * Tails: masked stores, zero-masked loads.
 */
#ifndef LP_CONV_WINOGRAD
#define LP_CONV_WINOGRAD 1 /* -DLP_CONV_WINOGRAD=0: the direct path for 3x3 too (benchmarks) */
#endif
#if defined(__AVX512F__)
#include <immintrin.h>
#define CONV_DIRECT 1
#else
#define CONV_DIRECT 0
#endif

enum { TILE_F = 8, TILE_V = 3, SLACK = 16 };

typedef struct direct_plan {
    int Hp;              /* rows of a shifted input copy: OH + kh - 1 */
    size_t xk_plane;     /* floats of one copy [Hp, OW]; also one plane of g */
    size_t xk_size;      /* a sample's C*kw copies + slack, rounded to 16 (per thread) */
    size_t pad_plane;    /* a zero-padded dY plane: (kh-1)*OW + P + (kh-1)*OW */
    size_t pad_size;     /* F of them + slack, rounded (per thread) */
    size_t g_size;       /* two g buffers of C*kw planes + slack, rounded (per thread) */
    size_t part_size;    /* [K + 1][G*8] partial dW^T and db, rounded (per thread) */
    size_t dyt_size;     /* [G][P][8] one sample's dY by filter groups of 8 (per thread) */
    size_t aux;          /* per thread: pad + g + part + dyt + xk */
    size_t wf_size;      /* packed forward weights [ceil(F/8)][K][8] */
    size_t wb_size;      /* packed g weights [ceil(C*kw/8)][F*kh][8] */
    size_t fixed;        /* all the scratch: wf, wb, tmax * aux (nothing per sample) */
    int tmax;            /* threads the fixed scratch holds */
    int *fwd_off;        /* [K] tap (c, ky, kx) -> offset in a sample's copies */
    int *bwd_off;        /* [F*kh] tap (f, ky) -> offset in a thread's padded dY */
    int x_nvec, x_smax;  /* a shifted input copy: vectors, row pieces per vector */
    int unpadded;        /* no padding on any side: copies are plain row copies */
    int rows;            /* one channel, 3x3, unpadded, 16 < OW <= 32: the row kernels */
    struct row_seg *xmap; /* [kw][x_nvec][x_smax]: how to fill the copies */
} direct_plan;

/* One piece of a row, as read into a vector: lanes `mask` take src[off + lane]. */
typedef struct row_seg {
    int32_t off;
    uint32_t mask;
} row_seg;

typedef struct conv_state {
    int C, H, W;        /* input */
    int F, kh, kw;      /* filters and kernel */
    int sh, sw;         /* stride */
    int pt, pl;         /* padding top and left (bottom/right only change OH, OW) */
    int OH, OW;
    int K, P;           /* K = C*kh*kw rows of col, P = OH*OW columns */
    int bias;
    int chunk;          /* channels per dcol chunk */
    size_t part_off, dcol_off, slot; /* floats: offsets in a sample's scratch, its size */
    int direct;         /* stride 1 with AVX-512: the direct path below, not im2col */
    direct_plan d;
    int wino;           /* 3x3 stride 1 with AVX-512: Winograd F(4x4, 3x3), conv2d_winograd.c */
    int wino_tmax;      /* threads its fixed scratch holds */
    lp_wino_plan wp;
} conv_state;

#if CONV_DIRECT
static size_t round16(size_t n) { return (n + 15) / 16 * 16; }

/* Vectors of a plane and the most row pieces one vector can hold. */
static int plane_vecs(size_t plane) { return (int)((plane + 15) / 16); }
static int row_pieces(int width) { return 16 / width + 2; }

/* Bytes of node state the direct path needs after cs: tap offsets and row maps. */
static size_t direct_state_bytes(int C, int F, int kh, int kw, int OH, int OW)
{
    size_t offs = (size_t)C * kh * kw + (size_t)F * kh;
    size_t xsegs = (size_t)kw * plane_vecs((size_t)(OH + kh - 1) * OW) * row_pieces(OW);
    return xsegs * sizeof(row_seg) + offs * sizeof(int);
}

/* dst plane [R, Wd] read as 16-lane vectors, dst[r][c] = src[r + dr][c + dc] when that
 * is inside src [Rs, Ws], else 0: per vector, the pieces of rows it holds. */
static void rowmap_build(row_seg *seg, int nvec, int smax, int R, int Wd, int Rs, int Ws, int dr, int dc)
{
    for (int v = 0; v < nvec; v++) {
        int j = 0, base = 16 * v;
        for (int r = base / Wd; r < R && r * Wd < base + 16; r++) {
            int sr = r + dr;
            int c0 = dc < 0 ? -dc : 0, c1 = Ws - dc < Wd ? Ws - dc : Wd; /* valid columns */
            int a = r * Wd + c0 > base ? r * Wd + c0 : base;
            int b = r * Wd + c1 < base + 16 ? r * Wd + c1 : base + 16;
            if (sr < 0 || sr >= Rs || b <= a) continue;
            seg[(size_t)v * smax + j].off = sr * Ws + dc - r * Wd + base;
            seg[(size_t)v * smax + j].mask = ((1u << (b - a)) - 1) << (a - base);
            j++;
        }
        for (; j < smax; j++) seg[(size_t)v * smax + j] = (row_seg){0, 0};
    }
}

/* Fill a plane of `plane` floats from src by its row map. */
static void rowmap_apply(const row_seg *seg, int nvec, int smax, size_t plane, const float *src, float *dst)
{
    for (int v = 0; v < nvec; v++) {
        /* zero-masked loads of disjoint lanes, or-ed: no chain through a merge */
        __m512 r = _mm512_maskz_loadu_ps((__mmask16)seg[0].mask, src + seg[0].off); /* masked lanes never fault */
        for (int j = 1; j < smax; j++)
            r = _mm512_or_ps(r, _mm512_maskz_loadu_ps((__mmask16)seg[j].mask, src + seg[j].off));
        seg += smax;
        _mm512_mask_storeu_ps(dst + 16 * v, first_lanes((int)(plane - 16 * (size_t)v)), r);
    }
}

/* Plan the direct path's scratch, tap offsets and row maps (cs geometry already
 * set); mem is direct_state_bytes() of node state right after cs. */
static void direct_plan_init(conv_state *cs, void *mem, int tmax)
{
    direct_plan *d = &cs->d;
    const int C = cs->C, F = cs->F, kh = cs->kh, kw = cs->kw, OW = cs->OW;
    const size_t G8 = (size_t)(F + 7) / 8 * 8;
    d->Hp = cs->OH + kh - 1;
    d->unpadded = cs->pt == 0 && cs->pl == 0 && d->Hp == cs->H && cs->OW + kw - 1 == cs->W;
    d->rows = C == 1 && kh == 3 && kw == 3 && d->unpadded && OW > 16 && OW <= 32;
    d->xk_plane = (size_t)d->Hp * OW;
    d->xk_size = round16((size_t)C * kw * d->xk_plane + SLACK);
    d->pad_plane = (size_t)cs->P + 2 * (size_t)(kh - 1) * OW;
    d->pad_size = round16((size_t)F * d->pad_plane + SLACK);
    d->g_size = 2 * round16((size_t)C * kw * d->xk_plane + SLACK);
    d->part_size = round16(((size_t)cs->K + 1) * G8);
    d->dyt_size = round16(G8 * cs->P);
    d->aux = d->pad_size + d->g_size + d->part_size + d->dyt_size + d->xk_size;
    d->wf_size = round16((size_t)(F + TILE_F - 1) / TILE_F * TILE_F * cs->K);
    d->wb_size = round16((size_t)(C * kw + TILE_F - 1) / TILE_F * TILE_F * F * kh);
    d->tmax = tmax;
    d->fixed = d->wf_size + d->wb_size + (size_t)tmax * d->aux;
    d->x_nvec = plane_vecs(d->xk_plane);
    d->x_smax = row_pieces(OW);
    d->xmap = mem;
    d->fwd_off = (int *)(d->xmap + (size_t)kw * d->x_nvec * d->x_smax);
    d->bwd_off = d->fwd_off + cs->K;
    for (int kx = 0; kx < kw; kx++) /* xk[c][kx][r][ox] = x[c][r - pt][ox + kx - pl] */
        rowmap_build(d->xmap + (size_t)kx * d->x_nvec * d->x_smax, d->x_nvec, d->x_smax, d->Hp, OW,
                     cs->H, cs->W, -cs->pt, kx - cs->pl);
    for (int c = 0; c < C; c++)
        for (int ky = 0; ky < kh; ky++)
            for (int kx = 0; kx < kw; kx++)
                d->fwd_off[(c * kh + ky) * kw + kx] = (int)((c * kw + kx) * d->xk_plane) + ky * OW;
    /* g[.][q] reads dY[f][q - ky*OW] = pad[f][(kh-1)*OW + q - ky*OW] */
    for (int f = 0; f < F; f++)
        for (int ky = 0; ky < kh; ky++) d->bwd_off[f * kh + ky] = (int)(f * d->pad_plane) + (kh - 1 - ky) * OW;
}

/* x [C, H, W] -> xk [C][kw][Hp][OW] (see above), padding as zeros. */
static void direct_copy_input(const conv_state *cs, const float *x, float *xk)
{
    const direct_plan *d = &cs->d;
    if (d->unpadded) {
        /* No padding: row r of copy kx is input row r from column kx, a plain
         * strided copy, one load and one store per 16 floats (the row maps below
         * or 2-3 masked loads into every vector: 5x slower on conv1). */
        const int OW = cs->OW;
        for (int c = 0; c < cs->C; c++)
            for (int kx = 0; kx < cs->kw; kx++) {
                const float *src = x + (size_t)c * cs->H * cs->W + kx;
                float *dst = xk + (size_t)(c * cs->kw + kx) * d->xk_plane;
                for (int r = 0; r < d->Hp; r++, src += cs->W, dst += OW)
                    for (int i = 0; i < OW; i += 16) {
                        __mmask16 m = first_lanes(OW - i);
                        _mm512_mask_storeu_ps(dst + i, m, _mm512_maskz_loadu_ps(m, src + i));
                    }
            }
        _mm512_storeu_ps(xk + (size_t)cs->C * cs->kw * d->xk_plane, _mm512_setzero_ps());
        return;
    }
    for (int c = 0; c < cs->C; c++)
        for (int kx = 0; kx < cs->kw; kx++)
            rowmap_apply(d->xmap + (size_t)kx * d->x_nvec * d->x_smax, d->x_nvec, d->x_smax, d->xk_plane,
                         x + (size_t)c * cs->H * cs->W, xk + (size_t)(c * cs->kw + kx) * d->xk_plane);
    _mm512_storeu_ps(xk + (size_t)cs->C * cs->kw * d->xk_plane, _mm512_setzero_ps());
}

/* dy [F][P] -> pad [F][(kh-1)*OW zeros, P values, (kh-1)*OW zeros] (+ zero slack). */
static void direct_pad_dy(const conv_state *cs, const float *dy, float *pad)
{
    const direct_plan *d = &cs->d;
    const int P = cs->P, z = (cs->kh - 1) * cs->OW;
    const __m512 zero = _mm512_setzero_ps();
    for (int f = 0; f < cs->F; f++) {
        float *o = pad + (size_t)f * d->pad_plane;
        const float *src = dy + (size_t)f * P;
        for (int i = 0; i < z; i += 16) _mm512_mask_storeu_ps(o + i, first_lanes(z - i), zero);
        for (int i = 0; i < P; i += 16)
            _mm512_mask_storeu_ps(o + z + i, first_lanes(P - i), _mm512_maskz_loadu_ps(first_lanes(P - i), src + i));
        for (int i = 0; i < z; i += 16) _mm512_mask_storeu_ps(o + z + P + i, first_lanes(z - i), zero);
    }
    _mm512_storeu_ps(pad + (size_t)cs->F * d->pad_plane, zero);
}

/* dx [C][H][W] (+)= sum_kx g[c][kx][(iy + pt)*OW + ix + pl - kx] over valid ox.
 * Up to 8 kx per pass with their masks fixed, summed in registers: one store per
 * row and no load of what the last row stored (an overlapping masked store makes
 * that load wait). */
static void direct_reduce_g(const conv_state *cs, const float *g, float *dx, int acc)
{
    const direct_plan *d = &cs->d;
    const int H = cs->H, W = cs->W, OW = cs->OW, kw = cs->kw, rows = cs->C * H;
    for (int i = 0; i < W; i += 16) {
        const __mmask16 out = first_lanes(W - i);
        for (int k0 = 0; k0 < kw; k0 += 8) {
            const int nk = kw - k0 < 8 ? kw - k0 : 8, add = acc || k0 > 0;
            __mmask16 m[8];
            int shift[8];
            for (int j = 0; j < nk; j++) {
                shift[j] = cs->pl - (k0 + j); /* ox = ix + shift */
                int lo = -shift[j] > i ? -shift[j] : i, hi = OW - shift[j] < i + 16 ? OW - shift[j] : i + 16;
                hi = hi < W ? hi : W;
                m[j] = hi > lo ? (__mmask16)(((1u << (hi - lo)) - 1) << (lo - i)) : 0;
            }
            for (int r = 0; r < rows; r++) {
                const int c = r / H, iy = r % H;
                const float *src = g + (size_t)(c * kw + k0) * d->xk_plane + (size_t)(iy + cs->pt) * OW + i;
                float *o = dx + (size_t)r * W + i;
                __m512 v = add ? _mm512_maskz_loadu_ps(out, o) : _mm512_setzero_ps();
                for (int j = 0; j < nk; j++) /* masked lanes never fault */
                    v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m[j], src + (size_t)j * d->xk_plane + shift[j]));
                _mm512_mask_storeu_ps(o, out, v);
            }
        }
    }
}

/* wf[g][k][j] = w[g*8 + j][k] (0 past F): the forward's broadcast order. */
static void direct_pack_forward(const conv_state *cs, const float *w, float *wf)
{
    const int K = cs->K;
    for (int g = 0; g * TILE_F < cs->F; g++)
        for (int k = 0; k < K; k++)
            for (int j = 0; j < TILE_F; j++) {
                int f = g * TILE_F + j;
                wf[((size_t)g * K + k) * TILE_F + j] = f < cs->F ? w[(size_t)f * K + k] : 0.0f;
            }
}

/* wb[g][(f, ky)][j] = w[f][c][ky][kx] for output channel 8g + j = c*kw + kx of g
 * (0 past C*kw): the input gradient's broadcast order. */
static void direct_pack_backward(const conv_state *cs, const float *w, float *wb)
{
    const int kh = cs->kh, kw = cs->kw, taps = cs->F * kh, outs = cs->C * kw;
    for (int g = 0; g * TILE_F < outs; g++)
        for (int f = 0; f < cs->F; f++)
            for (int ky = 0; ky < kh; ky++)
                for (int j = 0; j < TILE_F; j++) {
                    int o = g * TILE_F + j, c = o / kw, kx = o % kw;
                    wb[((size_t)g * taps + f * kh + ky) * TILE_F + j] =
                        o < outs ? w[(((size_t)f * cs->C + c) * kh + ky) * kw + kx] : 0.0f;
                }
}

static inline __attribute__((always_inline)) void direct_store(float *dst, __mmask16 m, __m512 r,
                                                               int accumulate)
{
    if (accumulate) r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(m, dst));
    _mm512_mask_storeu_ps(dst, m, r);
}

/* out[j][p0 .. p0 + 16*nv) (+)= bias[j] + sum_t wp[t][j] * in[off[t] + p], for the
 * first `rows` of 8 channels; out rows are P apart, lanes past P are not stored. */
static inline __attribute__((always_inline)) void direct_tile(const float *in, const int *off, int taps,
                                                              const float *wp, const float *bias8,
                                                              float *out, int P, int rows, int p0,
                                                              const int nv, int accumulate, const int full)
{
    __m512 a[TILE_F][TILE_V];
#pragma GCC unroll 8
    for (int j = 0; j < TILE_F; j++)
#pragma GCC unroll 3
        for (int v = 0; v < nv; v++) a[j][v] = _mm512_set1_ps(bias8[j]);
    for (int t = 0; t < taps; t++) {
        const float *src = in + off[t] + p0;
        const float *wt = wp + (size_t)t * TILE_F;
        __m512 x[TILE_V];
#pragma GCC unroll 3
        for (int v = 0; v < nv; v++) x[v] = _mm512_loadu_ps(src + 16 * v);
#pragma GCC unroll 8
        for (int j = 0; j < TILE_F; j++) {
            __m512 wj = _mm512_set1_ps(wt[j]);
#pragma GCC unroll 3
            for (int v = 0; v < nv; v++) a[j][v] = _mm512_fmadd_ps(wj, x[v], a[j][v]);
        }
    }
    __mmask16 m[TILE_V];
#pragma GCC unroll 3
    for (int v = 0; v < nv; v++) m[v] = first_lanes(P - p0 - 16 * v);
#pragma GCC unroll 8
    for (int j = 0; j < TILE_F; j++)
        if (full || j < rows) /* full: constant indices, the accumulators stay in registers */
#pragma GCC unroll 3
            for (int v = 0; v < nv; v++) direct_store(out + (size_t)j * P + p0 + 16 * v, m[v], a[j][v], accumulate);
}

/* out [nout, P] (+)= bias + conv of `in` through taps: all tiles of one sample. */
static void direct_run(const float *in, const int *off, int taps, const float *wpack,
                       const float *bias, float *out, int nout, int P, int accumulate)
{
    const int nvec = (P + 15) / 16;
    for (int g = 0; g * TILE_F < nout; g++) {
        int rows = nout - g * TILE_F < TILE_F ? nout - g * TILE_F : TILE_F;
        float bias8[TILE_F] = {0};
        if (bias)
            for (int j = 0; j < rows; j++) bias8[j] = bias[g * TILE_F + j];
        const float *wg = wpack + (size_t)g * taps * TILE_F;
        float *og = out + (size_t)g * TILE_F * P;
        /* each call a constant shape, so each inlined copy keeps its tile in registers */
#define TILES(full)                                                                                \
    do {                                                                                           \
        int v = 0;                                                                                 \
        for (; v + 3 <= nvec; v += 3) direct_tile(in, off, taps, wg, bias8, og, P, rows, 16 * v, 3, accumulate, full); \
        if (nvec - v == 2) direct_tile(in, off, taps, wg, bias8, og, P, rows, 16 * v, 2, accumulate, full); \
        else if (nvec - v == 1) direct_tile(in, off, taps, wg, bias8, og, P, rows, 16 * v, 1, accumulate, full); \
    } while (0)
        if (rows == TILE_F) TILES(1);
        else TILES(0);
#undef TILES
    }
}

/* The weight gradient runs along the filters instead: with dY of a sample in
 * filter groups of 8, dyt[g][p][j] = dY[8g + j][p], each position p gives
 *   dW^T[k][8g .. 8g+8) += xk[off[k] + p] * dyt[g][p]   (a broadcast times a vector)
 * so a tile of up to 24 (tap, group) accumulators runs over all positions with no
 * horizontal sums, reading one sample's copies and dyt from L1. 8-float vectors:
 * on this CPU (Zen 4: 512-bit FMAs are two 256-bit halves) they cost no FLOPs and
 * fit MNIST's 8 and 16 filters exactly. */

/* dyt [G][P][8] from dy [F][P] (filters past F read 0): 8x8 transposes, whole
 * blocks with constant indices (registers only), then the tail. */
static void direct_transpose_dy(const float *dy, int F, int P, float *dyt)
{
    for (int g = 0; g * 8 < F; g++) {
        const float *rows[8];
        for (int j = 0; j < 8; j++) rows[j] = dy + (size_t)(8 * g + (8 * g + j < F ? j : 0)) * P;
        const int live = F - 8 * g; /* rows past F read as 0 */
        float *dst = dyt + (size_t)g * P * 8;
        int p0 = 0;
        for (; p0 + 8 <= P; p0 += 8) {
            __m256 r[8], o[8];
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++) r[j] = j < live ? _mm256_loadu_ps(rows[j] + p0) : _mm256_setzero_ps();
            transpose8(r, o);
#pragma GCC unroll 8
            for (int i = 0; i < 8; i++) _mm256_storeu_ps(dst + 8 * (p0 + i), o[i]);
        }
        if (p0 < P) {
            __mmask8 m = (__mmask8)((1u << (P - p0)) - 1);
            __m256 r[8], o[8];
            for (int j = 0; j < 8; j++) r[j] = j < live ? _mm256_maskz_loadu_ps(m, rows[j] + p0) : _mm256_setzero_ps();
            transpose8(r, o);
            for (int i = 0; p0 + i < P; i++) _mm256_storeu_ps(dst + 8 * (p0 + i), o[i]);
        }
    }
}

/* acc[k][8g + j] += sum_p xs[off[k] + p] * dyt[g][p][j] for kt taps from k0 and gb
 * groups from g0 (acc rows are G8 floats). */
static inline __attribute__((always_inline)) void wgrad_tile(const float *xs, const int *off, int k0,
                                                             const float *dyt, int P, int g0, float *acc,
                                                             int G8, const int kt, const int gb)
{
    __m256 a[24][2];
    const float *xr[24];
#pragma GCC unroll 24
    for (int i = 0; i < kt; i++) {
        xr[i] = xs + off[k0 + i];
#pragma GCC unroll 2
        for (int b = 0; b < gb; b++) a[i][b] = _mm256_loadu_ps(acc + (size_t)(k0 + i) * G8 + 8 * (g0 + b));
    }
    const float *g0p = dyt + (size_t)g0 * P * 8, *g1p = g0p + (size_t)P * 8;
    for (int p = 0; p < P; p++) {
        __m256 g[2];
        g[0] = _mm256_loadu_ps(g0p + 8 * p);
        if (gb > 1) g[1] = _mm256_loadu_ps(g1p + 8 * p);
#pragma GCC unroll 24
        for (int i = 0; i < kt; i++) {
            __m256 xv = _mm256_broadcast_ss(xr[i] + p);
#pragma GCC unroll 2
            for (int b = 0; b < gb; b++) a[i][b] = _mm256_fmadd_ps(xv, g[b], a[i][b]);
        }
    }
#pragma GCC unroll 24
    for (int i = 0; i < kt; i++)
#pragma GCC unroll 2
        for (int b = 0; b < gb; b++) _mm256_storeu_ps(acc + (size_t)(k0 + i) * G8 + 8 * (g0 + b), a[i][b]);
}

/* All taps for groups [g0, g0 + gb): the largest tiles that fit, none wasted. */
static void wgrad_taps(const float *xs, const int *off, int K, const float *dyt, int P, int g0, float *acc,
                       int G8, int gb)
{
    for (int k0 = 0; k0 < K;) {
        int r = K - k0;
        if (gb == 2) {
            if (r >= 12) { wgrad_tile(xs, off, k0, dyt, P, g0, acc, G8, 12, 2); k0 += 12; }
            else if (r >= 9) { wgrad_tile(xs, off, k0, dyt, P, g0, acc, G8, 9, 2); k0 += 9; }
            else if (r >= 6) { wgrad_tile(xs, off, k0, dyt, P, g0, acc, G8, 6, 2); k0 += 6; }
            else if (r >= 3) { wgrad_tile(xs, off, k0, dyt, P, g0, acc, G8, 3, 2); k0 += 3; }
            else { wgrad_tile(xs, off, k0, dyt, P, g0, acc, G8, 1, 2); k0 += 1; }
        } else {
            if (r >= 24) { wgrad_tile(xs, off, k0, dyt, P, g0, acc, G8, 24, 1); k0 += 24; }
            else if (r >= 12) { wgrad_tile(xs, off, k0, dyt, P, g0, acc, G8, 12, 1); k0 += 12; }
            else if (r >= 9) { wgrad_tile(xs, off, k0, dyt, P, g0, acc, G8, 9, 1); k0 += 9; }
            else if (r >= 6) { wgrad_tile(xs, off, k0, dyt, P, g0, acc, G8, 6, 1); k0 += 6; }
            else if (r >= 3) { wgrad_tile(xs, off, k0, dyt, P, g0, acc, G8, 3, 1); k0 += 3; }
            else { wgrad_tile(xs, off, k0, dyt, P, g0, acc, G8, 1, 1); k0 += 1; }
        }
    }
}

/* ---- the row kernels: one input channel, 3x3, no padding ----------------------
 *
 * The first conv of a grayscale net (MNIST's conv1: 28x28 -> 26x26, 8 filters) has
 * one channel, so the shifted copies above cost about as much as its arithmetic.
 * Here every output row is two vectors (OW <= 32) computed straight from the input:
 * tap (ky, kx) of output row oy is the contiguous x[(oy + ky)*W + kx ..]. Both
 * kernels walk the input rows, two filters at a time: input row i meets output (or
 * dY) row i - ky for ky = 0..2, so each row is loaded once and the three rows it
 * meets stay in registers. */

/* One input row of the forward walk for a filter pair on 16 columns: input row i adds
 * its taps of row ky to output row i - ky, held in a[f][ky], for ky in [klo, khi]
 * (constants: the first and last two rows reach fewer output rows). */
static inline __attribute__((always_inline)) void rows_forward_row(const float *xr, __m512 w[2][9], __m512 a[2][3],
                                                                   const int klo, const int khi)
{
#pragma GCC unroll 3
    for (int kx = 0; kx < 3; kx++) {
        const __m512 xv = _mm512_loadu_ps(xr + kx);
#pragma GCC unroll 3
        for (int ky = klo; ky <= khi; ky++) {
            a[0][ky] = _mm512_fmadd_ps(w[0][ky * 3 + kx], xv, a[0][ky]);
            a[1][ky] = _mm512_fmadd_ps(w[1][ky * 3 + kx], xv, a[1][ky]);
        }
    }
}

/* Before input row i: the output rows move down a[f][ky] (row i - ky) and row i
 * starts at the bias. */
static inline __attribute__((always_inline)) void rows_forward_shift(__m512 a[2][3], const __m512 bias[2])
{
#pragma GCC unroll 2
    for (int f = 0; f < 2; f++) {
        a[f][2] = a[f][1];
        a[f][1] = a[f][0];
        a[f][0] = bias[f];
    }
}

/* After input row i (>= 2): output row oy = i - 2 is whole (the second filter's only
 * if there is one). */
static inline __attribute__((always_inline)) void rows_forward_store(float *const ys[2], int oy, int OW, int two,
                                                                     __m512 a[2][3])
{
    _mm512_storeu_ps(ys[0] + (size_t)oy * OW, a[0][2]);
    if (two) _mm512_storeu_ps(ys[1] + (size_t)oy * OW, a[1][2]);
}

/* y [F][OH][OW] = bias + conv(x [OH + 2][W]) for one sample, w [F][9] as given. Two
 * filters at a time, their 18 weights in registers, on 16 columns at a time: columns
 * 0-15, then OW-16 .. OW-1 (the overlap computed twice, the same values stored
 * twice, so every load and store is a whole vector inside its row). It walks the
 * input rows, each loaded once per filter pair and used for the three output rows
 * it reaches (a[f][ky], 6 accumulators): 3 loads per 18 FMAs, no broadcasts. */
static void rows_forward(const conv_state *cs, const float *w, const float *b, const float *x, float *y)
{
    const int F = cs->F, W = cs->W, OW = cs->OW, OH = cs->OH, P = cs->P;
    for (int f0 = 0; f0 < F; f0 += 2) {
        const int two = f0 + 1 < F, f1 = two ? f0 + 1 : f0;
        __m512 wv[2][9], a[2][3];
        const __m512 bias[2] = {_mm512_set1_ps(b ? b[f0] : 0.0f), _mm512_set1_ps(b ? b[f1] : 0.0f)};
#pragma GCC unroll 9
        for (int t = 0; t < 9; t++) {
            wv[0][t] = _mm512_set1_ps(w[(size_t)f0 * 9 + t]);
            wv[1][t] = _mm512_set1_ps(w[(size_t)f1 * 9 + t]);
        }
        for (int c0 = 0; c0 < OW; c0 = c0 ? OW : OW - 16) {
            const float *xr = x + c0;
            float *const ys[2] = {y + (size_t)f0 * P + c0, y + (size_t)f1 * P + c0};
            rows_forward_shift(a, bias);
            rows_forward_row(xr, wv, a, 0, 0);
            if (OH == 1) { /* rows 1 and 2 reach output row 0 only */
                rows_forward_shift(a, bias);
                rows_forward_row(xr + W, wv, a, 1, 1);
                rows_forward_shift(a, bias);
                rows_forward_row(xr + 2 * W, wv, a, 2, 2);
                rows_forward_store(ys, 0, OW, two, a);
                continue;
            }
            rows_forward_shift(a, bias);
            rows_forward_row(xr + W, wv, a, 0, 1);
            for (int i = 2; i < OH; i++) {
                rows_forward_shift(a, bias);
                rows_forward_row(xr + (size_t)i * W, wv, a, 0, 2);
                rows_forward_store(ys, i - 2, OW, two, a);
            }
            rows_forward_shift(a, bias);
            rows_forward_row(xr + (size_t)OH * W, wv, a, 1, 2);
            rows_forward_store(ys, OH - 2, OW, two, a);
            rows_forward_shift(a, bias);
            rows_forward_row(xr + (size_t)(OH + 1) * W, wv, a, 2, 2);
            rows_forward_store(ys, OH - 1, OW, two, a);
        }
    }
}

/* One input row's products for the weight gradient of a filter pair, on one half of
 * the row (lanes of m): input row i meets dY row i - ky in d[f][ky], for ky in
 * [klo, khi] (constants: the first and last two rows meet fewer dY rows). */
static inline __attribute__((always_inline)) void rows_wgrad_row(const float *xr, __mmask16 m,
                                                                 __m512 d[2][3], __m512 acc[2][9],
                                                                 const int klo, const int khi)
{
#pragma GCC unroll 3
    for (int kx = 0; kx < 3; kx++) {
        const __m512 xv = _mm512_maskz_loadu_ps(m, xr + kx);
#pragma GCC unroll 3
        for (int ky = klo; ky <= khi; ky++) {
            acc[0][ky * 3 + kx] = _mm512_fmadd_ps(xv, d[0][ky], acc[0][ky * 3 + kx]);
            acc[1][ky * 3 + kx] = _mm512_fmadd_ps(xv, d[1][ky], acc[1][ky * 3 + kx]);
        }
    }
}

/* Input row i of the walk below: dY row i (zero past OH) enters d[f][0], the older
 * rows move down, and db takes it. */
static inline __attribute__((always_inline)) void rows_next_dy(__m512 d[2][3], __m512 bsum[2], const float *const dys[2],
                                                               int i, int OH, int OW, __mmask16 m)
{
#pragma GCC unroll 2
    for (int f = 0; f < 2; f++) {
        d[f][2] = d[f][1];
        d[f][1] = d[f][0];
        d[f][0] = i < OH ? _mm512_maskz_loadu_ps(m, dys[f] + (size_t)i * OW) : _mm512_setzero_ps();
        bsum[f] = _mm512_add_ps(bsum[f], d[f][0]);
    }
}

/* part [10][G8] = dW^T (9 taps) and db of samples [s0, s1), the layout of
 * direct_weight_grad. Two filters at a time, each row half (16 columns, then the
 * rest) by itself: 18 tap and 2 bias accumulators summed over the whole slice before
 * one horizontal sum each. It walks the input rows and keeps the last three dY rows
 * of each filter in registers (d[f][ky] = dY row i - ky), so every input and dY
 * vector is loaded once per filter pair and half: 5 loads per 18 FMAs. */
static void rows_weight_grad(const conv_state *cs, const float *x, const float *dy, int s0, int s1,
                             float *part)
{
    const int F = cs->F, W = cs->W, OW = cs->OW, OH = cs->OH, P = cs->P, G8 = (F + 7) / 8 * 8;
    const size_t in_sz = (size_t)cs->H * W;
    memset(part, 0, 10 * (size_t)G8 * sizeof(float));
    for (int f0 = 0; f0 < F; f0 += 2) {
        const int two = f0 + 1 < F;
        __m512 acc[2][9], bsum[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
#pragma GCC unroll 9
        for (int t = 0; t < 9; t++) acc[0][t] = acc[1][t] = _mm512_setzero_ps();
        for (int s = s0; s < s1; s++)
            for (int h = 0; h < 2; h++) {
                const __mmask16 m = first_lanes(OW - 16 * h);
                const float *xs = x + (size_t)s * in_sz + 16 * h;
                const float *da = dy + ((size_t)s * F + f0) * P + 16 * h, *const dys[2] = {da, two ? da + P : da};
                __m512 d[2][3];
                d[0][0] = d[1][0] = d[0][1] = d[1][1] = _mm512_setzero_ps(); /* rows -1, -2 */
                rows_next_dy(d, bsum, dys, 0, OH, OW, m);
                rows_wgrad_row(xs, m, d, acc, 0, 0);
                if (OH == 1) { /* rows 1 and 2 meet dY row 0 only */
                    rows_next_dy(d, bsum, dys, 1, OH, OW, m);
                    rows_wgrad_row(xs + W, m, d, acc, 1, 1);
                    rows_next_dy(d, bsum, dys, 2, OH, OW, m);
                    rows_wgrad_row(xs + 2 * W, m, d, acc, 2, 2);
                    continue;
                }
                rows_next_dy(d, bsum, dys, 1, OH, OW, m);
                rows_wgrad_row(xs + W, m, d, acc, 0, 1);
                for (int i = 2; i < OH; i++) {
                    rows_next_dy(d, bsum, dys, i, OH, OW, m);
                    rows_wgrad_row(xs + (size_t)i * W, m, d, acc, 0, 2);
                }
                rows_next_dy(d, bsum, dys, OH, OH, OW, m);
                rows_wgrad_row(xs + (size_t)OH * W, m, d, acc, 1, 2);
                rows_next_dy(d, bsum, dys, OH + 1, OH, OW, m);
                rows_wgrad_row(xs + (size_t)(OH + 1) * W, m, d, acc, 2, 2);
            }
#pragma GCC unroll 9
        for (int t = 0; t < 9; t++) {
            part[(size_t)t * G8 + f0] = _mm512_reduce_add_ps(acc[0][t]);
            if (two) part[(size_t)t * G8 + f0 + 1] = _mm512_reduce_add_ps(acc[1][t]);
        }
        part[(size_t)9 * G8 + f0] = _mm512_reduce_add_ps(bsum[0]);
        if (two) part[(size_t)9 * G8 + f0 + 1] = _mm512_reduce_add_ps(bsum[1]);
    }
}

/* part [K + 1][G8] = dW^T of samples [s0, s1) and, in its last row, db. Each
 * sample's shifted copies are made again here, into this thread's xk: keeping
 * forward's for every sample of the largest batch (evaluation's) cost more memory
 * than the copy costs time. */
static void direct_weight_grad(const conv_state *cs, const float *x, const float *dy, int s0,
                               int s1, float *part, float *dyt, float *xs)
{
    const int F = cs->F, K = cs->K, P = cs->P, G = (F + 7) / 8, G8 = 8 * G;
    const size_t in_sz = (size_t)cs->C * cs->H * cs->W;
    memset(part, 0, ((size_t)K + 1) * G8 * sizeof(float));
    for (int s = s0; s < s1; s++) {
        direct_copy_input(cs, x + (size_t)s * in_sz, xs);
        direct_transpose_dy(dy + (size_t)s * F * P, F, P, dyt);
        for (int g = 0; g < G; g += 2) wgrad_taps(xs, cs->d.fwd_off, K, dyt, P, g, part, G8, G - g >= 2 ? 2 : 1);
        for (int g = 0; g < G; g++) { /* db: four chains, not one long one */
            const float *r = dyt + (size_t)g * P * 8;
            __m256 b[4] = {_mm256_loadu_ps(part + (size_t)K * G8 + 8 * g), _mm256_setzero_ps(),
                           _mm256_setzero_ps(), _mm256_setzero_ps()};
            int p = 0;
            for (; p + 4 <= P; p += 4)
#pragma GCC unroll 4
                for (int u = 0; u < 4; u++) b[u] = _mm256_add_ps(b[u], _mm256_loadu_ps(r + 8 * (p + u)));
            for (; p < P; p++) b[0] = _mm256_add_ps(b[0], _mm256_loadu_ps(r + 8 * p));
            _mm256_storeu_ps(part + (size_t)K * G8 + 8 * g,
                             _mm256_add_ps(_mm256_add_ps(b[0], b[1]), _mm256_add_ps(b[2], b[3])));
        }
    }
}
#endif

static int is_int_text(const char *s)
{
    if (*s == '-' || *s == '+') s++;
    if (!*s) return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9') return 0;
    return 1;
}

/* padding -> pad[4] = top, bottom, left, right; *same set when written as `same`. */
static lp_status read_padding(lp_node *n, int pad[4], int *same)
{
    int p[2] = {0, 0};
    *same = 0;
    if (lp_attr_present(n, "padding") && !lp_attr_is_list(n, "padding")) {
        const char *s;
        lp_status st = lp_attr_string(n, "padding", "0", &s);
        if (st) return st;
        if (!strcmp(s, "same")) { *same = 1; return LP_OK; }
        if (!strcmp(s, "valid")) { memset(pad, 0, 4 * sizeof *pad); return LP_OK; }
        if (!is_int_text(s))
            return lp_node_fail_attr(n, "padding",
                                     "padding must be an integer, [h, w], 'same' or 'valid', got '%s'", s);
    }
    lp_status st = lp_attr_pair(n, "padding", 0, p);
    if (st) return st;
    if (p[0] < 0 || p[1] < 0)
        return lp_node_fail_attr(n, "padding", "padding must not be negative, got [%d, %d]", p[0], p[1]);
    pad[0] = pad[1] = p[0];
    pad[2] = pad[3] = p[1];
    return LP_OK;
}

/* "0", "1x2" or "same (0 top, 1 bottom, ...)" for messages. */
static const char *pad_str(const int pad[4], int same, char *buf, size_t size)
{
    if (pad[0] == pad[1] && pad[2] == pad[3] && pad[0] == pad[2])
        snprintf(buf, size, "%s%d", same ? "same = " : "", pad[0]);
    else
        snprintf(buf, size, "%stop %d, bottom %d, left %d, right %d", same ? "same = " : "", pad[0],
                 pad[1], pad[2], pad[3]);
    return buf;
}

static lp_status conv_setup(lp_node *n)
{
    int F, k[2], s[2], pad[4] = {0, 0, 0, 0}, same = 0, bias = 1;
    lp_status st = lp_attr_int_required(n, "filters", &F);
    if (!st) st = lp_attr_pair_required(n, "kernel", k);
    if (!st) st = lp_attr_pair(n, "stride", 1, s);
    if (!st) st = read_padding(n, pad, &same);
    if (!st) st = lp_attr_bool(n, "bias", 1, &bias);
    if (st) return st;
    if (F < 1) return lp_node_fail_attr(n, "filters", "filters must be at least 1, got %d", F);
    if (k[0] < 1 || k[1] < 1)
        return lp_node_fail_attr(n, "kernel", "kernel must be at least 1x1, got %dx%d", k[0], k[1]);
    if (s[0] < 1 || s[1] < 1)
        return lp_node_fail_attr(n, "stride", "stride must be at least 1, got %dx%d", s[0], s[1]);
    lp_shape in = lp_node_in_shape(n, 0);
    char buf[96];
    if (in.ndim != 3)
        return lp_node_fail(n, "expects a [C, H, W] input, got %s",
                            lp_shape_str(in, buf, sizeof buf));
    int C = in.dims[0], H = in.dims[1], W = in.dims[2];
    if (same) {
        /* Output ceil(H / s); the padding that takes, the odd pixel at the end.
         * In 64 bits: H + s - 1 overflows an int for a stride near 2^31. Since
         * (oh - 1) * s < H, th < kernel, so the padding fits in an int. */
        long long oh = ((long long)H + s[0] - 1) / s[0], ow = ((long long)W + s[1] - 1) / s[1];
        long long th = (oh - 1) * s[0] + k[0] - H, tw = (ow - 1) * s[1] + k[1] - W;
        th = th > 0 ? th : 0;
        tw = tw > 0 ? tw : 0;
        pad[0] = (int)(th / 2); pad[1] = (int)(th - th / 2);
        pad[2] = (int)(tw / 2); pad[3] = (int)(tw - tw / 2);
    }
    long long ph = (long long)H + pad[0] + pad[1], pw = (long long)W + pad[2] + pad[3];
    if (k[0] > ph || k[1] > pw)
        return lp_node_fail_attr(n, "kernel", "kernel %dx%d is larger than the %dx%d input (padding %s)",
                                 k[0], k[1], H, W, pad_str(pad, same, buf, sizeof buf));
    /* Each factor is checked against LP_MAX_ELEMENTS (< 2^31) before two are
     * multiplied, so no product overflows 64 bits (a padding or kernel near 2^31
     * used to make OH, K or K*P overflow). */
    long long OHl = (ph - k[0]) / s[0] + 1, OWl = (pw - k[1]) / s[1] + 1;
    long long K = (long long)C * k[0];
    if (K <= LP_MAX_ELEMENTS) K *= k[1];
    if (OHl > LP_MAX_ELEMENTS || OWl > LP_MAX_ELEMENTS || OHl * OWl > LP_MAX_ELEMENTS)
        return lp_node_fail(n, "output %lld x %lld is too large (more than %lld elements per channel)",
                            OHl, OWl, LP_MAX_ELEMENTS);
    int OH = (int)OHl, OW = (int)OWl;
    long long P = OHl * OWl;
    if (K > LP_MAX_ELEMENTS || K * P > LP_MAX_ELEMENTS)
        return lp_node_fail(n, "the unrolled input (%lld x %lld) is too large", K, P);
    if (K * F > LP_MAX_ELEMENTS)
        return lp_node_fail_attr(n, "filters", "the weight [%d, %d, %d, %d] is too large (more than %lld elements)",
                                 F, C, k[0], k[1], LP_MAX_ELEMENTS);
    int direct = 0;
#if CONV_DIRECT
    /* The padded dY planes must stay addressable by int offsets too. */
    long long pad_floats = (long long)F * (P + 2LL * (k[0] - 1) * OW);
    direct = s[0] == 1 && s[1] == 1 && pad_floats <= LP_MAX_ELEMENTS;
#endif
    int wino = 0;
#if CONV_WINOGRAD && LP_CONV_WINOGRAD
    wino = direct && lp_wino_applies(C, F, k[0], k[1], s[0], s[1]);
    if (wino) direct = 0;
#endif
    (void)wino; /* without AVX-512 */
    size_t extra = 0;
#if CONV_DIRECT
    if (direct) extra = direct_state_bytes(C, F, k[0], k[1], OH, OW);
#endif
    conv_state *cs = lp_node_alloc_state(n, sizeof *cs + extra);
    if (!cs) return LP_ERR_NOMEM;
    int chunk = (64 + k[0] * k[1] - 1) / (k[0] * k[1]);
    chunk = chunk < C ? chunk : C;
    /* Regions rounded to 16 floats: every GEMM operand starts 64-byte aligned. */
    size_t part_off = (size_t)(K * P + 15) / 16 * 16;
    size_t dcol_off = part_off + (size_t)(K * F + F + 15) / 16 * 16;
    size_t slot = dcol_off + ((size_t)chunk * k[0] * k[1] * P + 15) / 16 * 16;
    *cs = (conv_state){C, H, W, F, k[0], k[1], s[0], s[1], pad[0], pad[2], OH, OW,
                       (int)K, (int)P, bias, chunk, part_off, dcol_off, slot, direct, {0}, 0, 0, {0}};
#if CONV_DIRECT
    if (direct) {
        /* Per-thread scratch for as many threads as could run (lp_threads may grow
         * after build); backward uses no more threads than that. */
        int tmax = lp_node_threads(n);
#ifdef _OPENMP
        tmax = omp_get_num_procs() > tmax ? omp_get_num_procs() : tmax;
#endif
        tmax = tmax < 1 ? 1 : tmax > 256 ? 256 : tmax;
        direct_plan_init(cs, cs + 1, tmax);
    }
#endif
#if CONV_WINOGRAD
    if (wino) {
        int tmax = lp_node_threads(n); /* as the direct path's */
#ifdef _OPENMP
        tmax = omp_get_num_procs() > tmax ? omp_get_num_procs() : tmax;
#endif
        cs->wino = 1;
        cs->wino_tmax = tmax < 1 ? 1 : tmax > 256 ? 256 : tmax;
        lp_wino_plan_init(&cs->wp, C, H, W, F, pad[0], pad[2], OH, OW);
    }
#endif
    if (lp_node_add_param(n, "weight", lp_shape4(F, C, k[0], k[1]), LP_INIT_HE, (int)K) < 0)
        return LP_ERR_SHAPE;
    if (bias && lp_node_add_param(n, "bias", lp_shape1(F), LP_INIT_ZERO, 0) < 0) return LP_ERR_SHAPE;
    if (direct) lp_node_set_scratch(n, 0, cs->d.fixed * sizeof(float));
#if CONV_WINOGRAD
    else if (wino) /* U, the threads' regions, then each sample's V (forward's, for backward) */
        lp_node_set_scratch(n, cs->wp.vs_size * sizeof(float),
                            (cs->wp.u_size + (size_t)cs->wino_tmax * cs->wp.thread_size) * sizeof(float));
#endif
    else lp_node_set_scratch(n, slot * sizeof(float), 0);
    return lp_node_set_out_shape(n, lp_shape3(F, OH, OW));
}

/* Columns ox with 0 <= ox*sw + kx - pl < W: [*lo, *hi). */
static void valid_cols(const conv_state *cs, int kx, int *lo, int *hi)
{
    int off = kx - cs->pl; /* ix = ox*sw + off */
    int a = off >= 0 ? 0 : (-off + cs->sw - 1) / cs->sw;
    int b = cs->W - off <= 0 ? 0 : (cs->W - off + cs->sw - 1) / cs->sw;
    if (b > cs->OW) b = cs->OW;
    if (a > b) a = b;
    *lo = a;
    *hi = b;
}

/* x [C, H, W] -> col [K, P]; padding reads as 0. */
static void im2col(const conv_state *cs, const float *x, float *col)
{
    const int OW = cs->OW;
    for (int c = 0; c < cs->C; c++)
        for (int ky = 0; ky < cs->kh; ky++)
            for (int kx = 0; kx < cs->kw; kx++) {
                float *row = col + (size_t)((c * cs->kh + ky) * cs->kw + kx) * cs->P;
                int lo, hi;
                valid_cols(cs, kx, &lo, &hi);
                for (int oy = 0; oy < cs->OH; oy++) {
                    float *r = row + (size_t)oy * OW;
                    int iy = oy * cs->sh + ky - cs->pt;
                    if (iy < 0 || iy >= cs->H || lo == hi) {
                        memset(r, 0, (size_t)OW * sizeof(float));
                        continue;
                    }
                    const float *xr = x + ((size_t)c * cs->H + iy) * cs->W + kx - cs->pl;
                    for (int ox = 0; ox < lo; ox++) r[ox] = 0.0f;
                    if (cs->sw == 1) memcpy(r + lo, xr + lo, (size_t)(hi - lo) * sizeof(float));
                    else
                        for (int ox = lo; ox < hi; ox++) r[ox] = xr[ox * cs->sw];
                    for (int ox = hi; ox < OW; ox++) r[ox] = 0.0f;
                }
            }
}

/* dx [C, H, W] += col2im(dcol) for channels [c0, c0 + nc): dcol holds their rows
 * [nc*kh*kw, P]; padding positions are dropped. */
static void col2im_add(const conv_state *cs, const float *dcol, int c0, int nc, float *dx)
{
    const int OW = cs->OW;
    for (int c = c0; c < c0 + nc; c++)
        for (int ky = 0; ky < cs->kh; ky++)
            for (int kx = 0; kx < cs->kw; kx++) {
                const float *row = dcol + (size_t)(((c - c0) * cs->kh + ky) * cs->kw + kx) * cs->P;
                int lo, hi;
                valid_cols(cs, kx, &lo, &hi);
                for (int oy = 0; oy < cs->OH; oy++) {
                    int iy = oy * cs->sh + ky - cs->pt;
                    if (iy < 0 || iy >= cs->H) continue;
                    const float *r = row + (size_t)oy * OW;
                    float *xr = dx + ((size_t)c * cs->H + iy) * cs->W + kx - cs->pl;
                    for (int ox = lo; ox < hi; ox++) xr[ox * cs->sw] += r[ox];
                }
            }
}

/* Threads for N samples: at most one a sample, and at most `held`, the threads the
 * path's per-thread scratch was planned for. */
static int threads_for(const lp_node *n, int N, int held)
{
    int t = lp_node_threads(n);
    t = t > held ? held : t;
    return t < 1 ? 1 : t > N ? N : t;
}

static void im2col_forward(lp_node *n, const conv_state *cs)
{
    const int N = lp_node_batch(n), F = cs->F, K = cs->K, P = cs->P;
    const float *x = lp_node_in(n, 0);    /* [N, C, H, W] */
    const float *w = lp_node_param(n, 0); /* [F, K] */
    const float *b = cs->bias ? lp_node_param(n, 1) : NULL;
    float *y = lp_node_out(n);            /* [N, F, P] */
    float *scratch = lp_node_scratch(n);
    const size_t in_sz = (size_t)cs->C * cs->H * cs->W;
    const int T = threads_for(n, N, N); /* scratch per sample */
#pragma omp parallel for schedule(static) num_threads(T) if (T > 1)
    for (int s = 0; s < N; s++) {
        float *col = scratch + (size_t)s * cs->slot;
        float *ys = y + (size_t)s * F * P;
        im2col(cs, x + (size_t)s * in_sz, col);
        if (b)
            for (int f = 0; f < F; f++)
                for (int p = 0; p < P; p++) ys[(size_t)f * P + p] = b[f];
        lp_sgemm(false, false, F, P, K, 1.0f, w, K, col, P, b ? 1.0f : 0.0f, ys, P);
    }
}

static void im2col_backward(lp_node *n, const conv_state *cs)
{
    const int N = lp_node_batch(n), F = cs->F, K = cs->K, P = cs->P;
    const float *w = lp_node_param(n, 0);
    float *dw = lp_node_param_grad(n, 0);
    float *db = cs->bias ? lp_node_param_grad(n, 1) : NULL;
    const float *dy = lp_node_out_grad(n); /* [N, F, P] */
    float *dx = lp_node_in_grad(n, 0);     /* [N, C, H, W] or NULL (the image) */
    const int acc = lp_node_in_grad_accumulate(n, 0);
    float *scratch = lp_node_scratch(n);
    const size_t in_sz = (size_t)cs->C * cs->H * cs->W;
    const size_t part_off = cs->part_off;
    const int khw = cs->kh * cs->kw;
    const int T = threads_for(n, N, N); /* scratch per sample */
#pragma omp parallel num_threads(T) if (T > 1)
    {
        int nt;
        long s0, s1;
        const int t = lp_thread_share(N, &nt, &s0, &s1);
        float *pw = scratch + (size_t)t * cs->slot + part_off; /* [F, K] */
        float *pb = pw + (size_t)F * K;                          /* [F] */
        float *dcol = scratch + (size_t)t * cs->slot + cs->dcol_off;
        for (int s = s0; s < s1; s++) {
            float *col = scratch + (size_t)s * cs->slot;
            const float *dys = dy + (size_t)s * F * P;
            /* dW[F,K] (+)= dY[F,P] col^T[P,K] */
            lp_sgemm(false, true, F, K, P, 1.0f, dys, P, col, P, s == s0 ? 0.0f : 1.0f, pw, K);
            if (db)
                for (int f = 0; f < F; f++) {
                    float sum = 0.0f;
                    for (int p = 0; p < P; p++) sum += dys[(size_t)f * P + p];
                    pb[f] = s == s0 ? sum : pb[f] + sum;
                }
            if (dx) {
                float *dxs = dx + (size_t)s * in_sz;
                if (!acc) memset(dxs, 0, in_sz * sizeof(float));
                /* dcol[K,P] = W^T[K,F] dY[F,P], a chunk of channels at a time. */
                for (int c0 = 0; c0 < cs->C; c0 += cs->chunk) {
                    int nc = cs->C - c0 < cs->chunk ? cs->C - c0 : cs->chunk;
                    lp_sgemm(true, false, nc * khw, P, F, 1.0f, w + (size_t)c0 * khw, K, dys, P,
                             0.0f, dcol, P);
                    col2im_add(cs, dcol, c0, nc, dxs);
                }
            }
        }
        if (s0 == s1) { /* an empty share still owns a slot that the sum below reads */
            memset(pw, 0, ((size_t)F * K + F) * sizeof(float));
        }
#pragma omp barrier
        /* Sum the partials in thread order: fixed for a fixed thread count. */
#pragma omp for schedule(static)
        for (int e = 0; e < F * K + F; e++) {
            if (e >= F * K && !db) continue;
            float sum = 0.0f;
            for (int u = 0; u < nt; u++) sum += scratch[(size_t)u * cs->slot + part_off + e];
            if (e < F * K) dw[e] += sum;
            else db[e - F * K] += sum;
        }
    }
}

#if CONV_DIRECT
static void direct_forward(lp_node *n, const conv_state *cs)
{
    const direct_plan *d = &cs->d;
    const int N = lp_node_batch(n), F = cs->F, P = cs->P;
    const float *x = lp_node_in(n, 0);    /* [N, C, H, W] */
    const float *w = lp_node_param(n, 0); /* [F, C, kh, kw] */
    const float *b = cs->bias ? lp_node_param(n, 1) : NULL;
    float *y = lp_node_out(n);            /* [N, F, P] */
    float *scratch = lp_node_scratch(n);
    float *wf = scratch, *aux0 = scratch + d->wf_size + d->wb_size;
    const size_t in_sz = (size_t)cs->C * cs->H * cs->W, xk_at = d->aux - d->xk_size;
    if (!d->rows) direct_pack_forward(cs, w, wf); /* the row kernels read w as it is */
    const int T = threads_for(n, N, d->tmax);
#pragma omp parallel num_threads(T) if (T > 1)
    {
        int nt;
        long s0, s1;
        const int t = lp_thread_share(N, &nt, &s0, &s1);
        float *xk = aux0 + (size_t)t * d->aux + xk_at;
        for (int s = s0; s < s1; s++) {
            if (d->rows) {
                rows_forward(cs, w, b, x + (size_t)s * in_sz, y + (size_t)s * F * P);
                continue;
            }
            direct_copy_input(cs, x + (size_t)s * in_sz, xk);
            direct_run(xk, d->fwd_off, cs->K, wf, b, y + (size_t)s * F * P, F, P, 0);
        }
    }
}

static void direct_backward(lp_node *n, const conv_state *cs)
{
    const direct_plan *d = &cs->d;
    const int N = lp_node_batch(n), F = cs->F, K = cs->K, P = cs->P, G8 = (F + 7) / 8 * 8;
    const float *w = lp_node_param(n, 0);
    float *dw = lp_node_param_grad(n, 0);
    float *db = cs->bias ? lp_node_param_grad(n, 1) : NULL;
    const float *dy = lp_node_out_grad(n); /* [N, F, P] */
    float *dx = lp_node_in_grad(n, 0);     /* [N, C, H, W] or NULL (the image) */
    const int acc = lp_node_in_grad_accumulate(n, 0);
    float *scratch = lp_node_scratch(n);
    float *wb = scratch + d->wf_size, *aux0 = wb + d->wb_size;
    const float *x = lp_node_in(n, 0);     /* [N, C, H, W] */
    const size_t part_at = d->pad_size + d->g_size;
    if (dx) direct_pack_backward(cs, w, wb);
    const int T = threads_for(n, N, d->tmax);
#pragma omp parallel num_threads(T) if (T > 1)
    {
        int nt;
        long s0, s1;
        const int t = lp_thread_share(N, &nt, &s0, &s1);
        float *pad = aux0 + (size_t)t * d->aux, *g = pad + d->pad_size, *part = aux0 + (size_t)t * d->aux + part_at;
        float *dyt = part + d->part_size;
        if (dx) {
            /* g of sample s is reduced only after g of s + 1 is computed: a load
             * right after the stores it overlaps waits for them to retire. */
            const size_t gsz = d->g_size / 2, in_sz = (size_t)cs->C * cs->H * cs->W;
            for (int s = s0; s <= s1; s++) {
                float *gs = g + (size_t)(s & 1) * gsz;
                if (s < s1) {
                    direct_pad_dy(cs, dy + (size_t)s * F * P, pad);
                    direct_run(pad, d->bwd_off, F * cs->kh, wb, NULL, gs, cs->C * cs->kw, (int)d->xk_plane, 0);
                }
                if (s > s0) direct_reduce_g(cs, g + (size_t)((s - 1) & 1) * gsz, dx + (size_t)(s - 1) * in_sz, acc);
            }
        }
        if (d->rows) rows_weight_grad(cs, x, dy, s0, s1, part);
        else direct_weight_grad(cs, x, dy, s0, s1, part, dyt, dyt + d->dyt_size);
#pragma omp barrier
        /* Sum the partials in thread order: fixed for a fixed thread count. */
#pragma omp for schedule(static)
        for (int e = 0; e < F * K + F; e++) {
            if (e >= F * K && !db) continue;
            /* dw[f][k] is part[k][f]; db[f] is part[K][f] */
            size_t at = e < F * K ? (size_t)(e % K) * G8 + e / K : (size_t)K * G8 + (e - F * K);
            float sum = 0.0f;
            for (int u = 0; u < nt; u++) sum += aux0[(size_t)u * d->aux + part_at + at];
            if (e < F * K) dw[e] += sum;
            else db[e - F * K] += sum;
        }
    }
}
#endif

#if CONV_WINOGRAD
/* Winograd F(4x4, 3x3): the same plumbing as the direct path (contiguous samples per
 * thread, per-thread partials summed in thread order), the kernels in
 * conv2d_winograd.c. Scratch: U (or U^T in backward), one region per thread, then
 * per sample its input transform V, written by forward and only read by backward. */
static void wino_forward(lp_node *n, const conv_state *cs)
{
    const lp_wino_plan *p = &cs->wp;
    const int N = lp_node_batch(n), F = cs->F, P = cs->P;
    const float *x = lp_node_in(n, 0);
    const float *b = cs->bias ? lp_node_param(n, 1) : NULL;
    float *y = lp_node_out(n), *scratch = lp_node_scratch(n), *ts0 = scratch + p->u_size;
    float *vs0 = ts0 + (size_t)cs->wino_tmax * p->thread_size;
    const size_t in_sz = (size_t)cs->C * cs->H * cs->W;
    lp_wino_pack_u(p, lp_node_param(n, 0), scratch);
    const int T = threads_for(n, N, cs->wino_tmax);
#pragma omp parallel num_threads(T) if (T > 1)
    {
        int nt;
        long s0, s1;
        const int t = lp_thread_share(N, &nt, &s0, &s1);
        float *ts = ts0 + (size_t)t * p->thread_size;
        for (int s = s0; s < s1; s++)
            lp_wino_forward(p, scratch, b, x + (size_t)s * in_sz, y + (size_t)s * F * P, vs0 + (size_t)s * p->vs_size,
                            ts);
    }
}

static void wino_backward(lp_node *n, const conv_state *cs)
{
    const lp_wino_plan *p = &cs->wp;
    const int N = lp_node_batch(n), F = cs->F, C = cs->C, P = cs->P;
    float *dw = lp_node_param_grad(n, 0);
    float *db = cs->bias ? lp_node_param_grad(n, 1) : NULL;
    const float *dy = lp_node_out_grad(n);
    float *dx = lp_node_in_grad(n, 0);
    const int acc = lp_node_in_grad_accumulate(n, 0);
    float *scratch = lp_node_scratch(n), *ts0 = scratch + p->u_size;
    const float *vs0 = ts0 + (size_t)cs->wino_tmax * p->thread_size;
    const size_t in_sz = (size_t)C * cs->H * cs->W, db_at = p->part_at + (size_t)LP_WINO_POINTS * p->C8 * p->F8;
    if (dx) lp_wino_pack_ut(p, lp_node_param(n, 0), scratch);
    const int T = threads_for(n, N, cs->wino_tmax);
#pragma omp parallel num_threads(T) if (T > 1)
    {
        int nt;
        long s0, s1;
        const int t = lp_thread_share(N, &nt, &s0, &s1);
        float *ts = ts0 + (size_t)t * p->thread_size, *part = ts + p->part_at;
        memset(part, 0, p->part_size * sizeof(float)); /* accumulated over the samples */
        for (int s = s0; s < s1; s++)
            lp_wino_backward(p, scratch, vs0 + (size_t)s * p->vs_size, dy + (size_t)s * F * P,
                             dx ? dx + (size_t)s * in_sz : NULL, acc, part, ts);
#pragma omp barrier
        /* Sum the partials in thread order (fixed for a fixed thread count), then
         * dW = G^T dU G per (filter, channel). */
        const int G = p->F8 / 8;
#pragma omp for schedule(static)
        for (int e = 0; e < G * C + F; e++) {
            if (e < G * C) {
                lp_wino_weight_grad(p, ts0 + p->part_at, p->thread_size, nt, 8 * (e / C), e % C, dw);
            } else if (db) {
                float sum = 0.0f;
                for (int u = 0; u < nt; u++) sum += ts0[(size_t)u * p->thread_size + db_at + (e - G * C)];
                db[e - G * C] += sum;
            }
        }
    }
}
#endif

static void conv_forward(lp_node *n)
{
    const conv_state *cs = lp_node_state(n);
#if CONV_WINOGRAD
    if (cs->wino) { wino_forward(n, cs); return; }
#endif
#if CONV_DIRECT
    if (cs->direct) { direct_forward(n, cs); return; }
#endif
    im2col_forward(n, cs);
}

static void conv_backward(lp_node *n)
{
    const conv_state *cs = lp_node_state(n);
#if CONV_WINOGRAD
    if (cs->wino) { wino_backward(n, cs); return; }
#endif
#if CONV_DIRECT
    if (cs->direct) { direct_backward(n, cs); return; }
#endif
    im2col_backward(n, cs);
}

static const lp_attr_doc conv_attrs[] = {
    {"filters", "int", NULL, "output channels"},
    {"kernel", "int or [h, w]", NULL, "kernel size"},
    {"stride", "int or [h, w]", "1", "step between windows"},
    {"padding", "int, pair, same", "0", "zeros around the input; same: output ceil(H / stride)"},
    {"bias", "bool", "true", "add a learned bias per filter (true/false)"},
    {NULL, NULL, NULL, NULL},
};

const lp_op lp_op_conv2d = {
    LP_OP_HEADER,
    .name = "conv2d",
    .summary = "2-D convolution [C, H, W] -> [filters, OH, OW], weight [filters, C, kh, kw]",
    .min_inputs = 1,
    .max_inputs = 1,
    .attrs = conv_attrs,
    .setup = conv_setup,
    .forward = conv_forward,
    .backward = conv_backward,
};
