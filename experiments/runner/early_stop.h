/* early_stop.h - which epoch is the best, and when to stop training early.
 *
 * One watched metric ("val/acc", "test/loss", ...) decides both: an epoch is the
 * best (its checkpoint flagged is_best) when it improves on the best so far by more
 * than min_delta, and training stops once `patience` epochs in a row did not, as
 * Keras's EarlyStopping(monitor, min_delta, patience) does. Without early stopping
 * the same rule with min_delta 0 picks the best checkpoint on val/acc when there is
 * a validation split, else on test/acc.
 *
 * The state (best value, its epoch, epochs without improvement) travels in each
 * checkpoint, so a resumed run stops at the same epoch an uninterrupted one would.
 */
#ifndef LP_EARLY_STOP_H
#define LP_EARLY_STOP_H

#include "optim.h"

#include <stdbool.h>
#include <stddef.h>

/* "train/loss", "train/acc", "val/loss", "val/acc", "test/loss", "test/acc". */
bool lp_metric_parse(const char *name, lp_metric_id *out);
const char *lp_metric_name(lp_metric_id m);
/* Accuracies improve upwards, losses downwards. */
bool lp_metric_higher_is_better(lp_metric_id m);
bool lp_metric_is_val(lp_metric_id m);

typedef struct lp_early_stop_config {
    bool enabled;          /* false: the rule only picks the best checkpoint */
    lp_metric_id metric;
    bool maximize;         /* from the metric unless mode says otherwise */
    int patience;          /* stop after this many epochs without improvement (>= 1) */
    float min_delta;       /* an improvement must be larger than this (>= 0) */
} lp_early_stop_config;

typedef struct lp_early_stop {
    double best;           /* best value so far; +-inf before the first epoch */
    long long best_epoch;  /* 0 before the first epoch */
    long long bad_epochs;  /* epochs since best_epoch */
} lp_early_stop;

void lp_early_stop_init(lp_early_stop *s, const lp_early_stop_config *c);

/* Record one epoch's value of the metric; true when it is the new best. A NaN
 * never improves. */
bool lp_early_stop_update(lp_early_stop *s, const lp_early_stop_config *c, double value, long long epoch);

/* True when early stopping is on and patience epochs passed without improvement. */
bool lp_early_stop_due(const lp_early_stop *s, const lp_early_stop_config *c);

/* "early_stop: val/acc did not improve for 3 epochs (best 0.9912 at epoch 7)". */
void lp_early_stop_reason(const lp_early_stop *s, const lp_early_stop_config *c, char *buf, size_t size);

#endif
