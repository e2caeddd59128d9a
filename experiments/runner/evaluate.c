#include "evaluate.h"

#include <math.h>
#include <string.h>

void lp_evaluation_reset(lp_evaluation *ev)
{
    int k = ev->n_classes;
    if (ev->confusion) memset(ev->confusion, 0, (size_t)k * k * sizeof *ev->confusion);
    if (ev->classes)
        for (int c = 0; c < k; c++)
            ev->classes[c] = (lp_class_metrics){.cls = c, .precision = NAN, .recall = NAN, .f1 = NAN};
    ev->total = ev->correct = 0;
    ev->n_misclassified = 0;
}

/* Softmax probability of class j in row[k], in double, shifted by the row's maximum
 * so that large logits cannot overflow exp. */
static double softmax_at(const float *row, int k, int j, float max)
{
    double sum = 0;
    for (int i = 0; i < k; i++) sum += exp((double)row[i] - max);
    return exp((double)row[j] - max) / sum;
}

void lp_evaluation_add_batch(lp_evaluation *ev, const float *logits, const int32_t *y, int n, int k,
                             int first_index)
{
    if (k != ev->n_classes) return;
    for (int i = 0; i < n; i++) {
        const float *row = logits + (size_t)i * k;
        int best = 0;
        for (int j = 1; j < k; j++)
            if (row[j] > row[best]) best = j;   /* first arg-max, as count_correct */
        int t = y[i];
        if (t < 0 || t >= k) continue;
        ev->confusion[(size_t)t * k + best]++;
        ev->total++;
        if (best == t) {
            ev->correct++;
            continue;
        }
        if (ev->n_misclassified >= ev->cap_misclassified) continue;
        lp_misclassified *m = &ev->misclassified[ev->n_misclassified++];
        m->image_index = first_index + i;
        m->true_label = t;
        m->pred_label = best;
        m->pred_prob = softmax_at(row, k, best, row[best]);
        m->true_prob = softmax_at(row, k, t, row[best]);
    }
}

void lp_evaluation_compute_classes(lp_evaluation *ev)
{
    int k = ev->n_classes;
    ev->total = ev->correct = 0;
    for (int c = 0; c < k; c++) {
        long long support = 0, predicted = 0, tp = ev->confusion[(size_t)c * k + c];
        for (int j = 0; j < k; j++) {
            support += ev->confusion[(size_t)c * k + j];
            predicted += ev->confusion[(size_t)j * k + c];
        }
        double p = predicted ? (double)tp / predicted : NAN;
        double r = support ? (double)tp / support : NAN;
        /* Undefined when either side is; 0 when both are 0 (the harmonic mean's limit:
         * images of c were predicted, c was predicted, never rightly). */
        double f1 = isnan(p) || isnan(r) ? NAN : p + r == 0 ? 0 : 2 * p * r / (p + r);
        ev->classes[c] = (lp_class_metrics){.cls = c, .support = support, .predicted = predicted,
                                            .precision = p, .recall = r, .f1 = f1};
        ev->total += support;
        ev->correct += tp;
    }
}
