/*
 * loss.c: losses (value per row and gradient w.r.t. the output pre-activation) and metrics.
 *
 * Values are accumulated in double; gradients are written in float, already multiplied by
 * the caller's grad_scale (1 / (accumulation steps * global denominator)), so the backward
 * pass never rescales.
 */
#include "trainer/loss.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *const tr_loss_names[] = {TR_LOSS_MAP(TR_ENUM_NAME) NULL};
const char *const tr_reduction_names[] = {TR_REDUCTION_MAP(TR_ENUM_NAME) NULL};
const char *const tr_metric_names[] = {"loss", "accuracy", "macro_f1", "weighted_f1", "mse", "rmse", "mae", "r2", NULL};


const char *tr_loss_name(tr_loss_kind kind) { return tr_name_of(tr_loss_names, kind); }

const char *const tr_metric_set_names[] = {TR_METRIC_SET_MAP(TR_ENUM_NAME) NULL};

bool tr_metric_split(const char *name, tr_metric_set *set, const char **metric)
{
    for (int s = 0; tr_metric_set_names[s]; s++) {
        const size_t n = strlen(tr_metric_set_names[s]);
        if (!strncmp(name, tr_metric_set_names[s], n) && name[n] == '_' && tr_name_index(tr_metric_names, name + n + 1) >= 0) {
            *set = (tr_metric_set)s;
            *metric = name + n + 1;
            return true;
        }
    }
    return false;
}

bool tr_metric_higher_is_better(const char *metric)
{
    return !strcmp(metric, "accuracy") || !strcmp(metric, "macro_f1") || !strcmp(metric, "weighted_f1") ||
           !strcmp(metric, "r2");
}

bool tr_loss_takes_class_index(const tr_loss *L)
{
    return L->kind == TR_LOSS_CROSS_ENTROPY || L->kind == TR_LOSS_NLL;
}

int tr_loss_check(const tr_loss *L, tr_err *err)
{
    const char *act = tr_activation_name(L->out_act);
    switch (L->kind) {
    case TR_LOSS_CROSS_ENTROPY:
    case TR_LOSS_NLL:
        if (L->width < 2)
            return tr_fail(err, TR_ECONFIG,
                           "[train] loss = %s needs an output layer of at least 2 units (one per class), the model "
                           "has %lld; for two classes with one unit use bce_logits", tr_loss_name(L->kind),
                           (long long)L->width);
        break;
    case TR_LOSS_BCE:
        if (L->out_act != TR_ACT_SIGMOID)
            return tr_fail(err, TR_ECONFIG,
                           "[train] loss = bce needs probabilities: set [model] output_activation = "
                           "sigmoid (or use loss = bce_logits with an identity output), not %s", act);
        break;
    case TR_LOSS_BCE_LOGITS:
        if (L->out_act != TR_ACT_IDENTITY)
            return tr_fail(err, TR_ECONFIG,
                           "[train] loss = bce_logits takes logits (as PyTorch's BCEWithLogitsLoss), but "
                           "the output activation is %s: set [model] output_activation = identity, or "
                           "use loss = bce with a sigmoid output", act);
        break;
    case TR_LOSS_MSE:
    case TR_LOSS_L1:
    case TR_LOSS_HUBER:
        if ((L->out_act == TR_ACT_SOFTMAX || L->out_act == TR_ACT_LOG_SOFTMAX) && L->width < 2)
            return tr_fail(err, TR_ECONFIG, "[model] output_activation = %s needs at least 2 outputs", act);
        break;
    case TR_LOSS_COUNT:
        return tr_fail(err, TR_ECONFIG, "[train] loss: unknown loss");
    }
    return 0;
}

const char *tr_loss_warning(const tr_loss *L)
{
    if (L->kind == TR_LOSS_CROSS_ENTROPY && L->out_act == TR_ACT_SOFTMAX)
        return "loss = cross_entropy applies log_softmax to the softmax output: the softmax is applied twice "
               "(as PyTorch's CrossEntropyLoss after nn.Softmax); it trains, slower and less sharply: use "
               "output_activation = identity";
    if (L->kind == TR_LOSS_NLL && L->out_act != TR_ACT_LOG_SOFTMAX)
        return "loss = nll takes log-probabilities (PyTorch's NLLLoss after nn.LogSoftmax), but the output "
               "activation is not log_softmax: set output_activation = log_softmax";
    return NULL;
}

