/*
 * test_model.c: the BLAS forward/backward against plain loops, the whole network against
 * central differences, the tensor table, and every initialisation scheme's statistics.
 */
#include "test_util.h"
#include "trainer/ema.h"
#include "trainer/loss.h"
#include "trainer/model.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static tr_model_config make_cfg(int n_layers, const int64_t *widths, const tr_activation *acts, bool bias)
{
    tr_model_config c;
    memset(&c, 0, sizeof c);
    c.n_layers = n_layers;
    for (int i = 0; i <= n_layers; i++)
        c.widths[i] = widths[i];
    for (int i = 0; i < n_layers; i++) {
        c.act[i] = acts[i];
        c.weight_init[i] = (tr_init_spec){.scheme = TR_INIT_DEFAULT, .b = 1, .std = 1, .gain = 1};
        c.bias_init[i] = c.weight_init[i];
    }
    c.bias = bias;
    c.act_params = (tr_act_params){0.01f, 1.0f};
    return c;
}

Test(model, tensor_table_follows_sequential_names_and_alignment)
{
    const int64_t w[] = {3, 5, 4, 2};
    const tr_activation a[] = {TR_ACT_RELU, TR_ACT_IDENTITY, TR_ACT_SIGMOID};
    tr_model_config c = make_cfg(3, w, a, true);
    tr_model m;
    cr_assert_eq(tr_model_init(&m, &c, 8, NULL), 0);
    cr_expect_eq(m.n_tensors, 6);
    /* Linear(0) ReLU(1) Linear(2) Linear(3) Sigmoid(4): identity adds no module */
    const char *names[] = {"0/weight", "0/bias", "2/weight", "2/bias", "3/weight", "3/bias"};
    for (int i = 0; i < 6; i++) {
        cr_expect_str_eq(m.tensor[i].name, names[i]);
        cr_expect_eq(m.tensor[i].offset % 16, 0, "tensor %d offset %zu not 64-byte aligned", i, m.tensor[i].offset);
    }
    cr_expect_eq(m.tensor[2].rows, 4);
    cr_expect_eq(m.tensor[2].cols, 5);
    cr_expect_eq(m.n_trainable, (size_t)(3 * 5 + 5 + 5 * 4 + 4 + 4 * 2 + 2));
    tr_model_free(&m);
}

Test(model, blas_forward_and_backward_match_plain_loops)
{
    const int64_t w[] = {7, 13, 9, 5};
    const tr_activation a[] = {TR_ACT_TANH, TR_ACT_RELU, TR_ACT_IDENTITY};
    tr_model_config c = make_cfg(3, w, a, true);
    tr_model m;
    const int64_t B = 11;
    cr_assert_eq(tr_model_init(&m, &c, B, NULL), 0);
    tr_model_init_params(&m, 3);
    float X[11 * 7], dOut[11 * 5];
    fill_uniform(X, sizeof X / sizeof *X, -1, 1, 1);
    fill_uniform(dOut, sizeof dOut / sizeof *dOut, -1, 1, 2);

    /* reference forward */
    float ref_Z[3][11 * 13], ref_A[3][11 * 13];
    const float *in = X;
    for (int l = 0; l < 3; l++) {
        tr_dense_forward_ref(ref_Z[l], in, m.layer[l].W, m.layer[l].b, B, w[l], w[l + 1]);
        tr_act_forward(ref_A[l], ref_Z[l], B, w[l + 1], a[l], &c.act_params);
        in = ref_A[l];
    }
    const float *out = tr_model_forward(&m, X, B, NULL);
    for (int64_t i = 0; i < B * 5; i++)
        cr_expect(fabsf(out[i] - ref_A[2][i]) <= 1e-5f * (1 + fabsf(ref_A[2][i])), "out[%lld]", (long long)i);

    /* reference backward */
    float dW_ref[3][13 * 9], db_ref[3][13], dX[11 * 13], dZ[11 * 13];
    memset(dW_ref, 0, sizeof dW_ref);
    memset(db_ref, 0, sizeof db_ref);
    memcpy(dZ, dOut, sizeof dOut);
    for (int l = 2; l >= 0; l--) {
        const float *lin = l ? ref_A[l - 1] : X;
        tr_dense_backward_ref(l ? dX : NULL, dW_ref[l], db_ref[l], dZ, lin, m.layer[l].W, B, w[l], w[l + 1]);
        if (l) {
            tr_act_backward(dZ, dX, ref_Z[l - 1], ref_A[l - 1], B, w[l], a[l - 1], &c.act_params);
        }
    }
    tr_model_zero_grad(&m);
    float dcopy[11 * 5];
    memcpy(dcopy, dOut, sizeof dOut);
    tr_model_backward(&m, m.grads, X, dcopy, B, true, NULL);
    for (int l = 0; l < 3; l++) {
        for (int64_t i = 0; i < w[l] * w[l + 1]; i++)
            cr_expect(fabsf(m.layer[l].dW[i] - dW_ref[l][i]) <= 1e-5f * (1 + fabsf(dW_ref[l][i])), "dW%d[%lld] %g vs %g",
                      l, (long long)i, m.layer[l].dW[i], dW_ref[l][i]);
        for (int64_t i = 0; i < w[l + 1]; i++)
            cr_expect(fabsf(m.layer[l].db[i] - db_ref[l][i]) <= 1e-5f * (1 + fabsf(db_ref[l][i])), "db%d[%lld]", l,
                      (long long)i);
    }
    /* backward adds into the gradient buffer */
    memcpy(dcopy, dOut, sizeof dOut);
    tr_model_forward(&m, X, B, NULL);
    tr_model_backward(&m, m.grads, X, dcopy, B, true, NULL);
    cr_expect(fabsf(m.layer[0].dW[3] - 2 * dW_ref[0][3]) <= 1e-5f * (1 + fabsf(dW_ref[0][3])));
    tr_model_free(&m);
}

