#include "cli_show.h"

#include <langinfo.h>
#include <locale.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool names_utf8(const char *s)
{
    return s && (strcasestr(s, "utf-8") || strcasestr(s, "utf8"));
}

bool cli_locale_is_utf8(void)
{
    /* Ask the C library about the environment's LC_CTYPE, then put back what was set
     * (loupe otherwise runs in the "C" locale: number formats must not change). */
    char saved[128];
    const char *cur = setlocale(LC_CTYPE, NULL);
    snprintf(saved, sizeof saved, "%s", cur ? cur : "C");
    bool utf8;
    if (setlocale(LC_CTYPE, "")) {
        const char *cs = nl_langinfo(CODESET);
        utf8 = names_utf8(cs);
        setlocale(LC_CTYPE, saved);
    } else {
        /* The locale named is not installed (common in containers): go by its name. */
        const char *name = getenv("LC_ALL");
        if (!name || !*name) name = getenv("LC_CTYPE");
        if (!name || !*name) name = getenv("LANG");
        utf8 = names_utf8(name);
    }
    return utf8;
}

/* ---- sparklines ---- */

static const char *const utf8_levels[8] = {"\u2581", "\u2582", "\u2583", "\u2584",
                                           "\u2585", "\u2586", "\u2587", "\u2588"};
static const char ascii_levels[8] = {'_', '.', ',', '-', '=', '+', '*', '#'};

void cli_sparkline(FILE *f, const double *v, int n, double lo, double hi, int width, bool utf8)
{
    if (width < 1) width = 1;
    int cols = n < width ? n : width;
    for (int c = 0; c < cols; c++) {
        /* Column c covers epochs [a, b): the mean of its finite values. */
        int a = (int)((long long)c * n / cols), b = (int)((long long)(c + 1) * n / cols);
        double sum = 0;
        int k = 0;
        for (int i = a; i < b; i++)
            if (isfinite(v[i])) {
                sum += v[i];
                k++;
            }
        if (k == 0) {
            fputc(' ', f);
            continue;
        }
        double x = sum / k;
        int level = hi > lo ? (int)floor((x - lo) / (hi - lo) * 7 + 0.5) : 3;
        level = level < 0 ? 0 : level > 7 ? 7 : level;
        if (utf8) fputs(utf8_levels[level], f);
        else fputc(ascii_levels[level], f);
    }
}

/* ---- curves ---- */

enum { SPLITS = 3, CURVE_WIDTH = 60 };
static const char *const split_names[SPLITS] = {"train", "val", "test"};

