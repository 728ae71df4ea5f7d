/*
 * config.c: the INI configuration, driven by one table of keys.
 *
 * Flow: libinih reads the file through a line-counting reader and every `key = value` is
 * recorded with its line; `--set` overrides replace or add records; then every key of the
 * table is applied in table order (its default first, then the recorded value), per-layer
 * `.N` overrides last, and cross-key rules are checked. A message always names where the
 * value came from ("file.ini:12", "--set") and the key.
 */
#include "trainer/config.h"
#include "trainer/sched.h"

#include "trainer/files.h"

#include "trainer/csv.h"
#include "trainer/generate.h"
#include "trainer/sklearn_data.h"

#include <ini.h>

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---------------------------------------------------------------- vocabularies -------- */

const char *const tr_init_names[] = {
#define TR_X_NAME(e, name) name,
    TR_INIT_MAP(TR_X_NAME)
#undef TR_X_NAME
        NULL};
const char *const tr_nonlinearity_names[] = {TR_NONLINEARITY_MAP(TR_ENUM_NAME) NULL};

double tr_calculate_gain(tr_nonlinearity nl, double param)
{
    switch (nl) {
    case TR_NL_LEAKY_RELU: {
        const double slope = isnan(param) ? 0.01 : param;
        return sqrt(2.0 / (1.0 + slope * slope));
    }
    case TR_NL_RELU:
        return sqrt(2.0);
    case TR_NL_TANH:
        return 5.0 / 3.0;
    case TR_NL_SELU:
        return 0.75;
    case TR_NL_SIGMOID:
    case TR_NL_LINEAR:
        break;
    }
    return 1.0;
}

const char *const tr_scale_names[] = {TR_SCALE_MAP(TR_ENUM_NAME) NULL};
const char *const tr_format_names[] = {TR_FORMAT_MAP(TR_ENUM_NAME) NULL};
const char *const tr_nonfinite_names[] = {TR_NONFINITE_MAP(TR_ENUM_NAME) NULL};
const char *const tr_schedule_names[] = {TR_SCHEDULE_MAP(TR_ENUM_NAME) NULL};
const char *const tr_lr_scaling_names[] = {TR_LR_SCALING_MAP(TR_ENUM_NAME) NULL};
const char *const tr_comm_names[] = {TR_COMM_MAP(TR_ENUM_NAME) NULL};
const char *const tr_best_mode_names[] = {TR_BEST_MODE_MAP(TR_ENUM_NAME) NULL};
const char *const tr_resume_names[] = {TR_RESUME_MAP(TR_ENUM_NAME) NULL};
const char *const tr_progress_names[] = {TR_PROGRESS_MAP(TR_ENUM_NAME) NULL};
const char *const tr_shuffle_names[] = {TR_SHUFFLE_MAP(TR_ENUM_NAME) NULL};

/* Two-valued keys stored as a bool: the name of false, then of true. */
static const char *const bn_position_names[] = {"before", "after", NULL};
static const char *const penalty_names[] = {"weights", "all", NULL};
static const char *const init_mode_names[] = {"fan_in", "fan_out", NULL};
/* best_metric: auto, none, or SET_METRIC */
static const char *const best_metric_words[] = {"auto", "none", NULL};

/* ---------------------------------------------------------------- key table ----------- */

/* K_ENUM stores the index of the value in `names` into an int-sized enum or a bool field (by
 * the field's size); K_CHOICE stores the value as a string after `accepts` (or `names`) took it. */
typedef enum key_kind { K_BOOL, K_I64, K_INT, K_U64, K_DOUBLE, K_FLOAT, K_STRING, K_ENUM, K_CHOICE, K_CUSTOM } key_kind;

enum { F_REQUIRED = 1, F_PER_LAYER = 2, F_AUTO = 4 /* accepts "auto" (stored as NAN) */ };

struct key_desc;
typedef int (*setter_fn)(tr_config *c, const struct key_desc *k, const char *value, int layer,
                         const char *where, tr_err *err);

typedef struct key_desc {
    const char *section, *name;
    key_kind kind;
    size_t offset, size;           /* the field in tr_config (FIELD); K_STRING: its buffer size */
    double min, max;               /* inclusive bounds for numbers */
    const char *const *names;      /* the vocabulary of K_ENUM, K_CHOICE and named K_CUSTOM values */
    bool (*accepts)(const char *); /* K_CHOICE: the values it takes when not simply `names` */
    const char *(*describe)(char *buf, size_t size); /* with `accepts`: the values it takes, in words */
    setter_fn set;                 /* K_CUSTOM */
    int arg;                       /* K_CUSTOM: which field */
    unsigned flags;
    const char *def; /* default as text (parsed like a user value); NULL = none */
    const char *doc;
} key_desc;

static int set_layers(tr_config *, const key_desc *, const char *, int, const char *, tr_err *);
static int set_activations(tr_config *, const key_desc *, const char *, int, const char *, tr_err *);
static int set_init_field(tr_config *, const key_desc *, const char *, int, const char *, tr_err *);
static int set_delimiter(tr_config *, const key_desc *, const char *, int, const char *, tr_err *);
static int set_scale(tr_config *, const key_desc *, const char *, int, const char *, tr_err *);
static int set_layer_list(tr_config *, const key_desc *, const char *, int, const char *, tr_err *);
static int set_class_weights(tr_config *, const key_desc *, const char *, int, const char *, tr_err *);
static int set_shuffle(tr_config *, const key_desc *, const char *, int, const char *, tr_err *);

static bool generator_accepts(const char *n) { return !*n || tr_name_index(tr_generator_names, n) >= 0; }
static bool builtin_accepts(const char *n) { return !*n || tr_name_index(tr_sklearn_set_names, n) >= 0; }

static const char *best_metric_choices(char *buf, size_t size)
{
    char words[64], sets[64], metrics[256];
    snprintf(buf, size, "%s, or SET_METRIC with SET %s and METRIC %s", tr_names_join(best_metric_words, words, sizeof words),
             tr_names_join(tr_metric_set_names, sets, sizeof sets), tr_names_join(tr_metric_names, metrics, sizeof metrics));
    return buf;
}

static bool best_metric_accepts(const char *n)
{
    tr_metric_set set;
    const char *metric;
    return tr_name_index(best_metric_words, n) >= 0 || tr_metric_split(n, &set, &metric);
}

static const char *stop_at_choices(char *buf, size_t size)
{
    char sets[64], metrics[256];
    snprintf(buf, size, "empty, or SET_METRIC >= VALUE or SET_METRIC <= VALUE, with SET %s and METRIC %s",
             tr_names_join(tr_metric_set_names, sets, sizeof sets), tr_names_join(tr_metric_names, metrics, sizeof metrics));
    return buf;
}

static bool stop_at_accepts(const char *n)
{
    tr_stop_target target;
    return !*n || (tr_stop_target_parse(n, &target) && tr_name_index(best_metric_words, target.metric) < 0 &&
                   best_metric_accepts(target.metric));
}

/* init fields (arg of set_init_field); +16 = the bias spec */
enum { INIT_SCHEME, INIT_A, INIT_B, INIT_MEAN, INIT_STD, INIT_GAIN, INIT_VALUE, INIT_MODE, INIT_NONLINEARITY,
       INIT_BIAS = 16 };

#define OFF(field) offsetof(tr_config, field)
#define SIZE(field) sizeof(((tr_config *)0)->field)
#define FIELD(field) .offset = OFF(field), .size = SIZE(field)
#define INF HUGE_VAL

