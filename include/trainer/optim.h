/*
 * optim.h: optimizers over the flat parameter buffer, with PyTorch's update rules
 * (torch.optim single-tensor implementations): SGD with coupled weight decay, momentum and
 * Nesterov, RMSprop (alpha 0.99, eps 1e-8, optional centered/momentum), Adam with bias
 * correction (optional AMSGrad), AdamW with decoupled decay, Adagrad; and the layer-wise
 * large-batch optimizers LARS (You, Gitman and Ginsburg 2017) and LAMB (You et al. 2019),
 * which torch.optim lacks: their arithmetic follows timm's reference implementations
 * (timm.optim.Lars, timm.optim.Lamb), with the trust ratio on the tensors weight decay covers.
 *
 * The state buffers (momentum, Adam m and v, ...) have the flat parameter layout, so a step
 * is one loop per parameter tensor and a checkpoint stores them under the tensor names.
 */
#ifndef TRAINER_OPTIM_H
#define TRAINER_OPTIM_H

#include "trainer/error.h"
#include "trainer/names.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TR_OPTIM_MAP(X)        \
    X(SGD, "sgd")              \
    X(MOMENTUM, "momentum")    \
    X(NESTEROV, "nesterov")    \
    X(RMSPROP, "rmsprop")      \
    X(ADAM, "adam")            \
    X(ADAMW, "adamw")          \
    X(ADAGRAD, "adagrad")      \
    X(LARS, "lars")            \
    X(LAMB, "lamb")

typedef enum tr_optim_kind {
#define TR_X_OPT(e, name) TR_OPTIM_##e,
    TR_OPTIM_MAP(TR_X_OPT)
#undef TR_X_OPT
        TR_OPTIM_COUNT
} tr_optim_kind;

extern const char *const tr_optim_names[]; /* NULL-terminated, in tr_optim_kind order */
const char *tr_optim_name(tr_optim_kind kind);

/* Whether the optimizer's momentum is Adam's beta1 (adam, adamw, lamb) rather than SGD's. */
static inline bool tr_optim_cycles_beta1(tr_optim_kind kind)
{
    return kind == TR_OPTIM_ADAM || kind == TR_OPTIM_ADAMW || kind == TR_OPTIM_LAMB;
}

typedef struct tr_optim_config {
    tr_optim_kind kind;
    double lr;
    double momentum;     /* momentum/nesterov (and rmsprop when > 0) */
    double dampening;    /* SGD momentum dampening (0) */
    double beta1, beta2; /* adam, adamw */
    double eps;
    double alpha;        /* rmsprop smoothing */
    double weight_decay; /* coupled L2 (sgd, rmsprop, adam) or decoupled (adamw) */
    bool centered;       /* rmsprop */
    bool amsgrad;        /* adam, adamw */
    double lr_decay;     /* adagrad: lr / (1 + (t - 1) lr_decay) */
    double initial_accumulator_value; /* adagrad: the sum of squares starts here */
    double trust_coefficient; /* lars: eta of the local rate eta ||w|| / (||g|| + wd ||w|| + eps) */
} tr_optim_config;

/* The most parameter tensors a model has (model.h checks it against its own bound). */
#define TR_OPTIM_MAX_TENSORS 256

/* One named state buffer (checkpoint name and pointer into the optimizer). */
typedef struct tr_optim_state {
    const char *name; /* "momentum_buffer", "exp_avg", ... (PyTorch's state keys) */
    float *data;      /* (n) in the flat parameter layout */
} tr_optim_state;

/* [train]'s regularisation: the penalties l1 sum|p| + l2 sum p^2 on weights (on every
 * tensor with penalize_all), and clip_value on every gradient (0: none). */
typedef struct tr_optim_rules {
    double l1, l2, clip;
    bool penalize_all;
} tr_optim_rules;

typedef struct tr_optim {
    tr_optim_config cfg;
    tr_optim_rules rules; /* none until tr_optim_set_rules */
    bool external;   /* the state buffers belong to someone else (tr_optim_use_state) */
    double lr;       /* current learning rate (a schedule may change it) */
    int64_t step;    /* optimizer steps taken */
    size_t n;        /* number of parameters */
    tr_optim_state state[3];
    int n_state;
    /* precomputed for the current step (tr_optim_begin_step) */
    float step_size, inv_bc1, inv_bc2_sqrt;
    float trust[TR_OPTIM_MAX_TENSORS]; /* lars, lamb: each tensor's trust ratio this step (tr_optim_set_trust) */
} tr_optim;

