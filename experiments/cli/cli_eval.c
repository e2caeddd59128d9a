/* cli_eval.c - commands that use a trained model: `loupe eval`, `loupe predict`,
 * `loupe export`. A model comes either from a recorded run (--run RUN
 * [--checkpoint best|last|EPOCH]) or from a config plus a .safetensors file. */
#include "cli.h"
#include "cli_show.h"

#include "compute.h"
#include "dataset.h"
#include "runsdb.h"
#include "safetensors.h"
#include "shape.h"
#include "snapshot.h"
#include "train.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct model_args {
    cli_common c;
    const char *config;
    const char *weights;      /* .safetensors */
    long long run;
    const char *checkpoint;   /* best | last | EPOCH */
    const char *output;       /* export -o */
    long long index;          /* predict --index */
    const char *image;        /* predict --image */
    bool confusion, ascii;    /* eval --confusion [--ascii] */
} model_args;

typedef cli_model model;

static int parse_model_args(const char *cmd, int argc, char **argv, model_args *a, void (*usage)(void))
{
    memset(a, 0, sizeof *a);
    a->checkpoint = "best";
    a->index = -1;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (cli_is_help(s)) { usage(); return -1; }
        int r = cli_common_option(cmd, argc, argv, &i, &a->c);
        if (r < 0) return 2;
        if (r == 1) continue;
        bool has_value = i + 1 < argc;
        if (!strcmp(s, "--run") && has_value) {
            if (!cli_parse_int(argv[++i], 1, INT64_MAX, &a->run))
                return cli_usage_error(cmd, "--run expects a run id, got '%s'", argv[i]);
        } else if (!strcmp(s, "--checkpoint") && has_value) a->checkpoint = argv[++i];
        else if (!strcmp(s, "--weights") && has_value) a->weights = argv[++i];
        else if (!strcmp(s, "-o") && has_value) a->output = argv[++i];
        else if (!strcmp(cmd, "eval") && !strcmp(s, "--confusion")) a->confusion = true;
        else if (!strcmp(cmd, "eval") && !strcmp(s, "--ascii")) a->ascii = true;
        else if (!strcmp(s, "--image") && has_value) a->image = argv[++i];
        else if (!strcmp(s, "--index") && has_value) {
            if (!cli_parse_int(argv[++i], 0, INT32_MAX, &a->index))
                return cli_usage_error(cmd, "--index expects a test-set index, got '%s'", argv[i]);
        } else if (s[0] == '-') return cli_usage_error(cmd, "unknown option '%s' (or it needs a value)", s);
        else if (!strcmp(cmd, "export") && !a->run && cli_parse_int(s, 1, INT64_MAX, &a->run)) continue;
        else if (a->config) return cli_usage_error(cmd, "unexpected argument '%s'", s);
        else a->config = s;
    }
    if (!a->run && !a->config) return cli_usage_error(cmd, "give --run RUN, or CONFIG.yaml --weights FILE");
    if (a->run && a->config) return cli_usage_error(cmd, "give either --run RUN or a config, not both");
    if (a->config && !a->weights) return cli_usage_error(cmd, "a config needs --weights FILE.safetensors");
    return 0;
}

static lp_status load_model(const model_args *a, model *m, lp_error *err)
{
    memset(m, 0, sizeof *m);
    lp_status s = cli_load_plugins(&a->c, err);
    if (s) return s;
    lp_threads_init(a->c.threads);
    if ((s = lp_compute_reserve(err))) return s;
    if (a->config) {
        s = lp_config_load(a->config, a->c.sets, a->c.n_sets, &m->cfg, err);
        m->cfg_loaded = s == LP_OK;
        if (!s) s = cli_build_from_config(&m->cfg, &m->graph, err);
        if (s) return s;
        lp_snapshot snap;
        s = lp_snapshot_make(m->graph, NULL, &snap, err);
        if (!s) s = lp_safetensors_read(a->weights, snap.params, snap.n_params, err);
        lp_snapshot_free(&snap);
        return s;
    }
    return cli_load_run_model(&a->c, a->run, a->checkpoint, m, err);
}

