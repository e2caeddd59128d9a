/* fuzz_idx.c - libFuzzer target: bytes -> an IDX file -> both IDX readers.
 *
 * The bytes are written to an in-memory file (memfd) and read through its path
 * /proc/self/fd/N, exactly as the reader opens real files, raw or gzip (sniffed
 * by content). An input starting with 'Z' has the rest gzip-compressed first, so
 * the fuzzer can explore IDX headers and lengths behind a valid gzip stream too
 * (mutating gzip bytes directly mostly breaks the CRC).
 *
 * Invariants besides memory safety: a refusal carries a message and returns no
 * buffer; a success returns dimensions that multiply to what was read.
 */
#include "idx.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#ifndef LP_FUZZ_ENTRY
#define LP_FUZZ_ENTRY LLVMFuzzerTestOneInput
#endif

static void fuzz_idx_fail(const char *what)
{
    fprintf(stderr, "fuzz_idx: %s\n", what);
    abort();
}

/* gzip-compress in[n] into a malloc'd buffer; NULL on failure. */
static unsigned char *fuzz_idx_gzip(const uint8_t *in, size_t n, size_t *out_n)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) return NULL;
    size_t cap = deflateBound(&z, (uLong)n) + 32;
    unsigned char *out = malloc(cap);
    if (!out) { deflateEnd(&z); return NULL; }
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    int r = deflate(&z, Z_FINISH);
    *out_n = z.total_out;
    deflateEnd(&z);
    if (r != Z_STREAM_END) { free(out); return NULL; }
    return out;
}

int LP_FUZZ_ENTRY(const uint8_t *data, size_t size);
int LP_FUZZ_ENTRY(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("loupe_fuzz_idx", 0);
        if (fd < 0) fuzz_idx_fail("memfd_create failed");
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    unsigned char *gz = NULL;
    if (size > 0 && data[0] == 'Z') {
        gz = fuzz_idx_gzip(data + 1, size - 1, &size);
        if (!gz) return 0;
        data = gz;
    }
    if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size) fuzz_idx_fail("memfd write failed");
    free(gz);

    lp_error err = {0};
    uint8_t *px = (uint8_t *)1;
    int n = -1, rows = -1, cols = -1;
    lp_status s = lp_idx_read_images(path, &px, &n, &rows, &cols, &err);
    if (s) {
        if (px || !err.msg[0] || err.status != s) fuzz_idx_fail("images: bad failure contract");
    } else {
        if (n < 1 || rows < 1 || cols < 1 || (long long)n * rows * cols + 16 > (long long)1 << 31)
            fuzz_idx_fail("images: impossible dimensions accepted");
        volatile uint8_t sum = 0;
        for (long long i = 0; i < (long long)n * rows * cols; i++) sum += px[i];   /* ASan checks the length */
        free(px);
    }
    lp_error_clear(&err);
    uint8_t *lab = (uint8_t *)1;
    s = lp_idx_read_labels(path, 10, &lab, &n, &err);
    if (s) {
        if (lab || !err.msg[0] || err.status != s) fuzz_idx_fail("labels: bad failure contract");
    } else {
        for (int i = 0; i < n; i++)
            if (lab[i] >= 10) fuzz_idx_fail("labels: a label out of range was accepted");
        free(lab);
    }
    return 0;
}
