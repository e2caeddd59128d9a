/* Checkpoint format: round trip, refusals of every truncation and of byte flips,
 * structural checks that stand even when the CRC is recomputed, and loading into
 * a model's (name, shape) list. */
#include "checkpoint.h"
#include "shape.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static float w1[2 * 3 * 3 * 3], b1[2], m1[2 * 3 * 3 * 3], mb1[2];

static int make_checkpoint(void **buf, size_t *size, lp_resume_state *rs)
{
    for (size_t i = 0; i < sizeof w1 / sizeof w1[0]; i++) {
        w1[i] = (float)i * 0.25f - 3.0f;
        m1[i] = -(float)i;
    }
    b1[0] = 1.5f;
    b1[1] = NAN;   /* bits must survive, even NaN */
    mb1[0] = INFINITY;
    mb1[1] = -0.0f;
    lp_tensor_ref params[] = {{"conv1.weight", lp_shape4(2, 3, 3, 3), w1}, {"conv1.bias", lp_shape1(2), b1}};
    lp_tensor_ref states[] = {{"conv1.weight.momentum", lp_shape4(2, 3, 3, 3), m1},
                              {"conv1.bias.momentum", lp_shape1(2), mb1}};
    *rs = (lp_resume_state){.epoch = 3, .step = 2811, .rng = {1, 2, 0xFFFFFFFFFFFFFFFFull, 4},
                            .lr = 0.05, .schedule_pos = 3.0, .plateau_lr = 0.0125, .plateau_best = -INFINITY,
                            .plateau_bad_epochs = 2, .plateau_cooldown = 1, .select_best = 0.98765432109876,
                            .select_best_epoch = 2, .select_bad_epochs = 1};
    lp_error err = {0};
    lp_status s = lp_checkpoint_encode(params, 2, states, 2, rs, buf, size, &err);
    cr_assert_eq(s, LP_OK, "%s", err.msg);
    return 0;
}

Test(checkpoint, round_trip_is_bit_exact)
{
    void *buf;
    size_t size;
    lp_resume_state rs;
    make_checkpoint(&buf, &size, &rs);
    cr_assert_eq(lp_checkpoint_peek_version(buf, size), LP_CHECKPOINT_VERSION);
    lp_checkpoint ck;
    lp_error err = {0};
    cr_assert_eq(lp_checkpoint_decode(buf, size, &ck, &err), LP_OK, "%s", err.msg);
    cr_assert_eq(ck.n_params, 2);
    cr_assert_eq(ck.n_states, 2);
    cr_assert_str_eq(ck.params[0].name, "conv1.weight");
    cr_assert_str_eq(ck.states[1].name, "conv1.bias.momentum");
    cr_assert(lp_shape_equal(ck.params[0].shape, lp_shape4(2, 3, 3, 3)));
    cr_assert_eq(memcmp(ck.params[0].data, w1, sizeof w1), 0);
    cr_assert_eq(memcmp(ck.params[1].data, b1, sizeof b1), 0);
    cr_assert_eq(memcmp(ck.states[0].data, m1, sizeof m1), 0);
    cr_assert_eq(memcmp(ck.states[1].data, mb1, sizeof mb1), 0);
    cr_assert_eq(ck.resume.epoch, 3);
    cr_assert_eq(ck.resume.step, 2811);
    cr_assert_eq(ck.resume.rng[2], 0xFFFFFFFFFFFFFFFFull);
    cr_assert_eq(ck.resume.lr, 0.05);
    cr_assert(ck.resume.has_v2_state);
    cr_assert_eq(ck.resume.plateau_lr, 0.0125);
    cr_assert(isinf(ck.resume.plateau_best) && ck.resume.plateau_best < 0);
    cr_assert_eq(ck.resume.plateau_bad_epochs, 2);
    cr_assert_eq(ck.resume.plateau_cooldown, 1);
    cr_assert_eq(ck.resume.select_best, 0.98765432109876);
    cr_assert_eq(ck.resume.select_best_epoch, 2);
    cr_assert_eq(ck.resume.select_bad_epochs, 1);
    lp_checkpoint_free(&ck);
    free(buf);
}

