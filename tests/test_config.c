/*
 * test_config.c: parsing, defaults, per-layer overrides, --set, and errors that name the
 * file, the line and the key.
 */
#include "trainer/config.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

static const char *good =
    "# a comment\n"
    "[model]\n"
    "layers = 2, 20, 20, 1\n"
    "activations = tanh\n"
    "output_activation = sigmoid\n"
    "\n"
    "[data]\n"
    "generator = moons\n"
    "\n"
    "[train]\n"
    "loss = bce\n"
    "optimizer = adam\n"
    "epochs = 3\n";

static int load(tr_config *c, const char *text, tr_err *err)
{
    return tr_config_load_string(c, "test.ini", text, NULL, 0, err);
}

/* Expects `text` to fail with TR_ECONFIG and a message containing every needle. */
static void expect_error(const char *text, const char *n1, const char *n2, const char *n3)
{
    tr_config c;
    tr_err err = {0};
    int rc = load(&c, text, &err);
    cr_expect_eq(rc, TR_ECONFIG, "expected a config error, got %d for:\n%s", rc, text);
    const char *needles[] = {n1, n2, n3};
    for (int i = 0; i < 3; i++)
        if (needles[i])
            cr_expect(strstr(err.msg, needles[i]) != NULL, "message '%s' lacks '%s'", err.msg, needles[i]);
    tr_config_free(&c);
}

Test(config, good_file_gets_values_and_pytorch_defaults)
{
    tr_config c;
    tr_err err = {0};
    cr_assert_eq(load(&c, good, &err), 0, "%s", err.msg);
    cr_expect_eq(c.model.n_layers, 3);
    cr_expect_eq(c.model.widths[1], 20);
    cr_expect_eq(c.model.act[0], TR_ACT_TANH);
    cr_expect_eq(c.model.act[1], TR_ACT_TANH);
    cr_expect_eq(c.model.act[2], TR_ACT_SIGMOID);
    cr_expect(c.model.bias);
    cr_expect_eq(c.model.weight_init[2].scheme, TR_INIT_DEFAULT);
    cr_expect_eq(c.train.loss, TR_LOSS_BCE);
    cr_expect_eq(c.train.optim.kind, TR_OPTIM_ADAM);
    cr_expect(c.train.optim.lr == 1e-3, "adam default lr");
    cr_expect(c.train.optim.beta2 == 0.999);
    cr_expect(c.train.optim.eps == 1e-8);
    cr_expect(c.train.optim.weight_decay == 0.0);
    cr_expect_eq(c.train.epochs, 3);
    cr_expect_eq(c.train.batch_size, 32);
    cr_expect_str_eq(tr_config_value(&c, "train", "epochs"), "3");
    cr_expect_str_eq(tr_config_value(&c, "train", "lr"), "auto");
    tr_config_free(&c);
}

Test(config, optimizer_dependent_defaults)
{
    tr_config c;
    const char *sets[] = {"train.optimizer=adamw"};
    cr_assert_eq(tr_config_load_string(&c, "t.ini", good, sets, 1, NULL), 0);
    cr_expect(c.train.optim.weight_decay == 0.01);
    tr_config_free(&c);
    const char *sets2[] = {"train.optimizer=rmsprop"};
    cr_assert_eq(tr_config_load_string(&c, "t.ini", good, sets2, 1, NULL), 0);
    cr_expect(c.train.optim.lr == 1e-2 && c.train.optim.alpha == 0.99 && c.train.optim.eps == 1e-8);
    tr_config_free(&c);
    const char *sets3[] = {"train.optimizer=momentum"};
    cr_assert_eq(tr_config_load_string(&c, "t.ini", good, sets3, 1, NULL), 0);
    cr_expect(c.train.optim.momentum == 0.9);
    tr_config_free(&c);
    const char *lars[] = {"train.optimizer=lars"}; /* timm's defaults, the paper's momentum */
    cr_assert_eq(tr_config_load_string(&c, "t.ini", good, lars, 1, NULL), 0);
    cr_expect(c.train.optim.lr == 1.0 && c.train.optim.momentum == 0.9 && c.train.optim.trust_coefficient == 0.001 &&
              c.train.optim.eps == 1e-8 && c.train.optim.weight_decay == 0.0);
    tr_config_free(&c);
    const char *lamb[] = {"train.optimizer=lamb"};
    cr_assert_eq(tr_config_load_string(&c, "t.ini", good, lamb, 1, NULL), 0);
    cr_expect(c.train.optim.lr == 1e-3 && c.train.optim.eps == 1e-6 && c.train.optim.weight_decay == 0.01);
    tr_config_free(&c);
}

