/*
 * test_optim.c: one step of every optimizer (two for the stateful ones) against the
 * closed-form update of torch.optim computed here in double; LARS and LAMB against their
 * papers' algorithms on a small network (their ratios are per tensor).
 */
#include "trainer/optim.h"

#include "trainer/model.h"

#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#define N 5
static const double P0[N] = {0.5, -1.25, 2.0, 0.0, -0.03};
static const double G1[N] = {0.1, -0.4, 1.5, -0.02, 0.003};
static const double G2[N] = {-0.2, -0.1, 0.7, 0.05, -0.004};

/* Runs `steps` steps with G1 then G2 on P0; returns the parameters. */
static void run(const tr_optim_config *cfg, int steps, float out[N])
{
    tr_optim o;
    cr_assert_eq(tr_optim_init(&o, cfg, N, NULL), 0);
    float g[N];
    for (int i = 0; i < N; i++)
        out[i] = (float)P0[i];
    for (int s = 0; s < steps; s++) {
        for (int i = 0; i < N; i++)
            g[i] = (float)(s == 0 ? G1[i] : G2[i]);
        tr_optim_begin_step(&o);
        /* two ranges, to prove range updates compose */
        tr_optim_update(&o, out, g, 0, 2, &tr_optim_plain);
        tr_optim_update(&o, out, g, 2, N, &tr_optim_plain);
    }
    tr_optim_free(&o);
}

static void expect_close(const float got[N], const double want[N], const char *what)
{
    for (int i = 0; i < N; i++)
        cr_expect(fabs(got[i] - want[i]) <= 2e-6 * (1 + fabs(want[i])), "%s: p[%d] = %.9g, want %.9g", what, i,
                  got[i], want[i]);
    /* the update must have moved something, or the test proves nothing */
    int moved = 0;
    for (int i = 0; i < N; i++)
        moved += fabs(want[i] - P0[i]) > 1e-4;
    cr_expect(moved >= 3, "%s: test update too small", what);
}

Test(optim, sgd_with_weight_decay_one_step)
{
    tr_optim_config c = {.kind = TR_OPTIM_SGD, .lr = 0.1, .weight_decay = 0.05};
    float p[N];
    run(&c, 1, p);
    double want[N];
    for (int i = 0; i < N; i++)
        want[i] = P0[i] - 0.1 * (G1[i] + 0.05 * P0[i]);
    expect_close(p, want, "sgd");
}

Test(optim, momentum_two_steps)
{
    tr_optim_config c = {.kind = TR_OPTIM_MOMENTUM, .lr = 0.1, .momentum = 0.9, .dampening = 0.1,
                         .weight_decay = 0.01};
    float p[N];
    run(&c, 2, p);
    double want[N];
    for (int i = 0; i < N; i++) {
        double d1 = G1[i] + 0.01 * P0[i];
        double b = d1; /* PyTorch: first buffer is d_p itself (no dampening) */
        double p1 = P0[i] - 0.1 * b;
        double d2 = G2[i] + 0.01 * p1;
        b = 0.9 * b + (1 - 0.1) * d2;
        want[i] = p1 - 0.1 * b;
    }
    expect_close(p, want, "momentum");
}

Test(optim, nesterov_two_steps)
{
    tr_optim_config c = {.kind = TR_OPTIM_NESTEROV, .lr = 0.1, .momentum = 0.8};
    float p[N];
    run(&c, 2, p);
    double want[N];
    for (int i = 0; i < N; i++) {
        double b = G1[i];
        double p1 = P0[i] - 0.1 * (G1[i] + 0.8 * b);
        b = 0.8 * b + G2[i];
        want[i] = p1 - 0.1 * (G2[i] + 0.8 * b);
    }
    expect_close(p, want, "nesterov");
}

