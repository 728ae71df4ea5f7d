/*
 * main.c: the `trainer` command line: subcommands, MPI start and stop, signals, exit codes.
 *
 * Only this file turns an error code into a process exit status (tr_exit_code), so every
 * subcommand and every rank exits with the same documented status for the same failure.
 * Failures are agreed between ranks and printed once.
 */
#include "trainer/bench.h"
#include "trainer/ckpt.h"
#include "trainer/clock.h"
#include "trainer/config.h"
#include "trainer/convert.h"
#include "trainer/dist.h"
#include "trainer/error.h"
#include "trainer/fault.h"
#include "trainer/files.h"
#include "trainer/generate.h"
#include "trainer/h5io.h"
#include "trainer/log.h"
#include "trainer/model.h"
#include "trainer/predict.h"
#include "trainer/run.h"
#include "trainer/search.h"
#include "trainer/sklearn_data.h"
#include "trainer/space.h"
#include "trainer/train.h"

#include <math.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef TRAINER_VERSION
#define TRAINER_VERSION "unknown"
#endif

#define MAX_SETS 256
#define MAX_POSITIONAL 8

static const char usage_main[] =
    "usage: trainer <command> [options]\n"
    "\n"
    "Data-parallel training of multilayer perceptrons (MPI + OpenBLAS + HDF5).\n"
    "\n"
    "commands:\n"
    "  train CONFIG.ini [--set section.key=value ...]   train a model\n"
    "        [--resume DIR] [--init-from FILE.h5]\n"
    "  search CONFIG.ini SPACE [--ranks-per-trial G]    many trials in one job: grid, random or Sobol\n"
    "        [--folds K] [--resume] [--overwrite]        sampling, successive halving, K-fold reports\n"
    "  eval CONFIG.ini --checkpoint FILE.h5             metrics of a checkpoint on the configured data\n"
    "  predict --checkpoint FILE.h5 --input IN --output OUT   predictions (.h5/.csv in and out)\n"
    "  summary CONFIG.ini [--set ...]                   print the model layer by layer\n"
    "  data gen KIND --out FILE.h5|.csv [--KEY VALUE]   write a built-in data set to a file\n"
    "  data convert INPUT OUTPUT.h5 [--KEY VALUE]       any input to the layout training maps in place\n"
    "  bench CONFIG.ini [--steps N] [--warmup N]        time the step phases against sgemm alone\n"
    "  activations --out FILE.csv                       every activation and its derivative on a grid\n"
    "  help config                                      list every configuration key\n"
    "  help search                                      the search space file and its settings\n"
    "\n"
    "options:\n"
    "  -h, --help      show this help (or `trainer COMMAND --help`)\n"
    "  -V, --version   print the version\n"
    "\n"
    "Run on one rank directly, or on N ranks with `mpirun -np N trainer train CONFIG.ini`.\n"
    "Exit status: 0 ok, 2 usage or configuration error, 3 data error, 4 file or checkpoint\n"
    "I/O error, 5 training diverged, 6 out of memory, 7 MPI error, 8 a rank stopped answering\n"
    "(the watchdog; resume with --resume), 70 internal error,\n"
    "75 stopped by a signal (TERM, USR1, INT, HUP, PIPE) after writing a checkpoint (resume with --resume),\n"
    "130 a second SIGINT: ended at once, no checkpoint.\n";

static const char usage_train[] =
    "usage: trainer train CONFIG.ini [--set section.key=value ...] [--resume DIR] [--init-from FILE.h5]\n"
    "                     [--overwrite] [--new-data] [--non-strict]\n"
    "\n"
    "Trains the model described by CONFIG.ini ([model], [data], [train], [output]).\n"
    "  --set section.key=value   override one configuration value (repeatable),\n"
    "                            e.g. --set train.lr=0.01 --set model.init.0=uniform\n"
    "  --resume DIR              continue from the newest valid checkpoint in DIR\n"
    "                            ([output] resume = auto does this from [output] dir)\n"
    "  --init-from FILE.h5       start from a checkpoint's parameters only (fine-tuning,\n"
    "                            or weights exported by scripts/from_torch.py)\n"
    "  --overwrite               replace an earlier run in [output] dir (its checkpoints and\n"
    "                            metric log are deleted); without it such a directory is refused\n"
    "  --new-data                resume although the training data differ from those the\n"
    "                            checkpoint was trained on (rows, columns, fingerprint)\n"
    "  --non-strict              with --init-from: load the tensors whose names match and keep\n"
    "                            the others as initialised (PyTorch's strict=False); without it\n"
    "                            a tensor the model does not have, or lacks, is an error\n"
    "  -h, --help                show this help\n"
    "SIGTERM, SIGUSR1, SIGHUP, SIGPIPE (and a first SIGINT) make every rank stop at the next\n"
    "step, after rank 0 has written a checkpoint (during start-up: at once, nothing written):\n"
    "exit status 75. A second SIGINT aborts at once: exit status 130, no checkpoint.\n"
    "See `trainer help config` for every key and its default.\n";

static const char usage_search[] =
    "usage: trainer search CONFIG.ini SPACE [--ranks-per-trial G] [--folds K] [--resume] [--overwrite]\n"
    "                      [--set section.key=value ...] [--set search.KEY=VALUE ...]\n"
    "\n"
    "Trains every trial of the search space SPACE (CONFIG.ini with the trial's values) in one job:\n"
    "the ranks form groups of G (default 1) that each train one trial at a time with the usual\n"
    "data-parallel machinery; trials are handed out as groups finish. The data are loaded once per\n"
    "node. SPACE has one line per searched key (see `trainer help search`):\n"
    "  model.activations = relu tanh         a grid axis\n"
    "  train.lr = loguniform 1e-4 1e-1        sampled (uniform LO HI, choice V V ... too)\n"
    "  search.asha = true                     successive halving (search.min_epochs, search.eta)\n"
    "  --folds K             K-fold cross-validation of every trial (stratified for classifiers):\n"
    "                        the reports give each metric's mean and standard deviation\n"
    "  --ranks-per-trial G   ranks per group (must divide the ranks)\n"
    "  --resume              continue the search in [output] dir: finished trials stay, the others\n"
    "                        continue from their checkpoints\n"
    "  --overwrite           replace a search in [output] dir\n"
    "The search directory ([output] dir) gets trials/NNNN (each a run directory), search.state,\n"
    "trials.csv, trials.h5, report.md (and folds.csv with --folds). A signal stops every group with\n"
    "a checkpoint (exit status 75); --resume continues.\n";

