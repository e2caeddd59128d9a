/* conv2d_winograd.h - conv2d's Winograd F(4x4, 3x3) kernels (internal to ops/conv2d.c).
 *
 * One sample at a time; conv2d.c owns the node plumbing (threads, scratch, the
 * thread-order sum of the weight-gradient partials). See conv2d_winograd.c.
 */
#ifndef LP_CONV2D_WINOGRAD_H
#define LP_CONV2D_WINOGRAD_H

#include <stddef.h>

#if defined(__AVX512F__) && defined(__AVX512VL__)
#define CONV_WINOGRAD 1
#else
#define CONV_WINOGRAD 0
#endif

#define LP_WINO_HIDDEN __attribute__((visibility("hidden")))

#define LP_WINO_POINTS 36 /* points of an F(4x4, 3x3) tile: 6x6 */

typedef struct lp_wino_plan {
    int C, H, W, F, pt, pl, OH, OW, P;
    int TH, TW;          /* tiles of 4x4 outputs: ceil(OH/4) x ceil(OW/4) */
    int Hq, Wq8;         /* channel-last padded input [Hq][Wq8][C8] */
    int C8, F8;          /* channels and filters rounded up to 8 */
    int rpc, TC;         /* tile rows per chunk, tiles per chunk (rpc * TW) */
    size_t u_size;       /* U [36][C8][F8] or U^T [36][F8][C8] (fixed scratch) */
    size_t vs_size;      /* V of a whole sample [TH*TW][C8/8][36][8], kept from forward for dU */
    size_t xt_at, dxt_at, dv_at, m_at, yt_at, part_at; /* offsets in a thread's scratch */
    size_t part_size;    /* [36][C8][F8] dU, then [F8] db */
    size_t thread_size;  /* floats of one thread's scratch */
} lp_wino_plan;

/* Which conv2d nodes take the path, read at setup: -1 (default) where it measured
 * faster (see lp_wino_applies), 0 never, 1 every 3x3 stride-1 conv. Not part of the
 * API: for tests (to reach its channel tails) and benchmarks. */
LP_WINO_HIDDEN extern int lp_wino_mode;

/* 3x3, stride 1, on a CPU with AVX-512, and the shape is worth it (see .c). */
LP_WINO_HIDDEN int lp_wino_applies(int C, int F, int kh, int kw, int sh, int sw);
LP_WINO_HIDDEN void lp_wino_plan_init(lp_wino_plan *p, int C, int H, int W, int F, int pt, int pl, int OH,
                                      int OW);
/* u [36][C8][F8] = G g G^T of w [F][C][3][3], zeros past C and F. */
LP_WINO_HIDDEN void lp_wino_pack_u(const lp_wino_plan *p, const float *w, float *u);
/* ut [36][F8][C8], the same transposed (the input gradient's order). */
LP_WINO_HIDDEN void lp_wino_pack_ut(const lp_wino_plan *p, const float *w, float *ut);
/* y [F][OH][OW] = conv(x [C][H][W]) + bias (bias may be NULL); vs (vs_size floats)
 * receives the sample's input transform V for backward; ts: a thread's scratch. */
LP_WINO_HIDDEN void lp_wino_forward(const lp_wino_plan *p, const float *u, const float *bias, const float *x,
                                    float *y, float *vs, float *ts);
/* part (dU and db of this thread, see part_size) += this sample's, from vs as forward
 * left it; dx (when not NULL) written (acc 0) or added to (acc 1) through ut. */
LP_WINO_HIDDEN void lp_wino_backward(const lp_wino_plan *p, const float *ut, const float *vs, const float *dy,
                                     float *dx, int acc, float *part, float *ts);
/* dw [F][C][3][3] += G^T dU G for filters [f0, f0 + 8) (f0 a multiple of 8) and
 * channel c, dU the sum of the nt thread partials part0 + u * stride in thread order. */
LP_WINO_HIDDEN void lp_wino_weight_grad(const lp_wino_plan *p, const float *part0, size_t stride, int nt, int f0,
                                        int c, float *dw);

#endif
