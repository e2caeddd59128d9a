/* train_dist.h - the training loop's data-parallel steps (see dist.h), for train.c.
 *
 * With N > 1 ranks every rank gathers the whole global batch (the same shuffle and
 * augmentation as one process: both are cheap next to a step), trains on its shard
 * lp_dist_shard(n) of it, and lp_train_dist_step sums what the ranks computed in one
 * allreduce of [gradients * n_r/n, loss * n_r, correct, stop]: the average gradient
 * of the whole batch, as one process computes it, up to float rounding. */
#ifndef LP_TRAIN_DIST_H
#define LP_TRAIN_DIST_H

#include "train.h"

/* The reduce buffer, when there is more than one rank (t->reduce stays NULL for one). */
lp_status lp_train_dist_init(lp_trainer *t, lp_error *err);

/* After this rank's forward and backward on n_local of the batch's n samples (its
 * mean loss `loss`, *correct right): leaves the batch's average gradient in the
 * graph's gradient block on every rank, *correct and *stop (any rank asked to stop)
 * for the whole batch, and returns the batch's mean loss. */
float lp_train_dist_step(lp_trainer *t, float loss, int n_local, int n, int *correct, bool *stop);

/* Compare a hash of the weights on every rank after epoch `epoch`: ranks that
 * drifted apart are a bug to stop at (LP_ERR_NUMERIC, naming the epoch). */
lp_status lp_train_dist_check_weights(lp_trainer *t, int epoch, lp_error *err);

#endif
