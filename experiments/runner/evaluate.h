/* evaluate.h - the confusion matrix, per-class precision/recall/F1 and the
 * misclassified images of an evaluation pass, built from the logits the pass
 * computes anyway (no second pass over the set; the record is evaluation.h's).
 *
 *   lp_evaluation ev;
 *   lp_evaluation_init(&ev, k, test.n, "test", &err);   // once: no allocation per pass
 *   lp_evaluation_reset(&ev);
 *   for each batch: lp_evaluation_add_batch(&ev, logits, labels, n, k, first_index);
 *   lp_evaluation_compute_classes(&ev);
 *
 * The predicted class is the first arg-max of a row of logits, as the accuracy the
 * trainer reports counts it, so correct / total is exactly that accuracy.
 */
#ifndef LP_EVALUATE_H
#define LP_EVALUATE_H

#include "evaluation.h"

#include <stdint.h>

/* Zero the matrix, the per-class rows and the misclassified list (keeps the room). */
void lp_evaluation_reset(lp_evaluation *ev);

/* Count a batch: logits [n, k] of the images first_index .. first_index+n-1 of the
 * set, labels y[n]. k must equal ev->n_classes. A misclassified image is appended
 * with the softmax probabilities of its predicted and true class (computed only for
 * those rows). Labels outside [0, k) and images beyond the list's room are not
 * recorded in the list but still counted in the matrix when their label is in range. */
void lp_evaluation_add_batch(lp_evaluation *ev, const float *logits, const int32_t *y, int n, int k,
                             int first_index);

/* Fill total, correct and the per-class rows from the matrix:
 * precision = tp / predicted, recall = tp / support, f1 = 2pr / (p + r), each NaN
 * where it is 0/0 (stored as NULL); f1 = 0 when precision and recall are both 0. */
void lp_evaluation_compute_classes(lp_evaluation *ev);

#endif
