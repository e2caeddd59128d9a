#include "curves.h"

#include "safetensors.h"   /* lp_file_write_atomic */

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const split_names[LP_CURVE_SPLITS] = {"train", "val", "test"};

void lp_curve_run_free(lp_curve_run *r)
{
    if (!r) return;
    free(r->label);
    free(r->epochs);
    for (int s = 0; s < LP_CURVE_SPLITS; s++) {
        free(r->loss[s]);
        free(r->acc[s]);
    }
    memset(r, 0, sizeof *r);
}

/* The series for (split, name) of r, allocated (NaN-filled) on first use. */
static double *series(lp_curve_run *r, int split, bool acc)
{
    double **slot = acc ? &r->acc[split] : &r->loss[split];
    if (!*slot) {
        *slot = malloc((size_t)r->n_epochs * sizeof **slot);
        if (!*slot) return NULL;
        for (int e = 0; e < r->n_epochs; e++) (*slot)[e] = NAN;
    }
    return *slot;
}

lp_status lp_curve_run_load(lp_runsdb *db, int64_t run_id, lp_curve_run *out, lp_error *err)
{
    memset(out, 0, sizeof *out);
    lp_run_details d;
    lp_status s = lp_runsdb_show(db, run_id, &d, err);
    if (s) return s;
    size_t len = strlen(d.run.name) + 32;
    out->label = malloc(len);
    if (out->label) snprintf(out->label, len, "run %lld %s", (long long)run_id, d.run.name);
    lp_run_details_free(&d);
    if (!out->label) return lp_error_set(err, LP_ERR_NOMEM, "out of memory");

    lp_metric_row *m = NULL;
    int n = 0;
    s = lp_runsdb_metrics(db, run_id, &m, &n, err);
    if (s) {
        lp_curve_run_free(out);
        return s;
    }
    for (int i = 0; i < n; i++)
        if (i == 0 || m[i].epoch != m[i - 1].epoch) out->n_epochs++;
    out->epochs = malloc((out->n_epochs ? (size_t)out->n_epochs : 1) * sizeof *out->epochs);
    if (!out->epochs) s = lp_error_set(err, LP_ERR_NOMEM, "out of memory");
    /* Rows come ordered by epoch, step, split, name: a later step of an epoch wins. */
    for (int i = 0, e = -1; !s && i < n; i++) {
        if (i == 0 || m[i].epoch != m[i - 1].epoch) out->epochs[++e] = m[i].epoch;
        bool acc = !strcmp(m[i].name, "acc");
        if (!acc && strcmp(m[i].name, "loss")) continue;
        for (int sp = 0; sp < LP_CURVE_SPLITS; sp++) {
            if (strcmp(m[i].split, split_names[sp])) continue;
            double *v = series(out, sp, acc);
            if (!v) s = lp_error_set(err, LP_ERR_NOMEM, "out of memory");
            else v[e] = m[i].value;
        }
    }
    lp_metric_rows_free(m, n);
    if (s) lp_curve_run_free(out);
    return s;
}

/* ---- drawing ---- */

/* tab10: distinct for the first ten runs, then it repeats. */
static const char *const palette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                      "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
static const char *const dashes[LP_CURVE_SPLITS] = {"6 4", "2 3", ""};

enum { PANEL_W = 400, PANEL_H = 260, LEFT = 70, TOP = 40, GAP = 90, RIGHT = 30,
       WIDTH = LEFT + 2 * PANEL_W + GAP + RIGHT, LEGEND_Y = TOP + PANEL_H + 60 };

typedef struct axis {
    double lo, hi, step;    /* the range drawn and the tick spacing */
} axis;

/* A step of 1, 2 or 5 times a power of ten giving about `ticks` intervals over [lo, hi]. */
static double nice_step(double span, int ticks)
{
    if (!(span > 0)) return 1;
    double raw = span / ticks, mag = pow(10, floor(log10(raw)));
    double f = raw / mag;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

static axis make_axis(double lo, double hi, int ticks, double floor_at, double ceil_at)
{
    if (!(lo <= hi)) {   /* no finite value */
        lo = 0;
        hi = 1;
    }
    if (hi - lo < 1e-12) {
        double pad = fabs(lo) > 0 ? fabs(lo) * 0.05 : 0.5;
        lo -= pad;
        hi += pad;
    }
    axis a;
    a.step = nice_step(hi - lo, ticks);
    a.lo = floor(lo / a.step) * a.step;
    a.hi = ceil(hi / a.step) * a.step;
    if (a.lo < floor_at) a.lo = floor_at;
    if (a.hi > ceil_at) a.hi = ceil_at;
    return a;
}

static double map(const axis *a, double v, double p0, double p1)
{
    return p0 + (v - a->lo) / (a->hi - a->lo) * (p1 - p0);
}

static void xml_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        default:
            /* Control characters are not allowed in XML 1.0. */
            if ((unsigned char)*s < 0x20 && *s != '\t' && *s != '\n') fputc('?', f);
            else fputc(*s, f);
        }
    }
}

