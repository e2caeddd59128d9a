/* cli_report.c - `loupe report RUN [RUN...] -o DIR`: a static HTML report of runs
 * that opens from the file system with no server, no network and no JavaScript:
 * DIR/index.html compares the runs, DIR/run-N.html shows one (facts, curves, layers,
 * confusion matrix, per-class table, filters, feature maps, worst mistakes, config),
 * DIR/run-N/ holds its pictures.
 *
 * All or nothing: the report is built in a sibling directory DIR.tmp-XXXXXX and
 * renamed to DIR at the end, so a failure leaves no half report; a previous report in
 * DIR (it carries a .loupe-report marker) is replaced, any other non-empty DIR is
 * refused. */
#include "cli_viz.h"

#include "curves.h"
#include "evaluation.h"
#include "runsdb.h"
#include "shape.h"
#include "viz.h"

#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_RUNS 32
#define MARKER ".loupe-report"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: loupe report RUN [RUN...] -o DIR [--maps N] [--worst N]\n"
            "                    [--checkpoint best|last|EPOCH] [--db PATH] [--set k=v]...\n\n"
            "Write a static HTML report of the runs into DIR: index.html compares them\n"
            "(name, status, parameters, best and final accuracy, duration), run-N.html\n"
            "shows one: its facts, learning curves, layers with parameter counts, confusion\n"
            "matrix and per-class precision/recall/F1, learned filters, the feature maps of\n"
            "the first N test images (--maps, default 3), its N worst-misclassified test\n"
            "images (--worst, default 24) and its config as it ran. Pictures are PNG files\n"
            "beside the pages; it opens from the file system (no server, no network).\n"
            "A previous report in DIR is replaced; any other non-empty DIR is refused.\n"
            "--set changes the recorded configs as read here (data.dir=PATH: test images\n"
            "elsewhere).\n"
            "Open DIR/index.html in a browser. docs/pictures.md shows one.\n");
}

typedef struct report_args {
    cli_common c;
    int64_t runs[MAX_RUNS];
    int n_runs;
    const char *out, *checkpoint;
    long long maps, worst;
} report_args;

/* ---- writing HTML ---- */

typedef struct page {
    FILE *f;
    char path[4096];
} page;

static void esc(FILE *f, const char *s)
{
    for (; s && *s; s++) switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
}

