/*
 * test_sched.c: every learning-rate schedule against its formula epoch by epoch, warm-up,
 * reduce-on-plateau and early stopping on scripted metric sequences.
 */
#include "trainer/sched.h"

#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

static tr_train_config schedule(int kind)
{
    tr_train_config tc;
    memset(&tc, 0, sizeof tc);
    tc.lr_schedule = kind;
    tc.epochs = 20;
    tc.step_size = 3;
    tc.gamma = 0.5;
    tc.eta_min = 0.001;
    tc.plateau_factor = 0.5;
    tc.plateau_patience = 2;
    tc.plateau_threshold = 1e-4;
    return tc;
}

static void expect_lr(double got, double want, const char *what, int epoch)
{
    cr_expect(fabs(got - want) <= 1e-12 * fabs(want), "%s, epoch %d: lr %.17g, want %.17g", what, epoch, got, want);
}

Test(schedule, step_exponential_and_constant_follow_their_formulas)
{
    tr_train_config c = schedule(TR_SCHED_CONSTANT), s = schedule(TR_SCHED_STEP), x = schedule(TR_SCHED_EXPONENTIAL);
    x.gamma = 0.9;
    const double step_want[10] = {0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.0125};
    double exp_want = 0.1;
    for (int e = 0; e < 10; e++) {
        expect_lr(tr_lr_at(&c, 0.1, e, 1000, 0, 1.0), 0.1, "constant", e);
        expect_lr(tr_lr_at(&s, 0.1, e, 1000, 0, 1.0), step_want[e], "step", e);
        expect_lr(tr_lr_at(&x, 0.1, e, 1000, 0, 1.0), exp_want, "exponential", e);
        exp_want *= 0.9;
    }
}

Test(schedule, cosine_anneals_to_eta_min_and_stays)
{
    tr_train_config c = schedule(TR_SCHED_COSINE);
    c.cosine_epochs = 10;
    expect_lr(tr_lr_at(&c, 0.1, 0, 0, 0, 1.0), 0.1, "cosine", 0);
    expect_lr(tr_lr_at(&c, 0.1, 5, 0, 0, 1.0), (0.1 + 0.001) / 2, "cosine", 5);
    expect_lr(tr_lr_at(&c, 0.1, 10, 0, 0, 1.0), 0.001, "cosine", 10);
    expect_lr(tr_lr_at(&c, 0.1, 15, 0, 0, 1.0), 0.001, "cosine", 15);
    for (int e = 0; e <= 10; e++)
        expect_lr(tr_lr_at(&c, 0.1, e, 0, 0, 1.0), 0.001 + (0.1 - 0.001) * (1 + cos(M_PI * e / 10)) / 2, "cosine", e);
    c.cosine_epochs = 0; /* the whole run */
    expect_lr(tr_lr_at(&c, 0.1, 10, 0, 0, 1.0), (0.1 + 0.001) / 2, "cosine over epochs", 10);
}

Test(schedule, warmup_ramps_linearly_over_the_first_steps)
{
    tr_train_config c = schedule(TR_SCHED_STEP);
    c.warmup_steps = 4;
    const double want[6] = {0.025, 0.05, 0.075, 0.1, 0.1, 0.1};
    for (int s = 0; s < 6; s++)
        expect_lr(tr_lr_at(&c, 0.1, 0, s, 0, 1.0), want[s], "warm-up step", s);
    expect_lr(tr_lr_at(&c, 0.1, 3, 1, 0, 1.0), 0.05 * 0.5, "warm-up on a decayed rate", 3);
}

Test(schedule, cosine_steps_warms_up_then_anneals_over_the_remaining_steps)
{
    tr_train_config c = schedule(TR_SCHED_COSINE_STEPS);
    c.warmup_steps = 10;
    c.eta_min = 0.001;
    for (int s = 0; s < 10; s++)
        expect_lr(tr_lr_at(&c, 0.1, 0, s, 110, 1.0), 0.1 * (s + 1) / 10.0, "warm-up step", s);
    expect_lr(tr_lr_at(&c, 0.1, 3, 10, 110, 1.0), 0.1, "first cosine step", 10);
    expect_lr(tr_lr_at(&c, 0.1, 3, 60, 110, 1.0), (0.1 + 0.001) / 2, "half way", 60);
    expect_lr(tr_lr_at(&c, 0.1, 3, 110, 110, 1.0), 0.001, "the end", 110);
    expect_lr(tr_lr_at(&c, 0.1, 3, 150, 110, 1.0), 0.001, "past the end", 150);
    for (int s = 10; s <= 110; s += 7)
        expect_lr(tr_lr_at(&c, 0.1, 0, s, 110, 1.0), 0.001 + 0.099 * (1 + cos(M_PI * (s - 10) / 100.0)) / 2,
                  "cosine step", s);
}

