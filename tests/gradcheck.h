/* gradcheck.h - a float64 finite-difference gradient checker for test suites.
 *
 * Header-only (static functions), so any tests/test_*.c can include it.
 *
 *   double loss(void *ctx);               // evaluates the model in double
 *   gc_result r = gc_check(v, len, analytic, loss, ctx, &GC_DEFAULTS);
 *   cr_assert(r.passed, ...);
 *
 * For each checked entry i of v (perturbed in place, then restored), the numeric
 * gradient is the central difference (L(v+h) - L(v-h)) / 2h with h = step *
 * max(1, |v_i|). It is compared with analytic[i] by
 *     |a - b| / max(|a|, |b|, floor)   <= tol.
 * Kinks (ReLU at 0, max-pool ties) are skipped when the one-sided slopes differ by
 * more than kink_tol relative, as Caffe's GradientChecker does; a caller should
 * assert that few entries were skipped, so skipping cannot hide a wrong gradient.
 * Why float64: with step 1e-6 the truncation and rounding error is near 1e-10,
 * so a 1e-4 relative error in one entry stands out; float32 cannot do that.
 */
#ifndef TESTS_GRADCHECK_H
#define TESTS_GRADCHECK_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

typedef double (*gc_loss_fn)(void *ctx);

typedef struct gc_options {
    double step;      /* relative step h (times max(1, |v|)) */
    double tol;       /* max relative error */
    double floor;     /* denominator floor: below it errors are absolute */
    double kink_tol;  /* relative slope difference that marks a kink */
    long max_entries; /* check at most this many entries (spread evenly); <= 0: all */
} gc_options;

static const gc_options GC_DEFAULTS = {1e-6, 1e-4, 1e-2, 1e-3, 0};

typedef struct gc_result {
    double max_err;  /* worst relative error over checked entries */
    long worst;      /* its index, -1 if none */
    double worst_analytic, worst_numeric;
    long checked, skipped;
    int passed;      /* checked > 0 and max_err <= tol */
} gc_result;

/* Relative error of a against b with a floor on the denominator. */
static inline double gc_rel_err(double a, double b, double floor)
{
    double d = fmax(fmax(fabs(a), fabs(b)), floor);
    return fabs(a - b) / d;
}

/* Check analytic[0..len) = dL/dv by central differences of loss(ctx) over v. */
static inline gc_result gc_check(double *v, long len, const double *analytic, gc_loss_fn loss,
                                 void *ctx, const gc_options *o)
{
    gc_result r = {0.0, -1, 0.0, 0.0, 0, 0, 0};
    long stride = 1;
    if (o->max_entries > 0 && len > o->max_entries) stride = (len + o->max_entries - 1) / o->max_entries;
    for (long i = 0; i < len; i += stride) {
        double saved = v[i];
        double h = o->step * fmax(1.0, fabs(saved));
        v[i] = saved + h;
        double up = loss(ctx);
        v[i] = saved - h;
        double down = loss(ctx);
        v[i] = saved;
        double mid = loss(ctx);
        double right = (up - mid) / h, left = (mid - down) / h;
        if (fabs(right - left) > o->kink_tol * fmax(fmax(fabs(right), fabs(left)), o->floor)) {
            r.skipped++;
            continue;
        }
        double numeric = (up - down) / (2.0 * h);
        double e = gc_rel_err(analytic[i], numeric, o->floor);
        if (isnan(e)) e = INFINITY; /* a NaN gradient is the worst error, never a pass */
        r.checked++;
        if (r.worst < 0 || e > r.max_err) {
            r.max_err = e;
            r.worst = i;
            r.worst_analytic = analytic[i];
            r.worst_numeric = numeric;
        }
    }
    r.passed = r.checked > 0 && r.max_err <= o->tol;
    return r;
}

/* Max over i of |a[i] - ref[i]| / max(|ref[i]|, floor): forward comparisons. */
static inline double gc_max_rel_diff(const float *a, const double *ref, long len, double floor)
{
    double worst = 0.0;
    for (long i = 0; i < len; i++) {
        double e = fabs((double)a[i] - ref[i]) / fmax(fabs(ref[i]), floor);
        if (isnan(e)) return INFINITY; /* never hide a NaN */
        if (e > worst) worst = e;
    }
    return worst;
}

/* Widen a float array into a double one. */
static inline void gc_widen(const float *src, double *dst, long len)
{
    for (long i = 0; i < len; i++) dst[i] = src[i];
}

#endif