static const char usage_summary[] =
    "usage: trainer summary CONFIG.ini [--set section.key=value ...]\n"
    "\n"
    "Prints one row per module (as torch.nn.Sequential) with its output shape and parameter\n"
    "count, and the totals.\n";

static const char usage_eval[] =
    "usage: trainer eval CONFIG.ini --checkpoint FILE.h5 [--ema] [--set section.key=value ...]\n"
    "\n"
    "Loads the checkpoint's parameters into the configured model and prints the metrics\n"
    "(confusion matrix and per-class report, or MSE, MAE and R2) on the configured\n"
    "validation and test data (and the training data with train.eval_train = true).\n"
    "--ema evaluates the moving average of the weights the checkpoint holds ([train] ema_decay).\n";

static const char usage_predict[] =
    "usage: trainer predict --checkpoint FILE.h5 --input IN.h5|IN.csv --output OUT.csv|OUT.h5\n"
    "                       [--features /DATASET] [--columns NAME,NAME,...] [--layer K] [--ema]\n"
    "\n"
    "Predicts every input row with the checkpoint's model and feature scaling. Classifiers\n"
    "write class probabilities (p0.. or p1) and the class; regressors their outputs (y0..).\n"
    "HDF5 input: the features dataset of the training run (/X unless --features); CSV input:\n"
    "the training run's feature columns (its `columns`, else every column but its `target`),\n"
    "or x0..x{F-1} of `trainer data gen` files, or --columns. HDF5 output: /probabilities and\n"
    "/class, or /predictions. With text labels (or [data] class_names) a label column (HDF5: the\n"
    "class_names attribute of /class) names each class; an input that still has the label column\n"
    "has its labels checked (an unknown one is an error naming its row).\n"
    "--layer K writes the activations of weight layer K instead (0 = the first hidden layer, as\n"
    "in init.0; after its batch norm and activation, as the next layer reads them): columns\n"
    "a0..a{W-1}, or /activations in HDF5.\n"
    "--ema predicts with the moving average of the weights the checkpoint holds ([train] ema_decay).\n";

static const char usage_data[] =
    "usage: trainer data gen KIND --out FILE.h5|FILE.csv [--KEY VALUE ...]\n"
    "       trainer data convert INPUT OUTPUT.h5 [--KEY VALUE ...]\n"
    "\n"
    "Writes a built-in data set (moons, circles, blobs, linear, inverse, random) to HDF5 (/X\n"
    "float32 (rows, features); /y int64 labels or float32 values) or CSV (x0..,y). KEY is any\n"
    "[data] generator key: n, noise, sd, r1, r2, a, b, x_min, x_max, classes, n_features, box,\n"
    "seed. Example: trainer data gen circles --out circles.h5 --n 5000 --sd 0.2 --seed 1\n"
    "KIND may also be a real data set of Debian's python3-sklearn (iris, wine, breast_cancer,\n"
    "digits, boston, diabetes; --builtin_dir DIR where its files are); HDF5 output keeps the\n"
    "feature and class names (/X columns, /y class_names).\n"
    "\n"
    "convert writes any input the trainer reads to the layout it uses in place (memory-mapped,\n"
    "shared by the ranks of a node, streamed when larger than memory): /X float32 (rows,\n"
    "features) contiguous and uncompressed, /y int64 class labels or float32 targets, with the\n"
    "feature names (/X columns) and class names (/y class_names) as attributes. INPUT is CSV\n"
    "(.csv, .txt: a target column of words becomes class indices in sorted order, the words the\n"
    "class names), HDF5 (.h5, .hdf5: any numeric type, chunked or compressed) or IDX images\n"
    "(gzip or not) with --labels FILE. KEY is any [data] key that describes a file: format,\n"
    "delimiter, header, target, columns, features, targets, labels, on_nonfinite. The output\n"
    "appears complete or not at all. Example:\n"
    "  trainer data convert train-images-idx3-ubyte.gz fashion.h5 --labels train-labels-idx1-ubyte.gz\n";

static const char usage_activations[] =
    "usage: trainer activations --out FILE.csv [--set model.leaky_slope=S] [--set model.elu_alpha=A]\n"
    "\n"
    "Writes every element-wise activation f and its derivative f' as the trainer's own kernels\n"
    "compute them (the forward and backward passes of training) on 1201 points x in [-6, 6]:\n"
    "columns x, <name>, d_<name>, ... (softmax and log_softmax act on rows and are left out).\n"
    "scripts/plot_activations.py draws them.\n";

static const char usage_bench[] =
    "usage: trainer bench CONFIG.ini [--steps N] [--warmup N] [--limit] [--set section.key=value ...]\n"
    "\n"
    "Trains the configured model and optimizer for N steps (default 200, after 20 warm-up\n"
    "steps) on random data and prints the time per step by phase, samples/s, and the time\n"
    "the step's matrix products take alone in the run's engine and precision (the roofline).\n"
    "\n"
    "  --limit   also measure the machine's limit: this core's fp32 and bf16 FMA peak (a loop\n"
    "            on registers only) and every engine's products of one step in each precision\n"
    "            the CPU has, each as a share of its peak, and the run's own share of it.\n";

typedef struct cli {
    const char *command;
    const char *config; /* the second positional argument */
    const char *pos[MAX_POSITIONAL];
    int n_pos;
    const char *sets[MAX_SETS];
    int n_sets;
    const char *out, *resume, *init_from, *checkpoint, *input, *output, *features, *columns, *layer;
    long long steps, warmup;
    bool help, overwrite, new_data, non_strict, limit, ema;
    bool resume_search; /* search --resume (a flag: the search directory is [output] dir) */
    char set_buf[MAX_SETS][TR_PATH_MAX + 64]; /* --KEY VALUE of `data gen` and `data convert`, as data.KEY=VALUE */
} cli;

/* ------------------------------------------------------------------ signals ----------- */

static volatile sig_atomic_t stop_requested = 0;
static volatile sig_atomic_t interrupts = 0;

static void on_stop_signal(int sig)
{
    if (sig == SIGINT && ++interrupts > 1) {
        static const char msg[] = "trainer: second interrupt, aborting\n";
        if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0) {
            /* nothing more can be done in a signal handler */
        }
        _exit(130);
    }
    stop_requested = 1;
}

