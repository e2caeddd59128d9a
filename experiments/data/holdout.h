/* holdout.h - a validation split held out of the training images.
 *
 * The last n training images (in file order, after data.train_limit) become the
 * validation set; training keeps the first d->n - n. The split does not depend on
 * the seed, so runs with different seeds pick their best epoch on the same images,
 * and the two sets never share an image (the same rule as Keras's validation_split).
 */
#ifndef LP_HOLDOUT_H
#define LP_HOLDOUT_H

#include "dataset.h"

/* Copy samples [d->n - n, d->n) of d into *val (its own memory, same scale and
 * offset) and shrink d to the first d->n - n. 1 <= n < d->n, else LP_ERR_ARG saying
 * how many there are; LP_ERR_NOMEM. On error d is unchanged and *val empty. */
lp_status lp_dataset_hold_out(lp_dataset *d, long long n, lp_dataset *val, lp_error *err);

#endif
