/* cli_viz_curves.c - `loupe viz curves RUN [RUN...] -o FILE.svg`: learning curves of
 * recorded runs on shared axes (experiments/viz/curves.h draws them). */
#include "cli.h"

#include "curves.h"
#include "runsdb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CURVE_RUNS 32

static void usage(FILE *f)
{
    fprintf(f, "usage: loupe viz curves RUN [RUN...] -o FILE.svg [--db PATH]\n\n"
               "Training, validation and test loss and accuracy per epoch of one or several\n"
               "runs (up to %d), as one SVG: a loss panel and an accuracy panel on shared epoch\n"
               "axes, one colour per run, train dashed, val dotted, test solid, with a legend.\n"
               "The file needs nothing else to show (no script, no external font) and is\n"
               "written to a temporary name and renamed: a failure leaves no partial file.\n\n"
               "options:\n"
               "  -o FILE.svg   where to write it (required)\n"
               "  --db PATH     runs database (default runs.db)\n",
            MAX_CURVE_RUNS);
}

int cli_viz_curves(int argc, char **argv)
{
    cli_common c = {0};
    int64_t ids[MAX_CURVE_RUNS];
    int n = 0;
    const char *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (cli_is_help(s)) {
            usage(stdout);
            return 0;
        }
        int r = cli_common_option("viz curves", argc, argv, &i, &c);
        if (r < 0) return 2;
        if (r == 1) continue;
        long long id;
        if (!strcmp(s, "-o") && i + 1 < argc) out = argv[++i];
        else if (s[0] == '-') return cli_usage_error("viz curves", "unknown option '%s' (or it needs a value)", s);
        else if (!cli_parse_int(s, 1, INT64_MAX, &id))
            return cli_usage_error("viz curves", "run ids are numbers, got '%s'", s);
        else if (n == MAX_CURVE_RUNS)
            return cli_usage_error("viz curves", "at most %d runs in one plot", MAX_CURVE_RUNS);
        else ids[n++] = id;
    }
    if (n == 0) return cli_usage_error("viz curves", "give one or more run ids");
    if (!out) return cli_usage_error("viz curves", "give the output file with -o FILE.svg");

    lp_error err = {0};
    lp_runsdb *db = NULL;
    lp_curve_run runs[MAX_CURVE_RUNS];
    int loaded = 0;
    lp_status s = lp_runsdb_open_readonly(c.db ? c.db : "runs.db", &db, &err);
    while (!s && loaded < n) {
        s = lp_curve_run_load(db, ids[loaded], &runs[loaded], &err);
        if (s) break;   /* a failed load frees what it read */
        if (runs[loaded++].n_epochs == 0)
            s = lp_error_set(&err, LP_ERR_ARG, "run %lld has no epoch recorded yet: nothing to plot",
                             (long long)ids[loaded - 1]);
    }
    if (!s) s = lp_svg_curves(out, runs, n, &err);
    for (int i = 0; i < loaded; i++) lp_curve_run_free(&runs[i]);
    lp_runsdb_close(db);
    if (s) return cli_fail(&err);
    printf("wrote %s (%d run%s)\n", out, n, n == 1 ? "" : "s");
    return 0;
}
