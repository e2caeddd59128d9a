/* provenance.c - build identity and data fingerprints (provenance.h). */
#include "provenance.h"

#include "sha256.h"

#include <stdio.h>

#if defined(__has_include)
#if __has_include("loupe_build.h")
#include "loupe_build.h"   /* LOUPE_COMMIT, LOUPE_CFLAGS: written by the Makefile */
#endif
#endif
#ifndef LOUPE_COMMIT
#define LOUPE_COMMIT "unknown"
#endif
#ifndef LOUPE_CFLAGS
#define LOUPE_CFLAGS "unknown"
#endif

const char *lp_loupe_version(void) { return LOUPE_VERSION; }
const char *lp_loupe_commit(void) { return LOUPE_COMMIT; }
const char *lp_cflags(void) { return LOUPE_CFLAGS; }

const char *lp_compiler(void)
{
#if defined(__clang__)
    return "clang " __clang_version__;
#elif defined(__GNUC__)
    return "gcc " __VERSION__;
#else
    return "unknown";
#endif
}

static void hash_set(lp_sha256 *h, const lp_dataset *d)
{
    lp_sha256_update(h, d->pixels, (size_t)d->n * d->c * d->h * d->w);
    unsigned char buf[4096];
    size_t fill = 0;
    for (int i = 0; i < d->n; i++) {
        uint32_t v = (uint32_t)d->labels[i];
        for (int b = 0; b < 4; b++) buf[fill++] = (unsigned char)(v >> (8 * b));
        if (fill == sizeof buf) {
            lp_sha256_update(h, buf, fill);
            fill = 0;
        }
    }
    lp_sha256_update(h, buf, fill);
}

void lp_data_fingerprint_of(const lp_dataset *train, const lp_dataset *val, const lp_dataset *test,
                            lp_data_fingerprint *out)
{
    lp_sha256 h;
    lp_sha256_init(&h);
    hash_set(&h, train);
    hash_set(&h, test);
    if (val && val->n > 0) hash_set(&h, val);
    lp_sha256_final_hex(&h, out->sha256);
    out->train_count = train->n;
    out->test_count = test->n;
    snprintf(out->shape, sizeof out->shape, "%dx%dx%d", train->c, train->h, train->w);
}