static const key_desc keys[] = {
    /* [model] */
    {.section = "model", .name = "layers", .kind = K_CUSTOM, .set = set_layers, .flags = F_REQUIRED,
     .doc = "Layer widths from input to output, e.g. `784, 256, 128, 10` (2 to 65 numbers)."},
    {.section = "model", .name = "activations", .kind = K_CUSTOM,
     .names = tr_activation_names, .set = set_activations, .def = "relu",
     .doc = "One activation per weight layer, or one name for every hidden layer (the output layer then takes "
            "`output_activation`); softmax and log_softmax only on the output layer."},
    {.section = "model", .name = "output_activation", .kind = K_CUSTOM,
     .names = tr_activation_names, .set = set_activations, .arg = 1, .def = "auto",
     .doc = "Activation of the output layer when `activations` names one activation for the hidden layers; `auto`"
            " = identity."},
    {.section = "model", .name = "bias", .kind = K_BOOL, FIELD(model.bias), .def = "true",
     .doc = "Whether the linear layers have a bias."},
    {.section = "model", .name = "init", .kind = K_CUSTOM,
     .names = tr_init_names, .set = set_init_field, .arg = INIT_SCHEME, .flags = F_PER_LAYER, .def = "default",
     .doc = "Weight init (torch.nn.init); default = PyTorch nn.Linear's U(-1/sqrt(fan_in), 1/sqrt(fan_in))."},
    {.section = "model", .name = "init_a", .kind = K_CUSTOM,
     .set = set_init_field, .arg = INIT_A, .flags = F_PER_LAYER, .def = "0",
     .doc = "uniform: lower bound; kaiming_*: negative slope of the rectifier (PyTorch's `a`, used when "
            "init_nonlinearity = leaky_relu)."},
    {.section = "model", .name = "init_b", .kind = K_CUSTOM,
     .set = set_init_field, .arg = INIT_B, .flags = F_PER_LAYER, .def = "1",
     .doc = "uniform: upper bound."},
    {.section = "model", .name = "init_mean", .kind = K_CUSTOM,
     .set = set_init_field, .arg = INIT_MEAN, .flags = F_PER_LAYER, .def = "0",
     .doc = "normal: mean."},
    {.section = "model", .name = "init_std", .kind = K_CUSTOM,
     .set = set_init_field, .arg = INIT_STD, .flags = F_PER_LAYER, .def = "1",
     .doc = "normal: standard deviation."},
    {.section = "model", .name = "init_gain", .kind = K_CUSTOM,
     .set = set_init_field, .arg = INIT_GAIN, .flags = F_PER_LAYER, .def = "1",
     .doc = "xavier_*: gain: a number, `auto` = torch.nn.init.calculate_gain of the layer's activation, or a "
            "nonlinearity's gain by name, `tanh` = calculate_gain('tanh') (linear, sigmoid, tanh, relu, selu, "
            "leaky_relu or leaky_relu:SLOPE)."},
    {.section = "model", .name = "init_nonlinearity", .kind = K_CUSTOM,
     .names = tr_nonlinearity_names, .set = set_init_field, .arg = INIT_NONLINEARITY, .flags = F_PER_LAYER,
     .def = "leaky_relu",
     .doc = "kaiming_*: PyTorch's `nonlinearity`; the gain is calculate_gain(init_nonlinearity, init_a) (relu: "
            "sqrt(2), tanh: 5/3, selu: 3/4, linear and sigmoid: 1, leaky_relu: sqrt(2 / (1 + init_a^2)))."},
    {.section = "model", .name = "init_value", .kind = K_CUSTOM,
     .set = set_init_field, .arg = INIT_VALUE, .flags = F_PER_LAYER, .def = "0",
     .doc = "constant: the value."},
    {.section = "model", .name = "init_mode", .kind = K_CUSTOM,
     .names = init_mode_names, .set = set_init_field, .arg = INIT_MODE, .flags = F_PER_LAYER, .def = "fan_in",
     .doc = "kaiming_*: which fan the variance is scaled by."},
    {.section = "model", .name = "bias_init", .kind = K_CUSTOM,
     .names = tr_init_names, .set = set_init_field, .arg = INIT_BIAS + INIT_SCHEME, .flags = F_PER_LAYER,
     .def = "default",
     .doc = "Bias init: the weight inits but xavier_* and kaiming_* (a bias has no fan out); default = PyTorch's "
            "U(-1/sqrt(fan_in), 1/sqrt(fan_in))."},
    {.section = "model", .name = "bias_init_a", .kind = K_CUSTOM,
     .set = set_init_field, .arg = INIT_BIAS + INIT_A, .flags = F_PER_LAYER, .def = "0",
     .doc = "Bias uniform lower bound."},
    {.section = "model", .name = "bias_init_b", .kind = K_CUSTOM,
     .set = set_init_field, .arg = INIT_BIAS + INIT_B, .flags = F_PER_LAYER, .def = "1",
     .doc = "Bias uniform upper bound."},
    {.section = "model", .name = "bias_init_mean", .kind = K_CUSTOM,
     .set = set_init_field, .arg = INIT_BIAS + INIT_MEAN, .flags = F_PER_LAYER, .def = "0",
     .doc = "Bias normal mean."},
    {.section = "model", .name = "bias_init_std", .kind = K_CUSTOM,
     .set = set_init_field, .arg = INIT_BIAS + INIT_STD, .flags = F_PER_LAYER, .def = "1",
     .doc = "Bias normal standard deviation."},
    {.section = "model", .name = "bias_init_value", .kind = K_CUSTOM,
     .set = set_init_field, .arg = INIT_BIAS + INIT_VALUE, .flags = F_PER_LAYER, .def = "0",
     .doc = "Bias constant value."},
    {.section = "model", .name = "dropout", .kind = K_CUSTOM, .set = set_layer_list, .flags = F_PER_LAYER, .def = "0",
     .doc = "Dropout probability after the activation of the hidden layers: one value for all, or one per hidden "
            "layer (`dropout = 0.2, 0.5`); inverted dropout, off in evaluation and prediction."},
    {.section = "model", .name = "batchnorm", .kind = K_CUSTOM,
     .set = set_layer_list, .arg = 1, .flags = F_PER_LAYER, .def = "false",
     .doc = "BatchNorm1d on the hidden layers: true/false for all, or one per hidden layer."},
    {.section = "model", .name = "batchnorm_position", .kind = K_ENUM, FIELD(model.bn_after),
     .names = bn_position_names, .def = "before",
     .doc = "Batch norm before or after the hidden activation."},
    {.section = "model", .name = "bn_momentum", .kind = K_FLOAT, FIELD(model.bn_momentum),
     .min = 0, .max = 1, .def = "0.1",
     .doc = "Batch norm running-statistics momentum (PyTorch's)."},
    {.section = "model", .name = "bn_eps", .kind = K_FLOAT, FIELD(model.bn_eps), .min = 1e-30, .max = 1,
     .def = "1e-5", .doc = "Batch norm epsilon, added to the variance before its square root: positive, so a "
                           "constant feature divides by sqrt(eps), not by zero."},
    {.section = "model", .name = "leaky_slope", .kind = K_FLOAT, FIELD(model.act_params.leaky_slope),
     .min = 0, .max = INF, .def = "0.01",
     .doc = "Negative slope of leaky_relu."},
    {.section = "model", .name = "elu_alpha", .kind = K_FLOAT, FIELD(model.act_params.elu_alpha),
     .min = 0, .max = INF, .def = "1",
     .doc = "alpha of elu."},
    /* [data] */
    {.section = "data", .name = "generator", .kind = K_CHOICE, FIELD(data.generator),
     .names = tr_generator_names, .accepts = generator_accepts,
     .doc = "Built-in data set instead of files (see datasets/README.md); empty = read files."},
    {.section = "data", .name = "n", .kind = K_I64, FIELD(data.n), .min = 1, .max = 1e9, .def = "1000",
     .doc = "Generated rows."},
    {.section = "data", .name = "noise", .kind = K_DOUBLE, FIELD(data.noise),
     .min = 0, .max = INF, .flags = F_AUTO, .def = "auto",
     .doc = "moons: Gaussian sd (0.1); linear: uniform half-width (0.5); inverse: Gaussian sd (1/7)."},
    {.section = "data", .name = "sd", .kind = K_DOUBLE, FIELD(data.sd),
     .min = 0, .max = INF, .flags = F_AUTO, .def = "auto",
     .doc = "circles: Gaussian sd (0.2); blobs: cluster sd (1)."},
    {.section = "data", .name = "r1", .kind = K_DOUBLE, FIELD(data.r1), .min = 0, .max = INF, .def = "2",
     .doc = "circles: radius of class 0."},
    {.section = "data", .name = "r2", .kind = K_DOUBLE, FIELD(data.r2), .min = 0, .max = INF, .def = "1",
     .doc = "circles: radius of class 1."},
    {.section = "data", .name = "a", .kind = K_DOUBLE, FIELD(data.a),
     .min = -INF, .max = INF, .flags = F_AUTO, .def = "auto",
     .doc = "linear: intercept (2); inverse: offset (2)."},
    {.section = "data", .name = "b", .kind = K_DOUBLE, FIELD(data.b),
     .min = -INF, .max = INF, .flags = F_AUTO, .def = "auto",
     .doc = "linear: slope (0.7); inverse: numerator (5)."},
    {.section = "data", .name = "x_min", .kind = K_DOUBLE, FIELD(data.x_min),
     .min = -INF, .max = INF, .flags = F_AUTO, .def = "auto",
     .doc = "linear/inverse: x is uniform on [x_min, x_max) (linear 0, inverse 2)."},
    {.section = "data", .name = "x_max", .kind = K_DOUBLE, FIELD(data.x_max),
     .min = -INF, .max = INF, .flags = F_AUTO, .def = "auto",
     .doc = "linear/inverse: see x_min (10)."},
    {.section = "data", .name = "classes", .kind = K_I64, FIELD(data.classes), .min = 1, .max = 1e6, .def = "3",
     .doc = "blobs: clusters."},
    {.section = "data", .name = "n_features", .kind = K_I64, FIELD(data.n_features), .min = 1, .max = 1e6, .def = "2",
     .doc = "blobs: dimensions."},
    {.section = "data", .name = "box", .kind = K_DOUBLE, FIELD(data.box), .min = 0, .max = INF, .def = "10",
     .doc = "blobs: centres are uniform in [-box, box]."},
    {.section = "data", .name = "seed", .kind = K_U64, FIELD(data.seed), .def = "0",
     .doc = "Generator seed."},
    {.section = "data", .name = "builtin", .kind = K_CHOICE, FIELD(data.builtin),
     .names = tr_sklearn_set_names, .accepts = builtin_accepts,
     .doc = "A real data set from Debian's python3-sklearn files (datasets/README.md): iris, wine, breast_cancer, "
            "digits (classification), boston, diabetes (regression); empty = none."},
    {.section = "data", .name = "builtin_dir", .kind = K_STRING, FIELD(data.builtin_dir),
     .def = TR_SKLEARN_DATA_DIR,
     .doc = "Where the `builtin` data sets' files are (scikit-learn's sklearn/datasets/data folder)."},
    {.section = "data", .name = "format", .kind = K_ENUM, FIELD(data.format),
     .names = tr_format_names, .def = "auto",
     .doc = "File format; auto = idx when `images` is set, else from the extension of `path` (.h5/.hdf5, "
            ".csv/.txt)."},
    {.section = "data", .name = "path", .kind = K_STRING, FIELD(data.path), .def = "",
     .doc = "HDF5 or CSV file with the training data (and the test data when `test_fraction` splits it)."},
    {.section = "data", .name = "features", .kind = K_STRING, FIELD(data.features_dset), .def = "/X",
     .doc = "HDF5: dataset of the features, (rows, columns) or (rows)."},
    {.section = "data", .name = "targets", .kind = K_STRING, FIELD(data.targets_dset), .def = "/y",
     .doc = "HDF5: dataset of the targets, (rows) or (rows, outputs); integers or floats."},
    {.section = "data", .name = "delimiter", .kind = K_CUSTOM, .set = set_delimiter, .def = "auto",
     .doc = "CSV: comma, semicolon, tab, space, one character, or auto (the most frequent of , ; tab in the first"
            " line)."},
    {.section = "data", .name = "header", .kind = K_BOOL, FIELD(data.header), .def = "true",
     .doc = "CSV: the first line names the columns."},
    {.section = "data", .name = "target", .kind = K_STRING, FIELD(data.target), .def = "",
     .doc = "CSV: target column(s), by name or 0-based index; empty = the last column."},
    {.section = "data", .name = "columns", .kind = K_STRING, FIELD(data.columns), .def = "",
     .doc = "CSV: feature columns, by name or 0-based index; empty = every column but the target."},
    {.section = "data", .name = "class_names", .kind = K_STRING, FIELD(data.class_names), .def = "",
     .doc = "Class names for the reports and plots, one per class in label order (`T-shirt/top, Trouser, ...`); "
            "empty = 0, 1, ..."},
    {.section = "data", .name = "images", .kind = K_STRING, FIELD(data.images), .def = "",
     .doc = "IDX: training images file (.gz or not), e.g. /usr/share/datasets/fashion-mnist/train-images-"
            "idx3-ubyte.gz."},
    {.section = "data", .name = "labels", .kind = K_STRING, FIELD(data.labels), .def = "",
     .doc = "IDX: training labels file."},
    {.section = "data", .name = "test_path", .kind = K_STRING, FIELD(data.test_path), .def = "",
     .doc = "HDF5 or CSV file with the test data (same columns or datasets as `path`)."},
    {.section = "data", .name = "test_images", .kind = K_STRING, FIELD(data.test_images), .def = "",
     .doc = "IDX: test images file."},
    {.section = "data", .name = "test_labels", .kind = K_STRING, FIELD(data.test_labels), .def = "",
     .doc = "IDX: test labels file."},
    {.section = "data", .name = "mmap", .kind = K_BOOL, FIELD(data.mmap), .def = "true",
     .doc = "HDF5 features stored contiguous, uncompressed and float32 (what `trainer data gen` and `trainer data "
            "convert` write) are read where they lie in the file: memory-mapped, shared by the ranks of a node "
            "through the page cache, streamed from disk when larger than memory, scaled as rows are read; the "
            "results are bitwise those of reading them (false)."},
    {.section = "data", .name = "on_nonfinite", .kind = K_ENUM, FIELD(data.on_nonfinite),
     .names = tr_nonfinite_names, .def = "error",
     .doc = "What a NaN or infinite feature or target does: error (naming the row) or drop the row."},
    {.section = "data", .name = "test_fraction", .kind = K_DOUBLE, FIELD(data.test_fraction),
     .min = 0, .max = 0.99, .def = "0",
     .doc = "Fraction of the rows held out as the test set (instead of test files)."},
    {.section = "data", .name = "val_fraction", .kind = K_DOUBLE, FIELD(data.val_fraction),
     .min = 0, .max = 0.99, .def = "0",
     .doc = "Fraction of the remaining training rows held out as a validation set (distinct from the test set)."},
    {.section = "data", .name = "folds", .kind = K_I64, FIELD(data.folds), .min = 0, .max = 1e6, .def = "0",
     .doc = "K-fold cross-validation: the training rows (those the test set leaves) are cut into `folds` folds, "
            "shuffled with split_seed (unless split_shuffle = false) and, for classification, stratified (each fold "
            "holds each class's rows in proportion, to one row: scikit-learn's StratifiedKFold; KFold for "
            "regression); fold "
            "`fold` is the validation set, the others train. The run directory's folds.csv gives every such row "
            "(its row in the file, or its line in a text file) and its fold. 0: no folds."},
    {.section = "data", .name = "fold", .kind = K_I64, FIELD(data.fold), .min = 0, .max = 1e6, .def = "0",
     .doc = "K-fold cross-validation: the fold (0 to folds - 1) that validates."},
    {.section = "data", .name = "split_seed", .kind = K_U64, FIELD(data.split_seed), .def = "0",
     .doc = "Seed of the split shuffle."},
    {.section = "data", .name = "split_shuffle", .kind = K_BOOL, FIELD(data.split_shuffle), .def = "true",
     .doc = "Shuffle before splitting; false: the test set is the last rows, the validation set the last rows "
            "before them."},
    {.section = "data", .name = "scale", .kind = K_CUSTOM, .names = tr_scale_names, .set = set_scale, .def = "none",
     .doc = "Feature scaling fitted on the training rows only: standard = zero mean, unit variance; minmax = to "
            "[0, 1]; divide is written divide:K (x / K, e.g. divide:255)."},
    /* [train] */
    {.section = "train", .name = "loss", .kind = K_ENUM, FIELD(train.loss),
     .names = tr_loss_names, .flags = F_REQUIRED,
     .doc = "Loss (PyTorch's): bce takes a sigmoid output, bce_logits an identity output, cross_entropy logits "
            "and class index targets, nll a log_softmax output and class index targets."},
    {.section = "train", .name = "reduction", .kind = K_ENUM, FIELD(train.reduction),
     .names = tr_reduction_names, .def = "mean",
     .doc = "Over the batch (PyTorch's `reduction`)."},
    {.section = "train", .name = "huber_delta", .kind = K_DOUBLE, FIELD(train.huber_delta),
     .min = 1e-30, .max = INF, .def = "1",
     .doc = "delta of the huber loss."},
    {.section = "train", .name = "label_smoothing", .kind = K_DOUBLE, FIELD(train.label_smoothing), .min = 0,
     .max = 1, .def = "0",
     .doc = "cross_entropy: PyTorch's label_smoothing e: the target is (1 - e) on the class plus e / classes on "
            "every class (with class_weights, each class's term weighted, the mean over the rows' weights)."},
    {.section = "train", .name = "ema_decay", .kind = K_DOUBLE, FIELD(train.ema_decay), .min = 0, .max = 0.999999999,
     .def = "0",
     .doc = "> 0: keep an exponential moving average of the weights and batch norm's statistics, updated after "
            "every optimizer step (PyTorch's AveragedModel with get_ema_multi_avg_fn(ema_decay), use_buffers = "
            "True); each evaluation also reports it (ema_val_*, ema_test_* metrics, usable by best_metric and "
            "stop_at), checkpoints hold it under /ema, and `eval --ema` / `predict --ema` use it."},
    {.section = "train", .name = "pos_weight", .kind = K_DOUBLE, FIELD(train.pos_weight),
     .min = 0, .max = INF, .def = "1",
     .doc = "Weight of the positive class in bce and bce_logits (PyTorch's pos_weight)."},
    {.section = "train", .name = "class_weights", .kind = K_CUSTOM, .set = set_class_weights, .def = "none",
     .doc = "cross_entropy and nll class weights: none, auto (balanced: rows / (classes x rows of the class), from the "
            "training labels) or one weight per class; bce/bce_logits: auto sets pos_weight = negatives / "
            "positives."},
    {.section = "train", .name = "l1", .kind = K_DOUBLE, FIELD(train.l1), .min = 0, .max = INF, .def = "0",
     .doc = "L1 penalty: lambda * sum |w| added to the loss (logged as `penalty`)."},
    {.section = "train", .name = "l2", .kind = K_DOUBLE, FIELD(train.l2), .min = 0, .max = INF, .def = "0",
     .doc = "L2 penalty: lambda * sum w^2 added to the loss (logged as `penalty`)."},
    {.section = "train", .name = "penalty_params", .kind = K_ENUM, FIELD(train.penalize_all),
     .names = penalty_names, .def = "weights",
     .doc = "What l1, l2 and weight_decay apply to: the Linear weights, or all parameters (PyTorch's weight_decay"
            " also decays biases: set all to match it)."},
    {.section = "train", .name = "clip_norm", .kind = K_DOUBLE, FIELD(train.clip_norm),
     .min = 0, .max = INF, .def = "0",
     .doc = "Clip the summed gradient to this global L2 norm (torch.nn.utils.clip_grad_norm_); 0 = off."},
    {.section = "train", .name = "clip_value", .kind = K_DOUBLE, FIELD(train.clip_value),
     .min = 0, .max = INF, .def = "0",
     .doc = "Clip every gradient element to [-clip_value, clip_value]; 0 = off."},
    {.section = "train", .name = "lr_schedule", .kind = K_ENUM, FIELD(train.lr_schedule),
     .names = tr_schedule_names, .def = "constant",
     .doc = "Learning rate per epoch e: step: lr gamma^floor(e / step_size); exponential: lr gamma^e; cosine: "
            "eta_min + (lr - eta_min)(1 + cos(pi e / cosine_epochs))/2; plateau: times plateau_factor after "
            "plateau_patience evaluations without improvement of best_metric. Per optimizer step s of S: "
            "cosine_steps: linear warm-up over warmup_steps W, then eta_min + (lr - eta_min)(1 + cos(pi (s - W) / "
            "(S - W)))/2; onecycle: PyTorch's OneCycleLR with max_lr = lr (the onecycle_ keys)."},
    {.section = "train", .name = "step_size", .kind = K_I64, FIELD(train.step_size),
     .min = 1, .max = 1e9, .def = "10",
     .doc = "step schedule: epochs between decays."},
    {.section = "train", .name = "gamma", .kind = K_DOUBLE, FIELD(train.gamma), .min = 0, .max = 1, .def = "0.1",
     .doc = "step and exponential schedules: decay factor."},
    {.section = "train", .name = "cosine_epochs", .kind = K_I64, FIELD(train.cosine_epochs),
     .min = 0, .max = 1e9, .def = "0",
     .doc = "cosine schedule: period in epochs (T_max); 0 = epochs."},
    {.section = "train", .name = "eta_min", .kind = K_DOUBLE, FIELD(train.eta_min), .min = 0, .max = INF, .def = "0",
     .doc = "cosine schedule: the lowest learning rate."},
    {.section = "train", .name = "onecycle_pct_start", .kind = K_DOUBLE, FIELD(train.onecycle_pct_start),
     .min = 0, .max = 1, .def = "0.3",
     .doc = "onecycle schedule: the share of the steps spent raising the rate (PyTorch's pct_start)."},
    {.section = "train", .name = "onecycle_div_factor", .kind = K_DOUBLE, FIELD(train.onecycle_div_factor),
     .min = 1e-12, .max = INF, .def = "25",
     .doc = "onecycle schedule: the first rate is lr / div_factor."},
    {.section = "train", .name = "onecycle_final_div_factor", .kind = K_DOUBLE,
     FIELD(train.onecycle_final_div_factor), .min = 1e-12, .max = INF, .def = "1e4",
     .doc = "onecycle schedule: the last rate is lr / (div_factor x final_div_factor)."},
    {.section = "train", .name = "onecycle_cycle_momentum", .kind = K_BOOL, FIELD(train.onecycle_cycle_momentum),
     .def = "true",
     .doc = "onecycle schedule: move the momentum (SGD's momentum, Adam's beta1) inversely to the rate, between "
            "onecycle_max_momentum and onecycle_base_momentum (PyTorch's cycle_momentum); needs an optimizer "
            "with momentum."},
    {.section = "train", .name = "onecycle_base_momentum", .kind = K_DOUBLE, FIELD(train.onecycle_base_momentum),
     .min = 0, .max = 1, .def = "0.85", .doc = "onecycle schedule: the momentum at the highest rate."},
    {.section = "train", .name = "onecycle_max_momentum", .kind = K_DOUBLE, FIELD(train.onecycle_max_momentum),
     .min = 0, .max = 1, .def = "0.95", .doc = "onecycle schedule: the momentum at the lowest rates."},
    {.section = "train", .name = "warmup_steps", .kind = K_I64, FIELD(train.warmup_steps),
     .min = 0, .max = 1e12, .def = "0",
     .doc = "Linear warm-up: the scheduled rate times (step + 1) / warmup_steps for the first optimizer steps."},
    {.section = "train", .name = "lr_scaling", .kind = K_ENUM, FIELD(train.lr_scaling),
     .names = tr_lr_scaling_names, .def = "none",
     .doc = "The rate for the global batch B = batch_size x accumulate, as one switch: linear = lr x B / "
            "lr_base_batch with a gradual warm-up (Goyal et al. 2017: from lr at the first step up to the scaled "
            "rate at lr_scaling_warmup_epochs, linearly per step; the schedule runs on the scaled rate); sqrt = lr "
            "x sqrt(B / lr_base_batch) with the same warm-up (the square-root rule for Adam-like optimizers); "
            "none = lr as given."},
    {.section = "train", .name = "lr_base_batch", .kind = K_I64, FIELD(train.lr_base_batch), .min = 1, .max = 1e12,
     .def = "256", .doc = "lr_scaling: the global batch `lr` is given for (Goyal et al.'s 256)."},
    {.section = "train", .name = "lr_scaling_warmup_epochs", .kind = K_DOUBLE,
     FIELD(train.lr_scaling_warmup_epochs), .min = 0, .max = 1e9, .def = "5",
     .doc = "lr_scaling: the warm-up's length in epochs (fractions allowed; 0: none; Goyal et al.'s 5)."},
    {.section = "train", .name = "plateau_factor", .kind = K_DOUBLE, FIELD(train.plateau_factor),
     .min = 0, .max = 1, .def = "0.1",
     .doc = "plateau schedule: factor of each reduction."},
    {.section = "train", .name = "plateau_patience", .kind = K_I64, FIELD(train.plateau_patience),
     .min = 0, .max = 1e9, .def = "10",
     .doc = "plateau schedule: evaluations without improvement before a reduction."},
    {.section = "train", .name = "plateau_threshold", .kind = K_DOUBLE, FIELD(train.plateau_threshold),
     .min = 0, .max = 1, .def = "1e-4",
     .doc = "plateau schedule: relative improvement that counts (PyTorch's threshold, mode rel)."},
    {.section = "train", .name = "min_lr", .kind = K_DOUBLE, FIELD(train.min_lr), .min = 0, .max = INF, .def = "0",
     .doc = "plateau schedule: the lowest learning rate."},
    {.section = "train", .name = "early_stopping", .kind = K_BOOL, FIELD(train.early_stopping), .def = "false",
     .doc = "Stop when best_metric has not improved by min_delta for `patience` evaluations (best.h5 keeps the "
            "best)."},
    {.section = "train", .name = "patience", .kind = K_I64, FIELD(train.patience), .min = 1, .max = 1e9, .def = "10",
     .doc = "early stopping: evaluations without improvement."},
    {.section = "train", .name = "min_delta", .kind = K_DOUBLE, FIELD(train.min_delta),
     .min = 0, .max = INF, .def = "0",
     .doc = "early stopping: the smallest change that counts as an improvement."},
    {.section = "train", .name = "stop_at", .kind = K_CHOICE, FIELD(train.stop_at), .accepts = stop_at_accepts,
     .describe = stop_at_choices, .def = "",
     .doc = "A target that ends training at the first evaluation meeting it, e.g. test_accuracy >= 0.9 or val_loss "
            "<= 0.3 (any logged metric; evaluations follow eval_every): the checkpoint is written, and the time "
            "from the command's start (loading included) is printed in the last line and stored in metrics.h5 "
            "(attributes time_to_target_s, target_epoch, target_step, stop_at of /metrics)."},
    {.section = "train", .name = "sync_bn", .kind = K_BOOL, FIELD(train.sync_bn), .def = "true",
     .doc = "Batch norm statistics over the global batch (sums reduced over the ranks: the same as one rank); "
            "false: each rank normalises its slice (DDP's default) and rank 0's running statistics are used for "
            "evaluation and saving."},
    {.section = "train", .name = "optimizer", .kind = K_ENUM, FIELD(train.optim.kind),
     .names = tr_optim_names, .def = "sgd",
     .doc = "The torch.optim optimizer (momentum and nesterov are SGD with those options); lars and lamb are "
            "the layer-wise large-batch optimizers (You et al. 2017, 2019; timm's Lars and Lamb): each weight "
            "tensor's step is scaled by a trust ratio from its norms (lars: trust_coefficient ||w|| / (||g|| + "
            "weight_decay ||w|| + eps) on SGD with momentum; lamb: ||w|| / ||u|| on Adam's direction u plus "
            "decay); biases and batch norm's parameters step with the plain rate (all tensors with "
            "penalty_params = all)."},
    {.section = "train", .name = "lr", .kind = K_DOUBLE, FIELD(train.optim.lr),
     .min = 0, .max = INF, .flags = F_AUTO, .def = "auto",
     .doc = "Learning rate; `auto` = PyTorch's default for the optimizer (1e-3; rmsprop and adagrad 1e-2; "
            "lars 1, timm's)."},
    {.section = "train", .name = "momentum", .kind = K_DOUBLE, FIELD(train.optim.momentum),
     .min = 0, .max = 1, .flags = F_AUTO, .def = "auto",
     .doc = "Momentum factor; `auto` = 0.9 for momentum/nesterov and lars, 0 for sgd and rmsprop."},
    {.section = "train", .name = "dampening", .kind = K_DOUBLE, FIELD(train.optim.dampening),
     .min = 0, .max = 1, .def = "0",
     .doc = "SGD momentum dampening."},
    {.section = "train", .name = "beta1", .kind = K_DOUBLE, FIELD(train.optim.beta1),
     .min = 0, .max = 0.999999, .def = "0.9",
     .doc = "Adam/AdamW/LAMB first-moment decay."},
    {.section = "train", .name = "beta2", .kind = K_DOUBLE, FIELD(train.optim.beta2),
     .min = 0, .max = 0.999999999, .def = "0.999",
     .doc = "Adam/AdamW/LAMB second-moment decay."},
    {.section = "train", .name = "eps", .kind = K_DOUBLE, FIELD(train.optim.eps), .min = 0, .max = 1,
     .flags = F_AUTO, .def = "auto",
     .doc = "Denominator term of rmsprop, adam, adamw, adagrad, lars, lamb; `auto` = PyTorch's default (1e-8; "
            "adagrad 1e-10; lamb 1e-6, timm's)."},
    {.section = "train", .name = "trust_coefficient", .kind = K_DOUBLE, FIELD(train.optim.trust_coefficient),
     .min = 0, .max = INF, .def = "0.001",
     .doc = "LARS: eta, the trust ratio's coefficient (the paper's and timm's 0.001)."},
    {.section = "train", .name = "lr_decay", .kind = K_DOUBLE, FIELD(train.optim.lr_decay), .min = 0, .max = INF,
     .def = "0", .doc = "Adagrad: the rate at step t is lr / (1 + (t - 1) lr_decay)."},
    {.section = "train", .name = "initial_accumulator_value", .kind = K_DOUBLE,
     FIELD(train.optim.initial_accumulator_value), .min = 0, .max = INF, .def = "0",
     .doc = "Adagrad: the starting value of the sum of squared gradients."},
    {.section = "train", .name = "alpha", .kind = K_DOUBLE, FIELD(train.optim.alpha),
     .min = 0, .max = 0.999999999, .def = "0.99",
     .doc = "RMSprop smoothing constant."},
    {.section = "train", .name = "centered", .kind = K_BOOL, FIELD(train.optim.centered), .def = "false",
     .doc = "Centered RMSprop."},
    {.section = "train", .name = "amsgrad", .kind = K_BOOL, FIELD(train.optim.amsgrad), .def = "false",
     .doc = "AMSGrad variant of adam/adamw."},
    {.section = "train", .name = "weight_decay", .kind = K_DOUBLE, FIELD(train.optim.weight_decay),
     .min = 0, .max = INF, .flags = F_AUTO, .def = "auto",
     .doc = "Weight decay (coupled L2 for sgd/rmsprop/adam, decoupled for adamw, inside the trust-scaled step "
            "for lars and lamb); `auto` = 0.01 for adamw and lamb, else 0."},
    {.section = "train", .name = "epochs", .kind = K_I64, FIELD(train.epochs), .min = 0, .max = 1e9, .def = "10",
     .doc = "Passes over the training set."},
    {.section = "train", .name = "batch_size", .kind = K_I64, FIELD(train.batch_size),
     .min = 0, .max = 1e12, .def = "32",
     .doc = "Rows per micro-step over all ranks (the global batch); 0 = the whole training set."},
    {.section = "train", .name = "accumulate", .kind = K_I64, FIELD(train.accumulate),
     .min = 1, .max = 1e6, .def = "1",
     .doc = "Micro-steps per optimizer step; each micro-step's mean loss is divided by `accumulate` (PyTorch's "
            "recipe); a trailing partial group at the end of an epoch still steps."},
    {.section = "train", .name = "shuffle", .kind = K_CUSTOM, .names = tr_shuffle_names, .set = set_shuffle,
     .def = "true",
     .doc = "The order of the training rows each epoch, a pure function of (seed, epoch): true (or global) = a "
            "permutation of all rows; false = file order; block = blocks of shuffle_block consecutive rows in a "
            "random order, then the rows inside each window of shuffle_window blocks shuffled, for data on slow "
            "disks (few long reads instead of one seek per row; batches mix only rows of the same window)."},
    {.section = "train", .name = "shuffle_block", .kind = K_I64, FIELD(train.shuffle_block), .min = 1, .max = 1e12,
     .def = "4096", .doc = "shuffle = block: rows per block (read as one run)."},
    {.section = "train", .name = "shuffle_window", .kind = K_I64, FIELD(train.shuffle_window), .min = 1,
     .max = 1e9, .def = "16",
     .doc = "shuffle = block: blocks whose rows are mixed together; their rows are the working set that "
            "must fit in memory when the file does not."},
    {.section = "train", .name = "drop_last", .kind = K_BOOL, FIELD(train.drop_last), .def = "false",
     .doc = "Drop the last incomplete batch of each epoch (PyTorch DataLoader's drop_last)."},
    {.section = "train", .name = "seed", .kind = K_U64, FIELD(train.seed), .def = "0",
     .doc = "Seed of initialisation, shuffling and dropout."},
    {.section = "train", .name = "eval_every", .kind = K_I64, FIELD(train.eval_every),
     .min = 1, .max = 1e9, .def = "1",
     .doc = "Evaluate every this many epochs (the last epoch is always evaluated)."},
    {.section = "train", .name = "eval_train", .kind = K_BOOL, FIELD(train.eval_train), .def = "false",
     .doc = "Also evaluate the whole training set in evaluation mode (otherwise train loss/accuracy are running "
            "means over the epoch's batches)."},
    {.section = "train", .name = "threads", .kind = K_INT, FIELD(train.threads), .min = 0, .max = 1024, .def = "0",
     .doc = "OpenBLAS threads per rank; 0 = OPENBLAS_NUM_THREADS or OMP_NUM_THREADS if set, else the rank's share "
            "of the CPUs in its affinity mask (bound by mpirun or srun to one core: 1; unbound: the node's CPUs "
            "divided by its ranks), 1 for networks under a million multiply-adds per rank and step, and 1 in "
            "deterministic mode. More threads than the rank's CPUs trains with a warning."},
    {.section = "train", .name = "gemm", .kind = K_ENUM, FIELD(train.gemm), .names = tr_gemm_engine_names,
     .def = "auto",
     .doc = "The engine of every matrix product: openblas (OpenBLAS's sgemm), onednn (oneDNN's matmul, which "
            "picks AVX-512, bf16 or AMX kernels for the CPU itself), or auto = openblas for fp32 and onednn for bf16, "
            "unless the other engine runs this model's own products at least 10% faster here, timed at start-up and "
            "agreed by the ranks (in deterministic mode without timing). The choice is printed in the first line and recorded "
            "in config.ini and the checkpoints."},
    {.section = "train", .name = "precision", .kind = K_ENUM, FIELD(train.precision), .names = tr_precision_names,
     .def = "fp32",
     .doc = "Inputs of the matrix products: fp32, or bf16 (weights and activations rounded to the nearest "
            "bfloat16, accumulated and returned in fp32, as PyTorch's CPU autocast computes nn.Linear); the "
            "master weights, optimizer state, loss, softmax and every reduction stay fp32, and checkpoints are "
            "fp32 in either. bf16 needs the onednn engine and a CPU with native bf16 products (avx512_bf16 or "
            "AMX)."},
    {.section = "train", .name = "deterministic", .kind = K_BOOL, FIELD(train.deterministic), .def = "false",
     .doc = "Bitwise reproducible on any layout: each optimizer step's rows are cut into chunks of chunk_rows "
            "rows, each chunk's gradient is computed on one thread (batch norm normalises per chunk) and the "
            "chunks are summed exactly (64-bit fixed point). The parameters then depend only on the data, the "
            "seeds, the rows per optimizer step (batch_size x accumulate) and chunk_rows: not on the ranks, "
            "threads or accumulation."},
    {.section = "train", .name = "chunk_rows", .kind = K_I64, FIELD(train.chunk_rows),
     .min = 1, .max = 1e9, .def = "64",
     .doc = "Deterministic mode's unit of work: rows per chunk of an optimizer step (the last chunk of a step may"
            " be shorter). Chunks are dealt out to the ranks, so a step of R rows keeps up to ceil(R / "
            "chunk_rows) ranks busy: lower it when steps have fewer than 64 rows per rank, at some cost per row "
            "(smaller matrix products, one gradient buffer per chunk)."},
    {.section = "train", .name = "bucket_kb", .kind = K_I64, FIELD(train.bucket_kb),
     .min = 0, .max = 1e9, .def = "256",
     .doc = "Gradient allreduce bucket size in KiB; buckets start as soon as backward completes them (0 = one per"
            " layer). A weight is cut at row boundaries into blocks of at least 128 rows, so a bucket may be "
            "larger."},
    {.section = "train", .name = "watchdog", .kind = K_DOUBLE, FIELD(train.watchdog), .min = 0, .max = 1e7,
     .def = "300",
     .doc = "Seconds a rank may wait for the others in one exchange before the watchdog ends the job, naming "
            "the ranks that did not answer (exit status 8; slurm/train.sbatch requeues it); at least 20 times the "
            "slowest step so far, 3 times this before the first step ends (loading); 0 = off."},
    {.section = "train", .name = "comm", .kind = K_ENUM, FIELD(train.comm),
     .names = tr_comm_names, .def = "auto",
     .doc = "How gradients are summed: shared = parameters and optimizer state once per node in MPI shared memory, "
            "each rank reduces and updates a shard (needs the same number of ranks on every node); allreduce = "
            "MPI_Iallreduce of buckets overlapping backward, replicated optimizer; auto = shared when possible."},
    {.section = "train", .name = "grad_compression", .kind = K_ENUM, FIELD(train.grad_compression),
     .names = tr_compression_names, .def = "none",
     .doc = "The gradient's format between ranks, as PyTorch DDP's compression hooks: bf16 or fp16 halves the "
            "bytes (each rank's gradient rounded to 16 bits, summed in 16 bits, widened back; a sum past fp16's "
            "65504 is infinite and ends the run as diverged). With comm = shared only the sum between nodes "
            "is compressed (one node: no effect). Not with deterministic = true."},
    {.section = "train", .name = "eval_batch_size", .kind = K_I64, FIELD(train.eval_batch),
     .min = 1, .max = 1e9, .def = "256",
     .doc = "Rows per evaluation chunk; chunks are spread over the ranks, so metrics do not depend on the rank "
            "count."},
    /* [output] */
    {.section = "output", .name = "dir", .kind = K_STRING, FIELD(output.dir), .def = "run",
     .doc = "Run directory: config.ini, checkpoints (ckpt-<step>.h5, best.h5) and the metric log (metrics.h5, "
            "metrics.csv)."},
    {.section = "output", .name = "checkpoint_every", .kind = K_I64, FIELD(output.checkpoint_every),
     .min = 0, .max = 1e9, .def = "1",
     .doc = "Write a checkpoint every this many epochs (0: only at the end and on a signal)."},
    {.section = "output", .name = "log_every_steps", .kind = K_I64, FIELD(output.log_every_steps),
     .min = 0, .max = 1e12, .def = "0",
     .doc = "Every this many optimizer steps a row of the per-step log (steps.h5, steps.csv): the step's loss, the "
            "epoch's running loss, the gradient's global norm before clipping and the learning rate; 0 = off."},
    {.section = "output", .name = "checkpoint_every_steps", .kind = K_I64, FIELD(output.checkpoint_every_steps),
     .min = 0, .max = 1e12, .def = "0",
     .doc = "Also write a checkpoint every this many optimizer steps (0: off)."},
    {.section = "output", .name = "keep_last", .kind = K_I64, FIELD(output.keep_last),
     .min = 1, .max = 1e6, .def = "3",
     .doc = "Checkpoints kept (the newest; best.h5 is kept besides)."},
    {.section = "output", .name = "best_metric", .kind = K_CHOICE, FIELD(output.best_metric),
     .accepts = best_metric_accepts,
     .describe = best_metric_choices, .def = "auto",
     .doc = "Metric that chooses best.h5 (and early stopping): e.g. val_loss, val_accuracy; auto = val_loss with "
            "a validation set, else test_loss (optimistic: the test set then takes part in the choice), else "
            "train_loss."},
    {.section = "output", .name = "best_mode", .kind = K_ENUM, FIELD(output.best_mode),
     .names = tr_best_mode_names, .def = "auto",
     .doc = "Whether best_metric is better lower or higher; auto = max for accuracy, macro_f1 and r2, else min."},
    {.section = "output", .name = "resume", .kind = K_ENUM, FIELD(output.resume),
     .names = tr_resume_names, .def = "never",
     .doc = "auto: continue from the newest valid checkpoint in `dir` if there is one (SLURM requeue); `trainer "
            "train --resume DIR` does the same from DIR."},
    {.section = "output", .name = "progress", .kind = K_ENUM, FIELD(output.progress),
     .names = tr_progress_names, .def = "auto",
     .doc = "A progress line while an epoch runs: auto = only when stdout is a terminal."},

};