/* printf where %s arguments are written as they are: callers escape text with esc(). */
static void out(page *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out(page *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(p->f, fmt, ap);
    va_end(ap);
}

static lp_status page_open(page *p, const char *dir, const char *name, const char *title, lp_error *err)
{
    snprintf(p->path, sizeof p->path, "%s/%s", dir, name);
    p->f = fopen(p->path, "w");
    if (!p->f) return lp_error_set(err, LP_ERR_IO, "%s: cannot create (%s)", p->path, strerror(errno));
    out(p, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
           "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>");
    esc(p->f, title);
    out(p, "</title>\n<link rel=\"icon\" href=\"data:,\">\n<style>\n"
           "body{font:15px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1f2328;"
           "background:#f4f4f1;margin:0}\n"
           "header{background:#1f2937;color:#f9fafb;padding:18px 0}\n"
           "header a{color:#93c5fd}\n"
           ".wrap{max-width:1120px;margin:0 auto;padding:0 24px}\n"
           "h1{margin:0;font-size:24px;font-weight:600}\n"
           "h1 small{font-weight:400;color:#cbd5e1;font-size:16px;margin-left:8px}\n"
           ".sub{color:#cbd5e1;margin-top:4px}\n"
           "section{background:#fff;border-radius:10px;box-shadow:0 1px 3px rgba(0,0,0,.08);"
           "padding:16px 22px;margin:18px 0}\n"
           "h2{font-size:18px;margin:0 0 10px;font-weight:600}\n"
           "p.note{color:#57606a;margin:4px 0 10px;font-size:14px}\n"
           ".facts{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:10px}\n"
           ".fact{background:#f6f8fa;border-radius:8px;padding:8px 12px}\n"
           ".fact b{display:block;font-size:20px;font-weight:600}\n"
           ".fact span{color:#57606a;font-size:13px}\n"
           "table{border-collapse:collapse;font-variant-numeric:tabular-nums}\n"
           "th,td{padding:4px 10px;border-bottom:1px solid #eaeef2;text-align:left}\n"
           "th{font-weight:600;background:#f6f8fa}\n"
           "td.n,th.n{text-align:right}\n"
           "tr:hover td{background:#fafbfc}\n"
           ".cm td{width:44px;height:30px;text-align:center;border:1px solid #fff;padding:2px}\n"
           ".cm th{text-align:center}\n"
           ".status{display:inline-block;border-radius:10px;padding:0 8px;font-size:13px;"
           "background:#e5e7eb;color:#111}\n"
           ".completed{background:#dcfce7;color:#166534}.running{background:#dbeafe;color:#1e40af}\n"
           ".failed,.crashed{background:#fee2e2;color:#991b1b}.interrupted{background:#fef3c7;color:#92400e}\n"
           "img.px{image-rendering:pixelated;image-rendering:crisp-edges;max-width:100%%;height:auto}\n"
           ".gallery{display:flex;flex-wrap:wrap;gap:10px}\n"
           ".gallery figure{margin:0;background:#f6f8fa;border-radius:8px;padding:6px;text-align:center;"
           "font-size:12px;color:#57606a}\n"
           ".gallery figure b{color:#b91c1c}\n"
           ".maps{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}\n"
           "details summary{cursor:pointer;color:#0969da}\n"
           "pre{background:#f6f8fa;border-radius:8px;padding:12px;overflow:auto;max-height:480px;"
           "font-size:13px;line-height:1.4}\n"
           "a{color:#0969da}\n"
           "svg{max-width:100%%;height:auto}\n"
           ".row{display:flex;flex-wrap:wrap;gap:0 18px;align-items:flex-start}\n"
           ".row>section{flex:1 1 420px}\n"
           "footer{color:#57606a;font-size:13px;padding:8px 0 32px}\n"
           "</style></head><body>\n");
    return LP_OK;
}

static lp_status page_close(page *p, lp_error *err)
{
    out(p, "<footer class=\"wrap\">Written by <code>loupe report</code>. Static files: no server, "
           "no network, no scripts.</footer>\n</body></html>\n");
    bool bad = ferror(p->f) != 0;
    if (fclose(p->f) != 0) bad = true;
    p->f = NULL;
    return bad ? lp_error_set(err, LP_ERR_IO, "%s: cannot write (%s)", p->path, strerror(errno)) : LP_OK;
}

static const char *fmt_pct(double v, char *buf, size_t size)
{
    if (isnan(v)) snprintf(buf, size, "-");
    else snprintf(buf, size, "%.2f%%", 100 * v);
    return buf;
}

static const char *fmt_duration(double s, char *buf, size_t size)
{
    if (isnan(s)) snprintf(buf, size, "-");
    else if (s < 60) snprintf(buf, size, "%.1f s", s);
    else if (s < 3600) snprintf(buf, size, "%d min %02d s", (int)s / 60, (int)s % 60);
    else snprintf(buf, size, "%d h %02d min", (int)s / 3600, (int)s % 3600 / 60);
    return buf;
}

/* "2026-12-06T01:56:17.66Z" -> "2026-12-06 01:56" */
static const char *fmt_time(const char *iso, char *buf, size_t size)
{
    snprintf(buf, size, "%.16s", iso ? iso : "-");
    char *t = strchr(buf, 'T');
    if (t) *t = ' ';
    return buf;
}

static void fact(page *p, const char *label, const char *value)
{
    out(p, "<div class=\"fact\"><b>");
    esc(p->f, value && *value ? value : "-");
    out(p, "</b><span>");
    esc(p->f, label);
    out(p, "</span></div>\n");
}

/* ---- one run ---- */

typedef struct run_info {
    lp_run_details d;
    bool have_details;
    lp_metric_row *metrics;
    int n_metrics;
} run_info;

static void run_info_free(run_info *r)
{
    if (r->have_details) lp_run_details_free(&r->d);
    lp_metric_rows_free(r->metrics, r->n_metrics);
    memset(r, 0, sizeof *r);
}

static double metric(const run_info *r, int epoch, const char *split, const char *name)
{
    for (int i = 0; i < r->n_metrics; i++)
        if (r->metrics[i].epoch == epoch && !strcmp(r->metrics[i].split, split) && !strcmp(r->metrics[i].name, name))
            return r->metrics[i].value;
    return NAN;
}

static int last_epoch(const run_info *r)
{
    int e = 0;
    for (int i = 0; i < r->n_metrics; i++)
        if (r->metrics[i].epoch > e) e = r->metrics[i].epoch;
    return e;
}

static void section_facts(page *p, const run_info *r, const cli_model *m)
{
    const lp_run_row *row = &r->d.run;
    char buf[128];
    out(p, "<section><div class=\"facts\">\n");
    fact(p, "best test accuracy", fmt_pct(row->best_test_acc, buf, sizeof buf));
    fact(p, "final test accuracy", fmt_pct(row->final_test_acc, buf, sizeof buf));
    snprintf(buf, sizeof buf, "%d", row->epochs_done);
    fact(p, "epochs done", buf);
    fact(p, "parameters", cli_with_commas(row->param_count, buf, sizeof buf));
    fact(p, "duration", fmt_duration(row->duration_s, buf, sizeof buf));
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)row->seed);
    fact(p, "seed", buf);
    snprintf(buf, sizeof buf, "%d", row->threads);
    fact(p, "threads", buf);
    fact(p, "started", fmt_time(row->started_at, buf, sizeof buf));
    if (m && m->graph) {
        snprintf(buf, sizeof buf, "epoch %d", m->epoch);
        fact(p, "pictures from checkpoint", buf);
    }
    out(p, "</div>\n");
    if (r->d.kind && !strcmp(r->d.kind, "sweep"))
        out(p, "<p class=\"note\">This run is a sweep: it trains nothing itself, its trials are runs of their own "
               "(<code>loupe runs compare --sweep %lld</code> ranks them; give their ids to this report to see "
               "them).</p>\n", (long long)row->id);
    if (r->d.parent_run_id)
        out(p, "<p class=\"note\">Trial %d of sweep run %lld.</p>\n", r->d.sweep_trial, (long long)r->d.parent_run_id);
    if (r->d.stop_reason) {
        out(p, "<p class=\"note\">Stopped: ");
        esc(p->f, r->d.stop_reason);
        out(p, "</p>\n");
    }
    if (row->error) {
        out(p, "<p class=\"note\">Error: ");
        esc(p->f, row->error);
        out(p, "</p>\n");
    }
    out(p, "<p class=\"note\">Host ");
    esc(p->f, row->host);
    out(p, ", loupe ");
    esc(p->f, r->d.loupe_version ? r->d.loupe_version : "?");
    out(p, " (commit ");
    esc(p->f, r->d.loupe_commit ? r->d.loupe_commit : "?");
    out(p, "), data ");
    esc(p->f, r->d.data_shape ? r->d.data_shape : "?");
    if (r->d.data_train_count > 0)
        out(p, ", %lld training and %lld test images", r->d.data_train_count, r->d.data_test_count);
    out(p, ".</p></section>\n");
}

