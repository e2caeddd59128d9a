#include "shape.h"

#include <assert.h>
#include <stdio.h>

lp_shape lp_shape_make(int ndim, const int *dims)
{
    assert(ndim >= 0 && ndim <= LP_MAX_DIMS);
    lp_shape s = {.ndim = ndim};
    for (int i = 0; i < ndim; i++) s.dims[i] = dims[i];
    return s;
}

lp_shape lp_shape1(int a) { return (lp_shape){.ndim = 1, .dims = {a}}; }
lp_shape lp_shape3(int c, int h, int w) { return (lp_shape){.ndim = 3, .dims = {c, h, w}}; }
lp_shape lp_shape4(int a, int b, int c, int d) { return (lp_shape){.ndim = 4, .dims = {a, b, c, d}}; }

long long lp_shape_numel(lp_shape s)
{
    long long n = 1;
    for (int i = 0; i < s.ndim; i++) {
        if (s.dims[i] < 1) return -1;
        if (n > LP_MAX_ELEMENTS / s.dims[i]) return -1;
        n *= s.dims[i];
    }
    return n;
}

bool lp_shape_equal(lp_shape a, lp_shape b)
{
    if (a.ndim != b.ndim) return false;
    for (int i = 0; i < a.ndim; i++)
        if (a.dims[i] != b.dims[i]) return false;
    return true;
}

const char *lp_shape_str(lp_shape s, char *buf, size_t size)
{
    size_t n = 0;
    n += (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < s.ndim && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, i ? ", %d" : "%d", s.dims[i]);
    if (n < size) snprintf(buf + n, size - n, "]");
    return buf;
}