/* From the start of `trainer train` (data loading included) every stop signal only sets
 * the flag: TERM, USR1 (SLURM's warning before the time limit), INT, HUP (the terminal
 * went away) and PIPE (`trainer train ... | head`: stdout's reader is gone; writes then
 * fail with EPIPE instead of killing the process). The run stops at the next agreed point:
 * after start-up (nothing written) or after the current step (a checkpoint written). */
static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    const int stop_signals[] = {SIGTERM, SIGUSR1, SIGINT, SIGHUP, SIGPIPE};
    for (size_t i = 0; i < sizeof stop_signals / sizeof stop_signals[0]; i++)
        sigaction(stop_signals[i], &sa, NULL);
}

/* ------------------------------------------------------------------ arguments --------- */

static int add_set(cli *a, const char *s, tr_err *err)
{
    if (a->n_sets == MAX_SETS)
        return tr_fail(err, TR_EUSAGE, "too many --set options (at most %d)", MAX_SETS);
    a->sets[a->n_sets++] = s;
    return 0;
}

static int parse_args(cli *a, int argc, char **argv, tr_err *err)
{
    memset(a, 0, sizeof *a);
    const bool data_cmd = argc > 1 && !strcmp(argv[1], "data");
    const bool search_cmd = argc > 1 && !strcmp(argv[1], "search");
    static const struct {
        const char *flag;
        size_t field;
    } valued[] = {{"--out", offsetof(cli, out)},           {"--resume", offsetof(cli, resume)},
                  {"--init-from", offsetof(cli, init_from)}, {"--checkpoint", offsetof(cli, checkpoint)},
                  {"--input", offsetof(cli, input)},       {"--output", offsetof(cli, output)},
                  {"--features", offsetof(cli, features)}, {"--columns", offsetof(cli, columns)},
                  {"--layer", offsetof(cli, layer)}};
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        const bool has_value = i + 1 < argc;
        bool done = false;
        if (search_cmd && !strcmp(s, "--resume")) {
            a->resume_search = true;
            continue;
        }
        if (search_cmd && (!strcmp(s, "--folds") || !strcmp(s, "--ranks-per-trial"))) {
            /* settings of the space: --folds K -> search.folds=K */
            if (!has_value)
                return tr_fail(err, TR_EUSAGE, "%s needs a value", s);
            if (a->n_sets == MAX_SETS)
                return tr_fail(err, TR_EUSAGE, "too many options");
            snprintf(a->set_buf[a->n_sets], sizeof a->set_buf[0], "search.%s=%.40s",
                     s[2] == 'f' ? "folds" : "ranks_per_trial", argv[++i]);
            a->sets[a->n_sets] = a->set_buf[a->n_sets];
            a->n_sets++;
            continue;
        }
        for (size_t k = 0; k < sizeof valued / sizeof valued[0] && !done; k++)
            if (!strcmp(s, valued[k].flag) && (!data_cmd || valued[k].field == offsetof(cli, out))) {
                if (!has_value)
                    return tr_fail(err, TR_EUSAGE, "%s needs a value", s);
                *(const char **)((char *)a + valued[k].field) = argv[++i];
                done = true;
            }
        if (done)
            continue;
        if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
            a->help = true;
        } else if (!strcmp(s, "--overwrite")) {
            a->overwrite = true;
        } else if (!strcmp(s, "--new-data")) {
            a->new_data = true;
        } else if (!strcmp(s, "--non-strict")) {
            a->non_strict = true;
        } else if (!strcmp(s, "--ema")) {
            a->ema = true;
        } else if (!strcmp(s, "--limit")) {
            a->limit = true;
        } else if (!strcmp(s, "--set")) {
            if (!has_value)
                return tr_fail(err, TR_EUSAGE, "--set needs a value: --set section.key=value");
            int rc = add_set(a, argv[++i], err);
            if (rc)
                return rc;
        } else if (!strncmp(s, "--set=", 6)) {
            int rc = add_set(a, s + 6, err);
            if (rc)
                return rc;
        } else if (!strcmp(s, "--steps") || !strcmp(s, "--warmup")) {
            char *end;
            long long v = has_value ? strtoll(argv[i + 1], &end, 10) : -1;
            if (!has_value || *end || v < (s[2] == 's' ? 1 : 0))
                return tr_fail(err, TR_EUSAGE, "%s needs a %s integer", s, s[2] == 's' ? "positive" : "non-negative");
            i++;
            if (s[2] == 's')
                a->steps = v;
            else
                a->warmup = v;
        } else if (data_cmd && !strncmp(s, "--", 2) && s[2]) {
            /* `data gen` takes generator keys as options: --noise 0.2 -> data.noise=0.2 */
            if (!has_value)
                return tr_fail(err, TR_EUSAGE, "%s needs a value", s);
            if (a->n_sets == MAX_SETS)
                return tr_fail(err, TR_EUSAGE, "too many options");
            const int n = snprintf(a->set_buf[a->n_sets], sizeof a->set_buf[0], "data.%s=%s", s + 2, argv[++i]);
            if (n < 0 || (size_t)n >= sizeof a->set_buf[0])
                return tr_fail(err, TR_EUSAGE, "%s %.40s...: too long (at most %zu characters in all)", s, argv[i],
                               sizeof a->set_buf[0] - 8);
            a->sets[a->n_sets] = a->set_buf[a->n_sets];
            a->n_sets++;
        } else if (s[0] == '-' && s[1]) {
            return tr_fail(err, TR_EUSAGE, "unknown option '%s' (see trainer --help)", s);
        } else if (!a->command) {
            a->command = s;
        } else if (a->n_pos < MAX_POSITIONAL) {
            a->pos[a->n_pos++] = s;
        } else {
            return tr_fail(err, TR_EUSAGE, "unexpected argument '%s' (see trainer --help)", s);
        }
    }
    a->config = a->n_pos > 0 ? a->pos[0] : NULL;
    /* a path that does not fit the trainer's buffers is refused here, never cut later */
    const char *paths[] = {a->config, a->out, a->resume, a->init_from, a->checkpoint, a->input, a->output};
    const char *names[] = {"the config file", "--out", "--resume", "--init-from", "--checkpoint", "--input", "--output"};
    for (size_t k = 0; k < sizeof paths / sizeof paths[0]; k++)
        if (paths[k] && strlen(paths[k]) >= TR_PATH_MAX)
            return tr_fail(err, TR_EUSAGE, "%s: path too long (%zu characters, at most %d): %.60s...", names[k],
                           strlen(paths[k]), TR_PATH_MAX - 1, paths[k]);
    if (!a->steps)
        a->steps = 200;
    if (a->warmup == 0 && !a->help)
        a->warmup = 20;
    if (a->command && strcmp(a->command, "data") && strcmp(a->command, "help") && a->n_pos > 1 &&
        !(!strcmp(a->command, "search") && a->n_pos == 2))
        return tr_fail(err, TR_EUSAGE, "unexpected argument '%s' (see trainer --help)", a->pos[1]);
    if (a->ema && a->command && strcmp(a->command, "eval") && strcmp(a->command, "predict"))
        return tr_fail(err, TR_EUSAGE, "--ema applies to trainer eval and trainer predict (a run keeps its moving "
                                       "average with [train] ema_decay)");
    return 0;
}