/* lr_scaling's warm-up and another warm-up at once would multiply: refused, naming both. */
Test(config, lr_scaling_warm_up_does_not_stack_with_another)
{
    expect_error("[model]\nlayers = 2, 1\n[train]\nloss = mse\nlr_scaling = linear\nwarmup_steps = 10\n", "test.ini",
                 "lr_scaling_warmup_epochs", "warmup_steps");
    expect_error("[model]\nlayers = 2, 1\n[train]\nloss = mse\nlr_scaling = sqrt\nlr_schedule = onecycle\noptimizer = adam\n",
                 "test.ini",
                 "lr_scaling = sqrt", "onecycle");
    tr_config c;
    const char *sets[] = {"train.lr_scaling=linear", "train.lr_schedule=onecycle", "train.optimizer=adam",
                          "train.lr_scaling_warmup_epochs=0"};
    cr_expect_eq(tr_config_load_string(&c, "test.ini", good, sets, 4, NULL), 0, "without its warm-up it scales onecycle");
    tr_config_free(&c);
}

Test(config, activations_one_per_layer)
{
    tr_config c;
    const char *sets[] = {"model.activations = relu, elu, sigmoid", "model.output_activation=auto"};
    cr_assert_eq(tr_config_load_string(&c, "t.ini", good, sets, 2, NULL), 0);
    cr_expect_eq(c.model.act[0], TR_ACT_RELU);
    cr_expect_eq(c.model.act[1], TR_ACT_ELU);
    cr_expect_eq(c.model.act[2], TR_ACT_SIGMOID);
    tr_config_free(&c);
}

Test(config, per_layer_init_override)
{
    tr_config c;
    tr_err err = {0};
    const char *sets[] = {"model.init = xavier_uniform", "model.init.0=uniform", "model.init_a.0 = -0.1",
                          "model.init_b.0=0.1", "model.bias_init.2 = zeros"};
    cr_assert_eq(tr_config_load_string(&c, "t.ini", good, sets, 5, &err), 0, "%s", err.msg);
    cr_expect_eq(c.model.weight_init[0].scheme, TR_INIT_UNIFORM);
    cr_expect(c.model.weight_init[0].a == -0.1 && c.model.weight_init[0].b == 0.1);
    cr_expect_eq(c.model.weight_init[1].scheme, TR_INIT_XAVIER_UNIFORM);
    cr_expect_eq(c.model.weight_init[2].scheme, TR_INIT_XAVIER_UNIFORM);
    cr_expect_eq(c.model.bias_init[2].scheme, TR_INIT_ZEROS);
    cr_expect_eq(c.model.bias_init[1].scheme, TR_INIT_DEFAULT);
    cr_expect_str_eq(tr_config_value(&c, "model", "init.0"), "uniform");
    tr_config_free(&c);
}

Test(config, set_overrides_file_values)
{
    tr_config c;
    const char *sets[] = {"train.epochs=7", "train.lr = 0.5"};
    cr_assert_eq(tr_config_load_string(&c, "t.ini", good, sets, 2, NULL), 0);
    cr_expect_eq(c.train.epochs, 7);
    cr_expect(c.train.optim.lr == 0.5);
    for (int i = 0; i < c.n_entries; i++) {
        if (!strcmp(c.entries[i].key, "epochs"))
            cr_expect_str_eq(c.entries[i].origin, "--set");
        if (!strcmp(c.entries[i].key, "layers"))
            cr_expect_str_eq(c.entries[i].origin, "t.ini:3");
        if (!strcmp(c.entries[i].key, "shuffle"))
            cr_expect_str_eq(c.entries[i].origin, "default");
    }
    tr_config_free(&c);
}

Test(config, malformed_set_is_a_usage_error)
{
    tr_config c;
    tr_err err = {0};
    const char *sets[] = {"epochs=7"};
    cr_expect_eq(tr_config_load_string(&c, "t.ini", good, sets, 1, &err), TR_EUSAGE);
    cr_expect(strstr(err.msg, "section.key=value") != NULL, "%s", err.msg);
    tr_config_free(&c);
}