tr_task tr_loss_task(const tr_loss *L)
{
    switch (L->kind) {
    case TR_LOSS_BCE:
    case TR_LOSS_BCE_LOGITS:
    case TR_LOSS_CROSS_ENTROPY:
    case TR_LOSS_NLL:
        return TR_TASK_CLASSIFICATION;
    default:
        return TR_TASK_REGRESSION;
    }
}

int64_t tr_loss_target_width(const tr_loss *L)
{
    return tr_loss_takes_class_index(L) ? 1 : L->width;
}

int64_t tr_loss_classes(const tr_loss *L)
{
    if (tr_loss_takes_class_index(L))
        return L->width;
    if (tr_loss_task(L) == TR_TASK_CLASSIFICATION)
        return 2;
    return 0;
}

double tr_loss_denominator(const tr_loss *L, int64_t rows, double weight_sum)
{
    if (L->reduction == TR_REDUCTION_SUM)
        return 1.0;
    if (tr_loss_takes_class_index(L))
        return L->class_weights ? weight_sum : (double)rows;
    return (double)rows * (double)L->width;
}

/* Class index stored as a float target; -1 when it is not an integer in [0, classes). */
static int64_t class_of(float t, int64_t classes)
{
    if (!(t >= 0.0f) || t >= (float)classes || t != floorf(t))
        return -1;
    return (int64_t)t;
}

double tr_loss_weight_sum(const tr_loss *L, const float *y, int64_t B)
{
    if (!tr_loss_takes_class_index(L) || !L->class_weights)
        return (double)B;
    double s = 0.0;
    for (int64_t r = 0; r < B; r++) {
        int64_t c = class_of(y[r], L->width);
        s += c >= 0 ? (double)L->class_weights[c] : 0.0;
    }
    return s;
}

/* log(x) clamped at -100, as PyTorch's BCELoss (in float, as PyTorch computes it: a double
 * log per element was a tenth of the tiny networks' step). */
static double clamped_log(float x)
{
    const float l = logf(x);
    return l < -100.0f ? -100.0 : (double)l;
}

/* The weight of class k (1 without class_weights). */
static double class_weight(const tr_loss *L, int64_t k) { return L->class_weights ? L->class_weights[k] : 1.0; }

/* Softmax cross-entropy of the rows of Z (the logits), gradient w.r.t. Z into dZ. With label
 * smoothing e (PyTorch's): l = (1 - e) w_c (lse - z_c) + e/O sum_k w_k (lse - z_k), whose
 * gradient is p_j ((1 - e) w_c + e/O W) - (1 - e) w_c [j = c] - e/O w_j, W = sum_k w_k. */
static double cross_entropy(const tr_loss *L, float *dZ, double *row_loss, const float *Z,
                            const float *y, int64_t B, float scale)
{
    const int64_t O = L->width;
    const double eps = L->label_smoothing, keep = 1.0 - eps, spread = eps / (double)O;
    double W = 0.0;
    for (int64_t j = 0; j < O; j++)
        W += class_weight(L, j);
    double total = 0.0;
    for (int64_t r = 0; r < B; r++) {
        const float *z = Z + r * O;
        const int64_t c = class_of(y[r], O);
        float mx = z[0];
        for (int64_t j = 1; j < O; j++)
            mx = z[j] > mx ? z[j] : mx;
        /* e_j = exp(z_j - max) once: the loss takes their sum, the gradient their ratios */
        float *d = dZ ? dZ + r * O : NULL;
        double sum = 0.0;
        for (int64_t j = 0; j < O; j++) {
            const double e = exp((double)z[j] - mx);
            sum += e;
            if (d)
                d[j] = (float)e;
        }
        const double lse = mx + log(sum);
        const double w = c >= 0 ? class_weight(L, c) : 1.0;
        double l = c >= 0 ? w * (lse - z[c]) : NAN; /* bad label: poison, never index */
        if (eps > 0.0 && c >= 0) {
            double smooth = 0.0; /* sum_k w_k (lse - z_k) */
            for (int64_t j = 0; j < O; j++)
                smooth += class_weight(L, j) * (lse - z[j]);
            l = keep * l + spread * smooth;
        }
        total += l;
        if (row_loss)
            row_loss[r] = l;
        if (d) { /* without smoothing (keep 1, spread 0) the plain gradient, to the bit */
            const float ws = (float)((keep * w + spread * W) * scale / sum);
            for (int64_t j = 0; j < O; j++)
                d[j] = d[j] * ws - (float)(spread * class_weight(L, j) * scale);
            if (c >= 0)
                d[c] -= (float)(keep * w * scale);
            else
                d[0] = NAN;
        }
    }
    return total;
}

