/* shape.h - shape helpers with overflow checks. */
#ifndef LP_SHAPE_H
#define LP_SHAPE_H

#include "lp_base.h"
#include <stdbool.h>

/* Largest number of elements one tensor may hold (2^31-1: indexes stay in int). */
#define LP_MAX_ELEMENTS 2147483647LL

lp_shape lp_shape_make(int ndim, const int *dims);
lp_shape lp_shape1(int a);
lp_shape lp_shape3(int c, int h, int w);
lp_shape lp_shape4(int a, int b, int c, int d);

/* Elements in s; -1 if a dimension is < 1 or the product exceeds LP_MAX_ELEMENTS. */
long long lp_shape_numel(lp_shape s);

bool lp_shape_equal(lp_shape a, lp_shape b);

/* "[8, 26, 26]" into buf; returns buf. */
const char *lp_shape_str(lp_shape s, char *buf, size_t size);

#endif