static double net_loss(tr_model *m, const tr_loss *L, const float *X, const float *y, int64_t B,
                       const tr_forward_mode *mode)
{
    tr_model_forward(m, X, B, mode);
    const tr_layer *last = &m->layer[m->n_layers - 1];
    return tr_loss_compute(L, NULL, NULL, last->Z, last->A, y, B, 1.0f) /
           tr_loss_denominator(L, B, (double)B);
}

/* Every parameter's analytic gradient against central differences (Richardson-extrapolated)
 * of the loss of an initialised model on (X, y); `mode` is the forward mode of both (its
 * dropout masks are fixed by the counters, so the loss is a smooth function of the
 * parameters). Returns the norm-wise relative error. */
static double gradient_error(tr_model *m, const tr_loss *L, const float *X, const float *y, int64_t B,
                             const tr_forward_mode *mode)
{
    float *dZ = calloc((size_t)(B * L->width), sizeof *dZ);
    tr_model_zero_grad(m);
    tr_model_forward(m, X, B, mode);
    const tr_layer *last = &m->layer[m->n_layers - 1];
    const float scale = (float)(1.0 / tr_loss_denominator(L, B, (double)B));
    tr_loss_compute(L, dZ, NULL, last->Z, last->A, y, B, scale);
    tr_model_backward(m, m->grads, X, dZ, B, true, NULL);
    const size_t n = m->n_params;
    double *an = calloc(n, sizeof *an), *nu = calloc(n, sizeof *nu);
    size_t k = 0;
    for (int t = 0; t < m->n_tensors; t++) {
        const tr_tensor *T = &m->tensor[t];
        for (size_t i = 0; i < T->size; i++, k++) {
            float *p = m->params + T->offset + i;
            const float p0 = *p;
            double d[2];
            for (int s = 0; s < 2; s++) {
                const float h = s ? 5e-3f : 1e-2f;
                *p = p0 + h;
                const double fp = net_loss(m, L, X, y, B, mode);
                const float hp = *p;
                *p = p0 - h;
                const double fm = net_loss(m, L, X, y, B, mode);
                d[s] = (fp - fm) / ((double)hp - (double)*p);
            }
            *p = p0;
            nu[k] = (4 * d[1] - d[0]) / 3;
            an[k] = m->grads[T->offset + i];
        }
    }
    const double e = rel_error(an, nu, k);
    cr_expect(max_abs(an, k) > 1e-4, "zero gradient");
    free(an);
    free(nu);
    free(dZ);
    return e;
}

/* gradient_error of a 3-input network with loss `kind` on a fixed batch of 8 rows (class
 * indices r % out_w for cross-entropy, uniform targets otherwise). */