static void cell_num(page *p, double v, const char *fmt)
{
    if (isnan(v)) out(p, "<td class=\"n\">-</td>");
    else {
        out(p, "<td class=\"n\">");
        out(p, fmt, v);
        out(p, "</td>");
    }
}

static void section_epochs(page *p, const run_info *r)
{
    int last = last_epoch(r);
    out(p, "<section><h2>Epochs</h2>\n");
    if (!last) {
        out(p, "<p class=\"note\">No epoch recorded yet.</p></section>\n");
        return;
    }
    out(p, "<table><tr><th class=\"n\">epoch</th><th class=\"n\">train loss</th><th class=\"n\">train acc</th>"
           "<th class=\"n\">test loss</th><th class=\"n\">test acc</th><th class=\"n\">learning rate</th>"
           "<th class=\"n\">seconds</th></tr>\n");
    for (int e = 1; e <= last; e++) {
        out(p, "<tr><td class=\"n\">%d</td>", e);
        cell_num(p, metric(r, e, "train", "loss"), "%.4f");
        cell_num(p, 100 * metric(r, e, "train", "acc"), "%.2f%%");
        cell_num(p, metric(r, e, "test", "loss"), "%.4f");
        cell_num(p, 100 * metric(r, e, "test", "acc"), "%.2f%%");
        cell_num(p, metric(r, e, "train", "lr"), "%.4g");
        cell_num(p, metric(r, e, "train", "seconds"), "%.1f");
        out(p, "</tr>\n");
    }
    out(p, "</table></section>\n");
}

static void section_layers(page *p, const cli_model *m)
{
    const lp_graph *g = m->graph;
    char shape[64], num[32];
    out(p, "<section><h2>Layers</h2>\n<table><tr><th>layer</th><th>op</th><th>output (per image)</th>"
           "<th class=\"n\">parameters</th></tr>\n");
    for (int i = 0; i < lp_graph_num_nodes(g); i++) {
        out(p, "<tr><td>");
        esc(p->f, lp_graph_node_name(g, i));
        out(p, "</td><td>");
        esc(p->f, lp_graph_node_op(g, i));
        out(p, "</td><td>");
        esc(p->f, lp_shape_str(lp_graph_node_shape(g, i), shape, sizeof shape));
        /* as `loupe summary` counts them: parameters and buffers (running statistics) */
        out(p, "</td><td class=\"n\">%s</td></tr>\n",
            cli_with_commas(lp_graph_node_params(g, i) + lp_graph_node_buffers(g, i), num, sizeof num));
    }
    long long frozen = (long long)lp_graph_buffer_floats(g), total = (long long)lp_graph_param_floats(g) + frozen;
    out(p, "<tr><th colspan=\"3\">total</th><th class=\"n\">%s</th></tr>\n", cli_with_commas(total, num, sizeof num));
    if (frozen) {
        out(p, "<tr><td colspan=\"3\">trainable</td><td class=\"n\">%s</td></tr>\n",
            cli_with_commas(total - frozen, num, sizeof num));
        out(p, "<tr><td colspan=\"3\">non-trainable (running statistics)</td><td class=\"n\">%s</td></tr>\n",
            cli_with_commas(frozen, num, sizeof num));
    }
    out(p, "</table></section>\n");
}

static lp_status write_png(const char *dir, const char *name, lp_image *img, lp_error *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    lp_status s = lp_png_write(path, img, err);
    return s;
}