#define N_KEYS (sizeof keys / sizeof keys[0])

static const char *const sections[] = {"model", "data", "train", "output"};

/* ---------------------------------------------------------------- value parsing ------- */

static int bad_value(tr_err *err, const char *where, const key_desc *k, int layer, const char *value,
                     const char *why)
{
    char key[64];
    if (layer >= 0)
        snprintf(key, sizeof key, "%s.%d", k->name, layer);
    else
        snprintf(key, sizeof key, "%s", k->name);
    return tr_fail(err, TR_ECONFIG, "%s: [%s] %s = %s: %s", where, k->section, key, value, why);
}

/* The values a key takes, for `trainer help config` and messages: its vocabulary, joined. */
static const char *choices_of(const key_desc *k, char *buf, size_t size)
{
    if (k->describe)
        return k->describe(buf, size);
    if (k->names)
        return tr_names_join(k->names, buf, size);
    return NULL;
}

static int unknown_name(tr_err *err, const char *where, const key_desc *k, int layer, const char *value)
{
    char names[512], why[600];
    snprintf(why, sizeof why, "unknown value (choose one of: %s)", choices_of(k, names, sizeof names));
    return bad_value(err, where, k, layer, value, why);
}

static int parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || errno == ERANGE || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

/* 0, -1 when s is not an integer, -2 when it is one beyond int64_t. */
static int parse_i64(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end != '\0')
        return -1;
    if (errno == ERANGE)
        return -2;
    *out = v;
    return 0;
}