Test(config, unknown_key_names_file_line_and_key)
{
    expect_error("[model]\nlayers = 2, 1\nlayer_sizes = 3\n[train]\nloss = mse\n", "test.ini:3", "layer_sizes",
                 "[model]");
}

Test(config, bad_number_names_the_key)
{
    expect_error("[model]\nlayers = 2, 1\n[train]\nloss = mse\nlr = 0.0x1\n", "test.ini:5", "lr", "not a finite number");
    expect_error("[model]\nlayers = 2, 1\n[train]\nloss = mse\nepochs = 2.5\n", "test.ini:5", "epochs", "integer");
    expect_error("[model]\nlayers = 2, 1\n[train]\nloss = mse\nepochs = -1\n", "test.ini:5", "epochs", "between 0 and");
    expect_error("[model]\nlayers = 2, x, 1\n[train]\nloss = mse\n", "test.ini:2", "layers", "'x'");
    expect_error("[model]\nlayers = 2, 1\n[train]\nloss = mse\nshuffle = maybe\n", "test.ini:5", "shuffle", "boolean");
}

Test(config, unknown_activation_names_the_key)
{
    expect_error("[model]\nlayers = 2, 4, 1\nactivations = relu, sigmoidal\n[train]\nloss = mse\n", "test.ini:3",
                 "activations", "sigmoidal");
    expect_error("[model]\nlayers = 2, 4, 1\nactivations = relu\noutput_activation = soft\n[train]\nloss = mse\n",
                 "test.ini:4", "output_activation", "soft");
}

Test(config, layer_activation_count_mismatch_names_the_key)
{
    expect_error("[model]\nlayers = 2, 4, 4, 1\nactivations = relu, relu\n[train]\nloss = mse\n", "test.ini:3",
                 "activations", "2 activations for 3 weight layers");
}

Test(config, softmax_only_on_the_output)
{
    expect_error("[model]\nlayers = 2, 4, 3\nactivations = softmax, identity\n[train]\nloss = mse\n", "activations",
                 "output layer", NULL);
}

Test(config, missing_required_key)
{
    expect_error("[model]\nlayers = 2, 1\n", "[train] loss", "required", NULL);
    expect_error("[train]\nloss = mse\n", "[model] layers", "required", NULL);
}

Test(config, unknown_section_duplicate_and_syntax)
{
    expect_error("[modle]\nlayers = 2, 1\n", "test.ini:2", "unknown section [modle]", NULL);
    expect_error("[model]\nlayers = 2, 1\nlayers = 3, 1\n[train]\nloss = mse\n", "test.ini:3", "set twice",
                 "test.ini:2");
    expect_error("[model]\nlayers = 2, 1\nthis line has no equals sign\n[train]\nloss=mse\n", "test.ini:3", "syntax",
                 NULL);
}

Test(config, per_layer_index_checked)
{
    expect_error("[model]\nlayers = 2, 4, 1\ninit.5 = uniform\n[train]\nloss = mse\n", "test.ini:3", "init.5",
                 "0 to 1");
    expect_error("[model]\nlayers = 2, 4, 1\nbias.0 = false\n[train]\nloss = mse\n", "test.ini:3", "bias.0",
                 "no per-layer form");
    expect_error("[model]\nlayers = 2, 4, 1\nbias_init = xavier_uniform\n[train]\nloss = mse\n", "test.ini:3",
                 "bias_init", "2-D");
}

Test(config, loss_must_fit_the_output)
{
    expect_error("[model]\nlayers = 2, 4, 3\noutput_activation = identity\n[train]\nloss = bce\n",
                 "bce", "sigmoid", NULL);
    expect_error("[model]\nlayers = 2, 4, 1\noutput_activation = log_softmax\n[train]\nloss = nll\n",
                 "nll", "2 units", NULL);
}

Test(config, long_line_is_an_error_not_a_silent_truncation)
{
    char text[1024];
    char pad[400];
    memset(pad, ' ', sizeof pad - 1);
    pad[sizeof pad - 1] = '\0';
    snprintf(text, sizeof text, "[model]\nlayers = 2, 1%s\n[train]\nloss = mse\n", pad);
    expect_error(text, "test.ini:2", "too long", NULL);
}

Test(config, missing_file_names_it)
{
    tr_config c;
    tr_err err = {0};
    cr_expect_eq(tr_config_load(&c, "/nonexistent/x.ini", NULL, 0, &err), TR_ECONFIG);
    cr_expect(strstr(err.msg, "/nonexistent/x.ini") != NULL);
    tr_config_free(&c);
}

