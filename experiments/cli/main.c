/* main.c - `loupe`: dispatch to a subcommand. See cli.h for exit codes. */
#include "cli.h"
#include "compute.h"
#include "provenance.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} commands[] = {
    {"train", cli_train, "train a model from an experiment YAML, recording the run"},
    {"sweep", cli_sweep, "train every trial of a config's sweep: as child runs, J at a time"},
    {"eval", cli_eval, "evaluate a trained model on the test set"},
    {"predict", cli_predict, "classify one image (PGM file or test-set index)"},
    {"summary", cli_summary, "layer table and parameter counts of one or more configs"},
    {"runs", cli_runs, "list, show, compare, export or delete recorded runs"},
    {"rerun", cli_rerun, "train a recorded run again and check it reproduces bit for bit"},
    {"export", cli_export, "write a run's weights to a .safetensors file"},
    {"ops", cli_ops, "list every op (built-in and plugins) with its attributes"},
    {"gradcheck", cli_gradcheck, "finite-difference check of an op's backward"},
    {"data", cli_data, "fetch and verify a dataset (mnist)"},
    {"viz", cli_viz, "pictures: filters, feature maps, the tutorial's edge filters, learning curves"},
    {"report", cli_report, "static HTML report of runs: curves, confusion, filters, maps, mistakes"},
    {"bench", cli_bench, "time a training epoch and test-set inference (JSON; make bench)"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: loupe COMMAND [options]   (loupe COMMAND --help for details)\n\n"
               "loupe trains small neural networks declared in YAML and records every run\n"
               "in SQLite.\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\nfirst run:  loupe data mnist && loupe train configs/mnist_two_conv.yaml\n"
               "exit codes: 0 ok, 2 usage/config, 3 data/I/O, 4 database, 5 NaN loss, 130 interrupted\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (cli_is_help(argv[1]) || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("loupe %s (commit %s, %s)\n", lp_loupe_version(), lp_loupe_commit(), lp_compiler());
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) {
            int rc = commands[i].run(argc - 1, argv + 1);
            if (lp_compute_blas_stuck()) {   /* OpenBLAS's exit handler would hang */
                fflush(stdout);
                fflush(stderr);
                _exit(rc);
            }
            return rc;
        }
    fprintf(stderr, "loupe: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