static lp_status section_filters(page *p, const char *root, int64_t id, const cli_model *m, lp_error *err)
{
    lp_image img;
    lp_error e = {0};
    out(p, "<section id=\"filters\"><h2>Learned filters</h2>\n");
    if (lp_viz_filters(m->graph, NULL, &img, &e)) {   /* a dense model: nothing to draw */
        out(p, "<p class=\"note\">");
        esc(p->f, e.msg);
        out(p, "</p></section>\n");
        return LP_OK;
    }
    char name[96];
    snprintf(name, sizeof name, "run-%lld/filters.png", (long long)id);
    lp_status s = write_png(root, name, &img, err);
    out(p, "<p class=\"note\">Each square is one 3x3 (or k x k) kernel: one per filter and input channel, "
           "labelled filter.channel when a layer has several input channels. Diverging scale shared by "
           "the layer: white 0, red positive, blue negative weights. Same as "
           "<code>loupe viz filters --run %lld</code>.</p>\n", (long long)id);
    out(p, "<img class=\"px\" src=\"%s\" width=\"%d\" height=\"%d\" alt=\"learned filters\"></section>\n", name,
        img.w, img.h);
    lp_image_free(&img);
    return s;
}

static lp_status section_maps(page *p, const char *root, int64_t id, cli_model *m, const lp_dataset *test,
                              int n_images, lp_error *err)
{
    out(p, "<section id=\"maps\"><h2>Feature maps</h2>\n<p class=\"note\">What each layer makes of a test image: "
           "every channel of every conv, ReLU and pooling layer, each scaled to its own range "
           "(grey from black at 0; signed conv outputs white at 0, red positive, blue negative). Same as "
           "<code>loupe viz maps --run %lld --index I</code>.</p>\n<div class=\"maps\">\n", (long long)id);
    lp_status s = LP_OK;
    for (int i = 0; !s && i < n_images && i < test->n; i++) {
        lp_image img;
        lp_error e = {0};
        int pred;
        double prob;
        if (cli_viz_maps_of(m, test, i, NULL, &img, &pred, &prob, &e)) {
            out(p, "<p class=\"note\">");
            esc(p->f, e.msg);
            out(p, "</p>\n");
            break;
        }
        char name[96];
        snprintf(name, sizeof name, "run-%lld/maps-%d.png", (long long)id, i);
        s = write_png(root, name, &img, err);
        out(p, "<details%s><summary>test image %d: label %d, predicted %d (p %.2f)</summary>\n"
               "<img class=\"px\" src=\"%s\" width=\"%d\" height=\"%d\" alt=\"feature maps of test image %d\">"
               "</details>\n",
            i == 0 ? " open" : "", i, test->labels[i], pred, prob, name, img.w, img.h, i);
        lp_image_free(&img);
    }
    out(p, "</div></section>\n");
    return s;
}

/* Learning curves of runs[n] as an SVG file beside the pages (viz/curves.h), shown
 * as an image. Nothing when no run has an epoch. */
static lp_status curves_figure(page *p, lp_runsdb *db, const char *root, const char *name, const int64_t *ids,
                               int n, lp_error *err)
{
    lp_curve_run runs[MAX_RUNS];
    int loaded = 0, with_epochs = 0;
    lp_status s = LP_OK;
    for (; !s && loaded < n; loaded++) {
        s = lp_curve_run_load(db, ids[loaded], &runs[loaded], err);
        if (s) break;
        with_epochs += runs[loaded].n_epochs > 0;
    }
    if (!s && with_epochs) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", root, name);
        s = lp_svg_curves(path, runs, loaded, err);
        if (!s)
            out(p, "<img src=\"%s\" alt=\"loss and accuracy per epoch\" style=\"width:100%%;max-width:980px\">\n",
                name);
    } else if (!s)
        out(p, "<p class=\"note\">No epoch recorded yet: no curves.</p>\n");
    for (int i = 0; i < loaded; i++) lp_curve_run_free(&runs[i]);
    return s;
}

static lp_status section_curves(page *p, lp_runsdb *db, const char *root, int64_t id, lp_error *err)
{
    char name[96];
    snprintf(name, sizeof name, "run-%lld/curves.svg", (long long)id);
    out(p, "<section id=\"curves\"><h2>Learning curves</h2>\n<p class=\"note\">Loss (left) and accuracy (right) per epoch: "
           "training dashed, test solid. Same as <code>loupe viz curves %lld -o curves.svg</code>.</p>\n",
        (long long)id);
    lp_status s = curves_figure(p, db, root, name, &id, 1, err);
    out(p, "</section>\n");
    return s;
}

/* Background of a confusion cell: the share of its row, green on the diagonal (right),
 * red off it (wrong; scaled to the largest mistake so the few stand out). */
