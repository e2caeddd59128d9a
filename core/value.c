#include "value.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static lp_value *value_new(lp_value_kind kind, lp_loc loc)
{
    lp_value *v = calloc(1, sizeof *v);
    if (!v) return NULL;
    v->kind = kind;
    v->loc = loc;
    return v;
}

lp_value *lp_value_new_scalar(const char *text, lp_loc loc)
{
    lp_value *v = value_new(LP_VALUE_SCALAR, loc);
    if (!v) return NULL;
    v->text = strdup(text ? text : "");
    if (!v->text) { free(v); return NULL; }
    return v;
}

lp_value *lp_value_new_list(lp_loc loc) { return value_new(LP_VALUE_LIST, loc); }
lp_value *lp_value_new_map(lp_loc loc) { return value_new(LP_VALUE_MAP, loc); }

void lp_value_free(lp_value *v)
{
    if (!v) return;
    for (int i = 0; i < v->count; i++) {
        lp_value_free(v->items[i]);
        if (v->keys) free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->key_locs);
    free(v->text);
    free(v);
}

static int value_grow(lp_value *v)
{
    if (v->count < v->capacity) return 0;
    int cap = v->capacity ? v->capacity * 2 : 4;
    lp_value **items = realloc(v->items, (size_t)cap * sizeof *items);
    if (!items) return -1;
    v->items = items;
    if (v->kind == LP_VALUE_MAP) {
        char **keys = realloc(v->keys, (size_t)cap * sizeof *keys);
        if (!keys) return -1;
        v->keys = keys;
        lp_loc *locs = realloc(v->key_locs, (size_t)cap * sizeof *locs);
        if (!locs) return -1;
        v->key_locs = locs;
    }
    v->capacity = cap;
    return 0;
}

int lp_value_list_push(lp_value *list, lp_value *item)
{
    if (!item || value_grow(list)) { lp_value_free(item); return -1; }
    list->items[list->count++] = item;
    return 0;
}

int lp_value_map_set(lp_value *map, const char *key, lp_loc key_loc, lp_value *item)
{
    if (!item) return -1;
    int i = lp_value_find(map, key);
    if (i >= 0) {
        lp_value_free(map->items[i]);
        map->items[i] = item;
        map->key_locs[i] = key_loc;
        return 0;
    }
    char *k = strdup(key);
    if (!k || value_grow(map)) { free(k); lp_value_free(item); return -1; }
    map->keys[map->count] = k;
    map->key_locs[map->count] = key_loc;
    map->items[map->count++] = item;
    return 0;
}

lp_value *lp_value_clone(const lp_value *v)
{
    if (!v) return NULL;
    lp_value *c = v->kind == LP_VALUE_SCALAR ? lp_value_new_scalar(v->text, v->loc)
                                             : value_new(v->kind, v->loc);
    if (!c) return NULL;
    c->quoted = v->quoted;
    for (int i = 0; i < v->count; i++) {
        lp_value *item = lp_value_clone(v->items[i]);
        int rc = v->kind == LP_VALUE_MAP ? lp_value_map_set(c, v->keys[i], v->key_locs[i], item)
                                         : lp_value_list_push(c, item);
        if (rc) { lp_value_free(c); return NULL; }
    }
    return c;
}

int lp_value_find(const lp_value *map, const char *key)
{
    if (!map || map->kind != LP_VALUE_MAP) return -1;
    for (int i = 0; i < map->count; i++)
        if (strcmp(map->keys[i], key) == 0) return i;
    return -1;
}

lp_value *lp_value_get(lp_value *map, const char *key)
{
    int i = lp_value_find(map, key);
    if (i < 0) return NULL;
    map->items[i]->used = true;
    return map->items[i];
}

lp_value *lp_value_path(lp_value *root, const char *dotted)
{
    char part[256];
    lp_value *v = root;
    const char *p = dotted;
    while (v && *p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (n >= sizeof part) return NULL;
        memcpy(part, p, n);
        part[n] = '\0';
        v = lp_value_get(v, part);
        p = dot ? dot + 1 : p + n;
    }
    return v;
}

const char *lp_value_kind_name(lp_value_kind kind)
{
    switch (kind) {
    case LP_VALUE_SCALAR: return "a scalar";
    case LP_VALUE_LIST: return "a list";
    case LP_VALUE_MAP: return "a map";
    }
    return "a value";
}

