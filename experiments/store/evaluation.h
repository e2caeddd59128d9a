/* evaluation.h - what an evaluation saw, per run and epoch, in the runs database:
 * the confusion matrix, per-class precision/recall/F1, and the misclassified images
 * (tables confusion, class_metrics, misclassified of schema 3; docs/runs-db.md).
 *
 * Writing: the trainer fills an lp_evaluation during its test pass (runner/evaluate.h:
 * the matrix from the logits, then the per-class rows from the matrix)
 * and hands it to lp_runsdb_commit_epoch_eval, which stores it in the SAME transaction
 * as the epoch's metrics and checkpoint: an epoch has all of them or none.
 *
 * Reading (the `loupe runs show --confusion` table, `loupe report`):
 *
 *   lp_evaluation ev;
 *   if (lp_runsdb_read_evaluation(db, run_id, 0, "test", &ev, &err)) ... err.msg ...
 *   ev.confusion[t * ev.n_classes + p]       images of class t predicted as p
 *   ev.classes[c].precision                  NaN where undefined (never predicted)
 *   ev.misclassified[0]                      the worst: lowest probability of its true class
 *   lp_evaluation_free(&ev);
 */
#ifndef LP_EVALUATION_H
#define LP_EVALUATION_H

#include "runsdb.h"

#include <stdint.h>

/* One class's row of class_metrics. precision, recall, f1 are NaN where they are
 * 0/0 (NULL in the table): precision of a class never predicted, recall of a class
 * with no image (support 0), f1 when either is undefined (f1 is 0 when both are 0). */
typedef struct lp_class_metrics {
    int cls;
    long long support;        /* images whose true label is cls (the row sum) */
    long long predicted;      /* images predicted as cls (the column sum) */
    double precision, recall, f1;
} lp_class_metrics;

/* One misclassified image: its index in the evaluated set, its labels, and the
 * softmax probabilities the model gave its predicted and its true class. */
typedef struct lp_misclassified {
    int image_index;
    int true_label, pred_label;
    double pred_prob, true_prob;
} lp_misclassified;

typedef struct lp_evaluation {
    int epoch;                /* 1-based epoch it was taken after */
    char split[8];            /* "test" or "val" */
    int n_classes;
    long long total;          /* images evaluated (sum of the matrix) */
    long long correct;        /* the trace */
    long long *confusion;     /* [n_classes * n_classes]: row = true label, column = predicted */
    lp_class_metrics *classes;            /* [n_classes], by class */
    int n_misclassified;                  /* = total - correct */
    lp_misclassified *misclassified;      /* [n_misclassified]; read back worst first */
    int cap_misclassified;                /* room allocated (writers) */
} lp_evaluation;

/* Allocate ev for n_classes classes and room for max_misclassified entries, all
 * zero, split copied (NULL: "test"). LP_ERR_NOMEM or LP_ERR_ARG (n_classes < 1). */
lp_status lp_evaluation_init(lp_evaluation *ev, int n_classes, int max_misclassified, const char *split,
                             lp_error *err);
/* Free the arrays and zero *ev (safe on a zeroed or freed one). */
void lp_evaluation_free(lp_evaluation *ev);

/* Sort ev->misclassified worst first: lowest true_prob, then lowest image_index
 * (the order lp_runsdb_read_evaluation returns). */
void lp_evaluation_sort_misclassified(lp_evaluation *ev);

/* Record epoch `epoch` exactly like lp_runsdb_commit_epoch (runsdb.h), plus, when ev
 * is not NULL, its evaluation (every confusion cell, zeros included; one class_metrics
 * row per class; one misclassified row per image), all in ONE transaction: on any
 * failure nothing of the epoch is stored. ev->epoch is ignored (`epoch` is used);
 * ev->split must be "test" or "val" and its matrix consistent (LP_ERR_ARG otherwise). */
lp_status lp_runsdb_commit_epoch_eval(lp_runsdb *db, int64_t run_id, int epoch, long long step,
                                      const lp_metric *metrics, int n_metrics, const void *ckpt,
                                      size_t ckpt_size, bool is_best, const lp_evaluation *ev,
                                      lp_error *err);

/* Read the evaluation of run_id at `epoch` on `split` ("test" or "val"; NULL: "test")
 * into *out (free with lp_evaluation_free). epoch 0 means the last epoch that has one.
 * The matrix, per-class rows and the misclassified list sorted worst first (lowest
 * true_prob). Errors: LP_ERR_ARG "no run N in PATH"; LP_ERR_ARG "run N has no
 * evaluation ..." (none recorded yet, none at that epoch: the message lists the
 * epochs that have one); LP_ERR_DB for SQLite failures or a damaged table (cells
 * missing, labels out of range). On error *out is zeroed. */
lp_status lp_runsdb_read_evaluation(lp_runsdb *db, int64_t run_id, int epoch, const char *split,
                                    lp_evaluation *out, lp_error *err);

/* Epochs of run_id that have an evaluation on split, ascending, into *epochs[*n]
 * (malloc'd, free it; *n may be 0). */
lp_status lp_runsdb_evaluation_epochs(lp_runsdb *db, int64_t run_id, const char *split, int **epochs,
                                      int *n, lp_error *err);

#endif
