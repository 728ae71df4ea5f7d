/*
 * prefetch.c: the helper threads of prefetch.h. The spare buffers come from calloc, like the
 * trainer's batch buffers they trade places with (both are released with free).
 */
#define _GNU_SOURCE /* RUSAGE_THREAD */
#include "trainer/prefetch.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/resource.h>

struct tr_prefetch {
    pthread_t gatherer, reader;
    bool reader_started;
    pthread_mutex_t lock;
    pthread_cond_t wake, done;
    bool quit;
    /* the gatherer's job */
    bool busy;                /* a job is queued or running */
    int64_t tag;              /* the job's micro-batch; -1: none */
    const tr_dataset *ds;
    const int64_t *rows;
    int64_t n;
    float *x, *y;             /* the spare buffers the job fills */
    /* the reader's list */
    const tr_dataset *ahead_ds;
    const int64_t *ahead;     /* rows to ask the system for; NULL: none waiting or in hand */
    int64_t n_ahead;
    bool lists;               /* lists come: the gatherer need not ask for its own rows */
};

/* Page faults of this thread that had to wait for the disk. */
static long major_faults(void)
{
    struct rusage u;
    return getrusage(RUSAGE_THREAD, &u) == 0 ? u.ru_majflt : 0;
}

/* Jobs a major fault keeps the read-ahead on for: data from disk comes in long stretches, and
 * faults on pages already being read need not count as major. */
enum { READ_AHEAD_JOBS = 64 };

static void *gatherer(void *arg)
{
    tr_prefetch *p = arg;
    int read_ahead = 0; /* jobs left that first ask for all their rows at once */
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->busy && !p->quit)
            pthread_cond_wait(&p->wake, &p->lock);
        if (p->quit)
            break;
        const tr_dataset *ds = p->ds;
        const int64_t *rows = p->rows, n = p->n;
        float *x = p->x, *y = p->y;
        const bool lists = p->lists;
        pthread_mutex_unlock(&p->lock);
        /* from the page cache the gather is a copy; from disk, one fault after another would
         * wait for one read at a time: then the whole batch's reads are requested first
         * (unless the reader asks for whole windows ahead) */
        if (read_ahead > 0 && !lists) {
            tr_dataset_will_need(ds, rows, n);
            read_ahead--;
        }
        const long faults = major_faults();
        tr_dataset_gather(ds, rows, n, x, y);
        if (major_faults() > faults)
            read_ahead = READ_AHEAD_JOBS;
        pthread_mutex_lock(&p->lock);
        p->busy = false;
        pthread_cond_broadcast(&p->done);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* Asks the system for each list of rows as it comes: the requests themselves take time (the
 * kernel allocates the pages and queues the reads), which the gatherer then does not wait for. */
static void *reader(void *arg)
{
    tr_prefetch *p = arg;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->ahead && !p->quit)
            pthread_cond_wait(&p->wake, &p->lock);
        if (p->quit)
            break;
        const tr_dataset *ds = p->ahead_ds;
        const int64_t *rows = p->ahead, n = p->n_ahead;
        pthread_mutex_unlock(&p->lock);
        tr_dataset_will_need(ds, rows, n);
        pthread_mutex_lock(&p->lock);
        p->ahead = NULL;
        pthread_cond_broadcast(&p->done);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

int tr_prefetch_create(tr_prefetch **out, size_t x_floats, size_t y_floats, bool read_ahead, tr_err *err)
{
    *out = NULL;
    tr_prefetch *p = calloc(1, sizeof *p);
    if (!p)
        return tr_fail(err, TR_ENOMEM, "out of memory");
    p->tag = -1;
    /* the same allocator as the trainer's own batch buffers: they trade places */
    p->x = calloc(x_floats ? x_floats : 1, sizeof(float));
    p->y = calloc(y_floats ? y_floats : 1, sizeof(float));
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    bool ok = p->x && p->y && pthread_create(&p->gatherer, NULL, gatherer, p) == 0;
    if (ok && read_ahead && pthread_create(&p->reader, NULL, reader, p) != 0) {
        tr_prefetch_free(p);
        return tr_fail(err, TR_ENOMEM, "cannot start the read-ahead thread");
    }
    p->reader_started = ok && read_ahead;
    if (!ok) {
        free(p->x);
        free(p->y);
        pthread_mutex_destroy(&p->lock);
        pthread_cond_destroy(&p->wake);
        pthread_cond_destroy(&p->done);
        free(p);
        return tr_fail(err, TR_ENOMEM, "cannot start the prefetch thread");
    }
    *out = p;
    return 0;
}

static void wait_idle(tr_prefetch *p)
{
    while (p->busy)
        pthread_cond_wait(&p->done, &p->lock);
}

void tr_prefetch_free(tr_prefetch *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    wait_idle(p);
    p->quit = true;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    pthread_join(p->gatherer, NULL);
    if (p->reader_started)
        pthread_join(p->reader, NULL);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    free(p->x);
    free(p->y);
    free(p);
}

void tr_prefetch_start(tr_prefetch *p, const tr_dataset *ds, const int64_t *rows, int64_t n, int64_t tag,
                       const int64_t *ahead, int64_t n_ahead)
{
    pthread_mutex_lock(&p->lock);
    wait_idle(p);
    p->ds = ds;
    p->rows = rows;
    p->n = n;
    p->tag = tag;
    p->busy = true;
    if (n_ahead > 0 && p->reader_started) {
        while (p->ahead) /* the last list is still being asked for: the disk is behind anyway */
            pthread_cond_wait(&p->done, &p->lock);
        p->ahead_ds = ds;
        p->ahead = ahead;
        p->n_ahead = n_ahead;
        p->lists = true;
    }
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
}

bool tr_prefetch_take(tr_prefetch *p, int64_t tag, float **x, float **y)
{
    pthread_mutex_lock(&p->lock);
    wait_idle(p);
    const bool hit = p->tag == tag;
    if (hit) {
        float *tx = *x, *ty = *y;
        *x = p->x;
        *y = p->y;
        p->x = tx;
        p->y = ty;
    }
    p->tag = -1;
    pthread_mutex_unlock(&p->lock);
    return hit;
}
