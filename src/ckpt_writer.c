/*
 * ckpt_writer.c: the checkpoint writer thread of ckpt_writer.h. A fixed ring of images under
 * one mutex; the thread takes the oldest, writes it with tr_ckpt_write (plain POSIX calls,
 * no HDF5) and rotates the directory when asked. The first failure stops the writing and is
 * handed to the run at its next submit or wait.
 */
#include "trainer/ckpt_writer.h"

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { QUEUE = 4 }; /* best.h5 and a checkpoint per epoch, with room to spare */

typedef struct job {
    tr_ckpt_image img;
    char rotate_dir[TR_PATH_MAX]; /* not empty: rotate it afterwards */
    int64_t keep, newest;
} job;

struct tr_ckpt_writer {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t changed; /* a job queued or finished, or quit */
    job ring[QUEUE];
    int head, count;        /* ring[head] is the oldest; count jobs queued or being written */
    bool quit;
    int rc;                 /* the first failure (sticky) */
    tr_err err;
};

static void *writer_main(void *arg)
{
    tr_ckpt_writer *w = arg;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (w->count == 0 && !w->quit)
            pthread_cond_wait(&w->changed, &w->lock);
        if (w->count == 0)
            break;
        job j = w->ring[w->head]; /* stays counted until written: wait() sees it */
        memset(&w->ring[w->head], 0, sizeof w->ring[w->head]);
        const bool failed = w->rc != 0;
        pthread_mutex_unlock(&w->lock);
        tr_err e = {0};
        int rc = 0;
        if (failed) {
            tr_ckpt_image_free(&j.img); /* nothing is written after a failure */
        } else {
            rc = tr_ckpt_write(&j.img, &e);
            if (!rc && j.rotate_dir[0])
                rc = tr_ckpt_rotate(j.rotate_dir, j.keep, j.newest, &e);
        }
        pthread_mutex_lock(&w->lock);
        if (rc && !w->rc) {
            w->rc = rc;
            w->err = e;
        }
        w->head = (w->head + 1) % QUEUE;
        w->count--;
        pthread_cond_broadcast(&w->changed);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

int tr_ckpt_writer_open(tr_ckpt_writer **out, tr_err *err)
{
    *out = NULL;
    tr_ckpt_writer *w = calloc(1, sizeof *w);
    if (!w)
        return tr_fail(err, TR_ENOMEM, "out of memory (checkpoint writer)");
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->changed, NULL);
    /* the thread inherits a mask that blocks every signal, so SIGTERM and the others reach
     * the run's own handlers on the calling thread */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    const int rc = pthread_create(&w->thread, NULL, writer_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        pthread_cond_destroy(&w->changed);
        pthread_mutex_destroy(&w->lock);
        free(w);
        return tr_fail(err, TR_ENOMEM, "cannot start the checkpoint writer thread: %s", strerror(rc));
    }
    *out = w;
    return 0;
}

/* The sticky failure into err (the caller holds the lock). */
static int failure(tr_ckpt_writer *w, tr_err *err)
{
    if (w->rc && err)
        *err = w->err;
    return w->rc;
}

int tr_ckpt_writer_submit(tr_ckpt_writer *w, tr_ckpt_image *img, const char *rotate_dir, int64_t keep,
                          int64_t newest, tr_err *err)
{
    pthread_mutex_lock(&w->lock);
    while (w->count == QUEUE && !w->rc)
        pthread_cond_wait(&w->changed, &w->lock);
    int rc = failure(w, err);
    if (!rc) {
        job *j = &w->ring[(w->head + w->count) % QUEUE];
        j->img = *img;
        snprintf(j->rotate_dir, sizeof j->rotate_dir, "%s", rotate_dir ? rotate_dir : "");
        j->keep = keep;
        j->newest = newest;
        w->count++;
        img->bytes = NULL;
        img->size = 0;
        pthread_cond_broadcast(&w->changed);
    }
    pthread_mutex_unlock(&w->lock);
    if (rc)
        tr_ckpt_image_free(img);
    return rc;
}

int tr_ckpt_writer_wait(tr_ckpt_writer *w, tr_err *err)
{
    pthread_mutex_lock(&w->lock);
    while (w->count > 0)
        pthread_cond_wait(&w->changed, &w->lock);
    const int rc = failure(w, err);
    pthread_mutex_unlock(&w->lock);
    return rc;
}

void tr_ckpt_writer_close(tr_ckpt_writer *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->quit = true; /* the thread finishes the queue first */
    pthread_cond_broadcast(&w->changed);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->changed);
    pthread_mutex_destroy(&w->lock);
    free(w);
}
