/* gen_seeds.c - write the generated seed inputs of the fuzz targets into
 * tests/fuzz/corpus/<target>/ (run from the repository root; `make fuzz` does).
 * Hand-written seeds (YAML configs) live beside them; this makes the binary ones:
 *   idx:          images (2 of 3x3) and labels (3), raw, gzip, and 'Z'-prefixed
 *                 (fuzz_idx gzips what follows a 'Z');
 *   checkpoint:   the fixed model's parameters + momentum state, plain and
 *                 'C'-prefixed (fuzz_checkpoint recomputes the CRC);
 *   safetensors:  the fixed model's parameters, with and without metadata;
 *   runsdb:       the small loupe database fuzz_runsdb starts from (its template).
 * Deterministic: rerunning writes the same bytes. */
#include "checkpoint.h"
#include "fuzz_model.h"
#include "safetensors.h"

#define LP_FUZZ_ENTRY fuzz_runsdb_unused
#include "fuzz_runsdb.c"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define DIR "tests/fuzz/corpus/"

static void put(const char *path, const void *a, size_t na, const void *b, size_t nb)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(a, 1, na, f) != na || (nb && fwrite(b, 1, nb, f) != nb) || fclose(f)) {
        fprintf(stderr, "gen_seeds: cannot write %s\n", path);
        exit(1);
    }
}

static void put_gz(const char *path, const void *a, size_t na)
{
    gzFile g = gzopen(path, "wb9");
    if (!g || gzwrite(g, a, (unsigned)na) != (int)na || gzclose(g) != Z_OK) {
        fprintf(stderr, "gen_seeds: cannot write %s\n", path);
        exit(1);
    }
}

int main(void)
{
    /* idx: 2 images of 3x3, 3 labels */
    unsigned char img[16 + 18] = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 3};
    for (int i = 0; i < 18; i++) img[16 + i] = (unsigned char)(i * 14);
    unsigned char lab[8 + 3] = {0, 0, 8, 1, 0, 0, 0, 3, 7, 0, 9};
    put(DIR "idx/seed-images", img, sizeof img, NULL, 0);
    put(DIR "idx/seed-labels", lab, sizeof lab, NULL, 0);
    put_gz(DIR "idx/seed-images.gz", img, sizeof img);
    put_gz(DIR "idx/seed-labels.gz", lab, sizeof lab);
    put(DIR "idx/seed-images.Z", "Z", 1, img, sizeof img);
    put(DIR "idx/seed-labels.Z", "Z", 1, lab, sizeof lab);

    /* the fixed model with recognisable values */
    lp_tensor_ref params[FUZZ_MODEL_N], states[FUZZ_MODEL_N];
    fuzz_model_refs(0, params);
    fuzz_model_refs(1, states);
    for (size_t i = 0; i < sizeof fuzz_model_data / sizeof(float); i++)
        (&fuzz_model_data[0][0])[i] = (float)i * 0.25f - 3.0f;
    lp_error err = {0};
    void *buf;
    size_t n;
    lp_resume_state rs = {.epoch = 2, .step = 10, .rng = {1, 2, 3, 4}, .lr = 0.05, .schedule_pos = 2};
    if (lp_checkpoint_encode(params, FUZZ_MODEL_N, states, FUZZ_MODEL_N, &rs, &buf, &n, &err)) goto fail;
    put(DIR "checkpoint/seed-full", buf, n, NULL, 0);
    put(DIR "checkpoint/seed-full.C", "C", 1, buf, n);
    free(buf);
    if (lp_checkpoint_encode(params, FUZZ_MODEL_N, NULL, 0, NULL, &buf, &n, &err)) goto fail;
    put(DIR "checkpoint/seed-params.C", "C", 1, buf, n);
    free(buf);

    if (lp_safetensors_encode(params, FUZZ_MODEL_N, NULL, NULL, 0, &buf, &n, &err)) goto fail;
    put(DIR "safetensors/seed-plain", buf, n, NULL, 0);
    free(buf);
    const char *mk[] = {"format", "note"}, *mv[] = {"pt", "caf\xc3\xa9 \"quoted\" \\ \t"};
    if (lp_safetensors_encode(params, FUZZ_MODEL_N, mk, mv, 2, &buf, &n, &err)) goto fail;
    put(DIR "safetensors/seed-meta", buf, n, NULL, 0);
    free(buf);

    fuzz_runsdb_init();
    put(DIR "runsdb/seed-db", fuzz_runsdb_template, fuzz_runsdb_template_n, NULL, 0);
    return 0;
fail:
    fprintf(stderr, "gen_seeds: %s\n", err.msg);
    return 1;
}
