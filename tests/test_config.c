/* test_config.c - YAML reading (locations, limits, hostile input), the model spec,
 * the experiment config (defaults, every kind of mistake with its exact
 * file:line:col), --set overrides, flattening for the runs DB, and the shipped
 * configs built into graphs.
 *
 * Run from the repository root (the shipped configs are read from configs/).
 */
#include "test_params.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include "config.h"
#include "graph.h"
#include "lp_yaml.h"
#include "registry.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static lp_value *load_ok(const char *text)
{
    lp_error err = {0};
    lp_value *v = NULL;
    lp_status s = lp_yaml_load_string(text, strlen(text), "t.yaml", &v, &err);
    cr_assert_eq(s, LP_OK, "unexpected error: %s", err.msg);
    cr_assert_not_null(v);
    return v;
}

/* Load text that must fail; returns the message (static). */
static const char *load_fail(const char *text, size_t len, lp_status want)
{
    static lp_error err;
    lp_error_clear(&err);
    lp_value *v = (lp_value *)1;
    lp_status s = lp_yaml_load_string(text, len, "t.yaml", &v, &err);
    cr_assert_eq(s, want, "status %d, wanted %d (%s)", s, want, err.msg);
    cr_assert_null(v, "no tree on failure");
    return err.msg;
}

static void assert_prefix(const char *msg, const char *prefix)
{
    cr_assert(strncmp(msg, prefix, strlen(prefix)) == 0, "message '%s'\n  should start with '%s'",
              msg, prefix);
}

static void assert_contains(const char *msg, const char *part)
{
    cr_assert(strstr(msg, part) != NULL, "message '%s'\n  should contain '%s'", msg, part);
}

/* ---- YAML loader --------------------------------------------------------- */

Test(yaml, locations_are_one_based_and_name_the_file)
{
    lp_value *v = load_ok("name: x\n"
                          "model:\n"
                          "  input: [1, 28, 28]\n"
                          "  layers:\n"
                          "    - {op: conv2d, filters: 8}\n"
                          "    - op: relu\n");
    cr_assert_eq(v->kind, LP_VALUE_MAP);
    cr_assert_str_eq(v->loc.file, "t.yaml");
    cr_assert_eq(v->key_locs[0].line, 1);
    cr_assert_eq(v->key_locs[0].col, 1);
    cr_assert_eq(v->items[0]->loc.col, 7, "value of name starts at column 7");
    lp_value *model = lp_value_get(v, "model");
    lp_value *input = lp_value_get(model, "input");
    cr_assert_eq(input->kind, LP_VALUE_LIST);
    cr_assert_eq(input->loc.line, 3);
    cr_assert_eq(input->loc.col, 10);
    cr_assert_eq(input->items[2]->loc.col, 18);
    cr_assert_str_eq(input->items[2]->text, "28");
    lp_value *layers = lp_value_get(model, "layers");
    cr_assert_eq(layers->count, 2);
    lp_value *l0 = layers->items[0];
    cr_assert_eq(l0->loc.line, 5);
    cr_assert_eq(l0->loc.col, 7);
    int fi = lp_value_find(l0, "filters");
    cr_assert_eq(l0->key_locs[fi].col, 20);
    cr_assert_eq(l0->items[fi]->loc.col, 29);
    lp_value *l1 = layers->items[1];
    cr_assert_eq(l1->loc.line, 6);
    cr_assert_eq(l1->items[0]->loc.col, 11);
    lp_value_free(v);
}

Test(yaml, file_names_outlive_the_tree)
{
    lp_value *v = load_ok("a: 1\n");
    const char *file = v->items[0]->loc.file;
    lp_value_free(v);
    cr_assert_str_eq(file, "t.yaml", "interned names stay valid after the tree is freed");
    cr_assert_eq(lp_yaml_intern_name("t.yaml"), file, "one copy per name");
}

Test(yaml, quoted_scalars_are_flagged)
{
    lp_value *v = load_ok("a: \"5\"\nb: 5\nc: 'x'\nd: !!str 7\ne: |\n  text\n");
    cr_assert(lp_value_get(v, "a")->quoted);
    cr_assert_not(lp_value_get(v, "b")->quoted);
    cr_assert(lp_value_get(v, "c")->quoted);
    cr_assert(lp_value_get(v, "d")->quoted, "!!str makes a string");
    cr_assert(lp_value_get(v, "e")->quoted, "block scalars are strings");
    long long x;
    lp_error err = {0};
    cr_assert_eq(lp_value_as_int(lp_value_get(v, "a"), "a", &x, &err), LP_ERR_CONFIG,
                 "a quoted number is a string");
    lp_value_free(v);
}

Test(yaml, duplicate_key_names_the_first)
{
    const char *t = "a: 1\nb:\n  c: 1\n  c: 2\n";
    const char *msg = load_fail(t, strlen(t), LP_ERR_CONFIG);
    cr_assert_str_eq(msg, "t.yaml:4:3: duplicate key 'c' (first written at line 3, column 3)");
}

Test(yaml, aliases_and_anchors_are_rejected)
{
    const char *t = "a: &x [1, *x]\n";
    assert_prefix(load_fail(t, strlen(t), LP_ERR_CONFIG), "t.yaml:1:4: YAML anchors (&x)");
    t = "a: 1\nb: *x\n";
    assert_prefix(load_fail(t, strlen(t), LP_ERR_CONFIG), "t.yaml:2:4: YAML aliases (*x)");
}

Test(yaml, depth_bomb_is_rejected_quickly)
{
    size_t n = 100000;
    char *bomb = malloc(n);
    memset(bomb, '[', n);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    const char *msg = load_fail(bomb, n, LP_ERR_CONFIG);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) * 1e-9;
    cr_assert_str_eq(msg, "t.yaml:1:65: nesting deeper than 64 levels");
    cr_assert_lt(s, 0.2, "took %.3f s: the depth limit must stop libyaml early", s);
    free(bomb);
}

Test(yaml, depth_limit_is_exact)
{
    char text[200];
    memset(text, '[', 64);
    memset(text + 64, ']', 64);
    text[128] = '\0';
    lp_value *v = load_ok(text);
    lp_value_free(v);
    memset(text, '[', 65);
    memset(text + 65, ']', 65);
    text[130] = '\0';
    assert_prefix(load_fail(text, 130, LP_ERR_CONFIG), "t.yaml:1:65: nesting deeper");
}

