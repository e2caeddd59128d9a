/* provenance.h - what a run came from, recorded with it so that it can be
 * reproduced (`loupe rerun`) or told apart: the data it saw (a fingerprint), and
 * the loupe that trained it (version, commit, compiler, flags).
 *
 * The commit and flags come from build/gen/loupe_build.h, which the Makefile
 * rewrites whenever `git describe --always --dirty` or CFLAGS change (and only then,
 * so nothing else rebuilds). A build without it says "unknown".
 */
#ifndef LP_PROVENANCE_H
#define LP_PROVENANCE_H

#include "dataset.h"

#define LOUPE_VERSION "0.1"

const char *lp_loupe_version(void);   /* "0.1" */
const char *lp_loupe_commit(void);    /* "48ec89d-dirty", or "unknown" */
const char *lp_compiler(void);        /* "gcc 12.2.0", "clang 14.0.6" */
const char *lp_cflags(void);          /* the Makefile's CFLAGS without -I paths, or "unknown" */

/* Fingerprint of the data a run trains and is tested on. */
typedef struct lp_data_fingerprint {
    char sha256[65];          /* train pixels, train labels, test pixels, test labels */
    long long train_count, test_count;
    char shape[48];           /* "1x28x28" */
} lp_data_fingerprint;

/* SHA-256 over each set's pixel bytes [n, c, h, w] then its labels as 32-bit
 * little-endian integers, train first, then test, then the validation split when
 * there is one (val may be NULL: runs without one keep the fingerprint they had);
 * counts and C x H x W beside it (train_count is what is trained on, without the
 * held-out images). About 0.2 s for all of MNIST (55 MB at ~250 MB/s), once per
 * `loupe train`. */
void lp_data_fingerprint_of(const lp_dataset *train, const lp_dataset *val, const lp_dataset *test,
                            lp_data_fingerprint *out);

#endif
