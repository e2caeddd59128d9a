/* error.h - errors that carry their context.
 *
 * A user's mistake (config, data, I/O, database) travels up as an lp_status plus an
 * lp_error holding one human sentence, prefixed with "file:line:col: " when it came
 * from a config. The first error set wins; callers add no noise on the way up.
 */
#ifndef LP_ERROR_H
#define LP_ERROR_H

#include "lp_base.h"

#define LP_ERROR_MSG_MAX 1024

typedef struct lp_error {
    lp_status status;
    char msg[LP_ERROR_MSG_MAX];
} lp_error;

/* Record status and a printf-style message in err (may be NULL). Returns status,
 * so `return lp_error_set(err, LP_ERR_IO, "cannot open %s", path);` reads well.
 * If err already holds an error, it is kept (the first cause is the useful one). */
lp_status lp_error_set(lp_error *err, lp_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Same, prefixed with "file:line:col: " from loc (parts that are unknown are left out). */
lp_status lp_error_at(lp_error *err, lp_status status, lp_loc loc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Forget any recorded error. */
void lp_error_clear(lp_error *err);

/* Short name of a status ("config error", "I/O error", ...). */
const char *lp_status_name(lp_status status);

/* Process exit code for a status: 0 ok, 2 usage/config, 3 data/IO, 4 db, 5 numeric,
 * 130 interrupted, 1 anything else. Documented in README; scripts rely on it. */
int lp_status_exit_code(lp_status status);

#endif