Test(yaml, big_scalar_is_rejected)
{
    size_t n = LP_YAML_MAX_SCALAR + 10;
    char *t = malloc(n + 8);
    memcpy(t, "k: ", 3);
    memset(t + 3, 'x', n);
    const char *msg = load_fail(t, n + 3, LP_ERR_CONFIG);
    assert_prefix(msg, "t.yaml:1:4: scalar of 65546 bytes is longer than the 64 KiB limit");
    free(t);
}

Test(yaml, wide_map_is_rejected_quickly)
{
    /* Duplicate checks are linear per key: without a cap, 100,000 keys took ~40 s. */
    size_t size = 16 * 100000, n = 0;
    char *t = malloc(size);
    for (int i = 0; i < 60000; i++) n += (size_t)sprintf(t + n, "k%d: 1\n", i);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    const char *msg = load_fail(t, n, LP_ERR_CONFIG);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) * 1e-9;
    cr_assert_str_eq(msg, "t.yaml:4097:1: more than 4096 keys in one map");
    cr_assert_lt(s, 1.0, "took %.3f s", s);
    free(t);
}

Test(yaml, big_file_is_rejected)
{
    char path[] = "/tmp/loupe_test_config_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    FILE *f = fdopen(fd, "w");
    for (unsigned i = 0; i < LP_YAML_MAX_FILE / 8 + 1; i++) fputs("# xxxxx\n", f);
    fclose(f);
    lp_error err = {0};
    lp_value *v;
    cr_assert_eq(lp_yaml_load_file(path, &v, &err), LP_ERR_CONFIG);
    assert_contains(err.msg, "larger than the 1024 KiB limit");
    unlink(path);
}

Test(yaml, missing_file_is_an_io_error)
{
    lp_error err = {0};
    lp_value *v;
    cr_assert_eq(lp_yaml_load_file("/nonexistent/x.yaml", &v, &err), LP_ERR_IO);
    assert_prefix(err.msg, "cannot open /nonexistent/x.yaml: ");
}

Test(yaml, syntax_error_has_line_and_column)
{
    const char *t = "a: [1, 2\nb: 3\n";
    const char *msg = load_fail(t, strlen(t), LP_ERR_CONFIG);
    assert_prefix(msg, "t.yaml:2:2: YAML syntax error: did not find expected ',' or ']'");
    assert_contains(msg, "line 1, column 4");
    t = "a:\n  b: 1\n c: 2\n";
    assert_prefix(load_fail(t, strlen(t), LP_ERR_CONFIG), "t.yaml:3:2: YAML syntax error");
}

Test(yaml, other_refusals)
{
    const char *t = "";
    cr_assert_str_eq(load_fail(t, 0, LP_ERR_CONFIG), "t.yaml: the YAML document is empty");
    t = "# just a comment\n";
    cr_assert_str_eq(load_fail(t, strlen(t), LP_ERR_CONFIG), "t.yaml: the YAML document is empty");
    t = "a: 1\n---\nb: 2\n";
    assert_prefix(load_fail(t, strlen(t), LP_ERR_CONFIG), "t.yaml:2:1: a second YAML document");
    t = "? [a]\n: 1\n";
    assert_prefix(load_fail(t, strlen(t), LP_ERR_CONFIG), "t.yaml:1:3: map keys must be plain scalars");
    t = "a: !foo 3\n";
    assert_prefix(load_fail(t, strlen(t), LP_ERR_CONFIG), "t.yaml:1:4: YAML tags (!foo)");
    t = "a: \"x\\0y\"\n";
    assert_prefix(load_fail(t, strlen(t), LP_ERR_CONFIG), "t.yaml:1:4: scalar contains a NUL");
    t = "a: \xff\n";
    assert_prefix(load_fail(t, strlen(t), LP_ERR_CONFIG), "t.yaml:1:4: YAML syntax error");
}

/* ---- bad configs: exact location and message ------------------------------ */

#define MODEL "name: t\n"                              \
              "model:\n"                               \
              "  input: [1, 28, 28]\n"                 \
              "  layers:\n"                            \
              "    - {op: flatten}\n"                  \
              "    - {op: dense, units: 10}\n"         \
              "  loss: softmax_cross_entropy\n"
/* MODEL is 7 lines: what follows starts on line 8. */

typedef struct bad_case {
    const char *text;
    lp_status status;
    const char *prefix;     /* exact start of the message */
    const char *part;       /* and something it must say */
} bad_case;

