/* test_robustness.c - hostile input never crashes loupe (issue 7; docs/robustness.md).
 *
 * Each test feeds one kind of hostile input through the public API and pins what
 * loupe does: the status, the message, and where it matters the time and memory it
 * took. Inputs the other suites already cover (most IDX, checkpoint, safetensors
 * and runs-DB corruptions) are listed in docs/robustness.md with their tests; here
 * are the rest, the regressions of the bugs this work found, and the numeric
 * stops of the trainer. The CLI-level checks (exit codes, the runs DB after a NaN,
 * a full disk, an address-space limit) are in tests/e2e_robustness.sh.
 *
 * Run from the repository root. Fast: the whole suite takes about a second.
 */
#include <criterion/criterion.h>

#include "checkpoint.h"
#include "compute.h"
#include "config.h"
#include "dataset.h"
#include "graph.h"
#include "idx.h"
#include "lp_yaml.h"
#include "shape.h"
#include "snapshot.h"
#include "train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#if defined(__SANITIZE_ADDRESS__)
#define LP_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LP_ASAN 1
#endif
#endif
#ifndef LP_ASAN
#define LP_ASAN 0
#endif

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Peak resident set of this (forked) test process in MB. */
static double peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

static void assert_contains(const char *msg, const char *part)
{
    cr_assert(strstr(msg, part) != NULL, "message '%s'\n  should contain '%s'", msg, part);
}

static char tmpdir[64];

static void make_tmpdir(void)
{
    strcpy(tmpdir, "/tmp/loupe_robust_XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
}

static void remove_tmpdir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    cr_assert_eq(system(cmd), 0);
}

static const char *tmp_path(const char *name)
{
    static char buf[4][160];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", tmpdir, name);
    return p;
}

/* ---- YAML: nesting, aliases, sizes ---------------------------------------- */

TestSuite(yaml_hostile, .init = make_tmpdir, .fini = remove_tmpdir);

/* 2,000,000 '[' is a 2 MB text: refused by the 1 MiB size cap before libyaml sees
 * a byte (libyaml alone would take hours: its deep nesting is quadratic). */
Test(yaml_hostile, two_million_deep_flow_sequence_is_refused_by_size_at_once)
{
    size_t n = 2000000;
    char *bomb = malloc(n);
    memset(bomb, '[', n);
    lp_value *v = NULL;
    lp_error err = {0};
    double t0 = now_s();
    cr_assert_eq(lp_yaml_load_string(bomb, n, "bomb.yaml", &v, &err), LP_ERR_CONFIG);
    double dt = now_s() - t0;
    cr_assert_str_eq(err.msg, "bomb.yaml: YAML text of 2000000 bytes is larger than the 1024 KiB limit");
    cr_assert_lt(dt, 0.05, "took %.3f s", dt);
    /* the same bomb as a file: read at most 1 MiB + 1 byte, then refused */
    FILE *f = fopen(tmp_path("bomb.yaml"), "wb");
    cr_assert_eq(fwrite(bomb, 1, n, f), n);
    fclose(f);
    lp_experiment_config cfg;
    lp_error_clear(&err);
    t0 = now_s();
    cr_assert_eq(lp_config_load(tmp_path("bomb.yaml"), NULL, 0, &cfg, &err), LP_ERR_CONFIG);
    dt = now_s() - t0;
    assert_contains(err.msg, "is larger than the 1024 KiB limit");
    cr_assert_lt(dt, 0.2, "took %.3f s", dt);
    lp_config_free(&cfg);
    free(bomb);
}

/* Just under the size cap (1,000,000 '['), the depth counter stops libyaml after 65. */
Test(yaml_hostile, million_deep_flow_sequence_under_the_size_cap_stops_at_depth_65)
{
    size_t n = 1000000;
    char *bomb = malloc(n);
    memset(bomb, '[', n);
    lp_value *v = NULL;
    lp_error err = {0};
    double t0 = now_s();
    cr_assert_eq(lp_yaml_load_string(bomb, n, "bomb.yaml", &v, &err), LP_ERR_CONFIG);
    double dt = now_s() - t0;
    cr_assert_str_eq(err.msg, "bomb.yaml:1:65: nesting deeper than 64 levels");
    cr_assert_lt(dt, 0.2, "took %.3f s", dt);
    free(bomb);
}

