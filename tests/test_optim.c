/* test_optim.c - every optimizer against torch.optim's numbers for the same
 * parameters and gradients (tests/fixtures/optim_ref.h, made by
 * tests/fixtures/gen_optim_ref.py), the state each keeps for checkpoints, and a
 * run split in two (state copied across, as a resume does) equal bit for bit to
 * one run straight through.
 */
#include <criterion/criterion.h>

#include "optim.h"

#include <math.h>
#include <string.h>

#include "fixtures/optim_ref.h"

#define N_REF ((int)(sizeof optim_ref / sizeof optim_ref[0]))

Test(optim, matches_torch_optim_step_by_step)
{
    for (int c = 0; c < N_REF; c++) {
        lp_optimizer o;
        lp_error err = {0};
        cr_assert_eq(lp_optim_init(&o, &optim_ref[c].cfg, OPTIM_REF_N, &err), LP_OK, "%s", err.msg);
        float p[OPTIM_REF_N];
        memcpy(p, optim_ref_p0, sizeof p);
        for (int s = 0; s < OPTIM_REF_STEPS; s++) {
            lp_optim_step(&o, p, optim_ref_grads[s], optim_ref[c].cfg.lr);
            for (int i = 0; i < OPTIM_REF_N; i++) {
                float want = optim_ref[c].after[s][i];
                cr_assert(fabsf(p[i] - want) <= 2e-6f * fmaxf(1.0f, fabsf(want)),
                          "%s step %d [%d]: %.9g, torch %.9g", optim_ref[c].name, s + 1, i, p[i], want);
            }
        }
        lp_optim_free(&o);
    }
}

Test(optim, state_arrays_are_named_for_checkpoints)
{
    static const struct { lp_optim_config cfg; int n; const char *names[2]; } cases[] = {
        {{.type = LP_OPTIM_SGD, .lr = 0.1f, .momentum = 0.9f}, 1, {"momentum"}},
        {{.type = LP_OPTIM_ADAM, .lr = 0.1f}, 2, {"adam_m", "adam_v"}},
        {{.type = LP_OPTIM_ADAMW, .lr = 0.1f}, 2, {"adam_m", "adam_v"}},
        {{.type = LP_OPTIM_RMSPROP, .lr = 0.1f}, 1, {"square_avg"}},
        {{.type = LP_OPTIM_RMSPROP, .lr = 0.1f, .momentum = 0.5f}, 2, {"square_avg", "momentum"}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        lp_optimizer o;
        lp_error err = {0};
        cr_assert_eq(lp_optim_init(&o, &cases[c].cfg, 5, &err), LP_OK);
        cr_assert_eq(lp_optim_num_states(&o), cases[c].n, "case %zu", c);
        for (int k = 0; k < cases[c].n; k++) {
            cr_assert_str_eq(lp_optim_state_name(&o, k), cases[c].names[k]);
            cr_assert_not_null(lp_optim_state(&o, k));
        }
        cr_assert_null(lp_optim_state(&o, cases[c].n));
        lp_optim_free(&o);
    }
}

/* A resume restores the parameters, every state array and the step count t. */
Test(optim, resumed_half_way_is_bit_identical)
{
    for (int c = 0; c < N_REF; c++) {
        lp_error err = {0};
        lp_optimizer whole, first, second;
        float pw[OPTIM_REF_N], ps[OPTIM_REF_N];
        memcpy(pw, optim_ref_p0, sizeof pw);
        memcpy(ps, optim_ref_p0, sizeof ps);
        cr_assert_eq(lp_optim_init(&whole, &optim_ref[c].cfg, OPTIM_REF_N, &err), LP_OK);
        cr_assert_eq(lp_optim_init(&first, &optim_ref[c].cfg, OPTIM_REF_N, &err), LP_OK);
        cr_assert_eq(lp_optim_init(&second, &optim_ref[c].cfg, OPTIM_REF_N, &err), LP_OK);
        for (int s = 0; s < OPTIM_REF_STEPS; s++) lp_optim_step(&whole, pw, optim_ref_grads[s], 0.02f);
        for (int s = 0; s < 2; s++) lp_optim_step(&first, ps, optim_ref_grads[s], 0.02f);
        for (int k = 0; k < lp_optim_num_states(&first); k++)
            memcpy(lp_optim_state(&second, k), lp_optim_state(&first, k), sizeof(float) * OPTIM_REF_N);
        second.t = first.t;
        for (int s = 2; s < OPTIM_REF_STEPS; s++) lp_optim_step(&second, ps, optim_ref_grads[s], 0.02f);
        cr_assert(memcmp(pw, ps, sizeof pw) == 0, "%s: resumed run differs", optim_ref[c].name);
        lp_optim_free(&whole);
        lp_optim_free(&first);
        lp_optim_free(&second);
    }
}

Test(optim, exponential_schedule_decays_at_epoch_boundaries)
{
    lp_schedule_config s = {.type = LP_SCHEDULE_EXPONENTIAL, .gamma = 0.5f};
    cr_assert_float_eq(lp_schedule_lr(&s, 0.1f, 0, 100, 5), 0.1f, 1e-9);
    cr_assert_float_eq(lp_schedule_lr(&s, 0.1f, 99, 100, 5), 0.1f, 1e-9);
    cr_assert_float_eq(lp_schedule_lr(&s, 0.1f, 100, 100, 5), 0.05f, 1e-9);
    cr_assert_float_eq(lp_schedule_lr(&s, 0.1f, 350, 100, 5), 0.0125f, 1e-9);
}

Test(optim, multistep_schedule_decays_at_each_milestone)
{
    lp_schedule_config s = {.type = LP_SCHEDULE_MULTISTEP, .gamma = 0.1f, .milestones = {2, 5}, .n_milestones = 2};
    cr_assert_float_eq(lp_schedule_lr(&s, 1.0f, 190, 100, 8), 1.0f, 1e-9);
    cr_assert_float_eq(lp_schedule_lr(&s, 1.0f, 200, 100, 8), 0.1f, 1e-7);
    cr_assert_float_eq(lp_schedule_lr(&s, 1.0f, 499, 100, 8), 0.1f, 1e-7);
    cr_assert_float_eq(lp_schedule_lr(&s, 1.0f, 500, 100, 8), 0.01f, 1e-8);
    cr_assert_float_eq(lp_schedule_lr(&s, 1.0f, 750, 100, 8), 0.01f, 1e-8);
}
