/* optim.h - optimizers and learning-rate schedules over one flat parameter block.
 *
 * Parameters and gradients are each one contiguous float array (the graph's
 * blocks), so an optimizer step is a single loop and its state is a few arrays
 * of the same length: easy to checkpoint and to resume exactly.
 *
 * Every update follows PyTorch's torch.optim of the same name (tests compare
 * with numbers PyTorch produced): weight_decay is L2 added to the gradient for
 * sgd, adam and rmsprop; adamw decays the weights directly (decoupled).
 */
#ifndef LP_OPTIM_H
#define LP_OPTIM_H

#include "error.h"
#include <stdbool.h>
#include <stddef.h>

typedef enum lp_optim_type { LP_OPTIM_SGD, LP_OPTIM_ADAM, LP_OPTIM_ADAMW, LP_OPTIM_RMSPROP } lp_optim_type;

typedef struct lp_optim_config {
    lp_optim_type type;
    float lr;             /* base learning rate */
    float momentum;       /* SGD / RMSprop: heavy-ball momentum (0 = none) */
    bool nesterov;        /* SGD: Nesterov momentum (needs momentum > 0) */
    float weight_decay;   /* L2 added to the gradient; adamw: decoupled decay */
    float beta1, beta2;   /* Adam, AdamW */
    float alpha;          /* RMSprop: smoothing of the squared gradient */
    float eps;            /* Adam, AdamW, RMSprop: denominator guard */
} lp_optim_config;

typedef enum lp_schedule_type {
    LP_SCHEDULE_CONSTANT,
    LP_SCHEDULE_STEP,
    LP_SCHEDULE_COSINE,
    LP_SCHEDULE_EXPONENTIAL,
    LP_SCHEDULE_MULTISTEP
} lp_schedule_type;

#define LP_SCHEDULE_MAX_MILESTONES 32

typedef struct lp_schedule_config {
    lp_schedule_type type;
    int step_size;        /* step: epochs between decays */
    float gamma;          /* step, exponential, multistep: factor per decay */
    int milestones[LP_SCHEDULE_MAX_MILESTONES];   /* multistep: epochs, increasing */
    int n_milestones;
    float warmup_epochs;  /* linear warm-up from ~0 over this many epochs (0 = none) */
    float min_lr;         /* cosine: floor */
} lp_schedule_config;

#define LP_OPTIM_MAX_STATES 2

typedef struct lp_optimizer {
    lp_optim_config cfg;
    size_t n;             /* floats in the parameter block */
    int n_states;
    float *state[LP_OPTIM_MAX_STATES];   /* see lp_optim_state_name */
    long long t;          /* steps taken (Adam bias correction; resume) */
} lp_optimizer;

lp_status lp_optim_init(lp_optimizer *o, const lp_optim_config *cfg, size_t n, lp_error *err);
void lp_optim_free(lp_optimizer *o);

/* One update of params[n] from grads[n] at learning rate lr. */
void lp_optim_step(lp_optimizer *o, float *params, const float *grads, float lr);

/* Number of state arrays and the k-th, for checkpoints: sgd 1 ("momentum"), adam
 * and adamw 2 ("adam_m", "adam_v"), rmsprop 1 ("square_avg") or 2 with momentum
 * ("square_avg", "momentum"). */
int lp_optim_num_states(const lp_optimizer *o);
float *lp_optim_state(lp_optimizer *o, int k);
const char *lp_optim_state_name(const lp_optimizer *o, int k);

/* Learning rate at fractional epoch `progress` (epoch + step/steps_per_epoch) of `epochs`. */
float lp_schedule_lr(const lp_schedule_config *s, float base_lr, double progress, int epochs);

/* "sgd", "adam", "adamw", "rmsprop"; "constant", "step", ... as written in YAML. */
const char *lp_optim_type_name(lp_optim_type t);
const char *lp_schedule_type_name(lp_schedule_type t);

#endif