static double check_on_fixed_batch(tr_model *m, tr_loss_kind kind, tr_activation out_act, int64_t out_w,
                                   const tr_forward_mode *mode)
{
    const int64_t B = 8;
    tr_loss L = {.kind = kind, .reduction = TR_REDUCTION_MEAN, .width = out_w, .out_act = out_act,
                 .act_params = m->cfg.act_params, .huber_delta = 1.0f, .pos_weight = 1.0f};
    float X[8 * 3], y[8 * 4];
    fill_uniform(X, sizeof X / sizeof *X, -1.5f, 1.5f, 7);
    fill_uniform(y, sizeof y / sizeof *y, 0.0f, 1.0f, 8);
    if (kind == TR_LOSS_CROSS_ENTROPY)
        for (int r = 0; r < B; r++)
            y[r] = (float)(r % out_w);
    return gradient_error(m, &L, X, y, B, mode);
}

static void network_check(tr_activation hidden, tr_activation out_act, tr_loss_kind kind, int64_t out_w)
{
    const int64_t w[] = {3, 6, 5, out_w};
    const tr_activation a[] = {hidden, hidden, out_act};
    tr_model_config c = make_cfg(3, w, a, true);
    tr_model m;
    const int64_t B = 8;
    cr_assert_eq(tr_model_init(&m, &c, B, NULL), 0);
    tr_model_init_params(&m, 42);
    const double e = check_on_fixed_batch(&m, kind, out_act, out_w, NULL);
    cr_expect(e < 1e-3, "network %s/%s/%s: relative error %g", tr_activation_name(hidden), tr_activation_name(out_act),
              tr_loss_name(kind), e);
    tr_model_free(&m);
}

Test(model, three_layer_network_gradient_matches_central_difference)
{
    network_check(TR_ACT_TANH, TR_ACT_IDENTITY, TR_LOSS_MSE, 2);
    network_check(TR_ACT_SIGMOID, TR_ACT_SIGMOID, TR_LOSS_BCE, 1);
    network_check(TR_ACT_GELU, TR_ACT_IDENTITY, TR_LOSS_CROSS_ENTROPY, 4);
    network_check(TR_ACT_ELU, TR_ACT_IDENTITY, TR_LOSS_BCE_LOGITS, 2);
    network_check(TR_ACT_SILU, TR_ACT_TANH, TR_LOSS_HUBER, 3);
    network_check(TR_ACT_SOFTPLUS, TR_ACT_SOFTMAX, TR_LOSS_MSE, 3);
}

/* ---------------------------------------------------------------- batch norm, dropout - */

static const int64_t train_rows[8] = {100, 101, 102, 103, 104, 105, 106, 107};
static const tr_forward_mode train_mode = {.seed = 3, .step = 5, .rows = train_rows, .global_rows = 8};

/* A 3 -> 6 -> 5 -> out_w network with batch norm and dropout on both hidden layers, checked in
 * training mode (batch statistics, fixed dropout masks) against central differences. */
static void train_mode_check(bool bn, bool bn_after, float dropout, bool bias, tr_activation hidden,
                             tr_loss_kind kind, int64_t out_w)
{
    const int64_t w[] = {3, 6, 5, out_w};
    const tr_activation a[] = {hidden, hidden, TR_ACT_IDENTITY};
    tr_model_config c = make_cfg(3, w, a, bias);
    for (int l = 0; l < 2; l++) {
        c.batchnorm[l] = bn;
        c.dropout[l] = dropout;
    }
    c.bn_after = bn_after;
    c.bn_eps = 1e-5f;
    c.bn_momentum = 0.1f;
    tr_model m;
    const int64_t B = 8;
    cr_assert_eq(tr_model_init(&m, &c, B, NULL), 0);
    tr_model_init_params(&m, 42);
    for (int t = 0; t < m.n_tensors; t++) /* batch norm's affine parameters away from 1 and 0 */
        if (m.tensor[t].kind == TR_T_BN_WEIGHT || m.tensor[t].kind == TR_T_BN_BIAS)
            fill_uniform(m.params + m.tensor[t].offset, m.tensor[t].size, 0.5f, 1.5f, 90 + (uint64_t)t);
    const double e = check_on_fixed_batch(&m, kind, TR_ACT_IDENTITY, out_w, &train_mode);
    cr_expect(e < 2e-3, "bn %d (after %d), dropout %g, bias %d, %s, %s: relative error %g", bn, bn_after,
              (double)dropout, bias, tr_activation_name(hidden), tr_loss_name(kind), e);
    if (dropout > 0.0f) { /* the masks really dropped something, and the same counters give the same masks */
        int zeros = 0;
        for (int64_t i = 0; i < B * 6; i++)
            zeros += m.layer[0].mask[i] == 0.0f;
        cr_expect(zeros > 0 && zeros < B * 6, "dropout %g dropped %d of %lld units", (double)dropout, zeros,
                  (long long)(B * 6));
    }
    tr_model_free(&m);
}