/* Block-style nesting (indentation) and a mixed flow bomb hit the same limit. */
Test(yaml_hostile, deep_block_and_mixed_nesting_hit_the_same_limit)
{
    size_t cap = 1 << 20, n = 0;
    char *t = malloc(cap);
    for (int d = 0; d < 200; d++) n += (size_t)sprintf(t + n, "%*sa:\n", 2 * d, "");
    n += (size_t)sprintf(t + n, "%*sa: 1\n", 400, "");
    lp_value *v = NULL;
    lp_error err = {0};
    cr_assert_eq(lp_yaml_load_string(t, n, "deep.yaml", &v, &err), LP_ERR_CONFIG);
    cr_assert_str_eq(err.msg, "deep.yaml:65:129: nesting deeper than 64 levels");
    n = 0;
    for (int d = 0; d < 100000; d++) n += (size_t)sprintf(t + n, "%s", d % 2 ? "{a: " : "[");
    lp_error_clear(&err);
    cr_assert_eq(lp_yaml_load_string(t, n, "mixed.yaml", &v, &err), LP_ERR_CONFIG);
    assert_contains(err.msg, "nesting deeper than 64 levels");
    free(t);
}

/* The "billion laughs": nine levels of aliases, each ten times the one before.
 * Refused at the first anchor, before anything is expanded. */
