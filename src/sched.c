/*
 * sched.c: learning-rate schedules, reduce-on-plateau and early stopping (see sched.h for
 * the formulas).
 */
#include "trainer/sched.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* CosineAnnealingLR's closed form: from lr at e = 0 to eta_min at e = T. */
static double cosine_anneal(double lr, double eta_min, double e, double T)
{
    return eta_min + (lr - eta_min) * (1.0 + cos(M_PI * e / (T > 0 ? T : 1.0))) / 2.0;
}

/* PyTorch's _annealing_cos: from start (pct 0) to end (pct 1). */
static double anneal_cos(double start, double end, double pct) { return end + (start - end) / 2.0 * (cos(M_PI * pct) + 1.0); }

/* OneCycleLR's phase of step s: which of its two phases, and how far into it. */
static void onecycle_phase(const tr_train_config *tc, int64_t s, int64_t total, int *phase, double *pct)
{
    const double end0 = tc->onecycle_pct_start * (double)total - 1.0, end1 = (double)total - 1.0;
    const double x = (double)(s < total ? s : total - 1);
    if (x <= end0) {
        *phase = 0;
        *pct = x / end0;
    } else {
        *phase = 1;
        *pct = (x - end0) / (end1 - end0);
    }
}

double tr_lr_at(const tr_train_config *tc, double lr, int64_t epoch, int64_t step, int64_t total_steps,
                double plateau_scale)
{
    double v = lr;
    if (tc->lr_schedule == TR_SCHED_COSINE_STEPS) {
        const int64_t W = tc->warmup_steps, S = total_steps;
        if (step < W)
            return lr * (double)(step + 1) / (double)W;
        return cosine_anneal(lr, tc->eta_min, (double)(step - W < S - W ? step - W : S - W), (double)(S - W));
    }
    if (tc->lr_schedule == TR_SCHED_ONECYCLE) {
        const double initial = lr / tc->onecycle_div_factor, lowest = initial / tc->onecycle_final_div_factor;
        int phase;
        double pct;
        onecycle_phase(tc, step, total_steps, &phase, &pct);
        return phase == 0 ? anneal_cos(initial, lr, pct) : anneal_cos(lr, lowest, pct);
    }
    switch ((tr_lr_schedule)tc->lr_schedule) {
    case TR_SCHED_CONSTANT:
        break;
    case TR_SCHED_STEP:
        v = lr * pow(tc->gamma, (double)(epoch / tc->step_size));
        break;
    case TR_SCHED_EXPONENTIAL:
        v = lr * pow(tc->gamma, (double)epoch);
        break;
    case TR_SCHED_COSINE: {
        const double T = (double)(tc->cosine_epochs > 0 ? tc->cosine_epochs : tc->epochs);
        const double e = (double)epoch < T ? (double)epoch : T;
        v = cosine_anneal(lr, tc->eta_min, e, T);
        break;
    }
    case TR_SCHED_PLATEAU:
        v = lr * plateau_scale;
        break;
    case TR_SCHED_COSINE_STEPS: /* above */
    case TR_SCHED_ONECYCLE:
        break;
    }
    if (tc->warmup_steps > 0 && step < tc->warmup_steps)
        v *= (double)(step + 1) / (double)tc->warmup_steps;
    return v;
}

double tr_lr_batch_factor(const tr_train_config *tc, int64_t batch_rows)
{
    const double k = (double)batch_rows / (double)tc->lr_base_batch;
    switch (tc->lr_scaling) {
    case TR_LR_SCALING_LINEAR:
        return k;
    case TR_LR_SCALING_SQRT:
        return sqrt(k);
    case TR_LR_SCALING_NONE:
        break;
    }
    return 1.0;
}

double tr_lr_batch_warmup(const tr_train_config *tc, double factor, int64_t step, int64_t steps_per_epoch)
{
    if (tc->lr_scaling == TR_LR_SCALING_NONE)
        return 1.0;
    const double W = round(tc->lr_scaling_warmup_epochs * (double)steps_per_epoch);
    if ((double)step >= W)
        return 1.0;
    return (1.0 + (factor - 1.0) * (double)step / W) / factor;
}

bool tr_momentum_at(const tr_train_config *tc, int64_t step, int64_t total_steps, double *momentum)
{
    if (tc->lr_schedule != TR_SCHED_ONECYCLE || !tc->onecycle_cycle_momentum)
        return false;
    int phase;
    double pct;
    onecycle_phase(tc, step, total_steps, &phase, &pct);
    const double lo = tc->onecycle_base_momentum, hi = tc->onecycle_max_momentum;
    *momentum = phase == 0 ? anneal_cos(hi, lo, pct) : anneal_cos(lo, hi, pct);
    return true;
}

void tr_plateau_init(tr_plateau *p)
{
    p->has_best = false;
    p->best = 0.0;
    p->bad = 0;
    p->scale = 1.0;
}

bool tr_plateau_update(tr_plateau *p, const tr_train_config *tc, double lr, double value, bool lower_better)
{
    if (!isfinite(value))
        return false;
    const double th = tc->plateau_threshold;
    const bool better = !p->has_best || (lower_better ? value < p->best * (1.0 - th) : value > p->best * (1.0 + th));
    if (better) {
        p->best = value;
        p->has_best = true;
        p->bad = 0;
        return false;
    }
    if (++p->bad <= tc->plateau_patience)
        return false;
    p->bad = 0;
    const double old_lr = lr * p->scale;
    const double new_lr = fmax(old_lr * tc->plateau_factor, tc->min_lr);
    if (old_lr - new_lr <= 1e-8) /* PyTorch's eps: no change worth making */
        return false;
    p->scale = new_lr / lr;
    return true;
}

void tr_early_stop_init(tr_early_stop *e)
{
    e->has_best = false;
    e->best = 0.0;
    e->bad = 0;
}

bool tr_early_stop_update(tr_early_stop *e, double value, bool lower_better, double min_delta, int64_t patience)
{
    if (!isfinite(value))
        return ++e->bad >= patience;
    const bool better = !e->has_best || (lower_better ? value < e->best - min_delta : value > e->best + min_delta);
    if (better) {
        e->best = value;
        e->has_best = true;
        e->bad = 0;
        return false;
    }
    return ++e->bad >= patience;
}

bool tr_stop_target_parse(const char *text, tr_stop_target *target)
{
    memset(target, 0, sizeof *target);
    const char *ge = strstr(text, ">="), *le = strstr(text, "<=");
    const char *op = ge ? ge : le;
    if (!op || (ge && le))
        return false;
    const char *a = text, *b = op;
    while (*a == ' ' || *a == '\t')
        a++;
    while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
        b--;
    if (b == a || (size_t)(b - a) >= sizeof target->metric)
        return false;
    for (const char *c = a; c < b; c++)
        if (*c == ' ' || *c == '\t')
            return false;
    snprintf(target->metric, sizeof target->metric, "%.*s", (int)(b - a), a);
    target->at_least = op == ge;
    char *end;
    target->value = strtod(op + 2, &end);
    if (end == op + 2) /* no number */
        return false;
    while (*end == ' ' || *end == '\t')
        end++;
    return !*end && isfinite(target->value);
}

bool tr_stop_target_met(const tr_stop_target *target, double value)
{
    return target->at_least ? value >= target->value : value <= target->value;
}
