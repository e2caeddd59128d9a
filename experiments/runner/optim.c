#include "optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

lp_status lp_optim_init(lp_optimizer *o, const lp_optim_config *cfg, size_t n, lp_error *err)
{
    memset(o, 0, sizeof *o);
    o->cfg = *cfg;
    o->n = n;
    o->m = calloc(n ? n : 1, sizeof(float));
    if (cfg->type == LP_OPTIM_ADAM) o->v = calloc(n ? n : 1, sizeof(float));
    if (!o->m || (cfg->type == LP_OPTIM_ADAM && !o->v)) {
        lp_optim_free(o);
        return lp_error_set(err, LP_ERR_NOMEM, "out of memory for optimizer state");
    }
    return LP_OK;
}

void lp_optim_free(lp_optimizer *o)
{
    free(o->m);
    free(o->v);
    o->m = o->v = NULL;
}

void lp_optim_step(lp_optimizer *o, float *restrict params, const float *restrict grads, float lr)
{
    const lp_optim_config *c = &o->cfg;
    float *restrict m = o->m;
    size_t n = o->n;
    o->t++;
    if (c->type == LP_OPTIM_SGD) {
        const float mu = c->momentum, wd = c->weight_decay;
        /* gcc 12 at -O2 leaves these loops scalar without the pragma (elementwise:
         * the same numbers either way). */
#pragma omp simd
        for (size_t i = 0; i < n; i++) {
            float g = grads[i] + wd * params[i];
            m[i] = mu * m[i] + g;
            params[i] -= lr * m[i];
        }
        return;
    }
    float *restrict v = o->v;
    const float b1 = c->beta1, b2 = c->beta2, eps = c->eps, wd = c->weight_decay;
    const float c1 = 1.0f / (1.0f - (float)pow(b1, (double)o->t));
    const float c2 = 1.0f / (1.0f - (float)pow(b2, (double)o->t));
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float g = grads[i];
        m[i] = b1 * m[i] + (1.0f - b1) * g;
        v[i] = b2 * v[i] + (1.0f - b2) * g * g;
        params[i] -= lr * (m[i] * c1 / (sqrtf(v[i] * c2) + eps) + wd * params[i]);
    }
}

int lp_optim_num_states(const lp_optimizer *o) { return o->cfg.type == LP_OPTIM_ADAM ? 2 : 1; }

float *lp_optim_state(lp_optimizer *o, int k) { return k == 0 ? o->m : o->v; }

const char *lp_optim_state_name(const lp_optimizer *o, int k)
{
    if (o->cfg.type == LP_OPTIM_SGD) return "momentum";
    return k == 0 ? "adam_m" : "adam_v";
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
    case LP_SCHEDULE_COSINE: {
        double span = epochs - s->warmup_epochs;
        double t = span > 0 ? (progress - s->warmup_epochs) / span : 1.0;
        if (t > 1) t = 1;
        return s->min_lr + (base_lr - s->min_lr) * (float)(0.5 * (1.0 + cos(M_PI * t)));
    }
    }
    return base_lr;
}

const char *lp_optim_type_name(lp_optim_type t) { return t == LP_OPTIM_ADAM ? "adam" : "sgd"; }