Test(config, reference_lists_every_key_with_default)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    tr_config_print_reference(f);
    fclose(f);
    cr_expect(strstr(buf, "| `layers` | required |") != NULL);
    cr_expect(strstr(buf, "| `init` (per layer: `.N`) | default |") != NULL);
    cr_expect(strstr(buf, "| `alpha` | 0.99 |") != NULL);
    free(buf);
}

Test(config, class_names_are_split_trimmed_and_counted)
{
    char buf[64];
    cr_expect_eq(tr_class_name_count(""), 0);
    cr_expect_eq(tr_class_name_count("cat"), 1);
    cr_expect_eq(tr_class_name_count("T-shirt/top, Trouser ,Bag"), 3);
    cr_expect_str_eq(tr_class_name("T-shirt/top, Trouser ,Bag", 0, buf, sizeof buf), "T-shirt/top");
    cr_expect_str_eq(tr_class_name("T-shirt/top, Trouser ,Bag", 1, buf, sizeof buf), "Trouser");
    cr_expect_str_eq(tr_class_name("T-shirt/top, Trouser ,Bag", 2, buf, sizeof buf), "Bag");
    cr_expect_str_eq(tr_class_name("T-shirt/top, Trouser ,Bag", 3, buf, sizeof buf), "3", "past the list: the index");
    cr_expect_str_eq(tr_class_name("", 7, buf, sizeof buf), "7");
    cr_expect_str_eq(tr_class_name(NULL, 2, buf, sizeof buf), "2");
}

Test(config, class_names_must_match_the_classes)
{
    tr_config c;
    const char *two[] = {"data.class_names=left moon, right moon"};
    cr_expect_eq(tr_config_load_string(&c, "t.ini", good, two, 1, NULL), 0, "bce has two classes");
    tr_config_free(&c);
    const char *three[] = {"data.class_names=a,b,c"};
    tr_err err = {0};
    cr_expect_eq(tr_config_load_string(&c, "t.ini", good, three, 1, &err), TR_ECONFIG);
    cr_expect(strstr(err.msg, "class_names: 3 names for 2 classes"), "%s", err.msg);
    expect_error("[model]\nlayers = 1, 1\n[data]\ngenerator = linear\nclass_names = a, b\n[train]\nloss = mse\n",
                 "class_names", "classification", NULL);
}

Test(config, enum_keys_of_bool_fields_write_one_byte)
{
    /* batchnorm_position and penalty_params are enum keys stored in bool fields: the value
     * lands in the bool, and the bytes around it keep what they had */
    const char *sets[] = {"model.batchnorm_position=after", "train.penalty_params=all"};
    tr_config c;
    tr_err err = {0};
    cr_assert_eq(tr_config_load_string(&c, "t.ini", good, sets, 2, &err), 0, "%s", err.msg);
    tr_config ref;
    cr_assert_eq(tr_config_load_string(&ref, "t.ini", good, NULL, 0, &err), 0, "%s", err.msg);
    cr_expect(c.model.bn_after && !ref.model.bn_after);
    cr_expect(c.train.penalize_all && !ref.train.penalize_all);
    /* everything else equal, byte for byte, padding included (both start zeroed) */
    c.model.bn_after = ref.model.bn_after;
    c.train.penalize_all = ref.train.penalize_all;
    cr_expect(memcmp(&c.model, &ref.model, sizeof c.model) == 0, "[model] differs beyond bn_after");
    cr_expect(memcmp(&c.train, &ref.train, sizeof c.train) == 0, "[train] differs beyond penalize_all");
    tr_config_free(&c);
    tr_config_free(&ref);
}

Test(config, empty_dropout_without_hidden_layers_is_an_error)
{
    /* found by fuzz_config: a model with no hidden layer and an empty list read items[0] */
    expect_error("[model]\nlayers = 6, 128\ndropout =\n[train]\nloss = mse\n", "[model] dropout: no value", NULL, NULL);
    expect_error("[model]\nlayers = 6, 128\nbatchnorm =\n[train]\nloss = mse\n", "[model] batchnorm: no value", NULL,
                 NULL);
}

