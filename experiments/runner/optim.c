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

float lp_schedule_lr(const lp_schedule_config *s, float base_lr, long long step, int steps_per_epoch,
                     int epochs)
{
    const long long spe = steps_per_epoch > 0 ? steps_per_epoch : 1;
    const long long warm = s->warmup_epochs > 0 ? llround((double)s->warmup_epochs * (double)spe) : 0;
    if (step < warm) {   /* torch LinearLR(start_factor=f, end_factor=1, total_iters=warm) */
        double f = s->warmup_start_factor;
        return (float)(base_lr * (f + (1.0 - f) * (double)step / (double)warm));
    }
    const int epoch = (int)(step / spe);
    switch (s->type) {
    case LP_SCHEDULE_CONSTANT:
    case LP_SCHEDULE_PLATEAU:
        return base_lr;
    case LP_SCHEDULE_STEP: {
        int decays = s->step_size > 0 ? epoch / s->step_size : 0;
        return base_lr * powf(s->gamma, (float)decays);
    }
    case LP_SCHEDULE_MULTISTEP: {
        int decays = 0;
        for (int i = 0; i < s->n_milestones; i++) decays += s->milestones[i] <= epoch;
        return base_lr * powf(s->gamma, (float)decays);
    }
    case LP_SCHEDULE_EXPONENTIAL:
        return base_lr * powf(s->gamma, (float)epoch);
    case LP_SCHEDULE_COSINE: {
        long long span = (long long)epochs * spe - warm;
        double t = span > 0 ? (double)(step - warm) / (double)span : 1.0;
        if (t > 1) t = 1;
        return (float)(s->min_lr + ((double)base_lr - s->min_lr) * 0.5 * (1.0 + cos(M_PI * t)));
    }
    }
    return base_lr;
}

void lp_plateau_init(lp_plateau *p, const lp_plateau_config *c, double base_lr)
{
    p->lr = base_lr;
    p->best = c->maximize ? -INFINITY : INFINITY;
    p->num_bad_epochs = 0;
    p->cooldown_counter = 0;
}

/* ReduceLROnPlateau.is_better, with threshold_mode 'rel' or 'abs'. */
static bool plateau_better(const lp_plateau_config *c, double a, double best)
{
    const double th = c->threshold;
    if (c->maximize) return c->threshold_abs ? a > best + th : a > best * (th + 1.0);
    return c->threshold_abs ? a < best - th : a < best * (1.0 - th);
}

bool lp_plateau_step(lp_plateau *p, const lp_plateau_config *c, double min_lr, double metric)
{
    if (plateau_better(c, metric, p->best)) {
        p->best = metric;
        p->num_bad_epochs = 0;
    } else {
        p->num_bad_epochs++;
    }
    if (p->cooldown_counter > 0) {   /* bad epochs during a cooldown do not count */
        p->cooldown_counter--;
        p->num_bad_epochs = 0;
    }
    if (p->num_bad_epochs <= c->patience) return false;
    p->cooldown_counter = c->cooldown;
    p->num_bad_epochs = 0;
    double reduced = fmax(p->lr * (double)c->factor, min_lr);
    if (p->lr - reduced <= (double)c->eps) return false;
    p->lr = reduced;
    return true;
}

const char *lp_optim_type_name(lp_optim_type t)
{
    static const char *const names[] = {"sgd", "adam", "adamw", "rmsprop"};
    return names[t];
}

const char *lp_schedule_type_name(lp_schedule_type t)
{
    static const char *const names[] = {"constant", "step", "cosine", "exponential", "multistep", "plateau"};
    return names[t];
}
