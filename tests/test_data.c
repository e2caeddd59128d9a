/* test_data.c - IDX reading (raw, gzip, and every kind of broken file), datasets in
 * memory (load, limits, counts, missing files, normalisation) and the batch helpers
 * (gather, shift augmentation against an out-of-place reference).
 *
 * Fixtures are written by the tests into a fresh mkdtemp directory. The real MNIST
 * and Fashion-MNIST checks run from the repository root and skip when absent.
 */
#include <criterion/criterion.h>

#include "dataset.h"
#include "idx.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

/* ---- fixtures ------------------------------------------------------------ */

static char tmpdir[256];

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "%s/loupe-data-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    cr_assert_not_null(mkdtemp(tmpdir), "mkdtemp failed");
}

static void remove_tmpdir(void)
{
    DIR *d = opendir(tmpdir);
    if (!d) return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(tmpdir);
}

/* Path of name inside the temp dir (static buffer rotated among 4, enough for a test). */
static const char *tpath(const char *name)
{
    static char bufs[4][512];
    static int k;
    char *b = bufs[k++ & 3];
    snprintf(b, 512, "%s/%s", tmpdir, name);
    return b;
}

static void put_be32(unsigned char *b, uint32_t v)
{
    b[0] = (unsigned char)(v >> 24);
    b[1] = (unsigned char)(v >> 16);
    b[2] = (unsigned char)(v >> 8);
    b[3] = (unsigned char)v;
}

/* Write bytes to tmpdir/name, gzip-compressed when gz. Returns the path. */
static const char *write_file(const char *name, const void *data, size_t len, bool gz)
{
    const char *path = tpath(name);
    if (gz) {
        gzFile g = gzopen(path, "wb");
        cr_assert_not_null(g);
        if (len) cr_assert_eq(gzwrite(g, data, (unsigned)len), (int)len);
        cr_assert_eq(gzclose(g), Z_OK);
    } else {
        FILE *f = fopen(path, "wb");
        cr_assert_not_null(f);
        if (len) cr_assert_eq(fwrite(data, 1, len, f), len);
        cr_assert_eq(fclose(f), 0);
    }
    return path;
}

/* An images file: header (magic, n, rows, cols) then `body` pixel bytes (pixel i =
 * (i * 7 + 3) % 256), so the body can be shorter or longer than the header says. */
static const char *write_images(const char *name, uint32_t magic, uint32_t n, uint32_t rows,
                                uint32_t cols, size_t body, bool gz)
{
    unsigned char *b = malloc(16 + body);
    cr_assert_not_null(b);
    put_be32(b, magic);
    put_be32(b + 4, n);
    put_be32(b + 8, rows);
    put_be32(b + 12, cols);
    for (size_t i = 0; i < body; i++) b[16 + i] = (unsigned char)((i * 7 + 3) % 256);
    const char *p = write_file(name, b, 16 + body, gz);
    free(b);
    return p;
}

/* A labels file with the given labels. */
static const char *write_labels(const char *name, const uint8_t *labels, uint32_t n, bool gz)
{
    unsigned char *b = malloc(8 + n);
    cr_assert_not_null(b);
    put_be32(b, LP_IDX_MAGIC_LABELS);
    put_be32(b + 4, n);
    memcpy(b + 8, labels, n);
    const char *p = write_file(name, b, 8 + n, gz);
    free(b);
    return p;
}

static long file_size(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n;
}

static void assert_contains(const char *msg, const char *part)
{
    cr_assert(strstr(msg, part) != NULL, "message '%s'\n  should contain '%s'", msg, part);
}

/* Read images that must fail with status want; returns the message (static). */
static const char *images_fail(const char *path, lp_status want)
{
    static lp_error err;
    lp_error_clear(&err);
    uint8_t *px = (uint8_t *)&err;   /* must be reset to NULL */
    int n = -7, r = -7, c = -7;
    lp_status s = lp_idx_read_images(path, &px, &n, &r, &c, &err);
    cr_assert_eq(s, want, "status %d, wanted %d (%s)", s, want, err.msg);
    cr_assert_null(px, "no buffer on failure");
    cr_assert_eq(err.status, want);
    assert_contains(err.msg, path);   /* every error names the file */
    return err.msg;
}

