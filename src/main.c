/*
 * main.c: the `trainer` command line: subcommands, MPI start and stop, exit codes.
 *
 * Only this file turns an error code into a process exit status (tr_exit_code), so every
 * subcommand and every rank exits with the same documented status for the same failure.
 */
#include "trainer/config.h"
#include "trainer/dist.h"
#include "trainer/error.h"
#include "trainer/model.h"
#include "trainer/train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef TRAINER_VERSION
#define TRAINER_VERSION "unknown"
#endif

#define MAX_SETS 256

static const char usage_main[] =
    "usage: trainer <command> [options]\n"
    "\n"
    "Data-parallel training of multilayer perceptrons (MPI + OpenBLAS + HDF5).\n"
    "\n"
    "commands:\n"
    "  train CONFIG.ini [--set section.key=value ...]   train a model\n"
    "  summary CONFIG.ini [--set ...]                   print the model layer by layer\n"
    "  help config                                      list every configuration key\n"
    "\n"
    "options:\n"
    "  -h, --help      show this help (or `trainer COMMAND --help`)\n"
    "  -V, --version   print the version\n"
    "\n"
    "Run on one rank directly, or on N ranks with `mpirun -np N trainer train CONFIG.ini`.\n"
    "Exit status: 0 ok, 2 usage or configuration error, 3 data error, 4 file or checkpoint\n"
    "I/O error, 5 training diverged, 6 out of memory, 7 MPI error, 70 internal error.\n";

static const char usage_train[] =
    "usage: trainer train CONFIG.ini [--set section.key=value ...]\n"
    "\n"
    "Trains the model described by CONFIG.ini ([model], [data], [train], [output]).\n"
    "  --set section.key=value   override one configuration value (repeatable),\n"
    "                            e.g. --set train.lr=0.01 --set model.init.0=uniform\n"
    "  -h, --help                show this help\n"
    "See `trainer help config` for every key and its default.\n";

static const char usage_summary[] =
    "usage: trainer summary CONFIG.ini [--set section.key=value ...]\n"
    "\n"
    "Prints one row per module (as torch.nn.Sequential) with its output shape and parameter\n"
    "count, and the totals.\n";

typedef struct cli {
    const char *command;
    const char *config;
    const char *sets[MAX_SETS];
    int n_sets;
    bool help;
} cli;

static int parse_args(cli *a, int argc, char **argv, tr_err *err)
{
    memset(a, 0, sizeof *a);
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
            a->help = true;
        } else if (!strcmp(s, "--set")) {
            if (i + 1 >= argc)
                return tr_fail(err, TR_EUSAGE, "--set needs a value: --set section.key=value");
            if (a->n_sets == MAX_SETS)
                return tr_fail(err, TR_EUSAGE, "too many --set options (at most %d)", MAX_SETS);
            a->sets[a->n_sets++] = argv[++i];
        } else if (!strncmp(s, "--set=", 6)) {
            if (a->n_sets == MAX_SETS)
                return tr_fail(err, TR_EUSAGE, "too many --set options (at most %d)", MAX_SETS);
            a->sets[a->n_sets++] = s + 6;
        } else if (s[0] == '-' && s[1]) {
            return tr_fail(err, TR_EUSAGE, "unknown option '%s' (see trainer --help)", s);
        } else if (!a->command) {
            a->command = s;
        } else if (!a->config) {
            a->config = s;
        } else {
            return tr_fail(err, TR_EUSAGE, "unexpected argument '%s' (see trainer --help)", s);
        }
    }
    return 0;
}

static int cmd_train(const cli *a, tr_dist *d, tr_err *err)
{
    FILE *out = d->rank == 0 ? stdout : NULL;
    tr_config c;
    int rc = tr_config_load(&c, a->config, a->sets, a->n_sets, err);
    if (rc) {
        tr_config_free(&c);
        return rc;
    }
    if (d->rank == 0) {
        rc = tr_run_dir_prepare(&c, err);
        if (rc) {
            tr_config_free(&c);
            return rc;
        }
    }
    tr_trainer t;
    rc = tr_trainer_init(&t, &c, d, out, err);
    if (!rc && out) {
        fprintf(out, "trainer %s: %s, %d rank%s, %lld training rows, %lld test rows, %zu parameters\n",
                TRAINER_VERSION, a->config, d->size, d->size == 1 ? "" : "s", (long long)t.data.train.rows,
                (long long)t.data.test.rows, t.model.n_trainable);
        fflush(out);
    }
    if (!rc)
        rc = tr_trainer_fit(&t, err);
    if (!rc && out) {
        if (t.has_train_metrics)
            tr_print_report(out, &t.train_metrics, "train");
        if (t.has_test_metrics)
            tr_print_report(out, &t.test_metrics, "test");
        fprintf(out, "\ntrained %lld epochs (%lld steps) in %.2f s\n", (long long)t.epoch, (long long)t.step,
                t.seconds);
    }
    tr_trainer_free(&t);
    tr_config_free(&c);
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

static int run(const cli *a, tr_dist *d, tr_err *err)
{
    if (!strcmp(a->command, "train") || !strcmp(a->command, "summary")) {
        if (a->help) {
            if (d->rank == 0)
                fputs(!strcmp(a->command, "train") ? usage_train : usage_summary, stdout);
            return 0;
        }
        if (!a->config)
            return tr_fail(err, TR_EUSAGE, "trainer %s needs a config file (see trainer %s --help)", a->command,
                           a->command);
        return !strcmp(a->command, "train") ? cmd_train(a, d, err) : cmd_summary(a, d, err);
    }
    if (!strcmp(a->command, "help")) {
        if (a->config && !strcmp(a->config, "config")) {
            if (d->rank == 0)
                tr_config_print_reference(stdout);
            return 0;
        }
        if (d->rank == 0)
            fputs(usage_main, stdout);
        return 0;
    }
    return tr_fail(err, TR_EUSAGE, "unknown command '%s' (see trainer --help)", a->command);
}

int main(int argc, char **argv)
{
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
    if (rc) {
        fprintf(stderr, "trainer: %s\n", err.msg);
        return tr_exit_code(rc);
    }

    tr_dist d;
    rc = tr_dist_init(&d, &argc, &argv, &err);
    if (rc) {
        fprintf(stderr, "trainer: %s\n", err.msg);
        return tr_exit_code(rc);
    }
    rc = run(&a, &d, &err);
    if (rc && d.rank == 0)
        fprintf(stderr, "trainer: error: %s\n", err.msg);
    tr_dist_finalize(&d);
    return tr_exit_code(rc);
}
