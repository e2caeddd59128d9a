/* lp_base.h - the few plain types every floor of loupe shares.
 *
 * Installed next to loupe_op.h, so a plugin sees exactly these definitions.
 * Nothing here allocates; everything is a value type.
 */
#ifndef LP_BASE_H
#define LP_BASE_H

#include <stddef.h>
#include <stdint.h>

/* Result of anything a user's input can make fail. Programmer mistakes are asserts. */
typedef enum lp_status {
    LP_OK = 0,
    LP_ERR_ARG,         /* bad command-line argument or API use with user data */
    LP_ERR_CONFIG,      /* YAML syntax, unknown key, wrong type, bad value */
    LP_ERR_SHAPE,       /* shapes that do not fit, sizes that overflow */
    LP_ERR_IO,          /* file missing, unreadable, short read */
    LP_ERR_DATA,        /* a data/checkpoint file that is corrupt or inconsistent */
    LP_ERR_DB,          /* SQLite said no */
    LP_ERR_NOMEM,       /* allocation failed */
    LP_ERR_PLUGIN,      /* plugin could not be loaded or registered */
    LP_ERR_NUMERIC,     /* NaN/Inf in the loss */
    LP_ERR_INTERRUPTED  /* Ctrl-C / SIGTERM */
} lp_status;

/* Largest rank of a tensor, batch dimension included. */
#define LP_MAX_DIMS 4

/* A shape. For graph nodes it is the per-sample shape (C,H,W or units):
 * the batch dimension is added at run time. */
typedef struct lp_shape {
    int ndim;
    int dims[LP_MAX_DIMS];
} lp_shape;

/* Where a value came from in a config file; line and col are 1-based, 0 = unknown. */
typedef struct lp_loc {
    const char *file;
    int line;
    int col;
} lp_loc;

#endif
