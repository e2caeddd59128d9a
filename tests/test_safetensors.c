/* safetensors: export -> import bit-identical, the header is exactly what the
 * format says, and hostile headers and mismatched models are refused by name. */
#include "safetensors.h"
#include "shape.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static float w[4 * 1 * 3 * 3], bias[4], fc[10 * 4];

static void fill(void)
{
    for (size_t i = 0; i < sizeof w / sizeof w[0]; i++) w[i] = sinf((float)i) * 1e-3f;
    bias[0] = NAN;
    bias[1] = -0.0f;
    bias[2] = 1e-45f;   /* a denormal */
    bias[3] = -INFINITY;
    for (size_t i = 0; i < sizeof fc / sizeof fc[0]; i++) fc[i] = (float)i / 7.0f;
}

static lp_tensor_ref model_refs[3];

static void init_refs(float *a, float *b, float *c)
{
    model_refs[0] = (lp_tensor_ref){"conv1.weight", lp_shape4(4, 1, 3, 3), a};
    model_refs[1] = (lp_tensor_ref){"conv1.bias", lp_shape1(4), b};
    model_refs[2] = (lp_tensor_ref){"fc1.weight", lp_shape4(10, 4, 1, 1), c};
    model_refs[2].shape = (lp_shape){2, {10, 4}};
}

/* A temp file path in a fresh directory. */
static char *tmp_path(const char *leaf)
{
    static char dir[64];
    snprintf(dir, sizeof dir, "/tmp/loupe-st-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    char *p = malloc(128);
    snprintf(p, 128, "%s/%s", dir, leaf);
    return p;
}

Test(safetensors, export_import_is_bit_identical)
{
    fill();
    init_refs(w, bias, fc);
    char *path = tmp_path("model.safetensors");
    const char *mk[] = {"run", "7"};
    const char *mv[] = {"mnist two conv", "\"quoted\"\n"};
    lp_error err = {0};
    cr_assert_eq(lp_safetensors_write(path, model_refs, 3, mk, mv, 2, &err), LP_OK, "%s", err.msg);

    float w2[36] = {0}, b2[4] = {0}, fc2[40] = {0};
    init_refs(w2, b2, fc2);
    cr_assert_eq(lp_safetensors_read(path, model_refs, 3, &err), LP_OK, "%s", err.msg);
    cr_assert_eq(memcmp(w, w2, sizeof w), 0);
    cr_assert_eq(memcmp(bias, b2, sizeof bias), 0);
    cr_assert_eq(memcmp(fc, fc2, sizeof fc), 0);

    /* The header as the format defines it: LE length, 8-aligned, the fields. */
    FILE *f = fopen(path, "rb");
    unsigned char len8[8];
    cr_assert_eq(fread(len8, 1, 8, f), 8u);
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++) hlen |= (uint64_t)len8[i] << (8 * i);
    cr_assert_eq(hlen % 8, 0u);
    char *h = calloc(1, hlen + 1);
    cr_assert_eq(fread(h, 1, hlen, f), hlen);
    fclose(f);
    cr_assert(strstr(h, "\"conv1.weight\":{\"dtype\":\"F32\",\"shape\":[4,1,3,3],\"data_offsets\":[0,144]}"), "%s", h);
    cr_assert(strstr(h, "\"fc1.weight\":{\"dtype\":\"F32\",\"shape\":[10,4],\"data_offsets\":[160,320]}"), "%s", h);
    cr_assert(strstr(h, "\"format\":\"pt\""), "%s", h);
    cr_assert(strstr(h, "\"7\":\"\\\"quoted\\\"\\u000a\""), "%s", h);
    struct stat st;
    stat(path, &st);
    cr_assert_eq((size_t)st.st_size, 8 + hlen + 320);
    free(h);
    unlink(path);
    *strrchr(path, '/') = '\0';
    rmdir(path);
    free(path);
}

Test(safetensors, mismatched_models_are_refused_by_tensor_name)
{
    fill();
    init_refs(w, bias, fc);
    void *buf;
    size_t size;
    lp_error err = {0};
    cr_assert_eq(lp_safetensors_encode(model_refs, 3, NULL, NULL, 0, &buf, &size, &err), LP_OK);

    float big[8 * 9] = {0}, b2[4], fc2[40];
    init_refs(big, b2, fc2);
    model_refs[0].shape = lp_shape4(8, 1, 3, 3);
    cr_assert_eq(lp_safetensors_decode_into(buf, size, model_refs, 3, "m.safetensors", &err), LP_ERR_SHAPE);
    cr_assert_str_eq(err.msg, "m.safetensors tensor 'conv1.weight' has shape [4, 1, 3, 3], model expects [8, 1, 3, 3]");
    cr_assert_eq(big[0], 0.0f);

    lp_error_clear(&err);
    init_refs(big, b2, fc2);
    model_refs[1].name = "conv2.bias";
    cr_assert_eq(lp_safetensors_decode_into(buf, size, model_refs, 3, "m.safetensors", &err), LP_ERR_DATA);
    cr_assert(strstr(err.msg, "no tensor 'conv2.bias'"), "%s", err.msg);
    free(buf);
}

