/* cli_viz.h - what `loupe viz` and `loupe report` share: a run's model ready to draw,
 * and the pictures of it. */
#ifndef LP_CLI_VIZ_H
#define LP_CLI_VIZ_H

#include "cli.h"
#include "pngio.h"

/* Load run's model at checkpoint `which` for drawing: plugins, threads, the weights,
 * every node kept (no ReLU folded into its pool, so its maps can be drawn), planned
 * for one image. */
lp_status cli_viz_load(const cli_common *c, int64_t run, const char *which, cli_model *m, lp_error *err);

/* Feature maps of test image `index` (test holds the model's test set, normalised):
 * forward, then lp_viz_maps titled with the label and the prediction. *pred and
 * *prob (may be NULL) get the predicted class and its softmax probability.
 * LP_ERR_ARG when index is outside the test set. */
lp_status cli_viz_maps_of(cli_model *m, const lp_dataset *test, long long index, const char *layer,
                          lp_image *out, int *pred, double *prob, lp_error *err);

#endif
