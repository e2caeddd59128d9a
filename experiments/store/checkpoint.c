/* checkpoint.c - LPCK encode/decode. Every length read from a buffer is checked
 * against what remains before it is used: a checkpoint may come from a damaged
 * disk or a hand-edited database row. */
#include "checkpoint.h"
#include "shape.h"

#include <assert.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define HEADER_BYTES 20u   /* magic, version, flags, n_params, n_states */
#define RESUME_BYTES 120u
#define RESUME_BYTES_V1 64u
#define TRAILER_BYTES (4u + RESUME_BYTES + 4u)   /* resume_len, record, crc */
#define TRAILER_BYTES_V1 (4u + RESUME_BYTES_V1 + 4u)

uint32_t lp_crc32(const void *buf, size_t size)
{
    /* zlib takes uInt lengths: feed it in chunks so multi-GiB blobs are fine. */
    uLong crc = crc32(0L, Z_NULL, 0);
    const unsigned char *p = buf;
    while (size > 0) {
        uInt n = size > (1u << 30) ? (1u << 30) : (uInt)size;
        crc = crc32(crc, p, n);
        p += n;
        size -= n;
    }
    return (uint32_t)crc;
}

/* ---- little-endian writer ---- */

typedef struct writer {
    unsigned char *p;
} writer;

static void put_u16(writer *w, uint16_t v)
{
    w->p[0] = (unsigned char)v;
    w->p[1] = (unsigned char)(v >> 8);
    w->p += 2;
}

static void put_u32(writer *w, uint32_t v)
{
    for (int i = 0; i < 4; i++) w->p[i] = (unsigned char)(v >> (8 * i));
    w->p += 4;
}

static void put_u64(writer *w, uint64_t v)
{
    for (int i = 0; i < 8; i++) w->p[i] = (unsigned char)(v >> (8 * i));
    w->p += 8;
}

static void put_f64(writer *w, double d)
{
    uint64_t v;
    memcpy(&v, &d, 8);
    put_u64(w, v);
}

static void put_floats(writer *w, const float *x, size_t n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(w->p, x, n * 4);
    w->p += n * 4;
#else
    for (size_t i = 0; i < n; i++) {
        uint32_t v;
        memcpy(&v, &x[i], 4);
        put_u32(w, v);
    }
#endif
}

/* ---- bounds-checked little-endian reader ---- */

typedef struct reader {
    const unsigned char *base, *p, *end;
} reader;

static size_t rd_left(const reader *r) { return (size_t)(r->end - r->p); }
static size_t rd_off(const reader *r) { return (size_t)(r->p - r->base); }

static uint16_t get_u16(reader *r)
{
    uint16_t v = (uint16_t)(r->p[0] | (r->p[1] << 8));
    r->p += 2;
    return v;
}

static uint32_t get_u32(reader *r)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)r->p[i] << (8 * i);
    r->p += 4;
    return v;
}

static uint64_t get_u64(reader *r)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)r->p[i] << (8 * i);
    r->p += 8;
    return v;
}

static double get_f64(reader *r)
{
    uint64_t v = get_u64(r);
    double d;
    memcpy(&d, &v, 8);
    return d;
}

static void get_floats(reader *r, float *x, size_t n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(x, r->p, n * 4);
    r->p += n * 4;
#else
    for (size_t i = 0; i < n; i++) {
        uint32_t v = get_u32(r);
        memcpy(&x[i], &v, 4);
    }
#endif
}

/* ---- encode ---- */