static void check_pixels(const uint8_t *px, size_t count)
{
    for (size_t i = 0; i < count; i++)
        cr_assert_eq(px[i], (uint8_t)((i * 7 + 3) % 256), "pixel %zu", i);
}

TestSuite(idx, .init = make_tmpdir, .fini = remove_tmpdir);
TestSuite(dataset, .init = make_tmpdir, .fini = remove_tmpdir);
TestSuite(batch);

/* ---- IDX: good files ----------------------------------------------------- */

static void read_good(const char *path)
{
    lp_error err = {0};
    uint8_t *px = NULL;
    int n = 0, r = 0, c = 0;
    cr_assert_eq(lp_idx_read_images(path, &px, &n, &r, &c, &err), LP_OK, "%s", err.msg);
    cr_assert_eq(n, 3);
    cr_assert_eq(r, 4);
    cr_assert_eq(c, 5);
    check_pixels(px, 60);
    free(px);
}

Test(idx, raw_images_read_exactly)
{
    read_good(write_images("im", LP_IDX_MAGIC_IMAGES, 3, 4, 5, 60, false));
}

Test(idx, gzip_images_read_exactly)
{
    read_good(write_images("im.gz", LP_IDX_MAGIC_IMAGES, 3, 4, 5, 60, true));
}

Test(idx, gzip_is_sniffed_by_content_not_name)
{
    /* gzip data under a plain name, and plain data under a .gz name */
    read_good(write_images("train-images-idx3-ubyte", LP_IDX_MAGIC_IMAGES, 3, 4, 5, 60, true));
    read_good(write_images("plain.gz", LP_IDX_MAGIC_IMAGES, 3, 4, 5, 60, false));
}

Test(idx, large_gzip_grows_its_buffer_to_the_exact_size)
{
    /* above the 16 MiB initial chunk, so the gzip buffer must grow (and stop exactly) */
    uint32_t n = 22000;   /* 22000 * 28 * 28 = 17.2 MB */
    size_t body = (size_t)n * 784;
    const char *p = write_images("big.gz", LP_IDX_MAGIC_IMAGES, n, 28, 28, body, true);
    lp_error err = {0};
    uint8_t *px = NULL;
    int nn = 0, r = 0, c = 0;
    cr_assert_eq(lp_idx_read_images(p, &px, &nn, &r, &c, &err), LP_OK, "%s", err.msg);
    cr_assert_eq(nn, (int)n);
    check_pixels(px, body);
    free(px);
}

Test(idx, labels_read_and_checked_against_class_count)
{
    uint8_t lab[5] = {0, 9, 3, 7, 1};
    const char *p = write_labels("lab", lab, 5, false);
    lp_error err = {0};
    uint8_t *got = NULL;
    int n = 0;
    cr_assert_eq(lp_idx_read_labels(p, 10, &got, &n, &err), LP_OK, "%s", err.msg);
    cr_assert_eq(n, 5);
    cr_assert_arr_eq(got, lab, 5);
    free(got);

    /* the same file with only 8 classes: label 9 at index 1 is out of range */
    lp_error_clear(&err);
    got = NULL;
    cr_assert_eq(lp_idx_read_labels(p, 8, &got, &n, &err), LP_ERR_DATA);
    cr_assert_null(got);
    assert_contains(err.msg, "label 9 at index 1");
    assert_contains(err.msg, "0..7");
}

Test(idx, label_above_nine_names_its_index)
{
    uint8_t lab[4] = {1, 2, 12, 3};
    const char *p = write_labels("lab.gz", lab, 4, true);
    lp_error err = {0};
    uint8_t *got = NULL;
    int n = 0;
    cr_assert_eq(lp_idx_read_labels(p, 10, &got, &n, &err), LP_ERR_DATA);
    cr_assert_null(got);
    assert_contains(err.msg, p);
    assert_contains(err.msg, "label 12 at index 2");
}

/* ---- IDX: broken files --------------------------------------------------- */

Test(idx, missing_file_is_an_io_error)
{
    const char *m = images_fail(tpath("nope"), LP_ERR_IO);
    assert_contains(m, "cannot open");
}

Test(idx, wrong_magic)
{
    const char *m = images_fail(write_images("im", 0x00000802u, 3, 4, 5, 60, false), LP_ERR_DATA);
    assert_contains(m, "magic 0x00000802");
    assert_contains(m, "expected 0x00000803");
}