static const bad_case bad_cases[] = {
    {MODEL "trian: {epochs: 3}\n", LP_ERR_CONFIG, "bad.yaml:8:1: unknown key 'trian'",
     "did you mean 'train'?"},
    {MODEL "train:\n  optimizer: {type: sgdd, lr: 0.1}\n", LP_ERR_CONFIG,
     "bad.yaml:9:21: train.optimizer.type: unknown value 'sgdd'", "did you mean 'sgd'?"},
    {MODEL "train: {epochs: -1}\n", LP_ERR_CONFIG, "bad.yaml:8:17: train.epochs: ",
     "from 1 to 100000, found -1"},
    {MODEL "train: {batch_size: 0}\n", LP_ERR_CONFIG, "bad.yaml:8:21: train.batch_size: ",
     "from 1 to 65536, found 0"},
    {MODEL "train: {batch_size: \"64\"}\n", LP_ERR_CONFIG, "bad.yaml:8:21: train.batch_size: ",
     "expected an integer"},
    {MODEL "train:\n  optimizer:\n    lr: fast\n", LP_ERR_CONFIG,
     "bad.yaml:10:9: train.optimizer.lr: ", "expected a finite number, found 'fast'"},
    {MODEL "train:\n  optimizer: {lr: 0}\n", LP_ERR_CONFIG, "bad.yaml:9:19: train.optimizer.lr: ",
     "expected a number > 0"},
    {"model:\n  input: [1, 28, 28]\n  layers: [{op: relu}]\n", LP_ERR_CONFIG, "bad.yaml:1:1: ",
     "missing 'name'"},
    {"name: t\nmodel:\n  input: [1, 28, 28]\n  layers: [{op: relu}]\n  nodes: []\n",
     LP_ERR_CONFIG, "bad.yaml:5:3: model: ", "either 'layers'"},
    {"name: t\nmodel:\n  input: [1, 28, 28]\n  loss: softmax_cross_entropy\n", LP_ERR_CONFIG,
     "bad.yaml:3:3: model: ", "missing 'layers'"},
    {"name: t\nmodel:\n  input: [1, 0, 28]\n  layers: [{op: relu}]\n", LP_ERR_CONFIG,
     "bad.yaml:3:14: model.input: ", "between 1 and"},
    {"name: t\nmodel:\n  input: 784\n  layers: [{op: relu}]\n", LP_ERR_CONFIG,
     "bad.yaml:3:10: model.input: ", "expected a list of 1 to 3 positive integers"},
    {"name: t\nmodel:\n  input: [1, 28, 28]\n  layrs: [{op: relu}]\n", LP_ERR_CONFIG,
     "bad.yaml:4:3: unknown key 'model.layrs'", "did you mean 'layers'?"},
    {"name: t\nmodel:\n  input: [4]\n  layers:\n    - {op: relu, name: a}\n    - {op: relu, name: a}\n",
     LP_ERR_CONFIG, "bad.yaml:6:24: model.layers[1].name: ", "already used at line 5"},
    {"name: t\nmodel:\n  input: [4]\n  layers:\n    - {op: relu, name: input}\n", LP_ERR_CONFIG,
     "bad.yaml:5:24: model.layers[0].name: ", "reserved"},
    {"name: t\nmodel:\n  input: [4]\n  layers:\n    - relu\n", LP_ERR_CONFIG,
     "bad.yaml:5:7: model.layers[0]: ", "expected a map like {op: relu}"},
    {"name: t\nmodel:\n  input: [4]\n  layers:\n    - {units: 3}\n", LP_ERR_CONFIG,
     "bad.yaml:5:7: model.layers[0]: ", "missing 'op'"},
    {"name: t\nmodel:\n  input: [4]\n  layers:\n    - {op: relu, inputs: [input]}\n",
     LP_ERR_CONFIG, "bad.yaml:5:18: model.layers[0]: ", "'inputs' belongs to `nodes:`"},
    {"name: t\nmodel:\n  input: [4]\n  nodes:\n    - {op: relu, name: r}\n", LP_ERR_CONFIG,
     "bad.yaml:5:7: model.nodes[0]: ", "missing 'inputs'"},
    {"name: t\nmodel:\n  input: [4]\n  nodes:\n    - {op: relu, inputs: input}\n", LP_ERR_CONFIG,
     "bad.yaml:5:7: model.nodes[0]: ", "missing 'name'"},
    {"name: t\nmodel:\n  input: [4]\n  layers: [{op: relu, name: r1}]\n  output: r2\n",
     LP_ERR_CONFIG, "bad.yaml:5:11: model.output: no node is named 'r2'", "did you mean 'r1'?"},
    {"name: t\nmodel:\n  input: [4]\n  layers: [{op: relu, name: a.b}]\n", LP_ERR_CONFIG,
     "bad.yaml:4:29: model.layers[0].name: ", "not a valid node name"},
    {MODEL "train:\n  optimizer: {type: adam, momentum: 0.9}\n", LP_ERR_CONFIG,
     "bad.yaml:9:27: train.optimizer.momentum: ", "does not apply when train.optimizer.type is 'adam'"},
    {MODEL "train:\n  schedule: {type: step}\n", LP_ERR_CONFIG, "bad.yaml:9:13: train.schedule: ",
     "needs step_size"},
    {MODEL "train:\n  optimizer: {type: sgd, momentum: 0, nesterov: true}\n", LP_ERR_CONFIG,
     "bad.yaml:9:39: train.optimizer.nesterov: ", "needs momentum > 0"},
    {MODEL "train:\n  optimizer: {type: rmsprop, nesterov: true}\n", LP_ERR_CONFIG,
     "bad.yaml:9:30: train.optimizer.nesterov: ", "does not apply when train.optimizer.type is 'rmsprop'"},
    {MODEL "train:\n  optimizer: {type: sgd, alpha: 0.9}\n", LP_ERR_CONFIG,
     "bad.yaml:9:26: train.optimizer.alpha: ", "does not apply when train.optimizer.type is 'sgd'"},
    {MODEL "train:\n  optimizer: {type: rmsprop, alpha: 1}\n", LP_ERR_CONFIG,
     "bad.yaml:9:37: train.optimizer.alpha: ", ""},
    {MODEL "train:\n  optimizer: {type: rmsprop, momentum: -0.5}\n", LP_ERR_CONFIG,
     "bad.yaml:9:40: train.optimizer.momentum: ", ""},
    {MODEL "train:\n  optimizer: {type: adamw, eps: -1}\n", LP_ERR_CONFIG,
     "bad.yaml:9:33: train.optimizer.eps: ", ""},
    {MODEL "train:\n  schedule: {type: exponential}\n", LP_ERR_CONFIG, "bad.yaml:9:13: train.schedule: ",
     "needs gamma"},
    {MODEL "train:\n  schedule: {type: multistep}\n", LP_ERR_CONFIG, "bad.yaml:9:13: train.schedule: ",
     "needs milestones"},
    {MODEL "train:\n  epochs: 10\n  schedule: {type: multistep, milestones: [5, 3]}\n", LP_ERR_CONFIG,
     "bad.yaml:10:47: train.schedule.milestones: ", "expected increasing epochs from 1 to 10 (train.epochs), found 3"},
    {MODEL "train:\n  epochs: 10\n  schedule: {type: multistep, milestones: [11]}\n", LP_ERR_CONFIG,
     "bad.yaml:10:44: train.schedule.milestones: ", "found 11"},
    {MODEL "train:\n  schedule: {type: step, step_size: 2, milestones: [1]}\n", LP_ERR_CONFIG,
     "bad.yaml:9:40: train.schedule.milestones: ", "does not apply when train.schedule.type is 'step'"},
    {MODEL "train:\n  epochs: 5\n  schedule: {type: cosine, warmup_epochs: 6}\n", LP_ERR_CONFIG,
     "bad.yaml:10:43: train.schedule.warmup_epochs: ", "[0, 5]"},
    /* plateau schedule, early stopping, validation split (issue 13) */
    {MODEL "train:\n  schedule: {type: plateau, factor: 1.5}\n", LP_ERR_CONFIG,
     "bad.yaml:9:37: train.schedule.factor: ", "expected a number in (0, 1), found 1.5"},
    {MODEL "train:\n  schedule: {type: plateau, factor: 0}\n", LP_ERR_CONFIG,
     "bad.yaml:9:37: train.schedule.factor: ", "expected a number in (0, 1), found 0"},
    {MODEL "train:\n  schedule: {type: plateau, metric: loss}\n", LP_ERR_CONFIG,
     "bad.yaml:9:37: train.schedule.metric: ", "unknown value 'loss'"},
    {MODEL "train:\n  schedule: {type: plateau, metric: val/loss}\n", LP_ERR_CONFIG,
     "bad.yaml:9:37: train.schedule.metric: ", "val/loss needs a validation split (data.validation: N)"},
    {MODEL "train:\n  schedule: {type: plateau, metric: test/loss, warmup_epochs: 1}\n", LP_ERR_CONFIG,
     "bad.yaml:9:48: train.schedule.warmup_epochs: ", "does not apply when train.schedule.type is 'plateau'"},
    {MODEL "train:\n  schedule: {type: plateau, metric: test/loss, threshold_mode: relative}\n", LP_ERR_CONFIG,
     "bad.yaml:9:64: train.schedule.threshold_mode: ", "unknown value 'relative'"},
    {MODEL "train:\n  schedule: {type: plateau, metric: test/loss, cooldown: -1}\n", LP_ERR_CONFIG,
     "bad.yaml:9:58: train.schedule.cooldown: ", "found -1"},
    {MODEL "train:\n  schedule: {type: cosine, patience: 2}\n", LP_ERR_CONFIG,
     "bad.yaml:9:28: train.schedule.patience: ", "does not apply when train.schedule.type is 'cosine'"},
    {MODEL "train:\n  schedule: {type: cosine, warmup_start_factor: 0.1}\n", LP_ERR_CONFIG,
     "bad.yaml:9:28: train.schedule.warmup_start_factor: ", "does not apply without warmup_epochs"},
    {MODEL "train:\n  schedule: {type: cosine, warmup_epochs: 1, warmup_start_factor: 0}\n", LP_ERR_CONFIG,
     "bad.yaml:9:67: train.schedule.warmup_start_factor: ", "expected a number in (0, 1], found 0"},
    {MODEL "train:\n  early_stop: {metric: test/acc, patience: 0}\n", LP_ERR_CONFIG,
     "bad.yaml:9:44: train.early_stop.patience: ", "expected an integer from 1 to 100000, found 0"},
    {MODEL "train:\n  early_stop: {metric: test/acc, min_delta: -0.1}\n", LP_ERR_CONFIG,
     "bad.yaml:9:45: train.early_stop.min_delta: ", "expected a number >= 0, found -0.1"},
    {MODEL "train:\n  early_stop: {metric: tset/acc}\n", LP_ERR_CONFIG,
     "bad.yaml:9:24: train.early_stop.metric: ", "unknown value 'tset/acc': did you mean 'test/acc'?"},
    {MODEL "train:\n  early_stop: {metric: test/acc, mode: up}\n", LP_ERR_CONFIG,
     "bad.yaml:9:40: train.early_stop.mode: ", "unknown value 'up'"},
    {MODEL "train:\n  early_stop: {metric: test/acc, patince: 2}\n", LP_ERR_CONFIG,
     "bad.yaml:9:34: unknown key 'train.early_stop.patince'", "did you mean 'patience'?"},
    {MODEL "train:\n  early_stop: {metric: val/acc}\n", LP_ERR_CONFIG,
     "bad.yaml:9:24: train.early_stop.metric: ", "val/acc needs a validation split"},
    {MODEL "train:\n  early_stop: {patience: 3}\n", LP_ERR_CONFIG,
     "bad.yaml:9:15: train.early_stop: ", "val/loss needs a validation split"},
    {MODEL "data: {validation: -5}\n", LP_ERR_CONFIG, "bad.yaml:8:20: data.validation: ",
     "expected an integer from 0 to 1000000000, found -5"},
    {MODEL "data: {train_limit: 100, validation: 100}\n", LP_ERR_CONFIG, "bad.yaml:8:38: data.validation: ",
     "leave none of the 100 of data.train_limit"},
    {MODEL "data: {normalize: [0.1]}\n", LP_ERR_CONFIG, "bad.yaml:8:19: data.normalize: ",
     "expected [mean, std]"},
    {MODEL "data: {normalize: [0.1, 0]}\n", LP_ERR_CONFIG, "bad.yaml:8:25: data.normalize: ",
     "std must be > 0"},
    {MODEL "data: {dataset: mnsit}\n", LP_ERR_CONFIG, "bad.yaml:8:17: data.dataset: ",
     "did you mean 'mnist'?"},
    {MODEL "data:\n  augment: {shift: 20}\n", LP_ERR_CONFIG, "bad.yaml:9:20: data.augment.shift: ",
     "from 0 to 8, found 20"},
    {MODEL "data:\n  augment: {shfit: 2}\n", LP_ERR_CONFIG, "bad.yaml:9:13: unknown key 'data.augment.shfit'",
     "did you mean 'shift'?"},
    {MODEL "data: {shuffle: maybe}\n", LP_ERR_CONFIG, "bad.yaml:8:17: data.shuffle: ",
     "expected true or false"},
    {MODEL "train: [1, 2]\n", LP_ERR_CONFIG, "bad.yaml:8:8: train: ", "expected a map, found a list"},
    {MODEL "tracking: {checkpoint_every: 0}\n", LP_ERR_CONFIG,
     "bad.yaml:8:30: tracking.checkpoint_every: ", "found 0"},
    {MODEL "plugins: x.so\n", LP_ERR_CONFIG, "bad.yaml:8:10: plugins: ", "expected a list"},
    {"- name: t\n", LP_ERR_CONFIG, "bad.yaml:1:1: ", "expected a map"},
    {MODEL "name: u\n", LP_ERR_CONFIG, "bad.yaml:8:1: duplicate key 'name'", "line 1, column 1"},
};


