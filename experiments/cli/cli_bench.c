/* cli_bench.c - `loupe bench CONFIG`: training and inference throughput of a
 * config's model on MNIST, as one JSON line (bench/run.sh sets it beside PyTorch).
 *
 * What is timed is what bench/torch_ref.py times: one full epoch of the training
 * set (shuffled, SGD with the config's optimizer, no augmentation, no database),
 * then a forward pass over the whole test set in batches of --infer-batch. Buffers
 * are planned and faulted in before the clock starts, as a real run does once.
 */
#include "cli.h"

#include "compute.h"
#include "dataset.h"
#include "train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define BENCH_MAX_REPEAT 100

static void usage(void)
{
    printf("usage: loupe bench CONFIG.yaml [options]\n\n"
           "Time one full training epoch and inference on the test set, and print\n"
           "{train_images_per_s, infer_images_per_s, peak_rss_mb, ...} as JSON on\n"
           "stdout. With --repeat R, R epochs and R inference passes are timed and\n"
           "the median is reported (min and max too). `make bench` compares with PyTorch.\n\n"
           "options:\n"
           "  --batch B              training batch size (default: the config's)\n"
           "  --infer-batch B        inference batch size (default 1000, as bench/torch_ref.py)\n"
           "  --repeat R             timed epochs and inference passes (default 1)\n"
           "  --threads N            threads (default: the config's, else all cores)\n"
           "  --set KEY=VALUE        override a config field (repeatable)\n"
           "  --plugin PATH          load an op plugin (repeatable)\n"
           "  --profile              print time per op (forward/backward) on stderr\n");
}

typedef struct bench_args {
    cli_common c;
    const char *config;
    long long batch, infer_batch, repeat;
    bool profile;
} bench_args;

static int parse_args(int argc, char **argv, bench_args *a)
{
    memset(a, 0, sizeof *a);
    a->infer_batch = 1000;
    a->repeat = 1;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (cli_is_help(s)) { usage(); return -1; }
        int r = cli_common_option("bench", argc, argv, &i, &a->c);
        if (r < 0) return 2;
        if (r == 1) continue;
        long long *num = !strcmp(s, "--batch") ? &a->batch
                         : !strcmp(s, "--infer-batch") ? &a->infer_batch
                         : !strcmp(s, "--repeat") ? &a->repeat : NULL;
        if (num) {
            long long hi = num == &a->repeat ? BENCH_MAX_REPEAT : 65536;
            if (i + 1 >= argc || !cli_parse_int(argv[i + 1], 1, hi, num))
                return cli_usage_error("bench", "%s expects a whole number from 1 to %lld", s, hi);
            i++;
        } else if (!strcmp(s, "--profile")) a->profile = true;
        else if (s[0] == '-') return cli_usage_error("bench", "unknown option '%s'", s);
        else if (a->config) return cli_usage_error("bench", "one config at a time ('%s' and '%s')", a->config, s);
        else a->config = s;
    }
    if (!a->config) return cli_usage_error("bench", "give a CONFIG.yaml");
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts v in place; the median of n values. */
static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

typedef struct epoch_log {
    double seconds[BENCH_MAX_REPEAT];
    double loss;
    int count;
} epoch_log;

static lp_status log_epoch(void *ctx, const lp_epoch_result *r, lp_error *err)
{
    epoch_log *l = ctx;
    if (l->count < BENCH_MAX_REPEAT) l->seconds[l->count++] = r->seconds;
    l->loss = r->train_loss;
    return LP_OK;
}

static void print_profile(lp_graph *g)
{
    fprintf(stderr, "profile (training and inference):\n  %-14s %-22s %10s %10s\n", "node", "op",
            "forward s", "backward s");
    double total = 0;
    for (int i = 1; i < lp_graph_num_nodes(g); i++) {
        double f, b;
        lp_graph_node_times(g, i, &f, &b);
        total += f + b;
        fprintf(stderr, "  %-14s %-22s %10.3f %10.3f\n", lp_graph_node_name(g, i),
                lp_graph_node_op(g, i), f, b);
    }
    fprintf(stderr, "  %-37s %21.3f\n", "total in ops", total);
}

