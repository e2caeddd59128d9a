/* registry.h - every op loupe knows, by name: built-ins and plugins alike.
 *
 * Built-ins are listed in one table in registry.c; plugins register through
 * lp_op_register() too (via the host struct), so there is one way to be an op.
 */
#ifndef LP_REGISTRY_H
#define LP_REGISTRY_H

#include "error.h"
#include "loupe_op.h"

/* Register the built-in ops (idempotent). */
void lp_registry_init(void);

/* Add an op. Checks ABI version, struct size, name, input counts and that
 * forward/backward/setup are present; refuses a name already taken.
 * origin ("built-in" or a plugin path) is copied. */
lp_status lp_op_register(const lp_op *op, const char *origin, lp_error *err);

/* The op called name, or NULL. */
const lp_op *lp_op_find(const char *name);

/* Whether `consumer`, reading `producer`'s output as its only input, can apply
 * the producer itself (the graph then skips the producer's node; see
 * lp_node_input_relu). Only built-in pairs are listed: max-pool after ReLU, where
 * maxpool(relu(x)) computed in one pass saves a whole pass over the activation,
 * forward and backward. */
int lp_op_absorbs(const lp_op *consumer, const lp_op *producer);

/* Whether `consumer`, reading `producer`'s output as its only input, can compute
 * that output itself from the producer's input (see lp_node_out_applied): the
 * producer's forward still runs, without writing its output, and the consumer's
 * backward does the producer's too. Built-in pairs only: max-pool after batch norm,
 * which saves batch norm's normalization pass (a write and a read of the activation)
 * and, backward, the writing and reading of batch norm's output gradient. */
int lp_op_applies(const lp_op *consumer, const lp_op *producer);

/* Number of registered ops, and the i-th with where it came from. */
int lp_op_count(void);
const lp_op *lp_op_at(int i, const char **origin);

/* NULL-terminated array of all op names (valid until the next registration),
 * for "did you mean" hints. */
const char *const *lp_op_names(void);

/* Load a plugin: dlopen(path, RTLD_NOW|RTLD_LOCAL), find loupe_plugin_init,
 * check the ABI, let it register its ops. Loading the same path twice is a no-op.
 * Plugins are never unloaded (a graph may be using them). */
lp_status lp_plugin_load(const char *path, lp_error *err);

#endif