Test(idx, labels_file_given_as_images_says_so)
{
    uint8_t lab[3] = {1, 2, 3};
    const char *m = images_fail(write_labels("lab", lab, 3, false), LP_ERR_DATA);
    assert_contains(m, "IDX labels file");
}

Test(idx, doubly_gzipped_file_shows_gzip_magic)
{
    /* inflate once, find 1F 8B again: the message says what it saw */
    unsigned char inner[512];
    size_t len = sizeof inner;
    FILE *f;
    const char *g = write_images("inner.gz", LP_IDX_MAGIC_IMAGES, 3, 4, 5, 60, true);
    f = fopen(g, "rb");
    len = fread(inner, 1, sizeof inner, f);
    fclose(f);
    cr_assert_lt(len, sizeof inner, "fixture too big for the buffer");
    const char *m = images_fail(write_file("outer", inner, len, true), LP_ERR_DATA);
    assert_contains(m, "magic 0x1F8B");
}

Test(idx, empty_and_short_files)
{
    assert_contains(images_fail(write_file("empty", "", 0, false), LP_ERR_DATA), "too short");
    unsigned char b[10] = {0, 0, 8, 3, 0, 0, 0, 1, 0, 0};
    assert_contains(images_fail(write_file("short", b, sizeof b, false), LP_ERR_DATA),
                    "too short for an IDX images header: 10 bytes, need 16");
}

Test(idx, truncated_raw_file_gives_expected_and_actual_sizes)
{
    const char *m = images_fail(write_images("im", LP_IDX_MAGIC_IMAGES, 3, 4, 5, 50, false),
                                LP_ERR_DATA);
    assert_contains(m, "truncated");
    assert_contains(m, "60");
    assert_contains(m, "got 50");
}

Test(idx, trailing_bytes_raw_and_gzip)
{
    const char *m = images_fail(write_images("im", LP_IDX_MAGIC_IMAGES, 3, 4, 5, 63, false),
                                LP_ERR_DATA);
    assert_contains(m, "3 trailing bytes");
    m = images_fail(write_images("im.gz", LP_IDX_MAGIC_IMAGES, 3, 4, 5, 63, true), LP_ERR_DATA);
    assert_contains(m, "3 trailing bytes");
}

Test(idx, dimensions_that_do_not_match_the_length)
{
    /* 3 images of 4x5 written, header says 3 of 4x4 (too much data) or 3 of 5x5 (too little) */
    assert_contains(images_fail(write_images("a", LP_IDX_MAGIC_IMAGES, 3, 4, 4, 60, false),
                                LP_ERR_DATA),
                    "12 trailing bytes");
    assert_contains(images_fail(write_images("b.gz", LP_IDX_MAGIC_IMAGES, 3, 5, 5, 60, true),
                                LP_ERR_DATA),
                    "declares 75 bytes of data, got 60");
}

Test(idx, zero_and_oversized_dimensions)
{
    assert_contains(images_fail(write_images("z", LP_IDX_MAGIC_IMAGES, 3, 0, 5, 0, false),
                                LP_ERR_DATA),
                    "dimension 1 is 0");
    assert_contains(images_fail(write_images("r", LP_IDX_MAGIC_IMAGES, 1, 5000, 1, 0, false),
                                LP_ERR_DATA),
                    "5000 x 1 pixels");
    /* under every per-field limit, over the total: 9M images of 28x28 = 7 GB */
    assert_contains(images_fail(write_images("t", LP_IDX_MAGIC_IMAGES, 9000000, 28, 28, 0, true),
                                LP_ERR_DATA),
                    "7056000000 bytes");
}

Test(idx, four_billion_images_refused_before_allocating)
{
    /* a 16-byte file claiming 4e9 images: refused from the header alone */
    const char *m = images_fail(write_images("huge", LP_IDX_MAGIC_IMAGES, 4000000000u, 28, 28, 0,
                                             false),
                                LP_ERR_DATA);
    assert_contains(m, "4000000000 images");
    assert_contains(m, "limit");
    m = images_fail(write_images("huge.gz", LP_IDX_MAGIC_IMAGES, 4000000000u, 28, 28, 0, true),
                    LP_ERR_DATA);
    assert_contains(m, "4000000000 images");
    uint8_t lab[1] = {0};
    unsigned char b[9];
    put_be32(b, LP_IDX_MAGIC_LABELS);
    put_be32(b + 4, 0xFFFFFFFFu);
    b[8] = lab[0];
    lp_error err = {0};
    uint8_t *got = NULL;
    int n = 0;
    const char *p = write_file("hugelab", b, sizeof b, false);
    cr_assert_eq(lp_idx_read_labels(p, 10, &got, &n, &err), LP_ERR_DATA);
    assert_contains(err.msg, "4294967295 labels");
}

