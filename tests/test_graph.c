/* test_graph.c - the graph on its own: build errors, topological order, gradient
 * write/add at fan-out, parameters, and the plugin loader's refusals.
 *
 * Uses two tiny test ops registered here ("t_scale": y = w * x + b with scalar
 * parameters, "t_sum": y = x0 + x1 + ...), so a bug in a built-in op cannot hide
 * or fake a bug in the graph.
 */
#include <criterion/criterion.h>

#include "graph.h"
#include "registry.h"
#include "shape.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t batch_count(const lp_node *n)
{
    return (size_t)lp_shape_numel(lp_node_out_shape(n)) * (size_t)lp_node_batch(n);
}

static lp_status scale_setup(lp_node *n)
{
    float init;
    lp_status s = lp_attr_float(n, "init", 1.0f, &init);
    if (s) return s;
    int *flag = lp_node_alloc_state(n, sizeof(int));
    *flag = 1;
    if (lp_node_add_param(n, "w", lp_shape1(1), LP_INIT_ONE, 1) < 0) return LP_ERR_SHAPE;
    if (lp_node_add_param(n, "b", lp_shape1(1), LP_INIT_ZERO, 1) < 0) return LP_ERR_SHAPE;
    return lp_node_set_out_shape(n, lp_node_in_shape(n, 0));
}

static void scale_forward(lp_node *n)
{
    const float w = lp_node_param(n, 0)[0], b = lp_node_param(n, 1)[0];
    const float *x = lp_node_in(n, 0);
    float *y = lp_node_out(n);
    for (size_t i = 0; i < batch_count(n); i++) y[i] = w * x[i] + b;
}

static void scale_backward(lp_node *n)
{
    const float w = lp_node_param(n, 0)[0];
    const float *x = lp_node_in(n, 0), *dy = lp_node_out_grad(n);
    float *dx = lp_node_in_grad(n, 0);
    int acc = lp_node_in_grad_accumulate(n, 0);
    for (size_t i = 0; i < batch_count(n); i++) {
        lp_node_param_grad(n, 0)[0] += dy[i] * x[i];
        lp_node_param_grad(n, 1)[0] += dy[i];
        if (dx) lp_grad_put(&dx[i], acc, w * dy[i]);
    }
}

static const lp_attr_doc scale_attrs[] = {{"init", "float", "1", "unused"}, {NULL, NULL, NULL, NULL}};
static const lp_op t_scale = {LP_OP_HEADER, .name = "t_scale", .min_inputs = 1, .max_inputs = 1,
                              .attrs = scale_attrs, .setup = scale_setup,
                              .forward = scale_forward, .backward = scale_backward};

static lp_status sum_setup(lp_node *n)
{
    for (int i = 1; i < lp_node_num_inputs(n); i++)
        if (!lp_shape_equal(lp_node_in_shape(n, i), lp_node_in_shape(n, 0)))
            return lp_node_fail(n, "inputs differ in shape");
    return lp_node_set_out_shape(n, lp_node_in_shape(n, 0));
}

static void sum_forward(lp_node *n)
{
    float *y = lp_node_out(n);
    for (size_t i = 0; i < batch_count(n); i++) {
        y[i] = 0;
        for (int k = 0; k < lp_node_num_inputs(n); k++) y[i] += lp_node_in(n, k)[i];
    }
}

static void sum_backward(lp_node *n)
{
    const float *dy = lp_node_out_grad(n);
    for (int k = 0; k < lp_node_num_inputs(n); k++) {
        float *dx = lp_node_in_grad(n, k);
        if (!dx) continue;
        int acc = lp_node_in_grad_accumulate(n, k);
        for (size_t i = 0; i < batch_count(n); i++) lp_grad_put(&dx[i], acc, dy[i]);
    }
}

static const lp_op t_sum = {LP_OP_HEADER, .name = "t_sum", .min_inputs = 1, .max_inputs = 4,
                            .setup = sum_setup, .forward = sum_forward, .backward = sum_backward};