/* OneCycleLR(max_lr 0.1, total_steps 100, pct_start 0.3): its phases end at steps 29 and 99. */
Test(schedule, onecycle_rises_to_lr_then_falls_with_the_momentum_mirrored)
{
    tr_train_config c = schedule(TR_SCHED_ONECYCLE);
    c.onecycle_pct_start = 0.3;
    c.onecycle_div_factor = 25;
    c.onecycle_final_div_factor = 1e4;
    c.onecycle_cycle_momentum = true;
    c.onecycle_base_momentum = 0.85;
    c.onecycle_max_momentum = 0.95;
    const double lo = 0.1 / 25, end = lo / 1e4;
    expect_lr(tr_lr_at(&c, 0.1, 0, 0, 100, 1.0), lo, "onecycle start", 0);
    expect_lr(tr_lr_at(&c, 0.1, 0, 29, 100, 1.0), 0.1, "onecycle top", 29);
    expect_lr(tr_lr_at(&c, 0.1, 0, 99, 100, 1.0), end, "onecycle end", 99);
    expect_lr(tr_lr_at(&c, 0.1, 0, 120, 100, 1.0), end, "onecycle past the end", 120);
    for (int s = 0; s < 100; s += 9) {
        const bool up = s <= 29;
        const double pct = up ? s / 29.0 : (s - 29.0) / 70.0;
        const double a = (1 + cos(M_PI * pct)) / 2; /* 1 -> 0 */
        expect_lr(tr_lr_at(&c, 0.1, 0, s, 100, 1.0), up ? 0.1 + (lo - 0.1) * a : end + (0.1 - end) * a, "onecycle", s);
        double m = -1;
        cr_assert(tr_momentum_at(&c, s, 100, &m));
        expect_lr(m, up ? 0.85 + (0.95 - 0.85) * a : 0.95 + (0.85 - 0.95) * a, "onecycle momentum", s);
    }
    c.onecycle_cycle_momentum = false;
    double m = -1;
    cr_expect(!tr_momentum_at(&c, 5, 100, &m) && m == -1, "no momentum cycling when off");
    c = schedule(TR_SCHED_COSINE_STEPS);
    cr_expect(!tr_momentum_at(&c, 5, 100, &m) && m == -1, "no momentum cycling in other schedules");
}

/* Goyal et al.: batch 2048 against the base 256 is 8x the rate, reached by a warm-up that
 * starts at the unscaled rate and adds the same amount every step for 2.5 epochs of 4 steps. */
Test(schedule, lr_scaling_scales_by_the_batch_and_warms_up_from_the_unscaled_rate)
{
    tr_train_config tc = schedule(TR_SCHED_CONSTANT);
    tc.lr_base_batch = 256;
    tc.lr_scaling_warmup_epochs = 2.5;
    cr_expect_eq(tr_lr_batch_factor(&tc, 2048), 1.0, "none: the rate as given");
    cr_expect_eq(tr_lr_batch_warmup(&tc, 1.0, 0, 4), 1.0);
    tc.lr_scaling = TR_LR_SCALING_SQRT;
    expect_lr(tr_lr_batch_factor(&tc, 2048), sqrt(8.0), "sqrt", 0);
    tc.lr_scaling = TR_LR_SCALING_LINEAR;
    const double k = tr_lr_batch_factor(&tc, 2048);
    expect_lr(k, 8.0, "linear", 0);
    const double lr = 0.1; /* the configured rate; the run steps at lr k times the warm-up's factor */
    double prev = 0.0;
    for (int s = 0; s < 12; s++) {
        const double rate = lr * k * tr_lr_batch_warmup(&tc, k, s, 4);
        const double want = s < 10 ? lr + (k * lr - lr) * s / 10.0 : k * lr; /* W = 2.5 x 4 = 10 steps */
        expect_lr(rate, want, "linear warm-up", s);
        if (s > 0 && s <= 10)
            expect_lr(rate - prev, (k * lr - lr) / 10.0, "the same increment every step", s);
        prev = rate;
    }
    tc.lr_scaling_warmup_epochs = 0.0;
    cr_expect_eq(tr_lr_batch_warmup(&tc, k, 0, 4), 1.0, "no warm-up: the scaled rate from the first step");
}

