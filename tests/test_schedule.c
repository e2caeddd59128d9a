/* test_schedule.c - learning-rate schedules against torch.optim.lr_scheduler's
 * numbers (tests/fixtures/schedule_ref.h, made by tests/fixtures/gen_schedule_ref.py):
 * the lr of every step for cosine with warm-up, step, multistep and exponential, and
 * ReduceLROnPlateau's lr, best, bad-epoch count and cooldown after every epoch of a
 * fixed metric sequence; a plateau schedule carried across a resume (its state copied
 * as a checkpoint carries it) continues bit for bit.
 */
#include <criterion/criterion.h>

#include "optim.h"

#include <math.h>
#include <string.h>

#include "fixtures/schedule_ref.h"

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

Test(schedule, every_step_matches_torch)
{
    for (int c = 0; c < COUNT(schedule_ref); c++) {
        const int spe = schedule_ref[c].steps_per_epoch, epochs = schedule_ref[c].epochs;
        for (long long t = 0; t < (long long)spe * epochs; t++) {
            float lr = lp_schedule_lr(&schedule_ref[c].cfg, schedule_ref[c].base_lr, t, spe, epochs);
            double want = schedule_ref[c].lr[t];
            cr_assert(fabs(lr - want) <= 2e-7 * want + 1e-12, "%s step %lld: %.9g, torch %.9g",
                      schedule_ref[c].name, t, (double)lr, want);
        }
    }
}

/* Warm-up reaches the base lr exactly at its last step + 1 and starts at f * base. */
Test(schedule, warmup_rounds_to_whole_steps)
{
    lp_schedule_config s = {.type = LP_SCHEDULE_COSINE, .warmup_epochs = 0.5f, .warmup_start_factor = 0.1f};
    cr_assert_float_eq(lp_schedule_lr(&s, 1.0f, 0, 7, 2), 0.1f, 1e-7);   /* W = round(3.5) = 4 */
    cr_assert_float_eq(lp_schedule_lr(&s, 1.0f, 2, 7, 2), 0.55f, 1e-7);
    cr_assert_float_eq(lp_schedule_lr(&s, 1.0f, 4, 7, 2), 1.0f, 1e-7);
    cr_assert(lp_schedule_lr(&s, 1.0f, 5, 7, 2) < 1.0f);
    /* plateau's lr does not come from here */
    lp_schedule_config p = {.type = LP_SCHEDULE_PLATEAU};
    cr_assert_float_eq(lp_schedule_lr(&p, 0.3f, 1000, 7, 2), 0.3f, 1e-9);
}

Test(schedule, plateau_matches_torch_epoch_by_epoch)
{
    for (int c = 0; c < COUNT(plateau_ref); c++) {
        lp_plateau p;
        lp_plateau_init(&p, &plateau_ref[c].cfg, plateau_ref[c].base_lr);
        for (int e = 0; e < PLATEAU_REF_EPOCHS; e++) {
            lp_plateau_step(&p, &plateau_ref[c].cfg, plateau_ref[c].min_lr, plateau_ref[c].metric[e]);
            const char *n = plateau_ref[c].name;
            cr_assert(fabs(p.lr - plateau_ref[c].lr[e]) <= 1e-12 * plateau_ref[c].lr[e], "%s epoch %d: lr %.17g, torch %.17g",
                      n, e + 1, p.lr, plateau_ref[c].lr[e]);
            cr_assert_eq(p.best, plateau_ref[c].best[e], "%s epoch %d: best %.17g, torch %.17g", n, e + 1,
                         p.best, plateau_ref[c].best[e]);
            cr_assert_eq(p.num_bad_epochs, plateau_ref[c].bad[e], "%s epoch %d: bad epochs", n, e + 1);
            cr_assert_eq(p.cooldown_counter, plateau_ref[c].cooldown[e], "%s epoch %d: cooldown", n, e + 1);
        }
    }
}

/* What a checkpoint carries (lr, best, bad epochs, cooldown) is all the state there is. */
Test(schedule, plateau_resumed_half_way_is_bit_identical)
{
    for (int c = 0; c < COUNT(plateau_ref); c++) {
        const lp_plateau_config *cfg = &plateau_ref[c].cfg;
        lp_plateau whole, first, second;
        lp_plateau_init(&whole, cfg, plateau_ref[c].base_lr);
        lp_plateau_init(&first, cfg, plateau_ref[c].base_lr);
        for (int e = 0; e < PLATEAU_REF_EPOCHS; e++) lp_plateau_step(&whole, cfg, plateau_ref[c].min_lr, plateau_ref[c].metric[e]);
        for (int e = 0; e < 9; e++) lp_plateau_step(&first, cfg, plateau_ref[c].min_lr, plateau_ref[c].metric[e]);
        lp_plateau_init(&second, cfg, 123.0);
        second.lr = first.lr;
        second.best = first.best;
        second.num_bad_epochs = first.num_bad_epochs;
        second.cooldown_counter = first.cooldown_counter;
        for (int e = 9; e < PLATEAU_REF_EPOCHS; e++) lp_plateau_step(&second, cfg, plateau_ref[c].min_lr, plateau_ref[c].metric[e]);
        cr_assert(memcmp(&whole, &second, sizeof whole) == 0, "%s: resumed plateau differs", plateau_ref[c].name);
    }
}
