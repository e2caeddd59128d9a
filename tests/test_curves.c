/* SVG learning curves: one polyline per (run, split, metric) with data, split at NaN
 * gaps; every point inside its panel; labels escaped; nothing external; curves loaded
 * from a runs database; an unwritable path leaves no file; nothing to plot is an error. */
#include "checkpoint.h"
#include "curves.h"
#include "runsdb.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

/* A run of n epochs with the given series (NULL: absent), each a copy. */
static lp_curve_run make_run(const char *label, int n, const double *train_loss, const double *test_loss,
                             const double *val_loss, const double *train_acc, const double *test_acc)
{
    lp_curve_run r = {0};
    r.label = strdup(label);
    r.n_epochs = n;
    r.epochs = malloc((size_t)n * sizeof *r.epochs);
    for (int e = 0; e < n; e++) r.epochs[e] = e + 1;
    const double *src[2][LP_CURVE_SPLITS] = {{train_loss, val_loss, test_loss}, {train_acc, NULL, test_acc}};
    for (int m = 0; m < 2; m++)
        for (int s = 0; s < LP_CURVE_SPLITS; s++) {
            if (!src[m][s]) continue;
            double *v = malloc((size_t)n * sizeof *v);
            memcpy(v, src[m][s], (size_t)n * sizeof *v);
            (m ? r.acc : r.loss)[s] = v;
        }
    return r;
}

static char *render(const lp_curve_run *runs, int n, lp_status want)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    lp_error err = {0};
    cr_assert_eq(lp_svg_curves_write(f, runs, n, &err), want, "%s", err.msg);
    fclose(f);
    return buf;
}

/* Every "x,y" pair inside points="..." lies in [x0, x1] x [y0, y1]. */
static void assert_points_inside(const char *svg, double x0, double x1, double y0, double y1)
{
    int pairs = 0;
    for (const char *p = svg; (p = strstr(p, "points=\"")); ) {
        p += 8;
        while (*p && *p != '"') {
            char *end;
            double x = strtod(p, &end);
            cr_assert_eq(*end, ',', "malformed point near '%.20s'", p);
            double y = strtod(end + 1, &end);
            cr_assert(x >= x0 - 1e-6 && x <= x1 + 1e-6 && y >= y0 - 1e-6 && y <= y1 + 1e-6,
                      "point (%g, %g) outside [%g, %g] x [%g, %g]", x, y, x0, x1, y0, y1);
            pairs++;
            p = end;
            while (*p == ' ') p++;
        }
    }
    cr_assert_gt(pairs, 0);
}

Test(curves, one_polyline_per_curve_inside_the_panels)
{
    double tl[4] = {2.3, 1.0, 0.5, 0.3}, sl[4] = {1.9, 0.8, 0.45, 0.35}, ta[4] = {0.3, 0.7, 0.85, 0.9},
           sa[4] = {0.4, 0.75, 0.86, 0.88}, vl[4] = {2.0, 0.9, 0.5, 0.4};
    lp_curve_run runs[2] = {make_run("run 1 a", 4, tl, sl, NULL, ta, sa), make_run("run 2 b", 3, tl, sl, vl, ta, sa)};
    char *svg = render(runs, 2, LP_OK);
    cr_assert(!strncmp(svg, "<?xml version=\"1.0\"", 19));
    cr_assert(strstr(svg, "<svg xmlns=\"http://www.w3.org/2000/svg\""));
    cr_assert(strstr(svg, "</svg>\n"));
    /* run 1: train/test loss + train/test acc = 4; run 2 adds val loss = 5. */
    cr_assert_eq(count(svg, "<polyline"), 9, "%d polylines", count(svg, "<polyline"));
    cr_assert_eq(count(svg, "</polyline>"), 9);
    cr_assert_eq(count(svg, "<title>run 2 b val loss</title>"), 1);
    cr_assert_eq(count(svg, "<circle"), 4 * 4 + 3 * 5);
    /* Self-contained: the namespace is the only URL, no script, no external reference. */
    cr_assert_eq(count(svg, "http"), 1);
    cr_assert_eq(count(svg, "<script"), 0);
    cr_assert_eq(count(svg, "href"), 0);
    /* Panels: x in [70, 470] and [560, 960], y in [40, 300]. */
    assert_points_inside(svg, 70, 960, 40, 300);
    cr_assert(strstr(svg, ">loss</text>") && strstr(svg, ">accuracy</text>") && strstr(svg, ">epoch</text>"));
    cr_assert(strstr(svg, ">100%</text>"), "accuracy ticks in percent");
    free(svg);
    for (int i = 0; i < 2; i++) lp_curve_run_free(&runs[i]);
}

Test(curves, a_nan_splits_the_line_and_labels_are_escaped)
{
    double tl[5] = {2.3, NAN, 0.5, INFINITY, 0.3}, ta[5] = {0.1, 0.2, 0.3, 0.4, 0.5};
    lp_curve_run r = make_run("run 7 <a&b>", 5, tl, NULL, NULL, ta, NULL);
    char *svg = render(&r, 1, LP_OK);
    /* loss: [2.3] [0.5] [0.3] = 3 pieces; acc: 1. */
    cr_assert_eq(count(svg, "<polyline"), 4, "%s", svg);
    cr_assert(strstr(svg, "run 7 &lt;a&amp;b&gt;"));
    cr_assert_eq(count(svg, "<a&b>"), 0);
    assert_points_inside(svg, 70, 960, 40, 300);
    free(svg);
    lp_curve_run_free(&r);
}