static void register_test_ops(void)
{
    static int done;
    if (done) return;
    done = 1;
    lp_error err = {0};
    cr_assert_eq(lp_op_register(&t_scale, "test", &err), LP_OK, "%s", err.msg);
    cr_assert_eq(lp_op_register(&t_sum, "test", &err), LP_OK, "%s", err.msg);
}

TestSuite(graph, .init = register_test_ops);

static lp_value *attrs1(const char *key, const char *value, int line)
{
    lp_value *m = lp_value_new_map((lp_loc){"model.yaml", line, 3});
    lp_value_map_set(m, key, (lp_loc){"model.yaml", line, 5}, lp_value_new_scalar(value, (lp_loc){"model.yaml", line, 9}));
    return m;
}

static void add(lp_model_spec *s, const char *name, const char *op, const char *in0, const char *in1,
                lp_value *attrs)
{
    const char *ins[2] = {in0, in1};
    cr_assert_eq(lp_model_spec_add(s, name, op, ins, in1 ? 2 : 1, attrs), LP_OK);
}

static lp_status build(lp_model_spec *s, lp_graph **g, lp_error *err)
{
    s->input = lp_shape1(3);
    lp_status st = lp_graph_build(s, g, err);
    lp_model_spec_free(s);
    return st;
}

Test(graph, cycle_is_an_error_naming_its_nodes)
{
    lp_model_spec s = {0};
    add(&s, "a", "t_scale", "b", NULL, NULL);
    add(&s, "b", "t_scale", "a", NULL, NULL);
    add(&s, "out", "t_sum", "b", NULL, NULL);
    lp_graph *g = NULL;
    lp_error err = {0};
    cr_assert_eq(build(&s, &g, &err), LP_ERR_CONFIG);
    cr_assert_null(g);
    cr_assert(strstr(err.msg, "cycle"), "%s", err.msg);
    cr_assert(strstr(err.msg, "'a'") && strstr(err.msg, "'b'"), "%s", err.msg);
}

Test(graph, unknown_op_suggests_the_closest)
{
    lp_model_spec s = {0};
    add(&s, "a", "t_scal", "input", NULL, NULL);
    lp_graph *g = NULL;
    lp_error err = {0};
    cr_assert_eq(build(&s, &g, &err), LP_ERR_CONFIG);
    cr_assert(strstr(err.msg, "unknown op 't_scal'") && strstr(err.msg, "did you mean 't_scale'"), "%s", err.msg);
}

Test(graph, unknown_input_and_duplicate_names)
{
    lp_model_spec s = {0};
    add(&s, "a", "t_scale", "inptu", NULL, NULL);
    lp_graph *g = NULL;
    lp_error err = {0};
    cr_assert_eq(build(&s, &g, &err), LP_ERR_CONFIG);
    cr_assert(strstr(err.msg, "unknown input 'inptu'") && strstr(err.msg, "'input'"), "%s", err.msg);

    lp_model_spec d = {0};
    add(&d, "a", "t_scale", "input", NULL, NULL);
    add(&d, "a", "t_scale", "input", NULL, NULL);
    lp_error err2 = {0};
    cr_assert_eq(build(&d, &g, &err2), LP_ERR_CONFIG);
    cr_assert(strstr(err2.msg, "'a' is used twice"), "%s", err2.msg);
}

Test(graph, unknown_attribute_is_reported_at_its_line)
{
    lp_model_spec s = {0};
    add(&s, "a", "t_scale", "input", NULL, attrs1("inti", "2", 7));
    lp_graph *g = NULL;
    lp_error err = {0};
    cr_assert_eq(build(&s, &g, &err), LP_ERR_CONFIG);
    cr_assert(strncmp(err.msg, "model.yaml:7:5:", 15) == 0, "%s", err.msg);
    cr_assert(strstr(err.msg, "did you mean 'init'"), "%s", err.msg);
}

