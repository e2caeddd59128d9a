#include "early_stop.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *const metric_names[] = {"train/loss", "train/acc", "val/loss",
                                           "val/acc",    "test/loss", "test/acc"};

bool lp_metric_parse(const char *name, lp_metric_id *out)
{
    for (int i = 0; i < (int)(sizeof metric_names / sizeof metric_names[0]); i++)
        if (strcmp(name, metric_names[i]) == 0) {
            *out = (lp_metric_id)i;
            return true;
        }
    return false;
}

const char *lp_metric_name(lp_metric_id m) { return metric_names[m]; }

bool lp_metric_higher_is_better(lp_metric_id m)
{
    return m == LP_METRIC_TRAIN_ACC || m == LP_METRIC_VAL_ACC || m == LP_METRIC_TEST_ACC;
}

bool lp_metric_is_val(lp_metric_id m) { return m == LP_METRIC_VAL_LOSS || m == LP_METRIC_VAL_ACC; }

void lp_early_stop_init(lp_early_stop *s, const lp_early_stop_config *c)
{
    s->best = c->maximize ? -INFINITY : INFINITY;
    s->best_epoch = 0;
    s->bad_epochs = 0;
}

bool lp_early_stop_update(lp_early_stop *s, const lp_early_stop_config *c, double value, long long epoch)
{
    /* Keras: improved when value - min_delta > best (max), value + min_delta < best (min). */
    const double d = c->min_delta;
    bool better = c->maximize ? value - d > s->best : value + d < s->best;
    if (better) {
        s->best = value;
        s->best_epoch = epoch;
        s->bad_epochs = 0;
    } else {
        s->bad_epochs++;
    }
    return better;
}

bool lp_early_stop_due(const lp_early_stop *s, const lp_early_stop_config *c)
{
    return c->enabled && s->bad_epochs >= c->patience;
}

void lp_early_stop_reason(const lp_early_stop *s, const lp_early_stop_config *c, char *buf, size_t size)
{
    if (s->best_epoch > 0)
        snprintf(buf, size, "early_stop: %s did not improve for %lld epoch%s (best %.6g at epoch %lld)",
                 lp_metric_name(c->metric), s->bad_epochs, s->bad_epochs == 1 ? "" : "s", s->best,
                 s->best_epoch);
    else
        snprintf(buf, size, "early_stop: %s did not improve for %lld epoch%s (never finite)",
                 lp_metric_name(c->metric), s->bad_epochs, s->bad_epochs == 1 ? "" : "s");
}
