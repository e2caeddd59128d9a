/* fuzz_model.h - the fixed model the checkpoint and safetensors fuzz targets load
 * into, and their seed generator writes: a tiny conv + dense net's tensors
 * (conv1 2x1x2x2 + bias, fc 3x8 + bias) and SGD momentum state for each.
 * Static storage: fuzz_model_refs() hands out views of it. */
#ifndef LP_FUZZ_MODEL_H
#define LP_FUZZ_MODEL_H

#include "checkpoint.h"

#define FUZZ_MODEL_N 4

static float fuzz_model_data[2][8 + 2 + 24 + 3];

/* params (state = 0) or momentum state (state = 1) of the fixed model. */
static void fuzz_model_refs(int state, lp_tensor_ref out[FUZZ_MODEL_N])
{
    static const char *const names[2][FUZZ_MODEL_N] = {
        {"conv1.weight", "conv1.bias", "fc.weight", "fc.bias"},
        {"conv1.weight.momentum", "conv1.bias.momentum", "fc.weight.momentum", "fc.bias.momentum"}};
    const lp_shape shapes[FUZZ_MODEL_N] = {
        {4, {2, 1, 2, 2}}, {1, {2}}, {2, {3, 8}}, {1, {3}}};
    float *p = fuzz_model_data[state];
    for (int i = 0; i < FUZZ_MODEL_N; i++) {
        out[i] = (lp_tensor_ref){names[state][i], shapes[i], p};
        long long n = 1;
        for (int d = 0; d < shapes[i].ndim; d++) n *= shapes[i].dims[d];
        p += n;
    }
}

#endif