/* A version 1 checkpoint (64-byte resume record, before the plateau and early-stop
 * state) still loads: made here from a version 2 one by dropping that state. */
Test(checkpoint, version_1_still_decodes)
{
    void *buf;
    size_t size;
    lp_resume_state rs;
    make_checkpoint(&buf, &size, &rs);
    unsigned char *b = buf;
    size_t v1 = size - 56;   /* 7 fields of 8 bytes less */
    b[4] = 1;
    size_t rlen_at = size - 4 - 120 - 4;
    b[rlen_at] = 64;
    uint32_t crc = lp_crc32(b, v1 - 4);
    for (int i = 0; i < 4; i++) b[v1 - 4 + i] = (unsigned char)(crc >> (8 * i));
    lp_checkpoint ck;
    lp_error err = {0};
    cr_assert_eq(lp_checkpoint_decode(b, v1, &ck, &err), LP_OK, "%s", err.msg);
    cr_assert_eq(ck.version, 1);
    cr_assert_eq(ck.resume.step, 2811);
    cr_assert_eq(ck.resume.schedule_pos, 3.0);
    cr_assert_not(ck.resume.has_v2_state);
    cr_assert_eq(ck.resume.select_best_epoch, 0);
    lp_checkpoint_free(&ck);
    free(buf);
}

Test(checkpoint, every_truncation_is_refused)
{
    void *buf;
    size_t size;
    lp_resume_state rs;
    make_checkpoint(&buf, &size, &rs);
    for (size_t n = 0; n < size; n++) {
        lp_checkpoint ck;
        lp_error err = {0};
        lp_status s = lp_checkpoint_decode(buf, n, &ck, &err);
        cr_assert_eq(s, LP_ERR_DATA, "truncation to %zu bytes accepted", n);
        cr_assert(err.msg[0]);
        cr_assert_null(ck.params);
    }
    free(buf);
}

Test(checkpoint, every_single_byte_flip_is_refused)
{
    void *buf;
    size_t size;
    lp_resume_state rs;
    make_checkpoint(&buf, &size, &rs);
    unsigned char *b = buf;
    unsigned seed = 12345;
    for (size_t i = 0; i < size; i++) {
        seed = seed * 1103515245u + 12345u;
        unsigned char mask = (unsigned char)(1u << ((seed >> 16) % 8));
        b[i] ^= mask;
        lp_checkpoint ck;
        lp_error err = {0};
        cr_assert_eq(lp_checkpoint_decode(buf, size, &ck, &err), LP_ERR_DATA, "flip at byte %zu accepted", i);
        b[i] ^= mask;
    }
    free(buf);
}

/* Patch a field and recompute the CRC: the structural checks must still refuse. */
static void expect_refused_with_crc(unsigned char *b, size_t size, const char *needle)
{
    uint32_t crc = lp_crc32(b, size - 4);
    for (int i = 0; i < 4; i++) b[size - 4 + i] = (unsigned char)(crc >> (8 * i));
    lp_checkpoint ck;
    lp_error err = {0};
    cr_assert_eq(lp_checkpoint_decode(b, size, &ck, &err), LP_ERR_DATA);
    cr_assert(strstr(err.msg, needle), "expected '%s' in: %s", needle, err.msg);
}