lp_status cli_load_run_model(const cli_common *c, int64_t run, const char *which, cli_model *m, lp_error *err)
{
    memset(m, 0, sizeof *m);
    lp_runsdb *db = NULL;
    lp_status s = lp_runsdb_open_readonly(c->db ? c->db : "runs.db", &db, err);
    lp_run_details d;
    bool have_details = false;
    if (!s) {
        s = lp_runsdb_show(db, run, &d, err);
        have_details = s == LP_OK;
    }
    if (!s) {
        const char *path = "recorded.yaml";
        for (int i = 0; i < d.n_params; i++)
            if (!strcmp(d.keys[i], "config.path")) path = d.values[i];
        s = lp_config_load_string(d.config_yaml, strlen(d.config_yaml), path, c->sets, c->n_sets,
                                  &m->cfg, err);
        m->cfg_loaded = s == LP_OK;
    }
    if (!s) s = cli_build_from_config(&m->cfg, &m->graph, err);
    void *blob = NULL;
    size_t size = 0;
    if (!s) s = lp_runsdb_load_checkpoint(db, run, which, &blob, &size, &m->epoch, NULL, err);
    if (!s) {
        char what[96];
        snprintf(what, sizeof what, "checkpoint of run %lld epoch %d", (long long)run, m->epoch);
        s = lp_snapshot_restore(blob, size, m->graph, NULL, NULL, what, err);
    }
    free(blob);
    if (have_details) lp_run_details_free(&d);
    lp_runsdb_close(db);
    return s;
}

static void free_model(model *m)
{
    lp_graph_free(m->graph);
    if (m->cfg_loaded) lp_config_free(&m->cfg);
}

void cli_free_model(cli_model *m) { free_model(m); }

static void eval_usage(void)
{
    printf("usage: loupe eval --run RUN [--checkpoint best|last|EPOCH] [--db PATH] [--json]\n"
           "       loupe eval CONFIG.yaml --weights FILE.safetensors [--json]\n"
           "       loupe eval ... --confusion [--ascii]\n\n"
           "Loss and accuracy of a trained model on the test set its config names.\n"
           "--confusion also prints the confusion matrix with per-class recall, precision\n"
           "and F1 and the worst misclassified images, as `loupe runs show RUN --confusion`\n"
           "prints those recorded during training (nothing is written to the database).\n");
}

int cli_eval(int argc, char **argv)
{
    model_args a;
    int rc = parse_model_args("eval", argc, argv, &a, eval_usage);
    if (rc) return rc < 0 ? 0 : rc;
    model m;
    lp_error err = {0};
    lp_dataset test = {0};
    lp_status s = load_model(&a, &m, &err);
    if (!s) s = cli_load_data(&m.cfg, NULL, &test, &err);
    if (!s) s = lp_graph_plan_lanes(m.graph, 500, lp_threads(), &err);
    if (s) {
        free_model(&m);
        lp_dataset_free(&test);
        return cli_fail(&err);
    }
    double loss, acc;
    lp_evaluation ev = {0};
    if (a.confusion) {
        s = lp_evaluation_init(&ev, (int)lp_shape_numel(lp_graph_logits_shape(m.graph)), test.n, "test", &err);
        if (s) {
            free_model(&m);
            lp_dataset_free(&test);
            return cli_fail(&err);
        }
        ev.epoch = m.epoch;
    }
    lp_evaluate_confusion(m.graph, &test, 500, &loss, &acc, a.confusion ? &ev : NULL);
    if (a.c.json)
        printf("{\"run_id\":%lld,\"epoch\":%d,\"images\":%d,\"test_loss\":%.6f,\"test_acc\":%.6f}\n", a.run,
               m.epoch, test.n, loss, acc);
    else
        printf("%s%s: test loss %.4f, accuracy %.2f%% on %d images\n", m.cfg.name,
               a.run ? "" : " (weights file)", loss, 100 * acc, test.n);
    if (a.confusion && !a.c.json) {
        lp_evaluation_sort_misclassified(&ev);
        putchar('\n');
        cli_print_confusion(stdout, &ev, 10, !a.ascii && cli_locale_is_utf8());
    }
    lp_evaluation_free(&ev);
    free_model(&m);
    lp_dataset_free(&test);
    return 0;
}

