/* An op without backward would break autodiff: must be refused. */
#include "loupe_op.h"
static lp_status s_(lp_node *n) { return lp_node_set_out_shape(n, lp_node_in_shape(n, 0)); }
static void f_(lp_node *n) { (void)n; }

static const lp_op op = {LP_OP_HEADER, .name = "no_backward_op", .min_inputs = 1, .max_inputs = 1,
                         .setup = s_, .forward = f_};
lp_status loupe_plugin_init(lp_plugin_host *h) { return h->register_op(h, &op); }