/* Format a tick value with as many decimals as the step needs. */
static void tick_label(char *buf, size_t size, double v, double step, bool percent)
{
    if (percent) {
        v *= 100;
        step *= 100;
    }
    int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (dec > 6) dec = 6;
    if (fabs(v) < step * 1e-9) v = 0;
    snprintf(buf, size, "%.*f%s", dec, v, percent ? "%" : "");
}

static void draw_panel(FILE *f, const lp_curve_run *runs, int n, bool acc, int x0, const axis *ax,
                       const char *title)
{
    double lo = INFINITY, hi = -INFINITY;
    for (int r = 0; r < n; r++)
        for (int sp = 0; sp < LP_CURVE_SPLITS; sp++) {
            const double *v = acc ? runs[r].acc[sp] : runs[r].loss[sp];
            for (int e = 0; v && e < runs[r].n_epochs; e++)
                if (isfinite(v[e])) {
                    lo = v[e] < lo ? v[e] : lo;
                    hi = v[e] > hi ? v[e] : hi;
                }
        }
    axis ay = acc ? make_axis(lo, hi, 5, 0, 1) : make_axis(lo, hi, 5, lo >= 0 ? 0 : -INFINITY, INFINITY);
    int y0 = TOP, x1 = x0 + PANEL_W, y1 = TOP + PANEL_H;
    fprintf(f, "<g class=\"panel\">\n<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"15\" "
               "font-weight=\"bold\">%s</text>\n", x0 + PANEL_W / 2, TOP - 14, title);
    /* Grid and ticks. */
    char lab[32];
    for (double t = ay.lo; t <= ay.hi + ay.step * 1e-6; t += ay.step) {
        double y = map(&ay, t, y1, y0);
        tick_label(lab, sizeof lab, t, ay.step, acc);
        fprintf(f, "<line x1=\"%d\" y1=\"%.2f\" x2=\"%d\" y2=\"%.2f\" stroke=\"#e5e5e5\"/>"
                   "<text x=\"%d\" y=\"%.2f\" text-anchor=\"end\" font-size=\"11\">%s</text>\n",
                x0, y, x1, y, x0 - 6, y + 4, lab);
    }
    /* Epoch ticks: the multiples of the step, and the first epoch when it is not one
     * and not too close to the next (1, 2, 4, 6, ... for epochs 1 to 10). */
    double t0 = ceil(ax->lo / ax->step - 1e-9) * ax->step;
    bool first_too = ax->lo == floor(ax->lo) && t0 - ax->lo > ax->step * 0.3;
    for (double t = first_too ? ax->lo : t0; t <= ax->hi + ax->step * 1e-6;
         t = t < t0 ? t0 : t + ax->step) {
        double x = map(ax, t, x0, x1);
        fprintf(f, "<line x1=\"%.2f\" y1=\"%d\" x2=\"%.2f\" y2=\"%d\" stroke=\"#e5e5e5\"/>"
                   "<text x=\"%.2f\" y=\"%d\" text-anchor=\"middle\" font-size=\"11\">%g</text>\n",
                x, y0, x, y1, x, y1 + 16, t);
    }
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#333\"/>\n", x0, y0,
            PANEL_W, PANEL_H);
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"12\">epoch</text>\n", x0 + PANEL_W / 2,
            y1 + 34);
    fprintf(f, "<text transform=\"translate(%d %d) rotate(-90)\" text-anchor=\"middle\" font-size=\"12\">%s</text>\n",
            x0 - 50, y0 + PANEL_H / 2, acc ? "accuracy (%)" : "loss");
    /* One polyline per run and split (split again at every gap); points marked when few. */
    for (int r = 0; r < n; r++)
        for (int sp = 0; sp < LP_CURVE_SPLITS; sp++) {
            const double *v = acc ? runs[r].acc[sp] : runs[r].loss[sp];
            if (!v) continue;
            const char *color = palette[r % (int)(sizeof palette / sizeof palette[0])];
            bool open = false;
            for (int e = 0; e <= runs[r].n_epochs; e++) {
                bool ok = e < runs[r].n_epochs && isfinite(v[e]);
                if (ok && !open) {
                    fprintf(f, "<polyline class=\"curve\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s%s%s "
                               "points=\"", color, *dashes[sp] ? " stroke-dasharray=\"" : "", dashes[sp],
                            *dashes[sp] ? "\"" : "");
                    open = true;
                }
                if (ok)
                    fprintf(f, "%.2f,%.2f ", map(ax, runs[r].epochs[e], x0, x1), map(&ay, v[e], y1, y0));
                if (!ok && open) {
                    fprintf(f, "\"><title>");
                    xml_text(f, runs[r].label);
                    fprintf(f, " %s %s</title></polyline>\n", split_names[sp], acc ? "accuracy" : "loss");
                    open = false;
                }
            }
            if (runs[r].n_epochs <= 40)
                for (int e = 0; e < runs[r].n_epochs; e++)
                    if (isfinite(v[e]))
                        fprintf(f, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"2.5\" fill=\"%s\"/>\n",
                                map(ax, runs[r].epochs[e], x0, x1), map(&ay, v[e], y1, y0), color);
        }
    fputs("</g>\n", f);
}

