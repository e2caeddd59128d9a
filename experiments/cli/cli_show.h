/* cli_show.h - what `loupe runs show` draws in a terminal: the learning curves as
 * sparklines and the confusion matrix with its per-class table.
 *
 * Characters: Unicode (block sparklines ▁▂▃▄▅▆▇█, "·" for an empty cell) when the
 * locale's character set is UTF-8 (LC_ALL, else LC_CTYPE, else LANG, as every C
 * program reads them), plain ASCII otherwise (LC_ALL=C, a POSIX locale) or when
 * --ascii is given. Whether stdout is a terminal does not matter: a UTF-8 locale
 * piped into a file or `less` still shows the same characters.
 */
#ifndef LP_CLI_SHOW_H
#define LP_CLI_SHOW_H

#include "evaluation.h"
#include "runsdb.h"

#include <stdbool.h>
#include <stdio.h>

/* True when the environment's locale uses UTF-8 (see above). */
bool cli_locale_is_utf8(void);

/* One sparkline of v[n] (NaN/Inf drawn as a gap) scaled to [lo, hi], resampled to at
 * most `width` characters (means of equal runs of epochs). */
void cli_sparkline(FILE *f, const double *v, int n, double lo, double hi, int width, bool utf8);

/* The "curves" block: loss and accuracy per split (train, val, test: those present)
 * of metric rows m[n] (ordered by epoch, as lp_runsdb_metrics gives them), one
 * sparkline each, losses on one shared scale and accuracies on another, with first,
 * last and best values. Prints nothing when there are no epochs. */
void cli_print_curves(FILE *f, const lp_metric_row *m, int n, bool utf8);

/* The confusion matrix of ev (rows: true label, columns: predicted), with row and
 * column totals, per-class support/recall/precision/F1 beside each row, overall
 * accuracy and macro averages, then the most confused pairs and the worst
 * misclassified images (at most `worst` of them). */
void cli_print_confusion(FILE *f, const lp_evaluation *ev, int worst, bool utf8);

#endif