Test(idx, lying_gzip_header_fails_on_data_not_allocation)
{
    /* 1,000,000 images of 28x28 (784 MB, within limits) claimed, 60 bytes present */
    const char *m = images_fail(write_images("lie.gz", LP_IDX_MAGIC_IMAGES, 1000000, 28, 28, 60,
                                             true),
                                LP_ERR_DATA);
    assert_contains(m, "declares 784000000 bytes of data, got 60");
}

/* Cut a good .gz at `keep` bytes. */
static const char *truncated_gz(const char *name, long keep)
{
    const char *g = write_images("whole.gz", LP_IDX_MAGIC_IMAGES, 20, 28, 28, 20 * 784, true);
    long size = file_size(g);
    cr_assert_lt(keep, size);
    unsigned char *b = malloc((size_t)size);
    FILE *f = fopen(g, "rb");
    cr_assert_eq(fread(b, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    const char *p = write_file(name, b, (size_t)keep, false);
    free(b);
    return p;
}

Test(idx, truncated_gzip_is_an_error_not_a_crash)
{
    long size = file_size(write_images("w.gz", LP_IDX_MAGIC_IMAGES, 20, 28, 28, 20 * 784, true));
    /* cut in the middle of the deflate data, right after the gzip header, and in the trailer */
    assert_contains(images_fail(truncated_gz("half.gz", size / 2), LP_ERR_DATA), "truncated gzip");
    assert_contains(images_fail(truncated_gz("hdr.gz", 12), LP_ERR_DATA), "too short");
    assert_contains(images_fail(truncated_gz("trailer.gz", size - 4), LP_ERR_DATA),
                    "checksum trailer");
}

Test(idx, corrupt_gzip_is_an_error_not_a_crash)
{
    const char *g = write_images("c.gz", LP_IDX_MAGIC_IMAGES, 20, 28, 28, 20 * 784, true);
    long size = file_size(g);
    unsigned char *b = malloc((size_t)size);
    FILE *f = fopen(g, "rb");
    cr_assert_eq(fread(b, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    for (long i = size / 3; i < size / 3 + 16; i++) b[i] ^= 0x5A;
    const char *p = write_file("corrupt.gz", b, (size_t)size, false);
    free(b);
    images_fail(p, LP_ERR_DATA);
}

/* ---- datasets ------------------------------------------------------------ */

/* Write split files (n images of 2x3, labels i % 10) into tmpdir. */
static void write_split(const char *split, uint32_t n_img, uint32_t n_lab, bool gz)
{
    char name[64];
    snprintf(name, sizeof name, "%s-images-idx3-ubyte%s", split, gz ? ".gz" : "");
    write_images(name, LP_IDX_MAGIC_IMAGES, n_img, 2, 3, (size_t)n_img * 6, gz);
    uint8_t lab[64];
    for (uint32_t i = 0; i < n_lab; i++) lab[i] = (uint8_t)(i % 10);
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte%s", split, gz ? ".gz" : "");
    write_labels(name, lab, n_lab, gz);
}

Test(dataset, load_scales_pixels_and_keeps_labels)
{
    write_split("train", 4, 4, false);
    lp_dataset d;
    lp_error err = {0};
    cr_assert_eq(lp_dataset_load("mnist", tmpdir, true, 0, &d, &err), LP_OK, "%s", err.msg);
    cr_assert_eq(d.n, 4);
    cr_assert_eq(d.c, 1);
    cr_assert_eq(d.h, 2);
    cr_assert_eq(d.w, 3);
    cr_assert_eq(d.classes, 10);
    /* the file's bytes as they are, and the map to [0, 1] */
    for (int i = 0; i < 24; i++) cr_assert_eq(d.pixels[i], (i * 7 + 3) % 256, "pixel %d", i);
    cr_assert_eq(d.scale, 1.0f / 255.0f);
    cr_assert_eq(d.offset, 0.0f);
    float x[24];
    int32_t y[4];
    lp_dataset_gather_range(&d, 0, 4, x, y);
    for (int i = 0; i < 24; i++)
        cr_assert_float_eq(x[i], (float)((i * 7 + 3) % 256) / 255.0f, 1e-7, "pixel %d", i);
    for (int i = 0; i < 4; i++) cr_assert_eq(d.labels[i], i);
    for (int i = 0; i < 4; i++) cr_assert_eq(y[i], i);
    lp_dataset_free(&d);
    cr_assert_null(d.pixels);
    lp_dataset_free(&d);   /* twice is safe */
}

Test(dataset, test_split_gz_files_and_limits)
{
    write_split("t10k", 5, 5, true);   /* only .gz names, as Fashion-MNIST ships them */
    lp_dataset d;
    lp_error err = {0};
    cr_assert_eq(lp_dataset_load("fashion", tmpdir, false, 2, &d, &err), LP_OK, "%s", err.msg);
    cr_assert_eq(d.n, 2);
    cr_assert_eq(d.labels[1], 1);
    lp_dataset_free(&d);
    cr_assert_eq(lp_dataset_load("fashion", tmpdir, false, 100, &d, &err), LP_OK, "%s", err.msg);
    cr_assert_eq(d.n, 5, "a limit above the size keeps all");
    cr_assert_eq(d.pixels[29], (29 * 7 + 3) % 256);
    float x[6];
    int idx = 4;
    lp_dataset_gather(&d, &idx, 1, x, NULL);
    cr_assert_float_eq(x[5], (float)((29 * 7 + 3) % 256) / 255.0f, 1e-7);
    lp_dataset_free(&d);
    cr_assert_eq(lp_dataset_load("fashion", tmpdir, false, -1, &d, &err), LP_ERR_ARG);
}

Test(dataset, image_and_label_counts_must_match)
{
    write_split("train", 5, 4, false);
    lp_dataset d;
    lp_error err = {0};
    cr_assert_eq(lp_dataset_load("mnist", tmpdir, true, 0, &d, &err), LP_ERR_DATA);
    assert_contains(err.msg, "5 images");
    assert_contains(err.msg, "4 labels");
    cr_assert_null(d.pixels);
    cr_assert_eq(d.n, 0);
}

Test(dataset, missing_files_say_how_to_get_them)
{
    lp_dataset d;
    lp_error err = {0};
    cr_assert_eq(lp_dataset_load("mnist", tmpdir, true, 0, &d, &err), LP_ERR_IO);
    assert_contains(err.msg, "train-images-idx3-ubyte");
    assert_contains(err.msg, "make data");
    write_split("t10k", 3, 3, false);
    unlink(tpath("t10k-labels-idx1-ubyte"));
    lp_error_clear(&err);
    cr_assert_eq(lp_dataset_load("fashion", tmpdir, false, 0, &d, &err), LP_ERR_IO);
    assert_contains(err.msg, "t10k-labels-idx1-ubyte");
    assert_contains(err.msg, "apt-get install dataset-fashion-mnist");
    lp_error_clear(&err);
    cr_assert_eq(lp_dataset_load("cifar", tmpdir, false, 0, &d, &err), LP_ERR_ARG);
    assert_contains(err.msg, "unknown dataset 'cifar'");
}

Test(dataset, corrupt_file_error_passes_through)
{
    write_split("train", 3, 3, false);
    uint8_t lab[3] = {1, 10, 2};
    write_labels("train-labels-idx1-ubyte", lab, 3, false);
    lp_dataset d;
    lp_error err = {0};
    cr_assert_eq(lp_dataset_load("mnist", tmpdir, true, 0, &d, &err), LP_ERR_DATA);
    assert_contains(err.msg, "label 10 at index 1");
}

Test(dataset, real_mnist_train_labels)
{
    const char *p = "data/mnist/train-labels-idx1-ubyte";
    if (access(p, R_OK) != 0) cr_skip_test("%s absent: run `make data`", p);
    lp_error err = {0};
    uint8_t *lab = NULL;
    int n = 0;
    cr_assert_eq(lp_idx_read_labels(p, 10, &lab, &n, &err), LP_OK, "%s", err.msg);
    cr_assert_eq(n, 60000);
    cr_assert_eq(lab[0], 5);
    free(lab);
    /* the test split through the dataset API: 10000 images, first is a 7 */
    lp_dataset d;
    cr_assert_eq(lp_dataset_load("mnist", "data/mnist", false, 0, &d, &err), LP_OK, "%s", err.msg);
    cr_assert_eq(d.n, 10000);
    cr_assert_eq(d.h, 28);
    cr_assert_eq(d.labels[0], 7);
    lp_dataset_free(&d);
}

Test(dataset, real_fashion_test_split)
{
    const char *dir = "/usr/share/datasets/fashion-mnist";
    if (access("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz", R_OK) != 0)
        cr_skip_test("Fashion-MNIST not installed");
    lp_dataset d;
    lp_error err = {0};
    cr_assert_eq(lp_dataset_load("fashion", NULL, false, 0, &d, &err), LP_OK, "%s (%s)", err.msg,
                 dir);
    cr_assert_eq(d.n, 10000);
    cr_assert_eq(d.w, 28);
    cr_assert_eq(d.labels[0], 9);   /* the first test item is an ankle boot */
    lp_dataset_free(&d);
}

/* ---- batch helpers ------------------------------------------------------- */

/* Every byte value 0..255 exactly once: 4 samples of 2 x 4 x 8 = 64 pixels, pixel i =
 * (i * 37 + 11) % 256 (a permutation), labels 9, 8, 7, 6. */
#define BN 4
#define BPER 64
static lp_dataset byte_data(uint8_t *px, int32_t *lab, float scale, float offset)
{
    for (int i = 0; i < BN * BPER; i++) px[i] = (uint8_t)((i * 37 + 11) % 256);
    for (int i = 0; i < BN; i++) lab[i] = 9 - i;
    return (lp_dataset){.n = BN, .c = 2, .h = 4, .w = 8, .classes = 10, .pixels = px,
                        .scale = scale, .offset = offset, .labels = lab};
}

Test(batch, gather_converts_bytes_exactly_as_pixel_times_scale_plus_offset)
{
    uint8_t px[BN * BPER];
    int32_t lab[BN];
    const float maps[][2] = {{1.0f / 255.0f, 0.0f}, {0.0123f, -0.4242f}, {-3.5f, 7.25f}, {1.0f, 0.0f}};
    for (size_t m = 0; m < sizeof maps / sizeof *maps; m++) {
        lp_dataset d = byte_data(px, lab, maps[m][0], maps[m][1]);
        int idx[5] = {3, 0, 2, 3, 1};
        float x[5 * BPER];
        int32_t y[5];
        lp_dataset_gather(&d, idx, 5, x, y);
        for (int i = 0; i < 5; i++) {
            cr_assert_eq(y[i], lab[idx[i]]);
            for (int j = 0; j < BPER; j++) {
                uint8_t p = px[idx[i] * BPER + j];
                float want = fmaf((float)p, d.scale, d.offset);   /* bit for bit */
                cr_assert(memcmp(&x[i * BPER + j], &want, sizeof want) == 0,
                          "map %zu sample %d pixel %d (%u): %.9g, want %.9g", m, i, j, p,
                          x[i * BPER + j], want);
                cr_assert_float_eq(x[i * BPER + j], (float)p * d.scale + d.offset,
                                   1e-6f * (1.0f + fabsf(want)));
            }
        }
    }
    /* a map of (1, 0) gives the bytes themselves */
    lp_dataset d = byte_data(px, lab, 1.0f, 0.0f);
    int all[BN] = {0, 1, 2, 3};
    float x[BN * BPER];
    lp_dataset_gather(&d, all, BN, x, NULL);
    for (int i = 0; i < BN * BPER; i++) cr_assert_eq(x[i], (float)px[i]);
}

Test(batch, normalize_changes_the_map_and_the_values_gathered)
{
    uint8_t px[BN * BPER], copy[BN * BPER];
    int32_t lab[BN];
    lp_dataset d = byte_data(px, lab, 1.0f / 255.0f, 0.0f);
    memcpy(copy, px, sizeof px);
    int idx[2] = {2, 0};
    float before[2 * BPER], after[2 * BPER];
    lp_dataset_gather(&d, idx, 2, before, NULL);
    lp_dataset_normalize(&d, 0.1307f, 0.3081f);
    cr_assert(memcmp(px, copy, sizeof px) == 0, "normalize must not touch the bytes");
    cr_assert_float_eq(d.scale, 1.0f / 255.0f / 0.3081f, 1e-9);
    cr_assert_eq(d.offset, -0.1307f / 0.3081f, "a 0 pixel becomes -mean/std: the augment fill");
    lp_dataset_gather(&d, idx, 2, after, NULL);
    for (int i = 0; i < 2 * BPER; i++) {
        /* the old in-place (pixel / 255 - mean) / std, up to the last bits */
        float want = (before[i] - 0.1307f) / 0.3081f;
        cr_assert_float_eq(after[i], want, 1e-6f, "value %d: %.9g, want %.9g", i, after[i], want);
        cr_assert_neq(after[i], before[i]);
    }
    /* a second normalisation composes: x -> (x - 1) / 2 on the normalised values */
    lp_dataset_normalize(&d, 1.0f, 2.0f);
    float again[2 * BPER];
    lp_dataset_gather(&d, idx, 2, again, NULL);
    for (int i = 0; i < 2 * BPER; i++)
        cr_assert_float_eq(again[i], (after[i] - 1.0f) / 2.0f, 1e-6f, "value %d", i);
}

Test(batch, gather_range_equals_gather_of_consecutive_indices)
{
    uint8_t px[BN * BPER];
    int32_t lab[BN];
    lp_dataset d = byte_data(px, lab, 0.0123f, -0.4242f);
    for (int start = 0; start <= BN; start++)
        for (int n = 0; start + n <= BN; n++) {
            int idx[BN];
            for (int i = 0; i < n; i++) idx[i] = start + i;
            float a[BN * BPER + 1], b[BN * BPER + 1];
            int32_t ya[BN + 1], yb[BN + 1];
            a[n * BPER] = b[n * BPER] = 42.0f;   /* nothing past n samples is written */
            ya[n] = yb[n] = 42;
            lp_dataset_gather(&d, idx, n, a, ya);
            lp_dataset_gather_range(&d, start, n, b, yb);
            cr_assert(memcmp(a, b, (size_t)(n * BPER + 1) * sizeof *a) == 0, "start %d n %d",
                      start, n);
            cr_assert(memcmp(ya, yb, (size_t)(n + 1) * sizeof *ya) == 0, "labels, start %d n %d",
                      start, n);
        }
    /* y_out may be NULL */
    float x[BPER];
    lp_dataset_gather_range(&d, BN - 1, 1, x, NULL);
    cr_assert_eq(x[0], fmaf((float)px[(BN - 1) * BPER], d.scale, d.offset));
}

/* The obvious out-of-place shift, to check the in-place one against. */
static void shift_ref(const float *in, float *out, int c, int h, int w, int dy, int dx, float fill)
{
    for (int ch = 0; ch < c; ch++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                int sy = y - dy, sx = x - dx;
                out[(ch * h + y) * w + x] = sy >= 0 && sy < h && sx >= 0 && sx < w
                                                ? in[(ch * h + sy) * w + sx]
                                                : fill;
            }
}

Test(batch, shift_matches_out_of_place_reference)
{
    enum { N = 64, C = 2, H = 7, W = 6, M = 3 };
    static float x[N * C * H * W], orig[N * C * H * W], want[C * H * W];
    lp_rng data;
    lp_rng_seed(&data, 99);
    for (int i = 0; i < N * C * H * W; i++) orig[i] = x[i] = (float)lp_rng_uniform(&data);
    lp_rng rng, replay;
    lp_rng_seed(&rng, 5);
    lp_rng_seed(&replay, 5);
    lp_augment_shift(x, N, C, H, W, M, &rng, -0.25f);
    bool seen[2 * M + 1][2 * M + 1] = {{false}};
    for (int i = 0; i < N; i++) {
        /* the documented draw order: dy then dx, each in [-M, M] */
        int dy = (int)lp_rng_below(&replay, 2 * M + 1) - M;
        int dx = (int)lp_rng_below(&replay, 2 * M + 1) - M;
        seen[dy + M][dx + M] = true;
        shift_ref(orig + i * C * H * W, want, C, H, W, dy, dx, -0.25f);
        for (int j = 0; j < C * H * W; j++)
            cr_assert_eq(x[i * C * H * W + j], want[j], "sample %d (dy %d dx %d) element %d", i,
                         dy, dx, j);
    }
    int distinct = 0;
    for (int a = 0; a < 2 * M + 1; a++)
        for (int b = 0; b < 2 * M + 1; b++) distinct += seen[a][b];
    cr_assert_gt(distinct, 20, "64 samples should see most of the 49 shifts, saw %d", distinct);
    cr_assert(seen[0][0] || seen[2 * M][2 * M] || seen[0][2 * M] || seen[2 * M][0],
              "extreme shifts should occur");
}

Test(batch, single_lit_pixel_stays_within_max_shift_and_sum_is_kept)
{
    enum { N = 200, H = 9, W = 9, M = 2 };
    static float x[N * H * W];
    for (int i = 0; i < N; i++) x[i * H * W + 4 * W + 4] = 1.0f;   /* the centre */
    lp_rng rng;
    lp_rng_seed(&rng, 1);
    lp_augment_shift(x, N, 1, H, W, M, &rng, 0.0f);
    bool moved = false;
    for (int i = 0; i < N; i++) {
        float sum = 0;
        int lit = -1;
        for (int j = 0; j < H * W; j++) {
            sum += x[i * H * W + j];
            if (x[i * H * W + j] != 0.0f) lit = j;
        }
        cr_assert_eq(sum, 1.0f, "sample %d: content inside, so the sum is kept", i);
        int y = lit / W, xx = lit % W;
        cr_assert(abs(y - 4) <= M && abs(xx - 4) <= M, "sample %d: pixel at (%d,%d)", i, y, xx);
        moved |= lit != 4 * W + 4;
    }
    cr_assert(moved, "some pixel must move");
}

Test(batch, shift_is_deterministic_per_seed)
{
    enum { N = 16, H = 8, W = 8 };
    static float a[N * H * W], b[N * H * W], c[N * H * W];
    for (int i = 0; i < N * H * W; i++) a[i] = b[i] = c[i] = (float)(i % 13);
    lp_rng r1, r2, r3;
    lp_rng_seed(&r1, 42);
    lp_rng_seed(&r2, 42);
    lp_rng_seed(&r3, 43);
    lp_augment_shift(a, N, 1, H, W, 2, &r1, -1.0f);
    lp_augment_shift(b, N, 1, H, W, 2, &r2, -1.0f);
    lp_augment_shift(c, N, 1, H, W, 2, &r3, -1.0f);
    cr_assert_arr_eq(a, b, sizeof a, "same seed, same result");
    cr_assert(memcmp(a, c, sizeof a) != 0, "another seed, another result");
    cr_assert_eq(lp_rng_u64(&r1), lp_rng_u64(&r2), "same number of draws");
}

Test(batch, zero_shift_changes_nothing_and_draws_nothing)
{
    float x[12], y[12];
    for (int i = 0; i < 12; i++) x[i] = y[i] = (float)i;
    lp_rng r, fresh;
    lp_rng_seed(&r, 7);
    lp_rng_seed(&fresh, 7);
    lp_augment_shift(x, 3, 1, 2, 2, 0, &r, -9.0f);
    cr_assert_arr_eq(x, y, sizeof x);
    cr_assert_eq(lp_rng_u64(&r), lp_rng_u64(&fresh));
}

Test(batch, shift_larger_than_the_image_fills_everything)
{
    enum { N = 40, H = 3, W = 3 };
    static float x[N * H * W];
    for (int i = 0; i < N * H * W; i++) x[i] = 1.0f;
    lp_rng r;
    lp_rng_seed(&r, 3);
    lp_augment_shift(x, N, 1, H, W, 5, &r, -2.0f);
    int filled_all = 0;
    for (int i = 0; i < N; i++) {
        bool all = true;
        for (int j = 0; j < H * W; j++) {
            cr_assert(x[i * H * W + j] == 1.0f || x[i * H * W + j] == -2.0f);
            all &= x[i * H * W + j] == -2.0f;
        }
        filled_all += all;
    }
    cr_assert_gt(filled_all, 0, "shifts of 3..5 move the whole image out");
}
