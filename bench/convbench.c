/* convbench.c - one conv2d node's forward and backward, timed in process CPU time
 * through the public graph API (not built by make; see docs/performance.md):
 *
 *   gcc -O2 -march=native -fopenmp -Icore -Iops -Igraph -Iexperiments/runner -Iexperiments/data bench/convbench.c \
 *       -Wl,--whole-archive build/libloupe.a -Wl,--no-whole-archive \
 *       $(pkg-config --libs yaml-0.1 sqlite3 zlib openblas) -ldl -lm -o /tmp/convbench
 *   /tmp/convbench [C H W F pad N steps reps threads input_grad]
 *
 * WINO=0 or WINO=1 in the environment forces conv2d's Winograd path off or on (it sets
 * the library's hidden lp_wino_mode; default: the automatic choice).
 *
 * Defaults: MNIST conv2 (8 x 13 x 13 -> 16 x 11 x 11, 3x3, no padding), batch 64,
 * 938 steps (one epoch of 60,000 images), 5 repetitions, 1 thread, input gradient on
 * (conv2's input is conv1's pooled output). Prints each repetition and the minimum of
 * forward, backward and their sum.
 */
#include "compute.h"
#include "conv2d_winograd.h"
#include "graph.h"
#include "value.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double cpu(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static const lp_loc NL = {0};

int main(int argc, char **argv)
{
    int C = 8, H = 13, W = 13, F = 16, pad = 0, N = 64, steps = 938, reps = 5, threads = 1, ingrad = 1;
    int *args[] = {&C, &H, &W, &F, &pad, &N, &steps, &reps, &threads, &ingrad};
    for (int i = 1; i < argc && i <= 10; i++) *args[i - 1] = atoi(argv[i]);
    if (getenv("WINO")) lp_wino_mode = atoi(getenv("WINO"));
    lp_threads_init(threads);
    lp_model_spec spec = {.input = {3, {C, H, W}}, .input_grad = ingrad};
    lp_value *a = lp_value_new_map(NL);
    char buf[16];
    snprintf(buf, sizeof buf, "%d", F);
    lp_value_map_set(a, "filters", NL, lp_value_new_scalar(buf, NL));
    lp_value_map_set(a, "kernel", NL, lp_value_new_scalar("3", NL));
    snprintf(buf, sizeof buf, "%d", pad);
    lp_value_map_set(a, "padding", NL, lp_value_new_scalar(buf, NL));
    const char *in[1] = {"input"};
    lp_model_spec_add(&spec, "c", "conv2d", in, 1, a);
    lp_graph *g;
    lp_error err = {0};
    if (lp_graph_build(&spec, &g, &err) || lp_graph_plan(g, N, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    lp_graph_init_params(g, 1);
    const int OH = H + 2 * pad - 2, OW = W + 2 * pad - 2;
    size_t nin = (size_t)N * C * H * W, nout = (size_t)N * F * OH * OW;
    float *x = malloc(nin * sizeof *x), *r = malloc(nout * sizeof *r);
    srand(1);
    for (size_t i = 0; i < nin; i++) x[i] = (float)rand() / RAND_MAX - 0.5f;
    for (size_t i = 0; i < nout; i++) r[i] = (float)rand() / RAND_MAX - 0.5f;
    lp_graph_forward(g, x, NULL, N, true); /* warm up: fault in the arena */
    lp_graph_backward(g, r);
    double bf = 1e30, bb = 1e30, bt = 1e30;
    for (int k = 0; k < reps; k++) {
        double f = 0, b = 0;
        for (int s = 0; s < steps; s++) {
            double t0 = cpu();
            lp_graph_forward(g, x, NULL, N, true);
            double t1 = cpu();
            lp_graph_backward(g, r);
            double t2 = cpu();
            f += t1 - t0;
            b += t2 - t1;
        }
        printf("rep %d: forward %.4f s  backward %.4f s  total %.4f s\n", k, f, b, f + b);
        bf = f < bf ? f : bf;
        bb = b < bb ? b : bb;
        bt = f + b < bt ? f + b : bt;
    }
    double macs = (double)N * steps * F * C * 9 * OH * OW;
    printf("C=%d H=%d W=%d F=%d pad=%d N=%d steps=%d threads=%d: min forward %.4f s (%.1f GFLOP/s direct-equivalent)"
           "  backward %.4f s  total %.4f s\n",
           C, H, W, F, pad, N, steps, threads, bf, 2 * macs / bf / 1e9, bb, bt);
    free(x);
    free(r);
    lp_graph_free(g);
    return 0;
}
