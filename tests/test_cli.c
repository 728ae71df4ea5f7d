/*
 * test_cli.c: the `trainer` binary's command line: help, version, exit codes and messages.
 */
#include "test_util.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

static char out[65536];
static char dir[256];

static const char *moons_cfg =
    "[model]\nlayers = 2, 8, 1\nactivations = tanh\noutput_activation = sigmoid\n"
    "[data]\ngenerator = moons\nn = 200\n[train]\nloss = bce\noptimizer = adam\nepochs = 2\n"
    "[output]\ndir = %s/run\n";

static void setup(void) { make_temp_dir(dir, sizeof dir); }

TestSuite(cli, .init = setup);

static int trainer(const char *args)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s %s", TRAINER_BIN, args);
    return run_cmd(cmd, out, sizeof out);
}

Test(cli, version_and_help)
{
    cr_expect_eq(trainer("--version"), 0);
    cr_expect(strncmp(out, "trainer ", 8) == 0, "%s", out);
    cr_expect_eq(trainer("--help"), 0);
    cr_expect(strstr(out, "train CONFIG.ini") && strstr(out, "summary"), "%s", out);
    cr_expect_eq(trainer("train --help"), 0);
    cr_expect(strstr(out, "--set section.key=value"), "%s", out);
    cr_expect_eq(trainer("help config"), 0);
    cr_expect(strstr(out, "| `batch_size` | 32 |"), "%s", out);
}

Test(cli, usage_errors_exit_2)
{
    cr_expect_eq(trainer(""), 2);
    cr_expect_eq(trainer("frobnicate"), 2);
    cr_expect(strstr(out, "unknown command 'frobnicate'"), "%s", out);
    cr_expect_eq(trainer("train"), 2);
    cr_expect(strstr(out, "needs a config file"), "%s", out);
    cr_expect_eq(trainer("train x.ini --bogus"), 2);
    cr_expect_eq(trainer("train /nonexistent.ini"), 2);
    cr_expect(strstr(out, "/nonexistent.ini"), "%s", out);
}

static void expect_config_error(const char *body, const char *key)
{
    char path[512], args[1024];
    snprintf(path, sizeof path, "%s/bad.ini", dir);
    write_text(path, body);
    snprintf(args, sizeof args, "train %s", path);
    cr_expect_eq(trainer(args), 2, "exit code for:\n%s\noutput: %s", body, out);
    cr_expect(strstr(out, key) != NULL, "message lacks '%s': %s", key, out);
    cr_expect(strstr(out, "bad.ini") != NULL, "message lacks the file name: %s", out);
}

Test(cli, config_errors_exit_2_naming_the_key)
{
    expect_config_error("[model]\nlayers = 2, 1\nwidth = 3\n[train]\nloss = mse\n", "width");
    expect_config_error("[model]\nlayers = 2, 1\n[train]\nloss = mse\nlr = fast\n", "lr");
    expect_config_error("[model]\nlayers = 2, 3, 1\nactivations = rleu\n[train]\nloss = mse\n", "activations");
    expect_config_error("[model]\nlayers = 2, 3, 3, 1\nactivations = relu, relu\n[train]\nloss = mse\n",
                        "activations");
    expect_config_error("[model]\nlayers = 2, 1\n", "loss");
}

Test(cli, set_override_errors_exit_2)
{
    char path[512], args[1024], cfg[1024];
    snprintf(path, sizeof path, "%s/ok.ini", dir);
    snprintf(cfg, sizeof cfg, moons_cfg, dir);
    write_text(path, cfg);
    snprintf(args, sizeof args, "train %s --set train.nope=1", path);
    cr_expect_eq(trainer(args), 2);
    cr_expect(strstr(out, "--set") && strstr(out, "nope"), "%s", out);
}

Test(cli, summary_prints_layers_and_total)
{
    char path[512], args[1024], cfg[1024];
    snprintf(path, sizeof path, "%s/ok.ini", dir);
    snprintf(cfg, sizeof cfg, moons_cfg, dir);
    write_text(path, cfg);
    snprintf(args, sizeof args, "summary %s", path);
    cr_expect_eq(trainer(args), 0, "%s", out);
    cr_expect(strstr(out, "Linear: 0") && strstr(out, "Tanh: 1") && strstr(out, "Sigmoid: 3"), "%s", out);
    cr_expect(strstr(out, "Total params: 33"), "%s", out); /* 2*8+8 + 8+1 */
}

Test(cli, train_runs_and_reports)
{
    char path[512], args[1024], cfg[1024];
    snprintf(path, sizeof path, "%s/ok.ini", dir);
    snprintf(cfg, sizeof cfg, moons_cfg, dir);
    write_text(path, cfg);
    snprintf(args, sizeof args, "train %s --set train.epochs=3", path);
    cr_expect_eq(trainer(args), 0, "%s", out);
    cr_expect(strstr(out, "epoch   3/3") != NULL, "%s", out);
    cr_expect(strstr(out, "confusion matrix") == NULL, "no test set, no report: %s", out);
}

Test(cli, readme_configuration_reference_is_current)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/README.md", SOURCE_DIR);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "cannot open %s", path);
    static char readme[1 << 18];
    size_t n = fread(readme, 1, sizeof readme - 1, f);
    readme[n] = '\0';
    fclose(f);
    const char *begin = strstr(readme, "<!-- config-reference:begin -->\n\n");
    const char *end = strstr(readme, "<!-- config-reference:end -->");
    cr_assert(begin && end && end > begin, "README lacks the config-reference markers");
    begin += strlen("<!-- config-reference:begin -->\n\n");
    cr_assert_eq(trainer("help config"), 0);
    size_t len = strlen(out);
    while (len > 0 && out[len - 1] == '\n')
        len--;
    cr_expect(strncmp(begin, out, len) == 0 && begin[len] == '\n',
              "README.md's configuration reference is stale: run scripts/update-readme.sh");
}