static int parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"}, *const no[] = {"false", "no", "off", "0"};
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

/* Splits a comma-separated list in place; returns the count or -1 if more than max. */
/* Splits a comma-separated list in place into trimmed items: their count, 0 for an empty
 * value, -1 for more than max items, -2 for an empty item (two commas in a row, or one at
 * an end). */
static int split_list(char *s, char **items, int max)
{
    if (!*tr_trim(s))
        return 0;
    int n = 0;
    for (char *item = s;;) {
        char *comma = strchr(item, ',');
        if (comma)
            *comma = '\0';
        if (n == max)
            return -1;
        items[n] = tr_trim(item);
        if (!*items[n++])
            return -2;
        if (!comma)
            return n;
        item = comma + 1;
    }
}

/* What split_list's negative count means. */
static const char *list_problem(int n)
{
    return n == -2 ? "an empty item (two commas in a row, or one at an end)" : "too many items";
}

static int check_range(const key_desc *k, double v, const char *where, int layer, const char *value, tr_err *err)
{
    if (v < k->min || v > k->max) {
        char why[128];
        if (k->max == INF)
            snprintf(why, sizeof why, "must be >= %g", k->min);
        else
            snprintf(why, sizeof why, "must be between %g and %g", k->min, k->max);
        return bad_value(err, where, k, layer, value, why);
    }
    return 0;
}

