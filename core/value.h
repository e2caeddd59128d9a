/* value.h - a config document as a tree of scalars, lists and maps, each with its
 * source location.
 *
 * The YAML reader produces it; `--set` overrides edit it; the model builder and the
 * ops read it. Scalars stay text until a reader asks for a type, so the error for
 * a wrong type can say what was written and where. Every node has a `used` flag:
 * after reading, any map entry nobody asked for is an "unknown key" error.
 */
#ifndef LP_VALUE_H
#define LP_VALUE_H

#include "error.h"
#include <stdbool.h>

typedef enum lp_value_kind { LP_VALUE_SCALAR, LP_VALUE_LIST, LP_VALUE_MAP } lp_value_kind;

typedef struct lp_value lp_value;
struct lp_value {
    lp_value_kind kind;
    lp_loc loc;
    bool used;          /* set by lookups; unknown-key checks read it */
    bool quoted;        /* scalar was quoted in the source: always a string */
    char *text;         /* LP_VALUE_SCALAR */
    int count;          /* items (list) or entries (map) */
    int capacity;
    lp_value **items;   /* list items, or map values */
    char **keys;        /* map keys (NULL for lists) */
    lp_loc *key_locs;   /* where each map key was written */
};

lp_value *lp_value_new_scalar(const char *text, lp_loc loc);
lp_value *lp_value_new_list(lp_loc loc);
lp_value *lp_value_new_map(lp_loc loc);
void lp_value_free(lp_value *v);
lp_value *lp_value_clone(const lp_value *v);

/* Append to a list. Returns 0, or -1 on OOM (item is then freed). */
int lp_value_list_push(lp_value *list, lp_value *item);
/* Add or replace key in a map (the old value is freed). -1 on OOM. */
int lp_value_map_set(lp_value *map, const char *key, lp_loc key_loc, lp_value *item);

/* Map lookup; marks the entry used. NULL if absent or v is not a map. */
lp_value *lp_value_get(lp_value *map, const char *key);
/* Index of key in map, or -1 (does not mark). */
int lp_value_find(const lp_value *map, const char *key);
/* Walk "a.b.c" through nested maps (marks each step). */
lp_value *lp_value_path(lp_value *root, const char *dotted);

/* Typed reads of a scalar; on a wrong type an LP_ERR_CONFIG error at v->loc names
 * `what` (e.g. "train.epochs") and what was expected. */
lp_status lp_value_as_int(const lp_value *v, const char *what, long long *out, lp_error *err);
lp_status lp_value_as_double(const lp_value *v, const char *what, double *out, lp_error *err);
lp_status lp_value_as_bool(const lp_value *v, const char *what, bool *out, lp_error *err);
lp_status lp_value_as_string(const lp_value *v, const char *what, const char **out, lp_error *err);

/* The first entry of map (this level only) whose key nobody asked for: an error at
 * its location naming `prefix.key`, with "did you mean 'x'?" taken from `known` (a
 * NULL-terminated list of accepted keys, may be NULL). LP_OK when all were used. */
lp_status lp_value_check_used(const lp_value *map, const char *prefix, const char *const *known,
                              lp_error *err);

/* The closest of candidates to word by edit distance, if close enough; else NULL. */
const char *lp_did_you_mean(const char *word, const char *const *candidates);

/* Human name of a kind: "a scalar", "a list", "a map". */
const char *lp_value_kind_name(lp_value_kind kind);

#endif
