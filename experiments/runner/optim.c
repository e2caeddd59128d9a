#include "optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int states_of(const lp_optim_config *c)
{
    switch (c->type) {
    case LP_OPTIM_SGD: return 1;
    case LP_OPTIM_RMSPROP: return c->momentum > 0 ? 2 : 1;
    default: return 2;
    }
}

lp_status lp_optim_init(lp_optimizer *o, const lp_optim_config *cfg, size_t n, lp_error *err)
{
    memset(o, 0, sizeof *o);
    o->cfg = *cfg;
    o->n = n;
    o->n_states = states_of(cfg);
    for (int k = 0; k < o->n_states; k++)
        if (!(o->state[k] = calloc(n ? n : 1, sizeof(float)))) {
            lp_optim_free(o);
            return lp_error_set(err, LP_ERR_NOMEM, "out of memory for optimizer state");
        }
    return LP_OK;
}

void lp_optim_free(lp_optimizer *o)
{
    for (int k = 0; k < LP_OPTIM_MAX_STATES; k++) {
        free(o->state[k]);
        o->state[k] = NULL;
    }
}

/* torch.optim.SGD (dampening 0): the buffer starts at zero, so mu*0 + g is
 * PyTorch's first-step "buf = g" exactly. */
static void sgd_step(const lp_optim_config *c, size_t n, float *restrict p,
                     const float *restrict grads, float *restrict m, float lr)
{
    const float mu = c->momentum, wd = c->weight_decay;
    /* gcc 12 at -O2 leaves these loops scalar without the pragma (elementwise:
     * the same numbers either way). */
    if (c->nesterov) {
#pragma omp simd
        for (size_t i = 0; i < n; i++) {
            float g = grads[i] + wd * p[i];
            m[i] = mu * m[i] + g;
            p[i] -= lr * (g + mu * m[i]);
        }
        return;
    }
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float g = grads[i] + wd * p[i];
        m[i] = mu * m[i] + g;
        p[i] -= lr * m[i];
    }
}

/* torch.optim.Adam / AdamW: step size lr / (1 - b1^t), denominator
 * sqrt(v) / sqrt(1 - b2^t) + eps. AdamW first shrinks the weights by lr * wd. */
static void adam_step(const lp_optim_config *c, size_t n, long long t, float *restrict p,
                      const float *restrict grads, float *restrict m, float *restrict v, float lr)
{
    const float b1 = c->beta1, b2 = c->beta2, eps = c->eps;
    const bool decoupled = c->type == LP_OPTIM_ADAMW;
    const float l2 = decoupled ? 0.0f : c->weight_decay;
    const float shrink = decoupled ? 1.0f - lr * c->weight_decay : 1.0f;
    const float step = lr / (1.0f - (float)pow(b1, (double)t));
    const float root_c2 = sqrtf(1.0f - (float)pow(b2, (double)t));
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float g = grads[i] + l2 * p[i];
        p[i] *= shrink;
        m[i] = b1 * m[i] + (1.0f - b1) * g;
        v[i] = b2 * v[i] + (1.0f - b2) * g * g;
        p[i] -= step * m[i] / (sqrtf(v[i]) / root_c2 + eps);
    }
}

/* torch.optim.RMSprop (centered=False). */
static void rmsprop_step(const lp_optim_config *c, size_t n, float *restrict p,
                         const float *restrict grads, float *restrict sq, float *restrict buf,
                         float lr)
{
    const float a = c->alpha, eps = c->eps, wd = c->weight_decay, mu = c->momentum;
    if (buf) {
#pragma omp simd
        for (size_t i = 0; i < n; i++) {
            float g = grads[i] + wd * p[i];
            sq[i] = a * sq[i] + (1.0f - a) * g * g;
            buf[i] = mu * buf[i] + g / (sqrtf(sq[i]) + eps);
            p[i] -= lr * buf[i];
        }
        return;
    }
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float g = grads[i] + wd * p[i];
        sq[i] = a * sq[i] + (1.0f - a) * g * g;
        p[i] -= lr * g / (sqrtf(sq[i]) + eps);
    }
}

void lp_optim_step(lp_optimizer *o, float *restrict params, const float *restrict grads, float lr)
{
    const lp_optim_config *c = &o->cfg;
    o->t++;
    switch (c->type) {
    case LP_OPTIM_SGD:
        sgd_step(c, o->n, params, grads, o->state[0], lr);
        break;
    case LP_OPTIM_ADAM:
    case LP_OPTIM_ADAMW:
        adam_step(c, o->n, o->t, params, grads, o->state[0], o->state[1], lr);
        break;
    case LP_OPTIM_RMSPROP:
        rmsprop_step(c, o->n, params, grads, o->state[0], o->n_states > 1 ? o->state[1] : NULL, lr);
        break;
    }
}

int lp_optim_num_states(const lp_optimizer *o) { return o->n_states; }

float *lp_optim_state(lp_optimizer *o, int k) { return k >= 0 && k < o->n_states ? o->state[k] : NULL; }

const char *lp_optim_state_name(const lp_optimizer *o, int k)
{
    switch (o->cfg.type) {
    case LP_OPTIM_SGD: return "momentum";
    case LP_OPTIM_RMSPROP: return k == 0 ? "square_avg" : "momentum";
    default: return k == 0 ? "adam_m" : "adam_v";
    }
}

float lp_schedule_lr(const lp_schedule_config *s, float base_lr, double progress, int epochs)
{
    if (s->warmup_epochs > 0 && progress < s->warmup_epochs)
        return base_lr * (float)((progress + 1e-3) / s->warmup_epochs);
    switch (s->type) {
    case LP_SCHEDULE_CONSTANT:
        return base_lr;
    case LP_SCHEDULE_STEP: {
        int decays = s->step_size > 0 ? (int)(progress / s->step_size) : 0;
        return base_lr * powf(s->gamma, (float)decays);
    }
    case LP_SCHEDULE_MULTISTEP: {
        int decays = 0;
        for (int i = 0; i < s->n_milestones; i++) decays += s->milestones[i] <= (int)progress;
        return base_lr * powf(s->gamma, (float)decays);
    }
    case LP_SCHEDULE_EXPONENTIAL:
        return base_lr * powf(s->gamma, (float)(int)progress);   /* at epoch boundaries, as PyTorch */
    case LP_SCHEDULE_COSINE: {
        double span = epochs - s->warmup_epochs;
        double t = span > 0 ? (progress - s->warmup_epochs) / span : 1.0;
        if (t > 1) t = 1;
        return s->min_lr + (base_lr - s->min_lr) * (float)(0.5 * (1.0 + cos(M_PI * t)));
    }
    }
    return base_lr;
}

const char *lp_optim_type_name(lp_optim_type t)
{
    static const char *const names[] = {"sgd", "adam", "adamw", "rmsprop"};
    return names[t];
}

const char *lp_schedule_type_name(lp_schedule_type t)
{
    static const char *const names[] = {"constant", "step", "cosine", "exponential", "multistep"};
    return names[t];
}