static void fmt_value(char *buf, size_t size, double v, bool acc)
{
    if (!isfinite(v)) snprintf(buf, size, "%s", isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
    else if (acc) snprintf(buf, size, "%.2f%%", 100 * v);
    else snprintf(buf, size, "%.4f", v);
}

void cli_print_curves(FILE *f, const lp_metric_row *m, int n, bool utf8)
{
    int n_epochs = 0;
    for (int i = 0; i < n; i++)
        if (i == 0 || m[i].epoch != m[i - 1].epoch) n_epochs++;
    if (n_epochs == 0) return;
    /* series[metric][split][epoch]: metric 0 loss, 1 acc; NaN where absent. */
    double *buf = malloc((size_t)2 * SPLITS * n_epochs * sizeof *buf);
    int *epoch_of = malloc((size_t)n_epochs * sizeof *epoch_of);
    if (!buf || !epoch_of) {
        free(buf);
        free(epoch_of);
        return;
    }
    for (int i = 0; i < 2 * SPLITS * n_epochs; i++) buf[i] = NAN;
    bool present[2][SPLITS] = {{false}};
    for (int i = 0, e = -1; i < n; i++) {
        if (i == 0 || m[i].epoch != m[i - 1].epoch) epoch_of[++e] = m[i].epoch;
        int metric = !strcmp(m[i].name, "loss") ? 0 : !strcmp(m[i].name, "acc") ? 1 : -1;
        int split = -1;
        for (int s = 0; s < SPLITS; s++)
            if (!strcmp(m[i].split, split_names[s])) split = s;
        if (metric < 0 || split < 0) continue;
        buf[((size_t)metric * SPLITS + split) * n_epochs + e] = m[i].value;
        present[metric][split] = true;
    }
    fprintf(f, "\ncurves (%d epoch%s%s):\n", n_epochs, n_epochs == 1 ? "" : "s",
            n_epochs > CURVE_WIDTH ? ", each character the mean of a run of epochs" : "");
    for (int metric = 0; metric < 2; metric++) {
        double lo = INFINITY, hi = -INFINITY;
        for (int s = 0; s < SPLITS; s++)
            for (int e = 0; present[metric][s] && e < n_epochs; e++) {
                double v = buf[((size_t)metric * SPLITS + s) * n_epochs + e];
                if (isfinite(v)) {
                    lo = v < lo ? v : lo;
                    hi = v > hi ? v : hi;
                }
            }
        bool first = true;
        for (int s = 0; s < SPLITS; s++) {
            if (!present[metric][s]) continue;
            const double *v = buf + ((size_t)metric * SPLITS + s) * n_epochs;
            fprintf(f, "  %-5s %-6s ", first ? (metric ? "acc" : "loss") : "", split_names[s]);
            first = false;
            cli_sparkline(f, v, n_epochs, lo, hi, CURVE_WIDTH, utf8);
            int best = -1;
            for (int e = 0; e < n_epochs; e++)
                if (isfinite(v[e]) && (best < 0 || (metric ? v[e] > v[best] : v[e] < v[best]))) best = e;
            char a[24], b[24], c[24];
            fmt_value(a, sizeof a, v[0], metric);
            fmt_value(b, sizeof b, v[n_epochs - 1], metric);
            fprintf(f, "  %s %s %s", a, utf8 ? "\u2192" : "->", b);
            if (best >= 0) {
                fmt_value(c, sizeof c, v[best], metric);
                fprintf(f, "  (best %s at epoch %d)", c, epoch_of[best]);
            }
            fputc('\n', f);
        }
    }
    free(buf);
    free(epoch_of);
}

/* ---- confusion matrix ---- */

static int digits(long long v)
{
    int d = 1;
    while (v >= 10) {
        v /= 10;
        d++;
    }
    return d;
}

static void fmt_pct(char *buf, size_t size, double v)
{
    if (isnan(v)) snprintf(buf, size, "-");
    else snprintf(buf, size, "%.2f%%", 100 * v);
}

typedef struct pair {
    int t, p;
    long long n;
} pair;

static int by_count_desc(const void *a, const void *b)
{
    const pair *x = a, *y = b;
    if (x->n != y->n) return x->n > y->n ? -1 : 1;
    return x->t != y->t ? x->t - y->t : x->p - y->p;
}

void cli_print_confusion(FILE *f, const lp_evaluation *ev, int worst, bool utf8)
{
    int k = ev->n_classes;
    fprintf(f, "confusion matrix of the %s set after epoch %d: %lld images, %lld right (%.2f%%)\n", ev->split,
            ev->epoch, ev->total, ev->correct, ev->total ? 100.0 * ev->correct / ev->total : 0.0);
    fprintf(f, "rows: true label, columns: predicted label%s\n\n",
            utf8 ? ", \u00b7 = none" : ", . = none");
    int w = digits(ev->total) + 1;
    if (w < 4) w = 4;
    int label_w = 9;   /* "true\pred" and "total" */
    const char *bar = utf8 ? "\u2502" : "|";
    fprintf(f, "%*s", label_w, "true\\pred");
    for (int p = 0; p < k; p++) fprintf(f, "%*d", w, p);
    fprintf(f, " %s %*s %8s %9s %6s\n", bar, w + 1, "total", "recall", "precision", "f1");
    double macro_p = 0, macro_r = 0, macro_f = 0;
    int np = 0, nr = 0, nf = 0;
    for (int t = 0; t < k; t++) {
        fprintf(f, "%*d", label_w, t);
        for (int p = 0; p < k; p++) {
            long long n = ev->confusion[(size_t)t * k + p];
            if (n) fprintf(f, "%*lld", w, n);
            else fprintf(f, "%*s%s", w - 1, "", utf8 ? "\u00b7" : ".");
        }
        const lp_class_metrics *c = &ev->classes[t];
        char r[16], pr[16], f1[16];
        fmt_pct(r, sizeof r, c->recall);
        fmt_pct(pr, sizeof pr, c->precision);
        if (isnan(c->f1)) snprintf(f1, sizeof f1, "-");
        else snprintf(f1, sizeof f1, "%.3f", c->f1);
        fprintf(f, " %s %*lld %8s %9s %6s\n", bar, w + 1, c->support, r, pr, f1);
        if (!isnan(c->precision)) { macro_p += c->precision; np++; }
        if (!isnan(c->recall)) { macro_r += c->recall; nr++; }
        if (!isnan(c->f1)) { macro_f += c->f1; nf++; }
    }
    fprintf(f, "%*s", label_w, "total");
    for (int p = 0; p < k; p++) fprintf(f, "%*lld", w, ev->classes[p].predicted);
    char r[16], pr[16], f1[16];
    fmt_pct(r, sizeof r, nr ? macro_r / nr : NAN);
    fmt_pct(pr, sizeof pr, np ? macro_p / np : NAN);
    if (nf) snprintf(f1, sizeof f1, "%.3f", macro_f / nf);
    else snprintf(f1, sizeof f1, "-");
    fprintf(f, " %s %*lld %8s %9s %6s  (macro average over the classes where defined)\n", bar, w + 1,
            ev->total, r, pr, f1);

    /* The pairs the model mixes up most, then its worst mistakes. */
    pair *pairs = malloc((size_t)k * k * sizeof *pairs);
    int n_pairs = 0;
    for (int t = 0; pairs && t < k; t++)
        for (int p = 0; p < k; p++)
            if (t != p && ev->confusion[(size_t)t * k + p] > 0)
                pairs[n_pairs++] = (pair){t, p, ev->confusion[(size_t)t * k + p]};
    if (n_pairs) {
        qsort(pairs, (size_t)n_pairs, sizeof *pairs, by_count_desc);
        fprintf(f, "\nmost confused (true %s predicted):", utf8 ? "\u2192" : "->");
        for (int i = 0; i < n_pairs && i < 5; i++)
            fprintf(f, "%s %d %s %d (%lld)", i ? "," : "", pairs[i].t, utf8 ? "\u2192" : "->", pairs[i].p,
                    pairs[i].n);
        fputc('\n', f);
    }
    free(pairs);
    if (worst > 0 && ev->n_misclassified > 0) {
        fprintf(f, "\nworst misclassified (lowest probability of the true class; %d in all):\n",
                ev->n_misclassified);
        for (int i = 0; i < ev->n_misclassified && i < worst; i++) {
            const lp_misclassified *m = &ev->misclassified[i];
            fprintf(f, "  image %5d: true %d, predicted %d (p %.4f), p(true) %.2e\n", m->image_index,
                    m->true_label, m->pred_label, m->pred_prob, m->true_prob);
        }
    }
}
