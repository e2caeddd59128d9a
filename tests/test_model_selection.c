/* test_model_selection.c - early stopping on scripted metric sequences (Keras's
 * EarlyStopping rule: improved when better than the best by more than min_delta,
 * stop after `patience` epochs without), and the validation split: held out from the
 * end of the training set, disjoint from what is trained on, the same every time.
 */
#include <criterion/criterion.h>

#include "early_stop.h"
#include "holdout.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Runs the rule over values[n]; returns the epoch it stops after (0: never) and the
 * epochs it flagged best in best[] (1 = flagged). */
static int run_rule(const lp_early_stop_config *c, const double *values, int n, int *best)
{
    lp_early_stop s;
    lp_early_stop_init(&s, c);
    for (int e = 1; e <= n; e++) {
        best[e - 1] = lp_early_stop_update(&s, c, values[e - 1], e);
        if (lp_early_stop_due(&s, c)) return e;
    }
    return 0;
}

Test(early_stop, accuracy_stops_after_patience_epochs_without_improvement)
{
    const double acc[] = {0.90, 0.95, 0.97, 0.97, 0.96, 0.971, 0.969, 0.968, 0.99};
    lp_early_stop_config c = {.enabled = true, .metric = LP_METRIC_VAL_ACC, .maximize = true, .patience = 3};
    int best[9] = {0};
    /* 0.97 at 4 only equals the best (not an improvement); 0.971 at 6 improves, 7 and
     * 8 are bad, 9 improves: never three bad epochs in a row */
    cr_assert_eq(run_rule(&c, acc, 9, best), 0);
    const int want_best[] = {1, 1, 1, 0, 0, 1, 0, 0, 1};
    cr_assert_arr_eq(best, want_best, sizeof want_best);
    /* min_delta 0.005: 0.971 is not enough (0.97 + 0.005), so 4, 5, 6 are bad -> stop after 6 */
    c.min_delta = 0.005f;
    memset(best, 0, sizeof best);
    cr_assert_eq(run_rule(&c, acc, 9, best), 6);
    const int want_best_delta[] = {1, 1, 1, 0, 0, 0, 0, 0, 0};
    cr_assert_arr_eq(best, want_best_delta, sizeof want_best_delta);
}

Test(early_stop, loss_minimises_and_the_reason_names_the_best)
{
    const double loss[] = {0.5, 0.4, 0.41, 0.39, 0.395, 0.40};
    lp_early_stop_config c = {.enabled = true, .metric = LP_METRIC_VAL_LOSS, .maximize = false, .patience = 2};
    int best[6] = {0};
    cr_assert_eq(run_rule(&c, loss, 6, best), 6);
    lp_early_stop s;
    lp_early_stop_init(&s, &c);
    for (int e = 1; e <= 6; e++) lp_early_stop_update(&s, &c, loss[e - 1], e);
    cr_assert_eq(s.best, 0.39);
    cr_assert_eq(s.best_epoch, 4);
    cr_assert_eq(s.bad_epochs, 2);
    char why[160];
    lp_early_stop_reason(&s, &c, why, sizeof why);
    cr_assert_str_eq(why, "early_stop: val/loss did not improve for 2 epochs (best 0.39 at epoch 4)");
}

Test(early_stop, nan_never_improves_and_disabled_never_stops)
{
    const double loss[] = {NAN, NAN, 0.3};
    lp_early_stop_config c = {.enabled = true, .metric = LP_METRIC_TRAIN_LOSS, .patience = 5};
    int best[3] = {0};
    run_rule(&c, loss, 3, best);
    const int want[] = {0, 0, 1};
    cr_assert_arr_eq(best, want, sizeof want);
    const double flat[] = {0.5, 0.5, 0.5, 0.5};
    lp_early_stop_config off = {.metric = LP_METRIC_TEST_ACC, .maximize = true, .patience = 1};
    cr_assert_eq(run_rule(&off, flat, 4, best), 0);
}

Test(early_stop, metric_names_round_trip)
{
    const char *names[] = {"train/loss", "train/acc", "val/loss", "val/acc", "test/loss", "test/acc"};
    for (int i = 0; i < 6; i++) {
        lp_metric_id m;
        cr_assert(lp_metric_parse(names[i], &m));
        cr_assert_str_eq(lp_metric_name(m), names[i]);
        cr_assert_eq(lp_metric_higher_is_better(m), strstr(names[i], "acc") != NULL);
        cr_assert_eq(lp_metric_is_val(m), strncmp(names[i], "val/", 4) == 0);
    }
    lp_metric_id m;
    cr_assert_not(lp_metric_parse("val/accuracy", &m));
}

/* A set of n 2x2 images whose pixels and label encode their index. */
static lp_dataset numbered(int n)
{
    lp_dataset d = {.n = n, .c = 1, .h = 2, .w = 2, .classes = 10, .scale = 1.0f / 255, .offset = 0.5f};
    d.pixels = malloc((size_t)n * 4);
    d.labels = malloc((size_t)n * sizeof *d.labels);
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < 4; k++) d.pixels[i * 4 + k] = (uint8_t)(i + k);
        d.labels[i] = i % 10;
    }
    return d;
}

Test(holdout, takes_the_last_n_disjoint_and_deterministic)
{
    lp_dataset a = numbered(50), b = numbered(50), va, vb;
    lp_error err = {0};
    cr_assert_eq(lp_dataset_hold_out(&a, 12, &va, &err), LP_OK, "%s", err.msg);
    cr_assert_eq(lp_dataset_hold_out(&b, 12, &vb, &err), LP_OK);
    cr_assert_eq(a.n, 38);
    cr_assert_eq(va.n, 12);
    cr_assert_eq(va.c * va.h * va.w, 4);
    cr_assert_eq(va.scale, a.scale);
    cr_assert_eq(va.offset, a.offset);
    /* validation sample j is training sample 38 + j of the full set; none is trained on */
    for (int j = 0; j < va.n; j++) {
        cr_assert_eq(va.pixels[j * 4], (uint8_t)(38 + j));
        cr_assert_eq(va.labels[j], (38 + j) % 10);
        for (int i = 0; i < a.n; i++) cr_assert_neq(memcmp(va.pixels + j * 4, a.pixels + i * 4, 4), 0);
    }
    for (int i = 0; i < a.n; i++) cr_assert_eq(a.pixels[i * 4], (uint8_t)i);
    /* the same every time */
    cr_assert_eq(memcmp(va.pixels, vb.pixels, 48), 0);
    cr_assert_eq(memcmp(va.labels, vb.labels, 12 * sizeof *va.labels), 0);
    lp_dataset_free(&a);
    lp_dataset_free(&b);
    lp_dataset_free(&va);
    lp_dataset_free(&vb);
}

Test(holdout, refuses_all_or_nothing)
{
    lp_dataset a = numbered(10), v;
    lp_error err = {0};
    cr_assert_eq(lp_dataset_hold_out(&a, 10, &v, &err), LP_ERR_ARG);
    cr_assert(strstr(err.msg, "cannot hold out 10 of 10 training images: that leaves none to train on"), "%s",
              err.msg);
    cr_assert_eq(lp_dataset_hold_out(&a, 0, &v, &err), LP_ERR_ARG);
    cr_assert_eq(a.n, 10);
    cr_assert_null(v.pixels);
    lp_dataset_free(&a);
}
