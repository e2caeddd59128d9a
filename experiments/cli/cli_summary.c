/* cli_summary.c - `loupe summary A.yaml [B.yaml ...]`: per-layer output shapes and
 * parameter counts, totals, and with several files a side-by-side comparison. */
#include "cli.h"

#include "config.h"
#include "graph.h"
#include "registry.h"
#include "shape.h"

#include <stdio.h>
#include <string.h>

const char *cli_with_commas(long long v, char *buf, size_t size)
{
    char digits[32];
    snprintf(digits, sizeof digits, "%lld", v < 0 ? -v : v);
    size_t len = strlen(digits), o = 0;
    if (v < 0 && o + 1 < size) buf[o++] = '-';
    for (size_t i = 0; i < len && o + 2 < size; i++) {
        if (i && (len - i) % 3 == 0) buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
    return buf;
}

lp_status cli_build_from_config(lp_experiment_config *cfg, lp_graph **g, lp_error *err)
{
    for (int i = 0; i < cfg->n_plugins; i++) {
        lp_error e = {0};
        lp_status s = lp_plugin_load(cfg->plugin_paths[i], &e);
        if (!s) continue;
        /* Say which `plugins:` entry it was (file:line:col), like every config error. */
        int k = cfg->root && cfg->root->kind == LP_VALUE_MAP ? lp_value_find(cfg->root, "plugins") : -1;
        const lp_value *list = k >= 0 ? cfg->root->items[k] : NULL;
        if (list && list->kind == LP_VALUE_LIST && i < list->count)
            return lp_error_at(err, s, list->items[i]->loc, "%s", e.msg);
        return lp_error_set(err, s, "%s", e.msg);
    }
    return lp_graph_build(&cfg->model, g, err);
}

#define MAX_FILES 16

int cli_summary(int argc, char **argv)
{
    cli_common c = {0};
    const char *files[MAX_FILES];
    int n_files = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            printf("usage: loupe summary CONFIG.yaml [CONFIG.yaml ...] [--set k=v]... [--plugin PATH]... [--json]\n\n"
                   "For each config: every layer with its output shape (per image) and\n"
                   "parameter count, and the total. With several configs, their totals side\n"
                   "by side and how many times fewer parameters each has than the largest.\n"
                   "Counts include non-trainable values (batch norm's running mean and variance,\n"
                   "as Keras counts them); a model that has some gets a trainable / non-trainable\n"
                   "split under its total.\n");
            return 0;
        }
        int r = cli_common_option("summary", argc, argv, &i, &c);
        if (r < 0) return 2;
        if (r == 1) continue;
        if (argv[i][0] == '-') return cli_usage_error("summary", "unknown option '%s'", argv[i]);
        if (n_files == MAX_FILES) return cli_usage_error("summary", "at most %d configs", MAX_FILES);
        files[n_files++] = argv[i];
    }
    if (n_files == 0) return cli_usage_error("summary", "give at least one config file");
    lp_error err = {0};
    if (cli_load_plugins(&c, &err)) return cli_fail(&err);

    long long totals[MAX_FILES];
    char names[MAX_FILES][128];
    if (c.json) printf("[");
    for (int f = 0; f < n_files; f++) {
        lp_experiment_config cfg;
        lp_graph *g = NULL;
        lp_status s = lp_config_load(files[f], c.sets, c.n_sets, &cfg, &err);
        if (!s) s = cli_build_from_config(&cfg, &g, &err);
        if (s) {
            lp_config_free(&cfg);
            if (c.json) printf("]\n");
            return cli_fail(&err);
        }
        snprintf(names[f], sizeof names[f], "%s", cfg.name);
        /* Keras's convention: a layer's count and the total include its buffers
         * (batch norm's running statistics), split below into trainable and not. */
        long long frozen = (long long)lp_graph_buffer_floats(g);
        totals[f] = (long long)lp_graph_param_floats(g) + frozen;
        char shape[64], num[32];
        if (c.json) {
            printf("%s{\"config\":\"%s\",\"name\":\"%s\",\"params\":%lld,\"trainable\":%lld,"
                   "\"non_trainable\":%lld,\"layers\":[", f ? "," : "", files[f], cfg.name, totals[f],
                   totals[f] - frozen, frozen);
            for (int i = 1; i < lp_graph_num_nodes(g); i++)
                printf("%s{\"name\":\"%s\",\"op\":\"%s\",\"shape\":\"%s\",\"params\":%lld}", i > 1 ? "," : "",
                       lp_graph_node_name(g, i), lp_graph_node_op(g, i),
                       lp_shape_str(lp_graph_node_shape(g, i), shape, sizeof shape),
                       lp_graph_node_params(g, i) + lp_graph_node_buffers(g, i));
            printf("]}");
        } else {
            printf("%s (%s)\n", cfg.name, files[f]);
            printf("  %-14s %-22s %-16s %10s\n", "layer", "op", "output", "params");
            for (int i = 0; i < lp_graph_num_nodes(g); i++)
                printf("  %-14s %-22s %-16s %10s\n", lp_graph_node_name(g, i), lp_graph_node_op(g, i),
                       lp_shape_str(lp_graph_node_shape(g, i), shape, sizeof shape),
                       cli_with_commas(lp_graph_node_params(g, i) + lp_graph_node_buffers(g, i), num, sizeof num));
            printf("  %-54s %10s\n", "total", cli_with_commas(totals[f], num, sizeof num));
            if (frozen) {
                printf("  %-54s %10s\n", "trainable", cli_with_commas(totals[f] - frozen, num, sizeof num));
                printf("  %-54s %10s\n", "non-trainable (running statistics)", cli_with_commas(frozen, num, sizeof num));
            }
            printf("\n");
        }
        lp_graph_free(g);
        lp_config_free(&cfg);
    }
    if (c.json) {
        printf("]\n");
        return 0;
    }
    if (n_files > 1) {
        long long most = 0;
        for (int f = 0; f < n_files; f++)
            if (totals[f] > most) most = totals[f];
        printf("%-24s %10s  %s\n", "model", "params", "compared with the largest");
        for (int f = 0; f < n_files; f++) {
            char num[32];
            printf("%-24s %10s  ", names[f], cli_with_commas(totals[f], num, sizeof num));
            if (totals[f] == most) printf("(the largest)\n");
            else printf("%.2fx fewer parameters (%.1f%% of it)\n", (double)most / (totals[f] ? totals[f] : 1),
                        100.0 * totals[f] / most);
        }
    }
    return 0;
}