Test(yaml_hostile, billion_laughs_is_refused_at_the_first_anchor)
{
    char t[2048];
    size_t n = (size_t)sprintf(t, "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
    for (char c = 'b'; c <= 'i'; c++)
        n += (size_t)sprintf(t + n, "%c: &%c [*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c]\n", c, c, c - 1, c - 1,
                             c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1);
    lp_value *v = NULL;
    lp_error err = {0};
    double t0 = now_s();
    cr_assert_eq(lp_yaml_load_string(t, n, "lol.yaml", &v, &err), LP_ERR_CONFIG);
    cr_assert_lt(now_s() - t0, 0.01);
    cr_assert_str_eq(err.msg, "lol.yaml:1:4: YAML anchors (&a) are not supported: write the value out");
    /* an alias to an undefined anchor, and one in a --set value, are refused too */
    const char *alias = "a: *nowhere\n";
    lp_error_clear(&err);
    cr_assert_eq(lp_yaml_load_string(alias, strlen(alias), "x.yaml", &v, &err), LP_ERR_CONFIG);
    assert_contains(err.msg, "YAML aliases (*nowhere) are not supported");
    lp_experiment_config cfg;
    const char *sets[] = {"train.optimizer=&o {type: sgd}"};
    lp_error_clear(&err);
    const char *doc = "name: t\nmodel: {input: [4], layers: [{op: dense, units: 2}]}\n";
    cr_assert_neq(lp_config_load_string(doc, strlen(doc), "t.yaml", sets, 1, &cfg, &err), LP_OK);
    assert_contains(err.msg, "anchors");
    lp_config_free(&cfg);
}

/* A 100 MB scalar in a file: refused by the file cap having read 1 MiB + 1 byte,
 * so neither the time nor the memory grows with the file. */
Test(yaml_hostile, hundred_megabyte_scalar_is_refused_without_reading_it)
{
    const char *path = tmp_path("big.yaml");
    FILE *f = fopen(path, "wb");
    fputs("name: ", f);
    static char chunk[1 << 16];
    memset(chunk, 'x', sizeof chunk);
    for (int i = 0; i < 1600; i++) fwrite(chunk, 1, sizeof chunk, f);   /* 104,857,600 bytes */
    fputs("\n", f);
    fclose(f);
    double rss0 = peak_rss_mb(), t0 = now_s();
    lp_experiment_config cfg;
    lp_error err = {0};
    cr_assert_eq(lp_config_load(path, NULL, 0, &cfg, &err), LP_ERR_CONFIG);
    double dt = now_s() - t0, grew = peak_rss_mb() - rss0;
    assert_contains(err.msg, "file is larger than the 1024 KiB limit");
    cr_assert_lt(dt, 0.1, "took %.3f s", dt);
    cr_assert_lt(grew, 16, "peak RSS grew by %.1f MB", grew);
    lp_config_free(&cfg);
    /* in memory, a 100 MB text is refused by its length alone */
    size_t n = (size_t)100 << 20;
    char *big = malloc(n);
    memset(big, 'x', n);
    memcpy(big, "name: ", 6);
    lp_error_clear(&err);
    t0 = now_s();
    cr_assert_eq(lp_config_load_string(big, n, "big.yaml", NULL, 0, &cfg, &err), LP_ERR_CONFIG);
    cr_assert_lt(now_s() - t0, 0.05);
    assert_contains(err.msg, "larger than the 1024 KiB limit");
    lp_config_free(&cfg);
    free(big);
}

/* A scalar just over the 64 KiB cap inside a file under the 1 MiB cap. */
Test(yaml_hostile, scalar_over_64k_in_a_small_file_is_refused_with_its_place)
{
    size_t n = 70000;
    char *t = malloc(n + 64);
    size_t k = (size_t)sprintf(t, "name: t\ndescription: ");
    memset(t + k, 'y', n);
    k += n;
    t[k++] = '\n';
    lp_experiment_config cfg;
    lp_error err = {0};
    cr_assert_eq(lp_config_load_string(t, k, "s.yaml", NULL, 0, &cfg, &err), LP_ERR_CONFIG);
    cr_assert_str_eq(err.msg, "s.yaml:2:14: scalar of 70000 bytes is longer than the 64 KiB limit");
    lp_config_free(&cfg);
    free(t);
}

/* Devices and directories given as the config. */
Test(yaml_hostile, dev_zero_urandom_and_a_directory_as_config)
{
    lp_experiment_config cfg;
    lp_error err = {0};
    double t0 = now_s();
    cr_assert_eq(lp_config_load("/dev/zero", NULL, 0, &cfg, &err), LP_ERR_CONFIG);
    assert_contains(err.msg, "/dev/zero: file is larger than the 1024 KiB limit");
    lp_config_free(&cfg);
    lp_error_clear(&err);
    cr_assert_eq(lp_config_load("/dev/urandom", NULL, 0, &cfg, &err), LP_ERR_CONFIG);
    assert_contains(err.msg, "larger than the 1024 KiB limit");
    cr_assert_lt(now_s() - t0, 0.5);
    lp_config_free(&cfg);
    lp_error_clear(&err);
    cr_assert_eq(lp_config_load(tmpdir, NULL, 0, &cfg, &err), LP_ERR_IO);
    assert_contains(err.msg, "Is a directory");
    lp_config_free(&cfg);
}

/* Binary garbage: invalid UTF-8, a NUL byte, control characters. */
Test(yaml_hostile, binary_garbage_is_a_located_syntax_error)
{
    const char t1[] = "name: t\nmodel: \x80\x81\xfe\n";
    const char t2[] = "name: t\0model: {}\n";
    const char t3[] = "name: \x01\x02\x03\n";
    const char *texts[] = {t1, t2, t3};
    size_t lens[] = {sizeof t1 - 1, sizeof t2 - 1, sizeof t3 - 1};
    for (int i = 0; i < 3; i++) {
        lp_experiment_config cfg;
        lp_error err = {0};
        cr_assert_eq(lp_config_load_string(texts[i], lens[i], "g.yaml", NULL, 0, &cfg, &err), LP_ERR_CONFIG,
                     "case %d: %s", i, err.msg);
        assert_contains(err.msg, "g.yaml:");
        lp_config_free(&cfg);
    }
}

/* ---- sizes that overflow, negative and zero sizes ----------------------------- */

/* Load and build a model given its `layers:` lines; return the status and the message. */
static lp_status build_layers(const char *input, const char *layers, char *msg)
{
    char text[4096];
    snprintf(text, sizeof text,
             "name: t\nmodel:\n  input: %s\n  layers:\n%s  loss: softmax_cross_entropy\n", input, layers);
    lp_experiment_config cfg;
    lp_error err = {0};
    lp_status s = lp_config_load_string(text, strlen(text), "m.yaml", NULL, 0, &cfg, &err);
    if (!s) {
        lp_graph *g = NULL;
        s = lp_graph_build(&cfg.model, &g, &err);
        lp_graph_free(g);
    }
    lp_config_free(&cfg);
    strcpy(msg, err.msg);
    return s;
}

#define HEAD "    - {op: flatten}\n"
#define TAIL "    - {op: flatten}\n    - {op: dense, units: 10}\n"

typedef struct size_case {
    const char *input, *layers;
    lp_status status;
    const char *msg;   /* exact message */
} size_case;

static const size_case size_cases[] = {
    {"[1, 28, 28]", "    - {op: conv2d, filters: 2000000000, kernel: 3}\n" TAIL, LP_ERR_SHAPE,
     "m.yaml:5:29: node 'conv2d1' (conv2d): the weight [2000000000, 1, 3, 3] is too large (more than "
     "2147483647 elements)"},
    {"[1, 28, 28]", HEAD "    - {op: dense, units: 2000000000}\n    - {op: dense, units: 10}\n", LP_ERR_SHAPE,
     "m.yaml:6:7: node 'dense1' (dense): parameter 'weight' shape [2000000000, 784] is empty or too large"},
    {"[1, 100000, 100000]", TAIL, LP_ERR_CONFIG,
     "m.yaml:3:14: model.input: size 100000 must be between 1 and 65536"},
    {"[1, 65536, 65536]", TAIL, LP_ERR_SHAPE,
     "m.yaml:3:10: model input shape must have positive sizes (and at most 2147483647 elements)"},
    {"[0, 28, 28]", TAIL, LP_ERR_CONFIG, "m.yaml:3:11: model.input: size 0 must be between 1 and 65536"},
    {"[-1, 28, 28]", TAIL, LP_ERR_CONFIG, "m.yaml:3:11: model.input: size -1 must be between 1 and 65536"},
    /* padding near 2^31: the unrolled input is refused, not overflowed */
    {"[1, 28, 28]", "    - {op: conv2d, filters: 8, kernel: 3, padding: 2000000000}\n" TAIL, LP_ERR_SHAPE,
     "m.yaml:5:7: node 'conv2d1' (conv2d): output 4000000026 x 4000000026 is too large (more than "
     "2147483647 elements per channel)"},
    /* regression: OH was computed in int and wrapped, then K*P overflowed 64 bits (UB) */
    {"[1, 28, 28]", "    - {op: conv2d, filters: 1, kernel: [2147483647, 1], padding: [2147483647, 0]}\n" TAIL,
     LP_ERR_SHAPE,
     "m.yaml:5:7: node 'conv2d1' (conv2d): output 2147483676 x 28 is too large (more than 2147483647 "
     "elements per channel)"},
    {"[1, 28, 28]", "    - {op: conv2d, filters: 8, kernel: [2000000000, 2000000000], padding: 2000000000}\n" TAIL,
     LP_ERR_SHAPE,
     "m.yaml:5:7: node 'conv2d1' (conv2d): output 2000000029 x 2000000029 is too large (more than "
     "2147483647 elements per channel)"},
    {"[1, 28, 28]", "    - {op: conv2d, filters: 65536, kernel: 1}\n    - {op: conv2d, filters: 65536, kernel: 1}\n" TAIL,
     LP_ERR_SHAPE, "m.yaml:6:29: node 'conv2d2' (conv2d): the weight [65536, 65536, 1, 1] is too large (more "
                   "than 2147483647 elements)"},
    {"[4, 65536, 65536]", "    - {op: conv2d, filters: 1, kernel: 1}\n" TAIL, LP_ERR_SHAPE,
     "m.yaml:3:10: model input shape must have positive sizes (and at most 2147483647 elements)"},
    {"[1, 46340, 46340]", "    - {op: conv2d, filters: 1, kernel: 1, padding: 1}\n" TAIL, LP_ERR_SHAPE,
     "m.yaml:5:7: node 'conv2d1' (conv2d): output 46342 x 46342 is too large (more than 2147483647 elements "
     "per channel)"},
    {"[1, 32768, 32768]", "    - {op: conv2d, filters: 1, kernel: 2}\n" TAIL, LP_ERR_SHAPE,
     "m.yaml:5:7: node 'conv2d1' (conv2d): the unrolled input (4 x 1073676289) is too large"},
    {"[1, 28, 28]", "    - {op: conv2d, filters: 8, kernel: 3, stride: 0}\n" TAIL, LP_ERR_SHAPE,
     "m.yaml:5:51: node 'conv2d1' (conv2d): stride must be at least 1, got 0x0"},
    {"[1, 28, 28]", "    - {op: conv2d, filters: 8, kernel: 3, stride: [1, -2]}\n" TAIL, LP_ERR_SHAPE,
     "m.yaml:5:51: node 'conv2d1' (conv2d): stride must be at least 1, got 1x-2"},
    {"[1, 28, 28]", "    - {op: conv2d, filters: 0, kernel: 3}\n" TAIL, LP_ERR_SHAPE,
     "m.yaml:5:29: node 'conv2d1' (conv2d): filters must be at least 1, got 0"},
    {"[1, 28, 28]", "    - {op: conv2d, filters: 4, kernel: -3}\n" TAIL, LP_ERR_SHAPE,
     "m.yaml:5:40: node 'conv2d1' (conv2d): kernel must be at least 1x1, got -3x-3"},
    {"[1, 28, 28]", "    - {op: conv2d, filters: 4, kernel: 3, padding: -1}\n" TAIL, LP_ERR_SHAPE,
     "m.yaml:5:52: node 'conv2d1' (conv2d): padding must not be negative, got [-1, -1]"},
    {"[1, 28, 28]", "    - {op: maxpool, size: 0}\n" TAIL, LP_ERR_SHAPE,
     "m.yaml:5:27: node 'maxpool1' (maxpool): size must be at least 1, got 0x0"},
    {"[1, 28, 28]", "    - {op: maxpool, size: 2, stride: -1}\n" TAIL, LP_ERR_SHAPE,
     "m.yaml:5:38: node 'maxpool1' (maxpool): stride must be at least 1, got -1x-1"},
    {"[1, 28, 28]", HEAD "    - {op: dense, units: 0}\n", LP_ERR_SHAPE,
     "m.yaml:6:26: node 'dense1' (dense): units must be at least 1, got 0"},
    {"[1, 28, 28]", HEAD "    - {op: dense, units: -5}\n", LP_ERR_SHAPE,
     "m.yaml:6:26: node 'dense1' (dense): units must be at least 1, got -5"},
    {"[1, 28, 28]", HEAD "    - {op: dense, units: 99999999999999999999999}\n", LP_ERR_CONFIG,
     "m.yaml:6:26: node 'dense1' (dense): attribute 'units': integer '99999999999999999999999' is out of range"},
    {"[1, 28, 28]", HEAD "    - {op: dense, units: 4294967296}\n", LP_ERR_CONFIG,
     "m.yaml:6:26: node 'dense1' (dense): attribute 'units': 4294967296 does not fit in an int"},
    {"[1, 28, 28]", HEAD "    - {op: dense, units: 1e9}\n", LP_ERR_CONFIG, NULL},
    /* the model as a whole: each tensor fits, their sum does not (3e9 parameters) */
    {"[2000]", "    - {op: dense, units: 1000000}\n    - {op: dense, units: 1000}\n    - {op: dense, units: 10}\n",
     LP_ERR_SHAPE, "m.yaml:6:7: node 'dense2' (dense): the model has more than 2147483647 parameters"},
};

Test(sizes, overflowing_zero_and_negative_sizes_are_clear_errors)
{
    for (size_t i = 0; i < sizeof size_cases / sizeof size_cases[0]; i++) {
        const size_case *c = &size_cases[i];
        char msg[LP_ERROR_MSG_MAX];
        double t0 = now_s(), rss0 = peak_rss_mb();
        lp_status s = build_layers(c->input, c->layers, msg);
        double dt = now_s() - t0, grew = peak_rss_mb() - rss0;
        cr_assert_eq(s, c->status, "case %zu: status %d, want %d: %s", i, s, c->status, msg);
        if (c->msg) cr_assert_str_eq(msg, c->msg, "case %zu: %s", i, msg);
        else cr_assert(msg[0], "case %zu: no message", i);
        /* refused before anything big is allocated */
        cr_assert_lt(dt, 0.5, "case %zu took %.3f s", i, dt);
        cr_assert_lt(grew, 64, "case %zu: peak RSS grew by %.0f MB", i, grew);
    }
}

/* Regression: `padding: same` with a stride near 2^31 computed H + stride - 1 in
 * int (signed overflow, UB): the output came out 2x2 instead of 1x1. */
Test(sizes, same_padding_with_a_huge_stride_gives_one_pixel)
{
    const char *text = "name: t\nmodel:\n  input: [1, 28, 28]\n  layers:\n"
                       "    - {op: conv2d, filters: 1, kernel: 3, padding: same, stride: 2147483647}\n";
    lp_experiment_config cfg;
    lp_error err = {0};
    cr_assert_eq(lp_config_load_string(text, strlen(text), "m.yaml", NULL, 0, &cfg, &err), LP_OK, "%s", err.msg);
    lp_graph *g = NULL;
    cr_assert_eq(lp_graph_build(&cfg.model, &g, &err), LP_OK, "%s", err.msg);
    lp_shape out = lp_graph_final_shape(g);
    cr_assert_eq(out.ndim, 3);
    cr_assert(out.dims[0] == 1 && out.dims[1] == 1 && out.dims[2] == 1, "output [%d, %d, %d]", out.dims[0],
              out.dims[1], out.dims[2]);
    lp_graph_free(g);
    lp_config_free(&cfg);
}

/* Batch sizes: the config caps them; an arena that cannot be had is LP_ERR_NOMEM. */
Test(sizes, absurd_batch_size_is_refused_by_the_config)
{
    const char *doc = "name: t\nmodel: {input: [4], layers: [{op: dense, units: 2}]}\n";
    const char *sets[] = {"train.batch_size=100000000"};
    lp_experiment_config cfg;
    lp_error err = {0};
    cr_assert_eq(lp_config_load_string(doc, strlen(doc), "t.yaml", sets, 1, &cfg, &err), LP_ERR_CONFIG);
    cr_assert_str_eq(err.msg, "--set train.batch_size=100000000: train.batch_size: expected an integer from 1 "
                              "to 65536, found 100000000");
    lp_config_free(&cfg);
}

Test(sizes, an_arena_too_big_to_allocate_is_an_out_of_memory_error)
{
    /* Without ASan, cap the address space so the failure is certain whatever the
     * kernel's overcommit policy; under ASan (make check) its allocator returns
     * NULL for this 800 GB request (allocator_may_return_null=1). */
    if (!LP_ASAN) {
        struct rlimit rl = {(rlim_t)4 << 30, (rlim_t)4 << 30};
        cr_assert_eq(setrlimit(RLIMIT_AS, &rl), 0);
    } else {
        const char *o = getenv("ASAN_OPTIONS");
        if (!o || !strstr(o, "allocator_may_return_null=1"))
            cr_skip_test("under ASan this needs ASAN_OPTIONS=allocator_may_return_null=1 (make check sets it)");
    }
    const char *text = "name: t\nmodel:\n  input: [1, 28, 28]\n  layers:\n"
                       "    - {op: conv2d, filters: 4096, kernel: 1}\n    - {op: flatten}\n"
                       "    - {op: dense, units: 10}\n  loss: softmax_cross_entropy\n";
    lp_experiment_config cfg;
    lp_error err = {0};
    cr_assert_eq(lp_config_load_string(text, strlen(text), "m.yaml", NULL, 0, &cfg, &err), LP_OK, "%s", err.msg);
    lp_graph *g = NULL;
    cr_assert_eq(lp_graph_build(&cfg.model, &g, &err), LP_OK, "%s", err.msg);
    cr_assert_eq(lp_graph_plan(g, 65536, &err), LP_ERR_NOMEM);
    assert_contains(err.msg, "MB of activations for batch 65536");
    /* the graph is still usable at a batch that fits */
    lp_error_clear(&err);
    cr_assert_eq(lp_graph_plan(g, 2, &err), LP_OK, "%s", err.msg);
    lp_graph_free(g);
    lp_config_free(&cfg);
}

/* ---- IDX files (the rest are in test_data.c) -------------------------------- */

TestSuite(idx_hostile, .init = make_tmpdir, .fini = remove_tmpdir);

static void write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(p, 1, n, f), n);
    fclose(f);
}

