/* Evaluations: the confusion matrix built from logits against a hand-computed case,
 * its row sums against the class counts, per-class precision/recall/F1 (a class
 * never predicted, a class with no image), the misclassified images and their softmax
 * probabilities, and the store: an epoch commit writes the three tables and reads
 * back exactly, a failed commit writes none of them, a resume drops later epochs'. */
#include "checkpoint.h"
#include "evaluate.h"
#include "evaluation.h"
#include "runsdb.h"

#include "test_db.h"

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

/* ---- the store ---- */

static int64_t new_run(lp_runsdb *db)
{
    lp_run_new r = {.name = "ev", .config_yaml = "name: ev\n", .seed = 1, .param_count = 10, .threads = 1};
    int64_t id;
    lp_error err = {0};
    cr_assert_eq(lp_runsdb_begin_run(db, &r, &id, &err), LP_OK, "%s", err.msg);
    return id;
}

static void *make_blob(int tag, size_t *size)
{
    float w[2] = {(float)tag, 1};
    lp_tensor_ref t[] = {{"fc.bias", (lp_shape){1, {2}}, w}};
    void *buf;
    lp_error err = {0};
    cr_assert_eq(lp_checkpoint_encode(t, 1, NULL, 0, NULL, &buf, size, &err), LP_OK, "%s", err.msg);
    return buf;
}

static lp_status commit_ev(lp_runsdb *db, int64_t id, int epoch, const lp_evaluation *ev, lp_error *err)
{
    lp_metric m[] = {{"train", "loss", 1.0 / epoch}, {"test", "acc", ev ? (double)ev->correct / ev->total : 0.5}};
    size_t size;
    void *blob = make_blob(epoch, &size);
    lp_status s = lp_runsdb_commit_epoch_eval(db, id, epoch, 10LL * epoch, m, 2, blob, size, true, ev, err);
    free(blob);
    return s;
}

static void assert_same_evaluation(const lp_evaluation *got, const lp_evaluation *want)
{
    int k = want->n_classes;
    cr_assert_eq(got->n_classes, k);
    cr_assert_eq(got->total, want->total);
    cr_assert_eq(got->correct, want->correct);
    for (int i = 0; i < k * k; i++) cr_assert_eq(got->confusion[i], want->confusion[i], "cell %d", i);
    char what[64];
    for (int c = 0; c < k; c++) {
        cr_assert_eq(got->classes[c].cls, c);
        cr_assert_eq(got->classes[c].support, want->classes[c].support);
        cr_assert_eq(got->classes[c].predicted, want->classes[c].predicted);
        snprintf(what, sizeof what, "precision of %d", c);
        assert_close(got->classes[c].precision, want->classes[c].precision, what);
        snprintf(what, sizeof what, "recall of %d", c);
        assert_close(got->classes[c].recall, want->classes[c].recall, what);
        snprintf(what, sizeof what, "f1 of %d", c);
        assert_close(got->classes[c].f1, want->classes[c].f1, what);
    }
    cr_assert_eq(got->n_misclassified, want->n_misclassified);
    for (int i = 0; i < want->n_misclassified; i++) {
        const lp_misclassified *a = &got->misclassified[i], *b = &want->misclassified[i];
        cr_assert_eq(a->image_index, b->image_index, "position %d", i);
        cr_assert_eq(a->true_label, b->true_label);
        cr_assert_eq(a->pred_label, b->pred_label);
        cr_assert(a->pred_prob == b->pred_prob && a->true_prob == b->true_prob, "probabilities of %d", i);
    }
}