Test(graph, wrong_attribute_type_names_value_and_place)
{
    lp_model_spec s = {0};
    add(&s, "a", "t_scale", "input", NULL, attrs1("init", "two", 4));
    lp_graph *g = NULL;
    lp_error err = {0};
    cr_assert_eq(build(&s, &g, &err), LP_ERR_CONFIG);
    cr_assert(strncmp(err.msg, "model.yaml:4:9:", 15) == 0, "%s", err.msg);
    cr_assert(strstr(err.msg, "'two'"), "%s", err.msg);
}

Test(graph, wrong_input_count_and_dead_branch)
{
    lp_model_spec s = {0};
    add(&s, "a", "t_scale", "input", "input", NULL);
    lp_graph *g = NULL;
    lp_error err = {0};
    cr_assert_eq(build(&s, &g, &err), LP_ERR_CONFIG);
    cr_assert(strstr(err.msg, "takes 1 input, 2 given"), "%s", err.msg);

    lp_model_spec d = {0};
    add(&d, "dead", "t_scale", "input", NULL, NULL);
    add(&d, "out", "t_scale", "input", NULL, NULL);
    lp_error err2 = {0};
    cr_assert_eq(build(&d, &g, &err2), LP_ERR_CONFIG);
    cr_assert(strstr(err2.msg, "'dead' does not lead to the output"), "%s", err2.msg);
}

/* x -> a -> {b, c} -> sum(b, c, a) : a's gradient gets three contributions. */
Test(graph, fan_out_gradients_accumulate)
{
    lp_model_spec s = {0};
    add(&s, "a", "t_scale", "input", NULL, NULL);
    add(&s, "b", "t_scale", "a", NULL, NULL);
    add(&s, "c", "t_scale", "a", NULL, NULL);
    const char *ins[3] = {"b", "c", "a"};
    cr_assert_eq(lp_model_spec_add(&s, "out", "t_sum", ins, 3, NULL), LP_OK);
    s.input_grad = true;
    lp_graph *g = NULL;
    lp_error err = {0};
    cr_assert_eq(build(&s, &g, &err), LP_OK, "%s", err.msg);
    lp_graph_init_params(g, 1);
    cr_assert_eq(lp_graph_num_params(g), 6);
    cr_assert_str_eq(lp_graph_param_name(g, 0), "a.w");
    cr_assert_str_eq(lp_graph_param_name(g, 5), "c.b");
    float *p = lp_graph_params(g);
    p[0] = 2.0f; /* a.w */
    p[2] = 3.0f; /* b.w */
    p[4] = 5.0f; /* c.w */
    cr_assert_eq(lp_graph_plan(g, 2, &err), LP_OK);
    float x[6] = {1, 2, 3, 4, 5, 6};
    lp_graph_forward(g, x, NULL, 2, true);
    /* out = 3*2x + 5*2x + 2x = 18x */
    cr_assert_float_eq(lp_graph_final(g)[1], 36.0f, 1e-5);
    /* Garbage in the gradient buffers must not leak in: run backward twice. */
    float seed[6] = {1, 1, 1, 1, 1, 1};
    lp_graph_backward(g, seed);
    lp_graph_backward(g, seed);
    for (int i = 0; i < 6; i++) cr_assert_float_eq(lp_graph_input_grad(g)[i], 18.0f, 1e-5);
    /* d/d a.w = sum(dy * (3 + 5 + 1) * x) = 9 * 21 */
    cr_assert_float_eq(lp_graph_grads(g)[0], 189.0f, 1e-3);
    lp_graph_free(g);
}