static void rmsprop_case(bool centered, double momentum, const char *what)
{
    const double lr = 0.01, a = 0.99, eps = 1e-8, wd = 0.02;
    tr_optim_config c = {.kind = TR_OPTIM_RMSPROP, .lr = lr, .alpha = a, .eps = eps, .momentum = momentum,
                         .centered = centered, .weight_decay = wd};
    float p[N];
    run(&c, 2, p);
    double want[N];
    for (int i = 0; i < N; i++) {
        double pp = P0[i], sq = 0, ga = 0, buf = 0;
        for (int s = 0; s < 2; s++) {
            double d = (s ? G2[i] : G1[i]) + wd * pp;
            sq = a * sq + (1 - a) * d * d;
            double avg;
            if (centered) {
                ga = a * ga + (1 - a) * d;
                avg = sqrt(sq - ga * ga) + eps;
            } else {
                avg = sqrt(sq) + eps;
            }
            if (momentum > 0) {
                buf = momentum * buf + d / avg;
                pp -= lr * buf;
            } else {
                pp -= lr * d / avg;
            }
        }
        want[i] = pp;
    }
    expect_close(p, want, what);
}

Test(optim, rmsprop_two_steps)
{
    rmsprop_case(false, 0.0, "rmsprop");
    rmsprop_case(true, 0.0, "rmsprop centered");
    rmsprop_case(false, 0.9, "rmsprop momentum");
}

static void adam_case(tr_optim_kind kind, bool amsgrad, double wd, const char *what)
{
    const double lr = 0.05, b1 = 0.9, b2 = 0.999, eps = 1e-3;
    tr_optim_config c = {.kind = kind, .lr = lr, .beta1 = b1, .beta2 = b2, .eps = eps, .weight_decay = wd,
                         .amsgrad = amsgrad};
    float p[N];
    run(&c, 2, p);
    double want[N];
    for (int i = 0; i < N; i++) {
        double pp = P0[i], m = 0, v = 0, vmax = 0;
        for (int t = 1; t <= 2; t++) {
            double g = t == 1 ? G1[i] : G2[i];
            if (kind == TR_OPTIM_ADAMW)
                pp *= 1 - lr * wd;
            else
                g += wd * pp;
            m = b1 * m + (1 - b1) * g;
            v = b2 * v + (1 - b2) * g * g;
            vmax = v > vmax ? v : vmax;
            double mhat = m / (1 - pow(b1, t));
            double vhat = (amsgrad ? vmax : v) / (1 - pow(b2, t));
            pp -= lr * mhat / (sqrt(vhat) + eps);
        }
        want[i] = pp;
    }
    expect_close(p, want, what);
}

Test(optim, adam_two_steps_with_bias_correction)
{
    adam_case(TR_OPTIM_ADAM, false, 0.0, "adam");
    adam_case(TR_OPTIM_ADAM, false, 0.1, "adam with coupled L2");
    adam_case(TR_OPTIM_ADAM, true, 0.0, "adam amsgrad");
}

Test(optim, adamw_decays_decoupled)
{
    adam_case(TR_OPTIM_ADAMW, false, 0.1, "adamw");
    adam_case(TR_OPTIM_ADAMW, true, 0.1, "adamw amsgrad");
}

Test(optim, no_decay_range_is_left_alone_by_weight_decay)
{
    tr_optim_config c = {.kind = TR_OPTIM_SGD, .lr = 0.1, .weight_decay = 0.5};
    tr_optim o;
    tr_optim_init(&o, &c, 2, NULL);
    float p[2] = {1.0f, 1.0f}, g[2] = {0.0f, 0.0f};
    tr_optim_begin_step(&o);
    tr_optim_update(&o, p, g, 0, 1, &tr_optim_plain);
    tr_optim_range no_decay = tr_optim_plain;
    no_decay.decay = false;
    tr_optim_update(&o, p, g, 1, 2, &no_decay);
    cr_expect(fabsf(p[0] - 0.95f) < 1e-7f);
    cr_expect(p[1] == 1.0f);
    tr_optim_free(&o);
}