Test(curves, the_epoch_axis_is_shared)
{
    /* Run 1 has epochs 1-2, run 2 epochs 1-10: run 1's last point sits at epoch 2 of a
     * 1..10 axis, a ninth of the way along the loss panel (x 70 + 400/9). */
    double a[2] = {1, 0.5}, b[10] = {1, .9, .8, .7, .6, .5, .4, .3, .2, .1};
    lp_curve_run runs[2] = {make_run("one", 2, a, NULL, NULL, NULL, NULL),
                            make_run("two", 10, b, NULL, NULL, NULL, NULL)};
    char *svg = render(runs, 2, LP_OK);
    const char *p = strstr(svg, "points=\"");
    cr_assert_not_null(p);
    double x1, y1, x2, y2;
    cr_assert_eq(sscanf(p + 8, "%lf,%lf %lf,%lf", &x1, &y1, &x2, &y2), 4);
    cr_assert_float_eq(x1, 70.0, 0.01);
    cr_assert_float_eq(x2, 70.0 + 400.0 / 9, 0.01);
    free(svg);
    for (int i = 0; i < 2; i++) lp_curve_run_free(&runs[i]);
}

Test(curves, nothing_to_plot_is_an_error)
{
    lp_curve_run r = {.label = strdup("empty")};
    char *svg = render(&r, 1, LP_ERR_ARG);
    free(svg);
    lp_curve_run_free(&r);
}

static int entries(const char *dir)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

Test(curves, an_unwritable_path_leaves_no_file)
{
    char dir[] = "/tmp/loupe-curves-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    double a[2] = {1, 0.5};
    lp_curve_run r = make_run("x", 2, a, NULL, NULL, NULL, NULL);
    char path[256];
    /* A directory where the file should go: the temporary file is written, the rename fails. */
    snprintf(path, sizeof path, "%s/plot.svg", dir);
    cr_assert_eq(mkdir(path, 0755), 0);
    lp_error err = {0};
    cr_assert_eq(lp_svg_curves(path, &r, 1, &err), LP_ERR_IO);
    cr_assert(strstr(err.msg, "plot.svg") && strstr(err.msg, "rename"), "%s", err.msg);
    cr_assert_eq(entries(dir), 1, "a temporary file was left behind");
    rmdir(path);
    /* A missing directory. */
    snprintf(path, sizeof path, "%s/no/such/plot.svg", dir);
    lp_error_clear(&err);
    cr_assert_eq(lp_svg_curves(path, &r, 1, &err), LP_ERR_IO);
    cr_assert_eq(entries(dir), 0);
    /* And a good path writes the whole document. */
    snprintf(path, sizeof path, "%s/plot.svg", dir);
    lp_error_clear(&err);
    cr_assert_eq(lp_svg_curves(path, &r, 1, &err), LP_OK, "%s", err.msg);
    FILE *f = fopen(path, "r");
    char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    cr_assert(strstr(buf, "</svg>\n"));
    cr_assert_eq(entries(dir), 1);
    unlink(path);
    rmdir(dir);
    lp_curve_run_free(&r);
}

Test(curves, loaded_from_the_runs_database)
{
    char dir[] = "/tmp/loupe-curves-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/runs.db", dir);
    lp_runsdb *db;
    lp_error err = {0};
    cr_assert_eq(lp_runsdb_open(path, &db, &err), LP_OK, "%s", err.msg);
    lp_run_new nr = {.name = "cur<ves", .config_yaml = "name: x\n", .seed = 1, .param_count = 1, .threads = 1};
    int64_t id;
    cr_assert_eq(lp_runsdb_begin_run(db, &nr, &id, &err), LP_OK, "%s", err.msg);
    for (int e = 1; e <= 3; e++) {
        lp_metric m[] = {{"train", "loss", 1.0 / e}, {"train", "acc", 0.5 + 0.1 * e}, {"test", "loss", NAN},
                         {"test", "acc", 0.6 + 0.1 * e}, {"train", "lr", 0.1}};
        cr_assert_eq(lp_runsdb_commit_epoch(db, id, e, 10 * e, m, 5, NULL, 0, false, &err), LP_OK, "%s", err.msg);
    }
    lp_curve_run r;
    cr_assert_eq(lp_curve_run_load(db, id, &r, &err), LP_OK, "%s", err.msg);
    cr_assert_str_eq(r.label, "run 1 cur<ves");
    cr_assert_eq(r.n_epochs, 3);
    cr_assert(r.epochs[0] == 1 && r.epochs[2] == 3);
    cr_assert_float_eq(r.loss[LP_CURVE_TRAIN][1], 0.5, 1e-12);
    cr_assert_float_eq(r.acc[LP_CURVE_TEST][2], 0.9, 1e-12);
    cr_assert(isnan(r.loss[LP_CURVE_TEST][0]));
    cr_assert_null(r.loss[LP_CURVE_VAL]);
    cr_assert_null(r.acc[LP_CURVE_VAL]);
    lp_curve_run_free(&r);
    cr_assert_eq(lp_curve_run_load(db, 42, &r, &err), LP_ERR_ARG);
    cr_assert(strstr(err.msg, "no run 42"), "%s", err.msg);
    lp_runsdb_close(db);
    char p2[300];
    const char *suffix[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        snprintf(p2, sizeof p2, "%s%s", path, suffix[i]);
        unlink(p2);
    }
    rmdir(dir);
}
