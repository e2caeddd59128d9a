/* optim.h - optimizers and learning-rate schedules over one flat parameter block.
 *
 * Parameters and gradients are each one contiguous float array (the graph's
 * blocks), so an optimizer step is a single loop and its state is a couple of
 * arrays of the same length: easy to checkpoint and to resume exactly.
 */
#ifndef LP_OPTIM_H
#define LP_OPTIM_H

#include "error.h"
#include <stddef.h>

typedef enum lp_optim_type { LP_OPTIM_SGD, LP_OPTIM_ADAM } lp_optim_type;

typedef struct lp_optim_config {
    lp_optim_type type;
    float lr;             /* base learning rate */
    float momentum;       /* SGD: heavy-ball momentum (0 = plain SGD) */
    float weight_decay;   /* L2 added to the gradient (SGD) / decoupled (Adam: AdamW) */
    float beta1, beta2, eps;  /* Adam */
} lp_optim_config;

typedef enum lp_schedule_type { LP_SCHEDULE_CONSTANT, LP_SCHEDULE_STEP, LP_SCHEDULE_COSINE } lp_schedule_type;

typedef struct lp_schedule_config {
    lp_schedule_type type;
    int step_size;        /* step: epochs between decays */
    float gamma;          /* step: factor per decay */
    float warmup_epochs;  /* linear warm-up from ~0 over this many epochs (0 = none) */
    float min_lr;         /* cosine: floor */
} lp_schedule_config;

typedef struct lp_optimizer {
    lp_optim_config cfg;
    size_t n;             /* floats in the parameter block */
    float *m;             /* SGD velocity / Adam first moment */
    float *v;             /* Adam second moment (NULL for SGD) */
    long long t;          /* steps taken (Adam bias correction; resume) */
} lp_optimizer;

lp_status lp_optim_init(lp_optimizer *o, const lp_optim_config *cfg, size_t n, lp_error *err);
void lp_optim_free(lp_optimizer *o);

/* One update of params[n] from grads[n] at learning rate lr. */
void lp_optim_step(lp_optimizer *o, float *params, const float *grads, float lr);

/* Number of state arrays (1 for SGD, 2 for Adam) and the k-th, for checkpoints. */
int lp_optim_num_states(const lp_optimizer *o);
float *lp_optim_state(lp_optimizer *o, int k);
const char *lp_optim_state_name(const lp_optimizer *o, int k);   /* "momentum", "adam_m", "adam_v" */

/* Learning rate at fractional epoch `progress` (epoch + step/steps_per_epoch) of `epochs`. */
float lp_schedule_lr(const lp_schedule_config *s, float base_lr, double progress, int epochs);

const char *lp_optim_type_name(lp_optim_type t);

#endif