/* Allocates the state (zeroed) for n parameters. */
int tr_optim_init(tr_optim *o, const tr_optim_config *cfg, size_t n, tr_err *err);
void tr_optim_free(tr_optim *o);

/* Makes the optimizer use caller-owned state buffers (n floats each, in the order of
 * o->state, e.g. node-shared memory); its own are released, values are not copied. */
void tr_optim_use_state(tr_optim *o, float *const *buffers);

void tr_optim_set_rules(tr_optim *o, const tr_optim_rules *rules);

/* Starts step t+1: increments the step count and computes the bias corrections. */
void tr_optim_begin_step(tr_optim *o);

/* How one range of parameters is regularised and clipped in a step. The gradient used is
 * clamp(scale * (g + l1 sign(p) + 2 l2 p), -clip, clip) (clip 0: no clamp), i.e. the
 * gradient of loss + l1 sum|p| + l2 sum p^2, clipped as torch.nn.utils.clip_grad_norm_
 * (scale) and clip_grad_value_ (clip) would, before the optimizer adds its weight decay. */
typedef struct tr_optim_range {
    bool decay;     /* weight_decay applies */
    float l1, l2;   /* penalty coefficients */
    float scale;    /* 1: no norm clipping */
    float clip;     /* 0: no value clipping */
    float trust;    /* lars, lamb: the tensor's trust ratio (the other optimizers ignore it) */
} tr_optim_range;

/* Plain: weight decay applies, no penalty, no clipping. */
extern const tr_optim_range tr_optim_plain;

/* Updates params[begin, end) from grads[begin, end) and leaves zeros in that gradient range
 * (the next step accumulates into it: no separate zeroing pass). Ranges of one step may be
 * updated in any order (e.g. per bucket as its gradients arrive): the update is element-wise.
 * Returns false when a gradient in the range is not finite (checked in the same pass; the
 * range is then garbage and the run must stop without saving). */
bool tr_optim_update(tr_optim *o, float *params, float *grads, size_t begin, size_t end, const tr_optim_range *r);

/* The same, reading params and writing the updated values of [begin, end) to out[0, end -
 * begin) (the same bits as in place; out may be params + begin). The node-shared step writes
 * them to a scratch block and streams that to the buffer nobody reads in this step. */
bool tr_optim_update_to(tr_optim *o, const float *params, float *out, float *grads, size_t begin, size_t end,
                        const tr_optim_range *r);

/* sum over [begin, end) of (g + l1 sign(p) + 2 l2 p)^2: the squared norm clipping looks at. */
double tr_optim_sq_norm(const float *params, const float *grads, size_t begin, size_t end, float l1, float l2);

/* Over the model's flat parameters, tensor by tensor under o->rules: the update of [lo, hi)
 * (in place, or into out from out[0]; scale: clip_grad_norm_'s factor, 1 for none), false
 * when a value is not finite; and the squared norm of the regularised gradient there. What
 * the gradient exchange calls on the ranges it owns, when they are summed. */
struct tr_model;
bool tr_optim_step_range(tr_optim *o, struct tr_model *m, size_t lo, size_t hi, float scale, float *out);
double tr_optim_grad_sq_norm(const tr_optim *o, const struct tr_model *m, size_t lo, size_t hi);
/* Layer-wise optimizers (lars, lamb) scale each tensor's step by a trust ratio computed from
 * norms over the whole tensor, so their step has two stages. Stage one, over the parts of
 * tensor t in [a, b) this rank owns: the gradient is regularised and clipped in place (scale:
 * clip_grad_norm_'s factor), lamb's moments are advanced, and sq[0] += ||p||^2, sq[1] +=
 * ||u||^2 over the part (u: lars the gradient, lamb its Adam direction plus weight decay);
 * false when a gradient is not finite. Then, with each tensor's sums over all its parts,
 * tr_optim_set_trust, and stage two is tr_optim_step_range (which then ignores its scale). */
bool tr_optim_layerwise(const tr_optim *o);
bool tr_optim_layer_sums(tr_optim *o, struct tr_model *m, int t, size_t a, size_t b, float scale, double sq[2]);
void tr_optim_set_trust(tr_optim *o, const struct tr_model *m, int t, const double sq[2]);

/* The penalty's value over the model (the loss the log reports adds it). */
double tr_optim_penalty(const tr_optim *o, const struct tr_model *m);

/* l1 sum |p| + l2 sum p^2 over [begin, end): the penalty's value. */
double tr_penalty(const float *params, size_t begin, size_t end, double l1, double l2);

#endif
