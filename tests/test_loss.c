/*
 * test_loss.c: every loss against its closed form and central differences (through the
 * output activation), reductions, and the metrics.
 */
#include "test_util.h"
#include "trainer/loss.h"

#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#define B 6
#define O 4

static tr_loss make(tr_loss_kind kind, tr_activation out, int64_t width)
{
    tr_loss L = {.kind = kind, .reduction = TR_REDUCTION_MEAN, .width = width, .out_act = out,
                 .act_params = {0.01f, 1.0f}, .huber_delta = 1.0f, .pos_weight = 1.0f};
    return L;
}

/* loss value as a function of Z (forward of the output activation included) */
static double value(const tr_loss *L, const float *Z, const float *y, int64_t n)
{
    float A[B * O];
    tr_act_forward(A, Z, n, L->width, L->out_act, &L->act_params);
    return tr_loss_compute(L, NULL, NULL, Z, A, y, n, 1.0f);
}

static void gradient_check(tr_loss L, const float *y, uint64_t seed)
{
    const int64_t n = B, w = L.width;
    float Z[B * O], A[B * O], dZ[B * O];
    fill_uniform(Z, (size_t)(n * w), -2.0f, 2.0f, seed);
    if (tr_loss_target_width(&L) == w) /* away from the kink of l1/huber */
        for (int i = 0; i < n * w; i++)
            if (fabsf(Z[i] - y[i]) < 0.05f)
                Z[i] += 0.2f;
    tr_act_forward(A, Z, n, w, L.out_act, &L.act_params);
    tr_loss_compute(&L, dZ, NULL, Z, A, y, n, 1.0f);
    double an[B * O], nu[B * O];
    for (int i = 0; i < n * w; i++) {
        const float z0 = Z[i];
        double d[2];
        for (int k = 0; k < 2; k++) {
            const float h = k ? 5e-3f : 1e-2f;
            Z[i] = z0 + h;
            double fp = value(&L, Z, y, n);
            Z[i] = z0 - h;
            double fm = value(&L, Z, y, n);
            d[k] = (fp - fm) / ((double)(z0 + h) - (double)(z0 - h));
        }
        Z[i] = z0;
        nu[i] = (4 * d[1] - d[0]) / 3;
        an[i] = dZ[i];
    }
    const double e = rel_error(an, nu, (size_t)(n * w));
    cr_expect(max_abs(an, (size_t)(n * w)) > 1e-3, "%s/%s: zero gradient", tr_loss_name(L.kind),
              tr_activation_name(L.out_act));
    cr_expect(e < 1e-3, "%s with %s output: relative error %g", tr_loss_name(L.kind), tr_activation_name(L.out_act),
              e);
}