Test(model, batch_norm_and_dropout_gradients_match_central_difference)
{
    train_mode_check(true, false, 0.0f, true, TR_ACT_TANH, TR_LOSS_CROSS_ENTROPY, 4);
    train_mode_check(true, true, 0.0f, true, TR_ACT_SILU, TR_LOSS_MSE, 2);
    train_mode_check(true, false, 0.0f, false, TR_ACT_GELU, TR_LOSS_BCE_LOGITS, 1);
    train_mode_check(false, false, 0.3f, true, TR_ACT_TANH, TR_LOSS_CROSS_ENTROPY, 3);
    train_mode_check(true, true, 0.25f, true, TR_ACT_ELU, TR_LOSS_HUBER, 2);
    train_mode_check(true, false, 0.5f, true, TR_ACT_SIGMOID, TR_LOSS_MSE, 3);
}

/* A 4 -> 6 -> 2 network with batch norm on the hidden layer (before or after its tanh). */
static void bn_net(tr_model *m, bool after, int64_t max_batch)
{
    const int64_t w[] = {4, 6, 2};
    const tr_activation a[] = {TR_ACT_TANH, TR_ACT_IDENTITY};
    tr_model_config c = make_cfg(2, w, a, true);
    c.batchnorm[0] = true;
    c.bn_after = after;
    c.bn_eps = 1e-5f;
    c.bn_momentum = 0.1f;
    cr_assert_eq(tr_model_init(m, &c, max_batch, NULL), 0);
    tr_model_init_params(m, 9);
    fill_uniform(m->layer[0].gamma, 6, 0.5f, 2.0f, 31);
    fill_uniform(m->layer[0].beta, 6, -1.0f, 1.0f, 32);
}

Test(model, batch_norm_training_forward_normalises_and_updates_running_statistics)
{
    for (int after = 0; after < 2; after++) {
        tr_model m;
        enum { B = 16, STEPS = 3 };
        bn_net(&m, after, B);
        const tr_layer *L = &m.layer[0];
        double rm[6], rv[6];
        for (int j = 0; j < 6; j++) {
            rm[j] = 0.0;
            rv[j] = 1.0;
        }
        for (int s = 0; s < STEPS; s++) {
            float X[B * 4], Z[B * 6];
            fill_uniform(X, B * 4, -2.0f + (float)s, 3.0f, 50 + (uint64_t)s);
            tr_model_forward(&m, X, B, &(tr_forward_mode){.global_rows = B});
            /* the normalised quantity: Z, or tanh(Z) when batch norm comes after */
            tr_dense_forward_ref(Z, X, L->W, L->b, B, 4, 6);
            for (int j = 0; j < 6; j++) {
                double mean = 0.0, var = 0.0, ymean = 0.0, yvar = 0.0;
                for (int r = 0; r < B; r++)
                    mean += after ? tanh(Z[r * 6 + j]) : Z[r * 6 + j];
                mean /= B;
                for (int r = 0; r < B; r++) {
                    const double x = (after ? tanh(Z[r * 6 + j]) : Z[r * 6 + j]) - mean;
                    var += x * x;
                    ymean += L->Y[r * 6 + j];
                }
                ymean /= B;
                for (int r = 0; r < B; r++)
                    yvar += (L->Y[r * 6 + j] - ymean) * (L->Y[r * 6 + j] - ymean);
                /* Y has mean beta and (biased) variance gamma^2 var / (var + eps) */
                const double g = L->gamma[j], biased = var / B;
                cr_expect(fabs(ymean - L->beta[j]) < 1e-5, "after %d, feature %d: mean %g, beta %g", after, j, ymean,
                          (double)L->beta[j]);
                cr_expect(fabs(yvar / B - g * g * biased / (biased + 1e-5)) < 1e-4 * g * g,
                          "after %d, feature %d: variance %g", after, j, yvar / B);
                rm[j] = 0.9 * rm[j] + 0.1 * mean;
                rv[j] = 0.9 * rv[j] + 0.1 * var / (B - 1); /* unbiased, like PyTorch */
            }
        }
        for (int j = 0; j < 6; j++) {
            cr_expect(fabs(L->running_mean[j] - rm[j]) < 1e-5 * (1 + fabs(rm[j])), "running_mean[%d] %g want %g", j,
                      (double)L->running_mean[j], rm[j]);
            cr_expect(fabs(L->running_var[j] - rv[j]) < 1e-5 * (1 + fabs(rv[j])), "running_var[%d] %g want %g", j,
                      (double)L->running_var[j], rv[j]);
        }
        cr_expect_eq(L->bn_batches, STEPS);
        tr_model_free(&m);
    }
}

