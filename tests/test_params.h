/* test_params.h - parameters for Criterion's table-driven tests. Criterion runs each
 * parameter in a fresh process image (ASLR moves static data), so the parameters are
 * indexes into a test's table, never pointers into it. */
#ifndef LOUPE_TEST_PARAMS_H
#define LOUPE_TEST_PARAMS_H

#include <assert.h>
#include <stddef.h>

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static int indexes[128];

/* 0, 1, ..., n-1: pass to cr_make_param_array(int, index_params(n), n). */
static inline int *index_params(size_t n)
{
    assert(n <= COUNT(indexes));
    for (size_t i = 0; i < n; i++) indexes[i] = (int)i;
    return indexes;
}

#endif