static void heat(page *p, long long count, long long row, long long worst, bool diagonal)
{
    double t = diagonal ? (row ? (double)count / row : 0) : (worst ? (double)count / worst : 0);
    int r, g, b;
    if (diagonal) r = (int)(255 - t * (255 - 22)), g = (int)(255 - t * (255 - 128)), b = (int)(255 - t * (255 - 61));
    else r = (int)(255 - t * (255 - 200)), g = (int)(255 - t * (255 - 30)), b = (int)(255 - t * (255 - 45));
    const char *ink = t > 0.55 ? "#fff" : count ? "#1f2328" : "#c0c4c8";
    out(p, "<td style=\"background:rgb(%d,%d,%d);color:%s\" title=\"%lld\">%lld</td>", r, g, b, ink, count, count);
}

/* The confusion matrix and per-class table of run id at `epoch` (0: the last), or a
 * note when the run has none (trained before loupe recorded them, or no epoch yet). */
static lp_status section_evaluation(page *p, lp_runsdb *db, int64_t id, int epoch, lp_evaluation *ev,
                                    lp_error *err)
{
    lp_error e = {0};
    lp_status s = lp_runsdb_read_evaluation(db, id, epoch, "test", ev, &e);
    if (s && epoch) {   /* no evaluation at the checkpoint's epoch: the last one */
        lp_error_clear(&e);
        s = lp_runsdb_read_evaluation(db, id, 0, "test", ev, &e);
    }
    if (s == LP_ERR_ARG) {
        out(p, "<section><h2>Confusion matrix</h2><p class=\"note\">");
        esc(p->f, e.msg);
        out(p, "</p></section>\n");
        return LP_OK;
    }
    if (s) return lp_error_set(err, s, "%s", e.msg);
    int k = ev->n_classes;
    long long worst = 0;
    for (int t = 0; t < k; t++)
        for (int q = 0; q < k; q++)
            if (t != q && ev->confusion[t * k + q] > worst) worst = ev->confusion[t * k + q];
    out(p, "<div class=\"row\"><section id=\"confusion\"><h2>Confusion matrix</h2>\n<p class=\"note\">Test images after epoch %d: "
           "row = true class, column = predicted. %lld of %lld right (%.2f%%); green shows the share of its row, "
           "red the mistakes (the darkest is the most common, %lld images).</p>\n"
           "<table class=\"cm\"><tr><th style=\"white-space:nowrap\">true \\ pred</th>",
        ev->epoch, ev->correct, ev->total, ev->total ? 100.0 * ev->correct / ev->total : 0.0, worst);
    for (int q = 0; q < k; q++) out(p, "<th>%d</th>", q);
    out(p, "<th class=\"n\">images</th></tr>\n");
    for (int t = 0; t < k; t++) {
        out(p, "<tr><th>%d</th>", t);
        for (int q = 0; q < k; q++) heat(p, ev->confusion[t * k + q], ev->classes[t].support, worst, t == q);
        out(p, "<td class=\"n\" style=\"width:auto\">%lld</td></tr>\n", ev->classes[t].support);
    }
    out(p, "</table></section>\n<section><h2>Per class</h2>\n<table><tr><th>class</th><th class=\"n\">images</th>"
           "<th class=\"n\">predicted</th><th class=\"n\">precision</th><th class=\"n\">recall</th>"
           "<th class=\"n\">F1</th></tr>\n");
    for (int c = 0; c < k; c++) {
        const lp_class_metrics *m = &ev->classes[c];
        out(p, "<tr><td>%d</td><td class=\"n\">%lld</td><td class=\"n\">%lld</td>", m->cls, m->support, m->predicted);
        cell_num(p, 100 * m->precision, "%.2f%%");
        cell_num(p, 100 * m->recall, "%.2f%%");
        if (isnan(m->f1)) out(p, "<td class=\"n\">-</td>");
        else
            out(p, "<td class=\"n\" style=\"background:linear-gradient(90deg,#dbeafe %.1f%%,transparent %.1f%%)\">"
                   "%.4f</td>", 100 * m->f1, 100 * m->f1, m->f1);
        out(p, "</tr>\n");
    }
    out(p, "</table><p class=\"note\">Precision: of the images predicted as the class, the share that are; "
           "recall: of the class's images, the share found; F1 their harmonic mean.</p></section></div>\n");
    return LP_OK;
}

/* The worst-misclassified test images (lowest probability of their true class), each
 * a PNG from the test set's pixels with its labels. */
