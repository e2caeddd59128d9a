/* cli_viz.c - `loupe viz filters|maps|convolve|curves`: pictures of a trained run
 * (experiments/viz/ draws them; this file finds the run, the image and the file). */
#include "cli_viz.h"

#include "compute.h"
#include "shape.h"
#include "viz.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f,
            "usage: loupe viz filters --run RUN [--layer NAME] [-o FILE.png]\n"
            "       loupe viz maps --run RUN --index I [--layer NAME] [-o FILE.png]\n"
            "       loupe viz convolve [--index I] [--data DIR] [-o FILE.png]\n"
            "       loupe viz curves RUN [RUN...] -o FILE.svg\n"
            "       (filters and maps also take --checkpoint best|last|EPOCH, --db PATH,\n"
            "        --set k=v, --plugin PATH)\n\n"
            "Pictures as PNG, each value an upscaled square (nearest neighbour):\n"
            "  filters   the learned kernels of every conv layer (or --layer): one square per\n"
            "            (filter, input channel), on a diverging scale shared by the layer:\n"
            "            white 0, red positive, blue negative. Default -o run-RUN-filters.png\n"
            "  maps      test image I and the output of every conv, ReLU and pooling layer\n"
            "            (or --layer) for it, each map scaled to its own range (grey: black 0;\n"
            "            signed maps diverging). Default -o run-RUN-maps-I.png\n"
            "  convolve  the tutorial's edge-filter examples: its 5x5 block and MNIST test\n"
            "            image I (default 0) through the vertical [-1 0 1] and horizontal\n"
            "            kernels, edge strength, 2x2 max-pool. Default -o convolve-I.png\n"
            "  curves    loss and accuracy per epoch of runs on shared axes, as SVG\n"
            "The run's best checkpoint is used unless --checkpoint says otherwise.\n"
            "docs/pictures.md shows each.\n");
}

typedef struct viz_args {
    cli_common c;
    long long run, index;
    const char *layer, *output, *checkpoint, *data;
} viz_args;

static int parse(const char *cmd, int argc, char **argv, viz_args *a)
{
    memset(a, 0, sizeof *a);
    a->index = -1;
    a->checkpoint = "best";
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (cli_is_help(s)) {
            usage(stdout);
            return -1;
        }
        int r = cli_common_option(cmd, argc, argv, &i, &a->c);
        if (r < 0) return 2;
        if (r == 1) continue;
        if (i + 1 >= argc) return cli_usage_error(cmd, "unknown option '%s' (or it needs a value)", s);
        const char *v = argv[++i];
        if (!strcmp(s, "--run")) {
            if (!cli_parse_int(v, 1, INT64_MAX, &a->run)) return cli_usage_error(cmd, "--run expects a run id, got '%s'", v);
        } else if (!strcmp(s, "--index")) {
            if (!cli_parse_int(v, 0, INT32_MAX, &a->index))
                return cli_usage_error(cmd, "--index expects a test-set index (0, 1, ...), got '%s'", v);
        } else if (!strcmp(s, "--layer")) a->layer = v;
        else if (!strcmp(s, "-o")) a->output = v;
        else if (!strcmp(s, "--checkpoint")) a->checkpoint = v;
        else if (!strcmp(s, "--data")) a->data = v;
        else return cli_usage_error(cmd, "unknown option '%s'", s);
    }
    return 0;
}

lp_status cli_viz_load(const cli_common *c, int64_t run, const char *which, cli_model *m, lp_error *err)
{
    memset(m, 0, sizeof *m);
    /* Folding a ReLU into the max-pool after it skips the ReLU's output buffer; the
     * pictures want it. The numbers are the same either way (graph.c, fold_nodes). */
    setenv("LOUPE_NO_FOLD", "1", 1);
    lp_status s = cli_load_plugins(c, err);
    lp_threads_init(c->threads ? c->threads : 1);
    if (!s) s = lp_compute_reserve(err);
    if (!s) s = cli_load_run_model(c, run, which, m, err);
    if (!s) s = lp_graph_plan(m->graph, 1, err);
    return s;
}

lp_status cli_viz_maps_of(cli_model *m, const lp_dataset *test, long long index, const char *layer,
                          lp_image *out, int *pred, double *prob, lp_error *err)
{
    memset(out, 0, sizeof *out);
    if (index < 0 || index >= test->n)
        return lp_error_set(err, LP_ERR_ARG, "--index %lld: the test set has %d images (0 to %d)", index, test->n,
                            test->n - 1);
    long long per = lp_shape_numel(lp_graph_input_shape(m->graph));
    float *x = malloc((size_t)per * sizeof *x);
    if (!x) return lp_error_set(err, LP_ERR_NOMEM, "out of memory");
    int idx = (int)index;
    int32_t label;
    lp_dataset_gather(test, &idx, 1, x, &label);
    lp_graph_forward(m->graph, x, &label, 1, false);
    const float *logits = lp_graph_logits(m->graph);
    int k = (int)lp_shape_numel(lp_graph_logits_shape(m->graph)), best = 0;
    for (int j = 1; j < k; j++)
        if (logits[j] > logits[best]) best = j;
    double sum = 0;
    for (int j = 0; j < k; j++) sum += exp(logits[j] - logits[best]);
    char caption[128];
    snprintf(caption, sizeof caption, "test image %lld: label %d, predicted %d (p %.2f)", index, label, best, 1 / sum);
    lp_status s = lp_viz_maps(m->graph, layer, caption, out, err);
    if (pred) *pred = best;
    if (prob) *prob = 1 / sum;
    free(x);
    return s;
}