ParameterizedTestParameters(config, bad)
{
    return cr_make_param_array(int, index_params(COUNT(bad_cases)), COUNT(bad_cases));
}

ParameterizedTest(int *index, config, bad)
{
    const bad_case *c = &bad_cases[*index];
    lp_experiment_config cfg;
    lp_error err = {0};
    lp_status s = lp_config_load_string(c->text, strlen(c->text), "bad.yaml", NULL, 0, &cfg, &err);
    cr_assert_eq(s, c->status, "status %d, wanted %d: %s", s, c->status, err.msg);
    assert_prefix(err.msg, c->prefix);
    assert_contains(err.msg, c->part);
    cr_assert_null(cfg.root, "a failed load leaves the config empty");
    lp_config_free(&cfg);
}

/* ---- good configs ---------------------------------------------------------- */

static void load_config(const char *text, const char *const *sets, int n, lp_experiment_config *cfg)
{
    lp_error err = {0};
    lp_status s = lp_config_load_string(text, strlen(text), "dir/sub/good.yaml", sets, n, cfg, &err);
    cr_assert_eq(s, LP_OK, "unexpected error: %s", err.msg);
}

Test(config, defaults)
{
    lp_experiment_config cfg;
    load_config(MODEL, NULL, 0, &cfg);
    cr_assert_str_eq(cfg.name, "t");
    cr_assert_null(cfg.description);
    cr_assert_str_eq(cfg.data.dataset, "mnist");
    cr_assert_str_eq(cfg.data.dir, "data/mnist");
    cr_assert_eq(cfg.data.train_limit, 0);
    cr_assert_eq(cfg.data.test_limit, 0);
    cr_assert_not(cfg.data.normalize);
    cr_assert_float_eq(cfg.data.mean, 0.0f, 1e-9);
    cr_assert_float_eq(cfg.data.std, 1.0f, 1e-9);
    cr_assert(cfg.data.shuffle);
    cr_assert_eq(cfg.data.augment_shift, 0);
    cr_assert_eq(cfg.train.epochs, 10);
    cr_assert_eq(cfg.train.batch_size, 64);
    cr_assert_eq(cfg.train.seed, 1);
    cr_assert_eq(cfg.train.threads, 0);
    cr_assert_eq(cfg.train.optim.type, LP_OPTIM_SGD);
    cr_assert_float_eq(cfg.train.optim.lr, 0.01f, 1e-9);
    cr_assert_float_eq(cfg.train.optim.momentum, 0.9f, 1e-9);
    cr_assert_float_eq(cfg.train.optim.weight_decay, 0.0f, 1e-9);
    cr_assert_eq(cfg.train.schedule.type, LP_SCHEDULE_CONSTANT);
    cr_assert_float_eq(cfg.train.schedule.warmup_epochs, 0.0f, 1e-9);
    cr_assert_str_eq(cfg.tracking.db, "runs.db");
    cr_assert_eq(cfg.tracking.checkpoint_every, 1);
    cr_assert_eq(cfg.n_plugins, 0);
    cr_assert_str_eq(cfg.yaml_text, MODEL, "the exact text is kept for the runs DB");
    /* the model */
    cr_assert_eq(cfg.model.input.ndim, 3);
    cr_assert_eq(cfg.model.input.dims[1], 28);
    cr_assert_eq(cfg.model.input_loc.line, 3);
    cr_assert_eq(cfg.model.n_nodes, 2);
    cr_assert_str_eq(cfg.model.nodes[0].name, "flatten1");
    cr_assert_str_eq(cfg.model.nodes[0].inputs[0], "input");
    cr_assert_null(cfg.model.nodes[0].attrs, "no attributes, no map");
    cr_assert_str_eq(cfg.model.nodes[1].name, "dense1");
    cr_assert_str_eq(cfg.model.nodes[1].inputs[0], "flatten1");
    cr_assert_eq(cfg.model.nodes[1].loc.line, 6);
    cr_assert_eq(cfg.model.nodes[1].loc.col, 7);
    cr_assert_null(cfg.model.output);
    cr_assert_str_eq(cfg.model.loss, "softmax_cross_entropy");
    cr_assert_eq(cfg.model.loss_loc.line, 7);
    lp_config_free(&cfg);
}

