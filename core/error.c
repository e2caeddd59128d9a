#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static lp_status error_vset(lp_error *err, lp_status status, const char *prefix,
                            const char *fmt, va_list ap)
{
    if (!err || err->status != LP_OK) return status;
    err->status = status;
    size_t n = 0;
    if (prefix) {
        snprintf(err->msg, sizeof err->msg, "%s", prefix);
        n = strlen(err->msg);
    }
    vsnprintf(err->msg + n, sizeof err->msg - n, fmt, ap);
    return status;
}

lp_status lp_error_set(lp_error *err, lp_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_vset(err, status, NULL, fmt, ap);
    va_end(ap);
    return status;
}

lp_status lp_error_at(lp_error *err, lp_status status, lp_loc loc, const char *fmt, ...)
{
    char prefix[512] = "";
    if (loc.file && loc.line > 0)
        snprintf(prefix, sizeof prefix, "%s:%d:%d: ", loc.file, loc.line, loc.col);
    else if (loc.file)
        snprintf(prefix, sizeof prefix, "%s: ", loc.file);
    va_list ap;
    va_start(ap, fmt);
    error_vset(err, status, prefix, fmt, ap);
    va_end(ap);
    return status;
}

void lp_error_clear(lp_error *err)
{
    if (!err) return;
    err->status = LP_OK;
    err->msg[0] = '\0';
}

const char *lp_status_name(lp_status status)
{
    switch (status) {
    case LP_OK: return "ok";
    case LP_ERR_ARG: return "usage error";
    case LP_ERR_CONFIG: return "config error";
    case LP_ERR_SHAPE: return "shape error";
    case LP_ERR_IO: return "I/O error";
    case LP_ERR_DATA: return "data error";
    case LP_ERR_DB: return "database error";
    case LP_ERR_NOMEM: return "out of memory";
    case LP_ERR_PLUGIN: return "plugin error";
    case LP_ERR_NUMERIC: return "numeric error";
    case LP_ERR_INTERRUPTED: return "interrupted";
    }
    return "error";
}

int lp_status_exit_code(lp_status status)
{
    switch (status) {
    case LP_OK: return 0;
    case LP_ERR_ARG: case LP_ERR_CONFIG: case LP_ERR_SHAPE: case LP_ERR_PLUGIN: return 2;
    case LP_ERR_IO: case LP_ERR_DATA: return 3;
    case LP_ERR_DB: return 4;
    case LP_ERR_NUMERIC: return 5;
    case LP_ERR_INTERRUPTED: return 130;
    case LP_ERR_NOMEM: return 1;
    }
    return 1;
}