static int apply_value(tr_config *c, const key_desc *k, const char *value, int layer, const char *where,
                       tr_err *err)
{
    char *base = (char *)c + k->offset;
    if ((k->flags & F_AUTO) && strcmp(value, "auto") == 0) {
        *(double *)base = NAN;
        return 0;
    }
    switch (k->kind) {
    case K_BOOL:
        if (parse_bool(value, (bool *)base))
            return bad_value(err, where, k, layer, value, "not a boolean (true/false)");
        return 0;
    case K_I64:
    case K_INT: {
        int64_t v;
        const int p = parse_i64(value, &v);
        if (p == -2) {
            char why[128];
            if (isfinite(k->max))
                snprintf(why, sizeof why, "too large (at most %.0f)", k->max);
            else
                snprintf(why, sizeof why, "too large for a 64-bit integer");
            return bad_value(err, where, k, layer, value, why);
        }
        if (p)
            return bad_value(err, where, k, layer, value, "not an integer");
        if (check_range(k, (double)v, where, layer, value, err))
            return TR_ECONFIG;
        if (k->kind == K_INT)
            *(int *)base = (int)v;
        else
            *(int64_t *)base = v;
        return 0;
    }
    case K_U64: {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(value, &end, 0);
        if (end == value || *end || value[0] == '-')
            return bad_value(err, where, k, layer, value, "not a non-negative integer");
        if (errno == ERANGE)
            return bad_value(err, where, k, layer, value, "too large (at most 18446744073709551615)");
        *(uint64_t *)base = v;
        return 0;
    }
    case K_DOUBLE:
    case K_FLOAT: {
        double v;
        if (parse_double(value, &v))
            return bad_value(err, where, k, layer, value, "not a finite number");
        if (check_range(k, v, where, layer, value, err))
            return TR_ECONFIG;
        if (k->kind == K_FLOAT)
            *(float *)base = (float)v;
        else
            *(double *)base = v;
        return 0;
    }
    case K_STRING:
        if (strlen(value) >= k->size)
            return bad_value(err, where, k, layer, value, "too long");
        snprintf(base, k->size, "%s", value);
        return 0;
    case K_CHOICE:
        if (!(k->accepts ? k->accepts(value) : tr_name_index(k->names, value) >= 0))
            return unknown_name(err, where, k, layer, value);
        if (strlen(value) >= k->size)
            return bad_value(err, where, k, layer, value, "too long");
        snprintf(base, k->size, "%s", value);
        return 0;
    case K_ENUM: {
        const int v = tr_name_index(k->names, value);
        if (v < 0)
            return unknown_name(err, where, k, layer, value);
        if (k->size == sizeof(bool))
            *(bool *)base = v != 0;
        else if (k->size == sizeof(int))
            *(int *)base = v;
        else
            return tr_fail(err, TR_EINTERNAL, "[%s] %s: the key table gives a field of %zu bytes", k->section,
                           k->name, k->size);
        return 0;
    }
    case K_CUSTOM:
        return k->set(c, k, value, layer, where, err);
    }
    return 0;
}

/* ---------------------------------------------------------------- custom setters ------ */

static int set_layers(tr_config *c, const key_desc *k, const char *value, int layer, const char *where, tr_err *err)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s", value);
    char *items[TR_MAX_LAYERS + 2];
    int n = split_list(buf, items, TR_MAX_LAYERS + 1);
    if (n < 0)
        return bad_value(err, where, k, layer, value,
                         n == -2 ? list_problem(n) : "too many layers (at most 64 weight layers)");
    if (n < 2)
        return bad_value(err, where, k, layer, value, "needs at least an input and an output width");
    for (int i = 0; i < n; i++) {
        int64_t w;
        const int p = parse_i64(items[i], &w);
        if (p == -1 || (p == 0 && w < 1)) {
            char why[128];
            snprintf(why, sizeof why, "width %d ('%s') is not a positive integer", i, items[i]);
            return bad_value(err, where, k, layer, value, why);
        }
        if (p == -2 || w > 100000000) {
            char why[128];
            snprintf(why, sizeof why, "width %d ('%s') is too large (at most 100000000)", i, items[i]);
            return bad_value(err, where, k, layer, value, why);
        }
        c->model.widths[i] = w;
    }
    c->model.n_layers = n - 1;
    return 0;
}

static int set_activations(tr_config *c, const key_desc *k, const char *value, int layer, const char *where,
                           tr_err *err)
{
    tr_pending_activations *pa = &c->pending_act;
    if (k->arg == 0) {
        if (strlen(value) >= sizeof pa->list)
            return bad_value(err, where, k, layer, value, "too long");
        snprintf(pa->list, sizeof pa->list, "%s", value);
        snprintf(pa->list_where, sizeof pa->list_where, "%s", where);
    } else {
        if (strlen(value) >= sizeof pa->output)
            return bad_value(err, where, k, layer, value, "unknown activation");
        snprintf(pa->output, sizeof pa->output, "%s", value);
        snprintf(pa->output_where, sizeof pa->output_where, "%s", where);
    }
    return 0;
}

static int set_init_field(tr_config *c, const key_desc *k, const char *value, int layer, const char *where,
                          tr_err *err)
{
    const bool is_bias = k->arg >= INIT_BIAS;
    const int field = k->arg % INIT_BIAS;
    double v = 0.0;
    int scheme = 0;
    bool fan_out = false;
    switch (field) {
    case INIT_SCHEME:
        scheme = tr_name_index(tr_init_names, value);
        if (scheme < 0)
            return unknown_name(err, where, k, layer, value);
        if (is_bias && scheme >= TR_INIT_XAVIER_UNIFORM && scheme <= TR_INIT_KAIMING_NORMAL)
            return bad_value(err, where, k, layer, value,
                             "xavier and kaiming need a 2-D tensor (fan in and out); a bias takes default, "
                             "uniform, normal, zeros or constant");
        break;
    case INIT_MODE:
        if (tr_name_index(init_mode_names, value) < 0)
            return unknown_name(err, where, k, layer, value);
        fan_out = tr_name_index(init_mode_names, value) == 1;
        break;
    case INIT_NONLINEARITY:
        if (tr_name_index(tr_nonlinearity_names, value) < 0)
            return unknown_name(err, where, k, layer, value);
        break;
    case INIT_GAIN: {
        if (strcmp(value, "auto") == 0) {
            v = NAN;
            break;
        }
        char name[32];
        const char *colon = strchr(value, ':');
        snprintf(name, sizeof name, "%.*s", colon ? (int)(colon - value) : (int)strlen(value), value);
        const int nl = tr_name_index(tr_nonlinearity_names, name);
        if (nl >= 0) { /* calculate_gain by name, leaky_relu:SLOPE */
            double param = NAN;
            if (colon && (nl != TR_NL_LEAKY_RELU || parse_double(colon + 1, &param)))
                return bad_value(err, where, k, layer, value, "only leaky_relu takes a parameter: leaky_relu:0.2");
            v = tr_calculate_gain((tr_nonlinearity)nl, param);
            break;
        }
    }
        /* fall through */
    default:
        if (parse_double(value, &v))
            return bad_value(err, where, k, layer, value, "not a finite number");
        if (field == INIT_STD && v < 0)
            return bad_value(err, where, k, layer, value, "must be >= 0");
        break;
    }
    const int first = layer >= 0 ? layer : 0, last = layer >= 0 ? layer : TR_MAX_LAYERS - 1;
    for (int l = first; l <= last; l++) {
        tr_init_spec *s = is_bias ? &c->model.bias_init[l] : &c->model.weight_init[l];
        switch (field) {
        case INIT_SCHEME: s->scheme = (tr_init_scheme)scheme; break;
        case INIT_A: s->a = v; break;
        case INIT_B: s->b = v; break;
        case INIT_MEAN: s->mean = v; break;
        case INIT_STD: s->std = v; break;
        case INIT_GAIN: s->gain = v; break;
        case INIT_VALUE: s->value = v; break;
        case INIT_MODE: s->fan_out = fan_out; break;
        case INIT_NONLINEARITY: s->nonlinearity = (tr_nonlinearity)tr_name_index(tr_nonlinearity_names, value); break;
        default: break;
        }
    }
    return 0;
}