static lp_status section_mistakes(page *p, const char *root, int64_t id, const lp_evaluation *ev,
                                  const lp_dataset *test, int worst, lp_error *err)
{
    if (!ev->n_classes || worst <= 0) return LP_OK;
    out(p, "<section id=\"mistakes\"><h2>Worst mistakes</h2>\n<p class=\"note\">");
    if (!ev->n_misclassified) {
        out(p, "No test image misclassified after epoch %d.</p></section>\n", ev->epoch);
        return LP_OK;
    }
    int n = ev->n_misclassified < worst ? ev->n_misclassified : worst;
    out(p, "The %d test images (of %d misclassified after epoch %d) to which the model gave the lowest "
           "probability of their true class: test-set index, true label &rarr; predicted, and the probabilities "
           "of both.</p>\n<div class=\"gallery\">\n", n, ev->n_misclassified, ev->epoch);
    lp_status s = LP_OK;
    for (int i = 0; !s && i < n; i++) {
        const lp_misclassified *w = &ev->misclassified[i];
        if (w->image_index < 0 || w->image_index >= test->n) continue;   /* recorded with another test set */
        lp_image img;
        size_t per = (size_t)test->c * test->h * test->w;
        s = lp_viz_upscale(test->pixels + per * w->image_index, test->c, test->h, test->w, 3, &img, err);
        char name[96];
        snprintf(name, sizeof name, "run-%lld/wrong-%d.png", (long long)id, w->image_index);
        if (!s) s = write_png(root, name, &img, err);
        if (!s)
            out(p, "<figure><img class=\"px\" src=\"%s\" width=\"%d\" height=\"%d\" alt=\"test image %d\">"
                   "<figcaption>#%d: %d &rarr; <b>%d</b><br>p %.2f (true %.2f)</figcaption></figure>\n",
                name, img.w, img.h, w->image_index, w->image_index, w->true_label, w->pred_label, w->pred_prob,
                w->true_prob);
        lp_image_free(&img);
    }
    out(p, "</div></section>\n");
    return s;
}

static void section_config(page *p, const run_info *r)
{
    out(p, "<section id=\"config\"><h2>Config, as it ran</h2>\n<pre>");
    esc(p->f, r->d.config_yaml);
    out(p, "</pre></section>\n");
}

/* Write run-N.html and run-N/. *m is loaded here (NULL graph when there is no
 * checkpoint yet); the caller frees it. */
static lp_status write_run(const report_args *a, lp_runsdb *db, const char *root, run_info *r, lp_error *err)
{
    int64_t id = r->d.run.id;
    char name[96], title[256];
    snprintf(name, sizeof name, "%s/run-%lld", root, (long long)id);
    if (mkdir(name, 0755) != 0) return lp_error_set(err, LP_ERR_IO, "%s: cannot create (%s)", name, strerror(errno));
    cli_model m = {0};
    lp_dataset test = {0};
    lp_status s = LP_OK;
    if (r->d.n_checkpoints > 0) {
        s = cli_viz_load(&a->c, id, a->checkpoint, &m, err);
        if (!s) s = cli_load_data(&m.cfg, NULL, &test, err);
    }
    page p = {0};
    snprintf(name, sizeof name, "run-%lld.html", (long long)id);
    snprintf(title, sizeof title, "run %lld: %s", (long long)id, r->d.run.name);
    if (!s) s = page_open(&p, root, name, title, err);
    if (s) {
        lp_dataset_free(&test);
        cli_free_model(&m);
        return s;
    }
    out(&p, "<header><div class=\"wrap\"><h1>Run %lld: ", (long long)id);
    esc(p.f, r->d.run.name);
    out(&p, " <span class=\"status %s\">", r->d.run.status);
    esc(p.f, r->d.run.status);
    out(&p, "</span></h1><div class=\"sub\">");
    if (m.cfg_loaded && m.cfg.description) esc(p.f, m.cfg.description);
    out(&p, " &middot; <a href=\"index.html\">all runs in this report</a></div></div></header>\n"
            "<main class=\"wrap\">\n");
    section_facts(&p, r, m.graph ? &m : NULL);
    lp_evaluation ev = {0};
    s = section_curves(&p, db, root, id, err);
    if (!s) s = section_evaluation(&p, db, id, m.graph ? m.epoch : 0, &ev, err);
    if (!s && m.graph) s = section_mistakes(&p, root, id, &ev, &test, (int)a->worst, err);
    out(&p, "<div class=\"row\">\n");
    section_epochs(&p, r);
    if (m.graph) section_layers(&p, &m);
    out(&p, "</div>\n");
    if (!s && m.graph) {
        s = section_filters(&p, root, id, &m, err);
        if (!s) s = section_maps(&p, root, id, &m, &test, (int)a->maps, err);
    } else if (!s)
        out(&p, "<section><p class=\"note\">No checkpoint recorded yet: no layers, filters or feature maps."
                "</p></section>\n");
    section_config(&p, r);
    out(&p, "</main>\n");
    lp_status c = page_close(&p, err);
    lp_evaluation_free(&ev);
    lp_dataset_free(&test);
    cli_free_model(&m);
    return s ? s : c;
}

/* ---- index ---- */

