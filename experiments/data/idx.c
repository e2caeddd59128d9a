/* idx.c - IDX reader: sniff gzip, check the header, read exactly what it declares.
 *
 * Order matters for hostile files: the header is checked against the limits before
 * any allocation, a raw file's size is compared with the header before reading, and
 * a .gz (whose real size is unknown until it is inflated) grows its buffer only as
 * data actually arrives, so a header that lies costs nothing.
 */
#include "idx.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

/* One open IDX file, raw or gzip. */
typedef struct idx_file {
    const char *path;
    FILE *f;            /* raw file, or NULL */
    gzFile gz;          /* gzip file, or NULL */
    long long size;     /* raw regular file: its size in bytes; otherwise -1 */
    bool gz_truncated;  /* zlib reported that the compressed stream ended early */
} idx_file;

static lp_status idx_open(idx_file *x, const char *path, lp_error *err)
{
    memset(x, 0, sizeof *x);
    x->path = path;
    x->size = -1;
    FILE *f = fopen(path, "rb");
    if (!f) return lp_error_set(err, LP_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    unsigned char m[2];
    size_t got = fread(m, 1, 2, f);
    if (ferror(f)) {
        fclose(f);
        return lp_error_set(err, LP_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
    }
    if (got == 2 && m[0] == 0x1f && m[1] == 0x8b) {
        /* gzip by content, whatever the name says */
        fclose(f);
        x->gz = gzopen(path, "rb");
        if (!x->gz)
            return lp_error_set(err, LP_ERR_IO, "%s: cannot open as gzip: %s", path,
                                errno ? strerror(errno) : "out of memory");
        gzbuffer(x->gz, 1 << 17);
        return LP_OK;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode)) x->size = (long long)st.st_size;
    rewind(f);
    x->f = f;
    return LP_OK;
}

static void idx_close(idx_file *x)
{
    if (x->f) fclose(x->f);
    if (x->gz) gzclose(x->gz);
    x->f = NULL;
    x->gz = NULL;
}

/* Read up to n bytes; returns how many (fewer only at end of data), or -1 with err set.
 * A gzip stream that ends early sets x->gz_truncated and returns the short count. */
static long long idx_read(idx_file *x, void *buf, size_t n, lp_error *err)
{
    if (x->f) {
        size_t got = fread(buf, 1, n, x->f);
        if (got < n && ferror(x->f))
            return lp_error_set(err, LP_ERR_IO, "%s: read error: %s", x->path, strerror(errno)), -1;
        return (long long)got;
    }
    unsigned char *p = buf;
    size_t done = 0;
    while (done < n) {
        size_t want = n - done;
        if (want > (1u << 30)) want = 1u << 30;   /* gzread takes an unsigned, returns an int */
        int r = gzread(x->gz, p + done, (unsigned)want);
        int zerr = Z_OK;
        const char *zmsg = gzerror(x->gz, &zerr);
        if (r < 0 || (zerr != Z_OK && zerr != Z_BUF_ERROR))
            return lp_error_set(err, LP_ERR_DATA, "%s: corrupt gzip data (zlib: %s)", x->path,
                                zmsg && *zmsg ? zmsg : "unknown error"),
                   -1;
        done += (size_t)r;
        if (zerr == Z_BUF_ERROR) {
            x->gz_truncated = true;
            break;
        }
        if ((size_t)r < want) break;   /* clean end of the gzip stream */
    }
    return (long long)done;
}

static uint32_t be32(const unsigned char *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | (uint32_t)b[3];
}

static const char *kind_name(uint32_t magic)
{
    return magic == LP_IDX_MAGIC_IMAGES ? "images" : "labels";
}

/* Read the magic and the ndim big-endian dimensions; check them against the limits.
 * On success *payload is the byte count the header declares. */
static lp_status read_header(idx_file *x, uint32_t magic, int ndim, uint32_t *dims,
                             long long *payload, lp_error *err)
{
    const char *path = x->path;
    unsigned char h[16];
    size_t hlen = 4 + 4 * (size_t)ndim;
    long long got = idx_read(x, h, hlen, err);
    if (got < 0) return err ? err->status : LP_ERR_IO;
    if (got >= 4) {
        uint32_t m = be32(h);
        if (m != magic) {
            if (m == LP_IDX_MAGIC_IMAGES || m == LP_IDX_MAGIC_LABELS)
                return lp_error_set(err, LP_ERR_DATA,
                                    "%s: this is an IDX %s file (magic 0x%08X), expected %s "
                                    "(magic 0x%08X)",
                                    path, kind_name(m), m, kind_name(magic), magic);
            return lp_error_set(err, LP_ERR_DATA,
                                "%s: not an IDX %s file: magic 0x%08X, expected 0x%08X%s", path,
                                kind_name(magic), m, magic,
                                (m >> 16) == 0x1f8b ? " (gzip compressed twice?)" : "");
        }
    }
    if (got < (long long)hlen)
        return lp_error_set(err, LP_ERR_DATA,
                            "%s: too short for an IDX %s header: %lld bytes, need %zu%s", path,
                            kind_name(magic), got, hlen,
                            x->gz_truncated ? " (truncated gzip file)" : "");

    long long total = 1;
    for (int i = 0; i < ndim; i++) {
        dims[i] = be32(h + 4 + 4 * i);
        if (dims[i] < 1)
            return lp_error_set(err, LP_ERR_DATA, "%s: header dimension %d is 0", path, i);
    }
    if (dims[0] > LP_IDX_MAX_ITEMS)
        return lp_error_set(err, LP_ERR_DATA,
                            "%s: header claims %u %s, more than the limit of %d (corrupt header?)",
                            path, dims[0], kind_name(magic), LP_IDX_MAX_ITEMS);
    for (int i = 1; i < ndim; i++)
        if (dims[i] > LP_IDX_MAX_SIDE)
            return lp_error_set(err, LP_ERR_DATA,
                                "%s: header claims images of %u x %u pixels, more than the limit "
                                "of %d per side",
                                path, dims[1], dims[2], LP_IDX_MAX_SIDE);
    /* each factor is now < 2^24 except n (< 2^24 too): the product fits in 64 bits */
    for (int i = 0; i < ndim; i++) total *= (long long)dims[i];
    if (total > LP_IDX_MAX_BYTES)
        return lp_error_set(err, LP_ERR_DATA,
                            "%s: header declares %lld bytes of data, more than the limit of %lld",
                            path, total, (long long)LP_IDX_MAX_BYTES);
    *payload = total;
    return LP_OK;
}

/* Count what is left after the payload (bounded: a gzip bomb is not inflated forever). */
static long long count_rest(idx_file *x, bool *more, lp_error *err)
{
    unsigned char buf[1 << 14];
    long long total = 0;
    *more = false;
    for (;;) {
        long long got = idx_read(x, buf, sizeof buf, err);
        if (got < 0) return -1;
        total += got;
        if (got < (long long)sizeof buf) return total;
        if (total >= LP_IDX_MAX_BYTES) {
            *more = true;
            return total;
        }
    }
}

/* Read the payload of exactly `payload` bytes into a fresh buffer. */
static lp_status read_payload(idx_file *x, uint32_t magic, long long payload, uint8_t **out,
                              lp_error *err)
{
    const char *path = x->path;
    size_t hlen = magic == LP_IDX_MAGIC_IMAGES ? 16 : 8;
    /* A raw file's size is known: refuse a mismatch before allocating anything. */
    if (x->size >= 0 && x->size != (long long)hlen + payload) {
        long long body = x->size - (long long)hlen;
        if (body < payload)
            return lp_error_set(err, LP_ERR_DATA,
                                "%s: file is truncated: header declares %lld bytes of data after "
                                "its %zu-byte header, got %lld",
                                path, payload, hlen, body);
        return lp_error_set(err, LP_ERR_DATA,
                            "%s: %lld trailing bytes after the %lld bytes of data the header "
                            "declares (header and length disagree)",
                            path, body - payload, payload);
    }

    /* gzip (or a pipe): grow as data really arrives, so a lying header costs nothing */
    size_t cap = x->size >= 0 || payload < (1 << 24) ? (size_t)payload : (size_t)1 << 24;
    uint8_t *buf = malloc(cap);
    if (!buf) return lp_error_set(err, LP_ERR_NOMEM, "%s: out of memory for %zu bytes", path, cap);
    size_t have = 0;
    for (;;) {
        long long got = idx_read(x, buf + have, cap - have, err);
        if (got < 0) {
            free(buf);
            return err ? err->status : LP_ERR_DATA;
        }
        have += (size_t)got;
        if (have < cap || cap == (size_t)payload) break;
        size_t ncap = cap * 2 > (size_t)payload ? (size_t)payload : cap * 2;
        uint8_t *nb = realloc(buf, ncap);
        if (!nb) {
            free(buf);
            return lp_error_set(err, LP_ERR_NOMEM, "%s: out of memory for %zu bytes", path, ncap);
        }
        buf = nb;
        cap = ncap;
    }
    if ((long long)have < payload) {
        free(buf);
        if (x->gz_truncated)
            return lp_error_set(err, LP_ERR_DATA,
                                "%s: truncated gzip file: header declares %lld bytes of data, the "
                                "compressed stream ended after %zu",
                                path, payload, have);
        return lp_error_set(err, LP_ERR_DATA,
                            "%s: file is truncated: header declares %lld bytes of data, got %zu",
                            path, payload, have);
    }
    bool more;
    long long rest = count_rest(x, &more, err);
    if (rest < 0) {
        free(buf);
        return err ? err->status : LP_ERR_DATA;
    }
    if (x->gz_truncated) {
        /* all the data came, but the gzip trailer (CRC, length) did not: unverified */
        free(buf);
        return lp_error_set(err, LP_ERR_DATA,
                            "%s: truncated gzip file: the compressed stream ends before its "
                            "checksum trailer",
                            path);
    }
    if (rest > 0) {
        free(buf);
        return lp_error_set(err, LP_ERR_DATA,
                            "%s: %s%lld trailing bytes after the %lld bytes of data the header "
                            "declares (header and length disagree)",
                            path, more ? "at least " : "", rest, payload);
    }
    *out = buf;
    return LP_OK;
}

/* Open, check, read, close: the body both public readers share. */
static lp_status read_idx(const char *path, uint32_t magic, int ndim, uint32_t *dims,
                          uint8_t **data, lp_error *err)
{
    idx_file x;
    *data = NULL;
    lp_status s = idx_open(&x, path, err);
    if (s) return s;
    long long payload = 0;
    s = read_header(&x, magic, ndim, dims, &payload, err);
    if (!s) s = read_payload(&x, magic, payload, data, err);
    idx_close(&x);
    return s;
}

lp_status lp_idx_read_images(const char *path, uint8_t **pixels, int *n, int *rows, int *cols,
                             lp_error *err)
{
    assert(path && pixels && n && rows && cols);
    uint32_t d[3];
    lp_status s = read_idx(path, LP_IDX_MAGIC_IMAGES, 3, d, pixels, err);
    if (s) return s;
    *n = (int)d[0];
    *rows = (int)d[1];
    *cols = (int)d[2];
    return LP_OK;
}

lp_status lp_idx_read_labels(const char *path, int max_class, uint8_t **labels, int *n,
                             lp_error *err)
{
    assert(path && labels && n);
    assert(max_class >= 1 && max_class <= 256);
    uint32_t d[1];
    lp_status s = read_idx(path, LP_IDX_MAGIC_LABELS, 1, d, labels, err);
    if (s) return s;
    for (uint32_t i = 0; i < d[0]; i++) {
        if ((*labels)[i] >= max_class) {
            int bad = (*labels)[i];
            free(*labels);
            *labels = NULL;
            return lp_error_set(err, LP_ERR_DATA,
                                "%s: label %d at index %u is out of range (expected 0..%d)", path,
                                bad, i, max_class - 1);
        }
    }
    *n = (int)d[0];
    return LP_OK;
}