static int set_delimiter(tr_config *c, const key_desc *k, const char *value, int layer, const char *where,
                         tr_err *err)
{
    if (tr_csv_delimiter(value) < 0)
        return bad_value(err, where, k, layer, value,
                         "choose comma, semicolon, tab, space, auto or a single punctuation character");
    snprintf(c->data.delimiter_name, sizeof c->data.delimiter_name, "%s", value);
    return 0;
}

static int set_scale(tr_config *c, const key_desc *k, const char *value, int layer, const char *where, tr_err *err)
{
    /* NAME, or divide:K */
    char name[32];
    const char *colon = strchr(value, ':');
    snprintf(name, sizeof name, "%.*s", colon ? (int)(colon - value) : (int)strlen(value), value);
    const int kind = tr_name_index(tr_scale_names, name);
    if (kind < 0)
        return unknown_name(err, where, k, layer, value);
    double d = 1.0;
    if ((kind == TR_SCALE_DIVIDE) != (colon != NULL) ||
        (kind == TR_SCALE_DIVIDE && (parse_double(colon + 1, &d) || !(d > 0.0))))
        return bad_value(err, where, k, layer, value,
                         kind == TR_SCALE_DIVIDE ? "divide:K needs a positive number K, e.g. divide:255"
                                                 : "only divide takes a number (divide:K)");
    c->data.scale = (tr_scale_kind)kind;
    c->data.scale_divisor = d;
    return 0;
}

/* shuffle: its vocabulary, any boolean spelling, or `global` */
static int set_shuffle(tr_config *c, const key_desc *k, const char *value, int layer, const char *where, tr_err *err)
{
    bool b;
    int mode = tr_name_index(tr_shuffle_names, value);
    if (mode < 0 && !parse_bool(value, &b))
        mode = b ? TR_SHUFFLE_GLOBAL : TR_SHUFFLE_NONE;
    if (mode < 0 && !strcmp(value, "global"))
        mode = TR_SHUFFLE_GLOBAL;
    if (mode < 0)
        return bad_value(err, where, k, layer, value, "not a boolean (true/false), global or block");
    c->train.shuffle = (tr_shuffle_mode)mode;
    return 0;
}

/* dropout (arg 0) and batchnorm (arg 1): the text, or one layer's override */
static int set_layer_list(tr_config *c, const key_desc *k, const char *value, int layer, const char *where,
                          tr_err *err)
{
    tr_pending_activations *pa = &c->pending_act;
    if (layer >= 0) { /* dropout.N / batchnorm.N */
        if (k->arg == 0) {
            double v;
            if (parse_double(value, &v) || v < 0.0 || v >= 1.0)
                return bad_value(err, where, k, layer, value, "a dropout probability must be in [0, 1)");
            pa->dropout_layer[layer] = (float)v;
        } else {
            bool b;
            if (parse_bool(value, &b))
                return bad_value(err, where, k, layer, value, "not a boolean (true/false)");
            pa->batchnorm_layer[layer] = b;
        }
        return 0;
    }
    char *dst = k->arg == 0 ? pa->dropout : pa->batchnorm;
    char *dw = k->arg == 0 ? pa->dropout_where : pa->batchnorm_where;
    if (strlen(value) >= sizeof pa->dropout)
        return bad_value(err, where, k, layer, value, "too long");
    snprintf(dst, sizeof pa->dropout, "%s", value);
    snprintf(dw, sizeof pa->dropout_where, "%s", where);
    return 0;
}

static int set_class_weights(tr_config *c, const key_desc *k, const char *value, int layer, const char *where,
                             tr_err *err)
{
    if (!strcmp(value, "none")) {
        c->train.n_class_weights = 0;
        return 0;
    }
    if (!strcmp(value, "auto")) {
        c->train.n_class_weights = -1;
        return 0;
    }
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", value);
    char *items[1024];
    const int n = split_list(buf, items, 1024);
    if (n == -2)
        return bad_value(err, where, k, layer, value, list_problem(n));
    if (n < 1)
        return bad_value(err, where, k, layer, value, "give none, auto or one weight per class (at most 1024)");
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        double w;
        if (parse_double(items[i], &w) || w < 0.0)
            return bad_value(err, where, k, layer, value, "class weights must be non-negative numbers");
        c->train.class_weights[i] = (float)w;
        sum += w;
    }
    if (sum <= 0.0) /* every row would weigh nothing: the loss is 0/0 */
        return bad_value(err, where, k, layer, value, "at least one class weight must be positive");
    c->train.n_class_weights = n;
    return 0;
}

/* Resolves the dropout and batchnorm lists against the hidden layers. */
static int resolve_layer_lists(tr_config *c, tr_err *err)
{
    const tr_pending_activations *pa = &c->pending_act;
    const int H = c->model.n_layers - 1; /* hidden layers */
    for (int pass = 0; pass < 2; pass++) {
        char buf[512];
        snprintf(buf, sizeof buf, "%s", pass == 0 ? pa->dropout : pa->batchnorm);
        const char *where = pass == 0 ? pa->dropout_where : pa->batchnorm_where;
        const char *key = pass == 0 ? "dropout" : "batchnorm";
        char *items[TR_MAX_LAYERS + 1];
        const int n = split_list(buf, items, TR_MAX_LAYERS);
        if (n < 0)
            return tr_fail(err, TR_ECONFIG, "%s: [model] %s = %s: %s", where, key,
                           pass == 0 ? pa->dropout : pa->batchnorm, list_problem(n));
        if (n < 1) /* an empty value (a model without hidden layers also needs one) */
            return tr_fail(err, TR_ECONFIG, "%s: [model] %s: no value; give one value for all hidden layers, or one "
                                            "per hidden layer", where, key);
        if (n != 1 && n != H)
            return tr_fail(err, TR_ECONFIG,
                           "%s: [model] %s: %d values for %d hidden layers; give one value for all, or one per hidden "
                           "layer",
                           where, key, n, H);
        for (int l = 0; l < c->model.n_layers; l++) {
            const char *v = items[n == 1 ? 0 : (l < H ? l : 0)];
            if (pass == 0) {
                double p;
                if (parse_double(v, &p) || p < 0.0 || p >= 1.0)
                    return tr_fail(err, TR_ECONFIG, "%s: [model] dropout = %s: probabilities must be in [0, 1)",
                                   where, v);
                c->model.dropout[l] = l < H ? (float)p : 0.0f;
                if (!isnan(pa->dropout_layer[l]))
                    c->model.dropout[l] = pa->dropout_layer[l];
            } else {
                bool b;
                if (parse_bool(v, &b))
                    return tr_fail(err, TR_ECONFIG, "%s: [model] batchnorm = %s: not a boolean", where, v);
                c->model.batchnorm[l] = l < H && b;
                if (pa->batchnorm_layer[l] >= 0)
                    c->model.batchnorm[l] = pa->batchnorm_layer[l];
            }
        }
        const int last = c->model.n_layers - 1;
        if ((pass == 0 && c->model.dropout[last] > 0.0f) || (pass == 1 && c->model.batchnorm[last]))
            return tr_fail(err, TR_ECONFIG, "[model] %s.%d: the output layer takes no %s (hidden layers only)", key,
                           last, key);
    }
    return 0;
}

/* ---------------------------------------------------------------- reading ------------- */

typedef struct raw_entry {
    char section[32];
    char key[64];
    char value[1024];
    char where[TR_PATH_MAX + 16];
    const key_desc *desc;
    int layer; /* -1 = the base key */
} raw_entry;

typedef struct parse_ctx {
    tr_config *c;
    const char *name;
    raw_entry *raw;
    int n_raw, cap_raw;
    /* line-counting reader state */
    const char *text;
    size_t pos;
    FILE *fp;
    int line;
    bool at_line_start;
    bool long_line;
    int long_line_no;
    /* first error */
    tr_err *err;
    int failed;
} parse_ctx;

static char *line_reader(char *str, int num, void *stream)
{
    parse_ctx *p = stream;
    char *got;
    if (p->fp) {
        got = fgets(str, num, p->fp);
    } else {
        if (!p->text[p->pos])
            return NULL;
        int i = 0;
        while (i < num - 1 && p->text[p->pos]) {
            char ch = p->text[p->pos++];
            str[i++] = ch;
            if (ch == '\n')
                break;
        }
        str[i] = '\0';
        got = str;
    }
    if (!got)
        return NULL;
    if (p->at_line_start)
        p->line++;
    size_t n = strlen(str);
    p->at_line_start = n > 0 && str[n - 1] == '\n';
    if (!p->at_line_start && (int)n == num - 1 && !p->long_line) {
        bool at_eof = p->fp ? feof(p->fp) : !p->text[p->pos];
        if (!at_eof) {
            p->long_line = true;
            p->long_line_no = p->line;
        }
    }
    return got;
}

static const key_desc *find_key(const char *section, const char *key, int *layer)
{
    char base[64];
    snprintf(base, sizeof base, "%s", key);
    *layer = -1;
    char *dot = strchr(base, '.');
    if (dot) {
        char *end;
        long l = strtol(dot + 1, &end, 10);
        if (*end || end == dot + 1 || l < 0)
            return NULL;
        *layer = (int)l;
        *dot = '\0';
    }
    for (size_t i = 0; i < N_KEYS; i++)
        if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].name, base) == 0) {
            if (*layer >= 0 && !(keys[i].flags & F_PER_LAYER))
                return NULL;
            return &keys[i];
        }
    return NULL;
}

static bool known_section(const char *s)
{
    for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++)
        if (strcmp(s, sections[i]) == 0)
            return true;
    return false;
}