Test(model, batch_norm_evaluation_uses_running_statistics_row_by_row)
{
    for (int after = 0; after < 2; after++) {
        tr_model m;
        enum { B = 5 };
        bn_net(&m, after, B);
        const tr_layer *L = &m.layer[0], *O = &m.layer[1];
        fill_uniform(L->running_mean, 6, -0.5f, 0.5f, 40);
        fill_uniform(L->running_var, 6, 0.2f, 3.0f, 41);
        float X[B * 4], Z[B * 6], H[B * 6], out[B * 2], batch[B * 2];
        fill_uniform(X, B * 4, -2.0f, 2.0f, 42);
        memcpy(batch, tr_model_forward(&m, X, B, NULL), sizeof batch);
        tr_dense_forward_ref(Z, X, L->W, L->b, B, 4, 6);
        for (int i = 0; i < B * 6; i++) {
            const int j = i % 6;
            const double x = after ? tanh(Z[i]) : Z[i];
            const double y = L->gamma[j] * (x - L->running_mean[j]) / sqrt(L->running_var[j] + 1e-5) + L->beta[j];
            H[i] = (float)(after ? y : tanh(y));
        }
        tr_dense_forward_ref(out, H, O->W, O->b, B, 6, 2);
        for (int i = 0; i < B * 2; i++)
            cr_expect(fabsf(batch[i] - out[i]) < 1e-5f * (1 + fabsf(out[i])), "after %d: out[%d] %g want %g", after,
                      i, (double)batch[i], (double)out[i]);
        for (int r = 0; r < B; r++) { /* one row at a time: the same outputs, and nothing learnt */
            const float *one = tr_model_forward(&m, X + r * 4, 1, NULL);
            cr_expect(fabsf(one[0] - batch[r * 2]) < 1e-6f && fabsf(one[1] - batch[r * 2 + 1]) < 1e-6f,
                      "after %d: row %d alone gives a different output", after, r);
        }
        cr_expect_eq(L->bn_batches, 0);
        tr_model_free(&m);
    }
}

/* ---------------------------------------------------------------- initialisation ------ */

typedef struct stats {
    double mean, std, min, max, within_1sd;
} stats;

static stats tensor_stats(const float *p, size_t n)
{
    stats s = {0, 0, INFINITY, -INFINITY, 0};
    for (size_t i = 0; i < n; i++) {
        s.mean += p[i];
        s.min = p[i] < s.min ? p[i] : s.min;
        s.max = p[i] > s.max ? p[i] : s.max;
    }
    s.mean /= (double)n;
    for (size_t i = 0; i < n; i++)
        s.std += (p[i] - s.mean) * (p[i] - s.mean);
    s.std = sqrt(s.std / (double)(n - 1));
    for (size_t i = 0; i < n; i++)
        s.within_1sd += fabs(p[i] - s.mean) <= s.std;
    s.within_1sd /= (double)n;
    return s;
}

/* Initialises a 1024 -> 512 layer (524288 weights) with spec and returns weight stats. */
static stats init_weights(tr_init_spec spec, tr_activation act, tr_model *keep)
{
    const int64_t w[] = {1024, 512};
    const tr_activation a[] = {act};
    tr_model_config c = make_cfg(1, w, a, true);
    c.weight_init[0] = spec;
    tr_model m;
    cr_assert_eq(tr_model_init(&m, &c, 1, NULL), 0);
    tr_model_init_params(&m, 1234);
    stats s = tensor_stats(m.layer[0].W, 1024 * 512);
    if (keep)
        *keep = m;
    else
        tr_model_free(&m);
    return s;
}

