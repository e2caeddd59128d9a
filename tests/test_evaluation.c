/* Evaluations: the confusion matrix built from logits against a hand-computed case,
 * its row sums against the class counts, per-class precision/recall/F1 (a class
 * never predicted, a class with no image), the misclassified images and their softmax
 * probabilities, and the store: an epoch commit writes the three tables and reads
 * back exactly, a failed commit writes none of them, a resume drops later epochs'. */
#include "checkpoint.h"
#include "evaluate.h"
#include "evaluation.h"
#include "runsdb.h"

#include <criterion/criterion.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- the hand case ----
 *
 * 3 classes, 8 images (labels 0 0 0 1 1 2 2 2). Logits put the predicted class at 2.0,
 * the others at 0 (except image 6: a tie between 1 and 2 at 1.0, resolved to the first
 * arg-max, 1):
 *
 *   image  true  predicted
 *   0      0     0
 *   1      0     0
 *   2      0     1
 *   3      1     1
 *   4      1     0
 *   5      2     0
 *   6      2     1   (tie 1/2: first wins)
 *   7      2     0
 *
 * confusion (row true, column predicted):   column sums (predicted): 5 3 0
 *   0: 2 1 0   (support 3)
 *   1: 1 1 0   (support 2)
 *   2: 2 1 0   (support 3)
 * precision: 2/5, 1/3, NaN (class 2 never predicted)
 * recall:    2/3, 1/2, 0/3 = 0
 * f1:        2*(2/5)(2/3)/(2/5+2/3) = 1/2,  2*(1/3)(1/2)/(5/6) = 2/5,  NaN (precision is)
 */
static const int32_t hand_labels[8] = {0, 0, 0, 1, 1, 2, 2, 2};
static const int hand_pred[8] = {0, 0, 1, 1, 0, 0, 1, 0};

static void hand_logits(float *logits)
{
    memset(logits, 0, 8 * 3 * sizeof *logits);
    for (int i = 0; i < 8; i++) logits[i * 3 + hand_pred[i]] = 2.0f;
    logits[6 * 3 + 1] = logits[6 * 3 + 2] = 1.0f;
}

static void hand_evaluation(lp_evaluation *ev, int batch)
{
    lp_error err = {0};
    cr_assert_eq(lp_evaluation_init(ev, 3, 8, "test", &err), LP_OK, "%s", err.msg);
    float logits[24];
    hand_logits(logits);
    lp_evaluation_reset(ev);
    for (int start = 0; start < 8; start += batch) {
        int n = 8 - start < batch ? 8 - start : batch;
        lp_evaluation_add_batch(ev, logits + start * 3, hand_labels + start, n, 3, start);
    }
    lp_evaluation_compute_classes(ev);
}

static void assert_close(double got, double want, const char *what)
{
    if (isnan(want)) cr_assert(isnan(got), "%s: got %.17g, want NaN", what, got);
    else cr_assert(fabs(got - want) < 1e-12, "%s: got %.17g, want %.17g", what, got, want);
}

Test(evaluation, confusion_matches_the_hand_case_in_any_batching)
{
    static const long long want[9] = {2, 1, 0, 1, 1, 0, 2, 1, 0};
    for (int batch = 1; batch <= 8; batch++) {
        lp_evaluation ev;
        hand_evaluation(&ev, batch);
        for (int i = 0; i < 9; i++)
            cr_assert_eq(ev.confusion[i], want[i], "batch %d: cell (%d, %d) = %lld, want %lld", batch, i / 3,
                         i % 3, ev.confusion[i], want[i]);
        cr_assert_eq(ev.total, 8);
        cr_assert_eq(ev.correct, 3);
        cr_assert_eq(ev.n_misclassified, 5);
        lp_evaluation_free(&ev);
    }
}

Test(evaluation, row_sums_are_the_class_counts)
{
    lp_evaluation ev;
    hand_evaluation(&ev, 3);
    long long count[3] = {0};
    for (int i = 0; i < 8; i++) count[hand_labels[i]]++;
    for (int t = 0; t < 3; t++) {
        long long row = 0;
        for (int p = 0; p < 3; p++) row += ev.confusion[t * 3 + p];
        cr_assert_eq(row, count[t], "row %d sums to %lld, class has %lld images", t, row, count[t]);
        cr_assert_eq(ev.classes[t].support, count[t]);
    }
    lp_evaluation_free(&ev);
}

Test(evaluation, precision_recall_f1_by_hand_with_a_class_never_predicted)
{
    lp_evaluation ev;
    hand_evaluation(&ev, 8);
    const double p[3] = {2.0 / 5, 1.0 / 3, NAN}, r[3] = {2.0 / 3, 1.0 / 2, 0}, f1[3] = {1.0 / 2, 2.0 / 5, NAN};
    const long long predicted[3] = {5, 3, 0};
    char what[64];
    for (int c = 0; c < 3; c++) {
        cr_assert_eq(ev.classes[c].cls, c);
        cr_assert_eq(ev.classes[c].predicted, predicted[c]);
        snprintf(what, sizeof what, "precision of %d", c);
        assert_close(ev.classes[c].precision, p[c], what);
        snprintf(what, sizeof what, "recall of %d", c);
        assert_close(ev.classes[c].recall, r[c], what);
        snprintf(what, sizeof what, "f1 of %d", c);
        assert_close(ev.classes[c].f1, f1[c], what);
    }
    lp_evaluation_free(&ev);
}

