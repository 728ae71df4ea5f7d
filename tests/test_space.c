/*
 * test_space.c: the search space file (space.h) and successive halving's rule
 * (trial_queue.h): the trials a file gives, in order, in range, from the seed alone; the
 * settings; the refusals naming the file and line; the ASHA cutoff against numpy's
 * percentile worked by hand.
 */
#include "trainer/space.h"
#include "trainer/trial_queue.h"
#include "test_util.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char dir[512];

static const char *space_file(const char *text)
{
    static char path[600];
    if (!dir[0])
        make_temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/t.space", dir);
    write_text(path, text);
    return path;
}

static void value(const tr_space *s, int64_t trial, int d, char *buf)
{
    tr_space_value(s, trial, d, buf, 64);
}

Test(space, grid_axes_in_order_last_fastest)
{
    tr_space s;
    tr_err err;
    cr_assert_eq(tr_space_load(&s, space_file("model.layers = 2,8,1 2,16,1  # widths\n"
                                              "train.lr = 0.1 0.01 0.001\n"), NULL, 0, &err), 0, "%s", err.msg);
    cr_assert_eq(tr_space_trials(&s), 6);
    const char *want[6][2] = {{"2,8,1", "0.1"},  {"2,8,1", "0.01"},  {"2,8,1", "0.001"},
                              {"2,16,1", "0.1"}, {"2,16,1", "0.01"}, {"2,16,1", "0.001"}};
    for (int t = 0; t < 6; t++)
        for (int d = 0; d < 2; d++) {
            char v[64];
            value(&s, t, d, v);
            cr_assert_str_eq(v, want[t][d], "trial %d key %d", t, d);
        }
    tr_space_free(&s);
}

Test(space, samples_in_range_and_from_the_seed_alone)
{
    const char *text = "train.lr = loguniform 1e-4 1e-1\nmodel.dropout = uniform 0 0.5\n"
                       "train.batch_size = choice 32 64 128\nsearch.trials = 200\n";
    for (int sampler = 0; sampler < 2; sampler++) {
        const char *sets[] = {sampler ? "search.sampler=sobol" : "search.sampler=random"};
        tr_space a, b, c;
        tr_err err;
        const char *seed2[] = {sets[0], "search.seed=2"};
        cr_assert_eq(tr_space_load(&a, space_file(text), sets, 1, &err), 0, "%s", err.msg);
        cr_assert_eq(tr_space_load(&b, space_file(text), sets, 1, &err), 0, "%s", err.msg);
        cr_assert_eq(tr_space_load(&c, space_file(text), seed2, 2, &err), 0, "%s", err.msg);
        cr_assert_eq(tr_space_trials(&a), 200);
        int counts[3] = {0}, same_as_seed2 = 0, low_decade = 0;
        for (int t = 0; t < 200; t++) {
            char lr[64], p[64], bs[64], lr2[64], lrc[64];
            value(&a, t, 0, lr);
            value(&a, t, 1, p);
            value(&a, t, 2, bs);
            value(&b, t, 0, lr2);
            value(&c, t, 0, lrc);
            cr_assert_str_eq(lr, lr2, "the same seed, the same trial %d", t);
            same_as_seed2 += !strcmp(lr, lrc);
            const double x = atof(lr), q = atof(p);
            cr_assert(x >= 1e-4 && x <= 1e-1, "lr %g", x);
            cr_assert(q >= 0.0 && q <= 0.5, "dropout %g", q);
            low_decade += x < 1e-3;
            counts[!strcmp(bs, "32") ? 0 : !strcmp(bs, "64") ? 1 : 2]++;
            cr_assert(!strcmp(bs, "32") || !strcmp(bs, "64") || !strcmp(bs, "128"));
        }
        cr_assert_lt(same_as_seed2, 5, "another seed gives other trials");
        /* log-uniform: a third of the samples in each decade (the first: 67 +- 20) */
        cr_assert(low_decade > 45 && low_decade < 90, "%d of 200 below 1e-3", low_decade);
        for (int k = 0; k < 3; k++)
            cr_assert(counts[k] > 45 && counts[k] < 90, "choice %d drawn %d times of 200", k, counts[k]);
        tr_space_free(&a);
        tr_space_free(&b);
        tr_space_free(&c);
    }
}