static void expect_uniform(stats s, double lo, double hi, const char *what)
{
    const double sd = (hi - lo) / sqrt(12.0), n = 524288.0;
    cr_expect(fabs(s.mean - (lo + hi) / 2) < 5 * sd / sqrt(n), "%s mean %g", what, s.mean);
    cr_expect(fabs(s.std / sd - 1) < 0.01, "%s std %g want %g", what, s.std, sd);
    cr_expect(s.min >= lo && s.max <= hi, "%s range [%g, %g] outside [%g, %g]", what, s.min, s.max, lo, hi);
    cr_expect(s.min < lo + 1e-3 * (hi - lo) && s.max > hi - 1e-3 * (hi - lo), "%s does not fill its range", what);
}

static void expect_normal(stats s, double mean, double sd, const char *what)
{
    const double n = 524288.0;
    cr_expect(fabs(s.mean - mean) < 5 * sd / sqrt(n), "%s mean %g want %g", what, s.mean, mean);
    cr_expect(fabs(s.std / sd - 1) < 0.01, "%s std %g want %g", what, s.std, sd);
    cr_expect(fabs(s.within_1sd - 0.6827) < 0.005, "%s: %g within one sd", what, s.within_1sd);
}

Test(init, every_scheme_matches_its_definition)
{
    const double fi = 1024, fo = 512;
    tr_init_spec d = {.scheme = TR_INIT_DEFAULT, .gain = 1};
    tr_model m;
    stats s = init_weights(d, TR_ACT_RELU, &m);
    expect_uniform(s, -1 / sqrt(fi), 1 / sqrt(fi), "default");
    stats sb = tensor_stats(m.layer[0].b, 512); /* bias: U(+-1/sqrt(fan_in)) too */
    cr_expect(sb.min >= -1 / sqrt(fi) && sb.max <= 1 / sqrt(fi));
    cr_expect(sb.max > 0.9 / sqrt(fi) && sb.min < -0.9 / sqrt(fi));
    tr_model_free(&m);

    expect_uniform(init_weights((tr_init_spec){.scheme = TR_INIT_UNIFORM, .a = -0.3, .b = 0.7}, TR_ACT_RELU, NULL),
                   -0.3, 0.7, "uniform");
    expect_normal(init_weights((tr_init_spec){.scheme = TR_INIT_NORMAL, .mean = 0.5, .std = 2}, TR_ACT_RELU, NULL),
                  0.5, 2, "normal");
    const double xb = sqrt(6 / (fi + fo));
    expect_uniform(init_weights((tr_init_spec){.scheme = TR_INIT_XAVIER_UNIFORM, .gain = 1}, TR_ACT_RELU, NULL), -xb,
                   xb, "xavier_uniform");
    expect_uniform(init_weights((tr_init_spec){.scheme = TR_INIT_XAVIER_UNIFORM, .gain = NAN}, TR_ACT_TANH, NULL),
                   -5.0 / 3 * xb, 5.0 / 3 * xb, "xavier_uniform gain auto (tanh)");
    expect_normal(init_weights((tr_init_spec){.scheme = TR_INIT_XAVIER_NORMAL, .gain = 2}, TR_ACT_RELU, NULL), 0,
                  2 * sqrt(2 / (fi + fo)), "xavier_normal");
    const double kb = sqrt(2.0) * sqrt(3 / fi);
    expect_uniform(init_weights((tr_init_spec){.scheme = TR_INIT_KAIMING_UNIFORM}, TR_ACT_RELU, NULL), -kb, kb,
                   "kaiming_uniform");
    expect_normal(init_weights((tr_init_spec){.scheme = TR_INIT_KAIMING_NORMAL, .fan_out = true}, TR_ACT_RELU, NULL),
                  0, sqrt(2.0) / sqrt(fo), "kaiming_normal fan_out");
    expect_normal(init_weights((tr_init_spec){.scheme = TR_INIT_KAIMING_NORMAL, .a = 0.2}, TR_ACT_RELU, NULL), 0,
                  sqrt(2.0 / 1.04) / sqrt(fi), "kaiming_normal a=0.2");
    stats z = init_weights((tr_init_spec){.scheme = TR_INIT_ZEROS}, TR_ACT_RELU, NULL);
    cr_expect(z.min == 0 && z.max == 0);
    stats k = init_weights((tr_init_spec){.scheme = TR_INIT_CONSTANT, .value = 0.25}, TR_ACT_RELU, NULL);
    cr_expect(k.min == 0.25 && k.max == 0.25);
}

