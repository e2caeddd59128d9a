/* Calls a function no one defines: with RTLD_NOW this fails at load, not mid-training. */
#include "loupe_op.h"
static lp_status s_(lp_node *n) { return lp_node_set_out_shape(n, lp_node_in_shape(n, 0)); }
static void f_(lp_node *n) { (void)n; }

void lp_function_that_does_not_exist(void);
static void fwd(lp_node *n) { (void)n; lp_function_that_does_not_exist(); }
static const lp_op op = {LP_OP_HEADER, .name = "undefined_op", .min_inputs = 1, .max_inputs = 1,
                         .setup = s_, .forward = fwd, .backward = f_};
lp_status loupe_plugin_init(lp_plugin_host *h) { return h->register_op(h, &op); }