/* A header claiming 0xFFFFFFFF images of 0xFFFFFFFF x 0xFFFFFFFF: refused by the
 * first limit, without allocating, raw and gzipped. */
Test(idx_hostile, all_ones_header_is_refused_before_allocating)
{
    unsigned char h[16] = {0, 0, 8, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    write_bytes(tmp_path("ones"), h, sizeof h);
    gzFile g = gzopen(tmp_path("ones.gz"), "wb");
    gzwrite(g, h, sizeof h);
    gzclose(g);
    const char *paths[] = {tmp_path("ones"), tmp_path("ones.gz")};
    for (int i = 0; i < 2; i++) {
        uint8_t *px = (uint8_t *)1;
        int n, r, c;
        lp_error err = {0};
        double rss0 = peak_rss_mb();
        cr_assert_eq(lp_idx_read_images(paths[i], &px, &n, &r, &c, &err), LP_ERR_DATA);
        cr_assert_null(px);
        assert_contains(err.msg, "header claims 4294967295 images, more than the limit of 10000000");
        cr_assert_lt(peak_rss_mb() - rss0, 8);
    }
}

/* A 1 KB gzip that inflates to 100 MB of zeros after a valid one-label file: the
 * trailing data is counted (bounded at 1 GiB), never stored, and refused. */
Test(idx_hostile, gzip_bomb_after_valid_data_is_counted_not_stored)
{
    const char *path = tmp_path("bomb.gz");
    gzFile g = gzopen(path, "wb9");
    unsigned char h[9] = {0, 0, 8, 1, 0, 0, 0, 1, 3};
    gzwrite(g, h, sizeof h);
    static unsigned char zero[1 << 20];
    for (int i = 0; i < 100; i++) gzwrite(g, zero, sizeof zero);
    gzclose(g);
    struct stat st;
    stat(path, &st);
    cr_assert_lt(st.st_size, 200000, "the bomb is small: %lld bytes", (long long)st.st_size);
    uint8_t *lab = (uint8_t *)1;
    int n;
    lp_error err = {0};
    double rss0 = peak_rss_mb();
    cr_assert_eq(lp_idx_read_labels(path, 10, &lab, &n, &err), LP_ERR_DATA);
    cr_assert_null(lab);
    assert_contains(err.msg, "104857600 trailing bytes after the 1 bytes of data");
    cr_assert_lt(peak_rss_mb() - rss0, 16, "the trailing data must not be kept");
}

/* A directory, /dev/zero and an empty file given as IDX files. */
Test(idx_hostile, directory_dev_zero_and_empty_file)
{
    uint8_t *px;
    int n, r, c;
    lp_error err = {0};
    cr_assert_eq(lp_idx_read_images(tmpdir, &px, &n, &r, &c, &err), LP_ERR_IO);
    assert_contains(err.msg, "Is a directory");
    lp_error_clear(&err);
    cr_assert_eq(lp_idx_read_images("/dev/zero", &px, &n, &r, &c, &err), LP_ERR_DATA);
    assert_contains(err.msg, "/dev/zero: not an IDX images file: magic 0x00000000");
    write_bytes(tmp_path("empty"), "", 0);
    lp_error_clear(&err);
    cr_assert_eq(lp_idx_read_labels(tmp_path("empty"), 10, &px, &n, &err), LP_ERR_DATA);
    assert_contains(err.msg, "too short for an IDX labels header: 0 bytes, need 8");
}

/* ---- checkpoints that do not fit the model ------------------------------------ */

static lp_graph *graph_from(const char *text)
{
    lp_experiment_config cfg;
    lp_error err = {0};
    cr_assert_eq(lp_config_load_string(text, strlen(text), "m.yaml", NULL, 0, &cfg, &err), LP_OK, "%s", err.msg);
    lp_graph *g = NULL;
    cr_assert_eq(lp_graph_build(&cfg.model, &g, &err), LP_OK, "%s", err.msg);
    lp_config_free(&cfg);
    return g;
}

#define NET(units) \
    "name: t\nmodel:\n  input: [1, 6, 6]\n  layers:\n    - {op: conv2d, name: conv1, filters: 2, kernel: 3}\n" \
    "    - {op: flatten}\n    - {op: dense, name: fc1, units: " units "}\n    - {op: dense, name: fc2, units: 3}\n" \
    "  loss: softmax_cross_entropy\n"

Test(checkpoint_hostile, a_checkpoint_of_another_model_is_refused_and_changes_nothing)
{
    lp_graph *a = graph_from(NET("8")), *b = graph_from(NET("4"));
    lp_graph_init_params(a, 1);
    lp_graph_init_params(b, 2);
    void *buf;
    size_t size;
    lp_error err = {0};
    cr_assert_eq(lp_snapshot_encode(a, NULL, NULL, &buf, &size, &err), LP_OK, "%s", err.msg);
    size_t nb = lp_graph_param_floats(b);
    float *before = malloc(nb * sizeof *before);
    memcpy(before, lp_graph_params(b), nb * sizeof *before);
    cr_assert_eq(lp_snapshot_restore(buf, size, b, NULL, NULL, "checkpoint of run 1", &err), LP_ERR_SHAPE);
    cr_assert_str_eq(err.msg, "checkpoint of run 1 tensor 'fc1.weight' has shape [8, 32], model expects [4, 32]");
    cr_assert_eq(memcmp(before, lp_graph_params(b), nb * sizeof *before), 0, "a refused load changed the model");
    /* a checkpoint with a tensor the model lacks (another architecture) */
    lp_graph *c = graph_from("name: t\nmodel:\n  input: [1, 6, 6]\n  layers:\n"
                             "    - {op: conv2d, name: conv1, filters: 2, kernel: 3}\n    - {op: flatten}\n"
                             "    - {op: dense, name: fc2, units: 3}\n  loss: softmax_cross_entropy\n");
    lp_error_clear(&err);
    cr_assert_neq(lp_snapshot_restore(buf, size, c, NULL, NULL, "checkpoint", &err), LP_OK);
    cr_assert(strstr(err.msg, "fc1.weight") || strstr(err.msg, "fc2.weight"), "%s", err.msg);
    free(before);
    free(buf);
    lp_graph_free(a);
    lp_graph_free(b);
    lp_graph_free(c);
}

/* ---- NaN and Inf in training ------------------------------------------------- */

/* n images of 1x4x4, pixel i worth value * ((i % 5) - 2), labels i % 3. */
static lp_dataset tiny_data(int n, float value)
{
    lp_dataset d = {.n = n, .c = 1, .h = 4, .w = 4, .classes = 3, .scale = value,
                    .offset = -2 * value};
    d.pixels = malloc((size_t)n * 16);
    d.labels = malloc((size_t)n * sizeof(int32_t));
    for (int i = 0; i < n * 16; i++) d.pixels[i] = (uint8_t)(i % 5);
    for (int i = 0; i < n; i++) d.labels[i] = i % 3;
    return d;
}

#define TINY "name: t\nmodel:\n  input: [1, 4, 4]\n  layers:\n    - {op: flatten}\n" \
             "    - {op: dense, name: fc, units: 3}\n  loss: softmax_cross_entropy\n"

typedef struct hook_log {
    int calls;
    int last_epoch;
} hook_log;

static lp_status count_hook(void *ctx, const lp_epoch_result *r, lp_error *err)
{
    hook_log *h = ctx;
    h->calls++;
    h->last_epoch = r->epoch;
    cr_assert(isfinite(r->test_loss) && isfinite(r->train_loss), "the hook saw a non-finite epoch %d", r->epoch);
    return LP_OK;
}

static lp_train_options tiny_options(int epochs, int batch, float lr)
{
    lp_train_options o = {.epochs = epochs, .batch_size = batch, .seed = 1, .shuffle = false, .quiet = true,
                          .eval_batch = 8};
    o.optim = (lp_optim_config){.type = LP_OPTIM_SGD, .lr = lr, .momentum = 0};
    o.schedule = (lp_schedule_config){.type = LP_SCHEDULE_CONSTANT};
    return o;
}

/* A loss that becomes NaN mid-epoch stops the run naming epoch and step; the hook
 * (which records epochs) never sees the epoch. */
Test(numeric, nan_loss_mid_epoch_stops_naming_epoch_and_step)
{
    lp_threads_init(1);
    lp_graph *g = graph_from(TINY);
    lp_graph_init_params(g, 1);
    lp_dataset train = tiny_data(8, 100.0f), test = tiny_data(4, 100.0f);
    lp_train_options o = tiny_options(3, 1, 1e38f);
    lp_trainer t;
    lp_error err = {0};
    cr_assert_eq(lp_trainer_init(&t, g, &train, &test, &o, &err), LP_OK, "%s", err.msg);
    hook_log h = {0};
    cr_assert_eq(lp_trainer_run(&t, count_hook, &h, NULL, &err), LP_ERR_NUMERIC);
    cr_assert_eq(h.calls, 0, "no epoch may be recorded");
    cr_assert(strstr(err.msg, "in epoch 1 at step ") && strstr(err.msg, "try a smaller learning rate"), "%s",
              err.msg);
    assert_contains(err.msg, "loss became NaN");
    lp_trainer_free(&t);
    lp_graph_free(g);
    lp_dataset_free(&train);
    lp_dataset_free(&test);
}

/* Regression: the last step of an epoch can blow the weights up after its own loss
 * was computed (finite). The epoch then evaluated to a NaN test loss and was
 * committed with its poisoned checkpoint, as the best one when it was epoch 1. */
Test(numeric, weights_poisoned_by_the_last_step_never_reach_the_hook)
{
    lp_threads_init(1);
    lp_graph *g = graph_from(TINY);
    lp_graph_init_params(g, 1);
    lp_dataset train = tiny_data(1, 100.0f), test = tiny_data(4, 100.0f);
    lp_train_options o = tiny_options(3, 1, 1e38f);   /* one step per epoch */
    lp_trainer t;
    lp_error err = {0};
    cr_assert_eq(lp_trainer_init(&t, g, &train, &test, &o, &err), LP_OK, "%s", err.msg);
    hook_log h = {0};
    cr_assert_eq(lp_trainer_run(&t, count_hook, &h, NULL, &err), LP_ERR_NUMERIC);
    cr_assert_eq(h.calls, 0, "the poisoned epoch 1 was handed to the hook");
    cr_assert(strstr(err.msg, "after the last step of epoch 1 (step 1): epoch 1 is not recorded"), "%s", err.msg);
    lp_trainer_free(&t);
    lp_graph_free(g);
    lp_dataset_free(&train);
    lp_dataset_free(&test);
}

/* Good epochs are kept: run 2 epochs, then continue (as --resume does) at an
 * absurd learning rate; the hook saw epochs 1-2 only. */
Test(numeric, epochs_before_the_poisoned_one_are_kept)
{
    lp_threads_init(1);
    lp_graph *g = graph_from(TINY);
    lp_graph_init_params(g, 1);
    lp_dataset train = tiny_data(8, 0.5f), test = tiny_data(4, 0.5f);
    lp_train_options o = tiny_options(2, 4, 0.01f);
    lp_trainer t;
    lp_error err = {0};
    cr_assert_eq(lp_trainer_init(&t, g, &train, &test, &o, &err), LP_OK, "%s", err.msg);
    hook_log h = {0};
    cr_assert_eq(lp_trainer_run(&t, count_hook, &h, NULL, &err), LP_OK, "%s", err.msg);
    cr_assert_eq(h.calls, 2);
    t.start_epoch = 2;
    t.opt.epochs = 4;
    t.opt.optim.lr = 3e38f;
    train.scale *= 1000.0f;   /* every value x1000 */
    train.offset *= 1000.0f;
    cr_assert_eq(lp_trainer_run(&t, count_hook, &h, NULL, &err), LP_ERR_NUMERIC);
    cr_assert_eq(h.calls, 2, "epoch 3 must not be recorded: %s", err.msg);
    assert_contains(err.msg, "epoch 3");
    lp_trainer_free(&t);
    lp_graph_free(g);
    lp_dataset_free(&train);
    lp_dataset_free(&test);
}