Test(config, shipped_two_conv)
{
    lp_experiment_config cfg;
    lp_error err = {0};
    lp_status s = lp_config_load("configs/mnist_two_conv.yaml", NULL, 0, &cfg, &err);
    cr_assert_eq(s, LP_OK, "%s", err.msg);
    cr_assert_str_eq(cfg.name, "mnist_two_conv");
    const char *names[] = {"conv1", "relu1", "maxpool1", "conv2", "relu2",
                           "maxpool2", "flatten1", "fc1", "relu3", "fc2"};
    cr_assert_eq(cfg.model.n_nodes, 10);
    for (int i = 0; i < 10; i++) cr_assert_str_eq(cfg.model.nodes[i].name, names[i]);
    cr_assert_str_eq(cfg.model.nodes[3].inputs[0], "maxpool1");
    cr_assert_eq(cfg.train.epochs, 15);
    cr_assert_eq(cfg.train.optim.type, LP_OPTIM_SGD);
    cr_assert_float_eq(cfg.train.optim.lr, 0.05f, 1e-9);
    cr_assert_eq(cfg.train.schedule.type, LP_SCHEDULE_COSINE);
    cr_assert_float_eq(cfg.train.schedule.warmup_epochs, 1.0f, 1e-9);
    cr_assert_eq(cfg.data.augment_shift, 2);
    cr_assert(cfg.data.normalize);
    cr_assert_float_eq(cfg.data.mean, 0.1307f, 1e-7);
    cr_assert_float_eq(cfg.data.std, 0.3081f, 1e-7);
    lp_config_free(&cfg);
}

Test(config, rmsprop_nesterov_adamw_and_exponential_schedule)
{
    lp_experiment_config cfg;
    load_config(MODEL "train:\n  optimizer: {type: rmsprop, momentum: 0.5}\n"
                      "  schedule: {type: exponential, gamma: 0.8}\n", NULL, 0, &cfg);
    cr_assert_eq(cfg.train.optim.type, LP_OPTIM_RMSPROP);
    cr_assert_float_eq(cfg.train.optim.lr, 0.01f, 1e-9);
    cr_assert_float_eq(cfg.train.optim.alpha, 0.99f, 1e-9);
    cr_assert_float_eq(cfg.train.optim.eps, 1e-8f, 1e-12);
    cr_assert_float_eq(cfg.train.optim.momentum, 0.5f, 1e-9);
    cr_assert_eq(cfg.train.schedule.type, LP_SCHEDULE_EXPONENTIAL);
    cr_assert_float_eq(lp_schedule_lr(&cfg.train.schedule, 1.0f, 25, 10, 10), 0.64f, 1e-6);
    lp_config_free(&cfg);
    load_config(MODEL "train:\n  optimizer: {type: sgd, nesterov: true}\n", NULL, 0, &cfg);
    cr_assert(cfg.train.optim.nesterov);
    cr_assert_float_eq(cfg.train.optim.momentum, 0.9f, 1e-9);
    lp_config_free(&cfg);
    load_config(MODEL "train:\n  optimizer: {type: adamw}\n", NULL, 0, &cfg);
    cr_assert_eq(cfg.train.optim.type, LP_OPTIM_ADAMW);
    cr_assert_float_eq(cfg.train.optim.weight_decay, 0.01f, 1e-9);   /* PyTorch's AdamW default */
    lp_config_free(&cfg);
}

