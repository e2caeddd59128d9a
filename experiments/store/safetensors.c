/* safetensors.c - writer, strict header parser, reader, atomic file write. */
#include "safetensors.h"
#include "shape.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define JSON_MAX_DEPTH 8    /* the header needs 3 */
#define ST_MAX_DIMS 16      /* dims we parse; more than LP_MAX_DIMS is refused later */

/* ---------------- a growable string for the writer ---------------- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

static void sb_fmt_u64(sbuf *b, unsigned long long v)
{
    char t[32];
    int n = snprintf(t, sizeof t, "%llu", v);
    sb_add(b, t, (size_t)n);
}

/* A JSON string literal: quotes, backslashes and control bytes escaped. */
static void sb_json_str(sbuf *b, const char *s)
{
    sb_add(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            char e[2] = {'\\', (char)*p};
            sb_add(b, e, 2);
        } else if (*p < 0x20) {
            char e[8];
            snprintf(e, sizeof e, "\\u%04x", *p);
            sb_add(b, e, 6);
        } else {
            sb_add(b, (const char *)p, 1);
        }
    }
    sb_add(b, "\"", 1);
}

/* ---------------- encode / write ---------------- */

lp_status lp_safetensors_encode(const lp_tensor_ref *t, int n, const char *const *meta_keys,
                                const char *const *meta_values, int n_meta, void **out, size_t *out_size,
                                lp_error *err)
{
    assert(out && out_size && n >= 0 && n_meta >= 0);
    *out = NULL;
    *out_size = 0;
    bool has_format = false;
    for (int i = 0; i < n_meta; i++) {
        if (!meta_keys[i] || !meta_values[i])
            return lp_error_set(err, LP_ERR_ARG, "safetensors metadata entry %d is NULL", i);
        if (strcmp(meta_keys[i], "format") == 0) has_format = true;
    }
    size_t data_len = 0;
    for (int i = 0; i < n; i++) {
        long long numel = lp_shape_numel(t[i].shape);
        if (!t[i].name || !t[i].name[0] || strcmp(t[i].name, "__metadata__") == 0)
            return lp_error_set(err, LP_ERR_ARG, "safetensors tensor %d: name must be non-empty and not "
                                "\"__metadata__\"", i);
        if (numel < 0 || t[i].shape.ndim < 1)
            return lp_error_set(err, LP_ERR_ARG, "safetensors tensor '%s' has an invalid shape", t[i].name);
        for (int j = 0; j < i; j++)
            if (strcmp(t[i].name, t[j].name) == 0)
                return lp_error_set(err, LP_ERR_ARG, "safetensors tensor '%s' appears twice", t[i].name);
        data_len += (size_t)numel * 4;
    }

    sbuf h = {0};
    sb_str(&h, "{\"__metadata__\":{");
    if (!has_format) sb_str(&h, "\"format\":\"pt\"");
    for (int i = 0; i < n_meta; i++) {
        if (i || !has_format) sb_str(&h, ",");
        sb_json_str(&h, meta_keys[i]);
        sb_str(&h, ":");
        sb_json_str(&h, meta_values[i]);
    }
    sb_str(&h, "}");
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        size_t bytes = (size_t)lp_shape_numel(t[i].shape) * 4;
        sb_str(&h, ",");
        sb_json_str(&h, t[i].name);
        sb_str(&h, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int d = 0; d < t[i].shape.ndim; d++) {
            if (d) sb_str(&h, ",");
            sb_fmt_u64(&h, (unsigned long long)t[i].shape.dims[d]);
        }
        sb_str(&h, "],\"data_offsets\":[");
        sb_fmt_u64(&h, off);
        sb_str(&h, ",");
        sb_fmt_u64(&h, off + bytes);
        sb_str(&h, "]}");
        off += bytes;
    }
    sb_str(&h, "}");
    while (h.len % 8) sb_str(&h, " ");   /* as the reference writer does: data 8-aligned */
    if (h.oom) {
        free(h.p);
        return lp_error_set(err, LP_ERR_NOMEM, "safetensors: out of memory building the header");
    }
    size_t total = 8 + h.len + data_len;
    unsigned char *buf = malloc(total);
    if (!buf) {
        free(h.p);
        return lp_error_set(err, LP_ERR_NOMEM, "safetensors: cannot allocate %zu bytes", total);
    }
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)h.len >> (8 * i));
    memcpy(buf + 8, h.p, h.len);
    unsigned char *p = buf + 8 + h.len;
    for (int i = 0; i < n; i++) {
        size_t cnt = (size_t)lp_shape_numel(t[i].shape);
        for (size_t k = 0; k < cnt; k++) {
            uint32_t v;
            memcpy(&v, &t[i].data[k], 4);
            p[0] = (unsigned char)v;
            p[1] = (unsigned char)(v >> 8);
            p[2] = (unsigned char)(v >> 16);
            p[3] = (unsigned char)(v >> 24);
            p += 4;
        }
    }
    free(h.p);
    *out = buf;
    *out_size = total;
    return LP_OK;
}