int cli_bench(int argc, char **argv)
{
    bench_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc < 0 ? 0 : rc;
    lp_experiment_config cfg;
    memset(&cfg, 0, sizeof cfg);
    lp_dataset train = {0}, test = {0};
    lp_graph *g = NULL;
    lp_trainer tr;
    bool cfg_loaded = false, trainer_ready = false;
    lp_error err = {0};
    lp_status s = cli_load_plugins(&a.c, &err);
    if (!s) {
        s = lp_config_load(a.config, a.c.sets, a.c.n_sets, &cfg, &err);
        cfg_loaded = s == LP_OK;
    }
    if (!s) lp_threads_init(a.c.threads ? a.c.threads : cfg.train.threads);
    if (!s) s = cli_build_from_config(&cfg, &g, &err);
    if (!s) s = cli_load_data(&cfg, &train, &test, &err);
    int batch = a.batch ? (int)a.batch : cfg.train.batch_size;
    if (!s) {
        lp_graph_init_params(g, cfg.train.seed);
        /* The config's optimizer, a constant rate, no augmentation: the same work
         * PyTorch's loop does. eval_batch = the inference batch: one plan for both. */
        lp_train_options opt = {.epochs = (int)a.repeat, .batch_size = batch,
                                .seed = cfg.train.seed, .shuffle = true,
                                .optim = cfg.train.optim, .eval_batch = (int)a.infer_batch,
                                .quiet = true};
        s = lp_trainer_init(&tr, g, &train, &test, &opt, &err);
        trainer_ready = s == LP_OK;
    }
    epoch_log log = {0};
    double infer[BENCH_MAX_REPEAT], test_acc = 0;
    if (!s) {
        lp_graph_set_profile(g, a.profile);
        s = lp_trainer_run(&tr, log_epoch, &log, NULL, &err);
    }
    for (int r = 0; !s && r < a.repeat; r++) {
        double loss, t0 = lp_seconds();
        lp_trainer_evaluate(&tr, &loss, &test_acc);
        infer[r] = lp_seconds() - t0;
    }
    if (s) {
        int code = cli_fail(&err);
        if (trainer_ready) lp_trainer_free(&tr);
        lp_graph_free(g);
        lp_dataset_free(&train);
        lp_dataset_free(&test);
        if (cfg_loaded) lp_config_free(&cfg);
        return code;
    }
    if (a.profile) print_profile(g);
    int R = log.count;
    double train_min = log.seconds[0], train_max = log.seconds[0];
    double infer_min = infer[0], infer_max = infer[0];
    for (int r = 1; r < R; r++) {
        train_min = log.seconds[r] < train_min ? log.seconds[r] : train_min;
        train_max = log.seconds[r] > train_max ? log.seconds[r] : train_max;
        infer_min = infer[r] < infer_min ? infer[r] : infer_min;
        infer_max = infer[r] > infer_max ? infer[r] : infer_max;
    }
    double train_s = median(log.seconds, R), infer_s = median(infer, R);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"config\":\"%s\",\"name\":\"%s\",\"batch\":%d,\"infer_batch\":%lld,\"threads\":%d,"
           "\"repeat\":%d,\"slice\":%d,\"infer_slice\":%d,\"train_images_per_s\":%.1f,\"train_s\":%.4f,\"train_s_min\":%.4f,"
           "\"train_s_max\":%.4f,\"infer_images_per_s\":%.1f,\"infer_s\":%.4f,\"infer_s_min\":%.4f,"
           "\"infer_s_max\":%.4f,\"peak_rss_mb\":%.1f,\"final_loss\":%.4f,\"test_acc\":%.4f}\n",
           a.config, cfg.name, batch, a.infer_batch, lp_threads(), R, lp_graph_slice(g, true), lp_graph_slice(g, false), train.n / train_s, train_s,
           train_min, train_max, test.n / infer_s, infer_s, infer_min, infer_max,
           ru.ru_maxrss / 1024.0, log.loss, test_acc);
    lp_trainer_free(&tr);
    lp_graph_free(g);
    lp_dataset_free(&train);
    lp_dataset_free(&test);
    lp_config_free(&cfg);
    return 0;
}