/* The settings in which the runs differ (train.optimizer.lr, model.layers.0.filters...). */
static lp_status section_differences(page *p, lp_runsdb *db, const run_info *runs, int n, lp_error *err)
{
    int64_t ids[MAX_RUNS];
    for (int i = 0; i < n; i++) ids[i] = runs[i].d.run.id;
    lp_param_cmp_row *rows = NULL;
    int n_rows = 0, shown = 0, model_rows = 0;
    lp_status s = lp_runsdb_compare_params(db, ids, n, &rows, &n_rows, err);
    if (s) return s;
    out(p, "<section><h2>Settings that differ</h2>\n");
    for (int r = 0; r < n_rows; r++) {
        if (!rows[r].differs || !strncmp(rows[r].key, "config.", 7)) continue;
        if (!strncmp(rows[r].key, "model.", 6)) {   /* the layer tables say it better */
            model_rows++;
            continue;
        }
        if (!shown++) {
            out(p, "<table><tr><th>setting</th>");
            for (int i = 0; i < n; i++) out(p, "<th>run %lld</th>", (long long)ids[i]);
            out(p, "</tr>\n");
        }
        out(p, "<tr><td>");
        esc(p->f, rows[r].key);
        out(p, "</td>");
        for (int i = 0; i < n; i++) {
            out(p, "<td>");
            esc(p->f, rows[r].values[i] ? rows[r].values[i] : "-");
            out(p, "</td>");
        }
        out(p, "</tr>\n");
    }
    if (shown) out(p, "</table>");
    if (model_rows)
        out(p, "<p class=\"note\">Their models differ in %d setting%s: see each run's layer table.</p>", model_rows,
            model_rows == 1 ? "" : "s");
    else if (!shown) out(p, "<p class=\"note\">None: the runs share every setting.</p>");
    out(p, "</section>\n");
    lp_param_cmp_rows_free(rows, n_rows, n);
    return LP_OK;
}

static lp_status write_index(lp_runsdb *db, const char *root, run_info *runs, int n, lp_error *err)
{
    page p = {0};
    lp_status s = page_open(&p, root, "index.html", "loupe report", err);
    if (s) return s;
    out(&p, "<header><div class=\"wrap\"><h1>loupe report<small>%d run%s</small></h1></div></header>\n"
            "<main class=\"wrap\">\n<section><h2>Runs</h2>\n"
            "<table><tr><th>run</th><th>name</th><th>status</th><th class=\"n\">parameters</th>"
            "<th class=\"n\">best test acc</th><th class=\"n\">final test acc</th><th class=\"n\">epochs</th>"
            "<th class=\"n\">duration</th><th>started</th></tr>\n",
        n, n == 1 ? "" : "s");
    for (int i = 0; i < n; i++) {
        const lp_run_row *row = &runs[i].d.run;
        char num[32], best[32], fin[32], dur[32];
        out(&p, "<tr><td><a href=\"run-%lld.html\">%lld</a></td><td><a href=\"run-%lld.html\">", (long long)row->id,
            (long long)row->id, (long long)row->id);
        esc(p.f, row->name);
        out(&p, "</a></td><td><span class=\"status %s\">%s</span></td><td class=\"n\">%s</td><td class=\"n\">%s</td>"
                "<td class=\"n\">%s</td><td class=\"n\">%d</td><td class=\"n\">%s</td><td>",
            row->status, row->status, cli_with_commas(row->param_count, num, sizeof num),
            fmt_pct(row->best_test_acc, best, sizeof best), fmt_pct(row->final_test_acc, fin, sizeof fin),
            row->epochs_done, fmt_duration(row->duration_s, dur, sizeof dur));
        esc(p.f, fmt_time(row->started_at, dur, sizeof dur));
        out(&p, "</td></tr>\n");
    }
    out(&p, "</table></section>\n<section><h2>Learning curves</h2>\n<p class=\"note\">Every run on shared "
            "axes: loss (left) and accuracy (right) per epoch, one colour a run, training dashed, test solid.</p>\n");
    int64_t ids[MAX_RUNS];
    for (int i = 0; i < n; i++) ids[i] = runs[i].d.run.id;
    s = curves_figure(&p, db, root, "curves.svg", ids, n, err);
    out(&p, "</section>\n");
    if (!s && n > 1) s = section_differences(&p, db, runs, n, err);
    out(&p, "</main>\n");
    lp_status c = page_close(&p, err);
    return s ? s : c;
}

/* ---- the directory, all or nothing ---- */

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void remove_tree(const char *path) { nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS); }

static bool is_report(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, MARKER);
    return access(path, F_OK) == 0;
}

/* Move the finished tmp directory to dir: onto nothing or an empty directory by one
 * rename; over a previous report by moving that aside first, then deleting it. */
static lp_status install(const char *tmp, const char *dir, lp_error *err)
{
    if (rename(tmp, dir) == 0) return LP_OK;
    if (errno != ENOTEMPTY && errno != EEXIST)
        return lp_error_set(err, errno == ENOTDIR ? LP_ERR_ARG : LP_ERR_IO, "%s: cannot write the report there (%s)",
                            dir, strerror(errno));
    if (!is_report(dir))
        return lp_error_set(err, LP_ERR_ARG,
                            "%s exists and is not a loupe report: not writing over it (give another -o DIR, "
                            "or empty it)", dir);
    char old[4096];
    snprintf(old, sizeof old, "%s.old-XXXXXX", dir);
    if (!mkdtemp(old) || rename(dir, old) != 0)
        return lp_error_set(err, LP_ERR_IO, "%s: cannot move the previous report aside (%s)", dir, strerror(errno));
    if (rename(tmp, dir) != 0) {
        int e = errno;
        rename(old, dir);   /* put the previous report back */
        return lp_error_set(err, LP_ERR_IO, "%s: cannot write the report there (%s)", dir, strerror(e));
    }
    remove_tree(old);
    return LP_OK;
}