/* ------------------------------------------------------------------ failures ---------- */

/* Prints a failure once: by rank 0 when it failed itself, else by each rank that failed
 * (the others only share the exit status). Collective. */
static void report_failure(tr_dist *d, int own_rc, const tr_err *err)
{
    int root_rc = own_rc;
    tr_dist_bcast(d, &root_rc, sizeof root_rc, 0, NULL);
    if (own_rc && (d->rank == 0 || root_rc == 0)) {
        if (d->size > 1 && d->rank != 0)
            fprintf(stderr, "trainer: error (rank %d): %s\n", d->rank, err->msg);
        else
            fprintf(stderr, "trainer: %s: %s\n", own_rc == TR_ESTOPPED ? "stopped" : "error", err->msg);
    }
}

/* Agrees on a phase's result across ranks; on failure reports it once and returns the
 * common code. */
static int agree(tr_dist *d, int rc, tr_err *err, bool *reported)
{
    const int all = tr_dist_agree(d, rc);
    if (all) {
        report_failure(d, rc, err);
        *reported = true;
    }
    return all;
}

/* ------------------------------------------------------------------ commands ---------- */

static void print_reports(FILE *out, const tr_trainer *t)
{
    const char *names = t->cfg->data.class_names[0] ? t->cfg->data.class_names : t->data.class_names;
    if (t->has_train_metrics)
        tr_print_report(out, &t->train_metrics, "train", names);
    if (t->has_val_metrics)
        tr_print_report(out, &t->val_metrics, "validation", names);
    if (t->has_test_metrics)
        tr_print_report(out, &t->test_metrics, "test", names);
}

/* Loads the config (same file everywhere: a config error is the same on every rank) and
 * builds the trainer, agreeing on the result. */
static int setup(const cli *a, tr_dist *d, tr_config *c, tr_trainer *t, tr_err *err, bool *reported)
{
    memset(t, 0, sizeof *t);
    int rc = tr_config_load(c, a->config, a->sets, a->n_sets, err);
    if (rc)
        return rc;
    rc = tr_trainer_init(t, c, d, d->rank == 0 ? stdout : NULL, err);
    const char *warning = rc ? NULL : tr_loss_warning(&t->loss);
    if (warning && d->rank == 0)
        fprintf(stderr, "trainer: warning: %s\n", warning);
    if (!rc)
        tr_trainer_settle_config(t, c);
    return agree(d, rc, err, reported);
}

/* The classes of a checkpoint's model become [data] class_names when the configuration names
 * none: text labels then get the model's class numbers whichever words the data hold (an
 * evaluation file without one class would otherwise number the others from 0). *b is a
 * copy of *a with that --set added. */
static void with_checkpoint_classes(const cli *a, const char *ckpt, cli *b, char *set, size_t len)
{
    *b = *a;
    if (!ckpt || b->n_sets >= MAX_SETS)
        return;
    tr_config now, was;
    tr_err ignore;
    if (tr_config_load(&now, a->config, a->sets, a->n_sets, &ignore) != 0) {
        tr_config_free(&now);
        return; /* the error is setup's to report */
    }
    const bool named = now.data.class_names[0] != '\0';
    tr_config_free(&now);
    if (!named && tr_ckpt_read_config(ckpt, &was, &ignore) == 0) {
        if (was.data.class_names[0] && strlen(was.data.class_names) < len - 32) {
            snprintf(set, len, "data.class_names=%s", was.data.class_names);
            b->sets[b->n_sets++] = set;
        }
        tr_config_free(&was);
    }
}

static double command_started;

static int cmd_train(const cli *a_in, tr_dist *d, tr_err *err, bool *reported)
{
    static cli with_classes; /* large: not on the stack */
    char classes_set[1000];
    with_checkpoint_classes(a_in, a_in->init_from, &with_classes, classes_set, sizeof classes_set);
    const cli *a = &with_classes;
    if (a->overwrite && a->resume)
        return tr_fail(err, TR_EUSAGE, "--overwrite and --resume contradict each other: choose one");
    if (a->resume && a->init_from)
        return tr_fail(err, TR_EUSAGE, "--resume %s and --init-from %s contradict each other: --resume continues a run "
                                       "(its parameters, optimizer state and position), --init-from starts a new run "
                                       "from another file's parameters; give one of them", a->resume, a->init_from);
    if (a->non_strict && !a->init_from)
        return tr_fail(err, TR_EUSAGE, "--non-strict applies to --init-from, which is not given");
    tr_config c;
    tr_trainer t;
    int rc = setup(a, d, &c, &t, err, reported);
    if (!rc) /* a signal during start-up: stop before anything is written */
        rc = agree(d, stop_requested ? tr_fail(err, TR_ESTOPPED, "stopped by a signal during start-up, before "
                                                                 "training began: nothing was written")
                                     : 0,
                   err, reported);
    FILE *out = t.out;
    if (!rc && out) {
        char timed[160] = ""; /* auto's timings of one step's products, summed over the ranks */
        for (int e = TR_GEMM_AUTO + 1, u = 0; e < TR_GEMM_ENGINE_COUNT && u < (int)sizeof timed; e++)
            if (isfinite(t.gemm_seconds[e]))
                u += snprintf(timed + u, sizeof timed - (size_t)u, "%s%s %.3f ms", u ? ", " : "",
                              tr_name_of(tr_gemm_engine_names, e), 1e3 * t.gemm_seconds[e]);
        fprintf(out, "trainer %s: %s, %d rank%s x %d thread%s, gemm %s %s (%s%s%s), %lld training rows, %lld "
                     "validation rows, %lld test rows, %zu parameters%s\n",
                TRAINER_VERSION, a->config, d->size, d->size == 1 ? "" : "s", t.threads, t.threads == 1 ? "" : "s",
                tr_name_of(tr_gemm_engine_names, t.gemm), tr_name_of(tr_precision_names, c.train.precision),
                t.gemm_how, timed[0] ? ", " : "", timed, (long long)t.data.train.rows, (long long)t.data.val.rows,
                (long long)t.data.test.rows, t.model.n_trainable, c.train.deterministic ? ", deterministic" : "");
        if (t.data.dropped)
            fprintf(out, "note: dropped %lld rows with non-finite values ([data] on_nonfinite = drop)\n",
                    (long long)t.data.dropped);
        fflush(out);
    }
    if (!rc) {
        tr_run_options o = {.resume_dir = a->resume, .init_from = a->init_from, .stop = &stop_requested,
                            .started = command_started,
                            .overwrite = a->overwrite,
                            .new_data = a->new_data,
                            .non_strict = a->non_strict};
        rc = tr_run(&t, &o, err); /* every rank returns the same code */
    }
    if (!rc && out) {
        print_reports(out, &t);
        fprintf(out, "\ntrained %lld epochs (%lld steps) in %.2f s; run directory %s", (long long)t.epoch,
                (long long)t.step, t.seconds, c.output.dir);
        if (isfinite(t.time_to_target))
            fprintf(out, "; stop_at %s met after epoch %lld: %.2f s from the start (loading included)",
                    c.train.stop_at, (long long)t.target_epoch, t.time_to_target);
        else if (c.train.stop_at[0])
            fprintf(out, "; stop_at %s not met", c.train.stop_at);
        fputc('\n', out);
    }
    tr_trainer_free(&t);
    tr_config_free(&c);
    return rc;
}