/* Read a binary (P5) or text (P2) PGM of h x w into x (scaled to [0, 1]). */
static lp_status read_pgm(const char *path, int h, int w, float *x, lp_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) return lp_error_set(err, LP_ERR_IO, "%s: cannot open", path);
    char magic[3] = {0};
    int fw = 0, fh = 0, maxval = 0;
    lp_status s = LP_OK;
    if (fscanf(f, "%2s", magic) != 1 || (strcmp(magic, "P5") && strcmp(magic, "P2")))
        s = lp_error_set(err, LP_ERR_DATA, "%s: not a PGM image (P2/P5); convert PNGs with `convert in.png out.pgm`", path);
    /* skip comments between header fields */
    int *fields[3] = {&fw, &fh, &maxval};
    for (int k = 0; !s && k < 3; k++) {
        int ch;
        while ((ch = fgetc(f)) != EOF && (isspace(ch) || ch == '#'))
            if (ch == '#') while ((ch = fgetc(f)) != EOF && ch != '\n') {}
        if (ch == EOF || ungetc(ch, f) == EOF || fscanf(f, "%d", fields[k]) != 1)
            s = lp_error_set(err, LP_ERR_DATA, "%s: truncated PGM header", path);
    }
    if (!s && (fw != w || fh != h))
        s = lp_error_set(err, LP_ERR_DATA, "%s: image is %dx%d, the model expects %dx%d", path, fw, fh, w, h);
    if (!s && (maxval < 1 || maxval > 255))
        s = lp_error_set(err, LP_ERR_DATA, "%s: PGM maxval %d not supported (1..255)", path, maxval);
    if (!s && magic[1] == '5') fgetc(f); /* the single whitespace before the raster */
    for (int i = 0; !s && i < h * w; i++) {
        int v;
        if (magic[1] == '5') v = fgetc(f);
        else if (fscanf(f, "%d", &v) != 1) v = EOF;
        if (v == EOF || v < 0 || v > maxval) s = lp_error_set(err, LP_ERR_DATA, "%s: truncated or bad pixel data", path);
        else x[i] = (float)v / (float)maxval;
    }
    fclose(f);
    return s;
}

static void predict_usage(void)
{
    printf("usage: loupe predict --run RUN [--checkpoint best|last|EPOCH] (--index I | --image FILE.pgm)\n"
           "       loupe predict CONFIG.yaml --weights FILE.safetensors (--index I | --image FILE.pgm)\n\n"
           "Classify one image: test-set image I, or a grayscale PGM of the model's input\n"
           "size (white digit on black, like MNIST). Prints the class and every probability.\n");
}