Test(checkpoint, structure_is_checked_even_with_a_valid_crc)
{
    void *buf;
    size_t size;
    lp_resume_state rs;
    make_checkpoint(&buf, &size, &rs);
    unsigned char *b = malloc(size);
    /* header: 20 bytes; first tensor: u16 name_len at 20, name (12) at 22, ndim at 34, dims at 38 */
    memcpy(b, buf, size);
    b[20] = 0xFF; b[21] = 0xFF;
    expect_refused_with_crc(b, size, "name length");
    memcpy(b, buf, size);
    b[34] = 9;
    expect_refused_with_crc(b, size, "dimensions");
    memcpy(b, buf, size);
    b[38] = 0; /* first dim 2 -> 0 */
    expect_refused_with_crc(b, size, "dimension 0 is 0");
    memcpy(b, buf, size);
    b[38] = 0; b[39] = 0; b[40] = 0; b[41] = 1;   /* dim 2^24: data cannot fit */
    expect_refused_with_crc(b, size, "remain");
    memcpy(b, buf, size);
    b[12] = 0xFF; b[13] = 0xFF; b[14] = 0x0F;   /* n_params = 1048575 */
    expect_refused_with_crc(b, size, "tensors");
    memcpy(b, buf, size);
    b[12] = 3;   /* one tensor more than present: runs into the resume record */
    expect_refused_with_crc(b, size, "corrupt checkpoint");
    memcpy(b, buf, size);
    b[4] = 3;    /* unknown version */
    lp_checkpoint ck;
    lp_error err = {0};
    cr_assert_eq(lp_checkpoint_decode(b, size, &ck, &err), LP_ERR_DATA);
    cr_assert(strstr(err.msg, "version 3"), "%s", err.msg);
    memcpy(b, buf, size);
    b[38] = 0xFF; b[39] = 0xFF; b[40] = 0xFF; b[41] = 0x7F;   /* element count overflows */
    expect_refused_with_crc(b, size, "more than");
    free(b);
    free(buf);
}

Test(checkpoint, duplicate_names_are_refused)
{
    float x[1] = {0};
    lp_tensor_ref t[] = {{"a", lp_shape1(1), x}, {"a", lp_shape1(1), x}};
    void *buf;
    size_t size;
    lp_error err = {0};
    cr_assert_eq(lp_checkpoint_encode(t, 2, NULL, 0, NULL, &buf, &size, &err), LP_ERR_ARG);
    cr_assert(strstr(err.msg, "'a' appears twice"), "%s", err.msg);
}

Test(checkpoint, load_into_model_checks_names_and_shapes)
{
    void *buf;
    size_t size;
    lp_resume_state rs;
    make_checkpoint(&buf, &size, &rs);
    lp_checkpoint ck;
    lp_error err = {0};
    cr_assert_eq(lp_checkpoint_decode(buf, size, &ck, &err), LP_OK, "%s", err.msg);

    float w[2 * 3 * 3 * 3] = {0}, b[2] = {0}, big[4 * 3 * 3 * 3] = {0};
    lp_tensor_ref ok[] = {{"conv1.bias", lp_shape1(2), b}, {"conv1.weight", lp_shape4(2, 3, 3, 3), w}};
    cr_assert_eq(lp_tensors_load(ck.params, ck.n_params, ok, 2, "checkpoint", &err), LP_OK, "%s", err.msg);
    cr_assert_eq(memcmp(w, w1, sizeof w), 0);
    cr_assert_eq(memcmp(b, b1, sizeof b), 0);

    lp_tensor_ref wrong[] = {{"conv1.weight", lp_shape4(4, 3, 3, 3), big}, {"conv1.bias", lp_shape1(2), b}};
    cr_assert_eq(lp_tensors_load(ck.params, ck.n_params, wrong, 2, "checkpoint", &err), LP_ERR_SHAPE);
    cr_assert_str_eq(err.msg, "checkpoint tensor 'conv1.weight' has shape [2, 3, 3, 3], model expects [4, 3, 3, 3]");
    cr_assert_eq(big[0], 0.0f, "a refused load must not write");

    lp_error_clear(&err);
    lp_tensor_ref missing[] = {{"conv1.weight", lp_shape4(2, 3, 3, 3), w}, {"fc1.bias", lp_shape1(2), b}};
    cr_assert_eq(lp_tensors_load(ck.params, ck.n_params, missing, 2, "checkpoint", &err), LP_ERR_DATA);
    cr_assert(strstr(err.msg, "no tensor 'fc1.bias'"), "%s", err.msg);

    lp_error_clear(&err);
    cr_assert_eq(lp_tensors_load(ck.params, ck.n_params, ok, 1, "checkpoint", &err), LP_ERR_DATA);
    cr_assert(strstr(err.msg, "'conv1.weight' is not a tensor of this model"), "%s", err.msg);
    lp_checkpoint_free(&ck);
    free(buf);
}