static lp_status check_section(const lp_tensor_ref *t, int n, const char *section, size_t *bytes,
                               lp_error *err)
{
    for (int i = 0; i < n; i++) {
        size_t len = t[i].name ? strlen(t[i].name) : 0;
        if (len < 1 || len > LP_CHECKPOINT_NAME_MAX)
            return lp_error_set(err, LP_ERR_ARG, "checkpoint %s tensor %d: name must be 1..%d bytes",
                                section, i, LP_CHECKPOINT_NAME_MAX);
        long long numel = lp_shape_numel(t[i].shape);
        if (t[i].shape.ndim < 1 || t[i].shape.ndim > LP_MAX_DIMS || numel < 0)
            return lp_error_set(err, LP_ERR_ARG, "checkpoint tensor '%s' has an invalid shape", t[i].name);
        assert(t[i].data);
        for (int j = 0; j < i; j++)
            if (strcmp(t[i].name, t[j].name) == 0)
                return lp_error_set(err, LP_ERR_ARG, "checkpoint %s tensor '%s' appears twice", section,
                                    t[i].name);
        *bytes += 2 + len + 4 + 4 * (size_t)t[i].shape.ndim + 4 * (size_t)numel;
    }
    return LP_OK;
}

static void put_tensor(writer *w, const lp_tensor_ref *t)
{
    size_t len = strlen(t->name);
    put_u16(w, (uint16_t)len);
    memcpy(w->p, t->name, len);
    w->p += len;
    put_u32(w, (uint32_t)t->shape.ndim);
    for (int d = 0; d < t->shape.ndim; d++) put_u32(w, (uint32_t)t->shape.dims[d]);
    put_floats(w, t->data, (size_t)lp_shape_numel(t->shape));
}

lp_status lp_checkpoint_encode(const lp_tensor_ref *params, int n_params, const lp_tensor_ref *states,
                               int n_states, const lp_resume_state *resume, void **out,
                               size_t *out_size, lp_error *err)
{
    assert(out && out_size && n_params >= 0 && n_states >= 0);
    *out = NULL;
    *out_size = 0;
    if (n_params > LP_CHECKPOINT_MAX_TENSORS || n_states > LP_CHECKPOINT_MAX_TENSORS)
        return lp_error_set(err, LP_ERR_ARG, "checkpoint: too many tensors (limit %d per section)",
                            LP_CHECKPOINT_MAX_TENSORS);
    size_t bytes = HEADER_BYTES + TRAILER_BYTES;
    lp_status s = check_section(params, n_params, "parameter", &bytes, err);
    if (!s) s = check_section(states, n_states, "optimizer-state", &bytes, err);
    if (s) return s;

    unsigned char *buf = malloc(bytes);
    if (!buf) return lp_error_set(err, LP_ERR_NOMEM, "checkpoint: cannot allocate %zu bytes", bytes);
    writer w = {buf};
    memcpy(w.p, LP_CHECKPOINT_MAGIC, 4);
    w.p += 4;
    put_u32(&w, LP_CHECKPOINT_VERSION);
    put_u32(&w, 0);
    put_u32(&w, (uint32_t)n_params);
    put_u32(&w, (uint32_t)n_states);
    for (int i = 0; i < n_params; i++) put_tensor(&w, &params[i]);
    for (int i = 0; i < n_states; i++) put_tensor(&w, &states[i]);
    lp_resume_state zero = {0};
    const lp_resume_state *rs = resume ? resume : &zero;
    put_u32(&w, RESUME_BYTES);
    put_u64(&w, (uint64_t)rs->epoch);
    put_u64(&w, (uint64_t)rs->step);
    for (int i = 0; i < 4; i++) put_u64(&w, rs->rng[i]);
    put_f64(&w, rs->lr);
    put_f64(&w, rs->schedule_pos);
    put_f64(&w, rs->plateau_lr);
    put_f64(&w, rs->plateau_best);
    put_u64(&w, (uint64_t)rs->plateau_bad_epochs);
    put_u64(&w, (uint64_t)rs->plateau_cooldown);
    put_f64(&w, rs->select_best);
    put_u64(&w, (uint64_t)rs->select_best_epoch);
    put_u64(&w, (uint64_t)rs->select_bad_epochs);
    put_u32(&w, lp_crc32(buf, (size_t)(w.p - buf)));
    assert((size_t)(w.p - buf) == bytes);
    *out = buf;
    *out_size = bytes;
    return LP_OK;
}