Test(evaluation_store, an_epoch_commit_round_trips_the_evaluation)
{
    char *path = tmp_db();
    lp_runsdb *db;
    lp_error err = {0};
    cr_assert_eq(lp_runsdb_open(path, &db, &err), LP_OK, "%s", err.msg);
    int64_t id = new_run(db);
    lp_evaluation ev;
    hand_evaluation(&ev, 8);
    cr_assert_eq(commit_ev(db, id, 1, &ev, &err), LP_OK, "%s", err.msg);
    /* Epoch 2: one more image right (image 2 now predicted 0). */
    lp_evaluation ev2;
    float logits[24];
    hand_logits(logits);
    logits[2 * 3 + 1] = 0;
    logits[2 * 3 + 0] = 2;
    cr_assert_eq(lp_evaluation_init(&ev2, 3, 8, "test", &err), LP_OK);
    lp_evaluation_add_batch(&ev2, logits, hand_labels, 8, 3, 0);
    lp_evaluation_compute_classes(&ev2);
    cr_assert_eq(commit_ev(db, id, 2, &ev2, &err), LP_OK, "%s", err.msg);
    lp_runsdb_close(db);

    /* Every cell is stored, zeros included; NULL where 0/0. */
    cr_assert_eq(q_int(path, "SELECT count(*) FROM confusion WHERE epoch = 1"), 9);
    cr_assert_eq(q_int(path, "SELECT count(*) FROM confusion WHERE epoch = 1 AND count = 0"), 3);
    cr_assert_eq(q_int(path, "SELECT count(*) FROM class_metrics WHERE epoch = 1 AND precision IS NULL"), 1);
    cr_assert_eq(q_int(path, "SELECT class FROM class_metrics WHERE epoch = 1 AND f1 IS NULL"), 2);
    cr_assert_eq(q_int(path, "SELECT count(*) FROM misclassified WHERE epoch = 2"), 4);

    cr_assert_eq(lp_runsdb_open_readonly(path, &db, &err), LP_OK, "%s", err.msg);
    lp_evaluation got;
    cr_assert_eq(lp_runsdb_read_evaluation(db, id, 1, "test", &got, &err), LP_OK, "%s", err.msg);
    cr_assert_eq(got.epoch, 1);
    cr_assert_str_eq(got.split, "test");
    lp_evaluation_sort_misclassified(&ev);
    assert_same_evaluation(&got, &ev);
    lp_evaluation_free(&got);
    /* epoch 0: the last one. */
    cr_assert_eq(lp_runsdb_read_evaluation(db, id, 0, NULL, &got, &err), LP_OK, "%s", err.msg);
    cr_assert_eq(got.epoch, 2);
    lp_evaluation_sort_misclassified(&ev2);
    assert_same_evaluation(&got, &ev2);
    lp_evaluation_free(&got);

    int *epochs, n;
    cr_assert_eq(lp_runsdb_evaluation_epochs(db, id, "test", &epochs, &n, &err), LP_OK, "%s", err.msg);
    cr_assert_eq(n, 2);
    cr_assert(epochs[0] == 1 && epochs[1] == 2);
    free(epochs);

    /* What is not there says so. */
    cr_assert_eq(lp_runsdb_read_evaluation(db, id, 7, "test", &got, &err), LP_ERR_ARG);
    cr_assert(strstr(err.msg, "no test evaluation at epoch 7 (epochs with one: 1, 2)"), "%s", err.msg);
    lp_error_clear(&err);
    cr_assert_eq(lp_runsdb_read_evaluation(db, id, 0, "val", &got, &err), LP_ERR_ARG);
    cr_assert(strstr(err.msg, "has no val evaluation yet"), "%s", err.msg);
    lp_error_clear(&err);
    cr_assert_eq(lp_runsdb_read_evaluation(db, 99, 0, "test", &got, &err), LP_ERR_ARG);
    cr_assert(strstr(err.msg, "no run 99"), "%s", err.msg);
    lp_error_clear(&err);
    cr_assert_eq(lp_runsdb_read_evaluation(db, id, 0, "train", &got, &err), LP_ERR_ARG);
    lp_runsdb_close(db);

    /* A damaged table is an error, not a short matrix. */
    q_exec(path, "DELETE FROM confusion WHERE epoch = 2 AND true_label = 1 AND pred_label = 2");
    cr_assert_eq(lp_runsdb_open_readonly(path, &db, &err), LP_OK, "%s", err.msg);
    lp_error_clear(&err);
    cr_assert_eq(lp_runsdb_read_evaluation(db, id, 2, "test", &got, &err), LP_ERR_DB);
    cr_assert(strstr(err.msg, "confusion cells are missing"), "%s", err.msg);
    lp_runsdb_close(db);
    /* A class number far out of range must not size the matrix. */
    q_exec(path, "UPDATE class_metrics SET class = 1000000 WHERE epoch = 1 AND class = 2");
    cr_assert_eq(lp_runsdb_open_readonly(path, &db, &err), LP_OK, "%s", err.msg);
    lp_error_clear(&err);
    cr_assert_eq(lp_runsdb_read_evaluation(db, id, 1, "test", &got, &err), LP_ERR_DB);
    cr_assert(strstr(err.msg, "class rows are missing or out of range"), "%s", err.msg);
    lp_runsdb_close(db);
    lp_evaluation_free(&ev);
    lp_evaluation_free(&ev2);
    rm_db(path);
}