/* Every name of every vocabulary reaches the config as its own value, and back to its name. */
Test(config, every_vocabulary_name_is_accepted_as_its_value)
{
    static const struct {
        const char *key;
        const char *const *names;
        size_t offset;
    } vocab[] = {
        {"train.optimizer", tr_optim_names, offsetof(tr_config, train.optim.kind)},
        {"train.reduction", tr_reduction_names, offsetof(tr_config, train.reduction)},
        {"train.lr_schedule", tr_schedule_names, offsetof(tr_config, train.lr_schedule)},
        {"train.comm", tr_comm_names, offsetof(tr_config, train.comm)},
        {"data.on_nonfinite", tr_nonfinite_names, offsetof(tr_config, data.on_nonfinite)},
        {"output.best_mode", tr_best_mode_names, offsetof(tr_config, output.best_mode)},
        {"output.resume", tr_resume_names, offsetof(tr_config, output.resume)},
        {"output.progress", tr_progress_names, offsetof(tr_config, output.progress)},
        {"data.format", tr_format_names, offsetof(tr_config, data.format)},
    };
    for (size_t v = 0; v < sizeof vocab / sizeof vocab[0]; v++) {
        int n = 0;
        for (; vocab[v].names[n]; n++) {
            char set[128];
            snprintf(set, sizeof set, "%s=%s", vocab[v].key, vocab[v].names[n]);
            const char *sets[] = {set};
            tr_config c;
            tr_err err = {0};
            const int rc = tr_config_load_string(&c, "test.ini", good, sets, 1, &err);
            cr_expect_eq(rc, 0, "%s: %s", set, err.msg);
            if (!rc) {
                int got;
                memcpy(&got, (const char *)&c + vocab[v].offset, sizeof got);
                cr_expect_eq(got, n, "%s stored %d", set, got);
                cr_expect_str_eq(tr_name_of(vocab[v].names, got), vocab[v].names[n]);
            }
            tr_config_free(&c);
        }
        cr_expect_gt(n, 1, "%s has a vocabulary", vocab[v].key);
        cr_expect_str_eq(tr_name_of(vocab[v].names, n), "?", "out of range");
    }
    /* a name outside the vocabulary is refused with the whole list */
    char list[256], want[300];
    snprintf(want, sizeof want, "choose one of: %s", tr_names_join(tr_schedule_names, list, sizeof list));
    const char *sets[] = {"train.lr_schedule=cos"};
    tr_config c;
    tr_err err = {0};
    cr_expect_eq(tr_config_load_string(&c, "test.ini", good, sets, 1, &err), TR_ECONFIG);
    cr_expect(strstr(err.msg, want) != NULL, "%s", err.msg);
    tr_config_free(&c);
}

Test(config, joined_names_are_cut_to_the_buffer)
{
    char small[12];
    cr_expect_str_eq(tr_names_join(tr_optim_names, small, sizeof small), "sgd, moment");
    cr_expect_eq(tr_name_index(tr_optim_names, "adamw"), TR_OPTIM_ADAMW);
    cr_expect_eq(tr_name_index(tr_optim_names, "adam "), -1);
}

Test(config, gemm_engine_and_precision_parse_and_contradictions_are_refused)
{
    tr_config c;
    tr_err err = {0};
    cr_assert_eq(load(&c, good, &err), 0, "%s", err.msg);
    cr_expect_eq(c.train.gemm, TR_GEMM_AUTO);
    cr_expect_eq(c.train.precision, TR_PRECISION_FP32);
    tr_config_free(&c);
    const char *sets[] = {"train.gemm=onednn", "train.precision=bf16"};
    cr_assert_eq(tr_config_load_string(&c, "test.ini", good, sets, 2, &err), 0, "%s", err.msg);
    cr_expect_eq(c.train.gemm, TR_GEMM_ONEDNN);
    cr_expect_eq(c.train.precision, TR_PRECISION_BF16);
    /* what ran is recorded over the setting (gemm = auto's choice) */
    tr_config_record(&c, "train", "gemm", "openblas", "auto: timed");
    cr_expect_str_eq(tr_config_value(&c, "train", "gemm"), "openblas");
    tr_config_free(&c);
    expect_error("[model]\nlayers = 2, 1\n[train]\nloss = mse\ngemm = mkl\n", "test.ini:5", "gemm", "onednn");
    expect_error("[model]\nlayers = 2, 1\n[train]\nloss = mse\nprecision = fp16\n", "test.ini:5", "precision", "bf16");
    expect_error("[model]\nlayers = 2, 1\n[train]\nloss = mse\ngemm = openblas\nprecision = bf16\n", "precision = bf16",
                 "gemm = onednn", "openblas");
}