static int cmd_search(const cli *a, tr_dist *d, tr_err *err)
{
    if (a->n_pos != 2)
        return tr_fail(err, TR_EUSAGE, "trainer search needs CONFIG.ini and a SPACE file (see trainer search --help)");
    if (a->resume_search && a->overwrite)
        return tr_fail(err, TR_EUSAGE, "--overwrite and --resume contradict each other: choose one");
    if (a->resume || a->init_from)
        return tr_fail(err, TR_EUSAGE, "trainer search: --resume takes no directory (it continues the search in "
                                       "[output] dir); --init-from does not apply");
    const char *sets[MAX_SETS], *search_sets[MAX_SETS];
    int n_sets = 0, n_search = 0;
    for (int i = 0; i < a->n_sets; i++) {
        if (!strncmp(a->sets[i], "search.", 7))
            search_sets[n_search++] = a->sets[i];
        else
            sets[n_sets++] = a->sets[i];
    }
    const tr_search_options o = {.config = a->pos[0], .space = a->pos[1], .sets = sets, .n_sets = n_sets,
                                 .search_sets = search_sets, .n_search_sets = n_search,
                                 .resume = a->resume_search, .overwrite = a->overwrite, .stop = &stop_requested,
                                 .out = d->rank == 0 ? stdout : NULL};
    return tr_search(&o, d, err);
}

/* The data's feature columns (names) against those a checkpoint's model was trained on. */
static int same_columns(const char *ckpt, const char *data_names, const char *source, tr_err *err)
{
    char *trained = NULL;
    int rc = tr_ckpt_read_columns(ckpt, &trained, err);
    if (!rc && trained && strcmp(trained, data_names))
        rc = tr_fail(err, TR_EDATA, "%s: the feature columns are %.300s; %s was trained on %.300s (another order or "
                                    "other columns would be read as the model's inputs): choose them with [data] columns",
                     source, data_names, ckpt, trained);
    free(trained);
    return rc;
}

/* Whether two scalers scale every feature alike (both none, or the same kind and arrays). */
static bool same_scaler(const tr_scaler *a, const tr_scaler *b)
{
    if (a->kind == TR_SCALE_NONE || b->kind == TR_SCALE_NONE)
        return a->kind == b->kind;
    return a->kind == b->kind && a->cols == b->cols &&
           !memcmp(a->center, b->center, (size_t)a->cols * sizeof(float)) &&
           !memcmp(a->scale, b->scale, (size_t)a->cols * sizeof(float));
}

static int cmd_eval(const cli *a_in, tr_dist *d, tr_err *err, bool *reported)
{
    if (!a_in->checkpoint)
        return tr_fail(err, TR_EUSAGE, "trainer eval needs --checkpoint FILE.h5 (see trainer eval --help)");
    static cli with_classes; /* large: not on the stack */
    char classes_set[1000];
    with_checkpoint_classes(a_in, a_in->checkpoint, &with_classes, classes_set, sizeof classes_set);
    const cli *a = &with_classes;
    tr_config c;
    tr_trainer t;
    int rc = setup(a, d, &c, &t, err, reported);
    /* the checkpoint's scaler, to compare with the one fitted on this configuration's rows */
    tr_scaler trained = {.cols = c.model.widths[0]};
    if (!rc) {
        trained.center = calloc((size_t)trained.cols + 1, sizeof(float));
        trained.scale = calloc((size_t)trained.cols + 1, sizeof(float));
        const bool writer = !tr_reduce_shares_params(t.reduce) || d->local_rank == 0;
        tr_ckpt_parts parts = {.skip_params = !writer, .scaler = &trained, .ema_weights = a->ema};
        rc = agree(d, trained.center && trained.scale ? tr_ckpt_load(a->checkpoint, &c, &t.model, &parts, err)
                                                      : tr_fail(err, TR_ENOMEM, "out of memory"),
                   err, reported);
    }
    if (!rc) /* the rows are scaled as in training (a scaler fitted on other rows is another model input) */
        rc = agree(d, same_scaler(&trained, &t.data.scaler) ? 0 : tr_fail(err, TR_EDATA,
                   "%s: the feature scaling fitted on these training rows differs from the one %s was trained with "
                   "(the data differ from the training run's): to evaluate on other data, give it as [data] "
                   "test_path in the training configuration, or use trainer predict", t.data.source, a->checkpoint),
                   err, reported);
    tr_scaler_free(&trained);
    if (!rc) /* the columns the data names are those the model was trained on, in that order */
        rc = agree(d, t.data.feature_names ? same_columns(a->checkpoint, t.data.feature_names, t.data.source, err) : 0,
                   err, reported);
    tr_ema_free(&t.ema); /* one set of weights is evaluated: the model's, or with --ema the average's */
    if (!rc)
        rc = tr_trainer_evaluate_all(&t, err);
    if (!rc && t.out) {
        fprintf(t.out, "checkpoint %s%s on %s:\n", a->checkpoint, a->ema ? " (its moving average, --ema)" : "",
                a->config);
        print_reports(t.out, &t);
        if (!t.has_train_metrics && !t.has_val_metrics && !t.has_test_metrics)
            fprintf(t.out, "no evaluation data: set [data] test_fraction, test_path or val_fraction, or "
                           "train.eval_train = true\n");
    }
    tr_trainer_free(&t);
    tr_config_free(&c);
    return rc;
}