Test(space, settings_and_their_defaults)
{
    tr_space s;
    tr_err err;
    cr_assert_eq(tr_space_load(&s, space_file("train.lr = 0.1\n"), NULL, 0, &err), 0, "%s", err.msg);
    cr_assert_eq(s.set.trials, 1);
    cr_assert_eq(s.set.eta, 3);
    cr_assert_eq(s.set.min_epochs, 1);
    cr_assert_eq(s.set.ranks_per_trial, 1);
    cr_assert(!s.set.asha);
    cr_assert_str_eq(s.set.metric, "auto");
    tr_space_free(&s);
    const char *sets[] = {"search.asha=true", "search.eta=4", "search.folds=5", "search.metric=val_accuracy"};
    cr_assert_eq(tr_space_load(&s, space_file("train.lr = choice 0.1 0.2\nsearch.trials = 7\n"), sets, 4, &err), 0,
                 "%s", err.msg);
    cr_assert(s.set.asha);
    cr_assert_eq(s.set.eta, 4);
    cr_assert_eq(s.set.folds, 5);
    cr_assert_eq(tr_space_trials(&s), 7);
    cr_assert_str_eq(s.set.metric, "val_accuracy");
    tr_space_free(&s);
}

Test(space, refusals_name_the_line)
{
    static const struct {
        const char *text, *words;
    } bad[] = {{"train.lr = 0.1\ndata.n = 100 200\n", ":2: data.n"},
               {"train.lr = loguniform 0 1\n", ":1: train.lr = loguniform LO HI"},
               {"train.lr = uniform 2 1\n", "LO < HI"},
               {"train.lr 0.1\n", ":1: expected"},
               {"train.lr = 0.1\ntrain.lr = 0.2\n", ":2: train.lr is already searched (line 1)"},
               {"search.eta = 1\n", "search.eta = 1 is not valid"},
               {"search.nope = 1\n", "unknown setting search.nope"},
               {"train.lr = 0.1 0.2\nsearch.trials = 3\n", "no key is sampled"},
               {"train.lr =\n", "has no values"},
               {"lr = 0.1\n", "is not a section.key"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tr_space s;
        tr_err err = {0};
        const int rc = tr_space_load(&s, space_file(bad[i].text), NULL, 0, &err);
        cr_assert_eq(rc, TR_ECONFIG, "case %zu: %d", i, rc);
        cr_assert(strstr(err.msg, bad[i].words), "case %zu: '%s' lacks '%s'", i, err.msg, bad[i].words);
        tr_space_free(&s);
    }
}

/* numpy.percentile([1, 2, 3], 100 * (1 - 1/3)) = 1 + (2/3) * 2 = 2.333... */
Test(asha, the_cutoff_is_numpys_percentile)
{
    const double earlier[] = {3.0, 1.0, 2.0};
    cr_assert(tr_asha_passes(earlier, 0, 0.1, true, 3), "the first at a rung always passes");
    cr_assert(!tr_asha_passes(earlier, 3, 2.3, true, 3));
    cr_assert(tr_asha_passes(earlier, 3, 2.34, true, 3));
    cr_assert(tr_asha_passes(earlier, 3, 3.0, true, 3));
    /* lower is better: the cutoff of the negated values, -(1 + (1/3) * 2) = -1.667 */
    cr_assert(tr_asha_passes(earlier, 3, 1.6, false, 3));
    cr_assert(!tr_asha_passes(earlier, 3, 1.7, false, 3));
    /* eta 2: the median */
    cr_assert(tr_asha_passes(earlier, 3, 2.0, true, 2));
    cr_assert(!tr_asha_passes(earlier, 3, 1.99, true, 2));
    /* NaN never passes; NaN among the earlier values is left out (numpy's nanpercentile) */
    cr_assert(!tr_asha_passes(earlier, 3, NAN, true, 3));
    const double with_nan[] = {NAN, 1.0, 3.0};
    cr_assert(tr_asha_passes(with_nan, 3, 2.34, true, 3)); /* percentile([1, 3], 66.7) = 2.333 */
    cr_assert(!tr_asha_passes(with_nan, 3, 2.3, true, 3));
}
