/* test_fuzz_corpus.c - replay every committed fuzz input (tests/fuzz/corpus/<target>/)
 * through the same harness code libFuzzer runs (tests/fuzz/fuzz_<target>.c),
 * compiled here with gcc (and with ASan/UBSan under `make check`), so an input that
 * once crashed loupe stays a regression test without clang or libFuzzer.
 *
 * Each harness is included with LP_FUZZ_ENTRY renamed; a harness aborts on a broken
 * invariant and the sanitizers on a memory error, which Criterion reports as a crash
 * naming the test (one per target). Run from the repository root.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LP_FUZZ_ENTRY fuzz_config_one
#include "fuzz/fuzz_config.c"
#undef LP_FUZZ_ENTRY
#define LP_FUZZ_ENTRY fuzz_idx_one
#include "fuzz/fuzz_idx.c"
#undef LP_FUZZ_ENTRY
#define LP_FUZZ_ENTRY fuzz_checkpoint_one
#include "fuzz/fuzz_checkpoint.c"
#undef LP_FUZZ_ENTRY
#define LP_FUZZ_ENTRY fuzz_safetensors_one
#include "fuzz/fuzz_safetensors.c"
#undef LP_FUZZ_ENTRY
#define LP_FUZZ_ENTRY fuzz_runsdb_one
#include "fuzz/fuzz_runsdb.c"
#undef LP_FUZZ_ENTRY

typedef int (*fuzz_fn)(const uint8_t *, size_t);

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Run fn on every file of dir (sorted, so a failure is reproducible); returns the count. */
static int replay(const char *dir, fuzz_fn fn)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "no corpus directory %s (run from the repository root)", dir);
    char **names = NULL;
    int n = 0, cap = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) names = realloc(names, (size_t)(cap = cap ? 2 * cap : 64) * sizeof *names);
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, by_name);
    for (int i = 0; i < n; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        FILE *f = fopen(path, "rb");
        cr_assert_not_null(f, "%s", path);
        fseek(f, 0, SEEK_END);
        long size = ftell(f);
        rewind(f);
        /* an exact-size heap copy, so ASan sees any read past the input */
        uint8_t *buf = malloc(size > 0 ? (size_t)size : 1);
        cr_assert_eq(fread(buf, 1, (size_t)size, f), (size_t)size);
        fclose(f);
        fn(buf, (size_t)size);
        free(buf);
        free(names[i]);
    }
    free(names);
    return n;
}

Test(fuzz_corpus, config, .timeout = 300)
{
    int n = replay("tests/fuzz/corpus/config", fuzz_config_one);
    cr_assert_geq(n, 5, "only %d inputs", n);
}

Test(fuzz_corpus, idx, .timeout = 120)
{
    int n = replay("tests/fuzz/corpus/idx", fuzz_idx_one);
    cr_assert_geq(n, 4, "only %d inputs", n);
}

Test(fuzz_corpus, checkpoint, .timeout = 120)
{
    int n = replay("tests/fuzz/corpus/checkpoint", fuzz_checkpoint_one);
    cr_assert_geq(n, 3, "only %d inputs", n);
}

Test(fuzz_corpus, safetensors, .timeout = 120)
{
    int n = replay("tests/fuzz/corpus/safetensors", fuzz_safetensors_one);
    cr_assert_geq(n, 2, "only %d inputs", n);
}

Test(fuzz_corpus, runsdb, .timeout = 120)
{
    int n = replay("tests/fuzz/corpus/runsdb", fuzz_runsdb_one);
    cr_assert_geq(n, 5, "only %d inputs", n);
}
