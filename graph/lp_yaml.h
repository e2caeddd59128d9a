/* lp_yaml.h - read a YAML document into an lp_value tree (core/value.h), with the
 * 1-based file:line:col of every node, using libyaml's event parser.
 *
 *   lp_value *root;
 *   if (lp_yaml_load_file("configs/mnist_two_conv.yaml", &root, &err)) ... err.msg ...
 *   lp_value_free(root);
 *
 * Only the YAML a config needs is accepted; anything else is an LP_ERR_CONFIG with
 * a location, never a crash or a hang. Limits against hostile input (libyaml 0.2.5
 * itself has none, and is quadratic on deep nesting):
 *   - file size at most LP_YAML_MAX_FILE (1 MiB); an empty document is an error;
 *   - a scalar at most LP_YAML_MAX_SCALAR bytes (64 KiB), no NUL characters;
 *   - nesting depth at most LP_YAML_MAX_DEPTH (64), counted while events arrive,
 *     so a bomb of 100000 '[' is rejected after reading 65 of them;
 *   - no anchors (&x) or aliases (*x): they allow cycles and expansion bombs;
 *   - at most LP_YAML_MAX_KEYS (4096) keys in one map: duplicate checks are linear
 *     per key, and a 1 MiB map of 100,000 keys would otherwise take ~40 s;
 *   - no duplicate map keys (the error names the line of the first one);
 *   - map keys are scalars; one document per file; no tags except !!str.
 *
 * Scalars stay text; quoted ones have `quoted = true` and are always strings.
 *
 * File names in locations: every lp_loc.file in the tree points into a process-wide
 * table of interned names that is never freed (a few bytes per distinct file), so
 * locations copied out of the tree (model specs, graph nodes, error messages built
 * later) stay valid after lp_value_free(root).
 */
/* Named lp_yaml.h, not yaml.h: with -Igraph a graph/yaml.h would shadow libyaml's own
 * <yaml.h> for every file, including the one that needs libyaml. */
#ifndef LP_YAML_H
#define LP_YAML_H

#include "error.h"
#include "value.h"

#define LP_YAML_MAX_FILE (1u << 20)
#define LP_YAML_MAX_SCALAR (64u << 10)
#define LP_YAML_MAX_DEPTH 64
#define LP_YAML_MAX_KEYS 4096

/* Read and parse the file at path. On success *out is the root (owned by the
 * caller, free with lp_value_free); on failure *out is NULL and err says why:
 * LP_ERR_IO when the file cannot be read, LP_ERR_CONFIG for its content. */
lp_status lp_yaml_load_file(const char *path, lp_value **out, lp_error *err);

/* Parse len bytes of text (need not be NUL-terminated). name is what locations
 * and messages call the source (a path, "<string>", "--set a.b=1"). Same
 * contract and limits as lp_yaml_load_file. */
lp_status lp_yaml_load_string(const char *text, size_t len, const char *name, lp_value **out,
                              lp_error *err);

/* Read a whole file (at most max_bytes) into a NUL-terminated malloc'd buffer;
 * the length is stored in *len. LP_ERR_IO if it cannot be read, LP_ERR_CONFIG if it
 * is larger than max_bytes. Used to keep a config's exact text for the runs DB. */
lp_status lp_yaml_read_text(const char *path, size_t max_bytes, char **text, size_t *len,
                            lp_error *err);

/* An interned copy of name that lives until the process exits (for lp_loc.file).
 * NULL only when out of memory. Thread-safe. */
const char *lp_yaml_intern_name(const char *name);

#endif
