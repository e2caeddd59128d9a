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
    LP_SCHEDULE_MULTISTEP,
    LP_SCHEDULE_PLATEAU
} lp_schedule_type;

#define LP_SCHEDULE_MAX_MILESTONES 32

/* The metric a plateau schedule or early stopping watches (metric.h has the rest). */
typedef enum lp_metric_id {
    LP_METRIC_TRAIN_LOSS, LP_METRIC_TRAIN_ACC, LP_METRIC_VAL_LOSS, LP_METRIC_VAL_ACC,
    LP_METRIC_TEST_LOSS, LP_METRIC_TEST_ACC
} lp_metric_id;

/* torch.optim.lr_scheduler.ReduceLROnPlateau's arguments (its defaults in the config). */
typedef struct lp_plateau_config {
    lp_metric_id metric;
    bool maximize;        /* mode 'max' (an accuracy) or 'min' (a loss) */
    float factor;         /* lr *= factor on a plateau, in (0, 1) */
    int patience;         /* epochs without improvement tolerated before a reduction */
    float threshold;      /* what counts as an improvement ... */
    bool threshold_abs;   /* ... relative to the best (false, 'rel') or absolute ('abs') */
    int cooldown;         /* epochs after a reduction during which bad epochs are not counted */
    float eps;            /* a reduction smaller than this is skipped */
} lp_plateau_config;

typedef struct lp_schedule_config {
    lp_schedule_type type;
    int step_size;        /* step: epochs between decays */
    float gamma;          /* step, exponential, multistep: factor per decay */
    int milestones[LP_SCHEDULE_MAX_MILESTONES];   /* multistep: epochs, increasing */
    int n_milestones;
    float warmup_epochs;  /* linear warm-up over this many epochs (0 = none), rounded to steps */
    float warmup_start_factor;   /* lr starts at base_lr times this (torch LinearLR's start_factor) */
    float min_lr;         /* cosine: floor (eta_min); plateau: never reduce below */
    lp_plateau_config plateau;   /* plateau: when and how much to reduce */
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

/* Learning rate of optimizer step `step` (0-based: the update about to be made) in a
 * run of `epochs` epochs of `steps_per_epoch` steps each, as PyTorch's schedulers
 * give it when stepped after every update:
 *  - warm-up: the first W = round(warmup_epochs * steps_per_epoch) steps use
 *    base_lr * (f + (1 - f) * step / W), f = warmup_start_factor (LinearLR);
 *  - cosine: after the warm-up, min_lr + (base_lr - min_lr) * (1 + cos(pi * t / T)) / 2
 *    with t = step - W, T = epochs * steps_per_epoch - W (SequentialLR of LinearLR
 *    and CosineAnnealingLR(T_max = T, eta_min = min_lr));
 *  - step, multistep, exponential: by whole epochs since the start (StepLR,
 *    MultiStepLR, ExponentialLR stepped once per epoch);
 *  - plateau: base_lr (the lr then comes from lp_plateau, which holds state). */
float lp_schedule_lr(const lp_schedule_config *s, float base_lr, long long step, int steps_per_epoch,
                     int epochs);

/* ReduceLROnPlateau's state: everything a resumed run needs to continue exactly. */
typedef struct lp_plateau {
    double lr;                 /* the learning rate in force */
    double best;               /* best metric so far (+-inf before the first) */
    long long num_bad_epochs;
    long long cooldown_counter;
} lp_plateau;

void lp_plateau_init(lp_plateau *p, const lp_plateau_config *c, double base_lr);

/* One epoch's metric, as ReduceLROnPlateau.step(metric); min_lr floors the lr.
 * Returns true when it reduced the learning rate. */
bool lp_plateau_step(lp_plateau *p, const lp_plateau_config *c, double min_lr, double metric);

/* "sgd", "adam", "adamw", "rmsprop"; "constant", "step", ..., "plateau" as written in YAML. */
const char *lp_optim_type_name(lp_optim_type t);
const char *lp_schedule_type_name(lp_schedule_type t);

#endif
