/* sha256.h - SHA-256 (FIPS 180-4), streaming: config hashes, data fingerprints,
 * weight hashes.
 *
 *   lp_sha256 h;
 *   lp_sha256_init(&h);
 *   lp_sha256_update(&h, pixels, n);   // as many pieces as needed
 *   char hex[65];
 *   lp_sha256_final_hex(&h, hex);      // 64 lowercase hex digits + NUL
 */
#ifndef LP_SHA256_H
#define LP_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct lp_sha256 {
    uint32_t state[8];
    uint64_t bytes;            /* total fed so far */
    unsigned char block[64];   /* the partial block */
    size_t fill;
} lp_sha256;

void lp_sha256_init(lp_sha256 *h);
void lp_sha256_update(lp_sha256 *h, const void *data, size_t len);
/* Finish and write the digest as hex; h must be initialised again to be reused. */
void lp_sha256_final_hex(lp_sha256 *h, char out[65]);

#endif