/* ---- decode ---- */

int lp_checkpoint_peek_version(const void *buf, size_t size)
{
    if (!buf || size < 8 || memcmp(buf, LP_CHECKPOINT_MAGIC, 4) != 0) return -1;
    reader r = {buf, (const unsigned char *)buf + 4, (const unsigned char *)buf + 8};
    uint32_t v = get_u32(&r);
    return v > INT_MAX ? -1 : (int)v;
}

/* Validate one tensor header at r and skip it, adding what decoding will need. */
static lp_status scan_tensor(reader *r, int index, size_t *name_bytes, size_t *floats, lp_error *err)
{
    size_t at = rd_off(r);
    if (rd_left(r) < 2)
        return lp_error_set(err, LP_ERR_DATA, "corrupt checkpoint: tensor %d header truncated at byte %zu",
                            index, at);
    uint16_t len = get_u16(r);
    if (len < 1 || len > LP_CHECKPOINT_NAME_MAX)
        return lp_error_set(err, LP_ERR_DATA,
                            "corrupt checkpoint: tensor %d name length %u at byte %zu (allowed 1..%d)", index,
                            len, at, LP_CHECKPOINT_NAME_MAX);
    if (rd_left(r) < (size_t)len + 4)
        return lp_error_set(err, LP_ERR_DATA, "corrupt checkpoint: tensor %d name truncated at byte %zu",
                            index, at);
    if (memchr(r->p, '\0', len))
        return lp_error_set(err, LP_ERR_DATA, "corrupt checkpoint: tensor %d name contains a NUL byte",
                            index);
    const char *name = (const char *)r->p;
    r->p += len;
    uint32_t ndim = get_u32(r);
    if (ndim < 1 || ndim > LP_MAX_DIMS)
        return lp_error_set(err, LP_ERR_DATA, "corrupt checkpoint: tensor '%.*s' has %u dimensions (allowed 1..%d)",
                            (int)len, name, ndim, LP_MAX_DIMS);
    if (rd_left(r) < 4 * (size_t)ndim)
        return lp_error_set(err, LP_ERR_DATA, "corrupt checkpoint: tensor '%.*s' dims truncated", (int)len,
                            name);
    uint64_t numel = 1;
    for (uint32_t d = 0; d < ndim; d++) {
        uint32_t v = get_u32(r);
        if (v < 1 || v > INT_MAX)
            return lp_error_set(err, LP_ERR_DATA, "corrupt checkpoint: tensor '%.*s' dimension %u is %u",
                                (int)len, name, d, v);
        numel *= v;   /* <= 2^31 * 2^31 after two steps: checked before overflow below */
        if (numel > (uint64_t)LP_MAX_ELEMENTS)
            return lp_error_set(err, LP_ERR_DATA,
                                "corrupt checkpoint: tensor '%.*s' has more than %lld elements", (int)len, name,
                                (long long)LP_MAX_ELEMENTS);
    }
    if (rd_left(r) / 4 < numel)
        return lp_error_set(err, LP_ERR_DATA,
                            "corrupt checkpoint: tensor '%.*s' needs %llu data bytes, only %zu remain", (int)len,
                            name, (unsigned long long)numel * 4, rd_left(r));
    r->p += numel * 4;
    *name_bytes += (size_t)len + 1;
    *floats += (size_t)numel;
    return LP_OK;
}

static void read_tensor(reader *r, lp_tensor_ref *t, char **names, float **data)
{
    uint16_t len = get_u16(r);
    memcpy(*names, r->p, len);
    (*names)[len] = '\0';
    t->name = *names;
    *names += len + 1;
    r->p += len;
    t->shape.ndim = (int)get_u32(r);
    for (int d = 0; d < t->shape.ndim; d++) t->shape.dims[d] = (int)get_u32(r);
    size_t n = (size_t)lp_shape_numel(t->shape);
    t->data = *data;
    get_floats(r, *data, n);
    *data += n;
}

