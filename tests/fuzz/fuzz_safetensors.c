/* fuzz_safetensors.c - libFuzzer target: bytes -> lp_safetensors_decode_into a
 * fixed model (fuzz_model.h): the 8-byte header length, the JSON header parser
 * (UTF-8, depth, duplicates, numbers), dtype/shape/offset checks and the copy.
 *
 * Invariant besides memory safety: a refusal carries a message and leaves the
 * model untouched (all-or-nothing load).
 */
#include "fuzz_model.h"
#include "safetensors.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef LP_FUZZ_ENTRY
#define LP_FUZZ_ENTRY LLVMFuzzerTestOneInput
#endif

int LP_FUZZ_ENTRY(const uint8_t *data, size_t size);
int LP_FUZZ_ENTRY(const uint8_t *data, size_t size)
{
    lp_tensor_ref model[FUZZ_MODEL_N];
    fuzz_model_refs(0, model);
    /* A sentinel pattern: a refused load must leave it as it was. */
    float *block = fuzz_model_data[0];
    size_t nblock = sizeof fuzz_model_data[0] / sizeof(float);
    for (size_t i = 0; i < nblock; i++) block[i] = -7.25f;
    lp_error err = {0};
    lp_status s = lp_safetensors_decode_into(data, size, model, FUZZ_MODEL_N, "fuzz.safetensors", &err);
    if (s) {
        if (!err.msg[0] || err.status != s) {
            fprintf(stderr, "fuzz_safetensors: status %d without its message\n", (int)s);
            abort();
        }
        for (size_t i = 0; i < nblock; i++)
            if (block[i] != -7.25f) {
                fprintf(stderr, "fuzz_safetensors: a refused load changed the model\n");
                abort();
            }
    }
    return 0;
}