/* -w_c x_c per row (PyTorch's NLLLoss of the rows of X), gradient w.r.t. X into dX. */
static double nll(const tr_loss *L, float *dX, double *row_loss, const float *X, const float *y, int64_t B,
                  float scale)
{
    const int64_t O = L->width;
    double total = 0.0;
    if (dX)
        memset(dX, 0, (size_t)(B * O) * sizeof *dX);
    for (int64_t r = 0; r < B; r++) {
        const int64_t c = class_of(y[r], O);
        const double w = c >= 0 ? class_weight(L, c) : 1.0;
        const double l = c >= 0 ? -w * X[r * O + c] : NAN;
        total += l;
        if (row_loss)
            row_loss[r] = l;
        if (dX)
            dX[r * O + (c >= 0 ? c : 0)] = c >= 0 ? (float)(-w * scale) : NAN;
    }
    return total;
}

/* What cross_entropy and nll read: the output A, or Z itself when the output is identity. */
static const float *class_input(const tr_loss *L, const float *Z, const float *A)
{
    return L->out_act == TR_ACT_IDENTITY ? Z : A;
}

double tr_loss_compute(const tr_loss *L, float *dZ, double *row_loss, const float *Z,
                       const float *A, const float *y, int64_t B, float grad_scale)
{
    if (tr_loss_takes_class_index(L)) {
        const float *X = class_input(L, Z, A);
        const double total = L->kind == TR_LOSS_NLL ? nll(L, dZ, row_loss, X, y, B, grad_scale)
                                                    : cross_entropy(L, dZ, row_loss, X, y, B, grad_scale);
        if (dZ && L->out_act != TR_ACT_IDENTITY) /* d/dA to d/dZ through the output activation */
            tr_act_backward(dZ, dZ, Z, A, B, L->width, L->out_act, &L->act_params);
        return total;
    }

    const int64_t O = L->width;
    const double pw = L->pos_weight;
    const float delta = L->huber_delta;
    double total = 0.0;
    for (int64_t r = 0; r < B; r++) {
        double rl = 0.0;
        for (int64_t j = 0; j < O; j++) {
            const int64_t i = r * O + j;
            const float t = y[i];
            float g = 0.0f; /* d loss / d (A or Z, see below) before scaling */
            switch (L->kind) {
            case TR_LOSS_MSE: {
                const float d = A[i] - t;
                rl += (double)d * d;
                g = 2.0f * d;
                break;
            }
            case TR_LOSS_L1: {
                const float d = A[i] - t;
                rl += fabs((double)d);
                g = (float)((d > 0.0f) - (d < 0.0f));
                break;
            }
            case TR_LOSS_HUBER: {
                const float d = A[i] - t;
                const double ad = fabs((double)d);
                rl += ad < delta ? 0.5 * ad * ad : delta * (ad - 0.5 * delta);
                g = ad < delta ? d : delta * (float)((d > 0.0f) - (d < 0.0f));
                break;
            }
            case TR_LOSS_BCE: { /* A = sigmoid(Z); fused gradient w.r.t. Z */
                const double a = A[i];
                rl += -(pw * t * clamped_log(A[i]) + (1.0 - t) * clamped_log(1.0f - A[i]));
                g = (float)(a * (1.0 + (pw - 1.0) * t) - pw * t);
                break;
            }
            case TR_LOSS_BCE_LOGITS: { /* stable: log(1 + e^-|z|) + max(-z, 0) */
                const double z = Z[i];
                const float e = expf(-fabsf(Z[i])); /* in float, as PyTorch */
                const double log_sig_neg = (double)log1pf(e) + (z < 0 ? -z : 0.0);
                rl += (1.0 - t) * z + (1.0 + (pw - 1.0) * t) * log_sig_neg;
                const double s = Z[i] >= 0.0f ? 1.0 / (1.0 + (double)e) : (double)e / (1.0 + (double)e);
                g = (float)(s * (1.0 + (pw - 1.0) * t) - pw * t);
                break;
            }
            default:
                break;
            }
            if (dZ)
                dZ[i] = g * grad_scale;
        }
        total += rl;
        if (row_loss)
            row_loss[r] = rl;
    }
    /* The element-wise regression losses differentiate w.r.t. A: go through the output
     * activation's backward (in place) to reach Z. */
    const bool wrt_output = L->kind == TR_LOSS_MSE || L->kind == TR_LOSS_L1 || L->kind == TR_LOSS_HUBER;
    if (dZ && wrt_output && L->out_act != TR_ACT_IDENTITY)
        tr_act_backward(dZ, dZ, Z, A, B, O, L->out_act, &L->act_params);
    return total;
}