Test(loss, every_gradient_matches_central_difference)
{
    float yreg[B * O], ybin[B * O], ycls[B];
    fill_uniform(yreg, B * O, -1.5f, 1.5f, 5);
    fill_uniform(ybin, B * O, 0.0f, 1.0f, 6);
    for (int i = 0; i < B * O; i++)
        ybin[i] = i % 3 == 0 ? 0.3f : (ybin[i] > 0.5f); /* hard and soft labels */
    for (int r = 0; r < B; r++)
        ycls[r] = (float)(r % O);
    const tr_activation reg_outs[] = {TR_ACT_IDENTITY, TR_ACT_TANH, TR_ACT_SIGMOID, TR_ACT_SOFTMAX};
    for (size_t k = 0; k < 4; k++) {
        gradient_check(make(TR_LOSS_MSE, reg_outs[k], O), yreg, 1);
        gradient_check(make(TR_LOSS_L1, reg_outs[k], O), yreg, 2);
        gradient_check(make(TR_LOSS_HUBER, reg_outs[k], O), yreg, 3);
    }
    gradient_check(make(TR_LOSS_BCE, TR_ACT_SIGMOID, O), ybin, 4);
    gradient_check(make(TR_LOSS_BCE_LOGITS, TR_ACT_IDENTITY, O), ybin, 5);
    gradient_check(make(TR_LOSS_CROSS_ENTROPY, TR_ACT_IDENTITY, O), ycls, 6);
    tr_loss pw = make(TR_LOSS_BCE_LOGITS, TR_ACT_IDENTITY, O);
    pw.pos_weight = 3.0f;
    gradient_check(pw, ybin, 7);
    pw.kind = TR_LOSS_BCE;
    pw.out_act = TR_ACT_SIGMOID;
    gradient_check(pw, ybin, 8);
    const float cw[O] = {0.5f, 2.0f, 1.0f, 3.0f};
    tr_loss wce = make(TR_LOSS_CROSS_ENTROPY, TR_ACT_IDENTITY, O);
    wce.class_weights = cw;
    gradient_check(wce, ycls, 9);
    /* what PyTorch accepts: cross_entropy after a softmax (applied twice) or log_softmax, nll */
    gradient_check(make(TR_LOSS_CROSS_ENTROPY, TR_ACT_SOFTMAX, O), ycls, 10);
    gradient_check(make(TR_LOSS_CROSS_ENTROPY, TR_ACT_LOG_SOFTMAX, O), ycls, 11);
    gradient_check(make(TR_LOSS_NLL, TR_ACT_LOG_SOFTMAX, O), ycls, 12);
    tr_loss wnll = make(TR_LOSS_NLL, TR_ACT_LOG_SOFTMAX, O);
    wnll.class_weights = cw;
    gradient_check(wnll, ycls, 13);
    /* label smoothing: plain, with class weights, after a log_softmax output */
    tr_loss ls = make(TR_LOSS_CROSS_ENTROPY, TR_ACT_IDENTITY, O);
    ls.label_smoothing = 0.1f;
    gradient_check(ls, ycls, 14);
    ls.class_weights = cw;
    ls.label_smoothing = 0.3f;
    gradient_check(ls, ycls, 15);
    ls.class_weights = NULL;
    ls.out_act = TR_ACT_LOG_SOFTMAX;
    gradient_check(ls, ycls, 16);
}

/* PyTorch's CrossEntropyLoss(weight=w, label_smoothing=e) of one row, written out:
 * (1 - e) w_c (-log p_c) + e/K sum_k w_k (-log p_k), from log p_k = z_k - log sum exp z. */
Test(loss, label_smoothing_closed_form)
{
    const float z[3] = {0.5f, -1.0f, 2.0f}, y[1] = {1.0f}, w[3] = {1.0f, 2.0f, 3.0f};
    const double lse = log(exp(0.5) + exp(-1.0) + exp(2.0));
    for (int weighted = 0; weighted < 2; weighted++) {
        tr_loss L = make(TR_LOSS_CROSS_ENTROPY, TR_ACT_IDENTITY, 3);
        L.label_smoothing = 0.2f;
        L.class_weights = weighted ? w : NULL;
        double smooth = 0.0;
        for (int k = 0; k < 3; k++)
            smooth += (weighted ? w[k] : 1.0) * (lse - z[k]);
        const double want = 0.8 * (weighted ? 2.0 : 1.0) * (lse - z[1]) + (double)0.2f / 3.0 * smooth;
        const double got = tr_loss_compute(&L, NULL, NULL, z, z, y, 1, 1.0f);
        cr_expect(fabs(got - want) < 1e-6 * want, "weighted %d: %.9g, want %.9g", weighted, got, want);
        /* e = 0 is the plain loss, bit for bit */
        L.label_smoothing = 0.0f;
        tr_loss plain = make(TR_LOSS_CROSS_ENTROPY, TR_ACT_IDENTITY, 3);
        plain.class_weights = L.class_weights;
        cr_expect(tr_loss_compute(&L, NULL, NULL, z, z, y, 1, 1.0f) ==
                  tr_loss_compute(&plain, NULL, NULL, z, z, y, 1, 1.0f));
    }
}

