/* fuzz_config.c - libFuzzer target: YAML text -> experiment config -> graph.
 *
 * The bytes are an experiment file. A first line starting with '@' is taken as
 * one --set override ("@train.epochs=3\n..."), so overrides are fuzzed too.
 * When the config loads, the model is built; when the graph is small (input and
 * parameters of a few thousand floats, activations that plan), one training
 * step (forward + backward, batch 2) runs too, so every op's setup AND its
 * arithmetic see the odd shapes, strides and paddings the fuzzer invents.
 *
 * A `sweep:` section is read and expanded too, and every trial's config checked
 * when there are few trials (sweep.h).
 *
 * Invariant checked besides memory safety: every refusal carries a message.
 *
 * Built by `make fuzz` (clang -fsanitize=fuzzer,address,undefined), and replayed
 * over tests/fuzz/corpus/config by tests/test_fuzz_corpus.c (gcc, no libFuzzer):
 * that file defines LP_FUZZ_ENTRY before including this one.
 */
#include "compute.h"
#include "config.h"
#include "graph.h"
#include "shape.h"
#include "sweep.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef LP_FUZZ_ENTRY
#define LP_FUZZ_ENTRY LLVMFuzzerTestOneInput
#endif

static void fuzz_config_check_err(lp_status s, const lp_error *err)
{
    if (s != LP_OK && (err->status != s || err->msg[0] == '\0')) {
        fprintf(stderr, "fuzz_config: status %d returned without its message\n", (int)s);
        abort();
    }
}

/* One training step at batch 2 with deterministic inputs and label 0. */
static void fuzz_config_step(lp_graph *g)
{
    long long in = lp_shape_numel(lp_graph_input_shape(g));
    if (in < 1 || in > 4096 || lp_graph_param_floats(g) > (1u << 18)) return;
    lp_error err = {0};
    lp_status s = lp_graph_plan(g, 2, &err);
    fuzz_config_check_err(s, &err);
    if (s) return;
    float *x = malloc((size_t)in * 2 * sizeof *x);
    if (!x) return;
    for (long long i = 0; i < 2 * in; i++) x[i] = (float)((i * 7919) % 13) / 6.0f - 1.0f;
    int32_t y[2] = {0, 0};
    lp_graph_init_params(g, 1);
    lp_graph_forward(g, x, y, 2, true);
    lp_graph_backward(g, NULL);
    lp_graph_forward(g, x, y, 1, false);
    free(x);
}

int LP_FUZZ_ENTRY(const uint8_t *data, size_t size);
int LP_FUZZ_ENTRY(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        lp_threads_init(1);
        ready = 1;
    }
    const char *text = (const char *)data;
    char *set = NULL;
    if (size > 0 && data[0] == '@') {
        const uint8_t *nl = memchr(data, '\n', size);
        size_t len = nl ? (size_t)(nl - data) - 1 : size - 1;
        set = malloc(len + 1);
        if (!set) return 0;
        memcpy(set, data + 1, len);
        set[len] = '\0';
        size_t skip = nl ? (size_t)(nl - data) + 1 : size;
        text += skip;
        size -= skip;
    }
    const char *sets[1] = {set};
    lp_experiment_config cfg;
    lp_error err = {0};
    lp_status s = lp_config_load_string(text, size, "fuzz.yaml", sets, set ? 1 : 0, &cfg, &err);
    fuzz_config_check_err(s, &err);
    if (s == LP_OK) {
        lp_graph *g = NULL;
        lp_error gerr = {0};
        s = lp_graph_build(&cfg.model, &g, &gerr);
        fuzz_config_check_err(s, &gerr);
        if (s == LP_OK) fuzz_config_step(g);
        lp_graph_free(g);
        if (cfg.sweep) {
            lp_sweep_spec spec;
            lp_sweep_trial *trials = NULL;
            int n = 0;
            lp_error serr = {0};
            s = lp_sweep_spec_read(cfg.sweep, &spec, &serr);
            if (s == LP_OK && spec.trials <= 256) s = lp_sweep_expand(&spec, &trials, &n, &serr);
            if (s == LP_OK && n <= 16)
                s = lp_sweep_check_trials(&cfg, sets, set ? 1 : 0, &spec, trials, n, &serr);
            fuzz_config_check_err(s, &serr);
            lp_sweep_trials_free(trials, n);
            lp_sweep_spec_free(&spec);
        }
    }
    lp_config_free(&cfg);
    free(set);
    return 0;
}