lp_status lp_svg_curves_write(FILE *f, const lp_curve_run *runs, int n, lp_error *err)
{
    double e_lo = INFINITY, e_hi = -INFINITY;
    bool split_used[LP_CURVE_SPLITS] = {false};
    int drawn = 0;
    for (int r = 0; r < n; r++) {
        if (runs[r].n_epochs == 0) continue;
        drawn++;
        e_lo = runs[r].epochs[0] < e_lo ? runs[r].epochs[0] : e_lo;
        e_hi = runs[r].epochs[runs[r].n_epochs - 1] > e_hi ? runs[r].epochs[runs[r].n_epochs - 1] : e_hi;
        for (int sp = 0; sp < LP_CURVE_SPLITS; sp++) split_used[sp] |= runs[r].loss[sp] || runs[r].acc[sp];
    }
    if (!drawn) return lp_error_set(err, LP_ERR_ARG, "no epoch recorded in %s: nothing to plot",
                                    n == 1 ? "this run" : "these runs");
    /* The epoch axis spans exactly the epochs recorded (half an epoch each side of one). */
    axis ax = {.lo = e_lo, .hi = e_hi, .step = nice_step(e_hi - e_lo, 8)};
    if (ax.step < 1) ax.step = 1;
    if (e_hi == e_lo) {
        ax.lo -= 0.5;
        ax.hi += 0.5;
    }
    int legend_rows = n;
    int height = LEGEND_Y + 22 * legend_rows + 30;
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
               "font-family=\"sans-serif\">\n<title>learning curves: ", WIDTH, height, WIDTH, height);
    for (int r = 0; r < n; r++) {
        if (r) fputs(", ", f);
        xml_text(f, runs[r].label);
    }
    fprintf(f, "</title>\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    draw_panel(f, runs, n, false, LEFT, &ax, "loss");
    draw_panel(f, runs, n, true, LEFT + PANEL_W + GAP, &ax, "accuracy");
    /* Legend: the style of each split, then one line per run in its colour. */
    fprintf(f, "<g class=\"legend\" font-size=\"12\">\n");
    int x = LEFT;
    for (int sp = 0; sp < LP_CURVE_SPLITS; sp++) {
        if (!split_used[sp]) continue;
        fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#333\" stroke-width=\"2\"%s%s%s/>"
                   "<text x=\"%d\" y=\"%d\">%s</text>\n", x, LEGEND_Y - 4, x + 30, LEGEND_Y - 4,
                *dashes[sp] ? " stroke-dasharray=\"" : "", dashes[sp], *dashes[sp] ? "\"" : "", x + 36, LEGEND_Y,
                split_names[sp]);
        x += 100;
    }
    for (int r = 0; r < n; r++) {
        int y = LEGEND_Y + 22 * (r + 1);
        fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"30\" height=\"4\" fill=\"%s\"/><text x=\"%d\" y=\"%d\">",
                LEFT, y - 6, palette[r % (int)(sizeof palette / sizeof palette[0])], LEFT + 36, y);
        xml_text(f, runs[r].label);
        if (runs[r].n_epochs == 0) fputs(" (no epoch yet)", f);
        fputs("</text>\n", f);
    }
    fputs("</g>\n</svg>\n", f);
    return ferror(f) ? lp_error_set(err, LP_ERR_IO, "cannot write the SVG") : LP_OK;
}

lp_status lp_svg_curves(const char *path, const lp_curve_run *runs, int n, lp_error *err)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    if (!f) return lp_error_set(err, LP_ERR_NOMEM, "out of memory for the SVG");
    lp_status s = lp_svg_curves_write(f, runs, n, err);
    if (fclose(f) != 0 && !s) s = lp_error_set(err, LP_ERR_NOMEM, "out of memory for the SVG");
    if (!s) s = lp_file_write_atomic(path, buf, size, err);
    free(buf);
    return s;
}
