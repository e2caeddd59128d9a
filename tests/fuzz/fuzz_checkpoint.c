/* fuzz_checkpoint.c - libFuzzer target: bytes -> lp_checkpoint_decode ->
 * lp_tensors_load into a fixed model (fuzz_model.h), parameters and optimizer state.
 *
 * The CRC-32 trailer would stop almost every mutation at the first check, so an
 * input starting with 'C' has the rest used with its last 4 bytes replaced by
 * the correct CRC: the fuzzer then reaches every structural check behind it
 * (a forged CRC is easy, so those checks must stand on their own).
 *
 * Invariants besides memory safety: a refusal carries a message and leaves the
 * output zeroed; a decoded checkpoint's tensors all have valid shapes and names.
 */
#include "checkpoint.h"
#include "fuzz_model.h"
#include "shape.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef LP_FUZZ_ENTRY
#define LP_FUZZ_ENTRY LLVMFuzzerTestOneInput
#endif

static void fuzz_checkpoint_fail(const char *what)
{
    fprintf(stderr, "fuzz_checkpoint: %s\n", what);
    abort();
}

static void fuzz_checkpoint_check(const lp_tensor_ref *t, int n)
{
    for (int i = 0; i < n; i++) {
        long long numel = lp_shape_numel(t[i].shape);
        size_t len = strlen(t[i].name);
        if (numel < 1 || t[i].shape.ndim < 1 || t[i].shape.ndim > LP_MAX_DIMS || len < 1 ||
            len > LP_CHECKPOINT_NAME_MAX)
            fuzz_checkpoint_fail("decoded a tensor with an invalid shape or name");
        volatile float sum = 0;
        for (long long k = 0; k < numel; k++) sum += t[i].data[k];   /* ASan checks the extent */
    }
}

int LP_FUZZ_ENTRY(const uint8_t *data, size_t size);
int LP_FUZZ_ENTRY(const uint8_t *data, size_t size)
{
    unsigned char *fixed = NULL;
    if (size > 0 && data[0] == 'C') {
        size--;
        fixed = malloc(size ? size : 1);
        if (!fixed) return 0;
        memcpy(fixed, data + 1, size);
        if (size >= 4) {
            uint32_t crc = lp_crc32(fixed, size - 4);
            for (int i = 0; i < 4; i++) fixed[size - 4 + i] = (unsigned char)(crc >> (8 * i));
        }
        data = fixed;
    }
    lp_checkpoint ck;
    lp_error err = {0};
    lp_status s = lp_checkpoint_decode(data, size, &ck, &err);
    (void)lp_checkpoint_peek_version(data, size);
    if (s) {
        if (!err.msg[0] || err.status != s || ck.params || ck.states || ck.mem_)
            fuzz_checkpoint_fail("bad failure contract");
    } else {
        fuzz_checkpoint_check(ck.params, ck.n_params);
        fuzz_checkpoint_check(ck.states, ck.n_states);
        lp_tensor_ref params[FUZZ_MODEL_N], states[FUZZ_MODEL_N];
        fuzz_model_refs(0, params);
        fuzz_model_refs(1, states);
        lp_error e2 = {0};
        s = lp_tensors_load(ck.params, ck.n_params, params, FUZZ_MODEL_N, "checkpoint", &e2);
        if (s && (!e2.msg[0] || e2.status != s)) fuzz_checkpoint_fail("load: bad failure contract");
        lp_error_clear(&e2);
        s = lp_tensors_load(ck.states, ck.n_states, states, FUZZ_MODEL_N, "checkpoint", &e2);
        if (s && (!e2.msg[0] || e2.status != s)) fuzz_checkpoint_fail("load: bad failure contract");
        lp_checkpoint_free(&ck);
    }
    free(fixed);
    return 0;
}