int64_t tr_loss_predict_class(const tr_loss *L, const float *z, const float *a)
{
    if (tr_loss_takes_class_index(L)) {
        const float *x = L->out_act == TR_ACT_IDENTITY ? z : a;
        int64_t best = 0;
        for (int64_t j = 1; j < L->width; j++)
            if (x[j] > x[best])
                best = j;
        return best;
    }
    return z[0] > 0.0f; /* binary: sigmoid(z) > 0.5, decided on the logit */
}

void tr_loss_probabilities(const tr_loss *L, const float *z, const float *a, float *p)
{
    const int64_t O = L->width;
    if (!tr_loss_takes_class_index(L)) { /* bce, bce_logits: sigmoid of the logit */
        for (int64_t j = 0; j < O; j++)
            p[j] = (float)(1.0 / (1.0 + exp(-(double)z[j])));
        return;
    }
    if (L->kind == TR_LOSS_NLL && L->out_act == TR_ACT_LOG_SOFTMAX) {
        for (int64_t j = 0; j < O; j++)
            p[j] = expf(a[j]);
        return;
    }
    const float *x = L->out_act == TR_ACT_IDENTITY ? z : a; /* softmax of the logits */
    float mx = x[0];
    for (int64_t j = 1; j < O; j++)
        mx = x[j] > mx ? x[j] : mx;
    double sum = 0.0;
    for (int64_t j = 0; j < O; j++)
        sum += exp((double)x[j] - mx);
    for (int64_t j = 0; j < O; j++)
        p[j] = (float)(exp((double)x[j] - mx) / sum);
}

int64_t tr_loss_count_correct(const tr_loss *L, const float *Z, const float *A, const float *y, int64_t B)
{
    int64_t correct = 0;
    if (tr_loss_takes_class_index(L)) {
        for (int64_t r = 0; r < B; r++)
            correct += tr_loss_predict_class(L, Z + r * L->width, A + r * L->width) == (int64_t)y[r];
        return correct;
    }
    for (int64_t i = 0; i < B * L->width; i++)
        correct += (Z[i] > 0.0f) == (y[i] > 0.5f);
    return correct;
}

int tr_metrics_init(tr_metrics *m, tr_task task, int64_t classes, tr_err *err)
{
    memset(m, 0, sizeof *m);
    m->task = task;
    m->classes = task == TR_TASK_CLASSIFICATION ? classes : 0;
    if (m->classes > 0) {
        const size_t k = (size_t)m->classes;
        m->confusion = calloc(k * k, sizeof *m->confusion);
        m->precision = calloc(k, sizeof *m->precision);
        m->recall = calloc(k, sizeof *m->recall);
        m->f1 = calloc(k, sizeof *m->f1);
        if (!m->confusion || !m->precision || !m->recall || !m->f1) {
            tr_metrics_free(m);
            return tr_fail(err, TR_ENOMEM, "cannot allocate metrics for %lld classes", (long long)classes);
        }
    }
    return 0;
}

void tr_metrics_free(tr_metrics *m)
{
    if (!m)
        return;
    free(m->confusion);
    free(m->precision);
    free(m->recall);
    free(m->f1);
    m->confusion = NULL;
    m->precision = m->recall = m->f1 = NULL;
}