static int cmd_predict(const cli *a, tr_dist *d, tr_err *err)
{
    if (!a->checkpoint || !a->input || !a->output)
        return tr_fail(err, TR_EUSAGE, "trainer predict needs --checkpoint, --input and --output (see --help)");
    tr_predict_options o = {.checkpoint = a->checkpoint, .input = a->input, .output = a->output,
                            .features = a->features, .columns = a->columns, .layer = -1, .ema = a->ema};
    if (a->layer) {
        char *end;
        const long k = strtol(a->layer, &end, 10);
        if (end == a->layer || *end || k < 0 || k >= TR_MAX_LAYERS)
            return tr_fail(err, TR_EUSAGE, "--layer %s: expected a layer number, 0 for the first weight layer",
                           a->layer);
        o.layer = (int)k;
    }
    int64_t rows = 0;
    int rc = tr_predict(d, &o, &rows, err);
    if (!rc && d->rank == 0)
        printf("wrote %s: %lld %s\n", a->output, (long long)rows, a->layer ? "rows of activations" : "predictions");
    return rc;
}

static int cmd_summary(const cli *a, tr_dist *d, tr_err *err)
{
    tr_config c;
    int rc = tr_config_load(&c, a->config, a->sets, a->n_sets, err);
    if (rc) {
        tr_config_free(&c);
        return rc;
    }
    tr_model m;
    rc = tr_model_init(&m, &c.model, 1, err);
    if (!rc && d->rank == 0)
        tr_model_summary(&m, stdout);
    tr_model_free(&m);
    tr_config_free(&c);
    return rc;
}

/* `data gen` and `data convert` take [data] keys as options (--noise 0.2 is data.noise=0.2,
 * parsed as a --set): a message about such a set names the option the user gave. */
static int name_the_option(int rc, const char *command, tr_err *err)
{
    if (!rc || !err)
        return rc;
    char key[64], rest[sizeof err->msg];
    int end = 0;
    if (sscanf(err->msg, "--set: [data] %63[^ =] = %n", key, &end) == 1 && end > 0) {
        /* "--set: [data] n = -5: must be ..." -> "--n -5: must be ..." */
        snprintf(rest, sizeof rest, "%s", err->msg + end);
        snprintf(err->msg, sizeof err->msg, "--%s %.900s", key, rest);
    } else if (sscanf(err->msg, "--set: unknown key '%63[^']' in section [data]", key) == 1) {
        snprintf(err->msg, sizeof err->msg, "%s: unknown option --%s (its options are [data] keys: see `trainer help "
                                            "config`)", command, key);
    }
    return rc;
}

static int cmd_data_convert(const cli *a, tr_dist *d, tr_err *err)
{
    if (a->n_pos != 3)
        return tr_fail(err, TR_EUSAGE, "usage: trainer data convert INPUT OUTPUT.h5 [--KEY VALUE ...]");
    tr_config c;
    int rc = name_the_option(tr_config_load_string(&c, "trainer data convert",
                                                   "[model]\nlayers = 1, 1\n[train]\nloss = mse\n", a->sets, a->n_sets,
                                                   err),
                             "trainer data convert", err);
    if (!rc && d->rank == 0)
        rc = tr_convert(&c.data, a->pos[1], a->pos[2], isatty(STDERR_FILENO) ? stderr : NULL, stdout, err);
    tr_config_free(&c);
    return rc;
}

static int cmd_data_gen(const cli *a, tr_dist *d, tr_err *err)
{
    if (a->n_pos >= 1 && !strcmp(a->pos[0], "convert"))
        return cmd_data_convert(a, d, err);
    if (a->n_pos < 2 || strcmp(a->pos[0], "gen"))
        return tr_fail(err, TR_EUSAGE, "usage: trainer data gen KIND --out FILE.h5 [--KEY VALUE ...], or trainer "
                                       "data convert INPUT OUTPUT.h5 [--KEY VALUE ...]");
    if (!a->out)
        return tr_fail(err, TR_EUSAGE, "trainer data gen needs --out FILE.h5 (or FILE.csv)");
    const char *kind = a->pos[1];
    const bool real = tr_name_index(tr_sklearn_set_names, kind) >= 0;
    char names[256], more[256];
    if (!real && tr_name_index(tr_generator_names, kind) < 0)
        return tr_fail(err, TR_EUSAGE, "unknown data set '%s' (choose one of: %s; or of python3-sklearn's: %s)", kind,
                       tr_names_join(tr_generator_names, names, sizeof names),
                       tr_names_join(tr_sklearn_set_names, more, sizeof more));
    /* the generator keys are [data] keys: parse them with the config machinery */
    char text[256];
    snprintf(text, sizeof text, "[model]\nlayers = 1, 1\n[train]\nloss = mse\n[data]\n%s = %s\n",
             real ? "builtin" : "generator", kind);
    tr_config c;
    int rc = name_the_option(tr_config_load_string(&c, "trainer data gen", text, a->sets, a->n_sets, err),
                             "trainer data gen", err);
    tr_dataset ds = {0};
    if (!rc)
        rc = real ? tr_sklearn_read(&ds, kind, c.data.builtin_dir, err) : tr_generate(&ds, &c.data, err);
    const bool labels = real ? tr_sklearn_is_classification(kind) : tr_generator_is_classification(kind);
    if (!rc && d->rank == 0)
        rc = tr_dataset_save(&ds, a->out, labels, err);
    if (!rc && d->rank == 0)
        printf("wrote %s: %s, %lld rows, %lld feature%s, %s\n", a->out, kind, (long long)ds.rows, (long long)ds.cols,
               ds.cols == 1 ? "" : "s", labels ? "class labels" : "real targets");
    tr_dataset_free(&ds);
    tr_config_free(&c);
    return rc;
}