static int finish(lp_status s, lp_image *img, const char *path, lp_error *err)
{
    if (!s) s = lp_png_write(path, img, err);
    if (!s) printf("wrote %s (%d x %d)\n", path, img->w, img->h);
    lp_image_free(img);
    return s ? cli_fail(err) : 0;
}

static int viz_filters(int argc, char **argv)
{
    viz_args a;
    int rc = parse("viz filters", argc, argv, &a);
    if (rc) return rc < 0 ? 0 : rc;
    if (!a.run) return cli_usage_error("viz filters", "give the run with --run RUN");
    char path[64];
    snprintf(path, sizeof path, "run-%lld-filters.png", a.run);
    cli_model m;
    lp_error err = {0};
    lp_image img = {0};
    lp_status s = cli_viz_load(&a.c, a.run, a.checkpoint, &m, &err);
    if (!s) s = lp_viz_filters(m.graph, a.layer, &img, &err);
    cli_free_model(&m);
    return finish(s, &img, a.output ? a.output : path, &err);
}

static int viz_maps(int argc, char **argv)
{
    viz_args a;
    int rc = parse("viz maps", argc, argv, &a);
    if (rc) return rc < 0 ? 0 : rc;
    if (!a.run) return cli_usage_error("viz maps", "give the run with --run RUN");
    if (a.index < 0) return cli_usage_error("viz maps", "give the test image with --index I");
    char path[96];
    snprintf(path, sizeof path, "run-%lld-maps-%lld.png", a.run, a.index);
    cli_model m;
    lp_dataset test = {0};
    lp_error err = {0};
    lp_image img = {0};
    lp_status s = cli_viz_load(&a.c, a.run, a.checkpoint, &m, &err);
    if (!s) s = cli_load_data(&m.cfg, NULL, &test, &err);
    if (!s) s = cli_viz_maps_of(&m, &test, a.index, a.layer, &img, NULL, NULL, &err);
    lp_dataset_free(&test);
    cli_free_model(&m);
    return finish(s, &img, a.output ? a.output : path, &err);
}

static int viz_convolve(int argc, char **argv)
{
    viz_args a;
    int rc = parse("viz convolve", argc, argv, &a);
    if (rc) return rc < 0 ? 0 : rc;
    if (a.run || a.layer) return cli_usage_error("viz convolve", "convolve uses no run: give --index I and -o FILE only");
    if (a.index < 0) a.index = 0;
    char path[64];
    snprintf(path, sizeof path, "convolve-%lld.png", a.index);
    lp_dataset test = {0};
    lp_error err = {0};
    lp_image img = {0};
    lp_threads_init(a.c.threads ? a.c.threads : 1);
    lp_status s = lp_dataset_load("mnist", a.data, false, 0, &test, &err);
    if (!s && a.index >= test.n)
        s = lp_error_set(&err, LP_ERR_ARG, "--index %lld: the test set has %d images (0 to %d)", a.index, test.n, test.n - 1);
    float *digit = s ? NULL : malloc((size_t)test.h * test.w * sizeof *digit);
    if (!s && !digit) s = lp_error_set(&err, LP_ERR_NOMEM, "out of memory");
    if (!s) {
        int idx = (int)a.index;
        int32_t label;
        lp_dataset_gather(&test, &idx, 1, digit, &label);   /* values in [0, 1] */
        char caption[96];
        snprintf(caption, sizeof caption, "MNIST test image %lld (a %d)", a.index, label);
        s = lp_viz_convolve(digit, test.h, test.w, caption, &img, &err);
    }
    free(digit);
    lp_dataset_free(&test);
    return finish(s, &img, a.output ? a.output : path, &err);
}

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
} subcommands[] = {
    {"filters", viz_filters},
    {"maps", viz_maps},
    {"convolve", viz_convolve},
    {"curves", cli_viz_curves},   /* cli_viz_curves.c */
};

int cli_viz(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (cli_is_help(argv[1])) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        if (!strcmp(argv[1], subcommands[i].name)) return subcommands[i].run(argc - 1, argv + 1);
    return cli_usage_error("viz", "unknown picture '%s': filters, maps, convolve, curves", argv[1]);
}