static void classification_metrics(tr_metrics *m, const tr_loss *L, const float *Z, const float *A,
                                   const float *y, int64_t N)
{
    const int64_t K = m->classes;
    memset(m->confusion, 0, (size_t)(K * K) * sizeof *m->confusion);
    const int64_t O = L->width;
    int64_t correct = 0, total = 0;
    if (tr_loss_takes_class_index(L)) {
        for (int64_t r = 0; r < N; r++) {
            const int64_t t = class_of(y[r], K);
            const int64_t p = tr_loss_predict_class(L, Z + r * O, A + r * O);
            if (t < 0)
                continue;
            m->confusion[t * K + p]++;
            correct += t == p;
            total++;
        }
    } else { /* binary (or multi-label, element-wise) */
        for (int64_t i = 0; i < N * O; i++) {
            const int64_t t = y[i] > 0.5f;
            const int64_t p = tr_loss_predict_class(L, Z + i, A + i);
            m->confusion[t * K + p]++;
            correct += t == p;
            total++;
        }
    }
    m->accuracy = total ? (double)correct / (double)total : NAN;
    double macro[3] = {0, 0, 0}, weighted[3] = {0, 0, 0};
    int64_t present = 0, support_sum = 0;
    for (int64_t c = 0; c < K; c++) {
        int64_t tp = m->confusion[c * K + c], col = 0, row = 0;
        for (int64_t j = 0; j < K; j++) {
            col += m->confusion[j * K + c];
            row += m->confusion[c * K + j];
        }
        /* scikit-learn's zero_division=0 convention */
        m->precision[c] = col ? (double)tp / (double)col : 0.0;
        m->recall[c] = row ? (double)tp / (double)row : 0.0;
        const double pr = m->precision[c] + m->recall[c];
        m->f1[c] = pr > 0.0 ? 2.0 * m->precision[c] * m->recall[c] / pr : 0.0;
        const double v[3] = {m->precision[c], m->recall[c], m->f1[c]};
        if (col + row > 0) { /* a class neither true nor predicted is not in scikit-learn's labels */
            present++;
            for (int k = 0; k < 3; k++)
                macro[k] += v[k];
        }
        support_sum += row;
        for (int k = 0; k < 3; k++)
            weighted[k] += (double)row * v[k];
    }
    m->macro_precision = present ? macro[0] / (double)present : NAN;
    m->macro_recall = present ? macro[1] / (double)present : NAN;
    m->macro_f1 = present ? macro[2] / (double)present : NAN;
    m->weighted_precision = support_sum ? weighted[0] / (double)support_sum : NAN;
    m->weighted_recall = support_sum ? weighted[1] / (double)support_sum : NAN;
    m->weighted_f1 = support_sum ? weighted[2] / (double)support_sum : NAN;
}

static void regression_metrics(tr_metrics *m, const tr_loss *L, const float *A, const float *y, int64_t N)
{
    const int64_t O = L->width;
    double se_all = 0.0, ae_all = 0.0, r2_sum = 0.0;
    for (int64_t j = 0; j < O; j++) {
        double mean = 0.0;
        for (int64_t r = 0; r < N; r++)
            mean += y[r * O + j];
        mean /= (double)N;
        double se = 0.0, ae = 0.0, tot = 0.0;
        for (int64_t r = 0; r < N; r++) {
            const double d = (double)A[r * O + j] - y[r * O + j];
            const double dm = (double)y[r * O + j] - mean;
            se += d * d;
            ae += fabs(d);
            tot += dm * dm;
        }
        se_all += se;
        ae_all += ae;
        /* scikit-learn: a constant target scores 1 when predicted exactly, else 0 */
        r2_sum += tot > 0.0 ? 1.0 - se / tot : (se == 0.0 ? 1.0 : 0.0);
    }
    m->mse = se_all / ((double)N * (double)O);
    m->rmse = sqrt(m->mse);
    m->mae = ae_all / ((double)N * (double)O);
    m->r2 = r2_sum / (double)O;
}

void tr_metrics_compute(tr_metrics *m, const tr_loss *L, const float *Z, const float *A,
                        const float *y, const double *row_loss, int64_t N)
{
    m->rows = N;
    double sum = 0.0;
    for (int64_t r = 0; r < N; r++)
        sum += row_loss[r];
    const double wsum = tr_loss_weight_sum(L, y, N);
    m->loss = N ? sum / tr_loss_denominator(L, N, wsum) : NAN;
    if (N == 0)
        return;
    if (m->task == TR_TASK_CLASSIFICATION)
        classification_metrics(m, L, Z, A, y, N);
    else
        regression_metrics(m, L, A, y, N);
}

bool tr_metrics_get(const tr_metrics *m, const char *name, double *value)
{
    const bool cls = m->task == TR_TASK_CLASSIFICATION;
    if (strcmp(name, "loss") == 0)
        *value = m->loss;
    else if (cls && strcmp(name, "accuracy") == 0)
        *value = m->accuracy;
    else if (cls && strcmp(name, "macro_f1") == 0)
        *value = m->macro_f1;
    else if (cls && strcmp(name, "weighted_f1") == 0)
        *value = m->weighted_f1;
    else if (!cls && strcmp(name, "mse") == 0)
        *value = m->mse;
    else if (!cls && strcmp(name, "rmse") == 0)
        *value = m->rmse;
    else if (!cls && strcmp(name, "mae") == 0)
        *value = m->mae;
    else if (!cls && strcmp(name, "r2") == 0)
        *value = m->r2;
    else
        return false;
    return true;
}