static int record(parse_ctx *p, const char *section, const char *key, const char *value, const char *where)
{
    /* names longer than any known one are unknown, whole (never cut to a known prefix) */
    if (strlen(section) >= sizeof p->raw[0].section)
        return tr_fail(p->err, TR_ECONFIG, "%s: unknown section [%.40s...] (sections: [model], [data], [train], "
                                           "[output])", where, section);
    if (strlen(key) >= sizeof p->raw[0].key)
        return tr_fail(p->err, TR_ECONFIG, "%s: unknown key '%.40s...' in section [%s] (see `trainer help config`)",
                       where, key, section);
    if (!known_section(section))
        return tr_fail(p->err, TR_ECONFIG, "%s: unknown section [%s] (sections: [model], [data], [train], [output])",
                       where, section);
    int layer;
    const key_desc *d = find_key(section, key, &layer);
    if (!d) {
        int l2;
        char base[64];
        snprintf(base, sizeof base, "%s", key);
        char *dot = strchr(base, '.');
        if (dot)
            *dot = '\0';
        if (dot && find_key(section, base, &l2))
            return tr_fail(p->err, TR_ECONFIG, "%s: [%s] %s: key '%s' has no per-layer form", where, section, key,
                           base);
        return tr_fail(p->err, TR_ECONFIG, "%s: unknown key '%s' in section [%s] (see `trainer help config`)",
                       where, key, section);
    }
    if (layer >= TR_MAX_LAYERS)
        return tr_fail(p->err, TR_ECONFIG, "%s: [%s] %s: layer index out of range", where, section, key);
    if (strlen(value) >= sizeof p->raw[0].value)
        return tr_fail(p->err, TR_ECONFIG, "%s: [%s] %s: value too long", where, section, key);
    for (int i = 0; i < p->n_raw; i++) {
        raw_entry *r = &p->raw[i];
        if (r->desc == d && r->layer == layer) {
            if (strcmp(where, "--set") != 0 && strcmp(r->where, "--set") != 0)
                return tr_fail(p->err, TR_ECONFIG, "%s: [%s] %s is set twice (first at %s)", where, section, key,
                               r->where);
            snprintf(r->value, sizeof r->value, "%s", value);
            snprintf(r->where, sizeof r->where, "%s", where);
            return 0;
        }
    }
    if (p->n_raw == p->cap_raw) {
        int cap = p->cap_raw ? 2 * p->cap_raw : 32;
        raw_entry *nr = realloc(p->raw, (size_t)cap * sizeof *nr);
        if (!nr)
            return tr_fail(p->err, TR_ENOMEM, "out of memory reading the configuration");
        p->raw = nr;
        p->cap_raw = cap;
    }
    raw_entry *r = &p->raw[p->n_raw++];
    snprintf(r->section, sizeof r->section, "%s", section);
    snprintf(r->key, sizeof r->key, "%s", key);
    snprintf(r->value, sizeof r->value, "%s", value);
    snprintf(r->where, sizeof r->where, "%s", where);
    r->desc = d;
    r->layer = layer;
    return 0;
}

static int on_ini_entry(void *user, const char *section, const char *name, const char *value)
{
    parse_ctx *p = user;
    if (p->failed)
        return 1;
    char where[TR_PATH_MAX + 16];
    snprintf(where, sizeof where, "%s:%d", p->name, p->line);
    if (p->long_line && p->long_line_no <= p->line) {
        p->failed = tr_fail(p->err, TR_ECONFIG, "%s:%d: line too long (at most %d characters)", p->name,
                            p->long_line_no, INI_MAX_LINE - 2);
        return 1;
    }
    char v[1024];
    if (strlen(value) >= sizeof v) {
        p->failed = tr_fail(p->err, TR_ECONFIG, "%s: [%s] %s: value too long (%zu characters, at most %zu)", where,
                            section, name, strlen(value), sizeof v - 1);
        return 1;
    }
    snprintf(v, sizeof v, "%s", value);
    p->failed = record(p, section, name, tr_trim(v), where);
    return 1;
}

/* ---------------------------------------------------------------- finishing ----------- */

static int resolve_activations(tr_config *c, tr_err *err)
{
    const int L = c->model.n_layers;
    const tr_pending_activations *pa = &c->pending_act;
    const char *act_list = pa->list, *act_list_where = pa->list_where;
    const char *act_output = pa->output, *act_output_where = pa->output_where;
    char buf[sizeof pa->list];
    snprintf(buf, sizeof buf, "%s", act_list);
    char *items[TR_MAX_LAYERS + 1];
    int n = split_list(buf, items, TR_MAX_LAYERS);
    if (n < 0)
        return tr_fail(err, TR_ECONFIG, "%s: [model] activations = %s: %s", act_list_where, act_list, list_problem(n));
    const bool have_output = strcmp(act_output, "auto") != 0;
    if (n < 1)
        return tr_fail(err, TR_ECONFIG, "%s: [model] activations = %s: give one activation per weight layer",
                       act_list_where, act_list);
    char names[256];
    for (int i = 0; i < n; i++)
        if (tr_activation_from_name(items[i]) < 0)
            return tr_fail(err, TR_ECONFIG, "%s: [model] activations = %s: unknown activation '%s' (choose one of: %s)",
                           act_list_where, act_list, items[i], tr_names_join(tr_activation_names, names, sizeof names));
    int out_act = TR_ACT_IDENTITY;
    if (have_output) {
        out_act = tr_activation_from_name(act_output);
        if (out_act < 0)
            return tr_fail(err, TR_ECONFIG, "%s: [model] output_activation = %s: unknown activation (choose one of: %s)",
                           act_output_where, act_output, tr_names_join(tr_activation_names, names, sizeof names));
    }
    if (n == L && (n > 1 || !have_output)) {
        if (have_output && n > 1)
            return tr_fail(err, TR_ECONFIG,
                           "%s: [model] output_activation is set but activations already names all %d layers "
                           "(%s); give one hidden activation, or drop output_activation",
                           act_output_where, L, act_list_where);
        for (int i = 0; i < L; i++)
            c->model.act[i] = (tr_activation)tr_activation_from_name(items[i]);
    } else if (n == 1) {
        for (int i = 0; i < L - 1; i++)
            c->model.act[i] = (tr_activation)tr_activation_from_name(items[0]);
        c->model.act[L - 1] = (tr_activation)out_act;
    } else {
        return tr_fail(err, TR_ECONFIG,
                       "%s: [model] activations = %s: %d activations for %d weight layers (layers = %lld inputs + "
                       "%d widths); give %d names, or one name for the hidden layers",
                       act_list_where, act_list, n, L, (long long)c->model.widths[0], L, L);
    }
    for (int i = 0; i < L - 1; i++)
        if (c->model.act[i] == TR_ACT_SOFTMAX || c->model.act[i] == TR_ACT_LOG_SOFTMAX)
            return tr_fail(err, TR_ECONFIG, "%s: [model] activations: %s is only allowed on the output layer",
                           act_list_where, tr_activation_name(c->model.act[i]));
    return 0;
}

static int finish(tr_config *c, tr_err *err)
{
    if (resolve_activations(c, err) || resolve_layer_lists(c, err))
        return TR_ECONFIG;
    tr_train_config *t = &c->train;
    tr_optim_config *o = &t->optim;
    if (isnan(o->lr))
        o->lr = o->kind == TR_OPTIM_LARS ? 1.0 : o->kind == TR_OPTIM_RMSPROP || o->kind == TR_OPTIM_ADAGRAD ? 1e-2 : 1e-3;
    if (isnan(o->eps))
        o->eps = o->kind == TR_OPTIM_ADAGRAD ? 1e-10 : o->kind == TR_OPTIM_LAMB ? 1e-6 : 1e-8;
    if (isnan(o->momentum))
        o->momentum =
            (o->kind == TR_OPTIM_MOMENTUM || o->kind == TR_OPTIM_NESTEROV || o->kind == TR_OPTIM_LARS) ? 0.9 : 0.0;
    if (isnan(o->weight_decay))
        o->weight_decay = o->kind == TR_OPTIM_ADAMW || o->kind == TR_OPTIM_LAMB ? 0.01 : 0.0;
    if (o->kind == TR_OPTIM_NESTEROV && o->momentum <= 0.0)
        return tr_fail(err, TR_ECONFIG, "%s: [train] optimizer = nesterov needs momentum > 0", c->path);
    if (o->kind == TR_OPTIM_NESTEROV && o->dampening != 0.0)
        return tr_fail(err, TR_ECONFIG, "%s: [train] optimizer = nesterov needs dampening = 0 (as PyTorch)", c->path);

    if (t->n_class_weights > 0 && t->loss != TR_LOSS_CROSS_ENTROPY && t->loss != TR_LOSS_NLL)
        return tr_fail(err, TR_ECONFIG, "%s: [train] class_weights lists apply to cross_entropy; for bce and bce_logits "
                                        "use pos_weight (or class_weights = auto)", c->path);
    if (t->lr_schedule == TR_SCHED_ONECYCLE && t->onecycle_cycle_momentum &&
        !(tr_optim_cycles_beta1(o->kind) || (o->kind != TR_OPTIM_ADAGRAD && o->momentum > 0.0)))
        return tr_fail(err, TR_ECONFIG, "%s: [train] lr_schedule = onecycle cycles the momentum, and optimizer = %s "
                                        "has none: set momentum > 0 (not adagrad), or onecycle_cycle_momentum = false", c->path,
                       tr_optim_names[o->kind]);
    if (t->lr_schedule == TR_SCHED_ONECYCLE && t->warmup_steps > 0)
        return tr_fail(err, TR_ECONFIG, "%s: [train] lr_schedule = onecycle has its own warm-up (onecycle_pct_start): "
                                        "warmup_steps must be 0", c->path);
    if (t->lr_scaling != TR_LR_SCALING_NONE && t->lr_scaling_warmup_epochs > 0.0 &&
        (t->warmup_steps > 0 || t->lr_schedule == TR_SCHED_ONECYCLE))
        return tr_fail(err, TR_ECONFIG, "%s: [train] lr_scaling = %s warms the rate up over "
                                        "lr_scaling_warmup_epochs, and %s has a warm-up of its own: set one of them "
                                        "to 0", c->path, tr_lr_scaling_names[t->lr_scaling],
                       t->warmup_steps > 0 ? "warmup_steps" : "lr_schedule = onecycle (onecycle_pct_start)");
    if (t->label_smoothing > 0.0 && t->loss != TR_LOSS_CROSS_ENTROPY)
        return tr_fail(err, TR_ECONFIG, "%s: [train] label_smoothing = %g applies to loss = cross_entropy only (as "
                                        "PyTorch's CrossEntropyLoss)", c->path, t->label_smoothing);
    if (t->n_class_weights > 0 && t->n_class_weights != c->model.widths[c->model.n_layers])
        return tr_fail(err, TR_ECONFIG, "%s: [train] class_weights: %lld weights for %lld classes (output units)",
                       c->path, (long long)t->n_class_weights, (long long)c->model.widths[c->model.n_layers]);
    /* the loss must fit the output layer */
    tr_loss L = {.kind = t->loss, .reduction = t->reduction, .width = c->model.widths[c->model.n_layers],
                 .out_act = c->model.act[c->model.n_layers - 1], .act_params = c->model.act_params};
    if (tr_loss_check(&L, err))
        return tr_fail_context(err, "%s", c->path);
    if (c->data.class_names[0]) {
        if (tr_loss_task(&L) != TR_TASK_CLASSIFICATION)
            return tr_fail(err, TR_ECONFIG, "%s: [data] class_names is for classification losses (bce, bce_logits, "
                                            "cross_entropy)", c->path);
        const int64_t named = tr_class_name_count(c->data.class_names), classes = tr_loss_classes(&L);
        if (named != classes || (!tr_loss_takes_class_index(&L) && L.width != 1))
            return tr_fail(err, TR_ECONFIG, "%s: [data] class_names: %lld names for %lld classes", c->path,
                           (long long)named, (long long)classes);
    }
    if (t->deterministic && t->grad_compression != TR_COMPRESS_NONE)
        return tr_fail(err, TR_ECONFIG, "%s: [train] grad_compression = %s rounds the gradient sums: not with "
                                        "deterministic = true (exact sums)", c->path,
                       tr_compression_names[t->grad_compression]);
    if (t->precision == TR_PRECISION_BF16 && t->gemm == TR_GEMM_OPENBLAS)
        return tr_fail(err, TR_ECONFIG, "%s: [train] precision = bf16 needs gemm = onednn or auto (the openblas engine "
                                        "computes in fp32 only)", c->path);
    const tr_data_config *d = &c->data;
    const int sources = (d->generator[0] != 0) + (d->builtin[0] != 0) + (d->path[0] || d->images[0]);
    if (sources > 1)
        return tr_fail(err, TR_ECONFIG, "%s: [data] give one source: generator, builtin, or files (path, images)",
                       c->path);
    if (d->builtin[0] && (d->test_path[0] || d->test_images[0]))
        return tr_fail(err, TR_ECONFIG, "%s: [data] builtin = %s: hold out its test rows with test_fraction "
                                        "(test files belong to path)", c->path, d->builtin);
    if (d->folds == 1 || (d->folds == 0 && d->fold > 0) || (d->folds > 1 && d->fold >= d->folds))
        return tr_fail(err, TR_ECONFIG, "%s: [data] fold = %lld of folds = %lld: folds is 0 (none) or at least 2, and "
                                        "fold one of 0 to folds - 1", c->path, (long long)d->fold, (long long)d->folds);
    if (d->folds > 1 && d->val_fraction > 0.0)
        return tr_fail(err, TR_ECONFIG, "%s: [data] folds = %lld chooses the validation rows (fold %lld): "
                                        "val_fraction must be 0", c->path, (long long)d->folds, (long long)d->fold);
    if (d->test_fraction + d->val_fraction >= 1.0)
        return tr_fail(err, TR_ECONFIG, "%s: [data] test_fraction + val_fraction = %g leaves no training rows", c->path,
                       d->test_fraction + d->val_fraction);
    if (d->test_fraction > 0.0 && (d->test_path[0] || d->test_images[0]))
        return tr_fail(err, TR_ECONFIG, "%s: [data] give either test_fraction or test files (test_path, test_images), "
                                        "not both", c->path);
    return 0;
}