Test(init, same_seed_gives_bitwise_same_parameters)
{
    const int64_t w[] = {20, 30, 10};
    const tr_activation a[] = {TR_ACT_RELU, TR_ACT_IDENTITY};
    tr_model_config c = make_cfg(2, w, a, true);
    tr_model m1, m2, m3;
    tr_model_init(&m1, &c, 4, NULL);
    tr_model_init(&m2, &c, 9, NULL); /* a different workspace does not matter */
    tr_model_init(&m3, &c, 4, NULL);
    tr_model_init_params(&m1, 5);
    tr_model_init_params(&m2, 5);
    tr_model_init_params(&m3, 6);
    cr_expect(memcmp(m1.params, m2.params, m1.n_params * sizeof(float)) == 0);
    cr_expect(memcmp(m1.params, m3.params, m1.n_params * sizeof(float)) != 0);
    tr_model_free(&m1);
    tr_model_free(&m2);
    tr_model_free(&m3);
}

Test(init, calculate_gain_matches_pytorch)
{
    cr_expect(tr_init_gain(TR_ACT_IDENTITY, 0.01) == 1.0);
    cr_expect(tr_init_gain(TR_ACT_SIGMOID, 0.01) == 1.0);
    cr_expect(fabs(tr_init_gain(TR_ACT_TANH, 0.01) - 5.0 / 3.0) < 1e-15);
    cr_expect(fabs(tr_init_gain(TR_ACT_RELU, 0.01) - sqrt(2.0)) < 1e-15);
    cr_expect(fabs(tr_init_gain(TR_ACT_LEAKY_RELU, 0.2) - sqrt(2.0 / 1.04)) < 1e-15);
    cr_expect(tr_init_gain(TR_ACT_SELU, 0.01) == 0.75);
    /* by name, as torch.nn.init.calculate_gain('leaky_relu') (slope 0.01 when not given) */
    cr_expect(fabs(tr_calculate_gain(TR_NL_LEAKY_RELU, NAN) - sqrt(2.0 / (1 + 1e-4))) < 1e-15);
    cr_expect(fabs(tr_calculate_gain(TR_NL_LEAKY_RELU, 0.0) - sqrt(2.0)) < 1e-15);
    cr_expect(tr_calculate_gain(TR_NL_LINEAR, NAN) == 1.0 && tr_calculate_gain(TR_NL_SIGMOID, NAN) == 1.0);
}

Test(init, kaiming_takes_pytorchs_nonlinearity)
{
    const double fi = 1024;
    const double tanh_bound = 5.0 / 3.0 * sqrt(3 / fi);
    expect_uniform(init_weights((tr_init_spec){.scheme = TR_INIT_KAIMING_UNIFORM, .nonlinearity = TR_NL_TANH},
                                TR_ACT_RELU, NULL),
                   -tanh_bound, tanh_bound, "kaiming_uniform nonlinearity=tanh");
    expect_normal(init_weights((tr_init_spec){.scheme = TR_INIT_KAIMING_NORMAL, .nonlinearity = TR_NL_SELU, .a = 5},
                               TR_ACT_RELU, NULL),
                  0, 0.75 / sqrt(fi), "kaiming_normal nonlinearity=selu (a ignored)");
    expect_normal(init_weights((tr_init_spec){.scheme = TR_INIT_KAIMING_NORMAL, .nonlinearity = TR_NL_LINEAR},
                               TR_ACT_RELU, NULL),
                  0, 1 / sqrt(fi), "kaiming_normal nonlinearity=linear");
}

