/* yaml.c - libyaml events -> lp_value tree, with limits libyaml does not have.
 *
 * The tree is built with an explicit stack of open containers, so depth is counted
 * as events arrive and a nesting bomb stops at LP_YAML_MAX_DEPTH + 1 levels instead
 * of letting libyaml run its quadratic path to the end.
 */
#include "lp_yaml.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* ---- interned file names ------------------------------------------------ */

typedef struct name_node {
    struct name_node *next;
    char name[];
} name_node;

static name_node *names;
static pthread_mutex_t names_lock = PTHREAD_MUTEX_INITIALIZER;

const char *lp_yaml_intern_name(const char *name)
{
    const char *found = NULL;
    pthread_mutex_lock(&names_lock);
    for (name_node *n = names; n && !found; n = n->next)
        if (strcmp(n->name, name) == 0) found = n->name;
    if (!found) {
        size_t len = strlen(name);
        name_node *n = malloc(sizeof *n + len + 1);
        if (n) {
            memcpy(n->name, name, len + 1);
            n->next = names;
            names = n;
            found = n->name;
        }
    }
    pthread_mutex_unlock(&names_lock);
    return found;
}

/* ---- reading a file ------------------------------------------------------ */

lp_status lp_yaml_read_text(const char *path, size_t max_bytes, char **text, size_t *len,
                            lp_error *err)
{
    *text = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return lp_error_set(err, LP_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    /* Read up to max_bytes + 1 so "too big" is known without trusting fstat
     * (pipes, /dev/zero and growing files have no useful size). */
    char *buf = malloc(max_bytes + 2);
    if (!buf) {
        fclose(f);
        return lp_error_set(err, LP_ERR_NOMEM, "out of memory reading %s", path);
    }
    size_t n = fread(buf, 1, max_bytes + 1, f);
    int failed = ferror(f);
    int saved = errno;
    fclose(f);
    if (failed) {
        free(buf);
        return lp_error_set(err, LP_ERR_IO, "cannot read %s: %s", path, strerror(saved));
    }
    if (n > max_bytes) {
        free(buf);
        return lp_error_set(err, LP_ERR_CONFIG, "%s: file is larger than the %zu KiB limit", path,
                            max_bytes >> 10);
    }
    buf[n] = '\0';
    *text = buf;
    *len = n;
    return LP_OK;
}

/* ---- events -> tree ------------------------------------------------------ */

typedef struct frame {
    lp_value *node;     /* open list or map */
    char *key;          /* map: key waiting for its value, or NULL */
    lp_loc key_loc;
} frame;

typedef struct builder {
    const char *name;   /* interned */
    const char *text;
    size_t len;
    frame stack[LP_YAML_MAX_DEPTH + 1];
    int depth;
    lp_value *root;
    lp_error *err;
} builder;

static lp_loc mark_loc(const builder *b, yaml_mark_t m)
{
    return (lp_loc){b->name, (int)m.line + 1, (int)m.column + 1};
}

/* Line and column of a byte offset (libyaml's reader errors give only the offset). */
static lp_loc offset_loc(const builder *b, size_t offset)
{
    lp_loc loc = {b->name, 1, 1};
    for (size_t i = 0; i < offset && i < b->len; i++) {
        if (b->text[i] == '\n') {
            loc.line++;
            loc.col = 1;
        } else if (((unsigned char)b->text[i] & 0xC0) != 0x80) {
            loc.col++;   /* count characters, not UTF-8 continuation bytes */
        }
    }
    return loc;
}

static lp_status syntax_error(builder *b, const yaml_parser_t *p)
{
    if (p->error == YAML_MEMORY_ERROR)
        return lp_error_set(b->err, LP_ERR_NOMEM, "%s: out of memory parsing YAML", b->name);
    const char *problem = p->problem ? p->problem : "malformed YAML";
    if (p->error == YAML_READER_ERROR)
        return lp_error_at(b->err, LP_ERR_CONFIG, offset_loc(b, p->problem_offset),
                           "YAML syntax error: %s (byte value %d)", problem, p->problem_value);
    if (p->context)
        return lp_error_at(b->err, LP_ERR_CONFIG, mark_loc(b, p->problem_mark),
                           "YAML syntax error: %s (%s at line %d, column %d)", problem, p->context,
                           (int)p->context_mark.line + 1, (int)p->context_mark.column + 1);
    return lp_error_at(b->err, LP_ERR_CONFIG, mark_loc(b, p->problem_mark), "YAML syntax error: %s",
                       problem);
}

/* Anchors make aliases possible, and aliases make cycles and expansion bombs. */
static lp_status check_anchor_tag(builder *b, const yaml_char_t *anchor, const yaml_char_t *tag,
                                  yaml_mark_t mark, bool *is_str)
{
    if (anchor)
        return lp_error_at(b->err, LP_ERR_CONFIG, mark_loc(b, mark),
                           "YAML anchors (&%s) are not supported: write the value out", anchor);
    if (tag) {
        if (is_str && strcmp((const char *)tag, YAML_STR_TAG) == 0) {
            *is_str = true;
            return LP_OK;
        }
        return lp_error_at(b->err, LP_ERR_CONFIG, mark_loc(b, mark),
                           "YAML tags (%s) are not supported%s", tag,
                           is_str ? " (only !!str on scalars)" : "");
    }
    return LP_OK;
}

/* Hand a finished node to the open container (or make it the root). Takes v. */
static lp_status attach(builder *b, lp_value *v, lp_loc loc)
{
    if (!v) return lp_error_set(b->err, LP_ERR_NOMEM, "%s: out of memory parsing YAML", b->name);
    if (b->depth == 0) {
        b->root = v;
        return LP_OK;
    }
    frame *f = &b->stack[b->depth - 1];
    if (f->node->kind == LP_VALUE_LIST) {
        if (lp_value_list_push(f->node, v))
            return lp_error_set(b->err, LP_ERR_NOMEM, "%s: out of memory parsing YAML", b->name);
        return LP_OK;
    }
    if (!f->key) {
        /* A key. Containers as keys are refused when they open; here it is a scalar. */
        if (f->node->count >= (int)LP_YAML_MAX_KEYS) {
            lp_value_free(v);
            return lp_error_at(b->err, LP_ERR_CONFIG, loc, "more than %u keys in one map",
                               LP_YAML_MAX_KEYS);
        }
        int first = lp_value_find(f->node, v->text);
        if (first >= 0) {
            lp_status s = lp_error_at(b->err, LP_ERR_CONFIG, loc,
                                      "duplicate key '%s' (first written at line %d, column %d)",
                                      v->text, f->node->key_locs[first].line,
                                      f->node->key_locs[first].col);
            lp_value_free(v);
            return s;
        }
        f->key = v->text;   /* steal the text, drop the node */
        v->text = NULL;
        f->key_loc = loc;
        lp_value_free(v);
        return LP_OK;
    }
    int rc = lp_value_map_set(f->node, f->key, f->key_loc, v);
    free(f->key);
    f->key = NULL;
    if (rc) return lp_error_set(b->err, LP_ERR_NOMEM, "%s: out of memory parsing YAML", b->name);
    return LP_OK;
}

static lp_status on_scalar(builder *b, const yaml_event_t *ev)
{
    bool is_str = false;
    lp_loc loc = mark_loc(b, ev->start_mark);
    lp_status s = check_anchor_tag(b, ev->data.scalar.anchor, ev->data.scalar.tag,
                                   ev->start_mark, &is_str);
    if (s) return s;
    size_t len = ev->data.scalar.length;
    if (len > LP_YAML_MAX_SCALAR)
        return lp_error_at(b->err, LP_ERR_CONFIG, loc,
                           "scalar of %zu bytes is longer than the %u KiB limit", len,
                           LP_YAML_MAX_SCALAR >> 10);
    if (memchr(ev->data.scalar.value, '\0', len))
        return lp_error_at(b->err, LP_ERR_CONFIG, loc, "scalar contains a NUL character");
    lp_value *v = lp_value_new_scalar((const char *)ev->data.scalar.value, loc);
    if (v) v->quoted = is_str || ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
    return attach(b, v, loc);
}

static lp_status on_start(builder *b, const yaml_event_t *ev, bool is_map)
{
    lp_loc loc = mark_loc(b, ev->start_mark);
    lp_status s = is_map ? check_anchor_tag(b, ev->data.mapping_start.anchor,
                                            ev->data.mapping_start.tag, ev->start_mark, NULL)
                         : check_anchor_tag(b, ev->data.sequence_start.anchor,
                                            ev->data.sequence_start.tag, ev->start_mark, NULL);
    if (s) return s;
    if (b->depth > 0) {
        frame *f = &b->stack[b->depth - 1];
        if (f->node->kind == LP_VALUE_MAP && !f->key)
            return lp_error_at(b->err, LP_ERR_CONFIG, loc,
                               "map keys must be plain scalars, found %s",
                               is_map ? "a map" : "a list");
    }
    if (b->depth >= LP_YAML_MAX_DEPTH)
        return lp_error_at(b->err, LP_ERR_CONFIG, loc, "nesting deeper than %d levels",
                           LP_YAML_MAX_DEPTH);
    lp_value *v = is_map ? lp_value_new_map(loc) : lp_value_new_list(loc);
    if (!v) return lp_error_set(b->err, LP_ERR_NOMEM, "%s: out of memory parsing YAML", b->name);
    b->stack[b->depth++] = (frame){v, NULL, {0}};
    return LP_OK;
}

static lp_status on_end(builder *b)
{
    frame f = b->stack[--b->depth];
    free(f.key);   /* the parser never ends a map between key and value; be safe */
    return attach(b, f.node, f.node->loc);
}

static void builder_free(builder *b)
{
    /* Containers still open belong to no parent yet: free them innermost first. */
    while (b->depth > 0) {
        frame *f = &b->stack[--b->depth];
        free(f->key);
        lp_value_free(f->node);
    }
    lp_value_free(b->root);
    b->root = NULL;
}

lp_status lp_yaml_load_string(const char *text, size_t len, const char *name, lp_value **out,
                              lp_error *err)
{
    *out = NULL;
    builder b = {.text = text, .len = len, .err = err};
    b.name = lp_yaml_intern_name(name ? name : "<string>");
    if (!b.name) return lp_error_set(err, LP_ERR_NOMEM, "out of memory");
    lp_loc whole = {b.name, 0, 0};
    if (len > LP_YAML_MAX_FILE)
        return lp_error_at(err, LP_ERR_CONFIG, whole, "YAML text of %zu bytes is larger than the "
                           "%u KiB limit", len, LP_YAML_MAX_FILE >> 10);

    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) return lp_error_set(err, LP_ERR_NOMEM, "out of memory");
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);

    lp_status s = LP_OK;
    int documents = 0;
    bool done = false;
    while (!s && !done) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            s = syntax_error(&b, &p);
            break;
        }
        switch (ev.type) {
        case YAML_DOCUMENT_START_EVENT:
            if (documents++)
                s = lp_error_at(err, LP_ERR_CONFIG, mark_loc(&b, ev.start_mark),
                                "a second YAML document: one document per file");
            break;
        case YAML_ALIAS_EVENT:
            s = lp_error_at(err, LP_ERR_CONFIG, mark_loc(&b, ev.start_mark),
                            "YAML aliases (*%s) are not supported: write the value out",
                            ev.data.alias.anchor);
            break;
        case YAML_SCALAR_EVENT: s = on_scalar(&b, &ev); break;
        case YAML_SEQUENCE_START_EVENT: s = on_start(&b, &ev, false); break;
        case YAML_MAPPING_START_EVENT: s = on_start(&b, &ev, true); break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT: s = on_end(&b); break;
        case YAML_STREAM_END_EVENT: done = true; break;
        default: break;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);

    if (!s && (!b.root || (b.root->kind == LP_VALUE_SCALAR && !b.root->quoted &&
                           b.root->text[0] == '\0')))
        s = lp_error_at(err, LP_ERR_CONFIG, whole, "the YAML document is empty");
    if (s) {
        builder_free(&b);
        return s;
    }
    *out = b.root;
    return LP_OK;
}

lp_status lp_yaml_load_file(const char *path, lp_value **out, lp_error *err)
{
    *out = NULL;
    char *text;
    size_t len;
    lp_status s = lp_yaml_read_text(path, LP_YAML_MAX_FILE, &text, &len, err);
    if (s) return s;
    s = lp_yaml_load_string(text, len, path, out, err);
    free(text);
    return s;
}