lp_status lp_file_write_atomic(const char *path, const void *buf, size_t size, lp_error *err)
{
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    if (!tmp) return lp_error_set(err, LP_ERR_NOMEM, "out of memory");
    snprintf(tmp, plen + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        lp_status s = lp_error_set(err, LP_ERR_IO, "cannot create a temporary file next to %s: %s", path,
                                   strerror(errno));
        free(tmp);
        return s;
    }
    const unsigned char *p = buf;
    size_t left = size;
    const char *step = NULL;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            step = "write";
            break;
        }
        p += w;
        left -= (size_t)w;
    }
    if (!step && fchmod(fd, 0644) != 0) step = "chmod";   /* mkstemp makes 0600 */
    if (!step && fsync(fd) != 0) step = "fsync";
    int e = errno;
    if (close(fd) != 0 && !step) {
        step = "close";
        e = errno;
    }
    if (!step && rename(tmp, path) != 0) {
        step = "rename";
        e = errno;
    }
    if (step) {
        unlink(tmp);
        free(tmp);
        return lp_error_set(err, LP_ERR_IO, "cannot write %s (%s failed: %s)", path, step,
                            strerror(e ? e : EIO));
    }
    free(tmp);
    /* The rename is durable only once the directory entry is on disk. */
    char *dir = strdup(path);
    if (dir) {
        char *slash = strrchr(dir, '/');
        const char *d = slash ? (slash == dir ? "/" : (*slash = '\0', dir)) : ".";
        int dfd = open(d, O_RDONLY | O_DIRECTORY);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
        free(dir);
    }
    return LP_OK;
}

lp_status lp_safetensors_write(const char *path, const lp_tensor_ref *tensors, int n,
                               const char *const *meta_keys, const char *const *meta_values, int n_meta,
                               lp_error *err)
{
    void *buf;
    size_t size;
    lp_status s = lp_safetensors_encode(tensors, n, meta_keys, meta_values, n_meta, &buf, &size, err);
    if (s) return s;
    s = lp_file_write_atomic(path, buf, size, err);
    free(buf);
    return s;
}

/* ---------------- a strict JSON parser, for the header only ---------------- */

typedef enum jkind { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } jkind;

typedef struct jval jval;
struct jval {
    jkind kind;
    size_t pos;          /* byte offset in the header, for messages */
    char *str;           /* J_STR (decoded UTF-8) */
    bool is_uint;        /* J_NUM: a non-negative integer that fits in u64 */
    uint64_t u;
    int n;               /* J_ARR / J_OBJ */
    jval **items;
    char **keys;         /* J_OBJ */
};

typedef struct jparser {
    const char *s;
    size_t len, i;
    const char *what;
    lp_error *err;
    bool failed;
} jparser;

static void jfree(jval *v)
{
    if (!v) return;
    for (int k = 0; k < v->n; k++) {
        jfree(v->items[k]);
        if (v->keys) free(v->keys[k]);
    }
    free(v->items);
    free(v->keys);
    free(v->str);
    free(v);
}

static jval *jfail(jparser *p, const char *msg)
{
    if (!p->failed)
        lp_error_set(p->err, LP_ERR_DATA, "%s: malformed safetensors header: %s at byte %zu", p->what, msg,
                     8 + p->i);
    p->failed = true;
    return NULL;
}