Test(config, adam_and_step_schedule)
{
    lp_experiment_config cfg;
    load_config(MODEL "train:\n  optimizer: {type: adam, weight_decay: 0.01}\n"
                      "  schedule: {type: step, step_size: 3, gamma: 0.5}\n"
                      "data: {dataset: fashion, train_limit: 100, shuffle: false}\n",
                NULL, 0, &cfg);
    cr_assert_eq(cfg.train.optim.type, LP_OPTIM_ADAM);
    cr_assert_float_eq(cfg.train.optim.lr, 0.001f, 1e-9);
    cr_assert_float_eq(cfg.train.optim.beta1, 0.9f, 1e-9);
    cr_assert_float_eq(cfg.train.optim.beta2, 0.999f, 1e-9);
    cr_assert_float_eq(cfg.train.optim.eps, 1e-8f, 1e-12);
    cr_assert_float_eq(cfg.train.optim.weight_decay, 0.01f, 1e-9);
    cr_assert_eq(cfg.train.schedule.type, LP_SCHEDULE_STEP);
    cr_assert_eq(cfg.train.schedule.step_size, 3);
    cr_assert_float_eq(cfg.train.schedule.gamma, 0.5f, 1e-9);
    cr_assert_str_eq(cfg.data.dataset, "fashion");
    cr_assert_str_eq(cfg.data.dir, "/usr/share/datasets/fashion-mnist");
    cr_assert_eq(cfg.data.train_limit, 100);
    cr_assert_not(cfg.data.shuffle);
    lp_config_free(&cfg);
}

Test(config, nodes_graph_and_attrs_keep_locations)
{
    lp_experiment_config cfg;
    load_config("name: branch\n"
                "model:\n"
                "  input: [1, 4, 4]\n"
                "  nodes:\n"
                "    - {name: a, op: conv2d, inputs: input, filters: 2, kernel: 3, padding: same}\n"
                "    - {name: b, op: relu, inputs: [a]}\n"
                "    - {name: s, op: add, inputs: [a, b]}\n"
                "  output: s\n",
                NULL, 0, &cfg);
    lp_model_spec *m = &cfg.model;
    cr_assert_eq(m->n_nodes, 3);
    cr_assert_eq(m->nodes[0].n_inputs, 1);
    cr_assert_str_eq(m->nodes[0].inputs[0], "input");
    cr_assert_eq(m->nodes[2].n_inputs, 2);
    cr_assert_str_eq(m->nodes[2].inputs[1], "b");
    cr_assert_str_eq(m->output, "s");
    cr_assert_null(m->loss);
    lp_value *attrs = m->nodes[0].attrs;
    cr_assert_eq(attrs->count, 3, "name, op and inputs are not attributes");
    cr_assert_eq(lp_value_find(attrs, "inputs"), -1);
    int k = lp_value_find(attrs, "padding");
    cr_assert_str_eq(attrs->items[k]->text, "same");
    cr_assert_eq(attrs->items[k]->loc.line, 5);
    cr_assert_eq(attrs->items[k]->loc.col, 76);
    cr_assert_str_eq(attrs->items[k]->loc.file, "dir/sub/good.yaml");
    lp_config_free(&cfg);
}

Test(config, generated_names_skip_names_in_use)
{
    lp_experiment_config cfg;
    load_config("name: t\nmodel:\n  input: [4]\n  layers:\n"
                "    - {op: relu}\n    - {op: relu, name: relu2}\n    - {op: relu}\n",
                NULL, 0, &cfg);
    cr_assert_str_eq(cfg.model.nodes[0].name, "relu1");
    cr_assert_str_eq(cfg.model.nodes[1].name, "relu2");
    cr_assert_str_eq(cfg.model.nodes[2].name, "relu3", "relu2 is taken: the next free number");
    cr_assert_str_eq(cfg.model.nodes[2].inputs[0], "relu2");
    lp_config_free(&cfg);
}

Test(config, plugins_resolve_against_the_yaml_directory)
{
    lp_experiment_config cfg;
    load_config(MODEL "plugins: [plugins/leaky.so, /opt/x.so]\n", NULL, 0, &cfg);
    cr_assert_eq(cfg.n_plugins, 2);
    cr_assert_str_eq(cfg.plugins[0], "plugins/leaky.so");
    cr_assert_str_eq(cfg.plugin_paths[0], "dir/sub/plugins/leaky.so");
    cr_assert_str_eq(cfg.plugin_paths[1], "/opt/x.so");
    lp_config_free(&cfg);
    /* A config in the current directory: still a path, never a library-path search. */
    const char *text = MODEL "plugins: [p.so]\n";
    lp_error err = {0};
    cr_assert_eq(lp_config_load_string(text, strlen(text), "here.yaml", NULL, 0, &cfg, &err), LP_OK);
    cr_assert_str_eq(cfg.plugin_paths[0], "./p.so");
    lp_config_free(&cfg);
}

Test(config, spec_by_hand)
{
    lp_model_spec spec = {.input = {1, {4}}};
    const char *in[] = {"input"};
    lp_value *attrs = lp_value_new_map((lp_loc){0});
    lp_value_map_set(attrs, "alpha", (lp_loc){0}, lp_value_new_scalar("0.1", (lp_loc){0}));
    cr_assert_eq(lp_model_spec_add(&spec, "r", "relu", in, 1, NULL), LP_OK);
    cr_assert_eq(lp_model_spec_add(&spec, "l", "leaky_relu", (const char *[]){"r"}, 1, attrs), LP_OK);
    cr_assert_eq(spec.n_nodes, 2);
    cr_assert_str_eq(spec.nodes[1].inputs[0], "r");
    cr_assert_eq(spec.nodes[1].attrs, attrs, "attrs are taken over");
    lp_model_spec_free(&spec);
    cr_assert_eq(spec.n_nodes, 0);
    cr_assert_null(spec.nodes);
}

/* ---- --set overrides -------------------------------------------------------- */