static lp_status expect_scalar(const lp_value *v, const char *what, const char *expected,
                               lp_error *err)
{
    if (v->kind == LP_VALUE_SCALAR) return LP_OK;
    return lp_error_at(err, LP_ERR_CONFIG, v->loc, "%s: expected %s, found %s", what, expected,
                       lp_value_kind_name(v->kind));
}

lp_status lp_value_as_int(const lp_value *v, const char *what, long long *out, lp_error *err)
{
    if (expect_scalar(v, what, "an integer", err)) return LP_ERR_CONFIG;
    const char *s = v->text;
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (v->quoted || end == s || *end != '\0' || isspace((unsigned char)*s))
        return lp_error_at(err, LP_ERR_CONFIG, v->loc, "%s: expected an integer, found '%s'",
                           what, s);
    if (errno == ERANGE)
        return lp_error_at(err, LP_ERR_CONFIG, v->loc, "%s: integer '%s' is out of range", what,
                           s);
    *out = x;
    return LP_OK;
}

lp_status lp_value_as_double(const lp_value *v, const char *what, double *out, lp_error *err)
{
    if (expect_scalar(v, what, "a number", err)) return LP_ERR_CONFIG;
    const char *s = v->text;
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (v->quoted || end == s || *end != '\0' || isspace((unsigned char)*s) || !isfinite(x))
        return lp_error_at(err, LP_ERR_CONFIG, v->loc, "%s: expected a finite number, found '%s'",
                           what, s);
    *out = x;
    return LP_OK;
}

lp_status lp_value_as_bool(const lp_value *v, const char *what, bool *out, lp_error *err)
{
    if (expect_scalar(v, what, "true or false", err)) return LP_ERR_CONFIG;
    const char *s = v->text;
    if (!v->quoted && (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "yes"))) {
        *out = true;
        return LP_OK;
    }
    if (!v->quoted && (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "no"))) {
        *out = false;
        return LP_OK;
    }
    return lp_error_at(err, LP_ERR_CONFIG, v->loc, "%s: expected true or false, found '%s'", what,
                       s);
}

lp_status lp_value_as_string(const lp_value *v, const char *what, const char **out, lp_error *err)
{
    if (expect_scalar(v, what, "a string", err)) return LP_ERR_CONFIG;
    *out = v->text;
    return LP_OK;
}

/* Optimal-string-alignment distance: insertions, deletions, substitutions and
 * swaps of neighbours ("inti" -> "init" is one typo, not two). Case-insensitive. */
static int edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64) return 1000;
    int d[65][65];
    for (size_t i = 0; i <= la; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            int ca = tolower((unsigned char)a[i - 1]), cb = tolower((unsigned char)b[j - 1]);
            int best = d[i - 1][j - 1] + (ca != cb);
            if (d[i - 1][j] + 1 < best) best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && ca == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == cb && d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[la][lb];
}

const char *lp_did_you_mean(const char *word, const char *const *candidates)
{
    if (!candidates) return NULL;
    const char *best = NULL;
    int best_d = 1000;
    for (int i = 0; candidates[i]; i++) {
        int d = edit_distance(word, candidates[i]);
        if (d < best_d) { best_d = d; best = candidates[i]; }
    }
    int allowed = strlen(word) <= 4 ? 1 : strlen(word) <= 8 ? 2 : 3;
    return best_d <= allowed ? best : NULL;
}

lp_status lp_value_check_used(const lp_value *map, const char *prefix, const char *const *known,
                              lp_error *err)
{
    if (!map || map->kind != LP_VALUE_MAP) return LP_OK;
    for (int i = 0; i < map->count; i++) {
        if (map->items[i]->used) continue;
        const char *key = map->keys[i];
        const char *hint = lp_did_you_mean(key, known);
        char expected[512] = "";
        if (!hint && known && known[0]) {
            size_t n = (size_t)snprintf(expected, sizeof expected, " (expected one of:");
            for (int k = 0; known[k] && n < sizeof expected; k++)
                n += (size_t)snprintf(expected + n, sizeof expected - n, " %s", known[k]);
            if (n < sizeof expected) snprintf(expected + n, sizeof expected - n, ")");
        }
        return lp_error_at(err, LP_ERR_CONFIG, map->key_locs[i], "unknown key '%s%s%s'%s%s%s%s",
                           prefix && *prefix ? prefix : "", prefix && *prefix ? "." : "", key,
                           hint ? ": did you mean '" : "", hint ? hint : "", hint ? "'?" : "",
                           expected);
    }
    return LP_OK;
}