static void jws(jparser *p)
{
    while (p->i < p->len && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' ||
                             p->s[p->i] == '\r'))
        p->i++;
}

static bool utf8_valid(const unsigned char *s, size_t n, size_t *bad)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        int len;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            len = 2;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4;
            cp = c & 0x07;
        } else {
            *bad = i;
            return false;
        }
        if (i + (size_t)len > n) {
            *bad = i;
            return false;
        }
        for (int k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) {
                *bad = i;
                return false;
            }
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            *bad = i;
            return false;
        }
        i += (size_t)len;
    }
    return true;
}

static int hex4(const char *s)
{
    int v = 0;
    for (int k = 0; k < 4; k++) {
        char c = s[k];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= c - '0';
        else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
        else return -1;
    }
    return v;
}

static void put_utf8(char *o, size_t *n, uint32_t cp)
{
    if (cp < 0x80) {
        o[(*n)++] = (char)cp;
    } else if (cp < 0x800) {
        o[(*n)++] = (char)(0xC0 | (cp >> 6));
        o[(*n)++] = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        o[(*n)++] = (char)(0xE0 | (cp >> 12));
        o[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[(*n)++] = (char)(0x80 | (cp & 0x3F));
    } else {
        o[(*n)++] = (char)(0xF0 | (cp >> 18));
        o[(*n)++] = (char)(0x80 | ((cp >> 12) & 0x3F));
        o[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[(*n)++] = (char)(0x80 | (cp & 0x3F));
    }
}

/* A string literal at p->i (the opening quote); decoded, NUL-terminated. */
static char *jstring(jparser *p)
{
    p->i++;
    size_t start = p->i;
    while (p->i < p->len && p->s[p->i] != '"') p->i += p->s[p->i] == '\\' ? 2 : 1;
    if (p->i >= p->len) return (char *)jfail(p, "unterminated string");
    size_t end = p->i;
    char *o = malloc(end - start + 1);   /* escapes only shrink */
    if (!o) return (char *)jfail(p, "out of memory");
    size_t n = 0;
    for (size_t k = start; k < end; k++) {
        unsigned char c = (unsigned char)p->s[k];
        if (c < 0x20) {
            free(o);
            p->i = k;
            return (char *)jfail(p, "control character in a string");
        }
        if (c != '\\') {
            o[n++] = (char)c;
            continue;
        }
        char e = p->s[++k];
        switch (e) {
        case '"': o[n++] = '"'; break;
        case '\\': o[n++] = '\\'; break;
        case '/': o[n++] = '/'; break;
        case 'b': o[n++] = '\b'; break;
        case 'f': o[n++] = '\f'; break;
        case 'n': o[n++] = '\n'; break;
        case 'r': o[n++] = '\r'; break;
        case 't': o[n++] = '\t'; break;
        case 'u': {
            int hi = k + 4 < end ? hex4(p->s + k + 1) : -1;
            if (hi < 0) goto bad_escape;
            k += 4;
            uint32_t cp = (uint32_t)hi;
            if (cp >= 0xDC00 && cp <= 0xDFFF) goto bad_escape;
            if (cp >= 0xD800 && cp <= 0xDBFF) {   /* a surrogate pair must follow */
                int lo = k + 6 < end && p->s[k + 1] == '\\' && p->s[k + 2] == 'u' ? hex4(p->s + k + 3) : -1;
                if (lo < 0xDC00 || lo > 0xDFFF) goto bad_escape;
                k += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
            }
            if (cp == 0) goto bad_escape;   /* names are C strings */
            put_utf8(o, &n, cp);
            break;
        }
        default:
        bad_escape:
            free(o);
            p->i = k;
            return (char *)jfail(p, "invalid escape in a string");
        }
    }
    o[n] = '\0';
    p->i = end + 1;
    return o;
}

static jval *jnew(jparser *p, jkind kind)
{
    jval *v = calloc(1, sizeof *v);
    if (!v) return jfail(p, "out of memory");
    v->kind = kind;
    v->pos = p->i;
    return v;
}

static bool jpush(jparser *p, jval *parent, char *key, jval *item)
{
    jval **items = realloc(parent->items, (size_t)(parent->n + 1) * sizeof *items);
    if (items) parent->items = items;
    char **keys = parent->kind == J_OBJ && items ? realloc(parent->keys, (size_t)(parent->n + 1) * sizeof *keys)
                                                 : parent->keys;
    if (!items || (parent->kind == J_OBJ && !keys)) {
        free(key);
        jfree(item);
        jfail(p, "out of memory");
        return false;
    }
    parent->keys = keys;
    parent->items[parent->n] = item;
    if (keys) keys[parent->n] = key;
    parent->n++;
    return true;
}

static jval *jvalue(jparser *p, int depth);

static jval *jnumber(jparser *p)
{
    jval *v = jnew(p, J_NUM);
    if (!v) return NULL;
    size_t i = p->i;
    bool neg = false, frac = false;
    if (p->s[i] == '-') {
        neg = true;
        i++;
    }
    if (i >= p->len || p->s[i] < '0' || p->s[i] > '9') {
        jfree(v);
        return jfail(p, "invalid number");
    }
    if (p->s[i] == '0' && i + 1 < p->len && p->s[i + 1] >= '0' && p->s[i + 1] <= '9') {
        jfree(v);
        return jfail(p, "number with a leading zero");
    }
    bool overflow = false;
    uint64_t u = 0;
    while (i < p->len && p->s[i] >= '0' && p->s[i] <= '9') {
        unsigned dgt = (unsigned)(p->s[i] - '0');
        if (u > (UINT64_MAX - dgt) / 10) overflow = true;
        else u = u * 10 + dgt;
        i++;
    }
    if (i < p->len && p->s[i] == '.') {
        frac = true;
        i++;
        if (i >= p->len || p->s[i] < '0' || p->s[i] > '9') {
            jfree(v);
            return jfail(p, "invalid number");
        }
        while (i < p->len && p->s[i] >= '0' && p->s[i] <= '9') i++;
    }
    if (i < p->len && (p->s[i] == 'e' || p->s[i] == 'E')) {
        frac = true;
        i++;
        if (i < p->len && (p->s[i] == '+' || p->s[i] == '-')) i++;
        if (i >= p->len || p->s[i] < '0' || p->s[i] > '9') {
            jfree(v);
            return jfail(p, "invalid number");
        }
        while (i < p->len && p->s[i] >= '0' && p->s[i] <= '9') i++;
    }
    v->is_uint = !neg && !frac && !overflow;
    v->u = u;
    p->i = i;
    return v;
}

static jval *jcontainer(jparser *p, int depth, bool obj)
{
    jval *v = jnew(p, obj ? J_OBJ : J_ARR);
    if (!v) return NULL;
    char close = obj ? '}' : ']';
    p->i++;
    jws(p);
    if (p->i < p->len && p->s[p->i] == close) {
        p->i++;
        return v;
    }
    for (;;) {
        char *key = NULL;
        jws(p);
        if (obj) {
            if (p->i >= p->len || p->s[p->i] != '"') {
                jfree(v);
                return jfail(p, "expected a string key");
            }
            size_t kpos = p->i;
            key = jstring(p);
            if (!key) {
                jfree(v);
                return NULL;
            }
            for (int k = 0; k < v->n; k++)
                if (strcmp(v->keys[k], key) == 0) {
                    free(key);
                    jfree(v);
                    p->i = kpos;
                    return jfail(p, "duplicate key");
                }
            jws(p);
            if (p->i >= p->len || p->s[p->i] != ':') {
                free(key);
                jfree(v);
                return jfail(p, "expected ':'");
            }
            p->i++;
        }
        jval *item = jvalue(p, depth + 1);
        if (!item) {
            free(key);
            jfree(v);
            return NULL;
        }
        if (!jpush(p, v, key, item)) {
            jfree(v);
            return NULL;
        }
        jws(p);
        if (p->i < p->len && p->s[p->i] == ',') {
            p->i++;
            continue;
        }
        if (p->i < p->len && p->s[p->i] == close) {
            p->i++;
            return v;
        }
        jfree(v);
        return jfail(p, obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static jval *jvalue(jparser *p, int depth)
{
    if (depth > JSON_MAX_DEPTH) return jfail(p, "nesting too deep");
    jws(p);
    if (p->i >= p->len) return jfail(p, "unexpected end");
    char c = p->s[p->i];
    if (c == '{' || c == '[') return jcontainer(p, depth, c == '{');
    if (c == '"') {
        jval *v = jnew(p, J_STR);
        if (v && !(v->str = jstring(p))) {
            jfree(v);
            return NULL;
        }
        return v;
    }
    if (c == '-' || (c >= '0' && c <= '9')) return jnumber(p);
    static const struct { const char *word; jkind kind; } lits[] = {
        {"true", J_BOOL}, {"false", J_BOOL}, {"null", J_NULL}};
    for (size_t k = 0; k < sizeof lits / sizeof lits[0]; k++) {
        size_t n = strlen(lits[k].word);
        if (p->len - p->i >= n && memcmp(p->s + p->i, lits[k].word, n) == 0) {
            jval *v = jnew(p, lits[k].kind);
            p->i += n;
            return v;
        }
    }
    return jfail(p, "unexpected character");
}

/* ---------------- reading ---------------- */

typedef struct st_entry {
    const char *name;
    int ndim;
    uint64_t dims[ST_MAX_DIMS];
    uint64_t begin, end;
} st_entry;

static int cmp_begin(const void *a, const void *b)
{
    const st_entry *x = *(const st_entry *const *)a, *y = *(const st_entry *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

/* Check one tensor's header entry; fill e. */
static lp_status read_entry(const char *what, const char *name, const jval *v, st_entry *e, lp_error *err)
{
    e->name = name;
    if (v->kind != J_OBJ)
        return lp_error_set(err, LP_ERR_DATA, "%s: tensor '%s' entry is not an object", what, name);
    const jval *dtype = NULL, *shape = NULL, *offs = NULL;
    for (int k = 0; k < v->n; k++) {
        if (strcmp(v->keys[k], "dtype") == 0) dtype = v->items[k];
        else if (strcmp(v->keys[k], "shape") == 0) shape = v->items[k];
        else if (strcmp(v->keys[k], "data_offsets") == 0) offs = v->items[k];
        else
            return lp_error_set(err, LP_ERR_DATA, "%s: tensor '%s' has an unknown field '%s'", what, name,
                                v->keys[k]);
    }
    if (!dtype || !shape || !offs)
        return lp_error_set(err, LP_ERR_DATA, "%s: tensor '%s' lacks %s", what, name,
                            !dtype ? "\"dtype\"" : !shape ? "\"shape\"" : "\"data_offsets\"");
    if (dtype->kind != J_STR)
        return lp_error_set(err, LP_ERR_DATA, "%s: tensor '%s' dtype is not a string", what, name);
    if (strcmp(dtype->str, "F32") != 0)
        return lp_error_set(err, LP_ERR_DATA, "%s: tensor '%s' has dtype %s; loupe reads F32 only", what, name,
                            dtype->str);
    if (shape->kind != J_ARR || shape->n > ST_MAX_DIMS)
        return lp_error_set(err, LP_ERR_DATA, "%s: tensor '%s' shape is not a list of at most %d sizes", what,
                            name, ST_MAX_DIMS);
    uint64_t numel = 1;
    bool big = false;
    e->ndim = shape->n;
    for (int d = 0; d < shape->n; d++) {
        const jval *x = shape->items[d];
        if (x->kind != J_NUM || !x->is_uint || x->u > INT_MAX)
            return lp_error_set(err, LP_ERR_DATA, "%s: tensor '%s' shape entry %d is not a size", what, name,
                                d);
        e->dims[d] = x->u;
        if (x->u && numel > UINT64_MAX / 4 / x->u) big = true;
        else numel *= x->u;
    }
    if (offs->kind != J_ARR || offs->n != 2 || offs->items[0]->kind != J_NUM || !offs->items[0]->is_uint ||
        offs->items[1]->kind != J_NUM || !offs->items[1]->is_uint)
        return lp_error_set(err, LP_ERR_DATA, "%s: tensor '%s' data_offsets is not [begin, end]", what, name);
    e->begin = offs->items[0]->u;
    e->end = offs->items[1]->u;
    if (e->end < e->begin || big || e->end - e->begin != numel * 4)
        return lp_error_set(err, LP_ERR_DATA,
                            "%s: tensor '%s' data_offsets [%llu, %llu] do not hold its shape in F32", what,
                            name, (unsigned long long)e->begin, (unsigned long long)e->end);
    return LP_OK;
}

static lp_status decode_header(const jval *root, const char *what, size_t data_len, st_entry **out_e,
                               int *out_n, lp_error *err)
{
    *out_e = NULL;
    *out_n = 0;
    if (root->kind != J_OBJ) return lp_error_set(err, LP_ERR_DATA, "%s: safetensors header is not an object", what);
    st_entry *es = calloc((size_t)root->n + 1, sizeof *es);
    st_entry **order = calloc((size_t)root->n + 1, sizeof *order);
    lp_status s = (!es || !order) ? lp_error_set(err, LP_ERR_NOMEM, "out of memory") : LP_OK;
    int n = 0;
    for (int k = 0; !s && k < root->n; k++) {
        const jval *v = root->items[k];
        if (strcmp(root->keys[k], "__metadata__") == 0) {
            if (v->kind != J_OBJ) {
                s = lp_error_set(err, LP_ERR_DATA, "%s: __metadata__ is not an object", what);
                break;
            }
            for (int m = 0; m < v->n; m++)
                if (v->items[m]->kind != J_STR) {
                    s = lp_error_set(err, LP_ERR_DATA, "%s: __metadata__ value '%s' is not a string", what,
                                     v->keys[m]);
                    break;
                }
            continue;
        }
        if (!root->keys[k][0]) {
            s = lp_error_set(err, LP_ERR_DATA, "%s: a tensor has an empty name", what);
            break;
        }
        s = read_entry(what, root->keys[k], v, &es[n], err);
        if (!s) {
            order[n] = &es[n];
            n++;
        }
    }
    if (!s) {
        /* The tensors must tile the data exactly: no overlap, no hole, nothing past the end. */
        qsort(order, (size_t)n, sizeof *order, cmp_begin);
        uint64_t at = 0;
        for (int k = 0; k < n && !s; k++) {
            const st_entry *e = order[k];
            if (e->end > data_len)
                s = lp_error_set(err, LP_ERR_DATA, "%s: tensor '%s' data_offsets [%llu, %llu] run past the "
                                 "%zu data bytes", what, e->name, (unsigned long long)e->begin,
                                 (unsigned long long)e->end, data_len);
            else if (e->begin < at)
                s = lp_error_set(err, LP_ERR_DATA, "%s: tensor '%s' data_offsets [%llu, %llu] overlap tensor "
                                 "'%s'", what, e->name, (unsigned long long)e->begin, (unsigned long long)e->end,
                                 order[k - 1]->name);
            else if (e->begin > at)
                s = lp_error_set(err, LP_ERR_DATA, "%s: %llu unused data bytes before tensor '%s'", what,
                                 (unsigned long long)(e->begin - at), e->name);
            else
                at = e->end;
        }
        if (!s && at != data_len)
            s = lp_error_set(err, LP_ERR_DATA, "%s: %llu data bytes after the last tensor", what,
                             (unsigned long long)(data_len - at));
    }
    free(order);
    if (s) {
        free(es);
        return s;
    }
    *out_e = es;
    *out_n = n;
    return LP_OK;
}

lp_status lp_safetensors_decode_into(const void *buf, size_t size, const lp_tensor_ref *model, int n_model,
                                     const char *what, lp_error *err)
{
    const unsigned char *b = buf;
    if (!what) what = "safetensors file";
    if (size < 8)
        return lp_error_set(err, LP_ERR_DATA, "%s: %zu bytes is too short for a safetensors file", what, size);
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++) hlen |= (uint64_t)b[i] << (8 * i);
    if (hlen < 2 || hlen > LP_SAFETENSORS_MAX_HEADER || hlen > size - 8)
        return lp_error_set(err, LP_ERR_DATA, "%s: safetensors header length %llu is absurd for a file of %zu "
                            "bytes", what, (unsigned long long)hlen, size);
    const char *h = (const char *)b + 8;
    size_t bad;
    if (!utf8_valid((const unsigned char *)h, (size_t)hlen, &bad))
        return lp_error_set(err, LP_ERR_DATA, "%s: safetensors header is not valid UTF-8 at byte %zu", what,
                            8 + bad);
    if (h[0] != '{')
        return lp_error_set(err, LP_ERR_DATA, "%s: safetensors header does not start with '{'", what);
    jparser p = {h, (size_t)hlen, 0, what, err, false};
    jval *root = jvalue(&p, 0);
    if (!root) return err ? err->status : LP_ERR_DATA;
    jws(&p);
    if (p.i != p.len) {
        jfree(root);
        jfail(&p, "trailing characters after the header object");
        return LP_ERR_DATA;
    }
    size_t data_len = size - 8 - (size_t)hlen;
    const unsigned char *data = b + 8 + hlen;
    st_entry *es;
    int n;
    lp_status s = decode_header(root, what, data_len, &es, &n, err);
    if (s) {
        jfree(root);
        return s;
    }
    /* Copy into aligned floats, then match against the model by name and shape. */
    lp_tensor_ref *refs = calloc((size_t)n + 1, sizeof *refs);
    float *floats = malloc(data_len ? data_len : 4);
    if (!refs || !floats) s = lp_error_set(err, LP_ERR_NOMEM, "%s: out of memory", what);
    for (int k = 0; !s && k < n; k++) {
        const st_entry *e = &es[k];
        if (e->ndim < 1 || e->ndim > LP_MAX_DIMS) {
            /* Name it even if unknown to the model: the shape is the reason. */
            const lp_tensor_ref *want = NULL;
            for (int m = 0; m < n_model; m++)
                if (strcmp(model[m].name, e->name) == 0) want = &model[m];
            char wb[96];
            s = lp_error_set(err, LP_ERR_SHAPE, "%s tensor '%s' has %d dimensions, %s%s", what, e->name,
                             e->ndim, want ? "model expects " : "loupe handles 1 to 4",
                             want ? lp_shape_str(want->shape, wb, sizeof wb) : "");
            break;
        }
        refs[k].name = e->name;
        refs[k].shape.ndim = e->ndim;
        for (int d = 0; d < e->ndim; d++) refs[k].shape.dims[d] = (int)e->dims[d];
        refs[k].data = floats + e->begin / 4;
        const unsigned char *src = data + e->begin;
        for (uint64_t q = 0; q < (e->end - e->begin) / 4; q++) {
            uint32_t v = (uint32_t)src[4 * q] | (uint32_t)src[4 * q + 1] << 8 |
                         (uint32_t)src[4 * q + 2] << 16 | (uint32_t)src[4 * q + 3] << 24;
            memcpy(&refs[k].data[q], &v, 4);
        }
    }
    /* A zero dimension is a valid safetensors shape that no loupe tensor has:
     * lp_tensors_load reports it as a shape mismatch. */
    if (!s) s = lp_tensors_load(refs, n, model, n_model, what, err);
    free(refs);
    free(floats);
    free(es);
    jfree(root);
    return s;
}

lp_status lp_safetensors_read(const char *path, const lp_tensor_ref *model, int n, lp_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) return lp_error_set(err, LP_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return lp_error_set(err, LP_ERR_IO, "%s is not a regular file", path);
    }
    size_t size = (size_t)st.st_size;
    unsigned char *buf = malloc(size ? size : 1);
    if (!buf) {
        fclose(f);
        return lp_error_set(err, LP_ERR_NOMEM, "cannot allocate %zu bytes to read %s", size, path);
    }
    size_t got = fread(buf, 1, size, f);
    int e = ferror(f) ? errno : 0;
    fclose(f);
    lp_status s;
    if (got != size)
        s = lp_error_set(err, LP_ERR_IO, "short read of %s (%zu of %zu bytes)%s%s", path, got, size,
                         e ? ": " : "", e ? strerror(e) : "");
    else
        s = lp_safetensors_decode_into(buf, size, model, n, path, err);
    free(buf);
    return s;
}