Test(config, overrides_apply_before_reading)
{
    const char *sets[] = {"train.epochs=3",
                          "data.normalize=[0.1307, 0.3081]",
                          "data.augment.shift=1",            /* creates data.augment */
                          "train.optimizer={type: adam, lr: 0.002}",
                          "model.layers.1.units=32",         /* a list index */
                          "name=\"renamed\""};
    lp_experiment_config cfg;
    load_config(MODEL "train: {epochs: 20}\n", sets, 6, &cfg);
    cr_assert_eq(cfg.train.epochs, 3);
    cr_assert(cfg.data.normalize);
    cr_assert_float_eq(cfg.data.std, 0.3081f, 1e-7);
    cr_assert_eq(cfg.data.augment_shift, 1);
    cr_assert_eq(cfg.train.optim.type, LP_OPTIM_ADAM);
    cr_assert_float_eq(cfg.train.optim.lr, 0.002f, 1e-9);
    lp_value *units = lp_value_find(cfg.model.nodes[1].attrs, "units") >= 0
                          ? cfg.model.nodes[1].attrs->items[lp_value_find(cfg.model.nodes[1].attrs, "units")]
                          : NULL;
    cr_assert_not_null(units);
    cr_assert_str_eq(units->text, "32");
    cr_assert_str_eq(cfg.name, "renamed");
    cr_assert_eq(cfg.n_overrides, 6);
    cr_assert_str_eq(cfg.overrides[0], "train.epochs=3");
    cr_assert_str_eq(cfg.yaml_text, MODEL "train: {epochs: 20}\n", "the file text stays as written");
    lp_config_free(&cfg);
}

typedef struct bad_set {
    const char *set;
    lp_status status;
    const char *prefix;
} bad_set;

static const bad_set bad_sets[] = {
    {"train.epochs", LP_ERR_ARG, "--set train.epochs: expected key.path=value"},
    {"=3", LP_ERR_ARG, "--set =3: expected key.path=value"},
    {"train.epochs=", LP_ERR_ARG, "--set train.epochs=: no value after '='"},
    {"train..epochs=3", LP_ERR_ARG, "--set train..epochs=3: 'train..epochs' is not a key path"},
    {"train.epochs=[1", LP_ERR_ARG, "--set train.epochs=[1:"},
    {"name.x=1", LP_ERR_ARG, "--set name.x=1: cannot set 'x' inside a scalar (written at dir/sub/good.yaml:1:7)"},
    {"model.layers.9.units=3", LP_ERR_ARG, "--set model.layers.9.units=3: '9' is not an index"},
    {"train.epochz=3", LP_ERR_CONFIG, "--set train.epochz=3: unknown key 'train.epochz': did you mean 'epochs'?"},
    {"train.epochs=abc", LP_ERR_CONFIG, "--set train.epochs=abc: train.epochs: expected an integer, found 'abc'"},
    {"train.optimizer.type=sgdd", LP_ERR_CONFIG, "--set train.optimizer.type=sgdd: train.optimizer.type: unknown value 'sgdd': did you mean 'sgd'?"},
};

ParameterizedTestParameters(config, bad_override)
{
    return cr_make_param_array(int, index_params(COUNT(bad_sets)), COUNT(bad_sets));
}

ParameterizedTest(int *index, config, bad_override)
{
    const bad_set *c = &bad_sets[*index];
    lp_experiment_config cfg;
    lp_error err = {0};
    const char *sets[] = {c->set};
    lp_status s = lp_config_load_string(MODEL, strlen(MODEL), "dir/sub/good.yaml", sets, 1, &cfg, &err);
    cr_assert_eq(s, c->status, "status %d, wanted %d: %s", s, c->status, err.msg);
    assert_prefix(err.msg, c->prefix);
    lp_config_free(&cfg);
}

/* ---- flattening for the runs DB --------------------------------------------- */