Test(evaluation_store, a_failed_epoch_commit_stores_no_evaluation)
{
    char *path = tmp_db();
    lp_runsdb *db;
    lp_error err = {0};
    cr_assert_eq(lp_runsdb_open(path, &db, &err), LP_OK, "%s", err.msg);
    int64_t id = new_run(db);
    lp_evaluation ev;
    hand_evaluation(&ev, 8);
    cr_assert_eq(commit_ev(db, id, 1, &ev, &err), LP_OK, "%s", err.msg);

    /* Metrics, checkpoint and the confusion matrix insert, then the last misclassified
     * row hits a CHECK (a negative image index slipped in by a trigger): all rolled back. */
    q_exec(path, "CREATE TRIGGER poison BEFORE INSERT ON misclassified WHEN NEW.image_index = 7 "
                 "BEGIN SELECT RAISE(ABORT, 'poisoned row'); END");
    cr_assert_eq(commit_ev(db, id, 2, &ev, &err), LP_ERR_DB);
    cr_assert(strstr(err.msg, "poisoned row") && strstr(err.msg, "epoch 2 of run"), "%s", err.msg);
    const char *tables[] = {"metrics", "checkpoints", "confusion", "class_metrics", "misclassified"};
    char sql[128];
    for (int i = 0; i < 5; i++) {
        snprintf(sql, sizeof sql, "SELECT count(*) FROM %s WHERE epoch = 2", tables[i]);
        cr_assert_eq(q_int(path, sql), 0, "%s kept rows of the failed epoch", tables[i]);
    }
    cr_assert_eq(q_int(path, "SELECT epochs_done FROM runs"), 1);
    cr_assert_eq(q_int(path, "SELECT count(*) FROM confusion WHERE epoch = 1"), 9);

    /* An inconsistent record is refused before anything is written. */
    lp_error_clear(&err);
    ev.misclassified[0].pred_label = ev.misclassified[0].true_label;
    cr_assert_eq(commit_ev(db, id, 2, &ev, &err), LP_ERR_ARG);
    cr_assert_eq(q_int(path, "SELECT count(*) FROM metrics WHERE epoch = 2"), 0);
    lp_error_clear(&err);
    snprintf(ev.split, sizeof ev.split, "train");
    cr_assert_eq(commit_ev(db, id, 2, &ev, &err), LP_ERR_ARG);
    cr_assert(strstr(err.msg, "split 'train'"), "%s", err.msg);

    /* Without the trigger, the same epoch commits. */
    q_exec(path, "DROP TRIGGER poison");
    lp_evaluation_free(&ev);
    hand_evaluation(&ev, 8);
    lp_error_clear(&err);
    cr_assert_eq(commit_ev(db, id, 2, &ev, &err), LP_OK, "%s", err.msg);
    cr_assert_eq(q_int(path, "SELECT count(*) FROM misclassified WHERE epoch = 2"), 5);
    lp_runsdb_close(db);
    lp_evaluation_free(&ev);
    rm_db(path);
}

Test(evaluation_store, resume_drops_the_evaluations_of_epochs_to_train_again)
{
    char *path = tmp_db();
    lp_runsdb *db;
    lp_error err = {0};
    cr_assert_eq(lp_runsdb_open(path, &db, &err), LP_OK, "%s", err.msg);
    int64_t id = new_run(db);
    lp_evaluation ev;
    hand_evaluation(&ev, 8);
    for (int e = 1; e <= 3; e++) cr_assert_eq(commit_ev(db, id, e, &ev, &err), LP_OK, "%s", err.msg);
    cr_assert_eq(lp_runsdb_finish_run(db, id, LP_RUN_INTERRUPTED, "stopped", &err), LP_OK, "%s", err.msg);
    cr_assert_eq(lp_runsdb_resume_run(db, id, 1, &err), LP_OK, "%s", err.msg);
    cr_assert_eq(q_int(path, "SELECT count(*) FROM confusion WHERE epoch > 1"), 0);
    cr_assert_eq(q_int(path, "SELECT count(*) FROM class_metrics WHERE epoch > 1"), 0);
    cr_assert_eq(q_int(path, "SELECT count(*) FROM misclassified WHERE epoch > 1"), 0);
    cr_assert_eq(q_int(path, "SELECT count(*) FROM confusion WHERE epoch = 1"), 9);
    /* Epoch 2 is trained again and commits without a key conflict. */
    cr_assert_eq(commit_ev(db, id, 2, &ev, &err), LP_OK, "%s", err.msg);
    /* Deleting the run deletes its evaluations. */
    cr_assert_eq(lp_runsdb_delete_run(db, id, &err), LP_OK, "%s", err.msg);
    cr_assert_eq(q_int(path, "SELECT count(*) FROM confusion") + q_int(path, "SELECT count(*) FROM class_metrics") +
                     q_int(path, "SELECT count(*) FROM misclassified"), 0);
    lp_runsdb_close(db);
    lp_evaluation_free(&ev);
    rm_db(path);
}