Test(loss, nll_of_log_softmax_equals_cross_entropy_of_logits)
{
    float Z[B * O], A[B * O], y[B], dce[B * O], dnll[B * O];
    fill_uniform(Z, B * O, -4.0f, 4.0f, 21);
    for (int r = 0; r < B; r++)
        y[r] = (float)((r * 3) % O);
    double rce[B], rnll[B];
    tr_loss ce = make(TR_LOSS_CROSS_ENTROPY, TR_ACT_IDENTITY, O), nl = make(TR_LOSS_NLL, TR_ACT_LOG_SOFTMAX, O);
    const double sce = tr_loss_compute(&ce, dce, rce, Z, Z, y, B, 0.25f);
    tr_act_forward(A, Z, B, O, TR_ACT_LOG_SOFTMAX, &nl.act_params);
    const double snll = tr_loss_compute(&nl, dnll, rnll, Z, A, y, B, 0.25f);
    cr_expect(fabs(sce - snll) < 1e-5 * fabs(sce), "cross_entropy %.9g, nll(log_softmax) %.9g", sce, snll);
    for (int i = 0; i < B * O; i++)
        cr_expect(fabsf(dce[i] - dnll[i]) < 1e-6f, "gradient %d: %g vs %g", i, dce[i], dnll[i]);
    for (int r = 0; r < B; r++) {
        cr_expect(fabs(rce[r] - rnll[r]) < 1e-5, "row %d", r);
        cr_expect_eq(tr_loss_predict_class(&ce, Z + r * O, Z + r * O), tr_loss_predict_class(&nl, Z + r * O, A + r * O));
    }
    float p[O], q[O];
    tr_loss_probabilities(&ce, Z, Z, p);
    tr_loss_probabilities(&nl, Z, A, q);
    for (int j = 0; j < O; j++)
        cr_expect(fabsf(p[j] - q[j]) < 1e-6f);
}

Test(loss, closed_form_values)
{
    /* mse: mean over all elements */
    tr_loss L = make(TR_LOSS_MSE, TR_ACT_IDENTITY, 2);
    float Z[4] = {1, 2, 3, 5}, y[4] = {0, 2, 1, 1};
    double s = tr_loss_compute(&L, NULL, NULL, Z, Z, y, 2, 1.0f);
    cr_expect(fabs(s - 21.0) < 1e-12);
    cr_expect(fabs(s / tr_loss_denominator(&L, 2, 2) - 5.25) < 1e-12);
    L.reduction = TR_REDUCTION_SUM;
    cr_expect(tr_loss_denominator(&L, 2, 2) == 1.0);

    /* l1 */
    L = make(TR_LOSS_L1, TR_ACT_IDENTITY, 2);
    cr_expect(fabs(tr_loss_compute(&L, NULL, NULL, Z, Z, y, 2, 1.0f) - 7.0) < 1e-12);

    /* bce clamps log at -100: a prediction of exactly 0 for a positive costs 100 */
    L = make(TR_LOSS_BCE, TR_ACT_SIGMOID, 1);
    float a0[1] = {0.0f}, z0[1] = {-200.0f}, one[1] = {1.0f};
    cr_expect(fabs(tr_loss_compute(&L, NULL, NULL, z0, a0, one, 1, 1.0f) - 100.0) < 1e-9);

    /* bce_logits is stable for large logits: log(1 + e^-50) ~ 1.9e-22, loss(-50 | y=1) = 50 */
    L = make(TR_LOSS_BCE_LOGITS, TR_ACT_IDENTITY, 1);
    float zl[1] = {-50.0f};
    cr_expect(fabs(tr_loss_compute(&L, NULL, NULL, zl, zl, one, 1, 1.0f) - 50.0) < 1e-9);

    /* cross entropy of logits (1, 2, 3) for class 2: log(e + e^2 + e^3) - 3 */
    L = make(TR_LOSS_CROSS_ENTROPY, TR_ACT_IDENTITY, 3);
    float zc[3] = {1, 2, 3}, c2[1] = {2};
    const double want = log(exp(1.0) + exp(2.0) + exp(3.0)) - 3.0;
    double row;
    cr_expect(fabs(tr_loss_compute(&L, NULL, &row, zc, zc, c2, 1, 1.0f) - want) < 1e-7);
    cr_expect(fabs(row - want) < 1e-7);

    /* weighted cross entropy divides by the weight sum of the batch (PyTorch) */
    const float w[3] = {1.0f, 1.0f, 4.0f};
    L.class_weights = w;
    float y2[2] = {2, 0};
    cr_expect(fabs(tr_loss_weight_sum(&L, y2, 2) - 5.0) < 1e-12);
    cr_expect(fabs(tr_loss_denominator(&L, 2, 5.0) - 5.0) < 1e-12);
}