lp_status lp_checkpoint_decode(const void *buf, size_t size, lp_checkpoint *out, lp_error *err)
{
    assert(out);
    memset(out, 0, sizeof *out);
    if (!buf || size < HEADER_BYTES + TRAILER_BYTES_V1)
        return lp_error_set(err, LP_ERR_DATA, "corrupt checkpoint: %zu bytes is shorter than the smallest "
                            "possible checkpoint (%u)", size, HEADER_BYTES + TRAILER_BYTES_V1);
    if (memcmp(buf, LP_CHECKPOINT_MAGIC, 4) != 0)
        return lp_error_set(err, LP_ERR_DATA, "not a loupe checkpoint (magic is not \"LPCK\")");
    reader r = {buf, (const unsigned char *)buf + 4, (const unsigned char *)buf + size - 4};
    uint32_t version = get_u32(&r);
    if (version != 1 && version != LP_CHECKPOINT_VERSION)
        return lp_error_set(err, LP_ERR_DATA, "checkpoint format version %u is not supported (this loupe "
                            "reads versions 1 to %d)", version, LP_CHECKPOINT_VERSION);
    const uint32_t resume_bytes = version == 1 ? RESUME_BYTES_V1 : RESUME_BYTES;
    if (size < HEADER_BYTES + 8u + resume_bytes)
        return lp_error_set(err, LP_ERR_DATA, "corrupt checkpoint: %zu bytes is shorter than the smallest "
                            "possible version %u checkpoint (%u)", size, version, HEADER_BYTES + 8u + resume_bytes);
    /* The checksum first: it catches almost every accident in one pass. The
     * structural checks below still stand on their own (a forged CRC is easy). */
    reader tail = {buf, (const unsigned char *)buf + size - 4, (const unsigned char *)buf + size};
    uint32_t stored = get_u32(&tail), actual = lp_crc32(buf, size - 4);
    if (stored != actual)
        return lp_error_set(err, LP_ERR_DATA, "corrupt checkpoint: checksum mismatch (stored %08x, "
                            "computed %08x over %zu bytes)", stored, actual, size - 4);
    uint32_t flags = get_u32(&r);
    if (flags != 0) return lp_error_set(err, LP_ERR_DATA, "corrupt checkpoint: unknown flags %08x", flags);
    uint32_t np = get_u32(&r), ns = get_u32(&r);
    if (np > LP_CHECKPOINT_MAX_TENSORS || ns > LP_CHECKPOINT_MAX_TENSORS)
        return lp_error_set(err, LP_ERR_DATA, "corrupt checkpoint: %u parameter and %u state tensors "
                            "(limit %d each)", np, ns, LP_CHECKPOINT_MAX_TENSORS);
    /* Pass 1: validate and size; the resume record must remain at the end. */
    reader body = r;
    body.end -= 4 + resume_bytes;
    size_t name_bytes = 0, floats = 0;
    for (uint32_t i = 0; i < np + ns; i++) {
        lp_status s = scan_tensor(&body, (int)i, &name_bytes, &floats, err);
        if (s) return s;
    }
    if (body.p != body.end)
        return lp_error_set(err, LP_ERR_DATA, "corrupt checkpoint: %zu unexpected bytes after the tensors "
                            "at byte %zu", rd_left(&body), rd_off(&body));
    reader rs = {buf, body.end, (const unsigned char *)buf + size - 4};
    uint32_t rlen = get_u32(&rs);
    if (rlen != resume_bytes)
        return lp_error_set(err, LP_ERR_DATA, "corrupt checkpoint: resume record is %u bytes, expected %u",
                            rlen, resume_bytes);
    /* Pass 2: copy into one block: floats, then the refs (8-aligned), then names. */
    size_t nt = (size_t)np + ns;
    size_t fbytes = (floats * sizeof(float) + 7) & ~(size_t)7;
    size_t bytes = fbytes + nt * sizeof(lp_tensor_ref) + name_bytes;
    unsigned char *mem = malloc(bytes ? bytes : 1);
    if (!mem) return lp_error_set(err, LP_ERR_NOMEM, "checkpoint: cannot allocate %zu bytes", bytes);
    float *data = (float *)mem;
    lp_tensor_ref *refs = (lp_tensor_ref *)(mem + fbytes);
    char *names = (char *)(refs + nt);
    for (size_t i = 0; i < nt; i++) read_tensor(&r, &refs[i], &names, &data);
    for (size_t i = 0; i < nt; i++) {   /* a duplicate name would make loading ambiguous */
        size_t lo = i < np ? 0 : np;
        for (size_t j = lo; j < i; j++)
            if (strcmp(refs[i].name, refs[j].name) == 0) {
                lp_status s = lp_error_set(err, LP_ERR_DATA, "corrupt checkpoint: tensor '%s' appears twice",
                                           refs[i].name);
                free(mem);
                return s;
            }
    }
    r.p += 4;
    out->resume.epoch = (int64_t)get_u64(&r);
    out->resume.step = (int64_t)get_u64(&r);
    for (int i = 0; i < 4; i++) out->resume.rng[i] = get_u64(&r);
    out->resume.lr = get_f64(&r);
    out->resume.schedule_pos = get_f64(&r);
    if (version >= 2) {
        out->resume.plateau_lr = get_f64(&r);
        out->resume.plateau_best = get_f64(&r);
        out->resume.plateau_bad_epochs = (int64_t)get_u64(&r);
        out->resume.plateau_cooldown = (int64_t)get_u64(&r);
        out->resume.select_best = get_f64(&r);
        out->resume.select_best_epoch = (int64_t)get_u64(&r);
        out->resume.select_bad_epochs = (int64_t)get_u64(&r);
        out->resume.has_v2_state = true;
    }
    out->version = (int)version;
    out->n_params = (int)np;
    out->params = refs;
    out->n_states = (int)ns;
    out->states = refs + np;
    out->mem_ = mem;
    return LP_OK;
}

