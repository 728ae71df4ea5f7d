/*
 * test_model.c: the BLAS forward/backward against plain loops, the whole network against
 * central differences, the tensor table, and every initialisation scheme's statistics.
 */
#include "test_util.h"
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
    const float *out = tr_model_forward(&m, X, B);
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
    tr_model_forward(&m, X, B);
    tr_model_backward(&m, m.grads, X, dcopy, B, true, NULL);
    cr_expect(fabsf(m.layer[0].dW[3] - 2 * dW_ref[0][3]) <= 1e-5f * (1 + fabsf(dW_ref[0][3])));
    tr_model_free(&m);
}

static double net_loss(tr_model *m, const tr_loss *L, const float *X, const float *y, int64_t B)
{
    tr_model_forward(m, X, B);
    const tr_layer *last = &m->layer[m->n_layers - 1];
    return tr_loss_compute(L, NULL, NULL, last->Z, last->A, y, B, 1.0f) /
           tr_loss_denominator(L, B, (double)B);
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
    tr_loss L = {.kind = kind, .reduction = TR_REDUCTION_MEAN, .width = out_w, .out_act = out_act,
                 .act_params = c.act_params, .huber_delta = 1.0f, .pos_weight = 1.0f};
    float X[8 * 3], y[8 * 4], dZ[8 * 4];
    fill_uniform(X, sizeof X / sizeof *X, -1.5f, 1.5f, 7);
    fill_uniform(y, sizeof y / sizeof *y, 0.0f, 1.0f, 8);
    if (kind == TR_LOSS_CROSS_ENTROPY)
        for (int r = 0; r < B; r++)
            y[r] = (float)(r % out_w);
    /* analytic */
    tr_model_zero_grad(&m);
    tr_model_forward(&m, X, B);
    const tr_layer *last = &m.layer[2];
    const float scale = (float)(1.0 / tr_loss_denominator(&L, B, (double)B));
    tr_loss_compute(&L, dZ, NULL, last->Z, last->A, y, B, scale);
    tr_model_backward(&m, m.grads, X, dZ, B, true, NULL);
    /* numeric, every parameter */
    const size_t n = m.n_params;
    double *an = calloc(n, sizeof *an), *nu = calloc(n, sizeof *nu);
    size_t k = 0;
    for (int t = 0; t < m.n_tensors; t++) {
        const tr_tensor *T = &m.tensor[t];
        for (size_t i = 0; i < T->size; i++, k++) {
            float *p = m.params + T->offset + i;
            const float p0 = *p;
            double d[2];
            for (int s = 0; s < 2; s++) {
                const float h = s ? 5e-3f : 1e-2f;
                *p = p0 + h;
                const double fp = net_loss(&m, &L, X, y, B);
                const float hp = *p;
                *p = p0 - h;
                const double fm = net_loss(&m, &L, X, y, B);
                d[s] = (fp - fm) / ((double)hp - (double)*p);
            }
            *p = p0;
            nu[k] = (4 * d[1] - d[0]) / 3;
            an[k] = m.grads[T->offset + i];
        }
    }
    const double e = rel_error(an, nu, k);
    cr_expect(max_abs(an, k) > 1e-4, "zero gradient");
    cr_expect(e < 1e-3, "network %s/%s/%s: relative error %g", tr_activation_name(hidden), tr_activation_name(out_act),
              tr_loss_name(kind), e);
    free(an);
    free(nu);
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
}