/* Under a zero gradient Adam's first moment decays as m - (1 - beta1) m (PyTorch's lerp);
 * once the decrement is subnormal (m below about 1.2e-37) it is flushed to zero (the pass runs
 * with FTZ and DAZ), so m stays where it is instead of creeping through the subnormal range;
 * a normal-range decrement is applied exactly as without the flush, and the caller's
 * floating-point mode is as it was afterwards. */
Test(optim, subnormal_steps_are_flushed_and_the_mode_restored)
{
    tr_optim o;
    tr_optim_config c = {.kind = TR_OPTIM_ADAM, .lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
    cr_assert_eq(tr_optim_init(&o, &c, 2, NULL), 0);
    float p[2] = {0.5f, 0.5f}, g[2] = {0.0f, 0.0f};
    o.state[0].data[0] = 1e-37f; /* its decrement, 1e-38, is subnormal */
    o.state[0].data[1] = 1e-3f;
    o.state[1].data[0] = o.state[1].data[1] = 1e-6f;
    volatile float tiny = 1e-30f, scale = 1e-10f; /* the caller's mode keeps subnormals */
    cr_assert(tiny * scale > 0.0f, "the test's own arithmetic keeps subnormals");
    const float m1 = o.state[0].data[1] - 0.1f * o.state[0].data[1];
    tr_optim_begin_step(&o);
    tr_optim_update(&o, p, g, 0, 2, &tr_optim_plain);
    cr_expect(o.state[0].data[0] == 1e-37f, "a subnormal decrement was applied: %g", (double)o.state[0].data[0]);
    cr_expect(fabsf(o.state[0].data[1] - m1) <= 1e-10f, "a normal first moment decays as without the flush: %g",
              (double)o.state[0].data[1]);
    cr_expect(tiny * scale > 0.0f, "the caller's floating-point mode was not restored");
    tr_optim_free(&o);
}

/* torch.optim.Adagrad: sum = init + g^2, p -= lr / (1 + (t-1) lr_decay) * g / (sqrt(sum) + eps),
 * with coupled weight decay; two steps. */
Test(optim, adagrad_two_steps_with_lr_decay_and_initial_accumulator)
{
    const double lr = 0.1, decay = 0.5, init = 0.2, eps = 1e-10, wd = 0.01;
    tr_optim_config c = {.kind = TR_OPTIM_ADAGRAD, .lr = lr, .lr_decay = decay, .initial_accumulator_value = init,
                         .eps = eps, .weight_decay = wd};
    float p[N];
    run(&c, 2, p);
    double want[N];
    for (int i = 0; i < N; i++) {
        double q = P0[i], sum = init;
        for (int t = 1; t <= 2; t++) {
            const double d = (t == 1 ? G1[i] : G2[i]) + wd * q;
            sum += d * d;
            q -= lr / (1.0 + (t - 1) * decay) * d / (sqrt(sum) + eps);
        }
        want[i] = q;
    }
    expect_close(p, want, "adagrad");
    tr_optim o;
    tr_optim_init(&o, &c, 3, NULL);
    cr_expect(o.n_state == 1 && !strcmp(o.state[0].name, "sum"), "adagrad's state is PyTorch's 'sum'");
    tr_optim_free(&o);
}

Test(optim, state_names_are_pytorch_keys)
{
    tr_optim o;
    tr_optim_config c = {.kind = TR_OPTIM_ADAM, .lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
    tr_optim_init(&o, &c, 3, NULL);
    cr_expect_eq(o.n_state, 2);
    cr_expect_str_eq(o.state[0].name, "exp_avg");
    cr_expect_str_eq(o.state[1].name, "exp_avg_sq");
    tr_optim_free(&o);
}

/* ---------------------------------------------------------------- penalties, clipping - */

/* One plain SGD step (lr) of the range r on P0 with gradient g. */
static void sgd_step(const tr_optim_range *r, double lr, const double *g, float out[N])
{
    tr_optim_config c = {.kind = TR_OPTIM_SGD, .lr = lr};
    tr_optim o;
    cr_assert_eq(tr_optim_init(&o, &c, N, NULL), 0);
    float gf[N];
    for (int i = 0; i < N; i++) {
        out[i] = (float)P0[i];
        gf[i] = (float)g[i];
    }
    tr_optim_begin_step(&o);
    cr_expect(tr_optim_update(&o, out, gf, 0, N, r));
    for (int i = 0; i < N; i++)
        cr_expect(gf[i] == 0.0f, "gradient %d not cleared", i);
    tr_optim_free(&o);
}

Test(optim, l1_l2_penalty_gradient_matches_central_difference_of_the_penalty)
{
    const double l1 = 0.03, l2 = 0.2, zero[N] = {0};
    tr_optim_range r = tr_optim_plain;
    r.l1 = (float)l1;
    r.l2 = (float)l2;
    float p[N];
    sgd_step(&r, 1.0, zero, p); /* p' = p - d(penalty)/dp */
    for (int i = 0; i < N; i++) {
        if (P0[i] == 0.0) { /* the subgradient of |p| at 0 is 0, as torch.sign gives */
            cr_expect(p[i] == 0.0f, "p[%d] moved from 0 to %g", i, p[i]);
            continue;
        }
        const float h = 1e-3f;
        float q[N];
        for (int k = 0; k < N; k++)
            q[k] = (float)P0[k];
        q[i] = (float)P0[i] + h;
        const double fp = tr_penalty(q, 0, N, l1, l2);
        const float up = q[i];
        q[i] = (float)P0[i] - h;
        const double fm = tr_penalty(q, 0, N, l1, l2);
        const double numeric = (fp - fm) / ((double)up - (double)q[i]);
        const double analytic = P0[i] - p[i];
        cr_expect(fabs(analytic - numeric) < 1e-5, "p[%d]: penalty gradient %.9g, central difference %.9g", i,
                  analytic, numeric);
    }
    double a = 0, q2 = 0;
    for (int i = 0; i < N; i++) {
        a += fabs(P0[i]);
        q2 += P0[i] * P0[i];
    }
    float pf[N];
    for (int i = 0; i < N; i++)
        pf[i] = (float)P0[i];
    cr_expect(fabs(tr_penalty(pf, 0, N, l1, l2) - (l1 * a + l2 * q2)) < 1e-6);
}

Test(optim, clipping_scales_then_clamps_the_penalised_gradient)
{
    /* clamp(scale (g + l1 sign p + 2 l2 p), -clip, clip), then SGD with weight decay */
    const double l1 = 0.01, l2 = 0.05, scale = 0.4, clip = 0.2, wd = 0.1, lr = 0.5;
    tr_optim_range r = {.decay = true, .l1 = (float)l1, .l2 = (float)l2, .scale = (float)scale, .clip = (float)clip};
    tr_optim_config c = {.kind = TR_OPTIM_SGD, .lr = lr, .weight_decay = wd};
    tr_optim o;
    cr_assert_eq(tr_optim_init(&o, &c, N, NULL), 0);
    float p[N], g[N];
    for (int i = 0; i < N; i++) {
        p[i] = (float)P0[i];
        g[i] = (float)G1[i];
    }
    double sq = 0;
    for (int i = 0; i < N; i++) {
        const double s = P0[i] > 0 ? 1 : P0[i] < 0 ? -1 : 0, v = G1[i] + l1 * s + 2 * l2 * P0[i];
        sq += v * v;
    }
    cr_expect(fabs(tr_optim_sq_norm(p, g, 0, N, (float)l1, (float)l2) - sq) < 1e-6 * sq);
    tr_optim_begin_step(&o);
    tr_optim_update(&o, p, g, 0, N, &r);
    double want[N];
    int clamped = 0;
    for (int i = 0; i < N; i++) {
        const double s = P0[i] > 0 ? 1 : P0[i] < 0 ? -1 : 0;
        double v = scale * (G1[i] + l1 * s + 2 * l2 * P0[i]);
        clamped += fabs(v) > clip;
        v = v > clip ? clip : v < -clip ? -clip : v;
        want[i] = P0[i] - lr * (v + wd * P0[i]);
    }
    cr_expect(clamped >= 1 && clamped < N, "the test should clamp some gradients but not all (%d)", clamped);
    expect_close(p, want, "scaled, penalised and clamped sgd");
    tr_optim_free(&o);
}

/* Out of place (the node-shared step writes the buffer nobody reads in that step) gives the
 * bits of in place, for every optimizer, over lengths with vector tails and an odd offset. */
Test(optim, update_to_another_buffer_equals_in_place)
{
    enum { M = 1000 };
    static float p_in[M], p_place[M], p_out[M], g1[M], g2[M];
    for (int k = 0; k < TR_OPTIM_COUNT; k++) {
        for (int variant = 0; variant < 2; variant++) {
            tr_optim_config cfg = {.kind = (tr_optim_kind)k, .lr = 0.01, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8,
                                   .alpha = 0.99, .weight_decay = 0.01, .momentum = 0.9 * variant,
                                   .centered = variant, .amsgrad = variant};
            if (k == TR_OPTIM_MOMENTUM || k == TR_OPTIM_NESTEROV)
                cfg.momentum = 0.9;
            tr_optim a, b;
            cr_assert_eq(tr_optim_init(&a, &cfg, M, NULL), 0);
            cr_assert_eq(tr_optim_init(&b, &cfg, M, NULL), 0);
            for (int i = 0; i < M; i++)
                p_in[i] = p_place[i] = sinf((float)i) * 0.7f;
            const tr_optim_range pen = {.decay = true, .l1 = 1e-3f, .l2 = 1e-3f, .scale = 0.5f, .clip = 0.0f};
            for (int s = 0; s < 3; s++) {
                for (int i = 0; i < M; i++)
                    g1[i] = g2[i] = cosf((float)(i * (s + 1))) * 0.3f;
                tr_optim_begin_step(&a);
                tr_optim_begin_step(&b);
                const size_t lo = 3, hi = M - 5; /* odd start, odd length */
                cr_expect(tr_optim_update(&a, p_place, g1, lo, hi, s == 1 ? &pen : NULL));
                memcpy(p_out, p_in, sizeof p_out);
                cr_expect(tr_optim_update_to(&b, p_in, p_out + lo, g2, lo, hi, s == 1 ? &pen : NULL));
                cr_expect(memcmp(p_out, p_place, sizeof p_out) == 0, "%s (variant %d) step %d: out of place differs",
                          tr_optim_name((tr_optim_kind)k), variant, s + 1);
                cr_expect(memcmp(g1, g2, sizeof g1) == 0, "%s: the gradient left behind differs",
                          tr_optim_name((tr_optim_kind)k));
                memcpy(p_in, p_out, sizeof p_in); /* the next step reads the buffer just written */
            }
            tr_optim_free(&a);
            tr_optim_free(&b);
        }
    }
}

/* ---------------------------------------------------------------- layer-wise: lars, lamb - */

/* A 3-4-2 network: weights (4x3, 2x4) are adapted and decayed, biases are not. */
static void layer_model(tr_model *m)
{
    tr_model_config c;
    memset(&c, 0, sizeof c);
    c.n_layers = 2;
    c.widths[0] = 3, c.widths[1] = 4, c.widths[2] = 2;
    c.act[0] = TR_ACT_TANH, c.act[1] = TR_ACT_IDENTITY;
    c.bias = true;
    cr_assert_eq(tr_model_init(m, &c, 4, NULL), 0);
    for (int t = 0; t < m->n_tensors; t++)
        for (size_t i = 0; i < m->tensor[t].size; i++)
            m->params[m->tensor[t].offset + i] = (float)(0.3 * sin(1.0 + 3.0 * t + 0.7 * (double)i));
}

static double grad_at(int step, int t, size_t i) { return 0.05 * cos(step + 2.0 * t + 1.3 * (double)i) * (t + 1); }

/* Two steps of the trainer's two stages, each tensor's stage one in two parts (the parts
 * compose, as the sharded exchanges need), against the algorithm written out here in double. */
static void layerwise_case(const tr_optim_config *cfg)
{
    tr_model m;
    layer_model(&m);
    tr_optim o;
    cr_assert_eq(tr_optim_init(&o, cfg, m.n_params, NULL), 0);
    tr_optim_set_rules(&o, &(tr_optim_rules){0});
    double want[64], mom1[64] = {0}, mom2[64] = {0};
    for (int t = 0; t < m.n_tensors; t++)
        for (size_t i = 0; i < m.tensor[t].size; i++)
            want[m.tensor[t].offset + i] = m.params[m.tensor[t].offset + i];
    const double lr = cfg->lr, wd = cfg->weight_decay, eps = cfg->eps, b1 = cfg->beta1, b2 = cfg->beta2;
    for (int step = 1; step <= 2; step++) {
        for (int t = 0; t < m.n_tensors; t++)
            for (size_t i = 0; i < m.tensor[t].size; i++)
                m.grads[m.tensor[t].offset + i] = (float)grad_at(step, t, i);
        tr_optim_begin_step(&o);
        for (int t = 0; t < m.n_tensors; t++) {
            const tr_tensor *T = &m.tensor[t];
            double sq[2] = {0, 0};
            const size_t mid = T->offset + T->size / 2;
            cr_expect(tr_optim_layer_sums(&o, &m, t, T->offset, mid, 1.0f, sq));
            cr_expect(tr_optim_layer_sums(&o, &m, t, mid, T->offset + T->size, 1.0f, sq));
            tr_optim_set_trust(&o, &m, t, sq);
        }
        cr_expect(tr_optim_step_range(&o, &m, 0, m.n_params, 1.0f, NULL));
        for (int t = 0; t < m.n_tensors; t++) {
            const tr_tensor *T = &m.tensor[t];
            const bool adapt = T->is_weight;
            const double twd = adapt ? wd : 0.0;
            double u[64], pp = 0, uu = 0;
            for (size_t i = 0; i < T->size; i++) {
                const size_t k = T->offset + i;
                const double g = grad_at(step, t, i);
                if (cfg->kind == TR_OPTIM_LAMB) {
                    mom1[k] = b1 * mom1[k] + (1 - b1) * g;
                    mom2[k] = b2 * mom2[k] + (1 - b2) * g * g;
                    u[i] = (mom1[k] / (1 - pow(b1, step))) / (sqrt(mom2[k]) / sqrt(1 - pow(b2, step)) + eps) +
                           twd * want[k];
                } else {
                    u[i] = g;
                }
                pp += want[k] * want[k];
                uu += u[i] * u[i];
            }
            double trust = 1.0;
            if (adapt)
                trust = cfg->kind == TR_OPTIM_LAMB ? sqrt(pp) / sqrt(uu)
                                                   : cfg->trust_coefficient * sqrt(pp) / (sqrt(uu) + wd * sqrt(pp) + eps);
            cr_expect(!adapt || fabs(o.trust[t] - trust) <= 1e-6 * trust, "tensor %d: trust %g, want %g", t,
                      (double)o.trust[t], trust);
            for (size_t i = 0; i < T->size; i++) {
                const size_t k = T->offset + i;
                if (cfg->kind == TR_OPTIM_LAMB) {
                    want[k] -= lr * trust * u[i];
                } else { /* timm's Lars: the decayed gradient times the ratio, then SGD momentum */
                    const double d = (u[i] + twd * want[k]) * trust;
                    mom1[k] = step == 1 ? d : cfg->momentum * mom1[k] + d;
                    want[k] -= lr * mom1[k];
                }
            }
        }
    }
    double moved = 0;
    for (int t = 0; t < m.n_tensors; t++)
        for (size_t i = 0; i < m.tensor[t].size; i++) {
            const size_t k = m.tensor[t].offset + i;
            cr_expect(fabs(m.params[k] - want[k]) <= 2e-6 * (1 + fabs(want[k])), "%s: %s[%zu] = %.9g, want %.9g",
                      tr_optim_name(cfg->kind), m.tensor[t].name, i, (double)m.params[k], want[k]);
            cr_expect(m.grads[k] == 0.0f, "the gradient is left zero");
            moved = fmax(moved, fabs(want[k] - 0.3 * sin(1.0 + 3.0 * t + 0.7 * (double)i)));
        }
    cr_expect(moved > 1e-3, "the steps moved the parameters (%g)", moved);
    tr_optim_free(&o);
    tr_model_free(&m);
}

Test(optim, lars_two_steps_follow_the_paper_with_momentum_and_decay)
{
    layerwise_case(&(tr_optim_config){.kind = TR_OPTIM_LARS, .lr = 2.0, .momentum = 0.9, .weight_decay = 5e-4,
                                      .eps = 1e-8, .trust_coefficient = 0.02});
}

Test(optim, lamb_two_steps_follow_the_paper_with_bias_correction_and_decay)
{
    layerwise_case(&(tr_optim_config){.kind = TR_OPTIM_LAMB, .lr = 0.05, .beta1 = 0.9, .beta2 = 0.999,
                                      .weight_decay = 0.01, .eps = 1e-6});
}

/* A zero weight tensor (or a zero gradient) has no ratio: the step is the plain one. */
Test(optim, trust_ratio_is_one_when_a_norm_is_zero)
{
    tr_model m;
    layer_model(&m);
    tr_optim o;
    cr_assert_eq(tr_optim_init(&o, &(tr_optim_config){.kind = TR_OPTIM_LAMB, .lr = 0.1, .beta1 = 0.9, .beta2 = 0.999,
                                                      .eps = 1e-6},
                               m.n_params, NULL),
                 0);
    tr_optim_set_trust(&o, &m, 0, (double[2]){0.0, 4.0});
    cr_expect_eq(o.trust[0], 1.0f);
    tr_optim_set_trust(&o, &m, 0, (double[2]){4.0, 0.0});
    cr_expect_eq(o.trust[0], 1.0f);
    tr_optim_set_trust(&o, &m, 0, (double[2]){4.0, 1.0});
    cr_expect_eq(o.trust[0], 2.0f);
    tr_optim_set_trust(&o, &m, 1, (double[2]){4.0, 1.0}); /* a bias: never adapted */
    cr_expect_eq(o.trust[1], 1.0f);
    tr_optim_free(&o);
    tr_model_free(&m);
}

/* A ratio of zero is a ratio: LARS with trust_coefficient 0 leaves the weights where they are
 * (the biases, not adapted, still step). */
Test(optim, lars_with_a_zero_coefficient_moves_no_weight)
{
    tr_model m;
    layer_model(&m);
    tr_optim o;
    cr_assert_eq(tr_optim_init(&o, &(tr_optim_config){.kind = TR_OPTIM_LARS, .lr = 1.0, .eps = 1e-8}, m.n_params, NULL),
                 0);
    float before[64];
    memcpy(before, m.params, m.n_params * sizeof(float));
    for (size_t i = 0; i < m.n_params; i++)
        m.grads[i] = 0.25f;
    tr_optim_begin_step(&o);
    for (int t = 0; t < m.n_tensors; t++) {
        double sq[2] = {0, 0};
        tr_optim_layer_sums(&o, &m, t, m.tensor[t].offset, m.tensor[t].offset + m.tensor[t].size, 1.0f, sq);
        tr_optim_set_trust(&o, &m, t, sq);
    }
    tr_optim_step_range(&o, &m, 0, m.n_params, 1.0f, NULL);
    for (int t = 0; t < m.n_tensors; t++) {
        const tr_tensor *T = &m.tensor[t];
        const bool same = memcmp(before + T->offset, m.params + T->offset, T->size * sizeof(float)) == 0;
        cr_expect(T->is_weight ? same : !same, "%s: %s", T->name, T->is_weight ? "moved" : "did not step");
    }
    tr_optim_free(&o);
    tr_model_free(&m);
}