Test(schedule, plateau_reduces_after_patience_bad_evaluations)
{
    tr_train_config c = schedule(TR_SCHED_PLATEAU);
    c.min_lr = 0.02;
    tr_plateau p;
    tr_plateau_init(&p);
    /* patience 2: the third evaluation without improvement halves the rate, then counting
     * restarts; 0.99995 is within the relative threshold of 1e-4 and does not count as better */
    const double loss[] = {1.0, 0.9, 0.95, 0.99995 * 0.9, 0.93, 0.8, 0.85, 0.85, 0.85, 0.85, 0.85, 0.85, 0.85};
    const bool reduced_want[] = {0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 1, 0};
    /* the third reduction stops at min_lr = 0.02 (scale 0.2), not 0.0125 */
    const double scale_want[] = {1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.2, 0.2};
    for (int i = 0; i < 13; i++) {
        const bool reduced = tr_plateau_update(&p, &c, 0.1, loss[i], true);
        cr_expect_eq(reduced, reduced_want[i], "evaluation %d: reduced %d", i, reduced);
        expect_lr(tr_lr_at(&c, 0.1, i, 1000, 0, p.scale), 0.1 * scale_want[i], "plateau", i);
    }
    /* at min_lr nothing changes any more */
    for (int i = 0; i < 6; i++)
        cr_expect(!tr_plateau_update(&p, &c, 0.1, 0.85, true));
    /* higher-is-better metrics */
    tr_plateau_init(&p);
    const double acc[] = {0.5, 0.6, 0.6, 0.6, 0.6};
    for (int i = 0; i < 5; i++)
        cr_expect_eq(tr_plateau_update(&p, &c, 0.1, acc[i], false), i == 4, "accuracy evaluation %d", i);
}

Test(early_stopping, stops_after_patience_evaluations_without_improvement)
{
    tr_early_stop e;
    tr_early_stop_init(&e);
    /* min_delta 0.05, patience 3: 3.96 is not enough of an improvement over 4, 3.9 is */
    const double loss[] = {5, 4, 4.5, 3.96, 3.9, 4, 4, 4};
    for (int i = 0; i < 8; i++)
        cr_expect_eq(tr_early_stop_update(&e, loss[i], true, 0.05, 3), i == 7, "evaluation %d", i);
    cr_expect_eq(e.best, 3.9);
    tr_early_stop_init(&e);
    const double acc[] = {0.5, 0.7, 0.65, 0.7, 0.71};
    for (int i = 0; i < 5; i++)
        cr_expect(!tr_early_stop_update(&e, acc[i], false, 0.0, 3), "accuracy evaluation %d", i);
    cr_expect_eq(e.best, 0.71);
    /* a non-finite value never improves */
    tr_early_stop_init(&e);
    cr_expect(!tr_early_stop_update(&e, 1.0, true, 0.0, 2));
    cr_expect(!tr_early_stop_update(&e, NAN, true, 0.0, 2));
    cr_expect(tr_early_stop_update(&e, NAN, true, 0.0, 2));
}

Test(stop_at, parses_the_target_and_meets_it_on_its_side_only)
{
    tr_stop_target t;
    cr_assert(tr_stop_target_parse("test_accuracy >= 0.9", &t));
    cr_expect_str_eq(t.metric, "test_accuracy");
    cr_expect(t.at_least);
    cr_expect_eq(t.value, 0.9);
    cr_expect(tr_stop_target_met(&t, 0.9) && tr_stop_target_met(&t, 0.95) && !tr_stop_target_met(&t, 0.8999));
    cr_expect(!tr_stop_target_met(&t, NAN));
    cr_assert(tr_stop_target_parse("  val_loss<=3e-1 ", &t));
    cr_expect_str_eq(t.metric, "val_loss");
    cr_expect(!t.at_least);
    cr_expect(tr_stop_target_met(&t, 0.3) && !tr_stop_target_met(&t, 0.31) && !tr_stop_target_met(&t, NAN));
    const char *bad[] = {"",
                         "test_accuracy > 0.9",
                         "test_accuracy >= ",
                         ">= 0.9",
                         "test accuracy >= 0.9",
                         "test_accuracy >= 0.9x",
                         "test_accuracy >= nan",
                         "test_accuracy >= inf",
                         "test_accuracy >= 0.9 <= 1",
                         "a_very_long_metric_name_beyond_the_buffer >= 1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect(!tr_stop_target_parse(bad[i], &t), "'%s' was taken", bad[i]);
}
