#include "holdout.h"

#include <stdlib.h>
#include <string.h>

lp_status lp_dataset_hold_out(lp_dataset *d, long long n, lp_dataset *val, lp_error *err)
{
    memset(val, 0, sizeof *val);
    if (n < 1 || n >= d->n)
        return lp_error_set(err, LP_ERR_ARG, "cannot hold out %lld of %d training images: that leaves %s",
                            n, d->n, n < 1 ? "no validation set" : "none to train on");
    const size_t per = (size_t)d->c * d->h * d->w;
    const int keep = d->n - (int)n;
    *val = *d;
    val->n = (int)n;
    val->pixels = malloc((size_t)n * per);
    val->labels = malloc((size_t)n * sizeof *val->labels);
    if (!val->pixels || !val->labels) {
        free(val->pixels);
        free(val->labels);
        memset(val, 0, sizeof *val);
        return lp_error_set(err, LP_ERR_NOMEM, "out of memory for %lld validation images", n);
    }
    memcpy(val->pixels, d->pixels + (size_t)keep * per, (size_t)n * per);
    memcpy(val->labels, d->labels + keep, (size_t)n * sizeof *val->labels);
    d->n = keep;   /* the tail stays allocated in d: freed with it */
    return LP_OK;
}