Test(init, gain_and_nonlinearity_are_read_from_the_configuration)
{
    tr_config c;
    tr_err err = {0};
    const char *text = "[model]\nlayers = 4, 8, 8, 2\ninit = xavier_uniform\ninit_gain = tanh\n"
                       "init_gain.1 = leaky_relu:0.2\ninit.2 = kaiming_normal\ninit_nonlinearity.2 = relu\n"
                       "[train]\nloss = mse\n";
    cr_assert_eq(tr_config_load_string(&c, "t.ini", text, NULL, 0, &err), 0, "%s", err.msg);
    cr_expect(fabs(c.model.weight_init[0].gain - 5.0 / 3.0) < 1e-15);
    cr_expect(fabs(c.model.weight_init[1].gain - sqrt(2.0 / 1.04)) < 1e-15);
    cr_expect_eq(c.model.weight_init[2].nonlinearity, TR_NL_RELU);
    cr_expect_eq(c.model.weight_init[0].nonlinearity, TR_NL_LEAKY_RELU);
    tr_config_free(&c);
    const char *bad = "[model]\nlayers = 4, 2\ninit_gain = tanh:2\n[train]\nloss = mse\n";
    cr_expect_eq(tr_config_load_string(&c, "t.ini", bad, NULL, 0, &err), TR_ECONFIG);
    cr_expect(strstr(err.msg, "init_gain") && strstr(err.msg, "leaky_relu:0.2"), "%s", err.msg);
    tr_config_free(&c);
    const char *unknown = "[model]\nlayers = 4, 2\ninit_nonlinearity = swish\n[train]\nloss = mse\n";
    cr_expect_eq(tr_config_load_string(&c, "t.ini", unknown, NULL, 0, &err), TR_ECONFIG);
    cr_expect(strstr(err.msg, "init_nonlinearity") && strstr(err.msg, "selu"), "%s", err.msg);
    tr_config_free(&c);
}

/* The weights' moving average: the first update copies, each later one moves every parameter
 * and running statistic by (1 - decay) of its distance to the model's; while swapped in, the
 * model computes with the average (its forward pass equals a model holding those values). */
Test(ema, averages_parameters_and_statistics_and_swaps_in_for_the_forward_pass)
{
    tr_model m, copy;
    bn_net(&m, false, 8);
    bn_net(&copy, false, 8);
    tr_ema e;
    cr_assert_eq(tr_ema_init(&e, 0.75, &m, NULL), 0);
    double want[512], want_buf[64];
    cr_assert(m.n_params <= 512 && m.n_buffer_floats <= 64);
    for (int s = 0; s < 3; s++) {
        for (size_t i = 0; i < m.n_params; i++)
            m.params[i] += 0.1f * (float)(s + 1) * (float)((i % 7) - 3);
        for (size_t i = 0; i < m.n_buffer_floats; i++)
            m.buffers[i] += 0.2f * (float)(s + 1);
        tr_ema_update(&e, &m);
        for (size_t i = 0; i < m.n_params; i++)
            want[i] = s == 0 ? m.params[i] : want[i] + 0.25 * (m.params[i] - want[i]);
        for (size_t i = 0; i < m.n_buffer_floats; i++)
            want_buf[i] = s == 0 ? m.buffers[i] : want_buf[i] + 0.25 * (m.buffers[i] - want_buf[i]);
    }
    cr_expect_eq(e.n_averaged, 3);
    for (int t = 0; t < m.n_tensors; t++)
        for (size_t i = m.tensor[t].offset; i < m.tensor[t].offset + m.tensor[t].size; i++)
            cr_expect(fabs(e.params[i] - want[i]) <= 1e-6 * (1 + fabs(want[i])), "param %zu: %g want %g", i,
                      (double)e.params[i], want[i]);
    for (size_t i = 0; i < m.n_buffer_floats; i++)
        cr_expect(fabs(e.buffers[i] - want_buf[i]) <= 1e-6 * (1 + fabs(want_buf[i])));
    /* swapped in: the forward pass (evaluation mode, running statistics) is that of a model
     * holding the average; swapped back, the model's own again */
    memcpy(copy.params, e.params, m.n_params * sizeof(float));
    memcpy(copy.buffers, e.buffers, m.n_buffer_floats * sizeof(float));
    float X[8 * 4], own[8 * 2], averaged[8 * 2], again[8 * 2];
    fill_uniform(X, 8 * 4, -1.0f, 1.0f, 77);
    memcpy(own, tr_model_forward(&m, X, 8, NULL), sizeof own);
    tr_ema_swap(&e, &m);
    memcpy(averaged, tr_model_forward(&m, X, 8, NULL), sizeof averaged);
    tr_ema_swap(&e, &m);
    memcpy(again, tr_model_forward(&m, X, 8, NULL), sizeof again);
    const float *ref = tr_model_forward(&copy, X, 8, NULL);
    cr_expect(memcmp(averaged, ref, sizeof averaged) == 0, "swapped in, the model computes with the average");
    cr_expect(memcmp(own, again, sizeof own) == 0, "swapped back, with its own weights");
    cr_expect(memcmp(own, averaged, sizeof own) != 0, "the average differs from the weights (the test can fail)");
    tr_ema_free(&e);
    tr_model_free(&m);
    tr_model_free(&copy);
}