void lp_checkpoint_free(lp_checkpoint *c)
{
    if (!c) return;
    free(c->mem_);
    memset(c, 0, sizeof *c);
}

/* ---- loading into a model ---- */

static const lp_tensor_ref *find_ref(const lp_tensor_ref *t, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(t[i].name, name) == 0) return &t[i];
    return NULL;
}

lp_status lp_tensors_load(const lp_tensor_ref *src, int n_src, const lp_tensor_ref *dst, int n_dst,
                          const char *what, lp_error *err)
{
    /* Check everything first so a refused load leaves the model untouched. */
    for (int i = 0; i < n_dst; i++) {
        const lp_tensor_ref *s = find_ref(src, n_src, dst[i].name);
        if (!s)
            return lp_error_set(err, LP_ERR_DATA, "%s has no tensor '%s' (the model expects one)", what,
                                dst[i].name);
        if (!lp_shape_equal(s->shape, dst[i].shape)) {
            char a[96], b[96];
            return lp_error_set(err, LP_ERR_SHAPE, "%s tensor '%s' has shape %s, model expects %s", what,
                                dst[i].name, lp_shape_str(s->shape, a, sizeof a),
                                lp_shape_str(dst[i].shape, b, sizeof b));
        }
    }
    for (int i = 0; i < n_src; i++)
        if (!find_ref(dst, n_dst, src[i].name))
            return lp_error_set(err, LP_ERR_DATA, "%s tensor '%s' is not a tensor of this model", what,
                                src[i].name);
    for (int i = 0; i < n_dst; i++) {
        const lp_tensor_ref *s = find_ref(src, n_src, dst[i].name);
        memcpy(dst[i].data, s->data, (size_t)lp_shape_numel(s->shape) * sizeof(float));
    }
    return LP_OK;
}