int cli_predict(int argc, char **argv)
{
    model_args a;
    int rc = parse_model_args("predict", argc, argv, &a, predict_usage);
    if (rc) return rc < 0 ? 0 : rc;
    if ((a.index >= 0) == (a.image != NULL)) return cli_usage_error("predict", "give exactly one of --index I or --image FILE");
    model m;
    lp_error err = {0};
    lp_dataset test = {0};
    lp_status s = load_model(&a, &m, &err);
    lp_shape in = s ? lp_shape1(1) : lp_graph_input_shape(m.graph);
    long long per = lp_shape_numel(in);
    float *x = malloc((size_t)per * sizeof *x);
    int32_t label = -1;
    if (!s && !x) s = lp_error_set(&err, LP_ERR_NOMEM, "out of memory");
    if (!s && a.image) {
        if (in.ndim != 3 || in.dims[0] != 1) s = lp_error_set(&err, LP_ERR_ARG, "--image needs a model with a [1, H, W] input");
        else s = read_pgm(a.image, in.dims[1], in.dims[2], x, &err);
        if (!s && m.cfg.data.normalize)
            for (long long i = 0; i < per; i++) x[i] = (x[i] - m.cfg.data.mean) / m.cfg.data.std;
    } else if (!s) {
        s = cli_load_data(&m.cfg, NULL, &test, &err);
        if (!s && a.index >= test.n) s = lp_error_set(&err, LP_ERR_ARG, "--index %lld: the test set has %d images", a.index, test.n);
        if (!s) {
            int idx = (int)a.index;
            lp_dataset_gather(&test, &idx, 1, x, &label);
        }
    }
    if (!s) s = lp_graph_plan(m.graph, 1, &err);
    if (s) {
        free(x);
        free_model(&m);
        lp_dataset_free(&test);
        return cli_fail(&err);
    }
    lp_graph_forward(m.graph, x, &label, 1, false);
    const float *logits = lp_graph_logits(m.graph);
    int k = (int)lp_shape_numel(lp_graph_logits_shape(m.graph));
    double mx = logits[0], sum = 0;
    int best = 0;
    for (int j = 1; j < k; j++)
        if (logits[j] > logits[best]) best = j;
    mx = logits[best];
    for (int j = 0; j < k; j++) sum += exp(logits[j] - mx);
    if (a.c.json) {
        printf("{\"class\":%d,%s\"probabilities\":[", best, "");
        for (int j = 0; j < k; j++) printf("%s%.6f", j ? "," : "", exp(logits[j] - mx) / sum);
        printf("]");
        if (label >= 0) printf(",\"label\":%d", label);
        printf("}\n");
    } else {
        printf("class %d (p = %.4f)", best, 1.0 / sum);
        if (label >= 0) printf(", true label %d: %s", label, label == best ? "correct" : "wrong");
        printf("\n");
        for (int j = 0; j < k; j++) {
            double p = exp(logits[j] - mx) / sum;
            int bar = (int)(p * 40 + 0.5);
            printf("  %2d  %.4f  %.*s\n", j, p, bar, "========================================");
        }
    }
    free(x);
    free_model(&m);
    lp_dataset_free(&test);
    return 0;
}

static void export_usage(void)
{
    printf("usage: loupe export RUN [--checkpoint best|last|EPOCH] [--db PATH] -o FILE.safetensors\n\n"
           "Write a run's weights as safetensors: tensors under their parameter names\n"
           "(conv1.weight as [filters, C_in, kh, kw], fc1.weight as [units, inputs], the\n"
           "PyTorch layouts), float32 little-endian. Load it back with\n"
           "`loupe train CONFIG --init-weights FILE` or `loupe eval CONFIG --weights FILE`.\n");
}

int cli_export(int argc, char **argv)
{
    model_args a;
    int rc = parse_model_args("export", argc, argv, &a, export_usage);
    if (rc) return rc < 0 ? 0 : rc;
    if (!a.run) return cli_usage_error("export", "give the run to export");
    if (!a.output) return cli_usage_error("export", "give the output file with -o FILE.safetensors");
    model m;
    lp_error err = {0};
    lp_status s = load_model(&a, &m, &err);
    lp_snapshot snap = {0};
    if (!s) s = lp_snapshot_make(m.graph, NULL, &snap, &err);
    if (!s) {
        char run[32], epoch[32];
        snprintf(run, sizeof run, "%lld", a.run);
        snprintf(epoch, sizeof epoch, "%d", m.epoch);
        const char *keys[] = {"format", "loupe_run", "loupe_epoch", "loupe_config"};
        const char *values[] = {"pt", run, epoch, m.cfg.name};
        s = lp_safetensors_write(a.output, snap.params, snap.n_params, keys, values, 4, &err);
    }
    if (!s)
        printf("wrote %s: %d tensors, %zu parameters (run %lld, epoch %d)\n", a.output, snap.n_params,
               lp_graph_param_floats(m.graph), a.run, m.epoch);
    lp_snapshot_free(&snap);
    free_model(&m);
    return s ? cli_fail(&err) : 0;
}