Test(evaluation, a_class_with_no_image_has_no_recall_and_both_zero_gives_f1_zero)
{
    /* 3 classes; true 0 predicted 1 (twice), true 1 predicted 0: class 2 has no image
     * and is never predicted; classes 0 and 1 are predicted but never rightly. */
    lp_evaluation ev;
    lp_error err = {0};
    cr_assert_eq(lp_evaluation_init(&ev, 3, 3, NULL, &err), LP_OK, "%s", err.msg);
    cr_assert_str_eq(ev.split, "test");
    float logits[9] = {0, 1, 0, 0, 1, 0, 1, 0, 0};
    int32_t y[3] = {0, 0, 1};
    lp_evaluation_add_batch(&ev, logits, y, 3, 3, 0);
    lp_evaluation_compute_classes(&ev);
    assert_close(ev.classes[0].precision, 0, "precision 0");
    assert_close(ev.classes[0].recall, 0, "recall 0");
    assert_close(ev.classes[0].f1, 0, "f1 0");
    assert_close(ev.classes[2].precision, NAN, "precision 2");
    assert_close(ev.classes[2].recall, NAN, "recall 2");
    assert_close(ev.classes[2].f1, NAN, "f1 2");
    cr_assert_eq(ev.classes[2].support, 0);
    lp_evaluation_free(&ev);
}

Test(evaluation, misclassified_images_carry_their_softmax_probabilities)
{
    lp_evaluation ev;
    hand_evaluation(&ev, 3);
    /* Image 2: logits (0, 2, 0): p(pred 1) = e^2 / (e^2 + 2), p(true 0) = 1 / (e^2 + 2). */
    double e2 = exp(2.0);
    /* Image 6: logits (0, 1, 1): p(pred 1) = p(true 2) = e / (1 + 2e). */
    double e1 = exp(1.0);
    const int want_index[5] = {2, 4, 5, 6, 7};
    for (int i = 0; i < 5; i++) {
        const lp_misclassified *m = &ev.misclassified[i];
        cr_assert_eq(m->image_index, want_index[i]);
        cr_assert_eq(m->true_label, hand_labels[m->image_index]);
        cr_assert_eq(m->pred_label, hand_pred[m->image_index]);
        if (m->image_index == 6) {
            assert_close(m->pred_prob, e1 / (1 + 2 * e1), "pred_prob of 6");
            assert_close(m->true_prob, e1 / (1 + 2 * e1), "true_prob of 6");
        } else {
            assert_close(m->pred_prob, e2 / (e2 + 2), "pred_prob");
            assert_close(m->true_prob, 1 / (e2 + 2), "true_prob");
        }
    }
    /* Worst first: lowest true_prob (the four at 1/(e^2+2)) by index, then image 6. */
    lp_evaluation_sort_misclassified(&ev);
    const int sorted[5] = {2, 4, 5, 7, 6};
    for (int i = 0; i < 5; i++) cr_assert_eq(ev.misclassified[i].image_index, sorted[i], "position %d", i);
    lp_evaluation_free(&ev);
}

Test(evaluation, huge_logits_do_not_overflow_the_softmax)
{
    lp_evaluation ev;
    lp_error err = {0};
    cr_assert_eq(lp_evaluation_init(&ev, 2, 1, "val", &err), LP_OK, "%s", err.msg);
    float logits[2] = {1e30f, 1e30f - 1e24f};
    int32_t y = 1;
    lp_evaluation_add_batch(&ev, logits, &y, 1, 2, 41);
    cr_assert_eq(ev.n_misclassified, 1);
    cr_assert_eq(ev.misclassified[0].image_index, 41);
    cr_assert(isfinite(ev.misclassified[0].pred_prob) && ev.misclassified[0].pred_prob == 1.0);
    cr_assert(ev.misclassified[0].true_prob == 0.0);
    lp_evaluation_free(&ev);
}

Test(evaluation, reset_starts_a_new_pass)
{
    lp_evaluation ev;
    hand_evaluation(&ev, 4);
    float logits[24];
    hand_logits(logits);
    lp_evaluation_reset(&ev);
    lp_evaluation_add_batch(&ev, logits, hand_labels, 8, 3, 0);
    lp_evaluation_compute_classes(&ev);
    cr_assert_eq(ev.total, 8);
    cr_assert_eq(ev.n_misclassified, 5);
    cr_assert_eq(ev.confusion[0], 2);
    lp_evaluation_free(&ev);
}

Test(evaluation, bad_sizes_are_refused)
{
    lp_evaluation ev;
    lp_error err = {0};
    cr_assert_eq(lp_evaluation_init(&ev, 0, 10, "test", &err), LP_ERR_ARG);
    lp_evaluation_free(&ev);   /* safe on what a failed init left */
}