/* The header fields `trainer activations` writes: x, <activation>, d_<activation>. */
static bool activation_field(const char *f)
{
    if (!strcmp(f, "x"))
        return true;
    return tr_activation_from_name(strncmp(f, "d_", 2) ? f : f + 2) >= 0;
}

static int cmd_activations(const cli *a, tr_dist *d, tr_err *err)
{
    if (!a->out)
        return tr_fail(err, TR_EUSAGE, "trainer activations needs --out FILE.csv");
    static const tr_output_kind table = {"trainer activations", NULL, activation_field};
    tr_config c;
    int rc = tr_config_load_string(&c, "trainer activations", "[model]\nlayers = 1, 1\n[train]\nloss = mse\n",
                                   a->sets, a->n_sets, err);
    if (!rc && d->rank == 0)
        rc = tr_output_check(a->out, "--out", NULL, 0, &table, TR_EUSAGE, err);
    enum { POINTS = 1201 };
    static float x[POINTS], f[TR_ACT_COUNT][POINTS], df[TR_ACT_COUNT][POINTS], ones[POINTS];
    tr_atomic w;
    if (!rc && d->rank == 0)
        rc = tr_atomic_begin(&w, a->out, true, TR_EIO, err);
    if (!rc && d->rank == 0) {
        for (int i = 0; i < POINTS; i++) {
            x[i] = -6.0f + 12.0f * (float)i / (float)(POINTS - 1);
            ones[i] = 1.0f;
        }
        fputs("x", w.f);
        for (int k = 0; k < TR_ACT_COUNT; k++) {
            if (k == TR_ACT_SOFTMAX || k == TR_ACT_LOG_SOFTMAX)
                continue;
            /* one row of POINTS units: every kernel here is element-wise */
            tr_act_forward(f[k], x, 1, POINTS, (tr_activation)k, &c.model.act_params);
            tr_act_backward(df[k], ones, x, f[k], 1, POINTS, (tr_activation)k, &c.model.act_params);
            fprintf(w.f, ",%s,d_%s", tr_activation_name((tr_activation)k), tr_activation_name((tr_activation)k));
        }
        fputc('\n', w.f);
        for (int i = 0; i < POINTS; i++) {
            fprintf(w.f, "%.9g", (double)x[i]);
            for (int k = 0; k < TR_ACT_COUNT; k++)
                if (k != TR_ACT_SOFTMAX && k != TR_ACT_LOG_SOFTMAX)
                    fprintf(w.f, ",%.9g,%.9g", (double)f[k][i], (double)df[k][i]);
            fputc('\n', w.f);
        }
        rc = tr_atomic_commit(&w, TR_EIO, err);
        if (!rc)
            printf("wrote %s: %d activations and their derivatives at %d points\n", a->out, TR_ACT_COUNT - 2, POINTS);
    }
    tr_config_free(&c);
    return rc;
}

/* The limit of `trainer bench --limit`: the peaks, each engine's products and this run's
 * share, in words and as one LIMIT line of key=value pairs. */
static void print_limit(const tr_config *c, const tr_dist *d, const tr_bench_result *r, const tr_bench_limit *l)
{
    const double peak[TR_PRECISION_COUNT] = {l->peak.fp32_gflops, l->peak.bf16_gflops};
    printf("  limit of one core, measured: fp32 FMA %.1f GFLOP/s (%s), bf16 dot products %.1f GFLOP/s%s\n",
           peak[0], l->peak.fp32_isa, peak[1], peak[1] > 0.0 ? "" : " (no native bf16)");
    printf("  one step's products (%.3f MFLOP a sample, %lld rows per rank), each engine alone:\n",
           r->mflop_per_sample, (long long)r->local_rows);
    for (int p = 0; p < TR_PRECISION_COUNT; p++)
        for (int e = TR_GEMM_AUTO + 1; e < TR_GEMM_ENGINE_COUNT; e++) {
            if (!(l->gflops[p][e] > 0.0))
                continue;
            char what[128];
            printf("    %-8s %s: %8.3f ms = %6.1f GFLOP/s = %5.1f%% of the %s peak  [%s]\n",
                   tr_name_of(tr_gemm_engine_names, e), tr_name_of(tr_precision_names, p), 1e3 * l->seconds[p][e],
                   l->gflops[p][e], 100.0 * l->gflops[p][e] / peak[p], tr_name_of(tr_precision_names, p),
                   tr_gemm_describe((tr_gemm_engine)e, what, sizeof what));
        }
    const int p = c->train.precision;
    const double cores = (double)d->size * (double)r->threads;
    const double train = r->samples_per_s * r->mflop_per_sample / 1e3 / cores;
    printf("  this run (%s %s): %.1f GFLOP/s per core = %.1f%% of the %s peak\n",
           tr_name_of(tr_gemm_engine_names, r->gemm), tr_name_of(tr_precision_names, p), train,
           100.0 * train / peak[p], tr_name_of(tr_precision_names, p));
    printf("LIMIT fp32_peak=%.2f bf16_peak=%.2f mflop_per_sample=%.4f", peak[0], peak[1], r->mflop_per_sample);
    for (int q = 0; q < TR_PRECISION_COUNT; q++)
        for (int e = TR_GEMM_AUTO + 1; e < TR_GEMM_ENGINE_COUNT; e++)
            printf(" %s_%s_gflops=%.2f", tr_name_of(tr_gemm_engine_names, e), tr_name_of(tr_precision_names, q),
                   l->gflops[q][e]);
    printf(" train_gflops_per_core=%.2f train_share=%.4f\n", train, train / peak[p]);
}