static int parse(int argc, char **argv, report_args *a)
{
    memset(a, 0, sizeof *a);
    a->checkpoint = "best";
    a->maps = 3;
    a->worst = 24;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (cli_is_help(s)) {
            usage(stdout);
            return -1;
        }
        int r = cli_common_option("report", argc, argv, &i, &a->c);
        if (r < 0) return 2;
        if (r == 1) continue;
        if (s[0] != '-') {
            long long id;
            if (!cli_parse_int(s, 1, INT64_MAX, &id)) return cli_usage_error("report", "expected a run id, got '%s'", s);
            if (a->n_runs == MAX_RUNS) return cli_usage_error("report", "at most %d runs in one report", MAX_RUNS);
            for (int k = 0; k < a->n_runs; k++)
                if (a->runs[k] == id) return cli_usage_error("report", "run %lld is given twice", id);
            a->runs[a->n_runs++] = id;
            continue;
        }
        if (i + 1 >= argc) return cli_usage_error("report", "unknown option '%s' (or it needs a value)", s);
        const char *v = argv[++i];
        if (!strcmp(s, "-o")) a->out = v;
        else if (!strcmp(s, "--checkpoint")) a->checkpoint = v;
        else if (!strcmp(s, "--maps")) {
            if (!cli_parse_int(v, 0, 20, &a->maps)) return cli_usage_error("report", "--maps expects 0 to 20, got '%s'", v);
        } else if (!strcmp(s, "--worst")) {
            if (!cli_parse_int(v, 0, 200, &a->worst))
                return cli_usage_error("report", "--worst expects 0 to 200, got '%s'", v);
        } else return cli_usage_error("report", "unknown option '%s'", s);
    }
    if (!a->n_runs) return cli_usage_error("report", "give at least one run id");
    if (!a->out || !*a->out) return cli_usage_error("report", "give the output directory with -o DIR");
    return 0;
}

int cli_report(int argc, char **argv)
{
    report_args a;
    int rc = parse(argc, argv, &a);
    if (rc) return rc < 0 ? 0 : rc;
    /* "report/" and "report" are the same directory; the temp one is its sibling. */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", a.out);
    for (size_t n = strlen(dir); n > 1 && dir[n - 1] == '/'; n--) dir[n - 1] = '\0';

    lp_error err = {0};
    lp_runsdb *db = NULL;
    run_info runs[MAX_RUNS];
    memset(runs, 0, sizeof runs);
    /* Every run is read before anything is written: an unknown run writes nothing. */
    lp_status s = lp_runsdb_open_readonly(a.c.db ? a.c.db : "runs.db", &db, &err);
    for (int i = 0; !s && i < a.n_runs; i++) {
        s = lp_runsdb_show(db, a.runs[i], &runs[i].d, &err);
        runs[i].have_details = s == LP_OK;
        if (!s) s = lp_runsdb_metrics(db, a.runs[i], &runs[i].metrics, &runs[i].n_metrics, &err);
    }
    char tmp[4200] = "";
    if (!s) {
        snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", dir);
        if (!mkdtemp(tmp)) {
            s = lp_error_set(&err, LP_ERR_IO, "%s: cannot create the report directory (%s)", dir, strerror(errno));
            tmp[0] = '\0';
        } else
            chmod(tmp, 0755);   /* mkdtemp makes 0700 */
    }
    for (int i = 0; !s && i < a.n_runs; i++) s = write_run(&a, db, tmp, &runs[i], &err);
    if (!s) s = write_index(db, tmp, runs, a.n_runs, &err);
    if (!s) {
        char marker[4300];
        snprintf(marker, sizeof marker, "%s/%s", tmp, MARKER);
        FILE *f = fopen(marker, "w");
        bool ok = f && fputs("written by loupe report; a new report may replace this directory\n", f) >= 0;
        if (f && fclose(f) != 0) ok = false;
        if (!ok) s = lp_error_set(&err, LP_ERR_IO, "%s: cannot write (%s)", marker, strerror(errno));
    }
    if (!s) s = install(tmp, dir, &err);
    if (s && tmp[0]) remove_tree(tmp);
    for (int i = 0; i < a.n_runs; i++) run_info_free(&runs[i]);
    lp_runsdb_close(db);
    if (s) return cli_fail(&err);
    printf("wrote %s/index.html (%d run%s): open it in a browser\n", dir, a.n_runs, a.n_runs == 1 ? "" : "s");
    return 0;
}