/* Build a file from a literal header and `data` bytes of zeros. */
static lp_status try_header(const char *header, size_t data, lp_error *err)
{
    size_t hl = strlen(header);
    unsigned char *b = calloc(1, 8 + hl + data);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, header, hl);
    float x[4], y[2];
    lp_tensor_ref m[] = {{"a", lp_shape1(4), x}, {"b", lp_shape1(2), y}};
    lp_error_clear(err);
    lp_status s = lp_safetensors_decode_into(b, 8 + hl + data, m, 2, "t.safetensors", err);
    free(b);
    return s;
}

#define GOOD_B "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[16,24]}"

Test(safetensors, hostile_headers_are_refused)
{
    lp_error err;
    cr_assert_eq(try_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}," GOOD_B "}", 24, &err),
                 LP_OK, "%s", err.msg);
    struct { const char *h; size_t data; const char *needle; } bad[] = {
        {"{\"a\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,8]}," GOOD_B "}", 24, "dtype F16"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}," GOOD_B "}", 20, "run past"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16, "overlap"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}," GOOD_B "}", 24, "unused data bytes"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,12]}," GOOD_B "}", 24, "do not hold"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}," GOOD_B "}", 28, "after the last"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}," GOOD_B ",}", 24, "malformed"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}," GOOD_B "} x", 24, "trailing"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},\"a\":{}}", 24, "duplicate key"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,16]}," GOOD_B "}", 24, "not a size"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4.0],\"data_offsets\":[0,16]}," GOOD_B "}", 24, "not a size"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16],\"x\":1}," GOOD_B "}", 24, "unknown field"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,99999999999999999999]}," GOOD_B "}", 24, "data_offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}," GOOD_B "}", 24, "'a' has shape [2, 2], model expects [4]"},
        {"{\"__metadata__\":{\"k\":1},\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}," GOOD_B "}", 24, "not a string"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}," GOOD_B ",\"c\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[24,28]}}", 28, "'c' is not a tensor of this model"},
        {"{\"a\":[[[[[[[[[[[[1]]]]]]]]]]]]}", 0, "too deep"},
        {"{\"a\\ud800\":1}", 0, "escape"},
        {"{\"a\xc3\x28\":1}", 0, "UTF-8"},
        {"[1]", 0, "start with"},
        {"{\"a\" 1}", 0, "':'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lp_status s = try_header(bad[i].h, bad[i].data, &err);
        cr_assert_neq(s, LP_OK, "header %zu accepted: %s", i, bad[i].h);
        cr_assert(strstr(err.msg, bad[i].needle), "header %zu: expected '%s' in: %s", i, bad[i].needle, err.msg);
    }
}

Test(safetensors, absurd_header_length_is_refused)
{
    unsigned char b[16] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F, '{', '}'};
    lp_error err = {0};
    cr_assert_eq(lp_safetensors_decode_into(b, sizeof b, NULL, 0, "x", &err), LP_ERR_DATA);
    cr_assert(strstr(err.msg, "absurd"), "%s", err.msg);
    lp_error_clear(&err);
    cr_assert_eq(lp_safetensors_decode_into(b, 5, NULL, 0, "x", &err), LP_ERR_DATA);
    cr_assert(strstr(err.msg, "too short"), "%s", err.msg);
}

Test(safetensors, write_failure_leaves_no_temp_file)
{
    lp_error err = {0};
    float x[1] = {1};
    lp_tensor_ref t[] = {{"x", lp_shape1(1), x}};
    cr_assert_eq(lp_safetensors_write("/nonexistent-dir/m.safetensors", t, 1, NULL, NULL, 0, &err), LP_ERR_IO);
    cr_assert(strstr(err.msg, "/nonexistent-dir/m.safetensors"), "%s", err.msg);
}

/* Every truncation is refused, and no single-byte change of the header crashes
 * the reader or is silently accepted with different tensors. */
Test(safetensors, truncations_and_header_flips)
{
    fill();
    init_refs(w, bias, fc);
    void *buf;
    size_t size;
    lp_error err = {0};
    cr_assert_eq(lp_safetensors_encode(model_refs, 3, NULL, NULL, 0, &buf, &size, &err), LP_OK);
    float w2[36], b2[4], fc2[40];
    init_refs(w2, b2, fc2);
    for (size_t n = 0; n < size; n++) {
        lp_error_clear(&err);
        cr_assert_neq(lp_safetensors_decode_into(buf, n, model_refs, 3, "t", &err), LP_OK, "truncation to %zu", n);
    }
    unsigned char *b = buf;
    size_t hlen = b[0] | (size_t)b[1] << 8;
    for (size_t i = 0; i < 8 + hlen; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            b[i] ^= (unsigned char)(1u << bit);
            lp_error_clear(&err);
            memset(w2, 0, sizeof w2);
            lp_status s = lp_safetensors_decode_into(buf, size, model_refs, 3, "t", &err);
            /* Accepted only if the flip was harmless (e.g. inside padding spaces or metadata). */
            if (s == LP_OK) cr_assert_eq(memcmp(w2, w, sizeof w), 0, "flip at %zu accepted with other data", i);
            else cr_assert(err.msg[0]);
            b[i] ^= (unsigned char)(1u << bit);
        }
    }
    free(buf);
}