static int cmd_bench(const cli *a, tr_dist *d, tr_err *err)
{
    tr_config c;
    int rc = tr_config_load(&c, a->config, a->sets, a->n_sets, err);
    if (rc) {
        tr_config_free(&c);
        return rc;
    }
    /* reload with random data of the right shape, the user's overrides kept */
    char extra[16][128];
    const char *sets[MAX_SETS + 16];
    int n = 0;
    for (int i = 0; i < a->n_sets; i++)
        sets[n++] = a->sets[i];
    const int k = tr_bench_data_sets(&c, a->steps, a->warmup, extra, 16);
    for (int i = 0; i < k; i++)
        sets[n++] = extra[i];
    tr_config_free(&c);
    rc = tr_config_load(&c, a->config, sets, n, err);
    tr_bench_result r;
    tr_bench_limit lim;
    if (!rc)
        rc = tr_bench_run(&c, d, a->steps, a->warmup, &r, err);
    if (!rc && a->limit)
        rc = tr_bench_measure_limit(&c, d, r.local_rows, &lim, err);
    if (!rc && d->rank == 0) {
        char layers[256] = "";
        size_t used = 0;
        for (int l = 0; l <= c.model.n_layers && used < sizeof layers - 16; l++)
            used += (size_t)snprintf(layers + used, sizeof layers - used, "%s%lld", l ? "-" : "",
                                     (long long)c.model.widths[l]);
        const char *engine = tr_name_of(tr_gemm_engine_names, r.gemm);
        const tr_precision prec = c.train.precision;
        printf("bench %s: layers %s, batch %lld (%lld rows per rank), %s, %d rank%s x %d thread%s, gemm %s %s, "
               "%zu params\n",
               a->config, layers, (long long)c.train.batch_size, (long long)r.local_rows,
               tr_optim_name(c.train.optim.kind), d->size, d->size == 1 ? "" : "s", r.threads,
               r.threads == 1 ? "" : "s", engine, tr_name_of(tr_precision_names, prec), r.params);
        printf("  step %.3f ms:", r.step_ms);
        for (int p = 0; p < TR_PHASE_EVAL; p++)
            printf(" %s %.3f", tr_phase_names[p], r.phase_ms[p]);
        printf("\n  products alone %.3f ms = %.1f%% of the step; %.0f samples/s\n", r.gemm_ms,
               100.0 * r.gemm_fraction, r.samples_per_s);
        if (isfinite(r.core_rtt_ns))
            printf("  a cache line between local ranks 0 and 1: %.0f ns there and back\n", r.core_rtt_ns);
        if (a->limit)
            print_limit(&c, d, &r, &lim);
        printf("BENCH layers=%s batch=%lld np=%d threads=%d gemm=%s precision=%s step_ms=%.4f gemm_ms=%.4f "
               "gemm_fraction=%.4f",
               layers, (long long)c.train.batch_size, d->size, r.threads, engine, tr_name_of(tr_precision_names, prec),
               r.step_ms, r.gemm_ms, r.gemm_fraction);
        for (int p = 0; p < TR_PHASE_EVAL; p++)
            printf(" %s_ms=%.4f", tr_phase_names[p], r.phase_ms[p]);
        printf(" samples_per_s=%.1f mflop_per_sample=%.6f", r.samples_per_s, r.mflop_per_sample);
        if (isfinite(r.core_rtt_ns))
            printf(" core_rtt_ns=%.0f", r.core_rtt_ns);
        printf("\n");
    }
    tr_config_free(&c);
    return rc;
}

static int run(const cli *a, tr_dist *d, tr_err *err, bool *reported)
{
    static const struct {
        const char *name;
        const char *usage;
        bool needs_config;
    } commands[] = {{"train", usage_train, true},     {"eval", usage_eval, true},   {"summary", usage_summary, true},
                    {"bench", usage_bench, true},     {"predict", usage_predict, false},
                    {"data", usage_data, false},      {"activations", usage_activations, false},
                    {"search", usage_search, true}};
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(a->command, commands[i].name))
            continue;
        if (a->help) {
            if (d->rank == 0)
                fputs(commands[i].usage, stdout);
            return 0;
        }
        if (commands[i].needs_config && !a->config)
            return tr_fail(err, TR_EUSAGE, "trainer %s needs a config file (see trainer %s --help)", a->command,
                           a->command);
        switch (i) {
        case 0: return cmd_train(a, d, err, reported);
        case 1: return cmd_eval(a, d, err, reported);
        case 2: return cmd_summary(a, d, err);
        case 3: return cmd_bench(a, d, err);
        case 4: return cmd_predict(a, d, err);
        case 5: return cmd_data_gen(a, d, err);
        case 6: return cmd_activations(a, d, err);
        default: return cmd_search(a, d, err);
        }
    }
    if (!strcmp(a->command, "help")) {
        if (d->rank == 0) {
            if (a->config && !strcmp(a->config, "config"))
                tr_config_print_reference(stdout);
            else if (a->config && !strcmp(a->config, "search"))
                tr_space_print_reference(stdout);
            else
                fputs(usage_main, stdout);
        }
        return 0;
    }
    return tr_fail(err, TR_EUSAGE, "unknown command '%s' (see trainer --help)", a->command);
}

int main(int argc, char **argv)
{
    command_started = tr_seconds(); /* stop_at's time to target counts from here */
    tr_h5_no_atexit(); /* a full disk under metrics.h5 must end in exit status 4, not a crash */
    /* whole lines in batch logs (SLURM's --output file), in order with stderr's messages */
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* answers that need no MPI */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--version") || !strcmp(argv[i], "-V")) {
            printf("trainer %s\n", TRAINER_VERSION);
            return 0;
        }
    }
    tr_err err = {0};
    cli a;
    int rc = parse_args(&a, argc, argv, &err);
    if (!rc && !a.command) {
        fputs(usage_main, a.help ? stdout : stderr);
        return a.help ? 0 : tr_exit_code(TR_EUSAGE);
    }
    if (!rc)
        rc = tr_faults_load(&err); /* a test hook set to a malformed value */
    if (rc) {
        fprintf(stderr, "trainer: %s\n", err.msg);
        return tr_exit_code(rc);
    }

    if ((!strcmp(a.command, "train") || !strcmp(a.command, "search")) && !a.help)
        install_signals(); /* before MPI starts: a stop during start-up is a clean stop too */
    tr_dist d;
    rc = tr_dist_init(&d, &argc, &argv, &err);
    if (rc) {
        fprintf(stderr, "trainer: %s\n", err.msg);
        return tr_exit_code(rc);
    }
    bool reported = false; /* set by collective agreements: the same on every rank */
    const int own = run(&a, &d, &err, &reported);
    rc = tr_dist_agree(&d, own);
    if (rc && !reported)
        report_failure(&d, own, &err);
    /* standard output is an output too: under a redirect to a full disk or a failing device
     * its lines are lost, which is an error (a reader that went away, `| head`, is not) */
    errno = 0;
    if (!rc && (fflush(stdout) != 0 || ferror(stdout)) && errno != EPIPE) {
        fprintf(stderr, "trainer: error: standard output: %s\n",
                errno ? strerror(errno) : "a write failed (a full disk or a failing device under the redirect?)");
        rc = TR_EIO;
    }
    tr_dist_finalize(&d);
    return tr_exit_code(rc);
}