/* Effective value text of each key, for checkpoints and `tr_config_print`. */
static int build_entries(tr_config *c, const raw_entry *raw, int n_raw, tr_err *err)
{
    int n = (int)N_KEYS;
    for (int i = 0; i < n_raw; i++)
        n += raw[i].layer >= 0;
    c->entries = calloc((size_t)n, sizeof *c->entries);
    if (!c->entries)
        return tr_fail(err, TR_ENOMEM, "out of memory");
    int k = 0;
    for (size_t i = 0; i < N_KEYS; i++) {
        tr_config_entry *e = &c->entries[k++];
        snprintf(e->section, sizeof e->section, "%s", keys[i].section);
        snprintf(e->key, sizeof e->key, "%s", keys[i].name);
        snprintf(e->value, sizeof e->value, "%s", keys[i].def ? keys[i].def : "");
        snprintf(e->origin, sizeof e->origin, "default");
        for (int j = 0; j < n_raw; j++)
            if (raw[j].desc == &keys[i] && raw[j].layer < 0) {
                snprintf(e->value, sizeof e->value, "%s", raw[j].value);
                snprintf(e->origin, sizeof e->origin, "%s", raw[j].where);
            }
        for (int j = 0; j < n_raw; j++)
            if (raw[j].desc == &keys[i] && raw[j].layer >= 0) {
                tr_config_entry *o = &c->entries[k++];
                snprintf(o->section, sizeof o->section, "%s", keys[i].section);
                snprintf(o->key, sizeof o->key, "%s.%d", keys[i].name, raw[j].layer);
                snprintf(o->value, sizeof o->value, "%s", raw[j].value);
                snprintf(o->origin, sizeof o->origin, "%s", raw[j].where);
            }
    }
    c->n_entries = k;
    return 0;
}

static int apply_all(tr_config *c, parse_ctx *p, tr_err *err)
{
    /* defaults first (every key), so a user value can rely on them */
    for (size_t i = 0; i < N_KEYS; i++)
        if (keys[i].def && apply_value(c, &keys[i], keys[i].def, -1, "default", err))
            return tr_fail(err, TR_EINTERNAL, "default of [%s] %s does not parse: %s", keys[i].section,
                           keys[i].name, err->msg);
    for (size_t i = 0; i < N_KEYS; i++) {
        const raw_entry *found = NULL;
        for (int j = 0; j < p->n_raw; j++)
            if (p->raw[j].desc == &keys[i] && p->raw[j].layer < 0)
                found = &p->raw[j];
        if (!found && (keys[i].flags & F_REQUIRED))
            return tr_fail(err, TR_ECONFIG, "%s: [%s] %s is required but not set", p->name, keys[i].section,
                           keys[i].name);
        if (found && apply_value(c, &keys[i], found->value, -1, found->where, err))
            return TR_ECONFIG;
    }
    for (int j = 0; j < p->n_raw; j++) {
        const raw_entry *r = &p->raw[j];
        if (r->layer < 0)
            continue;
        if (r->layer >= c->model.n_layers)
            return tr_fail(err, TR_ECONFIG, "%s: [%s] %s: the model has %d weight layers (0 to %d)", r->where,
                           r->section, r->key, c->model.n_layers, c->model.n_layers - 1);
        if (apply_value(c, r->desc, r->value, r->layer, r->where, err))
            return TR_ECONFIG;
    }
    if (finish(c, err))
        return TR_ECONFIG;
    return build_entries(c, p->raw, p->n_raw, err);
}

static int apply_sets(parse_ctx *p, const char *const *sets, int n_sets)
{
    for (int i = 0; i < n_sets; i++) {
        char buf[1024];
        if (strlen(sets[i]) >= sizeof buf)
            return tr_fail(p->err, TR_EUSAGE, "--set %.40s...: too long (%zu characters, at most %zu)", sets[i],
                           strlen(sets[i]), sizeof buf - 1);
        snprintf(buf, sizeof buf, "%s", sets[i]);
        char *eq = strchr(buf, '=');
        char *dot = strchr(buf, '.');
        if (!eq || !dot || dot > eq)
            return tr_fail(p->err, TR_EUSAGE, "--set %s: expected section.key=value (e.g. --set train.lr=0.01)",
                           sets[i]);
        *eq = '\0';
        *dot = '\0';
        char *section = tr_trim(buf), *key = tr_trim(dot + 1), *value = tr_trim(eq + 1);
        int rc = record(p, section, key, value, "--set");
        if (rc)
            return rc;
    }
    return 0;
}

static int load(tr_config *c, const char *name, FILE *fp, const char *text, const char *const *sets, int n_sets,
                tr_err *err)
{
    memset(c, 0, sizeof *c);
    snprintf(c->path, sizeof c->path, "%s", name);
    for (int l = 0; l < TR_MAX_LAYERS; l++) {
        c->pending_act.dropout_layer[l] = NAN;
        c->pending_act.batchnorm_layer[l] = -1;
    }
    parse_ctx p = {.c = c, .name = name, .fp = fp, .text = text, .at_line_start = true, .err = err};
    int rc = ini_parse_stream(line_reader, &p, on_ini_entry, &p);
    if (p.failed) {
        rc = p.failed;
    } else if (p.long_line) {
        rc = tr_fail(err, TR_ECONFIG, "%s:%d: line too long (at most %d characters)", name, p.long_line_no,
                     INI_MAX_LINE - 2);
    } else if (rc > 0) {
        rc = tr_fail(err, TR_ECONFIG, "%s:%d: syntax error (expected `[section]`, `key = value` or a comment)", name,
                     rc);
    } else if (rc < 0) {
        rc = tr_fail(err, TR_ENOMEM, "%s: cannot read", name);
    } else {
        rc = apply_sets(&p, sets, n_sets);
        if (!rc)
            rc = apply_all(c, &p, err);
    }
    free(p.raw);
    return rc;
}

int tr_config_load(tr_config *c, const char *path, const char *const *sets, int n_sets, tr_err *err)
{
    FILE *fp = tr_input_fopen(path, "config file", TR_ECONFIG, err); /* no directory, FIFO or device */
    if (!fp) {
        memset(c, 0, sizeof *c);
        return TR_ECONFIG;
    }
    int rc = load(c, path, fp, NULL, sets, n_sets, err);
    if (!rc && ferror(fp))
        rc = tr_fail(err, TR_ECONFIG, "%s: cannot read config file", path);
    fclose(fp);
    return rc;
}

int tr_config_load_string(tr_config *c, const char *name, const char *text, const char *const *sets, int n_sets,
                          tr_err *err)
{
    return load(c, name, NULL, text, sets, n_sets, err);
}

void tr_config_free(tr_config *c)
{
    if (!c)
        return;
    free(c->entries);
    c->entries = NULL;
    c->n_entries = 0;
}

void tr_config_record(tr_config *c, const char *section, const char *key, const char *value, const char *origin)
{
    for (int i = 0; i < c->n_entries; i++)
        if (!strcmp(c->entries[i].section, section) && !strcmp(c->entries[i].key, key)) {
            snprintf(c->entries[i].value, sizeof c->entries[i].value, "%s", value);
            snprintf(c->entries[i].origin, sizeof c->entries[i].origin, "%s", origin);
        }
}

void tr_config_adopt_class_names(tr_config *c, const char *names)
{
    if (c->data.class_names[0] || !names || strlen(names) >= sizeof c->entries[0].value)
        return;
    snprintf(c->data.class_names, sizeof c->data.class_names, "%s", names);
    tr_config_record(c, "data", "class_names", names, "the data's labels");
}

const char *tr_config_value(const tr_config *c, const char *section, const char *key)
{
    for (int i = 0; i < c->n_entries; i++)
        if (strcmp(c->entries[i].section, section) == 0 && strcmp(c->entries[i].key, key) == 0)
            return c->entries[i].value;
    return "";
}

void tr_config_print_reference(FILE *f)
{
    for (size_t s = 0; s < sizeof sections / sizeof sections[0]; s++) {
        fprintf(f, "### [%s]\n\n| key | default | meaning |\n| --- | --- | --- |\n", sections[s]);
        for (size_t i = 0; i < N_KEYS; i++) {
            const key_desc *k = &keys[i];
            if (strcmp(k->section, sections[s]) != 0)
                continue;
            char names[512];
            const char *choices = choices_of(k, names, sizeof names);
            fprintf(f, "| `%s`%s | %s | %s%s%s%s |\n", k->name, (k->flags & F_PER_LAYER) ? " (per layer: `.N`)" : "",
                    (k->flags & F_REQUIRED) ? "required" : (k->def ? k->def : ""), k->doc,
                    choices ? " One of: " : "", choices ? choices : "", choices ? "." : "");
        }
        fprintf(f, "\n");
    }
}

void tr_config_print(const tr_config *c, FILE *f)
{
    const char *section = "";
    for (int i = 0; i < c->n_entries; i++) {
        const tr_config_entry *e = &c->entries[i];
        if (strcmp(e->section, section) != 0) {
            fprintf(f, "%s[%s]\n", i ? "\n" : "", e->section);
            section = e->section;
        }
        fprintf(f, "%s = %s\n", e->key, e->value);
    }
}

int64_t tr_class_name_count(const char *list)
{
    if (!list || !list[0])
        return 0;
    int64_t n = 1;
    for (const char *p = list; *p; p++)
        n += *p == ',';
    return n;
}

const char *tr_class_name(const char *list, int64_t k, char *buf, size_t size)
{
    const char *p = list ? list : "";
    for (int64_t i = 0; i < k && p; i++) {
        p = strchr(p, ',');
        p = p ? p + 1 : NULL;
    }
    if (!p || !list || !list[0]) {
        snprintf(buf, size, "%lld", (long long)k);
        return buf;
    }
    while (*p == ' ' || *p == '\t')
        p++;
    size_t len = strcspn(p, ",");
    while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
        len--;
    snprintf(buf, size, "%.*s", (int)len, p);
    return buf;
}
