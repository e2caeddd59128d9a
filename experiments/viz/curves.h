/* curves.h - learning curves of one or several runs as a self-contained SVG: two
 * panels on shared axes (loss left, accuracy right), one colour per run, one dash
 * style per split (train dashed, val dotted, test solid), ticks, axis labels, a
 * legend. No script, no external font or stylesheet: any browser or viewer shows it
 * from the file system, and it can be inlined in an HTML page.
 *
 *   lp_curve_run runs[2];
 *   lp_curve_run_load(db, 3, &runs[0], &err);       // from the runs database
 *   lp_curve_run_load(db, 4, &runs[1], &err);
 *   lp_svg_curves("curves.svg", runs, 2, &err);      // temp file + rename
 *   lp_curve_run_free(&runs[0]); ...
 */
#ifndef LP_VIZ_CURVES_H
#define LP_VIZ_CURVES_H

#include "runsdb.h"

#include <stdint.h>
#include <stdio.h>

enum { LP_CURVE_TRAIN, LP_CURVE_VAL, LP_CURVE_TEST, LP_CURVE_SPLITS };

/* The per-epoch loss and accuracy of one run. A series is NULL when the run has no
 * such metric; NaN/Inf values are gaps in the line. */
typedef struct lp_curve_run {
    char *label;                        /* legend text, e.g. "run 3 mnist_two_conv" */
    int n_epochs;
    int *epochs;                        /* [n_epochs], ascending */
    double *loss[LP_CURVE_SPLITS];      /* [n_epochs] or NULL */
    double *acc[LP_CURVE_SPLITS];       /* [n_epochs] (fractions 0..1) or NULL */
} lp_curve_run;

/* Load run_id's curves (metrics loss and acc of the splits train, val, test) with the
 * label "run ID NAME". LP_ERR_ARG "no run N in PATH"; a run with no epoch yet loads
 * with n_epochs 0 (lp_svg_curves skips it). Free with lp_curve_run_free. */
lp_status lp_curve_run_load(lp_runsdb *db, int64_t run_id, lp_curve_run *out, lp_error *err);
void lp_curve_run_free(lp_curve_run *r);

/* Write the SVG document of runs[n] to f. LP_ERR_ARG when no run has an epoch. */
lp_status lp_svg_curves_write(FILE *f, const lp_curve_run *runs, int n, lp_error *err);

/* The same into the file at path, written to a temporary file next to it and renamed
 * (a failure leaves no file, and any previous one untouched): LP_ERR_IO naming the
 * path and the reason (a missing or read-only directory, a full disk). */
lp_status lp_svg_curves(const char *path, const lp_curve_run *runs, int n, lp_error *err);

#endif