Test(loss, gradient_is_scaled_by_grad_scale)
{
    tr_loss L = make(TR_LOSS_MSE, TR_ACT_IDENTITY, 1);
    float Z[2] = {3, 1}, y[2] = {1, 1}, d[2];
    tr_loss_compute(&L, d, NULL, Z, Z, y, 2, 0.25f);
    cr_expect(d[0] == 1.0f && d[1] == 0.0f); /* 2 * (3 - 1) * 0.25 */
}

Test(loss, bad_class_label_poisons_instead_of_indexing)
{
    tr_loss L = make(TR_LOSS_CROSS_ENTROPY, TR_ACT_IDENTITY, 3);
    float z[3] = {0, 0, 0}, y[1] = {7}, d[3];
    cr_expect(isnan(tr_loss_compute(&L, d, NULL, z, z, y, 1, 1.0f)));
}

Test(loss, check_rejects_mismatched_output_activations)
{
    tr_err err = {0};
    tr_loss L = make(TR_LOSS_CROSS_ENTROPY, TR_ACT_SOFTMAX, 3); /* PyTorch accepts it: so do we, warning */
    cr_expect_eq(tr_loss_check(&L, &err), 0);
    cr_expect(tr_loss_warning(&L) && strstr(tr_loss_warning(&L), "twice"));
    L = make(TR_LOSS_NLL, TR_ACT_IDENTITY, 3);
    cr_expect_eq(tr_loss_check(&L, &err), 0);
    cr_expect(tr_loss_warning(&L) && strstr(tr_loss_warning(&L), "log_softmax"));
    L = make(TR_LOSS_NLL, TR_ACT_LOG_SOFTMAX, 3);
    cr_expect_eq(tr_loss_warning(&L), NULL);
    L = make(TR_LOSS_CROSS_ENTROPY, TR_ACT_IDENTITY, 3);
    cr_expect_eq(tr_loss_warning(&L), NULL);
    L = make(TR_LOSS_NLL, TR_ACT_LOG_SOFTMAX, 1);
    cr_expect_eq(tr_loss_check(&L, &err), TR_ECONFIG);
    L = make(TR_LOSS_BCE, TR_ACT_IDENTITY, 1);
    cr_expect_eq(tr_loss_check(&L, &err), TR_ECONFIG);
    L = make(TR_LOSS_BCE_LOGITS, TR_ACT_SIGMOID, 1);
    cr_expect_eq(tr_loss_check(&L, &err), TR_ECONFIG);
    L = make(TR_LOSS_CROSS_ENTROPY, TR_ACT_IDENTITY, 1);
    cr_expect_eq(tr_loss_check(&L, &err), TR_ECONFIG);
    L = make(TR_LOSS_MSE, TR_ACT_TANH, 1);
    cr_expect_eq(tr_loss_check(&L, &err), 0);
}

