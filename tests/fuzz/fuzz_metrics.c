/*
 * fuzz_metrics.c: the metric log read on resume (tr_metric_log_open with rows to keep) on an
 * arbitrary metrics.h5 and metrics.csv: either may be missing, damaged, of another layout or
 * too short. Every input ends in a log that takes a new row, or an error with a message;
 * never a crash.
 *
 * Input: byte 0 = rows to keep (low 3 bits) and the layout (bit 3: classification with 3
 * classes and a test set, else regression with train_eval), bytes 1-2 = the length of the
 * metrics.h5 part (little-endian; 0xffff: no metrics.h5), then metrics.h5, then metrics.csv
 * (none when empty).
 */
#include "fuzz_util.h"

#include "trainer/h5io.h"
#include "trainer/log.h"
#include "trainer/train.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void put(const char *dir, const char *name, const uint8_t *data, size_t size)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(data, 1, size, f);
        fclose(f);
    }
}

static void empty_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.') {
            char path[384];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
    if (d)
        closedir(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int once = 0;
    if (!once++)
        tr_h5_no_atexit();
    if (size < 3)
        return 0;
    char dir[64];
    snprintf(dir, sizeof dir, "/dev/shm/trainer-fuzz-metrics-%ld", (long)getpid());
    mkdir(dir, 0700);
    empty_dir(dir);
    const int64_t keep = data[0] & 7;
    const bool cls = data[0] & 8;
    const size_t h5_len = (size_t)data[1] | (size_t)data[2] << 8;
    const uint8_t *rest = data + 3;
    size_t left = size - 3;
    if (h5_len != 0xffff) {
        const size_t n = h5_len < left ? h5_len : left;
        put(dir, "metrics.h5", rest, n);
        rest += n;
        left -= n;
    }
    if (left > 0)
        put(dir, "metrics.csv", rest, left);
    const tr_log_layout layout = {.task = cls ? TR_TASK_CLASSIFICATION : TR_TASK_REGRESSION,
                                  .classes = cls ? 3 : 0,
                                  .train_eval = !cls,
                                  .test = cls,
                                  .phase_names = tr_phase_names};
    tr_metric_log *log = NULL;
    tr_err err = {0};
    int rc = tr_metric_log_open(&log, dir, &layout, keep, &err);
    if (rc != 0 && !err.msg[0])
        abort();
    if (getenv("FUZZ_VERBOSE"))
        fprintf(stderr, "open: %d %s\n", rc, err.msg);
    if (rc == 0) {
        if (tr_metric_log_rows(log) != keep && tr_metric_log_rows(log) != 0)
            abort();
        tr_metrics m = {0};
        int64_t confusion[9] = {0};
        double per_class[3] = {0};
        m.confusion = confusion;
        m.precision = m.recall = m.f1 = per_class;
        const tr_log_row row = {.epoch = keep + 1, .step = 10, .train_eval = cls ? NULL : &m, .test = cls ? &m : NULL};
        rc = tr_metric_log_append(log, &row, &err);
        if (rc != 0 && !err.msg[0])
            abort();
        tr_metric_log_close(log);
    }
    empty_dir(dir);
    rmdir(dir);
    return 0;
}