Test(config, flatten_gives_effective_values)
{
    lp_experiment_config cfg;
    lp_error err = {0};
    const char *sets[] = {"train.optimizer.weight_decay=0.0005"};
    cr_assert_eq(lp_config_load("configs/mnist_two_conv.yaml", sets, 1, &cfg, &err), LP_OK, "%s", err.msg);
    lp_config_kvs kv = {0};
    cr_assert_eq(lp_config_flatten(&cfg, &kv, &err), LP_OK);
    struct { const char *k, *v; } want[] = {
        {"name", "mnist_two_conv"},
        {"train.optimizer.lr", "0.05"},
        {"train.optimizer.momentum", "0.9"},
        {"train.optimizer.weight_decay", "0.0005"},
        {"train.schedule.type", "cosine"},
        {"train.batch_size", "64"},
        {"data.normalize", "[0.1307, 0.3081]"},
        {"data.test_limit", "0"},
        {"tracking.db", "runs.db"},
        {"model.input", "[1, 28, 28]"},
        {"model.layers.0.filters", "8"},
        {"model.layers.3.name", "conv2"},
        {"model.loss", "softmax_cross_entropy"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const char *v = lp_config_kvs_get(&kv, want[i].k);
        cr_assert_not_null(v, "missing key %s", want[i].k);
        cr_assert_str_eq(v, want[i].v, "%s", want[i].k);
    }
    cr_assert_null(lp_config_kvs_get(&kv, "train.optimizer.beta1"), "sgd has no beta1");
    /* no key twice */
    for (int i = 0; i < kv.count; i++)
        for (int j = i + 1; j < kv.count; j++)
            cr_assert_str_neq(kv.items[i].key, kv.items[j].key);
    lp_config_kvs_free(&kv);
    lp_config_free(&cfg);
}

/* ---- shipped configs through the graph ------------------------------------- */

typedef struct shipped {
    const char *path;
    long long params;
} shipped;

static const shipped shipped_configs[] = {
    {"configs/mnist_dense.yaml", 109386},
    {"configs/mnist_one_conv.yaml", 87322},
    {"configs/mnist_two_conv.yaml", 27562},
    {"configs/tutorial_demo.yaml", 87322},
    {"configs/fashion_two_conv.yaml", 27562},
    {"configs/mnist_two_conv_sweep.yaml", 27562},
};

ParameterizedTestParameters(graph_config, shipped_builds)
{
    return cr_make_param_array(int, index_params(COUNT(shipped_configs)), COUNT(shipped_configs));
}

ParameterizedTest(int *index, graph_config, shipped_builds)
{
    const shipped *c = &shipped_configs[*index];
    lp_registry_init();
    lp_experiment_config cfg;
    lp_error err = {0};
    cr_assert_eq(lp_config_load(c->path, NULL, 0, &cfg, &err), LP_OK, "%s: %s", c->path, err.msg);
    lp_graph *g = NULL;
    cr_assert_eq(lp_graph_build(&cfg.model, &g, &err), LP_OK, "%s: %s", c->path, err.msg);
    cr_assert_eq((long long)lp_graph_param_floats(g), c->params, "%s", c->path);
    lp_graph_free(g);
    lp_config_free(&cfg);
}

static const char *build_fail(const char *text, lp_status want)
{
    static lp_error err;
    lp_error_clear(&err);
    lp_registry_init();
    lp_experiment_config cfg;
    cr_assert_eq(lp_config_load_string(text, strlen(text), "g.yaml", NULL, 0, &cfg, &err), LP_OK,
                 "%s", err.msg);
    lp_graph *g = (lp_graph *)1;
    lp_status s = lp_graph_build(&cfg.model, &g, &err);
    cr_assert_eq(s, want, "status %d, wanted %d: %s", s, want, err.msg);
    cr_assert_null(g);
    lp_config_free(&cfg);
    return err.msg;
}

Test(graph_config, unknown_op_names_the_layer)
{
    const char *msg = build_fail("name: t\nmodel:\n  input: [1, 28, 28]\n  layers:\n"
                                 "    - {op: conv2, filters: 4, kernel: 3}\n",
                                 LP_ERR_CONFIG);
    assert_prefix(msg, "g.yaml:5:7: node 'conv21': unknown op 'conv2'");
    assert_contains(msg, "did you mean 'conv2d'?");
}

Test(graph_config, shape_mismatch_names_the_node)
{
    const char *msg = build_fail("name: t\nmodel:\n  input: [1, 4, 4]\n  nodes:\n"
                                 "    - {name: a, op: flatten, inputs: input}\n"
                                 "    - {name: s, op: add, inputs: [a, input]}\n",
                                 LP_ERR_SHAPE);
    assert_prefix(msg, "g.yaml:6:7: node 's' (add): ");
}

Test(graph_config, unknown_attribute_points_at_the_key)
{
    const char *msg = build_fail("name: t\nmodel:\n  input: [1, 28, 28]\n  layers:\n"
                                 "    - {op: conv2d, filters: 4, kernel: 3, strid: 2}\n",
                                 LP_ERR_CONFIG);
    assert_prefix(msg, "g.yaml:5:43: node 'conv2d1' (conv2d): unknown attribute 'strid'");
    assert_contains(msg, "did you mean 'stride'?");
}

/* Issue 13: the plateau schedule's and early stopping's defaults (torch's and
 * Keras's), the mode following the metric, and the validation split; all flattened. */
Test(config, plateau_early_stop_and_validation)
{
    lp_experiment_config cfg;
    load_config(MODEL "data: {validation: 5000}\n"
                      "train:\n  schedule: {type: plateau}\n  early_stop: {metric: val/acc, patience: 3}\n",
                NULL, 0, &cfg);
    cr_assert_eq(cfg.data.validation, 5000);
    const lp_schedule_config *sc = &cfg.train.schedule;
    cr_assert_eq(sc->type, LP_SCHEDULE_PLATEAU);
    cr_assert_eq(sc->plateau.metric, LP_METRIC_VAL_LOSS);
    cr_assert_not(sc->plateau.maximize);
    cr_assert_float_eq(sc->plateau.factor, 0.1f, 1e-9);
    cr_assert_eq(sc->plateau.patience, 10);
    cr_assert_float_eq(sc->plateau.threshold, 1e-4f, 1e-12);
    cr_assert_not(sc->plateau.threshold_abs);
    cr_assert_eq(sc->plateau.cooldown, 0);
    cr_assert_float_eq(sc->plateau.eps, 1e-8f, 1e-15);
    cr_assert_float_eq(sc->min_lr, 0.0f, 1e-12);
    const lp_early_stop_config *es = &cfg.train.early_stop;
    cr_assert(es->enabled);
    cr_assert_eq(es->metric, LP_METRIC_VAL_ACC);
    cr_assert(es->maximize);
    cr_assert_eq(es->patience, 3);
    cr_assert_float_eq(es->min_delta, 0.0f, 1e-12);
    lp_config_kvs kvs = {0};
    lp_error err = {0};
    cr_assert_eq(lp_config_flatten(&cfg, &kvs, &err), LP_OK, "%s", err.msg);
    cr_assert_str_eq(lp_config_kvs_get(&kvs, "data.validation"), "5000");
    cr_assert_str_eq(lp_config_kvs_get(&kvs, "train.schedule.metric"), "val/loss");
    cr_assert_str_eq(lp_config_kvs_get(&kvs, "train.schedule.mode"), "min");
    cr_assert_str_eq(lp_config_kvs_get(&kvs, "train.schedule.factor"), "0.1");
    cr_assert_str_eq(lp_config_kvs_get(&kvs, "train.early_stop.metric"), "val/acc");
    cr_assert_str_eq(lp_config_kvs_get(&kvs, "train.early_stop.patience"), "3");
    cr_assert_null(lp_config_kvs_get(&kvs, "train.schedule.warmup_epochs"));
    lp_config_kvs_free(&kvs);
    lp_config_free(&cfg);

    /* mode overrides the metric's direction; no early_stop: disabled */
    load_config(MODEL "train:\n  schedule: {type: plateau, metric: test/acc, mode: min, threshold_mode: abs, "
                      "factor: 0.5, patience: 0, cooldown: 2, min_lr: 0.0001}\n",
                NULL, 0, &cfg);
    cr_assert_eq(cfg.train.schedule.plateau.metric, LP_METRIC_TEST_ACC);
    cr_assert_not(cfg.train.schedule.plateau.maximize);
    cr_assert(cfg.train.schedule.plateau.threshold_abs);
    cr_assert_eq(cfg.train.schedule.plateau.patience, 0);
    cr_assert_eq(cfg.train.schedule.plateau.cooldown, 2);
    cr_assert_float_eq(cfg.train.schedule.min_lr, 1e-4f, 1e-12);
    cr_assert_not(cfg.train.early_stop.enabled);
    cr_assert_eq(cfg.data.validation, 0);
    lp_config_free(&cfg);

    /* cosine warm-up's start factor: 0.001 unless given */
    load_config(MODEL "train:\n  schedule: {type: cosine, warmup_epochs: 2}\n", NULL, 0, &cfg);
    cr_assert_float_eq(cfg.train.schedule.warmup_start_factor, 0.001f, 1e-12);
    lp_config_free(&cfg);
    load_config(MODEL "train:\n  schedule: {type: cosine, warmup_epochs: 2, warmup_start_factor: 0.25}\n", NULL, 0,
                &cfg);
    cr_assert_float_eq(cfg.train.schedule.warmup_start_factor, 0.25f, 1e-12);
    lp_config_free(&cfg);
}