Test(metrics, confusion_matrix_and_per_class_scores)
{
    /* 3 classes; predictions are the argmax of the logits */
    tr_loss L = make(TR_LOSS_CROSS_ENTROPY, TR_ACT_IDENTITY, 3);
    const float Z[6 * 3] = {5, 0, 0, /* pred 0 */ 5, 0, 0, /* pred 0 */ 0, 5, 0, /* pred 1 */
                            0, 0, 5, /* pred 2 */ 0, 5, 0, /* pred 1 */ 0, 0, 5 /* pred 2 */};
    const float y[6] = {0, 1, 1, 2, 1, 0};
    double rl[6];
    tr_loss_compute(&L, NULL, rl, Z, Z, y, 6, 1.0f);
    tr_metrics m;
    cr_assert_eq(tr_metrics_init(&m, TR_TASK_CLASSIFICATION, 3, NULL), 0);
    tr_metrics_compute(&m, &L, Z, Z, y, rl, 6);
    const int64_t want[9] = {1, 0, 1, /* true 0 */ 1, 2, 0, /* true 1 */ 0, 0, 1 /* true 2 */};
    for (int i = 0; i < 9; i++)
        cr_expect_eq(m.confusion[i], want[i], "confusion[%d] = %lld", i, (long long)m.confusion[i]);
    cr_expect(fabs(m.accuracy - 4.0 / 6.0) < 1e-12);
    cr_expect(fabs(m.precision[0] - 0.5) < 1e-12 && fabs(m.recall[0] - 0.5) < 1e-12);
    cr_expect(fabs(m.precision[1] - 1.0) < 1e-12 && fabs(m.recall[1] - 2.0 / 3.0) < 1e-12);
    cr_expect(fabs(m.precision[2] - 0.5) < 1e-12 && fabs(m.recall[2] - 1.0) < 1e-12);
    cr_expect(fabs(m.f1[1] - 0.8) < 1e-12);
    cr_expect(fabs(m.macro_f1 - (0.5 + 0.8 + 2.0 / 3.0) / 3.0) < 1e-12);
    double v;
    cr_expect(tr_metrics_get(&m, "accuracy", &v) && v == m.accuracy);
    cr_expect(!tr_metrics_get(&m, "r2", &v));
    tr_metrics_free(&m);
}

Test(metrics, regression_mse_mae_r2)
{
    tr_loss L = make(TR_LOSS_MSE, TR_ACT_IDENTITY, 1);
    const float A[4] = {1.0f, 2.0f, 3.0f, 5.0f}, y[4] = {1.0f, 2.0f, 4.0f, 4.0f};
    double rl[4];
    tr_loss_compute(&L, NULL, rl, A, A, y, 4, 1.0f);
    tr_metrics m;
    tr_metrics_init(&m, TR_TASK_REGRESSION, 0, NULL);
    tr_metrics_compute(&m, &L, A, A, y, rl, 4);
    /* y mean 2.75, SST = 3.0625+0.5625+1.5625+1.5625 = 6.75, SSE = 2 */
    cr_expect(fabs(m.mse - 0.5) < 1e-12);
    cr_expect(fabs(m.mae - 0.5) < 1e-12);
    cr_expect(fabs(m.r2 - (1.0 - 2.0 / 6.75)) < 1e-12);
    cr_expect(fabs(m.loss - 0.5) < 1e-12);
    tr_metrics_free(&m);
}

Test(metrics, binary_from_logits)
{
    tr_loss L = make(TR_LOSS_BCE_LOGITS, TR_ACT_IDENTITY, 1);
    const float Z[4] = {2.0f, -1.0f, 0.5f, -3.0f}, y[4] = {1, 0, 0, 1};
    double rl[4];
    tr_loss_compute(&L, NULL, rl, Z, Z, y, 4, 1.0f);
    tr_metrics m;
    tr_metrics_init(&m, TR_TASK_CLASSIFICATION, 2, NULL);
    tr_metrics_compute(&m, &L, Z, Z, y, rl, 4);
    cr_expect(fabs(m.accuracy - 0.5) < 1e-12);
    cr_expect_eq(m.confusion[0 * 2 + 1], 1); /* true 0 predicted 1 */
    cr_expect_eq(m.confusion[1 * 2 + 0], 1); /* true 1 predicted 0 */
    cr_expect_eq(tr_loss_count_correct(&L, Z, Z, y, 4), 2);
    tr_metrics_free(&m);
}