Test(graph, same_input_twice_counts_twice)
{
    lp_model_spec s = {0};
    add(&s, "a", "t_scale", "input", NULL, NULL);
    add(&s, "out", "t_sum", "a", "a", NULL);
    s.input_grad = true;
    lp_graph *g = NULL;
    lp_error err = {0};
    cr_assert_eq(build(&s, &g, &err), LP_OK, "%s", err.msg);
    lp_graph_init_params(g, 1);
    cr_assert_eq(lp_graph_plan(g, 1, &err), LP_OK);
    float x[3] = {1, -1, 0.5f}, seed[3] = {1, 2, 3};
    lp_graph_forward(g, x, NULL, 1, true);
    lp_graph_backward(g, seed);
    for (int i = 0; i < 3; i++) cr_assert_float_eq(lp_graph_input_grad(g)[i], 2 * seed[i], 1e-6);
    lp_graph_free(g);
}

Test(graph, init_is_deterministic_per_seed)
{
    lp_graph *g1 = NULL, *g2 = NULL;
    lp_error err = {0};
    for (int k = 0; k < 2; k++) {
        lp_model_spec s = {0};
        add(&s, "a", "t_scale", "input", NULL, NULL);
        cr_assert_eq(build(&s, k ? &g2 : &g1, &err), LP_OK, "%s", err.msg);
    }
    lp_graph_init_params(g1, 7);
    lp_graph_init_params(g2, 7);
    cr_assert_eq(memcmp(lp_graph_params(g1), lp_graph_params(g2), 2 * sizeof(float)), 0);
    lp_graph_free(g1);
    lp_graph_free(g2);
}

/* ---- plugin loader refusals ------------------------------------------- */

static const char *build_dir(void)
{
    const char *b = getenv("LOUPE_BUILD");
    return b ? b : "build";
}

/* Compile tests/plugins/<name>.c into a .so in the build dir; returns its path. */
static const char *build_plugin(const char *name, char *path, size_t size)
{
    snprintf(path, size, "%s/tests/%s.so", build_dir(), name);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cc -std=c11 -shared -fPIC -Iops -Icore -o %s tests/plugins/%s.c", path, name);
    cr_assert_eq(system(cmd), 0, "could not build %s", name);
    return path;
}

static void expect_plugin_error(const char *path, const char *needle)
{
    lp_error err = {0};
    cr_assert_eq(lp_plugin_load(path, &err), LP_ERR_PLUGIN, "loaded %s", path);
    cr_assert(strstr(err.msg, needle), "expected '%s' in: %s", needle, err.msg);
}

Test(plugins, missing_file)
{
    expect_plugin_error("/nonexistent/x.so", "not found");
}

Test(plugins, not_a_shared_object)
{
    expect_plugin_error("tests/test_graph.c", "cannot load");
}

Test(plugins, missing_entry_point)
{
    char p[512];
    expect_plugin_error(build_plugin("bad_no_entry", p, sizeof p), "loupe_plugin_init");
}

Test(plugins, abi_mismatch_names_both_versions)
{
    char p[512];
    expect_plugin_error(build_plugin("bad_abi", p, sizeof p), "ABI version 999");
}

Test(plugins, missing_backward)
{
    char p[512];
    expect_plugin_error(build_plugin("bad_no_backward", p, sizeof p), "no backward");
}

Test(plugins, duplicate_name)
{
    char p[512];
    expect_plugin_error(build_plugin("bad_duplicate", p, sizeof p), "'relu' is already registered");
}

Test(plugins, unresolved_symbol_fails_at_load_not_later)
{
    char p[512];
    expect_plugin_error(build_plugin("bad_undefined", p, sizeof p), "cannot load");
}

Test(plugins, good_plugin_registers_and_builds)
{
    char p[512];
    snprintf(p, sizeof p, "%s/plugins/leaky_relu.so", build_dir());
    lp_error err = {0};
    cr_assert_eq(lp_plugin_load(p, &err), LP_OK, "%s", err.msg);
    cr_assert_eq(lp_plugin_load(p, &err), LP_OK, "loading twice is a no-op");
    const char *origin = NULL;
    int found = 0;
    for (int i = 0; i < lp_op_count(); i++)
        if (!strcmp(lp_op_at(i, &origin)->name, "leaky_relu")) found = strstr(origin, "leaky_relu.so") != NULL;
    cr_assert(found);
}
